// FsOps: the seam between the apply layer and the kernel calls that move and persist
// file data (write, truncate, clone/copy, fsync, syncfs).
//
// Contract: every method returns 0 on success or an errno value; the caller names the
// path and turns it into a Status with ErrnoStatus. PosixFsOps is the real thing; tests
// derive from it to inject EIO/ENOSPC at one call without touching the logic above.
// Namespace calls (renameat, linkat, unlinkat, mkdirat) are made directly: they are
// what the tree is about and are exercised for real in tests.
// Thread safety: PosixFsOps is stateless and may be shared between threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace hasync::engine::apply {

class FsOps {
 public:
  virtual ~FsOps() = default;

  // Writes all of `data` at `offset` (short writes continue, EINTR retried).
  virtual int Pwrite(int fd, std::span<const std::byte> data, uint64_t offset) = 0;
  virtual int Ftruncate(int fd, uint64_t size) = 0;
  virtual int Fsync(int fd) = 0;
  virtual int Syncfs(int fd) = 0;
  // Whole-file reflink (FICLONE) of src into the empty dst. EOPNOTSUPP/EXDEV/EINVAL/
  // ENOTTY mean "this filesystem cannot share blocks": the caller falls back to copying.
  virtual int Clone(int src_fd, int dst_fd) = 0;
  // Copies [offset, offset+length) of src to the same offset in dst, in the kernel
  // (copy_file_range) where it can, through a bounce buffer where it cannot.
  virtual int CopyRange(int src_fd, int dst_fd, uint64_t offset, uint64_t length) = 0;

  // Makes every fd in `fds` durable. On failure returns the errno and sets *failed to
  // the index of the fd that failed. The default fsyncs one after the other through
  // Fsync() (so a fake's Fsync fault applies); an io_uring implementation overrides it
  // to have all fsyncs in flight at once.
  virtual int SyncAll(std::span<const int> fds, size_t* failed);
};

class PosixFsOps : public FsOps {
 public:
  int Pwrite(int fd, std::span<const std::byte> data, uint64_t offset) override;
  int Ftruncate(int fd, uint64_t size) override;
  int Fsync(int fd) override;
  int Syncfs(int fd) override;
  int Clone(int src_fd, int dst_fd) override;
  int CopyRange(int src_fd, int dst_fd, uint64_t offset, uint64_t length) override;
};

// The process-wide real implementation (stateless).
FsOps& DefaultFsOps();

}  // namespace hasync::engine::apply
