// PeerLink: the node's TCP connections to its peer, below the protocol.
//
// What it does: listens and accepts (at most kMaxPendingHandshakes unfinished
// handshakes, the last kHandshakeSlotsForThePeer of them kept for the configured peer's
// host, a stalled one evicted for a newer one), dials the peer with a doubling redial
// backoff, posts the receives, and sends each connection's outbox with one io_uring SEND
// in flight per peer; Flush bounds what a producer may queue (backpressure). It drops
// connections (letting a last send finish), times out handshakes and a session whose
// peer fell silent (how long it may be silent is the node's to say: PeerWork), and moves
// the timers that judge a peer on by the time the node's own loop was stalled.
//
// What it owns: the listening socket, the resolved peer address, the connections still
// in their handshake (until EndHandshake) and the redial backoff. Which connection is
// the session, and what its bytes mean, belong to the node: the link hands it received
// bytes, a dialled connection and every dropped peer through PeerLink::Owner.
//
// Threading: the event loop's thread only, like the iouring::Loop it submits to.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/config.h"
#include "engine/net/connection.h"
#include "iouring/loop.h"
#include "wire/tls_session.h"

namespace hasync::engine {

// Start a send once this much is queued for a peer.
inline constexpr size_t kFlushHighWater = 512 * 1024;
// A socket that accepted nothing for this long ends its session.
inline constexpr int64_t kSendStallTimeoutMs = 30'000;
inline constexpr int64_t kHandshakeTimeoutNs = 10'000'000'000;
// How long the session's peer may send nothing at all, by what it is doing for this node
// (PeerWork): a session whose peer says nothing for longer is dead.
inline constexpr int64_t kIdleTimeoutNs = 15'000'000'000;            // nothing asked of it
inline constexpr int64_t kPeerComputeTimeoutNs = 1'800'000'000'000;  // manifest of a huge spool
inline constexpr int64_t kCommitTimeoutNs = 120'000'000'000;         // fsync of a large batch
// The primary's redial backoff: from the minimum, doubling per failure up to the cap the
// owner gives (Options::redial_max_ms, itself at most kBackoffMaxMs).
inline constexpr int64_t kBackoffMinMs = 100;
inline constexpr int64_t kBackoffMaxMs = 5'000;

// What the session's peer is doing for this node, which bounds its silence.
enum class PeerWork {
  kNone,      // nothing asked of it: a frame (a PONG at least) within kIdleTimeoutNs
  kManifest,  // the standby walks and hashes its tree for a resync: kPeerComputeTimeoutNs
  kCommit,    // the standby makes a batch durable: kCommitTimeoutNs
};

// One TCP connection and its protocol state. Held by shared_ptr so an in-flight receive
// keeps its buffer alive after the node dropped the peer.
struct Peer {
  static constexpr size_t kRecvBufferBytes = 256 * 1024;

  UniqueFd fd;
  std::unique_ptr<Connection> conn;
  std::vector<std::byte> rx = std::vector<std::byte>(kRecvBufferBytes);
  bool dead = false;
  bool outbound = false;
  int64_t created_ns = 0;
  int64_t last_rx_ns = 0;
  int64_t last_ping_ns = 0;
  std::string addr;
  // The asynchronous send (io_uring SEND): `tx` holds bytes taken from the connection's
  // outbox and stays put until the kernel has taken all of them.
  std::vector<std::byte> tx;
  size_t tx_sent = 0;
  bool sending = false;
  bool waiting = false;  // a producer waits for the send in flight (PeerLink::Flush)
  iouring::Loop::Token send_token = 0;
  int64_t last_tx_ns = 0;  // the socket last accepted bytes (or a send began)
  Status send_failed;      // sticky
  // Standby: the connection became a data stream; its thread owns the socket now.
  bool handed_off = false;
  // Standby control stream: no receive posted while a FILE_END waits for data-stream
  // content (the node posts it again once the content is in).
  bool recv_held = false;
  // The handshake finished and the session opened (a drop before that is counted as a
  // handshake failure).
  bool session_opened = false;
  // Inbound: the remote address is the configured peer's host.
  bool from_peer_host = false;

  size_t queued() const { return (tx.size() - tx_sent) + (conn ? conn->outgoing_size() : 0); }
};

class PeerLink {
 public:
  // What the link asks of the node. Every call comes on the loop's thread.
  class Owner {
   public:
    virtual ~Owner() = default;
    // A new connection's protocol state (TLS or plain, this node's HELLO and epoch).
    virtual Result<std::unique_ptr<Connection>> NewConnection(wire::TlsRole role) = 0;
    // While true, inbound connections are refused (the node is changing role).
    virtual bool ChangingRole() const = 0;
    // The dialled connection is up and its handshake begins.
    virtual void Dialled(const std::shared_ptr<Peer>& peer) = 0;
    // The dial failed; the next one is due after the backoff (RedialDue).
    virtual void DialFailed() = 0;
    // `n` bytes arrived in peer->rx. The owner posts the next receive (PostRecv).
    virtual void Received(const std::shared_ptr<Peer>& peer, size_t n) = 0;
    // The peer was dropped (marked dead, its socket shutting down) for `why`.
    virtual void Dropped(const std::shared_ptr<Peer>& peer, const Status& why) = 0;
    // A send blocks the loop (no timer runs meanwhile): the lease check, judged on the
    // last progress of the send. Non-OK ends the wait with that status.
    virtual Status LeaseWhileSending(int64_t progress_ns) = 0;
    // The loop refused an operation or a socket could not be made: the node stops.
    virtual void Fail(Status why) = 0;
  };

  struct Options {
    HostPort listen;
    HostPort peer;
    int64_t tick_ns = 0;        // the node's tick, to tell a stalled loop
    int64_t redial_max_ms = 0;  // the backoff stops growing here
  };

  // `listen_fd`: a listening socket kept from before a role change, or empty.
  PeerLink(iouring::Loop& loop, Owner& owner, Options options, UniqueFd listen_fd);
  PeerLink(const PeerLink&) = delete;
  PeerLink& operator=(const PeerLink&) = delete;

  // Binds and listens (unless a socket was kept); EADDRINUSE is retried for a while.
  Status Listen();
  // The listening socket, kept open across a role change (no gap for the peer to hit).
  UniqueFd TakeListenFd() { return std::move(listen_fd_); }
  // The configured peer address resolved (the primary dials it; the standby knows its
  // inbound connections by it).
  Status ResolvePeer();
  const sockaddr_storage& peer_address() const { return peer_addr_; }
  socklen_t peer_address_len() const { return peer_addr_len_; }

  // Accepting: posts the ACCEPT, again after each connection.
  void PostAccept();
  // The peer's handshake is over (it became the session or a data stream): it no longer
  // holds a handshake slot.
  void EndHandshake(const std::shared_ptr<Peer>& peer) { std::erase(pending_, peer); }
  // Drops the connections whose handshake did not finish within kHandshakeTimeoutNs.
  void ExpireHandshakes(int64_t now);
  // Called every tick: a tick more than kLoopStallNs late moves the handshake deadlines
  // and `active`'s silence on by the delay (bytes that waited in the socket while the
  // loop was busy are not the peer's silence).
  void CompensateLoopStall(int64_t now, Peer* active);
  // Called every tick for the session: drops it when its socket accepted nothing for
  // kSendStallTimeoutMs, or when the peer sent nothing for longer than `work` allows.
  // Returns whether it did.
  bool DropIfSilent(const std::shared_ptr<Peer>& session, int64_t now, PeerWork work);

  // Dialling (primary): socket and CONNECT; the Owner hears Dialled or DialFailed.
  Status Dial();
  bool RedialDue(int64_t now) const { return now >= next_dial_ns_; }
  // The next dial after the backoff, which doubles (up to Options::redial_max_ms).
  void ScheduleRedial();
  // The peer made progress: the backoff starts over from kBackoffMinMs.
  void ResetRedialBackoff() { backoff_ms_ = kBackoffMinMs; }

  void PostRecv(const std::shared_ptr<Peer>& peer);

  // Starts sending what the peer's connection has queued (asynchronously) and, if more
  // than kOutboxMaxBytes are queued, waits for the send in flight until fewer are:
  // the producer's backpressure. Returns the send's sticky error.
  Status Flush(const std::shared_ptr<Peer>& peer);
  // Waits, up to timeout_ns, until everything queued for the peer went out.
  Status FlushAll(const std::shared_ptr<Peer>& peer, int64_t timeout_ns);
  // Hands the queued bytes to the kernel if no send is in flight.
  void StartSend(const std::shared_ptr<Peer>& peer);
  // If a send is in flight, waits for it (at most timeout_ns; a timeout is fine) and
  // returns true; false when none was.
  bool AwaitSendInFlight(const std::shared_ptr<Peer>& peer, int64_t timeout_ns);
  // The owner's lease check, for a producer that blocks the loop on a send elsewhere.
  Status LeaseWhileSending(int64_t progress_ns) { return owner_.LeaseWhileSending(progress_ns); }
  // Marks the peer dead and shuts its socket (after a send in flight had its chance);
  // then tells the owner.
  void Drop(const std::shared_ptr<Peer>& peer, const Status& why);

 private:
  // Whether a new inbound connection may start a handshake; may evict an unfinished
  // one to make room (the rules are in the definition).
  bool MakeRoomForAHandshake(bool from_peer);
  void OnConnected(const std::shared_ptr<Peer>& peer, int32_t res);
  void OnSent(const std::shared_ptr<Peer>& peer, int32_t res);
  Status WaitSend(const std::shared_ptr<Peer>& peer, int64_t timeout_ns);

  iouring::Loop& loop_;
  Owner& owner_;
  const Options options_;
  UniqueFd listen_fd_;
  std::vector<std::shared_ptr<Peer>> pending_;  // inbound, handshake not finished
  sockaddr_storage peer_addr_{};
  socklen_t peer_addr_len_ = 0;
  uint64_t refusals_in_a_row_ = 0;  // connection_refused logged once per run
  int64_t next_dial_ns_ = 0;
  int64_t backoff_ms_ = kBackoffMinMs;
  int64_t last_tick_ns_ = 0;
};

}  // namespace hasync::engine
