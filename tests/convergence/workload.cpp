#include "tests/convergence/workload.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace hasync::convergence {

namespace {

// Small name pools so operations collide on purpose (over existing names, Slurm's names).
constexpr const char* kFileStems[] = {
    "job.1",      "job.2", "job.3", "job.4", "job.5", "job.6", "job_state", "node_state",
    "resv_state", "log",   "a",     "b",     "c",     "x.new", "x.old",     "spool.dat"};
constexpr const char* kDirStems[] = {"d1", "d2", "d3", "hash.0", "hash.1", "jobs"};
constexpr uint32_t kFileModes[] = {0600, 0644, 0640, 0664, 0700, 0755, 0444, 0400};
constexpr uint32_t kDirModes[] = {0755, 0700, 0750, 0775, 0711};
constexpr uint32_t kIds[] = {0, 1000, 4321, 65534};
constexpr const char* kXattrNames[] = {"user.slurm", "user.job", "user.a", "trusted.h"};
constexpr const char* kLinkTargets[] = {"job.1",         "../job_state", "d1/b",
                                        "/etc/hostname", "nowhere",      "../../x.old"};

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string Octal(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", mode);
  return buf;
}

size_t DepthOf(const std::string& rel) {
  if (rel.empty()) return 0;
  return static_cast<size_t>(std::count(rel.begin(), rel.end(), '/')) + 1;
}

std::string Parent(const std::string& rel) {
  size_t slash = rel.rfind('/');
  return slash == std::string::npos ? "" : rel.substr(0, slash);
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

}  // namespace

Workload::Workload(uint64_t seed, std::string root, std::string label)
    : rng_(seed), root_(std::move(root)), label_(std::move(label)) {}

Workload::~Workload() {
  for (auto& h : held_) close(h.fd);
}

uint64_t Workload::Below(uint64_t bound) { return bound == 0 ? 0 : rng_() % bound; }

std::string Workload::Abs(const std::string& rel) const {
  return rel.empty() ? root_ : root_ + "/" + rel;
}

void Workload::Note(const std::string& what, int rc) {
  std::string line = label_ + " #" + std::to_string(ops_) + " " + what;
  if (rc < 0) line += " -> " + std::string(std::strerror(errno));
  log_.push_back(std::move(line));
}

// A sorted walk of the root: what exists now, independent of readdir order.
void Workload::Snapshot() {
  nodes_.clear();
  nodes_.push_back(Node{"", 'd', 0, 0, 0, 0});
  std::vector<std::string> stack = {""};
  for (size_t guard = 0; !stack.empty() && guard < 100'000; ++guard) {
    std::string dir = stack.back();
    stack.pop_back();
    DIR* d = opendir(Abs(dir).c_str());
    if (d == nullptr) continue;
    std::vector<std::string> names;
    while (dirent* de = readdir(d)) {
      std::string n = de->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string rel = Join(dir, n);
      struct stat st {};
      if (lstat(Abs(rel).c_str(), &st) != 0) continue;
      Node node{rel, '?', st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size), DepthOf(rel)};
      if (S_ISREG(st.st_mode)) node.type = 'f';
      if (S_ISDIR(st.st_mode)) node.type = 'd';
      if (S_ISLNK(st.st_mode)) node.type = 'l';
      nodes_.push_back(node);
      if (node.type == 'd') stack.push_back(rel);
    }
  }
  // The stack walk visits directories in reverse; sort for a canonical order.
  std::sort(nodes_.begin(), nodes_.end(),
            [](const Node& a, const Node& b) { return a.path < b.path; });
}

const Workload::Node* Workload::Find(const std::string& path) const {
  for (const auto& n : nodes_) {
    if (n.path == path) return &n;
  }
  return nullptr;
}

std::string Workload::PickFile() {
  std::vector<const Node*> c;
  for (const auto& n : nodes_) {
    if (n.type == 'f') c.push_back(&n);
  }
  return c.empty() ? "" : c[Below(c.size())]->path;
}

std::string Workload::PickDir(bool include_root) {
  std::vector<const Node*> c;
  for (const auto& n : nodes_) {
    if (n.type == 'd' && (include_root || !n.path.empty())) c.push_back(&n);
  }
  return c.empty() ? "" : c[Below(c.size())]->path;
}

std::string Workload::PickNonDir() {
  std::vector<const Node*> c;
  for (const auto& n : nodes_) {
    if (n.type == 'f' || n.type == 'l') c.push_back(&n);
  }
  return c.empty() ? "" : c[Below(c.size())]->path;
}

std::string Workload::PickAnyNonRoot() {
  if (nodes_.size() <= 1) return "";
  return nodes_[1 + Below(nodes_.size() - 1)].path;
}

std::string Workload::NameIn(const std::string& dir, bool dir_name) {
  const char* stem =
      dir_name ? kDirStems[Below(std::size(kDirStems))] : kFileStems[Below(std::size(kFileStems))];
  return Join(dir, stem);
}

// A name that does not exist in `dir` (a pool name if one is free, else a counter).
std::string Workload::FreshNameIn(const std::string& dir, bool dir_name) {
  for (int i = 0; i < 6; ++i) {
    std::string n = NameIn(dir, dir_name);
    if (Find(n) == nullptr) return n;
  }
  return Join(dir, (dir_name ? "dir." : "n.") + std::to_string(++fresh_));
}

std::string Workload::OtherNameOf(const std::string& file) {
  const Node* f = Find(file);
  if (f == nullptr) return "";
  std::vector<const Node*> c;
  for (const auto& n : nodes_) {
    if (n.type == 'f' && n.dev == f->dev && n.ino == f->ino && n.path != file) c.push_back(&n);
  }
  return c.empty() ? "" : c[Below(c.size())]->path;
}

std::string Workload::Content(size_t max_len) {
  size_t len = Below(max_len + 1);
  std::string s = "op" + std::to_string(ops_) + ":";
  s.reserve(len + s.size());
  for (size_t i = 0; i < len; ++i) s += static_cast<char>('a' + rng_() % 26);
  return s;
}

void Workload::Pause() {
  uint64_t r = Below(100);
  uint64_t us = 0;
  if (r >= 75 && r < 95) us = Below(5'000);
  if (r >= 95) us = 10'000 + Below(50'000);
  if (us > 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
}

void Workload::Run(size_t count) {
  for (size_t i = 0; i < count; ++i) {
    RunOne();
    Pause();
  }
}

void Workload::CloseAll() {
  for (auto& h : held_) {
    Note("close fd" + std::to_string(h.id) + " (" + h.opened_as + ")", close(h.fd));
  }
  held_.clear();
}

void Workload::MoveTo(std::string root, std::string label) {
  CloseAll();
  root_ = std::move(root);
  label_ = std::move(label);
}

void Workload::RunOne() {
  ++ops_;
  Snapshot();
  // Weights; a full tree turns creations into removals.
  struct Choice {
    void (Workload::*op)();
    uint32_t weight;
    const char* name;
  };
  const bool full = nodes_.size() >= kMaxEntries;
  const Choice table[] = {
      {&Workload::OpCreate, full ? 0u : 10u, "Create"},
      {&Workload::OpOverwrite, 7, "Overwrite"},
      {&Workload::OpAppend, 7, "Append"},
      {&Workload::OpHoldOpen, 5, "HoldOpen"},
      {&Workload::OpHeldWrite, 8, "HeldWrite"},
      {&Workload::OpHeldSparse, 2, "HeldSparse"},
      {&Workload::OpHeldTruncate, 3, "HeldTruncate"},
      {&Workload::OpHeldFsync, 2, "HeldFsync"},
      {&Workload::OpHeldClose, 5, "HeldClose"},
      {&Workload::OpTruncate, 3, "Truncate"},
      {&Workload::OpSparseCreate, full ? 0u : 2u, "SparseCreate"},
      {&Workload::OpUnlink, full ? 16u : 6u, "Unlink"},
      {&Workload::OpUnlinkHeld, 3, "UnlinkHeld"},
      {&Workload::OpRenameFile, 6, "RenameFile"},
      {&Workload::OpRenameOverHeld, 3, "RenameOverHeld"},
      {&Workload::OpRenameDir, 3, "RenameDir"},
      {&Workload::OpLink, full ? 0u : 6u, "Link"},
      {&Workload::OpChmod, 5, "Chmod"},
      {&Workload::OpChown, 3, "Chown"},
      {&Workload::OpUtimes, 4, "Utimes"},
      {&Workload::OpSetXattr, 4, "SetXattr"},
      {&Workload::OpRemoveXattr, 3, "RemoveXattr"},
      {&Workload::OpSymlink, full ? 0u : 3u, "Symlink"},
      {&Workload::OpMkdir, full ? 0u : 3u, "Mkdir"},
      {&Workload::OpRmdir, full ? 8u : 3u, "Rmdir"},
      {&Workload::OpTmpfileLinkat, full ? 0u : 2u, "TmpfileLinkat"},
      {&Workload::OpSlurmSave, 4, "SlurmSave"},
      {&Workload::OpAppendUnlinkWhileOpen, 3, "AppendUnlinkWhileOpen"},
      {&Workload::OpAppendThroughLinkThenUnlink, 3, "AppendThroughLinkThenUnlink"},
      {&Workload::OpChmodThroughTwoLinks, 3, "ChmodThroughTwoLinks"},
  };
  uint64_t total = 0;
  for (const auto& c : table) total += c.weight;
  uint64_t r = Below(total);
  for (const auto& c : table) {
    if (r < c.weight) {
      const size_t lines = log_.size();
      (this->*c.op)();
      // Every drawn operation is a line, also one that found nothing to act on.
      if (log_.size() == lines) Note(std::string("(") + c.name + ": nothing to act on)", 0);
      return;
    }
    r -= c.weight;
  }
}

// ---- files by path -------------------------------------------------------------------

void Workload::OpCreate() {
  std::string dir = PickDir(true);
  std::string path = NameIn(dir, false);
  if (Find(path) != nullptr && Find(path)->type == 'd') path = FreshNameIn(dir, false);
  std::string c = Content(Chance(20) ? 8192 : 200);
  uint32_t mode = kFileModes[Below(std::size(kFileModes))];
  int fd = open(Abs(path).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    Note("create " + path, -1);
    return;
  }
  ssize_t n = write(fd, c.data(), c.size());
  close(fd);
  Note("create " + path + " mode " + Octal(mode) + " " + std::to_string(c.size()) + " bytes",
       n < 0 ? -1 : 0);
}

void Workload::OpOverwrite() {
  std::string path = PickFile();
  if (path.empty()) return OpCreate();
  std::string c = Content(Chance(20) ? 8192 : 200);
  int fd = open(Abs(path).c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    Note("overwrite " + path, -1);
    return;
  }
  ssize_t n = write(fd, c.data(), c.size());
  close(fd);
  Note("overwrite " + path + " " + std::to_string(c.size()) + " bytes", n < 0 ? -1 : 0);
}

void Workload::OpAppend() {
  std::string path = PickFile();
  if (path.empty()) return OpCreate();
  std::string c = Content(300);
  int fd = open(Abs(path).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    Note("append " + path, -1);
    return;
  }
  ssize_t n = write(fd, c.data(), c.size());
  close(fd);
  Note("append " + path + " " + std::to_string(c.size()) + " bytes", n < 0 ? -1 : 0);
}

void Workload::OpTruncate() {
  std::string path = PickFile();
  if (path.empty()) return OpCreate();
  const Node* f = Find(path);
  off_t size = static_cast<off_t>(Chance(50) ? Below(f->size + 1) : f->size + Below(200'000));
  Note("truncate " + path + " to " + std::to_string(size), truncate(Abs(path).c_str(), size));
}

void Workload::OpSparseCreate() {
  std::string path = FreshNameIn(PickDir(true), false);
  int fd = open(Abs(path).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    Note("sparse-create " + path, -1);
    return;
  }
  std::string head = Content(100), tail = Content(100);
  off_t at = static_cast<off_t>((1 + Below(4)) << 20) + static_cast<off_t>(Below(4096));
  ssize_t a = write(fd, head.data(), head.size());
  ssize_t b = pwrite(fd, tail.data(), tail.size(), at);
  close(fd);
  Note("sparse-create " + path + " head " + std::to_string(head.size()) + " bytes, " +
           std::to_string(tail.size()) + " bytes at " + std::to_string(at),
       a < 0 || b < 0 ? -1 : 0);
}

void Workload::OpUnlink() {
  std::string path = PickNonDir();
  if (path.empty()) return;
  Note("unlink " + path, unlink(Abs(path).c_str()));
}

// ---- held descriptors ----------------------------------------------------------------

void Workload::OpHoldOpen() {
  if (held_.size() >= kMaxHeld) return OpHeldClose();
  std::string path;
  bool create = nodes_.size() < kMaxEntries && Chance(40);
  if (create) {
    path = FreshNameIn(PickDir(true), false);
  } else {
    path = PickFile();
    if (path.empty()) return;
  }
  bool append = Chance(60);
  int flags =
      O_CLOEXEC | O_NOFOLLOW | (append ? O_WRONLY | O_APPEND : O_RDWR) | (create ? O_CREAT : 0);
  int fd = open(Abs(path).c_str(), flags, 0640);
  int id = next_held_id_++;
  Note("open fd" + std::to_string(id) + " " + path + (append ? " O_APPEND" : " O_RDWR") +
           (create ? " O_CREAT" : ""),
       fd);
  if (fd >= 0) held_.push_back(Held{fd, path, id});
}

void Workload::OpHeldWrite() {
  if (held_.empty()) return OpHoldOpen();
  Held& h = held_[Below(held_.size())];
  std::string c = Content(Chance(10) ? 20'000 : 400);
  Note("write fd" + std::to_string(h.id) + " (" + h.opened_as + ") " + std::to_string(c.size()) +
           " bytes",
       write(h.fd, c.data(), c.size()) < 0 ? -1 : 0);
}

void Workload::OpHeldSparse() {
  if (held_.empty()) return OpHoldOpen();
  Held& h = held_[Below(held_.size())];
  std::string c = Content(100);
  off_t at = static_cast<off_t>((1 + Below(3)) << 20) + static_cast<off_t>(Below(8192));
  // On an O_APPEND descriptor pwrite appends (Linux): still a write through it.
  Note("pwrite fd" + std::to_string(h.id) + " (" + h.opened_as + ") " + std::to_string(c.size()) +
           " bytes at " + std::to_string(at),
       pwrite(h.fd, c.data(), c.size(), at) < 0 ? -1 : 0);
}

void Workload::OpHeldTruncate() {
  if (held_.empty()) return OpHoldOpen();
  Held& h = held_[Below(held_.size())];
  struct stat st {};
  fstat(h.fd, &st);
  off_t size = Chance(50) ? static_cast<off_t>(Below(static_cast<uint64_t>(st.st_size) + 1))
                          : st.st_size + static_cast<off_t>(Below(300'000));
  Note("ftruncate fd" + std::to_string(h.id) + " (" + h.opened_as + ") to " + std::to_string(size),
       ftruncate(h.fd, size));
}

void Workload::OpHeldFsync() {
  if (held_.empty()) return OpHoldOpen();
  Held& h = held_[Below(held_.size())];
  Note("fsync fd" + std::to_string(h.id) + " (" + h.opened_as + ")", fsync(h.fd));
}

void Workload::OpHeldClose() {
  if (held_.empty()) return OpHoldOpen();
  size_t i = Below(held_.size());
  Note("close fd" + std::to_string(held_[i].id) + " (" + held_[i].opened_as + ")",
       close(held_[i].fd));
  held_.erase(held_.begin() + static_cast<long>(i));
}

void Workload::OpUnlinkHeld() {
  if (held_.empty()) return OpUnlink();
  Held& h = held_[Below(held_.size())];
  // Only if the name still is that descriptor's file (it may have been renamed over).
  struct stat a {
  }, b{};
  if (fstat(h.fd, &a) != 0 || lstat(Abs(h.opened_as).c_str(), &b) != 0 || a.st_ino != b.st_ino ||
      a.st_dev != b.st_dev) {
    return OpUnlink();
  }
  Note("unlink " + h.opened_as + " (open as fd" + std::to_string(h.id) + ")",
       unlink(Abs(h.opened_as).c_str()));
}

// ---- renames and links ---------------------------------------------------------------

void Workload::OpRenameFile() {
  std::string from = PickNonDir();
  if (from.empty()) return;
  std::string to;
  if (Chance(50)) {
    to = PickNonDir();  // over an existing name (maybe itself: a no-op rename)
  } else {
    to = FreshNameIn(PickDir(true), false);
  }
  if (to.empty()) to = FreshNameIn(PickDir(true), false);
  Note("rename " + from + " -> " + to, rename(Abs(from).c_str(), Abs(to).c_str()));
}

void Workload::OpRenameOverHeld() {
  if (held_.empty()) return OpRenameFile();
  Held& h = held_[Below(held_.size())];
  if (Find(h.opened_as) == nullptr) return OpRenameFile();
  std::string from = PickFile();
  if (from.empty() || from == h.opened_as) return;
  Note("rename " + from + " -> " + h.opened_as + " (over fd" + std::to_string(h.id) + ")",
       rename(Abs(from).c_str(), Abs(h.opened_as).c_str()));
}

void Workload::OpRenameDir() {
  std::string dir = PickDir(false);
  if (dir.empty()) return OpMkdir();
  // A destination parent that is not the directory itself nor inside it, across levels.
  std::vector<std::string> parents;
  size_t deepest = 0;
  for (const auto& n : nodes_) {
    if (n.type != 'd' || n.path == dir || n.path.rfind(dir + "/", 0) == 0) continue;
    parents.push_back(n.path);
  }
  for (const auto& n : nodes_) {
    if (n.path.rfind(dir + "/", 0) == 0) deepest = std::max(deepest, n.depth - DepthOf(dir));
  }
  if (parents.empty()) return;
  std::string parent = parents[Below(parents.size())];
  if (DepthOf(parent) + 1 + deepest > kMaxDepth) parent = "";
  std::string to = FreshNameIn(parent, true);
  Note("rename dir " + dir + " -> " + to, rename(Abs(dir).c_str(), Abs(to).c_str()));
}

void Workload::OpLink() {
  std::string from = PickFile();
  if (from.empty()) return OpCreate();
  std::string to = FreshNameIn(PickDir(true), false);
  Note("link " + from + " " + to, link(Abs(from).c_str(), Abs(to).c_str()));
}

// ---- metadata ------------------------------------------------------------------------

void Workload::OpChmod() {
  std::string path = PickAnyNonRoot();
  if (path.empty()) return;
  const Node* n = Find(path);
  if (n->type == 'l') return OpChown();  // symlinks have no mode of their own
  uint32_t mode = n->type == 'd' ? kDirModes[Below(std::size(kDirModes))]
                                 : kFileModes[Below(std::size(kFileModes))];
  Note("chmod " + Octal(mode) + " " + path, chmod(Abs(path).c_str(), mode));
}

void Workload::OpChown() {
  std::string path = PickAnyNonRoot();
  if (path.empty()) return;
  uint32_t uid = kIds[Below(std::size(kIds))], gid = kIds[Below(std::size(kIds))];
  Note("lchown " + std::to_string(uid) + ":" + std::to_string(gid) + " " + path,
       lchown(Abs(path).c_str(), uid, gid));
}

void Workload::OpUtimes() {
  std::string path = PickNonDir();
  if (path.empty()) return;
  timespec ts[2];
  ts[0].tv_sec = 0;
  ts[0].tv_nsec = UTIME_OMIT;
  ts[1].tv_sec = static_cast<time_t>(1'600'000'000 + Below(200'000'000));
  ts[1].tv_nsec = static_cast<long>(Below(1'000'000'000));
  Note("utimensat " + path + " mtime " + std::to_string(ts[1].tv_sec) + "." +
           std::to_string(ts[1].tv_nsec),
       utimensat(AT_FDCWD, Abs(path).c_str(), ts, AT_SYMLINK_NOFOLLOW));
}

void Workload::OpSetXattr() {
  std::string path = PickAnyNonRoot();
  if (path.empty() || Find(path)->type == 'l') return;
  const char* name = kXattrNames[Below(std::size(kXattrNames))];
  std::string value = Content(40);
  Note(std::string("setxattr ") + path + " " + name + "=" + Quote(value),
       setxattr(Abs(path).c_str(), name, value.data(), value.size(), 0));
}

void Workload::OpRemoveXattr() {
  std::string path = PickAnyNonRoot();
  if (path.empty() || Find(path)->type == 'l') return;
  char list[4096];
  ssize_t n = listxattr(Abs(path).c_str(), list, sizeof list);
  std::vector<std::string> names;
  for (ssize_t i = 0; i < n;) {
    std::string x(list + i);
    i += static_cast<ssize_t>(x.size()) + 1;
    if (x.rfind("user.", 0) == 0 || x.rfind("trusted.", 0) == 0) names.push_back(x);
  }
  std::sort(names.begin(), names.end());
  if (names.empty()) return OpSetXattr();
  std::string name = names[Below(names.size())];
  Note("removexattr " + path + " " + name, removexattr(Abs(path).c_str(), name.c_str()));
}

// ---- symlinks and directories --------------------------------------------------------

void Workload::OpSymlink() {
  std::string dir = PickDir(true);
  std::string target = kLinkTargets[Below(std::size(kLinkTargets))];
  if (Chance(40)) {
    // Retarget an existing symlink the atomic way: a temp symlink renamed over it.
    std::vector<std::string> links;
    for (const auto& n : nodes_) {
      if (n.type == 'l') links.push_back(n.path);
    }
    if (!links.empty()) {
      std::string over = links[Below(links.size())];
      std::string tmp = FreshNameIn(Parent(over), false);
      Note("symlink " + Quote(target) + " " + tmp, symlink(target.c_str(), Abs(tmp).c_str()));
      Step("rename " + tmp + " -> " + over, rename(Abs(tmp).c_str(), Abs(over).c_str()));
      return;
    }
  }
  std::string path = FreshNameIn(dir, false);
  Note("symlink " + Quote(target) + " " + path, symlink(target.c_str(), Abs(path).c_str()));
}

void Workload::OpMkdir() {
  std::vector<std::string> dirs;
  for (const auto& n : nodes_) {
    if (n.type == 'd' && n.depth < kMaxDepth) dirs.push_back(n.path);
  }
  std::string parent = dirs.empty() ? "" : dirs[Below(dirs.size())];
  std::string path = FreshNameIn(parent, true);
  uint32_t mode = kDirModes[Below(std::size(kDirModes))];
  Note("mkdir " + path + " " + Octal(mode), mkdir(Abs(path).c_str(), mode));
}

void Workload::OpRmdir() {
  std::vector<std::string> empty;
  for (size_t i = 1; i < nodes_.size(); ++i) {
    if (nodes_[i].type != 'd') continue;
    // Not just the next entry: "d1.new" sorts between "d1" and "d1/x".
    bool has_child = false;
    for (size_t j = i + 1; j < nodes_.size() && !has_child; ++j) {
      has_child = nodes_[j].path.rfind(nodes_[i].path + "/", 0) == 0;
    }
    if (!has_child) empty.push_back(nodes_[i].path);
  }
  if (empty.empty()) {
    // Empty one: unlink the files of a directory first, as `rm -r` would.
    std::string dir = PickDir(false);
    if (dir.empty()) return;
    for (const auto& n : nodes_) {
      if (n.type != 'd' && n.path.rfind(dir + "/", 0) == 0 && Parent(n.path) == dir) {
        Note("unlink " + n.path, unlink(Abs(n.path).c_str()));
      }
    }
    return;
  }
  std::string dir = empty[Below(empty.size())];
  Note("rmdir " + dir, rmdir(Abs(dir).c_str()));
}

void Workload::OpTmpfileLinkat() {
  std::string dir = PickDir(true);
  std::string path = FreshNameIn(dir, false);
  int fd = open(Abs(dir).c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  Note("open O_TMPFILE in " + (dir.empty() ? std::string(".") : dir), fd);
  if (fd < 0) return;
  std::string c = Content(500);
  Step("write " + std::to_string(c.size()) + " bytes", write(fd, c.data(), c.size()) < 0 ? -1 : 0);
  uint32_t mode = kFileModes[Below(std::size(kFileModes))];
  Step("fchmod " + Octal(mode), fchmod(fd, mode));
  Step("linkat AT_EMPTY_PATH -> " + path,
       linkat(fd, "", AT_FDCWD, Abs(path).c_str(), AT_EMPTY_PATH));
  close(fd);
}

// Slurm's StateSaveLocation dance, hard links rather than rename.
void Workload::OpSlurmSave() {
  std::string dir = PickDir(true);
  const char* names[] = {"job_state", "node_state", "resv_state", "trigger_state"};
  std::string x = Join(dir, names[Below(std::size(names))]);
  const Node* existing = Find(x);
  if (existing != nullptr && existing->type == 'd') return;
  std::string xnew = x + ".new", xold = x + ".old";
  const Node* n_new = Find(xnew);
  const Node* n_old = Find(xold);
  if ((n_new != nullptr && n_new->type == 'd') || (n_old != nullptr && n_old->type == 'd')) return;
  int fd = open(Abs(xnew).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  Note("slurm-save " + x + ": open " + xnew, fd);
  if (fd < 0) return;
  std::string c = Content(Chance(20) ? 16'384 : 600);
  Step("write " + std::to_string(c.size()) + " bytes", write(fd, c.data(), c.size()) < 0 ? -1 : 0);
  Step("fsync", fsync(fd));
  close(fd);
  Step("unlink " + xold, unlink(Abs(xold).c_str()));
  if (existing != nullptr) Step("link " + x + " " + xold, link(Abs(x).c_str(), Abs(xold).c_str()));
  Step("unlink " + x, unlink(Abs(x).c_str()));
  Step("link " + xnew + " " + x, link(Abs(xnew).c_str(), Abs(x).c_str()));
  Step("unlink " + xnew, unlink(Abs(xnew).c_str()));
}

// ---- issue 16's known divergences as short sequences ---------------------------------

// Case 1: open O_APPEND, write, flush, unlink, close, 0–50 ms between the steps.
void Workload::OpAppendUnlinkWhileOpen() {
  std::string path = Chance(50) ? PickFile() : "";
  if (path.empty()) path = FreshNameIn(PickDir(true), false);
  uint64_t d1 = Below(50), d2 = Below(50), d3 = Below(50);
  int fd = open(Abs(path).c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  Note("open " + path + " O_APPEND|O_CREAT (then write, fsync, unlink, close; pauses " +
           std::to_string(d1) + "/" + std::to_string(d2) + "/" + std::to_string(d3) + " ms)",
       fd);
  if (fd < 0) return;
  std::string c = Content(300);
  Step("write " + std::to_string(c.size()) + " bytes", write(fd, c.data(), c.size()) < 0 ? -1 : 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(d1));
  Step("fsync", fsync(fd));
  std::this_thread::sleep_for(std::chrono::milliseconds(d2));
  Step("unlink " + path, unlink(Abs(path).c_str()));
  std::this_thread::sleep_for(std::chrono::milliseconds(d3));
  Step("close", close(fd));
}

// Case 2: content appended through hard link `a` of `b`, then `a` unlinked at once.
void Workload::OpAppendThroughLinkThenUnlink() {
  std::string b = PickFile();
  if (b.empty()) return OpCreate();
  std::string a = OtherNameOf(b);
  if (a.empty() || Chance(30)) {
    a = FreshNameIn(PickDir(true), false);
    Note("link " + b + " " + a + " (then append through it and unlink it)",
         link(Abs(b).c_str(), Abs(a).c_str()));
    uint64_t wait_ms = Below(60);
    if (wait_ms > 20) std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
  } else {
    Note("append through " + a + " (a link of " + b + ") and unlink it", 0);
  }
  std::string c = Content(300);
  int fd = open(Abs(a).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
  Step("open " + a + " O_APPEND", fd);
  if (fd < 0) return;
  Step("write " + std::to_string(c.size()) + " bytes", write(fd, c.data(), c.size()) < 0 ? -1 : 0);
  Step("close", close(fd));
  Step("unlink " + a, unlink(Abs(a).c_str()));
}

// Case 3: chmod through one link, then another mode through a second link.
void Workload::OpChmodThroughTwoLinks() {
  std::string b = PickFile();
  if (b.empty()) return OpCreate();
  std::string a = OtherNameOf(b);
  if (a.empty()) {
    a = FreshNameIn(PickDir(true), false);
    Note("link " + b + " " + a + " (then chmod through both)",
         link(Abs(b).c_str(), Abs(a).c_str()));
    uint64_t wait_ms = Below(100);
    if (wait_ms > 30) std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
  } else {
    Note("chmod through " + a + " and " + b + " (one inode)", 0);
  }
  uint32_t m1 = kFileModes[Below(std::size(kFileModes))];
  uint32_t m2 = kFileModes[Below(std::size(kFileModes))];
  if (m2 == m1) m2 = m1 == 0644 ? 0600 : 0644;
  Step("chmod " + Octal(m1) + " " + a, chmod(Abs(a).c_str(), m1));
  uint64_t gap_ms = Below(30);
  if (gap_ms > 10) std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
  Step("chmod " + Octal(m2) + " " + b, chmod(Abs(b).c_str(), m2));
}

}  // namespace hasync::convergence
