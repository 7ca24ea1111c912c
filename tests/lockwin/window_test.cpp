// The window rule on its own: JudgeWindow's boundaries and the RunTracker's runs, with
// every time injected.
#include "lockwin/window.h"

#include <gtest/gtest.h>

namespace hasync::lockwin {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kWindow = 10'000 * kMs;

TEST(JudgeWindow, RunYoungerThanTheWindowIsAlive) {
  EXPECT_EQ(JudgeWindow(/*run_start_ns=*/0, /*last_arrival_ns=*/0, kWindow - 1, kWindow),
            Verdict::kAlive);
  EXPECT_EQ(JudgeWindow(1000, 5000, 1000 + kWindow - 1, kWindow), Verdict::kAlive);
}

TEST(JudgeWindow, RunOfExactlyOneWindowIsStalled) {
  EXPECT_EQ(JudgeWindow(1000, 1000 + kWindow - 1, 1000 + kWindow, kWindow), Verdict::kStalled);
}

TEST(JudgeWindow, SilenceOfExactlyOneWindowIsSilent) {
  EXPECT_EQ(JudgeWindow(1000, 2000, 2000 + kWindow - 1, kWindow), Verdict::kStalled);
  EXPECT_EQ(JudgeWindow(1000, 2000, 2000 + kWindow, kWindow), Verdict::kSilent);
}

TEST(JudgeWindow, SilentTakesPrecedenceOverStalled) {
  // Both rules hold once nothing arrived for a window; no record at all is the stronger
  // statement and the one the promotion rules treat differently (DESIGN §4).
  EXPECT_EQ(JudgeWindow(0, 0, 5 * kWindow, kWindow), Verdict::kSilent);
}

TEST(JudgeWindow, ArrivalStampedAfterTheJudgesClockCountsAsNow) {
  EXPECT_EQ(AgeNs(100, 200), 0);
  EXPECT_EQ(JudgeWindow(200, 200, 100, kWindow), Verdict::kAlive);
}

TEST(RunTracker, FirstRecordStartsARun) {
  RunTracker t(/*start_ns=*/50);
  EXPECT_FALSE(t.has_record());
  EXPECT_EQ(t.run_start_ns(), 50);
  EXPECT_TRUE(t.Observe(0xAA, 100));
  EXPECT_TRUE(t.has_record());
  EXPECT_EQ(t.fingerprint(), 0xAAu);
  EXPECT_EQ(t.run_start_ns(), 100);
  EXPECT_EQ(t.last_arrival_ns(), 100);
}

TEST(RunTracker, FirstRecordWithFingerprintZeroStillStartsARun) {
  RunTracker t(0);
  EXPECT_TRUE(t.Observe(0, 100));
  EXPECT_EQ(t.run_start_ns(), 100);
}

TEST(RunTracker, EqualFingerprintExtendsTheRunAndChangedOneRestartsIt) {
  RunTracker t(0);
  t.Observe(1, 100);
  EXPECT_FALSE(t.Observe(1, 200));
  EXPECT_EQ(t.run_start_ns(), 100);
  EXPECT_EQ(t.last_arrival_ns(), 200);
  EXPECT_TRUE(t.Observe(2, 300));
  EXPECT_EQ(t.run_start_ns(), 300);
  EXPECT_TRUE(t.Observe(1, 400));  // back to an earlier fingerprint is still a change
  EXPECT_EQ(t.run_start_ns(), 400);
}

TEST(RunTracker, ArrivalTimesNeverGoBackwards) {
  RunTracker t(1000);
  t.Observe(1, 500);  // older than the start time
  EXPECT_EQ(t.run_start_ns(), 1000);
  EXPECT_EQ(t.last_arrival_ns(), 1000);
  t.Observe(2, 3000);
  t.Observe(3, 2000);
  EXPECT_EQ(t.run_start_ns(), 3000);
  EXPECT_EQ(t.last_arrival_ns(), 3000);
}

TEST(VerdictName, NamesEveryVerdict) {
  EXPECT_EQ(VerdictName(Verdict::kAlive), "alive");
  EXPECT_EQ(VerdictName(Verdict::kStalled), "stalled");
  EXPECT_EQ(VerdictName(Verdict::kSilent), "silent");
}

}  // namespace
}  // namespace hasync::lockwin
