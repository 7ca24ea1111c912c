#include "engine/node/standby_role.h"

#include <sys/ioctl.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

#include "engine/apply/inplace.h"
#include "engine/log.h"
#include "engine/node/now.h"

namespace hasync::engine {

// ---- start-up -----------------------------------------------------------------------------

Status StandbyRole::Start() {
  // Group commit (DESIGN §7): a batch's temps and directories are made durable together,
  // either by fsyncs all in flight at once through io_uring or by one syncfs.
  apply::TreeOptions topts;
  std::string_view how = "syncfs";
  if (cfg_.sync.group_commit == GroupCommit::kSyncfs) {
    topts.sync = apply::SyncStrategy::kSyncfs;
  } else if (auto ops = apply::UringFsOps::Create(); ops.ok()) {
    fs_ops_ = std::move(ops).value();
    how = "fsync, concurrent through io_uring";
  } else {
    how = "fsync, one after the other";
    Log(Level::kWarn, "group_commit_degraded")
        .kv("reason", ops.status().ToString())
        .kv("note", "fsyncs run one after the other");
  }
  Log(Level::kInfo, "group_commit").kv("mode", how);
  std::vector<apply::Tree*> raw;
  for (const std::string& root : cfg_.sync.roots) {
    // In-place block patches (no reflink) keep their undo records here; Node::Init has
    // rolled back whatever a crash left.
    topts.undo_dir = apply::UndoDirFor(cfg_.sync.state_dir, root);
    auto tree = apply::Tree::Open(root, topts, fs_ops_.get());
    if (!tree.ok()) return tree.status().Annotate("open sync root " + root);
    trees_.push_back(std::make_unique<apply::Tree>(std::move(tree).value()));
    auto cleaned = trees_.back()->RemoveStaleTemps();
    if (!cleaned.ok()) return cleaned.status();
    if (cleaned->removed > 0) {
      Log(Level::kInfo, "stale_temps_removed").kv("root", root).kv("count", cleaned->removed);
    }
    raw.push_back(trees_.back().get());
  }
  receiver_ = std::make_unique<Receiver>(raw, out_);
  // Batch N commits on a thread of its own while batch N+1 is received and staged; the
  // ACK still goes out only once N is durable, in order (docs/APPLY.md).
  // HASYNC_COMMIT_PIPELINE=0 turns it off: a diagnostic and benchmark switch
  // (scripts/perf/apply_pipeline.sh measures both ways in one run), not a setting.
  const char* pipeline_env = std::getenv("HASYNC_COMMIT_PIPELINE");
  if (pipeline_env != nullptr && std::string_view(pipeline_env) == "0") {
    Log(Level::kInfo, "commit_pipeline_off").kv("reason", "HASYNC_COMMIT_PIPELINE=0");
  } else if (Status s = receiver_->EnablePipeline(); !s.ok()) {
    Log(Level::kWarn, "commit_pipeline_off")
        .kv("reason", s.ToString())
        .kv("note", "each batch commits on the loop; the next one is received after it");
  }
  receiver_->set_verify_handler(
      [this](const wire::ManifestRequest& r) { return verifier_.StartStandbyManifest(r); });
  receiver_->set_last_applied_seq(state_.last_applied_seq);
  // Paths a failed fsync covered before a restart are still not trusted (fsyncgate).
  if (Status s = receiver_->UseUnsyncedFile(cfg_.sync.state_dir + "/unsynced"); !s.ok()) {
    Log(Level::kWarn, "unsynced_paths_unreadable")
        .kv("reason", s.ToString())
        .kv("action", "every file is compared as changed in the next resync");
  } else if (receiver_->unsynced_paths() > 0) {
    Log(Level::kWarn, "unsynced_paths")
        .kv("count", receiver_->unsynced_paths())
        .kv("note",
            "a failed fsync covered them before the restart: the next resync rewrites them");
  }
  if (state_.rejoin_epoch != 0) {
    auto q = apply::Quarantine::Open(cfg_.sync.state_dir, fs_ops_.get());
    if (!q.ok()) return q.status().Annotate("quarantine for the rejoin");
    quarantine_.emplace(std::move(q).value());
    Log(Level::kWarn, "rejoining")
        .kv("was_primary_at_epoch", state_.rejoin_epoch)
        .kv("note", "files the primary replaces or removes in the first resync are kept in " +
                        cfg_.sync.state_dir + "/quarantine/");
  }
  // Not fatal here: only telling a primary keyed differently from silence needs it.
  if (Status s = link_.ResolvePeer(); !s.ok()) {
    Log(Level::kWarn, "peer_address_unresolved")
        .kv("reason", s.ToString())
        .kv("note", "a primary keyed differently cannot be told from silence");
  }
  RETURN_IF_ERROR(streams_.AcceptStreams(*receiver_));
  return window_.Start(NowNs());
}

// ---- the session ---------------------------------------------------------------------------

void StandbyRole::Opened(const wire::Hello& hello) {
  receiver_->Reset();
  receiver_->set_data_streams((hello.capabilities & wire::kCapDataStreams) != 0);
  if (quarantine_) receiver_->set_quarantine(&*quarantine_, state_.epoch);
}

Status StandbyRole::OnFrame(const wire::Frame& frame) {
  if (const auto* ping = std::get_if<wire::Ping>(&frame.message)) {
    return out_.Emit(0, wire::Pong{ping->token, ping->send_ns});
  }
  if (const auto* lock = std::get_if<wire::Lock>(&frame.message)) {
    RETURN_IF_ERROR(window_.OnLock(*lock));
    // Every lock record is answered: the primary's lease counts from what it hears.
    return out_.Emit(0, wire::Pong{0, 0});
  }
  if (const auto* demoted = std::get_if<wire::Demoted>(&frame.message)) {
    Log(Level::kInfo, "peer_demoted")
        .kv("on_demote_ok", demoted->on_demote_ok)
        .kv("last_seq", demoted->last_seq);
    failover_.Feed(NowNs(), failover::in::PeerDemoted{demoted->reason, demoted->on_demote_ok});
    return Status::Ok();
  }
  if (const auto* err = std::get_if<wire::Error>(&frame.message)) {
    return Unavailable("primary reported: " + err->message);
  }
  Status s = receiver_->OnMessage(frame.seq, frame.message);
  if (!s.ok()) {
    out_.Emit(0, wire::Error{wire::ErrorCode::kProtocol,
                             s.message().substr(0, wire::kErrorMessageMax)})
        .IgnoreError();
    return s;
  }
  return Status::Ok();
}

Status StandbyRole::OnCommitEvent() {
  if (!receiver_ || !receiver_->commit_pending()) return Status::Ok();
  RETURN_IF_ERROR(receiver_->ReapCommit());
  if (!session_ || session_->dead) return Status::Ok();
  return out_.Flush();
}

uint64_t StandbyRole::Ended() {
  receiver_->Reset();
  return receiver_->last_applied_seq();
}

void StandbyRole::CheckRejoined(int64_t now) {
  if (quarantine_ && receiver_->resyncs_completed() > 0) {
    // The first resync under the new primary is complete and durable: rejoined.
    Log(Level::kWarn, "rejoined")
        .kv("epoch", state_.epoch)
        .kv("quarantined", quarantine_->files_quarantined())
        .kv("where", cfg_.sync.state_dir + "/quarantine/" + std::to_string(state_.epoch));
    receiver_->set_quarantine(nullptr, 0);
    quarantine_.reset();
    failover_.Feed(now, failover::in::Rejoined{});
  } else if (state_.handed_over && receiver_->resyncs_completed() > 0) {
    // After a switchover: joined the new primary; nothing was kept.
    Log(Level::kInfo, "rejoined").kv("epoch", state_.epoch).kv("quarantined", uint64_t{0});
    failover_.Feed(now, failover::in::Rejoined{});
  }
}

// ---- what the controller sees --------------------------------------------------------------

void StandbyRole::Observe(int64_t now, failover::Observation& seen) const {
  seen.verdict = window_.Judge(now);
  // Unread bytes are looked for only when they could change a decision.
  seen.caught_up = seen.verdict == lockwin::Verdict::kAlive || CaughtUp();
  seen.holds_copy =
      !receiver_ || receiver_->resyncs_completed() > 0 || receiver_->last_applied_seq() > 0;
  seen.rejoining = rejoining();
  seen.last_applied_seq = receiver_ ? receiver_->last_applied_seq() : state_.last_applied_seq;
}

bool StandbyRole::CaughtUp() const {
  // Silence or sameness means something only once this node has read everything the
  // primary sent: a standby busy applying reads its socket late, and the records waiting
  // there would say the primary is fine.
  if (!session_ || session_->dead) return true;
  if (session_->recv_held) return false;
  int unread = 0;
  if (ioctl(session_->fd.get(), FIONREAD, &unread) == 0 && unread > 0) return false;
  return !streams_.HasUnread();
}

std::vector<int> StandbyRole::RootFds() const {
  std::vector<int> fds;
  for (const auto& t : trees_) fds.push_back(t->root_fd());
  return fds;
}

}  // namespace hasync::engine
