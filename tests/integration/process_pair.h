// Test support: two real `hasync run` processes (primary and standby) on loopback with
// temporary roots, state dirs, configs and a generated key. Every process started is
// stopped by its pid in the destructor (SIGTERM, then SIGKILL after 5 s).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "tests/support/tree_compare.h"

namespace hasync::testing {

// Where the two nodes run: by default both on 127.0.0.1 with free ports; for the system
// tests each in a network namespace of its own with its own address.
struct PairNet {
  std::string netns[2];  // empty: this process's namespace
  std::string addr[2];   // empty: 127.0.0.1
  uint16_t port = 0;     // 0: a free loopback port each
  // Serve metrics over HTTP, each node on a free loopback port (metrics_port()).
  bool metrics = false;
};

class ProcessPair {
 public:
  enum Node { kPrimary = 0, kStandby = 1 };

  // `extra_config` is appended to both configs (e.g. "[limits]\nmax_batch_files = 64\n").
  explicit ProcessPair(const std::string& tag, const std::string& extra_config = "",
                       const PairNet& net = {});
  ~ProcessPair();
  ProcessPair(const ProcessPair&) = delete;
  ProcessPair& operator=(const ProcessPair&) = delete;

  const std::string& root(Node n) const { return root_[n]; }
  const std::string& state_dir(Node n) const { return state_[n]; }
  const std::string& config(Node n) const { return config_[n]; }
  const std::string& key_file() const { return key_; }
  uint16_t metrics_port(Node n) const { return metrics_port_[n]; }
  std::string log(Node n) const;  // everything the node wrote to stderr so far

  // Starts the node (with --initial-role on first start). Returns its pid.
  pid_t Start(Node n);
  // Sends `sig` and, for fatal ones, waits for the exit (bounded). Returns the status.
  // SIGSTOP returns once every thread that takes signals has stopped (bounded at 2 s).
  int Signal(Node n, int sig);
  void Stop(Node n) { Signal(n, SIGTERM); }
  // SIGKILL and reap at once (polled every 1 ms, bounded at 10 s), without Signal()'s
  // 50 ms steps: the crash trials kill a node hundreds of times. Returns the status.
  int Kill(Node n);
  // Waits (bounded) for the node to exit by itself; returns its wait status, or -1 if
  // it was still running at the deadline (it is then killed).
  int WaitExit(Node n, std::chrono::milliseconds timeout);
  bool running(Node n) const { return pid_[n] > 0; }

  // Polls every 50 ms until the standby's tree equals the primary's, or `timeout`
  // passes; returns the last difference (empty on success).
  TreeDiff WaitConverged(std::chrono::milliseconds timeout);
  // Polls until `predicate` holds or timeout; returns whether it held.
  static bool WaitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout);

  // For a failure message: both nodes' warnings, errors and non-log output such as a
  // sanitizer's report (at most `max_lines`, the
  // first ones: what went wrong first) and each log's last few lines, without the
  // debug chatter that would push them out of a truncated CI log.
  std::string Trouble(size_t max_lines = 60) const;
  // How many `event=NAME` lines the node has logged so far.
  size_t CountEvents(Node n, const std::string& event) const;
  // Waits until the node logged at least `count` `event=NAME` lines.
  bool WaitEvents(Node n, const std::string& event, size_t count,
                  std::chrono::milliseconds timeout) const;
  // The last `event=NAME` line's numeric `key=` values from the node's log.
  std::map<std::string, uint64_t> LastEvent(Node n, const std::string& event) const;

 private:
  std::string base_;
  std::string root_[2], state_[2], config_[2], log_[2];
  std::string key_;
  pid_t pid_[2] = {-1, -1};
  std::string netns_[2];
  bool started_once_[2] = {false, false};
  uint16_t metrics_port_[2] = {0, 0};
};

// A free TCP port on 127.0.0.1 (bound and released: a short race is accepted).
uint16_t FreePort();

// Runs `hasync ARGS` (the binary under test) and returns (exit code, stdout + stderr).
std::pair<int, std::string> Hasync(const std::string& args);
// Runs `cmd` with /bin/sh: {exit code (-1 if it did not exit), what it printed on stdout}.
std::pair<int, std::string> Shell(const std::string& cmd);

}  // namespace hasync::testing
