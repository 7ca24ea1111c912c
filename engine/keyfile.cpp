// Sync key file: load with permission checks, and keygen. See keyfile.h for the contract.
#include "engine/keyfile.h"

#include <fcntl.h>
#include <mbedtls/platform_util.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <string>
#include <utility>

namespace hasync::engine {
namespace {

// Closes an fd on every return path.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports the error, for a file whose close must be checked.
  Status Close(std::string_view what) {
    int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) return ErrnoStatus(errno, what);
    return Status::Ok();
  }

 private:
  int fd_;
};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string ParentDir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, fmt::format("write key file {}", path));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Status FillRandom(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    // Flags 0: block until the kernel's pool is initialised, then never block again.
    ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "getrandom");
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

SyncKey::SyncKey(SyncKey&& other) noexcept : bytes_(std::move(other.bytes_)) {
  other.bytes_.clear();
}

SyncKey& SyncKey::operator=(SyncKey&& other) noexcept {
  if (this != &other) {
    Wipe();
    bytes_ = std::move(other.bytes_);
    other.bytes_.clear();
  }
  return *this;
}

SyncKey::~SyncKey() { Wipe(); }

void SyncKey::Wipe() {
  if (!bytes_.empty()) mbedtls_platform_zeroize(bytes_.data(), bytes_.size());
  bytes_.clear();
}

Result<SyncKey> ParseKeyText(std::string_view text, std::string_view path) {
  if (text.ends_with("\r\n")) {
    text.remove_suffix(2);
  } else if (text.ends_with('\n')) {
    text.remove_suffix(1);
  }
  if (text.empty()) {
    return InvalidArgument(
        fmt::format("key file {}: empty (expected one line of hex digits)", path));
  }
  for (size_t i = 0; i < text.size(); ++i) {
    if (HexValue(text[i]) < 0) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      std::string shown =
          (c >= 0x21 && c < 0x7f) ? fmt::format("'{}'", text[i]) : fmt::format("byte 0x{:02x}", c);
      return InvalidArgument(fmt::format(
          "key file {}: malformed: {} at offset {} is not a hex digit (expected one line of "
          "hex digits)",
          path, shown, i));
    }
  }
  if (text.size() % 2 != 0) {
    return InvalidArgument(
        fmt::format("key file {}: malformed: odd number of hex digits ({})", path, text.size()));
  }
  const size_t bytes = text.size() / 2;
  if (bytes < kMinKeyBytes) {
    return InvalidArgument(
        fmt::format("key file {}: key is {} bits, shorter than the minimum {} bits (run hasync "
                    "keygen for a {}-bit key)",
                    path, bytes * 8, kMinKeyBytes * 8, kGeneratedKeyBytes * 8));
  }
  if (bytes > kMaxKeyBytes) {
    return InvalidArgument(fmt::format(
        "key file {}: key is {} bits, longer than the maximum {} bits (the TLS PSK limit)", path,
        bytes * 8, kMaxKeyBytes * 8));
  }
  std::vector<uint8_t> key(bytes);
  for (size_t i = 0; i < bytes; ++i) {
    key[i] = static_cast<uint8_t>(HexValue(text[2 * i]) * 16 + HexValue(text[2 * i + 1]));
  }
  return SyncKey(std::move(key));
}

Result<SyncKey> LoadKeyFile(const std::string& path) {
  // O_NONBLOCK so that opening a FIFO placed at the path cannot hang start-up; the type
  // is checked on the opened fd, so there is no window between check and use.
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (raw < 0) return ErrnoStatus(errno, fmt::format("key file {}", path));
  FdCloser fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, fmt::format("key file {}", path));
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgument(fmt::format("key file {}: not a regular file", path));
  }
  const unsigned perms = static_cast<unsigned>(st.st_mode) & 07777u;
  if ((perms & 077u) != 0) {
    return PermissionDenied(fmt::format(
        "key file {} mode {:04o}: must not be accessible by group or others (chmod 600)", path,
        perms));
  }
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    return PermissionDenied(fmt::format(
        "key file {} owned by uid {}: must be owned by root or by the user hasync runs as (uid {})",
        path, st.st_uid, ::geteuid()));
  }
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > kMaxKeyFileBytes) {
    return InvalidArgument(fmt::format("key file {}: {} bytes is too large for a key file (max {})",
                                       path, st.st_size, kMaxKeyFileBytes));
  }
  std::string text(kMaxKeyFileBytes + 1, '\0');
  size_t used = 0;
  while (used < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + used, text.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, fmt::format("read key file {}", path));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (used > kMaxKeyFileBytes) {  // grew between fstat and read
    return InvalidArgument(fmt::format("key file {}: too large for a key file", path));
  }
  auto key = ParseKeyText(std::string_view(text.data(), used), path);
  mbedtls_platform_zeroize(text.data(), text.size());
  return key;
}

std::string EncodeKeyText(std::span<const uint8_t> key) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(key.size() * 2 + 1);
  for (uint8_t b : key) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0x0f]);
  }
  out.push_back('\n');
  return out;
}

Status WriteNewKeyFile(const std::string& path) {
  if (path.empty()) return InvalidArgument("key file path is empty");
  std::vector<uint8_t> key(kGeneratedKeyBytes);
  RETURN_IF_ERROR(FillRandom(key));
  std::string text = EncodeKeyText(key);
  mbedtls_platform_zeroize(key.data(), key.size());

  // O_EXCL|O_NOFOLLOW: never write through an existing file or a planted symlink.
  int raw =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
  if (raw < 0) {
    const int err = errno;
    mbedtls_platform_zeroize(text.data(), text.size());
    if (err == EEXIST) {
      return Status(Code::kAlreadyExists,
                    fmt::format("key file {} already exists: refusing to overwrite it (remove it "
                                "first to replace the key, then copy the new key to the peer)",
                                path));
    }
    return ErrnoStatus(err, fmt::format("create key file {}", path));
  }
  FdCloser fd(raw);
  // The umask may have narrowed the mode further; set exactly 0600 so the loader accepts it.
  Status st;
  if (::fchmod(fd.get(), 0600) != 0)
    st = ErrnoStatus(errno, fmt::format("chmod key file {}", path));
  if (st.ok()) st = WriteAll(fd.get(), text, path);
  mbedtls_platform_zeroize(text.data(), text.size());
  if (st.ok() && ::fsync(fd.get()) != 0)
    st = ErrnoStatus(errno, fmt::format("fsync key file {}", path));
  if (st.ok()) st = fd.Close(fmt::format("close key file {}", path));
  if (!st.ok()) {
    // We created the file, so removing the half-written one cannot destroy anyone's key.
    ::unlink(path.c_str());
    return st;
  }
  const std::string parent = ParentDir(path);
  int dir = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return ErrnoStatus(errno, fmt::format("open directory {} to fsync it", parent));
  FdCloser dir_fd(dir);
  if (::fsync(dir_fd.get()) != 0)
    return ErrnoStatus(errno, fmt::format("fsync directory {}", parent));
  return Status::Ok();
}

}  // namespace hasync::engine
