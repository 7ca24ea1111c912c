// Path, symlink-target and xattr-name validation: hostile spellings are rejected with a
// reason; every legal Linux name, however odd, is accepted.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "wire/limits.h"
#include "wire/path.h"

namespace hasync::wire {
namespace {

using ::testing::HasSubstr;

std::string Reason(std::string_view path) {
  Status s = ValidatePath(path);
  EXPECT_FALSE(s.ok()) << "accepted hostile path '" << Printable(path) << "'";
  return s.message();
}

// A path of exactly `size` bytes made of maximal components.
std::string PathOfSize(size_t size) {
  std::string path;
  while (path.size() + 1 + kNameMax < size) path += std::string(kNameMax, 'p') + "/";
  path += std::string(size - path.size(), 'q');
  return path;
}

TEST(ValidatePath, DotDotIsRejected) {
  EXPECT_THAT(Reason(".."), HasSubstr("has a '..' component"));
  EXPECT_THAT(Reason("../etc/passwd"), HasSubstr("'..' component"));
  EXPECT_THAT(Reason("a/../../b"), HasSubstr("'..' component"));
  EXPECT_THAT(Reason("a/.."), HasSubstr("'..' component"));
}

TEST(ValidatePath, AbsolutePathIsRejected) {
  EXPECT_THAT(Reason("/abs"), HasSubstr("path '/abs' is absolute"));
  EXPECT_THAT(Reason("/"), HasSubstr("is absolute"));
}

TEST(ValidatePath, EmptyComponentIsRejected) {
  EXPECT_THAT(Reason("a//b"), HasSubstr("has an empty component at byte 2"));
}

TEST(ValidatePath, DotComponentIsRejected) {
  EXPECT_THAT(Reason("."), HasSubstr("has a '.' component"));
  EXPECT_THAT(Reason("a/./b"), HasSubstr("has a '.' component"));
}

TEST(ValidatePath, TrailingSlashIsRejected) {
  EXPECT_THAT(Reason("a/"), HasSubstr("ends with '/'"));
}

TEST(ValidatePath, EmptyPathIsRejected) { EXPECT_THAT(Reason(""), HasSubstr("path is empty")); }

TEST(ValidatePath, EmbeddedNulIsRejected) {
  using namespace std::string_literals;
  EXPECT_THAT(Reason("a\0b"s), HasSubstr("contains NUL at byte 1"));
  EXPECT_THAT(Reason("ok/\0"s), HasSubstr("contains NUL at byte 3"));
}

TEST(ValidatePath, ComponentLongerThanNameMaxIsRejected) {
  EXPECT_THAT(Reason(std::string(256, 'x')),
              HasSubstr("component at byte 0 has length 256 > kNameMax 255"));
  EXPECT_THAT(Reason("dir/" + std::string(256, 'x')), HasSubstr("component at byte 4"));
}

TEST(ValidatePath, PathLongerThanPathMaxIsRejected) {
  EXPECT_THAT(Reason(PathOfSize(5000)), HasSubstr("path length 5000 > kPathMax 4095"));
  EXPECT_THAT(Reason(PathOfSize(4096)), HasSubstr("path length 4096 > kPathMax 4095"));
}

TEST(ValidatePath, RejectionQuotesHostileBytesEscaped) {
  EXPECT_THAT(Reason("/\x1b[2J"), HasSubstr("'/\\x1b[2J'"));
}

TEST(ValidatePath, LegalEdgeCasesAreAccepted) {
  for (std::string path :
       {std::string(kNameMax, 'x'), PathOfSize(kPathMax), std::string("a"),
        std::string("with space/and tab\t"), std::string("jöb/日本語"), std::string(".hidden"),
        std::string("..."), std::string("..a"), std::string("a.."), std::string(".a/.b/c."),
        std::string("-rf"), std::string("job_state.old"), std::string("a/b/c/d/e/f"),
        std::string("back\\slash"), std::string("\x01\x7f\xff")}) {
    EXPECT_TRUE(ValidatePath(path).ok())
        << Printable(path) << ": " << ValidatePath(path).ToString();
  }
  EXPECT_EQ(PathOfSize(kPathMax).size(), kPathMax);
}

TEST(ValidateSymlinkTarget, TargetIsKeptLiterally) {
  EXPECT_TRUE(ValidateSymlinkTarget("/etc/passwd").ok());
  EXPECT_TRUE(ValidateSymlinkTarget("../../x").ok());
  EXPECT_TRUE(ValidateSymlinkTarget("a//b/./").ok());
  EXPECT_TRUE(ValidateSymlinkTarget(std::string(kSymlinkTargetMax, 'a')).ok());
}

TEST(ValidateSymlinkTarget, EmptyNulAndOversizedTargetsAreRejected) {
  using namespace std::string_literals;
  EXPECT_THAT(ValidateSymlinkTarget("").message(), HasSubstr("symlink target is empty"));
  EXPECT_THAT(ValidateSymlinkTarget("a\0"s).message(), HasSubstr("contains NUL at byte 1"));
  EXPECT_THAT(ValidateSymlinkTarget(std::string(kSymlinkTargetMax + 1, 'a')).message(),
              HasSubstr("symlink target length 4096 > kSymlinkTargetMax 4095"));
}

TEST(ValidateXattrName, BoundsAndNulAreChecked) {
  using namespace std::string_literals;
  EXPECT_TRUE(ValidateXattrName("user." + std::string(kXattrNameMax - 5, 'n')).ok());
  EXPECT_THAT(ValidateXattrName(std::string(kXattrNameMax + 1, 'n')).message(),
              HasSubstr("xattr name length 256 > kXattrNameMax 255"));
  EXPECT_THAT(ValidateXattrName("").message(), HasSubstr("xattr name is empty"));
  EXPECT_THAT(ValidateXattrName("user.\0x"s).message(), HasSubstr("contains NUL at byte 5"));
}

TEST(Printable, EscapesAndTruncates) {
  EXPECT_EQ(Printable("ok"), "ok");
  EXPECT_EQ(Printable("a\nb'"), "a\\x0ab\\x27");
  EXPECT_EQ(Printable(std::string(100, 'x'), 4), "xxxx...");
}

}  // namespace
}  // namespace hasync::wire
