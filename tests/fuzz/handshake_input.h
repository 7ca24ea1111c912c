// The input convention of handshake_fuzz, shared with its seed-corpus generator.
//
// An input is what a dialling peer sends to the standby's (server) Connection:
//   byte 0      flags: bit 0 = TLS mode (else plain), bits 1..3 = feed chunk size index
//               (kChunkSizes), bit 4 = the "socket" takes only half of outgoing() per step
//   bytes 1..8  seed of the server's random generator (little endian)
//   bytes 9..   the peer's bytes, fed in chunks
// The server's random generator is deterministic and seeded from the input, so a
// transcript recorded against a server with that seed replays to the same handshake:
// the seed corpus holds real, successful handshakes made with kGoodKey, which the
// fuzzer then truncates and mutates.
//
// mbedTLS puts the wall-clock time into the ServerHello random; fixed_time.cpp pins
// time() in both binaries so recorded TLS transcripts stay valid.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace hasync::fuzz {

inline constexpr size_t kHeaderBytes = 9;
inline constexpr uint8_t kFlagTls = 0x01;
inline constexpr uint8_t kFlagHalfConsume = 0x10;
inline constexpr std::array<size_t, 8> kChunkSizes = {
    0 /* everything at once */, 1, 2, 7, 64, 333, 1024, 4096};
inline constexpr uint8_t ChunkFlag(size_t index) { return static_cast<uint8_t>(index << 1); }
inline size_t ChunkSize(uint8_t flags) { return kChunkSizes[(flags >> 1) & 7]; }

// The key the seeds were recorded with, and another of the same length.
inline constexpr std::array<std::byte, 32> MakeKey(uint8_t salt) {
  std::array<std::byte, 32> k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::byte>((i * 29 + salt) & 0xFF);
  return k;
}
inline constexpr std::array<std::byte, 32> kGoodKey = MakeKey(0x5a);
inline constexpr std::array<std::byte, 32> kWrongKey = MakeKey(0xa5);

inline constexpr int64_t kFixedTime = 1'750'000'000;  // 2025-06-15, any fixed value

// SplitMix64 as an mbedTLS f_rng: deterministic, and good enough to make ECDHE and DHE
// secrets that mbedTLS accepts (it is not a secure generator; only tests use it).
struct DetRng {
  uint64_t state = 0;
  static int Generate(void* self, unsigned char* out, size_t len) {
    auto* r = static_cast<DetRng*>(self);
    while (len > 0) {
      uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      size_t n = len < 8 ? len : 8;
      std::memcpy(out, &z, n);
      out += n;
      len -= n;
    }
    return 0;
  }
};

inline uint64_t SeedOf(std::span<const std::byte> header) {
  uint64_t seed = 0;
  for (size_t i = 0; i < 8; ++i) seed |= std::to_integer<uint64_t>(header[1 + i]) << (8 * i);
  return seed;
}

}  // namespace hasync::fuzz
