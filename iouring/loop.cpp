#include "iouring/loop.h"

#include <cerrno>
#include <ctime>
#include <memory>
#include <optional>
#include <string>

namespace hasync::iouring {

Loop::Loop(Ring ring) : ring_(std::move(ring)), slots_(kMaxInFlight) {
  HASYNC_ASSERT(ring_.valid());
  free_.reserve(kMaxInFlight);
  for (size_t i = kMaxInFlight; i > 0; --i) free_.push_back(i - 1);
  ready_.reserve(kMaxRingEntries);
}

Result<size_t> Loop::Acquire(Callback done) {
  if (free_.empty()) {
    return Status(Code::kResourceExhausted,
                  "io_uring loop has " + std::to_string(kMaxInFlight) + " operations in flight");
  }
  size_t idx = free_.back();
  free_.pop_back();
  Slot& slot = slots_[idx];
  HASYNC_ASSERT(!slot.busy);
  slot.busy = true;
  slot.done = std::move(done);
  ++in_flight_;
  return idx;
}

Status Loop::Submit(const std::function<void(io_uring_sqe*)>& prep, Callback done, Token* token) {
  ASSIGN_OR_RETURN(size_t idx, Acquire(std::move(done)));
  auto sqe = ring_.GetSqe();
  if (!sqe.ok()) {
    slots_[idx] = Slot{};
    free_.push_back(idx);
    --in_flight_;
    return sqe.status();
  }
  prep(*sqe);
  io_uring_sqe_set_data64(*sqe, idx);
  if (token != nullptr) *token = idx;
  return Status::Ok();
}

Status Loop::Flush() {
  auto n = ring_.Submit();
  return n.ok() ? Status::Ok() : n.status();
}

Status Loop::AddTimer(int64_t delay_ns, TimerCallback fire) {
  HASYNC_ASSERT(delay_ns >= 0);
  ASSIGN_OR_RETURN(size_t idx, Acquire([fire = std::move(fire)](int32_t) { fire(); }));
  auto sqe = ring_.GetSqe();
  if (!sqe.ok()) {
    slots_[idx] = Slot{};
    free_.push_back(idx);
    --in_flight_;
    return sqe.status();
  }
  Slot& slot = slots_[idx];
  slot.is_timer = true;
  slot.ts.tv_sec = delay_ns / 1'000'000'000;
  slot.ts.tv_nsec = delay_ns % 1'000'000'000;
  io_uring_prep_timeout(*sqe, &slot.ts, 0, 0);
  io_uring_sqe_set_data64(*sqe, idx);
  return Status::Ok();
}

Status Loop::ReadFull(int fd, std::span<std::byte> buf, uint64_t offset, ReadCallback done) {
  return ReadStep(fd, buf, offset, 0, std::make_shared<ReadCallback>(std::move(done)));
}

Status Loop::ReadStep(int fd, std::span<std::byte> buf, uint64_t offset, size_t done_bytes,
                      std::shared_ptr<ReadCallback> cb) {
  std::span<std::byte> rest = buf.subspan(done_bytes);
  return Submit(
      [&](io_uring_sqe* sqe) {
        io_uring_prep_read(sqe, fd, rest.data(), static_cast<unsigned>(rest.size()),
                           offset == kStreamOffset ? offset : offset + done_bytes);
      },
      [this, fd, buf, offset, done_bytes, cb](int32_t res) {
        if (res == -EINTR || res == -EAGAIN) {
          Requeue(fd, buf, offset, done_bytes, cb);
          return;
        }
        if (res < 0) {
          (*cb)(ErrnoStatus(-res, "io_uring read fd " + std::to_string(fd)));
          return;
        }
        size_t total = done_bytes + static_cast<size_t>(res);
        if (res == 0 || total == buf.size()) {
          (*cb)(total);
          return;
        }
        Requeue(fd, buf, offset, total, cb);  // short read: the remainder goes again
      });
}

void Loop::Requeue(int fd, std::span<std::byte> buf, uint64_t offset, size_t done_bytes,
                   const std::shared_ptr<ReadCallback>& cb) {
  Status s = ReadStep(fd, buf, offset, done_bytes, cb);
  if (!s.ok()) (*cb)(s.Annotate("requeue short read"));
}

void Loop::Complete(const Completion& c) {
  size_t idx = static_cast<size_t>(c.user_data);
  HASYNC_ASSERT(idx < slots_.size() && slots_[idx].busy);
  Callback done = std::move(slots_[idx].done);
  bool is_timer = slots_[idx].is_timer;
  slots_[idx] = Slot{};
  free_.push_back(idx);
  --in_flight_;
  int32_t res = (is_timer && c.res == -ETIME) ? 0 : c.res;  // a timer that fired is OK
  done(res);
}

Status Loop::WaitFor(Token token, int64_t timeout_ns) {
  HASYNC_ASSERT(token < slots_.size());
  // Reaped already, by the RunOnce() whose callback is waiting or by an earlier WaitFor()?
  for (size_t i = running_ + 1; i < running_end_; ++i) {
    if (ready_[i].user_data == token) {
      Completion c = ready_[i];
      ready_[i].user_data = kRan;
      Complete(c);
      return Status::Ok();
    }
  }
  for (size_t i = 0; i < deferred_.size(); ++i) {
    if (deferred_[i].user_data == token) {
      Completion c = deferred_[i];
      deferred_.erase(deferred_.begin() + static_cast<std::ptrdiff_t>(i));
      Complete(c);
      return Status::Ok();
    }
  }
  HASYNC_ASSERT(slots_[token].busy);
  timespec start{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  auto elapsed_ns = [&start] {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start.tv_sec) * 1'000'000'000LL + (now.tv_nsec - start.tv_nsec);
  };
  for (;;) {
    int64_t left = timeout_ns - elapsed_ns();
    if (left <= 0) {
      return Status(Code::kUnavailable, "io_uring operation did not complete in " +
                                            std::to_string(timeout_ns / 1'000'000) + " ms");
    }
    waiting_.clear();
    ASSIGN_OR_RETURN(size_t n, ring_.Reap(waiting_, 1, left));
    std::optional<Completion> mine;
    for (size_t i = 0; i < n; ++i) {
      if (waiting_[i].user_data == token) {
        mine = waiting_[i];
      } else {
        deferred_.push_back(waiting_[i]);  // bounded: at most kMaxInFlight are in flight
      }
    }
    if (mine) {
      Complete(*mine);
      return Status::Ok();
    }
  }
}

Result<size_t> Loop::RunOnce(int64_t timeout_ns) {
  ready_.clear();
  ready_.swap(deferred_);  // completions WaitFor() kept back run first, in order
  size_t kept = ready_.size();
  unsigned wait_nr = (kept == 0 && in_flight_ > 0) ? 1u : 0u;
  ASSIGN_OR_RETURN(size_t n, ring_.Reap(ready_, wait_nr, kept == 0 ? timeout_ns : 0));
  n += kept;
  // Callbacks run only after the CQ walk is finished; they may submit more work.
  size_t ran = 0;
  running_end_ = n;
  for (running_ = 0; running_ < n; ++running_) {
    if (ready_[running_].user_data == kRan) continue;  // a WaitFor() ran it already
    Complete(ready_[running_]);
    ++ran;
  }
  running_ = running_end_ = 0;
  return ran;
}

}  // namespace hasync::iouring
