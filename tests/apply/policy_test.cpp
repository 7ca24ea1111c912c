// Replication policy: which xattrs, mode bits and file types the standby accepts.
#include <sys/stat.h>

#include <string>

#include "engine/apply/policy.h"

#include <gtest/gtest.h>

namespace hasync::engine::apply {
namespace {

TEST(XattrPolicy, UserTrustedAndAclsAreAllowed) {
  EXPECT_TRUE(CheckXattrName("user.slurm.jobid", false).ok());
  EXPECT_TRUE(CheckXattrName("trusted.overlay.x", false).ok());
  EXPECT_TRUE(CheckXattrName("system.posix_acl_access", false).ok());
  EXPECT_TRUE(CheckXattrName("system.posix_acl_default", false).ok());
}

TEST(XattrPolicy, CapabilityNeedsPrivilegedMode) {
  Status s = CheckXattrName("security.capability", false);
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_NE(s.message().find("allow_privileged"), std::string::npos) << s.ToString();
  EXPECT_TRUE(CheckXattrName("security.capability", true).ok());
}

TEST(XattrPolicy, LsmLabelsAndUnknownNamespacesAreRefused) {
  EXPECT_EQ(CheckXattrName("security.selinux", true).code(), Code::kPermissionDenied);
  EXPECT_EQ(CheckXattrName("security.ima", true).code(), Code::kPermissionDenied);
  EXPECT_EQ(CheckXattrName("system.nfs4_acl", false).code(), Code::kPermissionDenied);
  EXPECT_EQ(CheckXattrName("weird", false).code(), Code::kPermissionDenied);
}

TEST(XattrPolicy, MalformedNamesAreInvalid) {
  EXPECT_EQ(CheckXattrName("", false).code(), Code::kInvalidArgument);
  EXPECT_EQ(CheckXattrName(std::string(256, 'u'), false).code(), Code::kInvalidArgument);
  EXPECT_EQ(CheckXattrName(std::string("user.a\0b", 8), false).code(), Code::kInvalidArgument);
  EXPECT_FALSE(CheckXattrName("user.", false).ok()) << "a namespace with no name";
}

TEST(ModePolicy, SetidIsStrippedFromFilesUnlessPrivileged) {
  auto d = DecideMode(06755, false, false);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->mode, 0755u);
  EXPECT_TRUE(d->stripped);
  auto p = DecideMode(06755, false, true);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->mode, 06755u);
  EXPECT_FALSE(p->stripped);
}

TEST(ModePolicy, DirectoriesKeepSetgidAndStickyButNotSetuid) {
  auto d = DecideMode(07775, true, false);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->mode, 03775u);
  EXPECT_TRUE(d->stripped);
  auto plain = DecideMode(0755, false, false);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->stripped);
}

TEST(ModePolicy, BitsOutsidePermissionsAreInvalid) {
  EXPECT_EQ(DecideMode(S_IFREG | 0644, false, false).status().code(), Code::kInvalidArgument);
}

TEST(TypePolicy, OnlyFilesDirectoriesAndSymlinksReplicate) {
  EXPECT_TRUE(CheckFileType(S_IFREG | 0644, "f").ok());
  EXPECT_TRUE(CheckFileType(S_IFDIR, "d").ok());
  EXPECT_TRUE(CheckFileType(S_IFLNK, "l").ok());
  EXPECT_EQ(CheckFileType(S_IFCHR, "c").code(), Code::kPermissionDenied);
  EXPECT_EQ(CheckFileType(S_IFBLK, "b").code(), Code::kPermissionDenied);
  EXPECT_EQ(CheckFileType(S_IFIFO, "p").code(), Code::kPermissionDenied);
  EXPECT_EQ(CheckFileType(S_IFSOCK, "s").code(), Code::kPermissionDenied);
  EXPECT_NE(CheckFileType(S_IFBLK, "dev/sda").message().find("dev/sda"), std::string::npos);
}

}  // namespace
}  // namespace hasync::engine::apply
