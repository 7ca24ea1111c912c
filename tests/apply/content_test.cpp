// Content publish: new files, overwrites, block patches, sparse files, hash checks.
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "engine/apply/tree.h"
#include "tests/apply/test_util.h"

namespace hasync::engine::apply {
namespace {

using testing::Bytes;
using testing::Exists;
using testing::HashOf;
using testing::Lstat;
using testing::ReadFile;
using testing::StageWhole;
using testing::TempNamesUnder;
using testing::WriteFile;

class ContentTest : public testing::TreeFixture {};

TEST_F(ContentTest, NewFileIsPublishedWithItsContent) {
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "job.state", "hello").ok());
  EXPECT_FALSE(Exists(R("job.state"))) << "nothing is visible before Commit";
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("job.state")), "hello");
  EXPECT_TRUE(TempNamesUnder(root_).empty());
  EXPECT_EQ(tree().stats().files_published, 1u);
}

TEST_F(ContentTest, OverwriteReplacesContentWithANewInode) {
  ASSERT_TRUE(WriteFile(R("f"), "old content"));
  ino_t before = Lstat(R("f")).st_ino;
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "f", "new").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("f")), "new");
  EXPECT_NE(Lstat(R("f")).st_ino, before) << "published by rename, never written in place";
}

TEST_F(ContentTest, EmptyFileIsPublished) {
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "empty", "").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("empty")), "");
  EXPECT_EQ(Lstat(R("empty")).st_size, 0);
}

TEST_F(ContentTest, FileInSubdirectoryIsPublishedThere) {
  ASSERT_EQ(::mkdir(R("a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(R("a/b").c_str(), 0755), 0);
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "a/b/c", "deep").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("a/b/c")), "deep");
}

TEST_F(ContentTest, BlockPatchAppendShipsOnlyTheTail) {
  std::string base(64 * 1024, 'a');
  ASSERT_TRUE(WriteFile(R("log"), base));
  std::string tail = "appended line\n";
  std::string want = base + tail;
  Batch batch(tree());
  auto id = batch.BeginFile("log", ContentBase::kCurrent);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(batch.WriteExtent(*id, base.size(), Bytes(tail)).ok());
  ASSERT_TRUE(batch.FinishFile(*id, want.size(), {}, HashOf(want)).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("log")), want);
  EXPECT_EQ(tree().stats().bytes_written, tail.size());
  EXPECT_EQ(tree().stats().bytes_cloned, base.size());
}

TEST_F(ContentTest, BlockPatchRewritesOneBlockAndKeepsTheRest) {
  std::string base;
  for (int i = 0; i < 16; ++i) base += std::string(4096, static_cast<char>('a' + i));
  ASSERT_TRUE(WriteFile(R("big"), base));
  std::string block(4096, 'Z');
  std::string want = base;
  want.replace(5 * 4096, 4096, block);
  Batch batch(tree());
  auto id = batch.BeginFile("big", ContentBase::kCurrent);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(batch.WriteExtent(*id, 5 * 4096, Bytes(block)).ok());
  ASSERT_TRUE(batch.FinishFile(*id, want.size(), {}, HashOf(want)).ok());
  EXPECT_EQ(ReadFile(R("big")), base) << "the old file is untouched until commit";
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("big")), want);
}

TEST_F(ContentTest, BlockPatchTruncatesToAShorterSize) {
  ASSERT_TRUE(WriteFile(R("f"), "0123456789"));
  Batch batch(tree());
  auto id = batch.BeginFile("f", ContentBase::kCurrent);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(batch.FinishFile(*id, 4, {}, HashOf("0123")).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("f")), "0123");
}

TEST_F(ContentTest, TruncateToZeroLeavesAnEmptyFile) {
  ASSERT_TRUE(WriteFile(R("f"), "content"));
  Batch batch(tree());
  auto id = batch.BeginFile("f", ContentBase::kCurrent);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(batch.FinishFile(*id, 0, {}, HashOf("")).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("f")), "");
}

TEST_F(ContentTest, BlockPatchOfAMissingFileFailsAndPublishesNothing) {
  Batch batch(tree());
  auto id = batch.BeginFile("absent", ContentBase::kCurrent);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), Code::kNotFound) << id.status().ToString();
  EXPECT_NE(id.status().message().find("absent"), std::string::npos);
  EXPECT_FALSE(batch.Commit().ok()) << "a failed step poisons the batch";
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

TEST_F(ContentTest, BlockPatchAfterNamespaceChangeInSameBatchIsRefused) {
  ASSERT_TRUE(WriteFile(R("x"), "x"));
  Batch batch(tree());
  ASSERT_TRUE(batch.Rename("x", "y").ok());
  auto id = batch.BeginFile("y", ContentBase::kCurrent);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), Code::kFailedPrecondition) << id.status().ToString();
}

TEST_F(ContentTest, SparseFileKeepsItsHoles) {
  constexpr uint64_t kSize = uint64_t{256} << 20;  // 256 MiB apparent size
  std::string head(4096, 'h');
  std::string tail(4096, 't');
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  XXH3_128bits_update(&state, head.data(), head.size());
  std::string zeros(1 << 20, '\0');
  uint64_t pos = head.size();
  uint64_t tail_at = kSize - tail.size();
  while (pos < tail_at) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), tail_at - pos));
    XXH3_128bits_update(&state, zeros.data(), n);
    pos += n;
  }
  XXH3_128bits_update(&state, tail.data(), tail.size());
  XXH128_hash_t h = XXH3_128bits_digest(&state);

  Batch batch(tree());
  auto id = batch.BeginFile("sparse", ContentBase::kEmpty);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(batch.WriteExtent(*id, 0, Bytes(head)).ok());
  ASSERT_TRUE(batch.WriteExtent(*id, tail_at, Bytes(tail)).ok());
  ASSERT_TRUE(batch.FinishFile(*id, kSize, {}, Hash128{h.low64, h.high64}).ok());
  ASSERT_TRUE(batch.Commit().ok());
  struct stat st = Lstat(R("sparse"));
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSize);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "holes were filled with zeros";

  // A block patch of the sparse file keeps the holes too (reflink or SEEK_DATA copy).
  Batch patch(tree());
  auto pid = patch.BeginFile("sparse", ContentBase::kCurrent);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  ASSERT_TRUE(patch.WriteExtent(*pid, 0, Bytes(head)).ok());  // same bytes: same hash
  ASSERT_TRUE(patch.FinishFile(*pid, kSize, {}, Hash128{h.low64, h.high64}).ok());
  ASSERT_TRUE(patch.Commit().ok());
  st = Lstat(R("sparse"));
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSize);
  EXPECT_LT(st.st_blocks * 512, 1 << 20);
}

TEST_F(ContentTest, HashMismatchPublishesNothingAndKeepsOldContent) {
  ASSERT_TRUE(WriteFile(R("f"), "old"));
  Batch batch(tree());
  Status s = StageWhole(batch, "f", "corrupted on the way", {}, HashOf("what the primary had"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kDataLoss) << s.ToString();
  EXPECT_NE(s.message().find("f"), std::string::npos);
  EXPECT_TRUE(TempNamesUnder(root_).empty()) << "the temp is removed at once";
  Status commit = batch.Commit();
  EXPECT_EQ(commit.code(), Code::kDataLoss) << commit.ToString();
  EXPECT_EQ(ReadFile(R("f")), "old");
}

// Extents written in order are hashed as they arrive (no read-back); a later extent
// that rewrites an earlier range switches the check back to reading the temp. Both
// must accept the right content and refuse a wrong hash.
TEST_F(ContentTest, OutOfOrderExtentsAreCheckedByReadingTheTempBack) {
  const std::string content = std::string(4096, 'a') + std::string(4096, 'b');
  Batch batch(tree());
  auto id = batch.BeginFile("reordered", ContentBase::kEmpty);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(batch.WriteExtent(*id, 4096, Bytes(content.substr(4096))).ok());
  ASSERT_TRUE(batch.WriteExtent(*id, 0, Bytes(content.substr(0, 4096))).ok());
  ASSERT_TRUE(batch.FinishFile(*id, content.size(), {}, HashOf(content)).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("reordered")), content);

  Batch bad(tree());
  auto bid = bad.BeginFile("rewritten", ContentBase::kEmpty);
  ASSERT_TRUE(bid.ok());
  ASSERT_TRUE(bad.WriteExtent(*bid, 0, Bytes(std::string(8, 'x'))).ok());
  ASSERT_TRUE(bad.WriteExtent(*bid, 0, Bytes(std::string(8, 'y'))).ok());  // rewrites
  // The hash of what was sent first is not what the temp holds.
  Status s = bad.FinishFile(*bid, 8, {}, HashOf(std::string(8, 'x')));
  EXPECT_EQ(s.code(), Code::kDataLoss) << s.ToString();
}

TEST_F(ContentTest, StreamedHashCoversTheZerosUpToTheFinalSize) {
  // 3 bytes written, final size 10: the temp holds "abc" and 7 zeros.
  Batch batch(tree());
  auto id = batch.BeginFile("tail", ContentBase::kEmpty);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(batch.WriteExtent(*id, 0, Bytes("abc")).ok());
  Status wrong = batch.FinishFile(*id, 10, {}, HashOf("abc1234567"));
  EXPECT_EQ(wrong.code(), Code::kDataLoss) << wrong.ToString();

  Batch good(tree());
  auto gid = good.BeginFile("tail", ContentBase::kEmpty);
  ASSERT_TRUE(gid.ok());
  ASSERT_TRUE(good.WriteExtent(*gid, 0, Bytes("abc")).ok());
  ASSERT_TRUE(
      good.FinishFile(*gid, 10, {}, HashOf(std::string("abc") + std::string(7, '\0'))).ok());
  ASSERT_TRUE(good.Commit().ok());
  EXPECT_EQ(ReadFile(R("tail")), std::string("abc") + std::string(7, '\0'));
}

TEST_F(ContentTest, AFreshFileIsTruncatedOnlyWhenItsWritesDoNotMakeItsSize) {
  // Every ftruncate fails: a file whose writes end at its final size must not need one,
  // and each way a write can fall short of the size must still ask for one.
  testing::FaultFs faults;
  faults.FailAll(testing::FaultFs::kFtruncate, EIO);
  OpenTree({}, &faults);
  {
    Batch batch(tree());
    ASSERT_TRUE(StageWhole(batch, "exact", "0123456789").ok());
    ASSERT_TRUE(StageWhole(batch, "empty", "").ok());
    auto id = batch.BeginFile("two", ContentBase::kEmpty);
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(batch.WriteExtent(*id, 4, Bytes("efgh")).ok());  // out of order
    ASSERT_TRUE(batch.WriteExtent(*id, 0, Bytes("abcd")).ok());
    ASSERT_TRUE(batch.FinishFile(*id, 8, {}, HashOf("abcdefgh")).ok());
    ASSERT_TRUE(batch.Commit().ok());
    EXPECT_EQ(ReadFile(R("exact")), "0123456789");
    EXPECT_EQ(ReadFile(R("empty")), "");
    EXPECT_EQ(ReadFile(R("two")), "abcdefgh");
    EXPECT_EQ(faults.calls(testing::FaultFs::kFtruncate), 0);
  }
  // A hole at the end; and an empty extent at the end, which writes nothing.
  for (uint64_t empty_at : {uint64_t{0}, uint64_t{10}}) {
    Batch batch(tree());
    auto id = batch.BeginFile("tail", ContentBase::kEmpty);
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(batch.WriteExtent(*id, 0, Bytes("abc")).ok());
    if (empty_at != 0) {
      ASSERT_TRUE(batch.WriteExtent(*id, empty_at, Bytes("")).ok());
    }
    Status s = batch.FinishFile(*id, 10, {}, HashOf(std::string("abc") + std::string(7, '\0')));
    EXPECT_EQ(s.code(), Code::kIo) << "empty extent at " << empty_at << ": " << s.ToString();
    EXPECT_NE(s.message().find("ftruncate"), std::string::npos) << s.ToString();
  }
  EXPECT_FALSE(Exists(R("tail")));
}

TEST_F(ContentTest, HashMismatchFailsTheWholeBatch) {
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "good", "fine").ok());
  ASSERT_FALSE(StageWhole(batch, "bad", "x", {}, HashOf("y")).ok());
  EXPECT_FALSE(batch.Commit().ok());
  EXPECT_FALSE(Exists(R("good"))) << "no part of a failed batch is published";
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

TEST_F(ContentTest, FileBegunButNotFinishedFailsCommit) {
  Batch batch(tree());
  auto id = batch.BeginFile("f", ContentBase::kEmpty);
  ASSERT_TRUE(id.ok());
  Status s = batch.Commit();
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.ToString();
  EXPECT_FALSE(Exists(R("f")));
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

TEST_F(ContentTest, ExtentBeyondFinalSizeIsRejected) {
  Batch batch(tree());
  auto id = batch.BeginFile("f", ContentBase::kEmpty);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(batch.WriteExtent(*id, 10, Bytes("abc")).ok());
  Status s = batch.FinishFile(*id, 5, {}, HashOf(""));
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

TEST_F(ContentTest, ExtentPastTheFileSizeLimitIsOutOfRange) {
  Batch batch(tree());
  auto id = batch.BeginFile("f", ContentBase::kEmpty);
  ASSERT_TRUE(id.ok());
  Status s = batch.WriteExtent(*id, kMaxFileBytes, Bytes("x"));
  EXPECT_EQ(s.code(), Code::kOutOfRange) << s.ToString();
}

TEST_F(ContentTest, NoReplacePublishRefusesAnExistingName) {
  ASSERT_TRUE(WriteFile(R("f"), "mine"));
  Batch batch(tree());
  auto id = batch.BeginFile("f", ContentBase::kEmpty, PublishMode::kNoReplace);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(batch.WriteExtent(*id, 0, Bytes("theirs")).ok());
  ASSERT_TRUE(batch.FinishFile(*id, 6, {}, HashOf("theirs")).ok());
  Status s = batch.Commit();
  EXPECT_EQ(s.code(), Code::kAlreadyExists) << s.ToString();
  EXPECT_EQ(ReadFile(R("f")), "mine");
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

TEST_F(ContentTest, ReservedTempPrefixIsRefused) {
  Batch batch(tree());
  auto id = batch.BeginFile("dir/.hasync-tmp.abc", ContentBase::kEmpty);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(batch.Unlink(".hasync-tmp.x/y").code(), Code::kInvalidArgument);
}

TEST_F(ContentTest, BatchDroppedWithoutCommitLeavesNoTemp) {
  {
    Batch batch(tree());
    ASSERT_TRUE(StageWhole(batch, "f", "data").ok());
    EXPECT_EQ(TempNamesUnder(root_).size(), 1u);
  }
  EXPECT_TRUE(TempNamesUnder(root_).empty());
  EXPECT_FALSE(Exists(R("f")));
}

TEST_F(ContentTest, AbandonedFileIsNotPublishedAndTheBatchStillCommits) {
  ASSERT_TRUE(WriteFile(R("busy"), "old"));
  Batch batch(tree());
  auto id = batch.BeginFile("busy", ContentBase::kEmpty);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(batch.WriteExtent(*id, 0, Bytes("half")).ok());
  ASSERT_TRUE(batch.AbandonFile(*id).ok());
  ASSERT_TRUE(batch.AbandonFile(*id).ok()) << "idempotent";
  EXPECT_TRUE(TempNamesUnder(root_).empty()) << "the temp goes at once";
  ASSERT_TRUE(StageWhole(batch, "other", "fine").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("busy")), "old");
  EXPECT_EQ(ReadFile(R("other")), "fine");
}

TEST_F(ContentTest, CommitTwiceIsRefused) {
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "f", "data").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(batch.Commit().code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace hasync::engine::apply
