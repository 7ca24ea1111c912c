// Metrics: what `hasync run` exposes for Prometheus at http://<metrics.listen>/metrics.
//
// One Metrics object lives as long as the process (RunNode owns it), so counters keep
// growing across role changes, as Prometheus expects of a `_total`. Every value is an
// atomic: the event loop (and a few other threads) write them, the HTTP server's
// threads read them when scraped; nobody takes a lock. The names, labels and meanings
// are listed in docs/OPERATIONS.md ("Metrics"); Render() is the only place that spells
// them, so the two stay checkable against each other (tests/node/metrics_test.cpp).
//
// MetricsServer serves them with cpp-httplib (Debian's libcpp-httplib) on its own two
// threads, bounded: GET only, 1 KiB requests, 5 s read/write timeouts, two workers.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "engine/config.h"

namespace hasync::engine {

// The hooks whose runs are counted, in the order of their `hook` label.
enum class HookKind : uint8_t {
  kOnPromote,
  kOnDemote,
  kFence,
  kQuorumCheck,
  kPromoteGuard,
  kProbe,
  kCount
};
std::string_view HookKindName(HookKind kind);
// kCount for a name that is not one of them.
HookKind HookKindFromName(std::string_view name);

// Upper bounds (seconds) of the replication-lag histogram's buckets, +Inf implied.
inline constexpr std::array<double, 16> kLagBucketsSeconds = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

class Metrics {
 public:
  Metrics();

  using Counter = std::atomic<uint64_t>;
  using Gauge = std::atomic<int64_t>;

  // ---- Both roles.
  Gauge role{-1};  // NodeRole as an int; -1 before the first Init
  Gauge epoch{0};
  Gauge changing_role{0};
  Gauge peer_connected{0};
  Counter role_changes;
  Counter sessions_opened;     // control sessions that completed their handshake
  Counter handshake_failures;  // connections dropped before their handshake finished
  Gauge quarantined_files{0};  // under <state_dir>/quarantine, all epochs
  std::array<Counter, static_cast<size_t>(HookKind::kCount)> hook_runs{};
  std::array<Counter, static_cast<size_t>(HookKind::kCount)> hook_failures{};

  // ---- Primary.
  Counter lock_records_sent;
  Counter files_sent;
  Counter bytes_sent;  // file content bytes (EXTENT frames)
  Counter batches_acked;
  Counter overflow_rescans;  // kernel queue overflows and journal collapses into a rescan
  Gauge journal_pending{0};  // changes waiting in the journal
  Gauge unacked_changes{0};  // sent, not yet acknowledged durable
  Gauge unacked_batches{0};
  // Anti-entropy (docs/REPLICATION.md "Anti-entropy") and `hasync verify --repair`:
  // differences between the trees found, and those a repair was queued for.
  Counter divergences_found;
  Counter divergences_repaired;
  // Unix time (s) the last complete background comparison pass ended; 0 = none yet
  // (the age is then counted from the process start).
  Gauge antientropy_last_pass_unix_s{0};
  // ---- Standby.
  Counter lock_records_received;
  Counter files_applied;
  Counter bytes_applied;
  Counter batches_applied;
  Gauge verdict{-1};  // lockwin::Verdict as an int; -1 when not judging (primary)
  // ---- The arbiter ([arbiter], engine/node/arbiter_worker.h); 0 without one.
  Gauge arbiter_configured{0};
  Gauge arbiter_endpoints_up{0};        // members whose last request was answered
  Gauge arbiter_leader{0};              // 1: this node holds the leader key, as last read
  Gauge arbiter_epoch{0};               // etcd's epoch, as last read
  Gauge arbiter_lease_remaining_ms{0};  // this node's lease at least lives this long
  Counter arbiter_requests;             // calls to etcd (one call may try several members)
  Counter arbiter_request_failures;     // of those, failed (kUnavailable or refused)

  // Replication lag, primary: from a batch's first change to its durable ACK.
  void ObserveLagNs(int64_t ns);

  void CountHook(HookKind kind, bool ok);

  // The Prometheus text exposition format (version 0.0.4) of everything above.
  std::string Render() const;

 private:
  std::array<Counter, kLagBucketsSeconds.size() + 1> lag_buckets_{};  // last: +Inf
  Counter lag_sum_ns_;
  const int64_t start_unix_s_;
};

// Adds to a process-wide counter what a per-session statistic (a sender's, a receiver's)
// gained since the last call; Restart() when the statistic's owner is replaced.
class CounterMirror {
 public:
  // Returns what was added.
  uint64_t Update(Metrics::Counter& total, uint64_t current) {
    const uint64_t gained = current > last_ ? current - last_ : 0;
    if (gained > 0) total.fetch_add(gained, std::memory_order_relaxed);
    last_ = current;
    return gained;
  }
  void Restart() { last_ = 0; }

 private:
  uint64_t last_ = 0;
};

// The HTTP endpoint. Start() binds (an error names the address) and serves on a thread
// of its own until Stop() or destruction.
class MetricsServer {
 public:
  explicit MetricsServer(const Metrics& metrics);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  Status Start(const HostPort& listen);
  void Stop();
  // The port bound (useful with port 0 in tests).
  int port() const { return port_; }

 private:
  struct Impl;
  const Metrics& metrics_;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// Regular files and symlinks under <state_dir>/quarantine (all epochs), counting at most
// `limit` of them.
uint64_t CountQuarantined(const std::string& state_dir, uint64_t limit = 1'000'000);

}  // namespace hasync::engine
