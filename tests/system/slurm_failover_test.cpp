// The Slurm recipe of packaging/examples/slurm/ (issue 6), end to end: a real slurmctld
// moves from a dead primary to the standby and keeps every job.
//
//     ns A, host ctl-a ── veth ── ns W (router, tie-breaker) ── veth ── ns B, host ctl-b
//     10.213.1.1                  10.213.1.254 | 10.213.2.254           10.213.2.1
//
// Each controller is a network namespace (tests/support/net_lab.h) plus a UTS namespace of
// its own (`unshare --uts`, host name ctl-a or ctl-b), because slurmctld runs only on a
// host that slurm.conf names in a SlurmctldHost line. The slurm.conf files list ctl-a then
// ctl-b, as a production pair would; they differ only in StateSaveLocation (each node's
// sync root: on one machine the two "hosts" cannot share a path) and in where slurmctld
// writes its pid and log. One munged with a key made for the test serves both hosts
// through its own socket (AuthInfo=socket=...). hasync runs the recipe's own hooks:
// probe.sh, on-promote.sh, on-demote.sh (SLURMHA_CONTROL=direct: no systemd here) and
// quorum-tcp.sh, which reaches a TCP witness that this test serves from namespace W.
//
// The story: hasync A (primary) and B (standby) start; the recipe's on_promote starts
// slurmctld on A; jobs are submitted there and held (no compute node ever runs them); once
// B's replica of the state holds them, A dies like a host does (link cut, slurmctld and
// hasync killed with SIGKILL). B must promote after a window, its on_promote must start
// slurmctld from the replicated StateSaveLocation and take control, and squeue and
// scontrol on B must show every job, still pending.
//
// Needs root, iproute2, ping, util-linux (unshare), munge and Slurm (slurmctld,
// slurm-client): without them the test skips and says which is missing. Every wait is
// bounded, every process it starts is stopped by its pid, the namespaces are deleted, and
// the work directory /var/tmp/hasync-slurm-* is removed (kept, and named, on failure).
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/skip_loudly.h"

#include "tests/support/net_lab.h"
#include "tests/support/tree_compare.h"

extern char** environ;

namespace hasync::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Failure detection as in the netns failover tests: a short window so the test stays
// short; window > lease + max(2 beats, 1 s).
constexpr int64_t kWindowMs = 3000;
constexpr int64_t kBeatMs = 250;
constexpr int64_t kLeaseMs = 1200;
constexpr uint16_t kHasyncPort = 7420;
constexpr uint16_t kWitnessPort = 7999;
constexpr int kJobs = 5;

const fs::path kRecipe = fs::path(HASYNC_SOURCE_DIR) / "packaging" / "examples" / "slurm";
const fs::path kGenericHooks = fs::path(HASYNC_SOURCE_DIR) / "packaging" / "examples" / "hooks";

std::string SlurmMissing() {
  if (std::string m = NetLabMissing(); !m.empty()) return m;
  const std::pair<const char*, const char*> tools[] = {
      {"/usr/sbin/slurmctld", "slurmctld"}, {"/usr/bin/scontrol", "slurm-client"},
      {"/usr/bin/sbatch", "slurm-client"},  {"/usr/bin/squeue", "slurm-client"},
      {"/usr/bin/sdiag", "slurm-client"},   {"/usr/sbin/munged", "munge"},
      {"/usr/sbin/mungekey", "munge"},      {"/usr/bin/unshare", "util-linux"},
      {"/usr/bin/hostname", "hostname"},    {"/usr/bin/timeout", "coreutils"},
  };
  for (const auto& [tool, package] : tools) {
    if (access(tool, X_OK) != 0) {
      return std::string("needs ") + tool + " (Debian package " + package +
             "; scripts/install-deps.sh installs it)";
    }
  }
  return "";
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const fs::path& p, const std::string& text, mode_t mode = 0644) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
  ::chmod(p.c_str(), mode);
}

bool WaitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (predicate()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// posix_spawn with stdin from /dev/null and stdout+stderr appended to `log`.
pid_t Spawn(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  EXPECT_EQ(rc, 0) << "posix_spawn " << args[0] << ": " << std::strerror(rc);
  return rc == 0 ? pid : -1;
}

// Waits (bounded) for `pid`, a child of this process, to exit; its wait status, or
// nullopt if it still runs at the deadline.
std::optional<int> Reap(pid_t pid, std::chrono::milliseconds timeout) {
  int status = 0;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -1;  // not our child (already reaped)
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
}

// Stops a child by its pid: `sig`, then SIGKILL after `grace`, and reaps it.
void Stop(pid_t& pid, int sig = SIGTERM, std::chrono::milliseconds grace = 10s) {
  if (pid <= 0) return;
  kill(pid, sig);
  if (!Reap(pid, grace)) {
    kill(pid, SIGKILL);
    Reap(pid, 5s);
  }
  pid = -1;
}

struct Ran {
  int rc = -1;  // exit status; -1 when killed (its bound ran out) or not started
  std::string out;
  double seconds = 0;
};

// Runs a command to completion, at most `timeout` (then SIGKILL), output captured.
Ran Execute(const std::vector<std::string>& args, const fs::path& scratch,
            std::chrono::milliseconds timeout) {
  static int serial = 0;
  const fs::path out = scratch / ("run." + std::to_string(++serial) + ".out");
  const auto start = Clock::now();
  Ran r;
  pid_t pid = Spawn(args, out);
  if (pid <= 0) return r;
  std::optional<int> status = Reap(pid, timeout);
  if (!status) {
    kill(pid, SIGKILL);
    Reap(pid, 5s);
  } else if (WIFEXITED(*status)) {
    r.rc = WEXITSTATUS(*status);
  }
  r.out = ReadAll(out);
  r.seconds = SecondsSince(start);
  fs::remove(out);
  return r;
}

// A TCP listener inside namespace `netns`, on every address there: the third host that
// both nodes' quorum_check (the recipe's quorum-tcp.sh) must reach. A thread of this
// process enters the namespace (setns applies to the calling thread only) and accepts
// and closes connections until destroyed.
class TcpWitness {
 public:
  TcpWitness(const std::string& netns, uint16_t port) {
    std::promise<std::string> ready;
    std::future<std::string> result = ready.get_future();
    thread_ = std::thread([this, netns, port, &ready] {
      int ns = open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
        ready.set_value("cannot enter namespace " + netns + ": " + std::strerror(errno));
        if (ns >= 0) close(ns);
        return;
      }
      close(ns);
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_ANY);
      addr.sin_port = htons(port);
      if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 16) != 0) {
        ready.set_value("cannot listen on port " + std::to_string(port) + ": " +
                        std::strerror(errno));
        close(fd);
        return;
      }
      ready.set_value("");
      while (!stop_.load(std::memory_order_relaxed)) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
          int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
          if (c >= 0) close(c);
        }
      }
      close(fd);
    });
    error_ = result.get();
  }
  ~TcpWitness() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
  }
  const std::string& error() const { return error_; }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::string error_;
};

// munged with a key made for the test and a socket of its own, in the foreground, stopped
// by its pid.
class Munged {
 public:
  explicit Munged(const fs::path& dir) : dir_(dir), socket_(dir / "munge.socket") {
    fs::create_directories(dir);
    ::chmod(dir.c_str(), 0755);  // the socket's directory: searchable by all, as munged wants
    const fs::path key = dir / "munge.key";
    Ran keygen = Execute({"/usr/sbin/mungekey", "--create", "--keyfile", key.string()}, dir, 10s);
    if (keygen.rc != 0) {
      error_ = "mungekey failed: " + keygen.out;
      return;
    }
    pid_ = Spawn({"/usr/sbin/munged", "--foreground", "--key-file", key.string(), "--socket",
                  socket_.string(), "--pid-file", (dir / "munged.pid").string(), "--log-file",
                  (dir / "munged.log").string(), "--seed-file", (dir / "munged.seed").string()},
                 dir / "munged.out");
    if (!WaitFor([&] { return fs::exists(socket_); }, 10s)) {
      error_ = "munged did not create its socket within 10 s: " + ReadAll(dir / "munged.out") +
               ReadAll(dir / "munged.log");
    }
  }
  ~Munged() { Stop(pid_); }
  const std::string& error() const { return error_; }
  const fs::path& socket() const { return socket_; }

 private:
  fs::path dir_, socket_;
  pid_t pid_ = -1;
  std::string error_;
};

// One controller host: its namespaces, its hasync node and its slurmctld.
struct Controller {
  std::string node;     // hasync's node name
  std::string host;     // the UTS host name, a SlurmctldHost of slurm.conf
  std::string netns;    // the network namespace (NetLab)
  std::string addr;     // its address there
  std::string witness;  // the TCP witness as this node reaches it
  fs::path dir, spool, state, config, log, slurm_conf, slurmctld_log, slurmctld_pid;
  pid_t hasync = -1;
  bool started_once = false;

  // The environment the hooks need on this host: Slurm's config, direct control (no
  // systemd), hasync's state dir.
  std::vector<std::string> Env() const {
    return {"SLURM_CONF=" + slurm_conf.string(), "SLURMHA_CONTROL=direct",
            "SLURMHA_STATE_DIR=" + state.string()};
  }
  // argv that runs `cmd` on this host: in its network namespace, in a UTS namespace named
  // `host`, with Env(). Every step execs the next: the pid is the command's.
  std::vector<std::string> OnHost(const std::vector<std::string>& cmd,
                                  const std::vector<std::string>& extra_env = {}) const {
    std::vector<std::string> argv = {"/usr/sbin/ip",
                                     "netns",
                                     "exec",
                                     netns,
                                     "/usr/bin/unshare",
                                     "--uts",
                                     "/bin/sh",
                                     "-c",
                                     "/usr/bin/hostname \"$0\" && exec \"$@\"",
                                     host,
                                     "/usr/bin/env"};
    for (const auto& e : Env()) argv.push_back(e);
    for (const auto& e : extra_env) argv.push_back(e);
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return argv;
  }
  // A Slurm client command from this host (clients do not care about the host name).
  std::vector<std::string> Client(const std::vector<std::string>& cmd) const {
    std::vector<std::string> argv = {"/usr/sbin/ip",
                                     "netns",
                                     "exec",
                                     netns,
                                     "/usr/bin/env",
                                     "SLURM_CONF=" + slurm_conf.string(),
                                     "/usr/bin/timeout",
                                     "30"};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return argv;
  }
  pid_t SlurmctldPid() const {
    std::string text = ReadAll(slurmctld_pid);
    pid_t pid = text.empty() ? -1 : static_cast<pid_t>(std::atol(text.c_str()));
    if (pid <= 0) return -1;
    std::string comm = ReadAll("/proc/" + std::to_string(pid) + "/comm");
    return comm == "slurmctld\n" ? pid : -1;
  }
};

// The test's work directory and everything it started; the destructor stops every
// process by its pid (slurmctlds, then hasync nodes) and removes the directory.
class SlurmLab {
 public:
  SlurmLab() {
    char tmpl[] = "/var/tmp/hasync-slurm-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) base_ = tmpl;
    // munged wants every directory above its socket searchable by all (mkdtemp: 0700).
    if (!base_.empty()) ::chmod(base_.c_str(), 0755);
    // Daemons started by the hooks (slurmctld forks away from its parent) are re-parented
    // to this process instead of init, so that they can be reaped here by their pid.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
  }
  ~SlurmLab() {
    for (Controller* c : {&a, &b}) {
      pid_t pid = c->SlurmctldPid();
      Stop(pid);
    }
    for (Controller* c : {&a, &b}) Stop(c->hasync);
    munged_.reset();
    ReapAdopted();
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    if (base_.empty()) return;
    if (::testing::Test::HasFailure()) {
      std::fprintf(stderr, "kept %s for inspection\n", base_.c_str());
    } else {
      std::error_code ec;
      fs::remove_all(base_, ec);
    }
  }
  const fs::path& base() const { return base_; }

  // What this process adopted as subreaper and still has: slurmctld's helper process
  // (slurmscriptd) once its slurmctld was killed, exited or not. Every child left is
  // stopped and reaped here (by its pid), so none is handed to init as a zombie.
  static void ReapAdopted() {
    const std::string self = std::to_string(getpid());
    for (int round = 0; round < 50; ++round) {
      bool any = false;
      for (const auto& e : fs::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces.
        const std::string stat = ReadAll(e.path() / "stat");
        const size_t close = stat.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(stat.substr(close + 2));
        std::string state, ppid;
        rest >> state >> ppid;
        if (ppid != self) continue;
        pid_t pid = static_cast<pid_t>(std::stol(name));
        any = true;
        if (state != "Z") kill(pid, SIGKILL);
        Reap(pid, 1s);
      }
      if (!any) return;
    }
  }

  // Keys, munged, the two hosts' files. Returns what went wrong, or "".
  std::string SetUp(const NetLab& lab) {
    if (base_.empty()) return "mkdtemp /var/tmp/hasync-slurm-XXXXXX failed";
    key_ = base_ / "sync.key";
    Ran keygen = Execute({HASYNC_BIN, "keygen", key_.string()}, base_, 10s);
    if (keygen.rc != 0) return "hasync keygen failed: " + keygen.out;
    munged_ = std::make_unique<Munged>(base_ / "munge");
    if (!munged_->error().empty()) return munged_->error();
    a = MakeController("primary", "ctl-a", lab.a(), "10.213.1.1", "10.213.1.254");
    b = MakeController("standby", "ctl-b", lab.b(), "10.213.2.1", "10.213.2.254");
    for (Controller* c : {&a, &b}) {
      const Controller& peer = c == &a ? b : a;
      WriteAll(c->slurm_conf, SlurmConf(*c));
      WriteAll(c->config, HasyncConfig(*c, peer), 0600);
    }
    return "";
  }

  void StartHasync(Controller& c, const std::string& initial_role) {
    std::vector<std::string> cmd = {HASYNC_BIN, "run", "-c", c.config.string()};
    if (!c.started_once) cmd.insert(cmd.end(), {"--initial-role", initial_role});
    c.hasync = Spawn(c.OnHost(cmd), c.log);
    c.started_once = true;
  }

  // The role hasync persisted on `c`, "" before its first start.
  static std::string Role(const Controller& c) {
    std::istringstream in(ReadAll(c.state / "state"));
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("role=", 0) == 0) return line.substr(5);
    }
    return "";
  }

  Controller a, b;

 private:
  Controller MakeController(const std::string& node, const std::string& host,
                            const std::string& netns, const std::string& addr,
                            const std::string& gateway) {
    Controller c;
    c.node = node;
    c.host = host;
    c.netns = netns;
    c.addr = addr;
    c.witness = gateway + ":" + std::to_string(kWitnessPort);
    c.dir = base_ / host;
    c.spool = c.dir / "spool";  // the sync root and StateSaveLocation
    c.state = c.dir / "hasync-state";
    c.config = c.dir / "hasync.toml";
    c.log = c.dir / "hasync.log";
    c.slurm_conf = c.dir / "slurm.conf";
    c.slurmctld_log = c.dir / "slurmctld.log";
    c.slurmctld_pid = c.dir / "slurmctld.pid";
    fs::create_directories(c.spool);
    fs::create_directories(c.state);
    return c;
  }

  // Identical on both hosts but for the per-host paths (see the file comment).
  std::string SlurmConf(const Controller& c) const {
    std::ostringstream s;
    s << "# slurm.conf written by tests/system/slurm_failover_test.cpp\n"
      << "ClusterName=hasynctest\n"
      << "SlurmctldHost=" << a.host << "(" << a.addr << ")\n"
      << "SlurmctldHost=" << b.host << "(" << b.addr << ")\n"
      << "SlurmUser=root\n"
      << "AuthType=auth/munge\n"
      << "AuthInfo=socket=" << munged_->socket().string() << "\n"
      << "StateSaveLocation=" << c.spool.string() << "\n"
      << "SlurmctldPidFile=" << c.slurmctld_pid.string() << "\n"
      << "SlurmctldLogFile=" << c.slurmctld_log.string() << "\n"
      << "SlurmctldDebug=info\n"
      << "SlurmdSpoolDir=" << (base_ / "slurmd").string() << "\n"
      << "ProctrackType=proctrack/linuxproc\n"
      << "TaskPlugin=task/none\n"
      << "MailProg=/bin/true\n"
      << "AccountingStorageType=accounting_storage/none\n"
      << "JobCompType=jobcomp/none\n"
      << "JobAcctGatherType=jobacct_gather/none\n"
      << "ReturnToService=2\n"
      // A compute node that never comes up: the jobs stay pending (and are held anyway).
      << "NodeName=cn1 NodeAddr=127.0.0.1 CPUs=1 State=UNKNOWN\n"
      << "PartitionName=debug Nodes=cn1 Default=YES MaxTime=INFINITE State=UP\n";
    return s.str();
  }

  std::string HasyncConfig(const Controller& c, const Controller& peer) const {
    const std::string hooks = (kRecipe / "hooks").string();
    std::ostringstream s;
    s << "[node]\nname = \"" << c.node << "\"\nlisten = \"" << c.addr << ":" << kHasyncPort
      << "\"\n"
      << "[peer]\nname = \"" << peer.node << "\"\naddress = \"" << peer.addr << ":" << kHasyncPort
      << "\"\n"
      << "[sync]\nroots = [\"" << c.spool.string() << "\"]\nstate_dir = \"" << c.state.string()
      << "\"\nkey_file = \"" << key_.string() << "\"\n"
      << "[metrics]\nenabled = false\n"
      << "[failover]\nwindow_ms = " << kWindowMs << "\nbeat_ms = " << kBeatMs
      << "\nlease_ms = " << kLeaseMs << "\nmin_failover_interval_ms = 0\n"
      << "[probe]\ncommand = [\"" << hooks << "/probe.sh\"]\ninterval_ms = 1000\n"
      << "timeout_ms = 900\n"
      << "[hooks.on_promote]\ncommand = [\"" << hooks << "/on-promote.sh\"]\n"
      << "timeout_ms = 50000\n"
      << "[hooks.on_demote]\ncommand = [\"" << hooks << "/on-demote.sh\"]\n"
      << "timeout_ms = 30000\n"
      << "[hooks.quorum_check]\ncommand = [\"" << (kGenericHooks / "quorum-tcp.sh").string()
      << "\", \"" << c.witness << "\"]\ntimeout_ms = 2000\n";
    return s.str();
  }

  fs::path base_, key_;
  std::unique_ptr<Munged> munged_;
};

size_t CountEvents(const Controller& c, const std::string& event) {
  const std::string text = ReadAll(c.log), tag = "event=" + event;
  size_t count = 0;
  for (size_t pos = 0; (pos = text.find(tag, pos)) != std::string::npos; pos += tag.size()) {
    size_t end = pos + tag.size();
    if (end == text.size() || text[end] == ' ' || text[end] == '\n') ++count;
  }
  return count;
}

// The lines of `c`'s log with `event=hook hook=NAME`.
std::vector<std::string> HookLines(const Controller& c, const std::string& name) {
  std::vector<std::string> out;
  std::istringstream in(ReadAll(c.log));
  for (std::string line; std::getline(in, line);) {
    if (line.find("event=hook hook=" + name + " ") != std::string::npos) out.push_back(line);
  }
  return out;
}

// Job ids in the first whitespace-separated column of `text`.
std::set<uint32_t> JobIds(const std::string& text) {
  std::set<uint32_t> ids;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string w;
    if (words >> w && !w.empty() && std::all_of(w.begin(), w.end(), ::isdigit)) {
      ids.insert(static_cast<uint32_t>(std::stoul(w)));
    }
  }
  return ids;
}

// The next job id slurmctld will hand out, read from the header of its job_state file; 0
// while the file is missing or shorter than its header. Slurm 22.05 writes that header in
// dump_all_job_state() (src/slurmctld/job_mgr.c): packstr("PROTOCOL_VERSION") (a 32-bit
// big-endian length, then the bytes and their NUL), pack16(protocol version),
// pack_time(now) (64 bits), pack32(job_id_sequence), and only then the jobs, under the job
// lock that job creation holds. A header whose sequence is past a job id therefore
// belongs to a file that holds that job. Used only to know when to pull the plug; what
// the test asserts is read from the new controller with squeue and scontrol.
uint32_t NextJobId(const fs::path& job_state) {
  const std::string b = ReadAll(job_state);
  auto u32 = [&b](size_t at) {
    return static_cast<uint32_t>(static_cast<unsigned char>(b[at])) << 24 |
           static_cast<uint32_t>(static_cast<unsigned char>(b[at + 1])) << 16 |
           static_cast<uint32_t>(static_cast<unsigned char>(b[at + 2])) << 8 |
           static_cast<uint32_t>(static_cast<unsigned char>(b[at + 3]));
  };
  if (b.size() < 4) return 0;
  const uint32_t version_len = u32(0);
  const size_t at = 4 + size_t{version_len} + 2 + 8;
  if (version_len > 64 || b.size() < at + 4) return 0;
  return u32(at);
}

TEST(SlurmFailover, TheStandbyTakesOverEveryJobWhenThePrimaryHostDies) {
  if (std::string m = SlurmMissing(); !m.empty()) SKIP_LOUDLY(m);
  const auto test_start = Clock::now();
  NetLab lab;
  ASSERT_TRUE(lab.error().empty()) << lab.error();
  TcpWitness witness(lab.w(), kWitnessPort);
  ASSERT_TRUE(witness.error().empty()) << witness.error();
  SlurmLab env;
  ASSERT_EQ(env.SetUp(lab), "");
  Controller& a = env.a;
  Controller& b = env.b;
  auto dump = [&] {
    return "\n--- hasync A:\n" + ReadAll(a.log) + "\n--- hasync B:\n" + ReadAll(b.log) +
           "\n--- slurmctld A:\n" + ReadAll(a.slurmctld_log) + "\n--- slurmctld B:\n" +
           ReadAll(b.slurmctld_log);
  };

  // The primary first, and its scheduler before the standby joins: with no slurmctld the
  // probe fails, A's beat does not advance, and a joined standby would take over.
  env.StartHasync(a, "primary");
  ASSERT_TRUE(WaitFor([&] { return SlurmLab::Role(a) == "primary"; }, 10s)) << dump();
  Ran promote_a = Execute(a.OnHost({(kRecipe / "hooks" / "on-promote.sh").string()},
                                   {"HASYNC_ROLE=primary", "HASYNC_EPOCH=1", "HASYNC_PEER=standby",
                                    "HASYNC_REASON=first start of the test pair"}),
                          env.base(), 60s);
  ASSERT_EQ(promote_a.rc, 0) << "on-promote.sh on ctl-a:\n" << promote_a.out << dump();
  const pid_t slurmctld_a = a.SlurmctldPid();
  ASSERT_GT(slurmctld_a, 0) << "no slurmctld behind " << a.slurmctld_pid << dump();
  std::fprintf(stderr, "slurmctld up on ctl-a in %.1f s\n", promote_a.seconds);
  env.StartHasync(b, "standby");
  ASSERT_TRUE(WaitFor([&] { return CountEvents(b, "session_open") >= 1; }, 30s)) << dump();

  // Held jobs: they stay pending whatever the (absent) compute node does.
  std::set<uint32_t> submitted;
  for (int i = 0; i < kJobs; ++i) {
    Ran r = Execute(
        a.Client({"/usr/bin/sbatch", "--hold", "--parsable", "--job-name",
                  "hasync-" + std::to_string(i), "--output", "/dev/null", "--wrap", "sleep 600"}),
        env.base(), 35s);
    ASSERT_EQ(r.rc, 0) << "sbatch on ctl-a: " << r.out << dump();
    std::set<uint32_t> id = JobIds(r.out.substr(0, r.out.find(';')));
    ASSERT_EQ(id.size(), 1u) << "sbatch printed: " << r.out;
    submitted.insert(*id.begin());
  }
  Ran queue_a = Execute(a.Client({"/usr/bin/squeue", "-h", "-o", "%i"}), env.base(), 35s);
  ASSERT_EQ(queue_a.rc, 0) << queue_a.out;
  ASSERT_EQ(JobIds(queue_a.out), submitted) << "squeue on ctl-a:\n" << queue_a.out;
  const uint32_t last_id = *submitted.rbegin();

  // Replicated: slurmctld saved its job state after the last submission (the header of
  // job_state names the next job id it will hand out), that file reached B, and then both
  // spools were identical at one instant.
  auto next_id_in = [](const fs::path& spool) { return NextJobId(spool / "job_state"); };
  ASSERT_TRUE(WaitFor([&] { return next_id_in(a.spool) > last_id; }, 20s))
      << "slurmctld on ctl-a did not save job " << last_id << " within 20 s" << dump();
  ASSERT_TRUE(WaitFor([&] { return next_id_in(b.spool) > last_id; }, 20s))
      << "hasync did not replicate job_state within 20 s" << dump();
  TreeDiff diff;
  ASSERT_TRUE(WaitFor(
      [&] {
        diff = CompareTrees(a.spool.string(), b.spool.string());
        return diff.empty();
      },
      20s))
      << diff.ToString() << dump();

  // ctl-a dies as a host does: the link goes, slurmctld and hasync are killed.
  const auto died = Clock::now();
  lab.Cut(lab.a());
  pid_t victim = slurmctld_a;
  Stop(victim, SIGKILL);
  Stop(a.hasync, SIGKILL);

  ASSERT_TRUE(WaitFor([&] { return CountEvents(b, "promoted") >= 1; }, 30s))
      << "the standby did not promote within 30 s" << dump();
  const double promoted_s = SecondsSince(died);
  ASSERT_TRUE(WaitFor([&] { return !HookLines(b, "on_promote").empty(); }, 60s))
      << "on_promote did not finish on ctl-b within 60 s" << dump();
  const double on_promote_s = SecondsSince(died);
  const std::vector<std::string> runs = HookLines(b, "on_promote");
  ASSERT_EQ(runs.size(), 1u) << dump();
  EXPECT_NE(runs[0].find("result=\"exit 0\""), std::string::npos) << runs[0] << dump();
  EXPECT_GT(b.SlurmctldPid(), 0) << "no slurmctld behind " << b.slurmctld_pid << dump();

  // Every job is there, as it was: pending and held.
  Ran queue_b = Execute(b.Client({"/usr/bin/squeue", "-h", "-o", "%i"}), env.base(), 35s);
  ASSERT_EQ(queue_b.rc, 0) << "squeue on ctl-b: " << queue_b.out << dump();
  EXPECT_EQ(JobIds(queue_b.out), submitted) << "squeue on ctl-b:\n" << queue_b.out << dump();
  for (uint32_t id : submitted) {
    Ran show = Execute(b.Client({"/usr/bin/scontrol", "show", "job", std::to_string(id)}),
                       env.base(), 35s);
    EXPECT_EQ(show.rc, 0) << "scontrol show job " << id << ": " << show.out;
    EXPECT_NE(show.out.find("JobState=PENDING"), std::string::npos) << show.out;
    EXPECT_NE(show.out.find("Reason=JobHeldUser"), std::string::npos) << show.out;
  }
  std::fprintf(stderr,
               "ctl-a died; ctl-b promoted after %.1f s, its slurmctld in control after %.1f s; "
               "%d jobs kept; whole test %.1f s\n",
               promoted_s, on_promote_s, kJobs, SecondsSince(test_start));
}

}  // namespace
}  // namespace hasync::testing
