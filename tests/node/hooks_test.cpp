// Hooks and the probe (engine/node/hooks.h): argv without a shell, the HASYNC_*
// environment, captured and bounded output, a timeout that kills the whole process group,
// and a hook that leaves a daemon behind is not waited for.
#include "engine/node/hooks.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

namespace hasync::engine {
namespace {

// The default timeout is far above what these scripts take even on a loaded machine (a
// sanitizer build beside other jobs): only the timeout test means to reach its timeout.
Command Sh(const std::string& script, int64_t timeout_ms = 10'000) {
  return Command{{"/bin/sh", "-c", script}, timeout_ms};
}

HookEnv Env() { return HookEnv{"primary", 7, "verdict silent", "mu02"}; }

TEST(Hooks, ArgvIsPassedAsIsWithoutAShell) {
  // A file name with shell syntax in it stays one argument, unexpanded.
  auto r = RunHook(Command{{"/bin/echo", "a; rm -rf /tmp/x", "$HOME", "*"}, 2000}, Env());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->output, "a; rm -rf /tmp/x $HOME *\n");
}

TEST(Hooks, EnvironmentNamesRoleEpochReasonAndPeer) {
  setenv("HASYNC_ROLE", "forged", 1);  // the node's own HASYNC_* never reach the hook
  auto r = RunHook(Sh("echo \"$HASYNC_ROLE|$HASYNC_EPOCH|$HASYNC_REASON|$HASYNC_PEER\""), Env());
  unsetenv("HASYNC_ROLE");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->output, "primary|7|verdict silent|mu02\n");
}

TEST(Hooks, ExitCodesAndStderrAreReported) {
  auto r = RunHook(Sh("echo out; echo err >&2; exit 3"), Env());
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->Describe(), "exit 3");
  EXPECT_NE(r->output.find("out"), std::string::npos);
  EXPECT_NE(r->output.find("err"), std::string::npos);
}

TEST(Hooks, ATimeoutKillsTheHookAndWhatItStarted) {
  char tmpl[] = "/tmp/hasync-hook-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string pidfile = std::string(tmpl) + "/child.pid";
  auto start = std::chrono::steady_clock::now();
  // The child in the foreground group is killed with the hook.
  auto r = RunHook(Sh("sleep 30 & echo $! > " + pidfile + "; wait", 300), Env());
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->ok());
  // Killed at its 300 ms timeout, not waited for: its child sleeps 30 s. The bound is far
  // from both so that a slow machine cannot fail it; the hook's own clock is exact.
  EXPECT_GE(r->duration_ms, 300);
  EXPECT_LT(took, std::chrono::seconds(20)) << "the hook's 30 s child was waited for";
  std::ifstream in(pidfile);
  pid_t child = 0;
  in >> child;
  ASSERT_GT(child, 0);
  // Gone, or a zombie waiting for init to reap it (it no longer runs).
  auto dead = [](pid_t pid) {
    if (kill(pid, 0) != 0) return true;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    size_t paren = line.rfind(')');
    return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
  };
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = dead(child);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(gone) << "the hook's child " << child << " survived the timeout";
  if (!gone) kill(child, SIGKILL);
  std::filesystem::remove_all(tmpl);
}

TEST(Hooks, AHookThatLeavesADaemonIsNotWaitedFor) {
  // setsid: a daemon in a session of its own keeps the pipe open; the hook itself exited.
  // The daemon outlives the hook's 20 s timeout by far: waiting for it would time the hook
  // out (not ok) and take 20 s, a margin no slow machine closes. Its pid is printed so the
  // test can end it.
  auto start = std::chrono::steady_clock::now();
  auto r = RunHook(Sh("setsid sleep 60 & echo $!", 20'000), Env());
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok()) << r->Describe();
  const pid_t daemon = static_cast<pid_t>(std::atoi(r->output.c_str()));
  EXPECT_GT(daemon, 0) << r->output;
  EXPECT_LT(took, std::chrono::seconds(15)) << "the hook's daemon was waited for";
  std::ifstream comm("/proc/" + std::to_string(daemon) + "/comm");
  std::string name;
  std::getline(comm, name);
  if (daemon > 0 && name == "sleep") kill(daemon, SIGKILL);
}

TEST(Hooks, OutputIsBounded) {
  auto r = RunHook(Sh("head -c 100000 /dev/zero | tr '\\0' x"), Env());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->output.size(), kHookOutputMax);
  EXPECT_EQ(r->output_dropped, 100000 - kHookOutputMax);
}

TEST(Hooks, AMissingProgramIsAnErrorThatSaysWhich) {
  auto r = RunHook(Command{{"/nonexistent/fence"}, 1000}, Env());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/fence"), std::string::npos);
}

TEST(Hooks, FirstLineIsPrintableAndBounded) {
  EXPECT_EQ(FirstLine("job 42\x01\tq\nsecond", 100), "job 42??q");
  EXPECT_EQ(FirstLine(std::string(300, 'a'), 128).size(), 128u);
}

TEST(Probe, ReportsItsLatestResult) {
  char tmpl[] = "/tmp/hasync-probe-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string flag = std::string(tmpl) + "/fail";
  Probe probe(Sh("[ -e " + flag + " ] && exit 1; echo job-17", 500), 100, Env());
  for (int i = 0; i < 100 && !probe.Latest().ran; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Probe::Result first = probe.Latest();
  EXPECT_TRUE(first.ran);
  EXPECT_TRUE(first.ok);
  EXPECT_EQ(first.token, "job-17");
  std::ofstream(flag) << "";
  bool failed = false;
  for (int i = 0; i < 100 && !failed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    failed = !probe.Latest().ok;
  }
  EXPECT_TRUE(failed) << "the probe never saw the failure";
  EXPECT_EQ(probe.Latest().failure, "exit 1");
  std::filesystem::remove_all(tmpl);
}

// A hung scheduler's probe may print something new on every failing run (a timestamp):
// the token must stay the last passing run's, or the lock record's fingerprint would
// change with every run and the standby would never judge the primary Stalled.
TEST(Probe, AFailingRunKeepsTheLastPassingToken) {
  char tmpl[] = "/tmp/hasync-probe-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string flag = std::string(tmpl) + "/fail";
  Probe probe(Sh("if [ -e " + flag +
                     " ]; then echo \"not answering at $(date +%s%N)\"; exit 1; fi; "
                     "echo job-17",
                 500),
              50, Env());
  for (int i = 0; i < 100 && !probe.Latest().ran; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(probe.Latest().ok);
  ASSERT_EQ(probe.Latest().token, "job-17");
  std::ofstream(flag) << "";
  int failing_runs_seen = 0;
  int64_t last_finished = 0;
  for (int i = 0; i < 200 && failing_runs_seen < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    Probe::Result r = probe.Latest();
    if (!r.ok && r.finished_ns != last_finished) {
      last_finished = r.finished_ns;
      ++failing_runs_seen;
      EXPECT_EQ(r.token, "job-17") << "a failing run replaced the token";
    }
  }
  EXPECT_EQ(failing_runs_seen, 3) << "the probe did not fail three times within 4 s";
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace hasync::engine
