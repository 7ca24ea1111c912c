// The role history file behind `hasync history` (engine/node/history.h).
#include "engine/node/history.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "tests/engine/config_fixture.h"

namespace hasync::engine {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

HistoryEntry Entry(int64_t ms, NodeRole role, uint64_t epoch, std::string reason) {
  return {ms, role, epoch, std::move(reason)};
}

TEST(History, NoFileIsAnEmptyHistory) {
  TempDir dir;
  auto h = ReadHistory(dir.path());
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_TRUE(h->entries.empty());
  EXPECT_EQ(h->skipped_lines, 0u);
}

TEST(History, AppendsAndReadsBackInOrder) {
  TempDir dir;
  const HistoryEntry a =
      Entry(1'764'255'600'123, NodeRole::kPrimary, 1, "first start (--initial-role)");
  const HistoryEntry b = Entry(1'764'255'700'456, NodeRole::kStandby, 2,
                               "demoted: peer holds epoch 2 (it promoted: primary silent)");
  ASSERT_TRUE(AppendHistory(dir.path(), a).ok());
  ASSERT_TRUE(AppendHistory(dir.path(), b).ok());
  auto h = ReadHistory(dir.path());
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(h->entries.size(), 2u);
  EXPECT_EQ(h->entries[0], a);
  EXPECT_EQ(h->entries[1], b);
  struct stat st {};
  ASSERT_EQ(stat((dir / "history").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadFile(dir / "history").substr(0, 47),
            "unix_ms=1764255600123 role=primary epoch=1 reas");
}

TEST(History, AReasonIsPrintableAndBounded) {
  TempDir dir;
  std::string reason = "line one\nline two\x01";
  reason += std::string(2 * kHistoryReasonMax, 'x');
  ASSERT_TRUE(AppendHistory(dir.path(), Entry(5, NodeRole::kPrimary, 3, reason)).ok());
  auto h = ReadHistory(dir.path());
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->entries.size(), 1u);
  EXPECT_EQ(h->entries[0].reason.substr(0, 19), "line one?line two?x");
  EXPECT_EQ(h->entries[0].reason.size(), kHistoryReasonMax);
}

TEST(History, ATornLastLineIsSkippedAndCounted) {
  TempDir dir;
  ASSERT_TRUE(AppendHistory(dir.path(), Entry(1, NodeRole::kPrimary, 1, "ok")).ok());
  // A crash in the middle of an append leaves part of a line.
  std::string text = ReadFile(dir / "history") + "unix_ms=2 role=stan";
  WriteFile(dir / "history", text);
  auto h = ReadHistory(dir.path());
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->entries.size(), 1u);
  EXPECT_EQ(h->skipped_lines, 1u);
  // The next append still lands on a line of its own... after the torn one: it is skipped
  // again, and the new entry reads back.
  WriteFile(dir / "history", text + "\n");
  ASSERT_TRUE(AppendHistory(dir.path(), Entry(3, NodeRole::kStandby, 2, "next")).ok());
  h = ReadHistory(dir.path());
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->entries.size(), 2u);
  EXPECT_EQ(h->entries[1].reason, "next");
}

TEST(History, DecodeSaysWhyItRejects) {
  EXPECT_THAT(DecodeHistoryLine("role=primary").status().ToString(),
              ::testing::HasSubstr("no unix_ms"));
  EXPECT_THAT(DecodeHistoryLine("unix_ms=1 role=leader epoch=1 reason=x").status().ToString(),
              ::testing::HasSubstr("'leader' is not primary or standby"));
  EXPECT_THAT(DecodeHistoryLine("unix_ms=1 role=primary epoch=x reason=x").status().ToString(),
              ::testing::HasSubstr("no epoch"));
}

// The file stays bounded: the first append past kHistoryFileMax first keeps the newest
// kHistoryKeep entries, then adds its own.
TEST(History, TheFileIsTrimmedToItsNewestEntriesPastItsBound) {
  TempDir dir;
  const std::string reason(400, 'r');
  const size_t line =
      EncodeHistoryLine(Entry(1'764'255'600'000, NodeRole::kPrimary, 999, reason)).size();
  const size_t bound = 2 * (kHistoryFileMax / line + 2);  // appends: twice what must trigger it
  off_t last_size = 0;
  bool trimmed = false;
  for (size_t i = 0; i < bound && !trimmed; ++i) {
    ASSERT_TRUE(AppendHistory(dir.path(), Entry(1'764'255'600'000 + static_cast<int64_t>(i),
                                                NodeRole::kPrimary, i, reason))
                    .ok());
    struct stat st {};
    ASSERT_EQ(stat((dir / "history").c_str(), &st), 0);
    EXPECT_LE(static_cast<size_t>(st.st_size), kHistoryFileMax + line);
    if (st.st_size < last_size) {
      trimmed = true;
      auto h = ReadHistory(dir.path());
      ASSERT_TRUE(h.ok());
      EXPECT_EQ(h->entries.size(), kHistoryKeep + 1);
      EXPECT_EQ(h->entries.back().epoch, i) << "the newest entry must survive the trim";
      EXPECT_EQ(h->entries.front().epoch, i - kHistoryKeep) << "the oldest kept is the right one";
      EXPECT_EQ(h->skipped_lines, 0u);
    }
    last_size = st.st_size;
  }
  EXPECT_TRUE(trimmed) << "no trim within " << bound << " appends";
}

}  // namespace
}  // namespace hasync::engine
