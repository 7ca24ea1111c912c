// SpscRing and its sizing: capacity math, FIFO semantics, the drop-new overflow policy,
// and a two-thread run that must be clean under ThreadSanitizer.
#include "lockwin/ring.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace hasync::lockwin {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kBeat = 250 * kMs;

size_t CapacityOrZero(int64_t window_ns, int64_t beat_ns) {
  Result<size_t> c = RingCapacityFor(window_ns, beat_ns);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : 0;
}

TEST(RingCapacity, OneSecondWindowAtQuarterSecondBeat) {
  // ceil(1000 / 250) = 4, + 64 slack = 68, next power of two 128.
  EXPECT_EQ(CapacityOrZero(1000 * kMs, kBeat), 128u);
}

TEST(RingCapacity, OneMinuteWindowAtQuarterSecondBeat) {
  // 240 + 64 = 304 -> 512.
  EXPECT_EQ(CapacityOrZero(60'000 * kMs, kBeat), 512u);
}

TEST(RingCapacity, OneHourWindowAtQuarterSecondBeat) {
  // 14400 + 64 = 14464 -> 16384.
  EXPECT_EQ(CapacityOrZero(3'600'000 * kMs, kBeat), 16384u);
}

TEST(RingCapacity, PartialBeatRoundsUp) {
  // 1001 ms / 250 ms = 4.004 -> 5 beats; 5 + 64 = 69 -> 128. And 64 beats + 64 = 128
  // exactly stays 128, while one nanosecond more needs 65 beats -> 256.
  EXPECT_EQ(CapacityOrZero(1001 * kMs, kBeat), 128u);
  EXPECT_EQ(CapacityOrZero(64 * kBeat, kBeat), 128u);
  EXPECT_EQ(CapacityOrZero(64 * kBeat + 1, kBeat), 256u);
}

TEST(RingCapacity, LargestWindowIsAcceptedAndOneBeatMoreIsRejected) {
  const auto max_beats = static_cast<int64_t>(kRingCapacityMax - kRingSlack);
  EXPECT_EQ(CapacityOrZero(max_beats * kBeat, kBeat), kRingCapacityMax);

  Result<size_t> too_big = RingCapacityFor(max_beats * kBeat + 1, kBeat);
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), Code::kOutOfRange);
  EXPECT_NE(too_big.status().message().find("kRingCapacityMax 65536"), std::string::npos)
      << too_big.status().message();
}

TEST(RingCapacity, HugeWindowDoesNotOverflow) {
  Result<size_t> c = RingCapacityFor(INT64_MAX, 1);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kOutOfRange);
}

TEST(RingCapacity, NonPositiveWindowOrBeatIsRejected) {
  EXPECT_EQ(RingCapacityFor(0, kBeat).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(RingCapacityFor(-1, kBeat).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(RingCapacityFor(1000 * kMs, 0).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(RingCapacityFor(1000 * kMs, -kBeat).status().code(), Code::kInvalidArgument);
}

TEST(SpscRing, PopsInPushOrderAcrossManyWraps) {
  SpscRing<uint64_t> ring(8);
  uint64_t next_push = 0;
  uint64_t next_pop = 0;
  for (int round = 0; round < 100; ++round) {
    const int batch = 1 + round % 8;  // 1..8 entries, so the indices wrap at odd places
    for (int i = 0; i < batch; ++i) ASSERT_TRUE(ring.TryPush(next_push++));
    EXPECT_EQ(ring.SizeApprox(), static_cast<size_t>(batch));
    uint64_t v = 0;
    for (int i = 0; i < batch; ++i) {
      ASSERT_TRUE(ring.TryPop(&v));
      EXPECT_EQ(v, next_pop++);
    }
    EXPECT_FALSE(ring.TryPop(&v));
  }
  EXPECT_EQ(ring.dropped(), 0u);
}

TEST(SpscRing, FullRingRefusesTheNewEntryAndCountsIt) {
  SpscRing<uint64_t> ring(4);
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(ring.TryPush(i));
  EXPECT_FALSE(ring.TryPush(100));
  EXPECT_FALSE(ring.TryPush(101));
  EXPECT_EQ(ring.dropped(), 2u);
  EXPECT_EQ(ring.SizeApprox(), 4u);

  // The oldest entries are kept; after one pop there is room for exactly one more.
  uint64_t v = 0;
  ASSERT_TRUE(ring.TryPop(&v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(ring.TryPush(4));
  EXPECT_FALSE(ring.TryPush(5));
  for (uint64_t want = 1; want <= 4; ++want) {
    ASSERT_TRUE(ring.TryPop(&v));
    EXPECT_EQ(v, want);
  }
  EXPECT_FALSE(ring.TryPop(&v));
  EXPECT_EQ(ring.dropped(), 3u);
}

TEST(SpscRing, EmptyRingPopsNothing) {
  SpscRing<uint64_t> ring(2);
  uint64_t v = 42;
  EXPECT_FALSE(ring.TryPop(&v));
  EXPECT_EQ(v, 42u);
  EXPECT_EQ(ring.SizeApprox(), 0u);
}

struct Sequenced {
  uint64_t seq;
  uint64_t check;  // derived from seq, so a torn slot shows up as a mismatch
};
constexpr uint64_t Check(uint64_t seq) { return seq * 0x9E3779B97F4A7C15u ^ 0xA5A5A5A5u; }

// The producer pushes kCount sequenced entries through a small ring (so it is often full
// and often empty); the consumer must see every entry exactly once, in order, intact.
// The deadline only keeps a broken ring from hanging CI; it asserts nothing about speed.
TEST(SpscRing, TwoThreadsSeeEveryEntryOnceInOrder) {
  constexpr uint64_t kCount = 2'000'000;
  SpscRing<Sequenced> ring(kRingCapacityMin);
  std::atomic<bool> give_up{false};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);

  std::thread producer([&] {
    for (uint64_t seq = 0; seq < kCount; ++seq) {
      while (!ring.TryPush(Sequenced{seq, Check(seq)})) {
        if (give_up.load(std::memory_order_relaxed)) return;
        std::this_thread::yield();
      }
    }
  });

  uint64_t expected = 0;
  uint64_t out_of_order = 0;
  uint64_t torn = 0;
  Sequenced s{};
  while (expected < kCount) {
    if (!ring.TryPop(&s)) {
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::yield();
      continue;
    }
    if (s.seq != expected) ++out_of_order;
    if (s.check != Check(s.seq)) ++torn;
    expected = s.seq + 1;
  }
  give_up.store(true, std::memory_order_relaxed);
  producer.join();

  EXPECT_EQ(expected, kCount) << "consumer stopped early (deadline hit)";
  EXPECT_EQ(out_of_order, 0u);
  EXPECT_EQ(torn, 0u);
  EXPECT_FALSE(ring.TryPop(&s)) << "entry beyond the last one pushed";
  EXPECT_EQ(ring.SizeApprox(), 0u);
}

}  // namespace
}  // namespace hasync::lockwin
