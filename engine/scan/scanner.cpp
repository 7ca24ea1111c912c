#include "engine/scan/scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>

#include "base/openat2.h"
#include "base/unique_fd.h"

namespace hasync::engine {
namespace {

std::string Join(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out(dir);
  out += '/';
  out += name;
  return out;
}

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Fills `info` from `st`; returns false for kinds hasync does not replicate.
bool FromStat(const struct stat& st, FileInfo& info) {
  if (S_ISREG(st.st_mode)) {
    info.kind = NodeKind::kFile;
  } else if (S_ISDIR(st.st_mode)) {
    info.kind = NodeKind::kDirectory;
  } else if (S_ISLNK(st.st_mode)) {
    info.kind = NodeKind::kSymlink;
  } else {
    return false;
  }
  info.mode = st.st_mode & 07777;
  info.uid = st.st_uid;
  info.gid = st.st_gid;
  info.size = info.kind == NodeKind::kDirectory ? 0 : static_cast<uint64_t>(st.st_size);
  info.mtime_ns = MtimeNs(st);
  info.dev = st.st_dev;
  info.ino = st.st_ino;
  info.nlink = st.st_nlink;
  return true;
}

Result<std::string> ReadLinkAt(int dir_fd, const char* name, uint64_t size_hint) {
  std::string target(std::max<uint64_t>(size_hint, 64) + 1, '\0');
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t n = readlinkat(dir_fd, name, target.data(), target.size());
    if (n < 0) return ErrnoStatus(errno, std::string("readlink ") + name);
    if (static_cast<size_t>(n) < target.size()) {
      target.resize(static_cast<size_t>(n));
      return target;
    }
    target.resize(target.size() * 4);  // grew since lstat
  }
  return Status(Code::kOutOfRange, std::string("symlink target of ") + name + " keeps growing");
}

Status NotADirectory(std::string_view path) {
  return Status(Code::kNotFound, "open directory " + std::string(path) + ": not a directory");
}

// Set once openat2 answered ENOSYS (a kernel before 5.6): the walk below from then on.
std::atomic<bool> g_no_openat2{false};

// The whole path in one openat2: no component may be a symbolic link, nor the lookup
// leave root_fd. nullopt when the kernel has no openat2.
std::optional<Result<UniqueFd>> OpenDirAt2(int root_fd, std::string_view path) {
  if (g_no_openat2.load(std::memory_order_relaxed)) return std::nullopt;
  std::string p(path);
  int fd = OpenConfined(root_fd, p.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (fd >= 0) return Result<UniqueFd>(UniqueFd(fd));
  const int err = -fd;
  if (err == ENOSYS) {
    g_no_openat2.store(true, std::memory_order_relaxed);
    return std::nullopt;
  }
  // A seccomp filter may answer EPERM for a syscall it does not know: the walk decides.
  if (err == EPERM) return std::nullopt;
  // As the walk below says it: a component that is a file or a symbolic link now (a
  // directory replaced on a live spool) means the directory does not exist. The walk
  // sees ENOTDIR for both (O_DIRECTORY is checked before O_NOFOLLOW); openat2 says ELOOP
  // for a link before the last component.
  if (err == ENOTDIR || err == ELOOP) return Result<UniqueFd>(NotADirectory(path));
  return Result<UniqueFd>(ErrnoStatus(err, "open directory " + p));
}

}  // namespace

Result<UniqueFd> OpenDirBeneath(int root_fd, std::string_view path) {
  UniqueFd cur;
  if (path.empty()) {
    // Reopen rather than dup: the root fd may be O_PATH (the apply layer's), and a
    // directory stream needs a descriptor opened for reading.
    cur.reset(openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cur) return ErrnoStatus(errno, "open sync root");
    return cur;
  }
  // One syscall for the whole path where the kernel can confine it (per replicated
  // change this was two opens and a close for a file two levels down).
  if (path.find('/') != std::string_view::npos) {
    if (auto opened = OpenDirAt2(root_fd, path)) return std::move(*opened);
  }
  // One component at a time, each O_NOFOLLOW. The first is looked up from the root fd
  // itself (an O_PATH fd serves as a dirfd).
  int at = root_fd;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string name(path.substr(pos, slash - pos));
    int fd = openat(at, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      // A component that is a file now (a directory replaced by a file on a live spool):
      // the path does not exist, which is what callers must hear, not an I/O error.
      if (errno == ENOTDIR) return NotADirectory(path.substr(0, slash));
      return ErrnoStatus(errno, "open directory " + std::string(path.substr(0, slash)));
    }
    cur.reset(fd);
    at = cur.get();
    pos = slash + 1;
  }
  return cur;
}

Result<ParentDir> OpenParentBeneath(int root_fd, std::string_view path) {
  size_t slash = path.rfind('/');
  ParentDir parent;
  parent.name = std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
  if (slash == std::string_view::npos) {
    parent.fd = root_fd;  // a name at the top: looked up from the root fd itself
    return parent;
  }
  ASSIGN_OR_RETURN(parent.owned, OpenDirBeneath(root_fd, path.substr(0, slash)));
  parent.fd = parent.owned.get();
  return parent;
}

Result<UniqueFd> OpenReadAt(const ParentDir& parent, std::string_view path) {
  int fd = openat(parent.fd, parent.name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return ErrnoStatus(errno, "open " + std::string(path));
  return UniqueFd(fd);
}

Result<UniqueFd> OpenReadBeneath(int root_fd, std::string_view path) {
  if (path.empty() || path.back() == '/') return OpenDirBeneath(root_fd, path);
  ASSIGN_OR_RETURN(ParentDir parent, OpenParentBeneath(root_fd, path));
  return OpenReadAt(parent, path);
}

namespace {

struct Walker {
  const ScanLimits& limits;
  const std::function<Status(const FileInfo&)>& visit;
  ScanStats& stats;

  Status Dir(int dir_fd, const std::string& rel, size_t depth) {
    if (depth > kScanDepthMax) {
      return Status(Code::kResourceExhausted, "directory depth > kScanDepthMax " +
                                                  std::to_string(kScanDepthMax) + " at " + rel);
    }
    // fdopendir takes ownership of its fd: give it a duplicate.
    int dup_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return ErrnoStatus(errno, "dup directory fd " + rel);
    std::unique_ptr<DIR, int (*)(DIR*)> dir(fdopendir(dup_fd), closedir);
    if (!dir) {
      int err = errno;
      close(dup_fd);
      return ErrnoStatus(err, "opendir " + rel);
    }
    std::vector<std::string> names;
    errno = 0;
    while (dirent* de = readdir(dir.get())) {
      std::string_view name(de->d_name);
      if (name == "." || name == "..") continue;
      if (name.substr(0, kTempPrefix.size()) == kTempPrefix) continue;
      names.emplace_back(name);
    }
    if (errno != 0) return ErrnoStatus(errno, "readdir " + rel);
    std::sort(names.begin(), names.end());

    for (const std::string& name : names) {
      struct stat st {};
      if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) {
          ++stats.vanished;
          continue;
        }
        return ErrnoStatus(errno, "stat " + Join(rel, name));
      }
      FileInfo info;
      if (!FromStat(st, info)) {
        ++stats.skipped_special;
        continue;
      }
      if (++stats.entries > limits.max_entries) {
        return Status(Code::kResourceExhausted, "more than max_entries " +
                                                    std::to_string(limits.max_entries) +
                                                    " entries below the root");
      }
      info.path = Join(rel, name);
      if (info.kind == NodeKind::kSymlink) {
        auto target = ReadLinkAt(dir_fd, name.c_str(), info.size);
        if (!target.ok()) {
          if (target.status().code() == Code::kNotFound) {
            ++stats.vanished;
            continue;
          }
          return target.status();
        }
        info.target = std::move(target).value();
      }
      RETURN_IF_ERROR(visit(info));
      if (info.kind == NodeKind::kDirectory) {
        int child = openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0) {
          if (errno == ENOENT) {
            ++stats.vanished;
            continue;
          }
          return ErrnoStatus(errno, "open directory " + info.path);
        }
        UniqueFd child_fd(child);
        RETURN_IF_ERROR(Dir(child_fd.get(), info.path, depth + 1));
      }
    }
    return Status::Ok();
  }
};

}  // namespace

Result<FileInfo> StatAt(const ParentDir& parent, std::string_view path) {
  FileInfo info;
  struct stat st {};
  const int flags = AT_SYMLINK_NOFOLLOW | (path.empty() ? AT_EMPTY_PATH : 0);  // "": the root
  if (fstatat(parent.fd, parent.name.c_str(), &st, flags) != 0) {
    return ErrnoStatus(errno, "stat " + (path.empty() ? std::string("root") : std::string(path)));
  }
  if (S_ISLNK(st.st_mode)) {
    ASSIGN_OR_RETURN(info.target,
                     ReadLinkAt(parent.fd, parent.name.c_str(), static_cast<uint64_t>(st.st_size)));
  }
  if (!FromStat(st, info)) {
    return Status(Code::kUnimplemented, std::string(path) + " is a device, FIFO or socket");
  }
  info.path = std::string(path);
  return info;
}

Result<FileInfo> StatPath(int root_fd, std::string_view path) {
  ASSIGN_OR_RETURN(ParentDir parent, OpenParentBeneath(root_fd, path));
  return StatAt(parent, path);
}

Result<FileInfo> StatFd(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat");
  FileInfo info;
  if (!FromStat(st, info)) return Status(Code::kUnimplemented, "not a file, directory or symlink");
  return info;
}

Status ScanTree(int root_fd, std::string_view subtree, const ScanLimits& limits,
                const std::function<Status(const FileInfo&)>& visit, ScanStats* stats) {
  ScanStats local;
  ScanStats& s = stats != nullptr ? *stats : local;
  std::string rel(subtree);
  if (!rel.empty()) {
    auto top = StatPath(root_fd, rel);
    if (!top.ok()) return top.status();
    RETURN_IF_ERROR(visit(*top));
    if (top->kind != NodeKind::kDirectory) return Status::Ok();
  }
  ASSIGN_OR_RETURN(UniqueFd dir, OpenDirBeneath(root_fd, rel));
  Walker walker{limits, visit, s};
  return walker.Dir(dir.get(), rel, 0);
}

namespace {
// Reads the whole file in chunks of at most `chunk_bytes`, calling `chunk` for each.
// The buffer is sized to the file (rounded up to `align`, a divisor of chunk_bytes, so
// chunks stay aligned to it if the file grows meanwhile): a spool is mostly small
// files, and zeroing and faulting in a 1 MiB buffer for a 4 KiB file cost more than
// reading and hashing it.
// `size_hint`: the file's size if the caller knows it (saves an fstat), else kUnknownSize.
// A short read of a regular file is its end (POSIX), so a small file costs one pread.
constexpr uint64_t kUnknownSize = ~uint64_t{0};
template <typename F>
Status ReadChunks(int fd, size_t chunk_bytes, size_t align, uint64_t size_hint, F&& chunk) {
  size_t cap = chunk_bytes;
  struct stat st {};
  uint64_t size = size_hint;
  if (size == kUnknownSize && fstat(fd, &st) == 0 && st.st_size >= 0) {
    size = static_cast<uint64_t>(st.st_size);
  }
  if (size < cap) {
    const size_t want = static_cast<size_t>(size) + 1;  // + 1: the end shows in the same read
    cap = std::min(chunk_bytes, (want + align - 1) / align * align);
  }
  std::vector<std::byte> buf(cap);
  uint64_t offset = 0;
  for (;;) {
    size_t filled = 0;
    bool at_end = false;
    while (filled < buf.size()) {
      const size_t want = buf.size() - filled;
      ssize_t n = pread(fd, buf.data() + filled, want, static_cast<off_t>(offset + filled));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "read for hashing at offset " + std::to_string(offset));
      }
      filled += static_cast<size_t>(n);
      if (static_cast<size_t>(n) < want) {
        at_end = true;
        break;
      }
    }
    if (at_end && filled == 0) return Status::Ok();
    if (filled > 0) chunk(std::span<const std::byte>(buf.data(), filled));
    if (filled < buf.size()) return Status::Ok();
    offset += filled;
  }
}
}  // namespace

Result<Hash128> HashFd(int fd) { return HashFd(fd, kUnknownSize); }

Result<Hash128> HashFd(int fd, uint64_t size_hint) {
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  RETURN_IF_ERROR(
      ReadChunks(fd, kHashBufferBytes, 4096, size_hint, [&](std::span<const std::byte> data) {
        XXH3_128bits_update(&state, data.data(), data.size());
      }));
  XXH128_hash_t h = XXH3_128bits_digest(&state);
  return Hash128{h.low64, h.high64};
}

Result<std::vector<Hash128>> BlockHashesFd(int fd, uint32_t block_size) {
  HASYNC_ASSERT(block_size > 0);
  std::vector<Hash128> hashes;
  // Read whole blocks at a time so each chunk is exactly one block (the last may be short).
  size_t per_read = std::max<size_t>(block_size, (kHashBufferBytes / block_size) * block_size);
  RETURN_IF_ERROR(
      ReadChunks(fd, per_read, block_size, kUnknownSize, [&](std::span<const std::byte> data) {
        for (size_t off = 0; off < data.size(); off += block_size) {
          hashes.push_back(
              Xxh3_128(data.subspan(off, std::min<size_t>(block_size, data.size() - off))));
        }
      }));
  return hashes;
}

}  // namespace hasync::engine
