// WatchEvent: what the primary's watcher hands to the journal.
//
// Contract: `path` is relative to sync root `root` ("" is the root itself), never starts
// or ends with '/', and never contains "." or ".." components. A WatchEvent says *what
// was touched*; the journal and sender look at the file as it is now. In particular:
//   kCreate     a name appeared (creat, mkdir, link, symlink, mknod, or moved in from
//               outside the root); the sender ships whatever is there now.
//   kDelete     a name went away (unlink, rmdir, or moved out of the root).
//   kModify     content changed while the file may still be open (debounced).
//   kCloseWrite a file opened for writing was closed (flushes any pending kModify).
//   kAttrib     metadata changed (mode, owner, times, xattrs, link count).
//   kRename     `old_path` was renamed to `path` within the same root.
//   kRescan     anything at or below `path` may have changed without a precise event
//               (queue overflow, an unresolvable handle, merged namespace events):
//               compare it against what the standby acknowledged. Never a silent miss.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hasync::engine::watch {

enum class WatchKind : uint8_t {
  kCreate,
  kDelete,
  kModify,
  kCloseWrite,
  kAttrib,
  kRename,
  kRescan,
};

inline std::string_view WatchKindName(WatchKind kind) {
  switch (kind) {
    case WatchKind::kCreate:
      return "Create";
    case WatchKind::kDelete:
      return "Delete";
    case WatchKind::kModify:
      return "Modify";
    case WatchKind::kCloseWrite:
      return "CloseWrite";
    case WatchKind::kAttrib:
      return "Attrib";
    case WatchKind::kRename:
      return "Rename";
    case WatchKind::kRescan:
      return "Rescan";
  }
  return "Unknown";
}

struct WatchEvent {
  WatchKind kind = WatchKind::kCreate;
  uint32_t root = 0;     // index into the watcher's sync roots
  std::string path;      // relative to the root
  std::string old_path;  // kRename only: the previous name, relative to the same root
  bool is_dir = false;   // the object is a directory (as far as the kernel said)
  // Files only, where the kernel reports the object's file handle (FAN_REPORT_FID; a
  // debounced kModify carries its modifies' one): HandleCache::Key of the inode the
  // event was about.
  // A hint for the sender, which ships the name's current truth: when the name is gone
  // or names another inode now, the other names of *this* inode may need a look
  // (docs/REPLICATION.md, rule 4). Not part of an event's identity (operator==).
  std::string object = {};
  friend bool operator==(const WatchEvent& a, const WatchEvent& b) {
    return a.kind == b.kind && a.root == b.root && a.path == b.path && a.old_path == b.old_path &&
           a.is_dir == b.is_dir;
  }
};

// "Rename 0:a/b <- a/c dir" — for logs and test failure messages.
inline std::string ToString(const WatchEvent& e) {
  std::string out(WatchKindName(e.kind));
  out += ' ';
  out += std::to_string(e.root);
  out += ':';
  out += e.path;
  if (e.kind == WatchKind::kRename) {
    out += " <- ";
    out += e.old_path;
  }
  if (e.is_dir) out += " dir";
  return out;
}

}  // namespace hasync::engine::watch
