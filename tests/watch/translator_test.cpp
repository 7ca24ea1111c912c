// Translator rules on synthetic events with a fake filesystem: no root, no fanotify.
#include "engine/watch/translator.h"

#include <gtest/gtest.h>
#include <sys/fanotify.h>

#include <deque>
#include <map>

#include "engine/watch/clock.h"
#include "tests/watch/fan_buffer.h"

namespace hasync::engine::watch {
namespace {

constexpr uint64_t kFs = 42;

// Directories by handle text; every key is HandleCache::Key(kFs, 1, handle).
class FakeResolver final : public DirResolver {
 public:
  void Add(const std::string& handle, const std::string& path) {
    dirs_[HandleCache::Key(kFs, 1, handle)] = path;
  }
  void Remove(const std::string& handle) { dirs_.erase(HandleCache::Key(kFs, 1, handle)); }
  void Move(const std::string& handle, const std::string& path) { Add(handle, path); }

  Result<std::string> PathOf(std::string_view key) override {
    ++path_of_calls;
    if (key == HandleCache::Key(kFs, 1, "broken")) return Status(Code::kIo, "EIO");
    auto it = dirs_.find(std::string(key));
    if (it == dirs_.end()) return Status(Code::kNotFound, "gone");
    return it->second;
  }
  Result<std::string> KeyOf(uint64_t, const std::string& abs) override {
    for (const auto& [k, p] : dirs_) {
      if (p == abs) return k;
    }
    return Status(Code::kNotFound, "no dir " + abs);
  }
  Status ListDirs(uint64_t, const std::string& root, size_t max,
                  std::vector<std::pair<std::string, std::string>>* out) override {
    for (const auto& [k, p] : dirs_) {
      if (out->size() < max && HandleCache::IsAtOrUnder(p, root)) out->emplace_back(k, p);
    }
    return Status::Ok();
  }
  int path_of_calls = 0;

 private:
  std::map<std::string, std::string> dirs_;
};

class TranslatorTest : public ::testing::Test {
 protected:
  void Make(bool move_pairs = false, size_t cache = 64) {
    fs_.Add("root", "/srv/spool");
    fs_.Add("root2", "/srv/other");
    fs_.Add("srv", "/srv");
    fs_.Add("jobs", "/srv/spool/jobs");
    fs_.Add("outside", "/home/u");
    TranslatorOptions o;
    o.roots = {{"/srv/spool", kFs}, {"/srv/other", kFs}};
    o.handle_cache_entries = cache;
    o.debounce_ns = 30'000'000;
    o.debounce_max_pending = 16;
    o.move_pairs = move_pairs;
    t_ = std::make_unique<Translator>(o, &fs_, &clock_);
    t_->Preload();
  }
  Fid F(const std::string& handle) {
    handles_.push_back(handle);
    return Fid{kFs, 1, handles_.back()};
  }
  RawEvent Ev(uint64_t mask, const std::string& dir, const std::string& name) {
    RawEvent ev;
    ev.mask = mask;
    ev.has_dir = true;
    ev.dir = F(dir);
    names_.push_back(name);
    ev.name = names_.back();
    return ev;
  }
  RawEvent WithObject(RawEvent ev, const std::string& object) {
    ev.has_object = true;
    ev.object = F(object);
    return ev;
  }
  RawEvent Rename(const std::string& odir, const std::string& oname, const std::string& ndir,
                  const std::string& nname, bool is_dir, const std::string& object = "") {
    RawEvent ev = Ev(FAN_RENAME | (is_dir ? FAN_ONDIR : 0), odir, oname);
    ev.has_new_dir = true;
    ev.new_dir = F(ndir);
    names_.push_back(nname);
    ev.new_name = names_.back();
    if (!object.empty()) ev = WithObject(ev, object);
    return ev;
  }
  std::vector<WatchEvent> Run(const RawEvent& ev) {
    std::vector<WatchEvent> out;
    t_->Process(ev, &out);
    return out;
  }
  static WatchEvent E(WatchKind k, std::string path, bool dir = false, uint32_t root = 0,
                      std::string old = {}) {
    return WatchEvent{k, root, std::move(path), std::move(old), dir};
  }

  FakeResolver fs_;
  ManualClock clock_;
  std::unique_ptr<Translator> t_;
  std::deque<std::string> handles_;
  std::deque<std::string> names_;
};

TEST_F(TranslatorTest, CreateInsideRootHasPathRelativeToRoot) {
  Make();
  auto out = Run(Ev(FAN_CREATE, "jobs", "123.JB"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kCreate, "jobs/123.JB"));
  EXPECT_EQ(fs_.path_of_calls, 0) << "pre-loaded directories need no syscall";
}

TEST_F(TranslatorTest, SecondRootGetsItsIndex) {
  Make();
  auto out = Run(Ev(FAN_CLOSE_WRITE, "root2", "x"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kCloseWrite, "x", false, 1));
}

TEST_F(TranslatorTest, OutsideEventIsDroppedAndRemembered) {
  Make();
  EXPECT_TRUE(Run(Ev(FAN_CLOSE_WRITE, "outside", "a")).empty());
  EXPECT_TRUE(Run(Ev(FAN_CLOSE_WRITE, "outside", "b")).empty());
  EXPECT_EQ(fs_.path_of_calls, 1) << "the second event is filtered by the cache alone";
  EXPECT_EQ(t_->stats().dropped_outside, 2u);
}

TEST_F(TranslatorTest, EventFromUnmarkedFilesystemIsDropped) {
  Make();
  RawEvent ev = Ev(FAN_CREATE, "jobs", "x");
  ev.dir.fsid = 99;
  EXPECT_TRUE(Run(ev).empty());
  EXPECT_EQ(t_->stats().dropped_foreign, 1u);
}

TEST_F(TranslatorTest, MkdirWithTargetFidIsLearnedWithoutSyscall) {
  Make();
  auto out = Run(WithObject(Ev(FAN_CREATE | FAN_ONDIR, "jobs", "new"), "newdir"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kCreate, "jobs/new", true));
  out = Run(Ev(FAN_CREATE, "newdir", "f"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].path, "jobs/new/f");
  EXPECT_EQ(fs_.path_of_calls, 0);
}

TEST_F(TranslatorTest, EventOnDirectoryItselfUsesItsOwnPath) {
  Make();
  auto out = Run(Ev(FAN_ATTRIB | FAN_ONDIR, "jobs", "."));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kAttrib, "jobs", true));
}

TEST_F(TranslatorTest, CreateModifyCloseMergedComeOutInOrder) {
  Make();
  auto out = Run(Ev(FAN_CREATE | FAN_MODIFY | FAN_CLOSE_WRITE, "jobs", "x"));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].kind, WatchKind::kCreate);
  EXPECT_EQ(out[1].kind, WatchKind::kCloseWrite);
  EXPECT_EQ(t_->debounce_pending(), 0u);
}

TEST_F(TranslatorTest, MergedCreateAndDeleteBecomeRescanOfThatName) {
  Make();
  // Slurm's "unlink X; link X.new X" merges into one CREATE|DELETE event on X.
  auto out = Run(Ev(FAN_CREATE | FAN_DELETE, "jobs", "X"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kRescan, "jobs/X"));
}

TEST_F(TranslatorTest, ModifyIsDebouncedAndCloseWriteFlushesAtOnce) {
  Make();
  EXPECT_TRUE(Run(Ev(FAN_MODIFY, "root", "log")).empty());
  EXPECT_TRUE(Run(Ev(FAN_MODIFY, "root", "log")).empty());
  EXPECT_EQ(t_->stats().coalesced_modify, 1u);
  std::vector<WatchEvent> out;
  t_->FlushDue(&out);
  EXPECT_TRUE(out.empty());
  clock_.AdvanceNs(30'000'000);
  t_->FlushDue(&out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kModify, "log"));

  EXPECT_TRUE(Run(Ev(FAN_MODIFY, "root", "log")).empty());
  out = Run(Ev(FAN_CLOSE_WRITE, "root", "log"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kCloseWrite, "log"));
  clock_.AdvanceNs(60'000'000);
  out.clear();
  t_->FlushDue(&out);
  EXPECT_TRUE(out.empty()) << "the close-write superseded the pending modify";
}

// A write through a descriptor whose name now holds another file is reported under
// that name: the debounced modify keeps which inode it was about, a modify of the other
// inode does not swallow it, and neither does the other inode's close.
TEST_F(TranslatorTest, ADebouncedModifyKeepsItsInodeAgainstAnotherInodesEventsUnderTheName) {
  Make();
  EXPECT_TRUE(Run(WithObject(Ev(FAN_MODIFY, "root", "x"), "inode-a")).empty());
  auto out = Run(WithObject(Ev(FAN_MODIFY, "root", "x"), "inode-b"));
  ASSERT_EQ(out.size(), 1u) << "inode a's modify goes out when inode b's arrives";
  EXPECT_EQ(out[0], E(WatchKind::kModify, "x"));
  const std::string a = out[0].object;
  EXPECT_FALSE(a.empty());
  out = Run(WithObject(Ev(FAN_MODIFY | FAN_CLOSE_WRITE, "root", "x"), "inode-a"));
  ASSERT_EQ(out.size(), 2u) << "inode a's close does not cancel inode b's pending modify";
  EXPECT_EQ(out[0], E(WatchKind::kModify, "x"));
  EXPECT_EQ(out[1], E(WatchKind::kCloseWrite, "x"));
  EXPECT_NE(out[0].object, a);
  EXPECT_FALSE(out[0].object.empty());
  EXPECT_EQ(out[1].object, a);
  EXPECT_TRUE(Run(WithObject(Ev(FAN_MODIFY, "root", "x"), "inode-a")).empty());
  clock_.AdvanceNs(30'000'000);
  out.clear();
  t_->FlushDue(&out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].object, a) << "the debounced modify carries its inode";
}

TEST_F(TranslatorTest, DeleteEmitsPendingModifyFirst) {
  Make();
  Run(Ev(FAN_MODIFY, "jobs", "f"));
  auto out = Run(Ev(FAN_DELETE, "jobs", "f"));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], E(WatchKind::kModify, "jobs/f"));
  EXPECT_EQ(out[1], E(WatchKind::kDelete, "jobs/f"));
}

TEST_F(TranslatorTest, FileRenameWithinRoot) {
  Make();
  auto out = Run(Rename("jobs", "a.new", "root", "a", false));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kRename, "a", false, 0, "jobs/a.new"));
}

TEST_F(TranslatorTest, DirectoryRenameCorrectsCachedSubtree) {
  Make();
  fs_.Add("deep", "/srv/spool/jobs/deep");
  Make();  // pre-load the new directory too
  auto out = Run(Rename("root", "jobs", "root", "jobs2", true, "jobs"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kRename, "jobs2", true, 0, "jobs"));
  fs_.Move("jobs", "/srv/spool/jobs2");
  fs_.Move("deep", "/srv/spool/jobs2/deep");
  out = Run(Ev(FAN_CREATE, "deep", "x"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].path, "jobs2/deep/x");
}

TEST_F(TranslatorTest, SettledSubtreeIsRewrittenWithoutSyscall) {
  Make();
  std::vector<WatchEvent> out;
  t_->EndOfBatch(&out);  // queue seen empty: pre-loaded entries are exact now
  Run(Rename("root", "jobs", "root", "jobs2", true, "jobs"));
  const int calls = fs_.path_of_calls;
  out = Run(Ev(FAN_CREATE, "jobs", "x"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].path, "jobs2/x");
  EXPECT_EQ(fs_.path_of_calls, calls);
}

TEST_F(TranslatorTest, DirectoryResolvedAfterItsRenameCausesRescan) {
  Make();
  // "new" is first seen (resolved by syscall) at its *current* path, which is already
  // the post-rename one; the rename event is still queued behind.
  fs_.Add("sub", "/srv/spool/b/sub");
  auto out = Run(Ev(FAN_CREATE, "sub", "f"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].path, "b/sub/f");
  out = Run(Rename("root", "a", "root", "b", true));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], E(WatchKind::kRename, "b", true, 0, "a"));
  EXPECT_EQ(out[1], E(WatchKind::kRescan, "b", true));
}

TEST_F(TranslatorTest, RenameAcrossRootBoundary) {
  Make();
  auto out = Run(Rename("jobs", "f", "outside", "f", false));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kDelete, "jobs/f"));
  out = Run(Rename("outside", "g", "jobs", "g", false));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kCreate, "jobs/g"));
  out = Run(Rename("outside", "d", "jobs", "d", true));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kRescan, "jobs/d", true));
  out = Run(Rename("jobs", "h", "root2", "h", false));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], E(WatchKind::kDelete, "jobs/h"));
  EXPECT_EQ(out[1], E(WatchKind::kCreate, "h", false, 1));
}

TEST_F(TranslatorTest, RenamingTheRootsParentMovesTheRoot) {
  Make();
  auto out = Run(Rename("srv", "spool", "srv", "spool.moved", true, "root"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kRescan, "", true));
  EXPECT_EQ(t_->roots()[0].path, "/srv/spool.moved");
  out = Run(Ev(FAN_CREATE, "root", "x"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kCreate, "x"));
}

TEST_F(TranslatorTest, DeletingTheRootRescansIt) {
  Make();
  auto out = Run(Ev(FAN_DELETE | FAN_ONDIR, "srv", "spool"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kRescan, "", true));
  EXPECT_EQ(t_->stats().roots_deleted, 1u);
}

TEST_F(TranslatorTest, RootSelfEventRescansRoot) {
  Make();
  auto out = Run(Ev(FAN_DELETE_SELF | FAN_ONDIR, "root", "."));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kRescan, "", true));
}

TEST_F(TranslatorTest, EventsInsideARemovedDirectoryAreLeftToItsRemoval) {
  Make();
  EXPECT_TRUE(Run(Ev(FAN_CREATE, "vanished", "x")).empty());
  EXPECT_EQ(t_->stats().gone, 1u);
  EXPECT_EQ(t_->stats().rescans, 0u);
  // The removal itself comes from a parent that still exists.
  auto out = Run(Ev(FAN_DELETE | FAN_ONDIR, "jobs", "vanished"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kDelete, "jobs/vanished", true));
}

TEST_F(TranslatorTest, RenameOutOfARemovedDirectoryIsAnArrival) {
  Make();
  auto out = Run(Rename("vanished", "x", "jobs", "y", false));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kCreate, "jobs/y"));
  out = Run(Rename("jobs", "z", "vanished", "z", false));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kDelete, "jobs/z"));
}

TEST_F(TranslatorTest, UnresolvableHandleRescansRootsOnItsFilesystem) {
  Make();
  auto out = Run(Ev(FAN_CREATE, "broken", "x"));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], E(WatchKind::kRescan, "", true, 0));
  EXPECT_EQ(out[1], E(WatchKind::kRescan, "", true, 1));
  EXPECT_EQ(t_->stats().unresolved, 1u);
}

TEST_F(TranslatorTest, EvictedDirectoryIsResolvedAgain) {
  Make(false, /*cache=*/2);
  fs_.Add("d1", "/srv/spool/d1");
  fs_.Add("d2", "/srv/spool/d2");
  fs_.Add("d3", "/srv/spool/d3");
  for (const char* d : {"d1", "d2", "d3", "d1"}) {
    auto out = Run(Ev(FAN_CLOSE_WRITE, d, "f"));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].path, std::string(d) + "/f");
  }
  EXPECT_GE(t_->cache().evictions(), 2u);
}

TEST_F(TranslatorTest, OverflowBufferRescansEveryRootAndReloadsCache) {
  Make();
  std::string buf = testing::Event(FAN_Q_OVERFLOW, "");
  std::vector<RawEvent> raw;
  ASSERT_TRUE(ParseEvents(buf, &raw).ok());
  ASSERT_EQ(raw.size(), 1u);
  Run(Ev(FAN_MODIFY, "jobs", "log"));
  auto out = Run(raw[0]);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], E(WatchKind::kModify, "jobs/log")) << "pending modifies are not lost";
  EXPECT_EQ(out[1], E(WatchKind::kRescan, "", true, 0));
  EXPECT_EQ(out[2], E(WatchKind::kRescan, "", true, 1));
  EXPECT_EQ(t_->stats().overflows, 1u);
  EXPECT_GT(t_->cache().size(), 0u);
}

TEST_F(TranslatorTest, MovePairsMakeOneRename) {
  Make(/*move_pairs=*/true);
  EXPECT_TRUE(Run(Ev(FAN_MOVED_FROM, "jobs", "a")).empty());
  auto out = Run(Ev(FAN_MOVED_TO, "root", "b"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kRename, "b", false, 0, "jobs/a"));
  EXPECT_EQ(t_->stats().renames_paired, 1u);
}

TEST_F(TranslatorTest, UnpairedMovesBecomeDeleteAndRescan) {
  Make(/*move_pairs=*/true);
  EXPECT_TRUE(Run(Ev(FAN_MOVED_FROM | FAN_ONDIR, "root", "jobs")).empty());
  std::vector<WatchEvent> out;
  t_->EndOfBatch(&out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kDelete, "jobs", true));
  out = Run(Ev(FAN_MOVED_TO | FAN_ONDIR, "root", "jobs3"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], E(WatchKind::kRescan, "jobs3", true));
}

TEST_F(TranslatorTest, MoveFromInterruptedByOtherEventIsNotPaired) {
  Make(/*move_pairs=*/true);
  Run(Ev(FAN_MOVED_FROM, "jobs", "a"));
  auto out = Run(Ev(FAN_CLOSE_WRITE, "jobs", "z"));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], E(WatchKind::kDelete, "jobs/a"));
  EXPECT_EQ(out[1], E(WatchKind::kCloseWrite, "jobs/z"));
}

}  // namespace
}  // namespace hasync::engine::watch
