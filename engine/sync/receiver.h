// Receiver: the standby's side of replication. It turns protocol messages into apply
// batches on the sync-root trees and acknowledges each batch only once it is durable.
//
// Contract:
// - Messages arrive decoded and validated by wire/ (paths are safe by spelling); the
//   trees confine every path at the filesystem (engine/apply).
// - Change messages carry increasing sequence numbers; the frames of one file version
//   (FILE_BEGIN, EXTENT…, FILE_END or FILE_ABORT) share one. Anything out of order —
//   an extent for a file never begun, a second FILE_BEGIN for a seq, a COMMIT whose
//   change count does not match, an extent outside the announced size — is a protocol
//   error: OnMessage returns it and the caller closes the connection. Nothing of the
//   open batch is published (its temps are removed).
// - COMMIT applies the batch: every tree's batch commits (temps durable, published in
//   order, directories fsynced); then ACK(last_seq, durable) is emitted. If any step
//   fails (ENOSPC, EIO, hash mismatch, unsafe path) a NACK with the reason is emitted
//   instead and no ACK: the primary resyncs later. Never "retry until it says yes".
// - Pipelined commit (EnablePipeline(), what the node uses): COMMIT hands the batch to a
//   committer thread and returns; the next batch is received and staged meanwhile, and
//   the ACK or NACK goes out from ReapCommit() once the batch is durable — in order, and
//   never before. At most one batch commits in the background: the next COMMIT, and
//   anything that reads or changes the tree outside a batch (manifests, block requests,
//   resync begin/end, sync-root metadata, quarantine, a block patch's base, and a
//   FILE_BEGIN after a batch that creates, removes or moves names), waits for it first.
// - MANIFEST_REQUEST is answered with MANIFEST_ENTRIES frames (bounded per frame), the
//   root itself first; BLOCKS_REQUEST with BLOCKS_REPLY frames.
// Thread safety: none; the standby's receive path owns it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "base/status.h"
#include "engine/apply/quarantine.h"
#include "engine/sync/committer.h"
#include "engine/apply/tree.h"
#include "engine/sync/sender.h"  // MessageSink, WirePath
#include "wire/messages.h"

namespace hasync::engine {

struct ReceiverStats {
  uint64_t batches_acked = 0;
  uint64_t batches_nacked = 0;
  uint64_t files_applied = 0;
  uint64_t bytes_applied = 0;
  uint64_t manifests_sent = 0;
  uint64_t ranges_discarded = 0;   // data-stream ranges of aborted file versions
  uint64_t files_quarantined = 0;  // rejoin: entries kept before a resync replaced them
};

class Receiver {
 public:
  // trees: one per sync root, in config order; borrowed, must outlive the receiver.
  Receiver(std::vector<apply::Tree*> trees, MessageSink& sink);
  ~Receiver();

  // Handles one message with its frame header's seq. A non-OK result is a protocol
  // violation: close the connection.
  Status OnMessage(uint64_t seq, const wire::Message& message);

  // Drops the open batch (connection lost): its temps are removed, nothing published.
  // A batch committing in the background is waited for (its result counts, its ACK is
  // not sent: the session it belonged to is gone).
  void Reset();

  // ---- Pipelined commit (see the contract above). Off until enabled.
  Status EnablePipeline();
  bool pipelined() const { return committer_ != nullptr; }
  // Readable when a background commit finished; the owner then calls ReapCommit().
  int commit_event_fd() const { return committer_ ? committer_->event_fd() : -1; }
  // Emits the ACK/NACK of a background commit that finished; nothing if none did.
  Status ReapCommit();
  // Waits for the background commit, if any, and emits its ACK/NACK.
  Status FinishPending();
  bool commit_pending() const { return committer_ && committer_->busy(); }

  // ---- Data streams (docs/PROTOCOL.md §6): EXTENT and HOLE frames may also arrive on
  // other connections than the control stream, matched to their file by seq.
  // With data streams on, a FILE_END whose counts are not met yet waits for the rest of
  // its ranges (waiting_for_data()) instead of failing; off, it fails at once.
  void set_data_streams(bool on) { data_streams_ = on; }
  // The caller holds back further control-stream messages while this is true; the data
  // frame that completes the waiting file ends the wait.
  bool waiting_for_data() const { return parked_end_.has_value(); }
  enum class DataVerdict {
    kTaken,   // applied, or dropped because its file version was aborted
    kNotYet,  // its FILE_BEGIN has not come yet: keep it at the head of its stream
  };
  // One frame from a data stream. Each data stream is in order, so a kNotYet frame
  // blocks only its own stream; a non-OK result is a protocol violation.
  Result<DataVerdict> OnData(uint64_t seq, const wire::Message& message);

  uint64_t last_applied_seq() const { return last_applied_seq_; }
  void set_last_applied_seq(uint64_t seq) { last_applied_seq_ = seq; }
  bool in_resync() const { return in_resync_; }
  // RESYNC_END frames handled (each closes a resync the primary completed).
  uint64_t resyncs_completed() const { return resyncs_completed_; }

  // Rejoin (DESIGN §4): while set, whatever a resync replaces or removes (a whole-file
  // FILE_BEGIN, SYMLINK or LINK over an existing name, UNLINK) is first moved to
  // quarantine/<epoch>/ (apply::Quarantine), and BLOCKS_REQUEST is answered "missing", so
  // no delta is built on a file that is to be kept. Null turns it off.
  void set_quarantine(apply::Quarantine* quarantine, uint64_t epoch) {
    quarantine_ = quarantine;
    quarantine_epoch_ = epoch;
  }
  const ReceiverStats& stats() const { return stats_; }
  // Takes the MANIFEST_REQUESTs of `hasync verify` (ids from kVerifyRequestIdBase)
  // instead of answering them on the spot (the node builds that manifest off its loop).
  void set_verify_handler(std::function<Status(const wire::ManifestRequest&)> fn) {
    verify_handler_ = std::move(fn);
  }
  // Last NACK reason, for status and logs.
  const Status& last_failure() const { return last_failure_; }
  // Paths a refused batch touched that the next manifest reports as changed (below).
  size_t unsynced_paths() const { return unsynced_.size(); }
  // Keeps that set in `path` (in the state dir) so a restart does not forget it, and
  // loads what a previous run left there. An unreadable file counts as "everything".
  Status UseUnsyncedFile(std::string path);

 private:
  struct OpenFile {
    uint32_t root = 0;
    apply::Batch::FileId id = 0;
    wire::FileBegin begin;
    uint32_t ranges = 0;
    uint64_t data_bytes = 0;
  };

  Status OnChange(uint64_t seq, const wire::Message& message);
  bool NamesARoot(const std::string& wire_path) const;
  Status RootMetadata(const wire::Message& message);
  template <typename Range>  // wire::Extent or wire::Hole
  Status ApplyRange(OpenFile& f, const Range& m);
  Status EndFile(std::map<uint64_t, OpenFile>::iterator it, const wire::FileEnd& m);
  // The file has fewer ranges or bytes than FILE_END announced, and not more of either:
  // the rest may still be on a data stream.
  static bool StillShort(const OpenFile& f, const wire::FileEnd& end);
  Status OnCommit(const wire::Commit& commit);
  // What follows a batch's Commit (or its refusal): stats, the fsyncgate record, the
  // NACK or the ACK (emitted only if `emit`).
  Status Conclude(uint64_t last_seq, Status result, bool committed, bool follows_refusal,
                  std::vector<std::string> paths, bool emit);
  // Waits for the background commit and concludes it (emitting only if `emit`).
  Status SettlePending(bool emit);
  // Whether `message` (a change of the open batch) needs the tree as the committing
  // batch leaves it, so that batch must finish first.
  bool NeedsSettledTree(const wire::Message& message) const;
  // Logs `setid_stripped` when the trees stripped setuid/setgid bits since the last call.
  void LogSetidStripped(uint64_t seq);
  Status SendManifest(const wire::ManifestRequest& request);
  Status SendBlocks(const wire::BlocksRequest& request);
  apply::Batch& BatchFor(uint32_t root);
  Result<std::pair<uint32_t, std::string>> Split(const std::string& wire_path) const;
  // Rejoin: whether wire path `target` already holds the same file as `source` (one
  // inode, or equal content, mode, owner, mtime and xattrs), so a LINK over it loses
  // nothing and it is not quarantined.
  Result<bool> HoldsSameFile(const std::string& source, const std::string& target);
  // Records a failure of the open batch: later changes are skipped, COMMIT NACKs.
  void Fail(Status status);
  // Rejoin: moves what `message` would replace or remove into quarantine.
  // True when something was kept.
  Result<bool> KeepBeforeChange(const wire::Message& message);

  std::vector<apply::Tree*> trees_;
  MessageSink& sink_;
  std::vector<std::unique_ptr<apply::Batch>> batches_;  // per root, created on demand
  std::map<uint64_t, OpenFile> open_files_;             // seq → file version in progress
  uint64_t last_applied_seq_ = 0;
  uint64_t last_change_seq_ = 0;  // highest change seq seen in the open batch
  uint32_t batch_changes_ = 0;
  Status batch_failed_;
  Status last_failure_;
  uint64_t refused_seq_ = 0;  // the first batch this session NACKed (0: none)
  // fsyncgate: after a failed fsync/syncfs the page cache may hold what the disk does
  // not, and a later sync that succeeds proves nothing about it. So whatever a batch
  // whose Commit failed may have published is not trusted: the wire paths its changes
  // named are reported in the next manifest with a hash and mtime that match nothing,
  // and the primary's resync writes them again (new temp, fsync, rename, directory
  // fsync). Cleared by a RESYNC_END that followed such a manifest with no NACK between.
  std::vector<std::string> batch_paths_;  // the open batch's, bounded by kBatchChangesMax
  std::set<std::string> unsynced_;
  bool unsynced_all_ = false;  // too many to list: every entry is reported as changed
  bool unsynced_reported_ = false;
  std::string unsynced_file_;  // empty: kept in memory only
  // Writes unsynced_ to unsynced_file_ (temp + fsync + rename), or removes the file when
  // the set is empty; a failure is logged (the set in memory still holds).
  void PersistUnsynced();
  bool in_resync_ = false;
  uint64_t resyncs_completed_ = 0;
  apply::Quarantine* quarantine_ = nullptr;
  uint64_t quarantine_epoch_ = 0;
  bool data_streams_ = false;
  struct ParkedEnd {
    uint64_t seq;
    wire::FileEnd end;
  };
  std::optional<ParkedEnd> parked_end_;
  ReceiverStats stats_;
  uint64_t setid_logged_ = 0;  // setid_bits_stripped of all trees, as last logged
  std::function<Status(const wire::ManifestRequest&)> verify_handler_;

  // Pipelined commit. batch_structural_: the open batch creates, removes or moves names
  // (MKDIR, RMDIR, RENAME, LINK, SYMLINK); a FILE_BEGIN after such a batch waits for its
  // commit, because the temp is staged in a directory that commit may create or remove.
  bool batch_structural_ = false;
  struct Pending {
    uint64_t last_seq = 0;
    std::vector<std::unique_ptr<apply::Batch>> batches;  // the committer's until Wait()
    std::vector<std::string> paths;
    bool structural = false;
    bool committed = false;  // set by the job
  };
  Pending pending_;
  std::unique_ptr<Committer> committer_;  // last: joined before the batches go
};

}  // namespace hasync::engine
