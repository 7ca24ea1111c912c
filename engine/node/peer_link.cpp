#include "engine/node/peer_link.h"

#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "engine/log.h"
#include "engine/net/socket_tuning.h"
#include "engine/node/now.h"

namespace hasync::engine {

namespace {

constexpr int64_t kSendWaitSliceNs = 250'000'000;  // a blocked send checks the lease this often
constexpr int64_t kCloseLingerNs = 1'000'000'000;  // a dropped peer's last send may finish
// Bytes queued for a peer (in the send in flight plus the connection's outbox) beyond
// which the producer (a resync walk, the sender, a manifest) waits for the send in
// flight. Below the TLS layer's own bound (wire::kTlsOutBufferMax) by more than a frame.
constexpr size_t kOutboxMaxBytes = 4u << 20;
constexpr size_t kMaxPendingHandshakes = 8;
// Slots only connections from the configured peer's host may take.
constexpr size_t kHandshakeSlotsForThePeer = 2;
// With all of them in use, one older than this gives way to a new connection.
constexpr int64_t kHandshakeEvictAgeNs = 2'000'000'000;
constexpr int64_t kBindRetryMs = 10'000;  // listen address still held by a dead predecessor
constexpr int64_t kBindRetryStepMs = 100;
// A tick this late means the loop was busy (a manifest walk, a large fsync): that time
// is not held against a peer's handshake or silence.
constexpr int64_t kLoopStallNs = 1'000'000'000;

static_assert(kFlushHighWater < kOutboxMaxBytes);
static_assert(kHandshakeSlotsForThePeer < kMaxPendingHandshakes);

Result<sockaddr_storage> Resolve(const HostPort& hp, socklen_t* len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(hp.port);
  int rc = getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return Unavailable("cannot resolve " + hp.ToString() + ": " + gai_strerror(rc));
  }
  sockaddr_storage ss{};
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return ss;
}

// Same IP address (the port differs: the peer dials from an ephemeral one). An IPv4
// peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
bool SameHost(const sockaddr_storage& a, const sockaddr_storage& b) {
  auto v4 = [](const sockaddr_storage& s, in_addr* out) {
    if (s.ss_family == AF_INET) {
      *out = reinterpret_cast<const sockaddr_in&>(s).sin_addr;
      return true;
    }
    const auto& s6 = reinterpret_cast<const sockaddr_in6&>(s);
    if (s.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
      std::memcpy(&out->s_addr, &s6.sin6_addr.s6_addr[12], 4);
      return true;
    }
    return false;
  };
  in_addr a4{}, b4{};
  if (v4(a, &a4) && v4(b, &b4)) return a4.s_addr == b4.s_addr;
  if (a.ss_family != AF_INET6 || b.ss_family != AF_INET6) return false;
  return std::memcmp(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr,
                     &reinterpret_cast<const sockaddr_in6&>(b).sin6_addr, sizeof(in6_addr)) == 0;
}

// Whether the connected socket's remote address is the host `peer` names.
bool FromHost(int fd, const sockaddr_storage& peer, socklen_t peer_len) {
  sockaddr_storage from{};
  socklen_t len = sizeof from;
  return peer_len != 0 && getpeername(fd, reinterpret_cast<sockaddr*>(&from), &len) == 0 &&
         SameHost(from, peer);
}

}  // namespace

PeerLink::PeerLink(iouring::Loop& loop, Owner& owner, Options options, UniqueFd listen_fd)
    : loop_(loop), owner_(owner), options_(std::move(options)), listen_fd_(std::move(listen_fd)) {}

// ---- listening and accepting ----------------------------------------------------------------

Status PeerLink::Listen() {
  if (listen_fd_) return Status::Ok();  // kept from before a role change
  socklen_t len = 0;
  ASSIGN_OR_RETURN(sockaddr_storage addr, Resolve(options_.listen, &len));
  UniqueFd fd(socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket");
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // A previous hasync killed a moment ago may still hold the port: the kernel tears an
  // io_uring instance down asynchronously after its process exited, and the listening
  // socket its pending ACCEPT references lives until then (seen in tests as EADDRINUSE
  // right after kill -9 and restart). So EADDRINUSE is retried for a bounded time.
  for (int64_t waited_ms = 0;; waited_ms += kBindRetryStepMs) {
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0) break;
    if (errno != EADDRINUSE) return ErrnoStatus(errno, "bind " + options_.listen.ToString());
    if (waited_ms >= kBindRetryMs) {
      return ErrnoStatus(
          errno, fmt::format("bind {} (retried for {} ms)", options_.listen.ToString(), waited_ms));
    }
    if (waited_ms == 0) {
      Log(Level::kWarn, "listen_address_busy")
          .kv("address", options_.listen.ToString())
          .kv("note", fmt::format("retrying for up to {} ms", kBindRetryMs));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kBindRetryStepMs));
  }
  if (listen(fd.get(), 16) != 0) return ErrnoStatus(errno, "listen " + options_.listen.ToString());
  listen_fd_ = std::move(fd);
  return Status::Ok();
}

Status PeerLink::ResolvePeer() {
  socklen_t len = 0;
  auto addr = Resolve(options_.peer, &len);
  if (!addr.ok()) return addr.status();
  peer_addr_ = *addr;
  peer_addr_len_ = len;
  return Status::Ok();
}

void PeerLink::PostAccept() {
  Status s = loop_.Submit(
      [this](io_uring_sqe* sqe) {
        io_uring_prep_accept(sqe, listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      },
      [this](int32_t res) {
        if (res < 0) {
          Log(Level::kWarn, "accept_failed").kv("error", std::strerror(-res));
        } else {
          UniqueFd fd(res);
          const bool from_peer = FromHost(fd.get(), peer_addr_, peer_addr_len_);
          const bool changing_role = owner_.ChangingRole();
          const bool room = !changing_role && MakeRoomForAHandshake(from_peer);
          if (!room) {
            // Said once per run of refusals: a flood must not flood the log too.
            if (refusals_in_a_row_++ == 0) {
              Log(Level::kWarn, "connection_refused")
                  .kv("reason", changing_role ? "changing role" : "too many handshakes in progress")
                  .kv("from_peer_host", from_peer);
            }
          } else {
            refusals_in_a_row_ = 0;
            // A primary takes no sessions, but it does open an inbound connection far
            // enough to compare epochs with a peer that also claims to be primary.
            auto peer = std::make_shared<Peer>();
            peer->fd = std::move(fd);
            peer->from_peer_host = from_peer;
            TuneSessionSocket(peer->fd.get());
            peer->created_ns = peer->last_rx_ns = NowNs();
            auto conn = owner_.NewConnection(wire::TlsRole::kServer);
            if (!conn.ok()) {
              owner_.Fail(conn.status());
              return;
            }
            peer->conn = std::move(conn).value();
            pending_.push_back(peer);
            PostRecv(peer);
          }
        }
        PostAccept();
      });
  if (!s.ok()) owner_.Fail(s);
}

bool PeerLink::MakeRoomForAHandshake(bool from_peer) {
  std::erase_if(pending_, [](const auto& p) { return p->dead; });
  const auto others = static_cast<size_t>(std::count_if(
      pending_.begin(), pending_.end(), [](const auto& p) { return !p->from_peer_host; }));
  // Connections from anywhere but the peer's host never hold the last slots, so whoever
  // can reach the port cannot lock the primary (and its data streams) out.
  if (!from_peer && others < kMaxPendingHandshakes - kHandshakeSlotsForThePeer &&
      pending_.size() < kMaxPendingHandshakes) {
    return true;
  }
  if (from_peer && pending_.size() < kMaxPendingHandshakes) return true;
  // Full (for this connection's class). A real peer finishes its handshake in a few round
  // trips; what lingers is stalled or hostile. The peer's host may push out anyone else's
  // unfinished handshake at once; otherwise only one older than kHandshakeEvictAgeNs of
  // the same class gives way (refusing the newest let stalled connections lock the
  // primary out until the 10 s handshake timeout, again and again: a false failover).
  const int64_t now = NowNs();
  auto victim = pending_.end();
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    const auto& p = *it;
    if (p->conn && p->conn->open()) continue;
    const bool evictable =
        from_peer ? (!p->from_peer_host || now - p->created_ns >= kHandshakeEvictAgeNs)
                  : (!p->from_peer_host && now - p->created_ns >= kHandshakeEvictAgeNs);
    if (!evictable) continue;
    // Prefer someone else's handshake, then the oldest.
    if (victim == pending_.end() || (*victim)->from_peer_host > p->from_peer_host ||
        ((*victim)->from_peer_host == p->from_peer_host && p->created_ns < (*victim)->created_ns)) {
      victim = it;
    }
  }
  if (victim == pending_.end()) return false;
  std::shared_ptr<Peer> gone = *victim;
  pending_.erase(victim);
  Drop(gone, Unavailable(fmt::format(
                 "handshake evicted: unfinished after {} ms while a connection{} waits",
                 (now - gone->created_ns) / 1'000'000, from_peer ? " from the peer's host" : "")));
  return true;
}

void PeerLink::PostRecv(const std::shared_ptr<Peer>& peer) {
  Status s = loop_.Submit(
      [&](io_uring_sqe* sqe) {
        io_uring_prep_recv(sqe, peer->fd.get(), peer->rx.data(), peer->rx.size(), 0);
      },
      [this, peer](int32_t res) {
        if (peer->dead) return;  // dropped while the receive was in flight
        if (res <= 0) {
          Drop(peer, res == 0 ? Unavailable("peer closed the connection")
                              : ErrnoStatus(-res, "recv from " + peer->addr));
          return;
        }
        owner_.Received(peer, static_cast<size_t>(res));
      });
  if (!s.ok()) Drop(peer, s);
}

void PeerLink::ExpireHandshakes(int64_t now) {
  for (auto& p : pending_) {
    if (!p->dead && now - p->created_ns > kHandshakeTimeoutNs) {
      Drop(p, Unavailable("handshake did not finish within 10 s"));
    }
  }
  std::erase_if(pending_, [](const auto& p) { return p->dead; });
}

bool PeerLink::DropIfSilent(const std::shared_ptr<Peer>& session, int64_t now, PeerWork work) {
  if (session->sending && now - session->last_tx_ns > kSendStallTimeoutMs * 1'000'000) {
    Drop(session, Unavailable("peer accepted no data for 30 s"));
    return true;
  }
  // While the standby walks and hashes its tree for the manifest it sends nothing;
  // that may take minutes on a large cold spool, so the bound is wider then.
  // A standby making a large batch durable is silent until its fsyncs return.
  const int64_t limit = work == PeerWork::kManifest ? kPeerComputeTimeoutNs
                        : work == PeerWork::kCommit ? kCommitTimeoutNs
                                                    : kIdleTimeoutNs;
  if (now - session->last_rx_ns <= limit) return false;
  Drop(session,
       Unavailable(work == PeerWork::kManifest ? "no manifest from the standby for 30 min"
                   : work == PeerWork::kCommit ? "no acknowledgement from the standby for 2 min"
                                               : "no frame from the peer for 15 s"));
  return true;
}

void PeerLink::CompensateLoopStall(int64_t now, Peer* active) {
  int64_t late = last_tick_ns_ == 0 ? 0 : now - last_tick_ns_ - options_.tick_ns;
  last_tick_ns_ = now;
  if (late < kLoopStallNs) return;
  // The timers below judge the peer by when its bytes were handled; bytes that waited
  // in the socket while this loop was busy would count as silence.
  for (auto& p : pending_) p->created_ns += late;
  if (active != nullptr) active->last_rx_ns += late;
  Log(Level::kDebug, "loop_stalled").kv("ms", late / 1'000'000);
}

// ---- dialling ------------------------------------------------------------------------------

Status PeerLink::Dial() {
  auto peer = std::make_shared<Peer>();
  peer->fd = UniqueFd(socket(peer_addr_.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  peer->outbound = true;
  peer->addr = options_.peer.ToString();
  if (!peer->fd) return ErrnoStatus(errno, "socket");
  TuneSessionSocket(peer->fd.get());
  Status s = loop_.Submit(
      [&](io_uring_sqe* sqe) {
        io_uring_prep_connect(sqe, peer->fd.get(), reinterpret_cast<sockaddr*>(&peer_addr_),
                              peer_addr_len_);
      },
      [this, peer](int32_t res) { OnConnected(peer, res); });
  return s;
}

void PeerLink::ScheduleRedial() {
  next_dial_ns_ = NowNs() + backoff_ms_ * 1'000'000;
  backoff_ms_ = std::min(backoff_ms_ * 2, options_.redial_max_ms);
}

void PeerLink::OnConnected(const std::shared_ptr<Peer>& peer, int32_t res) {
  if (res < 0) {
    Log(Level::kDebug, "connect_failed").kv("peer", peer->addr).kv("error", std::strerror(-res));
    ScheduleRedial();
    owner_.DialFailed();
    return;
  }
  auto conn = owner_.NewConnection(wire::TlsRole::kClient);
  if (!conn.ok()) {
    owner_.Fail(conn.status());
    return;
  }
  peer->conn = std::move(conn).value();
  peer->created_ns = peer->last_rx_ns = NowNs();
  owner_.Dialled(peer);
  Status s = Flush(peer);  // the ClientHello
  if (!s.ok()) {
    Drop(peer, s);
    return;
  }
  PostRecv(peer);
}

// ---- sending: io_uring SEND, one in flight per peer -------------------------------------

void PeerLink::StartSend(const std::shared_ptr<Peer>& peer) {
  if (peer->sending || peer->dead || !peer->send_failed.ok() || !peer->conn) return;
  if (peer->tx_sent == peer->tx.size()) {
    if (peer->conn->outgoing_size() == 0) return;
    peer->conn->TakeOutgoing(peer->tx);
    peer->tx_sent = 0;
    peer->last_tx_ns = NowNs();
  }
  std::span<const std::byte> rest(peer->tx.data() + peer->tx_sent, peer->tx.size() - peer->tx_sent);
  Status s = loop_.Submit(
      [&](io_uring_sqe* sqe) {
        io_uring_prep_send(sqe, peer->fd.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
      },
      [this, peer](int32_t res) { OnSent(peer, res); }, &peer->send_token);
  if (!s.ok()) {
    peer->send_failed = s.Annotate("send to " + peer->addr);
    return;
  }
  peer->sending = true;
  // Into the kernel now: the socket takes what it has room for while this thread goes
  // on reading, hashing and encrypting the next frames.
  s = loop_.Flush();
  if (!s.ok()) peer->send_failed = s;
}

void PeerLink::OnSent(const std::shared_ptr<Peer>& peer, int32_t res) {
  peer->sending = false;
  if (peer->dead) {
    // Its last send is over (see Drop); a data stream's socket belongs to its thread.
    if (!peer->handed_off) shutdown(peer->fd.get(), SHUT_RDWR);
    return;
  }
  if (res == -EINTR || res == -EAGAIN) {
    StartSend(peer);
    return;
  }
  if (res <= 0) {
    peer->send_failed = ErrnoStatus(res < 0 ? -res : EPIPE, "send to " + peer->addr);
    // A producer waiting in Flush gets the error and its caller drops the session.
    if (!peer->waiting) Drop(peer, peer->send_failed);
    return;
  }
  peer->tx_sent += static_cast<size_t>(res);
  peer->last_tx_ns = NowNs();
  if (peer->tx_sent == peer->tx.size() && peer->conn->outgoing_size() == 0) {
    // Idle after a burst (a resync): give the buffers back rather than keep up to
    // kOutboxMaxBytes twice per peer for good.
    bool freed = false;
    if (peer->tx.capacity() > kFlushHighWater) {
      std::vector<std::byte>().swap(peer->tx);
      peer->tx_sent = 0;
      freed = true;
    }
    if (peer->conn->ReleaseIdleBuffer(kFlushHighWater)) freed = true;
    // glibc keeps freed heap memory for reuse; after a burst that is megabytes (these
    // buffers, a resync's manifest) the node may not need again for hours, so hand it
    // back. Rare: once per burst.
    if (freed) malloc_trim(0);
  }
  StartSend(peer);
}

Status PeerLink::WaitSend(const std::shared_ptr<Peer>& peer, int64_t timeout_ns) {
  const int64_t deadline = NowNs() + timeout_ns;
  Status s;
  for (;;) {
    // In slices, so the lease is judged while the send waits.
    peer->waiting = true;
    s = loop_.WaitFor(peer->send_token, std::min(deadline - NowNs(), kSendWaitSliceNs));
    peer->waiting = false;
    if (s.ok() || NowNs() >= deadline) break;
    RETURN_IF_ERROR(owner_.LeaseWhileSending(peer->last_tx_ns));
  }
  if (!s.ok())
    return Unavailable("peer accepted no data for " + std::to_string(timeout_ns / 1'000'000'000) +
                       " s");
  if (!peer->send_failed.ok()) return peer->send_failed;
  if (peer->dead) return Unavailable("session closed while sending");
  return Status::Ok();
}

Status PeerLink::Flush(const std::shared_ptr<Peer>& peer) {
  StartSend(peer);
  while (peer->send_failed.ok() && !peer->dead && peer->sending &&
         peer->queued() > kOutboxMaxBytes) {
    RETURN_IF_ERROR(WaitSend(peer, kSendStallTimeoutMs * 1'000'000));
  }
  return peer->send_failed;
}

Status PeerLink::FlushAll(const std::shared_ptr<Peer>& peer, int64_t timeout_ns) {
  int64_t deadline = NowNs() + timeout_ns;
  StartSend(peer);
  while (peer->send_failed.ok() && !peer->dead && peer->sending) {
    int64_t left = deadline - NowNs();
    if (left <= 0) return Unavailable("peer did not take the last bytes in time");
    RETURN_IF_ERROR(WaitSend(peer, left));
  }
  return peer->send_failed;
}

void PeerLink::Drop(const std::shared_ptr<Peer>& peer, const Status& why) {
  if (peer->dead) return;
  peer->dead = true;
  if (peer->sending) {
    // Let the send in flight (a refusal, the last ACK) reach the peer: end only the
    // receive now; OnSent closes the rest, or this timer does if the peer takes nothing.
    shutdown(peer->fd.get(), SHUT_RD);
    Status t = loop_.AddTimer(kCloseLingerNs, [peer] { shutdown(peer->fd.get(), SHUT_RDWR); });
    if (!t.ok()) shutdown(peer->fd.get(), SHUT_RDWR);
  } else {
    shutdown(peer->fd.get(), SHUT_RDWR);  // completes the receive in flight
  }
  owner_.Dropped(peer, why);
}

bool PeerLink::AwaitSendInFlight(const std::shared_ptr<Peer>& peer, int64_t timeout_ns) {
  if (!peer->sending) return false;
  peer->waiting = true;
  loop_.WaitFor(peer->send_token, timeout_ns).IgnoreError();  // a timeout is fine
  peer->waiting = false;
  return true;
}

}  // namespace hasync::engine
