// The standby's background commit thread; see committer.h.
#include "engine/sync/committer.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>
#include <utility>

#include "base/assert.h"

namespace hasync::engine {

Result<std::unique_ptr<Committer>> Committer::Create() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "eventfd for the committer");
  std::unique_ptr<Committer> c(new Committer(std::move(fd)));
  try {
    c->thread_ = std::thread([raw = c.get()] { raw->Main(); });
  } catch (const std::system_error& e) {
    return ErrnoStatus(e.code().value(), "start the committer thread");
  }
  return c;
}

Committer::Committer(UniqueFd event_fd) : event_fd_(std::move(event_fd)) {}

Committer::~Committer() {
  {
    std::unique_lock lock(mu_);
    // A running job finishes first: a commit is never cut short.
    cv_.wait(lock, [this] { return !job_.has_value(); });
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Committer::Start(Job job) {
  HASYNC_ASSERT(!busy_);
  {
    std::lock_guard lock(mu_);
    result_.reset();
    job_ = std::move(job);
  }
  busy_ = true;
  cv_.notify_all();
}

bool Committer::done() const {
  std::lock_guard lock(mu_);
  return result_.has_value();
}

Status Committer::Wait() {
  if (!busy_) return Status::Ok();
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return result_.has_value(); });
  Status s = std::move(*result_);
  result_.reset();
  busy_ = false;
  return s;
}

void Committer::Main() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || job_.has_value(); });
    if (!job_.has_value()) return;  // stop_ and nothing to run
    Job job = std::move(*job_);
    lock.unlock();
    Status s = job();
    lock.lock();
    job_.reset();
    result_ = std::move(s);
    cv_.notify_all();
    uint64_t one = 1;
    // Only the wakeup can fail (the counter cannot overflow at one per job); a Wait()
    // from the owner still sees the result.
    [[maybe_unused]] ssize_t n = ::write(event_fd_.get(), &one, sizeof one);
  }
}

}  // namespace hasync::engine
