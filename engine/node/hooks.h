// Hooks and the scheduler probe (DESIGN §4): commands an administrator configures as argv
// arrays, run without a shell, with a timeout, in a process group of their own so a
// timeout kills everything they started.
//
// The environment is the node's plus HASYNC_ROLE, HASYNC_EPOCH, HASYNC_REASON and
// HASYNC_PEER. Standard output and standard error are captured together (bounded to
// kHookOutputMax bytes; the rest is counted, not kept) so the caller can log them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "engine/config.h"

namespace hasync::engine {

inline constexpr size_t kHookOutputMax = 16 * 1024;
// What the lock record carries of the probe's output (lockwin's kProbeTokenMax bounds it).
inline constexpr size_t kProbeTokenBytes = 128;

struct HookEnv {
  std::string role;    // the node's role when the hook starts: "primary" or "standby"
  uint64_t epoch = 0;  // the epoch the hook acts for (after promotion: the new one)
  std::string reason;  // why it runs, e.g. "verdict=silent for 10000 ms"
  std::string peer;    // the peer's configured name
};

struct HookResult {
  int exit_code = -1;       // -1 when killed by a signal (incl. the timeout)
  int signal = 0;           // the signal that ended it, 0 if it exited
  bool timed_out = false;   // killed because it ran past its timeout
  int64_t duration_ms = 0;  // from spawn to reap
  std::string output;       // stdout + stderr, at most kHookOutputMax bytes
  size_t output_dropped = 0;
  bool ok() const { return exit_code == 0 && !timed_out; }
  // "exit 0", "exit 3", "killed by signal 9", "timed out after 2000 ms".
  std::string Describe() const;
};

// Runs `command` and waits for it (at most its timeout plus a short grace for the kill).
// An error only when it could not be started at all; a failing hook is a HookResult.
// `while_waiting`, if set, is called about every 50 ms while the hook runs (the node
// keeps its service manager's watchdog fed: a running hook is bounded by its timeout,
// so the loop waiting for it is not hung).
Result<HookResult> RunHook(const Command& command, const HookEnv& env,
                           const std::function<void()>& while_waiting = {});

// The scheduler probe (`[probe]`): its command runs on a thread of its own every
// interval_ms with timeout_ms, never on the beat path; the primary reads the latest
// result when it makes a lock record.
class Probe {
 public:
  struct Result {
    bool ran = false;         // at least one run finished
    bool ok = false;          // the latest run exited 0 within its timeout
    int64_t finished_ns = 0;  // monotonic time the latest run ended
    uint32_t latency_us = 0;  // how long it took
    std::string token;        // first line of the latest *passing* run's output
                              // (kProbeTokenMax bytes); a failing run leaves it as it was
    std::string failure;      // HookResult::Describe() of a failed run
    uint64_t runs = 0;        // runs finished since the probe started
    uint64_t failures = 0;    // …of which failed
  };
  // Starts the thread; the first run starts at once.
  Probe(Command command, int64_t interval_ms, HookEnv env);
  ~Probe();
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;
  Result Latest() const;

 private:
  void Run();
  const Command command_;
  const int64_t interval_ms_;
  const HookEnv env_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  Result latest_;
  std::thread thread_;
};

// The first line of `output` with control bytes replaced, at most `max` bytes: what a
// probe prints becomes its token (the lock record's probe_token).
std::string FirstLine(const std::string& output, size_t max);

}  // namespace hasync::engine
