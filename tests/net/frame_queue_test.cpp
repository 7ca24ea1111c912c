// FrameQueue: the bounded hand-over between a data stream's thread and the event loop.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "engine/net/data_stream.h"

namespace hasync::engine {
namespace {

DataFrame Frame(uint64_t seq, size_t bytes) {
  DataFrame f;
  f.seq = seq;
  f.message = wire::Extent{bytes, 0, std::vector<std::byte>(bytes)};
  f.bytes = DataFrameBytes(f.message);
  return f;
}

TEST(FrameQueue, HoldsFramesInOrderUpToItsBound) {
  FrameQueue q(3 * DataFrameBytes(Frame(0, 1000).message));
  for (uint64_t i = 1; i <= 3; ++i) {
    DataFrame f = Frame(i, 1000);
    ASSERT_TRUE(q.TryPush(f)) << i;
  }
  DataFrame fourth = Frame(4, 1000);
  EXPECT_FALSE(q.TryPush(fourth)) << "a full queue took one more frame";
  EXPECT_EQ(fourth.seq, 4u);  // a refused frame is left with the caller
  ASSERT_NE(q.Front(), nullptr);
  EXPECT_EQ(q.Front()->seq, 1u);
  q.PopFront();
  EXPECT_TRUE(q.TryPush(fourth));
  std::vector<DataFrame> out;
  ASSERT_TRUE(q.PopSome(out, 10, 0));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].seq, 2u);
  EXPECT_EQ(out[2].seq, 4u);
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(FrameQueue, AFrameLargerThanTheBoundPassesAnEmptyQueue) {
  FrameQueue q(100);
  DataFrame big = Frame(1, 4096);
  EXPECT_TRUE(q.TryPush(big));
  DataFrame next = Frame(2, 1);
  EXPECT_FALSE(q.TryPush(next));
}

TEST(FrameQueue, APushWaitsForRoomAndCloseWakesBothSides) {
  FrameQueue q(DataFrameBytes(Frame(0, 10).message));
  DataFrame a = Frame(1, 10);
  ASSERT_TRUE(q.TryPush(a));
  DataFrame b = Frame(2, 10);
  EXPECT_FALSE(q.Push(b, 20)) << "a full queue took a frame before its timeout";
  std::thread consumer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    q.PopFront();
  });
  EXPECT_TRUE(q.Push(b, 5'000)) << "the push did not see the room the consumer made";
  consumer.join();
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    q.Close();
  });
  DataFrame c = Frame(3, 10);
  EXPECT_FALSE(q.Push(c, 5'000));  // woken by Close, refused
  closer.join();
  std::vector<DataFrame> out;
  EXPECT_TRUE(q.PopSome(out, 10, 0));  // what was queued still comes out…
  EXPECT_EQ(out.size(), 1u);
  out.clear();
  EXPECT_FALSE(q.PopSome(out, 10, 5'000));  // …then closed and empty, at once
}

}  // namespace
}  // namespace hasync::engine
