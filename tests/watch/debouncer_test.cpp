#include "engine/watch/debouncer.h"

#include <gtest/gtest.h>

#include "engine/watch/clock.h"

namespace hasync::engine::watch {
namespace {

constexpr int64_t kWindow = 30'000'000;

TEST(Debouncer, RepeatedModifiesCoalesceIntoOne) {
  ManualClock clock;
  Debouncer d(kWindow, 16);
  std::vector<WatchEvent> out;
  EXPECT_FALSE(d.Modify(0, "log", clock.NowNs(), &out));
  for (int i = 0; i < 100; ++i) {
    clock.AdvanceNs(100'000);
    EXPECT_TRUE(d.Modify(0, "log", clock.NowNs(), &out));
  }
  d.FlushDue(clock.NowNs(), &out);
  EXPECT_TRUE(out.empty()) << "10 ms into a 30 ms window nothing is due";
  clock.AdvanceNs(kWindow);
  d.FlushDue(clock.NowNs(), &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], (WatchEvent{WatchKind::kModify, 0, "log", {}, false}));
  EXPECT_EQ(d.pending(), 0u);
}

TEST(Debouncer, ContinuousWritesAreStillReportedEveryWindow) {
  ManualClock clock;
  Debouncer d(kWindow, 16);
  std::vector<WatchEvent> out;
  // A modify every 5 ms for 100 ms: the window is not extended, so ≥ 3 reports.
  for (int i = 0; i < 20; ++i) {
    d.Modify(0, "log", clock.NowNs(), &out);
    clock.AdvanceNs(5'000'000);
    d.FlushDue(clock.NowNs(), &out);
  }
  EXPECT_GE(out.size(), 3u);
}

TEST(Debouncer, NextDeadlineIsFirstModifyPlusWindow) {
  ManualClock clock;
  Debouncer d(kWindow, 16);
  std::vector<WatchEvent> out;
  EXPECT_FALSE(d.NextDeadlineNs().has_value());
  const int64_t t0 = clock.NowNs();
  d.Modify(0, "a", t0, &out);
  clock.AdvanceNs(1'000'000);
  d.Modify(0, "b", clock.NowNs(), &out);
  EXPECT_EQ(d.NextDeadlineNs(), t0 + kWindow);
}

TEST(Debouncer, CancelDropsPendingModify) {
  ManualClock clock;
  Debouncer d(kWindow, 16);
  std::vector<WatchEvent> out;
  d.Modify(0, "f", clock.NowNs(), &out);
  EXPECT_TRUE(d.Cancel(0, "f", "", &out));
  EXPECT_FALSE(d.Cancel(0, "f", "", &out));
  clock.AdvanceNs(kWindow);
  d.FlushDue(clock.NowNs(), &out);
  EXPECT_TRUE(out.empty());
}

// The inode a debounced modify was about travels with it: a write through a descriptor
// whose name was removed or renamed over is reported under that name, and only the
// handle leads the sender to the inode's other names (convergence rejoin seeds 9949 and
// 9956: an ftruncate through such a descriptor never reached the other name).
TEST(Debouncer, AModifyKeepsTheInodeItWasAbout) {
  ManualClock clock;
  Debouncer d(kWindow, 16);
  std::vector<WatchEvent> out;
  EXPECT_FALSE(d.Modify(0, "x", clock.NowNs(), &out));  // a first event without a handle
  EXPECT_TRUE(d.Modify(0, "x", clock.NowNs(), &out, "inode-A"));
  EXPECT_TRUE(d.Modify(0, "x", clock.NowNs(), &out, "inode-A"));
  EXPECT_TRUE(d.Modify(0, "x", clock.NowNs(), &out));
  clock.AdvanceNs(kWindow);
  d.FlushDue(clock.NowNs(), &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, WatchKind::kModify);
  EXPECT_EQ(out[0].path, "x");
  EXPECT_EQ(out[0].object, "inode-A");
}

TEST(Debouncer, AModifyOfAnotherInodeUnderTheSameNameSendsThePendingOneFirst) {
  ManualClock clock;
  Debouncer d(kWindow, 16);
  std::vector<WatchEvent> out;
  d.Modify(0, "x", clock.NowNs(), &out, "inode-A");
  EXPECT_FALSE(d.Modify(0, "x", clock.NowNs(), &out, "inode-B"));
  ASSERT_EQ(out.size(), 1u) << "inode A's write goes out at once, not merged into B's";
  EXPECT_EQ(out[0].object, "inode-A");
  EXPECT_EQ(d.pending(), 1u);
  clock.AdvanceNs(kWindow);
  d.FlushDue(clock.NowNs(), &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].path, "x");
  EXPECT_EQ(out[1].object, "inode-B");
}

TEST(Debouncer, ACloseOfAnotherInodeSendsThePendingModifyInsteadOfDroppingIt) {
  ManualClock clock;
  Debouncer d(kWindow, 16);
  std::vector<WatchEvent> out;
  d.Modify(0, "x", clock.NowNs(), &out, "inode-A");
  EXPECT_TRUE(d.Cancel(0, "x", "inode-A", &out));
  EXPECT_TRUE(out.empty()) << "the close covers its own inode's modify";
  d.Modify(0, "x", clock.NowNs(), &out, "inode-A");
  EXPECT_TRUE(d.Cancel(0, "x", "inode-B", &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].object, "inode-A");
  EXPECT_EQ(d.pending(), 0u);
  d.Modify(0, "x", clock.NowNs(), &out);  // no handle known: the close covers it
  EXPECT_TRUE(d.Cancel(0, "x", "inode-B", &out));
  EXPECT_EQ(out.size(), 1u);
}

TEST(Debouncer, FlushUnderEmitsOnlyThatSubtreeOfThatRoot) {
  ManualClock clock;
  Debouncer d(kWindow, 16);
  std::vector<WatchEvent> out;
  d.Modify(0, "dir/a", clock.NowNs(), &out);
  d.Modify(0, "dir2/b", clock.NowNs(), &out);
  d.Modify(1, "dir/c", clock.NowNs(), &out);
  d.Modify(0, "dir", clock.NowNs(), &out);
  d.FlushUnder(0, "dir", &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].path, "dir/a");
  EXPECT_EQ(out[1].path, "dir");
  EXPECT_EQ(d.pending(), 2u);
  out.clear();
  d.FlushUnder(1, "", &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].root, 1u);
}

TEST(Debouncer, FullDebouncerEmitsOldestEarly) {
  ManualClock clock;
  Debouncer d(kWindow, 2);
  std::vector<WatchEvent> out;
  d.Modify(0, "a", clock.NowNs(), &out);
  d.Modify(0, "b", clock.NowNs(), &out);
  d.Modify(0, "c", clock.NowNs(), &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].path, "a");
  EXPECT_EQ(d.pending(), 2u);
}

TEST(Debouncer, ZeroWindowIsDueImmediately) {
  ManualClock clock;
  Debouncer d(0, 4);
  std::vector<WatchEvent> out;
  d.Modify(0, "a", clock.NowNs(), &out);
  d.FlushDue(clock.NowNs(), &out);
  EXPECT_EQ(out.size(), 1u);
}

}  // namespace
}  // namespace hasync::engine::watch
