// Group commit and faults: what is synced when, and that a sync or space failure is
// reported (no durable report, no temp left, old content intact), never retried.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "engine/apply/tree.h"
#include "engine/apply/uring_sync.h"
#include "tests/apply/test_util.h"

namespace hasync::engine::apply {
namespace {

using testing::Bytes;
using testing::Exists;
using testing::FaultFs;
using testing::HashOf;
using testing::ReadFile;
using testing::StageWhole;
using testing::TempNamesUnder;
using testing::WriteFile;

class CommitTest : public testing::TreeFixture {
 protected:
  void SetUp() override {
    TreeFixture::SetUp();
    ASSERT_TRUE(WriteFile(R("X"), "old content"));
    OpenTree({}, &faults_);
  }
  FaultFs faults_;
};

TEST_F(CommitTest, EachTempAndEachTouchedDirectoryIsSyncedOnce) {
  ASSERT_EQ(::mkdir(R("d").c_str(), 0755), 0);
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "d/1", "a").ok());
  ASSERT_TRUE(StageWhole(batch, "d/2", "b").ok());
  ASSERT_TRUE(StageWhole(batch, "d/3", "c").ok());
  ASSERT_TRUE(batch.Unlink("X").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(tree().stats().file_syncs, 3u);
  EXPECT_EQ(tree().stats().dir_syncs, 2u) << "d and the root, once each";
  EXPECT_EQ(faults_.calls(FaultFs::kFsync), 5);
  EXPECT_EQ(faults_.calls(FaultFs::kSyncfs), 0);
}

TEST_F(CommitTest, SyncfsStrategyIssuesOneSyncfsPerPhase) {
  TreeOptions options;
  options.sync = SyncStrategy::kSyncfs;
  OpenTree(options, &faults_);
  Batch batch(tree());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(StageWhole(batch, "f" + std::to_string(i), "data").ok());
  }
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(faults_.calls(FaultFs::kSyncfs), 2) << "temps, then names";
  EXPECT_EQ(faults_.calls(FaultFs::kFsync), 0);
  EXPECT_EQ(ReadFile(R("f9")), "data");
}

TEST_F(CommitTest, FsyncEioOnATempFailsTheBatchAndKeepsTheOldContent) {
  faults_.FailNth(FaultFs::kFsync, 2, EIO);
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "new", "n").ok());
  ASSERT_TRUE(StageWhole(batch, "X", "replacement").ok());
  Status s = batch.Commit();
  EXPECT_EQ(s.code(), Code::kIo) << s.ToString();
  EXPECT_NE(s.message().find("fsync temp of X"), std::string::npos) << s.ToString();
  EXPECT_EQ(ReadFile(R("X")), "old content");
  EXPECT_FALSE(Exists(R("new"))) << "nothing of the batch is published";
  EXPECT_TRUE(TempNamesUnder(root_).empty());
  EXPECT_EQ(tree().stats().batches_failed, 1u);
  EXPECT_EQ(tree().stats().batches_committed, 0u);
}

TEST_F(CommitTest, FsyncErrorIsNotRetried) {
  faults_.FailNth(FaultFs::kFsync, 1, EIO);
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "X", "replacement").ok());
  EXPECT_FALSE(batch.Commit().ok());
  EXPECT_EQ(faults_.calls(FaultFs::kFsync), 1) << "one fsync, one failure, no second try";
}

TEST_F(CommitTest, EnospcOnWriteFailsTheBatchAndLeavesNoTemp) {
  faults_.FailAll(FaultFs::kPwrite, ENOSPC);
  Batch batch(tree());
  Status s = StageWhole(batch, "X", "replacement");
  EXPECT_EQ(s.code(), Code::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("X"), std::string::npos);
  EXPECT_TRUE(TempNamesUnder(root_).empty());
  EXPECT_EQ(batch.Commit().code(), Code::kResourceExhausted);
  EXPECT_EQ(ReadFile(R("X")), "old content");
}

TEST_F(CommitTest, EnospcOnFsyncFailsTheBatchLikeEio) {
  faults_.FailNth(FaultFs::kFsync, 1, ENOSPC);
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "X", "replacement").ok());
  Status s = batch.Commit();
  EXPECT_EQ(s.code(), Code::kResourceExhausted) << s.ToString();
  EXPECT_EQ(ReadFile(R("X")), "old content");
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

TEST_F(CommitTest, EnospcWhileCloningAPatchBaseFailsTheBatch) {
  faults_.FailAll(FaultFs::kClone, EOPNOTSUPP);  // force the copy path even on reflink fs
  faults_.FailAll(FaultFs::kCopyRange, ENOSPC);
  Batch batch(tree());
  auto id = batch.BeginFile("X", ContentBase::kCurrent);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), Code::kResourceExhausted) << id.status().ToString();
  EXPECT_TRUE(TempNamesUnder(root_).empty());
  EXPECT_EQ(ReadFile(R("X")), "old content");
}

TEST_F(CommitTest, PatchFallsBackToCopyWhenReflinkIsUnsupported) {
  faults_.FailAll(FaultFs::kClone, EOPNOTSUPP);
  Batch batch(tree());
  auto id = batch.BeginFile("X", ContentBase::kCurrent);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(batch.WriteExtent(*id, 0, Bytes("OLD")).ok());
  ASSERT_TRUE(batch.FinishFile(*id, 11, {}, HashOf("OLD content")).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("X")), "OLD content");
  EXPECT_GE(faults_.calls(FaultFs::kCopyRange), 1);
}

TEST_F(CommitTest, DirectorySyncFailureMeansNoDurableReport) {
  // The temp fsync succeeds; the directory fsync after the publish fails.
  faults_.FailNth(FaultFs::kFsync, 2, EIO);
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "X", "replacement").ok());
  Status s = batch.Commit();
  EXPECT_EQ(s.code(), Code::kIo) << s.ToString();
  EXPECT_NE(s.message().find("fsync ."), std::string::npos) << s.ToString();
  EXPECT_TRUE(TempNamesUnder(root_).empty());
  EXPECT_EQ(tree().stats().batches_committed, 0u);
}

TEST_F(CommitTest, SyncfsFailureFailsTheBatch) {
  TreeOptions options;
  options.sync = SyncStrategy::kSyncfs;
  OpenTree(options, &faults_);
  faults_.FailNth(FaultFs::kSyncfs, 1, EIO);
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "X", "replacement").ok());
  Status s = batch.Commit();
  EXPECT_EQ(s.code(), Code::kIo);
  EXPECT_NE(s.message().find("syncfs"), std::string::npos) << s.ToString();
  EXPECT_EQ(ReadFile(R("X")), "old content");
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

TEST_F(CommitTest, EmptyBatchCommitsWithoutSyncing) {
  Batch batch(tree());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(faults_.calls(FaultFs::kFsync), 0);
  EXPECT_EQ(tree().stats().batches_committed, 1u);
}

}  // namespace
}  // namespace hasync::engine::apply

namespace hasync::engine::apply {
namespace {

using testing::ReadFile;
using testing::StageWhole;

class UringCommitTest : public testing::TreeFixture {};

TEST_F(UringCommitTest, ConcurrentFsyncsCommitABatch) {
  auto ops = UringFsOps::Create(8);
  if (!ops.ok()) GTEST_SKIP() << "io_uring unavailable here: " << ops.status().ToString();
  OpenTree({}, ops->get());
  Batch batch(tree());
  for (int i = 0; i < 20; ++i) {  // more than the ring holds: several windows
    ASSERT_TRUE(StageWhole(batch, "f" + std::to_string(i), std::to_string(i)).ok());
  }
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("f19")), "19");
  EXPECT_EQ(tree().stats().file_syncs, 20u);
}

TEST_F(UringCommitTest, FailedFsyncReportsTheLowestFailingIndex) {
  auto ops = UringFsOps::Create(4);
  if (!ops.ok()) GTEST_SKIP() << "io_uring unavailable here: " << ops.status().ToString();
  int good = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int bad = ::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);  // fsync refuses O_PATH
  ASSERT_GE(good, 0);
  ASSERT_GE(bad, 0);
  std::vector<int> fds = {good, good, good, good, good, bad, good, bad};
  size_t failed = 99;
  int err = (*ops)->SyncAll(fds, &failed);
  ::close(good);
  ::close(bad);
  EXPECT_EQ(err, EBADF);
  EXPECT_EQ(failed, 5u);
}

}  // namespace
}  // namespace hasync::engine::apply
