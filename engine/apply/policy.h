// What the standby is willing to create: file types, permission bits, xattr names.
//
// A compromised or buggy primary must not be able to plant privilege on the standby
// through the replication channel, so by default:
// - only regular files, directories and symbolic links replicate; device nodes, FIFOs
//   and sockets are refused (a scheduler spool has none; a device node is a backdoor);
// - setuid and setgid are stripped from regular files (and setuid from directories,
//   where Linux ignores it); setgid and sticky on directories are kept, because they
//   only steer group inheritance and deletion rights; a stripped bit is counted;
// - xattrs: user.*, trusted.*, system.posix_acl_access and system.posix_acl_default
//   are allowed; security.capability only with allow_privileged (file capabilities are
//   privilege, like setuid); every other name (security.selinux, security.ima, other
//   system.*) is refused, because LSM labels and integrity data are local host policy.
// TreeOptions::allow_privileged lifts the setuid/setgid and capability restrictions.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/status.h"

namespace hasync::engine::apply {

inline constexpr size_t kMaxXattrNameBytes = 255;         // XATTR_NAME_MAX
inline constexpr size_t kMaxXattrValueBytes = 64 * 1024;  // XATTR_SIZE_MAX
inline constexpr size_t kMaxXattrsPerFile = 64;

// OK or PermissionDenied / InvalidArgument saying why `name` may not be set.
Status CheckXattrName(std::string_view name, bool allow_privileged);

// The permission bits to apply for a replicated `mode` (must be within 07777).
struct ModeDecision {
  uint32_t mode = 0;
  bool stripped = false;  // setuid/setgid removed by policy
};
Result<ModeDecision> DecideMode(uint32_t mode, bool is_dir, bool allow_privileged);

// OK for S_IFREG, S_IFDIR, S_IFLNK; PermissionDenied naming `path` otherwise.
// `st_mode` may carry permission bits; only the type bits are looked at.
Status CheckFileType(uint32_t st_mode, std::string_view path);

}  // namespace hasync::engine::apply
