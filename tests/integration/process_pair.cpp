#include "tests/integration/process_pair.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

extern char** environ;

namespace hasync::testing {

namespace fs = std::filesystem;

// A listening port below the kernel's ephemeral range (net.ipv4.ip_local_port_range,
// 32768-60999 by default): a port the kernel handed out by bind(0) can be handed out
// again as the local port of any process's connect() once the listener dies, and then a
// node restarted on it fails with EADDRINUSE (seen when a killed primary restarted while
// other tests ran). Ports here are only ever taken by a bind that asks for them.
// A port is handed out at most once per process: two calls in a row used to return the
// same free port now and then (1 in 12,000), and a pair whose peer.address equals its
// listen address refuses to start (seen once in CI).
uint16_t FreePort() {
  static std::mt19937 rng(static_cast<uint32_t>(getpid()) * 2654435761u ^
                          static_cast<uint32_t>(time(nullptr)));
  static std::set<uint16_t> handed_out;
  for (int attempt = 0; attempt < 200; ++attempt) {
    const auto port = static_cast<uint16_t>(20'000 + rng() % 12'000);
    if (handed_out.contains(port)) continue;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    if (free) {
      handed_out.insert(port);
      return port;
    }
  }
  ADD_FAILURE() << "no free loopback port in 20000-31999 after 200 attempts";
  return 0;
}

namespace {
std::string Slurp(const std::string& path) {
  std::string out;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[8192];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}
}  // namespace

ProcessPair::ProcessPair(const std::string& tag, const std::string& extra_config,
                         const PairNet& net) {
  std::string tmpl = "/var/tmp/hasync-it-" + tag + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return;
  }
  base_ = tmpl;
  const char* names[2] = {"primary", "standby"};
  uint16_t ports[2] = {net.port != 0 ? net.port : FreePort(),
                       net.port != 0 ? net.port : FreePort()};
  std::string addrs[2];
  for (int n = 0; n < 2; ++n) {
    addrs[n] = net.addr[n].empty() ? "127.0.0.1" : net.addr[n];
    netns_[n] = net.netns[n];
  }
  key_ = base_ + "/sync.key";
  std::string keygen = std::string(HASYNC_BIN) + " keygen " + key_ + " >/dev/null";
  EXPECT_EQ(std::system(keygen.c_str()), 0);
  for (int n = 0; n < 2; ++n) {
    std::string dir = base_ + "/" + names[n];
    root_[n] = dir + "/spool";
    state_[n] = dir + "/state";
    config_[n] = dir + ".toml";
    log_[n] = dir + ".log";
    fs::create_directories(root_[n]);
    fs::create_directories(state_[n]);
    std::ofstream cfg(config_[n]);
    int peer = 1 - n;
    std::string metrics = "[metrics]\nenabled = false\n";
    if (net.metrics) {
      metrics_port_[n] = FreePort();
      metrics =
          "[metrics]\nenabled = true\nlisten = \"127.0.0.1:" + std::to_string(metrics_port_[n]) +
          "\"\n";
    }
    cfg << "[node]\nname = \"" << names[n] << "\"\nlisten = \"" << addrs[n] << ":" << ports[n]
        << "\"\n"
        << "[peer]\nname = \"" << names[peer] << "\"\naddress = \"" << addrs[peer] << ":"
        << ports[peer] << "\"\n"
        << "[sync]\nroots = [\"" << root_[n] << "\"]\nstate_dir = \"" << state_[n]
        << "\"\nkey_file = \"" << key_ << "\"\n"
        << metrics << extra_config;
  }
}

ProcessPair::~ProcessPair() {
  for (int n = 0; n < 2; ++n) {
    if (pid_[n] > 0) Signal(static_cast<Node>(n), SIGTERM);
  }
  if (!base_.empty() && !::testing::Test::HasFailure()) fs::remove_all(base_);
  if (::testing::Test::HasFailure()) {
    std::fprintf(stderr, "kept %s for inspection\n", base_.c_str());
  }
}

std::string ProcessPair::log(Node n) const { return Slurp(log_[n]); }

pid_t ProcessPair::Start(Node n) {
  EXPECT_LE(pid_[n], 0) << "node already running";
  std::vector<std::string> args = {HASYNC_BIN, "run", "-c", config_[n]};
  if (!netns_[n].empty()) {
    // `ip netns exec` enters the namespace and execs: the pid stays the node's.
    args.insert(args.begin(), {"/usr/sbin/ip", "netns", "exec", netns_[n]});
  }
  if (!started_once_[n]) {
    args.push_back("--initial-role");
    args.push_back(n == kPrimary ? "primary" : "standby");
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, log_[n].c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_addopen(&fa, 1, log_[n].c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  EXPECT_EQ(rc, 0) << "posix_spawn " << HASYNC_BIN;
  pid_[n] = rc == 0 ? pid : -1;
  started_once_[n] = true;
  return pid_[n];
}

namespace {

// Whether every thread of `pid` that takes signals is stopped. kill(SIGSTOP) returns
// before the threads have stopped: one may still finish its next syscall (a rename of
// the apply) while a test already walks the tree it believes frozen. io_uring's worker
// threads (comm "iou-…") take no signals and are not waited for.
bool AllThreadsStopped(pid_t pid) {
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator(task, ec)) {
    std::ifstream comm(t.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind("iou-", 0) == 0) continue;
    std::ifstream stat(t.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size()) continue;  // gone
    const char state = line[close + 2];
    if (state != 'T' && state != 't' && state != 'Z' && state != 'X') return false;
  }
  return !ec;
}

}  // namespace

int ProcessPair::Signal(Node n, int sig) {
  if (pid_[n] <= 0) return -1;
  kill(pid_[n], sig);
  if (sig == SIGSTOP) {
    // Bounded: 2 s, then the caller goes on with what it has (it was the old behaviour).
    for (int i = 0; i < 400 && !AllThreadsStopped(pid_[n]); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return 0;
  }
  if (sig == SIGCONT) return 0;
  int status = 0;
  for (int i = 0; i < 100; ++i) {  // 5 s, then SIGKILL
    pid_t r = waitpid(pid_[n], &status, WNOHANG);
    if (r == pid_[n]) {
      pid_[n] = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid_[n], SIGKILL);
  waitpid(pid_[n], &status, 0);
  pid_[n] = -1;
  ADD_FAILURE() << "node did not exit within 5 s of signal " << sig;
  return status;
}

int ProcessPair::Kill(Node n) {
  if (pid_[n] <= 0) return -1;
  kill(pid_[n], SIGKILL);
  int status = 0;
  for (int i = 0; i < 10'000; ++i) {
    if (waitpid(pid_[n], &status, WNOHANG) == pid_[n]) {
      pid_[n] = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ADD_FAILURE() << "node " << pid_[n] << " not reaped within 10 s of SIGKILL";
  return -1;
}

int ProcessPair::WaitExit(Node n, std::chrono::milliseconds timeout) {
  if (pid_[n] <= 0) return -1;
  int status = 0;
  bool exited = WaitFor(
      [&] {
        pid_t r = waitpid(pid_[n], &status, WNOHANG);
        return r == pid_[n];
      },
      timeout);
  if (!exited) {
    kill(pid_[n], SIGKILL);
    waitpid(pid_[n], &status, 0);
    pid_[n] = -1;
    return -1;
  }
  pid_[n] = -1;
  return status;
}

bool ProcessPair::WaitFor(const std::function<bool()>& predicate,
                          std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (predicate()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

TreeDiff ProcessPair::WaitConverged(std::chrono::milliseconds timeout) {
  TreeDiff last;
  WaitFor(
      [&] {
        last = CompareTrees(root_[kPrimary], root_[kStandby]);
        return last.empty();
      },
      timeout);
  return last;
}

std::string ProcessPair::Trouble(size_t max_lines) const {
  static constexpr size_t kTail = 8;
  std::string out;
  for (int n = 0; n < 2; ++n) {
    const char* name = n == kPrimary ? "primary" : "standby";
    std::vector<std::string> lines;
    std::istringstream in(log(static_cast<Node>(n)));
    for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
    size_t shown = 0;
    out += std::string("---- ") + name + ": warnings, errors and lines that are not log lines\n";
    for (const std::string& line : lines) {
      // Warnings, errors, and whatever is not a log line at all (a sanitizer's report,
      // an assertion's message).
      if (line.find("level=") == 0 && line.find("level=warn") != 0 &&
          line.find("level=error") != 0) {
        continue;
      }
      if (++shown > max_lines) {
        out += "  (more left out)\n";
        break;
      }
      out += "  " + line + "\n";
    }
    out += std::string("---- ") + name + ": last lines\n";
    for (size_t i = lines.size() > kTail ? lines.size() - kTail : 0; i < lines.size(); ++i) {
      out += "  " + lines[i] + "\n";
    }
  }
  return out;
}

size_t ProcessPair::CountEvents(Node n, const std::string& event) const {
  const std::string text = log(n), tag = "event=" + event;
  size_t count = 0;
  for (size_t pos = 0; (pos = text.find(tag, pos)) != std::string::npos; pos += tag.size()) {
    size_t end = pos + tag.size();
    if (end == text.size() || text[end] == ' ' || text[end] == '\n') ++count;
  }
  return count;
}

bool ProcessPair::WaitEvents(Node n, const std::string& event, size_t count,
                             std::chrono::milliseconds timeout) const {
  return WaitFor([&] { return CountEvents(n, event) >= count; }, timeout);
}

std::map<std::string, uint64_t> ProcessPair::LastEvent(Node n, const std::string& event) const {
  std::map<std::string, uint64_t> out;
  std::istringstream in(log(n));
  std::string line, found;
  while (std::getline(in, line)) {
    const std::string tag = " event=" + event;
    bool at_end =
        line.size() >= tag.size() && line.compare(line.size() - tag.size(), tag.size(), tag) == 0;
    if (line.find(tag + " ") != std::string::npos || at_end) {
      found = line;
    }
  }
  std::istringstream words(found);
  std::string w;
  while (words >> w) {
    size_t eq = w.find('=');
    if (eq == std::string::npos) continue;
    try {
      out[w.substr(0, eq)] = std::stoull(w.substr(eq + 1));
    } catch (...) {
    }
  }
  return out;
}

std::pair<int, std::string> Hasync(const std::string& args) {
  return Shell(std::string(HASYNC_BIN) + " " + args + " 2>&1");
}

std::pair<int, std::string> Shell(const std::string& cmd) {
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return {-1, ""};
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  int status = pclose(f);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace hasync::testing
