#include "engine/sync/receiver.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <type_traits>

#include "engine/apply/policy.h"
#include "engine/log.h"
#include "engine/scan/scanner.h"
#include "engine/sync/verify.h"
#include "engine/sync/xattrs.h"
#include "wire/frame.h"
#include "wire/limits.h"

namespace hasync::engine {

namespace {

wire::ErrorCode ErrorCodeFor(const Status& s) {
  switch (s.code()) {
    case Code::kResourceExhausted:
      return wire::ErrorCode::kNoSpace;
    case Code::kDataLoss:
      return wire::ErrorCode::kHashMismatch;
    case Code::kPermissionDenied:
    case Code::kInvalidArgument:
      return wire::ErrorCode::kUnsafePath;
    default:
      return wire::ErrorCode::kIo;
  }
}

std::string Clip(std::string s) {
  if (s.size() > wire::kErrorMessageMax) s.resize(wire::kErrorMessageMax);
  for (char& c : s) {
    if (c == '\0') c = '?';
  }
  return s;
}

// Every path a change message names (both names of a rename or a link).
void AddChangePaths(const wire::Message& message, std::vector<std::string>& out) {
  std::visit(
      [&](const auto& m) {
        if constexpr (requires { m.path; }) out.push_back(m.path);
        if constexpr (requires { m.from; }) out.push_back(m.from);
        if constexpr (requires { m.to; }) out.push_back(m.to);
        if constexpr (requires { m.existing_path; }) out.push_back(m.existing_path);
        if constexpr (requires { m.new_path; }) out.push_back(m.new_path);
      },
      message);
}

// Bound on remembered paths; past it every manifest entry counts as unsynced.
constexpr size_t kMaxUnsyncedPaths = size_t{1} << 20;
// Bound on paths kept on disk; past it the file just says "all".
constexpr size_t kMaxUnsyncedPathsOnDisk = 10'000;
// The file: "hasync-unsynced 1\n", then "all\n", or "paths\n" and NUL-terminated paths
// (Linux names are bytes: a newline is a valid one).
constexpr std::string_view kUnsyncedMagic = "hasync-unsynced 1\n";

apply::RenameMode RenameModeFor(uint32_t flags) {
  if (flags & wire::kRenameExchange) return apply::RenameMode::kExchange;
  if (flags & wire::kRenameNoReplace) return apply::RenameMode::kNoReplace;
  return apply::RenameMode::kReplace;
}

}  // namespace

Receiver::Receiver(std::vector<apply::Tree*> trees, MessageSink& sink)
    : trees_(std::move(trees)), sink_(sink), batches_(trees_.size()) {
  HASYNC_ASSERT(!trees_.empty());
}

Receiver::~Receiver() = default;

void Receiver::Reset() {
  // The background batch is durable or failed by now; its result counts (last applied
  // seq, the fsyncgate record) but its ACK has no session to go to.
  SettlePending(/*emit=*/false).IgnoreError();
  open_files_.clear();
  parked_end_.reset();
  for (auto& b : batches_) b.reset();  // Batch's destructor removes unpublished temps
  batch_changes_ = 0;
  last_change_seq_ = last_applied_seq_;
  batch_failed_ = Status::Ok();
  refused_seq_ = 0;
  batch_paths_.clear();
  batch_structural_ = false;
  unsynced_reported_ = false;  // a manifest must list them again to a new session
  in_resync_ = false;
}

apply::Batch& Receiver::BatchFor(uint32_t root) {
  if (!batches_[root]) batches_[root] = std::make_unique<apply::Batch>(*trees_[root]);
  return *batches_[root];
}

Result<std::pair<uint32_t, std::string>> Receiver::Split(const std::string& wire_path) const {
  ASSIGN_OR_RETURN(auto split, SplitWirePath(wire_path, static_cast<uint32_t>(trees_.size())));
  // The sync root itself is never created, replaced or removed: only its metadata
  // changes (RootMetadata), and only through SETATTR / SETXATTR / REMOVEXATTR.
  if (split.second.empty()) {
    return InvalidArgument("'" + wire_path +
                           "' names a sync root itself, which no change "
                           "but its metadata may touch");
  }
  return split;
}

bool Receiver::NamesARoot(const std::string& wire_path) const {
  auto split = SplitWirePath(wire_path, static_cast<uint32_t>(trees_.size()));
  return split.ok() && split->second.empty();
}

// SETATTR, SETXATTR, REMOVEXATTR of a sync root's own directory (its mode or owner may
// differ between the nodes, e.g. a root made by root on the standby and owned by the
// scheduler on the primary): applied to the root's descriptor under the same policy as
// any directory, and made durable at once.
Status Receiver::RootMetadata(const wire::Message& message) {
  return std::visit(
      [&](const auto& m) -> Status {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, wire::SetAttr> || std::is_same_v<T, wire::SetXattr> ||
                      std::is_same_v<T, wire::RemoveXattr>) {
          ASSIGN_OR_RETURN(auto w, SplitWirePath(m.path, static_cast<uint32_t>(trees_.size())));
          // The tree's own descriptor may be O_PATH: open the directory itself.
          UniqueFd dir(openat(trees_[w.first]->root_fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
          if (!dir.valid()) return ErrnoStatus(errno, "open sync root");
          const int fd = dir.get();
          const bool privileged = trees_[w.first]->options().allow_privileged;
          if constexpr (std::is_same_v<T, wire::SetAttr>) {
            if (m.mask & wire::kAttrOwner) {
              if (fchown(fd, m.uid, m.gid) != 0) return ErrnoStatus(errno, "chown sync root");
            }
            if (m.mask & wire::kAttrMode) {
              ASSIGN_OR_RETURN(apply::ModeDecision d, apply::DecideMode(m.mode, true, privileged));
              if (fchmod(fd, d.mode) != 0) return ErrnoStatus(errno, "chmod sync root");
            }
            // A directory's mtime is not replicated (it moves with every entry made in it).
          } else if constexpr (std::is_same_v<T, wire::SetXattr>) {
            RETURN_IF_ERROR(apply::CheckXattrName(m.name, privileged).Annotate("sync root"));
            if (fsetxattr(fd, m.name.c_str(), m.value.data(), m.value.size(), 0) != 0) {
              return ErrnoStatus(errno, "set xattr " + m.name + " on sync root");
            }
          } else {
            RETURN_IF_ERROR(apply::CheckXattrName(m.name, privileged).Annotate("sync root"));
            if (fremovexattr(fd, m.name.c_str()) != 0 && errno != ENODATA) {
              return ErrnoStatus(errno, "remove xattr " + m.name + " of sync root");
            }
          }
          if (fsync(fd) != 0) return ErrnoStatus(errno, "fsync sync root");
          return Status::Ok();
        } else {
          return InvalidArgument("not a metadata change");
        }
      },
      message);
}

void Receiver::Fail(Status status) {
  if (batch_failed_.ok()) batch_failed_ = std::move(status);
}

Status Receiver::OnMessage(uint64_t seq, const wire::Message& message) {
  if (parked_end_) {
    return FailedPrecondition(
        "control-stream " + std::string(wire::MessageTypeName(wire::TypeOf(message))) +
        " while FILE_END of seq " + std::to_string(parked_end_->seq) + " waits for its data");
  }
  if (wire::IsChangeType(wire::TypeOf(message))) {
    if (commit_pending() && NeedsSettledTree(message)) RETURN_IF_ERROR(FinishPending());
    return OnChange(seq, message);
  }
  // Everything else reads the tree or ends a phase (COMMIT itself waits in OnCommit,
  // after its checks): the background batch first, with its ACK.
  if (!std::holds_alternative<wire::Commit>(message)) RETURN_IF_ERROR(FinishPending());
  return std::visit(
      [&](const auto& m) -> Status {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, wire::Commit>) {
          return OnCommit(m);
        } else if constexpr (std::is_same_v<T, wire::ManifestRequest>) {
          // `hasync verify`'s requests are answered off the apply path when the owner
          // can (the manifest is built on a thread of its own); the resync's here.
          if (m.request_id >= kVerifyRequestIdBase && verify_handler_) return verify_handler_(m);
          return SendManifest(m);
        } else if constexpr (std::is_same_v<T, wire::BlocksRequest>) {
          return SendBlocks(m);
        } else if constexpr (std::is_same_v<T, wire::ResyncBegin>) {
          in_resync_ = true;
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, wire::ResyncEnd>) {
          if (!open_files_.empty() || batch_changes_ != 0) {
            return InvalidArgument("RESYNC_END with an uncommitted batch open");
          }
          in_resync_ = false;
          ++resyncs_completed_;
          if (unsynced_reported_) {
            // The primary compared against a manifest that marked them changed and every
            // batch of its resync was durable: they are written again.
            unsynced_.clear();
            unsynced_all_ = unsynced_reported_ = false;
            PersistUnsynced();
          }
          return Status::Ok();
        } else {
          return InvalidArgument(std::string("unexpected ") + std::string(T::kName) +
                                 " on the replication stream");
        }
      },
      message);
}

Status Receiver::OnChange(uint64_t seq, const wire::Message& message) {
  // Sequence discipline: a new change has a higher seq than everything before it; the
  // frames of an open file version repeat its seq.
  bool continues_file = open_files_.count(seq) != 0;
  if (!continues_file) {
    if (seq <= last_change_seq_) {
      return InvalidArgument("change seq " + std::to_string(seq) + " not above " +
                             std::to_string(last_change_seq_));
    }
    if (batch_changes_ >= wire::kBatchChangesMax) {
      return InvalidArgument("batch exceeds kBatchChangesMax " +
                             std::to_string(wire::kBatchChangesMax));
    }
    last_change_seq_ = seq;
    ++batch_changes_;
    AddChangePaths(message, batch_paths_);
    if (std::holds_alternative<wire::Mkdir>(message) ||
        std::holds_alternative<wire::Rmdir>(message) ||
        std::holds_alternative<wire::Rename>(message) ||
        std::holds_alternative<wire::Link>(message) ||
        std::holds_alternative<wire::Symlink>(message)) {
      batch_structural_ = true;
    }
  }

  if (quarantine_ != nullptr && in_resync_ && !continues_file && batch_failed_.ok()) {
    // Kept before the change touches it; a failure to keep fails the batch (NACK), so
    // nothing of the rejoining node is lost.
    auto kept = KeepBeforeChange(message);
    if (!kept.ok()) Fail(kept.status());
    // An UNLINK whose name went to quarantine has nothing left to do.
    if (kept.ok() && *kept && std::holds_alternative<wire::Unlink>(message)) return Status::Ok();
  }
  return std::visit(
      [&](const auto& m) -> Status {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, wire::Extent> || std::is_same_v<T, wire::Hole> ||
                      std::is_same_v<T, wire::FileEnd> || std::is_same_v<T, wire::FileAbort>) {
          auto it = open_files_.find(seq);
          if (it == open_files_.end()) {
            return InvalidArgument(std::string(T::kName) + " for seq " + std::to_string(seq) +
                                   " with no FILE_BEGIN");
          }
          OpenFile& f = it->second;
          if constexpr (std::is_same_v<T, wire::Extent> || std::is_same_v<T, wire::Hole>) {
            return ApplyRange(f, m);
          } else if constexpr (std::is_same_v<T, wire::FileEnd>) {
            if (m.size != f.begin.size) {
              return InvalidArgument("FILE_END size " + std::to_string(m.size) +
                                     " differs from FILE_BEGIN's " + std::to_string(f.begin.size));
            }
            if (data_streams_ && StillShort(f, m)) {
              // Some of its ranges are still on a data stream: the control stream waits.
              parked_end_ = ParkedEnd{seq, m};
              return Status::Ok();
            }
            return EndFile(it, m);
          } else {
            if (batch_failed_.ok()) {
              Status s = BatchFor(f.root).AbandonFile(f.id);
              if (!s.ok()) Fail(s);
            }
            open_files_.erase(it);
            return Status::Ok();
          }
        } else if constexpr (std::is_same_v<T, wire::FileBegin>) {
          if (continues_file)
            return InvalidArgument("second FILE_BEGIN for seq " + std::to_string(seq));
          if (open_files_.size() >= apply::kMaxBatchFiles) {
            return InvalidArgument("more than kMaxBatchFiles open file versions");
          }
          ASSIGN_OR_RETURN(auto where, Split(m.path));
          OpenFile f;
          f.root = where.first;
          f.begin = m;
          if (batch_failed_.ok()) {
            if (where.second.empty()) {
              Fail(InvalidArgument("FILE_BEGIN names the sync root itself"));
            } else {
              auto id = BatchFor(where.first)
                            .BeginFile(where.second, (m.flags & wire::kFileDelta)
                                                         ? apply::ContentBase::kCurrent
                                                         : apply::ContentBase::kEmpty);
              if (id.ok()) {
                f.id = *id;
              } else {
                Fail(id.status());
              }
            }
          }
          open_files_.emplace(seq, std::move(f));
          return Status::Ok();
        } else {
          if (continues_file) {
            return InvalidArgument(std::string(T::kName) + " reuses the seq of an open file");
          }
          if (!batch_failed_.ok()) return Status::Ok();
          Status s = [&]() -> Status {
            if constexpr (std::is_same_v<T, wire::Mkdir>) {
              ASSIGN_OR_RETURN(auto w, Split(m.path));
              apply::FileMeta meta;
              meta.mode = m.mode;
              meta.owner = apply::Owner{m.uid, m.gid};
              return BatchFor(w.first).Mkdir(w.second, meta);
            } else if constexpr (std::is_same_v<T, wire::Rmdir>) {
              ASSIGN_OR_RETURN(auto w, Split(m.path));
              return BatchFor(w.first).Rmdir(w.second);
            } else if constexpr (std::is_same_v<T, wire::Unlink>) {
              ASSIGN_OR_RETURN(auto w, Split(m.path));
              return BatchFor(w.first).Unlink(w.second);
            } else if constexpr (std::is_same_v<T, wire::Rename>) {
              ASSIGN_OR_RETURN(auto a, Split(m.from));
              ASSIGN_OR_RETURN(auto b, Split(m.to));
              if (a.first != b.first) return InvalidArgument("RENAME across sync roots");
              return BatchFor(a.first).Rename(a.second, b.second, RenameModeFor(m.flags));
            } else if constexpr (std::is_same_v<T, wire::Link>) {
              ASSIGN_OR_RETURN(auto a, Split(m.existing_path));
              ASSIGN_OR_RETURN(auto b, Split(m.new_path));
              if (a.first != b.first) return InvalidArgument("LINK across sync roots");
              return BatchFor(a.first).Link(a.second, b.second);
            } else if constexpr (std::is_same_v<T, wire::Symlink>) {
              ASSIGN_OR_RETURN(auto w, Split(m.path));
              return BatchFor(w.first).Symlink(w.second, m.target, apply::Owner{m.uid, m.gid},
                                               m.mtime_ns);
            } else if constexpr (std::is_same_v<T, wire::SetAttr>) {
              if (NamesARoot(m.path)) return RootMetadata(message);
              ASSIGN_OR_RETURN(auto w, Split(m.path));
              apply::MetaChange change;
              if (m.mask & wire::kAttrMode) change.mode = m.mode;
              if (m.mask & wire::kAttrOwner) change.owner = apply::Owner{m.uid, m.gid};
              if (m.mask & wire::kAttrMtime) change.mtime_ns = m.mtime_ns;
              return BatchFor(w.first).SetMetadata(w.second, change);
            } else if constexpr (std::is_same_v<T, wire::SetXattr>) {
              if (NamesARoot(m.path)) return RootMetadata(message);
              ASSIGN_OR_RETURN(auto w, Split(m.path));
              std::string value(reinterpret_cast<const char*>(m.value.data()), m.value.size());
              return BatchFor(w.first).SetXattr(w.second, m.name, value);
            } else if constexpr (std::is_same_v<T, wire::RemoveXattr>) {
              if (NamesARoot(m.path)) return RootMetadata(message);
              ASSIGN_OR_RETURN(auto w, Split(m.path));
              return BatchFor(w.first).RemoveXattr(w.second, m.name);
            } else if constexpr (std::is_same_v<T, wire::Truncate>) {
              return InvalidArgument("TRUNCATE is sent as a FILE_BEGIN delta by this version");
            } else {
              return InvalidArgument(std::string("unhandled change ") + std::string(T::kName));
            }
          }();
          if (!s.ok()) Fail(s);
          return Status::Ok();
        }
      },
      message);
}

template <typename Range>
Status Receiver::ApplyRange(OpenFile& f, const Range& m) {
  if constexpr (std::is_same_v<Range, wire::Extent>) {
    if (m.file_size != f.begin.size || m.offset + m.data.size() > f.begin.size) {
      return InvalidArgument("EXTENT [" + std::to_string(m.offset) + ", +" +
                             std::to_string(m.data.size()) + ") outside file size " +
                             std::to_string(f.begin.size));
    }
    ++f.ranges;
    f.data_bytes += m.data.size();
    if (batch_failed_.ok()) {
      Status s = BatchFor(f.root).WriteExtent(f.id, m.offset, m.data);
      if (!s.ok()) Fail(s);
    }
  } else {
    if (m.file_size != f.begin.size || m.offset + m.length > f.begin.size) {
      return InvalidArgument("HOLE outside file size " + std::to_string(f.begin.size));
    }
    if (f.begin.flags & wire::kFileDelta) {
      // Only whole-file versions start as all holes; a delta would need a punch.
      return InvalidArgument("HOLE in a delta file version is not supported");
    }
    ++f.ranges;  // a new file's unwritten ranges are holes already
  }
  return Status::Ok();
}
// Instantiated explicitly: clang 14 emits no code for the uses in OnChange's generic
// visitor, which precede this definition (undefined reference at link time).
template Status Receiver::ApplyRange(OpenFile&, const wire::Extent&);
template Status Receiver::ApplyRange(OpenFile&, const wire::Hole&);

bool Receiver::StillShort(const OpenFile& f, const wire::FileEnd& end) {
  return f.ranges <= end.range_count && f.data_bytes <= end.data_bytes &&
         (f.ranges < end.range_count || f.data_bytes < end.data_bytes);
}

Status Receiver::EndFile(std::map<uint64_t, OpenFile>::iterator it, const wire::FileEnd& m) {
  OpenFile& f = it->second;
  if (m.range_count != f.ranges || m.data_bytes != f.data_bytes) {
    return InvalidArgument("FILE_END counts (" + std::to_string(m.range_count) + " ranges, " +
                           std::to_string(m.data_bytes) + " bytes) differ from received (" +
                           std::to_string(f.ranges) + ", " + std::to_string(f.data_bytes) + ")");
  }
  if (batch_failed_.ok()) {
    apply::FileMeta meta;
    meta.mode = f.begin.mode;
    meta.owner = apply::Owner{f.begin.uid, f.begin.gid};
    meta.mtime_ns = f.begin.mtime_ns;
    Status s = BatchFor(f.root).FinishFile(f.id, m.size, meta, m.hash);
    if (!s.ok()) Fail(s);
    ++stats_.files_applied;
    stats_.bytes_applied += f.data_bytes;
  }
  open_files_.erase(it);
  return Status::Ok();
}

Result<Receiver::DataVerdict> Receiver::OnData(uint64_t seq, const wire::Message& message) {
  const auto* extent = std::get_if<wire::Extent>(&message);
  const auto* hole = std::get_if<wire::Hole>(&message);
  if (extent == nullptr && hole == nullptr) {
    return InvalidArgument("unexpected " +
                           std::string(wire::MessageTypeName(wire::TypeOf(message))) +
                           " on a data stream");
  }
  auto it = open_files_.find(seq);
  if (it == open_files_.end()) {
    // Not begun yet: the control stream is behind this data stream.
    if (seq > last_change_seq_) return DataVerdict::kNotYet;
    // A file version that was aborted (FILE_ABORT) or is over: nothing to apply it to.
    ++stats_.ranges_discarded;
    return DataVerdict::kTaken;
  }
  RETURN_IF_ERROR(extent != nullptr ? ApplyRange(it->second, *extent)
                                    : ApplyRange(it->second, *hole));
  if (parked_end_ && parked_end_->seq == seq && !StillShort(it->second, parked_end_->end)) {
    wire::FileEnd end = parked_end_->end;
    parked_end_.reset();
    RETURN_IF_ERROR(EndFile(it, end));  // checks the counts are met exactly
  }
  return DataVerdict::kTaken;
}

Status Receiver::OnCommit(const wire::Commit& commit) {
  if (!open_files_.empty()) {
    return InvalidArgument("COMMIT while " + std::to_string(open_files_.size()) +
                           " file versions are still open");
  }
  if (commit.last_seq != last_change_seq_ || commit.change_count != batch_changes_) {
    return InvalidArgument(
        "COMMIT(last_seq " + std::to_string(commit.last_seq) + ", " +
        std::to_string(commit.change_count) + " changes) does not match received (" +
        std::to_string(last_change_seq_) + ", " + std::to_string(batch_changes_) + ")");
  }
  // One batch commits at a time, in order: the one before this first (with its ACK or
  // NACK, which may refuse this one).
  RETURN_IF_ERROR(FinishPending());
  Status result = batch_failed_;
  // Later batches of a session build on every batch before them: after one was refused
  // none may apply (a file in a directory that batch would have made, a rename of what
  // it would have written), or the tree becomes a state the primary never had. The
  // primary resyncs on the NACK; until the session ends every further batch is refused.
  const bool follows_refusal = result.ok() && refused_seq_ != 0;
  if (follows_refusal) {
    result = FailedPrecondition("batch " + std::to_string(commit.last_seq) +
                                " follows refused batch " + std::to_string(refused_seq_) +
                                " of this session: not applied (the primary resyncs)");
  }
  std::vector<std::string> paths = std::move(batch_paths_);
  batch_paths_.clear();
  const bool structural = batch_structural_;
  batch_changes_ = 0;
  batch_failed_ = Status::Ok();
  batch_structural_ = false;
  bool any_batch = false;
  for (const auto& batch : batches_) any_batch = any_batch || batch != nullptr;
  if (committer_ && result.ok() && any_batch) {
    // Pipelined: the committer makes it durable while the next batch is staged here;
    // ReapCommit() (or the next FinishPending) emits the ACK once it is.
    pending_.last_seq = commit.last_seq;
    pending_.batches = std::move(batches_);
    batches_.clear();
    batches_.resize(trees_.size());
    pending_.paths = std::move(paths);
    pending_.structural = structural;
    pending_.committed = false;
    committer_->Start([this]() -> Status {
      Status r = Status::Ok();
      for (auto& batch : pending_.batches) {
        if (!batch) continue;
        if (r.ok()) {
          pending_.committed = true;
          r = batch->Commit();
        }
        batch.reset();  // removes what was not published, on this thread
      }
      return r;
    });
    return Status::Ok();
  }
  bool committed = false;  // a Commit ran: it may have published, then failed to sync
  for (auto& batch : batches_) {
    if (!batch) continue;
    if (result.ok()) {
      committed = true;
      result = batch->Commit();
    }
    batch.reset();
  }
  return Conclude(commit.last_seq, std::move(result), committed, follows_refusal, std::move(paths),
                  /*emit=*/true);
}

Status Receiver::Conclude(uint64_t last_seq, Status result, bool committed, bool follows_refusal,
                          std::vector<std::string> paths, bool emit) {
  if (!result.ok()) {
    ++stats_.batches_nacked;
    last_failure_ = result;
    if (committed) {
      for (std::string& p : paths) {
        if (unsynced_.size() >= kMaxUnsyncedPaths) {
          unsynced_all_ = true;
          break;
        }
        unsynced_.insert(std::move(p));
      }
      PersistUnsynced();
    }
    unsynced_reported_ = false;
    // Said here once per refused batch, so the standby's own log names the cause (a full
    // disk, a failed fsync) and not only the primary's; the batches already in flight
    // behind it only at debug level.
    Log(follows_refusal ? Level::kDebug : Level::kError, "batch_nacked")
        .kv("seq", last_seq)
        .kv("reason", result.ToString());
    if (refused_seq_ == 0) refused_seq_ = last_seq;
    // Later changes of this session build on a batch that did not apply: the primary
    // must resync before sending more (it does on NACK).
    if (!emit) return Status::Ok();
    return sink_.Emit(0, wire::Nack{last_seq, ErrorCodeFor(result), Clip(result.ToString())});
  }
  last_applied_seq_ = last_seq;
  ++stats_.batches_acked;
  LogSetidStripped(last_seq);
  if (!emit) return Status::Ok();
  return sink_.Emit(0, wire::Ack{last_seq, true});
}

// ---- pipelined commit ----------------------------------------------------------------

Status Receiver::EnablePipeline() {
  if (committer_) return Status::Ok();
  ASSIGN_OR_RETURN(committer_, Committer::Create());
  return Status::Ok();
}

Status Receiver::SettlePending(bool emit) {
  if (!commit_pending()) return Status::Ok();
  Status result = committer_->Wait();
  pending_.batches.clear();  // all reset by the job already
  return Conclude(pending_.last_seq, std::move(result), pending_.committed,
                  /*follows_refusal=*/false, std::move(pending_.paths), emit);
}

Status Receiver::FinishPending() { return SettlePending(/*emit=*/true); }

Status Receiver::ReapCommit() {
  if (!commit_pending() || !committer_->done()) return Status::Ok();
  return FinishPending();
}

bool Receiver::NeedsSettledTree(const wire::Message& message) const {
  // Rejoin: what a change replaces goes to quarantine first, on the tree as it is.
  if (quarantine_ != nullptr) return true;
  return std::visit(
      [&](const auto& m) -> bool {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, wire::FileBegin>) {
          // A block patch clones the current file; a temp is staged beside its
          // destination, in a directory the committing batch may create or remove.
          return (m.flags & wire::kFileDelta) != 0 || pending_.structural;
        } else if constexpr (std::is_same_v<T, wire::SetAttr> ||
                             std::is_same_v<T, wire::SetXattr> ||
                             std::is_same_v<T, wire::RemoveXattr>) {
          return NamesARoot(m.path);  // applied to the root at once, not in the batch
        } else {
          return false;  // recorded now, applied by this batch's own commit, in order
        }
      },
      message);
}

// The setuid/setgid policy changes what the primary asked for; an administrator reading
// the standby's log should see that it did (docs/APPLY.md, Policy).
void Receiver::LogSetidStripped(uint64_t seq) {
  uint64_t total = 0;
  for (const apply::Tree* t : trees_) total += t->stats().setid_bits_stripped;
  if (total > setid_logged_) {
    Log(Level::kWarn, "setid_stripped").kv("seq", seq).kv("count", total - setid_logged_);
  }
  setid_logged_ = total;
}

Status Receiver::UseUnsyncedFile(std::string path) {
  unsynced_file_ = std::move(path);
  int fd = open(unsynced_file_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::Ok();
    unsynced_all_ = true;  // cannot tell which: every file is written again
    return ErrnoStatus(errno, "open " + unsynced_file_);
  }
  std::string text;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > (kMaxUnsyncedPathsOnDisk + 1) * (wire::kPathMax + 1)) break;
  }
  close(fd);
  if (text.rfind(kUnsyncedMagic, 0) != 0) {
    unsynced_all_ = true;
    return DataLoss(unsynced_file_ +
                    " is not an unsynced-paths file: every file is compared as changed");
  }
  std::string_view rest = std::string_view(text).substr(kUnsyncedMagic.size());
  if (rest.rfind("paths\n", 0) != 0) {
    unsynced_all_ = true;  // "all", or anything else
    return Status::Ok();
  }
  rest.remove_prefix(6);
  while (!rest.empty()) {
    size_t end = rest.find('\0');
    if (end == std::string_view::npos) {  // torn (the rename makes that unlikely)
      unsynced_all_ = true;
      break;
    }
    unsynced_.insert(std::string(rest.substr(0, end)));
    rest.remove_prefix(end + 1);
  }
  return Status::Ok();
}

void Receiver::PersistUnsynced() {
  if (unsynced_file_.empty()) return;
  Status s;
  if (!unsynced_all_ && unsynced_.empty()) {
    if (unlink(unsynced_file_.c_str()) != 0 && errno != ENOENT) {
      s = ErrnoStatus(errno, "unlink " + unsynced_file_);
    }
  } else {
    std::string text(kUnsyncedMagic);
    if (unsynced_all_ || unsynced_.size() > kMaxUnsyncedPathsOnDisk) {
      text += "all\n";
    } else {
      text += "paths\n";
      for (const std::string& p : unsynced_) {
        text += p;
        text.push_back('\0');
      }
    }
    const std::string tmp = unsynced_file_ + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      s = ErrnoStatus(errno, "create " + tmp);
    } else {
      size_t done = 0;
      while (s.ok() && done < text.size()) {
        ssize_t n = write(fd, text.data() + done, text.size() - done);
        if (n < 0)
          s = ErrnoStatus(errno, "write " + tmp);
        else
          done += static_cast<size_t>(n);
      }
      if (s.ok() && fdatasync(fd) != 0) s = ErrnoStatus(errno, "fdatasync " + tmp);
      close(fd);
      if (s.ok() && rename(tmp.c_str(), unsynced_file_.c_str()) != 0) {
        s = ErrnoStatus(errno, "rename " + tmp);
      }
    }
  }
  if (s.ok()) {
    // The rename or unlink itself must survive a crash too.
    std::string dir = unsynced_file_.substr(0, unsynced_file_.rfind('/') + 1);
    int dfd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      if (fdatasync(dfd) != 0) s = ErrnoStatus(errno, "fdatasync " + dir);
      close(dfd);
    }
  }
  if (!s.ok()) {
    Log(Level::kWarn, "unsynced_paths_not_saved")
        .kv("reason", s.ToString())
        .kv("note", "kept in memory; a restart before the next resync would trust them");
  }
}

Status Receiver::SendManifest(const wire::ManifestRequest& request) {
  if (!request.root.empty()) {
    return InvalidArgument("MANIFEST_REQUEST for a subtree is not supported by this version");
  }
  ++stats_.manifests_sent;
  wire::ManifestEntries frame;
  frame.request_id = request.request_id;
  size_t body = wire::kManifestEntriesPrefixSize;
  auto flush = [&](bool last) -> Status {
    frame.flags = last ? wire::kManifestLast : 0;
    Status s = sink_.Emit(0, frame);
    frame.entries.clear();
    body = wire::kManifestEntriesPrefixSize;
    return s;
  };
  auto add = [&](uint32_t root, const FileInfo& info) -> Status {
    // Hashing a large spool for its manifest holds the loop for minutes: the session's
    // keepalive and the service watchdog go on from here (MessageSink::Progress).
    RETURN_IF_ERROR(sink_.Progress());
    ASSIGN_OR_RETURN(wire::ManifestEntry e, MakeManifestEntry(trees_[root]->root_fd(), root, info));
    // A directory entry must carry no hash (wire/ refuses one, and the standby asserts it
    // before sending): a failed batch that named a directory leaves its entry as it is.
    if (!info.path.empty() && e.kind != wire::EntryKind::kDirectory &&
        (unsynced_all_ || unsynced_.contains(e.path))) {
      // A failed sync covered it: claim content and mtime no primary file has, so the
      // resync writes it again instead of trusting the page cache (see receiver.h).
      e.hash.low = ~e.hash.low;
      e.mtime_ns ^= 1;
    }
    size_t entry_size = ManifestEntryWireSize(e);
    if (frame.entries.size() == wire::kManifestEntriesMax ||
        body + entry_size > wire::kFrameBodyMax) {
      RETURN_IF_ERROR(flush(false));
    }
    body += entry_size;
    frame.entries.push_back(std::move(e));
    return Status::Ok();
  };
  for (uint32_t root = 0; root < trees_.size(); ++root) {
    int fd = trees_[root]->root_fd();
    ASSIGN_OR_RETURN(FileInfo top, StatPath(fd, ""));
    RETURN_IF_ERROR(add(root, top));
    Status walk = ScanTree(
        fd, "", {},
        [&](const FileInfo& info) {
          Status s = add(root, info);
          // A file that vanished between the walk and the hash is simply not reported.
          return s.code() == Code::kNotFound ? Status::Ok() : s;
        },
        nullptr);
    RETURN_IF_ERROR(walk);
  }
  unsynced_reported_ = unsynced_all_ || !unsynced_.empty();
  return flush(true);
}

Result<bool> Receiver::HoldsSameFile(const std::string& source, const std::string& target) {
  ASSIGN_OR_RETURN(auto from, Split(source));
  ASSIGN_OR_RETURN(auto to, Split(target));
  auto open = [&](const std::pair<uint32_t, std::string>& where) {
    return OpenReadBeneath(trees_[where.first]->root_fd(), where.second);
  };
  auto a = open(from);
  auto b = open(to);
  if (!a.ok() || !b.ok()) return false;  // the change itself reports what is wrong
  ASSIGN_OR_RETURN(FileInfo fa, StatFd(a->get()));
  ASSIGN_OR_RETURN(FileInfo fb, StatFd(b->get()));
  if (fa.kind != NodeKind::kFile || fb.kind != NodeKind::kFile) return false;
  if (fa.dev == fb.dev && fa.ino == fb.ino) return true;
  if (fa.size != fb.size || fa.mode != fb.mode || fa.uid != fb.uid || fa.gid != fb.gid ||
      fa.mtime_ns != fb.mtime_ns) {
    return false;
  }
  ASSIGN_OR_RETURN(Hash128 ha, HashFd(a->get()));
  ASSIGN_OR_RETURN(Hash128 hb, HashFd(b->get()));
  if (ha != hb) return false;
  ASSIGN_OR_RETURN(XattrSet xa, ReadXattrs(a->get()));
  ASSIGN_OR_RETURN(XattrSet xb, ReadXattrs(b->get()));
  return xa.hash == xb.hash;
}

Result<bool> Receiver::KeepBeforeChange(const wire::Message& message) {
  std::string path;
  if (const auto* b = std::get_if<wire::FileBegin>(&message)) {
    if (b->flags & wire::kFileDelta) return false;  // builds on the file: not replaced
    path = b->path;
  } else if (const auto* s = std::get_if<wire::Symlink>(&message)) {
    path = s->path;
  } else if (const auto* u = std::get_if<wire::Unlink>(&message)) {
    path = u->path;
  } else if (const auto* l = std::get_if<wire::Link>(&message)) {
    path = l->new_path;
    // A name that already holds what the link gives it (the same inode, or a copy
    // equal in content and attributes) loses nothing: only the link structure changes.
    ASSIGN_OR_RETURN(bool same, HoldsSameFile(l->existing_path, l->new_path));
    if (same) return false;
  } else {
    return false;
  }
  ASSIGN_OR_RETURN(auto where, Split(path));
  if (where.second.empty()) return false;
  auto kept = quarantine_->Keep(*trees_[where.first], where.second, quarantine_epoch_);
  if (!kept.ok()) {
    if (kept.status().code() == Code::kNotFound) return false;  // nothing to keep
    return kept.status().Annotate("quarantine " + path);
  }
  ++stats_.files_quarantined;
  Log(Level::kWarn, "quarantined").kv("path", path).kv("to", *kept);
  return true;
}

Status Receiver::SendBlocks(const wire::BlocksRequest& request) {
  wire::BlocksReply reply;
  reply.request_id = request.request_id;
  reply.block_size = request.block_size;
  if (quarantine_ != nullptr) {
    // Rejoining: the file will be kept and replaced whole, not patched.
    reply.flags = wire::kBlocksLast | wire::kBlocksMissing;
    return sink_.Emit(0, reply);
  }
  auto where = Split(request.path);
  Result<UniqueFd> fd = where.ok() ? OpenReadBeneath(trees_[where->first]->root_fd(), where->second)
                                   : Result<UniqueFd>(where.status());
  // Only a regular file has blocks: a device node in the tree (/dev/zero never ends) or
  // a FIFO with a writer would keep this loop reading, and hashing forever.
  struct stat fd_st {};
  if (fd.ok() && (fstat(fd->get(), &fd_st) != 0 || !S_ISREG(fd_st.st_mode))) {
    fd = Result<UniqueFd>(FailedPrecondition("not a regular file: " + request.path));
  }
  Result<std::vector<Hash128>> hashes = fd.ok() ? BlockHashesFd(fd->get(), request.block_size)
                                                : Result<std::vector<Hash128>>(fd.status());
  if (!hashes.ok()) {
    reply.flags = wire::kBlocksLast | wire::kBlocksMissing;
    return sink_.Emit(0, reply);
  }
  auto st = StatFd(fd->get());
  reply.file_size = st.ok() ? st->size : 0;
  const std::vector<Hash128>& all = *hashes;
  size_t i = 0;
  do {
    size_t n = std::min(wire::kBlockHashesMax, all.size() - i);
    reply.first_block = i;
    reply.hashes.assign(all.begin() + static_cast<std::ptrdiff_t>(i),
                        all.begin() + static_cast<std::ptrdiff_t>(i + n));
    i += n;
    reply.flags = i == all.size() ? wire::kBlocksLast : 0;
    RETURN_IF_ERROR(sink_.Emit(0, reply));
  } while (i < all.size());
  return Status::Ok();
}

}  // namespace hasync::engine
