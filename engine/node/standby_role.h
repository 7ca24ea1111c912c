// StandbyRole: what a node does as the standby, above the link.
//
// Start-up: opens the sync roots for apply (the group commit's strategy, stale temps
// removed), the Receiver (its unsynced paths from before a restart, its last applied
// sequence number), the quarantine when it rejoins after having been primary, the data
// streams' intake, and the lock window (engine/node/lock_records.h).
//
// A session: once the node made a primary's connection its session, Opened readies the
// Receiver for it. OnFrame takes each frame the primary sends: PING and LOCK (into the
// lock window) are answered with a PONG, which is what the primary's lease counts;
// DEMOTED goes to the failover controller; everything else is the Receiver's (a batch to
// apply, a resync, a verify request), and a frame it rejects is answered with an ERROR
// before the session ends. The tick notices the end of a rejoin (the first resync under
// the new primary complete and durable) and tells the controller.
//
// What it owns: the trees and the io_uring fsync helper they borrow, the Receiver, the
// rejoin's quarantine and the WindowWatch. The session, what goes out on it (SessionOut)
// and the data streams are the node's.
//
// Threading: the loop's thread only (the WindowWatch has a thread of its own).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "base/status.h"
#include "engine/apply/quarantine.h"
#include "engine/apply/tree.h"
#include "engine/apply/uring_sync.h"
#include "engine/config.h"
#include "engine/failover/controller.h"
#include "engine/node/failover_driver.h"
#include "engine/node/lock_records.h"
#include "engine/node/metrics.h"
#include "engine/node/peer_link.h"
#include "engine/node/session_out.h"
#include "engine/node/state.h"
#include "engine/node/stream_pool.h"
#include "engine/node/verify_runner.h"
#include "engine/sync/receiver.h"
#include "wire/messages.h"

namespace hasync::engine {

class StandbyRole {
 public:
  // `session`: the node's session peer (null when there is none), read at each call.
  StandbyRole(const Config& cfg, const NodeState& state, Metrics& metrics, PeerLink& link,
              StreamPool& streams, SessionOut& out, VerifyRunner& verifier,
              FailoverDriver& failover, const std::shared_ptr<Peer>& session)
      : cfg_(cfg),
        state_(state),
        link_(link),
        streams_(streams),
        out_(out),
        verifier_(verifier),
        failover_(failover),
        session_(session),
        window_(cfg, metrics) {}
  StandbyRole(const StandbyRole&) = delete;
  StandbyRole& operator=(const StandbyRole&) = delete;

  // Opens the trees, the Receiver, the quarantine (rejoining), the data streams' intake
  // and the lock window.
  Status Start();

  // A primary's connection became the node's session: the Receiver starts over for it.
  void Opened(const wire::Hello& hello);
  // A frame from the primary (its epoch already checked).
  Status OnFrame(const wire::Frame& frame);
  // The session is gone: the Receiver drops what was not committed. Returns the last
  // sequence number applied.
  uint64_t Ended();
  // Every tick: whether the rejoin (after a demotion or a switchover) is complete.
  void CheckRejoined(int64_t now);
  // Pipelined commit (docs/APPLY.md): readable when the batch committing in the
  // background is done; then OnCommitEvent() sends its ACK or NACK. -1: none.
  int commit_event_fd() const { return receiver_ ? receiver_->commit_event_fd() : -1; }
  Status OnCommitEvent();
  // The control stream waits for data-stream content (a FILE_END's).
  bool waiting_for_data() const { return receiver_->waiting_for_data(); }

  // The controller's view: the lock window's verdict, whether anything of the primary's
  // waits unread, whether this node holds a copy, whether it is rejoining.
  void Observe(int64_t now, failover::Observation& seen) const;
  bool rejoining() const { return quarantine_.has_value() || state_.handed_over; }
  std::vector<int> RootFds() const;

  Receiver* receiver() { return receiver_.get(); }
  const Receiver* receiver() const { return receiver_.get(); }
  WindowWatch& window() { return window_; }
  const WindowWatch& window() const { return window_; }

 private:
  // Everything the primary sent has been read (see the definition).
  bool CaughtUp() const;

  const Config& cfg_;
  const NodeState& state_;
  PeerLink& link_;
  StreamPool& streams_;
  SessionOut& out_;
  VerifyRunner& verifier_;
  FailoverDriver& failover_;
  const std::shared_ptr<Peer>& session_;

  // fs_ops_ (concurrent fsyncs) outlives the trees that borrow it.
  std::unique_ptr<apply::UringFsOps> fs_ops_;
  std::vector<std::unique_ptr<apply::Tree>> trees_;
  std::unique_ptr<Receiver> receiver_;
  // Rejoin (state.rejoin_epoch set): where the first resync keeps what it replaces.
  std::optional<apply::Quarantine> quarantine_;
  WindowWatch window_;
};

}  // namespace hasync::engine
