// hasync: the service (`hasync run`) and its admin CLI. This file only parses the command
// line with CLI11 and dispatches; what each command does lives in engine/cli_commands.h
// so tests can reach it without this executable. CLI11 reports parse errors by exception;
// they are caught here (STYLE: the CLI may use exceptions, the libraries may not).
//
// GCC 12 at -O2 reports -Wnull-dereference inside libstdc++'s std::string as inlined into
// CLI11's CLI::detail::split (a known false positive: the pointer comes from a vector
// that was just grown). The warning is raised after inlining, so marking CLI11 as a
// system header does not silence it; it is switched off for this one file only.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <string>

#include "engine/cli_commands.h"

namespace {

using hasync::engine::kExitUsage;

int Main(int argc, char** argv) {
  CLI::App app{"hasync: high-availability replication of a job scheduler's state directory"};
  app.name("hasync");
  app.set_version_flag("--version", "hasync " HASYNC_VERSION);
  app.require_subcommand(1);

  const std::string default_config(hasync::engine::kDefaultConfigPath);
  std::string config_path = default_config;
  auto add_config = [&](CLI::App* sub) {
    sub->add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  };

  std::string key_path;
  CLI::App* keygen = app.add_subcommand("keygen", "write a new 256-bit sync key file (mode 0600)");
  keygen->add_option("path", key_path, "where to create the key file (must not exist)")->required();

  CLI::App* check = app.add_subcommand("check-config", "validate the configuration and say why");
  add_config(check);

  CLI::App* recover = app.add_subcommand(
      "recover", "with hasync stopped: undo the unacknowledged in-place patches a crash left");
  add_config(recover);

  CLI::App* run = app.add_subcommand("run", "run the replication service on this node");
  add_config(run);
  std::string initial_role;
  run->add_option("--initial-role", initial_role,
                  "role of a node whose state dir holds no state yet (primary|standby)")
      ->check(CLI::IsMember({"primary", "standby"}));

  bool json = false;
  CLI::App* status = app.add_subcommand("status", "show role, epoch, peer and lag");
  add_config(status);
  status->add_flag("--json", json, "print machine-readable JSON");

  int64_t timeout_ms = 60'000;
  CLI::App* switchover =
      app.add_subcommand("switchover", "hand the primary role to the peer with no loss");
  add_config(switchover);
  switchover->add_option("--timeout-ms", timeout_ms, "give up after this long")
      ->check(CLI::Range(int64_t{1}, int64_t{86'400'000}))
      ->capture_default_str();

  CLI::App* history =
      app.add_subcommand("history", "this node's role changes: time, epoch, reason");
  add_config(history);
  history->add_flag("--json", json, "print machine-readable JSON");

  CLI::App* verify = app.add_subcommand("verify", "compare the sync roots with the peer's");
  add_config(verify);
  verify->add_flag("--json", json, "print machine-readable JSON");
  int64_t verify_timeout_ms = 600'000;
  verify->add_option("--timeout-ms", verify_timeout_ms, "give up after this long")
      ->check(CLI::Range(int64_t{1'000}, int64_t{86'400'000}))
      ->capture_default_str();
  bool repair = false;
  verify->add_flag("--repair", repair,
                   "repair every difference found now: the primary resends its version of "
                   "each differing path (what the standby held is logged)");
  int rounds = 3;
  verify
      ->add_option("--rounds", rounds,
                   "compare at most this many times before giving up on "
                   "paths that keep changing")
      ->check(CLI::Range(2, 10))
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::cerr << "hasync: " << hasync::engine::OneLineMessage(e.what()) << " (see hasync --help)\n";
    return kExitUsage;
  }

  if (*keygen) return hasync::engine::KeygenCommand(key_path, std::cout, std::cerr);
  if (*check) return hasync::engine::CheckConfigCommand(config_path, std::cout, std::cerr);
  if (*recover) return hasync::engine::RecoverCommand(config_path, std::cout, std::cerr);
  if (*run) return hasync::engine::RunCommand(config_path, initial_role, std::cerr);
  if (*status) return hasync::engine::StatusCommand(config_path, json, std::cout, std::cerr);
  if (*switchover) {
    return hasync::engine::SwitchoverCommand(config_path, timeout_ms, std::cout, std::cerr);
  }
  if (*history) return hasync::engine::HistoryCommand(config_path, json, std::cout, std::cerr);
  if (*verify) {
    return hasync::engine::VerifyCommand(config_path, verify_timeout_ms, rounds, repair, json,
                                         std::cout, std::cerr);
  }
  return kExitUsage;  // unreachable: require_subcommand(1)
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "hasync: internal error: " << hasync::engine::OneLineMessage(e.what()) << '\n';
    return hasync::engine::kExitFailure;
  }
}
