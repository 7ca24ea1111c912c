// Sender → Receiver in memory over the real codec: replication logic end to end on real
// directories, without sockets. The process tests (tests/integration) repeat the key
// cases with two hasync processes.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "tests/sync/sync_harness.h"

namespace hasync::testing {
namespace {

using engine::kDefaultBlockSize;

namespace fs = std::filesystem;

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}
void AppendFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::app) << content;
}

#define REQUIRE_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "needs root: replicates ownership with fchown"

TEST(Sync, InitialSyncCopiesEveryKindOfEntry) {
  REQUIRE_ROOT();
  SyncPair pair("init");
  const std::string p = pair.primary();
  fs::create_directories(p + "/jobs/hash.1");
  WriteFile(p + "/jobs/hash.1/job.1.script", "#!/bin/sh\nsleep 1\n");
  WriteFile(p + "/empty", "");
  WriteFile(p + "/node_state", Random(200'000, 1));
  chmod((p + "/node_state").c_str(), 0600);
  ASSERT_EQ(chown((p + "/jobs").c_str(), 1234, 5678), 0);
  fs::create_symlink("../outside/../../etc/passwd", p + "/link");
  ASSERT_EQ(link((p + "/node_state").c_str(), (p + "/node_state.old").c_str()), 0);
  ASSERT_EQ(setxattr((p + "/empty").c_str(), "user.hasync", "v", 1, 0), 0);
  {  // sparse: 8 MiB with 4 KiB of data in the middle
    int fd = open((p + "/sparse").c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "data", 4, 4 << 20), 4);
    ASSERT_EQ(ftruncate(fd, 8 << 20), 0);
    close(fd);
  }
  pair.Start();
  pair.InitialSync();
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  TreeDiff diff = pair.Compare();
  EXPECT_TRUE(diff.empty()) << diff.ToString();
  struct stat st {};
  ASSERT_EQ(stat((pair.standby() + "/sparse").c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "the sparse file lost its holes";
}

TEST(Sync, LiveChangesReplicateInOrder) {
  REQUIRE_ROOT();
  SyncPair pair("live");
  const std::string p = pair.primary();
  pair.Start();
  pair.InitialSync();
  auto& j = pair.journal();

  fs::create_directories(p + "/a/b");
  j.Upsert(0, "a");
  j.Upsert(0, "a/b");
  WriteFile(p + "/a/b/f", "one");
  j.Upsert(0, "a/b/f");
  pair.Ship();
  ASSERT_TRUE(pair.Compare().empty()) << pair.Compare().ToString();

  WriteFile(p + "/a/b/f", "two, longer");  // overwrite
  j.Upsert(0, "a/b/f");
  AppendFile(p + "/a/b/f", " + tail");  // append
  j.Upsert(0, "a/b/f");
  fs::create_directories(p + "/c");
  j.Upsert(0, "c");
  fs::rename(p + "/a/b/f", p + "/c/g");  // rename across directories
  j.Rename(0, "a/b/f", "c/g", false);
  fs::rename(p + "/a", p + "/c/moved");  // directory rename
  j.Rename(0, "a", "c/moved", true);
  chmod((p + "/c/g").c_str(), 0640);
  j.Upsert(0, "c/g");
  fs::create_symlink("g", p + "/c/s");
  j.Upsert(0, "c/s");
  ASSERT_EQ(link((p + "/c/g").c_str(), (p + "/c/h").c_str()), 0);
  j.Upsert(0, "c/h");
  pair.Ship();
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  ASSERT_TRUE(pair.Compare().empty()) << pair.Compare().ToString();

  ASSERT_EQ(truncate((p + "/c/g").c_str(), 2), 0);  // truncate (h is the same inode)
  j.Upsert(0, "c/g");
  fs::remove(p + "/c/s");
  j.Remove(0, "c/s");
  fs::remove(p + "/c/moved/b");
  j.Remove(0, "c/moved/b");
  pair.Ship();
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  TreeDiff diff = pair.Compare();
  EXPECT_TRUE(diff.empty()) << diff.ToString();
  EXPECT_EQ(ReadFile(pair.standby() + "/c/h"), "tw");
}

// Slurm's state save: write X.new, fsync, unlink X.old, link X X.old, unlink X,
// link X.new X, unlink X.new. After every applied batch the standby holds X or X.old.
TEST(Sync, SlurmStateSaveSequenceNeverLosesBothNames) {
  REQUIRE_ROOT();
  SyncPair pair("slurm");
  const std::string p = pair.primary();
  const std::vector<std::string> names = {"job_state", "node_state", "resv_state"};
  for (const auto& n : names) WriteFile(p + "/" + n, "initial " + n);
  pair.Start({.max_batch_changes = 3});  // small batches: many intermediate states
  pair.InitialSync();
  auto& j = pair.journal();
  for (int round = 0; round < 1000; ++round) {
    for (const auto& n : names) {
      std::string x = p + "/" + n;
      WriteFile(x + ".new", n + " round " + std::to_string(round));
      j.Upsert(0, n + ".new");
      unlink((x + ".old").c_str());
      j.Remove(0, n + ".old");
      ASSERT_EQ(link(x.c_str(), (x + ".old").c_str()), 0);
      j.Upsert(0, n + ".old");
      unlink(x.c_str());
      j.Remove(0, n);
      ASSERT_EQ(link((x + ".new").c_str(), x.c_str()), 0);
      j.Upsert(0, n);
      unlink((x + ".new").c_str());
      j.Remove(0, n + ".new");
    }
    // Ship after every round at first (the live case: each link finds its source on the
    // standby), then only every 7th round (the backlog case: sources were never sent).
    if (round < 100 || round % 7 == 0) {
      for (int step = 0; step < 200 && !j.empty(); ++step) {
        ASSERT_TRUE(pair.sender().Pump(j).ok());
        pair.Drain();
        for (const auto& n : names) {
          std::string s = pair.standby() + "/" + n;
          ASSERT_TRUE(fs::exists(s) || fs::exists(s + ".old"))
              << "round " << round << ": standby lacks both " << n << " and " << n << ".old";
        }
      }
    }
  }
  pair.Ship();
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  TreeDiff diff = pair.Compare();
  EXPECT_TRUE(diff.empty()) << diff.ToString();
  EXPECT_GT(pair.sender().stats().links_sent, 0u);
}

TEST(Sync, AppendToLargeFileShipsOnlyTheTail) {
  REQUIRE_ROOT();
  SyncPair pair("append");
  const std::string big = pair.primary() + "/big";
  WriteFile(big, Random(64 << 20, 7));
  pair.Start();
  pair.InitialSync();
  pair.journal().Upsert(0, "big");  // touch without change: nothing moves
  pair.Ship();
  pair.to_standby().ResetCounters();
  AppendFile(big, Random(1 << 20, 8));
  pair.journal().Upsert(0, "big");
  pair.Ship();
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  EXPECT_LE(pair.to_standby().extent_bytes(), (1 << 20) * 105 / 100)
      << "an append of 1 MiB moved " << pair.to_standby().extent_bytes() << " bytes";
  EXPECT_TRUE(pair.Compare().empty()) << pair.Compare().ToString();
}

// Plain mode splices file content instead of copying it (docs/ARCHITECTURE.md): the
// same ranges go out, their bytes taken from the file once the sender waits for them. A
// new file, a sparse one, an append (a delta) and a file changed in place after its read
// (its version is aborted, then sent again) all end identical.
TEST(Sync, SplicedContentReplicatesLikeCopiedContent) {
  REQUIRE_ROOT();
  SyncPair pair("splice");
  const std::string p = pair.primary();
  WriteFile(p + "/big", Random(5 << 20, 1));
  WriteFile(p + "/small", "x");
  {
    int fd = open((p + "/sparse").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "data", 4, 3 << 20), 4);
    ASSERT_EQ(ftruncate(fd, 6 << 20), 0);
    close(fd);
  }
  pair.Start();
  pair.to_standby().set_splice(true);
  pair.InitialSync();
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  EXPECT_TRUE(pair.Compare().empty()) << pair.Compare().ToString();
  EXPECT_GE(pair.to_standby().spliced_extents(), 6u);

  pair.to_standby().ResetCounters();
  AppendFile(p + "/big", Random(1 << 20, 2));
  pair.journal().Upsert(0, "big");
  pair.Ship();
  EXPECT_LE(pair.to_standby().extent_bytes(), (1 << 20) * 105 / 100);
  EXPECT_TRUE(pair.Compare().empty()) << pair.Compare().ToString();

  // Changed in place after FILE_BEGIN, before its bytes are taken: aborted, then resent.
  WriteFile(p + "/rewritten", Random(2 << 20, 3));
  bool changed = false;
  pair.to_standby().set_hook([&](uint64_t, const wire::Message& m) {
    const auto* b = std::get_if<wire::FileBegin>(&m);
    if (changed || b == nullptr || b->path != "0/rewritten") return;
    changed = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a later mtime
    int fd = open((p + "/rewritten").c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "CHANGED", 7, 1 << 20), 7);
    close(fd);
  });
  pair.journal().Upsert(0, "rewritten");
  pair.Ship();
  pair.to_standby().set_hook(nullptr);
  EXPECT_TRUE(changed);
  EXPECT_GE(pair.sender().stats().aborted_reads, 1u);
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  TreeDiff diff = pair.Compare();
  EXPECT_TRUE(diff.empty()) << diff.ToString();
}

TEST(Sync, RestartedPairResyncsOnlyTheDifference) {
  REQUIRE_ROOT();
  SyncPair pair("restart");
  const std::string p = pair.primary();
  for (int i = 0; i < 200; ++i)
    WriteFile(p + "/f" + std::to_string(i), Random(10'000, static_cast<uint32_t>(i)));
  pair.Start();
  pair.InitialSync();
  ASSERT_TRUE(pair.Compare().empty());
  // While "down": the primary changes 3 files and deletes one; the standby gained junk.
  WriteFile(p + "/f1", "changed");
  WriteFile(p + "/f2", "changed too");
  WriteFile(p + "/new", "new");
  fs::remove(p + "/f3");
  WriteFile(pair.standby() + "/junk", "only on the standby");
  pair.Start();  // both sides restart: empty model, manifest exchange
  pair.to_standby().ResetCounters();
  pair.InitialSync();
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  EXPECT_TRUE(pair.Compare().empty()) << pair.Compare().ToString();
  EXPECT_LT(pair.to_standby().extent_bytes(), 100u) << "unchanged files were sent again";
}

// The primary's resync walks the whole spool twice without returning to its loop (the
// files to ask block hashes for, then the comparison), and the standby walks and hashes
// it once for the manifest. On a million-file spool a walk can outlast the peer's 15 s
// silence bound and systemd's 30 s watchdog: the standby dropped every session before
// the first change was sent. Each walk now calls Progress once per entry (the node's
// SessionOut then feeds the watchdog and sends at most one PING a second).
TEST(Sync, EachWalkOfAResyncShowsProgressPerEntry) {
  REQUIRE_ROOT();
  SyncPair pair("resyncprogress");
  const std::string p = pair.primary();
  constexpr int kDirs = 40, kFiles = 50;
  for (int d = 0; d < kDirs; ++d) {
    fs::create_directory(p + "/hash." + std::to_string(d));
    for (int f = 0; f < kFiles; ++f)
      WriteFile(p + "/hash." + std::to_string(d) + "/job." + std::to_string(f), "script");
  }
  constexpr uint64_t kEntries = kDirs + kDirs * kFiles;
  pair.Start();
  pair.InitialSync();
  ASSERT_TRUE(pair.Compare().empty());
  pair.Start();  // a restart: nothing differs, so nothing but the walks happens
  pair.sender().BeginManifest();
  pair.to_primary().ResetCounters();
  ASSERT_TRUE(pair.receiver().OnMessage(0, wire::ManifestRequest{1, ""}).ok());
  // The standby's walk, which hashes every file, feeds its watchdog and PINGs likewise.
  EXPECT_GE(pair.to_primary().progress_calls(), kEntries)
      << "the standby's manifest walk held its loop without a sign of life";
  pair.Drain();
  pair.to_standby().ResetCounters();
  auto pending = pair.sender().RequestResyncBlocks();
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  EXPECT_GE(pair.to_standby().progress_calls(), kEntries)
      << "the block-request walk held the session silent";
  pair.Drain();
  pair.to_standby().ResetCounters();
  ASSERT_TRUE(pair.sender().Resync().ok());
  // One per entry walked and one per entry compared.
  EXPECT_GE(pair.to_standby().progress_calls(), 2 * kEntries)
      << "the comparison's walk held the session silent";
  pair.Drain();
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  EXPECT_TRUE(pair.Compare().empty()) << pair.Compare().ToString();
}

// A large file changed while the pair was apart: the resync asks the standby for its
// block hashes and ships only the blocks that differ.
TEST(Sync, ResyncShipsOnlyChangedBlocksOfALargeFile) {
  REQUIRE_ROOT();
  SyncPair pair("resyncdelta");
  const std::string big = pair.primary() + "/big";
  WriteFile(big, Random(16 << 20, 3));
  pair.Start();
  pair.InitialSync();
  ASSERT_TRUE(pair.Compare().empty());
  AppendFile(big, Random(1 << 20, 4));  // while "down"
  {
    int fd = open(big.c_str(), O_WRONLY | O_CLOEXEC);  // and one block rewritten mid-file
    ASSERT_GE(fd, 0);
    std::string patch = Random(100, 5);
    ASSERT_EQ(pwrite(fd, patch.data(), patch.size(), 5 << 20), 100);
    close(fd);
  }
  pair.Start();
  pair.to_standby().ResetCounters();
  pair.InitialSync();
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  EXPECT_TRUE(pair.Compare().empty()) << pair.Compare().ToString();
  EXPECT_EQ(pair.sender().stats().resync_block_requests, 1u);
  EXPECT_LE(pair.to_standby().extent_bytes(), (1u << 20) + 2 * kDefaultBlockSize)
      << "the resync moved " << pair.to_standby().extent_bytes() << " bytes of a 17 MiB file";
}

// A standby's manifest is input from the network: two entries no real standby sends
// would make the resync plan a change the standby refuses every time (an UNLINK of a
// reserved temp name, the removal of a sync root listed as a file). The primary refuses
// the manifest instead (found by tests/fuzz/resync_fuzz).
TEST(Sync, ImpossibleManifestEntriesAreRefused) {
  REQUIRE_ROOT();
  SyncPair pair("bad-manifest");
  pair.Start();
  pair.sender().BeginManifest();
  wire::ManifestEntry temp;
  temp.kind = wire::EntryKind::kFile;
  temp.mode = 0600;
  temp.path = "0/a/.hasync-tmp.77";
  Status s = pair.sender().AddManifestEntry(temp);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("reserved temporary namespace"), std::string::npos) << s.ToString();
  wire::ManifestEntry root;
  root.kind = wire::EntryKind::kFile;
  root.mode = 0644;
  root.path = "0";
  s = pair.sender().AddManifestEntry(root);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("as a non-directory"), std::string::npos) << s.ToString();
  // The root as a directory and an ordinary file are taken.
  root.kind = wire::EntryKind::kDirectory;
  root.mode = 0755;
  EXPECT_TRUE(pair.sender().AddManifestEntry(root).ok());
  wire::ManifestEntry file;
  file.kind = wire::EntryKind::kFile;
  file.mode = 0644;
  file.path = "0/job";
  EXPECT_TRUE(pair.sender().AddManifestEntry(file).ok());
}

TEST(Sync, TamperedContentIsNackedAndNotPublished) {
  REQUIRE_ROOT();
  SyncPair pair("tamper");
  WriteFile(pair.primary() + "/f", "original");
  pair.Start();
  pair.InitialSync();
  WriteFile(pair.primary() + "/f", "replacement");
  pair.journal().Upsert(0, "f");
  ASSERT_TRUE(pair.sender().Pump(pair.journal()).ok());
  // Flip a byte of the extent in flight; the hash in FILE_END no longer matches.
  std::deque<std::pair<uint64_t, wire::Message>> frames;
  while (!pair.to_standby().empty()) frames.push_back(pair.to_standby().Pop());
  bool tampered = false;
  for (auto& [seq, msg] : frames) {
    if (auto* ext = std::get_if<wire::Extent>(&msg); ext != nullptr && !tampered) {
      ext->data[0] ^= std::byte{1};
      tampered = true;
    }
    ASSERT_TRUE(pair.receiver().OnMessage(seq, msg).ok());
  }
  ASSERT_TRUE(tampered);
  pair.Drain();
  EXPECT_EQ(pair.nacks(), 1u);
  EXPECT_NE(pair.last_nack().find("DataLoss"), std::string::npos) << pair.last_nack();
  EXPECT_EQ(ReadFile(pair.standby() + "/f"), "original");
}

}  // namespace
}  // namespace hasync::testing
