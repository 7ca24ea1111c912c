#include "tests/support/tree_compare.h"

#include <fcntl.h>
#include <sys/xattr.h>

#include <map>
#include <set>

#include "base/unique_fd.h"
#include "engine/scan/scanner.h"

namespace hasync::testing {

namespace {

struct Node {
  engine::FileInfo info;
  Hash128 hash;
  std::map<std::string, std::string> xattrs;
};

std::map<std::string, std::string> Xattrs(int fd) {
  std::map<std::string, std::string> out;
  char list[8192];
  ssize_t n = flistxattr(fd, list, sizeof list);
  for (ssize_t i = 0; i < n;) {
    std::string name(list + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    if (name.rfind("user.", 0) != 0 && name.rfind("trusted.", 0) != 0) continue;
    char value[65536];
    ssize_t len = fgetxattr(fd, name.c_str(), value, sizeof value);
    if (len >= 0) out[name] = std::string(value, static_cast<size_t>(len));
  }
  return out;
}

std::map<std::string, Node> Load(const std::string& dir, std::vector<std::string>& errors) {
  std::map<std::string, Node> nodes;
  UniqueFd root(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    errors.push_back(dir + ": cannot open");
    return nodes;
  }
  Status s = engine::ScanTree(
      root.get(), "", {},
      [&](const engine::FileInfo& info) {
        Node node{info, {}, {}};
        if (info.kind != engine::NodeKind::kSymlink) {
          auto fd = engine::OpenReadBeneath(root.get(), info.path);
          if (fd.ok()) {
            if (info.kind == engine::NodeKind::kFile) {
              auto h = engine::HashFd(fd->get());
              if (h.ok()) node.hash = *h;
            }
            node.xattrs = Xattrs(fd->get());
          }
        }
        nodes.emplace(info.path, std::move(node));
        return Status::Ok();
      },
      nullptr);
  if (!s.ok()) errors.push_back(dir + ": " + s.ToString());
  return nodes;
}

// Groups of names sharing an inode, as sets of paths (only groups of 2+).
std::set<std::set<std::string>> LinkGroups(const std::map<std::string, Node>& nodes) {
  std::map<std::pair<uint64_t, uint64_t>, std::set<std::string>> by_inode;
  for (const auto& [path, n] : nodes) {
    if (n.info.kind == engine::NodeKind::kFile && n.info.nlink > 1) {
      by_inode[{n.info.dev, n.info.ino}].insert(path);
    }
  }
  std::set<std::set<std::string>> out;
  for (auto& [k, names] : by_inode) {
    if (names.size() > 1) out.insert(names);
  }
  return out;
}

}  // namespace

std::string TreeDiff::ToString(size_t max_lines) const {
  std::string out;
  for (size_t i = 0; i < differences.size() && i < max_lines; ++i) out += differences[i] + "\n";
  if (differences.size() > max_lines) {
    out += "… and " + std::to_string(differences.size() - max_lines) + " more\n";
  }
  return out;
}

TreeDiff CompareTrees(const std::string& primary, const std::string& standby,
                      const CompareOptions& options) {
  TreeDiff diff;
  auto a = Load(primary, diff.differences);
  auto b = Load(standby, diff.differences);
  for (const auto& [path, na] : a) {
    auto it = b.find(path);
    if (it == b.end()) {
      diff.differences.push_back(path + ": missing on standby");
      continue;
    }
    const Node& nb = it->second;
    const auto& x = na.info;
    const auto& y = nb.info;
    auto add = [&, &p = path](const std::string& what) {  // clang 14: no binding captures
      diff.differences.push_back(p + ": " + what);
    };
    if (x.kind != y.kind) {
      add("kind differs");
      continue;
    }
    uint32_t expected_mode = x.mode;
    if (options.standby_strips_file_setid && x.kind == engine::NodeKind::kFile) {
      expected_mode &= ~uint32_t{06000};
    }
    if (x.kind != engine::NodeKind::kSymlink && expected_mode != y.mode) {
      add("mode " + std::to_string(expected_mode) + " vs " + std::to_string(y.mode));
    }
    if (x.uid != y.uid || x.gid != y.gid) add("owner differs");
    if (x.kind == engine::NodeKind::kFile) {
      if (x.size != y.size) add("size " + std::to_string(x.size) + " vs " + std::to_string(y.size));
      if (!(na.hash == nb.hash)) add("content differs");
    }
    if (x.kind != engine::NodeKind::kDirectory && x.mtime_ns != y.mtime_ns) {
      add("mtime " + std::to_string(x.mtime_ns) + " vs " + std::to_string(y.mtime_ns));
    }
    if (x.kind == engine::NodeKind::kSymlink && x.target != y.target) {
      add("symlink target '" + x.target + "' vs '" + y.target + "'");
    }
    if (na.xattrs != nb.xattrs) add("xattrs differ");
  }
  for (const auto& [path, nb] : b) {
    if (a.count(path) == 0) diff.differences.push_back(path + ": extra on standby");
  }
  if (LinkGroups(a) != LinkGroups(b)) diff.differences.push_back("hard-link groups differ");
  return diff;
}

}  // namespace hasync::testing
