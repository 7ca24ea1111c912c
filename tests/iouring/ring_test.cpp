#include "iouring/ring.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "tests/iouring/test_util.h"

namespace hasync::iouring {
namespace {

TEST(Ring, RejectsEntriesOutsideBounds) {
  EXPECT_EQ(Ring::Create(0).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Ring::Create(kMaxRingEntries + 1).status().code(), Code::kInvalidArgument);
}

TEST(Ring, NopCompletesWithItsUserData) {
  HASYNC_RING_OR_SKIP(ring);
  auto sqe = ring.GetSqe();
  ASSERT_TRUE(sqe.ok()) << sqe.status().ToString();
  io_uring_prep_nop(*sqe);
  io_uring_sqe_set_data64(*sqe, 0xfeed);
  std::vector<Completion> out;
  auto n = ring.Reap(out, 1, 1'000'000'000);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_EQ(*n, 1u);
  EXPECT_EQ(out[0].user_data, 0xfeedu);
  EXPECT_EQ(out[0].res, 0);
}

TEST(Ring, GetSqeSubmitsWhenQueueIsFull) {
  HASYNC_RING_OR_SKIP(ring);
  // Queue one more SQE than the SQ holds without submitting: the last GetSqe must hand
  // the full queue to the kernel instead of failing. The CQ is twice the SQ, so every
  // completion fits.
  const unsigned n = ring.sq_entries() + 1;
  for (unsigned i = 0; i < n; ++i) {
    auto sqe = ring.GetSqe();
    ASSERT_TRUE(sqe.ok()) << "sqe " << i << ": " << sqe.status().ToString();
    io_uring_prep_nop(*sqe);
    io_uring_sqe_set_data64(*sqe, i);
  }
  std::vector<Completion> out;
  for (int tries = 0; tries < 100 && out.size() < n; ++tries) {
    ASSERT_TRUE(ring.Reap(out, 1, 100'000'000).ok());
  }
  ASSERT_EQ(out.size(), n);
  std::vector<bool> seen(n, false);
  for (const Completion& c : out) seen.at(c.user_data) = true;
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), static_cast<long>(n));
}

TEST(Ring, MoveLeavesSourceEmpty) {
  HASYNC_RING_OR_SKIP(ring);
  Ring moved = std::move(ring);
  EXPECT_TRUE(moved.valid());
  EXPECT_FALSE(ring.valid());  // NOLINT(bugprone-use-after-move): the contract under test
}

TEST(OpcodeProbe, RunningKernelHasTheOpcodesHasyncNeeds) {
  HASYNC_RING_OR_SKIP(ring);
  auto probe = OpcodeProbe::Query(ring);
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  const int needed[] = {IORING_OP_READ, IORING_OP_WRITE, IORING_OP_TIMEOUT, IORING_OP_SEND,
                        IORING_OP_RECV};
  EXPECT_TRUE(probe->Require(needed).ok()) << probe->Require(needed).ToString();
}

TEST(OpcodeProbe, MissingOpcodesAreNamedInTheError) {
  const int have[] = {IORING_OP_READ};
  OpcodeProbe probe = OpcodeProbe::FromSupported(have);
  const int need[] = {IORING_OP_READ, IORING_OP_SPLICE, IORING_OP_LINKAT};
  Status s = probe.Require(need);
  EXPECT_EQ(s.code(), Code::kUnimplemented);
  EXPECT_NE(s.message().find("SPLICE, LINKAT"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("READ,"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace hasync::iouring
