// In-place block patches under an undo record (issue 19): where the sync root's
// filesystem cannot share blocks (FICLONE fails: ext4), a block patch of a large file
// writes the changed extents into the live file instead of copying the whole file into a
// temp. Crash safety comes from an undo record written and made durable first.
//
// Contract (docs/APPLY.md "In-place patching" has the argument):
// - A Batch holds each in-place patch's new extents in memory (InPlacePatch) until
//   Commit; nothing touches the live file before Commit.
// - Commit writes ONE undo record for all its in-place files into the tree's undo
//   directory: per file the old bytes of every range that will be overwritten or cut
//   off, the old size, mode, owner, mtime and policy-allowed xattrs, the inode, and the
//   expected new hash; the record ends with its own XXH3-128. The record and the
//   directory are fsynced before the first byte of a live file changes.
// - Then the extents are written in place, the size set, the metadata applied, and the
//   files fsynced with the batch's temps; the batch's operations and directory syncs
//   run; only then is the record unlinked and the undo directory fsynced, and only then
//   does Commit return OK (so the ACK can only follow a removed record).
// - A record on disk therefore means "not acknowledged": rolling back (old bytes, old
//   size, old metadata, fsync) is always allowed. A Batch that fails after writing the
//   record rolls back at once; start-up (RecoverUndo) rolls back whatever a crash left.
//   A torn record (bad checksum) was never made durable, so no live byte was written
//   under it: it is removed without touching anything.
// Thread safety: none (one thread owns a Tree).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/apply/fs_ops.h"
#include "engine/apply/tree.h"

namespace hasync::engine::apply {

// Bytes a batch may hold for its in-place patches: the new extents buffered until commit
// plus the old bytes saved in the undo record. Past it a patch falls back to the temp.
inline constexpr uint64_t kInPlaceMaxBatchBytes = uint64_t{32} << 20;
// A patch whose undo would exceed this fraction of the file (1/kInPlaceMaxUndoDivisor)
// is cheaper as a temp copy: fall back.
inline constexpr uint64_t kInPlaceMaxUndoDivisor = 2;
// Extents one in-place patch may buffer (each is one map node).
inline constexpr size_t kInPlaceMaxExtents = 65'536;
// Bounds on a record read back at start-up.
inline constexpr uint64_t kUndoMaxRecordBytes = kInPlaceMaxBatchBytes + (uint64_t{64} << 20);
inline constexpr size_t kUndoMaxRecords = 1'024;
inline constexpr std::string_view kUndoPrefix = "undo.";

// What an undo record keeps of one file.
struct UndoRange {
  uint64_t offset = 0;
  std::vector<std::byte> bytes;
};
struct UndoEntry {
  std::string path;  // root-relative
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t old_size = 0;
  uint32_t mode = 0;  // permission bits (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_sec = 0;
  int64_t mtime_nsec = 0;
  std::vector<Xattr> xattrs;  // the old values of the policy-allowed names
  uint64_t new_size = 0;
  Hash128 new_hash{};
  std::vector<UndoRange> ranges;
};

// One file patched in place: its live fd and the new extents, held until Commit.
class InPlacePatch {
 public:
  InPlacePatch(std::string path, UniqueFd fd, const struct stat& st)
      : path_(std::move(path)), fd_(std::move(fd)), dev_(st.st_dev), ino_(st.st_ino),
        old_size_(static_cast<uint64_t>(st.st_size)) {}

  // Overlays `data` at `offset`: a later write wins where two overlap.
  void Put(uint64_t offset, std::span<const std::byte> data);
  size_t extent_count() const { return extents_.size(); }
  uint64_t buffered() const { return buffered_; }
  // Old bytes the undo record must keep if the file ends up: the parts of
  // the extents inside the old size, plus the tail a shrink to `final_size` cuts off.
  uint64_t UndoBytes(uint64_t final_size) const;
  // XXH3-128 of the content the file will hold: the live file with the extents laid
  // over it, cut or zero-extended to `final_size`. Reads the live file; changes nothing.
  Result<Hash128> HashResult(uint64_t final_size, std::vector<std::byte>& buf) const;
  // Writes every extent to `dst_fd` (the fallback temp, or the live file).
  Status WriteExtents(FsOps& fs, int dst_fd, std::string_view what) const;

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  dev_t dev() const { return dev_; }
  ino_t ino() const { return ino_; }
  uint64_t old_size() const { return old_size_; }
  const std::map<uint64_t, std::vector<std::byte>>& extents() const { return extents_; }

  // Set by FinishFile.
  uint64_t new_size = 0;
  FileMeta meta;
  Hash128 hash{};
  bool applied = false;  // the live file was written (Commit): roll back on failure
  UndoEntry undo;        // captured by Commit before the live file is touched

 private:
  std::string path_;
  UniqueFd fd_;
  dev_t dev_;
  ino_t ino_;
  uint64_t old_size_;
  std::map<uint64_t, std::vector<std::byte>> extents_;  // offset → bytes, disjoint
  uint64_t buffered_ = 0;
};

// Reads the old bytes, size and metadata the patch will change from the live file.
Result<UndoEntry> CaptureUndo(const InPlacePatch& patch, bool allow_privileged);
std::vector<std::byte> EncodeUndo(std::span<const UndoEntry> entries);
// DataLoss when the record is torn or not a record (bad magic, bounds, checksum).
Result<std::vector<UndoEntry>> DecodeUndo(std::span<const std::byte> record);

// Writes the record under a fresh kUndoPrefix name in `undo_dir_fd`, fsyncs it and the
// directory (through `fs`, so fault injection reaches it). Returns the name.
Result<std::string> WriteUndoRecord(FsOps& fs, int undo_dir_fd, std::span<const UndoEntry> entries);
// Unlinks the record and fsyncs the directory.
Status RemoveUndoRecord(FsOps& fs, int undo_dir_fd, const std::string& name);

// Writes the patch into the live file: extents, size, then metadata (owner, mode, the
// allowed xattrs replaced by meta's set, mtime). No fsync.
Status ApplyInPlace(FsOps& fs, InPlacePatch& patch, bool allow_privileged, uint64_t* stripped);

// Restores one file from its entry and fsyncs it. `fd` is the live file when the caller
// has it open (in-process rollback); -1 opens `entry.path` beneath `root_fd`. A path
// that is gone or holds another inode is left alone (*skipped set).
Status RollBack(FsOps& fs, int root_fd, int fd, const UndoEntry& entry, bool allow_privileged,
                bool* skipped);

struct UndoReport {
  uint64_t records = 0;      // records found
  uint64_t rolled_back = 0;  // files restored
  uint64_t skipped = 0;      // files gone or replaced since (left alone)
  uint64_t torn = 0;         // torn records removed without touching anything
};
// Every record in `undo_dir_fd` rolled back (newest first), then removed, then the
// directory fsynced (also with no record when `sync_dir`). Run before the node serves,
// acknowledges or computes a manifest.
Result<UndoReport> RecoverUndo(FsOps& fs, int root_fd, int undo_dir_fd, bool allow_privileged,
                               bool sync_dir);

// Creates (0700) and opens `path` as an undo directory.
Result<UniqueFd> OpenUndoDir(std::string_view path);
// "<state_dir>/undo/<16 hex digits of the root path's hash>": one directory per root.
std::string UndoDirFor(std::string_view state_dir, std::string_view root);

}  // namespace hasync::engine::apply
