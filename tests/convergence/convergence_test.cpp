// Model-based randomized convergence (issue 16, DESIGN §9 "Convergence").
//
// Each seed starts a fresh loopback pair of real `hasync run` processes
// (tests/integration/process_pair.h), runs a seeded workload (workload.h) on the
// primary's root — a few hundred operations over the whole surface a scheduler or an
// administrator produces, several descriptors held open at once — then polls the
// independent comparer (comparer.h) until the standby's tree equals the primary's in
// every replicated attribute, bounded. Some seeds also kill -9 one node mid-workload and
// start it again. A failure prints the seed, every operation as a line, the
// differences, and the command that replays it:
//   HASYNC_CONV_SEED=<n> build/tests/convergence/convergence_test --gtest_filter=<test>
//
// The second test is a rejoin after a failover: the primary is killed mid-workload
// (what it had not shipped is its unreplicated tail, and it goes on being written while
// "cut off"), the standby promotes, takes writes of its own, the old primary comes back
// as its standby; the two trees must end identical and the old primary's quarantine must
// share no inode with a live file.
//
// Knobs: HASYNC_CONV_SEED (one seed), HASYNC_CONV_SEEDS (how many, from
// HASYNC_CONV_FIRST_SEED, default 1), HASYNC_CONV_OPS (operations per seed),
// HASYNC_LONG=1 (500 seeds of the base test, 100 of the rejoin and switchover tests),
// HASYNC_CONV_LOG=debug (the nodes' log level, to follow a miss change by change).
//
// The third test hands over by `hasync switchover` mid-workload: the trees must be
// identical when the command returns (it drains first: nothing acknowledged is lost),
// the workload goes on on the new primary, and the old primary ends identical with an
// empty quarantine.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/convergence/comparer.h"
#include "tests/convergence/workload.h"
#include "tests/integration/process_pair.h"
#include "tests/support/sanitizers.h"

namespace hasync::convergence {
namespace {

using namespace std::chrono_literals;
using hasync::testing::ProcessPair;
using P = ProcessPair;
using Clock = std::chrono::steady_clock;

#define REQUIRE_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "needs root: fanotify filesystem marks need CAP_SYS_ADMIN"

#ifdef HASYNC_TEST_ASAN
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// Default seed counts: the base test ~2 s a seed, the rejoin test ~8 s (RelWithDebInfo on
// the 2-CPU VM); ASan + UBSan builds are several times slower and run fewer.
constexpr uint64_t kBaseSeedsCi = kSanitized ? 6 : 40;
constexpr uint64_t kBaseSeedsLong = 500;
constexpr uint64_t kRejoinSeedsCi = kSanitized ? 2 : 6;
constexpr uint64_t kRejoinSeedsLong = 100;
constexpr uint64_t kSwitchoverSeedsCi = kSanitized ? 1 : 4;
constexpr uint64_t kSwitchoverSeedsLong = 100;
constexpr size_t kOpsPerSeed = 300;
constexpr size_t kMaxFailuresReported = 5;  // then the loop stops: the output stays readable
const auto kConvergeTimeout = kSanitized ? 60s : 20s;

std::optional<uint64_t> EnvNumber(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::strtoull(v, nullptr, 10);
}

std::vector<uint64_t> Seeds(uint64_t ci_count, uint64_t long_count) {
  if (auto one = EnvNumber("HASYNC_CONV_SEED")) return {*one};
  uint64_t count = ci_count;
  if (const char* l = std::getenv("HASYNC_LONG"); l != nullptr && std::string(l) == "1") {
    count = long_count;
  }
  if (auto n = EnvNumber("HASYNC_CONV_SEEDS")) count = *n;
  uint64_t first = EnvNumber("HASYNC_CONV_FIRST_SEED").value_or(1);
  std::vector<uint64_t> out;
  for (uint64_t i = 0; i < count && i < 1'000'000; ++i) out.push_back(first + i);
  return out;
}

// The nodes' [log] section: the level HASYNC_CONV_LOG names, the default otherwise.
std::string LogConfig() {
  const char* level = std::getenv("HASYNC_CONV_LOG");
  if (level == nullptr || *level == '\0') return "";
  return std::string("[log]\nlevel = \"") + level + "\"\n";
}

size_t OpsPerSeed() {
  return static_cast<size_t>(EnvNumber("HASYNC_CONV_OPS").value_or(kOpsPerSeed));
}

// Polls the comparer until the trees are identical or `timeout` passes; returns the last
// differences (empty on success).
std::vector<std::string> WaitIdentical(const std::string& reference, const std::string& copy,
                                       std::chrono::milliseconds timeout) {
  std::vector<std::string> last;
  const auto deadline = Clock::now() + timeout;
  for (int i = 0; i < 100'000; ++i) {
    last = CompareRoots(reference, copy);
    if (last.empty() || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(100ms);
  }
  return last;
}

// Reports the failure while the pair still exists, so its destructor keeps the trees and
// the node logs for inspection.
std::string Fail(std::string report) {
  ADD_FAILURE() << report;
  return report;
}

std::string Report(uint64_t seed, const std::string& test, const std::string& plan,
                   const std::vector<const Workload*>& workloads,
                   const std::vector<std::string>& diffs, const P& pair) {
  std::ostringstream out;
  out << "seed " << seed << " (" << plan << ") did not converge\n";
  out << "---- operations\n";
  for (const Workload* w : workloads) {
    for (const auto& line : w->log()) out << line << "\n";
  }
  out << "---- differences (" << diffs.size() << ")\n";
  for (size_t i = 0; i < diffs.size() && i < 60; ++i) out << diffs[i] << "\n";
  if (diffs.size() > 60) out << "… and " << diffs.size() - 60 << " more\n";
  out << "---- replay\nHASYNC_CONV_SEED=" << seed
      << " build/tests/convergence/convergence_test --gtest_filter=Convergence." << test << "\n"
      << "trees and node logs kept under " << pair.root(P::kPrimary) << "/../..\n";
  return out.str();
}

// ---- base mode ---------------------------------------------------------------------

// What a seed does besides its operations: maybe kill -9 one node for a while.
struct BasePlan {
  int kill = 0;  // 0 none, 1 the standby, 2 the primary (restarted as primary)
  size_t kill_at = 0, down_ops = 0;
  std::string ToString() const {
    if (kill == 0) return "no kill";
    return std::string("kill -9 of the ") + (kill == 1 ? "standby" : "primary") + " after op " +
           std::to_string(kill_at) + ", " + std::to_string(down_ops) + " ops while it is down";
  }
};

BasePlan MakeBasePlan(uint64_t seed, size_t ops) {
  std::mt19937_64 rng(seed ^ 0x6a09e667f3bcc908ull);  // a stream of its own
  BasePlan p;
  uint64_t r = rng() % 100;
  p.kill = r < 60 ? 0 : (r < 80 ? 1 : 2);
  p.kill_at = ops / 4 + static_cast<size_t>(rng() % (ops / 2 + 1));
  p.down_ops = 10 + static_cast<size_t>(rng() % 31);
  return p;
}

// Runs one seed; returns the failure report, empty when the trees ended identical.
std::string RunBaseSeed(uint64_t seed, size_t ops, double& seconds) {
  const auto t0 = Clock::now();
  struct Timer {  // sets `seconds` on every return
    Clock::time_point t0;
    double& out;
    ~Timer() { out = std::chrono::duration<double>(Clock::now() - t0).count(); }
  } timer{t0, seconds};
  const BasePlan plan = MakeBasePlan(seed, ops);
  P pair("conv-" + std::to_string(seed), LogConfig());
  const std::string p = pair.root(P::kPrimary), s = pair.root(P::kStandby);
  pair.Start(P::kStandby);
  pair.Start(P::kPrimary);
  if (!pair.WaitEvents(P::kStandby, "session_open", 1, 30s)) {
    return Fail("seed " + std::to_string(seed) + ": no session within 30 s\n" +
                pair.log(P::kStandby));
  }
  Workload w(seed, p, "primary");
  if (plan.kill == 0) {
    w.Run(ops);
  } else {
    const P::Node victim = plan.kill == 1 ? P::kStandby : P::kPrimary;
    w.Run(plan.kill_at);
    pair.Kill(victim);
    w.Run(plan.down_ops);
    pair.Start(victim);
    w.Run(ops > plan.kill_at + plan.down_ops ? ops - plan.kill_at - plan.down_ops : 0);
  }
  w.CloseAll();
  std::vector<std::string> diffs = WaitIdentical(p, s, kConvergeTimeout);
  if (diffs.empty()) return "";
  return Fail(
      Report(seed, "RandomWorkloadsEndWithIdenticalTrees", plan.ToString(), {&w}, diffs, pair));
}

TEST(Convergence, RandomWorkloadsEndWithIdenticalTrees) {
  REQUIRE_ROOT();
  const size_t ops = OpsPerSeed();
  size_t failures = 0, run = 0;
  double total = 0, slowest = 0;
  std::vector<uint64_t> failed;
  for (uint64_t seed : Seeds(kBaseSeedsCi, kBaseSeedsLong)) {
    double seconds = 0;
    std::string report = RunBaseSeed(seed, ops, seconds);
    ++run;
    total += seconds;
    slowest = std::max(slowest, seconds);
    std::printf("seed %llu: %s in %.1f s (%s)\n", static_cast<unsigned long long>(seed),
                report.empty() ? "identical" : "DIFFERENT", seconds,
                MakeBasePlan(seed, ops).ToString().c_str());
    std::fflush(stdout);
    if (!report.empty()) {
      failed.push_back(seed);
      if (++failures >= kMaxFailuresReported) break;
    }
  }
  std::printf("%zu seeds, %zu ops each: %.1f s (%.1f s a seed, slowest %.1f s), failing:", run, ops,
              total, run ? total / static_cast<double>(run) : 0.0, slowest);
  for (uint64_t f : failed) std::printf(" %llu", static_cast<unsigned long long>(f));
  std::printf("%s\n", failed.empty() ? " none" : "");
}

// ---- rejoin after a failover -------------------------------------------------------

struct RejoinPlan {
  size_t before = 0;   // operations, then wait until identical
  size_t unsent = 0;   // operations just before the kill -9, not waited for
  size_t cut_off = 0;  // operations on the dead old primary's root (writes after a cut)
  size_t after = 0;    // operations on the new primary before the old one returns
  std::string ToString() const {
    return std::to_string(before) + " ops, identical, " + std::to_string(unsent) +
           " ops, kill -9 of the primary, " + std::to_string(cut_off) +
           " ops on its root while down, promotion, " + std::to_string(after) +
           " ops on the new primary, old primary back as standby";
  }
};

RejoinPlan MakeRejoinPlan(uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0xbb67ae8584caa73bull);
  RejoinPlan p;
  p.before = 80 + static_cast<size_t>(rng() % 121);
  p.unsent = static_cast<size_t>(rng() % 31);
  p.cut_off = 10 + static_cast<size_t>(rng() % 31);
  p.after = 10 + static_cast<size_t>(rng() % 31);
  return p;
}

std::string RejoinConfig() {
  // Short timers as in failover_test; quorum_check passing so the standby promotes on
  // silence (DESIGN §4), no anti-flap delay.
  return "[failover]\nwindow_ms = 2000\nbeat_ms = 250\nlease_ms = 900\n"
         "min_failover_interval_ms = 0\n"
         "[hooks.quorum_check]\ncommand = [\"/bin/true\"]\n";
}

std::string RunRejoinSeed(uint64_t seed, double& seconds) {
  const auto t0 = Clock::now();
  struct Timer {  // sets `seconds` on every return
    Clock::time_point t0;
    double& out;
    ~Timer() { out = std::chrono::duration<double>(Clock::now() - t0).count(); }
  } timer{t0, seconds};
  const RejoinPlan plan = MakeRejoinPlan(seed);
  const std::string test = "RejoinAfterFailoverEndsIdenticalAndQuarantineSharesNoInode";
  P pair("conv-rejoin-" + std::to_string(seed), RejoinConfig() + LogConfig());
  const std::string old_root = pair.root(P::kPrimary), new_root = pair.root(P::kStandby);
  pair.Start(P::kStandby);
  pair.Start(P::kPrimary);
  if (!pair.WaitEvents(P::kStandby, "session_open", 1, 30s)) {
    return Fail("seed " + std::to_string(seed) + ": no session within 30 s\n" +
                pair.log(P::kStandby));
  }
  Workload old_w(seed, old_root, "primary");
  old_w.Run(plan.before);
  std::vector<std::string> diffs = WaitIdentical(old_root, new_root, kConvergeTimeout);
  if (!diffs.empty()) {
    diffs.insert(diffs.begin(), "(before the failover)");
    return Fail(Report(seed, test, plan.ToString(), {&old_w}, diffs, pair));
  }
  old_w.Run(plan.unsent);
  pair.Kill(P::kPrimary);
  old_w.Run(plan.cut_off);
  old_w.CloseAll();
  if (!pair.WaitEvents(P::kStandby, "promoted", 1, 30s)) {
    return Fail("seed " + std::to_string(seed) + ": the standby did not promote within 30 s\n" +
                pair.log(P::kStandby));
  }
  // The new primary's own writes; its tree depends on how much of the unsent ops had
  // shipped before the kill, so this part replays the same choices only on the same tree.
  Workload new_w(seed ^ 0x3c6ef372fe94f82bull, new_root, "new-primary");
  new_w.Run(plan.after);
  new_w.CloseAll();
  const auto back = Clock::now();
  pair.Start(P::kPrimary);
  diffs = WaitIdentical(new_root, old_root, kConvergeTimeout + 10s);
  const double identical_s = std::chrono::duration<double>(Clock::now() - back).count();
  if (diffs.empty() && !pair.WaitEvents(P::kPrimary, "rejoined", 1, 20s)) {
    diffs.push_back("the old primary never logged event=rejoined");
  }
  std::printf("rejoin seed %llu: identical %.1f s, rejoined %.1f s after the old primary's start\n",
              static_cast<unsigned long long>(seed), identical_s,
              std::chrono::duration<double>(Clock::now() - back).count());
  // The quarantine keeps copies, never a second name of a live file.
  const std::string quarantine = pair.state_dir(P::kPrimary) + "/quarantine";
  struct stat qst {};
  if (stat(quarantine.c_str(), &qst) == 0) {
    auto kept = FileInodes(quarantine);
    auto live = FileInodes(old_root);
    for (const auto& [inode, names] : kept) {
      auto it = live.find(inode);
      if (it == live.end()) continue;
      diffs.push_back("quarantine/" + names.front() + ": shares its inode with live " +
                      it->second.front() + " on the old primary");
    }
  }
  if (diffs.empty()) return "";
  return Fail(Report(seed, test, plan.ToString(), {&old_w, &new_w}, diffs, pair));
}

TEST(Convergence, RejoinAfterFailoverEndsIdenticalAndQuarantineSharesNoInode) {
  REQUIRE_ROOT();
  size_t failures = 0, run = 0;
  double total = 0;
  std::vector<uint64_t> failed;
  for (uint64_t seed : Seeds(kRejoinSeedsCi, kRejoinSeedsLong)) {
    double seconds = 0;
    std::string report = RunRejoinSeed(seed, seconds);
    ++run;
    total += seconds;
    std::printf("rejoin seed %llu: %s in %.1f s (%s)\n", static_cast<unsigned long long>(seed),
                report.empty() ? "identical" : "DIFFERENT", seconds,
                MakeRejoinPlan(seed).ToString().c_str());
    std::fflush(stdout);
    if (!report.empty()) {
      failed.push_back(seed);
      if (++failures >= kMaxFailuresReported) break;
    }
  }
  std::printf("%zu rejoin seeds: %.1f s, failing:", run, total);
  for (uint64_t f : failed) std::printf(" %llu", static_cast<unsigned long long>(f));
  std::printf("%s\n", failed.empty() ? " none" : "");
}

// ---- planned switchover ------------------------------------------------------------

struct SwitchoverPlan {
  size_t before = 0, after = 0;
  std::string ToString() const {
    return std::to_string(before) + " ops, hasync switchover, " + std::to_string(after) +
           " ops on the new primary";
  }
};

SwitchoverPlan MakeSwitchoverPlan(uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x3c6ef372fe94f82bull);
  SwitchoverPlan p;
  p.before = 80 + static_cast<size_t>(rng() % 121);
  p.after = 50 + static_cast<size_t>(rng() % 101);
  return p;
}

std::string RunSwitchoverSeed(uint64_t seed, double& seconds) {
  const auto t0 = Clock::now();
  struct Timer {  // sets `seconds` on every return
    Clock::time_point t0;
    double& out;
    ~Timer() { out = std::chrono::duration<double>(Clock::now() - t0).count(); }
  } timer{t0, seconds};
  const SwitchoverPlan plan = MakeSwitchoverPlan(seed);
  const std::string test = "SwitchoverMidWorkloadLosesNothingAndEndsIdentical";
  P pair("conv-switch-" + std::to_string(seed), LogConfig());
  const std::string old_root = pair.root(P::kPrimary), new_root = pair.root(P::kStandby);
  pair.Start(P::kStandby);
  pair.Start(P::kPrimary);
  if (!pair.WaitEvents(P::kStandby, "session_open", 1, 30s)) {
    return Fail("seed " + std::to_string(seed) + ": no session within 30 s\n" +
                pair.log(P::kStandby));
  }
  Workload w(seed, old_root, "primary");
  w.Run(plan.before);
  w.CloseAll();  // the scheduler stops (on_demote) before the handover
  auto [rc, out] =
      hasync::testing::Hasync("switchover --timeout-ms 30000 -c " + pair.config(P::kPrimary));
  if (rc != 0 || out.find("switchover: done") == std::string::npos) {
    return Fail(
        Report(seed, test, plan.ToString(), {&w}, {"hasync switchover failed: " + out}, pair));
  }
  // Drained before the handover: identical now, not eventually.
  std::vector<std::string> diffs = CompareRoots(old_root, new_root);
  if (!diffs.empty()) {
    diffs.insert(diffs.begin(), "(when hasync switchover returned)");
    return Fail(Report(seed, test, plan.ToString(), {&w}, diffs, pair));
  }
  if (!pair.WaitEvents(P::kStandby, "promoted", 1, 10s)) {
    return Fail(Report(seed, test, plan.ToString(), {&w},
                       {"the standby never logged event=promoted after the switchover"}, pair));
  }
  w.MoveTo(new_root, "new-primary");
  w.Run(plan.after);
  w.CloseAll();
  diffs = WaitIdentical(new_root, old_root, kConvergeTimeout);
  // "the old primary becomes its standby with nothing to quarantine" (docs/FAILOVER.md)
  for (const auto& [inode, names] : FileInodes(pair.state_dir(P::kPrimary) + "/quarantine")) {
    diffs.push_back("quarantine/" + names.front() + ": kept by a switchover");
  }
  if (diffs.empty()) return "";
  return Fail(Report(seed, test, plan.ToString(), {&w}, diffs, pair));
}

TEST(Convergence, SwitchoverMidWorkloadLosesNothingAndEndsIdentical) {
  REQUIRE_ROOT();
  size_t failures = 0, run = 0;
  double total = 0;
  std::vector<uint64_t> failed;
  for (uint64_t seed : Seeds(kSwitchoverSeedsCi, kSwitchoverSeedsLong)) {
    double seconds = 0;
    std::string report = RunSwitchoverSeed(seed, seconds);
    ++run;
    total += seconds;
    std::printf("switchover seed %llu: %s in %.1f s (%s)\n", static_cast<unsigned long long>(seed),
                report.empty() ? "identical" : "DIFFERENT", seconds,
                MakeSwitchoverPlan(seed).ToString().c_str());
    std::fflush(stdout);
    if (!report.empty()) {
      failed.push_back(seed);
      if (++failures >= kMaxFailuresReported) break;
    }
  }
  std::printf("%zu switchover seeds: %.1f s, failing:", run, total);
  for (uint64_t f : failed) std::printf(" %llu", static_cast<unsigned long long>(f));
  std::printf("%s\n", failed.empty() ? " none" : "");
}

}  // namespace
}  // namespace hasync::convergence
