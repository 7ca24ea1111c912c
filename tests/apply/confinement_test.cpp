// Confinement: nothing is ever written outside the sync root, whatever symlinks the
// tree holds; a final-component symlink is replaced or acted on, never followed.
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "engine/apply/resolve.h"
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

class ConfinementTest : public testing::TreeFixture {
 protected:
  void SetUp() override {
    TreeFixture::SetUp();
    // root/a → the outside directory, planted by someone else.
    ASSERT_EQ(::symlink(outside_.c_str(), R("a").c_str()), 0);
    ASSERT_TRUE(WriteFile(O("victim"), "outside content"));
  }
  bool OutsideUnchanged() {
    return ReadFile(O("victim")) == "outside content" && TempNamesUnder(outside_).empty() &&
           !Exists(O("x")) && !Exists(O("d"));
  }
};

TEST_F(ConfinementTest, WriteThroughASymlinkedParentIsRefused) {
  Batch batch(tree());
  auto id = batch.BeginFile("a/x", ContentBase::kEmpty);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), Code::kInvalidArgument) << id.status().ToString();
  EXPECT_NE(id.status().message().find("a/x"), std::string::npos) << id.status().ToString();
  EXPECT_NE(id.status().message().find("symbolic link"), std::string::npos);
  EXPECT_TRUE(OutsideUnchanged());
}

TEST_F(ConfinementTest, OverwriteThroughASymlinkedParentIsRefused) {
  Batch batch(tree());
  EXPECT_FALSE(StageWhole(batch, "a/victim", "pwned").ok());
  EXPECT_FALSE(batch.Commit().ok());
  EXPECT_TRUE(OutsideUnchanged());
}

TEST_F(ConfinementTest, NamespaceOpsThroughASymlinkedParentAreRefused) {
  ASSERT_TRUE(WriteFile(R("local"), "l"));
  const char* kinds[] = {"mkdir", "unlink", "rename", "link", "symlink", "chmod"};
  for (const char* kind : kinds) {
    Batch batch(tree());
    std::string k(kind);
    Status recorded;
    if (k == "mkdir") recorded = batch.Mkdir("a/d", {});
    if (k == "unlink") recorded = batch.Unlink("a/victim");
    if (k == "rename") recorded = batch.Rename("local", "a/x");
    if (k == "link") recorded = batch.Link("local", "a/x");
    if (k == "symlink") recorded = batch.Symlink("a/x", "/etc/shadow");
    if (k == "chmod") recorded = batch.SetMetadata("a/victim", MetaChange{0777, {}, {}});
    ASSERT_TRUE(recorded.ok()) << kind << ": " << recorded.ToString();
    ASSERT_EQ(batch.op_count(), 1u) << kind;
    Status s = batch.Commit();
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << kind << ": " << s.ToString();
    EXPECT_TRUE(OutsideUnchanged()) << kind;
  }
  EXPECT_EQ(Lstat(O("victim")).st_mode & 07777, 0644u);
  EXPECT_EQ(ReadFile(R("local")), "l");
}

TEST_F(ConfinementTest, SymlinkDeeperInThePathIsRefused) {
  ASSERT_EQ(::mkdir(R("real").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("../a", R("real/hop").c_str()), 0);
  Batch batch(tree());
  auto id = batch.BeginFile("real/hop/x", ContentBase::kEmpty);
  EXPECT_FALSE(id.ok());
  EXPECT_TRUE(OutsideUnchanged());
}

TEST_F(ConfinementTest, FinalSymlinkIsReplacedNotFollowed) {
  ASSERT_EQ(::symlink(O("victim").c_str(), R("f").c_str()), 0);
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "f", "replicated").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_TRUE(S_ISREG(Lstat(R("f")).st_mode));
  EXPECT_EQ(ReadFile(R("f")), "replicated");
  EXPECT_TRUE(OutsideUnchanged());
}

TEST_F(ConfinementTest, BlockPatchBaseThatIsASymlinkIsRefused) {
  ASSERT_EQ(::symlink(O("victim").c_str(), R("f").c_str()), 0);
  Batch batch(tree());
  auto id = batch.BeginFile("f", ContentBase::kCurrent);
  ASSERT_FALSE(id.ok()) << "the outside file must not become the base";
  EXPECT_TRUE(OutsideUnchanged());
}

TEST_F(ConfinementTest, UnlinkOfAFinalSymlinkRemovesTheLinkOnly) {
  ASSERT_EQ(::symlink(O("victim").c_str(), R("f").c_str()), 0);
  Batch batch(tree());
  ASSERT_TRUE(batch.Unlink("f").ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_FALSE(Exists(R("f")));
  EXPECT_TRUE(OutsideUnchanged());
}

TEST_F(ConfinementTest, OpenBeneathRefusesDotDotEscapes) {
  auto fd = OpenBeneath(tree().root_fd(), "../outside", O_RDONLY | O_DIRECTORY, "test");
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), Code::kInvalidArgument) << fd.status().ToString();
}

TEST_F(ConfinementTest, OpenBeneathRefusesAbsoluteSymlinks) {
  ASSERT_EQ(::mkdir(R("d").c_str(), 0755), 0);
  auto fd = OpenBeneath(tree().root_fd(), "a", O_RDONLY | O_DIRECTORY, "test");
  EXPECT_FALSE(fd.ok());
  auto ok = OpenBeneath(tree().root_fd(), "d", O_RDONLY | O_DIRECTORY, "test");
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST(ResolvePaths, SplitPathSeparatesTheLastComponent) {
  EXPECT_EQ(SplitPath("a/b/c").dir, "a/b");
  EXPECT_EQ(SplitPath("a/b/c").name, "c");
  EXPECT_EQ(SplitPath("c").dir, "");
  EXPECT_EQ(SplitPath("c").name, "c");
}

TEST(ResolvePaths, ReservedComponentIsFoundAnywhere) {
  EXPECT_TRUE(HasReservedComponent(".hasync-tmp.1"));
  EXPECT_TRUE(HasReservedComponent("a/.hasync-tmp.1/b"));
  EXPECT_FALSE(HasReservedComponent("a/hasync-tmp.1"));
  EXPECT_FALSE(HasReservedComponent("a/.hasync-tmpx"));
}

TEST(ResolvePathsDeathTest, AbsolutePathIsAProgrammerError) {
  EXPECT_DEATH(AssertRelativePath("/etc/passwd"), "assertion failed");
  EXPECT_DEATH(AssertRelativePath("a/.."), "assertion failed");
}

}  // namespace
}  // namespace hasync::engine::apply
