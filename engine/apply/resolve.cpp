// Confined resolution with openat2; see resolve.h for the contract.
#include "engine/apply/resolve.h"

#include <fcntl.h>
#include <linux/limits.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>

#include "base/openat2.h"

namespace hasync::engine::apply {
namespace {

Status ResolveError(int err, std::string_view rel, std::string_view what) {
  if (err == ELOOP || err == EXDEV) {
    return ErrnoStatus(err, fmt::format("openat2 {} ({}): a symbolic link or an escape from the "
                                        "sync root is refused",
                                        rel, what));
  }
  if (err == ENOSYS) {
    return Unimplemented(fmt::format(
        "openat2 {} ({}): the kernel lacks openat2; hasync needs Linux 5.6 or newer", rel, what));
  }
  return ErrnoStatus(err, fmt::format("openat2 {} ({})", rel, what));
}

}  // namespace

void AssertRelativePath(std::string_view path) {
  HASYNC_ASSERT(!path.empty());
  HASYNC_ASSERT(path.front() != '/');
  HASYNC_ASSERT(path.back() != '/');
  HASYNC_ASSERT(path.size() < PATH_MAX);
  HASYNC_ASSERT(path.find('\0') == std::string_view::npos);
  std::string_view last = SplitPath(path).name;
  HASYNC_ASSERT(last != "." && last != "..");
}

bool HasReservedComponent(std::string_view path) {
  size_t start = 0;
  // One pass per component; start strictly increases.
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    size_t end = slash == std::string_view::npos ? path.size() : slash;
    if (path.substr(start, end - start).starts_with(kTempPrefix)) return true;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return false;
}

PathParts SplitPath(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

Result<UniqueFd> OpenBeneath(int dir_fd, std::string_view rel, int flags, std::string_view what) {
  std::string p(rel.empty() ? std::string_view(".") : rel);
  int fd = OpenConfined(dir_fd, p.c_str(), flags);
  if (fd >= 0) return UniqueFd(fd);
  return ResolveError(-fd, p, what);
}

Result<Parent> OpenParent(int root_fd, std::string_view path) {
  AssertRelativePath(path);
  PathParts parts = SplitPath(path);
  ASSIGN_OR_RETURN(UniqueFd fd, OpenBeneath(root_fd, parts.dir, O_RDONLY | O_DIRECTORY,
                                            fmt::format("parent of {}", path)));
  return Parent{std::move(fd), std::string(parts.name)};
}

}  // namespace hasync::engine::apply
