#include "engine/watch/internal/fs_resolver.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <system_error>

#include "engine/watch/handle_cache.h"
#include "engine/watch/limits.h"

namespace hasync::engine::watch::internal {
namespace {

// struct file_handle ends in a flexible array; this gives it room for the largest
// handle we accept, suitably aligned.
struct HandleBuf {
  alignas(file_handle) unsigned char bytes[sizeof(file_handle) + kMaxHandleBytes];
  file_handle* get() { return reinterpret_cast<file_handle*>(bytes); }
};

// Fills `fh` with the handle found at `abs_path`; *mount_id receives its mount.
Status HandleAt(const std::string& abs_path, HandleBuf* hb, int* mount_id) {
  file_handle* fh = hb->get();
  fh->handle_bytes = kMaxHandleBytes;
  // No AT_SYMLINK_FOLLOW: a symlink inside a root is a file to replicate, not a way out.
  if (::name_to_handle_at(AT_FDCWD, abs_path.c_str(), fh, mount_id, 0) != 0) {
    return ErrnoStatus(errno, "name_to_handle_at " + abs_path);
  }
  return Status::Ok();
}

}  // namespace

void FsResolver::AddMount(uint64_t fsid, UniqueFd mount_fd) {
  mounts_.emplace_back(fsid, std::move(mount_fd));
}

bool FsResolver::HasMount(uint64_t fsid) const {
  for (const auto& [id, fd] : mounts_) {
    if (id == fsid) return true;
  }
  return false;
}

Result<std::string> FsResolver::PathOf(std::string_view key) {
  if (key.size() <= 12 || key.size() - 12 > kMaxHandleBytes) {
    return InvalidArgument("handle key of " + std::to_string(key.size()) + " bytes");
  }
  uint64_t fsid = 0;
  int32_t type = 0;
  std::memcpy(&fsid, key.data(), 8);
  std::memcpy(&type, key.data() + 8, 4);
  int mount_fd = -1;
  for (const auto& [id, fd] : mounts_) {
    if (id == fsid) mount_fd = fd.get();
  }
  if (mount_fd < 0) return Status(Code::kNotFound, "no mount for this filesystem id");
  HandleBuf hb;
  file_handle* fh = hb.get();
  fh->handle_bytes = static_cast<unsigned int>(key.size() - 12);
  fh->handle_type = type;
  std::memcpy(fh->f_handle, key.data() + 12, key.size() - 12);
  UniqueFd fd(::open_by_handle_at(mount_fd, fh, O_PATH | O_CLOEXEC));
  if (!fd) {
    // ESTALE: the directory was removed; the caller treats that as "gone", not doubt.
    if (errno == ESTALE) return Status(Code::kNotFound, "directory handle is stale");
    return ErrnoStatus(errno, "open_by_handle_at");
  }
  char proc[64];
  std::snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd.get());
  char target[PATH_MAX];
  ssize_t n = ::readlink(proc, target, sizeof(target));
  if (n < 0) return ErrnoStatus(errno, std::string("readlink ") + proc);
  if (static_cast<size_t>(n) >= sizeof(target)) return OutOfRange("directory path >= PATH_MAX");
  std::string path(target, static_cast<size_t>(n));
  if (path.empty() || path.front() != '/' || path.ends_with(" (deleted)")) {
    return Status(Code::kNotFound, "directory is gone: " + path);
  }
  return path;
}

Result<std::string> FsResolver::KeyOf(uint64_t fsid, const std::string& abs_path) {
  HandleBuf hb;
  int mount_id = 0;
  RETURN_IF_ERROR(HandleAt(abs_path, &hb, &mount_id));
  const file_handle* fh = hb.get();
  return HandleCache::Key(
      fsid, fh->handle_type,
      std::string_view(reinterpret_cast<const char*>(fh->f_handle), fh->handle_bytes));
}

Status FsResolver::ListDirs(uint64_t fsid, const std::string& abs_root, size_t max,
                            std::vector<std::pair<std::string, std::string>>* out) {
  namespace fs = std::filesystem;
  HandleBuf hb;
  int root_mount = 0;
  RETURN_IF_ERROR(HandleAt(abs_root, &hb, &root_mount));
  size_t count = 0;
  // Caches `path` if it is on the root's mount; returns whether it did (and so whether
  // the walk may descend into it).
  auto add = [&](const std::string& path) -> bool {
    int mount_id = 0;
    if (!HandleAt(path, &hb, &mount_id).ok() || mount_id != root_mount) return false;
    const file_handle* fh = hb.get();
    out->emplace_back(HandleCache::Key(fsid, fh->handle_type,
                                       std::string_view(reinterpret_cast<const char*>(fh->f_handle),
                                                        fh->handle_bytes)),
                      path);
    ++count;
    return true;
  };
  if (!add(abs_root)) return Internal("root vanished while listing " + abs_root);
  std::error_code ec;
  fs::recursive_directory_iterator it(abs_root, fs::directory_options::skip_permission_denied, ec);
  if (ec) return ErrnoStatus(ec.value(), "list " + abs_root);
  const fs::recursive_directory_iterator end;
  while (it != end && count < max) {
    // symlink_status: a symlink to a directory is not descended into or cached.
    if (it->symlink_status(ec).type() == fs::file_type::directory) {
      if (!add(it->path().string())) it.disable_recursion_pending();
    }
    it.increment(ec);
    if (ec) return ErrnoStatus(ec.value(), "list " + abs_root);
  }
  return Status::Ok();
}

}  // namespace hasync::engine::watch::internal
