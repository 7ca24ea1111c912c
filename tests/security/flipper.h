// The symlink flipper's counters (tests/security/flipper.cpp), shared with the test that
// runs it through a MAP_SHARED file, so the test can see how many swaps happened while
// the standby was applying, not only a total at the end.
//
// Thread safety: one writer (the flipper process), any number of readers (the test).
// Every field is a lock-free 64-bit atomic; the flipper stores with release and the test
// loads with acquire, so a reader that sees `done` set also sees the final counts.
#pragma once

#include <atomic>
#include <cstdint>

namespace hasync::testing {

struct FlipCounters {
  static constexpr uint64_t kMagic = 0x68617379'6e63'666cULL;  // "hasyncfl"
  std::atomic<uint64_t> magic;      // set once the flipper has mapped and started
  std::atomic<uint64_t> swaps;      // successful RENAME_EXCHANGEs, all levels
  std::atomic<uint64_t> missing;    // exchanges that found a name gone (ENOENT)
  std::atomic<uint64_t> recreated;  // symlinks planted again after something removed one
  std::atomic<uint64_t> errors;     // any other failure of a swap
  std::atomic<uint64_t> done;       // 1 when the flipper has stopped and restored
  std::atomic<uint64_t> restored;   // levels whose real directory is back at its name
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared across processes");

// Exit codes of the flipper.
inline constexpr int kFlipperOk = 0;
inline constexpr int kFlipperUsage = 2;
inline constexpr int kFlipperSetupFailed = 3;
// The filesystem or kernel cannot RENAME_EXCHANGE (the test skips and says so).
inline constexpr int kFlipperNoExchange = 77;

}  // namespace hasync::testing
