#include "engine/failover/controller.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "base/assert.h"
#include "engine/config.h"

namespace hasync::engine::failover {

namespace {

constexpr int64_t kMsNs = 1'000'000;
// A switchover hands over once the primary has been drained for this long: nothing in
// flight.
constexpr int64_t kSwitchoverQuietNs = 200 * kMsNs;
// After a refused promotion on a failed quorum_check, the next try waits this many beats.
constexpr int64_t kQuorumRetryBeats = 4;
// After an anti-flap refusal, the next try waits this long.
constexpr int64_t kAntiFlapRetryNs = 1'000 * kMsNs;

constexpr int kInfo = 0;
constexpr int kWarn = 1;
constexpr int kError = 2;

using P = Phase;

// Every transition the controller takes; Go() asserts against it.
constexpr std::array kTable{
    // The primary.
    Transition{P::kServing, P::kLeaseCheck, "Tick, SendBlocked",
               "nothing heard from the standby for lease_ms; quorum_check configured"},
    Transition{P::kDraining, P::kLeaseCheck, "Tick, SendBlocked",
               "as above, during a switchover's drain"},
    Transition{P::kLeaseCheck, P::kServing, "HookDone",
               "quorum_check passed: the standby is presumed down"},
    Transition{P::kLeaseCheck, P::kDraining, "HookDone",
               "quorum_check passed during a switchover's drain"},
    Transition{P::kLeaseCheck, P::kDemoteHook, "HookDone",
               "quorum_check failed: self-fence (on_demote configured)"},
    Transition{P::kLeaseCheck, P::kDemotePersist, "HookDone",
               "quorum_check failed: self-fence (no on_demote)"},
    Transition{P::kServing, P::kDemoteHook, "PeerHello, HigherEpoch, DemoteRequested",
               "a peer at a higher epoch, or the standby's DEMOTE_REQUEST; on_demote configured"},
    Transition{P::kServing, P::kDemotePersist, "PeerHello, HigherEpoch, DemoteRequested",
               "as above, no on_demote"},
    Transition{P::kServing, P::kDemoteHook, "HookDone",
               "a demotion that arrived while a switchover's hook ran (on_demote configured)"},
    Transition{P::kServing, P::kDemotePersist, "HookDone", "as above, no on_demote"},
    Transition{P::kDraining, P::kDemotePersist, "HookDone",
               "a demotion that arrived while the switchover's on_demote ran"},
    Transition{P::kDraining, P::kDemoteHook, "PeerHello, HigherEpoch, DemoteRequested",
               "as above, during a switchover's drain (on_demote configured)"},
    Transition{P::kDraining, P::kDemotePersist, "PeerHello, HigherEpoch, DemoteRequested",
               "as above, during a switchover's drain (no on_demote, or it ran at the start)"},
    Transition{P::kLeaseCheck, P::kDemoteHook, "PeerHello, HigherEpoch, DemoteRequested",
               "as above, while quorum_check runs (on_demote configured, not run yet)"},
    Transition{P::kLeaseCheck, P::kDemotePersist, "PeerHello, HigherEpoch, DemoteRequested",
               "as above, while quorum_check runs (no on_demote, or it ran at a switchover's "
               "start)"},
    Transition{P::kServing, P::kSwitchoverStop, "SwitchoverRequest",
               "the session is live; on_demote configured (stops the scheduler first)"},
    Transition{P::kServing, P::kDraining, "SwitchoverRequest", "the session is live; no on_demote"},
    Transition{P::kSwitchoverStop, P::kDraining, "HookDone", "on_demote succeeded"},
    Transition{P::kSwitchoverStop, P::kSwitchoverAbort, "HookDone",
               "on_demote failed: the scheduler may still run, no handover; on_promote "
               "configured"},
    Transition{P::kSwitchoverStop, P::kServing, "HookDone",
               "on_demote failed: no handover; no on_promote"},
    Transition{P::kDraining, P::kDemotePersist, "Tick",
               "drained for 200 ms: everything acknowledged; DEMOTED sent"},
    Transition{P::kDraining, P::kSwitchoverAbort, "Tick",
               "the switchover's timeout passed; on_promote configured (restarts the scheduler)"},
    Transition{P::kDraining, P::kServing, "Tick", "the switchover's timeout passed; no on_promote"},
    Transition{P::kSwitchoverAbort, P::kServing, "HookDone", "on_promote finished"},
    Transition{P::kDemoteHook, P::kDemotePersist, "HookDone",
               "on_demote finished (DEMOTED sent when the standby asked)"},
    Transition{P::kDemotePersist, P::kDemoted, "Persisted",
               "role standby persisted: restart as standby"},
    Transition{P::kDemotePersist, P::kFatal, "Persisted", "the demotion could not be persisted"},
    // The standby.
    Transition{P::kFollowing, P::kAdoptEpoch, "SessionOpened",
               "the primary's epoch is higher than this node's"},
    Transition{P::kAwaitDemoted, P::kAdoptEpoch, "SessionOpened",
               "as above, while waiting for DEMOTED"},
    Transition{P::kAdoptEpoch, P::kFollowing, "Persisted",
               "epoch persisted (or not: the session ends)"},
    Transition{P::kFollowing, P::kFatal, "Persisted", "the end of a rejoin could not be persisted"},
    Transition{P::kFollowing, P::kAwaitDemoted, "Tick",
               "verdict Stalled, session open, rules pass: DEMOTE_REQUEST sent"},
    Transition{P::kAwaitDemoted, P::kFollowing, "Tick, SessionOpened",
               "verdict Alive again, or a new session"},
    Transition{P::kFollowing, P::kQuorumCheck, "Tick",
               "verdict Silent, rules pass, quorum_check configured"},
    Transition{P::kFollowing, P::kGuard, "Tick",
               "verdict Silent (guarded) or DEMOTED received; promote_guard configured"},
    Transition{P::kFollowing, P::kFence, "Tick",
               "as above, no promote_guard; fence configured and DEMOTED not confirmed"},
    Transition{P::kFollowing, P::kPromotePersist, "Tick", "as above, nothing to run first"},
    Transition{P::kAwaitDemoted, P::kQuorumCheck, "Tick",
               "the stalled primary fell silent; quorum_check configured"},
    Transition{P::kAwaitDemoted, P::kGuard, "Tick",
               "DEMOTED, or a window without it (at once with fence); promote_guard configured"},
    Transition{P::kAwaitDemoted, P::kFence, "Tick", "as above, no promote_guard; fence configured"},
    Transition{P::kAwaitDemoted, P::kPromotePersist, "Tick",
               "as above, nothing to run first (DEMOTED confirmed, or no fence)"},
    Transition{P::kQuorumCheck, P::kFollowing, "HookDone",
               "quorum_check failed, or the primary was heard again meanwhile"},
    Transition{P::kQuorumCheck, P::kGuard, "HookDone", "quorum_check passed; promote_guard"},
    Transition{P::kQuorumCheck, P::kFence, "HookDone", "quorum_check passed; fence"},
    Transition{P::kQuorumCheck, P::kPromotePersist, "HookDone", "quorum_check passed"},
    Transition{P::kGuard, P::kFollowing, "HookDone",
               "promote_guard vetoed, or the primary was heard again meanwhile"},
    Transition{P::kGuard, P::kFence, "HookDone", "promote_guard passed; fence"},
    Transition{P::kGuard, P::kPromotePersist, "HookDone", "promote_guard passed"},
    Transition{P::kFence, P::kFollowing, "HookDone", "fence failed: the old primary may live"},
    Transition{P::kFence, P::kPromotePersist, "HookDone", "fence succeeded"},
    Transition{P::kPromotePersist, P::kFollowing, "Persisted",
               "the new epoch could not be persisted: not primary"},
    Transition{P::kPromotePersist, P::kPromoteHook, "Persisted",
               "epoch + 1, role primary persisted; on_promote configured"},
    Transition{P::kPromotePersist, P::kPromoted, "Persisted",
               "epoch + 1, role primary persisted: restart as primary"},
    Transition{P::kPromoteHook, P::kPromoted, "HookDone",
               "on_promote finished (a failure is logged; the node stays primary)"},
    // The arbiter (docs/FAILOVER.md "The arbiter").
    Transition{P::kServing, P::kDemoteHook, "Tick, ArbiterLost, ArbiterEpoch",
               "arbiter: no renewal for ttl - on_demote - drift, the leader key lost, or a higher "
               "epoch in etcd: self-fence (on_demote configured)"},
    Transition{P::kServing, P::kDemotePersist, "Tick, ArbiterLost, ArbiterEpoch",
               "as above, no on_demote"},
    Transition{P::kDraining, P::kDemotePersist, "Tick, ArbiterLost, ArbiterEpoch",
               "as above, during a switchover's drain (on_demote ran at its start, if any)"},
    Transition{P::kLeaseCheck, P::kDemoteHook, "ArbiterLost, ArbiterEpoch",
               "as above, while quorum_check runs (on_demote configured)"},
    Transition{P::kLeaseCheck, P::kDemotePersist, "ArbiterLost, ArbiterEpoch",
               "as above, while quorum_check runs (no on_demote)"},
    Transition{P::kFollowing, P::kArbiterAcquire, "Tick",
               "verdict not Alive (or DEMOTED), rules pass, nothing to run first; arbiter: try "
               "the transaction that creates the leader key"},
    Transition{P::kAwaitDemoted, P::kArbiterAcquire, "Tick", "as above, after DEMOTE_REQUEST"},
    Transition{P::kQuorumCheck, P::kArbiterAcquire, "HookDone", "quorum_check passed; arbiter"},
    Transition{P::kGuard, P::kArbiterAcquire, "HookDone", "promote_guard passed; arbiter"},
    Transition{P::kFence, P::kArbiterAcquire, "HookDone", "fence succeeded; arbiter"},
    Transition{P::kArbiterAcquire, P::kPromotePersist, "ArbiterAcquired",
               "the leader key won: etcd's new epoch and role primary persisted"},
    Transition{P::kArbiterAcquire, P::kFollowing,
               "ArbiterAcquired, ArbiterHeld, ArbiterUnreachable",
               "the key is held (a primary's lease lives), etcd cannot be reached, or etcd's "
               "epoch is not above this node's: no promotion, tried again a beat later"},
};

std::string Ms(int64_t ns) { return std::to_string(ns / kMsNs); }

}  // namespace

Policy Policy::From(const Config& c) {
  Policy p;
  p.window_ns = c.failover.window_ms * kMsNs;
  p.beat_ns = c.failover.beat_ms * kMsNs;
  p.lease_ns = c.failover.lease_ms * kMsNs;
  // The node's redial backoff cap: a quarter of the window, within [100 ms, 5 s].
  p.redial_max_ns = std::clamp<int64_t>(c.failover.window_ms / 4, 100, 5'000) * kMsNs;
  p.min_failover_interval_ms = static_cast<uint64_t>(c.failover.min_failover_interval_ms);
  p.has_promote_guard = c.hooks.promote_guard.configured();
  p.has_fence = c.hooks.fence.configured();
  p.has_quorum_check = c.hooks.quorum_check.configured();
  p.has_on_promote = c.hooks.on_promote.configured();
  p.has_on_demote = c.hooks.on_demote.configured();
  p.promote_on_silence_unguarded = c.failover.promote_on_silence_unguarded;
  p.has_arbiter = c.arbiter.enabled;
  if (p.has_arbiter) {
    p.arbiter_fence_after_ns =
        (c.arbiter.ttl_ms() - c.arbiter_stop_ms() - c.arbiter.drift_ms()) * kMsNs;
  }
  return p;
}

std::string_view HookName(Hook hook) {
  switch (hook) {
    case Hook::kPromoteGuard:
      return "promote_guard";
    case Hook::kFence:
      return "fence";
    case Hook::kQuorumCheck:
      return "quorum_check";
    case Hook::kOnPromote:
      return "on_promote";
    case Hook::kOnDemote:
      return "on_demote";
  }
  return "?";
}

std::string_view PhaseName(Phase phase) {
  static constexpr std::string_view kNames[] = {
      "serving",         "lease_check",    "switchover_stop", "draining",  "switchover_abort",
      "demote_hook",     "demote_persist", "demoted",         "following", "adopt_epoch",
      "await_demoted",   "quorum_check",   "guard",           "fence",     "arbiter_acquire",
      "promote_persist", "promote_hook",   "promoted",        "fatal"};
  static_assert(std::size(kNames) == static_cast<size_t>(Phase::kFatal) + 1);
  return kNames[static_cast<size_t>(phase)];
}

std::span<const Transition> Transitions() { return kTable; }

std::string_view InputName(const Input& input) {
  static constexpr std::string_view kNames[] = {"Tick",
                                                "PeerHeard",
                                                "SendBlocked",
                                                "PeerHello",
                                                "HigherEpoch",
                                                "SessionOpened",
                                                "KeyRefused",
                                                "DemoteRequested",
                                                "PeerDemoted",
                                                "Rejoined",
                                                "SwitchoverRequest",
                                                "HookDone",
                                                "Persisted",
                                                "ArbiterRenewed",
                                                "ArbiterLost",
                                                "ArbiterEpoch",
                                                "ArbiterAcquired",
                                                "ArbiterHeld",
                                                "ArbiterUnreachable"};
  static_assert(std::size(kNames) == std::variant_size_v<decltype(Input::event)>);
  return kNames[input.event.index()];
}

Controller::Controller(const Policy& policy, const NodeState& persisted, int64_t now_ns,
                       const Mutations& mutations)
    : policy_(policy),
      mut_(mutations),
      state_(persisted),
      phase_(persisted.role == NodeRole::kPrimary ? Phase::kServing : Phase::kFollowing),
      // The lease of a standby never heard counts from the start.
      last_heard_ns_(now_ns) {}

void Controller::Go(Phase to, std::string_view on) {
  const Phase from = phase_;
  const bool listed = std::any_of(kTable.begin(), kTable.end(), [&](const Transition& t) {
    return t.from == from && t.to == to && t.on.find(on) != std::string_view::npos;
  });
  HASYNC_ASSERT(listed);
  phase_ = to;
}

void Controller::Note(Ctx& c, int level, std::string event,
                      std::vector<std::pair<std::string, std::string>> fields) {
  Emit(c, act::Note{level, std::move(event), std::move(fields)});
}

FrameEpoch Controller::CheckFrameEpoch(uint64_t epoch) const {
  // Below what etcd holds is stale too: a deposed primary's frames are refused even by a
  // node that has not adopted the new epoch yet.
  if (epoch < state_.epoch || epoch < arbiter_epoch_) return FrameEpoch::kStale;
  if (epoch > state_.epoch && primary()) return FrameEpoch::kHigher;
  return FrameEpoch::kAccept;
}

bool Controller::KeyRefusalsRecent(int64_t now_ns) const {
  return key_refused_ns_ != 0 &&
         now_ns - key_refused_ns_ < policy_.window_ns + 2 * policy_.redial_max_ns;
}

void Controller::Step(const Input& input, std::vector<Action>* out) {
  Ctx c{input, out};
  if (phase_ == Phase::kFatal) return;
  std::visit(
      [&](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, in::Tick>) {
          OnTick(c, e.seen);
        } else if constexpr (std::is_same_v<T, in::PeerHeard>) {
          last_heard_ns_ = input.now_ns;
          if (lease_checked_ns_ != 0) {
            lease_checked_ns_ = 0;
            lease_noted_ = false;
            Note(c, kInfo, "lease_renewed", {{"note", "the standby is heard again"}});
          }
        } else if constexpr (std::is_same_v<T, in::SendBlocked>) {
          if (!primary() ||
              input.now_ns - std::max(last_heard_ns_, e.progress_ns) < policy_.lease_ns) {
            return;
          }
          CheckLease(c);
        } else if constexpr (std::is_same_v<T, in::PeerHello>) {
          OnHello(c, e);
        } else if constexpr (std::is_same_v<T, in::HigherEpoch>) {
          BeginDemote(c, wire::RoleChangeReason::kHigherEpoch, e.epoch, e.why, false);
        } else if constexpr (std::is_same_v<T, in::SessionOpened>) {
          if (primary() || finished()) return;
          // A primary is here (again): whatever an earlier one confirmed or was asked no
          // longer holds.
          peer_demoted_ = peer_switchover_ = peer_demote_ok_ = false;
          demote_requested_ns_ = 0;
          session_opened_ns_ = input.now_ns;
          if (phase_ == Phase::kAwaitDemoted) Go(Phase::kFollowing, "SessionOpened");
          if (e.peer_epoch > state_.epoch && phase_ == Phase::kFollowing) {
            adopting_epoch_ = e.peer_epoch;
            next_ = state_;
            next_.epoch = e.peer_epoch;
            Go(Phase::kAdoptEpoch, "SessionOpened");
            Emit(c, act::Persist{next_, ""});
          }
        } else if constexpr (std::is_same_v<T, in::KeyRefused>) {
          const bool new_run = !KeyRefusalsRecent(input.now_ns);
          key_refused_ns_ = input.now_ns;
          if (new_run) {
            Note(c, kWarn, "peer_key_mismatch",
                 {{"note",
                   "the primary's host connects with a different sync key: it is alive, so this "
                   "node does not promote on silence while it keeps connecting "
                   "(docs/OPERATIONS.md)"}});
          }
        } else if constexpr (std::is_same_v<T, in::DemoteRequested>) {
          BeginDemote(c, e.reason, state_.epoch, "the standby asked (it judged this node stalled)",
                      true);
        } else if constexpr (std::is_same_v<T, in::PeerDemoted>) {
          if (primary()) return;
          peer_demoted_ = true;
          peer_demote_ok_ = e.on_demote_ok;
          peer_switchover_ = e.reason == wire::RoleChangeReason::kSwitchover;
          next_try_ns_ = 0;
        } else if constexpr (std::is_same_v<T, in::Rejoined>) {
          if (primary() || (state_.rejoin_epoch == 0 && !state_.handed_over)) return;
          state_.rejoin_epoch = 0;
          state_.handed_over = false;
          rejoin_persisting_ = true;
          Emit(c, act::Persist{state_, ""});
        } else if constexpr (std::is_same_v<T, in::SwitchoverRequest>) {
          OnSwitchoverRequest(c, e);
        } else if constexpr (std::is_same_v<T, in::HookDone>) {
          OnHookDone(c, e);
        } else if constexpr (std::is_same_v<T, in::Persisted>) {
          OnPersisted(c, e);
        } else {
          OnArbiter(c, input);
        }
      },
      input.event);
}

// ---- the primary ---------------------------------------------------------------------------

void Controller::OnTick(Ctx& c, const Observation& seen) {
  seen_ = seen;
  if (primary()) {
    if (phase_ == Phase::kServing || phase_ == Phase::kDraining) CheckArbiterLease(c);
    if (phase_ == Phase::kServing || phase_ == Phase::kDraining) CheckLease(c);
    if (phase_ == Phase::kDraining) StepSwitchover(c, seen);
  } else if (phase_ == Phase::kFollowing || phase_ == Phase::kAwaitDemoted) {
    MaybePromote(c, seen);
  }
}

void Controller::CheckLease(Ctx& c) {
  const int64_t now = c.in.now_ns;
  if (mut_.skip_lease_check) return;
  if (phase_ != Phase::kServing && phase_ != Phase::kDraining) return;
  if (now - last_heard_ns_ < policy_.lease_ns) return;
  // Once per lease_ns while the silence lasts, not once per silence: a primary whose
  // check passed (the standby was down) and which is then cut off itself must find out
  // before the standby's window runs out (lease + quorum_check + on_demote < window).
  if (lease_checked_ns_ != 0 && now - lease_checked_ns_ < policy_.lease_ns) return;
  const bool first = lease_checked_ns_ == 0;
  lease_checked_ns_ = now;
  lease_why_ = fmt::format("nothing heard from the standby for {} ms", Ms(now - last_heard_ns_));
  if (!policy_.has_quorum_check) {
    if (first) {
      Note(c, kWarn, "lease_expired",
           {{"reason", lease_why_}, {"action", "keep serving (no quorum_check configured)"}});
    }
    return;
  }
  lease_from_ = phase_;
  Go(Phase::kLeaseCheck, "Tick, SendBlocked");
  Emit(c, act::RunHook{Hook::kQuorumCheck, "primary", state_.epoch, lease_why_});
}

void Controller::OnSwitchoverRequest(Ctx& c, const in::SwitchoverRequest& r) {
  auto fail = [&](std::string why) { Emit(c, act::SwitchoverReply{false, std::move(why)}); };
  if (!primary()) return fail("this node is the standby: run `hasync switchover` on the primary");
  if (finished() || phase_ == Phase::kDemoteHook || phase_ == Phase::kDemotePersist) {
    return fail("this node is changing role already");
  }
  if (phase_ != Phase::kServing) return fail("a switchover is in progress");
  if (!r.session_live) {
    return fail("the standby is not in a live session: there is nobody to hand over to");
  }
  Note(c, kWarn, "switchover", {{"phase", "begin"}, {"timeout_ms", Ms(r.timeout_ns)}});
  switchover_timeout_ns_ = r.timeout_ns;
  switchover_demote_ok_ = true;
  if (policy_.has_on_demote) {
    // The scheduler stops first, so what it wrote last is in the journal before the drain.
    Go(Phase::kSwitchoverStop, "SwitchoverRequest");
    Emit(c, act::RunHook{Hook::kOnDemote, "standby", state_.epoch, "planned switchover"});
    return;
  }
  StartDraining(c);
}

void Controller::StartDraining(Ctx& c) {
  Go(Phase::kDraining, phase_ == Phase::kServing ? "SwitchoverRequest" : "HookDone");
  switchover_deadline_ns_ = c.in.now_ns + switchover_timeout_ns_;
  switchover_quiet_since_ns_ = 0;
  Emit(c, act::SwitchoverReply{true, ""});
}

void Controller::StepSwitchover(Ctx& c, const Observation& seen) {
  const int64_t now = c.in.now_ns;
  if (now > switchover_deadline_ns_) {
    Note(c, kError, "switchover",
         {{"phase", "aborted"}, {"reason", "the standby did not acknowledge everything in time"}});
    if (policy_.has_on_promote) {
      Go(Phase::kSwitchoverAbort, "Tick");
      Emit(c, act::RunHook{Hook::kOnPromote, "primary", state_.epoch,
                           "switchover aborted: this node stays primary"});
    } else {
      Go(Phase::kServing, "Tick");
    }
    return;
  }
  if (!seen.drained) {
    switchover_quiet_since_ns_ = 0;
    return;
  }
  if (switchover_quiet_since_ns_ == 0) switchover_quiet_since_ns_ = now;
  if (now - switchover_quiet_since_ns_ < kSwitchoverQuietNs) return;
  // Everything is durable on the standby: hand over.
  Note(c, kWarn, "switchover",
       {{"phase", "handing over"}, {"last_acked_seq", std::to_string(seen.acked_seq)}});
  BeginDemote(c, wire::RoleChangeReason::kSwitchover, state_.epoch, "planned switchover", true);
}

void Controller::BeginDemote(Ctx& c, wire::RoleChangeReason reason, uint64_t epoch, std::string why,
                             bool answer_peer) {
  if (!primary()) return;
  if (phase_ == Phase::kSwitchoverStop || phase_ == Phase::kSwitchoverAbort) {
    // A hook of the switchover runs; the demotion follows when it is done (a request the
    // primary drops leaves the standby to promote on its bounded wait beside it).
    if (!pending_demote_) {
      pending_demote_ = PendingDemote{reason, epoch, std::move(why), answer_peer};
    }
    return;
  }
  if (phase_ != Phase::kServing && phase_ != Phase::kDraining && phase_ != Phase::kLeaseCheck) {
    return;
  }
  const bool planned = reason == wire::RoleChangeReason::kSwitchover;
  // A switchover hands over from its drain; a demotion for any other reason during the
  // drain still counts on_demote as run (it ran when the switchover began).
  const bool draining = phase_ == Phase::kDraining ||
                        (phase_ == Phase::kLeaseCheck && lease_from_ == Phase::kDraining);
  const bool stopped_already = draining && policy_.has_on_demote;
  Note(c, kWarn, "demoting", {{"epoch", std::to_string(state_.epoch)}, {"reason", why}});
  demote_reason_ = reason;
  demote_epoch_ = std::max(epoch, state_.epoch);
  demote_why_ = std::move(why);
  demote_answer_ = answer_peer;
  const std::string_view on = InputName(c.in);
  if (!planned && !stopped_already && policy_.has_on_demote) {
    Go(Phase::kDemoteHook, on);
    Emit(c, act::RunHook{Hook::kOnDemote, "standby", demote_epoch_, demote_why_});
    return;
  }
  Go(Phase::kDemotePersist, on);
  FinishDemote(c, planned || stopped_already ? switchover_demote_ok_ : true);
}

void Controller::TakePendingDemote(Ctx& c) {
  if (!pending_demote_) return;
  PendingDemote d = std::move(*pending_demote_);
  pending_demote_.reset();
  BeginDemote(c, d.reason, d.epoch, std::move(d.why), d.answer_peer);
}

void Controller::FinishDemote(Ctx& c, bool on_demote_ok) {
  if (phase_ == Phase::kDemoteHook) Go(Phase::kDemotePersist, "HookDone");
  demote_ok_ = on_demote_ok;
  if (demote_answer_) Emit(c, act::SendDemoted{demote_reason_, on_demote_ok});
  next_ = state_;
  // What this node did as primary may differ from the new primary: quarantined on
  // rejoin. A switchover drained everything first, so nothing can.
  const bool planned = demote_reason_ == wire::RoleChangeReason::kSwitchover;
  next_.rejoin_epoch = planned ? 0 : state_.epoch;
  // Either way it has not joined the new primary yet: no promotion by itself before.
  next_.handed_over = planned;
  // A failover of the pair: the anti-flap interval holds this node back too.
  if (!planned) next_.last_failover_unix_ms = c.in.wall_ms;
  next_.epoch = demote_epoch_;
  next_.role = NodeRole::kStandby;
  Emit(c, act::Persist{next_, "demoted: " + demote_why_});
}

// ---- the standby ---------------------------------------------------------------------------

void Controller::Refuse(Ctx& c, const std::string& why, int64_t retry_ns) {
  next_try_ns_ = c.in.now_ns + retry_ns;
  if (why == last_refusal_) return;  // said once per episode
  last_refusal_ = why;
  Note(c, kWarn, "not_promoting",
       {{"verdict", std::string(lockwin::VerdictName(seen_.verdict))}, {"reason", why}});
}

void Controller::MaybePromote(Ctx& c, const Observation& seen) {
  const int64_t now = c.in.now_ns;
  if (now < next_try_ns_) return;
  const lockwin::Verdict v = seen.verdict;
  if (v == lockwin::Verdict::kAlive && !peer_demoted_) {
    demote_requested_ns_ = 0;
    last_refusal_.clear();
    if (phase_ == Phase::kAwaitDemoted) Go(Phase::kFollowing, "Tick");
    return;
  }
  if (!seen.caught_up) return;
  // A standby that never had a primary holds nothing to serve, and one still rejoining
  // is not yet what the primary acknowledged: neither takes over by itself.
  if (state_.epoch == 0) {
    return Refuse(c, "this node never joined a primary (epoch 0): it holds nothing to serve",
                  policy_.window_ns);
  }
  if (seen.rejoining) {
    return Refuse(c, "this node is still rejoining (its first resync is not complete)",
                  policy_.window_ns);
  }
  // Half a first copy is not a copy: a fresh standby adopts the primary's epoch as the
  // session opens, before anything is applied.
  if (!seen.holds_copy) {
    return Refuse(c,
                  "this node has not completed a resync with a primary yet: it holds no full copy",
                  policy_.window_ns);
  }
  const uint64_t wall = c.in.wall_ms;
  const uint64_t gap = policy_.min_failover_interval_ms;
  if (!peer_switchover_ && state_.last_failover_unix_ms != 0 &&
      wall - state_.last_failover_unix_ms < gap) {
    return Refuse(c,
                  fmt::format("the last automatic failover was {} s ago (min_failover_interval_ms "
                              "= {})",
                              (wall - state_.last_failover_unix_ms) / 1000, gap),
                  kAntiFlapRetryNs);
  }
  if (v == lockwin::Verdict::kStalled && !peer_demoted_ && seen.session_open) {
    // Reachable but making no progress: ask it to step down first (DESIGN §4).
    if (demote_requested_ns_ == 0) {
      demote_requested_ns_ = now;
      Note(c, kWarn, "demote_requested", {{"reason", "verdict stalled"}});
      Emit(c, act::SendDemoteRequest{wire::RoleChangeReason::kStalled});
      if (phase_ == Phase::kFollowing) Go(Phase::kAwaitDemoted, "Tick");
      return;
    }
    if (now - demote_requested_ns_ < policy_.window_ns && !policy_.has_fence) return;
  }
  const bool confirmed = peer_demoted_;
  promote_verdict_ = v;
  promote_why_ = peer_switchover_ ? "planned switchover: the primary drained and handed over"
                 : confirmed      ? "the primary confirmed it demoted"
                                  : fmt::format("verdict {} for a window of {} ms",
                                                lockwin::VerdictName(v), Ms(policy_.window_ns));
  // A primary that opened a session within the window is not silent, whatever the window
  // held before it (its first lock record comes at its next beat): a node that just
  // joined the new primary must not promote on the silence that preceded it.
  if (v == lockwin::Verdict::kSilent && !confirmed &&
      now - session_opened_ns_ < policy_.window_ns) {
    return;
  }
  if (v == lockwin::Verdict::kSilent && !confirmed && KeyRefusalsRecent(now)) {
    return Refuse(c,
                  "the primary's host keeps connecting with a different sync key: it is alive, not "
                  "silent; fix the key (docs/OPERATIONS.md)",
                  policy_.beat_ns);
  }
  if (v == lockwin::Verdict::kSilent && !confirmed) {
    if (!policy_.has_fence && !policy_.has_quorum_check && !policy_.has_arbiter &&
        !policy_.promote_on_silence_unguarded) {
      return Refuse(c,
                    "silence alone cannot tell a dead primary from a cut link: configure fence or "
                    "quorum_check (docs/FAILOVER.md)",
                    policy_.window_ns);
    }
    if (policy_.has_quorum_check && !mut_.skip_quorum_check) {
      Go(Phase::kQuorumCheck, "Tick");
      Emit(c, act::RunHook{Hook::kQuorumCheck, "standby", state_.epoch, promote_why_});
      return;
    }
  }
  BeginPromote(c);
}

// The primary came back while a guard ran: the promotion no longer has its reason. Bytes
// of the primary's that wait unread count: they may be the records that say it is fine.
bool Controller::HeardAgain() const {
  return !peer_demoted_ && (seen_.verdict == lockwin::Verdict::kAlive || !seen_.caught_up);
}

void Controller::BeginPromote(Ctx& c) {
  const std::string_view on =
      phase_ == Phase::kFollowing || phase_ == Phase::kAwaitDemoted ? "Tick" : "HookDone";
  if (policy_.has_promote_guard) {
    Go(Phase::kGuard, on);
    Emit(c, act::RunHook{Hook::kPromoteGuard, "standby", state_.epoch + 1, promote_why_});
    return;
  }
  AfterGuard(c, on);
}

void Controller::AfterGuard(Ctx& c, std::string_view on) {
  // The fence is skipped only when the old primary confirmed it demoted and that its
  // on_demote (which stops its scheduler) succeeded.
  if (policy_.has_fence && !(peer_demoted_ && peer_demote_ok_)) {
    Go(Phase::kFence, on);
    Emit(c, act::RunHook{Hook::kFence, "standby", state_.epoch + 1, promote_why_});
    return;
  }
  AfterFence(c, on);
}

void Controller::AfterFence(Ctx& c, std::string_view on) {
  if (policy_.has_arbiter) {
    // The last gate: only the node that creates the leader key may promote, and it
    // cannot while the old primary's lease lives (docs/FAILOVER.md "The arbiter").
    Go(Phase::kArbiterAcquire, on);
    Emit(c, act::TryAcquire{state_.epoch, promote_why_});
    return;
  }
  PersistPromotion(c, on, state_.epoch + 1);
}

void Controller::PersistPromotion(Ctx& c, std::string_view on, uint64_t epoch) {
  next_ = state_;
  next_.epoch = epoch;
  next_.role = NodeRole::kPrimary;
  if (!peer_switchover_) next_.last_failover_unix_ms = c.in.wall_ms;  // planned: no anti-flap
  next_.rejoin_epoch = 0;
  next_.last_applied_seq = seen_.last_applied_seq;
  Go(Phase::kPromotePersist, on);
  const std::string history =
      "promoted (" + std::string(lockwin::VerdictName(promote_verdict_)) + "): " + promote_why_;
  if (mut_.promote_before_persist) {
    // Positive control: acts on the epoch before it is durable.
    Emit(c, act::Restart{next_});
  }
  Emit(c, act::Persist{next_, history});
}

// ---- the arbiter ---------------------------------------------------------------------------

void Controller::CheckArbiterLease(Ctx& c) {
  if (!policy_.has_arbiter) return;
  const int64_t now = c.in.now_ns;
  if (!mut_.skip_arbiter_fence && now >= arbiter_fence_at_ns()) {
    // Etcd may let the key go at the send time of the last good renewal plus the TTL;
    // on_demote must be over before that (the proof in docs/FAILOVER.md).
    const std::string why =
        renewed_ever_ ? fmt::format(
                            "arbiter: no lease renewal succeeded for {} ms; self-fencing "
                            "before the lease can expire",
                            Ms(now - renewed_sent_ns_))
                      : "arbiter: this node holds no lease it knows of; a primary without the "
                        "leader key does not serve";
    // DEMOTED tells the standby at once (it still needs the key: it wins it when the
    // lease is given back or runs out, instead of a window later).
    BeginDemote(c, wire::RoleChangeReason::kSilent, state_.epoch, why, true);
    return;
  }
  if (now - renew_asked_ns_ >= policy_.beat_ns) {
    renew_asked_ns_ = now;
    Emit(c, act::RenewLease{});
  }
}

void Controller::OnArbiter(Ctx& c, const Input& input) {
  const int64_t now = input.now_ns;
  if (const auto* r = std::get_if<in::ArbiterRenewed>(&input.event)) {
    if (!primary() || r->sent_ns > now) return;
    renewed_ever_ = true;
    renewed_sent_ns_ = std::max(renewed_sent_ns_, r->sent_ns);
    return;
  }
  if (const auto* l = std::get_if<in::ArbiterLost>(&input.event)) {
    if (!primary()) return;
    BeginDemote(c, wire::RoleChangeReason::kSilent, state_.epoch, "arbiter: " + l->why, true);
    return;
  }
  if (const auto* e = std::get_if<in::ArbiterEpoch>(&input.event)) {
    arbiter_epoch_ = std::max(arbiter_epoch_, e->epoch);
    if (primary() && e->epoch > state_.epoch) {
      BeginDemote(
          c, wire::RoleChangeReason::kHigherEpoch, e->epoch,
          fmt::format("arbiter: etcd holds epoch {} above this node's {}", e->epoch, state_.epoch),
          false);
    }
    return;
  }
  if (phase_ != Phase::kArbiterAcquire) return;  // an answer nothing waits for
  if (const auto* a = std::get_if<in::ArbiterAcquired>(&input.event)) {
    arbiter_epoch_ = std::max(arbiter_epoch_, a->epoch);
    acquired_ = true;
    if (a->epoch <= state_.epoch) {
      // Etcd's epoch must move up with the key; anything else is a bug somewhere: give
      // the key back rather than serve at an epoch that is not new.
      Emit(c, act::ReleaseLease{"etcd gave an epoch that is not above this node's"});
      acquired_ = false;
      peer_demoted_ = peer_demote_ok_ = peer_switchover_ = false;
      next_try_ns_ = now + policy_.window_ns;
      Note(c, kError, "not_promoting",
           {{"reason", fmt::format("arbiter: won the key at epoch {}, not above this node's {}",
                                   a->epoch, state_.epoch)}});
      Go(Phase::kFollowing, "ArbiterAcquired");
      return;
    }
    Note(c, kWarn, "arbiter_acquired", {{"epoch", std::to_string(a->epoch)}});
    PersistPromotion(c, "ArbiterAcquired", a->epoch);
    return;
  }
  std::string why;
  std::string_view on;
  if (const auto* h = std::get_if<in::ArbiterHeld>(&input.event)) {
    arbiter_epoch_ = std::max(arbiter_epoch_, h->epoch);
    why = fmt::format(
        "arbiter: the leader key is held by {} at epoch {}: its lease lives, so it "
        "may still run its scheduler",
        h->holder.empty() ? std::string("another node") : h->holder, h->epoch);
    on = "ArbiterHeld";
  } else if (const auto* u = std::get_if<in::ArbiterUnreachable>(&input.event)) {
    why = "arbiter: etcd cannot be asked (" + u->why + "): nobody promotes without it";
    on = "ArbiterUnreachable";
  } else {
    return;
  }
  // Not an error: the normal answer while a live primary is merely cut off from this node.
  // A DEMOTED the primary sent stays good here (unlike PromoteAborted): the key, not the
  // window, guards the next try, and the lease of a primary that stopped itself but could
  // not give the key back (cut off etcd) runs out within a TTL, well before a window.
  Go(Phase::kFollowing, on);
  Refuse(c, why, policy_.beat_ns);
}

void Controller::PromoteAborted(Ctx& c, int level, const std::string& why) {
  next_try_ns_ = c.in.now_ns + policy_.window_ns;
  // A DEMOTED confirms one handover, not every later try: the next one is judged on the
  // window again (after a vetoed handover both nodes are standbys; a stale confirmation
  // let this one promote a window later beside the other).
  peer_demoted_ = peer_demote_ok_ = peer_switchover_ = false;
  Note(c, level, "not_promoting", {{"reason", why}});
  Go(Phase::kFollowing, "HookDone");
}

void Controller::OnHookDone(Ctx& c, const in::HookDone& h) {
  if (h.seen) seen_ = *h.seen;
  const bool ok = h.outcome == HookOutcome::kOk;
  const std::string detail = h.detail.empty() ? (ok ? "exit 0" : "failed") : h.detail;
  switch (phase_) {
    case Phase::kLeaseCheck: {
      if (h.hook != Hook::kQuorumCheck) return;
      const Phase back = lease_from_;
      if (ok) {
        // Said once per silence; the checks that follow are in the hook log lines.
        if (!lease_noted_) {
          lease_noted_ = true;
          Note(c, kWarn, "lease_expired",
               {{"reason", lease_why_},
                {"action", "keep serving: quorum_check passed, the standby is presumed down"}});
        }
        Go(back, "HookDone");
        return;
      }
      // This node is the isolated one: stop before the standby's window runs out.
      BeginDemote(c, wire::RoleChangeReason::kSilent, state_.epoch,
                  lease_why_ + "; quorum_check failed (" + detail + "): self-fencing", false);
      return;
    }
    case Phase::kSwitchoverStop:
      if (h.hook != Hook::kOnDemote) return;
      if (!ok) {
        // The scheduler may still run: handing over would make two. The switchover ends
        // here, and on_promote brings back whatever on_demote stopped.
        const std::string why =
            "on_demote failed (" + detail + "): the scheduler may still run; not handing over";
        Note(c, kError, "switchover", {{"phase", "aborted"}, {"reason", why}});
        Emit(c, act::SwitchoverReply{false, why});
        if (policy_.has_on_promote) {
          Go(Phase::kSwitchoverAbort, "HookDone");
          Emit(c, act::RunHook{Hook::kOnPromote, "primary", state_.epoch,
                               "switchover aborted: this node stays primary"});
        } else {
          Go(Phase::kServing, "HookDone");
          TakePendingDemote(c);
        }
        return;
      }
      switchover_demote_ok_ = true;
      StartDraining(c);
      TakePendingDemote(c);
      return;
    case Phase::kSwitchoverAbort:
      if (h.hook != Hook::kOnPromote) return;
      Go(Phase::kServing, "HookDone");
      TakePendingDemote(c);
      return;
    case Phase::kDemoteHook:
      if (h.hook != Hook::kOnDemote) return;
      FinishDemote(c, ok);
      return;
    case Phase::kQuorumCheck:
      if (h.hook != Hook::kQuorumCheck) return;
      if (!ok) {
        Go(Phase::kFollowing, "HookDone");
        Refuse(c, "quorum_check failed (" + detail + "): this node may be the isolated one",
               kQuorumRetryBeats * policy_.beat_ns);
        return;
      }
      if (HeardAgain()) {
        return PromoteAborted(c, kWarn, "the primary was heard again while quorum_check ran");
      }
      BeginPromote(c);
      return;
    case Phase::kGuard:
      if (h.hook != Hook::kPromoteGuard) return;
      if (!ok) return PromoteAborted(c, kWarn, "promote_guard vetoed (" + detail + ")");
      if (HeardAgain()) {
        return PromoteAborted(c, kWarn, "the primary was heard again while promote_guard ran");
      }
      AfterGuard(c, "HookDone");
      return;
    case Phase::kFence:
      if (h.hook != Hook::kFence) return;
      if (!ok) return PromoteAborted(c, kError, "fence failed (" + detail + ")");
      AfterFence(c, "HookDone");
      return;
    case Phase::kPromoteHook:
      if (h.hook != Hook::kOnPromote) return;
      if (!ok) {
        Note(c, kError, "on_promote_failed",
             {{"result", detail},
              {"note", "this node is primary; the scheduler may not be running"}});
      }
      Go(Phase::kPromoted, "HookDone");
      Emit(c, act::EndSession{"promoted to primary"});
      return;
    default:
      return;  // a hook of an earlier phase: nothing waits for it
  }
}

void Controller::OnPersisted(Ctx& c, const in::Persisted& p) {
  switch (phase_) {
    case Phase::kDemotePersist:
      if (!p.ok) {
        Go(Phase::kFatal, "Persisted");
        Emit(c, act::Fatal{"persist the demotion: " + p.error});
        return;
      }
      // state_ stays the one this incarnation runs in: the node starts again in next_.
      if (policy_.has_arbiter && demote_ok_) {
        // The scheduler is stopped: the standby need not wait for the lease to run out.
        // If on_demote failed, the lease runs out by itself (this node renews no more).
        Emit(c, act::ReleaseLease{"demoted with the scheduler stopped"});
      }
      Go(Phase::kDemoted, "Persisted");
      Emit(c, act::Restart{next_});
      Note(c, kWarn, "demoted",
           {{"epoch", std::to_string(next_.epoch)},
            {"on_demote_ok", demote_ok_ ? "true" : "false"}});
      return;
    case Phase::kAdoptEpoch:
      if (p.ok) {
        state_ = next_;
      } else {
        Emit(c, act::EndSession{"persist the primary's epoch: " + p.error});
      }
      Go(Phase::kFollowing, "Persisted");
      return;
    case Phase::kPromotePersist:
      if (!p.ok) {
        if (mut_.promote_before_persist) return;
        // Not durable: not primary. Try again later; the operator sees why. A key won for
        // it goes back, or it would block every promotion until its lease ran out.
        if (acquired_) {
          acquired_ = false;
          Emit(c, act::ReleaseLease{"the promotion could not be persisted"});
        }
        next_try_ns_ = c.in.now_ns + policy_.window_ns;
        Note(c, kError, "not_promoting", {{"reason", "persist the new epoch: " + p.error}});
        Go(Phase::kFollowing, "Persisted");
        return;
      }
      if (!mut_.promote_before_persist) Emit(c, act::Restart{next_});
      Note(c, kWarn, "promoted",
           {{"epoch", std::to_string(next_.epoch)},
            {"verdict", std::string(lockwin::VerdictName(promote_verdict_))},
            {"reason", promote_why_}});
      if (policy_.has_on_promote) {
        Go(Phase::kPromoteHook, "Persisted");
        Emit(c, act::RunHook{Hook::kOnPromote, "primary", next_.epoch, promote_why_});
        return;
      }
      Go(Phase::kPromoted, "Persisted");
      Emit(c, act::EndSession{"promoted to primary"});
      return;
    default:
      if (rejoin_persisting_) {
        rejoin_persisting_ = false;
        if (!p.ok) {
          Go(Phase::kFatal, "Persisted");
          Emit(c, act::Fatal{"persist the end of the rejoin: " + p.error});
        }
      }
      return;
  }
}

// ---- both: a peer's HELLO ------------------------------------------------------------------

void Controller::OnHello(Ctx& c, const in::PeerHello& h) {
  auto refuse = [&](std::string why, bool tell = false) {
    Emit(c, act::RefuseSession{std::move(why), tell});
  };
  const wire::Role want = primary() ? wire::Role::kStandby : wire::Role::kPrimary;
  switch (phase_) {
    case Phase::kDemoteHook:
    case Phase::kDemotePersist:
    case Phase::kPromoted:
    case Phase::kDemoted:
    case Phase::kFatal:
      return refuse("this node is changing role");
    case Phase::kQuorumCheck:
    case Phase::kGuard:
    case Phase::kFence:
    case Phase::kArbiterAcquire:
    case Phase::kPromotePersist:
    case Phase::kPromoteHook:
      // The decision was taken on what the window showed; a session opened now would be
      // served at an epoch this node is about to leave.
      return refuse("this node is promoting");
    case Phase::kAdoptEpoch:
      return refuse("this node is persisting the epoch of another session");
    default:
      break;
  }
  if (primary() && h.role == wire::Role::kPrimary) {
    // Two primaries: the higher epoch wins (DESIGN §4).
    if (h.epoch > state_.epoch) {
      BeginDemote(c, wire::RoleChangeReason::kHigherEpoch, h.epoch,
                  "the peer is primary at epoch " + std::to_string(h.epoch), false);
      Emit(c, act::EndSession{"demoted: the peer is primary at a higher epoch"});
      return;
    }
    if (h.epoch < state_.epoch) {
      return refuse("peer is primary at epoch " + std::to_string(h.epoch) + " < " +
                        std::to_string(state_.epoch) + ": told it this node was promoted",
                    true);
    }
    Note(c, kError, "two_primaries", {{"epoch", std::to_string(h.epoch)}});
    return refuse("peer is primary at the same epoch " + std::to_string(h.epoch) +
                  " (two nodes started as primary? see docs/FAILOVER.md)");
  }
  if (primary() && h.inbound) {
    return refuse("this node is primary: it dials the standby, it takes no session");
  }
  if (!primary() && h.epoch < state_.epoch && !mut_.adopt_lower_epoch) {
    return refuse("primary at epoch " + std::to_string(h.epoch) + " < this node's " +
                  std::to_string(state_.epoch) + ": a newer primary exists");
  }
  if (h.role != want) {
    return refuse("peer is " + std::string(h.role == wire::Role::kPrimary ? "primary" : "standby") +
                  " too (two nodes in the same role; see docs/FAILOVER.md)");
  }
  if (primary() && h.epoch > state_.epoch) {
    return refuse("standby has a higher epoch " + std::to_string(h.epoch));
  }
  if (!primary() && mut_.adopt_lower_epoch && h.epoch < state_.epoch) {
    state_.epoch = h.epoch;  // positive control: the epoch goes down
  }
}

}  // namespace hasync::engine::failover
