// Quarantine: where a rejoining node keeps its own version of a file that differs from
// the new primary's, before the primary's version replaces it (DESIGN §4 "Rejoin").
//
// Layout: <state_dir>/quarantine/<epoch>/<root-relative path>. The epoch is the one the
// node rejoins under, so every rejoin has its own folder. A second copy of the same path
// in the same epoch gets ".1", ".2", … appended to its last component.
//
// Contract:
// - Keep() moves the entry (regular file, symlink or whole directory) out of the tree
//   and returns its path relative to the state dir. Same filesystem: one rename
//   (RENAME_NOREPLACE). Across filesystems, and for a regular file with more than one
//   link (so the kept copy never shares an inode with a live name): copy (data with
//   holes, mode, owner, mtime; xattrs are not carried), fsync, then unlink the
//   original name; a directory across filesystems is Unimplemented. (Files inside a
//   quarantined directory are moved with it, links and all.) Either way it is durable when Keep
//   returns OK: the quarantine directories and the source's parent are fsynced.
// - Keep() never overwrites anything in quarantine and never follows a symlink: the
//   state dir side is resolved with the same openat2 confinement as the tree.
// - Nothing is deleted unless its copy is durable first.
// Thread safety: none; one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/apply/fs_ops.h"
#include "engine/apply/tree.h"

namespace hasync::engine::apply {

inline constexpr std::string_view kQuarantineDir = "quarantine";
inline constexpr int kMaxQuarantineSuffix = 1000;

class Quarantine {
 public:
  // state_dir: absolute path of hasync's state directory (it must exist); the
  // "quarantine" folder inside it is created when missing.
  static Result<Quarantine> Open(std::string_view state_dir, FsOps* fs = nullptr);

  // Moves `path` (root-relative in `tree`) to quarantine/<epoch>/<path>. NotFound when the
  // path does not exist (nothing to keep).
  Result<std::string> Keep(const Tree& tree, std::string_view path, uint64_t epoch);

  // Entries moved into quarantine by this object (for metrics and `hasync status`).
  uint64_t files_quarantined() const { return count_; }

 private:
  Quarantine(UniqueFd dir, FsOps* fs) : dir_(std::move(dir)), fs_(fs) {}
  Status SyncDir(int fd, std::string_view what);

  UniqueFd dir_;  // <state_dir>/quarantine, O_RDONLY|O_DIRECTORY
  FsOps* fs_;
  uint64_t count_ = 0;
};

}  // namespace hasync::engine::apply
