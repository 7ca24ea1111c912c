// SKIP_LOUDLY(why): skips the running test with `why`, and also prints
// "SKIPPED (<test>): <why>" on stderr so the reason shows in any log, not only in
// GoogleTest's own summary. Never a pass: CTest counts it as skipped.
#pragma once

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#define SKIP_LOUDLY(why)                                                          \
  do {                                                                            \
    std::fprintf(stderr, "SKIPPED (%s): %s\n",                                    \
                 ::testing::UnitTest::GetInstance()->current_test_info()->name(), \
                 std::string(why).c_str());                                       \
    GTEST_SKIP() << (why);                                                        \
  } while (0)
