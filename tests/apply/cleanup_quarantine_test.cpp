// Start-up cleanup of stale temps, and quarantine of divergent files on rejoin.
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <string>

#include "engine/apply/quarantine.h"
#include "engine/apply/tree.h"
#include "tests/apply/test_util.h"

namespace hasync::engine::apply {
namespace {

using testing::Exists;
using testing::Lstat;
using testing::ReadFile;
using testing::TempDir;
using testing::TempNamesUnder;
using testing::WriteFile;

class CleanupTest : public testing::TreeFixture {};

TEST_F(CleanupTest, RemovesOnlyTempNamesAnywhereInTheTree) {
  ASSERT_EQ(::mkdir(R("d").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(R("d/e").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(R(".hasync-tmp.0123456789abcdef"), "stale"));
  ASSERT_TRUE(WriteFile(R("d/e/.hasync-tmp.feedface"), "stale"));
  ASSERT_EQ(::symlink("x", R("d/.hasync-tmp.link").c_str()), 0);
  // Look-alikes that are not ours stay.
  ASSERT_TRUE(WriteFile(R("hasync-tmp.keep"), "k"));
  ASSERT_TRUE(WriteFile(R("d/.hasync-tmpkeep"), "k"));
  ASSERT_TRUE(WriteFile(R("d/e/job.hasync-tmp.keep"), "k"));
  ASSERT_TRUE(WriteFile(R("d/e/state"), "k"));

  auto report = tree().RemoveStaleTemps();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->removed, 3u);
  EXPECT_TRUE(TempNamesUnder(root_).empty());
  EXPECT_TRUE(Exists(R("hasync-tmp.keep")));
  EXPECT_TRUE(Exists(R("d/.hasync-tmpkeep")));
  EXPECT_TRUE(Exists(R("d/e/job.hasync-tmp.keep")));
  EXPECT_TRUE(Exists(R("d/e/state")));
  EXPECT_EQ(tree().stats().temps_removed, 3u);
}

TEST_F(CleanupTest, DoesNotFollowASymlinkedDirectory) {
  ASSERT_TRUE(WriteFile(O(".hasync-tmp.notmine"), "outside"));
  ASSERT_EQ(::symlink(outside_.c_str(), R("link").c_str()), 0);
  auto report = tree().RemoveStaleTemps();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->removed, 0u);
  EXPECT_EQ(ReadFile(O(".hasync-tmp.notmine")), "outside");
}

TEST_F(CleanupTest, LeavesADirectoryWithTheTempPrefixInPlace) {
  ASSERT_EQ(::mkdir(R(".hasync-tmp.dir").c_str(), 0755), 0);
  auto report = tree().RemoveStaleTemps();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(Exists(R(".hasync-tmp.dir")));
}

class QuarantineTest : public testing::TreeFixture {
 protected:
  void SetUp() override {
    TreeFixture::SetUp();
    state_ = dir_ / "state";
    ASSERT_EQ(::mkdir(state_.c_str(), 0700), 0);
  }
  std::string S(std::string_view rel) const { return state_ + "/" + std::string(rel); }
  std::string state_;
};

TEST_F(QuarantineTest, MovesTheFileUnderItsEpochAndCountsIt) {
  ASSERT_EQ(::mkdir(R("jobs").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(R("jobs/42.JB"), "my version", 0640));
  ino_t ino = Lstat(R("jobs/42.JB")).st_ino;
  auto q = Quarantine::Open(state_);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  auto kept = q->Keep(tree(), "jobs/42.JB", 7);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(*kept, "quarantine/7/jobs/42.JB");
  EXPECT_FALSE(Exists(R("jobs/42.JB")));
  EXPECT_EQ(ReadFile(S("quarantine/7/jobs/42.JB")), "my version");
  EXPECT_EQ(Lstat(S("quarantine/7/jobs/42.JB")).st_ino, ino) << "same filesystem: a rename";
  EXPECT_EQ(q->files_quarantined(), 1u);
}

// Issue 16: renamed into quarantine, a file with another link kept sharing its inode
// with the live name, so the next change through that name changed the kept copy too.
TEST_F(QuarantineTest, AFileWithOtherLinksIsCopiedAndSharesNoInodeWithALiveName) {
  ASSERT_TRUE(WriteFile(R("state"), "my version", 0640));
  ASSERT_EQ(::link(R("state").c_str(), R("state.old").c_str()), 0);
  const ino_t live = Lstat(R("state.old")).st_ino;
  auto q = Quarantine::Open(state_);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  auto kept = q->Keep(tree(), "state", 4);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(*kept, "quarantine/4/state");
  EXPECT_FALSE(Exists(R("state")));
  EXPECT_EQ(ReadFile(S("quarantine/4/state")), "my version");
  EXPECT_NE(Lstat(S("quarantine/4/state")).st_ino, live);
  EXPECT_EQ(Lstat(S("quarantine/4/state")).st_nlink, 1u);
  EXPECT_EQ(Lstat(S("quarantine/4/state")).st_mode & 07777, 0640u);
  EXPECT_EQ(Lstat(R("state.old")).st_nlink, 1u) << "the live name keeps its inode alone";
  EXPECT_EQ(ReadFile(R("state.old")), "my version");
}

TEST_F(QuarantineTest, SecondCopyInTheSameEpochGetsASuffix) {
  auto q = Quarantine::Open(state_);
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(WriteFile(R("f"), "first"));
  ASSERT_TRUE(q->Keep(tree(), "f", 3).ok());
  ASSERT_TRUE(WriteFile(R("f"), "second"));
  auto kept = q->Keep(tree(), "f", 3);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(*kept, "quarantine/3/f.1");
  EXPECT_EQ(ReadFile(S("quarantine/3/f")), "first");
  EXPECT_EQ(ReadFile(S("quarantine/3/f.1")), "second");
  EXPECT_EQ(q->files_quarantined(), 2u);
}

TEST_F(QuarantineTest, MissingPathIsNotFoundAndNotCounted) {
  auto q = Quarantine::Open(state_);
  ASSERT_TRUE(q.ok());
  auto kept = q->Keep(tree(), "nope", 1);
  EXPECT_EQ(kept.status().code(), Code::kNotFound) << kept.status().ToString();
  EXPECT_EQ(q->files_quarantined(), 0u);
}

TEST_F(QuarantineTest, SymlinkIsKeptAsASymlink) {
  ASSERT_EQ(::symlink("/etc/hosts", R("l").c_str()), 0);
  auto q = Quarantine::Open(state_);
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(q->Keep(tree(), "l", 2).ok());
  EXPECT_TRUE(S_ISLNK(Lstat(S("quarantine/2/l")).st_mode));
}

TEST_F(QuarantineTest, SymlinkedParentIsRefused) {
  ASSERT_TRUE(WriteFile(O("victim"), "outside"));
  ASSERT_EQ(::symlink(outside_.c_str(), R("a").c_str()), 0);
  auto q = Quarantine::Open(state_);
  ASSERT_TRUE(q.ok());
  auto kept = q->Keep(tree(), "a/victim", 1);
  EXPECT_EQ(kept.status().code(), Code::kInvalidArgument) << kept.status().ToString();
  EXPECT_EQ(ReadFile(O("victim")), "outside");
}

TEST_F(QuarantineTest, AcrossFilesystemsTheFileIsCopiedThenRemoved) {
  struct statfs shm {};
  if (::statfs("/dev/shm", &shm) != 0) GTEST_SKIP() << "no /dev/shm for a second filesystem";
  TempDir other("/dev/shm");
  ASSERT_TRUE(other.ok());
  if (Lstat(other.path()).st_dev == Lstat(root_).st_dev) {
    GTEST_SKIP() << "/dev/shm is on the same filesystem as /tmp here";
  }
  ASSERT_TRUE(WriteFile(R("f"), "cross-fs", 0604));
  auto q = Quarantine::Open(other.path());
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  auto kept = q->Keep(tree(), "f", 9);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_FALSE(Exists(R("f")));
  std::string copy = other / "quarantine/9/f";
  EXPECT_EQ(ReadFile(copy), "cross-fs");
  EXPECT_EQ(Lstat(copy).st_mode & 07777, 0604u);
  EXPECT_EQ(q->files_quarantined(), 1u);
}

}  // namespace
}  // namespace hasync::engine::apply
