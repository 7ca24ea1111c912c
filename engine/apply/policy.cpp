// Replication policy for file types, mode bits and xattr names; see policy.h.
#include "engine/apply/policy.h"

#include <sys/stat.h>

#include <fmt/format.h>
#include <array>

namespace hasync::engine::apply {
namespace {

constexpr std::array<std::string_view, 2> kAllowedPrefixes = {"user.", "trusted."};
constexpr std::array<std::string_view, 2> kAllowedNames = {"system.posix_acl_access",
                                                           "system.posix_acl_default"};
constexpr std::string_view kCapability = "security.capability";

}  // namespace

Status CheckXattrName(std::string_view name, bool allow_privileged) {
  if (name.empty() || name.size() > kMaxXattrNameBytes ||
      name.find('\0') != std::string_view::npos) {
    return InvalidArgument(
        fmt::format("xattr name of {} bytes is empty, too long or holds a NUL", name.size()));
  }
  for (std::string_view prefix : kAllowedPrefixes) {
    if (name.starts_with(prefix) && name.size() > prefix.size()) return Status::Ok();
  }
  for (std::string_view allowed : kAllowedNames) {
    if (name == allowed) return Status::Ok();
  }
  if (name == kCapability) {
    if (allow_privileged) return Status::Ok();
    return PermissionDenied(
        "xattr security.capability refused: file capabilities grant privilege "
        "(allow_privileged is off)");
  }
  return PermissionDenied(
      fmt::format("xattr {} refused: only user.*, trusted.* and POSIX ACLs replicate; LSM labels "
                  "and other system/security attributes are local policy",
                  name));
}

Result<ModeDecision> DecideMode(uint32_t mode, bool is_dir, bool allow_privileged) {
  if ((mode & ~uint32_t{07777}) != 0) {
    return InvalidArgument(fmt::format("mode {:o} has bits outside 07777", mode));
  }
  uint32_t strip = 0;
  if (is_dir) {
    strip = S_ISUID;  // meaningless on Linux directories; setgid/sticky are kept
  } else if (!allow_privileged) {
    strip = S_ISUID | S_ISGID;
  }
  return ModeDecision{mode & ~strip, (mode & strip) != 0};
}

Status CheckFileType(uint32_t st_mode, std::string_view path) {
  switch (st_mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
      return Status::Ok();
    case S_IFCHR:
    case S_IFBLK:
      return PermissionDenied(fmt::format("{}: device nodes are never replicated", path));
    case S_IFIFO:
      return PermissionDenied(fmt::format("{}: FIFOs are never replicated", path));
    case S_IFSOCK:
      return PermissionDenied(fmt::format("{}: sockets are never replicated", path));
    default:
      return InvalidArgument(fmt::format("{}: unknown file type {:o}", path, st_mode & S_IFMT));
  }
}

}  // namespace hasync::engine::apply
