#include "engine/node/node_status.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/node/metrics.h"

namespace hasync::engine {

namespace {

using nlohmann::json;

void AddPrimary(json& j, int64_t now, const PrimaryRole& primary,
                const failover::Controller& controller) {
  const Sender* sender = primary.sender();
  const Journal* journal = primary.journal();
  j["session"] = primary.phase_name();
  uint64_t sent = sender ? sender->last_seq() : 0;
  uint64_t acked = sender ? sender->acked_seq() : 0;
  j["last_sent_seq"] = sent;
  j["last_acked_seq"] = acked;
  j["lag"] = {{"changes_unacked", sent >= acked ? sent - acked : 0},
              {"batches_unacked", sender ? sender->unacked_batches() : 0},
              {"journal_pending", journal ? journal->size() : 0}};
  j["beat"] = primary.beats().beat();
  j["ms_since_standby_heard"] = (now - controller.last_heard_ns()) / 1'000'000;
  if (const Probe* probe = primary.beats().probe()) {
    Probe::Result p = probe->Latest();
    j["probe"] = {{"ok", p.ok},
                  {"token", p.token},
                  {"age_ms", p.ran ? (now - p.finished_ns) / 1'000'000 : -1},
                  {"failure", p.failure}};
  }
  if (controller.draining()) j["switchover"] = "draining";
}

void AddStandby(json& j, int64_t now, const StandbyRole& standby, const Config& cfg,
                const failover::Controller& controller) {
  const Receiver* receiver = standby.receiver();
  j["last_acked_seq"] = receiver ? receiver->last_applied_seq() : 0;
  j["in_resync"] = receiver && receiver->in_resync();
  j["rejoining"] = standby.rejoining();
  const lockwin::DetectorSnapshot snap = standby.window().Snapshot();
  json history = json::array();
  for (const auto& run : snap.history) {
    history.push_back({{"fingerprint", fmt::format("{:016x}", run.fingerprint)},
                       {"first_age_ms", (now - run.first_arrival_ns) / 1'000'000},
                       {"last_age_ms", (now - run.last_arrival_ns) / 1'000'000},
                       {"records", run.arrivals}});
  }
  j["verdict"] = {{"now", lockwin::VerdictName(standby.window().Judge(now))},
                  {"window_ms", cfg.failover.window_ms},
                  {"unchanged_for_ms", snap.run_age_ns / 1'000'000},
                  {"silent_for_ms", snap.silence_ns / 1'000'000},
                  {"records", snap.pushed},
                  {"history", history}};
  if (!controller.last_refusal().empty()) j["not_promoting_because"] = controller.last_refusal();
}

void AddArbiter(json& j, int64_t now, const ArbiterWorker& arbiter, const Config& cfg,
                const failover::Controller& controller) {
  const ArbiterWorker::Snapshot a = arbiter.snapshot();
  json endpoints = json::array();
  int up = 0;
  for (const auto& e : a.endpoints) {
    using State = arbiter::EtcdClient::EndpointHealth::State;
    json one{{"endpoint", e.endpoint},
             {"state", e.state == State::kAnswered ? "answered"
                       : e.state == State::kFailed ? "failed"
                                                   : "untried"}};
    if (e.state == State::kFailed) one["error"] = e.error;
    if (e.state == State::kAnswered) ++up;
    endpoints.push_back(one);
  }
  json out{
      {"kind", "etcd"},
      {"prefix", cfg.arbiter.prefix},
      {"endpoints", endpoints},
      {"endpoints_answering", up},
      {"current_endpoint", a.current_endpoint},
      {"leader", a.leader_known ? json(a.leader) : json(nullptr)},
      {"etcd_epoch", std::max(a.etcd_epoch, controller.arbiter_epoch())},
      {"ms_since_etcd_answered", a.last_answer_ns > 0 ? (now - a.last_answer_ns) / 1'000'000 : -1},
      {"requests", a.requests},
      {"failures", a.failures}};
  if (!a.last_error.empty()) out["last_error"] = a.last_error;
  if (a.lease_id != 0) {
    out["lease_id"] = fmt::format("{:x}", a.lease_id);
    if (a.renewed_sent_ns > 0) {
      out["lease_left_ms"] = std::max<int64_t>(
          0, (a.renewed_sent_ns + cfg.arbiter.ttl_ms() * 1'000'000 - now) / 1'000'000);
    }
  }
  if (controller.primary()) {
    out["self_fence_in_ms"] = (controller.arbiter_fence_at_ns() - now) / 1'000'000;
  }
  j["arbiter"] = out;
}

}  // namespace

std::string NodeStatusJson(int64_t now, const StatusParts& parts) {
  const Config& cfg = *parts.cfg;
  const NodeState& state = *parts.state;
  const failover::Controller& controller = parts.failover->controller();
  json j;
  j["ok"] = true;
  j["node"] = cfg.node.name;
  j["node_id"] = state.node_id;
  j["role"] = NodeRoleName(state.role);
  j["epoch"] = state.epoch;
  j["changing_role"] = parts.failover->changing_role();
  j["failover_phase"] = failover::PhaseName(controller.phase());
  const Peer* session = parts.session;
  const bool connected = session && !session->dead && session->conn->open();
  json peer{
      {"name", cfg.peer.name}, {"address", cfg.peer.address.ToString()}, {"connected", connected}};
  if (connected) peer["epoch"] = session->conn->peer_epoch();
  j["peer"] = peer;
  if (parts.primary) {
    AddPrimary(j, now, *parts.primary, controller);
  } else {
    AddStandby(j, now, *parts.standby, cfg, controller);
  }
  if (parts.arbiter != nullptr) AddArbiter(j, now, *parts.arbiter, cfg, controller);
  // Everything ever kept on this node (all epochs), bounded walk.
  j["quarantined_files"] = CountQuarantined(cfg.sync.state_dir);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace hasync::engine
