// A real three-member etcd 3.4 cluster for tests: started on free loopback ports with
// short raft timers, data under a temporary directory, every member stopped by its pid.
// RealEtcd skips (loudly) when /usr/bin/etcd is missing.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/assert.h"
#include "engine/arbiter/etcd_client.h"

namespace hasync::engine::arbiter::testing {

inline constexpr const char* kEtcd = "/usr/bin/etcd";

inline uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  HASYNC_ASSERT(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  HASYNC_ASSERT(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Three etcd members on loopback with short raft timers (heartbeat 50 ms, election
// 500 ms), data under a temporary directory; every process is stopped by its pid.
class EtcdCluster {
 public:
  static constexpr size_t kMembers = 3;
  EtcdCluster() {
    char tmpl[] = "/tmp/hasync-etcd-XXXXXX";
    HASYNC_ASSERT(::mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    std::string initial;
    for (size_t i = 0; i < kMembers; ++i) {
      client_[i] = FreePort();
      peer_[i] = FreePort();
      initial += fmt::format("{}m{}=http://127.0.0.1:{}", i ? "," : "", i, peer_[i]);
    }
    initial_ = initial;
    for (size_t i = 0; i < kMembers; ++i) Start(i);
  }
  ~EtcdCluster() {
    for (size_t i = 0; i < kMembers; ++i) Kill(i, SIGKILL);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void Start(size_t i) {
    const pid_t pid = ::fork();
    HASYNC_ASSERT(pid >= 0);
    if (pid == 0) {
      const std::string log = fmt::format("{}/m{}.log", dir_, i);
      FILE* f = std::freopen(log.c_str(), "a", stderr);
      (void)f;
      const std::string name = fmt::format("m{}", i);
      const std::string data = fmt::format("{}/m{}", dir_, i);
      const std::string curl = fmt::format("http://127.0.0.1:{}", client_[i]);
      const std::string purl = fmt::format("http://127.0.0.1:{}", peer_[i]);
      ::execl(kEtcd, kEtcd, "--name", name.c_str(), "--data-dir", data.c_str(),
              "--listen-client-urls", curl.c_str(), "--advertise-client-urls", curl.c_str(),
              "--listen-peer-urls", purl.c_str(), "--initial-advertise-peer-urls", purl.c_str(),
              "--initial-cluster", initial_.c_str(), "--initial-cluster-state", "new",
              "--initial-cluster-token", dir_.c_str(), "--heartbeat-interval", "50",
              "--election-timeout", "500", "--log-level", "warn", nullptr);
      ::_exit(127);
    }
    pid_[i] = pid;
  }
  // Stops member i by its pid and waits for it (bounded: SIGKILL after 5 s of SIGTERM).
  void Kill(size_t i, int sig) {
    if (pid_[i] <= 0) return;
    ::kill(pid_[i], sig);
    for (int k = 0; k < 500; ++k) {
      int status = 0;
      if (::waitpid(pid_[i], &status, WNOHANG) == pid_[i]) {
        pid_[i] = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_[i], SIGKILL);
    ::waitpid(pid_[i], nullptr, 0);
    pid_[i] = -1;
  }
  EtcdEndpoint Endpoint(size_t i) const { return {false, {"127.0.0.1", client_[i], false}}; }
  Config::Arbiter ArbiterConfig(std::vector<size_t> members, int64_t timeout_ms = 1000) const {
    Config::Arbiter a;
    a.enabled = true;
    for (size_t i : members) a.endpoints.push_back(Endpoint(i));
    a.prefix = "/hasync/test/";
    a.request_timeout_ms = timeout_ms;
    return a;
  }
  // Waits (bounded) until the cluster serves a linearizable read.
  bool WaitReady() {
    auto c = EtcdClient::Create(ArbiterConfig({0, 1, 2}, 500), "").value();
    for (int k = 0; k < 100; ++k) {
      if (c->Range("/hasync/test/ready").ok()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

 private:
  std::string dir_;
  std::string initial_;
  std::array<uint16_t, kMembers> client_{};
  std::array<uint16_t, kMembers> peer_{};
  std::array<pid_t, kMembers> pid_{-1, -1, -1};
};

class RealEtcd : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kEtcd, X_OK) != 0) {
      GTEST_SKIP() << kEtcd << " is not installed: these tests need a real etcd 3.4 "
                   << "(scripts/install-deps.sh installs etcd-server)";
    }
    cluster_ = std::make_unique<EtcdCluster>();
    ASSERT_TRUE(cluster_->WaitReady()) << "the etcd cluster did not come up within 10 s";
  }
  std::unique_ptr<EtcdCluster> cluster_;
};

}  // namespace hasync::engine::arbiter::testing
