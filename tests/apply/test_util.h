// Shared by the apply tests: temp directories, file helpers, a fault-injecting FsOps.
#pragma once

#include <fcntl.h>
#include <ftw.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/hash.h"
#include "engine/apply/fs_ops.h"
#include "engine/apply/tree.h"

namespace hasync::engine::apply::testing {

// A directory under /tmp (or `base`), removed with everything in it at destruction.
class TempDir {
 public:
  explicit TempDir(const char* base = "/tmp") {
    std::string tmpl = std::string(base) + "/hasync-apply-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) != nullptr) path_ = buf.data();
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    if (path_.empty()) return;
    ::nftw(
        path_.c_str(),
        [](const char* p, const struct stat*, int, FTW*) {
          ::remove(p);  // best effort: a test's leftovers must not fail the next test
          return 0;
        },
        64, FTW_DEPTH | FTW_PHYS);
  }
  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view rel) const { return path_ + "/" + std::string(rel); }

 private:
  std::string path_;
};

inline std::span<const std::byte> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline Hash128 HashOf(std::string_view s) { return Xxh3_128(Bytes(s)); }

// Whole content of a file, or nullopt when it cannot be opened.
inline std::optional<std::string> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::string out;
  std::array<char, 65536> buf{};
  for (int i = 0; i < 1'000'000; ++i) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n <= 0) break;
    out.append(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

inline bool WriteFile(const std::string& path, std::string_view content, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ::close(fd);
  return ok;
}

inline bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

inline struct stat Lstat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

// Every kTempPrefix name anywhere under `root` (the walk does not follow symlinks).
inline std::vector<std::string> TempNamesUnder(const std::string& root) {
  static std::vector<std::string>* found = nullptr;
  std::vector<std::string> out;
  found = &out;
  ::nftw(
      root.c_str(),
      [](const char* p, const struct stat*, int, FTW* ftw) {
        if (std::string_view(p + ftw->base).starts_with(".hasync-tmp.")) found->emplace_back(p);
        return 0;
      },
      64, FTW_PHYS);
  found = nullptr;
  return out;
}

// FsOps that fails chosen calls with a chosen errno; everything else is real.
class FaultFs : public PosixFsOps {
 public:
  enum Op { kPwrite, kFtruncate, kFsync, kSyncfs, kClone, kCopyRange, kOpCount };

  // The n-th call (1-based, counted from now) of `op` fails with `err`; n = 0 disarms.
  void FailNth(Op op, int n, int err) {
    fail_at_[op] = n == 0 ? 0 : calls_[op] + n;
    err_[op] = err;
  }
  // Every call of `op` from now on fails with `err`.
  void FailAll(Op op, int err) {
    always_[op] = true;
    err_[op] = err;
  }
  int calls(Op op) const { return calls_[op]; }

  int Pwrite(int fd, std::span<const std::byte> d, uint64_t off) override {
    if (Hit(kPwrite)) return err_[kPwrite];
    return PosixFsOps::Pwrite(fd, d, off);
  }
  int Ftruncate(int fd, uint64_t size) override {
    if (Hit(kFtruncate)) return err_[kFtruncate];
    return PosixFsOps::Ftruncate(fd, size);
  }
  int Fsync(int fd) override {
    if (Hit(kFsync)) return err_[kFsync];
    return PosixFsOps::Fsync(fd);
  }
  int Syncfs(int fd) override {
    if (Hit(kSyncfs)) return err_[kSyncfs];
    return PosixFsOps::Syncfs(fd);
  }
  int Clone(int src, int dst) override {
    if (Hit(kClone)) return err_[kClone];
    return PosixFsOps::Clone(src, dst);
  }
  int CopyRange(int src, int dst, uint64_t off, uint64_t len) override {
    if (Hit(kCopyRange)) return err_[kCopyRange];
    return PosixFsOps::CopyRange(src, dst, off, len);
  }

 private:
  bool Hit(Op op) {
    ++calls_[op];
    return always_[op] || (fail_at_[op] != 0 && calls_[op] == fail_at_[op]);
  }
  std::array<int, kOpCount> calls_{};
  std::array<int, kOpCount> fail_at_{};
  std::array<int, kOpCount> err_{};
  std::array<bool, kOpCount> always_{};
};

// Begin + one extent + Finish, with the hash of `content` (or `hash` when given).
inline Status StageWhole(Batch& batch, std::string_view path, std::string_view content,
                         const FileMeta& meta = {}, std::optional<Hash128> hash = {}) {
  ASSIGN_OR_RETURN(Batch::FileId id, batch.BeginFile(path, ContentBase::kEmpty));
  if (!content.empty()) RETURN_IF_ERROR(batch.WriteExtent(id, 0, Bytes(content)));
  return batch.FinishFile(id, content.size(), meta, hash ? *hash : HashOf(content));
}

// A temp directory holding the sync root "root" and a sibling "outside", plus a Tree.
class TreeFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    root_ = dir_ / "root";
    outside_ = dir_ / "outside";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(outside_.c_str(), 0755), 0);
    OpenTree({});
  }
  void OpenTree(const TreeOptions& options, FsOps* fs = nullptr) {
    tree_.reset();
    auto t = Tree::Open(root_, options, fs);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tree_.emplace(std::move(t).value());
  }
  std::string R(std::string_view rel) const { return root_ + "/" + std::string(rel); }
  std::string O(std::string_view rel) const { return outside_ + "/" + std::string(rel); }
  Tree& tree() { return *tree_; }

  TempDir dir_;
  std::string root_;
  std::string outside_;
  std::optional<Tree> tree_;
};

inline bool IsRoot() { return ::geteuid() == 0; }

}  // namespace hasync::engine::apply::testing
