// SessionGate: how a connection's bytes become the session's frames.
//
// Every received buffer goes through here. Until a connection's handshake is over its
// bytes only feed the handshake; once the peer's HELLO is in, the gate decides what the
// connection is: refused (a peer of another name, or what the failover controller's
// rules on roles and epochs refuse, told why with an ERROR and, to a primary at a lower
// epoch, PROMOTED), a data stream of the session (handed to the StreamPool, standby
// only), or the session. On the standby a newer session replaces an older one, after
// the controller has persisted a higher epoch; on the primary the role starts its
// resync. Then each frame's epoch is checked (a lower one is refused with an ERROR, a
// higher one demotes this node) and the frame goes to the role's OnFrame.
//
// Receiving is held back on the standby's control stream while a FILE_END waits for
// its content on a data stream (the bytes after it stay unread in the socket), and
// goes on (ResumeControl) once the StreamPool has delivered it.
//
// What it owns: nothing. The session (the node's active peer, which it sets on the
// standby), the link, the data streams, the roles and the failover driver are the
// node's.
//
// Threading: the loop's thread only.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>

#include "base/status.h"
#include "engine/config.h"
#include "engine/node/failover_driver.h"
#include "engine/node/metrics.h"
#include "engine/node/peer_link.h"
#include "engine/node/primary_role.h"
#include "engine/node/session_out.h"
#include "engine/node/standby_role.h"
#include "engine/node/state.h"
#include "engine/node/stream_pool.h"
#include "wire/messages.h"

namespace hasync::engine {

class SessionGate {
 public:
  // `session`: the node's session peer, read at each call and set when a standby's
  // session opens. Exactly one of `primary` and `standby` is set: the node's role.
  SessionGate(const Config& cfg, const NodeState& state, Metrics& metrics,
              std::shared_ptr<Peer>& session, PeerLink& link, StreamPool& streams, SessionOut& out,
              FailoverDriver& failover, PrimaryRole* primary, StandbyRole* standby)
      : cfg_(cfg),
        state_(state),
        metrics_(metrics),
        session_(session),
        link_(link),
        streams_(streams),
        out_(out),
        failover_(failover),
        primary_(primary),
        standby_(standby) {}
  SessionGate(const SessionGate&) = delete;
  SessionGate& operator=(const SessionGate&) = delete;

  // `n` bytes arrived in peer->rx (PeerLink::Owner::Received): they are fed to the
  // connection and its frames handled; a failure drops the peer. Posts the next receive
  // unless the control stream is held.
  void Received(const std::shared_ptr<Peer>& peer, size_t n);
  // Standby: the control stream, held while a FILE_END waited for its content, goes on.
  void ResumeControl();

 private:
  Status HandleFrames(const std::shared_ptr<Peer>& peer);
  // `first`: the frame Next() returned with the peer's HELLO, if any; a data stream's
  // goes to its thread (and is reset here), a control stream's is handled as usual.
  Status OnOpened(const std::shared_ptr<Peer>& peer, std::optional<wire::Frame>& first);
  // Posts the next receive, unless the peer is the control stream held for data.
  void ReceiveOrHold(const std::shared_ptr<Peer>& peer);
  bool ControlHeld(const std::shared_ptr<Peer>& peer) const {
    return standby_ && peer == session_ && standby_->waiting_for_data();
  }

  const Config& cfg_;
  const NodeState& state_;
  Metrics& metrics_;
  std::shared_ptr<Peer>& session_;
  PeerLink& link_;
  StreamPool& streams_;
  SessionOut& out_;
  FailoverDriver& failover_;
  PrimaryRole* const primary_;
  StandbyRole* const standby_;
};

}  // namespace hasync::engine
