// XXH3 built inline: the hashes used for lock-record fingerprints, block hashes and
// end-to-end file hashes. XXH_INLINE_ALL compiles xxHash into each caller so the
// compiler can pick the best vector path for the target; DESIGN §6 measured it ~3×
// faster than Debian's SSE2 shared library. Only the functions below are the contract.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace hasync {

struct Hash128 {
  uint64_t low = 0;
  uint64_t high = 0;
  friend bool operator==(const Hash128&, const Hash128&) = default;
};

inline uint64_t Xxh3_64(std::span<const std::byte> data) {
  return XXH3_64bits(data.data(), data.size());
}

inline Hash128 Xxh3_128(std::span<const std::byte> data) {
  XXH128_hash_t h = XXH3_128bits(data.data(), data.size());
  return {h.low64, h.high64};
}

}  // namespace hasync
