#include "engine/sync/verify.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <span>
#include <unordered_map>

#include <fmt/format.h>

#include "base/hash.h"
#include "engine/apply/policy.h"
#include "engine/sync/xattrs.h"
#include "wire/limits.h"

namespace hasync::engine {

namespace {

wire::EntryKind ToWireKind(NodeKind kind) {
  switch (kind) {
    case NodeKind::kFile:
      return wire::EntryKind::kFile;
    case NodeKind::kDirectory:
      return wire::EntryKind::kDirectory;
    case NodeKind::kSymlink:
      return wire::EntryKind::kSymlink;
  }
  return wire::EntryKind::kFile;
}

std::string_view KindName(wire::EntryKind kind) {
  switch (kind) {
    case wire::EntryKind::kFile:
      return "file";
    case wire::EntryKind::kDirectory:
      return "directory";
    case wire::EntryKind::kSymlink:
      return "symlink";
  }
  return "unknown";
}

// What the standby should hold for the primary's entry: the mode after its policy.
uint32_t ExpectedMode(const wire::ManifestEntry& p) {
  if (p.kind == wire::EntryKind::kSymlink) return 0;
  auto d = apply::DecideMode(p.mode & 07777, p.kind == wire::EntryKind::kDirectory, false);
  return d.ok() ? d->mode : p.mode;
}

// "" when the standby's entry mirrors the primary's; otherwise each difference, joined.
std::string Describe(const wire::ManifestEntry& p, const wire::ManifestEntry& s) {
  if (p.kind != s.kind) {
    return fmt::format("kind: {} on the primary, {} on the standby", KindName(p.kind),
                       KindName(s.kind));
  }
  std::vector<std::string> what;
  if (p.kind != wire::EntryKind::kDirectory && (p.size != s.size || p.hash != s.hash)) {
    what.push_back(p.size != s.size ? fmt::format("content: size {} vs {}", p.size, s.size)
                                    : std::string("content: same size, different bytes"));
  }
  const uint32_t mode = ExpectedMode(p);
  if (p.kind != wire::EntryKind::kSymlink && mode != s.mode) {
    what.push_back(fmt::format("mode {:o} vs {:o}", mode, s.mode));
  }
  if (p.uid != s.uid || p.gid != s.gid) {
    what.push_back(fmt::format("owner {}:{} vs {}:{}", p.uid, p.gid, s.uid, s.gid));
  }
  // Directory mtimes change with every entry created in them: not replicated.
  if (p.kind != wire::EntryKind::kDirectory && p.mtime_ns != s.mtime_ns) {
    what.push_back(fmt::format("mtime {} vs {} ns", p.mtime_ns, s.mtime_ns));
  }
  if (p.xattr_hash != s.xattr_hash) {
    auto names = [](const wire::ManifestEntry& e) {
      std::string out;
      for (const std::string& n : SplitXattrNames(e.xattr_names))
        out += (out.empty() ? "" : ",") + n;
      return e.xattr_hash == 0 ? std::string("none") : out.empty() ? std::string("?") : out;
    };
    what.push_back(fmt::format("xattrs [{}] vs [{}]", names(p), names(s)));
  }
  std::string out;
  for (const auto& w : what) out += (out.empty() ? "" : "; ") + w;
  return out;
}

// Which names of one manifest share an inode (equal nonzero link_id). Only groups of at
// least two names count: a file whose other links are outside the sync roots is alone
// as far as replication goes.
class LinkGroups {
 public:
  explicit LinkGroups(const std::vector<wire::ManifestEntry>& sorted) {
    std::unordered_map<uint64_t, std::vector<size_t>> by_id;
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (sorted[i].link_id != 0) by_id[sorted[i].link_id].push_back(i);
    }
    for (auto& [id, members] : by_id) {
      if (members.size() < 2) continue;
      for (size_t i : members) {
        std::vector<std::string>& others = others_[i];
        for (size_t k : members) {
          if (k != i) others.push_back(sorted[k].path);
        }
      }
    }
  }
  // The other names of entry i's inode, sorted (the manifest is), or null when alone.
  const std::vector<std::string>* Others(size_t i) const {
    auto it = others_.find(i);
    return it == others_.end() ? nullptr : &it->second;
  }
  static std::string List(const std::vector<std::string>& names) {
    std::string out;
    for (size_t k = 0; k < names.size() && k < 8; ++k) out += (k == 0 ? "" : ",") + names[k];
    if (names.size() > 8) out += fmt::format(",… {} more", names.size() - 8);
    return out;
  }

 private:
  std::unordered_map<size_t, std::vector<std::string>> others_;
};

}  // namespace

namespace {

// The entry of `info`, read through `fd` (open on it; unused for a symlink).
Result<wire::ManifestEntry> EntryFromFd(int fd, uint32_t root, const FileInfo& info) {
  wire::ManifestEntry e;
  e.kind = ToWireKind(info.kind);
  e.mode = info.kind == NodeKind::kSymlink ? 0 : info.mode;
  e.uid = info.uid;
  e.gid = info.gid;
  e.size = info.size;
  e.mtime_ns = info.mtime_ns;
  e.path = WirePath(root, info.path);
  if (info.kind == NodeKind::kSymlink) {
    e.hash = Xxh3_128(std::as_bytes(std::span(info.target)));
    return e;  // Linux keeps no user.* xattrs on a symlink
  }
  if (info.kind == NodeKind::kFile) {
    ASSIGN_OR_RETURN(e.hash, HashFd(fd, info.size));
    if (info.nlink > 1) {
      // Any nonzero value that is the same for the names of one inode and differs
      // between inodes of this listing: a mix of device and inode number.
      std::array<uint64_t, 2> id{info.dev, info.ino};
      e.link_id = Xxh3_64(std::as_bytes(std::span(id))) | 1;
    }
  }
  ASSIGN_OR_RETURN(XattrSet xattrs, ReadXattrs(fd));
  e.xattr_hash = xattrs.hash;
  e.xattr_names = JoinXattrNames(xattrs.names);
  return e;
}

// Open directories from the root down to the one the walk is in, so each entry is
// opened with one openat from its parent instead of one per path component. The walk
// visits a directory's entries and then descends, so the stack follows it with few
// opens. Every component is opened O_NOFOLLOW | O_DIRECTORY, as OpenDirBeneath does.
class DirStack {
 public:
  explicit DirStack(int root_fd) {
    int fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) stack_.push_back({"", UniqueFd(fd)});
  }
  // An fd of directory `dir` (relative to the root); NotFound when it is gone.
  Result<int> Open(std::string_view dir) {
    if (stack_.empty()) return ErrnoStatus(EBADF, "open sync root");
    auto is_ancestor = [&](const std::string& a) {
      return a.empty() || dir == a ||
             (dir.size() > a.size() && dir.starts_with(a) && dir[a.size()] == '/');
    };
    while (stack_.size() > 1 && !is_ancestor(stack_.back().path)) stack_.pop_back();
    while (stack_.back().path.size() < dir.size()) {
      const std::string& at = stack_.back().path;
      size_t start = at.empty() ? 0 : at.size() + 1;
      size_t slash = dir.find('/', start);
      std::string_view comp =
          dir.substr(start, slash == std::string_view::npos ? dir.size() - start : slash - start);
      std::string name(comp);
      int fd = openat(stack_.back().fd.get(), name.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        int err = errno == ENOTDIR || errno == ELOOP ? ENOENT : errno;
        return ErrnoStatus(err, "open directory " + std::string(dir));
      }
      std::string path = at.empty() ? name : at + "/" + name;
      stack_.push_back({std::move(path), UniqueFd(fd)});
    }
    return stack_.back().fd.get();
  }

 private:
  struct Level {
    std::string path;
    UniqueFd fd;
  };
  std::vector<Level> stack_;  // at most kScanDepthMax + 1 deep, as the walk
};

// MakeManifestEntry through the walk's open directories.
Result<wire::ManifestEntry> MakeManifestEntryIn(DirStack& dirs, uint32_t root,
                                                const FileInfo& info) {
  if (info.kind == NodeKind::kSymlink) return EntryFromFd(-1, root, info);
  const size_t slash = info.path.rfind('/');
  const std::string_view parent = slash == std::string::npos
                                      ? std::string_view()
                                      : std::string_view(info.path).substr(0, slash);
  if (info.kind == NodeKind::kDirectory) {
    // Its children come next in the walk: opened once, for its xattrs and for them.
    ASSIGN_OR_RETURN(int self, dirs.Open(info.path));
    return EntryFromFd(self, root, info);
  }
  ASSIGN_OR_RETURN(int dir, dirs.Open(parent));
  const std::string name = info.path.substr(slash == std::string::npos ? 0 : slash + 1);
  int raw = openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (raw < 0) {
    int err = errno == ENOTDIR || errno == ELOOP ? ENOENT : errno;
    return ErrnoStatus(err, "open " + info.path);
  }
  UniqueFd fd(raw);
  return EntryFromFd(fd.get(), root, info);
}

}  // namespace

Result<wire::ManifestEntry> MakeManifestEntry(int root_fd, uint32_t root, const FileInfo& info) {
  if (info.kind == NodeKind::kSymlink) return EntryFromFd(-1, root, info);
  ASSIGN_OR_RETURN(UniqueFd fd, OpenReadBeneath(root_fd, info.path));
  return EntryFromFd(fd.get(), root, info);
}

size_t ManifestEntryWireSize(const wire::ManifestEntry& e) {
  return wire::kManifestEntryFixedSize + e.xattr_names.size() + wire::kStr16Prefix + e.path.size();
}

int64_t CpuBudget::ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void CpuBudget::Charge() {
  if (percent_ <= 0 || percent_ >= 100) return;
  const int64_t used = ThreadCpuNs() - mark_ns_;
  if (used < kSliceNs) return;
  int64_t sleep_ns = used * (100 - percent_) / percent_;
  while (sleep_ns > 0 && !(stop_ != nullptr && stop_->load(std::memory_order_relaxed))) {
    const int64_t nap = std::min(sleep_ns, kNapNs);
    timespec ts{static_cast<time_t>(nap / 1'000'000'000), static_cast<long>(nap % 1'000'000'000)};
    nanosleep(&ts, nullptr);
    sleep_ns -= nap;
  }
  mark_ns_ = ThreadCpuNs();
}

Result<std::vector<wire::ManifestEntry>> BuildManifest(const std::vector<int>& root_fds,
                                                       size_t max_entries,
                                                       const std::atomic<bool>* stop,
                                                       int cpu_percent) {
  std::vector<wire::ManifestEntry> out;
  CpuBudget budget(cpu_percent, stop);
  auto add = [&](DirStack& dirs, uint32_t root, const FileInfo& info) -> Status {
    budget.Charge();
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) {
      return Unavailable("manifest cancelled");
    }
    if (out.size() >= max_entries) {
      return Status(Code::kResourceExhausted,
                    fmt::format("more than {} entries in the sync roots", max_entries));
    }
    auto e = MakeManifestEntryIn(dirs, root, info);
    // An entry that vanished between the walk and the hash is simply not listed.
    if (e.status().code() == Code::kNotFound) return Status::Ok();
    if (!e.ok()) return e.status();
    out.push_back(std::move(e).value());
    return Status::Ok();
  };
  for (uint32_t root = 0; root < root_fds.size(); ++root) {
    const int fd = root_fds[root];
    DirStack dirs(fd);
    ASSIGN_OR_RETURN(FileInfo top, StatPath(fd, ""));
    RETURN_IF_ERROR(add(dirs, root, top));
    RETURN_IF_ERROR(ScanTree(
        fd, "", {}, [&](const FileInfo& info) { return add(dirs, root, info); }, nullptr));
  }
  return out;
}

Status EmitManifest(MessageSink& sink, uint64_t request_id,
                    const std::vector<wire::ManifestEntry>& entries) {
  wire::ManifestEntries frame;
  frame.request_id = request_id;
  size_t body = wire::kManifestEntriesPrefixSize;
  for (const auto& e : entries) {
    const size_t entry_size = ManifestEntryWireSize(e);
    if (frame.entries.size() == wire::kManifestEntriesMax ||
        body + entry_size > wire::kFrameBodyMax) {
      frame.flags = 0;
      RETURN_IF_ERROR(sink.Emit(0, frame));
      frame.entries.clear();
      body = wire::kManifestEntriesPrefixSize;
    }
    body += entry_size;
    frame.entries.push_back(e);
  }
  frame.flags = wire::kManifestLast;
  return sink.Emit(0, std::move(frame));
}

std::vector<ManifestDifference> CompareManifests(std::vector<wire::ManifestEntry> primary,
                                                 std::vector<wire::ManifestEntry> standby) {
  auto by_path = [](const wire::ManifestEntry& a, const wire::ManifestEntry& b) {
    return a.path < b.path;
  };
  std::sort(primary.begin(), primary.end(), by_path);
  std::sort(standby.begin(), standby.end(), by_path);
  const LinkGroups primary_links(primary), standby_links(standby);
  std::vector<ManifestDifference> out;
  size_t i = 0, j = 0;
  while (i < primary.size() || j < standby.size()) {
    if (j == standby.size() || (i < primary.size() && primary[i].path < standby[j].path)) {
      out.push_back({primary[i].path, "missing on the standby", primary[i], std::nullopt});
      ++i;
    } else if (i == primary.size() || standby[j].path < primary[i].path) {
      out.push_back({standby[j].path, "only on the standby", std::nullopt, standby[j]});
      ++j;
    } else {
      std::string what = Describe(primary[i], standby[j]);
      const std::vector<std::string>* p_names = primary_links.Others(i);
      const std::vector<std::string>* s_names = standby_links.Others(j);
      if (p_names != nullptr || s_names != nullptr) {
        static const std::vector<std::string> kAlone;
        const auto& pn = p_names != nullptr ? *p_names : kAlone;
        const auto& sn = s_names != nullptr ? *s_names : kAlone;
        if (pn != sn) {
          what += fmt::format(
              "{}hard links: one inode with [{}] on the primary, with [{}] on the "
              "standby",
              what.empty() ? "" : "; ", LinkGroups::List(pn), LinkGroups::List(sn));
        }
      }
      if (!what.empty()) out.push_back({primary[i].path, std::move(what), primary[i], standby[j]});
      ++i;
      ++j;
    }
  }
  return out;
}

ManifestJob::ManifestJob(const std::vector<int>& root_fds, size_t max_entries, int cpu_percent) {
  std::vector<int> raw;
  for (int fd : root_fds) {
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
      result_ = ErrnoStatus(errno, "duplicate a sync root's descriptor");
      done_.store(true, std::memory_order_release);
      return;
    }
    fds_.emplace_back(dup);
    raw.push_back(dup);
  }
  thread_ = std::thread([this, raw = std::move(raw), max_entries, cpu_percent] {
    result_ = BuildManifest(raw, max_entries, &stop_, cpu_percent);
    done_.store(true, std::memory_order_release);
  });
}

ManifestJob::~ManifestJob() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
}

Result<std::vector<wire::ManifestEntry>> ManifestJob::Take() {
  if (!done()) return FailedPrecondition("the manifest is still being built");
  if (thread_.joinable()) thread_.join();
  if (!result_) return FailedPrecondition("the manifest was taken already");
  Result<std::vector<wire::ManifestEntry>> r = std::move(*result_);
  result_.reset();
  return r;
}

}  // namespace hasync::engine
