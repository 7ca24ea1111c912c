// Subcommand logic for the hasync CLI. See cli_commands.h.
#include "engine/cli_commands.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>

#include "engine/keyfile.h"
#include "engine/log.h"
#include "engine/node/node.h"

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

int NotImplementedCommand(std::string_view name, std::ostream& err) {
  err << "hasync " << name << ": not implemented in this build yet\n";
  return kExitNotImplemented;
}

}  // namespace hasync::engine
