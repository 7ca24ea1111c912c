// Sender: the primary's side of replication. It turns journal changes into protocol
// messages, keeping a model of what the standby holds so only differences move.
//
// How it decides (DESIGN §6): the journal says *what was touched*; the sender looks at
// the file as it is now and compares it with the model:
// - a file whose (size, mtime, mode, owner) match the model is not sent again;
// - a file that is another name of an inode the standby already holds under a name with
//   current content becomes a LINK (the Slurm `link X X.old` pattern ships no bytes);
// - a file the model holds with block hashes (≥ delta_min_bytes) ships only the blocks
//   whose XXH3-128 differ, as a delta (an append ships the tail);
// - otherwise the whole content ships, holes skipped (sparse files stay sparse);
// - after a content change of an inode with several names, the other names are linked
//   to the new version again, because the standby publishes content as a new inode.
// Every file version carries its XXH3-128; a file that changes while it is being read is
// aborted (FILE_ABORT) and queued again, up to kMaxReadRetries, then shipped as read (the
// event that changed it queues it once more anyway).
//
// The model (engine/sync/model.h, one per sync root) is what the standby will hold once
// everything sent is applied, in order. On a NACK or a lost connection it is no longer
// trustworthy: the caller drops the session and resyncs from a fresh manifest (DESIGN §6:
// "never a silent miss").
//
// Wire paths: sync root i's entry `p` is "i/p" on the wire, the root itself "i". Both
// nodes list the same roots in the same order (docs/CONFIG.md).
//
// Thread safety: none; the primary's event loop owns the sender.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/journal/journal.h"
#include "engine/scan/scanner.h"
#include "engine/sync/file_reader.h"
#include "engine/sync/model.h"
#include "wire/messages.h"

struct file_handle;  // <fcntl.h>

namespace hasync::engine {

// Where the sender's messages go. The transport adds the epoch and frames them.
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  // `seq` is the change sequence number for change messages, 0 for others.
  virtual Status Emit(uint64_t seq, wire::Message message) = 0;
  // Called between files during long walks (resync) so the transport can keep the
  // session alive (a PING when nothing else went out for a while).
  virtual Status Progress() { return Status::Ok(); }

  // Zero-copy sending (plain mode): whether the content of file version `seq`, whose
  // FILE_BEGIN was just emitted, is to be spliced from the file by the transport instead
  // of being emitted from the sender's buffers.
  virtual bool Splices(uint64_t /*seq*/) { return false; }
  // Queues an EXTENT of `length` bytes at `offset` that the transport splices from `file`
  // when it sends it (the bytes the sender read and hashed, unless the file changed).
  virtual Status EmitSpliced(uint64_t /*seq*/, uint64_t /*file_size*/, uint64_t /*offset*/,
                             uint32_t /*length*/, std::shared_ptr<const UniqueFd> /*file*/) {
    return Status(Code::kInternal, "this transport does not splice");
  }
  // Returns once every EmitSpliced extent has been taken from its file, so a check of
  // the file after this covers the bytes that went out.
  virtual Status WaitSpliced() { return Status::Ok(); }
};

inline constexpr uint32_t kDefaultBlockSize = 64 * 1024;
inline constexpr int kMaxReadRetries = 3;
inline constexpr size_t kMaxResyncBlockRequests = 4096;
// Names of one standby inode the sender keeps from a manifest (hard links of one file;
// a spool has two or three).
inline constexpr size_t kMaxLinkGroupNames = 256;

struct SenderOptions {
  uint32_t block_size = kDefaultBlockSize;
  uint64_t delta_min_bytes = 1 << 20;         // files at least this big keep block hashes
  uint32_t max_batch_changes = 1024;          // a COMMIT after this many changes…
  uint64_t max_batch_bytes = 8 << 20;         // …or this many content bytes
  uint64_t max_unacked_bytes = 256ull << 20;  // stop pumping past this (backpressure)
  uint32_t max_unacked_batches = 64;
  // An idle sender commits its open batch only while fewer batches than this await
  // their ACK (adaptive group commit: batches grow with the load).
  uint32_t max_inflight_commits = 1;
  bool replicate_xattrs = true;
  // File content is read through io_uring with read-ahead (FileReader); false: pread.
  bool io_uring_reads = true;
};

struct SenderStats {
  uint64_t files_sent = 0;
  uint64_t file_bytes_sent = 0;  // content bytes in EXTENT frames
  uint64_t links_sent = 0;
  uint64_t deltas_sent = 0;
  uint64_t resync_block_requests = 0;
  uint64_t unchanged_skipped = 0;
  uint64_t aborted_reads = 0;
  uint64_t batches = 0;
  uint64_t removes_deferred = 0;        // removals of a missing name that a later entry names
  uint64_t names_rechecked = 0;         // other names of an inode compared again (RecheckNames)
  uint64_t links_split = 0;             // resync: names the standby had linked, the primary not
  uint64_t event_inodes_rechecked = 0;  // events whose inode the name no longer held
};

class Sender {
 public:
  // root_fds are borrowed directory fds of the sync roots, in config order.
  Sender(std::vector<int> root_fds, SenderOptions options, MessageSink& sink);

  // ---- Resync: the model becomes the standby's manifest, then every root is compared.
  void BeginManifest();
  // One entry of the standby's manifest (wire path "i/p").
  Status AddManifestEntry(const wire::ManifestEntry& entry);
  // Between the manifest and Resync(): asks the standby for the block hashes of every
  // large file it holds that differs from the primary's by size or mtime, so Resync()
  // can ship only the changed blocks of those files instead of their whole content.
  // Emits one BLOCKS_REQUEST each (at most kMaxResyncBlockRequests; the rest ship
  // whole) and returns how many replies to wait for (0: call Resync() at once).
  Result<size_t> RequestResyncBlocks();
  // One BLOCKS_REPLY frame; returns true when it was the last frame of its request.
  Result<bool> AddBlocks(const wire::BlocksReply& reply);
  // Compares every root with the model and emits RESYNC_BEGIN, the differences (upserts
  // top-down, removals bottom-up), a COMMIT and RESYNC_END.
  // `live`: the journal that keeps collecting events meanwhile; a name missing during
  // the walk is then removed only if no later event names it (RemoveUnlessNamedLater).
  Status Resync(Journal* live = nullptr);

  // ---- Repair (anti-entropy, `hasync verify --repair`): the standby was seen to hold
  // `standby_entry` (null: nothing) at `wire_path`, which differs from what the model
  // believed. The model takes the standby's word for that path (as from a manifest:
  // primary inode unknown); the caller then queues the path (Upsert, or Rescan of a
  // directory) so the next Pump ships what differs, exactly as a resync would.
  // BeginRepair() once before the Distrust calls of one comparison.
  void BeginRepair() { standby_links_.assign(model_.size(), {}); }
  Status Distrust(const std::string& wire_path, const wire::ManifestEntry* standby_entry);

  // ---- Live: ship journal changes until the journal is empty or backpressure holds.
  // Returns OK with work left when the unacked bound is reached; call again after ACKs.
  // With the journal empty the open batch is committed only while fewer than
  // max_inflight_commits batches await their ACK: call Pump again after each ACK.
  Status Pump(Journal& journal);
  // Ends the open batch with a COMMIT if it holds any change.
  Status Flush();

  // ACK from the standby: changes up to seq are applied (and durable if durable).
  Status OnAck(const wire::Ack& ack);

  bool backpressured() const;
  // Changes sent whose COMMIT has not gone out yet (Pump holds it back, see there).
  bool has_open_batch() const { return batch_changes_ != 0; }
  uint64_t last_seq() const { return next_seq_ - 1; }
  uint64_t acked_seq() const { return acked_seq_; }
  uint64_t unacked_bytes() const;
  // Committed batches the standby has not acknowledged yet.
  size_t unacked_batches() const { return inflight_.size(); }
  // First sequence number to use (continuing the standby's last applied one). What came
  // before it the standby applied durably (its HELLO says so): that is acknowledged, or a
  // session whose resync sends nothing reports the standby's whole history unacknowledged
  // (hasync_unacked_changes, `hasync status`) until the next change.
  void set_next_seq(uint64_t seq) {
    next_seq_ = seq < 1 ? 1 : seq;
    if (acked_seq_ < next_seq_ - 1) acked_seq_ = next_seq_ - 1;
  }
  const SenderStats& stats() const { return stats_; }
  // Called for every batch acknowledged durable with how long it took from its first
  // change being sent to the ACK (nanoseconds): the replication lag metric.
  void set_on_durable(std::function<void(int64_t)> fn) { on_durable_ = std::move(fn); }
  // Called before the sender decides on the removal of a name that is missing now: it
  // should move every event the watcher has queued into the journal, so the decision
  // sees each later change of that name (the primary's event loop sets it).
  void set_journal_refresh(std::function<void()> refresh) { refresh_ = std::move(refresh); }
  // Fault injection for tests: called with a file's root and path right after the file
  // is opened for reading and before its fstat, so a test can change the primary there
  // and reach a race the kernel's timing shows only now and then.
  void set_after_open(std::function<void(uint32_t, const std::string&)> fn) {
    after_open_ = std::move(fn);
  }
  size_t tracked() const;
  // How file content is read: "io_uring" or "pread (<why>)".
  std::string read_mode() const {
    return reader_->uses_io_uring() ? "io_uring" : "pread (" + reader_->fallback_reason() + ")";
  }

 private:
  using Entry = ModelEntry;

  Status Apply(const Change& change, Journal& journal);
  Status Upsert(uint32_t root, const std::string& path, Journal* journal);
  Status RemoveUnlessNamedLater(uint32_t root, const std::string& path, Journal* journal);
  // `parent`: the name's directory if the caller has it open (saves a second walk from
  // the root), else null.
  Status UpsertFile(uint32_t root, const FileInfo& info, Journal* journal,
                    const ParentDir* parent = nullptr);
  // UpsertFile once the name is known to hold the same primary inode as the model's
  // entry (or the model holds no file there); fd is open on the file.
  Status UpsertFileInode(uint32_t root, const FileInfo& info, int fd, Journal* journal);
  Status NameMissing(uint32_t root, const std::string& path, Journal* journal);
  // Names the standby's manifest lists as one inode with `path` (link id `link`) whose
  // model entries still say so, `path` excluded.
  std::vector<std::string> StandbyLinked(uint32_t root, const std::string& path, uint64_t link);
  // Names of the model entry's primary inode other than `except` (none if unknown).
  std::vector<std::string> OtherNames(uint32_t root, const Entry& entry, std::string_view except);
  // Names the model holds for primary inode (dev, ino) other than `except`.
  std::vector<std::string> OtherNames(uint32_t root, uint64_t dev, uint64_t ino,
                                      std::string_view except);
  Status RecheckNames(uint32_t root, uint64_t dev, uint64_t ino,
                      const std::vector<std::string>& names);
  // The change being handled carries the handle of the inode its event was about
  // (applying_->object; of each inode, for coalesced events: other_objects). When `path` no longer
  // names that inode (name_fd: open on what the name holds now, or -1 when it is missing), a change
  // made through the name may have gone to that inode: its other names the standby holds are
  // compared again.
  Status RecheckEventInode(uint32_t root, const std::string& path, int name_fd);
  // One object (an inode handle key) of the change being applied: the standby's other
  // names of that inode are compared again, unless it is the inode `name_handle` (the
  // name's own, or null when unknown) holds.
  Status RecheckObject(uint32_t root, const std::string& path, const std::string& key,
                       const file_handle* name_handle);
  // After a SETATTR or xattr change of a file: the other names of its primary inode are
  // one inode on the standby too, so the model records the change for each of them.
  void ShareInodeAttrs(uint32_t root, const std::string& path, const Entry& entry);
  Status UpsertDir(uint32_t root, const FileInfo& info);
  Status UpsertSymlink(uint32_t root, const FileInfo& info);
  Status EnsureParents(uint32_t root, const std::string& path);
  Status Remove(uint32_t root, const std::string& path);
  Status Rename(uint32_t root, const std::string& from, const std::string& to, Journal& journal);
  // journal: where aborted reads are queued again (null: ship as read); later: the
  // journal consulted before removing a name the walk did not see (null: remove).
  Status RescanSubtree(uint32_t root, const std::string& subtree, Journal* journal, Journal* later);
  // Sends content of `path` (open fd, stat `info`); `base` = the model's entry to delta
  // against or null. Returns false in *aborted when the file changed while read.
  Status SendContent(uint32_t root, const FileInfo& info, int fd, const Entry* base, Entry* out,
                     bool* aborted);
  Status SendXattrs(uint32_t root, const std::string& path, int fd, Entry& entry);
  Status SetAttrIfNeeded(uint32_t root, const FileInfo& info, Entry& entry);
  Status EmitChange(wire::Message message, uint64_t content_bytes);
  // Paths the open batch changed in the standby's namespace (wire paths), so a block
  // patch of one of them (or below) is sent only after a COMMIT.
  void NoteTouched(const std::string& wire_path);
  bool TouchedInBatch(uint32_t root, const std::string& path) const;
  Status MaybeCommit();

  std::vector<int> root_fds_;
  SenderOptions options_;
  MessageSink& sink_;
  std::vector<Model> model_;  // one per sync root, with its inode index
  std::unordered_map<std::string, int> read_retries_;
  // From the manifest until the end of its resync, per root: the standby's link_id →
  // the names it lists with it (only files with more than one link).
  std::vector<std::unordered_map<uint64_t, std::vector<std::string>>> standby_links_;
  // BLOCKS_REQUEST id → (root, path) while the replies arrive.
  std::unordered_map<uint64_t, std::pair<uint32_t, std::string>> block_requests_;

  uint64_t next_seq_ = 1;
  uint64_t acked_seq_ = 0;
  uint32_t batch_changes_ = 0;
  uint64_t batch_bytes_ = 0;
  struct Inflight {
    uint64_t last_seq;
    uint64_t bytes;
    int64_t opened_ns;  // CLOCK_MONOTONIC when the batch's first change was sent
  };
  int64_t batch_opened_ns_ = 0;  // 0: the open batch holds no change yet
  std::function<void(int64_t)> on_durable_;
  std::vector<Inflight> inflight_;
  std::set<std::string> batch_touched_;  // bounded by 2 × max_batch_changes
  bool touched_overflow_ = false;
  SenderStats stats_;
  std::function<void()> refresh_;
  std::function<void(uint32_t, const std::string&)> after_open_;
  std::unique_ptr<FileReader> reader_;
  // The journal of the Pump or Resync in progress (null between them): consulted before
  // a name found missing is removed, whatever path led there.
  Journal* live_ = nullptr;
  // The journal entry being applied (null between entries), and whether its object
  // (the event's inode) has been checked against its name yet (RecheckEventInode).
  const Change* applying_ = nullptr;
  bool event_object_checked_ = false;
};

// "i/p" for root i and relative path p ("i" for the root itself).
std::string WirePath(uint32_t root, std::string_view path);
// Splits a wire path into root index and relative path; error if malformed or the index
// is not below root_count.
Result<std::pair<uint32_t, std::string>> SplitWirePath(std::string_view wire_path,
                                                       uint32_t root_count);

}  // namespace hasync::engine
