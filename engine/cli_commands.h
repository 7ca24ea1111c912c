// The logic behind the `hasync` subcommands, kept out of app/main.cpp so tests can call
// it in-process. Each command writes its normal output to `out`, errors and warnings to
// `err`, and returns the process exit code. An error is always ONE line on `err`.
#pragma once

#include <ostream>
#include <string>
#include <string_view>

#include "engine/config.h"

namespace hasync::engine {

// Process exit codes, documented in docs/CONFIG.md ("Exit codes").
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,         // the command could not do its work (I/O error, …)
  kExitBadConfig = 2,       // the configuration (or its key file) is invalid
  kExitAlreadyExists = 3,   // keygen: refused to overwrite an existing file
  kExitNotImplemented = 4,  // reserved: a subcommand not in this build (none today)
  kExitDiverged = 5,        // verify: the standby does not mirror the primary
  kExitInconclusive = 6,    // verify: paths kept changing, no difference held still
  kExitUsage = 64,          // bad command line (sysexits EX_USAGE)
};

// Makes `s` safe to print as one line: newlines and other control bytes become spaces.
std::string OneLineMessage(std::string_view s);

// A few lines saying what the config does: names, addresses, roots, timings, hooks.
std::string ConfigSummary(const Config& cfg);

// `hasync check-config -c PATH`: 0 and a summary (warnings on `err`) on a good config;
// kExitBadConfig and one line on `err` otherwise.
int CheckConfigCommand(const std::string& path, std::ostream& out, std::ostream& err,
                       const ConfigEnv& env = RealConfigEnv());

// `hasync recover -c PATH`: with the node stopped, rolls back the in-place patches a
// crash left unacknowledged (RollBackInPlacePatches), so the sync roots can be read
// before hasync starts again. kExitFailure when the node runs (its control socket
// answers) or a record cannot be rolled back.
int RecoverCommand(const std::string& path, std::ostream& out, std::ostream& err,
                   const ConfigEnv& env = RealConfigEnv());

// `hasync keygen PATH`: writes a new 256-bit key file; kExitAlreadyExists if PATH exists.
int KeygenCommand(const std::string& path, std::ostream& out, std::ostream& err);

// `hasync run -c PATH [--initial-role primary|standby]`: runs the node until SIGINT or
// SIGTERM (exit 0). kExitBadConfig and one line for a bad config; kExitFailure and one
// line when the node cannot start or stops on an error.
int RunCommand(const std::string& path, const std::string& initial_role, std::ostream& err,
               const ConfigEnv& env = RealConfigEnv());

// `hasync status -c PATH [--json]`: asks the node running with that config over its
// control socket (<state_dir>/control.sock, root only). 0 and the status; kExitFailure
// and one line when no node answers.
int StatusCommand(const std::string& path, bool json, std::ostream& out, std::ostream& err,
                  const ConfigEnv& env = RealConfigEnv());

// `hasync switchover -c PATH [--timeout-ms N]`, on the primary: it stops its scheduler
// (on_demote), waits until the standby acknowledged every change durably, and hands over;
// this command returns once the local node is standby under a newer epoch. kExitFailure
// with the reason when the node refuses or the handover does not finish in time.
int SwitchoverCommand(const std::string& path, int64_t timeout_ms, std::ostream& out,
                      std::ostream& err, const ConfigEnv& env = RealConfigEnv());

// `hasync history -c PATH [--json]`: this node's role changes from <state_dir>/history,
// oldest first, with time (UTC), role, epoch and reason. Reads the file: works whether or
// not the node runs. 0 (also when there is no change yet: it says so).
int HistoryCommand(const std::string& path, bool json, std::ostream& out, std::ostream& err,
                   const ConfigEnv& env = RealConfigEnv());

// `hasync verify -c PATH [--timeout-ms N] [--rounds R] [--repair] [--json]`, on the
// primary: compares both nodes' sync roots (kind, content hashes, size, mode, owner,
// mtime, xattrs, hard links) while replication goes on, and lists every difference;
// waits for a live session first (within the timeout). kExitOk when identical,
// kExitDiverged when a difference held still over two rounds, kExitInconclusive when
// paths differed but kept changing for every round, kExitFailure when it could not run.
// --repair: every difference is repaired at once (the exit code still says what was
// found); `hasync verify` again shows the result.
int VerifyCommand(const std::string& path, int64_t timeout_ms, int rounds, bool repair, bool json,
                  std::ostream& out, std::ostream& err, const ConfigEnv& env = RealConfigEnv());

}  // namespace hasync::engine
