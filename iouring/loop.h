// Loop: a single-threaded completion loop over one Ring.
//
// Contract:
// - Every operation is submitted with a callback; the callback runs exactly once, from
//   RunOnce(), after all ready completions were drained from the kernel's CQ into a
//   local queue (no recursion: a callback that submits more work never re-enters the
//   CQ walk).
// - At most kMaxInFlight operations are outstanding; Submit* returns ResourceExhausted
//   beyond that, so memory cannot grow without bound.
// - Short reads are requeued for the remainder; EINTR/EAGAIN are retried; end of file
//   completes the read with the bytes read so far.
// - Timers are IORING_OP_TIMEOUT with a relative delay; expiry is reported as OK.
// - WaitFor(token) blocks for one operation only: completions of others that arrive
//   meanwhile are kept, in order, and their callbacks run from the next RunOnce(). So a
//   caller deep inside synchronous work (a resync walk waiting for socket space) never
//   has unrelated callbacks run under its feet.
// Thread safety: none. One thread owns a Loop and everything it submits.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "base/status.h"
#include "iouring/ring.h"

namespace hasync::iouring {

inline constexpr size_t kMaxInFlight = 1024;
inline constexpr uint64_t kStreamOffset = ~uint64_t{0};
static_assert(kMaxInFlight <= kMaxRingEntries * 4, "in-flight bound near the ring size");

class Loop {
 public:
  // res >= 0 is the operation's result; res < 0 is -errno.
  using Callback = std::function<void(int32_t res)>;
  // Bytes read (≤ requested; fewer only at end of file) or the error.
  using ReadCallback = std::function<void(Result<size_t> bytes)>;
  using TimerCallback = std::function<void()>;

  explicit Loop(Ring ring);

  // Identifies one submitted operation for WaitFor(), valid until its callback ran.
  using Token = uint64_t;

  // Prepares an SQE with `prep` and runs `done` with its result. `token`, if given,
  // receives the operation's token.
  Status Submit(const std::function<void(io_uring_sqe*)>& prep, Callback done,
                Token* token = nullptr);
  // Hands every prepared SQE to the kernel now instead of at the next RunOnce(), so an
  // operation (a send) makes progress while the caller goes on computing.
  Status Flush();
  // Waits up to timeout_ns for the operation `token` and runs its callback; returns
  // Unavailable if it did not complete in time (it stays in flight). Callbacks of
  // other operations that complete meanwhile are deferred to the next RunOnce().
  Status WaitFor(Token token, int64_t timeout_ns);
  // Reads exactly buf.size() bytes at `offset` unless end of file comes first. For a
  // socket or pipe pass kStreamOffset (read at the current position).
  Status ReadFull(int fd, std::span<std::byte> buf, uint64_t offset, ReadCallback done);
  // Runs `fire` once, `delay_ns` from now.
  Status AddTimer(int64_t delay_ns, TimerCallback fire);

  // Waits up to timeout_ns (< 0: forever) for at least one completion, then runs the
  // callbacks of every completion that was ready. Returns how many callbacks ran.
  Result<size_t> RunOnce(int64_t timeout_ns);

  size_t in_flight() const { return in_flight_; }
  Ring& ring() { return ring_; }

 private:
  struct Slot {
    Callback done;
    __kernel_timespec ts{};  // storage for timers: must live until completion
    bool busy = false;
    bool is_timer = false;
  };
  Result<size_t> Acquire(Callback done);
  // Releases the slot of completion `c` and runs its callback.
  void Complete(const Completion& c);
  Status ReadStep(int fd, std::span<std::byte> buf, uint64_t offset, size_t done_bytes,
                  std::shared_ptr<ReadCallback> cb);
  void Requeue(int fd, std::span<std::byte> buf, uint64_t offset, size_t done_bytes,
               const std::shared_ptr<ReadCallback>& cb);

  Ring ring_;
  std::vector<Slot> slots_;
  std::vector<size_t> free_;
  size_t in_flight_ = 0;
  std::vector<Completion> ready_;
  std::vector<Completion> deferred_;  // reaped during WaitFor(), run by the next RunOnce()
  std::vector<Completion> waiting_;   // scratch of WaitFor()
  // While RunOnce() runs callbacks: ready_[running_] is running, the ones after it up
  // to running_end_ are still to run (a WaitFor() from a callback looks there first).
  static constexpr uint64_t kRan = ~uint64_t{0};
  size_t running_ = 0;
  size_t running_end_ = 0;
};

}  // namespace hasync::iouring
