// failover::Controller: the rules that keep a pair to one primary, as a pure state machine.
//
// It owns the node's persisted role and epoch (NodeState) and decides every role change:
// the standby's promotion on a verdict of the lock window, the primary's self-fencing when
// its lease runs out, demotion on a higher epoch or on request, and the planned
// switchover. It does no I/O and reads no clock: every input carries its time, and every
// effect is an action the caller carries out (run a hook, persist the state, send a frame,
// start the node again in its new role) and, where the action has a result, feeds back as
// the next input (HookDone, Persisted). engine/node wires it to sockets, processes and
// files (FailoverDriver, engine/node/failover_driver.h); tests/sim drives it with a
// simulated clock and network (docs/TESTING.md).
//
// States and transitions: kTransitions below is the whole list; Step asserts every
// transition it takes is in it, and docs/FAILOVER.md "The controller's states" is
// generated from it (`failover_sim --table`, checked by a test).
//
// Thread safety: none; one owner (the node's loop) calls it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/node/state.h"
#include "lockwin/detector.h"
#include "wire/messages.h"

namespace hasync::engine {
struct Config;
}

namespace hasync::engine::failover {

// What the controller needs of the configuration; Policy::From(Config) in the node, by
// hand in the simulator.
struct Policy {
  int64_t window_ns = 6'000'000'000;
  int64_t beat_ns = 500'000'000;
  int64_t lease_ns = 3'000'000'000;
  // A primary refused for its key redials at least this often (the node's backoff cap).
  int64_t redial_max_ns = 1'500'000'000;
  uint64_t min_failover_interval_ms = 0;
  bool has_promote_guard = false;
  bool has_fence = false;
  bool has_quorum_check = false;
  bool has_on_promote = false;
  bool has_on_demote = false;
  bool promote_on_silence_unguarded = false;
  // [arbiter] (docs/FAILOVER.md "The arbiter"): the primary renews its lease every beat
  // and starts its self-fence this long after sending the last renewal that succeeded
  // (ttl − on_demote timeout − drift); a standby promotes only by winning the leader key.
  bool has_arbiter = false;
  int64_t arbiter_fence_after_ns = 0;

  static Policy From(const Config& config);
};

enum class Hook : uint8_t { kPromoteGuard, kFence, kQuorumCheck, kOnPromote, kOnDemote };
std::string_view HookName(Hook hook);

enum class HookOutcome : uint8_t { kOk, kFailed, kTimedOut };

// The phase of the controller. A node starts in kServing (primary) or kFollowing
// (standby); kPromoted, kDemoted and kFatal are final: the node starts again (a new
// controller) in the persisted role, or stops.
enum class Phase : uint8_t {
  kServing,          // primary
  kLeaseCheck,       // primary: lease ran out, quorum_check running
  kSwitchoverStop,   // primary: switchover asked, on_demote running
  kDraining,         // primary: switchover, waiting until the standby holds everything
  kSwitchoverAbort,  // primary: switchover timed out, on_promote running
  kDemoteHook,       // primary: leaving the role, on_demote running
  kDemotePersist,    // primary: leaving the role, the standby state being persisted
  kDemoted,          // final: start again as standby
  kFollowing,        // standby
  kAdoptEpoch,       // standby: a primary at a higher epoch opened a session; persisting it
  kAwaitDemoted,     // standby: DEMOTE_REQUEST sent to a stalled primary
  kQuorumCheck,      // standby: quorum_check running before a promotion on silence
  kGuard,            // standby: promote_guard running
  kFence,            // standby: fence running
  kArbiterAcquire,   // standby: the transaction that creates the leader key in flight
  kPromotePersist,   // standby: the new epoch being persisted
  kPromoteHook,      // primary now: on_promote running
  kPromoted,         // final: start again as primary
  kFatal,            // final: the demotion could not be persisted; the node stops
};
std::string_view PhaseName(Phase phase);

struct Transition {
  Phase from;
  Phase to;
  std::string_view on;    // the input
  std::string_view when;  // the condition, as the docs state it
};
std::span<const Transition> Transitions();

// ---- inputs ------------------------------------------------------------------------------

// What the wiring sees of the node at a tick.
struct Observation {
  lockwin::Verdict verdict = lockwin::Verdict::kAlive;  // standby: the lock window's
  bool caught_up = true;          // standby: nothing of the primary's left unread
  bool session_open = false;      // a session with the peer is open
  bool session_live = false;      // primary: the session streams live changes
  bool drained = false;           // primary: nothing unsent or unacknowledged, watcher quiet
  bool holds_copy = false;        // standby: a resync completed or a change was applied
  bool rejoining = false;         // standby: its first resync under the new primary is not done
  uint64_t last_applied_seq = 0;  // standby
  uint64_t acked_seq = 0;         // primary
};

namespace in {
struct Tick {
  Observation seen;
};
// Primary: authenticated bytes from the standby on the open session.
struct PeerHeard {};
// Primary: a send has waited since the standby last took bytes at progress_ns.
struct SendBlocked {
  int64_t progress_ns = 0;
};
// The HELLO of a connection whose key proof passed.
struct PeerHello {
  wire::Role role = wire::Role::kStandby;
  uint64_t epoch = 0;
  bool inbound = false;
};
// A frame above this node's epoch (FrameEpoch said kHigher): the peer is newer.
struct HigherEpoch {
  uint64_t epoch = 0;
  std::string why = {};
};
// Standby: the session with a primary opened (after PeerHello was accepted).
struct SessionOpened {
  uint64_t peer_epoch = 0;
};
// Standby: a connection from the peer's host failed the key proof.
struct KeyRefused {};
// Primary: DEMOTE_REQUEST from the standby.
struct DemoteRequested {
  wire::RoleChangeReason reason = wire::RoleChangeReason::kStalled;
};
// Standby: DEMOTED from the primary.
struct PeerDemoted {
  wire::RoleChangeReason reason = wire::RoleChangeReason::kStalled;
  bool on_demote_ok = true;
};
// Standby: the first resync under the new primary is complete and durable.
struct Rejoined {};
struct SwitchoverRequest {
  int64_t timeout_ns = 0;
  bool session_live = false;  // the standby is in a live session now
};
struct HookDone {
  Hook hook = Hook::kQuorumCheck;
  HookOutcome outcome = HookOutcome::kOk;
  std::string detail = {};  // "exit 3", "timed out after 2000 ms"
  // What the node sees now, after the hook (a hook can take seconds): a promotion goes
  // on only if the primary has not been heard meanwhile. Absent: the last tick's.
  std::optional<Observation> seen = std::nullopt;
};
struct Persisted {
  bool ok = true;
  std::string error = {};
};
// Primary: a lease renewal sent at sent_ns succeeded (etcd answered a positive TTL and the
// leader key still names this node at its epoch). Also fed once by the node before the
// first tick of a primary, with the send time of the acquisition (or the lease grant).
struct ArbiterRenewed {
  int64_t sent_ns = 0;
};
// Primary: the lease is gone, or the leader key no longer names this node.
struct ArbiterLost {
  std::string why = {};
};
// Either role: the epoch etcd holds, as last read.
struct ArbiterEpoch {
  uint64_t epoch = 0;
};
// Standby: the result of TryAcquire — won at `epoch` (etcd's new epoch; the lease was
// granted or renewed at sent_ns), held by someone else, or etcd could not be asked.
struct ArbiterAcquired {
  uint64_t epoch = 0;
  int64_t sent_ns = 0;
};
struct ArbiterHeld {
  std::string holder = {};
  uint64_t epoch = 0;
};
struct ArbiterUnreachable {
  std::string why = {};
};
}  // namespace in

struct Input {
  int64_t now_ns = 0;    // monotonic
  uint64_t wall_ms = 0;  // Unix ms: the anti-flap interval counts across restarts
  std::variant<in::Tick, in::PeerHeard, in::SendBlocked, in::PeerHello, in::HigherEpoch,
               in::SessionOpened, in::KeyRefused, in::DemoteRequested, in::PeerDemoted,
               in::Rejoined, in::SwitchoverRequest, in::HookDone, in::Persisted,
               in::ArbiterRenewed, in::ArbiterLost, in::ArbiterEpoch, in::ArbiterAcquired,
               in::ArbiterHeld, in::ArbiterUnreachable>
      event;
};
std::string_view InputName(const Input& input);

// ---- actions -----------------------------------------------------------------------------

namespace act {
// Run the hook with HASYNC_ROLE=role, HASYNC_EPOCH=epoch, HASYNC_REASON=reason; feed
// HookDone back.
struct RunHook {
  Hook hook = Hook::kQuorumCheck;
  std::string role = {};
  uint64_t epoch = 0;
  std::string reason = {};
};
// Persist the state durably, then (if history is not empty) append it to the history;
// feed Persisted back.
struct Persist {
  NodeState state = {};
  std::string history = {};
};
struct SendDemoteRequest {
  wire::RoleChangeReason reason = wire::RoleChangeReason::kStalled;
};
struct SendDemoted {
  wire::RoleChangeReason reason = wire::RoleChangeReason::kStalled;
  bool on_demote_ok = true;
};
// Refuse the connection whose HELLO was fed (ERROR role conflict); tell_promoted: send
// PROMOTED first (the peer is a primary at a lower epoch).
struct RefuseSession {
  std::string why = {};
  bool tell_promoted = false;
};
// Close the active session (or the connection whose HELLO was fed).
struct EndSession {
  std::string why = {};
};
// The role changed and is persisted: start the node again in it.
struct Restart {
  NodeState state = {};
};
// The reply to SwitchoverRequest.
struct SwitchoverReply {
  bool ok = false;
  std::string error = {};
};
// A log line: level 0 info, 1 warn, 2 error; fields are key/value pairs.
struct Note {
  int level = 0;
  std::string event = {};
  std::vector<std::pair<std::string, std::string>> fields = {};
};
// The node cannot go on (its demotion could not be persisted).
struct Fatal {
  std::string why = {};
};
// Primary: renew the lease now (off the loop); feed ArbiterRenewed with the send time, or
// ArbiterLost, or nothing when etcd did not answer.
struct RenewLease {};
// Standby: try the transaction that creates the leader key with this node's lease and
// moves etcd's epoch to max(etcd's, local_epoch) + 1; feed ArbiterAcquired, ArbiterHeld or
// ArbiterUnreachable.
struct TryAcquire {
  uint64_t local_epoch = 0;
  std::string reason = {};
};
// Give the leader key up now (revoke the lease): this node has stopped being primary
// with its scheduler stopped, or won the key but could not persist its promotion.
struct ReleaseLease {
  std::string why = {};
};
}  // namespace act

using Action = std::variant<act::RunHook, act::Persist, act::SendDemoteRequest, act::SendDemoted,
                            act::RefuseSession, act::EndSession, act::Restart, act::SwitchoverReply,
                            act::Note, act::Fatal, act::RenewLease, act::TryAcquire,
                            act::ReleaseLease>;

// Deliberate bugs for the simulator's positive controls (docs/TESTING.md); all off in the
// node.
struct Mutations {
  bool skip_lease_check = false;        // the primary never self-fences
  bool adopt_lower_epoch = false;       // a standby takes a session of a lower epoch
  bool skip_quorum_check = false;       // a promotion on silence runs no quorum_check
  bool promote_before_persist = false;  // Restart before the epoch is durable
  bool skip_arbiter_fence = false;      // the primary never self-fences on its etcd lease
};

enum class FrameEpoch : uint8_t { kAccept, kStale, kHigher };

class Controller {
 public:
  Controller(const Policy& policy, const NodeState& persisted, int64_t now_ns,
             const Mutations& mutations = {});

  // Feeds one input; appends what to do to *out, in order.
  void Step(const Input& input, std::vector<Action>* out);

  // A frame at `epoch` (not an ERROR, which is read at any epoch): accept, refuse as
  // stale, or (primary) a newer node exists — feed HigherEpoch.
  FrameEpoch CheckFrameEpoch(uint64_t epoch) const;

  const NodeState& state() const { return state_; }
  Phase phase() const { return phase_; }
  bool primary() const { return state_.role == NodeRole::kPrimary; }
  // Final: the node is changing role (or stopping); Restart or Fatal was emitted.
  bool finished() const {
    return phase_ == Phase::kPromoted || phase_ == Phase::kDemoted || phase_ == Phase::kFatal;
  }
  bool draining() const { return phase_ == Phase::kDraining; }
  int64_t last_heard_ns() const { return last_heard_ns_; }
  const std::string& last_refusal() const { return last_refusal_; }
  // The highest epoch read from etcd (0: none or no arbiter).
  uint64_t arbiter_epoch() const { return arbiter_epoch_; }
  // Primary with an arbiter: when it starts its self-fence unless a renewal succeeds.
  int64_t arbiter_fence_at_ns() const { return renewed_sent_ns_ + policy_.arbiter_fence_after_ns; }
  // Standby: whether the primary's host failed the key proof recently (alive, not silent).
  bool KeyRefusalsRecent(int64_t now_ns) const;

 private:
  struct Ctx {
    const Input& in;
    std::vector<Action>* out;
  };
  void Go(Phase to, std::string_view on);
  void Emit(Ctx& c, Action a) { c.out->push_back(std::move(a)); }
  void Note(Ctx& c, int level, std::string event,
            std::vector<std::pair<std::string, std::string>> fields);

  void OnTick(Ctx& c, const Observation& seen);
  void OnHello(Ctx& c, const in::PeerHello& h);
  void OnHookDone(Ctx& c, const in::HookDone& h);
  void OnPersisted(Ctx& c, const in::Persisted& p);
  void OnSwitchoverRequest(Ctx& c, const in::SwitchoverRequest& r);

  // Primary.
  void CheckLease(Ctx& c);
  void StepSwitchover(Ctx& c, const Observation& seen);
  void BeginDemote(Ctx& c, wire::RoleChangeReason reason, uint64_t epoch, std::string why,
                   bool answer_peer);
  void FinishDemote(Ctx& c, bool on_demote_ok);
  // A demotion asked for while a switchover's hook ran, carried out once it is done.
  void TakePendingDemote(Ctx& c);
  // Standby.
  void MaybePromote(Ctx& c, const Observation& seen);
  void Refuse(Ctx& c, const std::string& why, int64_t retry_ns);
  void BeginPromote(Ctx& c);
  void AfterGuard(Ctx& c, std::string_view on);
  void AfterFence(Ctx& c, std::string_view on);
  void PersistPromotion(Ctx& c, std::string_view on, uint64_t epoch);
  void OnArbiter(Ctx& c, const Input& input);
  void CheckArbiterLease(Ctx& c);
  bool HeardAgain() const;
  void StartDraining(Ctx& c);
  void PromoteAborted(Ctx& c, int level, const std::string& why);

  const Policy policy_;
  const Mutations mut_;
  NodeState state_;
  Phase phase_;
  Observation seen_;  // the last tick's

  // Primary: the lease counts from the standby's last authenticated bytes.
  int64_t last_heard_ns_ = 0;
  // When quorum_check last ran in this silence of the standby (0: not in this silence),
  // and whether "keep serving" was logged for it.
  int64_t lease_checked_ns_ = 0;
  bool lease_noted_ = false;
  std::string lease_why_;
  Phase lease_from_ = Phase::kServing;  // where a lease check returns to when it passes
  int64_t switchover_timeout_ns_ = 0;
  int64_t switchover_deadline_ns_ = 0;
  bool switchover_demote_ok_ = false;
  int64_t switchover_quiet_since_ns_ = 0;
  // A demotion under way.
  wire::RoleChangeReason demote_reason_ = wire::RoleChangeReason::kStalled;
  uint64_t demote_epoch_ = 0;
  std::string demote_why_;
  bool demote_answer_ = false;
  bool demote_ok_ = true;
  struct PendingDemote {
    wire::RoleChangeReason reason = wire::RoleChangeReason::kStalled;
    uint64_t epoch = 0;
    std::string why = {};
    bool answer_peer = false;
  };
  std::optional<PendingDemote> pending_demote_;
  NodeState next_;  // what is being persisted

  // Standby.
  int64_t key_refused_ns_ = 0;  // 0: never
  int64_t next_try_ns_ = 0;
  int64_t demote_requested_ns_ = 0;
  int64_t session_opened_ns_ = INT64_MIN / 2;  // standby: the last session with a primary
  bool peer_demoted_ = false;
  bool peer_demote_ok_ = false;
  bool peer_switchover_ = false;
  std::string last_refusal_;
  lockwin::Verdict promote_verdict_ = lockwin::Verdict::kAlive;
  std::string promote_why_;
  uint64_t adopting_epoch_ = 0;
  bool rejoin_persisting_ = false;

  // The arbiter.
  uint64_t arbiter_epoch_ = 0;
  bool renewed_ever_ = false;
  int64_t renewed_sent_ns_ = INT64_MIN / 4;  // primary: send time of the last good renewal
  int64_t renew_asked_ns_ = INT64_MIN / 4;
  bool acquired_ = false;  // standby: this incarnation won the key (released if not persisted)
};

}  // namespace hasync::engine::failover
