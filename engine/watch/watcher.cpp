#include "engine/watch/watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstring>

#include "engine/watch/handle_cache.h"
#include "engine/watch/internal/fs_resolver.h"

namespace hasync::engine::watch {
namespace {

// Events every filesystem mark asks for. DELETE_SELF/MOVE_SELF are deliberately not
// here: on a filesystem mark they would double the events of every unlink on the
// filesystem; they are asked for on the roots' own inodes instead (kRootSelfMask).
constexpr uint64_t kBaseMask =
    FAN_CREATE | FAN_DELETE | FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ATTRIB | FAN_ONDIR;
constexpr uint64_t kRootSelfMask = FAN_DELETE_SELF | FAN_MOVE_SELF | FAN_ONDIR;
constexpr unsigned kInitFlags = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK;

Status InitError(int err) {
  switch (err) {
    case EPERM:
      return PermissionDenied(
          "fanotify_init: a filesystem mark needs CAP_SYS_ADMIN; run hasync as root");
    case ENOSYS:
      return Unimplemented("fanotify_init: this kernel is built without CONFIG_FANOTIFY");
    case EINVAL:
      return Unimplemented(
          "fanotify_init: this kernel lacks FAN_REPORT_DFID_NAME; Linux 5.9 or newer is needed");
    default:
      return ErrnoStatus(err, "fanotify_init");
  }
}

Status MarkError(int err, const std::string& root) {
  if (err == ENODEV || err == EOPNOTSUPP || err == EXDEV) {
    return Unimplemented("fanotify_mark " + root +
                         ": its filesystem cannot report file handles (tmpfs before Linux 6.6, "
                         "a btrfs subvolume, a FUSE mount); put the spool on ext4 or xfs");
  }
  return ErrnoStatus(err, "fanotify_mark " + root);
}

Result<SyncRoot> Canonical(const std::string& root) {
  if (root.empty()) return InvalidArgument("empty sync root");
  char* real = ::realpath(root.c_str(), nullptr);
  if (real == nullptr) return ErrnoStatus(errno, "realpath " + root);
  std::string path(real);
  ::free(real);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return InvalidArgument("sync root " + path + " is not a directory");
  if (path == "/") return InvalidArgument("the filesystem root cannot be a sync root");
  struct statfs sfs {};
  if (::statfs(path.c_str(), &sfs) != 0) return ErrnoStatus(errno, "statfs " + path);
  SyncRoot out;
  out.path = std::move(path);
  static_assert(sizeof(sfs.f_fsid) == sizeof(out.fsid));
  std::memcpy(&out.fsid, &sfs.f_fsid, sizeof(out.fsid));
  return out;
}

}  // namespace

Watcher::~Watcher() = default;

Result<Watcher> Watcher::Open(const WatcherOptions& options, const Clock* clock) {
  HASYNC_ASSERT(clock != nullptr);
  if (options.roots.empty() || options.roots.size() > kMaxRoots) {
    return InvalidArgument("sync roots: " + std::to_string(options.roots.size()) + " outside 1.." +
                           std::to_string(kMaxRoots));
  }
  if (options.handle_cache_entries == 0 || options.handle_cache_entries > kMaxHandleCacheEntries) {
    return OutOfRange("handle_cache_entries " + std::to_string(options.handle_cache_entries) +
                      " outside 1.." + std::to_string(kMaxHandleCacheEntries));
  }
  if (options.debounce_ns < 0 || options.debounce_ns > kMaxDebounceNs) {
    return OutOfRange("debounce_ns " + std::to_string(options.debounce_ns) + " outside 0.." +
                      std::to_string(kMaxDebounceNs));
  }
  if (options.debounce_max_pending == 0) return OutOfRange("debounce_max_pending is 0");

  TranslatorOptions topts;
  for (const std::string& r : options.roots) {
    ASSIGN_OR_RETURN(SyncRoot root, Canonical(r));
    for (const SyncRoot& other : topts.roots) {
      if (HandleCache::IsAtOrUnder(root.path, other.path) ||
          HandleCache::IsAtOrUnder(other.path, root.path)) {
        return InvalidArgument("sync roots " + other.path + " and " + root.path + " overlap");
      }
    }
    topts.roots.push_back(std::move(root));
  }

  Watcher w;
  w.clock_ = clock;
  // Prefer the full FID report (FAN_RENAME needs it); fall back to names only.
  int fd = -1;
  if (!options.force_move_pairs) {
    fd = ::fanotify_init(kInitFlags | FAN_REPORT_DFID_NAME_TARGET, O_RDONLY | O_LARGEFILE);
    if (fd < 0 && errno != EINVAL) return InitError(errno);
    w.target_fids_ = fd >= 0;
  }
  if (fd < 0) {
    fd = ::fanotify_init(kInitFlags | FAN_REPORT_DFID_NAME, O_RDONLY | O_LARGEFILE);
    if (fd < 0) return InitError(errno);
  }
  w.fan_fd_.reset(fd);
  w.mode_ = w.target_fids_ ? RenameMode::kRenameEvents : RenameMode::kMovePairs;

  auto resolver = std::make_unique<internal::FsResolver>();
  for (const SyncRoot& root : topts.roots) {
    if (!resolver->HasMount(root.fsid)) {
      uint64_t mask =
          kBaseMask |
          (w.mode_ == RenameMode::kRenameEvents ? FAN_RENAME : (FAN_MOVED_FROM | FAN_MOVED_TO));
      int rc = ::fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, mask, AT_FDCWD,
                               root.path.c_str());
      if (rc != 0 && errno == EINVAL && w.mode_ == RenameMode::kRenameEvents) {
        // Target fids without FAN_RENAME should not exist, but cost nothing to survive.
        w.mode_ = RenameMode::kMovePairs;
        mask = kBaseMask | FAN_MOVED_FROM | FAN_MOVED_TO;
        rc = ::fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, mask, AT_FDCWD,
                             root.path.c_str());
      }
      if (rc != 0) return MarkError(errno, root.path);
      // Not O_PATH: open_by_handle_at rejects an O_PATH mount fd with EBADF.
      UniqueFd mount_fd(::open(root.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!mount_fd) return ErrnoStatus(errno, "open " + root.path);
      resolver->AddMount(root.fsid, std::move(mount_fd));
    }
    if (::fanotify_mark(fd, FAN_MARK_ADD, kRootSelfMask, AT_FDCWD, root.path.c_str()) != 0) {
      return MarkError(errno, root.path);
    }
  }
  topts.handle_cache_entries = options.handle_cache_entries;
  topts.debounce_ns = options.debounce_ns;
  topts.debounce_max_pending = options.debounce_max_pending;
  topts.move_pairs = w.mode_ == RenameMode::kMovePairs;
  w.resolver_ = std::move(resolver);
  w.translator_ = std::make_unique<Translator>(std::move(topts), w.resolver_.get(), clock);
  // After the marks: a directory created during the walk is seen by both.
  w.translator_->Preload();
  w.buf_.resize(kReadBufferBytes);
  return w;
}

std::string Watcher::ModeDescription() const {
  if (mode_ == RenameMode::kRenameEvents) return "FAN_RENAME + FAN_REPORT_TARGET_FID";
  return target_fids_ ? "MOVED_FROM/MOVED_TO pairs + FAN_REPORT_TARGET_FID"
                      : "MOVED_FROM/MOVED_TO pairs";
}

void Watcher::Push(std::vector<WatchEvent>* events) {
  for (WatchEvent& e : *events) ready_.push_back(std::move(e));
  events->clear();
}

Status Watcher::OnReadable() {
  for (int i = 0; i < kMaxReadsPerCall && ready_.size() < kReadyHighWater; ++i) {
    ssize_t n = ::read(fan_fd_.get(), buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        translator_->EndOfBatch(&scratch_);
        break;
      }
      return ErrnoStatus(errno, "read fanotify");
    }
    if (n == 0) break;
    ++reads_;
    bytes_read_ += static_cast<uint64_t>(n);
    raw_.clear();
    Status parsed = ParseEvents(std::string_view(buf_.data(), static_cast<size_t>(n)), &raw_);
    for (const RawEvent& ev : raw_) translator_->Process(ev, &scratch_);
    if (!parsed.ok()) {
      // The rest of this read is undecodable: count it as lost events, i.e. rescan.
      ++parse_errors_;
      last_parse_error_ = parsed.ToString();
      translator_->LostEvents(&scratch_);
    }
    Push(&scratch_);
  }
  Tick();
  return Status::Ok();
}

void Watcher::Tick() {
  translator_->FlushDue(&scratch_);
  Push(&scratch_);
}

std::optional<int64_t> Watcher::NextDeadlineNs() const { return translator_->NextDeadlineNs(); }

Result<size_t> Watcher::Poll(int timeout_ms) {
  int wait_ms = timeout_ms;
  if (std::optional<int64_t> deadline = NextDeadlineNs()) {
    int64_t until_ns = *deadline - clock_->NowNs();
    int64_t due_ms = until_ns <= 0 ? 0 : (until_ns + 999'999) / 1'000'000;
    if (wait_ms < 0 || due_ms < wait_ms) wait_ms = static_cast<int>(due_ms);
  }
  if (ready_.size() >= kReadyHighWater) wait_ms = 0;  // the caller has to drain first
  pollfd p{fan_fd_.get(), POLLIN, 0};
  int rc = ::poll(&p, 1, wait_ms);
  if (rc < 0 && errno != EINTR) return ErrnoStatus(errno, "poll fanotify");
  if (rc > 0) {
    RETURN_IF_ERROR(OnReadable());
  } else {
    Tick();
  }
  return ready_.size();
}

size_t Watcher::Drain(std::vector<WatchEvent>* out, size_t max) {
  size_t n = 0;
  while (n < max && !ready_.empty()) {
    out->push_back(std::move(ready_.front()));
    ready_.pop_front();
    ++n;
  }
  return n;
}

WatcherStats Watcher::stats() const {
  WatcherStats s;
  s.translator = translator_->stats();
  s.reads = reads_;
  s.bytes_read = bytes_read_;
  s.parse_errors = parse_errors_;
  s.last_parse_error = last_parse_error_;
  s.cache_entries = translator_->cache().size();
  s.cache_evictions = translator_->cache().evictions();
  return s;
}

}  // namespace hasync::engine::watch
