// Shared by the io_uring tests: a ring, or a loud skip saying why there is none.
#pragma once

#include <gtest/gtest.h>

#include "iouring/ring.h"

#define HASYNC_RING_OR_SKIP(var)                                                       \
  auto var##_result = ::hasync::iouring::Ring::Create(64);                             \
  if (!var##_result.ok()) {                                                            \
    GTEST_SKIP() << "io_uring unavailable here: " << var##_result.status().ToString(); \
  }                                                                                    \
  ::hasync::iouring::Ring var = std::move(var##_result).value()
