// UringFsOps: FsOps whose SyncAll has every fsync of a batch in flight at once through
// io_uring (IORING_OP_FSYNC), instead of one after the other. Everything else is
// PosixFsOps. This is the "concurrent fsyncs through io_uring" group-commit strategy of
// DESIGN §7; SyncStrategy::kSyncfs is the other one.
//
// Contract: SyncAll submits up to the ring's size at a time and waits for all of them;
// it reports the failure of the lowest index (so messages are deterministic) after
// every fsync of the window completed — none is left running when it returns.
// Thread safety: none; one thread owns a UringFsOps (it owns a ring).
#pragma once

#include <memory>
#include <span>

#include "base/status.h"
#include "engine/apply/fs_ops.h"
#include "iouring/ring.h"

namespace hasync::engine::apply {

class UringFsOps : public PosixFsOps {
 public:
  // Unimplemented/PermissionDenied when the kernel has no usable io_uring: the caller
  // falls back to PosixFsOps (sequential fsync) or to SyncStrategy::kSyncfs.
  static Result<std::unique_ptr<UringFsOps>> Create(unsigned entries = 256);

  int SyncAll(std::span<const int> fds, size_t* failed) override;

 private:
  explicit UringFsOps(iouring::Ring ring) : ring_(std::move(ring)) {}
  iouring::Ring ring_;
};

}  // namespace hasync::engine::apply
