// XXH3: the hashes used for lock-record fingerprints, block hashes and end-to-end file
// hashes. Only the functions below (and the XXH3 streaming calls they make available)
// are the contract.
//
// On x86-64 the calls go to libxxhash's run-time dispatch entry points, which pick the
// widest vector code the CPU has (AVX2 or AVX-512): bench/xxh3_bench measured them at
// 2-3.5× an inline build for 4 KiB - 1 MiB blocks, because an inline build without
// -mavx2 compiles the same SSE2 path as the library's default entry points and the
// project cannot assume AVX2 at compile time. Elsewhere xxHash is built inline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#if defined(__x86_64__)
// XXH3_state_t on the stack (streamed hashes) needs the struct's definition, which is
// stable for a given header and library pair: both come from the same Debian package.
#define XXH_STATIC_LINKING_ONLY
#include <xxh_x86dispatch.h>  // also includes <xxhash.h>; maps XXH3_* to *_dispatch
#else
#define XXH_INLINE_ALL
#include <xxhash.h>
#endif

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
