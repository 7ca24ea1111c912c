// Committer: one background thread that runs a batch's commit (engine/apply Batch::Commit:
// temps durable, published in order, directories durable) while the standby's loop goes
// on receiving and staging the next batch. It signals an eventfd when the job is done,
// so the loop emits that batch's ACK (or NACK) at once (docs/APPLY.md, "Pipelined
// commit").
//
// Contract:
// - At most one job at a time: Start() only when !busy(). The job runs to its end on the
//   thread; nothing cancels it (a commit is never abandoned halfway by this class).
// - Wait() blocks until the started job finished and returns its Status; busy() is false
//   after. Wait() without a job returns OK at once.
// - event_fd() becomes readable (counter > 0) each time a job finishes; the loop reads it
//   and calls Wait(), which then does not block. A Wait() that came first leaves the
//   counter set: a late read finds nothing busy, and that is fine.
// - The destructor waits for a running job, then stops the thread.
// Thread safety: Start, Wait, busy, done from one owner thread; the job runs on the
// committer's thread. Everything the job touches is handed over by Start and taken back
// by Wait (the mutex orders both).
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "base/status.h"
#include "base/unique_fd.h"

namespace hasync::engine {

class Committer {
 public:
  using Job = std::function<Status()>;

  // Internal (errno text) when the eventfd or the thread cannot be made.
  static Result<std::unique_ptr<Committer>> Create();
  ~Committer();
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  void Start(Job job);
  Status Wait();
  bool busy() const { return busy_; }
  // The started job finished (Wait would not block).
  bool done() const;
  int event_fd() const { return event_fd_.get(); }

 private:
  explicit Committer(UniqueFd event_fd);
  void Main();

  UniqueFd event_fd_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Job> job_;        // handed to the thread, guarded by mu_
  std::optional<Status> result_;  // the finished job's, guarded by mu_
  bool stop_ = false;             // guarded by mu_
  bool busy_ = false;             // owner thread only
  std::thread thread_;
};

}  // namespace hasync::engine
