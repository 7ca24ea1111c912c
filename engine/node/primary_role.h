// PrimaryRole: what a node does as the primary, above the link.
//
// Start-up: opens the watcher (fanotify), the journal, the sync roots and the Sender,
// starts the scheduler probe behind the beat, and resolves the standby's address.
//
// A session, in phases: idle → connecting (dialled by the node) → handshake → manifest
// (MANIFEST_REQUEST sent, the standby's entries arriving) → blocks (BLOCKS_REQUEST for
// large files that differ, then a bounded wait for the data streams to open) → live
// (the difference was resynced; journal changes are pumped to the Sender as they come,
// and its batches acknowledged). OnFrame takes each frame the standby sends in a phase:
// manifest entries (a verify run's go to the VerifyRunner), block hashes, ACK and NACK,
// DEMOTE_REQUEST (fed to the failover controller), ERROR. A lost session goes back to
// idle and the node dials again after the link's backoff.
//
// What it owns: the watcher and its feed into the journal, the journal, the roots' fds,
// the Sender (a new one for each session), the session's phase and resync timing, and
// the lock records' BeatSource. The link, the data streams, the session's connection and
// what goes out on it (SessionOut) are the node's.
//
// Threading: the loop's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/config.h"
#include "engine/failover/controller.h"
#include "engine/journal/journal.h"
#include "engine/node/failover_driver.h"
#include "engine/node/lock_records.h"
#include "engine/node/metrics.h"
#include "engine/node/node_report.h"
#include "engine/node/peer_link.h"
#include "engine/node/session_out.h"
#include "engine/node/state.h"
#include "engine/node/stream_pool.h"
#include "engine/node/verify_runner.h"
#include "engine/node/watch_feed.h"
#include "engine/sync/sender.h"
#include "engine/watch/watcher.h"
#include "iouring/loop.h"
#include "wire/messages.h"

namespace hasync::engine {

class PrimaryRole {
 public:
  // What the role asks of the node. Every call comes on the loop's thread.
  class Owner {
   public:
    virtual ~Owner() = default;
    // Copies the parts' figures into the metrics (the old Sender's, before a new one).
    virtual void PublishMetrics(int64_t now) = 0;
    // The loop refused the watcher's poll: the node stops.
    virtual void Fail(Status why) = 0;
  };

  // `session`: the node's session peer (null when there is none), read at each call.
  PrimaryRole(const Config& cfg, const NodeState& state, Metrics& metrics,
              MetricsPublisher& publisher, iouring::Loop& loop, PeerLink& link, StreamPool& streams,
              SessionOut& out, VerifyRunner& verifier, FailoverDriver& failover,
              const std::shared_ptr<Peer>& session, Owner& owner);
  PrimaryRole(const PrimaryRole&) = delete;
  PrimaryRole& operator=(const PrimaryRole&) = delete;

  // Opens the watcher, the journal, the roots and a Sender; starts the probe; resolves
  // the standby's address (the primary dials it).
  Status Start();
  // Polls the watcher's fd on the loop, again after each batch of events.
  void PostWatch();

  // ---- the session's phases ----
  void Connecting() { phase_ = Phase::kConnecting; }
  void Dialled() { phase_ = Phase::kHandshake; }
  void DialFailed() { phase_ = Phase::kIdle; }
  // The standby's HELLO was accepted: the journal starts over and the resync begins
  // (a new Sender, the data streams, MANIFEST_REQUEST).
  Status Opened(const wire::Hello& hello);
  // A frame from the standby (its epoch already checked).
  Status OnFrame(const wire::Frame& frame);
  // The session is gone: idle until the next dial, after the backoff.
  void Ended();
  bool idle() const { return phase_ == Phase::kIdle; }
  bool live() const { return phase_ == Phase::kLive; }
  // "live" (resynced, on an open connection), "idle" or "opening".
  std::string_view SessionState() const;
  // For the status: idle, connecting, handshake, manifest, blocks, live.
  std::string_view phase_name() const;
  // What the standby is doing for this node (its silence is judged by it).
  PeerWork StandbyWork() const;

  // ---- every tick ----
  // The watcher's debounce deadlines, and its events into the journal.
  void TickWatcher();
  // The beat's lock record, when due; a failed send ends the session.
  void Beat(int64_t now);
  // Live: pumps the journal to the Sender. Blocks: the resync goes on once the data
  // streams opened or the wait for them ran out.
  void Step();

  // Everything seen here is durable on the standby (nothing journaled, no batch open or
  // unacknowledged, no watcher event waiting).
  bool Settled() const;
  // The controller's view: the session live, what the standby acknowledged, drained.
  void Observe(failover::Observation& seen) const;
  std::vector<int> RootFds() const;

  Sender* sender() { return sender_.get(); }
  const Sender* sender() const { return sender_.get(); }
  Journal* journal() { return journal_.get(); }
  const Journal* journal() const { return journal_.get(); }
  const watch::Watcher* watcher() const { return watcher_ ? &*watcher_ : nullptr; }
  BeatSource& beats() { return beats_; }
  const BeatSource& beats() const { return beats_; }

 private:
  enum class Phase { kIdle, kConnecting, kHandshake, kManifest, kBlocks, kLive };

  void DrainWatcher() { watch_feed_.Drain(*watcher_, *journal_); }
  void MakeSender();
  Status PumpSender();
  // The resync's content waits (bounded) for the data streams to open, so its large
  // files travel on them rather than all on the control stream.
  Status ResyncWhenStreamsOpen();
  Status FinishResync();

  const Config& cfg_;
  const NodeState& state_;
  Metrics& metrics_;
  MetricsPublisher& publisher_;
  iouring::Loop& loop_;
  PeerLink& link_;
  StreamPool& streams_;
  SessionOut& out_;
  VerifyRunner& verifier_;
  FailoverDriver& failover_;
  const std::shared_ptr<Peer>& session_;
  Owner& owner_;

  watch::MonotonicClock clock_;
  std::optional<watch::Watcher> watcher_;
  WatchFeed watch_feed_;  // the watcher's events into the journal
  std::unique_ptr<Journal> journal_;
  std::vector<UniqueFd> root_fds_;
  std::unique_ptr<Sender> sender_;
  // The lock records (and the scheduler probe behind their beat); reads sender_.
  BeatSource beats_{cfg_, state_, sender_};
  Phase phase_ = Phase::kIdle;
  int64_t resync_started_ns_ = 0;
  int64_t resync_waiting_since_ns_ = 0;  // 0: not waiting for data streams
  size_t pending_blocks_ = 0;            // BLOCKS_REPLY still to come
};

}  // namespace hasync::engine
