// SessionOut: what the node sends on its session (the control stream to the peer).
//
// It is the MessageSink of the primary's Sender and the standby's Receiver: a message
// goes to the data stream StreamPool routes it to (a large file's content) or onto the
// session's connection, which is flushed through the PeerLink past kFlushHighWater. On
// the primary every COMMIT is followed by a lock record carrying the batch's progress,
// and during a long walk (Progress) the watchdog, the beat and a keepalive PING go on
// from here, or systemd or the peer would judge a working node hung or silent. Without
// an open session a message is refused (Unavailable), and a beat or PING is simply not
// sent.
//
// What it owns: nothing but the pointers to the primary's BeatSource and the service
// notifier. The session (the node's active peer, read at each call), the link and the
// data streams are the node's.
//
// Threading: the loop's thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/node/lock_records.h"
#include "engine/node/metrics.h"
#include "engine/node/peer_link.h"
#include "engine/node/service.h"
#include "engine/node/state.h"
#include "engine/node/stream_pool.h"
#include "engine/sync/sender.h"
#include "wire/messages.h"

namespace hasync::engine {

// The primary's keepalive: a PING when nothing went out for this long, well inside the
// peer's silence bound.
inline constexpr int64_t kPingIntervalNs = 1'000'000'000;
static_assert(kPingIntervalNs < kIdleTimeoutNs);

class SessionOut : public MessageSink {
 public:
  // `session`: the node's active peer (null when there is none), read at each call.
  SessionOut(const NodeState& state, Metrics& metrics, const std::shared_ptr<Peer>& session,
             PeerLink& link, StreamPool& streams)
      : state_(state), metrics_(metrics), session_(session), link_(link), streams_(streams) {}
  SessionOut(const SessionOut&) = delete;
  SessionOut& operator=(const SessionOut&) = delete;

  // Primary: where the lock records come from (a beat during a long walk, one after
  // every COMMIT). Null on the standby.
  void set_beats(BeatSource* beats) { beats_ = beats; }
  // The service manager whose watchdog a long walk keeps feeding (null: none).
  void set_service(ServiceNotifier* service) { service_ = service; }

  // MessageSink: the sender's and the receiver's messages, to the session's peer.
  Status Emit(uint64_t seq, wire::Message message) override;
  // During a long walk (either role): the service watchdog when due, the beat when due
  // (primary) and a PING once a second.
  Status Progress() override;
  bool Splices(uint64_t seq) override { return streams_.Splices(seq); }
  Status EmitSpliced(uint64_t seq, uint64_t file_size, uint64_t offset, uint32_t length,
                     std::shared_ptr<const UniqueFd> file) override;
  Status WaitSpliced() override { return streams_.WaitSpliced(); }

  // A message outside any change (seq 0), flushed at once.
  Status Send(wire::Message message);
  // Starts sending what is queued for the session's peer (PeerLink::Flush).
  Status Flush() { return link_.Flush(session_); }
  // Primary: the beat's lock record (BeatSource::Beat) to the standby, if a session is
  // open.
  Status SendBeat(int64_t now);
  // Primary, every tick: a PING when none went out for more than kPingIntervalNs.
  Status Keepalive(int64_t now);
  // Tells `peer` why it is refused (ERROR) and returns the reason; the caller drops it.
  Status Refuse(const std::shared_ptr<Peer>& peer, wire::ErrorCode code, const std::string& why);

 private:
  bool open() const { return session_ && !session_->dead && session_->conn->open(); }

  const NodeState& state_;
  Metrics& metrics_;
  const std::shared_ptr<Peer>& session_;
  PeerLink& link_;
  StreamPool& streams_;
  BeatSource* beats_ = nullptr;
  ServiceNotifier* service_ = nullptr;
  // Progress: when it last reaped the session's send completion, and its bounds.
  static constexpr int64_t kProgressReapIntervalNs = 50'000'000;
  static constexpr int64_t kProgressReapWaitNs = 1'000'000;
  int64_t last_reap_ns_ = 0;
};

}  // namespace hasync::engine
