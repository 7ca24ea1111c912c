#include "engine/node/primary_role.h"

#include <fcntl.h>
#include <poll.h>

#include <string>
#include <utility>

#include "engine/log.h"
#include "engine/node/now.h"

namespace hasync::engine {

PrimaryRole::PrimaryRole(const Config& cfg, const NodeState& state, Metrics& metrics,
                         MetricsPublisher& publisher, iouring::Loop& loop, PeerLink& link,
                         StreamPool& streams, SessionOut& out, VerifyRunner& verifier,
                         FailoverDriver& failover, const std::shared_ptr<Peer>& session,
                         Owner& owner)
    : cfg_(cfg),
      state_(state),
      metrics_(metrics),
      publisher_(publisher),
      loop_(loop),
      link_(link),
      streams_(streams),
      out_(out),
      verifier_(verifier),
      failover_(failover),
      session_(session),
      owner_(owner) {}

// ---- start-up -----------------------------------------------------------------------------

Status PrimaryRole::Start() {
  watch::WatcherOptions wopts;
  wopts.roots = cfg_.sync.roots;
  auto watcher = watch::Watcher::Open(wopts, &clock_);
  if (!watcher.ok()) return watcher.status().Annotate("start the watcher");
  watcher_.emplace(std::move(watcher).value());
  Log(Level::kInfo, "watching").kv("mode", watcher_->ModeDescription());
  JournalLimits limits;
  limits.max_bytes = cfg_.limits.journal_memory_bytes / 2;
  limits.max_entries = static_cast<size_t>(cfg_.limits.journal_memory_bytes / 128);
  journal_ = std::make_unique<Journal>(limits, static_cast<uint32_t>(cfg_.sync.roots.size()));
  for (const std::string& root : cfg_.sync.roots) {
    UniqueFd fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return ErrnoStatus(errno, "open sync root " + root);
    root_fds_.push_back(std::move(fd));
  }
  MakeSender();
  Log(Level::kInfo, "sender_reads").kv("mode", sender_->read_mode());
  beats_.StartProbe();
  out_.set_beats(&beats_);
  return link_.ResolvePeer();  // the primary dials it
}

void PrimaryRole::PostWatch() {
  Status s = loop_.Submit(
      [this](io_uring_sqe* sqe) { io_uring_prep_poll_add(sqe, watcher_->fd(), POLLIN); },
      [this](int32_t res) {
        if (res < 0) {
          owner_.Fail(ErrnoStatus(-res, "poll fanotify fd"));
          return;
        }
        if (failover_.changing_role()) return;  // the node is changing role: no more changes
        Status r = watcher_->OnReadable();
        if (!r.ok()) Log(Level::kWarn, "watch_read_failed").kv("error", r.ToString());
        DrainWatcher();
        if (phase_ == Phase::kLive) {
          Status p = PumpSender();
          if (!p.ok() && session_) link_.Drop(session_, p);
        }
        PostWatch();
      });
  if (!s.ok()) owner_.Fail(s);
}

void PrimaryRole::MakeSender() {
  std::vector<int> fds;
  for (auto& fd : root_fds_) fds.push_back(fd.get());
  SenderOptions sopts;
  sopts.max_batch_bytes = cfg_.limits.max_batch_bytes;
  sopts.max_batch_changes = cfg_.limits.max_batch_files;
  sopts.max_unacked_bytes = cfg_.limits.max_queued_bytes;
  // The old sender's last figures, then start over.
  if (sender_) owner_.PublishMetrics(NowNs());
  publisher_.RestartSenderCounters();
  sender_ = std::make_unique<Sender>(std::move(fds), sopts, out_);
  sender_->set_on_durable([this](int64_t lag_ns) {
    metrics_.batches_acked.fetch_add(1, std::memory_order_relaxed);
    metrics_.ObserveLagNs(lag_ns);
  });
  // Before removing a name that is missing now, the sender wants every queued event.
  sender_->set_journal_refresh([this] {
    Status read = watcher_->OnReadable();
    if (!read.ok()) Log(Level::kWarn, "watch_read_failed").kv("error", read.ToString());
    DrainWatcher();
  });
}

Status PrimaryRole::PumpSender() {
  if (!session_ || session_->dead) return Status::Ok();
  RETURN_IF_ERROR(sender_->Pump(*journal_));
  return link_.Flush(session_);
}

// ---- the session ---------------------------------------------------------------------------

Status PrimaryRole::Opened(const wire::Hello& hello) {
  // Start over from the standby's manifest. The reconnect backoff is not reset here: a
  // standby that NACKs every resync (full disk, failing fsync) opens sessions fine, and
  // resetting at each open made the primary re-run the whole comparison every 100 ms.
  // It resets on progress instead: an ACK, or a resync with nothing to send.
  phase_ = Phase::kManifest;
  resync_waiting_since_ns_ = 0;
  resync_started_ns_ = NowNs();
  journal_->Clear();  // the resync compares the whole tree; later events are kept
  MakeSender();
  sender_->set_next_seq(hello.last_applied_seq + 1);
  sender_->BeginManifest();
  RETURN_IF_ERROR(streams_.Start(hello));
  return out_.Emit(0, wire::ManifestRequest{1, ""});
}

Status PrimaryRole::OnFrame(const wire::Frame& frame) {
  return std::visit(
      [&](const auto& m) -> Status {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, wire::ManifestEntries>) {
          if (m.request_id >= kVerifyRequestIdBase) return verifier_.OnEntries(m);
          if (phase_ != Phase::kManifest) {
            return InvalidArgument("MANIFEST_ENTRIES outside a resync");
          }
          for (const auto& e : m.entries) RETURN_IF_ERROR(sender_->AddManifestEntry(e));
          if (m.flags & wire::kManifestLast) {
            ASSIGN_OR_RETURN(pending_blocks_, sender_->RequestResyncBlocks());
            if (pending_blocks_ == 0) return ResyncWhenStreamsOpen();
            phase_ = Phase::kBlocks;
          }
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, wire::BlocksReply>) {
          if (phase_ != Phase::kBlocks) return InvalidArgument("BLOCKS_REPLY outside a resync");
          ASSIGN_OR_RETURN(bool last, sender_->AddBlocks(m));
          if (last && --pending_blocks_ == 0) return ResyncWhenStreamsOpen();
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, wire::Ack>) {
          RETURN_IF_ERROR(sender_->OnAck(m));
          if (m.durable) link_.ResetRedialBackoff();  // the standby made progress
          return phase_ == Phase::kLive ? PumpSender() : Status::Ok();
        } else if constexpr (std::is_same_v<T, wire::Nack>) {
          Log(Level::kError, "batch_refused").kv("seq", m.seq).kv("reason", m.message);
          return Unavailable("standby refused batch " + std::to_string(m.seq) + ": " + m.message);
        } else if constexpr (std::is_same_v<T, wire::Pong> || std::is_same_v<T, wire::Ping>) {
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, wire::DemoteRequest>) {
          failover_.Feed(NowNs(), failover::in::DemoteRequested{m.reason});
          return Unavailable("demoted at the standby's request");
        } else if constexpr (std::is_same_v<T, wire::Error>) {
          return Unavailable("standby reported: " + m.message);
        } else {
          return InvalidArgument(std::string("unexpected ") + std::string(T::kName) +
                                 " from the standby");
        }
      },
      frame.message);
}

// The manifest (and any block hashes asked for) are in: ship the difference.
Status PrimaryRole::ResyncWhenStreamsOpen() {
  static constexpr int64_t kStreamWaitNs = 2'000'000'000;
  const int64_t now = NowNs();
  if (resync_waiting_since_ns_ == 0) resync_waiting_since_ns_ = now;
  if (!streams_.Settled() && now - resync_waiting_since_ns_ < kStreamWaitNs) {
    phase_ = Phase::kBlocks;  // Step calls again
    return Status::Ok();
  }
  resync_waiting_since_ns_ = 0;
  return FinishResync();
}

Status PrimaryRole::FinishResync() {
  RETURN_IF_ERROR(sender_->Resync(journal_.get()));
  phase_ = Phase::kLive;
  // Nothing differed, so nothing can be refused: the session is healthy.
  if (sender_->unacked_batches() == 0) link_.ResetRedialBackoff();
  const SenderStats& st = sender_->stats();
  Log(Level::kInfo, "resync_sent")
      .kv("files", st.files_sent)
      .kv("bytes", st.file_bytes_sent)
      .kv("links", st.links_sent)
      .kv("deltas", st.deltas_sent)
      .kv("block_requests", st.resync_block_requests)
      .kv("unchanged", st.unchanged_skipped)
      .kv("tracked", static_cast<uint64_t>(sender_->tracked()))
      .kv("seconds", static_cast<double>(NowNs() - resync_started_ns_) / 1e9);
  return PumpSender();
}

void PrimaryRole::Ended() {
  phase_ = Phase::kIdle;
  resync_waiting_since_ns_ = 0;
  link_.ScheduleRedial();
}

std::string_view PrimaryRole::SessionState() const {
  if (phase_ == Phase::kLive && session_ && !session_->dead) return "live";
  return phase_ == Phase::kIdle ? "idle" : "opening";
}

std::string_view PrimaryRole::phase_name() const {
  static constexpr std::string_view kNames[] = {"idle",     "connecting", "handshake",
                                                "manifest", "blocks",     "live"};
  return kNames[static_cast<int>(phase_)];
}

PeerWork PrimaryRole::StandbyWork() const {
  // While the standby walks and hashes its tree for the manifest it sends nothing; a
  // standby making a large batch durable is silent until its fsyncs return.
  if (phase_ == Phase::kManifest || phase_ == Phase::kBlocks) return PeerWork::kManifest;
  if (sender_ && phase_ == Phase::kLive && sender_->unacked_batches() > 0) {
    return PeerWork::kCommit;
  }
  return PeerWork::kNone;
}

// ---- every tick ----------------------------------------------------------------------------

void PrimaryRole::TickWatcher() {
  watcher_->Tick();
  DrainWatcher();
}

void PrimaryRole::Beat(int64_t now) {
  if (!beats_.Due(now)) return;
  Status s = out_.SendBeat(now);
  if (!s.ok() && session_) link_.Drop(session_, s);
}

void PrimaryRole::Step() {
  if (phase_ == Phase::kLive) {
    Status s = PumpSender();
    if (!s.ok() && session_) link_.Drop(session_, s);
  } else if (phase_ == Phase::kBlocks && pending_blocks_ == 0 && resync_waiting_since_ns_ != 0) {
    Status s = ResyncWhenStreamsOpen();
    if (!s.ok() && session_) link_.Drop(session_, s);
  }
}

bool PrimaryRole::Settled() const {
  return journal_->empty() && !sender_->has_open_batch() && sender_->unacked_batches() == 0 &&
         watcher_ && watcher_->ready() == 0;
}

void PrimaryRole::Observe(failover::Observation& seen) const {
  seen.session_live = phase_ == Phase::kLive;
  seen.acked_seq = sender_ ? sender_->acked_seq() : 0;
  seen.drained = seen.session_live && journal_ && journal_->empty() && sender_ &&
                 !sender_->has_open_batch() && sender_->unacked_batches() == 0 && watcher_ &&
                 watcher_->ready() == 0 && !watcher_->NextDeadlineNs();
}

std::vector<int> PrimaryRole::RootFds() const {
  std::vector<int> fds;
  for (const auto& fd : root_fds_) fds.push_back(fd.get());
  return fds;
}

}  // namespace hasync::engine
