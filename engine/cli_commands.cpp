// Subcommand logic for the hasync CLI. See cli_commands.h.
#include "engine/cli_commands.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/keyfile.h"
#include "engine/log.h"
#include "engine/node/control.h"
#include "engine/node/history.h"
#include "engine/node/node.h"
#include "engine/node/startup.h"

namespace hasync::engine {
namespace {

std::string Join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += sep;
    out += v[i];
  }
  return out;
}

}  // namespace

std::string OneLineMessage(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? ' ' : c;
  }
  return out;
}

std::string ConfigSummary(const Config& cfg) {
  std::vector<std::string> hooks;
  const std::pair<std::string_view, const Command*> all[] = {
      {"promote_guard", &cfg.hooks.promote_guard}, {"fence", &cfg.hooks.fence},
      {"on_promote", &cfg.hooks.on_promote},       {"on_demote", &cfg.hooks.on_demote},
      {"quorum_check", &cfg.hooks.quorum_check},
  };
  for (const auto& [name, cmd] : all) {
    if (cmd->configured()) hooks.emplace_back(name);
  }
  std::string out;
  out += fmt::format("config {}: OK\n", cfg.origin);
  out += fmt::format("  node {} listens on {}; peer {} at {}\n", cfg.node.name,
                     cfg.node.listen.ToString(), cfg.peer.name, cfg.peer.address.ToString());
  out += fmt::format("  sync roots: {}\n", Join(cfg.sync.roots, ", "));
  out += fmt::format("  state dir: {}; key file: {}\n", cfg.sync.state_dir, cfg.sync.key_file);
  out += fmt::format(
      "  failure detection: window {} ms, beat {} ms, lease {} ms (margin {} ms), probe {}\n",
      cfg.failover.window_ms, cfg.failover.beat_ms, cfg.failover.lease_ms, cfg.lease_margin_ms(),
      cfg.probe.command.empty() ? std::string("none")
                                : fmt::format("every {} ms", cfg.probe.interval_ms));
  out += fmt::format("  hooks: {}\n", hooks.empty() ? std::string("none") : Join(hooks, ", "));
  out += fmt::format("  transport: {}{}, {} data stream(s); metrics: {}\n",
                     TransportModeName(cfg.transport.mode),
                     cfg.transport.mode == TransportMode::kPlain && cfg.transport.data_streams > 0
                         ? (cfg.transport.splice ? " (content spliced)" : " (content copied)")
                         : "",
                     cfg.transport.data_streams,
                     cfg.metrics.enabled ? cfg.metrics.listen.ToString() : std::string("off"));
  if (cfg.arbiter.enabled) {
    const Config::Arbiter& a = cfg.arbiter;
    std::vector<std::string> eps;
    for (const EtcdEndpoint& e : a.endpoints) eps.push_back(e.ToString());
    const int64_t stop_ms = cfg.arbiter_stop_ms();
    out += fmt::format("  arbiter: etcd {} under {}{}\n", Join(eps, ", "), a.prefix,
                       a.user.empty() ? "" : fmt::format(" as user {}", a.user));
    out += fmt::format(
        "  arbiter timing: lease ttl {} ms < window {} ms; renewed every beat ({} ms), each "
        "request within {} ms (< ttl/3); without a renewal the primary starts stopping its "
        "scheduler {} ms after sending the last one that succeeded (ttl - on_demote timeout{} {} - "
        "drift {}) and is done by {} ms, before the lease can expire\n",
        a.ttl_ms(), cfg.failover.window_ms, cfg.failover.beat_ms, a.request_timeout_ms,
        a.ttl_ms() - stop_ms - a.drift_ms(),
        cfg.hooks.quorum_check.configured() ? " - quorum_check timeout" : "", stop_ms, a.drift_ms(),
        a.ttl_ms() - a.drift_ms());
  }
  return out;
}

int CheckConfigCommand(const std::string& path, std::ostream& out, std::ostream& err,
                       const ConfigEnv& env) {
  Result<Config> cfg = LoadConfig(path, env);
  if (!cfg.ok()) {
    err << "hasync: " << OneLineMessage(cfg.status().message()) << '\n';
    return kExitBadConfig;
  }
  out << ConfigSummary(*cfg);
  for (const std::string& w : ConfigWarnings(*cfg, env)) {
    err << "hasync: warning: config " << OneLineMessage(cfg->origin) << ": " << OneLineMessage(w)
        << '\n';
  }
  return kExitOk;
}

int RecoverCommand(const std::string& path, std::ostream& out, std::ostream& err,
                   const ConfigEnv& env) {
  Result<Config> cfg = LoadConfig(path, env);
  if (!cfg.ok()) {
    err << "hasync: " << OneLineMessage(cfg.status().message()) << '\n';
    return kExitBadConfig;
  }
  // A running node owns its undo records: rolling one back under it could undo a batch
  // it is about to acknowledge.
  if (ControlRequest(cfg->sync.state_dir, "status", 2'000).ok()) {
    err << "hasync: the node with this config is running; it recovered at its start\n";
    return kExitFailure;
  }
  Status st = RollBackInPlacePatches(*cfg);
  if (!st.ok()) {
    err << "hasync: " << OneLineMessage(st.message()) << '\n';
    return kExitFailure;
  }
  out << "no unacknowledged in-place patch is left under " << cfg->sync.state_dir << "/undo\n";
  return kExitOk;
}

int KeygenCommand(const std::string& path, std::ostream& out, std::ostream& err) {
  Status st = WriteNewKeyFile(path);
  if (!st.ok()) {
    err << "hasync: " << OneLineMessage(st.message()) << '\n';
    return st.code() == Code::kAlreadyExists ? kExitAlreadyExists : kExitFailure;
  }
  out << fmt::format(
      "wrote a {}-bit key to {} (mode 0600); copy it to the peer node with the same "
      "permissions, e.g. scp -p\n",
      kGeneratedKeyBytes * 8, path);
  return kExitOk;
}

namespace {
std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop.store(true, std::memory_order_relaxed); }

// A staged file keeps its descriptor until its batch commits (engine/apply); make room.
void RaiseFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 65536);
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

Level ToLevel(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
    case LogLevel::kDebug:
      return Level::kDebug;
    case LogLevel::kInfo:
      return Level::kInfo;
    case LogLevel::kWarn:
      return Level::kWarn;
    case LogLevel::kError:
      return Level::kError;
  }
  return Level::kInfo;
}
}  // namespace

int RunCommand(const std::string& path, const std::string& initial_role, std::ostream& err,
               const ConfigEnv& env) {
  auto cfg = LoadConfig(path, env);
  if (!cfg.ok()) {
    err << OneLineMessage(cfg.status().message()) << '\n';
    return kExitBadConfig;
  }
  RunOptions options;
  if (!initial_role.empty()) {
    auto role = ParseNodeRole(initial_role);
    if (!role.ok()) {
      err << "hasync run: --initial-role: " << role.status().message() << '\n';
      return kExitUsage;
    }
    options.initial_role = *role;
  }
  SetLogLevel(ToLevel(cfg->log.level));
  RaiseFileLimit();
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  options.stop = &g_stop;
  Status s = RunNode(*cfg, options);
  if (!s.ok()) {
    err << "hasync run: " << OneLineMessage(s.ToString()) << '\n';
    return kExitFailure;
  }
  return kExitOk;
}

namespace {

// The node's reply as JSON, or the reason there is none.
Result<nlohmann::json> AskNode(const Config& cfg, const std::string& request,
                               int64_t timeout_ms = 5'000) {
  ASSIGN_OR_RETURN(std::string reply, ControlRequest(cfg.sync.state_dir, request, timeout_ms));
  nlohmann::json j = nlohmann::json::parse(reply, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("the node's reply is not JSON");
  if (!j.value("ok", false)) return FailedPrecondition(j.value("error", std::string("refused")));
  return j;
}

std::string StatusText(const nlohmann::json& j) {
  std::string out;
  const auto& peer = j.value("peer", nlohmann::json::object());
  out += fmt::format("node      {} ({}), epoch {}{}\n", j.value("node", ""), j.value("role", ""),
                     j.value("epoch", 0), j.value("changing_role", false) ? ", changing role" : "");
  out += fmt::format("peer      {} at {}: {}\n", peer.value("name", ""), peer.value("address", ""),
                     peer.value("connected", false) ? "connected" : "not connected");
  out += fmt::format("acked     up to change {}\n", j.value("last_acked_seq", 0));
  if (j.value("role", "") == "primary") {
    const auto& lag = j.value("lag", nlohmann::json::object());
    out += fmt::format("session   {}\n", j.value("session", ""));
    out += fmt::format("lag       {} change(s) unacknowledged, {} batch(es) in flight, {} queued\n",
                       lag.value("changes_unacked", 0), lag.value("batches_unacked", 0),
                       lag.value("journal_pending", 0));
    out += fmt::format("beat      {}; standby last heard {} ms ago\n", j.value("beat", 0),
                       j.value("ms_since_standby_heard", 0));
    if (j.contains("probe")) {
      const auto& p = j.value("probe", nlohmann::json::object());
      out += fmt::format("probe     {} ({} ms ago){}{}\n", p.value("ok", false) ? "ok" : "FAILING",
                         p.value("age_ms", 0),
                         p.value("token", "").empty() ? "" : ", token " + p.value("token", ""),
                         p.value("failure", "").empty() ? "" : ", " + p.value("failure", ""));
    }
    if (j.contains("switchover")) out += "switchover draining\n";
  } else {
    const auto& v = j.value("verdict", nlohmann::json::object());
    out += fmt::format("verdict   {} (window {} ms): record unchanged for {} ms, last {} ms ago\n",
                       v.value("now", ""), v.value("window_ms", 0), v.value("unchanged_for_ms", 0),
                       v.value("silent_for_ms", 0));
    for (const auto& run : v.value("history", nlohmann::json::array())) {
      out += fmt::format("  record  {}  {} time(s), first {} ms ago, last {} ms ago\n",
                         run.value("fingerprint", ""), run.value("records", 0),
                         run.value("first_age_ms", 0), run.value("last_age_ms", 0));
    }
    if (j.value("rejoining", false)) out += "rejoining: the first resync keeps what it replaces\n";
    if (j.contains("not_promoting_because")) {
      out += "not promoting: " + j.value("not_promoting_because", "") + "\n";
    }
  }
  if (j.contains("arbiter")) {
    const auto& a = j.value("arbiter", nlohmann::json::object());
    const auto& eps = a.value("endpoints", nlohmann::json::array());
    const auto& leader = a.value("leader", nlohmann::json());
    out += fmt::format("arbiter   etcd {}/{} member(s) answering; leader key {}; etcd epoch {}",
                       a.value("endpoints_answering", 0), eps.size(),
                       leader.is_string() ? "held by " + leader.get<std::string>() : "unknown",
                       a.value("etcd_epoch", 0));
    if (a.contains("lease_left_ms")) {
      out += fmt::format("; lease {} ms left", a.value("lease_left_ms", 0));
    }
    if (a.contains("self_fence_in_ms")) {
      out += fmt::format("; self-fence in {} ms unless renewed", a.value("self_fence_in_ms", 0));
    }
    out += "\n";
    for (const auto& e : eps) {
      if (e.value("state", "") == "failed") {
        out +=
            fmt::format("  member  {} failed: {}\n", e.value("endpoint", ""), e.value("error", ""));
      }
    }
  }
  out += fmt::format("quarantine {} file(s)\n", j.value("quarantined_files", 0));
  return out;
}

}  // namespace

int StatusCommand(const std::string& path, bool json, std::ostream& out, std::ostream& err,
                  const ConfigEnv& env) {
  auto cfg = LoadConfig(path, env);
  if (!cfg.ok()) {
    err << OneLineMessage(cfg.status().message()) << '\n';
    return kExitBadConfig;
  }
  auto j = AskNode(*cfg, "status");
  if (!j.ok()) {
    err << "hasync status: " << OneLineMessage(j.status().message()) << '\n';
    return kExitFailure;
  }
  out << (json ? j->dump(2) + "\n" : StatusText(*j));
  return kExitOk;
}

int HistoryCommand(const std::string& path, bool json, std::ostream& out, std::ostream& err,
                   const ConfigEnv& env) {
  auto cfg = LoadConfig(path, env);
  if (!cfg.ok()) {
    err << OneLineMessage(cfg.status().message()) << '\n';
    return kExitBadConfig;
  }
  auto h = ReadHistory(cfg->sync.state_dir);
  if (!h.ok()) {
    err << "hasync history: " << OneLineMessage(h.status().message()) << '\n';
    return kExitFailure;
  }
  if (json) {
    nlohmann::json j = nlohmann::json::array();
    for (const HistoryEntry& e : h->entries) {
      j.push_back({{"unix_ms", e.unix_ms},
                   {"role", NodeRoleName(e.role)},
                   {"epoch", e.epoch},
                   {"reason", e.reason}});
    }
    out << nlohmann::json{{"changes", j}, {"skipped_lines", h->skipped_lines}}.dump(2) << '\n';
    return kExitOk;
  }
  if (h->entries.empty()) out << "no role change recorded in " << cfg->sync.state_dir << '\n';
  for (const HistoryEntry& e : h->entries) {
    std::time_t secs = static_cast<std::time_t>(e.unix_ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    out << fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z  {:<7}  epoch {:<4}  {}\n",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                       tm.tm_sec, e.unix_ms % 1000, NodeRoleName(e.role), e.epoch, e.reason);
  }
  if (h->skipped_lines > 0) {
    err << "hasync history: " << h->skipped_lines << " line(s) that do not decode were skipped\n";
  }
  return kExitOk;
}

int SwitchoverCommand(const std::string& path, int64_t timeout_ms, std::ostream& out,
                      std::ostream& err, const ConfigEnv& env) {
  auto cfg = LoadConfig(path, env);
  if (!cfg.ok()) {
    err << OneLineMessage(cfg.status().message()) << '\n';
    return kExitBadConfig;
  }
  // The node answers once its on_demote hook has run (it stops the scheduler first).
  const int64_t answer_ms =
      5'000 + (cfg->hooks.on_demote.configured() ? cfg->hooks.on_demote.timeout_ms : 0);
  auto started = AskNode(*cfg, "switchover " + std::to_string(timeout_ms), answer_ms);
  if (!started.ok()) {
    err << "hasync switchover: " << OneLineMessage(started.status().message()) << '\n';
    return kExitFailure;
  }
  const uint64_t epoch = started->value("epoch", uint64_t{0});
  out << "switchover: the scheduler is stopped (on_demote); draining to " << cfg->peer.name << "\n";
  // Done when this node is standby and a primary at a newer epoch has connected to it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms) +
                  std::chrono::seconds(30);
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto j = AskNode(*cfg, "status");
    if (!j.ok()) continue;  // restarting in its new role
    if (j->value("role", "") == "standby" && j->value("epoch", uint64_t{0}) > epoch &&
        j->value("peer", nlohmann::json::object()).value("connected", false)) {
      out << "switchover: done; " << cfg->peer.name << " is primary at epoch "
          << j->value("epoch", uint64_t{0}) << ", this node is its standby\n";
      return kExitOk;
    }
    if (j->value("role", "") == "primary" && !j->contains("switchover") &&
        !j->value("changing_role", false)) {
      err << "hasync switchover: aborted, this node stays primary (see its log)\n";
      return kExitFailure;
    }
  }
  err << "hasync switchover: not finished within the timeout; see both nodes' logs\n";
  return kExitFailure;
}

int VerifyCommand(const std::string& path, int64_t timeout_ms, int rounds, bool repair, bool json,
                  std::ostream& out, std::ostream& err, const ConfigEnv& env) {
  auto cfg = LoadConfig(path, env);
  if (!cfg.ok()) {
    err << OneLineMessage(cfg.status().message()) << '\n';
    return kExitBadConfig;
  }
  auto started =
      AskNode(*cfg, fmt::format("verify {} {}{}", timeout_ms, rounds, repair ? " repair" : ""));
  if (!started.ok()) {
    err << "hasync verify: " << OneLineMessage(started.status().message()) << '\n';
    return kExitFailure;
  }
  const uint64_t id = started->value("id", uint64_t{0});
  const std::string ask = "verify-result " + std::to_string(id) + " ";
  // Poll until the run is done (the node bounds it by timeout_ms), then page through.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms) +
                  std::chrono::seconds(30);
  Result<nlohmann::json> page = FailedPrecondition("no answer");
  for (;;) {
    page = AskNode(*cfg, ask + "0");
    if (!page.ok()) {
      err << "hasync verify: " << OneLineMessage(page.status().message()) << '\n';
      return kExitFailure;
    }
    if (page->value("state", "") == "done") break;
    if (std::chrono::steady_clock::now() > deadline) {
      err << "hasync verify: no result within the timeout; see the primary's log\n";
      return kExitFailure;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  nlohmann::json result = *page;
  nlohmann::json diffs = result.value("differences", nlohmann::json::array());
  nlohmann::json changing = result.value("changing", nlohmann::json::array());
  const size_t total =
      result.value("differences_total", size_t{0}) + result.value("changing_total", size_t{0});
  for (size_t next = result.value("next_offset", size_t{0}); next < total;) {
    auto more = AskNode(*cfg, ask + std::to_string(next));
    if (!more.ok()) {
      err << "hasync verify: " << OneLineMessage(more.status().message()) << '\n';
      return kExitFailure;
    }
    for (auto& d : more->value("differences", nlohmann::json::array())) diffs.push_back(d);
    for (auto& d : more->value("changing", nlohmann::json::array())) changing.push_back(d);
    const size_t after = more->value("next_offset", next);
    if (after <= next) break;
    next = after;
  }
  result["differences"] = diffs;
  result["changing"] = changing;
  result.erase("offset");
  result.erase("next_offset");
  const std::string outcome = result.value("outcome", "");
  if (json) {
    out << result.dump(2) << '\n';
  } else {
    for (const auto& d : diffs) {
      out << "DIFFERS   " << d.value("path", "") << ": " << d.value("what", "") << '\n';
    }
    for (const auto& d : changing) {
      out << "CHANGING  " << d.value("path", "") << ": " << d.value("what", "") << '\n';
    }
    out << fmt::format(
        "verify: {} ({} entries here, {} on {}; {} round(s), {:.1f} s){}\n", outcome,
        result.value("primary_entries", 0), result.value("standby_entries", 0), cfg->peer.name,
        result.value("round", 0), result.value("seconds", 0.0),
        outcome == "differences" ? fmt::format(": {} difference(s)", diffs.size())
        : outcome == "inconclusive"
            ? fmt::format(": {} path(s) kept changing; run it again", changing.size())
            : "");
    if (result.value("repaired", uint64_t{0}) > 0) {
      out << fmt::format(
          "verify: repair queued for {} path(s); run `hasync verify` again to "
          "see the result\n",
          result.value("repaired", uint64_t{0}));
    }
  }
  if (outcome == "identical") return kExitOk;
  if (outcome == "differences") return kExitDiverged;
  if (outcome == "inconclusive") return kExitInconclusive;
  err << "hasync verify: " << OneLineMessage(result.value("error", std::string("failed"))) << '\n';
  return kExitFailure;
}

}  // namespace hasync::engine
