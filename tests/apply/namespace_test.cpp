// Namespace operations: mkdir, rmdir, unlink, rename, hard links, symlinks, ordering.
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "engine/apply/tree.h"
#include "tests/apply/test_util.h"

namespace hasync::engine::apply {
namespace {

using testing::Exists;
using testing::Lstat;
using testing::ReadFile;
using testing::StageWhole;
using testing::TempNamesUnder;
using testing::WriteFile;

class NamespaceTest : public testing::TreeFixture {};

std::string ReadLink(const std::string& path) {
  std::vector<char> buf(4096);
  ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
  return n < 0 ? std::string() : std::string(buf.data(), static_cast<size_t>(n));
}

TEST_F(NamespaceTest, UnlinkRemovesTheFile) {
  ASSERT_TRUE(WriteFile(R("f"), "x"));
  Batch batch(tree());
  ASSERT_TRUE(batch.Unlink("f").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_FALSE(Exists(R("f")));
}

TEST_F(NamespaceTest, UnlinkOfAMissingFileFailsNamingThePath) {
  Batch batch(tree());
  ASSERT_TRUE(batch.Unlink("ghost").ok());
  Status s = batch.Commit();
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_NE(s.message().find("unlink ghost"), std::string::npos) << s.ToString();
}

TEST_F(NamespaceTest, MkdirAppliesTheExactModeWhateverTheUmask) {
  mode_t old = ::umask(077);
  Batch batch(tree());
  FileMeta meta;
  meta.mode = 02775;
  ASSERT_TRUE(batch.Mkdir("spool", meta).ok());
  Status s = batch.Commit();
  ::umask(old);
  ASSERT_TRUE(s.ok()) << s.ToString();
  struct stat st = Lstat(R("spool"));
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 02775u) << "setgid on a directory is kept";
}

TEST_F(NamespaceTest, RmdirRemovesAnEmptyDirectoryAndRefusesAFullOne) {
  ASSERT_EQ(::mkdir(R("empty").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(R("full").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(R("full/f"), "x"));
  Batch ok_batch(tree());
  ASSERT_TRUE(ok_batch.Rmdir("empty").ok());
  ASSERT_TRUE(ok_batch.Commit().ok());
  EXPECT_FALSE(Exists(R("empty")));
  Batch bad(tree());
  ASSERT_TRUE(bad.Rmdir("full").ok());
  Status s = bad.Commit();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("rmdir full"), std::string::npos) << s.ToString();
  // The refusal names what the directory still holds.
  EXPECT_NE(s.message().find("(it holds f)"), std::string::npos) << s.ToString();
  EXPECT_TRUE(Exists(R("full/f")));
}

TEST_F(NamespaceTest, RenameMovesAFileAcrossDirectories) {
  ASSERT_EQ(::mkdir(R("a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(R("b").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(R("a/f"), "payload"));
  Batch batch(tree());
  ASSERT_TRUE(batch.Rename("a/f", "b/g").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_FALSE(Exists(R("a/f")));
  EXPECT_EQ(ReadFile(R("b/g")), "payload");
}

// rename(2) between two names of one inode does nothing; the standby can hold two names
// as one inode (a LINK) that were two files on the primary when it renamed one over the
// other. The primary's end state is one name; so must the standby's be, and the
// directory `from` leaves must then be removable (seen as a refused RMDIR, "Directory not
// empty", in Replication/RandomWorkload seed 1).
TEST_F(NamespaceTest, RenameBetweenTwoNamesOfOneFileLeavesOnlyTheTarget) {
  ASSERT_EQ(::mkdir(R("a").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(R("a/f"), "payload"));
  ASSERT_EQ(::link(R("a/f").c_str(), R("g").c_str()), 0);
  Batch batch(tree());
  ASSERT_TRUE(batch.Rename("a/f", "g").ok());
  ASSERT_TRUE(batch.Rmdir("a").ok());
  Status s = batch.Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Exists(R("a")));
  EXPECT_EQ(ReadFile(R("g")), "payload");
  struct stat st {};
  ASSERT_EQ(::stat(R("g").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  // The same with `to` made a link of `from` here, and no RMDIR after: the rename must
  // leave `to` alone.
  auto rename_over_own_link = [&](const std::string& from, const std::string& to) {
    ASSERT_EQ(::link(R(from).c_str(), R(to).c_str()), 0);
    Batch b(tree());
    ASSERT_TRUE(b.Rename(from, to).ok());
    Status committed = b.Commit();
    ASSERT_TRUE(committed.ok()) << committed.ToString();
    EXPECT_FALSE(Exists(R(from)));
  };
  // Two links in one directory.
  ASSERT_TRUE(WriteFile(R("h1"), "same dir"));
  rename_over_own_link("h1", "h2");
  EXPECT_EQ(ReadFile(R("h2")), "same dir");
  // A symlink linked twice.
  ASSERT_EQ(::symlink("../target", R("s1").c_str()), 0);
  rename_over_own_link("s1", "s2");
  ASSERT_EQ(::lstat(R("s2").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(NamespaceTest, RenameMovesADirectoryWithItsContents) {
  ASSERT_EQ(::mkdir(R("a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(R("a/jobs").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(R("b").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(R("a/jobs/1.JB"), "job"));
  Batch batch(tree());
  ASSERT_TRUE(batch.Rename("a/jobs", "b/jobs").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_FALSE(Exists(R("a/jobs")));
  EXPECT_EQ(ReadFile(R("b/jobs/1.JB")), "job");
}

TEST_F(NamespaceTest, RenameNoReplaceRefusesAnExistingTarget) {
  ASSERT_TRUE(WriteFile(R("x"), "x"));
  ASSERT_TRUE(WriteFile(R("y"), "y"));
  Batch batch(tree());
  ASSERT_TRUE(batch.Rename("x", "y", RenameMode::kNoReplace).ok());
  EXPECT_EQ(batch.Commit().code(), Code::kAlreadyExists);
  EXPECT_EQ(ReadFile(R("y")), "y");
  EXPECT_EQ(ReadFile(R("x")), "x");
}

TEST_F(NamespaceTest, RenameExchangeSwapsTwoEntries) {
  ASSERT_TRUE(WriteFile(R("x"), "x"));
  ASSERT_EQ(::mkdir(R("d").c_str(), 0755), 0);
  Batch batch(tree());
  ASSERT_TRUE(batch.Rename("x", "d", RenameMode::kExchange).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_TRUE(S_ISDIR(Lstat(R("x")).st_mode));
  EXPECT_EQ(ReadFile(R("d")), "x");
}

TEST_F(NamespaceTest, HardLinkSharesTheInode) {
  ASSERT_TRUE(WriteFile(R("a"), "shared"));
  Batch batch(tree());
  ASSERT_TRUE(batch.Link("a", "b").ok());
  ASSERT_TRUE(batch.Commit().ok());
  struct stat a = Lstat(R("a"));
  struct stat b = Lstat(R("b"));
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
}

TEST_F(NamespaceTest, HardLinkToASymlinkLinksTheLinkItself) {
  ASSERT_EQ(::symlink("/etc/passwd", R("l").c_str()), 0);
  Batch batch(tree());
  ASSERT_TRUE(batch.Link("l", "l2").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_TRUE(S_ISLNK(Lstat(R("l2")).st_mode));
  EXPECT_EQ(Lstat(R("l2")).st_ino, Lstat(R("l")).st_ino);
}

TEST_F(NamespaceTest, SymlinkWithAnAbsoluteTargetIsStoredLiterally) {
  Batch batch(tree());
  ASSERT_TRUE(batch.Symlink("cfg", "/etc/slurm/slurm.conf").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_TRUE(S_ISLNK(Lstat(R("cfg")).st_mode));
  EXPECT_EQ(ReadLink(R("cfg")), "/etc/slurm/slurm.conf");
}

TEST_F(NamespaceTest, SymlinkWithADotDotTargetIsStoredLiterallyAndNotFollowed) {
  ASSERT_TRUE(WriteFile(O("secret"), "outside"));
  Batch batch(tree());
  ASSERT_TRUE(batch.Symlink("escape", "../../outside/secret").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadLink(R("escape")), "../../outside/secret");
  EXPECT_EQ(ReadFile(O("secret")), "outside");
}

TEST_F(NamespaceTest, SymlinkReplacesAnExistingEntryAtomically) {
  ASSERT_TRUE(WriteFile(R("cur"), "file"));
  Batch batch(tree());
  ASSERT_TRUE(batch.Symlink("cur", "state.7").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadLink(R("cur")), "state.7");
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

TEST_F(NamespaceTest, SymlinkOwnerAndMtimeAreSetOnTheLinkItself) {
  if (!testing::IsRoot()) GTEST_SKIP() << "lchown to another uid needs root";
  ASSERT_TRUE(WriteFile(R("target"), "t"));
  struct stat target_before = Lstat(R("target"));
  Batch batch(tree());
  ASSERT_TRUE(
      batch.Symlink("l", "target", Owner{1234, 4321}, int64_t{1'600'000'000'123'456'789}).ok());
  ASSERT_TRUE(batch.Commit().ok());
  struct stat l = Lstat(R("l"));
  EXPECT_EQ(l.st_uid, 1234u);
  EXPECT_EQ(l.st_gid, 4321u);
  EXPECT_EQ(l.st_mtim.tv_sec, 1'600'000'000);
  EXPECT_EQ(l.st_mtim.tv_nsec, 123'456'789);
  EXPECT_EQ(Lstat(R("target")).st_uid, target_before.st_uid);
}

TEST_F(NamespaceTest, MkdirThenWriteIntoItInOneBatch) {
  Batch batch(tree());
  ASSERT_TRUE(batch.Mkdir("d", {}).ok());
  ASSERT_TRUE(batch.Mkdir("d/e", {}).ok());
  ASSERT_TRUE(StageWhole(batch, "d/e/f", "inner").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("d/e/f")), "inner");
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

TEST_F(NamespaceTest, RmdirRecreateAndWriteInOneBatch) {
  ASSERT_EQ(::mkdir(R("d").c_str(), 0755), 0);
  Batch batch(tree());
  ASSERT_TRUE(batch.Rmdir("d").ok());
  ASSERT_TRUE(batch.Mkdir("d", {}).ok());
  ASSERT_TRUE(StageWhole(batch, "d/f", "fresh").ok());
  Status s = batch.Commit();
  ASSERT_TRUE(s.ok()) << s.ToString() << " (a temp staged inside d would block the rmdir)";
  EXPECT_EQ(ReadFile(R("d/f")), "fresh");
}

TEST_F(NamespaceTest, RenameDirectoryThenWriteIntoTheNewNameInOneBatch) {
  ASSERT_EQ(::mkdir(R("old").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(R("old/a"), "a"));
  Batch batch(tree());
  ASSERT_TRUE(batch.Rename("old", "new").ok());
  ASSERT_TRUE(StageWhole(batch, "new/b", "b").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("new/a")), "a");
  EXPECT_EQ(ReadFile(R("new/b")), "b");
  EXPECT_FALSE(Exists(R("old")));
}

// A temp staged beside its destination is published through the directory fd resolved
// at staging, with no second lookup (Batch::Apply(OpPublish)): operations later in the
// batch that move or replace that directory, or an ancestor, must still find the files
// where the primary's order put them.
TEST_F(NamespaceTest, FilesWrittenBeforeTheirDirectoryMovesInOneBatchFollowIt) {
  ASSERT_EQ(::mkdir(R("old").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(R("a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(R("a/b").c_str(), 0755), 0);
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "old/x", "x").ok());
  ASSERT_TRUE(StageWhole(batch, "old/w", "w").ok());
  ASSERT_TRUE(StageWhole(batch, "a/b/f", "f").ok());
  ASSERT_TRUE(batch.Rename("old", "new").ok());
  ASSERT_TRUE(batch.Mkdir("old", {}).ok());
  ASSERT_TRUE(StageWhole(batch, "old/z", "z").ok());
  ASSERT_TRUE(batch.Rename("a", "c").ok());
  ASSERT_TRUE(StageWhole(batch, "c/b/g", "g").ok());
  Status s = batch.Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadFile(R("new/x")), "x");
  EXPECT_EQ(ReadFile(R("new/w")), "w");
  EXPECT_EQ(ReadFile(R("old/z")), "z");
  EXPECT_FALSE(Exists(R("old/x")));
  EXPECT_EQ(ReadFile(R("c/b/f")), "f");
  EXPECT_EQ(ReadFile(R("c/b/g")), "g");
  EXPECT_FALSE(Exists(R("a")));
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

// Slurm's save pattern (DESIGN §1): write X.new, unlink X.old, link X X.old, unlink X,
// link X.new X, unlink X.new — hard links, not rename — applied as one batch.
TEST_F(NamespaceTest, SlurmSaveSequenceAppliedAsOneBatch) {
  ASSERT_TRUE(WriteFile(R("job_state"), "generation 2"));
  ASSERT_TRUE(WriteFile(R("job_state.old"), "generation 1"));
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "job_state.new", "generation 3").ok());
  ASSERT_TRUE(batch.Unlink("job_state.old").ok());
  ASSERT_TRUE(batch.Link("job_state", "job_state.old").ok());
  ASSERT_TRUE(batch.Unlink("job_state").ok());
  ASSERT_TRUE(batch.Link("job_state.new", "job_state").ok());
  ASSERT_TRUE(batch.Unlink("job_state.new").ok());
  Status s = batch.Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadFile(R("job_state")), "generation 3");
  EXPECT_EQ(ReadFile(R("job_state.old")), "generation 2");
  EXPECT_FALSE(Exists(R("job_state.new")));
  EXPECT_EQ(Lstat(R("job_state")).st_nlink, 1u);
  EXPECT_EQ(Lstat(R("job_state.old")).st_nlink, 1u);
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

TEST_F(NamespaceTest, FailedOperationStopsTheBatchAndNamesIt) {
  ASSERT_TRUE(WriteFile(R("a"), "a"));
  Batch batch(tree());
  ASSERT_TRUE(batch.Unlink("a").ok());
  ASSERT_TRUE(batch.Unlink("missing").ok());
  ASSERT_TRUE(StageWhole(batch, "later", "never").ok());
  Status s = batch.Commit();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("batch op 2 of 3"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s.ToString();
  EXPECT_FALSE(Exists(R("a"))) << "the prefix before the failure ran";
  EXPECT_FALSE(Exists(R("later"))) << "nothing after the failure ran";
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

TEST_F(NamespaceTest, WritingOverADirectoryFails) {
  ASSERT_EQ(::mkdir(R("d").c_str(), 0755), 0);
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "d", "file").ok());
  Status s = batch.Commit();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("publish d"), std::string::npos) << s.ToString();
  EXPECT_TRUE(S_ISDIR(Lstat(R("d")).st_mode));
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

}  // namespace
}  // namespace hasync::engine::apply
