// The real FsOps: thin wrappers over the syscalls, with EINTR and short-count loops.
#include "engine/apply/fs_ops.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace hasync::engine::apply {
namespace {

// copy_file_range is asked for at most this much per call so a huge range cannot hold
// the caller inside one syscall for long; the bounce-buffer fallback uses the same size.
constexpr size_t kCopyChunkBytes = size_t{8} << 20;

bool CopyNeedsFallback(int err) {
  // Cross-filesystem before 5.3, filesystems without support, special files.
  return err == EXDEV || err == ENOSYS || err == EOPNOTSUPP || err == EINVAL;
}

int BounceCopy(int src_fd, int dst_fd, uint64_t offset, uint64_t length) {
  std::vector<std::byte> buf(std::min<uint64_t>(length, kCopyChunkBytes));
  uint64_t done = 0;
  // Each pass copies at least one byte or returns, so the loop ends within `length` passes.
  while (done < length) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(length - done, buf.size()));
    ssize_t n = ::pread(src_fd, buf.data(), want, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return ENODATA;  // source shorter than the range it claimed to hold
    auto chunk = std::span<const std::byte>(buf.data(), static_cast<size_t>(n));
    int err = DefaultFsOps().Pwrite(dst_fd, chunk, offset + done);
    if (err != 0) return err;
    done += static_cast<uint64_t>(n);
  }
  return 0;
}

}  // namespace

int FsOps::SyncAll(std::span<const int> fds, size_t* failed) {
  for (size_t i = 0; i < fds.size(); ++i) {
    int err = Fsync(fds[i]);
    if (err != 0) {
      *failed = i;
      return err;
    }
  }
  return 0;
}

int PosixFsOps::Pwrite(int fd, std::span<const std::byte> data, uint64_t offset) {
  // Each pass writes at least one byte or returns.
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // pwrite of a non-empty buffer never returns 0 on a file
    data = data.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return 0;
}

int PosixFsOps::Ftruncate(int fd, uint64_t size) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (::ftruncate(fd, static_cast<off_t>(size)) == 0) return 0;
    if (errno != EINTR) return errno;
  }
  return EINTR;
}

int PosixFsOps::Fsync(int fd) { return ::fsync(fd) == 0 ? 0 : errno; }

int PosixFsOps::Syncfs(int fd) { return ::syncfs(fd) == 0 ? 0 : errno; }

int PosixFsOps::Clone(int src_fd, int dst_fd) {
  return ::ioctl(dst_fd, FICLONE, src_fd) == 0 ? 0 : errno;
}

int PosixFsOps::CopyRange(int src_fd, int dst_fd, uint64_t offset, uint64_t length) {
  uint64_t done = 0;
  // Each pass copies at least one byte, falls back, or returns.
  while (done < length) {
    auto in = static_cast<loff_t>(offset + done);
    auto out = in;
    size_t want = static_cast<size_t>(std::min<uint64_t>(length - done, kCopyChunkBytes));
    ssize_t n = ::copy_file_range(src_fd, &in, dst_fd, &out, want, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (CopyNeedsFallback(errno)) return BounceCopy(src_fd, dst_fd, offset + done, length - done);
      return errno;
    }
    if (n == 0) return ENODATA;
    done += static_cast<uint64_t>(n);
  }
  return 0;
}

FsOps& DefaultFsOps() {
  static PosixFsOps ops;
  return ops;
}

}  // namespace hasync::engine::apply
