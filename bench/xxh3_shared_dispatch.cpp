// XXH3 from Debian's shared libxxhash through its x86 dispatch entry points.
// xxh_x86dispatch.h renames XXH3_64bits, XXH3_128bits and the update functions to their
// *_dispatch versions, which choose scalar, SSE2, AVX2 or AVX-512 code on the first call
// from what the CPU reports. The calls below read as in the other builds; only the header
// differs.
#define XXH_STATIC_LINKING_ONLY
#include <xxh_x86dispatch.h>

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

const Xxh3Build kXxh3SharedDispatch = {"shared_dispatch", OneShot64, OneShot128, Streamed128};

}  // namespace hasync::bench
