// ArbiterWorker: the node's arbiter thread (docs/FAILOVER.md "The arbiter"). It owns
// arbiter::Arbiter, whose calls block on etcd (each request bounded by
// arbiter.request_timeout_ms), and carries out the failover controller's RenewLease,
// TryAcquire and ReleaseLease off the node's loop: the loop posts a request, the thread
// runs it, queues the answer as the controller's inputs and counts an eventfd the loop
// reads (event_fd) before it takes them (TakeAnswers).
//
// It lives as long as `hasync run` (RunNode), across the node's restarts in a new role:
// the lease a standby won is the lease of the primary it then starts as. Every answer
// carries the run (NewRun) that asked; a later run never sees an earlier run's answers.
//
// Bounds: at most kMaxQueued requests wait; a renewal is not queued while another waits
// or runs (the controller asks every beat, and one answer per beat is all it uses).
// Answers are bounded the same way. The destructor waits for the call under way (bounded
// by its requests' timeouts) and carries out queued releases, not renewals: a lease given
// back lets the standby in at once instead of a TTL later.
//
// Threading: every public call on the loop's thread (AcquireAtStart before the loop
// runs); the arbiter itself only on the worker's thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/arbiter/arbiter.h"
#include "engine/config.h"
#include "engine/failover/controller.h"
#include "engine/node/metrics.h"

namespace hasync::engine {

class ArbiterWorker {
 public:
  using Event = decltype(failover::Input::event);
  static constexpr size_t kMaxQueued = 8;

  // Reads the password file (first line), makes the etcd client and starts the thread.
  static Result<std::unique_ptr<ArbiterWorker>> Start(const Config& config, Metrics& metrics);
  ~ArbiterWorker();
  ArbiterWorker(const ArbiterWorker&) = delete;
  ArbiterWorker& operator=(const ArbiterWorker&) = delete;

  // Readable (an 8-byte count) when answers wait.
  int event_fd() const { return event_fd_.get(); }
  // A node's run begins: what earlier runs asked is answered to nobody.
  void NewRun();

  // The controller's actions.
  void Renew(uint64_t epoch);
  void TryAcquire(uint64_t local_epoch);
  void Release(std::string why);
  // The answers of this run, oldest first.
  std::vector<Event> TakeAnswers();

  // A primary's start: Acquire(epoch, no bump) on the thread, waited for here. Tries again
  // every `retry_ns` while etcd cannot be asked or another node holds the key, until
  // `deadline_ns` (the lease of a previous holder runs out within a TTL); `between` runs
  // between tries (the service manager's watchdog). The inputs to feed the controller
  // before its first tick: ArbiterRenewed with the acquisition's send time (and
  // ArbiterEpoch), ArbiterEpoch above the node's (deposed), ArbiterLost (held by another
  // node until the deadline), or none (etcd could not be asked: the first tick demotes).
  std::vector<Event> AcquireAtStart(uint64_t epoch, int64_t deadline_ns, int64_t retry_ns,
                                    const std::function<void()>& between);

  // What `hasync status` shows.
  struct Snapshot {
    std::vector<arbiter::EtcdClient::EndpointHealth> endpoints;
    std::string current_endpoint;
    std::string leader;           // the leader key's holder as last read ("" unknown / none)
    bool leader_known = false;    // a read (renewal, acquisition) said who holds it
    uint64_t etcd_epoch = 0;      // as last read
    int64_t lease_id = 0;         // this node's (0: none)
    int64_t renewed_sent_ns = 0;  // send time of the last good renewal or acquisition
    int64_t last_answer_ns = 0;   // etcd last answered a request
    std::string last_error;       // of the last request that failed
    uint64_t requests = 0;
    uint64_t failures = 0;
  };
  Snapshot snapshot() const;

 private:
  struct Request {
    enum class Kind { kRenew, kAcquire, kStart, kRelease } kind = Kind::kRenew;
    uint64_t epoch = 0;
    std::string why;
    uint64_t run = 0;
  };
  ArbiterWorker(const Config& config, Metrics& metrics, std::unique_ptr<arbiter::Arbiter> arbiter,
                UniqueFd event_fd);
  void Main();
  void Enqueue(Request r);
  // On the thread: runs one request, returns the controller's inputs it answers with.
  std::vector<Event> Carry(const Request& r);
  void Answer(uint64_t run, std::vector<Event> events);
  void Record(const Status& st);  // under no lock; takes snap_mu_
  void Publish();                 // the snapshot's figures into metrics_

  const Config& config_;
  Metrics& metrics_;
  std::unique_ptr<arbiter::Arbiter> arbiter_;  // the thread's only
  UniqueFd event_fd_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;  // a kStart request was answered
  std::deque<Request> queue_;
  bool busy_renewing_ = false;  // a renewal waits or runs
  bool stopping_ = false;
  uint64_t run_ = 0;
  std::deque<std::pair<uint64_t, Event>> answers_;
  std::vector<Event> start_answer_;
  bool start_done_ = false;

  mutable std::mutex snap_mu_;
  Snapshot snap_;
  int64_t last_warn_ns_ = INT64_MIN / 2;  // the last failed request logged

  std::thread thread_;  // last: starts after everything it uses
};

}  // namespace hasync::engine
