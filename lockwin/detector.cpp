// Detector: producer-side run tracking, lock-free judging, consumer-side history and
// transition reporting. The thread-safety argument is in detector.h.
#include "lockwin/detector.h"

#include <string>
#include <utility>

namespace hasync::lockwin {

Result<std::unique_ptr<Detector>> Detector::Create(const DetectorOptions& options,
                                                   VerdictObserver observer) {
  ASSIGN_OR_RETURN(size_t capacity, RingCapacityFor(options.window_ns, options.beat_interval_ns));
  if (options.window_ns <= options.beat_interval_ns) {
    return InvalidArgument("window " + std::to_string(options.window_ns) +
                           " ns must be longer than the beat interval " +
                           std::to_string(options.beat_interval_ns) +
                           " ns, or every gap between two beats is a whole window of silence");
  }
  if (options.start_ns < 0) {
    return InvalidArgument("start time " + std::to_string(options.start_ns) +
                           " ns is negative; pass a monotonic clock reading");
  }
  return std::unique_ptr<Detector>(new Detector(options, capacity, std::move(observer)));
}

Detector::Detector(const DetectorOptions& options, size_t ring_capacity, VerdictObserver observer)
    : window_ns_(options.window_ns),
      beat_interval_ns_(options.beat_interval_ns),
      observer_(std::move(observer)),
      producer_(options.start_ns),
      ring_(ring_capacity) {}

void Detector::Push(uint64_t fingerprint, int64_t arrival_ns) {
  HASYNC_ASSERT(arrival_ns >= 0);
  RunTracker& tracker = producer_.tracker;
  tracker.Observe(fingerprint, arrival_ns);
  // relaxed: published by the release store below (see "Memory orders" in detector.h).
  producer_.run_start_ns.store(tracker.run_start_ns(), std::memory_order_relaxed);
  // release: pairs with the acquire load in Judge() and NextChangeNs(); makes the
  // run_start_ns store above visible to whoever reads this last_arrival_ns.
  producer_.last_arrival_ns.store(tracker.last_arrival_ns(), std::memory_order_release);
  // relaxed: a statistic, only the producer writes it.
  producer_.pushed.store(producer_.pushed.load(std::memory_order_relaxed) + 1,
                         std::memory_order_relaxed);
  // The ring carries the clamped time, so history and verdict agree on it. A full ring
  // drops this arrival and counts it; the verdict above already includes it.
  const bool queued = ring_.TryPush(Arrival{fingerprint, tracker.last_arrival_ns()});
  static_cast<void>(queued);
}

Verdict Detector::Judge(int64_t now_ns) const {
  HASYNC_ASSERT(now_ns >= 0);
  // acquire: pairs with the release store in Push(); then run_start_ns is at least the
  // value written by that same Push.
  const int64_t last_arrival_ns = producer_.last_arrival_ns.load(std::memory_order_acquire);
  // relaxed: ordered after the acquire above.
  const int64_t run_start_ns = producer_.run_start_ns.load(std::memory_order_relaxed);
  return JudgeWindow(run_start_ns, last_arrival_ns, now_ns, window_ns_);
}

int64_t Detector::NextChangeNs(int64_t now_ns) const {
  HASYNC_ASSERT(now_ns >= 0);
  // Same pairing as Judge(): acquire on last_arrival_ns, then run_start_ns relaxed.
  const int64_t last_arrival_ns = producer_.last_arrival_ns.load(std::memory_order_acquire);
  const int64_t run_start_ns = producer_.run_start_ns.load(std::memory_order_relaxed);
  auto plus_window = [this](int64_t t) {
    return t > kNever - window_ns_ ? kNever : t + window_ns_;
  };
  switch (JudgeWindow(run_start_ns, last_arrival_ns, now_ns, window_ns_)) {
    case Verdict::kAlive:
      return plus_window(run_start_ns);
    case Verdict::kStalled:
      return plus_window(last_arrival_ns);
    case Verdict::kSilent:
      return kNever;
  }
  return kNever;
}

Verdict Detector::Step(int64_t now_ns) {
  // Bounded: a producer that never stops cannot keep Step from returning.
  Arrival arrival;
  for (size_t i = 0; i < ring_.capacity() && ring_.TryPop(&arrival); ++i) {
    RecordHistory(arrival);
  }
  const Verdict verdict = Judge(now_ns);
  const Verdict previous = consumer_.last_verdict;
  consumer_.last_verdict = verdict;
  if (verdict != previous && observer_) {
    observer_(VerdictChange{previous, verdict, now_ns});
  }
  return verdict;
}

void Detector::RecordHistory(const Arrival& arrival) {
  auto& runs = consumer_.runs;
  if (consumer_.runs_count > 0) {
    HistoryRun& newest = runs[(consumer_.runs_next + kHistoryRunsMax - 1) % kHistoryRunsMax];
    if (newest.fingerprint == arrival.fingerprint) {
      newest.last_arrival_ns = arrival.arrival_ns;
      ++newest.arrivals;
      return;
    }
  }
  runs[consumer_.runs_next] =
      HistoryRun{arrival.fingerprint, arrival.arrival_ns, arrival.arrival_ns, 1};
  consumer_.runs_next = (consumer_.runs_next + 1) % kHistoryRunsMax;
  if (consumer_.runs_count < kHistoryRunsMax) ++consumer_.runs_count;
}

DetectorSnapshot Detector::Snapshot(int64_t now_ns) const {
  DetectorSnapshot s;
  s.now_ns = now_ns;
  // Same pairing as Judge(); read once so verdict and ages describe one state.
  const int64_t last_arrival_ns = producer_.last_arrival_ns.load(std::memory_order_acquire);
  const int64_t run_start_ns = producer_.run_start_ns.load(std::memory_order_relaxed);
  s.verdict = JudgeWindow(run_start_ns, last_arrival_ns, now_ns, window_ns_);
  s.run_age_ns = AgeNs(now_ns, run_start_ns);
  s.silence_ns = AgeNs(now_ns, last_arrival_ns);
  s.pushed = pushed();
  s.dropped = dropped();
  s.ring_capacity = ring_.capacity();
  s.ring_fill = ring_.SizeApprox();
  s.history.reserve(consumer_.runs_count);
  for (size_t i = 1; i <= consumer_.runs_count; ++i) {
    s.history.push_back(
        consumer_.runs[(consumer_.runs_next + kHistoryRunsMax - i) % kHistoryRunsMax]);
  }
  return s;
}

uint64_t Detector::pushed() const {
  // relaxed: a statistic; nothing else is read on its strength.
  return producer_.pushed.load(std::memory_order_relaxed);
}

}  // namespace hasync::lockwin
