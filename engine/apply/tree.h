// Tree and Batch: how the standby applies replicated changes to one sync root,
// atomically and durably (DESIGN §7). No network here: the applier decodes frames and
// drives a Batch; this layer owns every syscall that changes the tree.
//
// Contract:
// - A Tree holds an O_PATH|O_DIRECTORY fd on the sync root. Every path is root-relative,
//   already validated by wire/, and resolved beneath that fd with openat2 (resolve.h):
//   a symbolic link in any directory component is refused, and a final component is
//   never followed (the *at() calls act on the link itself).
// - A Batch records operations in the primary's order and applies them in Commit():
//     1. every staged file (temp written, metadata set on the fd, XXH3-128 verified when
//        it was finished) is made durable: fsync each, or one syncfs;
//     2. operations run in order: publishes are renames of the temps into place,
//        namespace operations are the matching *at() calls;
//     3. each directory touched (and each file whose metadata changed in place) is made
//        durable once;
//     4. only then Commit returns OK, and only then may the caller acknowledge.
//   On any error Commit returns it (what, which path, errno text), removes every temp
//   not yet published, and the caller must NOT acknowledge. A prefix of the batch may be
//   applied (not necessarily durable); the primary re-sends from the last ack. Nothing
//   is retried here.
// - Content is published only after its end-to-end hash matched (DataLoss otherwise,
//   with the temp removed). A batch in which any step failed cannot commit.
// - A file takes its place in the batch order when it is begun (BeginFile), so the
//   applier records the preceding operations first.
// Thread safety: one thread per Batch. Two Batches of one Tree may run on two threads
// (the next batch staged while the previous one commits: engine/sync/committer.h); what
// they share is the root fd, the options, the FsOps (SyncAll only from the committing
// thread) and TreeStats (atomic counters). The Tree must outlive every Batch made on it.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/apply/fs_ops.h"

namespace hasync::engine::apply {

// Limits. A staged file keeps its temp fd open until commit, so kMaxBatchFiles bounds
// the descriptors a batch holds (the service raises RLIMIT_NOFILE above it).
inline constexpr size_t kMaxBatchOps = 65'536;
inline constexpr size_t kMaxBatchFiles = 4'096;
inline constexpr uint64_t kMaxFileBytes = uint64_t{1} << 44;  // 16 TiB, ext4's limit
inline constexpr size_t kHashChunkBytes = size_t{1} << 20;
inline constexpr int kTempNameAttempts = 16;
inline constexpr size_t kMaxCleanupEntries = 10'000'000;
inline constexpr size_t kMaxCleanupDepth = 512;
inline constexpr size_t kMaxCloneSegments = size_t{1} << 24;
static_assert(kMaxBatchFiles <= kMaxBatchOps, "every staged file is one batch op");
// A block patch of a file at least this large is written in place under an undo record
// when the filesystem cannot reflink (inplace.h). The sender only sends deltas of files
// of at least 1 MiB (delta_min_bytes), so by default every delta qualifies.
inline constexpr uint64_t kInPlaceMinFileBytes = uint64_t{1} << 20;

// How staged temps and touched directories are made durable.
enum class SyncStrategy {
  kFsyncEach,  // FsOps::SyncAll over every fd (sequential by default, io_uring-ready)
  kSyncfs,     // one syncfs on the root's filesystem; right when the spool has its own fs
};

struct TreeOptions {
  SyncStrategy sync = SyncStrategy::kFsyncEach;
  // Keep setuid/setgid on files and allow security.capability (policy.h).
  bool allow_privileged = false;
  // Directory for in-place patch undo records (inplace.h), created 0700 by Open; empty
  // disables in-place patching (every block patch goes through a temp copy).
  std::string undo_dir;
  uint64_t inplace_min_bytes = kInPlaceMinFileBytes;
};

struct Owner {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

struct Xattr {
  std::string name;
  std::string value;  // raw bytes
};

// Metadata of a new file or directory. Applied on the fd in the order owner, mode,
// xattrs, mtime (chown clears setuid, and anything but futimens would move the mtime).
struct FileMeta {
  uint32_t mode = 0644;             // permission bits, within 07777
  std::optional<Owner> owner;       // unset: leave hasync's own uid/gid
  std::optional<int64_t> mtime_ns;  // since the epoch; unset: leave the creation time
  std::vector<Xattr> xattrs;        // the full set for the new inode
};

// A metadata change on an existing path (any of the three).
struct MetaChange {
  std::optional<uint32_t> mode;
  std::optional<Owner> owner;
  std::optional<int64_t> mtime_ns;
};

// What a staged file starts from.
enum class ContentBase {
  kEmpty,    // a new file: only the written extents hold data, the rest are holes
  kCurrent,  // block patch: the current file's content, cloned, then extents written
};

enum class PublishMode { kReplace, kNoReplace };
enum class RenameMode { kReplace, kNoReplace, kExchange };

// One counter of TreeStats. Relaxed atomic: the standby stages the next batch on its loop
// thread while the previous one commits on the receiver's committer thread
// (engine/sync/committer.h), and both count into the same Tree. Reads as a uint64_t.
class StatCounter {
 public:
  StatCounter() = default;
  StatCounter(const StatCounter& other) : value_(other.load()) {}
  StatCounter& operator=(const StatCounter& other) {
    value_.store(other.load(), std::memory_order_relaxed);
    return *this;
  }
  StatCounter& operator++() {
    value_.fetch_add(1, std::memory_order_relaxed);
    return *this;
  }
  StatCounter& operator+=(uint64_t n) {
    value_.fetch_add(n, std::memory_order_relaxed);
    return *this;
  }
  uint64_t load() const { return value_.load(std::memory_order_relaxed); }
  operator uint64_t() const { return load(); }  // NOLINT: reads like the plain counter it was

 private:
  std::atomic<uint64_t> value_{0};
};

// A flag both standby threads use, like StatCounter: the committer thread sets it when a
// rollback fails, the loop thread's next Batch reads it. Copyable so Tree stays movable.
class SharedFlag {
 public:
  SharedFlag() = default;
  SharedFlag(const SharedFlag& other) : value_(other.load()) {}
  SharedFlag& operator=(const SharedFlag& other) {
    value_.store(other.load(), std::memory_order_release);
    return *this;
  }
  SharedFlag& operator=(bool value) {
    value_.store(value, std::memory_order_release);
    return *this;
  }
  bool load() const { return value_.load(std::memory_order_acquire); }
  operator bool() const { return load(); }  // NOLINT: reads like the plain bool it was

 private:
  std::atomic<bool> value_{false};
};

struct TreeStats {
  StatCounter batches_committed;
  StatCounter batches_failed;
  StatCounter files_published;
  StatCounter bytes_written;
  StatCounter bytes_cloned;  // unchanged ranges carried over by reflink or copy
  StatCounter setid_bits_stripped;
  StatCounter temps_removed;  // abandoned temps and stale ones found at start
  StatCounter file_syncs;
  StatCounter dir_syncs;
  StatCounter syncfs_calls;
  StatCounter files_patched_in_place;  // block patches written into the live file
  StatCounter undo_bytes;              // old bytes saved in undo records
  StatCounter inplace_fallbacks;       // in-place patches that went through a temp instead
  StatCounter inplace_rollbacks;       // files restored from an undo record
};

struct UndoReport;

struct CleanupReport {
  uint64_t removed = 0;
  uint64_t visited = 0;
};

class Batch;
class InPlacePatch;

class Tree {
 public:
  // Opens `root_path` (absolute, an existing directory). fs defaults to DefaultFsOps();
  // a non-default FsOps must outlive the Tree.
  static Result<Tree> Open(std::string_view root_path, const TreeOptions& options = {},
                           FsOps* fs = nullptr);

  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;
  Tree(Tree&&) noexcept = default;
  Tree& operator=(Tree&&) noexcept = default;
  ~Tree() = default;

  // Removes every leftover kTempPrefix file or symlink under the root (a bounded walk
  // that never follows symlinks nor crosses into other entries). Run once at start,
  // before any Batch.
  Result<CleanupReport> RemoveStaleTemps();
  // Rolls back every in-place patch an undo record still covers (a crash, or a rollback
  // that failed). Run once at start before any Batch, before anything is served or
  // acknowledged; a no-op without an undo directory. Defined in inplace.cpp.
  Result<UndoReport> RecoverUndo();

  int root_fd() const { return root_.get(); }
  const std::string& root_path() const { return root_path_; }
  const TreeOptions& options() const { return options_; }
  FsOps& fs() const { return *fs_; }
  const TreeStats& stats() const { return stats_; }

 private:
  friend class Batch;
  Tree(UniqueFd root, std::string root_path, const TreeOptions& options, FsOps* fs)
      : root_(std::move(root)), root_path_(std::move(root_path)), options_(options), fs_(fs) {}

  UniqueFd root_;
  std::string root_path_;
  TreeOptions options_;
  FsOps* fs_;
  TreeStats stats_;
  UniqueFd undo_dir_;        // in-place patching is on when this is open
  int reflink_ = -1;         // -1 not probed yet, 0 the root's filesystem cannot, 1 can
  SharedFlag undo_pending_;  // a record a failed rollback left: recover before a commit
};

class Batch {
 public:
  using FileId = size_t;

  // Rolls back what a failed earlier commit left under an undo record first (inplace.h);
  // if that fails the batch cannot commit.
  explicit Batch(Tree& tree);
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
  Batch(Batch&&) noexcept = default;
  Batch& operator=(Batch&&) = delete;
  // Removes every temp that was not published.
  ~Batch();

  // Namespace operations, recorded now and run at Commit in this order. They fail now
  // only on limits, reserved names and policy (mode, xattr names).
  Status Mkdir(std::string_view path, const FileMeta& meta);
  Status Rmdir(std::string_view path);
  Status Unlink(std::string_view path);
  Status Rename(std::string_view from, std::string_view to, RenameMode mode = RenameMode::kReplace);
  Status Link(std::string_view existing, std::string_view new_path);
  // The link's target is stored byte for byte and never resolved.
  Status Symlink(std::string_view path, std::string_view target, std::optional<Owner> owner = {},
                 std::optional<int64_t> mtime_ns = {});
  Status SetMetadata(std::string_view path, const MetaChange& change);
  Status SetXattr(std::string_view path, std::string_view name, std::string_view value);
  Status RemoveXattr(std::string_view path, std::string_view name);

  // Content. BeginFile creates the temp now (beside its destination, or in the root when
  // an earlier operation of this batch moves or creates that directory) and places its
  // publish in the batch order. kCurrent clones the current file as the base: it must be
  // a regular file not touched earlier in this batch.
  Result<FileId> BeginFile(std::string_view path, ContentBase base,
                           PublishMode publish = PublishMode::kReplace);
  Status WriteExtent(FileId id, uint64_t offset, std::span<const std::byte> data);
  // Sets the final size (holes stay holes), applies `meta` on the fd and checks the
  // content's XXH3-128 against `expected`: DataLoss and the temp removed on mismatch.
  Status FinishFile(FileId id, uint64_t size, const FileMeta& meta, Hash128 expected);

  // Drops a file begun in this batch (the primary gave up on this version, e.g. the file
  // changed while it was being sent): its temp is removed and its publish leaves the
  // batch order. Unlike a failed step this does not poison the batch. Idempotent.
  Status AbandonFile(FileId id);

  // Applies and makes durable; see the contract at the top. The batch is spent after.
  Status Commit();

  size_t op_count() const { return ops_.size(); }
  size_t file_count() const { return files_.size(); }

 private:
  struct StagedFile {
    std::string path;
    size_t dir = 0;  // index into staging_dirs_
    // Staged in its destination's own directory (no earlier operation of the batch
    // created, moved or removed it or an ancestor): at publish that staging fd is the
    // destination's parent, with no second lookup.
    bool beside = false;
    std::string temp_name;
    UniqueFd fd;
    uint64_t written_end = 0;
    // Created empty for this batch (no clone, no copy): its size is then data_end, the
    // end of its last non-empty write, and FinishFile truncates only if that is not the
    // final size.
    bool fresh = false;
    uint64_t data_end = 0;
    // Hash of the content as written, kept while the temp started empty (no clone) and
    // every extent began at or after the end of the one before (the gaps are holes,
    // hashed as zeros). FinishFile then checks it instead of reading the temp back.
    // Null until the first extent; `in_order` false falls back to the read-back.
    std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> stream{nullptr, XXH3_freeState};
    uint64_t stream_end = 0;
    bool in_order = true;
    PublishMode publish = PublishMode::kReplace;
    bool finished = false;
    bool published = false;
    bool abandoned = false;
    // Non-null while the file is a block patch to be written in place (inplace.h); the
    // temp fields are unused until a fallback turns it into a temp.
    std::shared_ptr<InPlacePatch> inplace;
  };
  struct OpMkdir {
    std::string path;
    FileMeta meta;
  };
  struct OpRmdir {
    std::string path;
  };
  struct OpUnlink {
    std::string path;
  };
  struct OpRename {
    std::string from;
    std::string to;
    RenameMode mode;
  };
  struct OpLink {
    std::string existing;
    std::string new_path;
  };
  struct OpSymlink {
    std::string path;
    std::string target;
    std::optional<Owner> owner;
    std::optional<int64_t> mtime_ns;
  };
  struct OpSetMeta {
    std::string path;
    MetaChange change;
  };
  struct OpSetXattr {
    std::string path;
    std::string name;
    std::string value;
  };
  struct OpRemoveXattr {
    std::string path;
    std::string name;
  };
  struct OpPublish {
    FileId id;
  };
  using Op = std::variant<OpMkdir, OpRmdir, OpUnlink, OpRename, OpLink, OpSymlink, OpSetMeta,
                          OpSetXattr, OpRemoveXattr, OpPublish>;
  using InodeKey = std::pair<dev_t, ino_t>;

  // Fds made durable after the operations ran: directories and files changed in place,
  // each once.
  class Touched {
   public:
    Status Add(int fd, std::string_view what);
    // Add for staging directory `index` of the batch, looked at once per commit.
    Status AddStaging(size_t index, int fd, std::string_view what);
    const std::vector<int>& fds() const { return raw_; }
    const std::string& name(size_t i) const { return names_[i]; }

   private:
    std::map<InodeKey, size_t> index_;
    std::vector<bool> staging_added_;
    std::vector<UniqueFd> owned_;
    std::vector<int> raw_;
    std::vector<std::string> names_;
  };

  Status Record(Op op);
  Status CheckPathForRecord(std::string_view path) const;
  void NoteNamespace(std::string_view path);
  bool TouchedEarlier(std::string_view path) const;
  Status Poison(Status status);
  Result<size_t> StagingDir(std::string_view dir, std::string_view for_path);
  Status CloneBase(StagedFile& file);
  Status VerifyHash(StagedFile& file, uint64_t size, Hash128 expected);
  Status CheckHash(const StagedFile& file, Hash128 got, Hash128 expected);
  void RemoveTemp(StagedFile& file);
  void RemoveUnpublishedTemps();
  Status CommitSteps();
  // In place (inplace.cpp).
  bool WantsInPlace(std::string_view path, std::shared_ptr<InPlacePatch>* patch);
  Status FallBackToTemp(StagedFile& file);
  Status WriteInPlaceExtent(StagedFile& file, uint64_t offset, std::span<const std::byte> data);
  Status FinishInPlace(StagedFile& file, uint64_t size, const FileMeta& meta, Hash128 expected);
  Status BeginInPlaceCommit(std::vector<int>& fds, std::vector<std::string>& names);
  Status EndInPlaceCommit(Status status);
  Status SyncFds(std::span<const int> fds, bool dirs, const std::vector<std::string>& names);

  Status Apply(const OpMkdir& op, Touched& touched);
  Status Apply(const OpRmdir& op, Touched& touched);
  Status Apply(const OpUnlink& op, Touched& touched);
  Status Apply(const OpRename& op, Touched& touched);
  Status Apply(const OpLink& op, Touched& touched);
  Status Apply(const OpSymlink& op, Touched& touched);
  Status Apply(const OpSetMeta& op, Touched& touched);
  Status Apply(const OpSetXattr& op, Touched& touched);
  Status Apply(const OpRemoveXattr& op, Touched& touched);
  Status Apply(const OpPublish& op, Touched& touched);

  Tree* tree_;
  std::vector<Op> ops_;
  std::vector<StagedFile> files_;
  std::vector<UniqueFd> staging_dirs_;
  std::map<InodeKey, size_t> staging_index_;
  // Directory path (root-relative, "" = the root) → index into staging_dirs_, so each
  // staging directory is resolved once per batch (StagingDir).
  std::map<std::string, size_t, std::less<>> staging_by_path_;
  // Paths created, removed or moved by recorded operations (see TouchedEarlier).
  std::set<std::string, std::less<>> namespace_paths_;
  std::vector<std::byte> hash_buf_;
  uint64_t inplace_bytes_ = 0;  // buffered by in-place patches (kInPlaceMaxBatchBytes)
  std::string undo_record_;     // the record Commit wrote, until it is removed
  Status poisoned_;
  bool spent_ = false;
};

// Applies `meta` to an open regular file or directory: fchown, fchmod, fsetxattr,
// futimens, in that order. `path` is for messages; `stripped` counts setid bits removed.
// `known`: an fstat of fd taken since the last change to it, or null; an owner or mode
// it already shows is not set again (each is a journalled inode update on ext4).
Status ApplyMetaToFd(int fd, const FileMeta& meta, bool is_dir, bool allow_privileged,
                     std::string_view path, uint64_t* stripped, const struct stat* known = nullptr);

// A fresh kTempPrefix name: O_CREAT|O_EXCL regular file (mode 0600) in `dir_fd`.
struct TempFile {
  std::string name;
  UniqueFd fd;
};
// Copies the data segments of src (SEEK_DATA/SEEK_HOLE) to the same offsets in the empty
// dst and sets dst's size, so holes stay holes. *copied grows by the bytes copied.
Status CopySparse(FsOps& fs, int src_fd, int dst_fd, uint64_t size, std::string_view path,
                  uint64_t* copied);

Result<TempFile> CreateTempFile(int dir_fd, std::string_view for_path);
std::string NewTempName();

}  // namespace hasync::engine::apply
