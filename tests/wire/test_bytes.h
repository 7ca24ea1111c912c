// Byte-patching helpers for the wire tests. They write little-endian integers by hand,
// independently of the codec, so a test can forge exactly the hostile frame it needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "wire/frame.h"

namespace hasync::wire::testing {

inline void SetLe(std::vector<std::byte>& b, size_t offset, uint64_t value, size_t width) {
  for (size_t i = 0; i < width; ++i) {
    b.at(offset + i) = static_cast<std::byte>((value >> (8 * i)) & 0xFF);
  }
}

inline uint64_t GetLe(const std::vector<std::byte>& b, size_t offset, size_t width) {
  uint64_t v = 0;
  for (size_t i = width; i-- > 0;) v = (v << 8) | std::to_integer<uint64_t>(b.at(offset + i));
  return v;
}

// Appends `extra` bytes to the body and fixes the header's body length to match.
inline void GrowBody(std::vector<std::byte>& frame, std::vector<std::byte> extra) {
  frame.insert(frame.end(), extra.begin(), extra.end());
  SetLe(frame, kHeaderBodyLenOffset, frame.size() - kFrameHeaderSize, 4);
}

// Removes `n` bytes from the end of the body and fixes the header's body length.
inline void ShrinkBody(std::vector<std::byte>& frame, size_t n) {
  frame.resize(frame.size() - n);
  SetLe(frame, kHeaderBodyLenOffset, frame.size() - kFrameHeaderSize, 4);
}

// Overwrites bytes at `offset` with the characters of `text`.
inline void Overwrite(std::vector<std::byte>& b, size_t offset, std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) b.at(offset + i) = static_cast<std::byte>(text[i]);
}

// Offset of the first occurrence of `text` in `b` (the test fails on npos via .at()).
inline size_t Find(const std::vector<std::byte>& b, std::string_view text) {
  for (size_t i = 0; i + text.size() <= b.size(); ++i) {
    bool match = true;
    for (size_t j = 0; j < text.size() && match; ++j) {
      match = b[i + j] == static_cast<std::byte>(text[j]);
    }
    if (match) return i;
  }
  return static_cast<size_t>(-1);
}

}  // namespace hasync::wire::testing
