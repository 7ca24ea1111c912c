// Validation pieces shared between ValidateMessage and the zero-copy extent decoder, so
// both reject the same ranges with the same words.
#pragma once

#include <cstdint>

#include "base/status.h"

namespace hasync::wire::internal {

// [offset, offset + length) must be non-empty, must not overflow 64 bits and must lie
// within file_size <= kFileSizeMax.
Status CheckRange(uint64_t file_size, uint64_t offset, uint64_t length);

}  // namespace hasync::wire::internal
