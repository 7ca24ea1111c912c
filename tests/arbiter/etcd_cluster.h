// A real three-member etcd 3.4 cluster for tests: started on free loopback ports with
// short raft timers, data under a temporary directory, every member stopped by its pid.
// Or inside a network namespace (the pair tests' router, tests/support/net_lab.h) on an
// address of it, where the nodes of a pair reach it and a route can cut one of them off.
// RealEtcd skips (loudly) when /usr/bin/etcd is missing.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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

// Moves the calling process into network namespace `ns` (ip netns's /var/run/netns/ns).
inline bool EnterNetns(const std::string& ns) {
  const int fd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::setns(fd, CLONE_NEWNET) == 0;
  ::close(fd);
  return ok;
}

// Runs `f` in a child process inside network namespace `ns`; whether it returned true.
template <typename F>
bool InNetns(const std::string& ns, F f) {
  const pid_t pid = ::fork();
  HASYNC_ASSERT(pid >= 0);
  if (pid == 0) ::_exit(EnterNetns(ns) && f() ? 0 : 1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

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
  // tls: the members serve https with certificates from a CA made here (openssl) and
  // require a client certificate (ca_file(), cert_file(), key_file()).
  // netns: start the members inside that namespace, listening on `host` (an address of
  // it) at fixed ports 23790.. (clients) and 23800.. (peers); the namespace is the test's
  // own, so they are free.
  explicit EtcdCluster(bool tls = false, std::string netns = "", std::string host = "127.0.0.1")
      : tls_(tls), netns_(std::move(netns)), host_(std::move(host)) {
    char tmpl[] = "/tmp/hasync-etcd-XXXXXX";
    HASYNC_ASSERT(::mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    std::string initial;
    for (size_t i = 0; i < kMembers; ++i) {
      client_[i] = netns_.empty() ? FreePort() : static_cast<uint16_t>(23790 + i);
      peer_[i] = netns_.empty() ? FreePort() : static_cast<uint16_t>(23800 + i);
      initial += fmt::format("{}m{}=http://{}:{}", i ? "," : "", i, host_, peer_[i]);
    }
    initial_ = initial;
    if (tls_) MakeCertificates();
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
      if (!netns_.empty() && !EnterNetns(netns_)) ::_exit(126);
      const std::string log = fmt::format("{}/m{}.log", dir_, i);
      FILE* f = std::freopen(log.c_str(), "a", stderr);
      (void)f;
      const std::string name = fmt::format("m{}", i);
      const std::string data = fmt::format("{}/m{}", dir_, i);
      const std::string curl =
          fmt::format("{}://{}:{}", tls_ ? "https" : "http", host_, client_[i]);
      const std::string purl = fmt::format("http://{}:{}", host_, peer_[i]);
      std::vector<std::string> args = {kEtcd,    "--name",
                                       name,     "--data-dir",
                                       data,     "--listen-client-urls",
                                       curl,     "--advertise-client-urls",
                                       curl,     "--listen-peer-urls",
                                       purl,     "--initial-advertise-peer-urls",
                                       purl,     "--initial-cluster",
                                       initial_, "--initial-cluster-state",
                                       "new",    "--initial-cluster-token",
                                       dir_,     "--heartbeat-interval",
                                       "50",     "--election-timeout",
                                       "500",    "--log-level",
                                       "warn"};
      if (tls_) {
        for (const std::string& a :
             {std::string("--cert-file"), dir_ + "/server.pem", std::string("--key-file"),
              dir_ + "/server.key", std::string("--trusted-ca-file"), ca_file(),
              std::string("--client-cert-auth")}) {
          args.push_back(a);
        }
      }
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(kEtcd, argv.data());
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
  EtcdEndpoint Endpoint(size_t i) const { return {tls_, {host_, client_[i], false}}; }
  bool running(size_t i) const { return pid_[i] > 0; }
  std::string ca_file() const { return dir_ + "/ca.pem"; }
  std::string cert_file() const { return dir_ + "/client.pem"; }
  std::string key_file() const { return dir_ + "/client.key"; }
  Config::Arbiter ArbiterConfig(std::vector<size_t> members, int64_t timeout_ms = 1000) const {
    Config::Arbiter a;
    a.enabled = true;
    for (size_t i : members) a.endpoints.push_back(Endpoint(i));
    a.prefix = "/hasync/test/";
    a.request_timeout_ms = timeout_ms;
    if (tls_) {
      a.ca_file = ca_file();
      a.cert_file = cert_file();
      a.key_file = key_file();
    }
    return a;
  }
  // Waits (bounded) until the cluster serves a linearizable read.
  bool WaitReady() {
    auto wait = [this] {
      auto c = EtcdClient::Create(ArbiterConfig({0, 1, 2}, 500), "").value();
      for (int k = 0; k < 100; ++k) {
        if (c->Range("/hasync/test/ready").ok()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      return false;
    };
    return netns_.empty() ? wait() : InNetns(netns_, wait);
  }

 private:
  // A CA, a server certificate for 127.0.0.1 and a client certificate, P-256, one day.
  // The server's is also a client certificate: etcd 3.4's JSON gateway dials the member's
  // own gRPC port with it, and --client-cert-auth refuses it otherwise.
  void MakeCertificates() {
    const std::string d = dir_;
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::FILE* f = std::fopen((d + "/server.ext").c_str(), "w");
    HASYNC_ASSERT(f != nullptr);
    std::fputs("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n", f);
    std::fclose(f);
    f = std::fopen((d + "/client.ext").c_str(), "w");
    HASYNC_ASSERT(f != nullptr);
    std::fputs("extendedKeyUsage=clientAuth\n", f);
    std::fclose(f);
    const std::string cmds[] = {
        fmt::format("openssl req -x509 {} -keyout {}/ca.key -out {}/ca.pem -days 1 -subj "
                    "/CN=hasync-test-ca",
                    ec, d, d),
        fmt::format("openssl req {} -keyout {}/server.key -out {}/server.csr -subj /CN=etcd", ec, d,
                    d),
        fmt::format("openssl x509 -req -in {0}/server.csr -CA {0}/ca.pem -CAkey {0}/ca.key "
                    "-CAcreateserial -out {0}/server.pem -days 1 -extfile {0}/server.ext",
                    d),
        fmt::format("openssl req {} -keyout {}/client.key -out {}/client.csr -subj /CN=hasync", ec,
                    d, d),
        fmt::format("openssl x509 -req -in {0}/client.csr -CA {0}/ca.pem -CAkey {0}/ca.key "
                    "-CAcreateserial -out {0}/client.pem -days 1 -extfile {0}/client.ext",
                    d),
    };
    for (const std::string& c : cmds) {
      HASYNC_ASSERT(std::system((c + " >/dev/null 2>&1").c_str()) == 0);
    }
  }

  bool tls_ = false;
  std::string netns_;
  std::string host_;
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
