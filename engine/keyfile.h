// The sync key: the pre-shared secret both nodes hold (DESIGN §5), and its file.
//
// Contract:
// - A key file is one line of hexadecimal text (upper or lower case), optionally ended by
//   one newline ("\n" or "\r\n"), nothing else. `hasync keygen` writes 64 lower-case hex
//   digits (256 bits) and a newline. Keys of 128..256 bits are accepted; 256 bits is the
//   mbedTLS 2.28 PSK limit (MBEDTLS_PSK_MAX_LEN), so longer keys are refused too.
// - LoadKeyFile refuses, with a sentence saying why: a file that is not a regular file, a
//   file readable or writable by group or others, a file owned by someone other than root
//   or the user hasync runs as, a file larger than kMaxKeyFileBytes, malformed content and
//   keys outside the accepted length.
// - WriteNewKeyFile never overwrites: it creates with O_CREAT|O_EXCL, mode 0600, fsyncs
//   the file and then its parent directory, and removes a half-written file on failure.
// - Key bytes live in a move-only SyncKey that wipes its memory when destroyed.
// No exceptions; every failure is a Status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace hasync::engine {

inline constexpr size_t kGeneratedKeyBytes = 32;  // what keygen writes: 256 bits
inline constexpr size_t kMinKeyBytes = 16;        // 128 bits: anything shorter is refused
inline constexpr size_t kMaxKeyBytes = 32;        // mbedTLS 2.28 MBEDTLS_PSK_MAX_LEN
inline constexpr size_t kMaxKeyFileBytes = 4096;  // a key file is one short line
static_assert(kMinKeyBytes <= kGeneratedKeyBytes && kGeneratedKeyBytes <= kMaxKeyBytes);

// Owns key bytes; copy is deleted so the secret is not duplicated by accident, and the
// destructor (and a move) zeroes the memory it held.
class SyncKey {
 public:
  SyncKey() = default;
  explicit SyncKey(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}
  SyncKey(const SyncKey&) = delete;
  SyncKey& operator=(const SyncKey&) = delete;
  SyncKey(SyncKey&& other) noexcept;
  SyncKey& operator=(SyncKey&& other) noexcept;
  ~SyncKey();

  std::span<const uint8_t> bytes() const { return bytes_; }
  size_t size_bits() const { return bytes_.size() * 8; }

 private:
  void Wipe();
  std::vector<uint8_t> bytes_;
};

// Parses key file content. `path` only names the file in error messages.
Result<SyncKey> ParseKeyText(std::string_view text, std::string_view path);

// Opens, checks (type, owner, permissions, size) and parses a key file.
Result<SyncKey> LoadKeyFile(const std::string& path);

// The text keygen writes for `key`: lower-case hex and a newline.
std::string EncodeKeyText(std::span<const uint8_t> key);

// Creates `path` holding a fresh 256-bit key from getrandom(2). Refuses (kAlreadyExists)
// if anything exists at `path`, leaving it untouched.
Status WriteNewKeyFile(const std::string& path);

}  // namespace hasync::engine
