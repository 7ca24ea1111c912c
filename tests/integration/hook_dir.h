// Test support for failover tests of a real pair: hooks that record each run with a
// timestamp (CLOCK_BOOTTIME through /proc/uptime, 10 ms steps, read by the hooks and the
// test alike), a probe that fails on demand, and a flag file per node standing for its
// scheduler (on_promote creates it, on_demote removes it under the lock its writer takes).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace hasync::testing {

inline double UptimeMs() {
  std::ifstream in("/proc/uptime");
  double s = 0;
  in >> s;
  return s * 1000.0;
}

// One line per hook run: "<hook> on=<node> role=<role> epoch=<n> t_ms=<uptime ms>".
struct HookRun {
  std::string hook, node;
  uint64_t epoch = 0;
  double t_ms = 0;
};

class HookDir {
 public:
  HookDir() {
    char tmpl[] = "/var/tmp/hasync-hooks-XXXXXX";
    EXPECT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    script_ = dir_ + "/hook.sh";
    std::ofstream s(script_);
    // HASYNC_PEER names the other node, so "on=" is the node the hook runs on. The
    // probe fails while <dir>/probe_fails exists.
    s << "#!/bin/sh\n"
      << "read up _ < /proc/uptime\n"
      << "case \"$HASYNC_PEER\" in primary) on=standby ;; *) on=primary ;; esac\n"
      << "if [ \"$1\" = probe ]; then\n"
      << "  [ -e " << dir_ << "/probe_fails ] && exit 1\n"
      << "  echo job-$(date +%s)\n  exit 0\nfi\n"
      << "echo \"$1 on=$on role=$HASYNC_ROLE epoch=$HASYNC_EPOCH t_ms=$up\" >> " << dir_
      << "/runs.log\n"
      << "echo \"ran $1 on $on\"\n"
      // A hook made slow on demand: <dir>/sleep_<hook> holds the seconds it takes.
      << "[ -e " << dir_ << "/sleep_$1 ] && sleep \"$(cat " << dir_
      << "/sleep_$1)\"\n"
      // The \"scheduler\" of the switchover test: a flag per node, taken under the lock
      // its writer holds for each write, so no write lands after on_demote returns.
      << "case \"$1\" in\n"
      << "  on_demote) flock " << dir_ << "/sched.lock rm -f " << dir_ << "/sched_$on ;;\n"
      << "  on_promote) touch " << dir_ << "/sched_$on ;;\n"
      << "esac\n"
      << "exit 0\n";
    s.close();
    chmod(script_.c_str(), 0755);
  }
  ~HookDir() {
    if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir_);
  }
  const std::string& dir() const { return dir_; }

  std::string Hook(const std::string& name) const {
    return "[hooks." + name + "]\ncommand = [\"" + script_ + "\", \"" + name + "\"]\n";
  }
  // From now on, every run of hook `name` takes `seconds` (after its line is logged).
  void SlowDown(const std::string& name, double seconds) const {
    std::ofstream(dir_ + "/sleep_" + name) << seconds << "\n";
  }
  std::string Probe() const {
    return "[probe]\ncommand = [\"" + script_ +
           "\", \"probe\"]\ninterval_ms = 300\n"
           "timeout_ms = 250\n";
  }

  std::vector<HookRun> Runs() const {
    std::vector<HookRun> out;
    std::ifstream in(dir_ + "/runs.log");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      HookRun r;
      std::string on, role, epoch, t;
      ls >> r.hook >> on >> role >> epoch >> t;
      r.node = on.substr(3);
      r.epoch = std::stoull(epoch.substr(6));
      // /proc/uptime has two decimals: seconds.hundredths
      r.t_ms = std::stod(t.substr(5)) * 1000.0;
      out.push_back(r);
    }
    return out;
  }
  size_t Count(const std::string& hook, const std::string& node) const {
    size_t n = 0;
    for (const auto& r : Runs()) n += r.hook == hook && r.node == node;
    return n;
  }
  // A copy: the log is read again on every call.
  std::optional<HookRun> First(const std::string& hook, const std::string& node) const {
    for (const auto& r : Runs()) {
      if (r.hook == hook && r.node == node) return r;
    }
    return std::nullopt;
  }

 private:
  std::string dir_, script_;
};

}  // namespace hasync::testing
