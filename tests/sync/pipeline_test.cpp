// The standby's pipelined commit (docs/APPLY.md, "Pipelined commit"): batch N commits on
// the committer thread while batch N+1 is received and staged; the ACK of N goes out only
// once N is durable, in order; a failed background commit refuses what was staged
// behind it. Sender → Receiver in memory over the real codec (sync_harness.h).
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "engine/apply/resolve.h"
#include "engine/sync/committer.h"
#include "tests/sync/sync_harness.h"

namespace hasync::testing {
namespace {

namespace fs = std::filesystem;

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

bool Readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

size_t CountTemps(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.path().filename().string().starts_with(engine::apply::kTempPrefix)) ++n;
  }
  return n;
}

#define REQUIRE_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "needs root: replicates ownership with fchown"

// ---- Committer -------------------------------------------------------------------------

TEST(Committer, RunsTheJobAndSignalsItsEventFd) {
  auto c = engine::Committer::Create();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE((*c)->Wait().ok()) << "no job: nothing to wait for";
  std::atomic<bool> ran{false};
  (*c)->Start([&] {
    ran = true;
    return Status(Code::kIo, "job says no");
  });
  EXPECT_TRUE((*c)->busy());
  ASSERT_TRUE(Readable((*c)->event_fd(), 5000)) << "no signal within 5 s";
  EXPECT_TRUE((*c)->done());
  Status s = (*c)->Wait();
  EXPECT_TRUE(ran);
  EXPECT_EQ(s.code(), Code::kIo);
  EXPECT_FALSE((*c)->busy());
  // A second job after the first.
  (*c)->Start([] { return Status::Ok(); });
  EXPECT_TRUE((*c)->Wait().ok());
}

TEST(Committer, DestructorWaitsForTheRunningJob) {
  std::atomic<bool> finished{false};
  {
    auto c = engine::Committer::Create();
    ASSERT_TRUE(c.ok());
    (*c)->Start([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      finished = true;
      return Status::Ok();
    });
  }
  EXPECT_TRUE(finished) << "a commit must never be cut short";
}

// ---- Receiver, pipelined ---------------------------------------------------------------

TEST(Pipeline, ManySmallBatchesWithNamespaceChangesConverge) {
  REQUIRE_ROOT();
  SyncPair pair("pipe-conv");
  pair.SetPipelined(true);
  engine::SenderOptions options;
  options.max_batch_changes = 3;  // many batches, each staged while the last commits
  pair.Start(options);
  pair.InitialSync();
  const std::string p = pair.primary();
  auto& j = pair.journal();
  for (int d = 0; d < 4; ++d) {
    const std::string dir = "d" + std::to_string(d);
    fs::create_directories(p + "/" + dir);
    j.Upsert(0, dir);
    for (int f = 0; f < 5; ++f) {
      const std::string name = dir + "/f" + std::to_string(f);
      WriteFile(p + "/" + name, Random(100 + static_cast<size_t>(f) * 300, static_cast<uint32_t>(d * 10 + f)));
      j.Upsert(0, name);
    }
  }
  pair.Ship();
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  ASSERT_TRUE(pair.Compare().empty()) << pair.Compare().ToString();

  // Directory renamed and removed, files moved into a new directory, right behind each
  // other: each FILE_BEGIN after a batch that moves names waits for that batch.
  fs::rename(p + "/d0", p + "/moved");
  j.Rename(0, "d0", "moved", true);
  fs::create_directories(p + "/d0");
  j.Upsert(0, "d0");
  WriteFile(p + "/d0/again", "new file in a re-made directory");
  j.Upsert(0, "d0/again");
  fs::remove_all(p + "/d1");
  j.Remove(0, "d1");
  WriteFile(p + "/d2/f0", "rewritten");
  j.Upsert(0, "d2/f0");
  pair.Ship();
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  TreeDiff diff = pair.Compare();
  EXPECT_TRUE(diff.empty()) << diff.ToString();
  EXPECT_FALSE(pair.receiver().commit_pending());
  EXPECT_EQ(pair.sender().unacked_batches(), 0u);
  EXPECT_GT(pair.receiver().stats().batches_acked, 5u);
  EXPECT_EQ(CountTemps(pair.standby()), 0u);
}

// SyncAll blocks until the test opens the gate (on the committer's thread).
class GateFs : public engine::apply::PosixFsOps {
 public:
  int SyncAll(std::span<const int> fds, size_t* failed) override {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return open_; });
      if (fail_) {
        *failed = 0;
        return EIO;
      }
    }
    return FsOps::SyncAll(fds, failed);
  }
  void Set(bool open, bool fail = false) {
    {
      std::lock_guard lock(mu_);
      open_ = open;
      fail_ = fail;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  bool fail_ = false;
};

TEST(Pipeline, AckOnlyOnceDurableWhileTheNextBatchIsStaged) {
  REQUIRE_ROOT();
  GateFs gate;
  SyncPair pair("pipe-ack");
  pair.SetPipelined(true);
  pair.SetStandbyFs(&gate);
  engine::SenderOptions options;
  options.max_batch_changes = 2;
  pair.Start(options);
  pair.InitialSync();
  const std::string p = pair.primary();
  for (int i = 0; i < 4; ++i) {
    WriteFile(p + "/f" + std::to_string(i), "content " + std::to_string(i));
    pair.journal().Upsert(0, "f" + std::to_string(i));
  }
  gate.Set(false);  // batch 1's temps cannot become durable yet
  ASSERT_TRUE(pair.sender().Pump(pair.journal()).ok());
  pair.to_primary().ResetCounters();
  // Deliver up to, not including, the second COMMIT (it would wait for the first).
  int commits = 0;
  while (!pair.to_standby().empty()) {
    auto [seq, msg] = pair.to_standby().Pop();
    if (std::holds_alternative<wire::Commit>(msg) && ++commits == 2) {
      EXPECT_TRUE(pair.receiver().commit_pending());
      EXPECT_EQ(pair.to_primary().count(wire::MessageType::kAck), 0u) << "ACK before durable";
      EXPECT_FALSE(fs::exists(pair.standby() + "/f0")) << "published before its temp was durable";
      EXPECT_EQ(CountTemps(pair.standby()), 4u) << "batch 2 was not staged meanwhile";
      gate.Set(true);
      ASSERT_TRUE(Readable(pair.receiver().commit_event_fd(), 5000));
      ASSERT_TRUE(pair.receiver().ReapCommit().ok());
      EXPECT_EQ(pair.to_primary().count(wire::MessageType::kAck), 1u);
      EXPECT_EQ(ReadFile(pair.standby() + "/f1"), "content 1");
    }
    Status s = pair.receiver().OnMessage(seq, msg);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_EQ(commits, 2);
  pair.Drain();  // reaps batch 2, hands both ACKs to the sender
  EXPECT_EQ(pair.to_primary().count(wire::MessageType::kAck), 2u);
  EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
  EXPECT_EQ(pair.sender().unacked_batches(), 0u);
  TreeDiff diff = pair.Compare();
  EXPECT_TRUE(diff.empty()) << diff.ToString();
}

TEST(Pipeline, FailedBackgroundCommitRefusesTheBatchStagedBehindIt) {
  REQUIRE_ROOT();
  GateFs gate;
  SyncPair pair("pipe-eio");
  pair.SetPipelined(true);
  pair.SetStandbyFs(&gate);
  engine::SenderOptions options;
  options.max_batch_changes = 2;
  pair.Start(options);
  pair.InitialSync();
  const std::string p = pair.primary();
  for (int i = 0; i < 4; ++i) {
    WriteFile(p + "/f" + std::to_string(i), "content " + std::to_string(i));
    pair.journal().Upsert(0, "f" + std::to_string(i));
  }
  gate.Set(true, /*fail=*/true);  // every SyncAll: EIO
  ASSERT_TRUE(pair.sender().Pump(pair.journal()).ok());
  pair.Drain();
  EXPECT_EQ(pair.nacks(), 2u) << "the failed batch and the one staged behind it";
  EXPECT_NE(pair.last_nack().find("follows refused batch"), std::string::npos)
      << pair.last_nack();
  EXPECT_GT(pair.receiver().unsynced_paths(), 0u) << "fsyncgate: what it named is not trusted";
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(fs::exists(pair.standby() + "/f" + std::to_string(i)));
  EXPECT_EQ(CountTemps(pair.standby()), 0u);
}

}  // namespace
}  // namespace hasync::testing
