#include "engine/node/failover_driver.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/log.h"
#include "engine/node/history.h"
#include "engine/node/now.h"

namespace hasync::engine {

namespace {

constexpr int kHookLogLines = 20;  // lines of a hook's output that reach the log

uint64_t NowUnixMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

failover::Input At(int64_t now, FailoverDriver::Event event) {
  return failover::Input{now, NowUnixMs(), std::move(event)};
}

}  // namespace

void FailoverDriver::Start(int64_t now) {
  controller_ = std::make_unique<failover::Controller>(failover::Policy::From(cfg_), state_, now);
}

FailoverDriver::Outcome FailoverDriver::Feed(int64_t now, Event event) {
  namespace act = failover::act;
  Outcome outcome;
  std::vector<failover::Action> actions;
  std::deque<failover::Input> inputs{At(now, std::move(event))};
  for (size_t steps = 0; !inputs.empty(); ++steps) {
    // Each result feeds one step; a chain is a handful long (hook → persist → hook).
    HASYNC_ASSERT(steps < 64);
    actions.clear();
    controller_->Step(inputs.front(), &actions);
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
                done.seen = owner_.Observe(NowNs());
              }
              inputs.push_back(At(NowNs(), std::move(done)));
            } else if constexpr (std::is_same_v<T, act::Persist>) {
              Status saved = SaveNodeState(cfg_.sync.state_dir, x.state);
              if (saved.ok() && !x.history.empty()) RecordHistory(x.state, x.history);
              if (!saved.ok()) persist_error_ = saved;
              inputs.push_back(At(NowNs(), failover::in::Persisted{saved.ok(), saved.ToString()}));
            } else if constexpr (std::is_same_v<T, act::SendDemoteRequest>) {
              owner_.SendDemoteRequest(x.reason);
            } else if constexpr (std::is_same_v<T, act::SendDemoted>) {
              owner_.SendDemoted(x.reason, x.on_demote_ok);
            } else if constexpr (std::is_same_v<T, act::RefuseSession>) {
              outcome.refusal = std::move(x);
            } else if constexpr (std::is_same_v<T, act::EndSession>) {
              outcome.end = std::move(x.why);
            } else if constexpr (std::is_same_v<T, act::Restart>) {
              // The node's run returns; RunNode starts it again in the new role.
              next_state_ = x.state;
            } else if constexpr (std::is_same_v<T, act::SwitchoverReply>) {
              outcome.switchover = std::move(x);
            } else if constexpr (std::is_same_v<T, act::Note>) {
              const Level level = x.level >= 2   ? Level::kError
                                  : x.level == 1 ? Level::kWarn
                                                 : Level::kInfo;
              auto line = Log(level, x.event);
              for (const auto& [k, v] : x.fields) line.kv(k, v);
            } else if constexpr (std::is_same_v<T, act::Fatal>) {
              owner_.Fail(persist_error_.ok() ? Internal(x.why)
                                              : persist_error_.Annotate("persist the role change"));
            } else if constexpr (std::is_same_v<T, act::RenewLease>) {
              if (!owner_.ArbiterRenew(controller_->state().epoch)) NoArbiter();
            } else if constexpr (std::is_same_v<T, act::TryAcquire>) {
              if (!owner_.ArbiterTryAcquire(x.local_epoch)) NoArbiter();
            } else {
              static_assert(std::is_same_v<T, act::ReleaseLease>);
              if (!owner_.ArbiterRelease(x.why)) NoArbiter();
            }
          },
          a);
    }
  }
  // The persisted epoch, role and rejoin mark of the role this node runs in.
  const uint64_t applied = state_.last_applied_seq;
  state_ = controller_->state();
  state_.last_applied_seq = applied;
  return outcome;
}

void FailoverDriver::NoArbiter() {
  // The controller emits arbiter actions only with [arbiter], and a node with [arbiter]
  // starts its arbiter's thread: one without is a wiring bug, not a state to serve in.
  owner_.Fail(Internal("an arbiter action reached a node that has no arbiter"));
}

Status FailoverDriver::LeaseWhileSending(int64_t progress_ns) {
  if (state_.role != NodeRole::kPrimary) return Status::Ok();
  if (next_state_.has_value()) return Unavailable("changing role while sending");
  const int64_t now = NowNs();
  // Bytes the standby took count as hearing it: its own frames wait, unread, behind
  // this send (the loop runs no other callback meanwhile).
  if (now - std::max(controller_->last_heard_ns(), progress_ns) <
      cfg_.failover.lease_ms * 1'000'000) {
    return Status::Ok();
  }
  Feed(now, failover::in::SendBlocked{progress_ns});
  if (next_state_.has_value()) {
    return Unavailable(
        "demoted while sending: the standby took nothing and said nothing "
        "for lease_ms and quorum_check failed");
  }
  return Status::Ok();
}

std::string FailoverDriver::Switchover(int64_t timeout_ms, bool session_live) {
  using nlohmann::json;
  const std::optional<failover::act::SwitchoverReply> reply =
      Feed(NowNs(), failover::in::SwitchoverRequest{timeout_ms * 1'000'000, session_live})
          .switchover;
  if (!reply || !reply->ok) {
    const std::string why = reply ? reply->error : "no answer";
    return json{{"ok", false}, {"error", why}}.dump();
  }
  return json{{"ok", true}, {"state", "draining"}, {"epoch", state_.epoch}}.dump();
}

void FailoverDriver::RecordHistory(const NodeState& s, const std::string& reason) {
  if (s.role != state_.role) metrics_.role_changes.fetch_add(1, std::memory_order_relaxed);
  // After the role itself is persisted; a history that cannot be written costs the
  // operator a line of `hasync history`, not the role change.
  Status st = AppendHistory(cfg_.sync.state_dir,
                            {static_cast<int64_t>(NowUnixMs()), s.role, s.epoch, reason});
  if (!st.ok()) Log(Level::kWarn, "history_not_written").kv("error", st.ToString());
}

HookResult FailoverDriver::RunLoggedHook(std::string_view name, const Command& command,
                                         std::string_view role, uint64_t epoch,
                                         const std::string& reason) {
  HookEnv env{std::string(role), epoch, reason, cfg_.peer.name};
  // A hook blocks the loop (no tick) for up to its timeout. A node holding the leader key
  // (a primary, or a standby whose promotion runs on_promote) goes on renewing its lease
  // every beat meanwhile: the loop is alive, so the lease must not lapse under a slow
  // on_promote or quorum_check. The answers are fed once the hook is over.
  const bool holds_key =
      cfg_.arbiter.enabled &&
      (controller_->primary() || controller_->phase() == failover::Phase::kPromoteHook);
  const uint64_t key_epoch = std::max(controller_->state().epoch, controller_->arbiter_epoch());
  int64_t renewed_ns = NowNs();
  auto r = RunHook(command, env, [&] {
    const int64_t now = NowNs();
    if (service_ != nullptr) service_->Watchdog(now);
    if (holds_key && now - renewed_ns >= cfg_.failover.beat_ms * 1'000'000) {
      renewed_ns = now;
      owner_.ArbiterRenew(key_epoch);
    }
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

}  // namespace hasync::engine
