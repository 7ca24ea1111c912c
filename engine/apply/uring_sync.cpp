// Concurrent fsyncs through io_uring; see uring_sync.h.
#include "engine/apply/uring_sync.h"

#include <liburing.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <vector>

namespace hasync::engine::apply {

Result<std::unique_ptr<UringFsOps>> UringFsOps::Create(unsigned entries) {
  ASSIGN_OR_RETURN(iouring::Ring ring, iouring::Ring::Create(entries));
  return std::unique_ptr<UringFsOps>(new UringFsOps(std::move(ring)));
}

int UringFsOps::SyncAll(std::span<const int> fds, size_t* failed) {
  const size_t window = ring_.sq_entries();
  size_t first_failed = std::numeric_limits<size_t>::max();
  int first_err = 0;
  std::vector<iouring::Completion> done;
  // One pass per window of at most `window` fsyncs.
  for (size_t base = 0; base < fds.size(); base += window) {
    size_t count = std::min(window, fds.size() - base);
    for (size_t i = 0; i < count; ++i) {
      Result<io_uring_sqe*> sqe = ring_.GetSqe();
      if (!sqe.ok()) {
        // Cannot queue: fsync the rest of this window directly rather than skip it.
        for (size_t j = i; j < count; ++j) {
          int err = Fsync(fds[base + j]);
          if (err != 0 && base + j < first_failed) {
            first_failed = base + j;
            first_err = err;
          }
        }
        count = i;
        break;
      }
      io_uring_prep_fsync(*sqe, fds[base + i], 0);
      io_uring_sqe_set_data64(*sqe, base + i);
    }
    size_t reaped = 0;
    // Each pass reaps at least one completion or returns; the window bounds the passes.
    for (size_t pass = 0; reaped < count && pass <= count; ++pass) {
      done.clear();
      Result<size_t> n =
          ring_.Reap(done, static_cast<unsigned>(count - reaped), /*timeout_ns=*/-1, count);
      if (!n.ok()) {
        *failed = base;
        return EIO;  // the ring itself broke: nothing in this window is known durable
      }
      for (const iouring::Completion& c : done) {
        if (c.res < 0 && c.user_data < first_failed) {
          first_failed = c.user_data;
          first_err = -c.res;
        }
      }
      reaped += *n;
    }
    if (reaped < count) {
      *failed = base;
      return EIO;
    }
  }
  if (first_err != 0) {
    *failed = first_failed;
    return first_err;
  }
  return 0;
}

}  // namespace hasync::engine::apply
