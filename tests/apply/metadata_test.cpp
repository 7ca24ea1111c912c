// Metadata: mode, owner, mtime in ns, xattrs, setuid policy, device nodes.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>

#include "base/unique_fd.h"
#include "engine/apply/tree.h"
#include "tests/apply/test_util.h"

namespace hasync::engine::apply {
namespace {

using testing::Lstat;
using testing::ReadFile;
using testing::StageWhole;
using testing::WriteFile;

class MetadataTest : public testing::TreeFixture {};

constexpr int64_t kMtimeNs = 1'700'000'000'987'654'321;

std::string GetXattr(const std::string& path, const char* name) {
  char buf[256];
  ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof(buf));
  return n < 0 ? std::string("<absent>") : std::string(buf, static_cast<size_t>(n));
}

TEST_F(MetadataTest, NewFileGetsModeMtimeAndXattrFromTheFd) {
  FileMeta meta;
  meta.mode = 0640;
  meta.mtime_ns = kMtimeNs;
  meta.xattrs.push_back({"user.hasync.test", "v1"});
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "f", "data", meta).ok());
  ASSERT_TRUE(batch.Commit().ok());
  struct stat st = Lstat(R("f"));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1'700'000'000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 987'654'321);
  EXPECT_EQ(GetXattr(R("f"), "user.hasync.test"), "v1");
}

TEST_F(MetadataTest, NewFileGetsTheReplicatedOwner) {
  if (!testing::IsRoot()) GTEST_SKIP() << "fchown to another uid needs root";
  FileMeta meta;
  meta.owner = Owner{4242, 4343};
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "f", "data", meta).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(Lstat(R("f")).st_uid, 4242u);
  EXPECT_EQ(Lstat(R("f")).st_gid, 4343u);
}

TEST_F(MetadataTest, SetMetadataChangesModeOwnerAndMtimeInPlace) {
  if (!testing::IsRoot()) GTEST_SKIP() << "fchown to another uid needs root";
  ASSERT_TRUE(WriteFile(R("f"), "keep"));
  ino_t ino = Lstat(R("f")).st_ino;
  MetaChange change;
  change.mode = 0600;
  change.owner = Owner{1001, 1002};
  change.mtime_ns = kMtimeNs;
  Batch batch(tree());
  ASSERT_TRUE(batch.SetMetadata("f", change).ok());
  ASSERT_TRUE(batch.Commit().ok());
  struct stat st = Lstat(R("f"));
  EXPECT_EQ(st.st_ino, ino);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, 1001u);
  EXPECT_EQ(st.st_gid, 1002u);
  EXPECT_EQ(st.st_mtim.tv_nsec, 987'654'321);
  EXPECT_EQ(ReadFile(R("f")), "keep");
}

TEST_F(MetadataTest, NegativeMtimeBeforeTheEpochIsKept) {
  ASSERT_TRUE(WriteFile(R("f"), "old"));
  MetaChange change;
  change.mtime_ns = -1'500'000'000;  // 1.5 s before the epoch
  Batch batch(tree());
  ASSERT_TRUE(batch.SetMetadata("f", change).ok());
  ASSERT_TRUE(batch.Commit().ok());
  struct stat st = Lstat(R("f"));
  EXPECT_EQ(st.st_mtim.tv_sec, -2);
  EXPECT_EQ(st.st_mtim.tv_nsec, 500'000'000);
}

TEST_F(MetadataTest, SetuidAndSetgidAreStrippedByDefaultAndCounted) {
  FileMeta meta;
  meta.mode = 06755;
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "tool", "#!/bin/sh\n", meta).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(Lstat(R("tool")).st_mode & 07777, 0755u);
  EXPECT_EQ(tree().stats().setid_bits_stripped, 1u);
}

TEST_F(MetadataTest, SetuidIsKeptWhenPrivilegedReplicationIsAllowed) {
  TreeOptions options;
  options.allow_privileged = true;
  OpenTree(options);
  FileMeta meta;
  meta.mode = 04755;
  Batch batch(tree());
  ASSERT_TRUE(StageWhole(batch, "tool", "x", meta).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(Lstat(R("tool")).st_mode & 07777, 04755u);
  EXPECT_EQ(tree().stats().setid_bits_stripped, 0u);
}

TEST_F(MetadataTest, SetMetadataStripsSetuidToo) {
  ASSERT_TRUE(WriteFile(R("f"), "x"));
  MetaChange change;
  change.mode = 04711;
  Batch batch(tree());
  ASSERT_TRUE(batch.SetMetadata("f", change).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(Lstat(R("f")).st_mode & 07777, 0711u);
}

TEST_F(MetadataTest, ModeOutside07777IsRejected) {
  Batch batch(tree());
  MetaChange change;
  change.mode = 0100644;
  Status s = batch.SetMetadata("f", change);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
}

TEST_F(MetadataTest, UserXattrIsSetAndRemoved) {
  ASSERT_TRUE(WriteFile(R("f"), "x"));
  Batch set(tree());
  ASSERT_TRUE(set.SetXattr("f", "user.slurm", "abc").ok());
  ASSERT_TRUE(set.Commit().ok());
  EXPECT_EQ(GetXattr(R("f"), "user.slurm"), "abc");
  Batch remove(tree());
  ASSERT_TRUE(remove.RemoveXattr("f", "user.slurm").ok());
  ASSERT_TRUE(remove.RemoveXattr("f", "user.never.there").ok());
  ASSERT_TRUE(remove.Commit().ok()) << "removing an absent xattr is the asked-for state";
  EXPECT_EQ(GetXattr(R("f"), "user.slurm"), "<absent>");
}

TEST_F(MetadataTest, SecurityXattrIsRefusedWithAReason) {
  ASSERT_TRUE(WriteFile(R("f"), "x"));
  Batch batch(tree());
  Status s = batch.SetXattr("f", "security.capability", "\x01");
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_NE(s.message().find("security.capability"), std::string::npos) << s.ToString();
  EXPECT_FALSE(batch.Commit().ok()) << "a refused step poisons the batch";
  EXPECT_EQ(GetXattr(R("f"), "security.capability"), "<absent>");
}

TEST_F(MetadataTest, RefusedXattrOnANewFileRefusesTheFile) {
  FileMeta meta;
  meta.xattrs.push_back({"security.selinux", "system_u:object_r:etc_t:s0"});
  Batch batch(tree());
  Status s = StageWhole(batch, "f", "x", meta);
  EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.ToString();
  EXPECT_FALSE(batch.Commit().ok());
  EXPECT_FALSE(testing::Exists(R("f")));
}

TEST_F(MetadataTest, SetMetadataOnASymlinkLeavesItsTargetAlone) {
  ASSERT_TRUE(WriteFile(O("target"), "t", 0644));
  ASSERT_EQ(::symlink(O("target").c_str(), R("l").c_str()), 0);
  MetaChange change;
  change.mode = 0777;
  change.mtime_ns = kMtimeNs;
  Batch batch(tree());
  ASSERT_TRUE(batch.SetMetadata("l", change).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(Lstat(O("target")).st_mode & 07777, 0644u);
  EXPECT_NE(Lstat(O("target")).st_mtim.tv_sec, 1'700'000'000);
  EXPECT_EQ(Lstat(R("l")).st_mtim.tv_sec, 1'700'000'000);
}

TEST_F(MetadataTest, AKnownOwnerAndModeAreNotSetAgainButAChownStillGetsItsSetidBitsBack) {
  if (!testing::IsRoot()) GTEST_SKIP() << "fchown to another uid needs root";
  ASSERT_TRUE(WriteFile(R("f"), "x"));
  ASSERT_EQ(::chmod(R("f").c_str(), 04755), 0);
  UniqueFd fd(::open(R("f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  struct stat known {};
  ASSERT_EQ(::fstat(fd.get(), &known), 0);
  uint64_t stripped = 0;
  FileMeta meta;
  meta.mode = 04755;
  meta.mtime_ns = kMtimeNs;

  // Owner and mode as `known` says: neither is set; the mtime still is.
  meta.owner = Owner{known.st_uid, known.st_gid};
  ASSERT_TRUE(
      ApplyMetaToFd(fd.get(), meta, false, /*allow_privileged=*/true, "f", &stripped, &known).ok());
  EXPECT_EQ(Lstat(R("f")).st_mode & 07777, 04755u);
  EXPECT_EQ(Lstat(R("f")).st_mtim.tv_nsec, 987'654'321);

  // Another owner: the chown clears setuid, so the mode is set again although `known`
  // already shows 04755.
  meta.owner = Owner{4242, 4343};
  ASSERT_TRUE(
      ApplyMetaToFd(fd.get(), meta, false, /*allow_privileged=*/true, "f", &stripped, &known).ok());
  EXPECT_EQ(Lstat(R("f")).st_uid, 4242u);
  EXPECT_EQ(Lstat(R("f")).st_mode & 07777, 04755u);

  // A mode `known` does not show is set.
  ASSERT_EQ(::fstat(fd.get(), &known), 0);
  meta.mode = 0640;
  ASSERT_TRUE(
      ApplyMetaToFd(fd.get(), meta, false, /*allow_privileged=*/true, "f", &stripped, &known).ok());
  EXPECT_EQ(Lstat(R("f")).st_mode & 07777, 0640u);
  EXPECT_EQ(Lstat(R("f")).st_uid, 4242u);
}

TEST_F(MetadataTest, XattrOnASymlinkIsRefused) {
  ASSERT_TRUE(WriteFile(O("target"), "t"));
  ASSERT_EQ(::symlink(O("target").c_str(), R("l").c_str()), 0);
  Batch batch(tree());
  ASSERT_TRUE(batch.SetXattr("l", "user.x", "1").ok());
  Status s = batch.Commit();
  EXPECT_EQ(s.code(), Code::kUnimplemented) << s.ToString();
  EXPECT_EQ(GetXattr(O("target"), "user.x"), "<absent>");
}

TEST_F(MetadataTest, FifoInTheTreeIsRefusedNotOpened) {
  ASSERT_EQ(::mkfifo(R("pipe").c_str(), 0644), 0);
  MetaChange change;
  change.mode = 0600;
  Batch batch(tree());
  ASSERT_TRUE(batch.SetMetadata("pipe", change).ok());
  Status s = batch.Commit();
  EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.ToString();
  EXPECT_NE(s.message().find("FIFO"), std::string::npos);
  EXPECT_EQ(Lstat(R("pipe")).st_mode & 07777, 0644u);
}

TEST_F(MetadataTest, DeviceNodeInTheTreeIsRefused) {
  if (!testing::IsRoot()) GTEST_SKIP() << "mknod of a device needs root";
  ASSERT_EQ(::mknod(R("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  Batch batch(tree());
  ASSERT_TRUE(batch.SetXattr("null", "user.x", "1").ok());
  Status s = batch.Commit();
  EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.ToString();
  EXPECT_NE(s.message().find("device"), std::string::npos);
}

}  // namespace
}  // namespace hasync::engine::apply
