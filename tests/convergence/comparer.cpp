#include "tests/convergence/comparer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace hasync::convergence {

namespace {

constexpr const char* kTempPrefix = ".hasync-tmp.";
constexpr size_t kHeadBytes = 24;
constexpr size_t kMaxDepth = 64;           // far beyond what the generator makes
constexpr size_t kMaxEntries = 1'000'000;  // a runaway tree is reported, not walked
constexpr uint64_t kSparseSlackBytes = 1 << 20;

std::string ErrnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

bool ReplicatedXattr(const std::string& name) {
  return name.rfind("user.", 0) == 0 || name.rfind("trusted.", 0) == 0 ||
         name == "system.posix_acl_access" || name == "system.posix_acl_default";
}

std::map<std::string, std::string> ReadXattrs(int fd, std::string& error) {
  std::map<std::string, std::string> out;
  std::vector<char> list(64 * 1024);
  ssize_t n = flistxattr(fd, list.data(), list.size());
  if (n < 0) {
    error = ErrnoText("flistxattr");
    return out;
  }
  std::vector<char> value(64 * 1024);
  for (ssize_t i = 0; i < n;) {
    std::string name(list.data() + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    if (!ReplicatedXattr(name)) continue;
    ssize_t len = fgetxattr(fd, name.c_str(), value.data(), value.size());
    if (len < 0) {
      // Removed between list and get: the caller polls again.
      if (errno != ENODATA) error = ErrnoText("fgetxattr");
      continue;
    }
    out[name] = std::string(value.data(), static_cast<size_t>(len));
  }
  return out;
}

void ReadContent(int fd, Entry& e) {
  uint64_t h = 1469598103934665603ull;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      e.error = ErrnoText("read");
      return;
    }
    if (n == 0) break;
    if (e.head.size() < kHeadBytes) {
      e.head.append(buf, std::min(static_cast<size_t>(n), kHeadBytes - e.head.size()));
    }
    for (ssize_t i = 0; i < n; ++i) {
      h ^= static_cast<unsigned char>(buf[i]);
      h *= 1099511628211ull;
    }
  }
  e.content_hash = h;
}

void Walk(int dirfd, const std::string& prefix, size_t depth, Tree& tree) {
  if (depth > kMaxDepth) {
    tree.errors.push_back(prefix + ": deeper than " + std::to_string(kMaxDepth));
    return;
  }
  int listfd = dup(dirfd);
  if (listfd < 0) {
    tree.errors.push_back(prefix + ": " + ErrnoText("dup"));
    return;
  }
  DIR* d = fdopendir(listfd);
  if (d == nullptr) {
    close(listfd);
    tree.errors.push_back(prefix + ": " + ErrnoText("fdopendir"));
    return;
  }
  std::vector<std::string> names;
  while (dirent* de = readdir(d)) {
    std::string n = de->d_name;
    if (n == "." || n == "..") continue;
    if (n.rfind(kTempPrefix, 0) == 0) continue;
    names.push_back(std::move(n));
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    if (tree.entries.size() >= kMaxEntries) {
      tree.errors.push_back("more than " + std::to_string(kMaxEntries) + " entries");
      return;
    }
    const std::string path = prefix.empty() ? name : prefix + "/" + name;
    struct stat st {};
    if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      // Gone between readdir and stat: the tree is moving; the caller polls again.
      tree.errors.push_back(path + ": " + ErrnoText("fstatat"));
      continue;
    }
    Entry e;
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    e.dev = st.st_dev;
    e.ino = st.st_ino;
    e.nlink = st.st_nlink;
    if (S_ISREG(st.st_mode)) {
      e.type = 'f';
      e.size = static_cast<uint64_t>(st.st_size);
      e.allocated = static_cast<uint64_t>(st.st_blocks) * 512;
      int fd = openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
      if (fd < 0) {
        e.error = ErrnoText("openat");
      } else {
        struct stat again {};
        if (fstat(fd, &again) != 0 || again.st_ino != st.st_ino) {
          e.error = "replaced while being read";
        } else {
          ReadContent(fd, e);
          e.xattrs = ReadXattrs(fd, e.error);
        }
        close(fd);
      }
      tree.entries.emplace(path, std::move(e));
    } else if (S_ISDIR(st.st_mode)) {
      e.type = 'd';
      int fd = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        e.error = ErrnoText("openat dir");
        tree.entries.emplace(path, std::move(e));
        continue;
      }
      e.xattrs = ReadXattrs(fd, e.error);
      tree.entries.emplace(path, std::move(e));
      Walk(fd, path, depth + 1, tree);
      close(fd);
    } else if (S_ISLNK(st.st_mode)) {
      e.type = 'l';
      e.mode = 0;
      std::vector<char> buf(PATH_MAX + 1);
      ssize_t n = readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
      if (n < 0) {
        e.error = ErrnoText("readlinkat");
      } else {
        e.target.assign(buf.data(), static_cast<size_t>(n));
      }
      tree.entries.emplace(path, std::move(e));
    } else {
      e.type = '?';
      tree.entries.emplace(path, std::move(e));
    }
  }
}

std::string Printable(const std::string& s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

std::string Octal(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", mode);
  return buf;
}

const char* TypeName(char t) {
  switch (t) {
    case 'f':
      return "file";
    case 'd':
      return "directory";
    case 'l':
      return "symlink";
    default:
      return "special file";
  }
}

// path -> sorted names (inside the tree) sharing its inode, for regular files.
std::map<std::string, std::vector<std::string>> LinkSets(const Tree& t) {
  std::map<std::pair<uint64_t, uint64_t>, std::vector<std::string>> by_inode;
  for (const auto& [path, e] : t.entries) {
    if (e.type == 'f') by_inode[{e.dev, e.ino}].push_back(path);
  }
  std::map<std::string, std::vector<std::string>> out;
  for (auto& [key, names] : by_inode) {
    std::sort(names.begin(), names.end());
    for (const auto& n : names) out[n] = names;
  }
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + v[i];
  return out + "}";
}

}  // namespace

Tree Load(const std::string& root) {
  Tree tree;
  int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    tree.errors.push_back(root + ": " + ErrnoText("open"));
    return tree;
  }
  Walk(fd, "", 0, tree);
  close(fd);
  return tree;
}

std::vector<std::string> Compare(const Tree& a, const Tree& b) {
  std::vector<std::string> out;
  for (const auto& e : a.errors) out.push_back("primary walk: " + e);
  for (const auto& e : b.errors) out.push_back("standby walk: " + e);
  for (const auto& [path, x] : a.entries) {
    auto it = b.entries.find(path);
    if (it == b.entries.end()) {
      out.push_back(path + ": " + TypeName(x.type) + " missing on the standby");
      continue;
    }
    const Entry& y = it->second;
    auto add = [&, &p = path](const std::string& what) { out.push_back(p + ": " + what); };
    if (!x.error.empty()) add("primary: " + x.error);
    if (!y.error.empty()) add("standby: " + y.error);
    if (x.type != y.type) {
      add(std::string("type ") + TypeName(x.type) + " vs " + TypeName(y.type));
      continue;
    }
    if (x.type == '?') add("special file on the primary (not replicated by design)");
    if (x.type != 'l' && x.mode != y.mode) add("mode " + Octal(x.mode) + " vs " + Octal(y.mode));
    if (x.uid != y.uid || x.gid != y.gid) {
      add("owner " + std::to_string(x.uid) + ":" + std::to_string(x.gid) + " vs " +
          std::to_string(y.uid) + ":" + std::to_string(y.gid));
    }
    if (x.type == 'f') {
      if (x.size != y.size) add("size " + std::to_string(x.size) + " vs " + std::to_string(y.size));
      if (x.content_hash != y.content_hash) {
        add("content differs (starts '" + Printable(x.head) + "' vs '" + Printable(y.head) + "')");
      }
      // Holes: a file the primary keeps sparse must not be filled in on the standby.
      if (x.allocated + kSparseSlackBytes < x.size &&
          y.allocated > x.allocated + kSparseSlackBytes) {
        add("holes lost: " + std::to_string(x.allocated) + " vs " + std::to_string(y.allocated) +
            " bytes allocated of " + std::to_string(x.size));
      }
    }
    if (x.type != 'd' && x.mtime_ns != y.mtime_ns) {
      add("mtime_ns " + std::to_string(x.mtime_ns) + " vs " + std::to_string(y.mtime_ns));
    }
    if (x.type == 'l' && x.target != y.target) {
      add("symlink target '" + Printable(x.target) + "' vs '" + Printable(y.target) + "'");
    }
    if (x.xattrs != y.xattrs) {
      for (const auto& [name, value] : x.xattrs) {
        auto yv = y.xattrs.find(name);
        if (yv == y.xattrs.end()) {
          add("xattr " + name + " missing on the standby");
        } else if (yv->second != value) {
          add("xattr " + name + " = '" + Printable(value) + "' vs '" + Printable(yv->second) + "'");
        }
      }
      for (const auto& [name, value] : y.xattrs) {
        if (x.xattrs.count(name) == 0) add("xattr " + name + " extra on the standby");
      }
    }
  }
  for (const auto& [path, y] : b.entries) {
    if (a.entries.count(path) == 0)
      out.push_back(path + ": " + TypeName(y.type) + " extra on the standby");
  }
  // Hard-link partition, counted inside the roots.
  auto la = LinkSets(a), lb = LinkSets(b);
  for (const auto& [path, names] : la) {
    auto it = lb.find(path);
    if (it == lb.end()) continue;  // reported above (missing or another type)
    if (it->second != names) {
      out.push_back(path + ": names sharing its inode " + Join(names) + " (nlink " +
                    std::to_string(names.size()) + ") vs " + Join(it->second) + " (nlink " +
                    std::to_string(it->second.size()) + ")");
    }
  }
  return out;
}

std::vector<std::string> CompareRoots(const std::string& a, const std::string& b) {
  return Compare(Load(a), Load(b));
}

std::map<std::pair<uint64_t, uint64_t>, std::vector<std::string>> FileInodes(
    const std::string& dir) {
  std::map<std::pair<uint64_t, uint64_t>, std::vector<std::string>> out;
  Tree t = Load(dir);
  for (const auto& [path, e] : t.entries) {
    if (e.type == 'f') out[{e.dev, e.ino}].push_back(path);
  }
  return out;
}

}  // namespace hasync::convergence
