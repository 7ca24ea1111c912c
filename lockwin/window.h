// The window rule (DESIGN §3) as plain O(1) arithmetic, free of threads: the verdict
// from two timestamps, and the run tracker that maintains those timestamps as
// fingerprints arrive. The Detector (detector.h) runs the tracker on the producer side
// and judges on any thread; tests drive these pieces directly with injected times.
//
// Definitions (all times monotonic nanoseconds, passed in by the caller)
// - A *run* is a maximal sequence of consecutive arrivals with equal fingerprints;
//   run_start is the arrival time of its first record. One changed fingerprint starts a
//   new run.
// - Silent  ⇔ now − last_arrival ≥ window: nothing arrived for a whole window.
// - Stalled ⇔ not Silent and now − run_start ≥ window: records keep arriving but every
//   one of the last window carries the same fingerprint (alive, no progress).
// - Alive otherwise.
// Silent is tested first because a silent primary also satisfies the Stalled test
// (run_start <= last_arrival). Both bounds are inclusive: at exactly one window the
// verdict has already changed, so detection takes at most window plus the caller's
// judging period.
//
// Before the first record, run_start and last_arrival are the tracker's start time: the
// primary gets one window of grace (Alive) to be heard, then the verdict is Silent.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/assert.h"

namespace hasync::lockwin {

enum class Verdict : uint8_t {
  kAlive,    // the fingerprint changed within the last window
  kStalled,  // records arrive, but one fingerprint for a whole window
  kSilent,   // no record for a whole window
};

constexpr std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kAlive:
      return "alive";
    case Verdict::kStalled:
      return "stalled";
    case Verdict::kSilent:
      return "silent";
  }
  return "unknown";
}

// Elapsed time from `then` to `now`, never negative: an arrival stamped a little after
// the judge read its clock counts as just now.
constexpr int64_t AgeNs(int64_t now_ns, int64_t then_ns) {
  return now_ns > then_ns ? now_ns - then_ns : 0;
}

// O(1). Times must be non-negative (monotonic clock), window positive.
constexpr Verdict JudgeWindow(int64_t run_start_ns, int64_t last_arrival_ns, int64_t now_ns,
                              int64_t window_ns) {
  if (AgeNs(now_ns, last_arrival_ns) >= window_ns) return Verdict::kSilent;
  if (AgeNs(now_ns, run_start_ns) >= window_ns) return Verdict::kStalled;
  return Verdict::kAlive;
}

// Keeps run_start and last_arrival up to date in O(1) per arrival. Single-threaded.
//
// Invariant: start_ns <= run_start_ns <= last_arrival_ns, and both only grow. Arrival
// times are clamped to be non-decreasing: a monotonic clock never goes backwards, and
// the lock-free judge in detector.h relies on both timestamps only growing.
class RunTracker {
 public:
  explicit RunTracker(int64_t start_ns) : run_start_ns_(start_ns), last_arrival_ns_(start_ns) {
    HASYNC_ASSERT(start_ns >= 0);
  }

  // Returns true if this arrival started a new run (first record or new fingerprint).
  bool Observe(uint64_t fingerprint, int64_t arrival_ns) {
    const int64_t t = arrival_ns > last_arrival_ns_ ? arrival_ns : last_arrival_ns_;
    last_arrival_ns_ = t;
    if (has_record_ && fingerprint == fingerprint_) return false;
    has_record_ = true;
    fingerprint_ = fingerprint;
    run_start_ns_ = t;
    return true;
  }

  Verdict Judge(int64_t now_ns, int64_t window_ns) const {
    return JudgeWindow(run_start_ns_, last_arrival_ns_, now_ns, window_ns);
  }

  bool has_record() const { return has_record_; }
  uint64_t fingerprint() const { return fingerprint_; }  // meaningful if has_record()
  int64_t run_start_ns() const { return run_start_ns_; }
  int64_t last_arrival_ns() const { return last_arrival_ns_; }

 private:
  bool has_record_ = false;
  uint64_t fingerprint_ = 0;
  int64_t run_start_ns_;
  int64_t last_arrival_ns_;
};

}  // namespace hasync::lockwin
