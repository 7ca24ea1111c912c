// Detector: the standby's failure detector over lock-record fingerprints (DESIGN §3).
//
// The receive path calls Push(fingerprint, arrival_ns) for every lock record; the
// engine's detector thread calls Step(now_ns) on its timer, which drains the arrival ring
// into a bounded history, judges the window and reports verdict transitions to an
// observer. Nothing here reads a clock, sleeps or starts a thread: the engine owns the
// std::thread and the clock and passes times in, so tests are deterministic.
//
// Thread safety
// - Producer role (one thread at a time, normally the receive path): Push().
// - Consumer role (one thread at a time, normally the detector thread): Step(),
//   Snapshot(), last_verdict(). The observer runs on this thread, inside Step().
// - Any thread, any time: Judge(), NextChangeNs(), pushed(), dropped() and the const
//   configuration getters. They read only atomics and never block.
// - Push() and Step() never block and never wait for each other.
//
// Invariants
// - The producer's RunTracker is the single source of the verdict timestamps. After
//   every Push it publishes run_start and last_arrival; both only grow, and
//   run_start <= last_arrival in every published state.
// - Judge() returns the verdict of some published state that was current during the
//   call (proof below), so it is correct on time even when the ring is full and
//   arrivals are being dropped, and even if the consumer has not drained for a while.
// - The history holds at most kHistoryRunsMax runs; Step drains at most capacity()
//   arrivals per call, so it returns in bounded time against a producer that never
//   stops.
//
// Memory orders
// - Push: run_start_.store(relaxed), then last_arrival_.store(release).
//   Judge:  last_arrival_.load(acquire), then run_start_.load(relaxed).
//   The release/acquire pair on last_arrival_ makes the run_start_ store of the same
//   Push (sequenced before it) visible, so Judge reads last_arrival from some push k
//   and run_start from push k or a later push j (run_start_j >= run_start_k):
//     * Silent  uses last_arrival_k alone      → the verdict of state k;
//     * Stalled needs now − run_start_j ≥ window, which implies it for run_start_k
//                                              → the verdict of state k;
//     * Alive   needs now − run_start_j < window, and last_arrival_j ≥ last_arrival_k
//               is not silent either           → the verdict of state j.
//   A torn read therefore never yields a verdict no real state had. A seqlock would
//   also work but makes readers retry; two monotone values do not need one.
// - pushed_ and the ring's dropped counter are statistics, stored and loaded relaxed.
// - The ring's own orders are documented in ring.h.
//
// Overflow: the ring drops the newest arrival when full (ring.h says why). That loses
// only history detail, which Snapshot() reports as `dropped`; the verdict does not come
// from the ring.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include "base/status.h"
#include "lockwin/limits.h"
#include "lockwin/ring.h"
#include "lockwin/window.h"

namespace hasync::lockwin {

// One lock record as the standby saw it: what travels through the ring.
struct Arrival {
  uint64_t fingerprint = 0;
  int64_t arrival_ns = 0;
};

struct DetectorOptions {
  int64_t window_ns = 10'000'000'000;      // DESIGN §3 default: 10 s
  int64_t beat_interval_ns = 250'000'000;  // the primary's heartbeat tick: 250 ms
  int64_t start_ns = 0;  // monotonic time the standby starts listening; Silent counts from
                         // here until the first record arrives
};

struct VerdictChange {
  Verdict from = Verdict::kAlive;
  Verdict to = Verdict::kAlive;
  int64_t at_ns = 0;  // the now_ns of the Step that saw the change
};

// Called on the consumer thread inside Step(); must not call Step().
using VerdictObserver = std::function<void(const VerdictChange&)>;

// A run of equal fingerprints, as `hasync status` shows it.
struct HistoryRun {
  uint64_t fingerprint = 0;
  int64_t first_arrival_ns = 0;
  int64_t last_arrival_ns = 0;
  uint64_t arrivals = 0;
};

struct DetectorSnapshot {
  Verdict verdict = Verdict::kAlive;
  int64_t now_ns = 0;
  int64_t run_age_ns = 0;  // now − run_start: how long the fingerprint has not changed
  int64_t silence_ns = 0;  // now − last_arrival: how long nothing arrived
  uint64_t pushed = 0;     // arrivals offered by the producer
  uint64_t dropped = 0;    // arrivals the full ring refused (missing from history only)
  size_t ring_capacity = 0;
  size_t ring_fill = 0;             // arrivals waiting for the next Step
  std::vector<HistoryRun> history;  // newest first, at most kHistoryRunsMax
};

class Detector {
 public:
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

  // Fails if the window or beat is not positive, the window is not longer than one beat,
  // the window needs more than kRingCapacityMax ring entries, or start_ns is negative.
  static Result<std::unique_ptr<Detector>> Create(const DetectorOptions& options,
                                                  VerdictObserver observer = {});

  Detector(const Detector&) = delete;
  Detector& operator=(const Detector&) = delete;

  // Producer. O(1), never blocks. arrival_ns is the standby's monotonic receive time.
  void Push(uint64_t fingerprint, int64_t arrival_ns);

  // Any thread. O(1): the verdict at now_ns from the latest published state.
  Verdict Judge(int64_t now_ns) const;

  // Any thread. The earliest time the verdict can change if nothing new arrives: while
  // Alive, when the current run becomes a window old; while Stalled, when the last
  // arrival does; kNever once Silent. The engine can arm its timer for this instead of
  // polling, which keeps detection within the window plus timer latency.
  int64_t NextChangeNs(int64_t now_ns) const;

  // Consumer. Drains up to capacity() arrivals into the history, judges at now_ns,
  // calls the observer if the verdict differs from the previous Step's, and returns it.
  Verdict Step(int64_t now_ns);

  // Consumer. The verdict returned by the latest Step (Alive before the first Step).
  Verdict last_verdict() const { return consumer_.last_verdict; }

  // Consumer. Verdict, ages, counters and history for `hasync status`.
  DetectorSnapshot Snapshot(int64_t now_ns) const;

  // Any thread.
  uint64_t pushed() const;
  uint64_t dropped() const { return ring_.dropped(); }
  int64_t window_ns() const { return window_ns_; }
  int64_t beat_interval_ns() const { return beat_interval_ns_; }
  size_t ring_capacity() const { return ring_.capacity(); }

 private:
  Detector(const DetectorOptions& options, size_t ring_capacity, VerdictObserver observer);

  void RecordHistory(const Arrival& arrival);

  const int64_t window_ns_;
  const int64_t beat_interval_ns_;
  const VerdictObserver observer_;

  // Producer-written state, on its own cache line: the tracker is producer-private, the
  // published pair is what every judge reads.
  struct alignas(kCacheLineBytes) ProducerState {
    explicit ProducerState(int64_t start_ns)
        : tracker(start_ns), run_start_ns(start_ns), last_arrival_ns(start_ns) {}
    RunTracker tracker;
    std::atomic<int64_t> run_start_ns;
    std::atomic<int64_t> last_arrival_ns;
    std::atomic<uint64_t> pushed{0};
  };
  ProducerState producer_;

  SpscRing<Arrival> ring_;

  // Consumer-private state.
  struct alignas(kCacheLineBytes) ConsumerState {
    Verdict last_verdict = Verdict::kAlive;
    std::array<HistoryRun, kHistoryRunsMax> runs{};
    size_t runs_next = 0;   // slot the next new run goes to
    size_t runs_count = 0;  // runs held, <= kHistoryRunsMax
  };
  ConsumerState consumer_;
};

}  // namespace hasync::lockwin
