// FailoverDriver: the node's side of the failover controller (engine/failover/controller.h).
//
// The controller decides every role change and does no I/O; this feeds it one input at a
// time (Feed) and carries out the actions it returns, in order: runs a hook (logged line
// by line, counted, the service manager's watchdog pinged while it runs), persists the
// node state and appends the role history, sends DEMOTE_REQUEST or DEMOTED through the
// node, hands the arbiter's requests to its thread, records a refusal of the HELLO fed, an end of
// the session or the reply to a switchover, logs the controller's notes, and marks the node for a
// restart in its new role or stops it. A hook's and a persist's results go straight back in as the
// next input, before Feed returns, so the order of effects is the one docs/FAILOVER.md gives. After
// each Feed the node state the node runs with (its epoch, role and rejoin mark) is the
// controller's.
//
// What it owns: the controller, the state to start again in (a role change is persisted
// at once but the node changes role only when its run ends: until then the parts of the
// old role are still there), and the last failed persist (it names the reason when the
// controller gives up). What the node sees (Observe) and the session the frames go out
// on are the node's, reached through FailoverDriver::Owner.
//
// Threading: the loop's thread only. Hooks and persists run synchronously on it, as they
// always did.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "engine/config.h"
#include "engine/failover/controller.h"
#include "engine/node/hooks.h"
#include "engine/node/metrics.h"
#include "engine/node/service.h"
#include "engine/node/state.h"
#include "wire/messages.h"

namespace hasync::engine {

class FailoverDriver {
 public:
  // What the driver asks of the node. Every call comes on the loop's thread.
  class Owner {
   public:
    virtual ~Owner() = default;
    // What the node sees at `now` (the controller judges a tick by it, and a promotion
    // again after a guard hook that took a while).
    virtual failover::Observation Observe(int64_t now) = 0;
    // Standby: DEMOTE_REQUEST to the primary on the session, if there is one; a send
    // that fails ends the session.
    virtual void SendDemoteRequest(wire::RoleChangeReason reason) = 0;
    // Primary: DEMOTED to the standby on the open session, if there is one, waiting
    // (bounded) until it has left.
    virtual void SendDemoted(wire::RoleChangeReason reason, bool on_demote_ok) = 0;
    // The node cannot go on (its demotion could not be persisted).
    virtual void Fail(Status why) = 0;
    // [arbiter]: RenewLease, TryAcquire and ReleaseLease, carried out off the loop
    // (engine/node/arbiter_worker.h); the answers come back later through Feed. False:
    // this node has no arbiter.
    virtual bool ArbiterRenew(uint64_t epoch) = 0;
    virtual bool ArbiterTryAcquire(uint64_t local_epoch) = 0;
    virtual bool ArbiterRelease(const std::string& why) = 0;
  };

  using Event = decltype(failover::Input::event);

  // What one Feed said besides the actions it carried out.
  struct Outcome {
    std::optional<std::string> end;  // the session must end, for this reason
    // The connection whose HELLO was fed is refused (RefuseSession).
    std::optional<failover::act::RefuseSession> refusal;
    std::optional<failover::act::SwitchoverReply> switchover;
  };

  // `state`: the node's, rewritten after each Feed from the controller's (its
  // last_applied_seq is the node's own and kept). `service` may be null.
  FailoverDriver(const Config& cfg, ServiceNotifier* service, Metrics& metrics, NodeState& state,
                 Owner& owner)
      : cfg_(cfg), service_(service), metrics_(metrics), state_(state), owner_(owner) {}
  FailoverDriver(const FailoverDriver&) = delete;
  FailoverDriver& operator=(const FailoverDriver&) = delete;

  // Makes the controller from the node's persisted state. The lease of a standby never
  // heard counts from `now`.
  void Start(int64_t now);
  // Feeds `event` at `now` and carries out every action it leads to (see above).
  Outcome Feed(int64_t now, Event event);
  // Primary, while a send waits for the standby (the loop runs no timer meanwhile): the
  // lease check of the tick, judged on the standby's last frame or the last bytes it
  // took. An isolated primary blocked on a full socket kept serving for up to 30 s, long
  // after the standby had promoted. Non-OK once this node demoted: unwind the send.
  Status LeaseWhileSending(int64_t progress_ns);
  // `hasync switchover`: asks the controller, returns the control reply (JSON).
  // `session_live`: the standby is in a live session now.
  std::string Switchover(int64_t timeout_ms, bool session_live);
  // A frame's epoch against this node's (FrameEpoch::kHigher: Feed HigherEpoch).
  failover::FrameEpoch CheckFrameEpoch(uint64_t epoch) const {
    return controller_->CheckFrameEpoch(epoch);
  }
  // Appends a line to the role history after `s` was persisted (also the first start's),
  // counting a role change; a history that cannot be written is logged, not fatal.
  void RecordHistory(const NodeState& s, const std::string& reason);

  // The node changed its role (persisted) and must be started again in it.
  bool changing_role() const { return next_state_.has_value(); }
  const std::optional<NodeState>& next_state() const { return next_state_; }
  const failover::Controller& controller() const { return *controller_; }

 private:
  void NoArbiter();
  HookResult RunLoggedHook(std::string_view name, const Command& command, std::string_view role,
                           uint64_t epoch, const std::string& reason);

  const Config& cfg_;
  ServiceNotifier* const service_;
  Metrics& metrics_;
  NodeState& state_;
  Owner& owner_;
  std::unique_ptr<failover::Controller> controller_;
  // Set: the node is changing role and its run returns so RunNode starts it again.
  std::optional<NodeState> next_state_;
  Status persist_error_;  // the last failed SaveNodeState of a Persist action
};

}  // namespace hasync::engine
