// Little-endian writer and reader over byte spans, for the lock-record codec.
//
// Contract: the writer's caller has checked that the destination is large enough (it
// asserts, because overrunning is a programmer error); the reader never reads past its
// span and reports a short read by returning false, leaving the error message to the
// caller, who knows which field it was reading. The encoding is little-endian whatever
// the host: on a little-endian host an integer is copied as is, elsewhere it is
// assembled byte by byte (GCC -O2 does not merge that loop into one store, which made
// encoding ~3x slower on x86-64). Copies go through memcpy because any access may be
// unaligned.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

#include "base/assert.h"

namespace hasync::lockwin::internal {

class LeWriter {
 public:
  explicit LeWriter(std::span<std::byte> out) : out_(out) {}

  template <typename U>
  requires std::is_unsigned_v<U>
  void PutUint(U value) {
    HASYNC_ASSERT(sizeof(U) <= out_.size() - pos_);
    std::array<std::byte, sizeof(U)> le;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(le.data(), &value, sizeof(U));
    } else {
      for (size_t i = 0; i < sizeof(U); ++i) {
        le[i] = static_cast<std::byte>(static_cast<uint64_t>(value) >> (8 * i));
      }
    }
    std::memcpy(out_.data() + pos_, le.data(), sizeof(U));
    pos_ += sizeof(U);
  }

  void PutBytes(std::string_view bytes) {
    HASYNC_ASSERT(bytes.size() <= out_.size() - pos_);
    if (!bytes.empty()) std::memcpy(out_.data() + pos_, bytes.data(), bytes.size());
    pos_ += bytes.size();
  }

  size_t position() const { return pos_; }

 private:
  std::span<std::byte> out_;
  size_t pos_ = 0;
};

class LeReader {
 public:
  explicit LeReader(std::span<const std::byte> in) : in_(in) {}

  template <typename U>
  requires std::is_unsigned_v<U>
  [[nodiscard]] bool GetUint(U* value) {
    if (remaining() < sizeof(U)) return false;
    std::array<std::byte, sizeof(U)> le;
    std::memcpy(le.data(), in_.data() + pos_, sizeof(U));
    pos_ += sizeof(U);
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(value, le.data(), sizeof(U));
    } else {
      uint64_t v = 0;
      for (size_t i = 0; i < sizeof(U); ++i) v |= static_cast<uint64_t>(le[i]) << (8 * i);
      *value = static_cast<U>(v);
    }
    return true;
  }

  // A view of the next `n` bytes (valid as long as the input span is).
  [[nodiscard]] bool GetBytes(size_t n, std::string_view* bytes) {
    if (remaining() < n) return false;
    *bytes = std::string_view(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return true;
  }

  size_t position() const { return pos_; }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  std::span<const std::byte> in_;
  size_t pos_ = 0;
};

}  // namespace hasync::lockwin::internal
