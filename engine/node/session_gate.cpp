#include "engine/node/session_gate.h"

#include <span>
#include <string>
#include <utility>

#include "engine/log.h"
#include "engine/node/now.h"

namespace hasync::engine {

void SessionGate::Received(const std::shared_ptr<Peer>& peer, size_t n) {
  const int64_t arrived = NowNs();
  peer->last_rx_ns = arrived;
  Status s = peer->conn->Feed(std::span<const std::byte>(peer->rx.data(), n));
  if (s.ok()) s = HandleFrames(peer);
  if (s.ok() && !peer->dead) s = link_.Flush(peer);
  if (!s.ok()) {
    link_.Drop(peer, s);
    return;
  }
  // The lease is renewed only by a standby that proved the key: the bytes of a failing
  // handshake (a standby keyed differently answers with an alert) are not the standby
  // holding the copy, and once counted they kept a primary serving beside a standby
  // that promoted.
  if (peer == session_ && peer->conn->open() && primary_) {
    failover_.Feed(arrived, failover::in::PeerHeard{});
  }
  // Time this node spent handling what arrived (a manifest walk, a big commit) is not
  // the peer's silence.
  peer->last_rx_ns = NowNs();
  if (peer->dead) return;
  ReceiveOrHold(peer);
  // The control stream may have begun files whose data waits at the head of a stream
  // whose thread, its queue full, will not wake the loop again.
  if (peer == session_ && streams_.has_incoming()) streams_.Pump();
}

Status SessionGate::HandleFrames(const std::shared_ptr<Peer>& peer) {
  bool was_open = peer->conn->open();
  for (int i = 0; i < 100'000 && !peer->dead; ++i) {
    if (ControlHeld(peer)) return Status::Ok();  // ResumeControl goes on from here
    auto next = peer->conn->Next();
    if (!next.ok()) return next.status();
    if (!was_open && peer->conn->open()) {
      was_open = true;
      RETURN_IF_ERROR(OnOpened(peer, *next));
      if (peer->handed_off) return Status::Ok();  // a data stream, now its thread's
    }
    if (!next->has_value()) return Status::Ok();
    const wire::Frame& frame = **next;
    // An ERROR is read whatever its epoch: it changes nothing here, and it carries the
    // reason a peer refuses the session (sent at its own epoch, maybe below this one's).
    if (frame.epoch < state_.epoch && !std::holds_alternative<wire::Error>(frame.message)) {
      // Sent before the close (Drop lets a send in flight finish): the primary learns why.
      Status told = out_.Emit(
          0, wire::Error{wire::ErrorCode::kStaleEpoch, "epoch " + std::to_string(frame.epoch) +
                                                           " < " + std::to_string(state_.epoch)});
      if (told.ok()) link_.Flush(peer).IgnoreError();
      return PermissionDenied("frame with stale epoch " + std::to_string(frame.epoch) +
                              " (this node is at " + std::to_string(state_.epoch) + ")");
    }
    if (failover_.CheckFrameEpoch(frame.epoch) == failover::FrameEpoch::kHigher) {
      failover_.Feed(NowNs(),
                     failover::in::HigherEpoch{frame.epoch, "the peer sent a frame at epoch " +
                                                                std::to_string(frame.epoch)});
      return Unavailable("demoted: the peer is at a higher epoch");
    }
    RETURN_IF_ERROR(primary_ ? primary_->OnFrame(frame) : standby_->OnFrame(frame));
  }
  return Status::Ok();
}

Status SessionGate::OnOpened(const std::shared_ptr<Peer>& peer, std::optional<wire::Frame>& first) {
  const wire::Hello& hello = peer->conn->peer_hello();
  std::string refuse;
  const bool inbound = peer != session_;
  if (hello.node_name != cfg_.peer.name) {
    refuse =
        "peer calls itself '" + hello.node_name + "', configured peer is '" + cfg_.peer.name + "'";
  } else {
    // Roles and epochs: the controller's rules (docs/FAILOVER.md).
    auto said = failover_.Feed(
        NowNs(), failover::in::PeerHello{hello.role, peer->conn->peer_epoch(), inbound});
    if (said.refusal) {
      if (said.refusal->tell_promoted) {
        peer->conn
            ->Send(state_.epoch, 0,
                   wire::Promoted{wire::RoleChangeReason::kHigherEpoch, state_.node_id})
            .IgnoreError();
      }
      refuse = said.refusal->why;
    } else if (said.end) {
      return Unavailable(*said.end);
    }
  }
  if (refuse.empty() && hello.stream_kind == wire::StreamKind::kData) {
    if (state_.role != NodeRole::kStandby) {
      refuse = "a data stream dialled the primary";
    } else {
      std::optional<wire::Frame> taken = std::move(first);
      first.reset();
      return streams_.Adopt(peer, std::move(taken));
    }
  }
  if (!refuse.empty()) return out_.Refuse(peer, wire::ErrorCode::kRoleConflict, refuse);
  peer->session_opened = true;
  metrics_.sessions_opened.fetch_add(1, std::memory_order_relaxed);
  Log(Level::kInfo, "session_open")
      .kv("peer", hello.node_name)
      .kv("cipher", peer->conn->cipher_suite())
      .kv("peer_epoch", peer->conn->peer_epoch())
      .kv("peer_last_applied_seq", hello.last_applied_seq);
  if (state_.role == NodeRole::kStandby) {
    // A higher epoch is persisted before anything of the session is applied.
    if (auto end =
            failover_.Feed(NowNs(), failover::in::SessionOpened{peer->conn->peer_epoch()}).end) {
      return Unavailable(*end);
    }
    if (session_ && session_ != peer)
      link_.Drop(session_, Unavailable("replaced by a newer session"));
    link_.EndHandshake(peer);
    session_ = peer;
    standby_->Opened(hello);
    return Status::Ok();
  }
  return primary_->Opened(hello);
}

void SessionGate::ResumeControl() {
  std::shared_ptr<Peer> control = session_;
  control->recv_held = false;
  Status s = HandleFrames(control);
  if (s.ok() && !control->dead) s = link_.Flush(control);
  if (!s.ok()) {
    link_.Drop(control, s);
    return;
  }
  if (!control->dead) ReceiveOrHold(control);
}

void SessionGate::ReceiveOrHold(const std::shared_ptr<Peer>& peer) {
  if (ControlHeld(peer)) {
    peer->recv_held = true;  // the bytes after the waiting FILE_END stay unread
  } else {
    link_.PostRecv(peer);
  }
}

}  // namespace hasync::engine
