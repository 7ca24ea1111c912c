// NowNs: the monotonic clock by which the node's loop and its parts (engine/node) judge
// timeouts, backoffs and the lease. One definition, so every part reads the same clock.
#pragma once

#include <time.h>

#include <cstdint>

namespace hasync::engine {

inline int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace hasync::engine
