// Tree and Batch: confined, atomic, durable application of replicated changes.
// See tree.h for the contract and docs/APPLY.md for the rules and why.
#include "engine/apply/tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>

#include "engine/apply/inplace.h"
#include "engine/apply/policy.h"
#include "engine/apply/resolve.h"

namespace hasync::engine::apply {
namespace {

constexpr int64_t kNsPerSec = 1'000'000'000;

timespec ToTimespec(int64_t ns) {
  int64_t sec = ns / kNsPerSec;
  int64_t rem = ns % kNsPerSec;
  if (rem < 0) {  // round toward minus infinity so tv_nsec is in [0, 1e9)
    rem += kNsPerSec;
    --sec;
  }
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(sec);
  ts.tv_nsec = static_cast<long>(rem);
  return ts;
}

// Feeds n zero bytes (a hole) to an XXH3 stream.
void HashZeros(XXH3_state_t* state, uint64_t n) {
  static const std::vector<std::byte> kZeroChunk(kHashChunkBytes);
  while (n > 0) {
    size_t step = static_cast<size_t>(std::min<uint64_t>(n, kZeroChunk.size()));
    XXH3_128bits_update(state, kZeroChunk.data(), step);
    n -= step;
  }
}

// Only a filesystem that cannot share blocks answers FICLONE with these.
bool CloneUnsupported(int err) {
  return err == EOPNOTSUPP || err == EXDEV || err == EINVAL || err == ENOTTY || err == ENOSYS ||
         err == EBADF;
}

Status CheckXattrs(const std::vector<Xattr>& xattrs, bool allow_privileged, std::string_view path) {
  if (xattrs.size() > kMaxXattrsPerFile) {
    return OutOfRange(fmt::format("{}: {} xattrs > kMaxXattrsPerFile {}", path, xattrs.size(),
                                  kMaxXattrsPerFile));
  }
  for (const Xattr& x : xattrs) {
    RETURN_IF_ERROR(CheckXattrName(x.name, allow_privileged).Annotate(path));
    if (x.value.size() > kMaxXattrValueBytes) {
      return OutOfRange(fmt::format("{}: xattr {} value of {} bytes > kMaxXattrValueBytes {}", path,
                                    x.name, x.value.size(), kMaxXattrValueBytes));
    }
  }
  return Status::Ok();
}

Status CheckTarget(std::string_view target, std::string_view path) {
  if (target.empty() || target.size() >= 4096 || target.find('\0') != std::string_view::npos) {
    return InvalidArgument(fmt::format(
        "{}: symlink target of {} bytes is empty, too long or holds a NUL", path, target.size()));
  }
  return Status::Ok();
}

Status FstatFd(int fd, struct stat* st, std::string_view what) {
  if (::fstat(fd, st) != 0) return ErrnoStatus(errno, fmt::format("fstat {}", what));
  return Status::Ok();
}

}  // namespace

std::string NewTempName() {
  // 64 random bits per name, fetched 32 names at a time (getrandom was one syscall in
  // eleven per applied file): names stay unpredictable, so nobody who sees one can
  // create the next ones first. One buffer per thread (the loop stages, the committer
  // links and symlinks).
  constexpr size_t kBatch = 32;
  thread_local std::array<uint64_t, kBatch> pool{};
  thread_local size_t left = 0;
  if (left == 0) {
    if (::getrandom(pool.data(), sizeof(pool), 0) == static_cast<ssize_t>(sizeof(pool))) {
      left = kBatch;
    } else {
      // No entropy source: names only need to be unlikely to collide, and O_EXCL
      // catches the rest.
      static std::atomic<uint64_t> counter{0};
      auto now = std::chrono::steady_clock::now().time_since_epoch().count();
      pool[0] = static_cast<uint64_t>(now) ^ (static_cast<uint64_t>(::getpid()) << 32) ^
                counter.fetch_add(1, std::memory_order_relaxed);
      left = 1;
    }
  }
  return fmt::format("{}{:016x}", kTempPrefix, pool[--left]);
}

Result<TempFile> CreateTempFile(int dir_fd, std::string_view for_path) {
  for (int attempt = 0; attempt < kTempNameAttempts; ++attempt) {
    std::string name = NewTempName();
    int fd =
        ::openat(dir_fd, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) return TempFile{std::move(name), UniqueFd(fd)};
    if (errno != EEXIST) {
      return ErrnoStatus(errno, fmt::format("create temp {} for {}", name, for_path));
    }
  }
  return Status(Code::kAlreadyExists, fmt::format("create temp for {}: {} random names all taken",
                                                  for_path, kTempNameAttempts));
}

Status ApplyMetaToFd(int fd, const FileMeta& meta, bool is_dir, bool allow_privileged,
                     std::string_view path, uint64_t* stripped, const struct stat* known) {
  // chown first: it clears setuid/setgid, so the mode must come after it.
  bool chowned = false;
  if (meta.owner &&
      (known == nullptr || known->st_uid != meta.owner->uid || known->st_gid != meta.owner->gid)) {
    if (::fchown(fd, meta.owner->uid, meta.owner->gid) != 0) {
      return ErrnoStatus(errno,
                         fmt::format("fchown {} to {}:{}", path, meta.owner->uid, meta.owner->gid));
    }
    chowned = true;
  }
  ASSIGN_OR_RETURN(ModeDecision mode, DecideMode(meta.mode, is_dir, allow_privileged));
  if (mode.stripped) ++*stripped;
  const bool mode_known = known != nullptr && (known->st_mode & 07777) == mode.mode &&
                          (!chowned || (mode.mode & 06000) == 0);
  if (!mode_known && ::fchmod(fd, static_cast<mode_t>(mode.mode)) != 0) {
    return ErrnoStatus(errno, fmt::format("fchmod {} to {:o}", path, mode.mode));
  }
  RETURN_IF_ERROR(CheckXattrs(meta.xattrs, allow_privileged, path));
  for (const Xattr& x : meta.xattrs) {
    if (::fsetxattr(fd, x.name.c_str(), x.value.data(), x.value.size(), 0) != 0) {
      return ErrnoStatus(errno, fmt::format("fsetxattr {} on {}", x.name, path));
    }
  }
  // Last: every call above changes the ctime only, but a write would move the mtime.
  if (meta.mtime_ns) {
    timespec ts[2] = {{0, UTIME_OMIT}, ToTimespec(*meta.mtime_ns)};
    if (::futimens(fd, ts) != 0) return ErrnoStatus(errno, fmt::format("futimens {}", path));
  }
  return Status::Ok();
}

Status CopySparse(FsOps& fs, int src_fd, int dst_fd, uint64_t size, std::string_view path,
                  uint64_t* copied) {
  uint64_t pos = 0;
  for (size_t segment = 0; pos < size; ++segment) {
    if (segment == kMaxCloneSegments) {
      return OutOfRange(
          fmt::format("{}: more than kMaxCloneSegments {} data segments", path, kMaxCloneSegments));
    }
    off_t data = ::lseek(src_fd, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains; ftruncate below recreates it
      return ErrnoStatus(errno, fmt::format("lseek SEEK_DATA in {}", path));
    }
    off_t hole = ::lseek(src_fd, data, SEEK_HOLE);
    if (hole < 0) return ErrnoStatus(errno, fmt::format("lseek SEEK_HOLE in {}", path));
    auto begin = static_cast<uint64_t>(data);
    uint64_t end = std::min(static_cast<uint64_t>(hole), size);
    if (end <= begin) break;
    int err = fs.CopyRange(src_fd, dst_fd, begin, end - begin);
    if (err != 0) {
      return ErrnoStatus(err, fmt::format("copy range [{}, {}) of {}", begin, end, path));
    }
    *copied += end - begin;
    pos = end;
  }
  int err = fs.Ftruncate(dst_fd, size);
  if (err != 0) return ErrnoStatus(err, fmt::format("ftruncate copy of {} to {}", path, size));
  return Status::Ok();
}

// ---- Tree -------------------------------------------------------------------------

Result<Tree> Tree::Open(std::string_view root_path, const TreeOptions& options, FsOps* fs) {
  if (root_path.empty() || root_path.front() != '/') {
    return InvalidArgument(fmt::format("sync root \"{}\" is not an absolute path", root_path));
  }
  std::string path(root_path);
  int fd = ::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, fmt::format("open sync root {}", path));
  UniqueFd root(fd);
  // Fail at start-up, with the reason, on a kernel without openat2.
  ASSIGN_OR_RETURN(UniqueFd probe,
                   OpenBeneath(root.get(), "", O_RDONLY | O_DIRECTORY, "probe of the sync root"));
  Tree tree(std::move(root), std::move(path), options, fs != nullptr ? fs : &DefaultFsOps());
  if (!options.undo_dir.empty()) {
    ASSIGN_OR_RETURN(tree.undo_dir_, OpenUndoDir(options.undo_dir));
  }
  return tree;
}

Result<CleanupReport> Tree::RemoveStaleTemps() {
  CleanupReport report;
  struct Pending {
    std::string rel;
    size_t depth;
  };
  std::vector<Pending> stack;
  stack.push_back({"", 0});
  // Every pass pops one directory; pushes are bounded by kMaxCleanupEntries.
  while (!stack.empty()) {
    Pending dir = std::move(stack.back());
    stack.pop_back();
    ASSIGN_OR_RETURN(UniqueFd fd, OpenBeneath(root_.get(), dir.rel, O_RDONLY | O_DIRECTORY,
                                              "stale temp cleanup"));
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(fd.get()), &::closedir);
    if (!d) return ErrnoStatus(errno, fmt::format("fdopendir {}", dir.rel.empty() ? "." : dir.rel));
    fd.release();  // owned by the DIR now
    int dfd = ::dirfd(d.get());
    for (;;) {
      errno = 0;
      dirent* e = ::readdir(d.get());
      if (e == nullptr) {
        if (errno != 0) return ErrnoStatus(errno, fmt::format("readdir {}", dir.rel));
        break;
      }
      std::string_view name(e->d_name);
      if (name == "." || name == "..") continue;
      if (++report.visited > kMaxCleanupEntries) {
        return OutOfRange(
            fmt::format("stale temp cleanup stopped after kMaxCleanupEntries {} "
                        "entries under {}",
                        kMaxCleanupEntries, root_path_));
      }
      unsigned char type = e->d_type;
      if (type == DT_UNKNOWN) {
        struct stat st {};
        if (::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // raced away
        type = S_ISDIR(st.st_mode)   ? DT_DIR
               : S_ISREG(st.st_mode) ? DT_REG
               : S_ISLNK(st.st_mode) ? DT_LNK
                                     : DT_UNKNOWN;
      }
      std::string rel = dir.rel.empty() ? std::string(name) : fmt::format("{}/{}", dir.rel, name);
      if (type == DT_DIR) {
        if (dir.depth + 1 > kMaxCleanupDepth) {
          return OutOfRange(
              fmt::format("stale temp cleanup: {} is deeper than "
                          "kMaxCleanupDepth {}",
                          rel, kMaxCleanupDepth));
        }
        stack.push_back({std::move(rel), dir.depth + 1});
        continue;
      }
      if (!name.starts_with(kTempPrefix) || (type != DT_REG && type != DT_LNK)) continue;
      if (::unlinkat(dfd, e->d_name, 0) != 0 && errno != ENOENT) {
        return ErrnoStatus(errno, fmt::format("unlink stale temp {}", rel));
      }
      ++report.removed;
      ++stats_.temps_removed;
    }
  }
  return report;
}

// ---- Batch: recording ------------------------------------------------------------

Batch::~Batch() { RemoveUnpublishedTemps(); }

Status Batch::Poison(Status status) {
  if (poisoned_.ok() && !status.ok()) poisoned_ = status;
  return status;
}

Status Batch::CheckPathForRecord(std::string_view path) const {
  AssertRelativePath(path);
  if (spent_) return FailedPrecondition("batch already committed");
  if (HasReservedComponent(path)) {
    return InvalidArgument(fmt::format(
        "{}: names starting with {} are reserved for hasync's temp files", path, kTempPrefix));
  }
  if (ops_.size() >= kMaxBatchOps) {
    return Status(
        Code::kResourceExhausted,
        fmt::format("{}: batch already holds kMaxBatchOps {} operations", path, kMaxBatchOps));
  }
  return Status::Ok();
}

void Batch::NoteNamespace(std::string_view path) { namespace_paths_.emplace(path); }

bool Batch::TouchedEarlier(std::string_view path) const {
  // One lookup per ancestor; the path shrinks each pass.
  for (;;) {
    if (namespace_paths_.find(path) != namespace_paths_.end()) return true;
    size_t slash = path.rfind('/');
    if (slash == std::string_view::npos) return false;
    path = path.substr(0, slash);
  }
}

Status Batch::Record(Op op) {
  ops_.push_back(std::move(op));
  return Status::Ok();
}

Status Batch::Mkdir(std::string_view path, const FileMeta& meta) {
  RETURN_IF_ERROR(Poison(CheckPathForRecord(path)));
  RETURN_IF_ERROR(
      Poison(DecideMode(meta.mode, /*is_dir=*/true, tree_->options_.allow_privileged).status()));
  RETURN_IF_ERROR(Poison(CheckXattrs(meta.xattrs, tree_->options_.allow_privileged, path)));
  NoteNamespace(path);
  return Record(OpMkdir{std::string(path), meta});
}

Status Batch::Rmdir(std::string_view path) {
  RETURN_IF_ERROR(Poison(CheckPathForRecord(path)));
  NoteNamespace(path);
  return Record(OpRmdir{std::string(path)});
}

Status Batch::Unlink(std::string_view path) {
  RETURN_IF_ERROR(Poison(CheckPathForRecord(path)));
  NoteNamespace(path);
  return Record(OpUnlink{std::string(path)});
}

Status Batch::Rename(std::string_view from, std::string_view to, RenameMode mode) {
  RETURN_IF_ERROR(Poison(CheckPathForRecord(from)));
  RETURN_IF_ERROR(Poison(CheckPathForRecord(to)));
  NoteNamespace(from);
  NoteNamespace(to);
  return Record(OpRename{std::string(from), std::string(to), mode});
}

Status Batch::Link(std::string_view existing, std::string_view new_path) {
  RETURN_IF_ERROR(Poison(CheckPathForRecord(existing)));
  RETURN_IF_ERROR(Poison(CheckPathForRecord(new_path)));
  NoteNamespace(new_path);
  return Record(OpLink{std::string(existing), std::string(new_path)});
}

Status Batch::Symlink(std::string_view path, std::string_view target, std::optional<Owner> owner,
                      std::optional<int64_t> mtime_ns) {
  RETURN_IF_ERROR(Poison(CheckPathForRecord(path)));
  RETURN_IF_ERROR(Poison(CheckTarget(target, path)));
  NoteNamespace(path);
  return Record(OpSymlink{std::string(path), std::string(target), owner, mtime_ns});
}

Status Batch::SetMetadata(std::string_view path, const MetaChange& change) {
  RETURN_IF_ERROR(Poison(CheckPathForRecord(path)));
  if (change.mode) {
    // The file type is only known at commit; validate the bits now.
    RETURN_IF_ERROR(Poison(DecideMode(*change.mode, false, true).status().Annotate(path)));
  }
  return Record(OpSetMeta{std::string(path), change});
}

Status Batch::SetXattr(std::string_view path, std::string_view name, std::string_view value) {
  RETURN_IF_ERROR(Poison(CheckPathForRecord(path)));
  std::vector<Xattr> one{{std::string(name), std::string(value)}};
  RETURN_IF_ERROR(Poison(CheckXattrs(one, tree_->options_.allow_privileged, path)));
  return Record(OpSetXattr{std::string(path), std::string(name), std::string(value)});
}

Status Batch::RemoveXattr(std::string_view path, std::string_view name) {
  RETURN_IF_ERROR(Poison(CheckPathForRecord(path)));
  RETURN_IF_ERROR(Poison(CheckXattrName(name, tree_->options_.allow_privileged).Annotate(path)));
  return Record(OpRemoveXattr{std::string(path), std::string(name)});
}

// ---- Batch: content ---------------------------------------------------------------

Result<Batch::FileId> Batch::BeginFile(std::string_view path, ContentBase base,
                                       PublishMode publish) {
  RETURN_IF_ERROR(Poison(CheckPathForRecord(path)));
  if (!poisoned_.ok()) return poisoned_;
  if (files_.size() >= kMaxBatchFiles) {
    return Poison(Status(
        Code::kResourceExhausted,
        fmt::format("{}: batch already stages kMaxBatchFiles {} files", path, kMaxBatchFiles)));
  }
  if (base == ContentBase::kCurrent && TouchedEarlier(path)) {
    return Poison(FailedPrecondition(
        fmt::format("{}: block patch after an earlier operation of the same batch changed the "
                    "path; commit first or send the whole file",
                    path)));
  }
  // Beside the destination, unless an earlier operation of this batch creates, moves or
  // removes that directory: then it does not exist yet in its final form, and a temp
  // inside it could also make an rmdir fail. The root never moves.
  std::string_view dir = SplitPath(path).dir;
  bool stage_in_root = !dir.empty() && TouchedEarlier(dir);
  Result<size_t> dir_index = StagingDir(stage_in_root ? "" : dir, path);
  if (!dir_index.ok()) return Poison(dir_index.status());

  if (std::shared_ptr<InPlacePatch> patch; base == ContentBase::kCurrent &&
                                           publish == PublishMode::kReplace &&
                                           WantsInPlace(path, &patch)) {
    StagedFile file;  // no temp: written in place at commit, under an undo record
    file.path = std::string(path);
    file.dir = *dir_index;
    file.beside = !stage_in_root;
    file.in_order = false;
    file.inplace = std::move(patch);
    files_.push_back(std::move(file));
    NoteNamespace(path);
    ops_.push_back(OpPublish{files_.size() - 1});
    return files_.size() - 1;
  }
  Result<TempFile> temp = CreateTempFile(staging_dirs_[*dir_index].get(), path);
  if (!temp.ok()) return Poison(temp.status());
  StagedFile file;
  file.path = std::string(path);
  file.dir = *dir_index;
  file.beside = !stage_in_root;
  file.temp_name = std::move(temp->name);
  file.fd = std::move(temp->fd);
  file.publish = publish;
  file.fresh = base != ContentBase::kCurrent;
  files_.push_back(std::move(file));
  FileId id = files_.size() - 1;
  if (base == ContentBase::kCurrent) {
    files_[id].in_order = false;  // the hash must cover the cloned ranges: read back
    Status s = CloneBase(files_[id]);
    if (!s.ok()) {
      RemoveTemp(files_[id]);
      return Poison(s);
    }
  }
  NoteNamespace(path);
  ops_.push_back(OpPublish{id});
  return id;
}

// Nothing of this batch is applied before Commit, so a directory path names the same
// directory for every file staged in it: it is resolved (openat2, fstat) once per batch.
// A path an earlier operation of the batch touched is not asked for (the caller stages
// in the root then).
Result<size_t> Batch::StagingDir(std::string_view dir, std::string_view for_path) {
  if (auto hit = staging_by_path_.find(dir); hit != staging_by_path_.end()) return hit->second;
  ASSIGN_OR_RETURN(UniqueFd staging,
                   OpenBeneath(tree_->root_.get(), dir, O_RDONLY | O_DIRECTORY,
                               fmt::format("staging directory for {}", for_path)));
  struct stat st {};
  RETURN_IF_ERROR(FstatFd(staging.get(), &st, fmt::format("staging dir of {}", for_path)));
  InodeKey key{st.st_dev, st.st_ino};
  auto [it, inserted] = staging_index_.emplace(key, staging_dirs_.size());
  if (inserted) staging_dirs_.push_back(std::move(staging));
  staging_by_path_.emplace(std::string(dir), it->second);
  return it->second;
}

Status Batch::CloneBase(StagedFile& file) {
  ASSIGN_OR_RETURN(Parent parent, OpenParent(tree_->root_.get(), file.path));
  ASSIGN_OR_RETURN(UniqueFd src,
                   OpenBeneath(parent.fd.get(), parent.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK,
                               fmt::format("block-patch base {}", file.path)));
  struct stat st {};
  RETURN_IF_ERROR(FstatFd(src.get(), &st, file.path));
  if (!S_ISREG(st.st_mode)) {
    return FailedPrecondition(fmt::format("{}: block-patch base is not a regular file", file.path));
  }
  auto size = static_cast<uint64_t>(st.st_size);
  FsOps& fs = tree_->fs();
  int err = fs.Clone(src.get(), file.fd.get());
  if (err == 0) {  // reflink: the temp shares every block, holes included
    tree_->stats_.bytes_cloned += size;
    return Status::Ok();
  }
  if (!CloneUnsupported(err)) {
    return ErrnoStatus(err, fmt::format("FICLONE block-patch base {}", file.path));
  }
  // No reflink here: copy only the data segments so holes stay holes.
  uint64_t copied = 0;
  Status s = CopySparse(fs, src.get(), file.fd.get(), size, file.path, &copied);
  tree_->stats_.bytes_cloned += copied;
  return s;
}

Status Batch::WriteExtent(FileId id, uint64_t offset, std::span<const std::byte> data) {
  HASYNC_ASSERT(id < files_.size());
  if (!poisoned_.ok()) return poisoned_;
  StagedFile& file = files_[id];
  if (file.finished || file.abandoned || spent_) {
    return Poison(
        FailedPrecondition(fmt::format("{}: write after FinishFile or AbandonFile", file.path)));
  }
  if (offset > kMaxFileBytes || data.size() > kMaxFileBytes - offset) {
    RemoveTemp(file);
    return Poison(OutOfRange(fmt::format("{}: extent [{}, +{}) beyond kMaxFileBytes {}", file.path,
                                         offset, data.size(), kMaxFileBytes)));
  }
  if (file.inplace) return WriteInPlaceExtent(file, offset, data);
  int err = tree_->fs().Pwrite(file.fd.get(), data, offset);
  if (err != 0) {
    RemoveTemp(file);
    return Poison(
        ErrnoStatus(err, fmt::format("write temp of {} at offset {}", file.path, offset)));
  }
  file.written_end = std::max(file.written_end, offset + data.size());
  if (!data.empty()) file.data_end = std::max(file.data_end, offset + data.size());
  tree_->stats_.bytes_written += data.size();
  if (file.in_order) {
    if (offset < file.stream_end) {
      file.in_order = false;  // rewrites part of what was hashed: read back instead
      file.stream.reset();
    } else {
      if (!file.stream) {
        file.stream.reset(XXH3_createState());
        if (!file.stream || XXH3_128bits_reset(file.stream.get()) != XXH_OK) {
          file.in_order = false;
          file.stream.reset();
          return Status::Ok();
        }
      }
      HashZeros(file.stream.get(), offset - file.stream_end);  // a hole between extents
      XXH3_128bits_update(file.stream.get(), data.data(), data.size());
      file.stream_end = offset + data.size();
    }
  }
  return Status::Ok();
}

Status Batch::FinishFile(FileId id, uint64_t size, const FileMeta& meta, Hash128 expected) {
  HASYNC_ASSERT(id < files_.size());
  if (!poisoned_.ok()) return poisoned_;
  StagedFile& file = files_[id];
  if (file.finished || file.abandoned || spent_) {
    return Poison(
        FailedPrecondition(fmt::format("{}: FinishFile twice or after AbandonFile", file.path)));
  }
  if (file.inplace) {
    Status s = FinishInPlace(file, size, meta, expected);
    if (!s.ok()) {
      file.inplace.reset();
      RemoveTemp(file);
      return Poison(s);
    }
    if (file.inplace) {
      file.finished = true;
      return Status::Ok();
    }
    // It fell back to a temp (undo too large): finished below like any temp.
  }
  Status s;
  if (size > kMaxFileBytes) {
    s = OutOfRange(fmt::format("{}: size {} > kMaxFileBytes {}", file.path, size, kMaxFileBytes));
  } else if (file.written_end > size) {
    s = InvalidArgument(fmt::format("{}: extents reach offset {} beyond the final size {}",
                                    file.path, file.written_end, size));
  } else if (!(file.fresh && file.data_end == size)) {  // else the writes made its size
    if (int err = tree_->fs().Ftruncate(file.fd.get(), size); err != 0) {
      s = ErrnoStatus(err, fmt::format("ftruncate temp of {} to {}", file.path, size));
    }
  }
  if (s.ok()) s = VerifyHash(file, size, expected);
  // A fresh temp's owner and mode are ours (0600, less the umask): one fstat tells which
  // of fchown and fchmod the metadata still needs, usually only one of them.
  struct stat created {};
  const bool know_created = s.ok() && file.fresh && ::fstat(file.fd.get(), &created) == 0;
  if (s.ok()) {
    uint64_t stripped = 0;
    s = ApplyMetaToFd(file.fd.get(), meta, /*is_dir=*/false, tree_->options_.allow_privileged,
                      file.path, &stripped, know_created ? &created : nullptr);
    tree_->stats_.setid_bits_stripped += stripped;
  }
  if (!s.ok()) {
    RemoveTemp(file);
    return Poison(s);
  }
  file.finished = true;
  return Status::Ok();
}

Status Batch::AbandonFile(FileId id) {
  HASYNC_ASSERT(id < files_.size());
  if (spent_) return FailedPrecondition("batch already committed");
  StagedFile& file = files_[id];
  RemoveTemp(file);
  file.inplace.reset();
  file.abandoned = true;
  return Status::Ok();
}

Status Batch::VerifyHash(StagedFile& file, uint64_t size, Hash128 expected) {
  if (file.in_order) {
    // What was written, in order, plus zeros for the holes and up to the final size:
    // exactly the temp's content, without reading it back.
    if (!file.stream) {  // no extent at all: an empty or all-hole file
      file.stream.reset(XXH3_createState());
      if (!file.stream)
        return Status(Code::kResourceExhausted, "no memory for the XXH3 state of " + file.path);
      XXH3_128bits_reset(file.stream.get());
    }
    HashZeros(file.stream.get(), size - file.stream_end);
    XXH128_hash_t h = XXH3_128bits_digest(file.stream.get());
    file.stream.reset();
    return CheckHash(file, Hash128{h.low64, h.high64}, expected);
  }
  // The temp is read back whole: the hash then covers the cloned ranges, the written
  // extents and the holes exactly as they will be published. In a large file the holes
  // are hashed from a zero buffer instead of being read (SEEK_DATA/SEEK_HOLE).
  hash_buf_.resize(kHashChunkBytes);
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  const bool sparse_aware = size > kHashChunkBytes;
  uint64_t pos = 0;
  uint64_t data_end = sparse_aware ? 0 : size;  // end of the data segment pos is in
  // Each pass hashes at least one byte or returns.
  while (pos < size) {
    if (pos >= data_end) {
      off_t data = ::lseek(file.fd.get(), static_cast<off_t>(pos), SEEK_DATA);
      uint64_t data_at = size;
      if (data >= 0) {
        data_at = std::min(static_cast<uint64_t>(data), size);
      } else if (errno != ENXIO) {
        return ErrnoStatus(errno, fmt::format("lseek SEEK_DATA in temp of {}", file.path));
      }
      if (data_at > pos) {  // a hole: zeros, no read
        HashZeros(&state, data_at - pos);
        pos = data_at;
        continue;
      }
      off_t hole = ::lseek(file.fd.get(), static_cast<off_t>(pos), SEEK_HOLE);
      if (hole < 0) {
        return ErrnoStatus(errno, fmt::format("lseek SEEK_HOLE in temp of {}", file.path));
      }
      data_end = std::min(static_cast<uint64_t>(hole), size);
      if (data_end <= pos) data_end = size;  // defensive: read the rest plainly
    }
    size_t want = static_cast<size_t>(std::min<uint64_t>(data_end - pos, hash_buf_.size()));
    ssize_t n = ::pread(file.fd.get(), hash_buf_.data(), want, static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, fmt::format("read back temp of {}", file.path));
    }
    if (n == 0) {
      return DataLoss(fmt::format("{}: temp ends at {} before its size {}", file.path, pos, size));
    }
    XXH3_128bits_update(&state, hash_buf_.data(), static_cast<size_t>(n));
    pos += static_cast<uint64_t>(n);
  }
  XXH128_hash_t h = XXH3_128bits_digest(&state);
  return CheckHash(file, Hash128{h.low64, h.high64}, expected);
}

Status Batch::CheckHash(const StagedFile& file, Hash128 got, Hash128 expected) {
  if (got != expected) {
    return DataLoss(fmt::format(
        "{}: content hash mismatch (expected {:016x}{:016x}, got {:016x}{:016x}); not published",
        file.path, expected.high, expected.low, got.high, got.low));
  }
  return Status::Ok();
}

void Batch::RemoveTemp(StagedFile& file) {
  if (file.published || file.temp_name.empty()) return;
  // The temp was never visible under a real name; failing to remove it leaves a
  // kTempPrefix file that the next start-up cleanup removes.
  if (::unlinkat(staging_dirs_[file.dir].get(), file.temp_name.c_str(), 0) == 0) {
    ++tree_->stats_.temps_removed;
  }
  file.temp_name.clear();
  file.fd.reset();
}

void Batch::RemoveUnpublishedTemps() {
  for (StagedFile& file : files_) RemoveTemp(file);
}

// ---- Batch: commit ----------------------------------------------------------------

Status Batch::Commit() {
  if (spent_) return FailedPrecondition("batch already committed");
  spent_ = true;
  Status s = poisoned_.ok()
                 ? EndInPlaceCommit(CommitSteps())
                 : poisoned_.Annotate("batch not committed because an earlier step failed");
  RemoveUnpublishedTemps();
  if (s.ok()) {
    ++tree_->stats_.batches_committed;
  } else {
    ++tree_->stats_.batches_failed;
  }
  return s;
}

Status Batch::SyncFds(std::span<const int> fds, bool dirs, const std::vector<std::string>& names) {
  if (fds.empty()) return Status::Ok();
  FsOps& fs = tree_->fs();
  if (tree_->options_.sync == SyncStrategy::kSyncfs) {
    // Every fd is beneath the root, on the root's filesystem (a rename across would
    // have failed with EXDEV), so one syncfs covers them all.
    ++tree_->stats_.syncfs_calls;
    int err = fs.Syncfs(fds[0]);
    if (err != 0) return ErrnoStatus(err, fmt::format("syncfs under {}", tree_->root_path_));
    return Status::Ok();
  }
  (dirs ? tree_->stats_.dir_syncs : tree_->stats_.file_syncs) += fds.size();
  size_t failed = 0;
  int err = fs.SyncAll(fds, &failed);
  if (err != 0) {
    HASYNC_ASSERT(failed < names.size());
    return ErrnoStatus(err, fmt::format("fsync {}", names[failed]));
  }
  return Status::Ok();
}

Status Batch::CommitSteps() {
  std::vector<int> temp_fds;
  std::vector<std::string> temp_names;
  temp_fds.reserve(files_.size());
  for (const StagedFile& file : files_) {
    if (file.abandoned) continue;
    if (!file.finished) {
      return FailedPrecondition(fmt::format("{}: begun but never finished", file.path));
    }
    if (file.inplace) continue;  // written in place below, under the undo record
    temp_fds.push_back(file.fd.get());
    temp_names.push_back(fmt::format("temp of {}", file.path));
  }
  RETURN_IF_ERROR(BeginInPlaceCommit(temp_fds, temp_names));
  // 1. Content durable before any name points at it.
  RETURN_IF_ERROR(SyncFds(temp_fds, false, temp_names));
  // 2. Publish and namespace operations, in the primary's order.
  Touched touched;
  for (size_t i = 0; i < ops_.size(); ++i) {
    Status s = std::visit([&](const auto& op) { return Apply(op, touched); }, ops_[i]);
    if (!s.ok()) return s.Annotate(fmt::format("batch op {} of {}", i + 1, ops_.size()));
  }
  // 3. The names durable: each touched directory (and in-place change) once.
  std::vector<std::string> names;
  names.reserve(touched.fds().size());
  for (size_t i = 0; i < touched.fds().size(); ++i) names.push_back(touched.name(i));
  return SyncFds(touched.fds(), true, names);
}

Status Batch::Touched::Add(int fd, std::string_view what) {
  struct stat st {};
  RETURN_IF_ERROR(FstatFd(fd, &st, what));
  InodeKey key{st.st_dev, st.st_ino};
  if (index_.contains(key)) return Status::Ok();
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return ErrnoStatus(errno, fmt::format("dup fd of {}", what));
  index_.emplace(key, owned_.size());
  owned_.emplace_back(dup);
  raw_.push_back(dup);
  names_.emplace_back(what);
  return Status::Ok();
}

Status Batch::Touched::AddStaging(size_t index, int fd, std::string_view what) {
  if (index < staging_added_.size() && staging_added_[index]) return Status::Ok();
  RETURN_IF_ERROR(Add(fd, what));
  if (index >= staging_added_.size()) staging_added_.resize(index + 1, false);
  staging_added_[index] = true;
  return Status::Ok();
}

namespace {

std::string DirOf(std::string_view path) {
  std::string_view dir = SplitPath(path).dir;
  return dir.empty() ? std::string(".") : std::string(dir);
}

// For an rmdir refused with ENOTEMPTY: up to kMax names the directory still holds, so
// the refusal says what the primary did not expect there (a stale name, a temp).
std::string FirstNames(int parent_fd, const std::string& name) {
  static constexpr size_t kMax = 4;
  int fd = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return "";
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return "";
  }
  std::string out;
  size_t n = 0;
  while (const dirent* e = ::readdir(d)) {
    std::string_view entry = e->d_name;
    if (entry == "." || entry == "..") continue;
    if (n++ == kMax) {
      out += ", ...";
      break;
    }
    out += (out.empty() ? "" : ", ") + std::string(entry);
  }
  ::closedir(d);
  return out;
}

// Whether `from` and `to` are two directory entries of one non-directory inode. Not
// merely one inode: one entry can be reached by two spellings — a case-insensitive
// directory (ext4 casefold: "Foo" and "foo"), or the same directory under two paths
// (a bind mount below the root) — and removing "one of the names" would then remove the
// file. So: the inode has at least two links, and the two entries are in different
// directories, or in one directory that compares names byte for byte, under different
// names.
bool TwoNamesOfOneFile(const Parent& from, const Parent& to) {
  struct stat a {
  }, b{};
  if (::fstatat(from.fd.get(), from.name.c_str(), &a, AT_SYMLINK_NOFOLLOW) != 0 ||
      S_ISDIR(a.st_mode) || a.st_nlink < 2 ||
      ::fstatat(to.fd.get(), to.name.c_str(), &b, AT_SYMLINK_NOFOLLOW) != 0 ||
      a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
    return false;
  }
  struct stat pa {
  }, pb{};
  if (::fstat(from.fd.get(), &pa) != 0 || ::fstat(to.fd.get(), &pb) != 0) return false;
  if (pa.st_dev != pb.st_dev || pa.st_ino != pb.st_ino) return true;  // two directories
  if (from.name == to.name) return false;  // one entry, two paths to its directory
  // FS_IOC_GETFLAGS reads and writes an int, whatever its declaration says. A
  // filesystem without attribute flags (ENOTTY) compares names byte for byte.
  int attrs = 0;
  if (::ioctl(from.fd.get(), FS_IOC_GETFLAGS, &attrs) != 0) return errno == ENOTTY;
  return (attrs & FS_CASEFOLD_FL) == 0;
}

// Type of the entry itself (never followed).
Result<struct stat> StatEntry(const Parent& parent, std::string_view path) {
  struct stat st {};
  if (::fstatat(parent.fd.get(), parent.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, fmt::format("fstatat {}", path));
  }
  return st;
}

// Opens an existing regular file or directory for metadata changes, refusing other
// types before open (a FIFO must not be opened at all).
Result<UniqueFd> OpenForMeta(const Parent& parent, const struct stat& st, std::string_view path) {
  RETURN_IF_ERROR(CheckFileType(st.st_mode, path));
  ASSIGN_OR_RETURN(UniqueFd fd,
                   OpenBeneath(parent.fd.get(), parent.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK,
                               fmt::format("metadata of {}", path)));
  struct stat now {};
  RETURN_IF_ERROR(FstatFd(fd.get(), &now, path));
  if (now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
    return Unavailable(fmt::format("{}: replaced while being opened", path));
  }
  return fd;
}

}  // namespace

Status Batch::Apply(const OpMkdir& op, Touched& touched) {
  ASSIGN_OR_RETURN(Parent parent, OpenParent(tree_->root_.get(), op.path));
  // 0700 until the replicated mode is set on the fd (and the umask cannot interfere).
  if (::mkdirat(parent.fd.get(), parent.name.c_str(), 0700) != 0) {
    return ErrnoStatus(errno, fmt::format("mkdirat {}", op.path));
  }
  ASSIGN_OR_RETURN(UniqueFd dir,
                   OpenBeneath(parent.fd.get(), parent.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                               fmt::format("new directory {}", op.path)));
  uint64_t stripped = 0;
  Status meta = ApplyMetaToFd(dir.get(), op.meta, /*is_dir=*/true, tree_->options_.allow_privileged,
                              op.path, &stripped);
  tree_->stats_.setid_bits_stripped += stripped;
  RETURN_IF_ERROR(meta);
  RETURN_IF_ERROR(touched.Add(parent.fd.get(), DirOf(op.path)));
  return touched.Add(dir.get(), op.path);
}

Status Batch::Apply(const OpRmdir& op, Touched& touched) {
  ASSIGN_OR_RETURN(Parent parent, OpenParent(tree_->root_.get(), op.path));
  if (::unlinkat(parent.fd.get(), parent.name.c_str(), AT_REMOVEDIR) != 0) {
    const int err = errno;
    if (err == ENOTEMPTY) {
      return ErrnoStatus(err, fmt::format("rmdir {} (it holds {})", op.path,
                                          FirstNames(parent.fd.get(), parent.name)));
    }
    return ErrnoStatus(err, fmt::format("rmdir {}", op.path));
  }
  return touched.Add(parent.fd.get(), DirOf(op.path));
}

Status Batch::Apply(const OpUnlink& op, Touched& touched) {
  ASSIGN_OR_RETURN(Parent parent, OpenParent(tree_->root_.get(), op.path));
  if (::unlinkat(parent.fd.get(), parent.name.c_str(), 0) != 0) {
    return ErrnoStatus(errno, fmt::format("unlink {}", op.path));
  }
  return touched.Add(parent.fd.get(), DirOf(op.path));
}

Status Batch::Apply(const OpRename& op, Touched& touched) {
  ASSIGN_OR_RETURN(Parent from, OpenParent(tree_->root_.get(), op.from));
  ASSIGN_OR_RETURN(Parent to, OpenParent(tree_->root_.get(), op.to));
  unsigned flags = 0;
  if (op.mode == RenameMode::kNoReplace) flags = RENAME_NOREPLACE;
  if (op.mode == RenameMode::kExchange) flags = RENAME_EXCHANGE;
  if (flags == 0 && op.from != op.to && TwoNamesOfOneFile(from, to)) {
    // rename(2) between two names of one inode does nothing and leaves both. On the
    // primary they were two files (a rename between links of one inode makes no event),
    // but here they can be one: a LINK of this sender made them so, and the primary has
    // replaced one of them since. What the primary ended with is `to` holding `from`'s
    // file and `from` gone; `to` holds it already, so `from` goes. (Without this, `from`
    // stayed, and a later RMDIR of its directory failed as not empty.)
    if (::unlinkat(from.fd.get(), from.name.c_str(), 0) != 0) {
      return ErrnoStatus(errno, fmt::format("rename {} to {}: unlink {}, another name of the "
                                            "same file",
                                            op.from, op.to, op.from));
    }
    return touched.Add(from.fd.get(), DirOf(op.from));
  }
  if (::renameat2(from.fd.get(), from.name.c_str(), to.fd.get(), to.name.c_str(), flags) != 0) {
    return ErrnoStatus(errno, fmt::format("rename {} to {}", op.from, op.to));
  }
  RETURN_IF_ERROR(touched.Add(from.fd.get(), DirOf(op.from)));
  return touched.Add(to.fd.get(), DirOf(op.to));
}

Status Batch::Apply(const OpLink& op, Touched& touched) {
  ASSIGN_OR_RETURN(Parent from, OpenParent(tree_->root_.get(), op.existing));
  ASSIGN_OR_RETURN(Parent to, OpenParent(tree_->root_.get(), op.new_path));
  // flags 0: a symlink is linked as itself, never followed.
  if (::linkat(from.fd.get(), from.name.c_str(), to.fd.get(), to.name.c_str(), 0) == 0) {
    return touched.Add(to.fd.get(), DirOf(op.new_path));
  }
  if (errno != EEXIST) {
    return ErrnoStatus(errno, fmt::format("link {} to {}", op.new_path, op.existing));
  }
  // The name exists (the primary re-linked a name to a new version of the content):
  // link under a temp name, then rename over it, so the name never goes missing.
  std::string temp;
  for (int attempt = 0; attempt < kTempNameAttempts && temp.empty(); ++attempt) {
    std::string name = NewTempName();
    if (::linkat(from.fd.get(), from.name.c_str(), to.fd.get(), name.c_str(), 0) == 0) {
      temp = std::move(name);
    } else if (errno != EEXIST) {
      return ErrnoStatus(errno, fmt::format("link temp for {}", op.new_path));
    }
  }
  if (temp.empty())
    return Status(Code::kAlreadyExists, fmt::format("temp names for {}", op.new_path));
  // rename(2) between two names of one inode does nothing and leaves both: drop the temp.
  struct stat a {
  }, b{};
  bool same = ::fstatat(to.fd.get(), temp.c_str(), &a, AT_SYMLINK_NOFOLLOW) == 0 &&
              ::fstatat(to.fd.get(), to.name.c_str(), &b, AT_SYMLINK_NOFOLLOW) == 0 &&
              a.st_dev == b.st_dev && a.st_ino == b.st_ino;
  if (same || ::renameat(to.fd.get(), temp.c_str(), to.fd.get(), to.name.c_str()) != 0) {
    int err = errno;
    ::unlinkat(to.fd.get(), temp.c_str(), 0);
    if (!same) return ErrnoStatus(err, fmt::format("link {} over existing name", op.new_path));
  }
  return touched.Add(to.fd.get(), DirOf(op.new_path));
}

Status Batch::Apply(const OpSymlink& op, Touched& touched) {
  ASSIGN_OR_RETURN(Parent parent, OpenParent(tree_->root_.get(), op.path));
  int dfd = parent.fd.get();
  std::string temp;
  for (int attempt = 0; attempt < kTempNameAttempts && temp.empty(); ++attempt) {
    std::string name = NewTempName();
    if (::symlinkat(op.target.c_str(), dfd, name.c_str()) == 0) {
      temp = std::move(name);
    } else if (errno != EEXIST) {
      return ErrnoStatus(errno, fmt::format("symlinkat temp for {}", op.path));
    }
  }
  if (temp.empty()) return Status(Code::kAlreadyExists, fmt::format("temp names for {}", op.path));
  Status s;
  if (op.owner &&
      ::fchownat(dfd, temp.c_str(), op.owner->uid, op.owner->gid, AT_SYMLINK_NOFOLLOW) != 0) {
    s = ErrnoStatus(errno, fmt::format("lchown symlink {}", op.path));
  }
  if (s.ok() && op.mtime_ns) {
    timespec ts[2] = {{0, UTIME_OMIT}, ToTimespec(*op.mtime_ns)};
    if (::utimensat(dfd, temp.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
      s = ErrnoStatus(errno, fmt::format("set mtime of symlink {}", op.path));
    }
  }
  if (s.ok() && ::renameat(dfd, temp.c_str(), dfd, parent.name.c_str()) != 0) {
    s = ErrnoStatus(errno, fmt::format("publish symlink {}", op.path));
  }
  if (!s.ok()) {
    ::unlinkat(dfd, temp.c_str(), 0);  // best effort; start-up cleanup catches the rest
    return s;
  }
  return touched.Add(dfd, DirOf(op.path));
}

Status Batch::Apply(const OpSetMeta& op, Touched& touched) {
  ASSIGN_OR_RETURN(Parent parent, OpenParent(tree_->root_.get(), op.path));
  ASSIGN_OR_RETURN(struct stat st, StatEntry(parent, op.path));
  const MetaChange& c = op.change;
  if (S_ISLNK(st.st_mode)) {
    // A symlink has no mode on Linux; owner and mtime are set on the link itself.
    int dfd = parent.fd.get();
    if (c.owner && ::fchownat(dfd, parent.name.c_str(), c.owner->uid, c.owner->gid,
                              AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoStatus(errno, fmt::format("lchown {}", op.path));
    }
    if (c.mtime_ns) {
      timespec ts[2] = {{0, UTIME_OMIT}, ToTimespec(*c.mtime_ns)};
      if (::utimensat(dfd, parent.name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoStatus(errno, fmt::format("set mtime of symlink {}", op.path));
      }
    }
    return touched.Add(dfd, DirOf(op.path));
  }
  ASSIGN_OR_RETURN(UniqueFd fd, OpenForMeta(parent, st, op.path));
  if (c.owner && ::fchown(fd.get(), c.owner->uid, c.owner->gid) != 0) {
    return ErrnoStatus(errno,
                       fmt::format("fchown {} to {}:{}", op.path, c.owner->uid, c.owner->gid));
  }
  if (c.mode) {
    ASSIGN_OR_RETURN(ModeDecision mode,
                     DecideMode(*c.mode, S_ISDIR(st.st_mode), tree_->options_.allow_privileged));
    if (mode.stripped) ++tree_->stats_.setid_bits_stripped;
    if (::fchmod(fd.get(), static_cast<mode_t>(mode.mode)) != 0) {
      return ErrnoStatus(errno, fmt::format("fchmod {} to {:o}", op.path, mode.mode));
    }
  }
  if (c.mtime_ns) {
    timespec ts[2] = {{0, UTIME_OMIT}, ToTimespec(*c.mtime_ns)};
    if (::futimens(fd.get(), ts) != 0)
      return ErrnoStatus(errno, fmt::format("futimens {}", op.path));
  }
  return touched.Add(fd.get(), op.path);
}

Status Batch::Apply(const OpSetXattr& op, Touched& touched) {
  ASSIGN_OR_RETURN(Parent parent, OpenParent(tree_->root_.get(), op.path));
  ASSIGN_OR_RETURN(struct stat st, StatEntry(parent, op.path));
  if (S_ISLNK(st.st_mode)) {
    return Unimplemented(fmt::format("{}: xattrs on symbolic links are not replicated", op.path));
  }
  ASSIGN_OR_RETURN(UniqueFd fd, OpenForMeta(parent, st, op.path));
  if (::fsetxattr(fd.get(), op.name.c_str(), op.value.data(), op.value.size(), 0) != 0) {
    return ErrnoStatus(errno, fmt::format("fsetxattr {} on {}", op.name, op.path));
  }
  return touched.Add(fd.get(), op.path);
}

Status Batch::Apply(const OpRemoveXattr& op, Touched& touched) {
  ASSIGN_OR_RETURN(Parent parent, OpenParent(tree_->root_.get(), op.path));
  ASSIGN_OR_RETURN(struct stat st, StatEntry(parent, op.path));
  if (S_ISLNK(st.st_mode)) {
    return Unimplemented(fmt::format("{}: xattrs on symbolic links are not replicated", op.path));
  }
  ASSIGN_OR_RETURN(UniqueFd fd, OpenForMeta(parent, st, op.path));
  // Already absent is the state the primary asked for.
  if (::fremovexattr(fd.get(), op.name.c_str()) != 0 && errno != ENODATA) {
    return ErrnoStatus(errno, fmt::format("fremovexattr {} on {}", op.name, op.path));
  }
  return touched.Add(fd.get(), op.path);
}

Status Batch::Apply(const OpPublish& op, Touched& touched) {
  StagedFile& file = files_[op.id];
  if (file.abandoned) return Status::Ok();
  if (file.inplace) {  // written and fsynced in place already; no name changes
    file.published = true;
    ++tree_->stats_.files_published;
    return Status::Ok();
  }
  int staging = staging_dirs_[file.dir].get();
  // Beside its destination, the temp's directory is the destination's parent: every
  // operation of the batch before this one is applied, and none of them created, moved
  // or removed that directory or an ancestor (Stage checked), so the path still names
  // the directory resolved at staging. Otherwise (staged in the root) the parent is
  // resolved now, after them.
  Parent parent;
  if (file.beside) {
    parent.name = std::string(SplitPath(file.path).name);
  } else {
    ASSIGN_OR_RETURN(parent, OpenParent(tree_->root_.get(), file.path));
  }
  const int parent_fd = file.beside ? staging : parent.fd.get();
  unsigned flags = file.publish == PublishMode::kNoReplace ? RENAME_NOREPLACE : 0;
  if (::renameat2(staging, file.temp_name.c_str(), parent_fd, parent.name.c_str(), flags) != 0) {
    return ErrnoStatus(errno,
                       fmt::format("publish {} (rename from {})", file.path, file.temp_name));
  }
  file.published = true;
  file.fd.reset();  // durable already; free the descriptor
  ++tree_->stats_.files_published;
  if (!file.beside) RETURN_IF_ERROR(touched.Add(parent_fd, DirOf(file.path)));
  // A temp staged in the root leaves an entry there too.
  const std::string what = file.beside ? DirOf(file.path) : std::string("staging directory");
  return touched.AddStaging(file.dir, staging, what);
}

}  // namespace hasync::engine::apply
