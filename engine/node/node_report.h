// What a running node reports about itself: the Prometheus figures (engine/node/metrics.h)
// refreshed from its parts every tick, and the session counters the log carries
// (`sender_stats`, `receiver_stats`; the integration tests read them to count the bytes
// that crossed the wire).
//
// MetricsPublisher owns the CounterMirrors that turn each part's running totals into
// increments of the process's counters (a Sender or Receiver made for a new session
// starts again from zero, the process's counters do not), and when the quarantine was
// last counted (a bounded walk, every kQuarantineCountNs rather than every tick).
//
// Threading: Publish and LogSessionStats run on the loop's thread; the Metrics they
// write are atomics the HTTP endpoint's thread reads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/journal/journal.h"
#include "engine/node/hooks.h"
#include "engine/node/metrics.h"
#include "engine/node/state.h"
#include "engine/sync/receiver.h"
#include "engine/sync/sender.h"
#include "engine/watch/watcher.h"
#include "lockwin/detector.h"

namespace hasync::engine {

// The node's parts at one moment. A null pointer: the role has no such part (or not yet).
struct NodeParts {
  NodeRole role = NodeRole::kStandby;
  uint64_t epoch = 0;
  bool changing_role = false;
  bool peer_connected = false;  // a session is open with the peer
  const lockwin::Detector* detector = nullptr;
  const Sender* sender = nullptr;
  const Journal* journal = nullptr;
  const watch::Watcher* watcher = nullptr;
  const Receiver* receiver = nullptr;
  const Probe* probe = nullptr;
};

class MetricsPublisher {
 public:
  MetricsPublisher(Metrics& metrics, std::string state_dir)
      : metrics_(metrics), state_dir_(std::move(state_dir)) {}

  // Copies the node's state and its parts' statistics into the metrics (every tick, and
  // before a part holding statistics is replaced or the node stops).
  void Publish(int64_t now, const NodeParts& parts);
  // A new Sender counts from zero (publish the old one's last figures first).
  void RestartSenderCounters() {
    mirrors_.files_sent.Restart();
    mirrors_.bytes_sent.Restart();
  }

 private:
  Metrics& metrics_;  // the process's (RunNode's): counters outlive role changes
  const std::string state_dir_;
  struct Mirrors {
    CounterMirror files_sent, bytes_sent, files_applied, bytes_applied, batches_applied,
        journal_overflows, watch_overflows, probe_runs, probe_failures;
  } mirrors_;
  int64_t quarantine_counted_ns_ = 0;
  // Overflows not logged yet (event=overflow_rescan), and when the last line was.
  uint64_t overflows_journal_ = 0, overflows_kernel_ = 0;
  int64_t overflow_logged_ns_ = 0;
};

// Counters of the current session (the primary's sender, the standby's receiver), a
// log line each for the parts there are.
void LogSessionStats(std::string_view why, const Sender* sender, const Receiver* receiver);

}  // namespace hasync::engine
