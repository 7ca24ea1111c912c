#include "engine/node/heap_trim.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace hasync::engine {
namespace {

constexpr int64_t kEvery = HeapTrim::kEveryNs;
constexpr size_t kMiB = size_t{1} << 20;

// A scripted allocator: the test sets the free bytes each sample reads; a trim is counted
// and leaves the free bytes as they were (the chunks stay free, their pages go).
struct Fake {
  size_t free_bytes = 0;
  int trims = 0;
  std::unique_ptr<HeapTrim> Make() {
    return std::make_unique<HeapTrim>(
        [this] {
          return HeapTrim::Sample{free_bytes, 0};
        },
        [this] { ++trims; });
  }
};

TEST(HeapTrim, TrimsOnceWhenABurstFreedAStepAndNotAgainWhileNothingChanges) {
  Fake f;
  auto h = f.Make();
  f.free_bytes = 1 * kMiB;
  EXPECT_FALSE(h->Check(0, nullptr));
  f.free_bytes = 1 * kMiB + HeapTrim::kStep - 1;
  EXPECT_FALSE(h->Check(kEvery, nullptr)) << "less than a step above the low point";
  f.free_bytes = 40 * kMiB;
  HeapTrim::Trimmed t;
  EXPECT_TRUE(h->Check(2 * kEvery, &t));
  EXPECT_EQ(t.before.free_bytes, 40 * kMiB);
  EXPECT_EQ(f.trims, 1);
  for (int i = 3; i < 10; ++i) EXPECT_FALSE(h->Check(i * kEvery, nullptr)) << i;
  EXPECT_EQ(f.trims, 1) << "trimmed chunks stay free: the same figure is no new garbage";
  EXPECT_EQ(h->trims(), 1u);
}

TEST(HeapTrim, SamplesAtMostOncePerInterval) {
  Fake f;
  auto h = f.Make();
  int samples = 0;
  HeapTrim counted(
      [&] {
        ++samples;
        return HeapTrim::Sample{f.free_bytes, 0};
      },
      [&] { ++f.trims; });
  for (int64_t now = 0; now < 3 * kEvery; now += kEvery / 100) counted.Check(now, nullptr);
  EXPECT_EQ(samples, 3);
  // A burst between samples is seen at the next one, not before.
  f.free_bytes = 0;
  EXPECT_FALSE(h->Check(0, nullptr));
  f.free_bytes = 64 * kMiB;
  EXPECT_FALSE(h->Check(kEvery - 1, nullptr));
  EXPECT_TRUE(h->Check(kEvery, nullptr));
}

TEST(HeapTrim, MemoryReusedAndFreedAgainIsTrimmedAgain) {
  Fake f;
  auto h = f.Make();
  f.free_bytes = 50 * kMiB;
  EXPECT_FALSE(h->Check(0, nullptr));  // the first sample is the low point
  f.free_bytes = 100 * kMiB;
  EXPECT_TRUE(h->Check(kEvery, nullptr));
  // The next burst takes 60 MiB of the free (and trimmed) chunks back into use — their
  // pages come back — and frees them again: the free figure returns to where it was.
  f.free_bytes = 40 * kMiB;
  EXPECT_FALSE(h->Check(2 * kEvery, nullptr));
  f.free_bytes = 100 * kMiB;
  EXPECT_TRUE(h->Check(3 * kEvery, nullptr)) << "the rise from the low point counts";
  EXPECT_EQ(f.trims, 2);
}

size_t RssKib() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  size_t kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) kib = std::strtoull(line + 6, nullptr, 10);
  }
  std::fclose(f);
  return kib;
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
// HeapTrim must notice and give most of the freed pages back.
TEST(HeapTrim, GivesAFragmentedHeapsFreePagesBackToTheKernel) {
#ifdef HASYNC_SANITIZED
  GTEST_SKIP() << "a sanitizer replaces glibc's allocator; mallinfo2 and malloc_trim see "
                  "nothing of it";
#else
  HeapTrim h;
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
  const size_t before = RssKib();
  HeapTrim::Trimmed t;
  ASSERT_TRUE(h.Check(kEvery, &t)) << "~93 MiB freed went unnoticed";
  const size_t after = RssKib();
  EXPECT_GE(t.before.free_bytes, 80 * kMiB);
  // What stays: the kept blocks (3 MiB) and the pages they sit on (a 4 KiB page holds
  // about 4 blocks, one in 32 kept: ~1 page in 8 stays resident, ~12 MiB).
  EXPECT_GT(before, after + 60 * 1024) << "RSS before " << before << " KiB, after " << after;
#endif
}

}  // namespace
}  // namespace hasync::engine
