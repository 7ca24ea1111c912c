// The sync key file: keygen's output and refusal to overwrite, and every reason a key
// file is refused at load.
#include "engine/keyfile.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/engine/config_fixture.h"

namespace hasync::engine {
namespace {

using ::hasync::testing::ReadFile;
using ::hasync::testing::TempDir;
using ::hasync::testing::WriteFile;
using ::testing::HasSubstr;

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_mode & 07777;
}

TEST(Keygen, CreatesOwnerOnlyFileHolding256BitKey) {
  TempDir dir;
  const std::string path = dir / "sync.key";
  ASSERT_TRUE(WriteNewKeyFile(path).ok());
  EXPECT_EQ(ModeOf(path), 0600u);
  const std::string text = ReadFile(path);
  EXPECT_THAT(text, ::testing::MatchesRegex("[0-9a-f]{64}\n"));
  Result<SyncKey> key = LoadKeyFile(path);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->size_bits(), 256u);
  EXPECT_EQ(EncodeKeyText(key->bytes()), text);
}

TEST(Keygen, ModeIsExactly0600WhateverTheUmask) {
  TempDir dir;
  const mode_t old = ::umask(0);  // a permissive umask must not widen the mode
  Status st = WriteNewKeyFile(dir / "k1");
  ::umask(0277);  // one that would strip the owner's write bit
  Status st2 = WriteNewKeyFile(dir / "k2");
  ::umask(old);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_TRUE(st2.ok()) << st2.ToString();
  EXPECT_EQ(ModeOf(dir / "k1"), 0600u);
  EXPECT_EQ(ModeOf(dir / "k2"), 0600u);
}

TEST(Keygen, RefusesToOverwriteAndLeavesTheOriginalUnchanged) {
  TempDir dir;
  const std::string path = dir / "sync.key";
  ASSERT_TRUE(WriteNewKeyFile(path).ok());
  const std::string original = ReadFile(path);
  Status again = WriteNewKeyFile(path);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.code(), Code::kAlreadyExists);
  EXPECT_THAT(again.message(), HasSubstr("key file " + path +
                                         " already exists: refusing to "
                                         "overwrite it"));
  EXPECT_EQ(ReadFile(path), original);
  EXPECT_EQ(ModeOf(path), 0600u);
}

TEST(Keygen, DoesNotWriteThroughASymlink) {
  TempDir dir;
  const std::string target = dir / "target";
  std::filesystem::create_symlink(target, dir / "link");  // dangling on purpose
  Status st = WriteNewKeyFile(dir / "link");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kAlreadyExists);
  EXPECT_FALSE(std::filesystem::exists(target));
}

TEST(Keygen, TwoKeysDiffer) {
  TempDir dir;
  ASSERT_TRUE(WriteNewKeyFile(dir / "a").ok());
  ASSERT_TRUE(WriteNewKeyFile(dir / "b").ok());
  EXPECT_NE(ReadFile(dir / "a"), ReadFile(dir / "b"));
}

TEST(Keygen, MissingParentDirectoryIsReported) {
  TempDir dir;
  Status st = WriteNewKeyFile(dir / "no/such/dir/key");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("create key file"));
}

TEST(LoadKeyFile, RefusesAccessByGroupOrOthers) {
  TempDir dir;
  const std::string path = dir / "k";
  ASSERT_TRUE(WriteNewKeyFile(path).ok());
  for (mode_t mode : {0644u, 0640u, 0604u, 0620u, 0602u, 0610u}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    Result<SyncKey> key = LoadKeyFile(path);
    ASSERT_FALSE(key.ok()) << std::oct << mode;
    EXPECT_EQ(key.status().code(), Code::kPermissionDenied);
    EXPECT_EQ(key.status().message(),
              fmt::format("key file {} mode {:04o}: must not be accessible by group or others "
                          "(chmod 600)",
                          path, mode));
  }
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);  // read-only for the owner is fine
  EXPECT_TRUE(LoadKeyFile(path).ok());
}

TEST(LoadKeyFile, RefusesKeysShorterThan128Bits) {
  TempDir dir;
  WriteFile(dir / "k", "00112233445566778899aabbccddee\n");
  Result<SyncKey> key = LoadKeyFile(dir / "k");
  ASSERT_FALSE(key.ok());
  EXPECT_THAT(key.status().message(),
              HasSubstr("key is 120 bits, shorter than the minimum 128 bits"));
}

TEST(LoadKeyFile, Accepts128BitsUpperCaseAndCrLf) {
  TempDir dir;
  WriteFile(dir / "k", "00112233445566778899AABBCCDDEEFF\r\n");
  Result<SyncKey> key = LoadKeyFile(dir / "k");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->size_bits(), 128u);
  EXPECT_EQ(key->bytes()[15], 0xff);
}

TEST(LoadKeyFile, RefusesKeysLongerThanThePskLimit) {
  TempDir dir;
  WriteFile(dir / "k", std::string(66, 'a') + "\n");  // 264 bits
  EXPECT_THAT(LoadKeyFile(dir / "k").status().message(),
              HasSubstr("longer than the maximum 256 bits"));
}

TEST(LoadKeyFile, RefusesMalformedContent) {
  TempDir dir;
  struct Case {
    std::string content, reason;
  };
  const Case cases[] = {
      {"", "empty"},
      {"\n", "empty"},
      {std::string(63, 'a') + "\n", "odd number of hex digits"},
      {std::string(32, 'a') + "g" + std::string(31, 'a') + "\n", "'g' at offset 32 is not a hex"},
      {std::string(64, 'a') + "\n\n", "byte 0x0a at offset 64"},
      {" " + std::string(64, 'a') + "\n", "byte 0x20 at offset 0"},
      {std::string(64, 'a') + "\n# comment\n", "is not a hex digit"},
  };
  for (const Case& c : cases) {
    std::filesystem::remove(dir / "k");
    WriteFile(dir / "k", c.content);
    Result<SyncKey> key = LoadKeyFile(dir / "k");
    ASSERT_FALSE(key.ok()) << c.content;
    EXPECT_EQ(key.status().code(), Code::kInvalidArgument);
    EXPECT_THAT(key.status().message(), HasSubstr(c.reason)) << c.content;
    EXPECT_EQ(key.status().message().find('\n'), std::string::npos);
  }
}

TEST(LoadKeyFile, RefusesWhatIsNotARegularFile) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  EXPECT_THAT(LoadKeyFile(dir / "fifo").status().message(), HasSubstr("not a regular file"));
  std::filesystem::create_directory(dir / "d");
  ASSERT_EQ(::chmod((dir / "d").c_str(), 0700), 0);
  EXPECT_THAT(LoadKeyFile(dir / "d").status().message(), HasSubstr("not a regular file"));
}

TEST(LoadKeyFile, RefusesOversizedFile) {
  TempDir dir;
  WriteFile(dir / "k", std::string(kMaxKeyFileBytes + 1, 'a'));
  EXPECT_THAT(LoadKeyFile(dir / "k").status().message(), HasSubstr("too large for a key file"));
}

TEST(LoadKeyFile, RefusesAFileOwnedBySomeoneElse) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another uid";
  TempDir dir;
  ASSERT_TRUE(WriteNewKeyFile(dir / "k").ok());
  ASSERT_EQ(::chown((dir / "k").c_str(), 65534, 65534), 0);
  Result<SyncKey> key = LoadKeyFile(dir / "k");
  ASSERT_FALSE(key.ok());
  EXPECT_THAT(key.status().message(), HasSubstr("owned by uid 65534: must be owned by root"));
}

TEST(LoadKeyFile, MissingFileSaysSo) {
  TempDir dir;
  Result<SyncKey> key = LoadKeyFile(dir / "absent");
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), Code::kNotFound);
  EXPECT_EQ(key.status().message(), "key file " + (dir / "absent") + ": No such file or directory");
}

TEST(SyncKey, MoveLeavesTheSourceEmpty) {
  SyncKey a(std::vector<uint8_t>(32, 7));
  SyncKey b = std::move(a);
  EXPECT_EQ(b.size_bits(), 256u);
  EXPECT_TRUE(a.bytes().empty());  // NOLINT(bugprone-use-after-move): checking the contract
  SyncKey c;
  c = std::move(b);
  EXPECT_EQ(c.bytes()[0], 7);
  EXPECT_TRUE(b.bytes().empty());  // NOLINT(bugprone-use-after-move)
}

}  // namespace
}  // namespace hasync::engine
