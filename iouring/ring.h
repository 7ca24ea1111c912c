// Ring: a move-only owner of one io_uring instance, plus the opcode probe.
//
// Contract: Create() either returns a working ring or a Status that says why the kernel
// refused (ENOSYS: kernel without io_uring; EPERM: io_uring disabled by sysctl
// kernel.io_uring_disabled or a seccomp filter). GetSqe() never returns null while the
// ring is healthy: when the submission queue is full it first submits what is queued.
// Reap() moves every ready completion into the caller's vector before any callback runs,
// so completion handlers never recurse into the kernel's CQ.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

namespace hasync::iouring {

// Limits (STYLE: a limit on everything).
inline constexpr unsigned kMaxRingEntries = 4096;
inline constexpr unsigned kDefaultRingEntries = 256;
static_assert((kMaxRingEntries & (kMaxRingEntries - 1)) == 0, "ring size is a power of two");

struct Completion {
  uint64_t user_data = 0;
  int32_t res = 0;  // >= 0 result, < 0 is -errno
  uint32_t flags = 0;
};

class Ring {
 public:
  // entries is rounded up to a power of two by the kernel; must be in [1, kMaxRingEntries].
  static Result<Ring> Create(unsigned entries = kDefaultRingEntries);

  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  Ring(Ring&& other) noexcept;
  Ring& operator=(Ring&& other) noexcept;
  ~Ring();

  bool valid() const { return valid_; }
  io_uring* raw() { return &ring_; }
  unsigned sq_entries() const { return ring_.sq.ring_entries; }

  // A free SQE; submits queued SQEs first when the SQ is full.
  Result<io_uring_sqe*> GetSqe();
  // Submits queued SQEs; returns how many the kernel took. EINTR is retried.
  Result<unsigned> Submit();
  // Submits, then waits until at least `wait_nr` completions are ready or `timeout_ns`
  // passes (timeout_ns < 0: wait without limit), then appends every ready completion
  // (up to max_batch) to `out`. Returns how many were appended; a timeout is not an error.
  Result<size_t> Reap(std::vector<Completion>& out, unsigned wait_nr, int64_t timeout_ns,
                      size_t max_batch = kMaxRingEntries);

 private:
  Ring() = default;
  void Release();

  io_uring ring_{};
  bool valid_ = false;
};

// Which IORING_OP_* the running kernel supports.
class OpcodeProbe {
 public:
  static Result<OpcodeProbe> Query(Ring& ring);
  // A probe built from a fixed list, for tests of the fallback logic.
  static OpcodeProbe FromSupported(std::span<const int> ops);

  bool Supports(int op) const;
  // Unimplemented naming every missing opcode and what to do, or OK.
  Status Require(std::span<const int> ops) const;

 private:
  std::vector<bool> supported_;
};

// Human name of an IORING_OP_* value ("READ", "SPLICE", …) for messages.
std::string_view OpcodeName(int op);

}  // namespace hasync::iouring
