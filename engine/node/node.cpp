#include "engine/node/node.h"

#include <liburing.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/unique_fd.h"
#include "engine/failover/controller.h"
#include "engine/journal/journal.h"
#include "engine/keyfile.h"
#include "engine/log.h"
#include "engine/net/connection.h"
#include "engine/net/data_stream.h"
#include "engine/net/rng.h"
#include "engine/node/arbiter_worker.h"
#include "engine/node/control_server.h"
#include "engine/node/failover_driver.h"
#include "engine/node/heap_trim.h"
#include "engine/node/node_report.h"
#include "engine/node/node_status.h"
#include "engine/node/now.h"
#include "engine/node/peer_link.h"
#include "engine/node/primary_role.h"
#include "engine/node/session_gate.h"
#include "engine/node/session_out.h"
#include "engine/node/standby_role.h"
#include "engine/node/startup.h"
#include "engine/node/stream_pool.h"
#include "engine/node/verify_runner.h"
#include "engine/sync/receiver.h"
#include "engine/sync/sender.h"
#include "engine/sync/verify.h"
#include "iouring/loop.h"

namespace hasync::engine {

namespace {

constexpr int64_t kTickNs = 20'000'000;  // watcher debounce, pumping, timers

wire::Role ToWire(NodeRole role) {
  return role == NodeRole::kPrimary ? wire::Role::kPrimary : wire::Role::kStandby;
}

}  // namespace

// One node's run, in one role: the wiring of the parts that do the work. It makes them
// in order (start-up, the link, the data streams, what goes out on the session, the
// verify runner, the control server, the role, the session gate, the failover
// controller), turns the loop's 20 ms tick into calls on them, and stops them. The parts
// (docs/ARCHITECTURE.md "The node's parts") call back into it through their Owner
// interfaces (or handlers); it owns them, the node state, the session's connection and
// everything they call.
class Node : private PeerLink::Owner,
             private StreamPool::Owner,
             private VerifyRunner::Owner,
             private FailoverDriver::Owner,
             private PrimaryRole::Owner {
 public:
  Node(const Config& cfg, const RunOptions& opts, UniqueFd listen_fd)
      : cfg_(cfg),
        opts_(opts),
        metrics_(*opts.metrics),
        publisher_(metrics_, cfg.sync.state_dir),
        listen_fd_(std::move(listen_fd)) {}
  ~Node();

  Status Init();
  Status Run();
  // After Run(): the node changed its role (persisted) and must be started again in it.
  bool restart_requested() const { return failover_.changing_role(); }
  // The listening socket, kept open across a role change (no gap for the peer to hit).
  UniqueFd TakeListenFd() { return link_->TakeListenFd(); }

 private:
  Status StartTransport();
  void ScheduleTick();
  void PostCommitEvent();
  void Tick();
  void StartConnect();

  // PeerLink::Owner.
  Result<std::unique_ptr<Connection>> NewConnection(wire::TlsRole role) override;
  bool ChangingRole() const override { return failover_.changing_role(); }
  void Dialled(const std::shared_ptr<Peer>& peer) override {
    active_ = peer;
    primary_->Dialled();
  }
  void DialFailed() override { primary_->DialFailed(); }
  void Received(const std::shared_ptr<Peer>& peer, size_t n) override { gate_->Received(peer, n); }
  void Dropped(const std::shared_ptr<Peer>& peer, const Status& why) override;
  // Also StreamPool::Owner's, FailoverDriver::Owner's and PrimaryRole::Owner's.
  void Fail(Status why) override { fatal_ = std::move(why); }

  // StreamPool::Owner.
  DataStreamOut::Options DataStreamOptions(uint16_t index) override;
  uint64_t epoch() const override { return state_.epoch; }

  // VerifyRunner::Owner.
  std::string_view SessionState() const override {
    return primary_ ? primary_->SessionState() : "idle";
  }
  bool Settled() const override { return primary_->Settled(); }
  Status SendToPeer(wire::Message message) override { return out_->Send(std::move(message)); }
  Status SendManifest(uint64_t request_id,
                      const std::vector<wire::ManifestEntry>& entries) override {
    RETURN_IF_ERROR(EmitManifest(*out_, request_id, entries));
    return out_->Flush();
  }
  const Peer* session_peer() const override { return active_.get(); }
  void EndSession(const Status& why) override { link_->Drop(active_, why); }
  std::vector<int> RootFds() const override {
    return primary_ ? primary_->RootFds() : standby_->RootFds();
  }
  Sender* sender() override { return primary_ ? primary_->sender() : nullptr; }
  Journal* journal() override { return primary_ ? primary_->journal() : nullptr; }

  // StreamPool::Owner's: tells the peer why (ERROR), returns the reason (SessionOut).
  Status Refuse(const std::shared_ptr<Peer>& peer, wire::ErrorCode code,
                const std::string& why) override {
    return out_->Refuse(peer, code, why);
  }
  Status NewSessionId();
  // The primary's redial backoff stops growing at a quarter of the window: a standby
  // that restarts (or comes back) hears the primary well within its window, instead of
  // judging it silent while the primary waits out a backoff longer than the window.
  int64_t BackoffMaxMs() const {
    return std::clamp<int64_t>(cfg_.failover.window_ms / 4, kBackoffMinMs, kBackoffMaxMs);
  }
  // The lease check while a send blocks the loop (FailoverDriver::LeaseWhileSending).
  Status LeaseWhileSending(int64_t progress_ns) override {
    return failover_.LeaseWhileSending(progress_ns);
  }
  // FailoverDriver::Owner.
  failover::Observation Observe(int64_t now) override;
  void SendDemoteRequest(wire::RoleChangeReason reason) override;
  void SendDemoted(wire::RoleChangeReason reason, bool on_demote_ok) override;
  bool ArbiterRenew(uint64_t epoch) override {
    if (opts_.arbiter == nullptr) return false;
    opts_.arbiter->Renew(epoch);
    return true;
  }
  bool ArbiterTryAcquire(uint64_t local_epoch) override {
    if (opts_.arbiter == nullptr) return false;
    opts_.arbiter->TryAcquire(local_epoch);
    return true;
  }
  bool ArbiterRelease(const std::string& why) override {
    if (opts_.arbiter == nullptr) return false;
    opts_.arbiter->Release(why);
    return true;
  }
  // Feeds the controller a tick; ends the session if it says so.
  void DriveTick(int64_t now);
  // Feeds one input; ends the session if the controller says so.
  void FeedAndEnd(int64_t now, FailoverDriver::Event event);
  // [arbiter] primary: its start takes (or keeps) the leader key before anything else.
  void AcquireAtStart();
  // The arbiter thread's eventfd: its answers go to the controller.
  void PostArbiterEvent();
  // [arbiter] primary: the self-fence deadline has come (checked before anything else).
  bool ArbiterFenceDue(int64_t now) const {
    return opts_.arbiter != nullptr && primary_ && !failover_.changing_role() &&
           now >= failover_.controller().arbiter_fence_at_ns();
  }
  // `hasync status` (engine/node/node_status.h).
  std::string StatusJson() const {
    return NodeStatusJson(NowNs(), {&cfg_, &state_, &failover_, active_.get(), primary_.get(),
                                    standby_.get(), opts_.arbiter});
  }
  // Standby: goes on with the control stream once a waiting FILE_END has its content.
  void ResumeControl() override { gate_->ResumeControl(); }
  wire::Hello MyHello() const;
  ChannelMode ChannelModeFor() const {
    return cfg_.transport.mode == TransportMode::kPlain ? ChannelMode::kPlain : ChannelMode::kTls;
  }
  // The session's counters, to the log (engine/node/node_report.h).
  void LogStats(std::string_view why) const {
    LogSessionStats(why, primary_ ? primary_->sender() : nullptr,
                    standby_ ? standby_->receiver() : nullptr);
  }
  // Copies the node's state and its components' statistics into metrics_ (every tick,
  // and before a component holding statistics is replaced or the node stops).
  void PublishMetrics(int64_t now) override;

  const Config& cfg_;
  RunOptions opts_;
  Metrics& metrics_;  // the process's (RunNode's): counters outlive role changes
  MetricsPublisher publisher_;
  NodeState state_;
  SyncKey key_;
  std::unique_ptr<Rng> rng_;
  std::unique_ptr<iouring::Loop> loop_;
  Status fatal_;
  uint64_t commit_event_count_ = 0;   // PostCommitEvent's read buffer
  uint64_t arbiter_event_count_ = 0;  // PostArbiterEvent's read buffer
  HeapTrim heap_trim_;                // what a burst freed goes back to the kernel

  UniqueFd listen_fd_;  // from before a role change, until the link takes it
  // The session's connection (the control stream): the dialled one on the primary, the
  // opened one on the standby.
  std::shared_ptr<Peer> active_;
  uint64_t session_id_ = 0;
  // What goes out on the session; the sender's and the receiver's MessageSink.
  std::unique_ptr<SessionOut> out_;

  // Failover, both roles: the controller and what carries out its actions. A role
  // change is persisted at once but applied to this object only when Run() ends: until
  // then the components of the old role are still here.
  FailoverDriver failover_{cfg_, opts_.service, metrics_, state_, *this};
  // The role this node runs in (Init makes one of them): its state and its side of the
  // session. Declared before the parts, so the parts go first.
  std::unique_ptr<PrimaryRole> primary_;
  std::unique_ptr<StandbyRole> standby_;
  // Every received byte passes through it: the session's opening and its frames.
  std::unique_ptr<SessionGate> gate_;

  // The parts (StartTransport). Declared last: they go first, while what they call
  // back into is still here.
  std::unique_ptr<PeerLink> link_;
  std::unique_ptr<StreamPool> streams_;
  std::unique_ptr<VerifyRunner> verifier_;
  std::unique_ptr<ControlServer> control_;
};

// ---- start-up -----------------------------------------------------------------------------

Node::~Node() {
  if (standby_) standby_->window().Stop();
  if (primary_) primary_->beats().StopProbe();
}

Status Node::Init() {
  RETURN_IF_ERROR(MakeStateDir(cfg_));
  RETURN_IF_ERROR(RollBackInPlacePatches(cfg_));
  ASSIGN_OR_RETURN(key_, LoadKeyFile(cfg_.sync.key_file));
  ASSIGN_OR_RETURN(rng_, Rng::Create());
  ASSIGN_OR_RETURN(StartState start, LoadOrCreateNodeState(cfg_, opts_.initial_role, *rng_));
  state_ = start.state;
  if (start.created) failover_.RecordHistory(state_, "first start (--initial-role)");
  RETURN_IF_ERROR(NewSessionId());
  ASSIGN_OR_RETURN(loop_, MakeEventLoop());
  LogStart(cfg_, state_);
  RETURN_IF_ERROR(StartTransport());
  RETURN_IF_ERROR(control_->Listen(cfg_.sync.state_dir));
  if (state_.role == NodeRole::kPrimary) {
    PrimaryRole::Owner& primary_owner = *this;
    primary_ =
        std::make_unique<PrimaryRole>(cfg_, state_, metrics_, publisher_, *loop_, *link_, *streams_,
                                      *out_, *verifier_, failover_, active_, primary_owner);
    RETURN_IF_ERROR(primary_->Start());
  } else {
    standby_ = std::make_unique<StandbyRole>(cfg_, state_, metrics_, *link_, *streams_, *out_,
                                             *verifier_, failover_, active_);
    RETURN_IF_ERROR(standby_->Start());
  }
  gate_ = std::make_unique<SessionGate>(cfg_, state_, metrics_, active_, *link_, *streams_, *out_,
                                        failover_, primary_.get(), standby_.get());
  // The lease of a standby never heard counts from here.
  failover_.Start(NowNs());
  if (opts_.arbiter != nullptr) {
    opts_.arbiter->NewRun();
    if (primary_) AcquireAtStart();
  }
  return Status::Ok();
}

void Node::AcquireAtStart() {
  // A previous holder's lease (another node's, or this node's at another epoch) runs out
  // within the TTL: try every beat until then, and a little longer.
  const int64_t now = NowNs();
  const int64_t deadline =
      now + (cfg_.arbiter.ttl_ms() + 2 * cfg_.arbiter.request_timeout_ms) * 1'000'000;
  std::vector<FailoverDriver::Event> got = opts_.arbiter->AcquireAtStart(
      state_.epoch, deadline, cfg_.failover.beat_ms * 1'000'000, [this] {
        if (opts_.service != nullptr) opts_.service->Watchdog(NowNs());
      });
  Log(got.empty() ? Level::kError : Level::kInfo, "arbiter_start")
      .kv("epoch", state_.epoch)
      .kv("ms", (NowNs() - now) / 1'000'000)
      .kv("result", got.empty()
                        ? std::string("etcd could not be asked: not serving")
                        : std::string(failover::InputName(failover::Input{0, 0, got.front()})));
  // Without an answer the first tick finds no renewal on record and demotes.
  for (auto& e : got) {
    if (failover_.changing_role()) break;
    FeedAndEnd(NowNs(), std::move(e));
  }
}

// The parts that run on the loop: the peer link (listening from here on), the data
// streams, the verify runner and the control socket's server.
Status Node::StartTransport() {
  // The Owner interfaces are private bases: the conversions are made here, inside Node.
  PeerLink::Owner& link_owner = *this;
  StreamPool::Owner& streams_owner = *this;
  VerifyRunner::Owner& verify_owner = *this;
  link_ = std::make_unique<PeerLink>(
      *loop_, link_owner,
      PeerLink::Options{cfg_.node.listen, cfg_.peer.address, kTickNs, BackoffMaxMs()},
      std::move(listen_fd_));
  streams_ = std::make_unique<StreamPool>(cfg_, *loop_, *link_, active_, streams_owner);
  out_ = std::make_unique<SessionOut>(state_, metrics_, active_, *link_, *streams_);
  out_->set_service(opts_.service);
  verifier_ = std::make_unique<VerifyRunner>(cfg_, metrics_, verify_owner, state_.role);
  ControlServer::Handlers answers;
  answers.status = [this] { return StatusJson(); };
  answers.verify = [this](int64_t timeout_ms, int rounds, bool repair) {
    return verifier_->Start(timeout_ms, rounds, repair);
  };
  answers.verify_result = [this](uint64_t id, size_t offset) {
    return verifier_->ResultJson(id, offset);
  };
  answers.switchover = [this](int64_t timeout_ms) {
    return failover_.Switchover(timeout_ms, primary_ && primary_->live());
  };
  answers.accepting = [this] { return !failover_.changing_role(); };
  answers.fail = [this](Status s) { fatal_ = std::move(s); };
  control_ = std::make_unique<ControlServer>(*loop_, std::move(answers));
  return link_->Listen();
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
  const Receiver* receiver = standby_ ? standby_->receiver() : nullptr;
  h.last_applied_seq = receiver ? receiver->last_applied_seq() : state_.last_applied_seq;
  h.node_name = cfg_.node.name;
  return h;
}

// ---- the loop ------------------------------------------------------------------------------

Status Node::Run() {
  link_->PostAccept();
  if (primary_) primary_->PostWatch();
  if (streams_->accepting()) streams_->PostDataEvent();
  if (standby_ && standby_->commit_event_fd() >= 0) PostCommitEvent();
  if (opts_.arbiter != nullptr) PostArbiterEvent();
  if (control_->listening()) control_->PostAccept();
  ScheduleTick();
  // Up: listening, watching (primary) or ready to apply (standby).
  if (opts_.service != nullptr) {
    opts_.service->Ready(fmt::format("{} at epoch {}", NodeRoleName(state_.role), state_.epoch));
  }
  while (fatal_.ok() && !failover_.changing_role()) {
    if (opts_.stop != nullptr && opts_.stop->load(std::memory_order_relaxed)) break;
    // A primary whose process was paused past its lease stops before anything else.
    if (const int64_t now = NowNs(); ArbiterFenceDue(now)) DriveTick(now);
    if (failover_.changing_role() || !fatal_.ok()) break;
    auto ran = loop_->RunOnce(100'000'000);
    if (!ran.ok()) return ran.status();
  }
  if (active_) {
    active_->conn->Close();
    link_->FlushAll(active_, 2'000'000'000).IgnoreError();  // best effort on the way out
  }
  streams_->Stop();
  if (standby_) standby_->window().Stop();
  PublishMetrics(NowNs());
  if (primary_) primary_->beats().StopProbe();
  if (standby_ && standby_->receiver() && !failover_.changing_role()) {
    // A batch committing in the background counts once it is durable (no ACK now).
    standby_->receiver()->Reset();
    state_.last_applied_seq = standby_->receiver()->last_applied_seq();
  }
  LogStats("stop");
  if (failover_.changing_role()) state_ = *failover_.next_state();
  Status saved = SaveNodeState(cfg_.sync.state_dir, state_);
  Log(Level::kInfo, "stop")
      .kv("reason", !fatal_.ok()                ? fatal_.ToString()
                    : failover_.changing_role() ? "role change: starting again as " +
                                                      std::string(NodeRoleName(state_.role)) +
                                                      " at epoch " + std::to_string(state_.epoch)
                                                : std::string("requested"));
  if (opts_.service != nullptr && !failover_.changing_role()) {
    opts_.service->Stopping(!fatal_.ok() ? "stopping: " + fatal_.ToString() : "stopping");
  }
  if (!fatal_.ok()) return fatal_;
  return saved;
}

// Standby: the committer thread's eventfd; each read sends the ACK (or NACK) of the batch
// that became durable in the background (Receiver's pipelined commit).
void Node::PostCommitEvent() {
  const int fd = standby_->commit_event_fd();
  Status s = loop_->Submit(
      [this, fd](io_uring_sqe* sqe) {
        io_uring_prep_read(sqe, fd, &commit_event_count_, sizeof commit_event_count_, 0);
      },
      [this](int32_t res) {
        if (res < 0 && res != -EINTR && res != -EAGAIN) {
          fatal_ = ErrnoStatus(-res, "read the committer's eventfd");
          return;
        }
        if (!standby_) return;
        if (Status r = standby_->OnCommitEvent(); !r.ok() && active_) link_->Drop(active_, r);
        PostCommitEvent();
      });
  if (!s.ok()) fatal_ = s;
}

void Node::PostArbiterEvent() {
  const int fd = opts_.arbiter->event_fd();
  Status s = loop_->Submit(
      [this, fd](io_uring_sqe* sqe) {
        io_uring_prep_read(sqe, fd, &arbiter_event_count_, sizeof arbiter_event_count_, 0);
      },
      [this](int32_t res) {
        if (res < 0 && res != -EINTR && res != -EAGAIN) {
          fatal_ = ErrnoStatus(-res, "read the arbiter's eventfd");
          return;
        }
        for (auto& e : opts_.arbiter->TakeAnswers()) {
          if (failover_.changing_role() || !fatal_.ok()) break;
          FeedAndEnd(NowNs(), std::move(e));
        }
        if (!failover_.changing_role()) PostArbiterEvent();
      });
  if (!s.ok()) fatal_ = s;
}

void Node::ScheduleTick() {
  Status s = loop_->AddTimer(kTickNs, [this] {
    Tick();
    ScheduleTick();
  });
  if (!s.ok()) fatal_ = s;
}

void Node::Tick() {
  int64_t now = NowNs();
  if (ArbiterFenceDue(now)) {
    DriveTick(now);  // the self-fence, before a beat or a byte goes out
    if (failover_.changing_role()) return;
  }
  link_->CompensateLoopStall(now, active_.get());
  PublishMetrics(now);
  if (heap_trim_.SampleDue(now) && heap_trim_.Sample(now, ResidentBytes())) {
    const HeapTrimmed t = TrimHeap();
    heap_trim_.Trimmed(t.rss_after);
    Log(Level::kInfo, "heap_trim")
        .kv("rss_kib_before", uint64_t{t.rss_before >> 10})
        .kv("rss_kib_after", uint64_t{t.rss_after >> 10})
        .kv("took_ms", t.took_ns / 1'000'000);
    now = NowNs();  // what follows judges time after the trim, not before it
  }
  // Pinged from the loop itself: a loop that stops turning stops the pings, and the
  // service manager kills and restarts the node (WatchdogSec=).
  if (opts_.service != nullptr) opts_.service->Watchdog(now);
  link_->ExpireHandshakes(now);
  const PeerWork work = primary_ ? primary_->StandbyWork() : PeerWork::kNone;
  if (active_ && !active_->dead && !link_->DropIfSilent(active_, now, work) && primary_) {
    if (Status s = out_->Keepalive(now); !s.ok()) link_->Drop(active_, s);
  }
  if (active_ && !active_->dead && streams_->has_outgoing()) streams_->Check(now);
  if (streams_->has_incoming()) streams_->Pump();  // what Pump's per-call bound left
  if (primary_) primary_->TickWatcher();
  if (failover_.changing_role()) return;
  if (primary_) {
    primary_->Beat(now);
    DriveTick(now);  // the lease, a switchover's drain
    if (failover_.changing_role() || !fatal_.ok()) return;
    verifier_->Tick(now, primary_->live());
    if (primary_->idle() && link_->RedialDue(now)) StartConnect();
    primary_->Step();  // pump, or go on with a resync that waited for the data streams
  } else {
    standby_->CheckRejoined(now);
    verifier_->StepStandbyManifest();
    DriveTick(now);  // promotion
  }
}

// ---- connections ---------------------------------------------------------------------------

void Node::StartConnect() {
  // A fresh session id per connection, so a data stream of an earlier session can never
  // join this one.
  if (Status r = NewSessionId(); !r.ok()) {
    fatal_ = r;
    return;
  }
  primary_->Connecting();
  if (Status s = link_->Dial(); !s.ok()) fatal_ = s;
}

Result<std::unique_ptr<Connection>> Node::NewConnection(wire::TlsRole role) {
  return Connection::Create(role, std::as_bytes(key_.bytes()), Rng::Generate, rng_->ctx(),
                            MyHello(), state_.epoch, ChannelModeFor());
}

DataStreamOut::Options Node::DataStreamOptions(uint16_t index) {
  DataStreamOut::Options o;
  auto key = std::as_bytes(key_.bytes());
  o.psk.assign(key.begin(), key.end());
  o.mode = ChannelModeFor();
  o.hello = MyHello();
  o.hello.stream_kind = wire::StreamKind::kData;
  o.hello.stream_index = index;
  o.epoch = state_.epoch;
  return o;
}

Status Node::NewSessionId() {
  std::array<std::byte, 8> sid{};
  RETURN_IF_ERROR(rng_->Fill(sid));
  std::memcpy(&session_id_, sid.data(), sid.size());
  session_id_ |= 1;  // never 0
  return Status::Ok();
}

// ---- what the failover driver and the link ask of the node -------------------------------

failover::Observation Node::Observe(int64_t now) {
  failover::Observation o;
  o.session_open = active_ && !active_->dead;
  if (primary_) {
    primary_->Observe(o);
  } else {
    standby_->Observe(now, o);
  }
  return o;
}

void Node::SendDemoteRequest(wire::RoleChangeReason reason) {
  if (!active_ || active_->dead) return;
  if (Status s = out_->Send(wire::DemoteRequest{reason}); !s.ok()) link_->Drop(active_, s);
}

void Node::SendDemoted(wire::RoleChangeReason reason, bool on_demote_ok) {
  Status s;
  if (!active_ || active_->dead || !active_->conn->open()) {
    s = Unavailable("no session to the standby");
  } else {
    const Sender* sender = primary_ ? primary_->sender() : nullptr;
    s = out_->Emit(0, wire::Demoted{reason, on_demote_ok, sender ? sender->last_seq() : 0});
    if (s.ok()) s = link_->FlushAll(active_, 2'000'000'000);
  }
  // The standby promotes at once only on this message; without it, a planned
  // switchover leaves it to its silence rules (docs/FAILOVER.md). Say so.
  if (!s.ok()) Log(Level::kWarn, "demoted_not_sent").kv("reason", s.ToString());
}

void Node::DriveTick(int64_t now) { FeedAndEnd(now, failover::in::Tick{Observe(now)}); }

void Node::FeedAndEnd(int64_t now, FailoverDriver::Event event) {
  if (auto end = failover_.Feed(now, std::move(event)).end) {
    if (active_ && !active_->dead) link_->Drop(active_, Unavailable(*end));
  }
}

void Node::Dropped(const std::shared_ptr<Peer>& peer, const Status& why) {
  bool was_active = peer == active_;
  if (peer->conn && !peer->session_opened && !peer->handed_off) {
    metrics_.handshake_failures.fetch_add(1, std::memory_order_relaxed);
    if (state_.role == NodeRole::kStandby && peer->conn->key_refused() && peer->from_peer_host) {
      // That host runs hasync and is alive: no promotion on silence while it keeps trying.
      failover_.Feed(NowNs(), failover::in::KeyRefused{});
    }
  }
  Log(was_active ? Level::kWarn : Level::kInfo, "session_closed")
      .kv("peer", peer->addr.empty() ? std::string("inbound") : peer->addr)
      .kv("reason", why.ToString());
  if (!was_active) return;
  LogStats("session_closed");
  active_.reset();
  streams_->Stop();
  if (primary_) {
    primary_->Ended();
  } else {
    state_.last_applied_seq = standby_->Ended();
  }
}

void Node::PublishMetrics(int64_t now) {
  NodeParts parts;
  parts.role = state_.role;
  parts.epoch = state_.epoch;
  parts.changing_role = failover_.changing_role();
  parts.peer_connected = active_ && !active_->dead && active_->conn && active_->conn->open() &&
                         active_->session_opened;
  if (primary_) {
    parts.sender = primary_->sender();
    parts.journal = primary_->journal();
    parts.watcher = primary_->watcher();
    parts.probe = primary_->beats().probe();
  } else if (standby_) {
    parts.detector = standby_->window().detector();
    parts.receiver = standby_->receiver();
  }
  publisher_.Publish(now, parts);
}

Status RunNode(const Config& config, const RunOptions& options) {
  if (!UseOneArena()) {
    Log(Level::kWarn, "allocator_arenas")
        .kv("reason",
            "mallopt refused (an allocator other than glibc's): memory a thread freed "
            "may stay resident after a heap trim");
  }
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
  std::unique_ptr<ArbiterWorker> own_arbiter;
  if (config.arbiter.enabled && opts.arbiter == nullptr) {
    ASSIGN_OR_RETURN(own_arbiter, ArbiterWorker::Start(config, *opts.metrics));
    opts.arbiter = own_arbiter.get();
  }
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
