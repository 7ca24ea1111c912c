// NetLab: three network namespaces for tests that put each node of a pair in its own:
//
//     ns A (primary) ── veth ── ns W (router, tie-breaker) ── veth ── ns B (standby)
//     10.213.1.1               10.213.1.254 | 10.213.2.254            10.213.2.1
//
// Every address lives inside these namespaces; nothing leaves the host. Names carry the
// test process's pid, so parallel test processes do not collide; the destructor deletes
// the namespaces (and with them the veths). Needs root, /usr/sbin/ip and /usr/bin/ping:
// NetLabMissing() says what is missing, for a loud skip.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/process_pair.h"

namespace hasync::testing {

inline int Sh(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

inline std::string NetLabMissing() {
  if (geteuid() != 0) return "needs root (network namespaces, fanotify)";
  for (const char* tool : {"/usr/sbin/ip", "/usr/bin/ping"}) {
    if (access(tool, X_OK) != 0) {
      return std::string("needs ") + tool + " (scripts/install-deps.sh installs it)";
    }
  }
  return "";
}

// Three namespaces and two veth pairs, named after this process so parallel runs do not
// collide; removed (with everything in them) by the destructor.
class NetLab {
 public:
  NetLab() {
    std::string id = std::to_string(getpid() % 100000);
    a_ = "hsA" + id;
    b_ = "hsB" + id;
    w_ = "hsW" + id;
    // A test process that died (an ASan abort) leaves its namespaces; a later process
    // with the same pid would collide with them.
    for (const std::string& ns : {a_, b_, w_}) Sh("ip netns del " + ns);
    const std::string cmds[] = {
        "ip netns add " + a_,
        "ip netns add " + b_,
        "ip netns add " + w_,
        "ip link add va" + id + " netns " + a_ + " type veth peer name wa netns " + w_,
        "ip link add vb" + id + " netns " + b_ + " type veth peer name wb netns " + w_,
        "ip -n " + a_ + " link set va" + id + " name eth0",
        "ip -n " + b_ + " link set vb" + id + " name eth0",
        "ip -n " + a_ + " addr add 10.213.1.1/24 dev eth0",
        "ip -n " + b_ + " addr add 10.213.2.1/24 dev eth0",
        "ip -n " + w_ + " addr add 10.213.1.254/24 dev wa",
        "ip -n " + w_ + " addr add 10.213.2.254/24 dev wb",
        "ip -n " + a_ + " link set lo up",
        "ip -n " + b_ + " link set lo up",
        "ip -n " + w_ + " link set lo up",
        "ip -n " + a_ + " link set eth0 up",
        "ip -n " + b_ + " link set eth0 up",
        "ip -n " + w_ + " link set wa up",
        "ip -n " + w_ + " link set wb up",
        "ip -n " + a_ + " route add default via 10.213.1.254",
        "ip -n " + b_ + " route add default via 10.213.2.254",
        "ip netns exec " + w_ + " sysctl -w net.ipv4.ip_forward=1",
    };
    for (const std::string& c : cmds) {
      if (Sh(c) != 0) {
        error_ = "set-up step failed: " + c;
        return;
      }
    }
    // Both nodes reach each other through W.
    if (Sh("ip netns exec " + a_ + " ping -c1 -W2 10.213.2.1") != 0) {
      error_ = "namespace A cannot reach B through W";
    }
  }
  ~NetLab() {
    for (const std::string& ns : {a_, b_, w_}) Sh("ip netns del " + ns);
  }
  const std::string& error() const { return error_; }
  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }
  // The router and tie-breaker between the two.
  const std::string& w() const { return w_; }
  // The node's own link, as if its cable were pulled.
  void Cut(const std::string& ns) { EXPECT_EQ(Sh("ip -n " + ns + " link set eth0 down"), 0); }
  void Heal(const std::string& ns) {
    EXPECT_EQ(Sh("ip -n " + ns + " link set eth0 up"), 0);
    Sh("ip -n " + ns + " route replace default via " +
       std::string(ns == a_ ? "10.213.1.254" : "10.213.2.254"));
  }
  PairNet Net() const {
    PairNet n;
    n.netns[0] = a_;
    n.netns[1] = b_;
    n.addr[0] = "10.213.1.1";
    n.addr[1] = "10.213.2.1";
    n.port = 7420;
    return n;
  }

 private:
  std::string a_, b_, w_, error_;
};

}  // namespace hasync::testing
