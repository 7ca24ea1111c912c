// FileReader: chunks come back in plan order with the file's bytes, through io_uring
// with read-ahead and through the pread fallback alike.
#include "engine/sync/file_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace hasync::engine {
namespace {

class FileReaderTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hasync-reader-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    reader_ = FileReader::Create(GetParam());
    if (GetParam() && !reader_->uses_io_uring()) {
      GTEST_SKIP() << "io_uring unavailable here, only the pread path is tested: "
                   << reader_->fallback_reason();
    }
  }
  void TearDown() override {
    reader_.reset();
    std::string cmd = "rm -rf '" + dir_ + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }
  // A file of n bytes whose byte i is (i * 7 + salt) & 0xff; returns an O_RDONLY fd.
  int MakeFile(const std::string& name, size_t n, unsigned salt) {
    std::vector<unsigned char> bytes(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<unsigned char>((i * 7 + salt) & 0xff);
    std::string path = dir_ + "/" + name;
    int w = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    EXPECT_GE(w, 0);
    EXPECT_EQ(write(w, bytes.data(), n), static_cast<ssize_t>(n));
    close(w);
    int fd = open(path.c_str(), O_RDONLY);
    EXPECT_GE(fd, 0);
    return fd;
  }
  static std::vector<ReadChunk> Plan(size_t size, size_t chunk) {
    std::vector<ReadChunk> plan;
    for (size_t off = 0; off < size; off += chunk) {
      plan.push_back(ReadChunk{off, std::min(chunk, size - off), false});
    }
    return plan;
  }
  static bool Matches(const ReadPiece& p, unsigned salt) {
    for (size_t i = 0; i < p.got; ++i) {
      if (p.data[i] != std::byte((((p.offset + i) * 7) + salt) & 0xff)) return false;
    }
    return true;
  }
  std::string dir_;
  std::unique_ptr<FileReader> reader_;
};

TEST_P(FileReaderTest, ReturnsEveryChunkInOrderWithTheFilesBytes) {
  const size_t size = 10 * 65536 + 123;  // more chunks than the read-ahead, a short last one
  int fd = MakeFile("a", size, 3);
  reader_->Start(fd, Plan(size, 65536));
  size_t total = 0;
  for (size_t i = 0; i * 65536 < size; ++i) {
    auto piece = reader_->Next();
    ASSERT_TRUE(piece.ok()) << piece.status().ToString();
    EXPECT_EQ(piece->offset, i * 65536);
    EXPECT_EQ(piece->data.size(), std::min<size_t>(65536, size - i * 65536));
    EXPECT_EQ(piece->got, piece->data.size());
    EXPECT_TRUE(Matches(*piece, 3)) << "chunk " << i;
    total += piece->got;
    reader_->Recycle(std::move(piece->data));
  }
  EXPECT_EQ(total, size);
  reader_->Finish();
  close(fd);
}

TEST_P(FileReaderTest, HoleChunksAreZerosAndNotRead) {
  int fd = MakeFile("b", 3 * 4096, 5);
  // The middle chunk is declared a hole: it comes back as zeros although the file holds
  // data there, which shows it was not read.
  reader_->Start(fd, {{0, 4096, false}, {4096, 4096, true}, {8192, 4096, false}});
  auto first = reader_->Next();
  auto middle = reader_->Next();
  auto last = reader_->Next();
  ASSERT_TRUE(first.ok() && middle.ok() && last.ok());
  EXPECT_TRUE(Matches(*first, 5));
  EXPECT_TRUE(Matches(*last, 5));
  EXPECT_EQ(middle->data, std::vector<std::byte>(4096, std::byte{0}));
  close(fd);
}

TEST_P(FileReaderTest, AFileThatShrankReadsShortAndZeroFilled) {
  int fd = MakeFile("c", 5000, 9);
  reader_->Start(fd, {{0, 4096, false}, {4096, 4096, false}, {8192, 4096, false}});
  auto a = reader_->Next();
  auto b = reader_->Next();
  auto c = reader_->Next();
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->got, 4096u);
  EXPECT_EQ(b->got, 5000u - 4096u);
  EXPECT_EQ(b->data.size(), 4096u);
  EXPECT_TRUE(Matches(*b, 9));
  for (size_t i = b->got; i < b->data.size(); ++i) ASSERT_EQ(b->data[i], std::byte{0}) << i;
  EXPECT_EQ(c->got, 0u);
  EXPECT_EQ(c->data, std::vector<std::byte>(4096, std::byte{0}));
  close(fd);
}

// An abandoned plan (the sender aborts a file mid-read) must not leak its reads into
// the next file's.
TEST_P(FileReaderTest, StartingTheNextFileAbandonsTheRestOfThePlan) {
  int a = MakeFile("d", 16 * 4096, 1);
  int b = MakeFile("e", 16 * 4096, 2);
  reader_->Start(a, Plan(16 * 4096, 4096));
  auto first = reader_->Next();
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(Matches(*first, 1));
  reader_->Start(b, Plan(16 * 4096, 4096));
  close(a);
  for (size_t i = 0; i < 16; ++i) {
    auto piece = reader_->Next();
    ASSERT_TRUE(piece.ok()) << piece.status().ToString();
    EXPECT_EQ(piece->offset, i * 4096);
    EXPECT_TRUE(Matches(*piece, 2)) << "chunk " << i << " holds another file's bytes";
  }
  close(b);
}

TEST_P(FileReaderTest, AReadErrorIsReportedWithItsErrno) {
  std::string path = dir_ + "/w";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT, 0600);  // not readable
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 8192), 0);
  reader_->Start(fd, Plan(8192, 4096));
  auto piece = reader_->Next();
  ASSERT_FALSE(piece.ok());
  EXPECT_NE(piece.status().message().find("Bad file descriptor"), std::string::npos)
      << piece.status().ToString();
  close(fd);
}

INSTANTIATE_TEST_SUITE_P(Modes, FileReaderTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& param_info) {
                           return param_info.param ? std::string("IoUring") : std::string("Pread");
                         });

}  // namespace
}  // namespace hasync::engine
