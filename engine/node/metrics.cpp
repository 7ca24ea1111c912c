#include "engine/node/metrics.h"

#include <httplib.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "engine/log.h"
#include "engine/node/state.h"
#include "lockwin/window.h"

#ifndef HASYNC_VERSION
#define HASYNC_VERSION "unknown"
#endif

namespace hasync::engine {

namespace {

constexpr std::array<std::string_view, static_cast<size_t>(HookKind::kCount)> kHookNames = {
    "on_promote", "on_demote", "fence", "quorum_check", "promote_guard", "probe"};

uint64_t Load(const Metrics::Counter& c) { return c.load(std::memory_order_relaxed); }
int64_t Load(const Metrics::Gauge& g) { return g.load(std::memory_order_relaxed); }

class Writer {
 public:
  void Header(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                   type);
  }
  template <typename T>
  void Sample(std::string_view name, T value, std::string_view labels = {}) {
    if (labels.empty()) {
      fmt::format_to(std::back_inserter(out_), "{} {}\n", name, value);
    } else {
      fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, labels, value);
    }
  }
  template <typename T>
  void One(std::string_view name, std::string_view type, std::string_view help, T value) {
    Header(name, type, help);
    Sample(name, value);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string_view HookKindName(HookKind kind) {
  return kind < HookKind::kCount ? kHookNames[static_cast<size_t>(kind)] : "unknown";
}

HookKind HookKindFromName(std::string_view name) {
  for (size_t i = 0; i < kHookNames.size(); ++i) {
    if (kHookNames[i] == name) return static_cast<HookKind>(i);
  }
  return HookKind::kCount;
}

Metrics::Metrics()
    : start_unix_s_(std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count()) {}

void Metrics::ObserveLagNs(int64_t ns) {
  if (ns < 0) ns = 0;
  const double s = static_cast<double>(ns) / 1e9;
  size_t i = 0;
  while (i < kLagBucketsSeconds.size() && s > kLagBucketsSeconds[i]) ++i;
  lag_buckets_[i].fetch_add(1, std::memory_order_relaxed);
  lag_sum_ns_.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
}

void Metrics::CountHook(HookKind kind, bool ok) {
  if (kind >= HookKind::kCount) return;
  hook_runs[static_cast<size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
  if (!ok) hook_failures[static_cast<size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
}

std::string Metrics::Render() const {
  Writer w;
  w.Header("hasync_build_info", "gauge", "Always 1; the version label says which hasync runs.");
  w.Sample("hasync_build_info", 1, fmt::format("version=\"{}\"", HASYNC_VERSION));
  w.One("hasync_start_time_seconds", "gauge", "Unix time the process started.", start_unix_s_);

  const int64_t role_now = Load(role);
  w.Header("hasync_role", "gauge", "1 for the role this node has now, 0 for the other.");
  for (NodeRole r : {NodeRole::kPrimary, NodeRole::kStandby}) {
    w.Sample("hasync_role", role_now == static_cast<int64_t>(r) ? 1 : 0,
             fmt::format("role=\"{}\"", NodeRoleName(r)));
  }
  w.One("hasync_epoch", "gauge", "The node's epoch (raised by every promotion).", Load(epoch));
  w.One("hasync_changing_role", "gauge", "1 while the node restarts in a new role.",
        Load(changing_role));
  w.One("hasync_role_changes_total", "counter", "Role changes since the process started.",
        Load(role_changes));
  w.One("hasync_peer_connected", "gauge", "1 while a replication session with the peer is open.",
        Load(peer_connected));
  w.One("hasync_sessions_opened_total", "counter",
        "Replication sessions that completed their handshake.", Load(sessions_opened));
  w.One("hasync_handshake_failures_total", "counter",
        "Connections dropped before their handshake finished (wrong key, timeout, refusal).",
        Load(handshake_failures));
  w.One("hasync_quarantined_files", "gauge",
        "Files kept under <state_dir>/quarantine (all epochs) for review.",
        Load(quarantined_files));

  w.Header("hasync_hook_runs_total", "counter", "Hook and probe runs.");
  for (size_t i = 0; i < kHookNames.size(); ++i) {
    w.Sample("hasync_hook_runs_total", Load(hook_runs[i]),
             fmt::format("hook=\"{}\"", kHookNames[i]));
  }
  w.Header("hasync_hook_failures_total", "counter",
           "Hook and probe runs that failed (non-zero exit, signal or timeout).");
  for (size_t i = 0; i < kHookNames.size(); ++i) {
    w.Sample("hasync_hook_failures_total", Load(hook_failures[i]),
             fmt::format("hook=\"{}\"", kHookNames[i]));
  }

  w.One("hasync_lock_records_sent_total", "counter", "Lock records sent (primary).",
        Load(lock_records_sent));
  w.One("hasync_lock_records_received_total", "counter",
        "Lock records received from the primary (standby): its beats.",
        Load(lock_records_received));
  const int64_t v = Load(verdict);
  w.Header("hasync_verdict", "gauge",
           "Standby: 1 for the failure detector's verdict on the primary now; all 0 on a primary.");
  for (auto kind :
       {lockwin::Verdict::kAlive, lockwin::Verdict::kStalled, lockwin::Verdict::kSilent}) {
    w.Sample("hasync_verdict", v == static_cast<int64_t>(kind) ? 1 : 0,
             fmt::format("verdict=\"{}\"", lockwin::VerdictName(kind)));
  }

  w.One("hasync_sent_files_total", "counter", "File versions sent (primary).", Load(files_sent));
  w.One("hasync_sent_bytes_total", "counter", "File content bytes sent (primary).",
        Load(bytes_sent));
  w.One("hasync_batches_acked_total", "counter",
        "Batches the standby acknowledged as durable (primary).", Load(batches_acked));
  w.One("hasync_applied_files_total", "counter", "File versions applied durably (standby).",
        Load(files_applied));
  w.One("hasync_applied_bytes_total", "counter", "File content bytes applied (standby).",
        Load(bytes_applied));
  w.One("hasync_batches_applied_total", "counter",
        "Batches made durable and acknowledged (standby).", Load(batches_applied));
  w.One("hasync_journal_pending", "gauge", "Changes waiting in the primary's journal.",
        Load(journal_pending));
  w.One("hasync_unacked_changes", "gauge",
        "Changes sent to the standby and not yet acknowledged durable.", Load(unacked_changes));
  w.One("hasync_unacked_batches", "gauge", "Committed batches awaiting their durable ACK.",
        Load(unacked_batches));
  w.One("hasync_divergences_found_total", "counter",
        "Differences between the primary's and the standby's trees found by anti-entropy "
        "passes and `hasync verify` (primary).",
        Load(divergences_found));
  w.One("hasync_divergences_repaired_total", "counter",
        "Differences a repair was queued for (primary).", Load(divergences_repaired));
  {
    const int64_t last = Load(antientropy_last_pass_unix_s);
    const int64_t now_s = static_cast<int64_t>(::time(nullptr));
    w.One("hasync_antientropy_last_pass_age_seconds", "gauge",
          "Seconds since the last complete anti-entropy pass ended (since the process "
          "started when none has yet).",
          now_s - (last != 0 ? last : start_unix_s_));
  }
  w.One("hasync_overflow_rescans_total", "counter",
        "Times changes were too many to track one by one and a rescan replaced them.",
        Load(overflow_rescans));

  w.One("hasync_arbiter_configured", "gauge", "1 when an [arbiter] (etcd) is configured.",
        Load(arbiter_configured));
  w.One("hasync_arbiter_endpoints_up", "gauge",
        "Etcd members whose last request from this node was answered.", Load(arbiter_endpoints_up));
  w.One("hasync_arbiter_leader", "gauge",
        "1 while this node holds the arbiter's leader key (as last read from etcd).",
        Load(arbiter_leader));
  w.One("hasync_arbiter_epoch", "gauge", "The epoch held in etcd, as last read.",
        Load(arbiter_epoch));
  w.One("hasync_arbiter_lease_remaining_seconds", "gauge",
        "How long this node's etcd lease lives at least, from the send time of its last good "
        "renewal (0 when it holds none).",
        static_cast<double>(Load(arbiter_lease_remaining_ms)) / 1000.0);
  w.One("hasync_arbiter_requests_total", "counter", "Calls to etcd (each may try several members).",
        Load(arbiter_requests));
  w.One("hasync_arbiter_request_failures_total", "counter",
        "Calls to etcd that failed (no member answered, or etcd refused).",
        Load(arbiter_request_failures));

  w.Header("hasync_replication_lag_seconds", "histogram",
           "Primary: from a batch's first change to the standby's durable ACK of the batch.");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < lag_buckets_.size(); ++i) {
    cumulative += Load(lag_buckets_[i]);
    std::string le =
        i < kLagBucketsSeconds.size() ? fmt::format("{}", kLagBucketsSeconds[i]) : "+Inf";
    w.Sample("hasync_replication_lag_seconds_bucket", cumulative, fmt::format("le=\"{}\"", le));
  }
  w.Sample("hasync_replication_lag_seconds_sum", static_cast<double>(Load(lag_sum_ns_)) / 1e9);
  w.Sample("hasync_replication_lag_seconds_count", cumulative);
  return w.Take();
}

// ---- the HTTP endpoint ----------------------------------------------------------------------

struct MetricsServer::Impl {
  httplib::Server server;
  std::thread thread;
};

MetricsServer::MetricsServer(const Metrics& metrics) : metrics_(metrics) {}

MetricsServer::~MetricsServer() { Stop(); }

Status MetricsServer::Start(const HostPort& listen) {
  if (impl_) return FailedPrecondition("the metrics server runs already");
  auto impl = std::make_unique<Impl>();
  httplib::Server& s = impl->server;
  s.new_task_queue = [] { return new httplib::ThreadPool(2); };
  s.set_payload_max_length(1024);
  s.set_read_timeout(5, 0);
  s.set_write_timeout(5, 0);
  s.set_keep_alive_max_count(16);
  s.set_keep_alive_timeout(5);
  // SO_REUSEADDR only: the library's default adds SO_REUSEPORT, with which a second
  // node (or anything else) could bind the same port and take half the scrapes.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  const Metrics* m = &metrics_;
  s.Get("/metrics", [m](const httplib::Request&, httplib::Response& res) {
    res.set_content(m->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("hasync: metrics at /metrics\n", "text/plain; charset=utf-8");
  });
  errno = 0;
  const int port = listen.port == 0                           ? s.bind_to_any_port(listen.host)
                   : s.bind_to_port(listen.host, listen.port) ? listen.port
                                                              : -1;
  if (port < 0) {
    return Unavailable(
        fmt::format("metrics: cannot listen on {} ({}): set [metrics] listen to a "
                    "free address or enabled = false",
                    listen.ToString(), std::strerror(errno)));
  }
  port_ = port;
  impl->thread = std::thread([srv = &impl->server] { srv->listen_after_bind(); });
  // stop() does nothing to a server not yet running: wait (bounded) until it runs, so
  // Stop() cannot race with the start and leave the thread serving forever.
  for (int i = 0; i < 2000 && !s.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!s.is_running()) {
    s.stop();
    // Still starting after 2 s: neither join it nor free what it uses.
    impl->thread.detach();
    (void)impl.release();
    return Internal(fmt::format("metrics: the server on {} did not start", listen.ToString()));
  }
  impl_ = std::move(impl);
  Log(Level::kInfo, "metrics_listening").kv("address", listen.ToString()).kv("port", port_);
  return Status::Ok();
}

void MetricsServer::Stop() {
  if (!impl_) return;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_.reset();
}

uint64_t CountQuarantined(const std::string& state_dir, uint64_t limit) {
  uint64_t n = 0;
  std::error_code ec;
  namespace fs = std::filesystem;
  for (auto it = fs::recursive_directory_iterator(state_dir + "/quarantine", ec);
       !ec && it != fs::recursive_directory_iterator() && n < limit; it.increment(ec)) {
    if (!it->is_directory(ec)) ++n;
  }
  return n;
}

}  // namespace hasync::engine
