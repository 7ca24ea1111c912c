#include "engine/node/node.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "engine/apply/quarantine.h"
#include "engine/apply/tree.h"
#include "engine/apply/uring_sync.h"
#include "engine/failover/controller.h"
#include "engine/journal/journal.h"
#include "engine/keyfile.h"
#include "engine/log.h"
#include "engine/net/connection.h"
#include "engine/net/data_stream.h"
#include "engine/net/rng.h"
#include "engine/net/socket_tuning.h"
#include "engine/node/control.h"
#include "engine/node/history.h"
#include "engine/node/hooks.h"
#include "engine/sync/receiver.h"
#include "engine/sync/sender.h"
#include "engine/sync/verify.h"
#include "engine/watch/watcher.h"
#include "iouring/loop.h"
#include "lockwin/detector.h"
#include "lockwin/lock_record.h"

namespace hasync::engine {

namespace {

// Timing of the session layer. Lock records and the failure window (issue 4) will
// replace the ping-based idle detection.
constexpr int64_t kTickNs = 20'000'000;             // watcher debounce, pumping, timers
constexpr int64_t kPingIntervalNs = 1'000'000'000;  // primary → standby keepalive
constexpr int64_t kIdleTimeoutNs = 15'000'000'000;  // no frame at all: session is dead
constexpr int64_t kHandshakeTimeoutNs = 10'000'000'000;
constexpr int64_t kPeerComputeTimeoutNs = 1'800'000'000'000;  // manifest of a huge spool
constexpr int64_t kCommitTimeoutNs = 120'000'000'000;         // fsync of a large batch
constexpr int64_t kSendStallTimeoutMs = 30'000;               // socket accepted nothing this long
constexpr int64_t kSendWaitSliceNs = 250'000'000;  // a blocked send checks the lease this often
constexpr int64_t kCloseLingerNs = 1'000'000'000;  // a dropped peer's last send may finish
constexpr int64_t kBackoffMinMs = 100;
constexpr int64_t kBackoffMaxMs = 5'000;
// A data stream that could not be set up is tried again after this, doubling per failure.
constexpr int64_t kDataRetryMinNs = 1'000'000'000;
constexpr int64_t kDataRetryMaxNs = 30'000'000'000;
// A tick this late means the loop was busy (a manifest walk, a large fsync): that time
// is not held against a peer's handshake or silence.
constexpr int64_t kLoopStallNs = 1'000'000'000;
// An operator's verify result stays this long before an anti-entropy pass replaces it.
constexpr int64_t kOperatorResultKeptNs = 60'000'000'000;
// An anti-entropy pass gives up (and the next one starts) after this long.
constexpr int64_t kAntiEntropyPassMaxNs = 86'400'000'000'000;
// The quarantined-files gauge: recounted this often, counting at most this many.
constexpr int64_t kQuarantineCountNs = 10'000'000'000;
constexpr uint64_t kQuarantineCountMax = 100'000;
constexpr int kHookLogLines = 20;  // lines of a hook's output that reach the log
constexpr size_t kRecvBufferBytes = 256 * 1024;
constexpr size_t kFlushHighWater = 512 * 1024;  // start a send once this much is queued
// Bytes queued for a peer (in the send in flight plus the connection's outbox) beyond
// which the producer (a resync walk, the sender, a manifest) waits for the send in
// flight. Below the TLS layer's own bound (wire::kTlsOutBufferMax) by more than a frame.
constexpr size_t kOutboxMaxBytes = 4u << 20;
constexpr size_t kMaxPendingHandshakes = 8;
// Slots only connections from the configured peer's host may take.
constexpr size_t kHandshakeSlotsForThePeer = 2;
// With all of them in use, one older than this gives way to a new connection.
constexpr int64_t kHandshakeEvictAgeNs = 2'000'000'000;
constexpr size_t kWatchDrainBatch = 4096;
constexpr int64_t kBindRetryMs = 10'000;  // listen address still held by a dead predecessor
constexpr int64_t kBindRetryStepMs = 100;
// Files at least this big ship their content on a data stream (when the session has
// any); smaller ones inline on the control stream, where a file costs no wait for
// another connection.
constexpr uint64_t kDataStreamMinBytes = 256 * 1024;
// In TLS mode, files at least this big spread their extents over all data streams (each
// extent to the least-loaded one), so one large file is encrypted on several cores. The
// standby then writes them out of order and reads the file back for its hash
// (docs/APPLY.md): worth it only for large files, and only when there is a cipher to
// spread (plain mode measured slower striped: docs/PERFORMANCE.md).
constexpr uint64_t kDataStreamStripeBytes = 8u << 20;

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

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

wire::Role ToWire(NodeRole role) {
  return role == NodeRole::kPrimary ? wire::Role::kPrimary : wire::Role::kStandby;
}

}  // namespace

class Node;

// One TCP connection and its protocol state. Held by shared_ptr so an in-flight receive
// keeps its buffer alive after the node dropped the peer.
struct Peer {
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
  bool waiting = false;  // a producer waits for the send in flight (Node::Flush)
  iouring::Loop::Token send_token = 0;
  int64_t last_tx_ns = 0;  // the socket last accepted bytes (or a send began)
  Status send_failed;      // sticky
  // Standby: the connection became a data stream; its thread owns the socket now.
  bool handed_off = false;
  // Standby control stream: no receive posted while a FILE_END waits for data-stream
  // content (ResumeControl posts it again).
  bool recv_held = false;
  // The handshake finished and the session opened (a drop before that is counted as a
  // handshake failure).
  bool session_opened = false;
  // Inbound: the remote address is the configured peer's host.
  bool from_peer_host = false;

  size_t queued() const { return (tx.size() - tx_sent) + (conn ? conn->outgoing_size() : 0); }
};

// `hasync verify` on the primary (docs/OPERATIONS.md "Verifying the pair"): rounds of
// (settle, the standby's manifest, this node's manifest, compare) until no difference is
// left or one stays the same over two rounds.
//
// The anti-entropy pass (docs/REPLICATION.md "Anti-entropy") is the same run started by
// the loop every anti_entropy.interval_ms: `background`, both walks held to
// anti_entropy.cpu_percent of a core, and every confirmed difference repaired.
struct VerifyRun {
  enum class Phase { kAwaitSession, kSettle, kAwaitStandby, kLocal, kDone };
  uint64_t id = 0;
  bool repair = false;      // queue a repair of each difference found (Node::Repair)
  bool background = false;  // an anti-entropy pass, not an operator's run
  uint64_t repaired = 0;
  int max_rounds = 3;
  int round = 0;
  Phase phase = Phase::kSettle;
  int64_t started_ns = 0;
  int64_t deadline_ns = 0;
  int64_t phase_since_ns = 0;
  uint64_t request_id = 0;  // the current round's MANIFEST_REQUEST
  std::vector<wire::ManifestEntry> standby;
  std::unique_ptr<ManifestJob> local;
  std::vector<ManifestDifference> previous;  // the last round's differences
  // The result (phase kDone).
  std::string outcome;  // "identical", "differences", "inconclusive", "failed"
  std::string error;
  std::vector<ManifestDifference> confirmed;  // the same over the last two rounds
  std::vector<ManifestDifference> unsettled;  // differed, but changed between rounds
  uint64_t primary_entries = 0, standby_entries = 0;
  double seconds = 0;
};

class Node : public MessageSink {
 public:
  Node(const Config& cfg, const RunOptions& opts, UniqueFd listen_fd)
      : cfg_(cfg), opts_(opts), metrics_(*opts.metrics), listen_fd_(std::move(listen_fd)) {}
  ~Node();

  Status Init();
  Status Run();
  // After Run(): the node changed its role (persisted) and must be started again in it.
  bool restart_requested() const { return next_state_.has_value(); }
  // The listening socket, kept open across a role change (no gap for the peer to hit).
  UniqueFd TakeListenFd() { return std::move(listen_fd_); }

  // MessageSink: the sender's / receiver's messages go to the active peer.
  // During a long resync walk: a PING once a second keeps the standby's idle bound.
  Status Progress() override {
    if (!active_ || active_->dead || !active_->conn->open()) return Status::Ok();
    int64_t now = NowNs();
    // A long walk (the resync's comparison of a large spool) holds the loop: the beat
    // goes on from here, or the standby would judge a working primary silent.
    if (state_.role == NodeRole::kPrimary && now >= next_beat_ns_) {
      next_beat_ns_ = now + cfg_.failover.beat_ms * 1'000'000;
      RETURN_IF_ERROR(SendBeat(now));
    }
    if (now - active_->last_ping_ns < kPingIntervalNs) return Status::Ok();
    active_->last_ping_ns = now;
    RETURN_IF_ERROR(active_->conn->Send(
        state_.epoch, 0, wire::Ping{static_cast<uint64_t>(now), static_cast<uint64_t>(now)}));
    return Flush(active_);
  }

  bool Splices(uint64_t seq) override {
    return cfg_.transport.mode == TransportMode::kPlain && cfg_.transport.splice && seq != 0 &&
           seq == route_seq_ && route_to_ != nullptr && !route_stripe_;
  }

  Status EmitSpliced(uint64_t seq, uint64_t file_size, uint64_t offset, uint32_t length,
                     std::shared_ptr<const UniqueFd> file) override {
    HASYNC_ASSERT(Splices(seq));
    DataFrame frame{seq, wire::Extent{file_size, offset, {}}, 0, std::move(file), length};
    frame.bytes = DataFrameBytes(frame.message);  // the data is not in memory
    return EnqueueData(frame);
  }

  Status WaitSpliced() override;

  Status Emit(uint64_t seq, wire::Message message) override {
    if (!active_ || active_->dead || !active_->conn->open()) {
      return Unavailable("no session to send on");
    }
    if (!data_out_.empty()) {
      // A large file's content goes to one data stream, in order; a very large one's
      // is spread over all of them.
      if (const auto* begin = std::get_if<wire::FileBegin>(&message)) {
        route_seq_ = begin->size >= kDataStreamMinBytes ? seq : 0;
        route_stripe_ = begin->size >= kDataStreamStripeBytes && data_out_.size() > 1 &&
                        cfg_.transport.mode == TransportMode::kTls;
        route_to_ = route_seq_ != 0 ? PickDataStream() : nullptr;
        if (route_to_ == nullptr) route_seq_ = 0;  // no stream open yet: the control stream
      } else if (seq != 0 && seq == route_seq_ &&
                 (std::holds_alternative<wire::Extent>(message) ||
                  std::holds_alternative<wire::Hole>(message))) {
        if (route_stripe_) route_to_ = PickDataStream();
        DataFrame frame{seq, std::move(message), 0, nullptr, 0};
        frame.bytes = DataFrameBytes(frame.message);
        return EnqueueData(frame);
      }
    }
    if (const auto* begin = std::get_if<wire::FileBegin>(&message)) {
      last_change_.path = begin->path.substr(0, lockwin::kLastChangePathMax);
      last_change_.size_bytes = begin->size;
    } else if (const auto* end = std::get_if<wire::FileEnd>(&message)) {
      last_change_.xxh3 = end->hash.low;
    }
    RETURN_IF_ERROR(active_->conn->Send(state_.epoch, seq, message));
    if (std::holds_alternative<wire::Commit>(message)) {
      // A lock record with every batch (DESIGN §3): the standby sees the progress the
      // batch made at once, not at the next beat.
      auto lock = lockwin::EncodeLockRecord(MakeLockRecord(NowNs(), false));
      if (lock.ok()) {
        metrics_.lock_records_sent.fetch_add(1, std::memory_order_relaxed);
        RETURN_IF_ERROR(active_->conn->Send(state_.epoch, 0, wire::Lock{std::move(lock).value()}));
      }
    }
    if (active_->conn->outgoing_size() > kFlushHighWater) return Flush(active_);
    return Status::Ok();
  }

 private:
  enum class Session { kIdle, kConnecting, kHandshake, kManifest, kBlocks, kLive };

  Status InitPrimary();
  Status InitStandby();
  // peer.address resolved into peer_addr_ (the primary dials it; the standby knows its
  // inbound connections by it).
  Status ResolvePeer();
  Status Listen();
  void PostAccept();
  // Whether a new inbound connection may start a handshake; may evict an unfinished
  // one to make room (the rules are in the definition).
  bool MakeRoomForAHandshake(bool from_peer);
  void PostRecv(const std::shared_ptr<Peer>& peer);
  void PostWatch();
  void ScheduleTick();
  void Tick();
  void StartConnect();
  void OnConnected(const std::shared_ptr<Peer>& peer, int32_t res);
  void OnBytes(const std::shared_ptr<Peer>& peer, size_t n);
  Status HandleFrames(const std::shared_ptr<Peer>& peer);
  // `first`: the frame Next() returned with the peer's HELLO, if any; a data stream's
  // goes to its thread (and is reset here), a control stream's is handled as usual.
  Status OnOpened(const std::shared_ptr<Peer>& peer, std::optional<wire::Frame>& first);
  Status OnPrimaryFrame(const wire::Frame& frame);
  // Tells the peer why (ERROR) and returns the reason; the caller drops the peer.
  Status Refuse(const std::shared_ptr<Peer>& peer, wire::ErrorCode code, const std::string& why);
  Status NewSessionId();
  Status FinishResync();
  // The resync's content waits (bounded) for the data streams to open, so its large
  // files travel on them rather than all on the control stream.
  Status ResyncWhenStreamsOpen();
  Status OnStandbyFrame(const wire::Frame& frame);
  // Data streams. Primary: open them once the control session is open; route.
  Status StartDataStreams(const wire::Hello& peer_hello);
  // Failover (DESIGN §3–§4, docs/FAILOVER.md).
  lockwin::LockRecord MakeLockRecord(int64_t now, bool tick);
  void Beat(int64_t now);
  // The beat's lock record: written to <state_dir>/lock and sent to the standby.
  Status SendBeat(int64_t now);
  Status OnLock(const wire::Lock& lock);
  void StartDetector();
  void StopDetector();
  bool CaughtUp() const;
  // The primary's redial backoff stops growing at a quarter of the window: a standby
  // that restarts (or comes back) hears the primary well within its window, instead of
  // judging it silent while the primary waits out a backoff longer than the window.
  int64_t BackoffMaxMs() const {
    return std::clamp<int64_t>(cfg_.failover.window_ms / 4, kBackoffMinMs, kBackoffMaxMs);
  }
  // Primary, while a send waits for the standby (the loop runs no timer meanwhile): the
  // lease check of Tick, judged on the standby's last frame or the last bytes it took.
  // An isolated primary blocked on a full socket kept serving for up to 30 s, long
  // after the standby had promoted. Non-OK once this node demoted: unwind the send.
  Status LeaseWhileSending(int64_t progress_ns);
  // The failover controller (engine/failover) decides every role change; this feeds it
  // one input and carries out the actions it returns. Hooks and persistence run here,
  // synchronously, and their results go back in before Drive returns. Returns the reason
  // when the controller ends the session (the caller drops the peer or refuses it).
  std::optional<std::string> Drive(const failover::Input& input);
  failover::Input At(int64_t now, decltype(failover::Input::event) event) const;
  // What the controller judges by at a tick.
  failover::Observation Observe(int64_t now);
  void DriveTick(int64_t now);
  HookResult RunLoggedHook(std::string_view name, const Command& command, std::string_view role,
                           uint64_t epoch, const std::string& reason);
  void WriteLockFile(const lockwin::LockRecord& record, std::string_view source);
  void RecordHistory(const NodeState& s, const std::string& reason);
  Result<std::unique_ptr<DataStreamOut>> MakeDataStream(uint16_t index);
  void CheckDataStreams(int64_t now);
  void CompensateLoopStall(int64_t now);
  void StopDataStreams();
  DataStreamOut* PickDataStream();
  Status EnqueueData(DataFrame& frame);
  // Standby: adopt an opened connection as a data stream of the active session.
  // `first`: a frame that came with the HELLO, for the stream's thread to take first.
  Status AdoptDataStream(const std::shared_ptr<Peer>& peer, std::optional<wire::Frame> first);
  void PostDataEvent();
  // The control socket (engine/node/control.h): `hasync status`, `hasync switchover`.
  void PostControlAccept();
  void HandleControl(UniqueFd fd);
  std::string StatusJson();
  std::string StartSwitchover(int64_t timeout_ms);
  // `hasync verify`: the primary starts a run / reports on it; both step it on the loop.
  std::string StartVerify(int64_t timeout_ms, int rounds, bool repair);
  void StartAntiEntropyPass(int64_t now);
  // Points the sender at the standby's version of each differing path and queues the
  // path, so the next pump ships what differs (as a resync would). Logs each one.
  void Repair(const std::vector<ManifestDifference>& diffs);
  std::string VerifyResultJson(uint64_t id, size_t offset);
  void StepVerify(int64_t now);
  void FinishVerify(std::string outcome, std::string error);
  Status OnVerifyEntries(const wire::ManifestEntries& m);
  Status StartStandbyManifest(const wire::ManifestRequest& request);
  void StepStandbyManifest();
  // Hands data-stream frames to the receiver; resumes the control stream once a
  // waiting FILE_END has its content.
  void PumpData();
  void ResumeControl();
  // Posts the next receive, unless the peer is the control stream held for data.
  void ReceiveOrHold(const std::shared_ptr<Peer>& peer);
  bool ControlHeld(const std::shared_ptr<Peer>& peer) const {
    return state_.role == NodeRole::kStandby && peer == active_ && receiver_->waiting_for_data();
  }
  // Starts sending what the peer's connection has queued (asynchronously) and, if more
  // than kOutboxMaxBytes are queued, waits for the send in flight until fewer are:
  // the producer's backpressure. Returns the send's sticky error.
  Status Flush(const std::shared_ptr<Peer>& peer);
  // Waits, up to timeout_ns, until everything queued for the peer went out.
  Status FlushAll(const std::shared_ptr<Peer>& peer, int64_t timeout_ns);
  void StartSend(const std::shared_ptr<Peer>& peer);
  void OnSent(const std::shared_ptr<Peer>& peer, int32_t res);
  Status WaitSend(const std::shared_ptr<Peer>& peer, int64_t timeout_ns);
  void Drop(const std::shared_ptr<Peer>& peer, const Status& why);
  void DrainWatcher();
  void MakeSender();
  Status PumpSender();
  wire::Hello MyHello() const;
  ChannelMode ChannelModeFor() const {
    return cfg_.transport.mode == TransportMode::kPlain ? ChannelMode::kPlain : ChannelMode::kTls;
  }
  void LogStats(std::string_view why) const;
  // Copies the node's state and its components' statistics into metrics_ (every tick,
  // and before a component holding statistics is replaced or the node stops).
  void PublishMetrics(int64_t now);

  const Config& cfg_;
  RunOptions opts_;
  Metrics& metrics_;  // the process's (RunNode's): counters outlive role changes
  struct Mirrors {
    CounterMirror files_sent, bytes_sent, files_applied, bytes_applied, batches_applied,
        journal_overflows, watch_overflows, probe_runs, probe_failures;
  } mirrors_;
  int64_t quarantine_counted_ns_ = 0;
  // `hasync verify`. Primary: the run in progress or the last one. Standby: the
  // manifest being built for the primary's request, and for which peer.
  std::unique_ptr<VerifyRun> verify_;
  uint64_t verify_count_ = 0;
  // Anti-entropy: when the next background pass may start (0: not scheduled yet; set
  // one interval after a session is first live), and when an operator's run last ended
  // (its result stays readable a while before a pass replaces it).
  int64_t next_pass_ns_ = 0;
  int64_t operator_verify_done_ns_ = 0;
  std::unique_ptr<ManifestJob> verify_job_;
  uint64_t verify_job_request_ = 0;
  const Peer* verify_job_peer_ = nullptr;
  NodeState state_;
  SyncKey key_;
  std::unique_ptr<Rng> rng_;
  std::unique_ptr<iouring::Loop> loop_;
  Status fatal_;

  UniqueFd listen_fd_;
  std::shared_ptr<Peer> active_;
  std::vector<std::shared_ptr<Peer>> pending_;
  sockaddr_storage peer_addr_{};
  socklen_t peer_addr_len_ = 0;
  uint64_t refusals_in_a_row_ = 0;  // connection_refused logged once per run
  uint64_t session_id_ = 0;

  // Primary.
  watch::MonotonicClock clock_;
  std::optional<watch::Watcher> watcher_;
  std::unique_ptr<Journal> journal_;
  std::vector<UniqueFd> root_fds_;
  std::unique_ptr<Sender> sender_;
  std::vector<std::unique_ptr<DataStreamOut>> data_out_;
  // Per stream slot: when a stream that failed to open is tried again (0: not waiting),
  // and the wait after its next failure.
  std::vector<int64_t> data_retry_at_ns_;
  std::vector<int64_t> data_retry_backoff_ns_;
  uint64_t data_peer_node_id_ = 0;
  uint64_t route_seq_ = 0;  // the file whose content goes to route_to_
  DataStreamOut* route_to_ = nullptr;
  bool route_stripe_ = false;  // each extent of route_seq_ to the least-loaded stream
  size_t next_stream_ = 0;
  Session session_ = Session::kIdle;
  int64_t next_connect_ns_ = 0;
  int64_t backoff_ms_ = kBackoffMinMs;
  int64_t resync_started_ns_ = 0;
  int64_t resync_waiting_since_ns_ = 0;  // 0: not waiting for data streams
  int64_t last_tick_ns_ = 0;

  UniqueFd control_fd_;
  // Failover: the controller, and what its last Drive said of a HELLO or a switchover.
  std::unique_ptr<failover::Controller> fo_;
  std::optional<failover::act::RefuseSession> hello_refusal_;
  std::optional<failover::act::SwitchoverReply> switchover_reply_;
  Status persist_error_;  // the last failed SaveNodeState of a Persist action
  // Failover, both roles. A role change is persisted at once but applied to this object
  // only when Run() ends: until then the components of the old role are still here.
  // Set: the node is changing role and Run() returns so RunNode starts it again.
  std::optional<NodeState> next_state_;
  // Primary: lock records and the lease.
  std::unique_ptr<Probe> probe_;
  uint64_t beat_ = 0;
  lockwin::LastChange last_change_;  // the newest file sent: path, size, hash
  int64_t next_beat_ns_ = 0;
  // Standby: the detector (its thread only Steps it: history and verdict log lines),
  // and where a promotion stands.
  std::unique_ptr<lockwin::Detector> detector_;
  std::thread detector_thread_;
  std::mutex detector_mu_;
  lockwin::DetectorSnapshot detector_snapshot_;  // for status; under detector_mu_
  std::condition_variable detector_cv_;
  bool detector_stop_ = false;
  int64_t lock_file_written_ns_ = 0;  // <state_dir>/lock, last rewritten

  size_t pending_blocks_ = 0;
  std::vector<watch::WatchEvent> events_;

  // Standby. fs_ops_ (concurrent fsyncs) outlives the trees that borrow it.
  std::unique_ptr<apply::UringFsOps> fs_ops_;
  std::vector<std::unique_ptr<apply::Tree>> trees_;
  std::unique_ptr<Receiver> receiver_;
  // Rejoin (state_.rejoin_epoch set): where the first resync keeps what it replaces.
  std::optional<apply::Quarantine> quarantine_;
  std::vector<std::unique_ptr<DataStreamIn>> data_in_;
  UniqueFd data_event_fd_;  // eventfd the data streams' threads write
  uint64_t data_event_count_ = 0;
};

// ---- start-up -----------------------------------------------------------------------------

Status Node::Init() {
  if (mkdir(cfg_.sync.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "create state dir " + cfg_.sync.state_dir);
  }
  ASSIGN_OR_RETURN(key_, LoadKeyFile(cfg_.sync.key_file));
  ASSIGN_OR_RETURN(rng_, Rng::Create());
  auto loaded = LoadNodeState(cfg_.sync.state_dir);
  if (loaded.ok()) {
    state_ = *loaded;
    // The persisted role and epoch are the truth once a node has state (a restarted
    // old primary must not take the role back); --initial-role only seeds a new node.
    if (opts_.initial_role && *opts_.initial_role != state_.role) {
      Log(Level::kWarn, "initial_role_ignored")
          .kv("asked", NodeRoleName(*opts_.initial_role))
          .kv("role", NodeRoleName(state_.role))
          .kv("epoch", state_.epoch)
          .kv("why",
              "the state dir holds this node's state; --initial-role only applies to a "
              "node without state");
    }
  } else if (loaded.status().code() == Code::kNotFound) {
    if (!opts_.initial_role) {
      return FailedPrecondition("state dir " + cfg_.sync.state_dir +
                                " holds no node state yet: start once with --initial-role "
                                "primary on one node and --initial-role standby on the other");
    }
    std::array<std::byte, 8> id{};
    do {
      RETURN_IF_ERROR(rng_->Fill(id));
      std::memcpy(&state_.node_id, id.data(), id.size());
    } while (state_.node_id == 0);
    state_.role = *opts_.initial_role;
    state_.epoch = state_.role == NodeRole::kPrimary ? 1 : 0;
    RETURN_IF_ERROR(SaveNodeState(cfg_.sync.state_dir, state_));
    RecordHistory(state_, "first start (--initial-role)");
  } else {
    return loaded.status();
  }
  RETURN_IF_ERROR(NewSessionId());

  auto ring = iouring::Ring::Create(256);
  if (!ring.ok()) return ring.status().Annotate("io_uring (hasync needs it for its event loop)");
  auto probe = iouring::OpcodeProbe::Query(*ring);
  if (!probe.ok()) return probe.status();
  const int needed[] = {IORING_OP_ACCEPT, IORING_OP_CONNECT,  IORING_OP_RECV,
                        IORING_OP_SEND,   IORING_OP_POLL_ADD, IORING_OP_TIMEOUT};
  RETURN_IF_ERROR(probe->Require(needed));
  loop_ = std::make_unique<iouring::Loop>(std::move(ring).value());

  Log(Level::kInfo, "start")
      .kv("node", cfg_.node.name)
      .kv("role", NodeRoleName(state_.role))
      .kv("epoch", state_.epoch)
      .kv("roots", static_cast<uint64_t>(cfg_.sync.roots.size()))
      .kv("transport", TransportModeName(cfg_.transport.mode));
  if (cfg_.transport.mode == TransportMode::kPlain) {
    Log(Level::kWarn, "plain_transport")
        .kv("note", "file contents and names cross the network unencrypted (authenticated only)");
  }
  RETURN_IF_ERROR(Listen());
  ASSIGN_OR_RETURN(control_fd_, ListenControl(cfg_.sync.state_dir));
  RETURN_IF_ERROR(state_.role == NodeRole::kPrimary ? InitPrimary() : InitStandby());
  // The lease of a standby never heard counts from here.
  fo_ = std::make_unique<failover::Controller>(failover::Policy::From(cfg_), state_, NowNs());
  return Status::Ok();
}

Status Node::Listen() {
  if (listen_fd_) return Status::Ok();  // kept from before a role change
  socklen_t len = 0;
  ASSIGN_OR_RETURN(sockaddr_storage addr, Resolve(cfg_.node.listen, &len));
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
    if (errno != EADDRINUSE) return ErrnoStatus(errno, "bind " + cfg_.node.listen.ToString());
    if (waited_ms >= kBindRetryMs) {
      return ErrnoStatus(errno, fmt::format("bind {} (retried for {} ms)",
                                            cfg_.node.listen.ToString(), waited_ms));
    }
    if (waited_ms == 0) {
      Log(Level::kWarn, "listen_address_busy")
          .kv("address", cfg_.node.listen.ToString())
          .kv("note", fmt::format("retrying for up to {} ms", kBindRetryMs));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kBindRetryStepMs));
  }
  if (listen(fd.get(), 16) != 0) return ErrnoStatus(errno, "listen " + cfg_.node.listen.ToString());
  listen_fd_ = std::move(fd);
  return Status::Ok();
}

Status Node::InitPrimary() {
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
  if (cfg_.probe.command.empty()) {
    Log(Level::kInfo, "probe").kv("mode", "none: the beat follows the event loop alone");
  } else {
    Command probe{cfg_.probe.command, cfg_.probe.timeout_ms};
    probe_ = std::make_unique<Probe>(probe, cfg_.probe.interval_ms,
                                     HookEnv{"primary", state_.epoch, "probe", cfg_.peer.name});
  }
  return ResolvePeer();  // the primary dials it
}

Status Node::ResolvePeer() {
  socklen_t len = 0;
  auto addr = Resolve(cfg_.peer.address, &len);
  if (!addr.ok()) return addr.status();
  peer_addr_ = *addr;
  peer_addr_len_ = len;
  return Status::Ok();
}

Status Node::InitStandby() {
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
  receiver_ = std::make_unique<Receiver>(raw, *this);
  receiver_->set_verify_handler(
      [this](const wire::ManifestRequest& r) { return StartStandbyManifest(r); });
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
  if (Status s = ResolvePeer(); !s.ok()) {
    Log(Level::kWarn, "peer_address_unresolved")
        .kv("reason", s.ToString())
        .kv("note", "a primary keyed differently cannot be told from silence");
  }
  data_event_fd_ = UniqueFd(eventfd(0, EFD_CLOEXEC));
  if (!data_event_fd_) return ErrnoStatus(errno, "eventfd for data streams");
  lockwin::DetectorOptions dopts;
  dopts.window_ns = cfg_.failover.window_ms * 1'000'000;
  dopts.beat_interval_ns = cfg_.failover.beat_ms * 1'000'000;
  dopts.start_ns = NowNs();  // Silent counts from here until a first lock record
  auto detector = lockwin::Detector::Create(dopts, [](const lockwin::VerdictChange& c) {
    Log(c.to == lockwin::Verdict::kAlive ? Level::kInfo : Level::kWarn, "verdict")
        .kv("from", lockwin::VerdictName(c.from))
        .kv("to", lockwin::VerdictName(c.to));
  });
  if (!detector.ok()) return detector.status().Annotate("failure detector");
  detector_ = std::move(detector).value();
  StartDetector();
  return Status::Ok();
}

wire::Hello Node::MyHello() const {
  wire::Hello h;
  h.role = ToWire(state_.role);
  h.node_id = state_.node_id;
  h.session_id = session_id_;
  h.capabilities = wire::kCapXattr | wire::kCapDelta | wire::kCapSparse;
  // A standby takes data streams whatever its own setting; a primary offers to open
  // them only when configured to.
  if (state_.role == NodeRole::kStandby || cfg_.transport.data_streams > 0) {
    h.capabilities |= wire::kCapDataStreams;
  }
  h.last_applied_seq = receiver_ ? receiver_->last_applied_seq() : state_.last_applied_seq;
  h.node_name = cfg_.node.name;
  return h;
}

// ---- the loop ------------------------------------------------------------------------------

Status Node::Run() {
  PostAccept();
  if (watcher_) PostWatch();
  if (data_event_fd_) PostDataEvent();
  if (control_fd_) PostControlAccept();
  ScheduleTick();
  // Up: listening, watching (primary) or ready to apply (standby).
  if (opts_.service != nullptr) {
    opts_.service->Ready(fmt::format("{} at epoch {}", NodeRoleName(state_.role), state_.epoch));
  }
  while (fatal_.ok() && !next_state_.has_value()) {
    if (opts_.stop != nullptr && opts_.stop->load(std::memory_order_relaxed)) break;
    auto ran = loop_->RunOnce(100'000'000);
    if (!ran.ok()) return ran.status();
  }
  if (active_) {
    active_->conn->Close();
    FlushAll(active_, 2'000'000'000).IgnoreError();  // best effort on the way out
  }
  StopDataStreams();
  StopDetector();
  PublishMetrics(NowNs());
  probe_.reset();
  if (receiver_ && !next_state_.has_value())
    state_.last_applied_seq = receiver_->last_applied_seq();
  LogStats("stop");
  if (next_state_) state_ = *next_state_;
  Status saved = SaveNodeState(cfg_.sync.state_dir, state_);
  Log(Level::kInfo, "stop")
      .kv("reason", !fatal_.ok()              ? fatal_.ToString()
                    : next_state_.has_value() ? "role change: starting again as " +
                                                    std::string(NodeRoleName(state_.role)) +
                                                    " at epoch " + std::to_string(state_.epoch)
                                              : std::string("requested"));
  if (opts_.service != nullptr && !next_state_.has_value()) {
    opts_.service->Stopping(!fatal_.ok() ? "stopping: " + fatal_.ToString() : "stopping");
  }
  if (!fatal_.ok()) return fatal_;
  return saved;
}

void Node::ScheduleTick() {
  Status s = loop_->AddTimer(kTickNs, [this] {
    Tick();
    ScheduleTick();
  });
  if (!s.ok()) fatal_ = s;
}

void Node::CompensateLoopStall(int64_t now) {
  int64_t late = last_tick_ns_ == 0 ? 0 : now - last_tick_ns_ - kTickNs;
  last_tick_ns_ = now;
  if (late < kLoopStallNs) return;
  // The timers below judge the peer by when its bytes were handled; bytes that waited
  // in the socket while this loop was busy would count as silence.
  for (auto& p : pending_) p->created_ns += late;
  if (active_) active_->last_rx_ns += late;
  Log(Level::kDebug, "loop_stalled").kv("ms", late / 1'000'000);
}

void Node::Tick() {
  int64_t now = NowNs();
  CompensateLoopStall(now);
  PublishMetrics(now);
  // Pinged from the loop itself: a loop that stops turning stops the pings, and the
  // service manager kills and restarts the node (WatchdogSec=).
  if (opts_.service != nullptr) opts_.service->Watchdog(now);
  for (auto& p : pending_) {
    if (!p->dead && now - p->created_ns > kHandshakeTimeoutNs) {
      Drop(p, Unavailable("handshake did not finish within 10 s"));
    }
  }
  std::erase_if(pending_, [](const auto& p) { return p->dead; });
  if (active_ && !active_->dead) {
    // While the standby walks and hashes its tree for the manifest it sends nothing;
    // that may take minutes on a large cold spool, so the bound is wider then.
    // A standby making a large batch durable is silent until its fsyncs return.
    bool peer_computing = session_ == Session::kManifest || session_ == Session::kBlocks;
    bool peer_committing = sender_ && session_ == Session::kLive && sender_->unacked_batches() > 0;
    int64_t limit = peer_computing    ? kPeerComputeTimeoutNs
                    : peer_committing ? kCommitTimeoutNs
                                      : kIdleTimeoutNs;
    if (active_->sending && now - active_->last_tx_ns > kSendStallTimeoutMs * 1'000'000) {
      Drop(active_, Unavailable("peer accepted no data for 30 s"));
    } else if (now - active_->last_rx_ns > limit) {
      Drop(active_, Unavailable(peer_computing    ? "no manifest from the standby for 30 min"
                                : peer_committing ? "no acknowledgement from the standby for 2 min"
                                                  : "no frame from the peer for 15 s"));
    } else if (active_->conn->open() && state_.role == NodeRole::kPrimary &&
               now - active_->last_ping_ns > kPingIntervalNs) {
      active_->last_ping_ns = now;
      Status s = Emit(0, wire::Ping{static_cast<uint64_t>(now), static_cast<uint64_t>(now)});
      if (s.ok()) s = Flush(active_);
      if (!s.ok()) Drop(active_, s);
    }
  }
  if (active_ && !active_->dead && !data_out_.empty()) CheckDataStreams(now);
  if (!data_in_.empty()) PumpData();  // what PumpData's per-call bound left
  if (watcher_) {
    watcher_->Tick();
    DrainWatcher();
  }
  if (next_state_.has_value()) return;
  if (state_.role == NodeRole::kPrimary) {
    if (now >= next_beat_ns_) {
      next_beat_ns_ = now + cfg_.failover.beat_ms * 1'000'000;
      Beat(now);
    }
    DriveTick(now);  // the lease, a switchover's drain
    if (next_state_.has_value() || !fatal_.ok()) return;
    if (verify_ && verify_->phase != VerifyRun::Phase::kDone) StepVerify(now);
    if (cfg_.anti_entropy.interval_ms > 0 && session_ == Session::kLive) {
      if (next_pass_ns_ == 0) next_pass_ns_ = now + cfg_.anti_entropy.interval_ms * 1'000'000;
      const bool idle = !verify_ || verify_->phase == VerifyRun::Phase::kDone;
      if (idle && now >= next_pass_ns_ && now - operator_verify_done_ns_ >= kOperatorResultKeptNs) {
        StartAntiEntropyPass(now);
      }
    }
  } else {
    if (quarantine_ && receiver_->resyncs_completed() > 0) {
      // The first resync under the new primary is complete and durable: rejoined.
      Log(Level::kWarn, "rejoined")
          .kv("epoch", state_.epoch)
          .kv("quarantined", quarantine_->files_quarantined())
          .kv("where", cfg_.sync.state_dir + "/quarantine/" + std::to_string(state_.epoch));
      receiver_->set_quarantine(nullptr, 0);
      quarantine_.reset();
      Drive(At(now, failover::in::Rejoined{}));
    } else if (state_.handed_over && receiver_->resyncs_completed() > 0) {
      // After a switchover: joined the new primary; nothing was kept.
      Log(Level::kInfo, "rejoined").kv("epoch", state_.epoch).kv("quarantined", uint64_t{0});
      Drive(At(now, failover::in::Rejoined{}));
    }
    if (verify_job_) StepStandbyManifest();
    DriveTick(now);  // promotion
    if (next_state_.has_value() || !fatal_.ok()) return;
  }
  if (state_.role == NodeRole::kPrimary) {
    if (session_ == Session::kIdle && now >= next_connect_ns_) StartConnect();
    if (session_ == Session::kLive) {
      Status s = PumpSender();
      if (!s.ok() && active_) Drop(active_, s);
    } else if (session_ == Session::kBlocks && pending_blocks_ == 0 &&
               resync_waiting_since_ns_ != 0) {
      Status s = ResyncWhenStreamsOpen();
      if (!s.ok() && active_) Drop(active_, s);
    }
  }
}

void Node::PostAccept() {
  Status s = loop_->Submit(
      [this](io_uring_sqe* sqe) {
        io_uring_prep_accept(sqe, listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      },
      [this](int32_t res) {
        if (res < 0) {
          Log(Level::kWarn, "accept_failed").kv("error", std::strerror(-res));
        } else {
          UniqueFd fd(res);
          const bool from_peer = FromHost(fd.get(), peer_addr_, peer_addr_len_);
          const bool room = !next_state_.has_value() && MakeRoomForAHandshake(from_peer);
          if (!room) {
            // Said once per run of refusals: a flood must not flood the log too.
            if (refusals_in_a_row_++ == 0) {
              Log(Level::kWarn, "connection_refused")
                  .kv("reason",
                      next_state_.has_value() ? "changing role" : "too many handshakes in progress")
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
            auto conn = Connection::Create(wire::TlsRole::kServer, std::as_bytes(key_.bytes()),
                                           Rng::Generate, rng_->ctx(), MyHello(), state_.epoch,
                                           ChannelModeFor());
            if (!conn.ok()) {
              fatal_ = conn.status();
              return;
            }
            peer->conn = std::move(conn).value();
            pending_.push_back(peer);
            PostRecv(peer);
          }
        }
        PostAccept();
      });
  if (!s.ok()) fatal_ = s;
}

bool Node::MakeRoomForAHandshake(bool from_peer) {
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

void Node::PostRecv(const std::shared_ptr<Peer>& peer) {
  Status s = loop_->Submit(
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
        OnBytes(peer, static_cast<size_t>(res));
      });
  if (!s.ok()) Drop(peer, s);
}

void Node::PostWatch() {
  Status s = loop_->Submit(
      [this](io_uring_sqe* sqe) { io_uring_prep_poll_add(sqe, watcher_->fd(), POLLIN); },
      [this](int32_t res) {
        if (res < 0) {
          fatal_ = ErrnoStatus(-res, "poll fanotify fd");
          return;
        }
        if (next_state_.has_value())
          return;  // the node is changing role: no more changes are taken
        Status r = watcher_->OnReadable();
        if (!r.ok()) Log(Level::kWarn, "watch_read_failed").kv("error", r.ToString());
        DrainWatcher();
        if (session_ == Session::kLive) {
          Status p = PumpSender();
          if (!p.ok() && active_) Drop(active_, p);
        }
        PostWatch();
      });
  if (!s.ok()) fatal_ = s;
}

void Node::MakeSender() {
  std::vector<int> fds;
  for (auto& fd : root_fds_) fds.push_back(fd.get());
  SenderOptions sopts;
  sopts.max_batch_bytes = cfg_.limits.max_batch_bytes;
  sopts.max_batch_changes = cfg_.limits.max_batch_files;
  sopts.max_unacked_bytes = cfg_.limits.max_queued_bytes;
  if (sender_) PublishMetrics(NowNs());  // the old sender's last figures, then start over
  mirrors_.files_sent.Restart();
  mirrors_.bytes_sent.Restart();
  sender_ = std::make_unique<Sender>(std::move(fds), sopts, *this);
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

void Node::DrainWatcher() {
  for (int round = 0; round < 64 && watcher_->ready() > 0; ++round) {
    events_.clear();
    watcher_->Drain(&events_, kWatchDrainBatch);
    const bool debug = LogEnabled(Level::kDebug);
    for (const watch::WatchEvent& e : events_) {
      if (debug) {
        Log(Level::kDebug, "watch_event")
            .kv("kind", static_cast<uint64_t>(e.kind))
            .kv("root", e.root)
            .kv("path", e.path)
            .kv("from", e.old_path);
      }
      switch (e.kind) {
        case watch::WatchKind::kCreate:
        case watch::WatchKind::kModify:
        case watch::WatchKind::kCloseWrite:
        case watch::WatchKind::kAttrib:
          journal_->Upsert(e.root, e.path, e.object);
          break;
        case watch::WatchKind::kDelete:
          journal_->Remove(e.root, e.path, e.object);
          break;
        case watch::WatchKind::kRename:
          journal_->Rename(e.root, e.old_path, e.path, e.is_dir);
          break;
        case watch::WatchKind::kRescan:
          journal_->Rescan(e.root, e.path, e.object);
          break;
      }
    }
  }
}

Status Node::PumpSender() {
  if (!active_ || active_->dead) return Status::Ok();
  RETURN_IF_ERROR(sender_->Pump(*journal_));
  return Flush(active_);
}

// ---- connections ---------------------------------------------------------------------------

void Node::StartConnect() {
  // A fresh session id per connection, so a data stream of an earlier session can never
  // join this one.
  if (Status r = NewSessionId(); !r.ok()) {
    fatal_ = r;
    return;
  }
  auto peer = std::make_shared<Peer>();
  peer->fd = UniqueFd(socket(peer_addr_.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  peer->outbound = true;
  peer->addr = cfg_.peer.address.ToString();
  if (!peer->fd) {
    fatal_ = ErrnoStatus(errno, "socket");
    return;
  }
  TuneSessionSocket(peer->fd.get());
  session_ = Session::kConnecting;
  Status s = loop_->Submit(
      [&](io_uring_sqe* sqe) {
        io_uring_prep_connect(sqe, peer->fd.get(), reinterpret_cast<sockaddr*>(&peer_addr_),
                              peer_addr_len_);
      },
      [this, peer](int32_t res) { OnConnected(peer, res); });
  if (!s.ok()) fatal_ = s;
}

void Node::OnConnected(const std::shared_ptr<Peer>& peer, int32_t res) {
  if (res < 0) {
    Log(Level::kDebug, "connect_failed").kv("peer", peer->addr).kv("error", std::strerror(-res));
    session_ = Session::kIdle;
    next_connect_ns_ = NowNs() + backoff_ms_ * 1'000'000;
    backoff_ms_ = std::min(backoff_ms_ * 2, BackoffMaxMs());
    return;
  }
  auto conn = Connection::Create(wire::TlsRole::kClient, std::as_bytes(key_.bytes()), Rng::Generate,
                                 rng_->ctx(), MyHello(), state_.epoch, ChannelModeFor());
  if (!conn.ok()) {
    fatal_ = conn.status();
    return;
  }
  peer->conn = std::move(conn).value();
  peer->created_ns = peer->last_rx_ns = NowNs();
  active_ = peer;
  session_ = Session::kHandshake;
  Status s = Flush(peer);  // the ClientHello
  if (!s.ok()) {
    Drop(peer, s);
    return;
  }
  PostRecv(peer);
}

void Node::OnBytes(const std::shared_ptr<Peer>& peer, size_t n) {
  const int64_t arrived = NowNs();
  peer->last_rx_ns = arrived;
  Status s = peer->conn->Feed(std::span<const std::byte>(peer->rx.data(), n));
  if (s.ok()) s = HandleFrames(peer);
  if (s.ok() && !peer->dead) s = Flush(peer);
  if (!s.ok()) {
    Drop(peer, s);
    return;
  }
  // The lease is renewed only by a standby that proved the key: the bytes of a failing
  // handshake (a standby keyed differently answers with an alert) are not the standby
  // holding the copy, and once counted they kept a primary serving beside a standby
  // that promoted.
  if (peer == active_ && peer->conn->open() && state_.role == NodeRole::kPrimary) {
    Drive(At(arrived, failover::in::PeerHeard{}));
  }
  // Time this node spent handling what arrived (a manifest walk, a big commit) is not
  // the peer's silence.
  peer->last_rx_ns = NowNs();
  if (peer->dead) return;
  ReceiveOrHold(peer);
  // The control stream may have begun files whose data waits at the head of a stream
  // whose thread, its queue full, will not wake the loop again.
  if (peer == active_ && !data_in_.empty()) PumpData();
}

Status Node::HandleFrames(const std::shared_ptr<Peer>& peer) {
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
      Status told = Emit(
          0, wire::Error{wire::ErrorCode::kStaleEpoch, "epoch " + std::to_string(frame.epoch) +
                                                           " < " + std::to_string(state_.epoch)});
      if (told.ok()) Flush(peer).IgnoreError();
      return PermissionDenied("frame with stale epoch " + std::to_string(frame.epoch) +
                              " (this node is at " + std::to_string(state_.epoch) + ")");
    }
    if (fo_->CheckFrameEpoch(frame.epoch) == failover::FrameEpoch::kHigher) {
      Drive(At(NowNs(), failover::in::HigherEpoch{frame.epoch, "the peer sent a frame at epoch " +
                                                                   std::to_string(frame.epoch)}));
      return Unavailable("demoted: the peer is at a higher epoch");
    }
    RETURN_IF_ERROR(state_.role == NodeRole::kPrimary ? OnPrimaryFrame(frame)
                                                      : OnStandbyFrame(frame));
  }
  return Status::Ok();
}

Status Node::OnOpened(const std::shared_ptr<Peer>& peer, std::optional<wire::Frame>& first) {
  const wire::Hello& hello = peer->conn->peer_hello();
  std::string refuse;
  const bool inbound = peer != active_;
  if (hello.node_name != cfg_.peer.name) {
    refuse =
        "peer calls itself '" + hello.node_name + "', configured peer is '" + cfg_.peer.name + "'";
  } else {
    // Roles and epochs: the controller's rules (docs/FAILOVER.md).
    hello_refusal_.reset();
    auto end =
        Drive(At(NowNs(), failover::in::PeerHello{hello.role, peer->conn->peer_epoch(), inbound}));
    if (hello_refusal_) {
      if (hello_refusal_->tell_promoted) {
        peer->conn
            ->Send(state_.epoch, 0,
                   wire::Promoted{wire::RoleChangeReason::kHigherEpoch, state_.node_id})
            .IgnoreError();
      }
      refuse = hello_refusal_->why;
    } else if (end) {
      return Unavailable(*end);
    }
  }
  if (refuse.empty() && hello.stream_kind == wire::StreamKind::kData) {
    if (state_.role != NodeRole::kStandby) {
      refuse = "a data stream dialled the primary";
    } else {
      std::optional<wire::Frame> taken = std::move(first);
      first.reset();
      return AdoptDataStream(peer, std::move(taken));
    }
  }
  if (!refuse.empty()) return Refuse(peer, wire::ErrorCode::kRoleConflict, refuse);
  peer->session_opened = true;
  metrics_.sessions_opened.fetch_add(1, std::memory_order_relaxed);
  Log(Level::kInfo, "session_open")
      .kv("peer", hello.node_name)
      .kv("cipher", peer->conn->cipher_suite())
      .kv("peer_epoch", peer->conn->peer_epoch())
      .kv("peer_last_applied_seq", hello.last_applied_seq);
  if (state_.role == NodeRole::kStandby) {
    // A higher epoch is persisted before anything of the session is applied.
    if (auto end = Drive(At(NowNs(), failover::in::SessionOpened{peer->conn->peer_epoch()}))) {
      return Unavailable(*end);
    }
    if (active_ && active_ != peer) Drop(active_, Unavailable("replaced by a newer session"));
    std::erase(pending_, peer);
    active_ = peer;
    receiver_->Reset();
    receiver_->set_data_streams((hello.capabilities & wire::kCapDataStreams) != 0);
    if (quarantine_) receiver_->set_quarantine(&*quarantine_, state_.epoch);
    return Status::Ok();
  }
  // Primary: start over from the standby's manifest. The reconnect backoff is not reset
  // here: a standby that NACKs every resync (full disk, failing fsync) opens sessions
  // fine, and resetting at each open made the primary re-run the whole comparison every
  // 100 ms. It resets on progress instead: an ACK, or a resync with nothing to send.
  session_ = Session::kManifest;
  resync_waiting_since_ns_ = 0;
  resync_started_ns_ = NowNs();
  journal_->Clear();  // the resync compares the whole tree; later events are kept
  MakeSender();
  sender_->set_next_seq(hello.last_applied_seq + 1);
  sender_->BeginManifest();
  RETURN_IF_ERROR(StartDataStreams(hello));
  return Emit(0, wire::ManifestRequest{1, ""});
}

Status Node::Refuse(const std::shared_ptr<Peer>& peer, wire::ErrorCode code,
                    const std::string& why) {
  peer->conn->Send(state_.epoch, 0, wire::Error{code, why}).IgnoreError();
  Flush(peer).IgnoreError();  // Drop lets this send finish (kCloseLingerNs)
  return FailedPrecondition(why);
}

Status Node::NewSessionId() {
  std::array<std::byte, 8> sid{};
  RETURN_IF_ERROR(rng_->Fill(sid));
  std::memcpy(&session_id_, sid.data(), sid.size());
  session_id_ |= 1;  // never 0
  return Status::Ok();
}

Status Node::OnPrimaryFrame(const wire::Frame& frame) {
  return std::visit(
      [&](const auto& m) -> Status {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, wire::ManifestEntries>) {
          if (m.request_id >= kVerifyRequestIdBase) return OnVerifyEntries(m);
          if (session_ != Session::kManifest)
            return InvalidArgument("MANIFEST_ENTRIES outside a resync");
          for (const auto& e : m.entries) RETURN_IF_ERROR(sender_->AddManifestEntry(e));
          if (m.flags & wire::kManifestLast) {
            ASSIGN_OR_RETURN(pending_blocks_, sender_->RequestResyncBlocks());
            if (pending_blocks_ == 0) return ResyncWhenStreamsOpen();
            session_ = Session::kBlocks;
          }
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, wire::BlocksReply>) {
          if (session_ != Session::kBlocks) return InvalidArgument("BLOCKS_REPLY outside a resync");
          ASSIGN_OR_RETURN(bool last, sender_->AddBlocks(m));
          if (last && --pending_blocks_ == 0) return ResyncWhenStreamsOpen();
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, wire::Ack>) {
          RETURN_IF_ERROR(sender_->OnAck(m));
          if (m.durable) backoff_ms_ = kBackoffMinMs;  // the standby made progress
          return session_ == Session::kLive ? PumpSender() : Status::Ok();
        } else if constexpr (std::is_same_v<T, wire::Nack>) {
          Log(Level::kError, "batch_refused").kv("seq", m.seq).kv("reason", m.message);
          return Unavailable("standby refused batch " + std::to_string(m.seq) + ": " + m.message);
        } else if constexpr (std::is_same_v<T, wire::Pong> || std::is_same_v<T, wire::Ping>) {
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, wire::DemoteRequest>) {
          Drive(At(NowNs(), failover::in::DemoteRequested{m.reason}));
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
Status Node::ResyncWhenStreamsOpen() {
  static constexpr int64_t kStreamWaitNs = 2'000'000'000;
  const int64_t now = NowNs();
  if (resync_waiting_since_ns_ == 0) resync_waiting_since_ns_ = now;
  bool settled = std::all_of(data_out_.begin(), data_out_.end(),
                             [](const auto& ds) { return ds->ready() || !ds->failed().ok(); });
  if (!settled && now - resync_waiting_since_ns_ < kStreamWaitNs) {
    session_ = Session::kBlocks;  // Tick calls again
    return Status::Ok();
  }
  resync_waiting_since_ns_ = 0;
  return FinishResync();
}

Status Node::FinishResync() {
  RETURN_IF_ERROR(sender_->Resync(journal_.get()));
  session_ = Session::kLive;
  // Nothing differed, so nothing can be refused: the session is healthy.
  if (sender_->unacked_batches() == 0) backoff_ms_ = kBackoffMinMs;
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

Status Node::OnStandbyFrame(const wire::Frame& frame) {
  if (const auto* ping = std::get_if<wire::Ping>(&frame.message)) {
    return Emit(0, wire::Pong{ping->token, ping->send_ns});
  }
  if (const auto* lock = std::get_if<wire::Lock>(&frame.message)) {
    RETURN_IF_ERROR(OnLock(*lock));
    // Every lock record is answered: the primary's lease counts from what it hears.
    return Emit(0, wire::Pong{0, 0});
  }
  if (const auto* demoted = std::get_if<wire::Demoted>(&frame.message)) {
    Log(Level::kInfo, "peer_demoted")
        .kv("on_demote_ok", demoted->on_demote_ok)
        .kv("last_seq", demoted->last_seq);
    Drive(At(NowNs(), failover::in::PeerDemoted{demoted->reason, demoted->on_demote_ok}));
    return Status::Ok();
  }
  if (const auto* err = std::get_if<wire::Error>(&frame.message)) {
    return Unavailable("primary reported: " + err->message);
  }
  Status s = receiver_->OnMessage(frame.seq, frame.message);
  if (!s.ok()) {
    Emit(0, wire::Error{wire::ErrorCode::kProtocol, s.message().substr(0, wire::kErrorMessageMax)})
        .IgnoreError();
    return s;
  }
  if (std::holds_alternative<wire::Nack>(frame.message)) return Status::Ok();
  return Status::Ok();
}

// ---- failover ------------------------------------------------------------------------------

Node::~Node() {
  StopDetector();
  probe_.reset();
}

namespace {

uint64_t NowUnixMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

HookResult Node::RunLoggedHook(std::string_view name, const Command& command, std::string_view role,
                               uint64_t epoch, const std::string& reason) {
  HookEnv env{std::string(role), epoch, reason, cfg_.peer.name};
  auto r = RunHook(command, env, [this] {
    if (opts_.service != nullptr) opts_.service->Watchdog(NowNs());
  });
  HookResult result;
  if (!r.ok()) {
    metrics_.CountHook(HookKindFromName(name), false);
    result.output = r.status().ToString();
    Log(Level::kError, "hook")
        .kv("hook", name)
        .kv("result", "not started")
        .kv("error", r.status().ToString());
    return result;
  }
  result = std::move(r).value();
  metrics_.CountHook(HookKindFromName(name), result.ok());
  Log(result.ok() ? Level::kInfo : Level::kWarn, "hook")
      .kv("hook", name)
      .kv("result", result.Describe())
      .kv("ms", result.duration_ms)
      .kv("epoch", epoch)
      .kv("reason", reason)
      .kv("output_bytes", static_cast<uint64_t>(result.output.size() + result.output_dropped));
  // What it printed, a line per log line (at most kHookLogLines, each cut at 512 bytes).
  size_t at = 0;
  for (int n = 0; n < kHookLogLines && at < result.output.size(); ++n) {
    size_t nl = result.output.find('\n', at);
    std::string line = result.output.substr(at, nl == std::string::npos ? nl : nl - at);
    at = nl == std::string::npos ? result.output.size() : nl + 1;
    Log(Level::kInfo, "hook_output").kv("hook", name).kv("line", FirstLine(line, 512));
  }
  return result;
}

void Node::WriteLockFile(const lockwin::LockRecord& r, std::string_view source) {
  // For an operator to read (DESIGN §3); not a source of truth, so no fsync.
  std::string text = fmt::format(
      "# hasync lock record ({}), written by hasync\nepoch={}\nnode_id={}\nchange_seq={}\n"
      "beat={}\nprobe_ok={}\nprobe_latency_us={}\nprobe_token={}\nmonotonic_ns={}\n"
      "last_change_path={}\nlast_change_size={}\nlast_change_xxh3={:016x}\n",
      source, r.epoch, r.node_id, r.change_seq, r.beat, r.probe_ok ? 1 : 0, r.probe_latency_us,
      FirstLine(r.probe_token, lockwin::kProbeTokenMax), r.monotonic_ns,
      FirstLine(r.last_change.path, lockwin::kLastChangePathMax), r.last_change.size_bytes,
      r.last_change.xxh3);
  std::string tmp = cfg_.sync.state_dir + "/.lock.tmp";
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return;
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) return;
  fd.reset();
  rename(tmp.c_str(), (cfg_.sync.state_dir + "/lock").c_str());
}

lockwin::LockRecord Node::MakeLockRecord(int64_t now, bool tick) {
  // The beat advances only on a tick of this loop (this runs on it) and while the
  // scheduler probe's latest result is a pass no older than two intervals plus its
  // timeout. A record sent with a batch carries the batch's progress, not a new beat.
  lockwin::LockRecord r;
  r.epoch = state_.epoch;
  r.node_id = state_.node_id;
  r.change_seq = sender_ ? sender_->last_seq() : 0;
  r.last_change = last_change_;
  bool healthy = true;
  if (probe_) {
    Probe::Result p = probe_->Latest();
    int64_t fresh_ns = (2 * cfg_.probe.interval_ms + cfg_.probe.timeout_ms) * 1'000'000;
    healthy = p.ran && p.ok && now - p.finished_ns <= fresh_ns;
    r.probe_ok = p.ok;
    r.probe_latency_us = p.latency_us;
    r.probe_token = p.token;
  } else {
    r.probe_ok = true;
  }
  if (healthy && tick) ++beat_;
  r.beat = beat_;
  r.monotonic_ns = now;
  return r;
}

void Node::Beat(int64_t now) {
  Status s = SendBeat(now);
  if (!s.ok() && active_) Drop(active_, s);
}

Status Node::SendBeat(int64_t now) {
  lockwin::LockRecord r = MakeLockRecord(now, true);
  auto bytes = lockwin::EncodeLockRecord(r);
  if (!bytes.ok()) {
    Log(Level::kError, "lock_record").kv("error", bytes.status().ToString());
    return Status::Ok();
  }
  WriteLockFile(r, "made here");
  if (!active_ || active_->dead || !active_->conn->open()) return Status::Ok();
  metrics_.lock_records_sent.fetch_add(1, std::memory_order_relaxed);
  RETURN_IF_ERROR(Emit(0, wire::Lock{std::move(bytes).value()}));
  return Flush(active_);
}

Status Node::OnLock(const wire::Lock& lock) {
  // A record that does not decode is a protocol error (it came through the session's
  // authentication, so it is a bug or a hostile primary): the session ends.
  ASSIGN_OR_RETURN(lockwin::LockRecord r, lockwin::DecodeLockRecord(lock.record));
  ASSIGN_OR_RETURN(uint64_t fp, lockwin::FingerprintEncodedLockRecord(lock.record));
  const int64_t now = NowNs();
  detector_->Push(fp, now);
  metrics_.lock_records_received.fetch_add(1, std::memory_order_relaxed);
  // A record comes with every batch as well as every beat: the operator's copy is
  // rewritten at most twice a beat, not on the receive path of every batch. (Once a beat
  // exactly would skip every other beat record, whose arrivals jitter around one beat
  // apart, and leave the file up to two beats old.)
  if (now - lock_file_written_ns_ >= cfg_.failover.beat_ms * 1'000'000 / 2) {
    lock_file_written_ns_ = now;
    WriteLockFile(r, "received from " + cfg_.peer.name);
  }
  return Status::Ok();
}

void Node::StartDetector() {
  detector_thread_ = std::thread([this] {
    std::unique_lock lock(detector_mu_);
    while (!detector_stop_) {
      int64_t now = NowNs();
      detector_->Step(now);
      detector_snapshot_ = detector_->Snapshot(now);
      // Wake when the verdict can next change, at least every beat (for the history).
      int64_t next = std::min(detector_->NextChangeNs(now), now + detector_->beat_interval_ns());
      detector_cv_.wait_for(lock,
                            std::chrono::nanoseconds(std::max<int64_t>(next - now, 1'000'000)),
                            [&] { return detector_stop_; });
    }
  });
}

void Node::StopDetector() {
  if (!detector_thread_.joinable()) return;
  {
    std::lock_guard lock(detector_mu_);
    detector_stop_ = true;
  }
  detector_cv_.notify_all();
  detector_thread_.join();
}

bool Node::CaughtUp() const {
  // Silence or sameness means something only once this node has read everything the
  // primary sent: a standby busy applying reads its socket late, and the records waiting
  // there would say the primary is fine.
  if (!active_ || active_->dead) return true;
  if (active_->recv_held) return false;
  int unread = 0;
  if (ioctl(active_->fd.get(), FIONREAD, &unread) == 0 && unread > 0) return false;
  for (const auto& ds : data_in_) {
    if (ds->Front() != nullptr) return false;
  }
  return true;
}

void Node::RecordHistory(const NodeState& s, const std::string& reason) {
  if (s.role != state_.role) metrics_.role_changes.fetch_add(1, std::memory_order_relaxed);
  // After the role itself is persisted; a history that cannot be written costs the
  // operator a line of `hasync history`, not the role change.
  Status st = AppendHistory(cfg_.sync.state_dir,
                            {static_cast<int64_t>(NowUnixMs()), s.role, s.epoch, reason});
  if (!st.ok()) Log(Level::kWarn, "history_not_written").kv("error", st.ToString());
}

failover::Input Node::At(int64_t now, decltype(failover::Input::event) event) const {
  return failover::Input{now, NowUnixMs(), std::move(event)};
}

failover::Observation Node::Observe(int64_t now) {
  failover::Observation o;
  const bool connected = active_ && !active_->dead;
  o.session_open = connected;
  if (state_.role == NodeRole::kPrimary) {
    o.session_live = session_ == Session::kLive;
    o.acked_seq = sender_ ? sender_->acked_seq() : 0;
    o.drained = o.session_live && journal_ && journal_->empty() && sender_ &&
                !sender_->has_open_batch() && sender_->unacked_batches() == 0 && watcher_ &&
                watcher_->ready() == 0 && !watcher_->NextDeadlineNs();
    return o;
  }
  o.verdict = detector_ ? detector_->Judge(now) : lockwin::Verdict::kAlive;
  // Unread bytes are looked for only when they could change a decision.
  o.caught_up = o.verdict == lockwin::Verdict::kAlive || CaughtUp();
  o.holds_copy =
      !receiver_ || receiver_->resyncs_completed() > 0 || receiver_->last_applied_seq() > 0;
  o.rejoining = quarantine_.has_value() || state_.handed_over;
  o.last_applied_seq = receiver_ ? receiver_->last_applied_seq() : state_.last_applied_seq;
  return o;
}

void Node::DriveTick(int64_t now) {
  if (auto end = Drive(At(now, failover::in::Tick{Observe(now)}))) {
    if (active_ && !active_->dead) Drop(active_, Unavailable(*end));
  }
}

std::optional<std::string> Node::Drive(const failover::Input& input) {
  namespace act = failover::act;
  std::optional<std::string> end;
  std::vector<failover::Action> actions;
  std::deque<failover::Input> inputs{input};
  for (size_t steps = 0; !inputs.empty(); ++steps) {
    // Each result feeds one step; a chain is a handful long (hook → persist → hook).
    HASYNC_ASSERT(steps < 64);
    actions.clear();
    fo_->Step(inputs.front(), &actions);
    inputs.pop_front();
    for (auto& a : actions) {
      std::visit(
          [&](auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, act::RunHook>) {
              const Command* command = nullptr;
              switch (x.hook) {
                case failover::Hook::kPromoteGuard:
                  command = &cfg_.hooks.promote_guard;
                  break;
                case failover::Hook::kFence:
                  command = &cfg_.hooks.fence;
                  break;
                case failover::Hook::kQuorumCheck:
                  command = &cfg_.hooks.quorum_check;
                  break;
                case failover::Hook::kOnPromote:
                  command = &cfg_.hooks.on_promote;
                  break;
                case failover::Hook::kOnDemote:
                  command = &cfg_.hooks.on_demote;
                  break;
              }
              HookResult r =
                  RunLoggedHook(failover::HookName(x.hook), *command, x.role, x.epoch, x.reason);
              failover::in::HookDone done{x.hook,
                                          r.ok()        ? failover::HookOutcome::kOk
                                          : r.timed_out ? failover::HookOutcome::kTimedOut
                                                        : failover::HookOutcome::kFailed,
                                          r.Describe(), std::nullopt};
              // A guard can take seconds, during which this loop read nothing: whether
              // the primary's bytes wait in the socket decides if the promotion goes on.
              if (x.hook == failover::Hook::kQuorumCheck ||
                  x.hook == failover::Hook::kPromoteGuard) {
                done.seen = Observe(NowNs());
              }
              inputs.push_back(At(NowNs(), std::move(done)));
            } else if constexpr (std::is_same_v<T, act::Persist>) {
              Status saved = SaveNodeState(cfg_.sync.state_dir, x.state);
              if (saved.ok() && !x.history.empty()) RecordHistory(x.state, x.history);
              if (!saved.ok()) persist_error_ = saved;
              inputs.push_back(At(NowNs(), failover::in::Persisted{saved.ok(), saved.ToString()}));
            } else if constexpr (std::is_same_v<T, act::SendDemoteRequest>) {
              if (!active_ || active_->dead) return;
              Status s = Emit(0, wire::DemoteRequest{x.reason});
              if (s.ok()) s = Flush(active_);
              if (!s.ok()) Drop(active_, s);
            } else if constexpr (std::is_same_v<T, act::SendDemoted>) {
              if (!active_ || active_->dead || !active_->conn->open()) return;
              Emit(0, wire::Demoted{x.reason, x.on_demote_ok, sender_ ? sender_->last_seq() : 0})
                  .IgnoreError();
              FlushAll(active_, 2'000'000'000).IgnoreError();
            } else if constexpr (std::is_same_v<T, act::RefuseSession>) {
              hello_refusal_ = std::move(x);
            } else if constexpr (std::is_same_v<T, act::EndSession>) {
              end = std::move(x.why);
            } else if constexpr (std::is_same_v<T, act::Restart>) {
              // Run() returns; RunNode starts this node again in the new role.
              next_state_ = x.state;
            } else if constexpr (std::is_same_v<T, act::SwitchoverReply>) {
              switchover_reply_ = std::move(x);
            } else if constexpr (std::is_same_v<T, act::Note>) {
              const Level level = x.level >= 2   ? Level::kError
                                  : x.level == 1 ? Level::kWarn
                                                 : Level::kInfo;
              auto line = Log(level, x.event);
              for (const auto& [k, v] : x.fields) line.kv(k, v);
            } else if constexpr (std::is_same_v<T, act::Fatal>) {
              fatal_ = persist_error_.ok() ? Internal(x.why)
                                           : persist_error_.Annotate("persist the role change");
            }
          },
          a);
    }
  }
  // The persisted epoch, role and rejoin mark of the role this node runs in.
  const uint64_t applied = state_.last_applied_seq;
  state_ = fo_->state();
  state_.last_applied_seq = applied;
  return end;
}

// ---- hasync verify ------------------------------------------------------------------------

namespace {

// A verify run holds at most this many entries per side (each ~100 bytes), and logs at
// most this many differences one per line.
constexpr size_t kVerifyEntriesMax = 5'000'000;
constexpr size_t kVerifyLogLinesMax = 10'000;
// Before each round: wait (at most this long) until every change seen is acknowledged.
constexpr int64_t kVerifySettleNs = 10'000'000'000;
// A page of `verify-result`: at most this many differences or about this many bytes.
constexpr size_t kVerifyPageMax = 1'000;
constexpr size_t kVerifyPageBytes = 128 * 1024;

nlohmann::json DifferenceJson(const ManifestDifference& d) {
  return {{"path", d.path}, {"what", d.what}};
}

}  // namespace

std::string Node::StartVerify(int64_t timeout_ms, int rounds, bool repair) {
  using nlohmann::json;
  auto fail = [](const std::string& why) { return json{{"ok", false}, {"error", why}}.dump(); };
  if (state_.role != NodeRole::kPrimary) {
    return fail("this node is the standby: run `hasync verify` on the primary");
  }
  if (verify_ && verify_->phase != VerifyRun::Phase::kDone) {
    if (!verify_->background) {
      verify_->repair = verify_->repair || repair;
      return json{{"ok", true}, {"id", verify_->id}, {"attached", true}}.dump();
    }
    // A background pass gives way to the operator's run (its walk is cancelled).
    Log(Level::kInfo, "anti_entropy")
        .kv("phase", "cancelled")
        .kv("id", verify_->id)
        .kv("reason", "hasync verify");
    verify_.reset();
  }
  const int64_t now = NowNs();
  verify_ = std::make_unique<VerifyRun>();
  verify_->id = ++verify_count_;
  verify_->max_rounds = rounds;
  verify_->repair = repair;
  verify_->started_ns = verify_->phase_since_ns = now;
  verify_->deadline_ns = now + timeout_ms * 1'000'000;
  // Right after a start or a reconnect the session is still opening: the run waits for
  // it (within its timeout) instead of failing.
  if (session_ != Session::kLive) verify_->phase = VerifyRun::Phase::kAwaitSession;
  Log(Level::kInfo, "verify")
      .kv("phase", "begin")
      .kv("id", verify_->id)
      .kv("rounds", rounds)
      .kv("repair", repair);
  return json{{"ok", true}, {"id", verify_->id}}.dump();
}

void Node::StartAntiEntropyPass(int64_t now) {
  verify_ = std::make_unique<VerifyRun>();
  verify_->id = ++verify_count_;
  verify_->max_rounds = 2;  // a difference counts once it is the same in two rounds
  verify_->repair = cfg_.anti_entropy.repair;
  verify_->background = true;
  verify_->started_ns = verify_->phase_since_ns = now;
  verify_->deadline_ns = now + kAntiEntropyPassMaxNs;
  next_pass_ns_ = now + cfg_.anti_entropy.interval_ms * 1'000'000;
  Log(Level::kInfo, "anti_entropy")
      .kv("phase", "begin")
      .kv("id", verify_->id)
      .kv("cpu_percent", static_cast<uint64_t>(cfg_.anti_entropy.cpu_percent));
}

void Node::Repair(const std::vector<ManifestDifference>& diffs) {
  sender_->BeginRepair();
  std::vector<const ManifestDifference*> queued;
  for (const ManifestDifference& d : diffs) {
    Status s = sender_->Distrust(d.path, d.standby ? &*d.standby : nullptr);
    if (!s.ok()) {
      Log(Level::kWarn, "repair_skipped").kv("path", d.path).kv("reason", s.ToString());
      continue;
    }
    queued.push_back(&d);
  }
  // Queued after every model entry is corrected, so a directory removed on the
  // standby finds its children in the model and removes them first.
  for (const ManifestDifference* d : queued) {
    auto split = SplitWirePath(d->path, static_cast<uint32_t>(root_fds_.size()));
    if (!split.ok()) continue;  // Distrust checked it
    const bool dir = d->primary && d->primary->kind == wire::EntryKind::kDirectory;
    if (dir || split->second.empty()) {
      journal_->Rescan(split->first, split->second);
    } else {
      journal_->Upsert(split->first, split->second);
    }
    metrics_.divergences_repaired.fetch_add(1, std::memory_order_relaxed);
    ++verify_->repaired;
    Log(Level::kWarn, "repaired")
        .kv("id", verify_->id)
        .kv("path", d->path)
        .kv("what", d->what)
        .kv("by", verify_->background ? "anti_entropy" : "verify");
  }
}

void Node::FinishVerify(std::string outcome, std::string error) {
  VerifyRun& v = *verify_;
  metrics_.divergences_found.fetch_add(v.confirmed.size(), std::memory_order_relaxed);
  if (v.repair && sender_ && journal_ && (outcome == "differences" || outcome == "inconclusive")) {
    // What changed between the rounds is in flux: an operator's repair takes it too
    // (resending the primary's truth is harmless); a background pass only what stayed.
    std::vector<ManifestDifference> fix = v.confirmed;
    if (!v.background) fix.insert(fix.end(), v.unsettled.begin(), v.unsettled.end());
    Repair(fix);
  }
  if (v.background && outcome != "failed") {
    metrics_.antientropy_last_pass_unix_s.store(static_cast<int64_t>(::time(nullptr)),
                                                std::memory_order_relaxed);
  }
  if (!v.background) operator_verify_done_ns_ = NowNs();
  v.local.reset();
  v.standby.clear();
  v.standby.shrink_to_fit();
  v.outcome = std::move(outcome);
  v.error = std::move(error);
  v.phase = VerifyRun::Phase::kDone;
  v.seconds = static_cast<double>(NowNs() - v.started_ns) / 1e9;
  size_t logged = 0;
  for (const auto* list : {&v.confirmed, &v.unsettled}) {
    for (const auto& d : *list) {
      if (logged++ >= kVerifyLogLinesMax) break;
      Log(list == &v.confirmed ? Level::kError : Level::kWarn, "verify_difference")
          .kv("id", v.id)
          .kv("path", d.path)
          .kv("what", d.what)
          .kv("judged", list == &v.confirmed ? "stable" : "changing");
    }
  }
  Log(v.outcome == "identical" ? Level::kInfo : Level::kWarn,
      v.background ? "anti_entropy" : "verify")
      .kv("phase", "done")
      .kv("id", v.id)
      .kv("outcome", v.outcome)
      .kv("differences", static_cast<uint64_t>(v.confirmed.size()))
      .kv("changing", static_cast<uint64_t>(v.unsettled.size()))
      .kv("rounds", v.round)
      .kv("primary_entries", v.primary_entries)
      .kv("standby_entries", v.standby_entries)
      .kv("seconds", v.seconds)
      .kv("repaired", v.repaired)
      .kv("error", v.error);
}

void Node::StepVerify(int64_t now) {
  VerifyRun& v = *verify_;
  if (v.phase == VerifyRun::Phase::kAwaitSession) {
    if (session_ == Session::kLive && active_ && !active_->dead) {
      v.phase = VerifyRun::Phase::kSettle;
      v.phase_since_ns = now;
    } else if (now > v.deadline_ns) {
      FinishVerify("failed", "no live session with the standby within the timeout (session " +
                                 std::string(session_ == Session::kIdle ? "idle" : "opening") +
                                 "): nothing to compare with; see `hasync status`");
      return;
    } else {
      return;
    }
  }
  if (session_ != Session::kLive || !active_ || active_->dead) {
    FinishVerify("failed", "the session with the standby ended during the run; run it again");
    return;
  }
  if (now > v.deadline_ns) {
    FinishVerify("failed", fmt::format("not finished within the timeout (round {}, {})", v.round,
                                       v.phase == VerifyRun::Phase::kAwaitStandby
                                           ? "waiting for the standby's manifest"
                                           : "settling or hashing here"));
    return;
  }
  switch (v.phase) {
    case VerifyRun::Phase::kSettle: {
      // Compare what both sides hold once everything seen here is durable there; on a
      // spool that never rests, go ahead after kVerifySettleNs (the rounds sort it out).
      const bool settled = journal_->empty() && !sender_->has_open_batch() &&
                           sender_->unacked_batches() == 0 && watcher_ && watcher_->ready() == 0;
      if (!settled && now - v.phase_since_ns < kVerifySettleNs) return;
      ++v.round;
      v.request_id = kVerifyRequestIdBase + (v.id << 8) + static_cast<uint64_t>(v.round);
      if (v.background) v.request_id |= kBackgroundRequestFlag;
      v.standby.clear();
      Status s = Emit(0, wire::ManifestRequest{v.request_id, ""});
      if (s.ok()) s = Flush(active_);
      if (!s.ok()) {
        FinishVerify("failed", "could not ask the standby: " + s.ToString());
        return;
      }
      v.phase = VerifyRun::Phase::kAwaitStandby;
      v.phase_since_ns = now;
      return;
    }
    case VerifyRun::Phase::kAwaitSession:  // handled above
    case VerifyRun::Phase::kAwaitStandby:
      return;  // OnVerifyEntries moves on
    case VerifyRun::Phase::kLocal: {
      if (!v.local->done()) return;
      auto mine = v.local->Take();
      v.local.reset();
      if (!mine.ok()) {
        FinishVerify("failed", "manifest of this node: " + mine.status().ToString());
        return;
      }
      v.primary_entries = mine->size();
      v.standby_entries = v.standby.size();
      std::vector<ManifestDifference> now_diff =
          CompareManifests(std::move(mine).value(), std::move(v.standby));
      v.standby.clear();
      if (now_diff.empty()) {
        v.confirmed.clear();
        v.unsettled.clear();
        FinishVerify("identical", "");
        return;
      }
      // A difference counts once it is the same in two rounds in a row: neither side's
      // entry changed although everything seen in between was acknowledged.
      std::vector<ManifestDifference> confirmed, unsettled;
      if (v.round >= 2) {
        size_t k = 0;
        for (auto& d : now_diff) {
          while (k < v.previous.size() && v.previous[k].path < d.path) ++k;
          bool same = k < v.previous.size() && v.previous[k].Same(d);
          (same ? confirmed : unsettled).push_back(std::move(d));
        }
      } else {
        unsettled = std::move(now_diff);
      }
      if (!confirmed.empty() || v.round >= v.max_rounds) {
        v.confirmed = std::move(confirmed);
        v.unsettled = std::move(unsettled);
        FinishVerify(v.confirmed.empty() ? "inconclusive" : "differences", "");
        return;
      }
      v.previous = std::move(unsettled);
      v.phase = VerifyRun::Phase::kSettle;
      v.phase_since_ns = now;
      return;
    }
    case VerifyRun::Phase::kDone:
      return;
  }
}

Status Node::OnVerifyEntries(const wire::ManifestEntries& m) {
  if (!verify_ || verify_->phase != VerifyRun::Phase::kAwaitStandby ||
      m.request_id != verify_->request_id) {
    return Status::Ok();  // an earlier run's late answer
  }
  VerifyRun& v = *verify_;
  if (v.standby.size() + m.entries.size() > kVerifyEntriesMax) {
    FinishVerify("failed",
                 fmt::format("the standby lists more than {} entries", kVerifyEntriesMax));
    return Status::Ok();
  }
  for (const auto& e : m.entries) {
    // The same checks as the resync's: a wire path names one of our roots.
    auto split = SplitWirePath(e.path, static_cast<uint32_t>(root_fds_.size()));
    if (!split.ok()) return split.status().Annotate("verify manifest from the standby");
    v.standby.push_back(e);
  }
  if ((m.flags & wire::kManifestLast) == 0) return Status::Ok();
  std::vector<int> fds;
  for (const auto& fd : root_fds_) fds.push_back(fd.get());
  v.local = std::make_unique<ManifestJob>(
      fds, kVerifyEntriesMax, v.background ? static_cast<int>(cfg_.anti_entropy.cpu_percent) : 0);
  v.phase = VerifyRun::Phase::kLocal;
  v.phase_since_ns = NowNs();
  return Status::Ok();
}

std::string Node::VerifyResultJson(uint64_t id, size_t offset) {
  using nlohmann::json;
  if (!verify_ || verify_->id != id) {
    return json{{"ok", false}, {"error", "no verify run " + std::to_string(id) + " on this node"}}
        .dump();
  }
  const VerifyRun& v = *verify_;
  json j{{"ok", true}, {"id", v.id}, {"round", v.round}, {"max_rounds", v.max_rounds}};
  if (v.phase != VerifyRun::Phase::kDone) {
    static constexpr const char* kPhases[] = {"waiting for a live session with the standby",
                                              "settling", "waiting for the standby's manifest",
                                              "hashing this node's tree", "done"};
    j["state"] = "running";
    j["phase"] = kPhases[static_cast<int>(v.phase)];
    return j.dump();
  }
  j["state"] = "done";
  j["outcome"] = v.outcome;
  j["repaired"] = v.repaired;
  j["background"] = v.background;
  if (!v.error.empty()) j["error"] = v.error;
  j["seconds"] = v.seconds;
  j["primary_entries"] = v.primary_entries;
  j["standby_entries"] = v.standby_entries;
  j["differences_total"] = v.confirmed.size();
  j["changing_total"] = v.unsettled.size();
  // One page of the differences, then of the changing paths, from `offset` in the two
  // lists taken end to end.
  json diffs = json::array(), changing = json::array();
  size_t bytes = 0, n = 0;
  for (size_t i = offset; i < v.confirmed.size() + v.unsettled.size(); ++i) {
    if (n >= kVerifyPageMax || bytes >= kVerifyPageBytes) break;
    const ManifestDifference& d =
        i < v.confirmed.size() ? v.confirmed[i] : v.unsettled[i - v.confirmed.size()];
    (i < v.confirmed.size() ? diffs : changing).push_back(DifferenceJson(d));
    bytes += d.path.size() + d.what.size() + 32;
    ++n;
  }
  j["offset"] = offset;
  j["next_offset"] = offset + n;
  j["differences"] = diffs;
  j["changing"] = changing;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Standby: the primary's verify request; the manifest is built on a thread of its own
// and sent from the loop once complete (StepStandbyManifest).
Status Node::StartStandbyManifest(const wire::ManifestRequest& request) {
  if (!request.root.empty()) {
    return InvalidArgument("MANIFEST_REQUEST for a subtree is not supported by this version");
  }
  std::vector<int> fds;
  for (const auto& t : trees_) fds.push_back(t->root_fd());
  verify_job_.reset();  // a newer request replaces one in progress
  // An anti-entropy pass's request: the walk keeps to the background CPU budget.
  const bool background = (request.request_id & kBackgroundRequestFlag) != 0;
  verify_job_ = std::make_unique<ManifestJob>(
      fds, kVerifyEntriesMax, background ? static_cast<int>(cfg_.anti_entropy.cpu_percent) : 0);
  verify_job_request_ = request.request_id;
  verify_job_peer_ = active_.get();
  Log(Level::kInfo, "verify_manifest").kv("phase", "begin").kv("request", request.request_id);
  return Status::Ok();
}

void Node::StepStandbyManifest() {
  if (!verify_job_->done()) return;
  auto entries = verify_job_->Take();
  verify_job_.reset();
  if (!active_ || active_->dead || active_.get() != verify_job_peer_) return;  // asker gone
  if (!entries.ok()) {
    // The primary's run times out and says to look here.
    Log(Level::kError, "verify_manifest")
        .kv("phase", "failed")
        .kv("error", entries.status().ToString());
    return;
  }
  Log(Level::kInfo, "verify_manifest")
      .kv("phase", "sent")
      .kv("request", verify_job_request_)
      .kv("entries", static_cast<uint64_t>(entries->size()));
  Status s = EmitManifest(*this, verify_job_request_, *entries);
  if (s.ok()) s = Flush(active_);
  if (!s.ok()) Drop(active_, s);
}

// ---- control socket: status and switchover ----------------------------------------------

void Node::PostControlAccept() {
  Status s = loop_->Submit(
      [this](io_uring_sqe* sqe) {
        io_uring_prep_accept(sqe, control_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      },
      [this](int32_t res) {
        if (res >= 0) {
          HandleControl(UniqueFd(res));
        } else {
          Log(Level::kWarn, "control_accept_failed").kv("error", std::strerror(-res));
        }
        if (!next_state_.has_value()) PostControlAccept();
      });
  if (!s.ok()) fatal_ = s;
}

void Node::HandleControl(UniqueFd fd) {
  // Local, root-only and bounded (1 s per direction): handled on the loop.
  auto request = ReadControlRequest(fd.get());
  if (!request.ok()) {
    Log(Level::kWarn, "control_refused").kv("reason", request.status().ToString());
    return;
  }
  std::string reply;
  if (*request == "status") {
    reply = StatusJson();
  } else if (request->rfind("verify ", 0) == 0) {
    int64_t timeout_ms = 0;
    int rounds = 0;
    std::istringstream in(request->substr(7));
    std::string mode;
    in >> timeout_ms >> rounds >> mode;
    reply = StartVerify(std::clamp<int64_t>(timeout_ms, 1'000, 86'400'000),
                        std::clamp(rounds, 2, 10), mode == "repair");
  } else if (request->rfind("verify-result ", 0) == 0) {
    uint64_t id = 0;
    size_t offset = 0;
    std::istringstream in(request->substr(14));
    in >> id >> offset;
    reply = VerifyResultJson(id, offset);
  } else if (request->rfind("switchover ", 0) == 0) {
    int64_t timeout_ms = std::atoll(request->c_str() + 11);
    reply = StartSwitchover(std::clamp<int64_t>(timeout_ms, 1, 86'400'000));
  } else {
    reply = nlohmann::json{{"ok", false}, {"error", "unknown request"}}.dump();
  }
  WriteControlReply(fd.get(), reply + "\n").IgnoreError();
}

std::string Node::StatusJson() {
  using nlohmann::json;
  const int64_t now = NowNs();
  json j;
  j["ok"] = true;
  j["node"] = cfg_.node.name;
  j["node_id"] = state_.node_id;
  j["role"] = NodeRoleName(state_.role);
  j["epoch"] = state_.epoch;
  j["changing_role"] = next_state_.has_value();
  j["failover_phase"] = failover::PhaseName(fo_->phase());
  const bool connected = active_ && !active_->dead && active_->conn->open();
  json peer{{"name", cfg_.peer.name},
            {"address", cfg_.peer.address.ToString()},
            {"connected", connected}};
  if (connected) peer["epoch"] = active_->conn->peer_epoch();
  j["peer"] = peer;
  if (state_.role == NodeRole::kPrimary) {
    static constexpr const char* kSessionNames[] = {"idle",     "connecting", "handshake",
                                                    "manifest", "blocks",     "live"};
    j["session"] = kSessionNames[static_cast<int>(session_)];
    uint64_t sent = sender_ ? sender_->last_seq() : 0;
    uint64_t acked = sender_ ? sender_->acked_seq() : 0;
    j["last_sent_seq"] = sent;
    j["last_acked_seq"] = acked;
    j["lag"] = {{"changes_unacked", sent >= acked ? sent - acked : 0},
                {"batches_unacked", sender_ ? sender_->unacked_batches() : 0},
                {"journal_pending", journal_ ? journal_->size() : 0}};
    j["beat"] = beat_;
    j["ms_since_standby_heard"] = (now - fo_->last_heard_ns()) / 1'000'000;
    if (probe_) {
      Probe::Result p = probe_->Latest();
      j["probe"] = {{"ok", p.ok},
                    {"token", p.token},
                    {"age_ms", p.ran ? (now - p.finished_ns) / 1'000'000 : -1},
                    {"failure", p.failure}};
    }
    if (fo_->draining()) j["switchover"] = "draining";
  } else {
    j["last_acked_seq"] = receiver_ ? receiver_->last_applied_seq() : 0;
    j["in_resync"] = receiver_ && receiver_->in_resync();
    j["rejoining"] = quarantine_.has_value() || state_.handed_over;
    lockwin::DetectorSnapshot snap;
    {
      std::lock_guard lock(detector_mu_);
      snap = detector_snapshot_;
    }
    json history = json::array();
    for (const auto& run : snap.history) {
      history.push_back({{"fingerprint", fmt::format("{:016x}", run.fingerprint)},
                         {"first_age_ms", (now - run.first_arrival_ns) / 1'000'000},
                         {"last_age_ms", (now - run.last_arrival_ns) / 1'000'000},
                         {"records", run.arrivals}});
    }
    j["verdict"] = {
        {"now", lockwin::VerdictName(detector_ ? detector_->Judge(now) : lockwin::Verdict::kAlive)},
        {"window_ms", cfg_.failover.window_ms},
        {"unchanged_for_ms", snap.run_age_ns / 1'000'000},
        {"silent_for_ms", snap.silence_ns / 1'000'000},
        {"records", snap.pushed},
        {"history", history}};
    if (!fo_->last_refusal().empty()) j["not_promoting_because"] = fo_->last_refusal();
  }
  // Everything ever kept on this node (all epochs), bounded walk.
  j["quarantined_files"] = CountQuarantined(cfg_.sync.state_dir);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Node::StartSwitchover(int64_t timeout_ms) {
  using nlohmann::json;
  switchover_reply_.reset();
  Drive(At(NowNs(),
           failover::in::SwitchoverRequest{timeout_ms * 1'000'000, session_ == Session::kLive}));
  if (!switchover_reply_ || !switchover_reply_->ok) {
    const std::string why = switchover_reply_ ? switchover_reply_->error : "no answer";
    return json{{"ok", false}, {"error", why}}.dump();
  }
  return json{{"ok", true}, {"state", "draining"}, {"epoch", state_.epoch}}.dump();
}

// ---- data streams ------------------------------------------------------------------------

Status Node::StartDataStreams(const wire::Hello& peer_hello) {
  StopDataStreams();
  if (cfg_.transport.data_streams == 0) return Status::Ok();
  if ((peer_hello.capabilities & wire::kCapDataStreams) == 0) {
    Log(Level::kInfo, "data_streams_off").kv("reason", "the standby does not offer them");
    return Status::Ok();
  }
  data_peer_node_id_ = peer_hello.node_id;
  for (uint32_t i = 1; i <= cfg_.transport.data_streams; ++i) {
    ASSIGN_OR_RETURN(auto ds, MakeDataStream(static_cast<uint16_t>(i)));
    data_out_.push_back(std::move(ds));
  }
  data_retry_at_ns_.assign(data_out_.size(), 0);
  data_retry_backoff_ns_.assign(data_out_.size(), kDataRetryMinNs);
  Log(Level::kInfo, "data_streams_started")
      .kv("count", static_cast<uint64_t>(data_out_.size()))
      .kv("min_file_bytes", kDataStreamMinBytes);
  return Status::Ok();
}

Result<std::unique_ptr<DataStreamOut>> Node::MakeDataStream(uint16_t index) {
  DataStreamOut::Options o;
  o.addr = peer_addr_;
  o.addr_len = peer_addr_len_;
  auto key = std::as_bytes(key_.bytes());
  o.psk.assign(key.begin(), key.end());
  o.mode = ChannelModeFor();
  o.hello = MyHello();
  o.hello.stream_kind = wire::StreamKind::kData;
  o.hello.stream_index = index;
  o.epoch = state_.epoch;
  o.expected_node_id = data_peer_node_id_;
  return DataStreamOut::Start(std::move(o));
}

void Node::CheckDataStreams(int64_t now) {
  for (size_t k = 0; k < data_out_.size(); ++k) {
    DataStreamOut& ds = *data_out_[k];
    if (data_retry_at_ns_[k] != 0) {
      if (now < data_retry_at_ns_[k]) continue;
      auto fresh = MakeDataStream(ds.index());
      if (!fresh.ok()) {
        Drop(active_, fresh.status());
        return;
      }
      data_out_[k]->Stop();
      data_out_[k] = std::move(fresh).value();
      data_retry_at_ns_[k] = 0;
      continue;
    }
    Status f = ds.failed();
    if (f.ok()) continue;
    if (ds.ready()) {
      Drop(active_, f);  // content queued on it is lost: the session resyncs
      return;
    }
    // It never opened, so nothing was routed to it (PickDataStream takes open streams
    // only): the session goes on without it, and it is tried again. The standby may be
    // busy for a while (hashing its tree for the manifest, a large fsync).
    data_retry_at_ns_[k] = now + data_retry_backoff_ns_[k];
    Log(Level::kWarn, "data_stream_retry")
        .kv("index", static_cast<uint64_t>(ds.index()))
        .kv("in_ms", data_retry_backoff_ns_[k] / 1'000'000)
        .kv("reason", f.ToString());
    data_retry_backoff_ns_[k] = std::min(data_retry_backoff_ns_[k] * 2, kDataRetryMaxNs);
  }
}

void Node::StopDataStreams() {
  route_seq_ = 0;
  route_to_ = nullptr;
  uint64_t bytes = 0;
  uint64_t spliced = 0;
  size_t count = data_out_.size() + data_in_.size();
  for (auto& ds : data_out_) {
    ds->Stop();
    bytes += ds->bytes_sent();
    spliced += ds->bytes_spliced();
  }
  for (auto& ds : data_in_) {
    ds->Stop();
    bytes += ds->bytes_received();
  }
  data_out_.clear();
  data_in_.clear();
  data_retry_at_ns_.clear();
  data_retry_backoff_ns_.clear();
  if (count > 0) {
    Log(Level::kInfo, "data_streams_closed")
        .kv("count", static_cast<uint64_t>(count))
        .kv("bytes", bytes)
        .kv("spliced_bytes", spliced);
  }
}

DataStreamOut* Node::PickDataStream() {
  // The least loaded open one, first looking from the one after the last pick (round
  // robin on ties); null while none is open. An open stream stays open (or ends the
  // session), so a file routed to one can keep using the open set.
  DataStreamOut* best = nullptr;
  size_t best_bytes = 0;
  for (size_t k = 0; k < data_out_.size(); ++k) {
    DataStreamOut* ds = data_out_[(next_stream_ + k) % data_out_.size()].get();
    if (!ds->ready() || !ds->failed().ok()) continue;
    size_t b = ds->queued_bytes();
    if (best == nullptr || b < best_bytes) {
      best = ds;
      best_bytes = b;
    }
  }
  next_stream_ = (next_stream_ + 1) % data_out_.size();
  return best;
}

Status Node::WaitSpliced() {
  // The stream splices from the file while the control stream's outbox keeps moving
  // (the standby may need this file's FILE_BEGIN before it reads the stream on).
  std::shared_ptr<Peer> control = active_;
  int64_t deadline = NowNs() + kDataStreamStallMs * 1'000'000;
  uint64_t seen = route_to_->bytes_sent();
  int64_t progress_ns = NowNs();
  while (!route_to_->drained()) {
    RETURN_IF_ERROR(route_to_->failed());
    if (control->dead) return Unavailable("session closed while sending");
    StartSend(control);
    if (route_to_->bytes_sent() != seen) {
      seen = route_to_->bytes_sent();
      progress_ns = NowNs();
      deadline = progress_ns + kDataStreamStallMs * 1'000'000;
    } else if (Status lease = LeaseWhileSending(std::max(progress_ns, control->last_tx_ns));
               !lease.ok()) {
      return lease;
    } else if (NowNs() > deadline) {
      return Unavailable(fmt::format("data stream {} accepted nothing for {} s", route_to_->index(),
                                     kDataStreamStallMs / 1000));
    }
    if (control->sending) {
      control->waiting = true;
      loop_->WaitFor(control->send_token, 1'000'000).IgnoreError();  // a timeout is fine
      control->waiting = false;
      RETURN_IF_ERROR(control->send_failed);
    } else {
      route_to_->WaitDrained(2);
    }
  }
  return route_to_->failed();
}

Status Node::EnqueueData(DataFrame& frame) {
  const int64_t deadline = NowNs() + kDataStreamStallMs * 1'000'000;
  std::shared_ptr<Peer> control = active_;
  uint64_t seen = route_to_->bytes_sent();
  int64_t progress_ns = NowNs();
  for (;;) {
    if (route_to_->TryEnqueue(frame)) return Status::Ok();
    RETURN_IF_ERROR(route_to_->failed());
    // Full. The standby may be holding this stream until it reads the FILE_BEGIN still
    // in the control stream's outbox: keep that one moving while waiting.
    StartSend(control);
    if (route_to_->bytes_sent() != seen) {
      seen = route_to_->bytes_sent();
      progress_ns = NowNs();
    }
    RETURN_IF_ERROR(LeaseWhileSending(std::max(progress_ns, control->last_tx_ns)));
    if (NowNs() > deadline) {
      return Unavailable(fmt::format("data stream {} accepted nothing for {} s", route_to_->index(),
                                     kDataStreamStallMs / 1000));
    }
    if (control->sending) {
      control->waiting = true;
      loop_->WaitFor(control->send_token, 2'000'000).IgnoreError();  // a timeout is fine
      control->waiting = false;
      RETURN_IF_ERROR(control->send_failed);
      if (control->dead) return Unavailable("session closed while sending");
    } else {
      route_to_->WaitForRoom(frame.bytes, 2);
    }
  }
}

Status Node::AdoptDataStream(const std::shared_ptr<Peer>& peer, std::optional<wire::Frame> first) {
  const wire::Hello& hello = peer->conn->peer_hello();
  std::string refuse;
  if (!active_ || active_->dead || !active_->conn->open()) {
    refuse = "data stream without a control stream";
  } else if (active_->conn->peer_hello().session_id != hello.session_id) {
    refuse = "data stream of another session";
  } else if (hello.stream_index == 0 || hello.stream_index > wire::kDataStreamsMax) {
    refuse = "data stream index " + std::to_string(hello.stream_index) + " out of range";
  } else if (auto old =
                 std::find_if(data_in_.begin(), data_in_.end(),
                              [&](const auto& d) { return d->index() == hello.stream_index; });
             old != data_in_.end()) {
    if ((*old)->unused()) {
      // The primary gave up on setting that one up and dialled again.
      (*old)->Stop();
      data_in_.erase(old);
    } else {
      refuse = "second data stream with index " + std::to_string(hello.stream_index);
    }
  }
  if (!refuse.empty()) return Refuse(peer, wire::ErrorCode::kProtocol, refuse);
  // Our HELLO may still be on its way out: let it go before the thread takes over.
  RETURN_IF_ERROR(FlushAll(peer, kHandshakeTimeoutNs));
  UniqueFd fd(fcntl(peer->fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "dup a data stream's socket");
  peer->handed_off = true;
  peer->dead = true;  // to the event loop; the socket lives on in the thread
  std::erase(pending_, peer);
  uint16_t index = hello.stream_index;  // `hello` lives in the connection moved below
  data_in_.push_back(std::make_unique<DataStreamIn>(std::move(fd), std::move(peer->conn),
                                                    std::move(first), index, state_.epoch,
                                                    data_event_fd_.get()));
  Log(Level::kInfo, "data_stream_open").kv("index", static_cast<uint64_t>(index));
  return Status::Ok();
}

void Node::PostDataEvent() {
  Status s = loop_->Submit(
      [this](io_uring_sqe* sqe) {
        io_uring_prep_read(sqe, data_event_fd_.get(), &data_event_count_, sizeof data_event_count_,
                           0);
      },
      [this](int32_t res) {
        if (res < 0 && res != -EINTR && res != -EAGAIN) {
          fatal_ = ErrnoStatus(-res, "read the data streams' eventfd");
          return;
        }
        PumpData();
        PostDataEvent();
      });
  if (!s.ok()) fatal_ = s;
}

void Node::PumpData() {
  // Data frames can let the control stream go on (a waiting FILE_END completes), and the
  // control stream can let data frames go on (the FILE_BEGIN they waited for): alternate
  // until neither moves. Bounded per call; Tick calls again.
  for (int round = 0; round < 64; ++round) {
    std::shared_ptr<Peer> control = active_;
    if (!control || control->dead) return;
    bool progressed = false;
    std::erase_if(data_in_, [](const std::unique_ptr<DataStreamIn>& ds) {
      if (ds->failed().ok() || !ds->unused()) return false;
      // Closed before anything came on it: the primary gave up on setting it up.
      Log(Level::kInfo, "data_stream_unused_closed")
          .kv("index", static_cast<uint64_t>(ds->index()))
          .kv("reason", ds->failed().ToString());
      ds->Stop();
      return true;
    });
    for (auto& ds : data_in_) {
      if (Status f = ds->failed(); !f.ok()) {
        Drop(control, f);  // content is lost with it: the session resyncs
        return;
      }
      for (int i = 0; i < 4096; ++i) {
        DataFrame* f = ds->Front();
        if (f == nullptr) break;
        auto verdict = receiver_->OnData(f->seq, f->message);
        if (!verdict.ok()) {
          Refuse(control, wire::ErrorCode::kProtocol,
                 verdict.status().message().substr(0, wire::kErrorMessageMax))
              .IgnoreError();
          Drop(control, verdict.status());
          return;
        }
        if (*verdict == Receiver::DataVerdict::kNotYet) break;  // its FILE_BEGIN is behind
        ds->PopFront();
        progressed = true;
      }
    }
    if (progressed) control->last_rx_ns = NowNs();
    if (!control->recv_held || receiver_->waiting_for_data()) return;
    ResumeControl();
  }
}

void Node::ResumeControl() {
  std::shared_ptr<Peer> control = active_;
  control->recv_held = false;
  Status s = HandleFrames(control);
  if (s.ok() && !control->dead) s = Flush(control);
  if (!s.ok()) {
    Drop(control, s);
    return;
  }
  if (!control->dead) ReceiveOrHold(control);
}

void Node::ReceiveOrHold(const std::shared_ptr<Peer>& peer) {
  if (ControlHeld(peer)) {
    peer->recv_held = true;  // the bytes after the waiting FILE_END stay unread
  } else {
    PostRecv(peer);
  }
}

// ---- sending: io_uring SEND, one in flight per peer -------------------------------------

void Node::StartSend(const std::shared_ptr<Peer>& peer) {
  if (peer->sending || peer->dead || !peer->send_failed.ok() || !peer->conn) return;
  if (peer->tx_sent == peer->tx.size()) {
    if (peer->conn->outgoing_size() == 0) return;
    peer->conn->TakeOutgoing(peer->tx);
    peer->tx_sent = 0;
    peer->last_tx_ns = NowNs();
  }
  std::span<const std::byte> rest(peer->tx.data() + peer->tx_sent, peer->tx.size() - peer->tx_sent);
  Status s = loop_->Submit(
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
  s = loop_->Flush();
  if (!s.ok()) peer->send_failed = s;
}

void Node::OnSent(const std::shared_ptr<Peer>& peer, int32_t res) {
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

Status Node::WaitSend(const std::shared_ptr<Peer>& peer, int64_t timeout_ns) {
  const int64_t deadline = NowNs() + timeout_ns;
  Status s;
  for (;;) {
    // In slices, so the lease is judged while the send waits.
    peer->waiting = true;
    s = loop_->WaitFor(peer->send_token, std::min(deadline - NowNs(), kSendWaitSliceNs));
    peer->waiting = false;
    if (s.ok() || NowNs() >= deadline) break;
    RETURN_IF_ERROR(LeaseWhileSending(peer->last_tx_ns));
  }
  if (!s.ok())
    return Unavailable("peer accepted no data for " + std::to_string(timeout_ns / 1'000'000'000) +
                       " s");
  if (!peer->send_failed.ok()) return peer->send_failed;
  if (peer->dead) return Unavailable("session closed while sending");
  return Status::Ok();
}

Status Node::LeaseWhileSending(int64_t progress_ns) {
  if (state_.role != NodeRole::kPrimary) return Status::Ok();
  if (next_state_.has_value()) return Unavailable("changing role while sending");
  const int64_t now = NowNs();
  // Bytes the standby took count as hearing it: its own frames wait, unread, behind
  // this send (the loop runs no other callback meanwhile).
  if (now - std::max(fo_->last_heard_ns(), progress_ns) < cfg_.failover.lease_ms * 1'000'000) {
    return Status::Ok();
  }
  Drive(At(now, failover::in::SendBlocked{progress_ns}));
  if (next_state_.has_value()) {
    return Unavailable(
        "demoted while sending: the standby took nothing and said nothing "
        "for lease_ms and quorum_check failed");
  }
  return Status::Ok();
}

Status Node::Flush(const std::shared_ptr<Peer>& peer) {
  StartSend(peer);
  while (peer->send_failed.ok() && !peer->dead && peer->sending &&
         peer->queued() > kOutboxMaxBytes) {
    RETURN_IF_ERROR(WaitSend(peer, kSendStallTimeoutMs * 1'000'000));
  }
  return peer->send_failed;
}

Status Node::FlushAll(const std::shared_ptr<Peer>& peer, int64_t timeout_ns) {
  int64_t deadline = NowNs() + timeout_ns;
  StartSend(peer);
  while (peer->send_failed.ok() && !peer->dead && peer->sending) {
    int64_t left = deadline - NowNs();
    if (left <= 0) return Unavailable("peer did not take the last bytes in time");
    RETURN_IF_ERROR(WaitSend(peer, left));
  }
  return peer->send_failed;
}

void Node::Drop(const std::shared_ptr<Peer>& peer, const Status& why) {
  if (peer->dead) return;
  peer->dead = true;
  if (peer->sending) {
    // Let the send in flight (a refusal, the last ACK) reach the peer: end only the
    // receive now; OnSent closes the rest, or this timer does if the peer takes nothing.
    shutdown(peer->fd.get(), SHUT_RD);
    Status t = loop_->AddTimer(kCloseLingerNs, [peer] { shutdown(peer->fd.get(), SHUT_RDWR); });
    if (!t.ok()) shutdown(peer->fd.get(), SHUT_RDWR);
  } else {
    shutdown(peer->fd.get(), SHUT_RDWR);  // completes the receive in flight
  }
  bool was_active = peer == active_;
  if (peer->conn && !peer->session_opened && !peer->handed_off) {
    metrics_.handshake_failures.fetch_add(1, std::memory_order_relaxed);
    if (state_.role == NodeRole::kStandby && peer->conn->key_refused() && peer->from_peer_host) {
      // That host runs hasync and is alive: no promotion on silence while it keeps trying.
      Drive(At(NowNs(), failover::in::KeyRefused{}));
    }
  }
  Log(was_active ? Level::kWarn : Level::kInfo, "session_closed")
      .kv("peer", peer->addr.empty() ? std::string("inbound") : peer->addr)
      .kv("reason", why.ToString());
  if (!was_active) return;
  LogStats("session_closed");
  active_.reset();
  StopDataStreams();
  if (state_.role == NodeRole::kPrimary) {
    session_ = Session::kIdle;
    resync_waiting_since_ns_ = 0;
    next_connect_ns_ = NowNs() + backoff_ms_ * 1'000'000;
    backoff_ms_ = std::min(backoff_ms_ * 2, BackoffMaxMs());
  } else {
    receiver_->Reset();
    state_.last_applied_seq = receiver_->last_applied_seq();
  }
}

void Node::PublishMetrics(int64_t now) {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  Metrics& m = metrics_;
  m.role.store(static_cast<int64_t>(state_.role), kRelaxed);
  m.epoch.store(static_cast<int64_t>(state_.epoch), kRelaxed);
  m.changing_role.store(next_state_.has_value() ? 1 : 0, kRelaxed);
  const bool connected = active_ && !active_->dead && active_->conn && active_->conn->open() &&
                         active_->session_opened;
  m.peer_connected.store(connected ? 1 : 0, kRelaxed);
  m.verdict.store(detector_ ? static_cast<int64_t>(detector_->Judge(now)) : -1, kRelaxed);
  if (sender_) {
    const SenderStats& st = sender_->stats();
    mirrors_.files_sent.Update(m.files_sent, st.files_sent);
    mirrors_.bytes_sent.Update(m.bytes_sent, st.file_bytes_sent);
    const uint64_t sent = sender_->last_seq(), acked = sender_->acked_seq();
    m.unacked_changes.store(static_cast<int64_t>(sent >= acked ? sent - acked : 0), kRelaxed);
    m.unacked_batches.store(static_cast<int64_t>(sender_->unacked_batches()), kRelaxed);
  } else {
    m.unacked_changes.store(0, kRelaxed);
    m.unacked_batches.store(0, kRelaxed);
  }
  m.journal_pending.store(journal_ ? static_cast<int64_t>(journal_->size()) : 0, kRelaxed);
  if (journal_) mirrors_.journal_overflows.Update(m.overflow_rescans, journal_->stats().overflows);
  if (watcher_) {
    mirrors_.watch_overflows.Update(m.overflow_rescans, watcher_->stats().translator.overflows);
  }
  if (receiver_) {
    const ReceiverStats& st = receiver_->stats();
    mirrors_.files_applied.Update(m.files_applied, st.files_applied);
    mirrors_.bytes_applied.Update(m.bytes_applied, st.bytes_applied);
    mirrors_.batches_applied.Update(m.batches_applied, st.batches_acked);
  }
  if (probe_) {
    Probe::Result p = probe_->Latest();
    const size_t k = static_cast<size_t>(HookKind::kProbe);
    mirrors_.probe_runs.Update(m.hook_runs[k], p.runs);
    mirrors_.probe_failures.Update(m.hook_failures[k], p.failures);
  }
  // The quarantine is walked (bounded) every few seconds, not every tick.
  if (quarantine_counted_ns_ == 0 || now - quarantine_counted_ns_ >= kQuarantineCountNs) {
    quarantine_counted_ns_ = now;
    m.quarantined_files.store(
        static_cast<int64_t>(CountQuarantined(cfg_.sync.state_dir, kQuarantineCountMax)), kRelaxed);
  }
}

// Counters of the current session (the primary's sender, the standby's receiver). The
// integration tests read them from the log to count bytes on the wire.
void Node::LogStats(std::string_view why) const {
  if (sender_) {
    const SenderStats& st = sender_->stats();
    Log(Level::kInfo, "sender_stats")
        .kv("why", why)
        .kv("files", st.files_sent)
        .kv("bytes", st.file_bytes_sent)
        .kv("links", st.links_sent)
        .kv("deltas", st.deltas_sent)
        .kv("unchanged", st.unchanged_skipped)
        .kv("aborted", st.aborted_reads)
        .kv("removes_deferred", st.removes_deferred)
        .kv("names_rechecked", st.names_rechecked)
        .kv("event_inodes_rechecked", st.event_inodes_rechecked)
        .kv("links_split", st.links_split)
        .kv("batches", st.batches)
        .kv("acked_seq", sender_->acked_seq());
  }
  if (receiver_) {
    const ReceiverStats& st = receiver_->stats();
    Log(Level::kInfo, "receiver_stats")
        .kv("why", why)
        .kv("files", st.files_applied)
        .kv("bytes", st.bytes_applied)
        .kv("acked", st.batches_acked)
        .kv("nacked", st.batches_nacked)
        .kv("last_applied_seq", receiver_->last_applied_seq());
  }
}

Status RunNode(const Config& config, const RunOptions& options) {
  RunOptions opts = options;
  ServiceNotifier from_environment = ServiceNotifier::FromEnvironment();
  if (opts.service == nullptr) opts.service = &from_environment;
  if (opts.service->watchdog_interval_ns() > 0) {
    Log(Level::kInfo, "watchdog")
        .kv("interval_ms", opts.service->watchdog_interval_ns() / 1'000'000)
        .kv("ping_every_ms", opts.service->watchdog_interval_ns() / 2'000'000);
  }
  Metrics own_metrics;
  if (opts.metrics == nullptr) opts.metrics = &own_metrics;
  MetricsServer metrics_server(*opts.metrics);
  if (config.metrics.enabled) RETURN_IF_ERROR(metrics_server.Start(config.metrics.listen));
  UniqueFd listen_fd;
  for (;;) {
    {
      Node node(config, opts, std::move(listen_fd));
      RETURN_IF_ERROR(node.Init());
      Status s = node.Run();
      if (!s.ok() || !node.restart_requested()) return s;
      listen_fd = node.TakeListenFd();
    }
    // A role change was persisted: start again in the new role (the state file says
    // which). Every role change comes from a peer's frame, a verdict held for a window,
    // or a failed lease, so this does not spin.
    opts.initial_role.reset();
    if (opts.stop != nullptr && opts.stop->load()) return Status::Ok();
  }
}

}  // namespace hasync::engine
