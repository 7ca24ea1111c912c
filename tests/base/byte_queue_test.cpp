// ByteQueue: order across appends, partial consumes and takes; storage handed over on
// Take and given back when idle.
#include "base/byte_queue.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace hasync {
namespace {

std::vector<std::byte> Bytes(const std::string& s) {
  std::vector<std::byte> v(s.size());
  for (size_t i = 0; i < s.size(); ++i) v[i] = static_cast<std::byte>(s[i]);
  return v;
}
std::string Text(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

TEST(ByteQueue, ConsumeAndTakeKeepTheOrder) {
  ByteQueue q;
  q.Append(Bytes("hello "));
  q.back().push_back(std::byte{'w'});  // an encoder appending by itself
  q.Append(Bytes("orld"));
  EXPECT_EQ(Text(q.data()), "hello world");
  q.Consume(6);
  EXPECT_EQ(Text(q.data()), "world");
  std::vector<std::byte> taken = Bytes("old contents");
  q.Take(taken);
  EXPECT_EQ(Text(taken), "world");
  EXPECT_EQ(q.size(), 0u);
  q.Append(Bytes("next"));
  EXPECT_EQ(Text(q.data()), "next");
}

TEST(ByteQueue, TakeOfAnUnconsumedQueueHandsOverItsStorage) {
  ByteQueue q;
  q.Append(Bytes(std::string(4096, 'x')));
  const std::byte* storage = q.data().data();
  std::vector<std::byte> taken;
  q.Take(taken);
  EXPECT_EQ(taken.data(), storage) << "copied instead of swapped";
  EXPECT_EQ(taken.size(), 4096u);
}

TEST(ByteQueue, ALargeConsumedPrefixIsReclaimed) {
  ByteQueue q;
  q.Append(std::vector<std::byte>(3u << 20, std::byte{1}));
  q.Append(Bytes("tail"));
  q.Consume(3u << 20);  // more than 1 MiB and more than half: the prefix goes
  EXPECT_EQ(Text(q.data()), "tail");
  EXPECT_EQ(q.back().size(), 4u);
}

TEST(ByteQueue, ReleaseIfIdleFreesOnlyAnEmptyLargeQueue) {
  ByteQueue q;
  q.Append(std::vector<std::byte>(1u << 20, std::byte{1}));
  EXPECT_FALSE(q.ReleaseIfIdle(0)) << "bytes still queued";
  q.Consume(1u << 20);
  EXPECT_FALSE(q.ReleaseIfIdle(size_t{2} << 20)) << "capacity within what may be kept";
  EXPECT_TRUE(q.ReleaseIfIdle(4096));
  EXPECT_EQ(q.back().capacity(), 0u);
}

}  // namespace
}  // namespace hasync
