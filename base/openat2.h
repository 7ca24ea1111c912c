// OpenConfined: openat2 that never leaves `dir_fd` and never follows a symbolic link.
//
// Contract: `flags` gets O_CLOEXEC added; the lookup uses RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS and is tried again (up to
// kOpenConfinedAttempts) while the kernel answers EAGAIN (a concurrent rename or mount
// raced it) or EINTR. Returns the new fd, or -errno (ENOSYS: a kernel before 5.6).
// The apply layer (engine/apply/resolve.h) and the scanner's directory opens share it.
#pragma once

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace hasync {

inline constexpr int kOpenConfinedAttempts = 8;

inline int OpenConfined(int dir_fd, const char* path, int flags) {
  open_how how{};
  how.flags = static_cast<__u64>(static_cast<unsigned>(flags) | unsigned{O_CLOEXEC});
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int err = 0;
  for (int attempt = 0; attempt < kOpenConfinedAttempts; ++attempt) {
    long fd = ::syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    err = errno;
    if (err != EAGAIN && err != EINTR) break;
  }
  return -err;
}

}  // namespace hasync
