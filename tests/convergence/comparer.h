// Convergence test support: an independent comparer of two replicated trees.
//
// It walks both trees itself with openat/fstatat/readlinkat/flistxattr/fgetxattr and
// shares no code with the engine (no engine/scan, no engine/sync/verify, no
// tests/support/tree_compare): a bug in the engine's manifest or hashing code cannot hide
// the same bug here.
//
// What it compares, per name relative to the root (docs/REPLICATION.md "What is and is
// not replicated"):
// - the set of names and their types (regular file, directory, symlink; anything else is
//   reported as an unexpected type), so empty directories count;
// - regular files: content (every byte), size, mode (07777), owner, mtime in ns, and
//   that a file sparse on the first tree has not lost its holes on the second;
// - directories: mode and owner (not mtime: the standby's own creates move it);
// - symlinks: target, owner, mtime in ns (not mode: Linux has none);
// - xattrs of the replicated namespaces (engine/apply/policy.h: user.*, trusted.*,
//   system.posix_acl_access, system.posix_acl_default) on files and directories
//   (not on symlinks: not replicated);
// - the hard-link partition: for every regular file, the set of names inside the root
//   that share its inode must be the same on both sides (so nlink counted inside the
//   root matches too). Links from outside the root (a quarantine) are not counted here;
//   InodesOutside() exposes the inodes so a test can check those separately.
// Names starting with `.hasync-tmp.` (the standby's reserved temp prefix, docs/APPLY.md)
// are skipped: they are the engine's in-flight work, never replicated content.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace hasync::convergence {

struct Entry {
  char type = '?';  // 'f' file, 'd' directory, 'l' symlink, '?' anything else
  uint32_t mode = 0;
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  uint64_t allocated = 0;  // st_blocks * 512
  int64_t mtime_ns = 0;
  uint64_t dev = 0, ino = 0;
  uint64_t nlink = 0;
  uint64_t content_hash = 0;  // FNV-1a 64 over every byte (files)
  std::string head;           // the first bytes, for messages
  std::string target;         // symlink target
  std::map<std::string, std::string> xattrs;
  std::string error;  // what could not be read, if anything
};

struct Tree {
  std::map<std::string, Entry> entries;  // relative path -> entry
  std::vector<std::string> errors;       // walk errors (root missing, …)
};

// Walks `root` (not following symlinks anywhere).
Tree Load(const std::string& root);

// Human-readable differences ("path: what"), empty when the trees are identical in every
// compared attribute. `a` is the reference (the primary).
std::vector<std::string> Compare(const Tree& a, const Tree& b);
std::vector<std::string> CompareRoots(const std::string& a, const std::string& b);

// (dev, ino) -> paths under `dir` (regular files only); used to check that a quarantine
// shares no inode with a live file.
std::map<std::pair<uint64_t, uint64_t>, std::vector<std::string>> FileInodes(
    const std::string& dir);

}  // namespace hasync::convergence
