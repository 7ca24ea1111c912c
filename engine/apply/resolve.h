// Confined path resolution for the apply layer: every path the standby touches is
// resolved beneath a directory fd with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS), never from "/" and never through a symbolic link.
//
// Contract:
// - Paths are root-relative and already validated by wire/ (no "..", not absolute, no
//   NUL, within NAME_MAX/PATH_MAX). The cheap invariants are asserted again here.
// - OpenParent resolves every component but the last and returns an fd on that
//   directory plus the last name; the caller then uses the *at() call on that fd with the
//   single-component name, which the kernel cannot resolve outside the directory.
// - A symlink in any component, or an escape, fails with InvalidArgument naming the path
//   (ELOOP / EXDEV from the kernel). ENOSYS (kernel < 5.6) is Unimplemented.
// - Names whose any component starts with kTempPrefix are reserved for the apply layer's
//   temporary files and are refused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/unique_fd.h"

namespace hasync::engine::apply {

// Every temporary file or symlink the apply layer creates starts with this prefix; the
// start-up cleanup removes exactly these names.
inline constexpr std::string_view kTempPrefix = ".hasync-tmp.";

// Asserts the invariants wire/ already guarantees: non-empty, relative, no NUL, no
// trailing '/', shorter than PATH_MAX, last component not "." or "..".
void AssertRelativePath(std::string_view path);

// True when some component of `path` begins with kTempPrefix.
bool HasReservedComponent(std::string_view path);

// "a/b/c" → {"a/b", "c"}; "c" → {"", "c"}.
struct PathParts {
  std::string_view dir;
  std::string_view name;
};
PathParts SplitPath(std::string_view path);

// openat2(dir_fd, rel, flags | O_CLOEXEC, confined). rel "" means dir_fd's directory
// itself. `what` names the purpose for the error message ("parent of a/b").
Result<UniqueFd> OpenBeneath(int dir_fd, std::string_view rel, int flags, std::string_view what);

// A directory opened O_RDONLY|O_DIRECTORY (usable for fsync and getdents) plus the
// final component of the path it is the parent of.
struct Parent {
  UniqueFd fd;
  std::string name;
};
Result<Parent> OpenParent(int root_fd, std::string_view path);

}  // namespace hasync::engine::apply
