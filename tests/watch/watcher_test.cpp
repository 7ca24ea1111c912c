// The Watcher against the real kernel: needs root and fanotify, skips with the reason
// otherwise. Directories live under /var/tmp (the root filesystem here; a tmpfs /tmp
// before Linux 6.6 cannot carry a filesystem mark). Every wait is bounded (2 s per
// expected event); absence of an event is checked against a later sentinel event, never
// against the clock.
#include "engine/watch/watcher.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>

#include "engine/watch/clock.h"

namespace hasync::engine::watch {
namespace {

namespace fs = std::filesystem;

void WriteFile(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ASSERT_EQ(::close(fd), 0);
}

class WatcherTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/hasync-watch-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    spool_ = base_ + "/spool";
    outside_ = base_ + "/outside";
    ASSERT_EQ(::mkdir(spool_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(outside_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((spool_ + "/a").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((spool_ + "/b").c_str(), 0755), 0);
    WatcherOptions o;
    o.roots = {spool_};
    o.force_move_pairs = GetParam();
    Result<Watcher> w = Watcher::Open(o, &clock_);
    if (!w.ok()) {
      Code c = w.status().code();
      if (c == Code::kPermissionDenied || c == Code::kUnimplemented) {
        skip_reason_ = w.status().ToString();
        return;
      }
      FAIL() << w.status().ToString();
    }
    watcher_ = std::make_unique<Watcher>(std::move(w).value());
  }
  void TearDown() override {
    watcher_.reset();
    std::error_code ec;
    if (!base_.empty()) fs::remove_all(base_, ec);
  }

  // Polls until an event matching `pred` was seen or 2 s passed.
  bool WaitFor(const std::function<bool(const WatchEvent&)>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (int i = 0; i < 400; ++i) {
      for (const WatchEvent& e : seen_) {
        if (pred(e)) return true;
      }
      if (std::chrono::steady_clock::now() > deadline) break;
      Result<size_t> n = watcher_->Poll(20);
      if (!n.ok()) {
        ADD_FAILURE() << n.status().ToString();
        return false;
      }
      watcher_->Drain(&seen_, 1 << 16);
    }
    for (const WatchEvent& e : seen_) {
      if (pred(e)) return true;
    }
    return false;
  }
  bool WaitFor(WatchKind kind, const std::string& path, const std::string& old_path = {}) {
    return WaitFor([&](const WatchEvent& e) {
      return e.kind == kind && e.path == path && e.root == 0 &&
             (old_path.empty() || e.old_path == old_path);
    });
  }
  std::string Seen() const {
    std::string s;
    for (const WatchEvent& e : seen_) s += ToString(e) + "; ";
    return s;
  }
  bool Any(const std::function<bool(const WatchEvent&)>& pred) const {
    for (const WatchEvent& e : seen_) {
      if (pred(e)) return true;
    }
    return false;
  }

  ManualClock clock_;
  std::string base_, spool_, outside_, skip_reason_;
  std::unique_ptr<Watcher> watcher_;
  std::vector<WatchEvent> seen_;
};

#define SKIP_WITHOUT_FANOTIFY() \
  if (!watcher_) GTEST_SKIP() << "fanotify filesystem mark unavailable: " << skip_reason_

TEST_P(WatcherTest, ReportsTheModeItRunsIn) {
  SKIP_WITHOUT_FANOTIFY();
  if (GetParam()) {
    EXPECT_EQ(watcher_->mode(), RenameMode::kMovePairs);
  }
  EXPECT_FALSE(watcher_->ModeDescription().empty());
  EXPECT_GE(watcher_->fd(), 0);
  RecordProperty("mode", watcher_->ModeDescription());
}

TEST_P(WatcherTest, CreateWriteCloseGiveCreateAndCloseWrite) {
  SKIP_WITHOUT_FANOTIFY();
  WriteFile(spool_ + "/a/job.1", "hello");
  EXPECT_TRUE(WaitFor(WatchKind::kCreate, "a/job.1")) << Seen();
  EXPECT_TRUE(WaitFor(WatchKind::kCloseWrite, "a/job.1")) << Seen();
}

TEST_P(WatcherTest, PreloadedDirectoriesNeedNoHandleLookup) {
  SKIP_WITHOUT_FANOTIFY();
  WriteFile(spool_ + "/a/x", "1");
  WriteFile(spool_ + "/b/y", "1");
  ASSERT_TRUE(WaitFor(WatchKind::kCloseWrite, "b/y")) << Seen();
  // name_to_handle_at at start-up and the kernel's fanotify handles must agree. (Misses
  // outside the spool are other activity on this shared filesystem.)
  EXPECT_EQ(watcher_->stats().translator.misses_inside, 0u);
}

TEST_P(WatcherTest, MkdirThenCreateInsideAtOnceSeesBoth) {
  SKIP_WITHOUT_FANOTIFY();
  ASSERT_EQ(::mkdir((spool_ + "/new").c_str(), 0755), 0);
  WriteFile(spool_ + "/new/inner", "x");
  ASSERT_EQ(::mkdir((spool_ + "/new/deeper").c_str(), 0755), 0);
  WriteFile(spool_ + "/new/deeper/f", "x");
  EXPECT_TRUE(WaitFor([](const WatchEvent& e) {
    return e.kind == WatchKind::kCreate && e.path == "new" && e.is_dir;
  })) << Seen();
  EXPECT_TRUE(WaitFor(WatchKind::kCloseWrite, "new/inner")) << Seen();
  EXPECT_TRUE(WaitFor(WatchKind::kCloseWrite, "new/deeper/f")) << Seen();
}

TEST_P(WatcherTest, FileRenameAcrossDirectories) {
  SKIP_WITHOUT_FANOTIFY();
  WriteFile(spool_ + "/a/f", "x");
  ASSERT_TRUE(WaitFor(WatchKind::kCloseWrite, "a/f")) << Seen();
  ASSERT_EQ(::rename((spool_ + "/a/f").c_str(), (spool_ + "/b/g").c_str()), 0);
  EXPECT_TRUE(WaitFor(WatchKind::kRename, "b/g", "a/f")) << Seen();
}

TEST_P(WatcherTest, DirectoryRenameThenEventsInsideCarryNewPath) {
  SKIP_WITHOUT_FANOTIFY();
  ASSERT_EQ(::mkdir((spool_ + "/a/sub").c_str(), 0755), 0);
  ASSERT_TRUE(WaitFor(WatchKind::kCreate, "a/sub")) << Seen();
  ASSERT_EQ(::rename((spool_ + "/a").c_str(), (spool_ + "/b/a2").c_str()), 0);
  EXPECT_TRUE(WaitFor(WatchKind::kRename, "b/a2", "a")) << Seen();
  WriteFile(spool_ + "/b/a2/sub/after", "x");
  EXPECT_TRUE(WaitFor(WatchKind::kCloseWrite, "b/a2/sub/after")) << Seen();
  EXPECT_FALSE(Any([](const WatchEvent& e) { return e.path.starts_with("a/sub/after"); }))
      << Seen();
}

TEST_P(WatcherTest, UnlinkAndRmdir) {
  SKIP_WITHOUT_FANOTIFY();
  WriteFile(spool_ + "/a/f", "x");
  ASSERT_EQ(::mkdir((spool_ + "/a/d").c_str(), 0755), 0);
  ASSERT_TRUE(WaitFor(WatchKind::kCloseWrite, "a/f")) << Seen();
  ASSERT_EQ(::unlink((spool_ + "/a/f").c_str()), 0);
  ASSERT_EQ(::rmdir((spool_ + "/a/d").c_str()), 0);
  EXPECT_TRUE(WaitFor(WatchKind::kDelete, "a/f")) << Seen();
  EXPECT_TRUE(WaitFor([](const WatchEvent& e) {
    return e.kind == WatchKind::kDelete && e.path == "a/d" && e.is_dir;
  })) << Seen();
}

TEST_P(WatcherTest, ChmodGivesAttrib) {
  SKIP_WITHOUT_FANOTIFY();
  WriteFile(spool_ + "/a/f", "x");
  ASSERT_TRUE(WaitFor(WatchKind::kCloseWrite, "a/f")) << Seen();
  ASSERT_EQ(::chmod((spool_ + "/a/f").c_str(), 0600), 0);
  EXPECT_TRUE(WaitFor(WatchKind::kAttrib, "a/f")) << Seen();
}

TEST_P(WatcherTest, WriteOutsideRootGivesNoEvent) {
  SKIP_WITHOUT_FANOTIFY();
  WriteFile(outside_ + "/noise", "x");
  ASSERT_EQ(::mkdir((outside_ + "/d").c_str(), 0755), 0);
  WriteFile(outside_ + "/d/noise2", "x");
  WriteFile(spool_ + "/sentinel", "x");  // queued after the noise
  ASSERT_TRUE(WaitFor(WatchKind::kCloseWrite, "sentinel")) << Seen();
  EXPECT_FALSE(Any([](const WatchEvent& e) { return e.path.find("noise") != std::string::npos; }))
      << Seen();
  EXPECT_GT(watcher_->stats().translator.dropped_outside, 0u);
}

TEST_P(WatcherTest, ModifiesOfAnOpenFileAreDebouncedIntoOne) {
  SKIP_WITHOUT_FANOTIFY();
  int fd = ::open((spool_ + "/log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(::write(fd, "line\n", 5), 5);
  WriteFile(spool_ + "/sentinel", "x");
  ASSERT_TRUE(WaitFor(WatchKind::kCloseWrite, "sentinel")) << Seen();
  EXPECT_FALSE(Any([](const WatchEvent& e) { return e.kind == WatchKind::kModify; }))
      << "the manual clock has not moved: the modify waits in the debouncer. " << Seen();
  clock_.AdvanceNs(kDefaultDebounceNs);
  watcher_->Tick();
  watcher_->Drain(&seen_, 1 << 16);
  int modifies = 0;
  for (const WatchEvent& e : seen_) modifies += e.kind == WatchKind::kModify && e.path == "log";
  EXPECT_EQ(modifies, 1) << Seen();
  ASSERT_EQ(::close(fd), 0);
}

TEST_P(WatcherTest, CloseWriteFlushesAtOnce) {
  SKIP_WITHOUT_FANOTIFY();
  int fd = ::open((spool_ + "/log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "line\n", 5), 5);
  ASSERT_EQ(::close(fd), 0);
  // No clock movement: the close-write must not wait for the debounce window.
  EXPECT_TRUE(WaitFor(WatchKind::kCloseWrite, "log")) << Seen();
  clock_.AdvanceNs(10 * kDefaultDebounceNs);
  watcher_->Tick();
  watcher_->Drain(&seen_, 1 << 16);
  EXPECT_FALSE(Any([](const WatchEvent& e) { return e.kind == WatchKind::kModify; })) << Seen();
}

TEST_P(WatcherTest, HardLinkGivesCreateForNewName) {
  SKIP_WITHOUT_FANOTIFY();
  WriteFile(spool_ + "/a/X.new", "state");
  ASSERT_TRUE(WaitFor(WatchKind::kCloseWrite, "a/X.new")) << Seen();
  ASSERT_EQ(::link((spool_ + "/a/X.new").c_str(), (spool_ + "/a/X").c_str()), 0);
  EXPECT_TRUE(WaitFor([](const WatchEvent& e) {
    return (e.kind == WatchKind::kCreate || e.kind == WatchKind::kRescan) && e.path == "a/X";
  })) << Seen();
}

TEST_P(WatcherTest, SymlinkGivesCreate) {
  SKIP_WITHOUT_FANOTIFY();
  ASSERT_EQ(::symlink("../elsewhere", (spool_ + "/a/link").c_str()), 0);
  EXPECT_TRUE(WaitFor(WatchKind::kCreate, "a/link")) << Seen();
}

TEST_P(WatcherTest, MoveIntoAndOutOfRoot) {
  SKIP_WITHOUT_FANOTIFY();
  WriteFile(outside_ + "/in", "x");
  ASSERT_EQ(::rename((outside_ + "/in").c_str(), (spool_ + "/in").c_str()), 0);
  EXPECT_TRUE(WaitFor(WatchKind::kCreate, "in")) << Seen();
  ASSERT_EQ(::rename((spool_ + "/b").c_str(), (outside_ + "/b").c_str()), 0);
  EXPECT_TRUE(WaitFor([](const WatchEvent& e) {
    return e.kind == WatchKind::kDelete && e.path == "b" && e.is_dir;
  })) << Seen();
}

INSTANTIATE_TEST_SUITE_P(Modes, WatcherTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "MovePairs" : "BestAvailable";
                         });

TEST(WatcherOpen, MissingRootIsNotFound) {
  ManualClock clock;
  WatcherOptions o;
  o.roots = {"/var/tmp/hasync-watch-does-not-exist"};
  Result<Watcher> w = Watcher::Open(o, &clock);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kNotFound) << w.status().ToString();
}

TEST(WatcherOpen, NestedRootsAreRejected) {
  ManualClock clock;
  WatcherOptions o;
  o.roots = {"/var/tmp", "/var/tmp/.."};
  Result<Watcher> w = Watcher::Open(o, &clock);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kInvalidArgument) << w.status().ToString();
  EXPECT_NE(w.status().message().find("overlap"), std::string::npos);
}

TEST(WatcherOpen, ZeroCacheIsOutOfRange) {
  ManualClock clock;
  WatcherOptions o;
  o.roots = {"/var/tmp"};
  o.handle_cache_entries = 0;
  Result<Watcher> w = Watcher::Open(o, &clock);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kOutOfRange);
}

}  // namespace
}  // namespace hasync::engine::watch
