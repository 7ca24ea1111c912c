// Assertions that stay on in release builds.
//
// HASYNC_ASSERT is for cheap invariants whose failure means a programmer error: it
// prints the condition and location and aborts. It is never used to check input from the
// network, disk or user; those are operating errors and return a Status.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace hasync::internal {
[[noreturn]] inline void AssertFail(const char* cond, const char* file, int line) {
  std::fprintf(stderr, "hasync: assertion failed: %s at %s:%d\n", cond, file, line);
  std::abort();
}
}  // namespace hasync::internal

#define HASYNC_ASSERT(cond)                                      \
  do {                                                           \
    if (__builtin_expect(!(cond), 0)) {                          \
      ::hasync::internal::AssertFail(#cond, __FILE__, __LINE__); \
    }                                                            \
  } while (0)
