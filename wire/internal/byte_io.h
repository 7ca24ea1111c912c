// Little-endian field readers and writers that the codec's field lists drive.
//
// Contract: one field list per message (wire/internal/fields.h) is run with a Sizer
// (to count the encoded size), a Writer (to encode into a buffer of exactly that size)
// or a Reader (to decode). Encoding and decoding therefore cannot disagree on a layout.
//
// Every integer is encoded explicitly byte by byte (never by copying a struct), so the
// layout is the same on any host. The Reader's errors are sticky: after the first
// failure every further read is a no-op that leaves its output untouched, and status()
// names the field that failed. This keeps field lists free of error plumbing.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/assert.h"
#include "base/hash.h"
#include "base/status.h"

namespace hasync::wire::internal {

template <std::unsigned_integral T>
inline void StoreLe(std::byte* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    p[i] = static_cast<std::byte>(v & 0xFFu);
    v = static_cast<T>(v >> 8);  // shifts by 8 < bits of T, so never undefined
  }
}

template <std::unsigned_integral T>
inline T LoadLe(const std::byte* p) {
  T v = 0;
  for (size_t i = sizeof(T); i-- > 0;) {
    v = static_cast<T>((v << 8) | static_cast<T>(std::to_integer<uint8_t>(p[i])));
  }
  return v;
}

// The unsigned wire representation of an integer or enum field.
// (std::underlying_type is only well-formed for enums, hence the lazy helper.)
template <class T, bool = std::is_enum_v<T>>
struct WireIntOf {
  using type = std::make_unsigned_t<T>;
};
template <class T>
struct WireIntOf<T, true> {
  using type = std::make_unsigned_t<std::underlying_type_t<T>>;
};
template <class T>
using WireInt = typename WireIntOf<T>::type;

// Counts the encoded size of a field list.
class Sizer {
 public:
  size_t size() const { return size_; }

  template <class T>
  requires std::is_integral_v<T> || std::is_enum_v<T>
  void Int(const char*, T) { size_ += sizeof(WireInt<T>); }
  void Bool(const char*, bool) { size_ += 1; }
  template <size_t N>
  void Bytes(const char*, const std::array<std::byte, N>&) {
    size_ += N;
  }
  void Hash(const char*, const Hash128&) { size_ += 16; }
  void Str16(const char*, std::string_view s, size_t, const char*) { size_ += 2 + s.size(); }
  void Blob32(const char*, std::span<const std::byte> b, size_t, const char*) {
    size_ += 4 + b.size();
  }
  template <std::unsigned_integral CountT, class T, class F>
  void Vector(const char*, const std::vector<T>& v, size_t, const char*, size_t, F&& each) {
    size_ += sizeof(CountT);
    for (const T& e : v) each(e);
  }

 private:
  size_t size_ = 0;
};

// Encodes into a buffer whose size the Sizer computed; overrunning it is a programmer
// error. Length limits are asserted: the encoder already ran ValidateMessage, so a
// failure here means the field list and the validator disagree.
class Writer {
 public:
  Writer(std::byte* out, size_t capacity) : out_(out), capacity_(capacity) {}
  size_t pos() const { return pos_; }

  template <class T>
  requires std::is_integral_v<T> || std::is_enum_v<T>
  void Int(const char*, T v) {
    using U = WireInt<T>;
    StoreLe<U>(Take(sizeof(U)), static_cast<U>(v));
  }
  void Bool(const char* f, bool v) { Int<uint8_t>(f, v ? 1 : 0); }
  template <size_t N>
  void Bytes(const char*, const std::array<std::byte, N>& a) {
    Copy(a.data(), N);
  }
  void Hash(const char* f, const Hash128& h) {
    Int(f, h.low);
    Int(f, h.high);
  }
  void Str16(const char* f, std::string_view s, size_t max, const char*) {
    HASYNC_ASSERT(s.size() <= max);
    Int(f, static_cast<uint16_t>(s.size()));
    Copy(reinterpret_cast<const std::byte*>(s.data()), s.size());
  }
  void Blob32(const char* f, std::span<const std::byte> b, size_t max, const char*) {
    HASYNC_ASSERT(b.size() <= max);
    Int(f, static_cast<uint32_t>(b.size()));
    Copy(b.data(), b.size());
  }
  template <std::unsigned_integral CountT, class T, class F>
  void Vector(const char* f, const std::vector<T>& v, size_t max, const char*, size_t, F&& each) {
    HASYNC_ASSERT(v.size() <= max);
    Int(f, static_cast<CountT>(v.size()));
    for (const T& e : v) each(e);
  }

 private:
  std::byte* Take(size_t n) {
    HASYNC_ASSERT(n <= capacity_ - pos_);
    std::byte* p = out_ + pos_;
    pos_ += n;
    return p;
  }
  void Copy(const std::byte* src, size_t n) {
    if (n == 0) return;            // src may be null for an empty string or vector
    std::memcpy(Take(n), src, n);  // byte arrays only; integers go through StoreLe
  }

  std::byte* out_;
  size_t capacity_;
  size_t pos_ = 0;
};

// Decodes a body. Length prefixes are checked against their limit before anything is
// allocated, and against the bytes that remain, so a hostile length never allocates more
// than the frame that carried it.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> body) : body_(body) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  size_t remaining() const { return body_.size() - pos_; }

  template <class T>
  requires std::is_integral_v<T> || std::is_enum_v<T>
  void Int(const char* f, T& v) {
    using U = WireInt<T>;
    const std::byte* p = Take(f, sizeof(U));
    if (p != nullptr) v = static_cast<T>(LoadLe<U>(p));
  }
  void Bool(const char* f, bool& v) {
    uint8_t b = 0;
    Int(f, b);
    if (!ok()) return;
    if (b > 1) {
      Fail(InvalidArgument(std::string(f) + ": boolean byte " + std::to_string(b) +
                           " is neither 0 nor 1"));
      return;
    }
    v = b == 1;
  }
  template <size_t N>
  void Bytes(const char* f, std::array<std::byte, N>& a) {
    const std::byte* p = Take(f, N);
    if (p != nullptr) std::copy(p, p + N, a.begin());
  }
  void Hash(const char* f, Hash128& h) {
    Int(f, h.low);
    Int(f, h.high);
  }
  void Str16(const char* f, std::string& s, size_t max, const char* max_name) {
    uint16_t len = 0;
    Int(f, len);
    if (!ok() || !CheckLength(f, len, max, max_name)) return;
    const std::byte* p = Take(f, len);
    if (p != nullptr) s.assign(reinterpret_cast<const char*>(p), len);
  }
  void Blob32(const char* f, std::vector<std::byte>& b, size_t max, const char* max_name) {
    uint32_t len = 0;
    Int(f, len);
    if (!ok() || !CheckLength(f, len, max, max_name)) return;
    const std::byte* p = Take(f, len);
    if (p != nullptr) b.assign(p, p + len);
  }
  // `min_each` is the smallest encoded size of one element: a count the remaining bytes
  // cannot hold is rejected before the vector is sized.
  template <std::unsigned_integral CountT, class T, class F>
  void Vector(const char* f, std::vector<T>& v, size_t max, const char* max_name, size_t min_each,
              F&& each) {
    CountT count = 0;
    Int(f, count);
    if (!ok() || !CheckLength(f, count, max, max_name)) return;
    if (size_t{count} > remaining() / min_each) {
      Fail(InvalidArgument("truncated body: " + std::string(f) + " count " + std::to_string(count) +
                           " needs at least " + std::to_string(size_t{count} * min_each) +
                           " bytes, " + std::to_string(remaining()) + " remain"));
      return;
    }
    v.resize(count);
    for (T& e : v) {
      if (!ok()) return;
      each(e);
    }
  }

  // Every byte of the body must belong to a field.
  void Finish() {
    if (ok() && remaining() != 0) {
      Fail(InvalidArgument(std::to_string(remaining()) + " trailing bytes after the last field"));
    }
  }

 private:
  bool CheckLength(const char* f, size_t len, size_t max, const char* max_name) {
    if (len <= max) return true;
    Fail(OutOfRange(std::string(f) + " length " + std::to_string(len) + " > " + max_name + " " +
                    std::to_string(max)));
    return false;
  }
  const std::byte* Take(const char* f, size_t n) {
    if (!ok()) return nullptr;
    if (n > remaining()) {
      Fail(InvalidArgument("truncated body: " + std::string(f) + " needs " + std::to_string(n) +
                           " bytes at offset " + std::to_string(pos_) + ", " +
                           std::to_string(remaining()) + " remain"));
      return nullptr;
    }
    const std::byte* p = body_.data() + pos_;
    pos_ += n;
    return p;
  }
  void Fail(Status s) {
    if (ok()) status_ = std::move(s);
  }

  std::span<const std::byte> body_;
  size_t pos_ = 0;
  Status status_;
};

}  // namespace hasync::wire::internal
