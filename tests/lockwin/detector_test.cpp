// Detector: verdicts over injected time, transitions reported to the observer, the
// bounded history, the overflow policy, and producer/consumer on two threads.
#include "lockwin/detector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "lockwin/lock_record.h"

namespace hasync::lockwin {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kBeat = 250 * kMs;
constexpr int64_t kWindow = 10'000 * kMs;
constexpr int64_t kStart = 1'000'000 * kMs;  // an arbitrary monotonic reading

std::unique_ptr<Detector> MakeDetector(int64_t window_ns = kWindow, int64_t start_ns = kStart,
                                       VerdictObserver observer = {}) {
  Result<std::unique_ptr<Detector>> d =
      Detector::Create({.window_ns = window_ns, .beat_interval_ns = kBeat, .start_ns = start_ns},
                       std::move(observer));
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? std::move(d).value() : nullptr;
}

TEST(Detector, SteadilyChangingBeatsStayAlive) {
  auto d = MakeDetector();
  ASSERT_NE(d, nullptr);
  for (int64_t i = 0; i < 4 * 60 * 10; ++i) {  // ten minutes of beats
    const int64_t t = kStart + i * kBeat;
    d->Push(static_cast<uint64_t>(i), t);
    ASSERT_EQ(d->Step(t), Verdict::kAlive) << "beat " << i;
    ASSERT_EQ(d->Judge(t + kBeat - 1), Verdict::kAlive) << "between beats " << i;
  }
}

TEST(Detector, IdenticalFingerprintsForAWholeWindowAreStalled) {
  auto d = MakeDetector();
  ASSERT_NE(d, nullptr);
  const int64_t run_start = kStart + kBeat;
  for (int64_t t = run_start; t <= run_start + kWindow; t += kBeat) {
    d->Push(0xFEED, t);
    const Verdict v = d->Step(t);
    if (t - run_start < kWindow) {
      ASSERT_EQ(v, Verdict::kAlive) << "run age " << (t - run_start) / kMs << " ms";
    } else {
      ASSERT_EQ(v, Verdict::kStalled);
    }
  }
  // The boundary itself, independent of when beats land.
  EXPECT_EQ(d->Judge(run_start + kWindow - 1), Verdict::kAlive);
  EXPECT_EQ(d->Judge(run_start + kWindow), Verdict::kStalled);
}

TEST(Detector, NothingForAWholeWindowIsSilent) {
  auto d = MakeDetector();
  ASSERT_NE(d, nullptr);
  const int64_t last = kStart + 3 * kBeat;
  d->Push(1, kStart + kBeat);
  d->Push(2, kStart + 2 * kBeat);
  d->Push(3, last);
  EXPECT_EQ(d->Judge(last + kWindow - 1), Verdict::kAlive);
  EXPECT_EQ(d->Judge(last + kWindow), Verdict::kSilent);
  EXPECT_EQ(d->Judge(last + 100 * kWindow), Verdict::kSilent);
}

TEST(Detector, BeforeTheFirstRecordThePrimaryGetsOneWindowOfGrace) {
  auto d = MakeDetector();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->Step(kStart), Verdict::kAlive);
  EXPECT_EQ(d->Step(kStart + kWindow - 1), Verdict::kAlive);
  EXPECT_EQ(d->Step(kStart + kWindow), Verdict::kSilent);
  d->Push(1, kStart + kWindow + 5);
  EXPECT_EQ(d->Step(kStart + kWindow + 5), Verdict::kAlive);
}

TEST(Detector, ASingleChangedFingerprintResetsTheRun) {
  auto d = MakeDetector();
  ASSERT_NE(d, nullptr);
  int64_t t = kStart;
  for (; t < kStart + kWindow - kBeat; t += kBeat) d->Push(0xA, t);
  const int64_t blip = t;
  d->Push(0xB, blip);  // one record of progress just before the window closes
  t += kBeat;
  const int64_t rerun = t;
  for (; t <= kStart + 2 * kWindow; t += kBeat) {
    d->Push(0xA, t);  // the old fingerprint again is a new run, from `rerun`
    ASSERT_EQ(d->Step(t), t - rerun >= kWindow ? Verdict::kStalled : Verdict::kAlive);
  }
  EXPECT_EQ(d->Judge(kStart + kWindow), Verdict::kAlive);
  EXPECT_EQ(d->Judge(rerun + kWindow - 1), Verdict::kAlive);
  EXPECT_EQ(d->Judge(rerun + kWindow), Verdict::kStalled);
}

// DESIGN §3 end to end: the primary re-makes its lock record every tick. While the
// scheduler hangs, beat stops advancing but monotonic_ns and the probe latency keep
// changing; the fingerprint must not, so the standby sees Stalled after one window.
TEST(Detector, HungPrimaryThatKeepsBeatingIsJudgedStalled) {
  auto d = MakeDetector();
  ASSERT_NE(d, nullptr);
  LockRecord record;
  record.epoch = 3;
  record.node_id = 1;
  record.probe_token = "job 100 alice";
  record.probe_ok = true;
  int64_t t = kStart;
  auto send = [&](int64_t now) {
    record.monotonic_ns = now - 17;  // the primary's clock, different from ours
    Result<std::vector<std::byte>> bytes = EncodeLockRecord(record);
    ASSERT_TRUE(bytes.ok());
    Result<uint64_t> fp = FingerprintEncodedLockRecord(*bytes);
    ASSERT_TRUE(fp.ok());
    d->Push(*fp, now);
  };
  // Healthy: beat advances every tick.
  for (int i = 0; i < 100; ++i, t += kBeat) {
    ++record.beat;
    send(t);
    ASSERT_EQ(d->Step(t), Verdict::kAlive);
  }
  // Hung: the probe times out with jittering latency and beat stays put.
  const int64_t hang_start = t - kBeat;  // the last record with progress
  record.probe_ok = false;
  for (int i = 0; t <= hang_start + kWindow + kBeat; ++i, t += kBeat) {
    record.probe_latency_us = 1'000'000 + static_cast<uint32_t>(i * 37 % 500);
    send(t);
    ASSERT_EQ(d->Step(t), t - hang_start >= kWindow ? Verdict::kStalled : Verdict::kAlive)
        << "tick " << i;
  }
  EXPECT_EQ(d->last_verdict(), Verdict::kStalled);
}

TEST(Detector, ObserverHearsEachTransitionOnce) {
  std::vector<VerdictChange> changes;
  auto d =
      MakeDetector(kWindow, kStart, [&changes](const VerdictChange& c) { changes.push_back(c); });
  ASSERT_NE(d, nullptr);
  d->Push(1, kStart);
  for (int64_t t = kStart; t <= kStart + kWindow; t += kBeat) {
    d->Push(1, t);  // alive but no progress ...
    d->Step(t);
  }
  d->Step(kStart + kWindow + 1);      // still stalled: no new report
  d->Step(kStart + 2 * kWindow);      // ... then nothing at all
  d->Step(kStart + 2 * kWindow + 1);  // still silent
  d->Push(2, kStart + 3 * kWindow);   // back, with progress
  d->Step(kStart + 3 * kWindow);

  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].from, Verdict::kAlive);
  EXPECT_EQ(changes[0].to, Verdict::kStalled);
  EXPECT_EQ(changes[0].at_ns, kStart + kWindow);
  EXPECT_EQ(changes[1].from, Verdict::kStalled);
  EXPECT_EQ(changes[1].to, Verdict::kSilent);
  EXPECT_EQ(changes[1].at_ns, kStart + 2 * kWindow);
  EXPECT_EQ(changes[2].from, Verdict::kSilent);
  EXPECT_EQ(changes[2].to, Verdict::kAlive);
}

TEST(Detector, NextChangeIsWhenTheRunOrTheSilenceTurnsOneWindowOld) {
  auto d = MakeDetector();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->NextChangeNs(kStart), kStart + kWindow);  // grace period ends
  d->Push(7, kStart + 100);
  d->Push(7, kStart + 200);
  EXPECT_EQ(d->NextChangeNs(kStart + 200), kStart + 100 + kWindow);  // Alive -> Stalled
  EXPECT_EQ(d->Judge(kStart + 100 + kWindow), Verdict::kStalled);
  EXPECT_EQ(d->NextChangeNs(kStart + 100 + kWindow), kStart + 200 + kWindow);  // -> Silent
  EXPECT_EQ(d->Judge(kStart + 200 + kWindow), Verdict::kSilent);
  EXPECT_EQ(d->NextChangeNs(kStart + 200 + kWindow), Detector::kNever);
}

// Overflow policy: with the detector thread starved, the full ring drops new arrivals,
// but the verdict is published outside the ring and stays on time.
TEST(Detector, FullRingLosesHistoryButNeverTheVerdict) {
  auto d = MakeDetector(1000 * kMs);  // 1 s window -> 128 entries
  ASSERT_NE(d, nullptr);
  ASSERT_EQ(d->ring_capacity(), 128u);
  int64_t t = kStart;
  for (int i = 0; i < 200; ++i, t += kMs) d->Push(0xA, t);  // fills the ring, 72 dropped
  // The primary makes progress while the ring is full: this arrival is dropped ...
  const int64_t progress = kStart + 900 * kMs;
  d->Push(0xB, progress);
  EXPECT_EQ(d->dropped(), 73u);
  // ... yet the run restarted there: not Stalled at the old run's one-window mark.
  EXPECT_EQ(d->Judge(kStart + 1000 * kMs), Verdict::kAlive);
  EXPECT_EQ(d->Judge(progress + 1000 * kMs - 1), Verdict::kAlive);
  EXPECT_EQ(d->Judge(progress + 1000 * kMs), Verdict::kSilent);

  // Draining shows what the ring kept, and the snapshot says how much it lost.
  d->Step(progress);
  DetectorSnapshot s = d->Snapshot(progress);
  EXPECT_EQ(s.pushed, 201u);
  EXPECT_EQ(s.dropped, 73u);
  EXPECT_EQ(s.ring_fill, 0u);
  ASSERT_EQ(s.history.size(), 1u);
  EXPECT_EQ(s.history[0].fingerprint, 0xAu);
  EXPECT_EQ(s.history[0].arrivals, 128u);
  EXPECT_EQ(s.verdict, Verdict::kAlive);
  EXPECT_EQ(s.run_age_ns, 0);
}

TEST(Detector, HistoryKeepsTheNewestRunsFirstAndIsBounded) {
  auto d = MakeDetector();
  ASSERT_NE(d, nullptr);
  int64_t t = kStart;
  const uint64_t kRuns = kHistoryRunsMax + 5;
  for (uint64_t run = 0; run < kRuns; ++run) {
    for (uint64_t k = 0; k <= run % 3; ++k, t += kBeat) d->Push(run, t);  // 1..3 arrivals
    d->Step(t);  // drain as the engine's timer would
  }
  DetectorSnapshot s = d->Snapshot(t);
  ASSERT_EQ(s.history.size(), kHistoryRunsMax);
  for (size_t i = 0; i < s.history.size(); ++i) {
    const uint64_t run = kRuns - 1 - i;
    EXPECT_EQ(s.history[i].fingerprint, run);
    EXPECT_EQ(s.history[i].arrivals, run % 3 + 1);
    EXPECT_EQ(s.history[i].last_arrival_ns - s.history[i].first_arrival_ns,
              static_cast<int64_t>(run % 3) * kBeat);
  }
  EXPECT_EQ(s.silence_ns, kBeat);
}

TEST(Detector, CreateRejectsUnusableOptions) {
  auto status_of = [](DetectorOptions o) { return Detector::Create(o).status(); };
  EXPECT_EQ(status_of({.window_ns = kBeat, .beat_interval_ns = kBeat}).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(status_of({.window_ns = 0, .beat_interval_ns = kBeat}).code(), Code::kInvalidArgument);
  EXPECT_EQ(status_of({.window_ns = kWindow, .beat_interval_ns = 0}).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(status_of({.window_ns = kWindow, .beat_interval_ns = kBeat, .start_ns = -1}).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(status_of({.window_ns = 24 * 3600 * 1000 * kMs, .beat_interval_ns = kBeat}).code(),
            Code::kOutOfRange);
}

TEST(Detector, OneHourWindowIsSupported) {
  auto d = MakeDetector(3'600'000 * kMs);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->ring_capacity(), 16384u);
  d->Push(1, kStart);
  EXPECT_EQ(d->Judge(kStart + 3'600'000 * kMs - 1), Verdict::kAlive);
  EXPECT_EQ(d->Judge(kStart + 3'600'000 * kMs), Verdict::kSilent);
}

// The producer pushes a new fingerprint per arrival and then publishes its clock; the
// consumer judges at that clock. Every arrival is fresh progress, so any verdict other
// than Alive would mean the judge read timestamps no Push ever published together.
TEST(Detector, ConcurrentJudgeNeverSeesAFalseFailure) {
  constexpr int64_t kCount = 500'000;
  auto d = MakeDetector(1000 * kMs, 0);
  ASSERT_NE(d, nullptr);
  std::atomic<int64_t> clock{0};
  std::atomic<bool> done{false};
  std::atomic<bool> consumer_started{false};
  std::atomic<uint64_t> steps_seen{0};

  std::thread producer([&] {
    // Under load the producer could finish before the consumer ran once, and the test
    // would then judge nothing; wait (bounded) until the consumer is in its loop.
    for (int spin = 0; spin < 50'000'000 && !consumer_started.load(std::memory_order_acquire);
         ++spin) {
      std::this_thread::yield();
    }
    for (int64_t i = 1; i <= kCount; ++i) {
      if (i == kCount / 2) {  // and half way, until it judged at least once concurrently
        for (int spin = 0; spin < 50'000'000 && steps_seen.load(std::memory_order_acquire) == 0;
             ++spin) {
          std::this_thread::yield();
        }
      }
      d->Push(static_cast<uint64_t>(i), i * kMs);
      // release: pairs with the consumer's acquire; the Push above is visible first.
      clock.store(i * kMs, std::memory_order_release);
    }
    done.store(true, std::memory_order_release);
  });

  uint64_t steps = 0;
  uint64_t false_verdicts = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  consumer_started.store(true, std::memory_order_release);
  while (!done.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < deadline) {
    const int64_t now = clock.load(std::memory_order_acquire);
    if (now == 0) continue;
    if (d->Step(now) != Verdict::kAlive) ++false_verdicts;
    if (d->Judge(now + 1000 * kMs - 1) == Verdict::kSilent) ++false_verdicts;
    ++steps;
    steps_seen.store(steps, std::memory_order_release);
  }
  producer.join();
  // join() hands the producer role to this thread; Step() drains the whole ring, so the
  // final arrival below cannot be dropped and must head the history.
  d->Step(kCount * kMs);
  d->Push(kCount + 1, (kCount + 1) * kMs);
  d->Step((kCount + 1) * kMs);

  EXPECT_TRUE(done.load());
  EXPECT_GT(steps, 0u);
  EXPECT_EQ(false_verdicts, 0u) << "over " << steps << " steps";
  DetectorSnapshot s = d->Snapshot((kCount + 1) * kMs);
  EXPECT_EQ(s.pushed, static_cast<uint64_t>(kCount + 1));
  ASSERT_FALSE(s.history.empty());
  EXPECT_EQ(s.history[0].fingerprint, static_cast<uint64_t>(kCount + 1));
  EXPECT_EQ(s.ring_fill, 0u);
  EXPECT_EQ(s.verdict, Verdict::kAlive);
}

}  // namespace
}  // namespace hasync::lockwin
