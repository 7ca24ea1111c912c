// Rng: mbedTLS CTR-DRBG seeded from the kernel's entropy, the one random source for
// TLS sessions, nonces and key generation. Move-only; not thread-safe (one per thread).
#pragma once

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

#include <memory>
#include <span>

#include "base/status.h"

namespace hasync::engine {

class Rng {
 public:
  static Result<std::unique_ptr<Rng>> Create();
  ~Rng();
  Rng(const Rng&) = delete;
  Rng& operator=(const Rng&) = delete;

  // mbedTLS-style callback and context.
  static int Generate(void* self, unsigned char* out, size_t len);
  void* ctx() { return this; }
  Status Fill(std::span<std::byte> out);

 private:
  Rng() = default;
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
};

}  // namespace hasync::engine
