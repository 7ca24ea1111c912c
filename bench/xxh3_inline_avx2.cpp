// XXH3 compiled inline in a unit built with -mavx2 (bench/CMakeLists.txt sets the flag on
// this file only). Nothing here may be called unless the CPU has AVX2: xxh3_bench.cpp
// registers this build only after __builtin_cpu_supports("avx2"). The unit includes no
// C++ library header, so it defines no inline function the linker could share with
// callers built for the baseline CPU.
#define XXH_INLINE_ALL
#include <xxhash.h>

#if XXH_VECTOR != XXH_AVX2
#error "xxHash did not select its AVX2 code: is -mavx2 set on this file?"
#endif

#include "bench/xxh3_builds.h"

namespace hasync::bench {
namespace {

uint64_t OneShot64(const void* data, size_t len) { return XXH3_64bits(data, len); }

Xxh3Digest128 OneShot128(const void* data, size_t len) {
  XXH128_hash_t h = XXH3_128bits(data, len);
  return {h.low64, h.high64};
}

Xxh3Digest128 Streamed128(const void* data, size_t len, size_t piece_bytes) {
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t off = 0; off < len; off += piece_bytes) {
    XXH3_128bits_update(&state, p + off, len - off < piece_bytes ? len - off : piece_bytes);
  }
  XXH128_hash_t h = XXH3_128bits_digest(&state);
  return {h.low64, h.high64};
}

}  // namespace

const Xxh3Build kXxh3InlineAvx2 = {"inline_avx2", OneShot64, OneShot128, Streamed128};

}  // namespace hasync::bench
