#include "engine/scan/scanner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "base/unique_fd.h"

namespace hasync::engine {
namespace {

namespace fs = std::filesystem;

class ScannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hasync-scan-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    root_fd_ = UniqueFd(open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(root_fd_.valid());
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Write(const std::string& rel, const std::string& content) {
    std::ofstream(dir_ / rel, std::ios::binary) << content;
  }
  std::vector<FileInfo> ScanAll(std::string_view subtree = "", ScanStats* stats = nullptr) {
    std::vector<FileInfo> out;
    Status s = ScanTree(
        root_fd_.get(), subtree, {},
        [&](const FileInfo& info) {
          out.push_back(info);
          return Status::Ok();
        },
        stats);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  fs::path dir_;
  UniqueFd root_fd_;
};

std::vector<std::string> Paths(const std::vector<FileInfo>& infos) {
  std::vector<std::string> out;
  for (const auto& i : infos) out.push_back(i.path);
  return out;
}

TEST_F(ScannerTest, DirectoriesComeBeforeTheirContentsInNameOrder) {
  fs::create_directories(dir_ / "b/c");
  Write("b/c/z", "1");
  Write("b/a", "2");
  Write("a", "3");
  EXPECT_EQ(Paths(ScanAll()), (std::vector<std::string>{"a", "b", "b/a", "b/c", "b/c/z"}));
}

TEST_F(ScannerTest, ReportsKindModeSizeAndSymlinkTargetLiterally) {
  Write("f", "hello");
  chmod((dir_ / "f").c_str(), 0640);
  fs::create_directory(dir_ / "d");
  fs::create_symlink("../../etc/passwd", dir_ / "l");
  auto all = ScanAll();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[1].path, "f");
  EXPECT_EQ(all[1].kind, NodeKind::kFile);
  EXPECT_EQ(all[1].mode, 0640u);
  EXPECT_EQ(all[1].size, 5u);
  EXPECT_EQ(all[0].kind, NodeKind::kDirectory);
  EXPECT_EQ(all[2].kind, NodeKind::kSymlink);
  EXPECT_EQ(all[2].target, "../../etc/passwd");
}

TEST_F(ScannerTest, NeverDescendsThroughASymlinkToADirectory) {
  fs::create_directory(dir_ / "real");
  Write("real/inside", "x");
  fs::create_directory_symlink("/etc", dir_ / "link");
  auto paths = Paths(ScanAll());
  EXPECT_EQ(paths, (std::vector<std::string>{"link", "real", "real/inside"}));
  // A subtree scan through the symlink is refused, not followed.
  Status s = ScanTree(
      root_fd_.get(), "link/x", {}, [](const FileInfo&) { return Status::Ok(); }, nullptr);
  EXPECT_FALSE(s.ok());
}

TEST_F(ScannerTest, SkipsTempFilesAndSpecialFiles) {
  Write(".hasync-tmp.abc", "x");
  Write("keep", "y");
  ASSERT_EQ(mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  ScanStats stats;
  EXPECT_EQ(Paths(ScanAll("", &stats)), (std::vector<std::string>{"keep"}));
  EXPECT_EQ(stats.skipped_special, 1u);
}

TEST_F(ScannerTest, SubtreeScanReportsTheSubtreeItselfFirst) {
  fs::create_directories(dir_ / "x/y");
  Write("x/y/f", "1");
  Write("other", "2");
  EXPECT_EQ(Paths(ScanAll("x")), (std::vector<std::string>{"x", "x/y", "x/y/f"}));
}

TEST_F(ScannerTest, EntryLimitStopsTheWalkWithAReason) {
  for (int i = 0; i < 5; ++i) Write("f" + std::to_string(i), "");
  Status s = ScanTree(
      root_fd_.get(), "", {.max_entries = 3}, [](const FileInfo&) { return Status::Ok(); },
      nullptr);
  EXPECT_EQ(s.code(), Code::kResourceExhausted);
  EXPECT_NE(s.message().find("max_entries 3"), std::string::npos) << s.message();
}

TEST_F(ScannerTest, StatPathIsNotFoundForMissingAndSeesSymlinkItself) {
  EXPECT_EQ(StatPath(root_fd_.get(), "nope").status().code(), Code::kNotFound);
  fs::create_symlink("target", dir_ / "s");
  auto info = StatPath(root_fd_.get(), "s");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->kind, NodeKind::kSymlink);
  EXPECT_EQ(info->target, "target");
}

TEST_F(ScannerTest, OneWalkToTheParentServesAStatAndAnOpenOfTheName) {
  fs::create_directories(dir_ / "a" / "b");
  Write("a/b/f", "nested");
  Write("top", "at the root");
  fs::create_symlink("b", dir_ / "a" / "link");

  auto top = OpenParentBeneath(root_fd_.get(), "top");
  ASSERT_TRUE(top.ok()) << top.status().ToString();
  EXPECT_EQ(top->fd, root_fd_.get()) << "a name at the top is looked up from the root fd";
  EXPECT_FALSE(top->owned.valid());
  EXPECT_EQ(top->name, "top");
  auto top_info = StatAt(*top, "top");
  ASSERT_TRUE(top_info.ok());
  EXPECT_EQ(top_info->size, 11u);
  EXPECT_EQ(top_info->path, "top");

  auto nested = OpenParentBeneath(root_fd_.get(), "a/b/f");
  ASSERT_TRUE(nested.ok()) << nested.status().ToString();
  EXPECT_TRUE(nested->owned.valid());
  EXPECT_EQ(nested->fd, nested->owned.get());
  EXPECT_EQ(nested->name, "f");
  auto info = StatAt(*nested, "a/b/f");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->kind, NodeKind::kFile);
  EXPECT_EQ(info->size, 6u);
  auto fd = OpenReadAt(*nested, "a/b/f");
  ASSERT_TRUE(fd.ok());
  char buf[16] = {};
  EXPECT_EQ(pread(fd->get(), buf, sizeof buf, 0), 6);
  EXPECT_EQ(std::string(buf), "nested");

  // The same answers as StatPath / OpenReadBeneath for what is missing or not a
  // directory on the way, and never through a symlink.
  EXPECT_EQ(OpenParentBeneath(root_fd_.get(), "nope/f").status().code(), Code::kNotFound);
  EXPECT_EQ(OpenParentBeneath(root_fd_.get(), "top/f").status().code(), Code::kNotFound);
  EXPECT_FALSE(OpenParentBeneath(root_fd_.get(), "a/link/f").ok());
  // A symbolic link as the last component or before it is a directory that does not
  // exist (NotFound, which callers take as "gone"), never followed: the one-openat2
  // path and the walk give the same answer.
  fs::create_directories(dir_ / "a" / "b" / "c");
  EXPECT_EQ(OpenParentBeneath(root_fd_.get(), "a/link/f").status().code(), Code::kNotFound);
  EXPECT_EQ(OpenParentBeneath(root_fd_.get(), "a/link/c/f").status().code(), Code::kNotFound);
  EXPECT_EQ(OpenDirBeneath(root_fd_.get(), "a/link/c").status().code(), Code::kNotFound);
  EXPECT_EQ(StatPath(root_fd_.get(), "a/link/c/x").status().code(), Code::kNotFound);
  EXPECT_TRUE(OpenDirBeneath(root_fd_.get(), "a/b/c").ok());
  auto missing = OpenParentBeneath(root_fd_.get(), "a/b/gone");
  ASSERT_TRUE(missing.ok()) << "the parent exists";
  EXPECT_EQ(StatAt(*missing, "a/b/gone").status().code(), Code::kNotFound);
  EXPECT_EQ(OpenReadAt(*missing, "a/b/gone").status().code(), Code::kNotFound);
  auto link = OpenParentBeneath(root_fd_.get(), "a/link");
  ASSERT_TRUE(link.ok());
  auto link_info = StatAt(*link, "a/link");
  ASSERT_TRUE(link_info.ok());
  EXPECT_EQ(link_info->kind, NodeKind::kSymlink);
  EXPECT_EQ(link_info->target, "b");
  EXPECT_FALSE(OpenReadAt(*link, "a/link").ok()) << "O_NOFOLLOW: a symlink is not opened";
}

TEST_F(ScannerTest, BlockHashesMatchWholeBlocksAndShortTail) {
  std::string content(10000, 'a');
  content[5000] = 'b';
  Write("f", content);
  UniqueFd fd(openat(root_fd_.get(), "f", O_RDONLY | O_CLOEXEC));
  auto blocks = BlockHashesFd(fd.get(), 4096);
  ASSERT_TRUE(blocks.ok());
  ASSERT_EQ(blocks->size(), 3u);  // 4096 + 4096 + 1808
  auto bytes = std::as_bytes(std::span(content));
  EXPECT_EQ((*blocks)[0], Xxh3_128(bytes.subspan(0, 4096)));
  EXPECT_EQ((*blocks)[1], Xxh3_128(bytes.subspan(4096, 4096)));
  EXPECT_EQ((*blocks)[2], Xxh3_128(bytes.subspan(8192)));
  auto whole = HashFd(fd.get());
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(*whole, Xxh3_128(bytes));
}

TEST_F(ScannerTest, HashOfEmptyFileIsHashOfNothing) {
  Write("e", "");
  UniqueFd fd(openat(root_fd_.get(), "e", O_RDONLY | O_CLOEXEC));
  auto h = HashFd(fd.get());
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, Xxh3_128({}));
  auto blocks = BlockHashesFd(fd.get(), 4096);
  ASSERT_TRUE(blocks.ok());
  EXPECT_TRUE(blocks->empty());
}

}  // namespace
}  // namespace hasync::engine
