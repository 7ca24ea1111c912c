// Scanner: walks one sync root and reports what it holds, for manifests (standby) and
// rescans (primary), and hashes file content whole or per block.
//
// Contract:
// - The walk never follows a symlink: every directory is opened relative to its parent's
//   fd with O_NOFOLLOW|O_DIRECTORY, so a directory swapped for a symlink mid-walk fails
//   that subtree with a reason instead of leading outside the root.
// - A directory is reported before its contents (so a replayer can mkdir top-down);
//   entries within a directory come in name order, so two scans of equal trees produce
//   equal sequences.
// - hasync's own temp files (kTempPrefix) are not reported. Device nodes, FIFOs and
//   sockets are counted in `skipped_special` and not reported: a scheduler spool holds
//   none, and the standby refuses to create them (docs/APPLY.md).
// - Bounded: depth ≤ kScanDepthMax, entries ≤ limits.max_entries; past either the walk
//   stops with ResourceExhausted naming the bound.
// - Paths are relative to the root, '/'-separated, without a leading slash.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "base/unique_fd.h"

namespace hasync::engine {

inline constexpr std::string_view kTempPrefix = ".hasync-tmp.";
inline constexpr size_t kScanDepthMax = 256;
inline constexpr size_t kHashBufferBytes = size_t{1} << 20;

enum class NodeKind : uint8_t { kFile = 1, kDirectory = 2, kSymlink = 3 };

struct FileInfo {
  NodeKind kind = NodeKind::kFile;
  uint32_t mode = 0;  // permission bits only (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t nlink = 0;
  std::string path;    // relative to the root
  std::string target;  // symlinks: the literal target
};

struct ScanLimits {
  uint64_t max_entries = 100'000'000;
};

struct ScanStats {
  uint64_t entries = 0;
  uint64_t skipped_special = 0;
  uint64_t vanished = 0;  // removed between readdir and stat: normal on a live spool
};

// Visits `subtree` (relative; "" = the whole root) below root_fd, the subtree's own
// entry first unless it is the root. A visitor error stops the walk and is returned.
Status ScanTree(int root_fd, std::string_view subtree, const ScanLimits& limits,
                const std::function<Status(const FileInfo&)>& visit, ScanStats* stats);

// lstat-like information about one path below root_fd, without following symlinks.
// NotFound when it does not exist.
Result<FileInfo> StatPath(int root_fd, std::string_view path);

// The directory holding `path` (relative), opened as OpenDirBeneath opens it, and the
// last component: one walk serves both a stat and an open of the name, where StatPath
// and OpenReadBeneath would walk twice. `fd` is root_fd itself for a name at the top
// and for "" (the root, whose `name` is "": StatAt stats the root then), else `owned`.
struct ParentDir {
  UniqueFd owned;
  int fd = -1;
  std::string name;
};
Result<ParentDir> OpenParentBeneath(int root_fd, std::string_view path);
// StatPath of `path`, given its parent open as OpenParentBeneath returns it.
Result<FileInfo> StatAt(const ParentDir& parent, std::string_view path);
// OpenReadBeneath of `path`, given its parent open as OpenParentBeneath returns it.
Result<UniqueFd> OpenReadAt(const ParentDir& parent, std::string_view path);

// Opens `path` (relative; "" = the root) below root_fd as a directory / for reading,
// never through a symbolic link: in one openat2 (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
// where the kernel has it, else one component at a time with O_NOFOLLOW. A component
// that is not a directory, a symbolic link included, is NotFound: the directory the
// caller asked for does not exist.
Result<UniqueFd> OpenDirBeneath(int root_fd, std::string_view path);
Result<UniqueFd> OpenReadBeneath(int root_fd, std::string_view path);

// FileInfo from an fstat of an open fd (path and target left empty).
Result<FileInfo> StatFd(int fd);

// XXH3-128 of the whole content of an open regular file, read with pread.
Result<Hash128> HashFd(int fd);
// The same, told the size the caller just saw (a hint for the buffer: no fstat).
Result<Hash128> HashFd(int fd, uint64_t size_hint);

// XXH3-128 of each block_size block of an open regular file (the last may be short).
Result<std::vector<Hash128>> BlockHashesFd(int fd, uint32_t block_size);

}  // namespace hasync::engine
