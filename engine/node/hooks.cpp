#include "engine/node/hooks.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "base/unique_fd.h"

extern char** environ;

namespace hasync::engine {

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The node's environment without any HASYNC_* variable, then ours.
std::vector<std::string> HookEnvironment(const HookEnv& env) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, "HASYNC_", 7) != 0) out.emplace_back(*e);
  }
  out.push_back("HASYNC_ROLE=" + env.role);
  out.push_back("HASYNC_EPOCH=" + std::to_string(env.epoch));
  out.push_back("HASYNC_REASON=" + env.reason);
  out.push_back("HASYNC_PEER=" + env.peer);
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string HookResult::Describe() const {
  if (timed_out) return fmt::format("timed out after {} ms (killed)", duration_ms);
  if (signal != 0) return fmt::format("killed by signal {}", signal);
  return fmt::format("exit {}", exit_code);
}

std::string FirstLine(const std::string& output, size_t max) {
  std::string line = output.substr(0, output.find('\n'));
  if (line.size() > max) line.resize(max);
  for (char& c : line) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return line;
}

Result<HookResult> RunHook(const Command& command, const HookEnv& env,
                           const std::function<void()>& while_waiting) {
  if (!command.configured()) return InvalidArgument("hook is not configured");
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe for a hook's output");
  UniqueFd read_end(p[0]), write_end(p[1]);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, write_end.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, write_end.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // A group of its own: a timeout kills the hook and whatever it started in the
  // foreground; default signal handling and an empty mask, whatever the node uses.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> argv_s = command.argv;
  std::vector<std::string> env_s = HookEnvironment(env);
  std::vector<char*> argv = Pointers(argv_s);
  std::vector<char*> envp = Pointers(env_s);
  pid_t pid = -1;
  const int64_t start = NowMs();
  int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  write_end.reset();  // ours; the child holds its copies
  if (rc != 0) return ErrnoStatus(rc, "start " + command.argv[0]);

  HookResult r;
  const int64_t deadline = start + command.timeout_ms;
  bool exited = false;
  int status = 0;
  int64_t exited_at = 0;
  char buf[4096];
  for (;;) {
    if (while_waiting) while_waiting();
    int64_t now = NowMs();
    if (!exited) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        exited = true;
        exited_at = now;
      }
    }
    // Once it exited, read what is left for a moment, but do not wait for a background
    // process it left holding the pipe (a hook that starts a daemon).
    if (exited && now - exited_at > 100) break;
    if (!exited && now >= deadline) {
      kill(-pid, SIGKILL);
      r.timed_out = true;
      waitpid(pid, &status, 0);
      exited = true;
      break;
    }
    pollfd pfd{read_end.get(), POLLIN, 0};
    int wait_ms =
        static_cast<int>(std::min<int64_t>(exited ? 20 : 50, std::max<int64_t>(deadline - now, 1)));
    int pr = poll(&pfd, 1, wait_ms);
    if (pr < 0 && errno != EINTR) break;
    if (pr > 0) {
      ssize_t n = read(read_end.get(), buf, sizeof buf);
      if (n > 0) {
        size_t room = kHookOutputMax - std::min(kHookOutputMax, r.output.size());
        size_t keep = std::min(room, static_cast<size_t>(n));
        r.output.append(buf, keep);
        r.output_dropped += static_cast<size_t>(n) - keep;
      } else if (n == 0 && exited) {
        break;  // EOF and reaped
      } else if (n == 0) {
        // EOF before exit: only the wait is left.
        pollfd none_fd{-1, 0, 0};
        poll(&none_fd, 0, 5);
      }
    }
  }
  r.duration_ms = NowMs() - start;
  if (WIFEXITED(status) && !r.timed_out) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  return r;
}

Probe::Probe(Command command, int64_t interval_ms, HookEnv env)
    : command_(std::move(command)), interval_ms_(interval_ms), env_(std::move(env)) {
  thread_ = std::thread([this] { Run(); });
}

Probe::~Probe() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();  // a run in progress ends within its timeout
}

Probe::Result Probe::Latest() const {
  std::lock_guard lock(mu_);
  return latest_;
}

void Probe::Run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    auto r = RunHook(command_, env_);
    int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
    lock.lock();
    latest_.ran = true;
    latest_.finished_ns = now;
    ++latest_.runs;
    if (r.ok()) {
      latest_.ok = r->ok();
      latest_.latency_us =
          static_cast<uint32_t>(std::min<int64_t>(r->duration_ms * 1000, UINT32_MAX));
      // Only a passing run names the scheduler's progress. A failing one often prints
      // something new each time (a timestamp, a pid): taken as the token, it would change
      // the record's fingerprint on every run and a hung scheduler would never be judged
      // Stalled. Its output goes to `failure` instead.
      if (r->ok()) latest_.token = FirstLine(r->output, kProbeTokenBytes);
      latest_.failure = r->ok() ? "" : r->Describe();
    } else {
      latest_.ok = false;
      latest_.failure = r.status().ToString();
    }
    if (!latest_.ok) ++latest_.failures;
    cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [&] { return stop_; });
  }
}

}  // namespace hasync::engine
