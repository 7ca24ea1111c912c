#include "engine/net/rng.h"

#include <string>

namespace hasync::engine {

Result<std::unique_ptr<Rng>> Rng::Create() {
  std::unique_ptr<Rng> rng(new Rng());
  mbedtls_entropy_init(&rng->entropy_);
  mbedtls_ctr_drbg_init(&rng->drbg_);
  static const unsigned char kPersonal[] = "hasync rng";
  int rc = mbedtls_ctr_drbg_seed(&rng->drbg_, mbedtls_entropy_func, &rng->entropy_, kPersonal,
                                 sizeof kPersonal - 1);
  if (rc != 0) {
    return Internal("seeding the random generator from the kernel failed (mbedtls -0x" +
                    std::to_string(-rc) + ")");
  }
  return rng;
}

Rng::~Rng() {
  mbedtls_ctr_drbg_free(&drbg_);
  mbedtls_entropy_free(&entropy_);
}

int Rng::Generate(void* self, unsigned char* out, size_t len) {
  return mbedtls_ctr_drbg_random(&static_cast<Rng*>(self)->drbg_, out, len);
}

Status Rng::Fill(std::span<std::byte> out) {
  if (Generate(this, reinterpret_cast<unsigned char*>(out.data()), out.size()) != 0) {
    return Internal("random generator failed");
  }
  return Status::Ok();
}

}  // namespace hasync::engine
