#include "engine/node/session_out.h"

#include <utility>

#include "engine/net/data_stream.h"
#include "engine/node/now.h"

namespace hasync::engine {

Status SessionOut::Emit(uint64_t seq, wire::Message message) {
  if (!open()) return Unavailable("no session to send on");
  if (auto routed = streams_.Route(seq, message)) return *routed;
  if (beats_) beats_->NoteSent(message);
  RETURN_IF_ERROR(session_->conn->Send(state_.epoch, seq, message));
  if (std::holds_alternative<wire::Commit>(message)) {
    // A lock record with every batch (DESIGN §3): the standby sees the progress the
    // batch made at once, not at the next beat. Only the primary's Sender commits.
    HASYNC_ASSERT(beats_ != nullptr);
    auto lock = lockwin::EncodeLockRecord(beats_->Make(NowNs(), false));
    if (lock.ok()) {
      metrics_.lock_records_sent.fetch_add(1, std::memory_order_relaxed);
      RETURN_IF_ERROR(session_->conn->Send(state_.epoch, 0, wire::Lock{std::move(lock).value()}));
    }
  }
  if (session_->conn->outgoing_size() > kFlushHighWater) return link_.Flush(session_);
  return Status::Ok();
}

Status SessionOut::Progress() {
  int64_t now = NowNs();
  // A long walk (the primary's resync comparison, the standby's manifest of a large
  // spool) holds the loop, working: the service manager's watchdog is fed from here (at
  // its own pace), or systemd would kill a node that is busy, not hung.
  if (service_ != nullptr) service_->Watchdog(now);
  if (!open()) return Status::Ok();
  // The beat goes on from here, or the standby would judge a working primary silent;
  // the PING keeps the peer's 15 s silence bound from ending the session (on the
  // standby: while `hasync verify` waits for its manifest).
  if (beats_ && beats_->Due(now)) RETURN_IF_ERROR(SendBeat(now));
  // (The standby's clock starts at its first walk of the session: its first PING goes
  // a second into a walk, not at once.)
  if (session_->last_ping_ns == 0) session_->last_ping_ns = now;
  if (now - session_->last_ping_ns >= kPingIntervalNs) {
    session_->last_ping_ns = now;
    RETURN_IF_ERROR(session_->conn->Send(
        state_.epoch, 0, wire::Ping{static_cast<uint64_t>(now), static_cast<uint64_t>(now)}));
  }
  // Nothing reaps completions while the walk holds the loop, and a session sends one
  // buffer at a time: the send in flight (the last beat or PING) has long completed in
  // the kernel, but until its completion runs, whatever was queued after it stays here.
  // So reap it (waiting at most 1 ms, at most every 50 ms) before sending on.
  if (session_->sending && now - last_reap_ns_ >= kProgressReapIntervalNs) {
    last_reap_ns_ = now;
    link_.AwaitSendInFlight(session_, kProgressReapWaitNs);
  }
  return link_.Flush(session_);
}

Status SessionOut::EmitSpliced(uint64_t seq, uint64_t file_size, uint64_t offset, uint32_t length,
                               std::shared_ptr<const UniqueFd> file) {
  HASYNC_ASSERT(Splices(seq));
  DataFrame frame{seq, wire::Extent{file_size, offset, {}}, 0, std::move(file), length};
  frame.bytes = DataFrameBytes(frame.message);  // the data is not in memory
  return streams_.Enqueue(frame);
}

Status SessionOut::Send(wire::Message message) {
  RETURN_IF_ERROR(Emit(0, std::move(message)));
  return link_.Flush(session_);
}

Status SessionOut::SendBeat(int64_t now) {
  auto record = beats_->Beat(now);
  if (!record) return Status::Ok();
  if (!open()) return Status::Ok();
  metrics_.lock_records_sent.fetch_add(1, std::memory_order_relaxed);
  return Send(wire::Lock{std::move(*record)});
}

Status SessionOut::Keepalive(int64_t now) {
  if (!open() || now - session_->last_ping_ns <= kPingIntervalNs) {
    return Status::Ok();
  }
  session_->last_ping_ns = now;
  return Send(wire::Ping{static_cast<uint64_t>(now), static_cast<uint64_t>(now)});
}

Status SessionOut::Refuse(const std::shared_ptr<Peer>& peer, wire::ErrorCode code,
                          const std::string& why) {
  peer->conn->Send(state_.epoch, 0, wire::Error{code, why}).IgnoreError();
  link_.Flush(peer).IgnoreError();  // Drop lets this send finish (its linger)
  return FailedPrecondition(why);
}

}  // namespace hasync::engine
