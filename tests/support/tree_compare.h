// Test support: compares two directory trees byte for byte and by metadata, the way the
// integration tests judge replication (content, kind, mode, owner, mtime of files and
// symlinks, symlink targets, user./trusted. xattrs, and which names share an inode).
// Directory mtimes are not compared: they change with every entry created in them.
#pragma once

#include <string>
#include <vector>

namespace hasync::testing {

struct TreeDiff {
  std::vector<std::string> differences;  // one line each: "path: what differs"
  bool empty() const { return differences.empty(); }
  std::string ToString(size_t max_lines = 20) const;
};

// Differences the caller expects by policy. The default expects none: both trees equal.
struct CompareOptions {
  // The standby strips setuid/setgid from regular files (engine/apply/policy.h, the
  // default without allow_privileged): compare a file's mode with those bits of the
  // primary's mode cleared. Directories are compared as they are.
  bool standby_strips_file_setid = false;
};

TreeDiff CompareTrees(const std::string& primary, const std::string& standby,
                      const CompareOptions& options = {});

}  // namespace hasync::testing
