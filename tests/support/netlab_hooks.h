// NetLabHooks: the hooks of the system tests whose nodes live in NetLab's namespaces
// (tests/support/net_lab.h). quorum_check pings the router W from the node's own
// namespace (so a node cut off from W fails it); every hook run appends
// "<hook> <node it ran on> <uptime s> <exit>" to a log the test reads back.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace hasync::testing {

struct HookRun {
  std::string hook, node;
  double t_ms = 0;  // uptime when it ran
};

class NetLabHooks {
 public:
  NetLabHooks() {
    char tmpl[] = "/var/tmp/hasync-labhooks-XXXXXX";
    EXPECT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    script_ = dir_ + "/hook.sh";
    std::ofstream s(script_);
    s << "#!/bin/sh\n"
      << "read up _ < /proc/uptime\n"
      << "case \"$HASYNC_PEER\" in primary) on=standby; gw=10.213.2.254 ;;"
      << " *) on=primary; gw=10.213.1.254 ;; esac\n"
      << "rc=0\n"
      << "[ \"$1\" = quorum_check ] && { /usr/bin/ping -c1 -W1 $gw >/dev/null 2>&1 || rc=1; }\n"
      << "echo \"$1 $on $up $rc\" >> " << dir_ << "/runs.log\n"
      << "exit $rc\n";
    s.close();
    chmod(script_.c_str(), 0755);
  }
  ~NetLabHooks() {
    if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir_);
  }
  NetLabHooks(const NetLabHooks&) = delete;
  NetLabHooks& operator=(const NetLabHooks&) = delete;

  // A [failover] section with `timings` (TOML lines; empty: the defaults) and no
  // anti-flap interval, plus quorum_check, on_promote and on_demote.
  std::string Config(const std::string& timings) const {
    std::string out = "[failover]\nmin_failover_interval_ms = 0\n" + timings;
    for (const char* h : {"quorum_check", "on_promote", "on_demote"}) {
      out += std::string("[hooks.") + h + "]\ncommand = [\"" + script_ + "\", \"" + h + "\"]\n";
    }
    return out;
  }
  std::vector<HookRun> Runs() const {
    std::vector<HookRun> out;
    std::ifstream in(dir_ + "/runs.log");
    std::string hook, node, up;
    int rc = 0;
    while (in >> hook >> node >> up >> rc) out.push_back({hook, node, std::stod(up) * 1000.0});
    return out;
  }
  // A copy: the log is read again on every call.
  std::optional<HookRun> First(const std::string& hook, const std::string& node) const {
    for (const auto& r : Runs()) {
      if (r.hook == hook && r.node == node) return r;
    }
    return std::nullopt;
  }
  size_t Count(const std::string& hook, const std::string& node) const {
    size_t n = 0;
    for (const auto& r : Runs()) n += r.hook == hook && r.node == node;
    return n;
  }
  std::string Dump() const {
    std::ifstream in(dir_ + "/runs.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string dir_, script_;
};

}  // namespace hasync::testing
