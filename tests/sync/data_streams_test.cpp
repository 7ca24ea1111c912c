// The standby's side of data streams (docs/PROTOCOL.md §6): file content that arrives on
// other connections than the control stream, in any interleaving the network allows,
// must give the same tree as one ordered stream — and a data stream that breaks the
// rules is a protocol error. Sender → Receiver in memory (tests/sync/sync_harness.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "base/hash.h"
#include "tests/sync/sync_harness.h"

namespace hasync::testing {
namespace {

namespace fs = std::filesystem;
using engine::Receiver;

#define REQUIRE_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "needs root: replicates ownership with fchown"

constexpr uint64_t kMinBytes = 256 * 1024;  // the node's kDataStreamMinBytes

void WriteAt(const std::string& path, const std::string& content, off_t offset, bool truncate) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(pwrite(fd, content.data(), content.size(), offset),
            static_cast<ssize_t>(content.size()));
  close(fd);
}

std::vector<std::byte> Bytes(std::string_view s) {
  auto b = std::as_bytes(std::span<const char>(s.data(), s.size()));
  return {b.begin(), b.end()};
}

wire::FileBegin Begin(const std::string& path, uint64_t size) {
  wire::FileBegin b;
  b.size = size;
  b.mode = 0644;
  b.mtime_ns = 1'700'000'000'000'000'000;
  b.path = "0/" + path;
  return b;
}

wire::FileEnd End(std::string_view content, uint32_t ranges) {
  wire::FileEnd e;
  e.size = content.size();
  e.hash = Xxh3_128(std::as_bytes(std::span<const char>(content.data(), content.size())));
  e.range_count = ranges;
  e.data_bytes = content.size();
  return e;
}

// Large files (several data-stream extents each, some deltas, a sparse one), small ones
// inline, renames and deletes, delivered in many interleavings: every order a set of
// in-order streams can produce must converge, with no deadlock and no NACK.
TEST(DataStreams, EveryInterleavingOfControlAndDataStreamsConverges) {
  REQUIRE_ROOT();
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    SyncPair pair("ds-" + std::to_string(seed));
    pair.Start();
    // Odd seeds also stripe files of 1 MiB and more over the streams extent by extent
    // (written out of order on the standby, hashed by reading back).
    pair.UseDataStreams(1 + seed % 3, kMinBytes, seed, seed % 2 ? (1u << 20) : UINT64_MAX);
    pair.InitialSync();
    std::mt19937 rng(seed);
    const std::string p = pair.primary();
    for (uint32_t i = 0; i < 5; ++i) {
      size_t size = kMinBytes + rng() % (3u << 20);
      WriteAt(p + "/big" + std::to_string(i), Random(size, seed * 10 + i), 0, true);
      pair.journal().Upsert(0, "big" + std::to_string(i));
    }
    fs::create_directory(p + "/small");
    for (uint32_t i = 0; i < 20; ++i) {
      WriteAt(p + "/small/f" + std::to_string(i), Random(100 + rng() % 5000, i), 0, true);
      pair.journal().Upsert(0, "small/f" + std::to_string(i));
    }
    pair.journal().Upsert(0, "small");
    pair.Ship();
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
    TreeDiff first = pair.Compare();
    EXPECT_TRUE(first.empty()) << first.ToString();

    // Changes of every kind the large files see: an append and a rewrite (deltas when
    // the model holds block hashes), a rename, a delete, a sparse file.
    WriteAt(p + "/big0", Random(300'000, seed), static_cast<off_t>(fs::file_size(p + "/big0")),
            false);
    pair.journal().Upsert(0, "big0");
    WriteAt(p + "/big1", Random(70'000, seed + 1), 100'000, false);
    pair.journal().Upsert(0, "big1");
    fs::rename(p + "/big2", p + "/small/big2");
    pair.journal().Rename(0, "big2", "small/big2", false);
    fs::remove(p + "/big3");
    pair.journal().Remove(0, "big3");
    WriteAt(p + "/sparse", Random(200'000, seed + 2), 3 << 20, true);
    pair.journal().Upsert(0, "sparse");
    pair.Ship();
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    EXPECT_EQ(pair.nacks(), 0u) << pair.last_nack();
    TreeDiff second = pair.Compare();
    EXPECT_TRUE(second.empty()) << second.ToString();
    EXPECT_GT(pair.data_stream_frames(), 10u) << "no content went through the data streams";
  }
}

TEST(DataStreams, AFileEndWaitsForItsDataAndHoldsTheControlStream) {
  REQUIRE_ROOT();
  SyncPair pair("ds-wait");
  pair.Start();
  pair.UseDataStreams(2, kMinBytes, 1);
  Receiver& r = pair.receiver();
  const std::string content = "content that travels on a data stream";
  ASSERT_TRUE(r.OnMessage(1, Begin("x", content.size())).ok());
  ASSERT_TRUE(r.OnMessage(1, End(content, 1)).ok());
  EXPECT_TRUE(r.waiting_for_data());
  // Nothing else from the control stream while the file waits.
  Status early = r.OnMessage(0, wire::Commit{1, 1});
  EXPECT_EQ(early.code(), Code::kFailedPrecondition) << early.ToString();
  auto taken = r.OnData(1, wire::Extent{content.size(), 0, Bytes(content)});
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  EXPECT_EQ(*taken, Receiver::DataVerdict::kTaken);
  EXPECT_FALSE(r.waiting_for_data());
  ASSERT_TRUE(r.OnMessage(0, wire::Commit{1, 1}).ok());
  EXPECT_EQ(ReadFile(pair.standby() + "/x"), content);
  EXPECT_EQ(r.last_applied_seq(), 1u);
}

TEST(DataStreams, DataAheadOfItsFileBeginWaitsAtTheHeadOfItsStream) {
  REQUIRE_ROOT();
  SyncPair pair("ds-ahead");
  pair.Start();
  pair.UseDataStreams(1, kMinBytes, 1);
  Receiver& r = pair.receiver();
  const std::string content = "early";
  wire::Extent extent{content.size(), 0, Bytes(content)};
  auto ahead = r.OnData(1, extent);
  ASSERT_TRUE(ahead.ok());
  EXPECT_EQ(*ahead, Receiver::DataVerdict::kNotYet);
  ASSERT_TRUE(r.OnMessage(1, Begin("y", content.size())).ok());
  auto now = r.OnData(1, extent);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(*now, Receiver::DataVerdict::kTaken);
  ASSERT_TRUE(r.OnMessage(1, End(content, 1)).ok());
  EXPECT_FALSE(r.waiting_for_data());
  ASSERT_TRUE(r.OnMessage(0, wire::Commit{1, 1}).ok());
  EXPECT_EQ(ReadFile(pair.standby() + "/y"), content);
}

TEST(DataStreams, ARangeOfAnAbortedFileVersionIsDroppedAndCounted) {
  REQUIRE_ROOT();
  SyncPair pair("ds-abort");
  pair.Start();
  pair.UseDataStreams(1, kMinBytes, 1);
  Receiver& r = pair.receiver();
  ASSERT_TRUE(r.OnMessage(1, Begin("z", 4)).ok());
  ASSERT_TRUE(r.OnMessage(1, wire::FileAbort{wire::FileAbortReason::kChanged}).ok());
  auto late = r.OnData(1, wire::Extent{4, 0, Bytes("late")});
  ASSERT_TRUE(late.ok()) << late.status().ToString();
  EXPECT_EQ(*late, Receiver::DataVerdict::kTaken);
  EXPECT_EQ(r.stats().ranges_discarded, 1u);
  ASSERT_TRUE(r.OnMessage(0, wire::Commit{1, 1}).ok());
  EXPECT_FALSE(fs::exists(pair.standby() + "/z"));
}

TEST(DataStreams, MoreDataThanTheFileEndAnnouncedIsAProtocolError) {
  REQUIRE_ROOT();
  SyncPair pair("ds-over");
  pair.Start();
  pair.UseDataStreams(1, kMinBytes, 1);
  Receiver& r = pair.receiver();
  const std::string content = "12345678";
  ASSERT_TRUE(r.OnMessage(1, Begin("w", content.size())).ok());
  wire::FileEnd end = End(content, 2);  // announces two ranges of 4 bytes
  ASSERT_TRUE(r.OnMessage(1, end).ok());
  ASSERT_TRUE(r.waiting_for_data());
  auto over = r.OnData(1, wire::Extent{content.size(), 0, Bytes(content)});  // 8 bytes at once
  ASSERT_TRUE(over.ok());  // one range of 8 bytes: the counts can still be met…
  auto beyond = r.OnData(1, wire::Extent{content.size(), 0, Bytes("1234")});
  EXPECT_FALSE(beyond.ok()) << "a range past the announced bytes was accepted";  // …not now
  EXPECT_FALSE(fs::exists(pair.standby() + "/w"));
}

TEST(DataStreams, OnlyExtentsAndHolesBelongOnADataStream) {
  REQUIRE_ROOT();
  SyncPair pair("ds-kind");
  pair.Start();
  pair.UseDataStreams(1, kMinBytes, 1);
  auto wrong = pair.receiver().OnData(1, wire::Unlink{"0/x"});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("UNLINK on a data stream"), std::string::npos)
      << wrong.status().ToString();
}

TEST(DataStreams, WithoutDataStreamsAShortFileEndFailsAtOnce) {
  REQUIRE_ROOT();
  SyncPair pair("ds-off");
  pair.Start();
  Receiver& r = pair.receiver();
  const std::string content = "never sent";
  ASSERT_TRUE(r.OnMessage(1, Begin("v", content.size())).ok());
  Status short_end = r.OnMessage(1, End(content, 1));
  EXPECT_FALSE(short_end.ok());
  EXPECT_FALSE(r.waiting_for_data());
}

}  // namespace
}  // namespace hasync::testing
