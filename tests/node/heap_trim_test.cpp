#include "engine/node/heap_trim.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

namespace hasync::engine {
namespace {

constexpr int64_t kEvery = HeapTrim::kEveryNs;
constexpr int64_t kQuiet = HeapTrim::kQuietNs;
constexpr size_t kMiB = size_t{1} << 20;

// A scripted process: the test sets the RSS each sample reads; a trim is counted and
// takes the RSS to `after_trim`.
struct Fake {
  size_t rss = 0;
  size_t after_trim = 0;
  int trims = 0;
  int samples = 0;
  std::unique_ptr<HeapTrim> Make() {
    return std::make_unique<HeapTrim>(
        [this] {
          ++samples;
          return rss;
        },
        [this] {
          ++trims;
          rss = after_trim;
        });
  }
};

// Steps the loop's clock in ticks of 20 ms from `from` to `to`, calling Check.
int Tick(HeapTrim& h, int64_t from, int64_t to) {
  int trimmed = 0;
  for (int64_t now = from; now < to; now += 20'000'000) trimmed += h.Check(now, nullptr) ? 1 : 0;
  return trimmed;
}

TEST(HeapTrim, TrimsOnceABurstIsOverAndNotWhileItGoesOn) {
  Fake f;
  auto h = f.Make();
  f.rss = 40 * kMiB;
  EXPECT_EQ(Tick(*h, 0, kEvery), 0);
  // The burst: the RSS grows every sample for a minute.
  int64_t now = kEvery;
  for (; now < 30 * kEvery; now += kEvery) {
    f.rss += 4 * kMiB;
    EXPECT_FALSE(h->Check(now, nullptr)) << "still growing at " << now;
  }
  // At rest (120 MiB, its freed part on the free lists): one trim once quiet for kQuiet.
  f.after_trim = 50 * kMiB;
  EXPECT_EQ(Tick(*h, now, now + kQuiet - kEvery), 0) << "not before kQuiet";
  HeapTrim::Trimmed t;
  now += kQuiet;
  EXPECT_TRUE(h->Check(now, &t));
  EXPECT_EQ(t.rss_before, 156 * kMiB);
  EXPECT_EQ(t.rss_after, 50 * kMiB);
  EXPECT_EQ(Tick(*h, now + 1, now + 20 * kQuiet), 0) << "nothing new to give back";
  EXPECT_EQ(f.trims, 1);
  EXPECT_EQ(h->trims(), 1u);
}

TEST(HeapTrim, ReadsTheRssOncePerInterval) {
  Fake f;
  auto h = f.Make();
  Tick(*h, 0, 10 * kEvery);
  EXPECT_EQ(f.samples, 10);
}

TEST(HeapTrim, SmallGrowthIsLeftAlone) {
  Fake f;
  auto h = f.Make();
  f.rss = 200 * kMiB;
  h->Check(0, nullptr);
  // 20 MiB more: above kStep, but under an eighth of 200 MiB.
  f.rss = 220 * kMiB;
  f.after_trim = 100 * kMiB;
  EXPECT_EQ(Tick(*h, kEvery, kEvery + 5 * kQuiet), 0);
  // 8 MiB above a small process: under kStep.
  Fake g;
  auto small = g.Make();
  g.rss = 10 * kMiB;
  small->Check(0, nullptr);
  g.rss = 17 * kMiB;
  EXPECT_EQ(Tick(*small, kEvery, kEvery + 5 * kQuiet), 0);
  EXPECT_EQ(f.trims + g.trims, 0);
}

TEST(HeapTrim, ABaseThatShrankIsTheNewBase) {
  Fake f;
  auto h = f.Make();
  f.rss = 100 * kMiB;
  h->Check(0, nullptr);
  f.rss = 60 * kMiB;  // a buffer given back (munmap)
  EXPECT_EQ(Tick(*h, kEvery, kEvery + 2 * kQuiet), 0);
  f.rss = 70 * kMiB;  // 10 MiB over 60: a step and more than an eighth
  f.after_trim = 61 * kMiB;
  const int64_t grew = kEvery + 2 * kQuiet;
  EXPECT_EQ(Tick(*h, grew, grew + kQuiet + 2 * kEvery), 1);
}

TEST(HeapTrim, MemoryReusedAfterATrimIsTrimmedAgain) {
  Fake f;
  auto h = f.Make();
  f.rss = 50 * kMiB;
  h->Check(0, nullptr);
  f.rss = 150 * kMiB;
  f.after_trim = 60 * kMiB;
  EXPECT_EQ(Tick(*h, kEvery, kEvery + kQuiet + 2 * kEvery), 1);
  // The next burst faults the trimmed pages back in and frees them again.
  const int64_t next = kEvery + kQuiet + 3 * kEvery;
  f.rss = 140 * kMiB;
  EXPECT_EQ(Tick(*h, next, next + kQuiet + 2 * kEvery), 1);
  EXPECT_EQ(f.trims, 2);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HASYNC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HASYNC_SANITIZED 1
#endif
#endif

// The real allocator: 96 MiB of small blocks, every 32nd kept (so the heap's top cannot
// shrink past them, as the model's nodes pin a node's heap), the rest freed. The default
// HeapTrim must give most of the freed pages back once the RSS has been quiet.
TEST(HeapTrim, GivesAFragmentedHeapsFreePagesBackToTheKernel) {
#ifdef HASYNC_SANITIZED
  GTEST_SKIP() << "a sanitizer replaces glibc's allocator; malloc_trim does not reach its heap";
#else
  HeapTrim h;
  ASSERT_GT(ResidentBytes(), 0u) << "/proc/self/statm";
  EXPECT_FALSE(h.Check(0, nullptr));
  constexpr size_t kBlock = 1000;
  constexpr size_t kCount = 96 * kMiB / kBlock;
  std::vector<std::unique_ptr<char[]> > blocks(kCount);
  for (auto& b : blocks) {
    b.reset(new char[kBlock]);
    std::memset(b.get(), 0x5a, kBlock);  // touched: resident
  }
  for (size_t i = 0; i < kCount; ++i) {
    if (i % 32 != 0) blocks[i].reset();
  }
  EXPECT_FALSE(h.Check(kEvery, nullptr)) << "grew since the first sample: not quiet yet";
  HeapTrim::Trimmed t;
  ASSERT_TRUE(h.Check(kEvery + kQuiet, &t)) << "a quiet RSS 96 MiB above the base";
  // What stays: the kept blocks (3 MiB) and the pages they sit on (a 4 KiB page holds
  // about 4 blocks, one in 32 kept: ~1 page in 8 stays resident, ~12 MiB).
  EXPECT_GT(t.rss_before, t.rss_after + 60 * kMiB)
      << "RSS before " << (t.rss_before >> 10) << " KiB, after " << (t.rss_after >> 10);
  EXPECT_NEAR(static_cast<double>(t.rss_after), static_cast<double>(ResidentBytes()), 4.0 * kMiB);
#endif
}

}  // namespace
}  // namespace hasync::engine
