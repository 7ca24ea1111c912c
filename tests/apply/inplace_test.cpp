// In-place block patches under an undo record (engine/apply/inplace.h): only the changed
// bytes are written, the fallbacks to the temp path, the failures that must leave the
// old content, and a seeded crash-point trial: the FsOps sequence is cut at every step
// (the cut write lands partly), then start-up recovery runs, and the file must hold its
// old or its new content (and metadata) byte for byte, the new one whenever Commit said
// OK.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "engine/apply/inplace.h"
#include "engine/apply/tree.h"
#include "tests/apply/test_util.h"

namespace hasync::engine::apply {
namespace {

using testing::Bytes;
using testing::HashOf;
using testing::Lstat;
using testing::ReadFile;
using testing::TempNamesUnder;
using testing::WriteFile;

constexpr uint64_t kMin = 64 * 1024;  // in-place threshold for these tests

// The real calls, except that FICLONE is "unsupported" (as on ext4, whatever the test
// directory's filesystem is), and that the whole sequence can be cut after `crash_after`
// calls: from then on every call fails with EIO and does nothing, like a machine that
// stopped; the cut Pwrite itself lands a random prefix of its data first.
class CrashFs : public PosixFsOps {
 public:
  void CrashAfter(int n, uint64_t seed) {
    crash_after_ = n;
    rng_.seed(seed);
  }
  void FailNext(int kind_err, bool pwrite_only) {
    fail_err_ = kind_err;
    fail_pwrite_only_ = pwrite_only;
  }
  bool crashed() const { return crashed_; }
  int calls() const { return calls_; }

  int Pwrite(int fd, std::span<const std::byte> d, uint64_t off) override {
    if (fail_err_ != 0) return std::exchange(fail_err_, 0);
    if (Cut()) {
      if (!d.empty()) PosixFsOps::Pwrite(fd, d.subspan(0, rng_() % d.size()), off);
      return EIO;
    }
    return PosixFsOps::Pwrite(fd, d, off);
  }
  int Ftruncate(int fd, uint64_t size) override {
    return Cut() ? EIO : PosixFsOps::Ftruncate(fd, size);
  }
  int Fsync(int fd) override {
    if (fail_err_ != 0 && !fail_pwrite_only_) return std::exchange(fail_err_, 0);
    return Cut() ? EIO : PosixFsOps::Fsync(fd);
  }
  int Syncfs(int fd) override { return Cut() ? EIO : PosixFsOps::Syncfs(fd); }
  int Clone(int, int) override { return Cut() ? EIO : EOPNOTSUPP; }
  int CopyRange(int s, int d, uint64_t off, uint64_t len) override {
    return Cut() ? EIO : PosixFsOps::CopyRange(s, d, off, len);
  }

 private:
  bool Cut() {
    ++calls_;
    if (crash_after_ >= 0 && calls_ > crash_after_) crashed_ = true;
    return crashed_;
  }
  int crash_after_ = -1;
  int calls_ = 0;
  bool crashed_ = false;
  int fail_err_ = 0;
  bool fail_pwrite_only_ = false;
  std::mt19937_64 rng_;
};

std::string Random(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

std::optional<std::string> GetXattr(const std::string& path, const char* name) {
  char buf[256];
  ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof buf);
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

size_t CountUndoRecords(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().filename().string().starts_with(kUndoPrefix)) ++n;
  }
  return n;
}

class InPlaceTest : public testing::TreeFixture {
 protected:
  void SetUp() override {
    TreeFixture::SetUp();
    ASSERT_EQ(::mkdir((dir_ / "state").c_str(), 0700), 0);
    undo_ = dir_ / "state/undo/root";
    Reopen();
  }
  void Reopen(FsOps* fs = nullptr) {
    TreeOptions o;
    o.undo_dir = undo_;
    o.inplace_min_bytes = kMin;
    OpenTree(o, fs != nullptr ? fs : &fs_);
  }
  // One block patch of `path` to `want` (which shares a prefix-free layout with the
  // current file): the extents given, then the final size.
  Status Patch(Batch& batch, std::string_view path,
               const std::vector<std::pair<uint64_t, std::string>>& extents, const std::string& want,
               const FileMeta& meta = {}) {
    ASSIGN_OR_RETURN(Batch::FileId id, batch.BeginFile(path, ContentBase::kCurrent));
    for (const auto& [off, data] : extents) RETURN_IF_ERROR(batch.WriteExtent(id, off, Bytes(data)));
    return batch.FinishFile(id, want.size(), meta, HashOf(want));
  }

  CrashFs fs_;
  std::string undo_;
};

TEST_F(InPlaceTest, WritesOnlyTheChangedBytesIntoTheSameInode) {
  std::mt19937_64 rng(1);
  std::string base = Random(rng, 1 << 20);
  ASSERT_TRUE(WriteFile(R("big"), base));
  ino_t ino = Lstat(R("big")).st_ino;
  std::string block = Random(rng, 4096);
  std::string want = base;
  want.replace(300'000, block.size(), block);
  Batch batch(tree());
  ASSERT_TRUE(Patch(batch, "big", {{300'000, block}}, want).ok());
  EXPECT_EQ(ReadFile(R("big")), base) << "nothing touches the live file before Commit";
  Status s = batch.Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadFile(R("big")), want);
  EXPECT_EQ(Lstat(R("big")).st_ino, ino) << "patched in place, not replaced";
  EXPECT_EQ(tree().stats().files_patched_in_place, 1u);
  EXPECT_EQ(tree().stats().undo_bytes, block.size());
  EXPECT_EQ(tree().stats().bytes_cloned, 0u) << "no copy of the unchanged data";
  EXPECT_EQ(CountUndoRecords(undo_), 0u) << "the record goes before Commit returns";
  EXPECT_TRUE(TempNamesUnder(root_).empty());
}

TEST_F(InPlaceTest, AppendGrowAndShrinkAndMetadata) {
  std::mt19937_64 rng(2);
  std::string base = Random(rng, 200'000);
  ASSERT_TRUE(WriteFile(R("log"), base, 0600));
  ASSERT_EQ(::setxattr(R("log").c_str(), "user.old", "1", 1, 0), 0);
  std::string tail = Random(rng, 5000);
  FileMeta meta;
  meta.mode = 0640;
  meta.mtime_ns = int64_t{1'700'000'000} * 1'000'000'000 + 123;
  meta.xattrs = {{"user.new", "2"}};
  {
    Batch batch(tree());
    ASSERT_TRUE(Patch(batch, "log", {{base.size(), tail}}, base + tail, meta).ok());
    ASSERT_TRUE(batch.Commit().ok());
  }
  EXPECT_EQ(ReadFile(R("log")), base + tail);
  struct stat st = Lstat(R("log"));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123);
  EXPECT_EQ(GetXattr(R("log"), "user.new"), "2");
  EXPECT_EQ(GetXattr(R("log"), "user.old"), std::nullopt) << "the xattr set is replaced";
  {
    Batch batch(tree());  // shrink by a little: the cut tail goes into the undo record
    std::string want = base.substr(0, base.size() - 1000);
    ASSERT_TRUE(Patch(batch, "log", {}, want, meta).ok());
    ASSERT_TRUE(batch.Commit().ok());
    EXPECT_EQ(ReadFile(R("log")), want);
  }
  EXPECT_EQ(tree().stats().files_patched_in_place, 2u);
}

TEST_F(InPlaceTest, HardLinkedFileGoesThroughATemp) {
  std::mt19937_64 rng(3);
  std::string base = Random(rng, 100'000);
  ASSERT_TRUE(WriteFile(R("a"), base));
  ASSERT_EQ(::link(R("a").c_str(), R("b").c_str()), 0);
  std::string want = base;
  want.replace(10, 3, "XYZ");
  Batch batch(tree());
  ASSERT_TRUE(Patch(batch, "a", {{10, "XYZ"}}, want).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("a")), want);
  EXPECT_EQ(ReadFile(R("b")), base) << "the other name of the inode is not changed";
  EXPECT_EQ(tree().stats().files_patched_in_place, 0u);
}

TEST_F(InPlaceTest, SmallFileGoesThroughATemp) {
  ASSERT_TRUE(WriteFile(R("s"), std::string(kMin - 1, 's')));
  std::string want(kMin - 1, 's');
  want[0] = 'S';
  Batch batch(tree());
  ASSERT_TRUE(Patch(batch, "s", {{0, "S"}}, want).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("s")), want);
  EXPECT_EQ(tree().stats().files_patched_in_place, 0u);
}

TEST_F(InPlaceTest, FileRenamedLaterInTheBatchFallsBackToATemp) {
  std::mt19937_64 rng(4);
  std::string base = Random(rng, 100'000);
  ASSERT_TRUE(WriteFile(R("x"), base));
  std::string want = base;
  want.replace(0, 4, "HEAD");
  Batch batch(tree());
  ASSERT_TRUE(Patch(batch, "x", {{0, "HEAD"}}, want).ok());
  ASSERT_TRUE(batch.Rename("x", "y").ok());
  Status s = batch.Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadFile(R("y")), want);
  EXPECT_FALSE(testing::Exists(R("x")));
  EXPECT_EQ(tree().stats().inplace_fallbacks, 1u);
  EXPECT_EQ(tree().stats().files_patched_in_place, 0u);
}

TEST_F(InPlaceTest, DirectoryRenamedLaterInTheBatchFallsBackToATemp) {
  std::mt19937_64 rng(41);
  std::string base = Random(rng, 100'000);
  ASSERT_EQ(::mkdir(R("d").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(R("d/x"), base));
  ASSERT_TRUE(WriteFile(R("dx"), base));  // a sibling whose name only starts like "d"
  std::string want = base;
  want.replace(0, 4, "HEAD");
  Batch batch(tree());
  ASSERT_TRUE(Patch(batch, "d/x", {{0, "HEAD"}}, want).ok());
  ASSERT_TRUE(Patch(batch, "dx", {{0, "HEAD"}}, want).ok());
  ASSERT_TRUE(batch.Rename("d", "e").ok());
  Status s = batch.Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadFile(R("e/x")), want);
  EXPECT_EQ(ReadFile(R("dx")), want);
  EXPECT_EQ(tree().stats().inplace_fallbacks, 1u) << "only the file under the moved directory";
  EXPECT_EQ(tree().stats().files_patched_in_place, 1u);
}

TEST_F(InPlaceTest, ALargeChangeFallsBackToATemp) {
  std::mt19937_64 rng(5);
  std::string base = Random(rng, 100'000);
  ASSERT_TRUE(WriteFile(R("f"), base));
  std::string big = Random(rng, 60'000);  // more than half the file: cheaper as a copy
  std::string want = base;
  want.replace(0, big.size(), big);
  Batch batch(tree());
  ASSERT_TRUE(Patch(batch, "f", {{0, big}}, want).ok());
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("f")), want);
  EXPECT_EQ(tree().stats().inplace_fallbacks, 1u);
  EXPECT_EQ(tree().stats().files_patched_in_place, 0u);
}

TEST_F(InPlaceTest, HashMismatchLeavesTheFileUntouched) {
  std::mt19937_64 rng(6);
  std::string base = Random(rng, 100'000);
  ASSERT_TRUE(WriteFile(R("f"), base));
  Batch batch(tree());
  auto id = batch.BeginFile("f", ContentBase::kCurrent);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(batch.WriteExtent(*id, 5, Bytes("zz")).ok());
  Status s = batch.FinishFile(*id, base.size(), {}, HashOf("something else"));
  EXPECT_EQ(s.code(), Code::kDataLoss) << s.ToString();
  EXPECT_FALSE(batch.Commit().ok());
  EXPECT_EQ(ReadFile(R("f")), base);
  EXPECT_EQ(CountUndoRecords(undo_), 0u);
}

TEST_F(InPlaceTest, NoSpaceForTheUndoRecordChangesNothing) {
  std::mt19937_64 rng(7);
  std::string base = Random(rng, 100'000);
  ASSERT_TRUE(WriteFile(R("f"), base));
  std::string want = base;
  want.replace(50'000, 3, "abc");
  Batch batch(tree());
  ASSERT_TRUE(Patch(batch, "f", {{50'000, "abc"}}, want).ok());
  fs_.FailNext(ENOSPC, /*pwrite_only=*/true);  // the first write of Commit: the record
  Status s = batch.Commit();
  EXPECT_EQ(s.code(), Code::kResourceExhausted) << s.ToString();
  EXPECT_EQ(ReadFile(R("f")), base) << "the live file is untouched";
  EXPECT_EQ(CountUndoRecords(undo_), 0u);
  // The next batch still works (the possible leftover was recovered).
  Batch next(tree());
  ASSERT_TRUE(Patch(next, "f", {{50'000, "abc"}}, want).ok());
  ASSERT_TRUE(next.Commit().ok());
  EXPECT_EQ(ReadFile(R("f")), want);
}

TEST_F(InPlaceTest, FsyncErrorOfTheLiveFileRollsBack) {
  std::mt19937_64 rng(8);
  std::string base = Random(rng, 100'000);
  ASSERT_TRUE(WriteFile(R("f"), base));
  std::string want = base;
  want.replace(70'000, 3, "abc");
  // Commit's fsyncs: the record, the undo directory, then the live file (EIO).
  struct FailThirdFsync : CrashFs {
    int n = 0;
    int Fsync(int fd) override { return ++n == 3 ? EIO : CrashFs::Fsync(fd); }
  } failing;
  Reopen(&failing);
  Batch batch(tree());
  ASSERT_TRUE(Patch(batch, "f", {{70'000, "abc"}}, want).ok());
  Status s = batch.Commit();
  EXPECT_EQ(s.code(), Code::kIo) << s.ToString();
  EXPECT_NE(s.message().find("rolled back"), std::string::npos) << s.ToString();
  EXPECT_EQ(ReadFile(R("f")), base);
  EXPECT_EQ(CountUndoRecords(undo_), 0u);
  EXPECT_EQ(tree().stats().inplace_rollbacks, 1u);
}

TEST_F(InPlaceTest, TornRecordIsRemovedWithoutTouchingAnything) {
  std::mt19937_64 rng(9);
  std::string base = Random(rng, 100'000);
  ASSERT_TRUE(WriteFile(R("f"), base));
  UndoEntry e;
  e.path = "f";
  e.old_size = 10;
  e.ranges.push_back({0, std::vector<std::byte>(10, std::byte{'!'})});
  std::vector<std::byte> record = EncodeUndo(std::span<const UndoEntry>(&e, 1));
  record.resize(record.size() - 5);  // cut before its end: never made durable
  std::string path = undo_ + "/" + std::string(kUndoPrefix) + "0000000000000001";
  ASSERT_TRUE(WriteFile(path, std::string(reinterpret_cast<const char*>(record.data()), record.size())));
  auto report = tree().RecoverUndo();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->torn, 1u);
  EXPECT_EQ(report->rolled_back, 0u);
  EXPECT_EQ(ReadFile(R("f")), base);
  EXPECT_EQ(CountUndoRecords(undo_), 0u);
}

TEST(UndoRecord, RoundTripsAndRejectsEveryCorruption) {
  UndoEntry e;
  e.path = "d/f";
  e.dev = 1;
  e.ino = 2;
  e.old_size = 100;
  e.mode = 0640;
  e.uid = 3;
  e.gid = 4;
  e.mtime_sec = 5;
  e.mtime_nsec = 6;
  e.xattrs = {{"user.a", "b"}};
  e.new_size = 90;
  e.new_hash = Hash128{7, 8};
  e.ranges.push_back({10, std::vector<std::byte>(20, std::byte{'x'})});
  std::vector<std::byte> rec = EncodeUndo(std::span<const UndoEntry>(&e, 1));
  auto back = DecodeUndo(rec);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), 1u);
  const UndoEntry& g = (*back)[0];
  EXPECT_EQ(g.path, e.path);
  EXPECT_EQ(g.mode, e.mode);
  EXPECT_EQ(g.mtime_nsec, e.mtime_nsec);
  EXPECT_EQ(g.xattrs.size(), 1u);
  EXPECT_EQ(g.new_hash, e.new_hash);
  ASSERT_EQ(g.ranges.size(), 1u);
  EXPECT_EQ(g.ranges[0].offset, 10u);
  EXPECT_EQ(g.ranges[0].bytes, e.ranges[0].bytes);
  for (size_t i = 0; i < rec.size(); i += 7) {  // any flipped byte is caught
    std::vector<std::byte> bad = rec;
    bad[i] ^= std::byte{0x40};
    EXPECT_EQ(DecodeUndo(bad).status().code(), Code::kDataLoss) << "byte " << i;
  }
  for (size_t n : {size_t{0}, size_t{8}, rec.size() / 2, rec.size() - 1}) {
    EXPECT_FALSE(DecodeUndo(std::span<const std::byte>(rec.data(), n)).ok()) << n;
  }
}

// The crash-point trial. Each seed draws a file, a patch (overwrites, maybe an append or
// a shrink, new mode, mtime and xattrs) and cuts the FsOps sequence after every step in
// turn, until a commit runs through; each time, start-up recovery on a fresh Tree must
// leave exactly the old or the new state, and the new one if Commit had said OK.
TEST_F(InPlaceTest, CrashAtEveryStepLeavesOldOrNewContentByteForByte) {
  int seeds = 20;
  if (const char* l = std::getenv("HASYNC_LONG"); l != nullptr && std::string(l) == "1") seeds = 200;
  uint64_t first = std::random_device{}();
  if (const char* s = std::getenv("HASYNC_INPLACE_SEED")) first = std::strtoull(s, nullptr, 10);
  SCOPED_TRACE("HASYNC_INPLACE_SEED=" + std::to_string(first));
  int old_seen = 0, new_seen = 0, trials = 0;
  for (int k = 0; k < seeds; ++k) {
    const uint64_t seed = first + static_cast<uint64_t>(k);
    std::mt19937_64 rng(seed);
    const size_t size = kMin + rng() % (3 * kMin);
    const std::string base = Random(rng, size);
    std::vector<std::pair<uint64_t, std::string>> extents;
    std::string want = base;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) {
      size_t len = 1 + rng() % 3000;
      size_t off = rng() % (size - len);
      std::string data = Random(rng, len);
      want.replace(off, len, data);
      extents.emplace_back(off, data);
    }
    const int shape = static_cast<int>(rng() % 3);
    if (shape == 1) {  // append
      std::string tail = Random(rng, 1 + rng() % 5000);
      extents.emplace_back(want.size(), tail);
      want += tail;
    } else if (shape == 2) {  // shrink, then maybe rewrite the new end
      want.resize(want.size() - 1 - rng() % 4000);
      for (auto& [off, data] : extents) {
        if (off >= want.size()) data.clear();
        else if (off + data.size() > want.size()) data.resize(want.size() - off);
      }
      std::erase_if(extents, [](const auto& e) { return e.second.empty(); });
    }
    FileMeta meta;
    meta.mode = 0600 | static_cast<uint32_t>(rng() % 2 ? 040 : 004);
    meta.mtime_ns = int64_t{1'600'000'000} * 1'000'000'000 + static_cast<int64_t>(rng() % 1'000'000'000);
    meta.xattrs = {{"user.keep", Random(rng, 5)}, {"user.added", "1"}};

    for (int cut = 0; cut < 64; ++cut) {
      ++trials;
      // A fresh file each time (old state: mode 0644, mtime 1e9 s, xattrs keep + gone).
      std::filesystem::remove(R("f"));
      ASSERT_TRUE(WriteFile(R("f"), base, 0644));
      ASSERT_EQ(::setxattr(R("f").c_str(), "user.keep", "old", 3, 0), 0);
      ASSERT_EQ(::setxattr(R("f").c_str(), "user.gone", "x", 1, 0), 0);
      timespec ts[2] = {{0, UTIME_OMIT}, {1'000'000'000, 5}};
      ASSERT_EQ(::utimensat(AT_FDCWD, R("f").c_str(), ts, 0), 0);

      CrashFs crash;
      crash.CrashAfter(cut, seed * 131 + static_cast<uint64_t>(cut));
      Reopen(&crash);
      Status committed;
      {
        Batch batch(tree());
        Status s = Patch(batch, "f", extents, want, meta);
        committed = s.ok() ? batch.Commit() : s;
      }
      SCOPED_TRACE("seed " + std::to_string(seed) + " cut after " + std::to_string(cut) +
                   " calls; commit: " + committed.ToString());
      EXPECT_EQ(committed.ok(), !crash.crashed());
      if (committed.ok()) {
        EXPECT_EQ(tree().stats().files_patched_in_place, 1u);
      }
      // "Restart": a fresh Tree on the real calls recovers first.
      CrashFs real;
      Reopen(&real);
      auto report = tree().RecoverUndo();
      ASSERT_TRUE(report.ok()) << report.status().ToString();
      EXPECT_EQ(CountUndoRecords(undo_), 0u);
      std::optional<std::string> got = ReadFile(R("f"));
      ASSERT_TRUE(got.has_value());
      struct stat st = Lstat(R("f"));
      const bool is_new = *got == want;
      const bool is_old = *got == base;
      ASSERT_TRUE(is_new || is_old) << "torn: " << got->size() << " bytes, old " << base.size()
                                    << ", new " << want.size();
      if (committed.ok()) {
        EXPECT_TRUE(is_new) << "an acknowledgeable commit was lost";
      }
      if (is_new && !is_old) {
        ++new_seen;
        if (committed.ok()) {
          EXPECT_EQ(st.st_mode & 07777, meta.mode);
          EXPECT_EQ(GetXattr(R("f"), "user.gone"), std::nullopt);
        }
      } else {
        ++old_seen;
        EXPECT_EQ(st.st_mode & 07777, 0644u);
        EXPECT_EQ(st.st_mtim.tv_sec, 1'000'000'000);
        EXPECT_EQ(st.st_mtim.tv_nsec, 5);
        EXPECT_EQ(GetXattr(R("f"), "user.keep"), "old");
        EXPECT_EQ(GetXattr(R("f"), "user.gone"), "x");
        EXPECT_EQ(GetXattr(R("f"), "user.added"), std::nullopt);
      }
      EXPECT_TRUE(TempNamesUnder(root_).empty());
      if (committed.ok()) break;  // the sequence ran through: every cut was tried
    }
  }
  std::printf("%d seeds, %d cut points: old content after %d, new after %d\n", seeds, trials,
              old_seen, new_seen);
  EXPECT_GT(old_seen, 0) << trials << " trials";
  EXPECT_GT(new_seen, 0) << trials << " trials";
}

}  // namespace
}  // namespace hasync::engine::apply
