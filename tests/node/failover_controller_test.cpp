// failover::Controller, rule by rule: each test feeds inputs by hand and checks the
// actions. The deterministic simulator (tests/sim) checks the invariants over millions
// of interleavings; these pin the individual rules docs/FAILOVER.md states.
#include "engine/failover/controller.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hasync::engine::failover {
namespace {

constexpr int64_t kMs = 1'000'000;

Policy TestPolicy() {
  Policy p;
  p.window_ns = 2'000 * kMs;
  p.beat_ns = 250 * kMs;
  p.lease_ns = 1'200 * kMs;
  p.redial_max_ns = 500 * kMs;
  return p;
}

NodeState Standby(uint64_t epoch) {
  NodeState s;
  s.node_id = 7;
  s.epoch = epoch;
  s.role = NodeRole::kStandby;
  return s;
}

NodeState Primary(uint64_t epoch) {
  NodeState s = Standby(epoch);
  s.role = NodeRole::kPrimary;
  return s;
}

class Driver {
 public:
  Driver(const Policy& p, const NodeState& s) : c(p, s, 0) {}

  std::vector<Action> Feed(int64_t now_ms, decltype(Input::event) e) {
    std::vector<Action> out;
    c.Step(Input{now_ms * kMs, 1'000'000 + static_cast<uint64_t>(now_ms), std::move(e)}, &out);
    return out;
  }
  std::vector<Action> Tick(int64_t now_ms, Observation seen) {
    return Feed(now_ms, in::Tick{seen});
  }

  Controller c;
};

template <typename T>
const T* Find(const std::vector<Action>& actions) {
  for (const auto& a : actions) {
    if (const auto* t = std::get_if<T>(&a)) return t;
  }
  return nullptr;
}

const act::RunHook* FindHook(const std::vector<Action>& actions, Hook hook) {
  for (const auto& a : actions) {
    if (const auto* t = std::get_if<act::RunHook>(&a); t != nullptr && t->hook == hook) return t;
  }
  return nullptr;
}

// By value: a missing action is a test failure, never a null dereference.
template <typename T>
T Get(const std::vector<Action>& actions) {
  const T* t = Find<T>(actions);
  if (t == nullptr) {
    ADD_FAILURE() << "no such action";
    return T{};
  }
  return *t;
}

act::RunHook GetHook(const std::vector<Action>& actions, Hook hook) {
  const act::RunHook* t = FindHook(actions, hook);
  if (t == nullptr) {
    ADD_FAILURE() << "hook " << HookName(hook) << " not run";
    return {};
  }
  return *t;
}

bool Noted(const std::vector<Action>& actions, std::string_view event, std::string_view text = "") {
  for (const auto& a : actions) {
    const auto* n = std::get_if<act::Note>(&a);
    if (n == nullptr || n->event != event) continue;
    if (text.empty()) return true;
    for (const auto& [k, v] : n->fields) {
      if (v.find(text) != std::string::npos) return true;
    }
  }
  return false;
}

Observation Silent() {
  Observation o;
  o.verdict = lockwin::Verdict::kSilent;
  o.holds_copy = true;
  return o;
}

TEST(FailoverController, AStandbyThatNeverJoinedNeverPromotes) {
  Policy p = TestPolicy();
  p.promote_on_silence_unguarded = true;
  Driver d(p, Standby(0));
  auto out = d.Tick(5'000, Silent());
  EXPECT_TRUE(Noted(out, "not_promoting", "never joined"));
  EXPECT_EQ(Find<act::Persist>(out), nullptr);
  EXPECT_EQ(d.c.phase(), Phase::kFollowing);
}

TEST(FailoverController, SilenceWithoutGuardsIsNotEnough) {
  Driver d(TestPolicy(), Standby(3));
  auto out = d.Tick(5'000, Silent());
  EXPECT_TRUE(Noted(out, "not_promoting", "configure fence or quorum_check"));
  EXPECT_EQ(d.c.phase(), Phase::kFollowing);
}

TEST(FailoverController, NoCopyNoPromotion) {
  Policy p = TestPolicy();
  p.has_quorum_check = true;
  Driver d(p, Standby(3));
  Observation o = Silent();
  o.holds_copy = false;
  auto out = d.Tick(5'000, o);
  EXPECT_TRUE(Noted(out, "not_promoting", "no full copy"));
  EXPECT_EQ(FindHook(out, Hook::kQuorumCheck), nullptr);
}

TEST(FailoverController, SilencePromotesAfterQuorumCheckWithTheEpochPersistedFirst) {
  Policy p = TestPolicy();
  p.has_quorum_check = true;
  p.has_on_promote = true;
  Driver d(p, Standby(3));
  auto out = d.Tick(5'000, Silent());
  const auto* q = FindHook(out, Hook::kQuorumCheck);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->role, "standby");
  EXPECT_EQ(d.c.phase(), Phase::kQuorumCheck);
  out = d.Feed(5'100, in::HookDone{Hook::kQuorumCheck, HookOutcome::kOk, ""});
  const auto* persist = Find<act::Persist>(out);
  ASSERT_NE(persist, nullptr);
  EXPECT_EQ(persist->state.epoch, 4u);
  EXPECT_EQ(persist->state.role, NodeRole::kPrimary);
  EXPECT_NE(persist->state.last_failover_unix_ms, 0u);
  EXPECT_EQ(Find<act::Restart>(out), nullptr) << "nothing acts on epoch 4 before it is durable";
  out = d.Feed(5'110, in::Persisted{true, ""});
  ASSERT_NE(Find<act::Restart>(out), nullptr);
  EXPECT_EQ(Get<act::Restart>(out).state.epoch, 4u);
  EXPECT_TRUE(Noted(out, "promoted"));
  ASSERT_NE(FindHook(out, Hook::kOnPromote), nullptr);
  EXPECT_EQ(GetHook(out, Hook::kOnPromote).epoch, 4u);
  out = d.Feed(5'200, in::HookDone{Hook::kOnPromote, HookOutcome::kFailed, "exit 1"});
  EXPECT_TRUE(Noted(out, "on_promote_failed"));
  EXPECT_NE(Find<act::EndSession>(out), nullptr);
  EXPECT_EQ(d.c.phase(), Phase::kPromoted);
  EXPECT_TRUE(d.c.finished());
}

TEST(FailoverController, AFailedQuorumCheckWaitsFourBeats) {
  Policy p = TestPolicy();
  p.has_quorum_check = true;
  Driver d(p, Standby(3));
  d.Tick(5'000, Silent());
  auto out = d.Feed(5'050, in::HookDone{Hook::kQuorumCheck, HookOutcome::kTimedOut, "timed out"});
  EXPECT_TRUE(Noted(out, "not_promoting", "isolated"));
  EXPECT_EQ(d.c.phase(), Phase::kFollowing);
  EXPECT_EQ(FindHook(d.Tick(5'900, Silent()), Hook::kQuorumCheck), nullptr);
  EXPECT_NE(FindHook(d.Tick(6'060, Silent()), Hook::kQuorumCheck), nullptr);
}

TEST(FailoverController, ThePrimaryHeardAgainDuringQuorumCheckStopsThePromotion) {
  Policy p = TestPolicy();
  p.has_quorum_check = true;
  Driver d(p, Standby(3));
  d.Tick(5'000, Silent());
  Observation alive;
  alive.verdict = lockwin::Verdict::kAlive;
  alive.holds_copy = true;
  d.Tick(5'020, alive);  // the tick while the hook runs (the simulator's asynchronous hooks)
  auto out = d.Feed(5'100, in::HookDone{Hook::kQuorumCheck, HookOutcome::kOk, ""});
  EXPECT_EQ(Find<act::Persist>(out), nullptr);
  EXPECT_TRUE(Noted(out, "not_promoting", "heard again"));
}

TEST(FailoverController, BytesOfThePrimaryWaitingAfterASlowGuardStopThePromotion) {
  Policy p = TestPolicy();
  p.has_quorum_check = true;
  Driver d(p, Standby(3));
  d.Tick(5'000, Silent());
  Observation after = Silent();
  after.caught_up = false;  // the node's socket holds unread bytes of the primary
  auto out = d.Feed(9'000, in::HookDone{Hook::kQuorumCheck, HookOutcome::kOk, "exit 0", after});
  EXPECT_EQ(Find<act::Persist>(out), nullptr);
  EXPECT_TRUE(Noted(out, "not_promoting", "heard again"));
  EXPECT_EQ(d.c.phase(), Phase::kFollowing);
}

TEST(FailoverController, AStalledPrimaryIsAskedToStepDownAndItsDemotedSkipsTheFence) {
  Policy p = TestPolicy();
  p.has_fence = true;
  Driver d(p, Standby(3));
  Observation stalled = Silent();
  stalled.verdict = lockwin::Verdict::kStalled;
  stalled.session_open = true;
  auto out = d.Tick(5'000, stalled);
  EXPECT_NE(Find<act::SendDemoteRequest>(out), nullptr);
  EXPECT_EQ(d.c.phase(), Phase::kAwaitDemoted);
  d.Feed(5'100, in::PeerDemoted{wire::RoleChangeReason::kStalled, true});
  out = d.Tick(5'120, stalled);
  EXPECT_EQ(FindHook(out, Hook::kFence), nullptr) << "the old primary confirmed";
  EXPECT_NE(Find<act::Persist>(out), nullptr);
}

TEST(FailoverController, ADemotedWhoseOnDemoteFailedIsFencedFirst) {
  Policy p = TestPolicy();
  p.has_fence = true;
  Driver d(p, Standby(3));
  Observation stalled = Silent();
  stalled.verdict = lockwin::Verdict::kStalled;
  stalled.session_open = true;
  d.Tick(5'000, stalled);
  d.Feed(5'100, in::PeerDemoted{wire::RoleChangeReason::kStalled, false});
  auto out = d.Tick(5'120, stalled);
  EXPECT_NE(FindHook(out, Hook::kFence), nullptr)
      << "its scheduler may still run: on_demote did not confirm it stopped";
  out = d.Feed(5'300, in::HookDone{Hook::kFence, HookOutcome::kFailed, "exit 2"});
  EXPECT_TRUE(Noted(out, "not_promoting", "fence failed"));
  EXPECT_EQ(Find<act::Persist>(out), nullptr);
}

TEST(FailoverController, AntiFlapHoldsAnAutomaticPromotion) {
  Policy p = TestPolicy();
  p.has_quorum_check = true;
  p.min_failover_interval_ms = 300'000;
  NodeState s = Standby(3);
  s.last_failover_unix_ms = 1'000'000;  // Driver's wall clock starts at 1,000,000 ms
  Driver d(p, s);
  auto out = d.Tick(60'000, Silent());
  EXPECT_TRUE(Noted(out, "not_promoting", "min_failover_interval_ms"));
  EXPECT_NE(FindHook(d.Tick(301'000, Silent()), Hook::kQuorumCheck), nullptr);
}

TEST(FailoverController, AnIsolatedPrimarySelfFencesWhenQuorumCheckFails) {
  Policy p = TestPolicy();
  p.has_quorum_check = true;
  p.has_on_demote = true;
  Driver d(p, Primary(5));
  Observation o;
  EXPECT_TRUE(d.Tick(1'000, o).empty());
  auto out = d.Tick(1'300, o);
  ASSERT_NE(FindHook(out, Hook::kQuorumCheck), nullptr);
  EXPECT_EQ(GetHook(out, Hook::kQuorumCheck).role, "primary");
  out = d.Feed(1'400, in::HookDone{Hook::kQuorumCheck, HookOutcome::kFailed, "exit 1"});
  EXPECT_TRUE(Noted(out, "demoting", "self-fencing"));
  ASSERT_NE(FindHook(out, Hook::kOnDemote), nullptr);
  out = d.Feed(1'500, in::HookDone{Hook::kOnDemote, HookOutcome::kOk, ""});
  const auto* persist = Find<act::Persist>(out);
  ASSERT_NE(persist, nullptr);
  EXPECT_EQ(persist->state.role, NodeRole::kStandby);
  EXPECT_EQ(persist->state.rejoin_epoch, 5u) << "what it did as primary is quarantined on rejoin";
  EXPECT_EQ(Find<act::SendDemoted>(out), nullptr) << "nobody asked";
  out = d.Feed(1'510, in::Persisted{true, ""});
  EXPECT_NE(Find<act::Restart>(out), nullptr);
  EXPECT_EQ(d.c.state().role, NodeRole::kPrimary) << "this incarnation ends as it ran";
}

TEST(FailoverController, APassingQuorumCheckKeepsThePrimaryServingAndRunsAgainEveryLease) {
  Policy p = TestPolicy();  // lease 1,200 ms
  p.has_quorum_check = true;
  p.has_on_demote = true;
  Driver d(p, Primary(5));
  Observation o;
  EXPECT_EQ(FindHook(d.Tick(1'100, o), Hook::kQuorumCheck), nullptr) << "lease not over";
  EXPECT_NE(FindHook(d.Tick(1'300, o), Hook::kQuorumCheck), nullptr);
  auto out = d.Feed(1'400, in::HookDone{Hook::kQuorumCheck, HookOutcome::kOk, ""});
  EXPECT_TRUE(Noted(out, "lease_expired", "keep serving"));
  EXPECT_EQ(d.c.phase(), Phase::kServing);
  // The same silence: checked again one lease after the last check began, logged once.
  EXPECT_EQ(FindHook(d.Tick(2'400, o), Hook::kQuorumCheck), nullptr);
  EXPECT_NE(FindHook(d.Tick(2'520, o), Hook::kQuorumCheck), nullptr);
  out = d.Feed(2'600, in::HookDone{Hook::kQuorumCheck, HookOutcome::kOk, ""});
  EXPECT_FALSE(Noted(out, "lease_expired"));
  // This node is cut off too now: the next check fails and it stops.
  EXPECT_NE(FindHook(d.Tick(3'740, o), Hook::kQuorumCheck), nullptr);
  out = d.Feed(3'800, in::HookDone{Hook::kQuorumCheck, HookOutcome::kFailed, "exit 1"});
  EXPECT_NE(FindHook(out, Hook::kOnDemote), nullptr);
  EXPECT_EQ(d.c.phase(), Phase::kDemoteHook);
}

TEST(FailoverController, AStandbyHeardAgainEndsTheSilence) {
  Policy p = TestPolicy();
  p.has_quorum_check = true;
  Driver d(p, Primary(5));
  Observation o;
  d.Tick(1'300, o);
  d.Feed(1'400, in::HookDone{Hook::kQuorumCheck, HookOutcome::kOk, ""});
  auto out = d.Feed(1'500, in::PeerHeard{});
  EXPECT_TRUE(Noted(out, "lease_renewed"));
  EXPECT_EQ(FindHook(d.Tick(2'600, o), Hook::kQuorumCheck), nullptr) << "a new lease";
  EXPECT_NE(FindHook(d.Tick(2'720, o), Hook::kQuorumCheck), nullptr) << "a new silence";
}

TEST(FailoverController, ASwitchoverWhoseOnDemoteFailsDoesNotHandOver) {
  Policy p = TestPolicy();
  p.has_on_demote = true;
  p.has_on_promote = true;
  Driver d(p, Primary(5));
  d.Feed(10, in::SwitchoverRequest{10'000 * kMs, true});
  auto out = d.Feed(30, in::HookDone{Hook::kOnDemote, HookOutcome::kFailed, "exit 4"});
  EXPECT_FALSE(Get<act::SwitchoverReply>(out).ok);
  EXPECT_NE(Get<act::SwitchoverReply>(out).error.find("may still run"), std::string::npos);
  EXPECT_NE(FindHook(out, Hook::kOnPromote), nullptr) << "what on_demote stopped comes back";
  d.Feed(40, in::HookDone{Hook::kOnPromote, HookOutcome::kOk, ""});
  EXPECT_EQ(d.c.phase(), Phase::kServing);
}

TEST(FailoverController, ADemoteRequestDuringASwitchoverHookIsCarriedOutAfterIt) {
  Policy p = TestPolicy();
  p.has_on_demote = true;
  Driver d(p, Primary(5));
  d.Feed(10, in::SwitchoverRequest{10'000 * kMs, true});
  EXPECT_TRUE(d.Feed(20, in::DemoteRequested{wire::RoleChangeReason::kStalled}).empty());
  auto out = d.Feed(30, in::HookDone{Hook::kOnDemote, HookOutcome::kOk, ""});
  EXPECT_NE(Find<act::SendDemoted>(out), nullptr);
  EXPECT_NE(Find<act::Persist>(out), nullptr);
  EXPECT_EQ(FindHook(out, Hook::kOnDemote), nullptr) << "on_demote ran at the switchover's start";
}

TEST(FailoverController, AHandoverNotTakenLeavesTheOldPrimaryWaitingToJoin) {
  Policy p = TestPolicy();
  Driver d(p, Primary(5));
  d.Feed(10, in::SwitchoverRequest{10'000 * kMs, true});
  Observation o;
  o.session_live = o.drained = true;
  d.Feed(20, in::PeerHeard{});
  d.Tick(100, o);
  auto out = d.Tick(400, o);
  const auto* persist = Find<act::Persist>(out);
  ASSERT_NE(persist, nullptr);
  EXPECT_TRUE(persist->state.handed_over);
  EXPECT_EQ(persist->state.rejoin_epoch, 0u);
  // As a standby, it does not promote by itself before it has joined the new primary.
  NodeState next = persist->state;
  Policy q = TestPolicy();
  q.promote_on_silence_unguarded = true;
  Driver s(q, next);
  Observation silent = Silent();
  silent.rejoining = true;  // the node reports handed_over as rejoining
  EXPECT_TRUE(Noted(s.Tick(9'000, silent), "not_promoting", "rejoining"));
  s.Feed(9'100, in::Rejoined{});
  EXPECT_FALSE(s.c.state().handed_over);
}

TEST(FailoverController, AVetoedHandoverIsNotConfirmedForTheNextTry) {
  Policy p = TestPolicy();
  p.has_promote_guard = true;
  p.has_quorum_check = true;
  Driver d(p, Standby(3));
  d.Feed(10, in::PeerDemoted{wire::RoleChangeReason::kSwitchover, true});
  Observation alive = Silent();
  alive.verdict = lockwin::Verdict::kAlive;
  auto out = d.Tick(20, alive);
  ASSERT_NE(FindHook(out, Hook::kPromoteGuard), nullptr);
  d.Feed(30, in::HookDone{Hook::kPromoteGuard, HookOutcome::kFailed, "exit 1"});
  // A window later, silent: the old DEMOTED no longer counts, quorum_check runs first.
  out = d.Tick(3'000, Silent());
  EXPECT_NE(FindHook(out, Hook::kQuorumCheck), nullptr);
  EXPECT_EQ(FindHook(out, Hook::kPromoteGuard), nullptr);
}

TEST(FailoverController, EpochsDecideBetweenTwoPrimaries) {
  Policy p = TestPolicy();
  {
    Driver d(p, Primary(5));
    auto out = d.Feed(10, in::PeerHello{wire::Role::kPrimary, 4, true});
    ASSERT_NE(Find<act::RefuseSession>(out), nullptr);
    EXPECT_TRUE(Get<act::RefuseSession>(out).tell_promoted);
  }
  {
    Driver d(p, Primary(5));
    auto out = d.Feed(10, in::PeerHello{wire::Role::kPrimary, 6, true});
    EXPECT_NE(Find<act::EndSession>(out), nullptr);
    const auto* persist = Find<act::Persist>(out);
    ASSERT_NE(persist, nullptr);
    EXPECT_EQ(persist->state.epoch, 6u);
    EXPECT_EQ(persist->state.role, NodeRole::kStandby);
  }
  {
    Driver d(p, Primary(5));
    auto out = d.Feed(10, in::PeerHello{wire::Role::kPrimary, 5, true});
    EXPECT_TRUE(Noted(out, "two_primaries"));
    EXPECT_NE(Find<act::RefuseSession>(out), nullptr);
  }
  {
    Driver d(p, Standby(5));
    auto out = d.Feed(10, in::PeerHello{wire::Role::kPrimary, 4, true});
    ASSERT_NE(Find<act::RefuseSession>(out), nullptr);
    EXPECT_NE(Get<act::RefuseSession>(out).why.find("newer primary"), std::string::npos);
    EXPECT_EQ(d.c.CheckFrameEpoch(4), FrameEpoch::kStale);
  }
}

TEST(FailoverController, AStandbyPersistsAHigherEpochBeforeTakingIt) {
  Driver d(TestPolicy(), Standby(5));
  auto out = d.Feed(10, in::SessionOpened{7});
  ASSERT_NE(Find<act::Persist>(out), nullptr);
  EXPECT_EQ(d.c.state().epoch, 5u);
  d.Feed(11, in::Persisted{true, ""});
  EXPECT_EQ(d.c.state().epoch, 7u);
  // A failed persist ends the session and keeps the old epoch.
  Driver e(TestPolicy(), Standby(5));
  e.Feed(10, in::SessionOpened{7});
  out = e.Feed(11, in::Persisted{false, "EIO"});
  EXPECT_NE(Find<act::EndSession>(out), nullptr);
  EXPECT_EQ(e.c.state().epoch, 5u);
}

TEST(FailoverController, ASwitchoverStopsTheSchedulerDrainsAndHandsOver) {
  Policy p = TestPolicy();
  p.has_on_demote = true;
  Driver d(p, Primary(5));
  auto out = d.Feed(10, in::SwitchoverRequest{10'000 * kMs, false});
  ASSERT_NE(Find<act::SwitchoverReply>(out), nullptr);
  EXPECT_FALSE(Get<act::SwitchoverReply>(out).ok);
  out = d.Feed(20, in::SwitchoverRequest{10'000 * kMs, true});
  ASSERT_NE(FindHook(out, Hook::kOnDemote), nullptr);
  out = d.Feed(30, in::HookDone{Hook::kOnDemote, HookOutcome::kOk, ""});
  ASSERT_NE(Find<act::SwitchoverReply>(out), nullptr);
  EXPECT_TRUE(Get<act::SwitchoverReply>(out).ok);
  Observation o;
  o.session_live = true;
  d.Feed(40, in::PeerHeard{});
  EXPECT_EQ(Find<act::SendDemoted>(d.Tick(100, o)), nullptr) << "not drained";
  o.drained = true;
  d.Tick(200, o);
  out = d.Tick(420, o);
  const auto* demoted = Find<act::SendDemoted>(out);
  ASSERT_NE(demoted, nullptr);
  EXPECT_EQ(demoted->reason, wire::RoleChangeReason::kSwitchover);
  EXPECT_TRUE(demoted->on_demote_ok);
  const auto* persist = Find<act::Persist>(out);
  ASSERT_NE(persist, nullptr);
  EXPECT_EQ(persist->state.rejoin_epoch, 0u) << "drained: nothing to quarantine";
  EXPECT_EQ(FindHook(out, Hook::kOnDemote), nullptr) << "on_demote ran when it began";
}

TEST(FailoverController, ASwitchoverThatTimesOutRestartsTheScheduler) {
  Policy p = TestPolicy();
  p.has_on_promote = true;
  Driver d(p, Primary(5));
  d.Feed(10, in::SwitchoverRequest{1'000 * kMs, true});
  EXPECT_EQ(d.c.phase(), Phase::kDraining);
  Observation o;
  o.session_live = true;
  d.Feed(500, in::PeerHeard{});
  auto out = d.Tick(1'100, o);
  EXPECT_TRUE(Noted(out, "switchover", "aborted"));
  ASSERT_NE(FindHook(out, Hook::kOnPromote), nullptr);
  d.Feed(1'200, in::HookDone{Hook::kOnPromote, HookOutcome::kOk, ""});
  EXPECT_EQ(d.c.phase(), Phase::kServing);
}

TEST(FailoverController, EveryPhaseHasAnExitOrIsFinal) {
  for (int i = 0; i <= static_cast<int>(Phase::kFatal); ++i) {
    const auto phase = static_cast<Phase>(i);
    const bool final =
        phase == Phase::kPromoted || phase == Phase::kDemoted || phase == Phase::kFatal;
    bool exits = false;
    for (const auto& t : Transitions()) exits = exits || t.from == phase;
    EXPECT_EQ(exits, !final) << PhaseName(phase);
  }
}

// ---- the arbiter (docs/FAILOVER.md "The arbiter") -------------------------------------------

Policy ArbiterPolicy() {
  Policy p = TestPolicy();
  p.has_arbiter = true;
  p.has_on_demote = true;
  p.arbiter_fence_after_ns = 3'900 * kMs;  // ttl 5 s - on_demote 1 s - drift 100 ms
  return p;
}

bool Has(const std::vector<Action>& out, Hook hook) { return FindHook(out, hook) != nullptr; }

TEST(FailoverArbiter, ThePrimaryRenewsEveryBeatAndSelfFencesBeforeTheLeaseCanExpire) {
  Driver d(ArbiterPolicy(), Primary(5));
  d.Feed(0, in::ArbiterRenewed{0});
  Observation o;
  EXPECT_NE(Find<act::RenewLease>(d.Tick(0, o)), nullptr);
  EXPECT_EQ(Find<act::RenewLease>(d.Tick(100, o)), nullptr) << "once a beat, not every tick";
  EXPECT_NE(Find<act::RenewLease>(d.Tick(250, o)), nullptr);
  d.Feed(900, in::ArbiterRenewed{250 * kMs});  // answered late: counts from its send time
  EXPECT_EQ(d.c.arbiter_fence_at_ns(), 4'150 * kMs);
  // Renewals fail from here on: nothing changes until the deadline...
  for (int64_t t = 500; t < 4'150; t += 250) {
    auto out = d.Tick(t, o);
    ASSERT_FALSE(Has(out, Hook::kOnDemote)) << "at " << t << " ms";
    ASSERT_EQ(d.c.phase(), Phase::kServing);
  }
  // ... and at ttl - on_demote - drift after the last good send, on_demote starts.
  auto out = d.Tick(4'150, o);
  ASSERT_TRUE(Has(out, Hook::kOnDemote));
  EXPECT_TRUE(Noted(out, "demoting", "no lease renewal succeeded for 3900 ms"));
  EXPECT_EQ(d.c.phase(), Phase::kDemoteHook);
  out = d.Feed(4'300, in::HookDone{Hook::kOnDemote, HookOutcome::kOk});
  ASSERT_NE(Find<act::Persist>(out), nullptr);
  EXPECT_EQ(Get<act::Persist>(out).state.role, NodeRole::kStandby);
  EXPECT_EQ(Get<act::Persist>(out).state.epoch, 5u);
  out = d.Feed(4'310, in::Persisted{true, ""});
  EXPECT_NE(Find<act::ReleaseLease>(out), nullptr) << "scheduler stopped: give the key back";
  EXPECT_NE(Find<act::Restart>(out), nullptr);
}

TEST(FailoverArbiter, ARenewalFromTheFutureOrAnOlderOneMovesNothing) {
  Driver d(ArbiterPolicy(), Primary(5));
  d.Feed(1'000, in::ArbiterRenewed{1'000 * kMs});
  d.Feed(1'100, in::ArbiterRenewed{900 * kMs});     // an older send answered later
  d.Feed(1'200, in::ArbiterRenewed{9'000 * kMs});   // sent "later than now": ignored
  EXPECT_EQ(d.c.arbiter_fence_at_ns(), 4'900 * kMs);
  EXPECT_FALSE(Has(d.Tick(4'899, {}), Hook::kOnDemote));
  EXPECT_TRUE(Has(d.Tick(4'900, {}), Hook::kOnDemote));
}

TEST(FailoverArbiter, APrimaryThatKnowsOfNoLeaseDoesNotServe) {
  Driver d(ArbiterPolicy(), Primary(5));
  auto out = d.Tick(0, {});
  EXPECT_TRUE(Has(out, Hook::kOnDemote));
  EXPECT_TRUE(Noted(out, "demoting", "holds no lease it knows of"));
}

TEST(FailoverArbiter, ALostKeyOrAHigherEpochInEtcdDemotesAtOnce) {
  {
    Driver d(ArbiterPolicy(), Primary(5));
    d.Feed(0, in::ArbiterRenewed{0});
    auto out = d.Feed(10, in::ArbiterLost{"the leader key names mu02"});
    EXPECT_TRUE(Has(out, Hook::kOnDemote));
    EXPECT_TRUE(Noted(out, "demoting", "the leader key names mu02"));
  }
  {
    Driver d(ArbiterPolicy(), Primary(5));
    d.Feed(0, in::ArbiterRenewed{0});
    EXPECT_FALSE(Has(d.Feed(10, in::ArbiterEpoch{5}), Hook::kOnDemote));
    auto out = d.Feed(20, in::ArbiterEpoch{6});
    ASSERT_TRUE(Has(out, Hook::kOnDemote));
    out = d.Feed(30, in::HookDone{Hook::kOnDemote, HookOutcome::kFailed});
    ASSERT_NE(Find<act::Persist>(out), nullptr);
    EXPECT_EQ(Get<act::Persist>(out).state.epoch, 6u);
    out = d.Feed(40, in::Persisted{true, ""});
    EXPECT_EQ(Find<act::ReleaseLease>(out), nullptr)
        << "on_demote failed: the scheduler may run, the lease must run out by itself";
  }
}

TEST(FailoverArbiter, TheStandbyPromotesOnlyByWinningTheLeaderKey) {
  Driver d(ArbiterPolicy(), Standby(3));  // no fence, no quorum_check: the arbiter guards
  auto out = d.Tick(5'000, Silent());
  ASSERT_NE(Find<act::TryAcquire>(out), nullptr);
  EXPECT_EQ(Get<act::TryAcquire>(out).local_epoch, 3u);
  EXPECT_EQ(Find<act::Persist>(out), nullptr);
  EXPECT_EQ(d.c.phase(), Phase::kArbiterAcquire);
  // A HELLO now is refused: the decision is under way.
  EXPECT_NE(Find<act::RefuseSession>(d.Feed(5'010, in::PeerHello{wire::Role::kPrimary, 3})),
            nullptr);
  // The old primary's lease lives: keep waiting, and ask again a beat later.
  out = d.Feed(5'020, in::ArbiterHeld{"mu01", 3});
  EXPECT_TRUE(Noted(out, "not_promoting", "held by mu01 at epoch 3"));
  EXPECT_EQ(d.c.phase(), Phase::kFollowing);
  EXPECT_EQ(Find<act::TryAcquire>(d.Tick(5'100, Silent())), nullptr);
  ASSERT_NE(Find<act::TryAcquire>(d.Tick(5'270, Silent())), nullptr);
  out = d.Feed(5'280, in::ArbiterUnreachable{"no member answered within 1000 ms"});
  EXPECT_TRUE(Noted(out, "not_promoting", "nobody promotes without it"));
  ASSERT_NE(Find<act::TryAcquire>(d.Tick(5'600, Silent())), nullptr);
  // Won: the epoch is etcd's, not local + 1.
  out = d.Feed(5'610, in::ArbiterAcquired{7, 5'600 * kMs});
  ASSERT_NE(Find<act::Persist>(out), nullptr);
  EXPECT_EQ(Get<act::Persist>(out).state.epoch, 7u);
  EXPECT_EQ(Get<act::Persist>(out).state.role, NodeRole::kPrimary);
  out = d.Feed(5'620, in::Persisted{true, ""});
  ASSERT_NE(Find<act::Restart>(out), nullptr);
  EXPECT_EQ(Get<act::Restart>(out).state.epoch, 7u);
}

TEST(FailoverArbiter, AKeyWonButNotPersistedOrAtAStaleEpochIsGivenBack) {
  {
    Driver d(ArbiterPolicy(), Standby(3));
    ASSERT_NE(Find<act::TryAcquire>(d.Tick(5'000, Silent())), nullptr);
    d.Feed(5'010, in::ArbiterAcquired{4, 5'000 * kMs});
    auto out = d.Feed(5'020, in::Persisted{false, "No space left on device"});
    EXPECT_NE(Find<act::ReleaseLease>(out), nullptr);
    EXPECT_EQ(Find<act::Restart>(out), nullptr);
    EXPECT_EQ(d.c.phase(), Phase::kFollowing);
  }
  {
    Driver d(ArbiterPolicy(), Standby(3));
    ASSERT_NE(Find<act::TryAcquire>(d.Tick(5'000, Silent())), nullptr);
    auto out = d.Feed(5'010, in::ArbiterAcquired{3, 5'000 * kMs});
    EXPECT_NE(Find<act::ReleaseLease>(out), nullptr);
    EXPECT_EQ(Find<act::Persist>(out), nullptr);
    EXPECT_EQ(d.c.phase(), Phase::kFollowing);
  }
}

TEST(FailoverArbiter, TheGuardsRunBeforeTheKeyIsTaken) {
  Policy p = ArbiterPolicy();
  p.has_promote_guard = true;
  p.has_fence = true;
  Driver d(p, Standby(3));
  auto out = d.Tick(5'000, Silent());
  ASSERT_TRUE(Has(out, Hook::kPromoteGuard));
  EXPECT_EQ(Find<act::TryAcquire>(out), nullptr);
  out = d.Feed(5'100, in::HookDone{Hook::kPromoteGuard, HookOutcome::kOk, "", Silent()});
  ASSERT_TRUE(Has(out, Hook::kFence));
  out = d.Feed(5'200, in::HookDone{Hook::kFence, HookOutcome::kOk});
  EXPECT_NE(Find<act::TryAcquire>(out), nullptr);
}

TEST(FailoverArbiter, FramesBelowTheEpochEtcdHoldsAreStale) {
  Driver d(ArbiterPolicy(), Standby(3));
  EXPECT_EQ(d.c.CheckFrameEpoch(3), FrameEpoch::kAccept);
  d.Feed(10, in::ArbiterEpoch{5});
  EXPECT_EQ(d.c.arbiter_epoch(), 5u);
  EXPECT_EQ(d.c.CheckFrameEpoch(4), FrameEpoch::kStale);
  EXPECT_EQ(d.c.CheckFrameEpoch(5), FrameEpoch::kAccept);
  d.Feed(20, in::ArbiterEpoch{4});  // never down
  EXPECT_EQ(d.c.arbiter_epoch(), 5u);
}

}  // namespace
}  // namespace hasync::engine::failover
