#include "base/status.h"
#include "base/hash.h"

#include <gtest/gtest.h>

namespace hasync {
namespace {

Status FailsWith(Code code) { return Status(code, "boom"); }

Status PropagatesFirstError() {
  RETURN_IF_ERROR(Status::Ok());
  RETURN_IF_ERROR(FailsWith(Code::kDataLoss));
  return InvalidArgument("unreachable");
}

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument("odd value " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int half, Half(x));
  ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(Status, ReturnIfErrorStopsAtFirstFailure) {
  Status s = PropagatesFirstError();
  EXPECT_EQ(s.code(), Code::kDataLoss);
  EXPECT_EQ(s.message(), "boom");
}

TEST(Status, AnnotatePrefixesContextAndKeepsCode) {
  Status s = Status(Code::kIo, "disk on fire").Annotate("fsync jobs/1");
  EXPECT_EQ(s.code(), Code::kIo);
  EXPECT_EQ(s.ToString(), "Io: fsync jobs/1: disk on fire");
}

TEST(Status, ErrnoMapsEnospcToResourceExhausted) {
  Status s = ErrnoStatus(ENOSPC, "write x");
  EXPECT_EQ(s.code(), Code::kResourceExhausted);
  EXPECT_NE(s.message().find("write x: "), std::string::npos);
}

TEST(Result, AssignOrReturnChainsValuesAndErrors) {
  Result<int> ok = Quarter(12);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);
  Result<int> bad = Quarter(6);  // 6/2 = 3 is odd
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "odd value 3");
}

TEST(Hash, InlineXxh3MatchesKnownEmptyInputValue) {
  // XXH3-64 of the empty input with seed 0 is a published constant.
  EXPECT_EQ(XXH3_64bits(nullptr, 0), 0x2D06800538D394C2ULL);
}

}  // namespace
}  // namespace hasync
