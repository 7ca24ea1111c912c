#include "iouring/loop.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/iouring/test_util.h"

namespace hasync::iouring {
namespace {

TEST(Loop, TimerFiresAndReportsSuccess) {
  HASYNC_RING_OR_SKIP(ring);
  Loop loop(std::move(ring));
  int fired = 0;
  ASSERT_TRUE(loop.AddTimer(1'000'000, [&] { ++fired; }).ok());
  for (int i = 0; i < 50 && fired == 0; ++i) ASSERT_TRUE(loop.RunOnce(100'000'000).ok());
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(loop.in_flight(), 0u);
}

TEST(Loop, CallbackMaySubmitMoreWorkWithoutRecursion) {
  HASYNC_RING_OR_SKIP(ring);
  Loop loop(std::move(ring));
  std::vector<int> order;
  ASSERT_TRUE(loop.Submit([](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); },
                          [&](int32_t) {
                            order.push_back(1);
                            Status s =
                                loop.Submit([](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); },
                                            [&](int32_t) { order.push_back(2); });
                            EXPECT_TRUE(s.ok());
                          })
                  .ok());
  for (int i = 0; i < 10 && order.size() < 2; ++i) ASSERT_TRUE(loop.RunOnce(100'000'000).ok());
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

// A socketpair delivers what was written so far, so a read larger than the first write
// comes back short; the loop must requeue until the buffer is full.
TEST(Loop, ShortReadsAreRequeuedUntilTheBufferIsFull) {
  HASYNC_RING_OR_SKIP(ring);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  Loop loop(std::move(ring));
  std::vector<std::byte> buf(8);
  Result<size_t> got = Status(Code::kUnavailable, "not yet");
  bool done = false;
  ASSERT_TRUE(loop.ReadFull(sv[0], buf, kStreamOffset,
                            [&](Result<size_t> r) {
                              got = std::move(r);
                              done = true;
                            })
                  .ok());
  ASSERT_EQ(write(sv[1], "abcd", 4), 4);
  for (int i = 0; i < 5 && !done; ++i) ASSERT_TRUE(loop.RunOnce(20'000'000).ok());
  EXPECT_FALSE(done) << "read completed after only half the bytes";
  ASSERT_EQ(write(sv[1], "efgh", 4), 4);
  for (int i = 0; i < 50 && !done; ++i) ASSERT_TRUE(loop.RunOnce(100'000'000).ok());
  ASSERT_TRUE(done);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, 8u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf.data()), 8), "abcdefgh");
  close(sv[0]);
  close(sv[1]);
}

TEST(Loop, EndOfFileCompletesWithBytesReadSoFar) {
  HASYNC_RING_OR_SKIP(ring);
  char path[] = "/tmp/hasync-loop-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  ASSERT_EQ(write(fd, "hello", 5), 5);
  Loop loop(std::move(ring));
  std::vector<std::byte> buf(64);
  Result<size_t> got = Status(Code::kUnavailable, "not yet");
  bool done = false;
  ASSERT_TRUE(loop.ReadFull(fd, buf, 0,
                            [&](Result<size_t> r) {
                              got = std::move(r);
                              done = true;
                            })
                  .ok());
  for (int i = 0; i < 50 && !done; ++i) ASSERT_TRUE(loop.RunOnce(100'000'000).ok());
  ASSERT_TRUE(done);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, 5u);
  close(fd);
}

TEST(Loop, ReadErrorIsReportedWithErrno) {
  HASYNC_RING_OR_SKIP(ring);
  Loop loop(std::move(ring));
  std::vector<std::byte> buf(4);
  Result<size_t> got = 0;
  bool done = false;
  ASSERT_TRUE(loop.ReadFull(-1, buf, 0,
                            [&](Result<size_t> r) {
                              got = std::move(r);
                              done = true;
                            })
                  .ok());
  for (int i = 0; i < 50 && !done; ++i) ASSERT_TRUE(loop.RunOnce(100'000'000).ok());
  ASSERT_TRUE(done);
  EXPECT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("Bad file descriptor"), std::string::npos)
      << got.status().ToString();
}

TEST(Loop, InFlightIsBounded) {
  HASYNC_RING_OR_SKIP(ring);
  Loop loop(std::move(ring));
  // Timers far in the future fill every slot without completing.
  for (size_t i = 0; i < kMaxInFlight; ++i) {
    ASSERT_TRUE(loop.AddTimer(60'000'000'000, [] {}).ok()) << i;
  }
  Status over = loop.AddTimer(1, [] {});
  EXPECT_EQ(over.code(), Code::kResourceExhausted);
  EXPECT_EQ(loop.in_flight(), kMaxInFlight);
}

// A NOP completes at once; a read of an empty socket does not until data arrives.
TEST(Loop, WaitForRunsOnlyTheAwaitedOperationAndDefersTheRest) {
  HASYNC_RING_OR_SKIP(ring);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  Loop loop(std::move(ring));
  std::vector<std::string> order;
  ASSERT_TRUE(loop.Submit([](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); },
                          [&](int32_t) { order.push_back("nop1"); })
                  .ok());
  ASSERT_TRUE(loop.Submit([](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); },
                          [&](int32_t) { order.push_back("nop2"); })
                  .ok());
  Loop::Token send_token = 0;
  char byte = 'x';
  ASSERT_TRUE(loop.Submit([&](io_uring_sqe* sqe) { io_uring_prep_send(sqe, sv[1], &byte, 1, 0); },
                          [&](int32_t res) { order.push_back("send " + std::to_string(res)); },
                          &send_token)
                  .ok());
  ASSERT_TRUE(loop.WaitFor(send_token, 5'000'000'000).ok());
  // Only the send ran, although both NOPs completed before or with it.
  EXPECT_EQ(order, (std::vector<std::string>{"send 1"}));
  EXPECT_EQ(loop.in_flight(), 2u);
  auto ran = loop.RunOnce(0);
  ASSERT_TRUE(ran.ok());
  EXPECT_EQ(*ran, 2u);
  EXPECT_EQ(order, (std::vector<std::string>{"send 1", "nop1", "nop2"}));
  EXPECT_EQ(loop.in_flight(), 0u);
  close(sv[0]);
  close(sv[1]);
}

TEST(Loop, WaitForGivesUpAfterItsTimeoutAndLeavesTheOperationInFlight) {
  HASYNC_RING_OR_SKIP(ring);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  Loop loop(std::move(ring));
  std::vector<std::byte> buf(4);
  Loop::Token token = 0;
  int32_t got = -1;
  ASSERT_TRUE(
      loop.Submit(
              [&](io_uring_sqe* sqe) { io_uring_prep_recv(sqe, sv[0], buf.data(), buf.size(), 0); },
              [&](int32_t res) { got = res; }, &token)
          .ok());
  Status s = loop.WaitFor(token, 20'000'000);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_EQ(got, -1);
  EXPECT_EQ(loop.in_flight(), 1u);
  ASSERT_EQ(write(sv[1], "ab", 2), 2);
  ASSERT_TRUE(loop.WaitFor(token, 5'000'000'000).ok());
  EXPECT_EQ(got, 2);
  close(sv[0]);
  close(sv[1]);
}

// A callback that waits for an operation whose completion was reaped in the same batch
// (but not run yet) must find it there instead of waiting on the kernel.
TEST(Loop, WaitForFromACallbackFindsACompletionOfTheSameBatch) {
  HASYNC_RING_OR_SKIP(ring);
  Loop loop(std::move(ring));
  Loop::Token second = 0;
  std::vector<std::string> order;
  Status waited = Status(Code::kInternal, "not run");
  ASSERT_TRUE(loop.Submit([](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); },
                          [&](int32_t) {
                            order.push_back("first");
                            waited = loop.WaitFor(second, 1'000'000'000);
                          })
                  .ok());
  ASSERT_TRUE(loop.Submit([](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); },
                          [&](int32_t) { order.push_back("second"); }, &second)
                  .ok());
  ASSERT_TRUE(loop.Flush().ok());
  // Both NOPs are complete before the loop reaps them together.
  for (int i = 0; i < 100 && io_uring_cq_ready(loop.ring().raw()) < 2; ++i) usleep(1000);
  auto ran = loop.RunOnce(1'000'000'000);
  ASSERT_TRUE(ran.ok());
  EXPECT_TRUE(waited.ok()) << waited.ToString();
  EXPECT_EQ(order, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(*ran, 1u);  // the second ran inside the first's WaitFor, not again
  EXPECT_EQ(loop.in_flight(), 0u);
}

}  // namespace
}  // namespace hasync::iouring
