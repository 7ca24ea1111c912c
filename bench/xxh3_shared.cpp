// XXH3 from Debian's shared libxxhash, through the ordinary (non-dispatching) entry
// points. XXH_STATIC_LINKING_ONLY exposes XXH3_state_t so the state can live on the
// stack, as it does in the engine.
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

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

const Xxh3Build kXxh3Shared = {"shared", OneShot64, OneShot128, Streamed128};

}  // namespace hasync::bench
