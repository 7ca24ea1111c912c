#include "engine/node/arbiter_worker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <utility>

#include <fmt/format.h>

#include "engine/log.h"
#include "engine/node/now.h"

namespace hasync::engine {

namespace {

constexpr size_t kMaxAnswers = 32;
// Between two warnings about failed requests: etcd down must not flood the log.
constexpr int64_t kWarnEveryNs = 10'000'000'000;

Result<std::string> ReadPassword(const std::string& path) {
  if (path.empty()) return std::string();
  std::ifstream in(path);
  if (!in) return ErrnoStatus(errno, "read arbiter.password_file " + path);
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return InvalidArgument("arbiter.password_file " + path + " is empty");
  return line;
}

}  // namespace

Result<std::unique_ptr<ArbiterWorker>> ArbiterWorker::Start(const Config& config,
                                                            Metrics& metrics) {
  const Config::Arbiter& a = config.arbiter;
  ASSIGN_OR_RETURN(std::string password, ReadPassword(a.password_file));
  ASSIGN_OR_RETURN(std::unique_ptr<arbiter::EtcdClient> client,
                   arbiter::EtcdClient::Create(a, std::move(password)));
  auto arb =
      std::make_unique<arbiter::Arbiter>(std::move(client), a.prefix, config.node.name, a.ttl_s);
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (efd.get() < 0) return ErrnoStatus(errno, "eventfd for the arbiter's answers");
  return std::unique_ptr<ArbiterWorker>(
      new ArbiterWorker(config, metrics, std::move(arb), std::move(efd)));
}

ArbiterWorker::ArbiterWorker(const Config& config, Metrics& metrics,
                             std::unique_ptr<arbiter::Arbiter> arbiter, UniqueFd event_fd)
    : config_(config),
      metrics_(metrics),
      arbiter_(std::move(arbiter)),
      event_fd_(std::move(event_fd)),
      thread_([this] { Main(); }) {
  metrics_.arbiter_configured.store(1, std::memory_order_relaxed);
  snap_.endpoints = arbiter_->client().endpoint_health();
}

ArbiterWorker::~ArbiterWorker() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void ArbiterWorker::NewRun() {
  std::lock_guard lock(mu_);
  ++run_;
  answers_.clear();
}

void ArbiterWorker::Enqueue(Request r) {
  {
    std::lock_guard lock(mu_);
    r.run = run_;
    // One renewal waiting or under way is enough: its answer is this beat's.
    if (r.kind == Request::Kind::kRenew && busy_renewing_) return;
    if (queue_.size() >= kMaxQueued) {
      // Renewals and tries repeat every beat; a release must not be lost to them.
      auto it = std::find_if(queue_.begin(), queue_.end(),
                             [](const Request& q) { return q.kind != Request::Kind::kRelease; });
      if (it == queue_.end()) {
        Log(Level::kError, "arbiter_queue_full").kv("dropped", "request");
        return;
      }
      if (it->kind == Request::Kind::kRenew) busy_renewing_ = false;
      queue_.erase(it);
    }
    if (r.kind == Request::Kind::kRenew) busy_renewing_ = true;
    queue_.push_back(std::move(r));
  }
  wake_.notify_one();
}

void ArbiterWorker::Renew(uint64_t epoch) { Enqueue({Request::Kind::kRenew, epoch, "", 0}); }

void ArbiterWorker::TryAcquire(uint64_t local_epoch) {
  Enqueue({Request::Kind::kAcquire, local_epoch, "", 0});
}

void ArbiterWorker::Release(std::string why) {
  Enqueue({Request::Kind::kRelease, 0, std::move(why), 0});
}

std::vector<ArbiterWorker::Event> ArbiterWorker::TakeAnswers() {
  std::vector<Event> out;
  std::lock_guard lock(mu_);
  for (auto& [run, event] : answers_) {
    if (run == run_) out.push_back(std::move(event));
  }
  answers_.clear();
  return out;
}

std::vector<ArbiterWorker::Event> ArbiterWorker::AcquireAtStart(
    uint64_t epoch, int64_t deadline_ns, int64_t retry_ns, const std::function<void()>& between) {
  // One try's requests are each bounded by the request timeout; a margin over six of them.
  const auto try_bound = std::chrono::milliseconds(7 * config_.arbiter.request_timeout_ms + 1000);
  std::vector<Event> last;
  for (int tries = 0;; ++tries) {
    {
      std::unique_lock lock(mu_);
      start_done_ = false;
      queue_.push_back({Request::Kind::kStart, epoch, "", run_});
      wake_.notify_one();
      if (!done_.wait_for(lock, try_bound, [this] { return start_done_; })) {
        // Cannot happen while the client keeps its bound; never wait for ever.
        Log(Level::kError, "arbiter_start").kv("error", "the arbiter's thread did not answer");
        return {};
      }
      last = std::move(start_answer_);
    }
    for (const Event& e : last) {
      if (std::holds_alternative<failover::in::ArbiterRenewed>(e) ||
          std::holds_alternative<failover::in::ArbiterEpoch>(e)) {
        return last;  // acquired, or deposed
      }
    }
    if (NowNs() + retry_ns >= deadline_ns) return last;
    if (between) between();
    const int64_t until = NowNs() + retry_ns;
    while (NowNs() < until) {
      ::usleep(static_cast<useconds_t>(std::min<int64_t>(until - NowNs(), 50'000'000) / 1000));
      if (between) between();
    }
    (void)tries;
  }
}

void ArbiterWorker::Main() {
  for (;;) {
    Request r;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) {
        // Releases still waiting are carried out (bounded: at most kMaxQueued); the rest
        // is dropped.
        while (!queue_.empty() && queue_.front().kind != Request::Kind::kRelease) {
          queue_.pop_front();
        }
        if (queue_.empty()) return;
      }
      r = std::move(queue_.front());
      queue_.pop_front();
    }
    std::vector<Event> events = Carry(r);
    if (r.kind == Request::Kind::kStart) {
      {
        std::lock_guard lock(mu_);
        start_answer_ = std::move(events);
        start_done_ = true;
      }
      done_.notify_all();
      continue;
    }
    if (r.kind == Request::Kind::kRenew) {
      std::lock_guard lock(mu_);
      busy_renewing_ = false;
    }
    if (!events.empty()) Answer(r.run, std::move(events));
  }
}

void ArbiterWorker::Answer(uint64_t run, std::vector<Event> events) {
  {
    std::lock_guard lock(mu_);
    if (run != run_) return;  // asked by a run that has ended
    for (Event& e : events) {
      if (answers_.size() >= kMaxAnswers) answers_.pop_front();
      answers_.emplace_back(run, std::move(e));
    }
  }
  const uint64_t one = 1;
  // A full counter (2^64 - 2) cannot happen: the loop reads it down to zero each time.
  (void)!::write(event_fd_.get(), &one, sizeof one);
}

std::vector<ArbiterWorker::Event> ArbiterWorker::Carry(const Request& r) {
  namespace in = failover::in;
  std::vector<Event> out;
  switch (r.kind) {
    case Request::Kind::kRenew: {
      Result<arbiter::Renewal> got = arbiter_->Renew(r.epoch);
      Record(got.status());
      if (!got.ok()) break;  // nothing: the controller's deadline decides
      std::lock_guard lock(snap_mu_);
      snap_.etcd_epoch = std::max(snap_.etcd_epoch, got->etcd_epoch);
      switch (got->kind) {
        case arbiter::Renewal::Kind::kRenewed:
          snap_.leader = config_.node.name;
          snap_.leader_known = true;
          snap_.renewed_sent_ns = got->sent_ns;
          out.emplace_back(in::ArbiterRenewed{got->sent_ns});
          out.emplace_back(in::ArbiterEpoch{got->etcd_epoch});
          break;
        case arbiter::Renewal::Kind::kLost:
          snap_.leader_known = false;
          Log(Level::kWarn, "arbiter_lost").kv("reason", got->why);
          out.emplace_back(in::ArbiterLost{got->why});
          break;
        case arbiter::Renewal::Kind::kHigherEpoch:
          Log(Level::kWarn, "arbiter_epoch").kv("reason", got->why);
          out.emplace_back(in::ArbiterEpoch{got->etcd_epoch});
          break;
      }
      break;
    }
    case Request::Kind::kAcquire:
    case Request::Kind::kStart: {
      const bool bump = r.kind == Request::Kind::kAcquire;
      Result<arbiter::Acquisition> got = arbiter_->Acquire(r.epoch, bump);
      Record(got.status());
      if (!got.ok()) {
        if (bump) out.emplace_back(in::ArbiterUnreachable{got.status().ToString()});
        break;
      }
      std::lock_guard lock(snap_mu_);
      snap_.etcd_epoch = std::max(snap_.etcd_epoch, got->epoch);
      switch (got->kind) {
        case arbiter::Acquisition::Kind::kAcquired:
          snap_.leader = config_.node.name;
          snap_.leader_known = true;
          snap_.renewed_sent_ns = got->sent_ns;
          if (bump) {
            out.emplace_back(in::ArbiterAcquired{got->epoch, got->sent_ns});
          } else {
            out.emplace_back(in::ArbiterRenewed{got->sent_ns});
            out.emplace_back(in::ArbiterEpoch{got->epoch});
          }
          break;
        case arbiter::Acquisition::Kind::kHeld:
          snap_.leader = got->holder;
          snap_.leader_known = true;
          if (bump) {
            out.emplace_back(in::ArbiterHeld{got->holder, got->epoch});
          } else {
            out.emplace_back(in::ArbiterLost{
                fmt::format("the leader key is held by {} at epoch {}",
                            got->holder.empty() ? "another node" : got->holder, got->epoch)});
          }
          break;
        case arbiter::Acquisition::Kind::kHigherEpoch:
          out.emplace_back(in::ArbiterEpoch{got->epoch});
          break;
      }
      break;
    }
    case Request::Kind::kRelease: {
      Status st = arbiter_->Release();
      Record(st);
      Log(st.ok() ? Level::kInfo : Level::kWarn, "arbiter_release")
          .kv("reason", r.why)
          .kv("result", st.ok() ? std::string("released") : st.ToString());
      if (st.ok()) {
        std::lock_guard lock(snap_mu_);
        if (snap_.leader == config_.node.name) snap_.leader_known = false;
      }
      break;
    }
  }
  Publish();
  return out;
}

void ArbiterWorker::Record(const Status& st) {
  const int64_t now = NowNs();
  bool warn = false;
  {
    std::lock_guard lock(snap_mu_);
    ++snap_.requests;
    snap_.endpoints = arbiter_->client().endpoint_health();
    snap_.current_endpoint = arbiter_->client().current_endpoint();
    snap_.lease_id = arbiter_->lease_id();
    // An answer etcd gave (even a refusal) says it is there; only kUnavailable says not.
    if (st.ok() || st.code() != Code::kUnavailable) snap_.last_answer_ns = now;
    if (!st.ok()) {
      ++snap_.failures;
      snap_.last_error = st.ToString();
      if (now - last_warn_ns_ >= kWarnEveryNs) {
        last_warn_ns_ = now;
        warn = true;
      }
    }
  }
  metrics_.arbiter_requests.fetch_add(1, std::memory_order_relaxed);
  if (!st.ok()) {
    metrics_.arbiter_request_failures.fetch_add(1, std::memory_order_relaxed);
    if (warn) Log(Level::kWarn, "arbiter_request").kv("error", st.ToString());
  }
}

void ArbiterWorker::Publish() {
  const int64_t now = NowNs();
  std::lock_guard lock(snap_mu_);
  int64_t up = 0;
  for (const auto& e : snap_.endpoints) {
    if (e.state == arbiter::EtcdClient::EndpointHealth::State::kAnswered) ++up;
  }
  metrics_.arbiter_endpoints_up.store(up, std::memory_order_relaxed);
  metrics_.arbiter_epoch.store(static_cast<int64_t>(snap_.etcd_epoch), std::memory_order_relaxed);
  const bool mine = snap_.leader_known && snap_.leader == config_.node.name && snap_.lease_id != 0;
  metrics_.arbiter_leader.store(mine ? 1 : 0, std::memory_order_relaxed);
  const int64_t left_ms =
      mine
          ? std::max<int64_t>(
                0, (snap_.renewed_sent_ns + config_.arbiter.ttl_ms() * 1'000'000 - now) / 1'000'000)
          : 0;
  metrics_.arbiter_lease_remaining_ms.store(left_ms, std::memory_order_relaxed);
}

ArbiterWorker::Snapshot ArbiterWorker::snapshot() const {
  std::lock_guard lock(snap_mu_);
  return snap_;
}

}  // namespace hasync::engine
