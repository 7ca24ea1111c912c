// Failover of a real pair with the etcd arbiter (issue 20, docs/FAILOVER.md "The
// arbiter"): two `hasync run` processes, each in a network namespace of its own
// (tests/support/net_lab.h), and a real three-member etcd cluster inside the router's
// namespace on an address of its own (10.213.9.1), which each node reaches through its
// link — so a route can cut one node off etcd while the nodes still reach each other, and
// the router can stop forwarding between the nodes while both still reach etcd. No fence,
// no quorum_check: the arbiter is the only guard against two primaries. Timers: window
// 4 s, beat 250 ms, lease TTL 2 s, requests 300 ms, on_demote 500 ms (self-fence 1.4 s
// after the last good renewal was sent).
//
// Each test checks a timeline of hook runs (tests/integration/hook_dir.h) and that no two
// nodes ever ran on_promote without an on_demote between: kill -9 of the primary, SIGSTOP
// past the TTL then SIGCONT, the cut between the nodes, the cut of the primary off etcd,
// etcd's quorum lost and back, members restarted one by one. Skips loudly without root,
// namespaces or etcd.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/arbiter/etcd_cluster.h"
#include "tests/integration/hook_dir.h"
#include "tests/integration/process_pair.h"
#include "tests/support/net_lab.h"

namespace hasync::testing {
namespace {

using namespace std::chrono_literals;
using engine::arbiter::testing::EtcdCluster;
using P = ProcessPair;

constexpr int64_t kWindowMs = 4000;
constexpr int64_t kBeatMs = 250;
constexpr int64_t kTtlMs = 2000;
constexpr int64_t kOnDemoteMs = 500;
constexpr int64_t kFenceAfterMs = kTtlMs - kOnDemoteMs - 100;  // drift: max(ttl/100, 100)
constexpr const char* kEtcdHost = "10.213.9.1";

// The hook runs, in time order, never show two nodes serving at once: a node "serves"
// from its on_promote (or from the start, the first primary) until its on_demote, or
// until `primary_died_ms` for the first primary killed with its host (kill -9 stands for
// that: its scheduler dies with it).
void ExpectNeverTwoPrimaries(const HookDir& hooks, double primary_died_ms = -1) {
  std::string serving = "primary";  // the node started as primary
  for (const HookRun& r : hooks.Runs()) {
    if (primary_died_ms >= 0 && r.t_ms >= primary_died_ms && serving == "primary") {
      serving.clear();
    }
    if (r.hook == "on_demote" && r.node == serving) serving.clear();
    if (r.hook == "on_promote") {
      EXPECT_TRUE(serving.empty() || serving == r.node)
          << r.node << " ran on_promote at " << r.t_ms << " ms while " << serving
          << " had not run on_demote";
      serving = r.node;
    }
  }
}

class ArbiterPair : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string m = NetLabMissing(); !m.empty()) GTEST_SKIP() << m;
    if (::access(engine::arbiter::testing::kEtcd, X_OK) != 0) {
      GTEST_SKIP() << engine::arbiter::testing::kEtcd
                   << " is not installed: these tests need a real etcd 3.4 "
                      "(scripts/install-deps.sh installs etcd-server)";
    }
    lab_ = std::make_unique<NetLab>();
    ASSERT_TRUE(lab_->error().empty()) << lab_->error();
    const std::string w = lab_->w();
    // On the router's loopback: the router delivers it locally to both nodes.
    const std::string add = "ip -n " + w + " addr add " + kEtcdHost + "/32 dev lo";
    ASSERT_EQ(Sh(add), 0) << add;
    etcd_ = std::make_unique<EtcdCluster>(false, w, kEtcdHost);
    ASSERT_TRUE(etcd_->WaitReady()) << "the etcd cluster did not serve within 10 s";
    std::string endpoints;
    for (size_t i = 0; i < EtcdCluster::kMembers; ++i) {
      endpoints += fmt::format("{}\"http://{}:{}\"", i ? ", " : "", kEtcdHost, 23790 + i);
    }
    const std::string config =
        fmt::format("[failover]\nwindow_ms = {}\nbeat_ms = {}\nlease_ms = 900\n", kWindowMs,
                    kBeatMs) +
        fmt::format(
            "[arbiter]\nkind = \"etcd\"\nendpoints = [{}]\nprefix = \"/hasync/pair/\"\n"
            "ttl_s = {}\nrequest_timeout_ms = 300\n",
            endpoints, kTtlMs / 1000) +
        hooks_.Hook("on_promote") + hooks_.Hook("on_demote") +
        fmt::format("timeout_ms = {}\n", kOnDemoteMs);
    // A short tag: the control socket's path must stay under 108 bytes.
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    pair_ = std::make_unique<P>("arb-" + name.substr(0, 16), config, lab_->Net());
  }
  void TearDown() override {
    pair_.reset();  // the nodes first, while etcd still answers their last requests
    etcd_.reset();
    lab_.reset();
  }

  // Both nodes up, the copy converged, the primary holding the key and renewing.
  void StartPair() {
    std::ofstream(pair_->root(P::kPrimary) + "/job.1") << "before\n";
    pair_->Start(P::kStandby);
    pair_->Start(P::kPrimary);
    ASSERT_TRUE(pair_->WaitEvents(P::kPrimary, "arbiter_start", 1, 20s)) << pair_->log(P::kPrimary);
    ASSERT_TRUE(pair_->WaitConverged(30s).empty());
    ASSERT_EQ(pair_->CountEvents(P::kPrimary, "demoting"), 0u) << pair_->log(P::kPrimary);
    std::this_thread::sleep_for(std::chrono::milliseconds(3 * kBeatMs));
  }
  std::string Logs() const {
    return "\n--- primary:\n" + pair_->log(P::kPrimary) + "\n--- standby:\n" +
           pair_->log(P::kStandby);
  }
  // The leader key as etcd holds it, read with etcdctl from the router's namespace:
  // {create_revision, lease} ({0, 0} when there is none or etcdctl failed).
  std::pair<int64_t, int64_t> LeaderKey() const {
    const std::string cmd = fmt::format(
        "ip netns exec {} etcdctl --command-timeout=2s --endpoints=http://{}:23790 get "
        "/hasync/pair/leader -w json 2>/dev/null",
        lab_->w(), kEtcdHost);
    const auto [rc, out] = Shell(cmd);
    if (rc != 0) return {0, 0};
    const auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_discarded() || !j.contains("kvs") || j["kvs"].empty()) return {0, 0};
    const auto& kv = j["kvs"][0];
    return {kv.value("create_revision", int64_t{0}), kv.value("lease", int64_t{0})};
  }
  // The route from node ns to etcd: cut (a blackhole) or back.
  void CutFromEtcd(const std::string& ns, bool cut) {
    const std::string c =
        fmt::format("ip -n {} route {} blackhole {}/32", ns, cut ? "add" : "del", kEtcdHost);
    EXPECT_EQ(Sh(c), 0) << c;
  }
  // The router forwards between the nodes, or not (etcd, on the router, stays reachable).
  void CutBetweenNodes(bool cut) {
    const std::string c =
        fmt::format("ip netns exec {} sysctl -w net.ipv4.ip_forward={}", lab_->w(), cut ? 0 : 1);
    EXPECT_EQ(Sh(c), 0) << c;
  }

  HookDir hooks_;
  std::unique_ptr<NetLab> lab_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::unique_ptr<P> pair_;
};

// kill -9 of the primary: its lease runs out (TTL) and the standby wins the key when its
// window ends; the old primary, started again, finds etcd's epoch above its own and
// demotes before serving.
TEST_F(ArbiterPair, KillNineOfThePrimaryPromotesTheStandbyThroughEtcd) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  const double killed_ms = UptimeMs();
  pair_->Signal(P::kPrimary, SIGKILL);
  ASSERT_TRUE(pair_->WaitEvents(P::kStandby, "promoted", 1, 20s)) << Logs();
  ASSERT_TRUE(P::WaitFor([&] { return hooks_.Count("on_promote", "standby") == 1; }, 10s));
  const std::optional<HookRun> promote = hooks_.First("on_promote", "standby");
  ASSERT_TRUE(promote.has_value());
  EXPECT_EQ(promote->epoch, 2u);
  const double took = promote->t_ms - killed_ms;
  RecordProperty("promotion_ms_after_kill", static_cast<int>(took));
  std::printf("arbiter: on_promote started %.0f ms after kill -9 (window %lld ms, ttl %lld ms)\n",
              took, static_cast<long long>(kWindowMs), static_cast<long long>(kTtlMs));
  // The window counts from the last lock record (up to a beat before the kill); then a
  // try every beat; /proc/uptime moves in 10 ms steps.
  EXPECT_GE(took, kWindowMs - kBeatMs - 20) << Logs();
  EXPECT_LE(took, kWindowMs + 2 * kBeatMs + 300) << Logs();
  EXPECT_NE(pair_->log(P::kStandby).find("event=arbiter_acquired epoch=2"), std::string::npos)
      << Logs();

  // The old primary comes back cold: etcd holds epoch 2, so it demotes without serving.
  std::ofstream(pair_->root(P::kStandby) + "/job.2") << "after\n";
  pair_->Start(P::kPrimary);
  ASSERT_TRUE(pair_->WaitEvents(P::kPrimary, "demoted", 1, 20s)) << Logs();
  EXPECT_TRUE(pair_->WaitConverged(30s).empty()) << Logs();
  EXPECT_EQ(hooks_.Count("on_promote", "primary"), 0u);
  ExpectNeverTwoPrimaries(hooks_, killed_ms);
}

// An on_promote slower than the lease (3 s, TTL 2 s): the new primary's loop waits for
// the hook, but its lease is renewed every beat meanwhile, so the key it won never lapses
// (the same key, same lease, in etcd before and after the hook) — no window in which
// another node could take it — and it serves on, no demotion.
TEST_F(ArbiterPair, AnOnPromoteSlowerThanTheLeaseKeepsTheKey) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  const std::pair<int64_t, int64_t> first = LeaderKey();
  ASSERT_NE(first.first, 0) << "etcdctl found no leader key";
  hooks_.SlowDown("on_promote", 3.0);
  pair_->Signal(P::kPrimary, SIGKILL);
  ASSERT_TRUE(P::WaitFor([&] { return hooks_.Count("on_promote", "standby") == 1; }, 20s))
      << Logs();
  const std::pair<int64_t, int64_t> won = LeaderKey();  // the hook has started: 3 s to go
  EXPECT_NE(won.first, first.first) << "the standby's key is a new one";
  ASSERT_TRUE(pair_->WaitEvents(P::kStandby, "promoted", 1, 20s)) << Logs();
  // The hook's own log line comes when it is over: it must have outlived the lease.
  ASSERT_TRUE(pair_->WaitEvents(P::kStandby, "hook", 1, 20s)) << Logs();
  EXPECT_GE(pair_->LastEvent(P::kStandby, "hook")["ms"], static_cast<uint64_t>(kTtlMs + 500))
      << Logs();
  const std::pair<int64_t, int64_t> after = LeaderKey();
  ASSERT_NE(after.first, 0) << "etcdctl found no leader key after the hook";
  EXPECT_EQ(after, won) << "the key lapsed during on_promote and was created again";
  std::this_thread::sleep_for(std::chrono::milliseconds(2 * kTtlMs));
  EXPECT_EQ(pair_->CountEvents(P::kStandby, "demoting"), 0u) << Logs();
  EXPECT_EQ(hooks_.Count("on_demote", "standby"), 0u) << Logs();
  auto [rc, out] = Hasync("status --json -c " + pair_->config(P::kStandby));
  ASSERT_EQ(rc, 0) << out;
  const auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_TRUE(j.contains("arbiter")) << out;
  EXPECT_EQ(j["arbiter"]["leader"], "standby") << out;
  EXPECT_EQ(j["arbiter"]["etcd_epoch"], 2) << out;
  EXPECT_GT(j["arbiter"]["lease_left_ms"].get<int64_t>(), kTtlMs - 2 * kBeatMs - 300) << out;
}

// SIGSTOP of the primary past the TTL: the standby promotes once the lease ran out; the
// old primary, continued, stops (on_demote) before it acts as primary again. How long
// after SIGCONT that takes is the overlap docs/FAILOVER.md "The one gap" names.
TEST_F(ArbiterPair, APrimaryPausedPastItsLeaseStopsAsSoonAsItResumes) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  pair_->Signal(P::kPrimary, SIGSTOP);
  const bool promoted = pair_->WaitEvents(P::kStandby, "promoted", 1, 20s);
  const bool on_promote =
      promoted && P::WaitFor([&] { return hooks_.Count("on_promote", "standby") == 1; }, 10s);
  const double resumed_ms = UptimeMs();
  pair_->Signal(P::kPrimary, SIGCONT);
  ASSERT_TRUE(promoted && on_promote) << Logs();
  ASSERT_TRUE(P::WaitFor([&] { return hooks_.Count("on_demote", "primary") == 1; }, 10s)) << Logs();
  const std::optional<HookRun> demote = hooks_.First("on_demote", "primary");
  ASSERT_TRUE(demote.has_value());
  const double after = demote->t_ms - resumed_ms;
  RecordProperty("stopped_ms_after_resume", static_cast<int>(after));
  std::printf("arbiter: the paused primary ran on_demote %.0f ms after SIGCONT\n", after);
  EXPECT_LE(after, 500) << Logs();
  EXPECT_NE(pair_->log(P::kPrimary).find("arbiter: no lease renewal succeeded"), std::string::npos)
      << Logs();
  ASSERT_TRUE(pair_->WaitEvents(P::kPrimary, "demoted", 1, 20s)) << Logs();
  std::ofstream(pair_->root(P::kStandby) + "/after") << "x\n";
  EXPECT_TRUE(pair_->WaitConverged(30s).empty()) << Logs();
  EXPECT_EQ(hooks_.Count("on_promote", "primary"), 0u);
}

// `hasync status` on both nodes shows the arbiter: every member answering, the primary
// holding the key at etcd's epoch with its lease's time left and its self-fence ahead.
TEST_F(ArbiterPair, StatusShowsTheArbiterOnBothNodes) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  // The standby has asked etcd nothing yet; the primary renews every beat.
  auto [rc_p, out_p] = Hasync("status --json -c " + pair_->config(P::kPrimary));
  ASSERT_EQ(rc_p, 0) << out_p;
  const auto p = nlohmann::json::parse(out_p, nullptr, false);
  ASSERT_TRUE(p.contains("arbiter")) << out_p;
  const auto& a = p["arbiter"];
  EXPECT_EQ(a["kind"], "etcd");
  EXPECT_EQ(a["prefix"], "/hasync/pair/");
  EXPECT_EQ(a["leader"], "primary") << out_p;
  EXPECT_EQ(a["etcd_epoch"], 1) << out_p;
  EXPECT_GE(a["endpoints_answering"].get<int>(), 1) << out_p;
  EXPECT_EQ(a["endpoints"].size(), EtcdCluster::kMembers);
  EXPECT_GT(a["lease_left_ms"].get<int64_t>(), kTtlMs - 2 * kBeatMs - 300) << out_p;
  EXPECT_LE(a["lease_left_ms"].get<int64_t>(), kTtlMs) << out_p;
  EXPECT_GT(a["self_fence_in_ms"].get<int64_t>(), 0) << out_p;
  EXPECT_LT(a["ms_since_etcd_answered"].get<int64_t>(), 2 * kBeatMs + 300) << out_p;
  auto [rc_t, out_t] = Hasync("status -c " + pair_->config(P::kPrimary));
  EXPECT_EQ(rc_t, 0);
  EXPECT_NE(out_t.find("leader key held by primary; etcd epoch 1; lease "), std::string::npos)
      << out_t;
  // The member the primary asks is killed: its next request fails over to another, and
  // the status names the dead one and why; one member of three down changes no role.
  const std::string current = a["current_endpoint"].get<std::string>();
  ASSERT_FALSE(current.empty()) << out_p;
  const size_t member = static_cast<size_t>(current.back() - '0');
  ASSERT_LT(member, EtcdCluster::kMembers) << current;
  etcd_->Kill(member, SIGKILL);
  ASSERT_TRUE(P::WaitFor(
      [&] {
        auto [rc, out] = Hasync("status --json -c " + pair_->config(P::kPrimary));
        const auto j = nlohmann::json::parse(out, nullptr, false);
        if (rc != 0 || j.is_discarded() || !j.contains("arbiter")) return false;
        for (const auto& e : j["arbiter"]["endpoints"]) {
          if (e["endpoint"] == current) return e["state"] == "failed";
        }
        return false;
      },
      5s))
      << pair_->log(P::kPrimary);
  auto [rc_f, out_f] = Hasync("status -c " + pair_->config(P::kPrimary));
  EXPECT_NE(out_f.find("  member  " + current + " failed: "), std::string::npos) << out_f;
  auto [rc_s, out_s] = Hasync("status --json -c " + pair_->config(P::kStandby));
  ASSERT_EQ(rc_s, 0) << out_s;
  const auto s = nlohmann::json::parse(out_s, nullptr, false);
  ASSERT_TRUE(s.contains("arbiter")) << out_s;
  EXPECT_FALSE(s["arbiter"].contains("self_fence_in_ms")) << out_s;
  std::this_thread::sleep_for(std::chrono::milliseconds(kTtlMs));
  EXPECT_EQ(hooks_.Count("on_demote", "primary"), 0u) << "one member of three down is no reason";
  EXPECT_EQ(pair_->CountEvents(P::kStandby, "promoted"), 0u);
}

// `hasync switchover` with the arbiter: the primary drains, stops (on_demote), gives the
// key back, and the standby takes it at once (not a TTL later) at epoch 2.
TEST_F(ArbiterPair, ASwitchoverHandsTheKeyOverWithoutWaitingForTheLease) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  std::ofstream(pair_->root(P::kPrimary) + "/job.2") << "before the switchover\n";
  auto [rc, out] = Hasync("switchover --timeout-ms 20000 -c " + pair_->config(P::kPrimary));
  ASSERT_EQ(rc, 0) << out << Logs();
  EXPECT_NE(out.find("switchover: done"), std::string::npos) << out;
  ASSERT_TRUE(P::WaitFor([&] { return hooks_.Count("on_promote", "standby") == 1; }, 10s))
      << Logs();
  const HookRun demote = *hooks_.First("on_demote", "primary");
  const HookRun promote = *hooks_.First("on_promote", "standby");
  std::printf("arbiter: switchover: on_promote %.0f ms after on_demote (ttl %lld ms)\n",
              promote.t_ms - demote.t_ms, static_cast<long long>(kTtlMs));
  EXPECT_EQ(promote.epoch, 2u);
  EXPECT_GT(promote.t_ms, demote.t_ms);
  // Released, not expired: well under the TTL after the old primary stopped.
  EXPECT_LT(promote.t_ms - demote.t_ms, kTtlMs) << Logs();
  EXPECT_NE(pair_->log(P::kPrimary)
                .find("event=arbiter_release reason=\"demoted with the "
                      "scheduler stopped\" result=released"),
            std::string::npos)
      << Logs();
  EXPECT_TRUE(pair_->WaitConverged(30s).empty()) << Logs();
  ExpectNeverTwoPrimaries(hooks_);
}

// The link between the nodes cut, both still reach etcd: the standby's window runs out,
// but the primary holds the key, so it waits; the primary serves on. Healed: the session
// comes back with no role change.
TEST_F(ArbiterPair, ACutBetweenTheNodesAloneIsNotAFailover) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  CutBetweenNodes(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(3 * kWindowMs));
  CutBetweenNodes(false);
  EXPECT_EQ(pair_->CountEvents(P::kStandby, "promoted"), 0u) << Logs();
  EXPECT_EQ(pair_->CountEvents(P::kPrimary, "demoting"), 0u) << Logs();
  EXPECT_NE(pair_->log(P::kStandby).find("the leader key is held by primary at epoch 1"),
            std::string::npos)
      << Logs();
  std::ofstream(pair_->root(P::kPrimary) + "/job.2") << "after the cut\n";
  EXPECT_TRUE(pair_->WaitConverged(30s).empty()) << Logs();
  EXPECT_EQ(hooks_.Count("on_promote", "standby"), 0u);
  EXPECT_EQ(hooks_.Count("on_demote", "primary"), 0u);
}

// The primary cut off etcd only: it self-fences (on_demote) at its deadline, then tells
// the standby (DEMOTED); the standby wins the key once the lease ran out in etcd and
// promotes — after the old primary's on_demote.
TEST_F(ArbiterPair, APrimaryCutOffEtcdStopsItselfAndTheStandbyTakesOver) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  const double cut_ms = UptimeMs();
  CutFromEtcd(lab_->a(), true);
  ASSERT_TRUE(P::WaitFor([&] { return hooks_.Count("on_demote", "primary") == 1; }, 10s)) << Logs();
  ASSERT_TRUE(pair_->WaitEvents(P::kStandby, "promoted", 1, 20s)) << Logs();
  ASSERT_TRUE(P::WaitFor([&] { return hooks_.Count("on_promote", "standby") == 1; }, 10s));
  const HookRun demote = *hooks_.First("on_demote", "primary");
  const HookRun promote = *hooks_.First("on_promote", "standby");
  std::printf(
      "arbiter: cut off etcd at 0: primary on_demote at %.0f ms, standby on_promote at "
      "%.0f ms (self-fence %lld ms after the last good renewal, ttl %lld ms)\n",
      demote.t_ms - cut_ms, promote.t_ms - cut_ms, static_cast<long long>(kFenceAfterMs),
      static_cast<long long>(kTtlMs));
  // The last good renewal was sent at most a beat (plus a request) before the cut.
  EXPECT_LE(demote.t_ms - cut_ms, kFenceAfterMs + 20) << Logs();
  EXPECT_GE(demote.t_ms - cut_ms, kFenceAfterMs - kBeatMs - 300 - 20) << Logs();
  EXPECT_GT(promote.t_ms, demote.t_ms) << Logs();
  EXPECT_EQ(promote.epoch, 2u);
  CutFromEtcd(lab_->a(), false);
  std::ofstream(pair_->root(P::kStandby) + "/job.2") << "after\n";
  EXPECT_TRUE(pair_->WaitConverged(30s).empty()) << Logs();
  ExpectNeverTwoPrimaries(hooks_);
}

// Etcd loses its quorum (two of three members killed): the primary cannot tell that from
// being cut off, so it self-fences (docs/FAILOVER.md "When etcd loses its quorum"), and
// nobody promotes while no transaction can be won. Quorum back: exactly one node takes the
// key and serves, the other follows it.
TEST_F(ArbiterPair, EtcdWithoutQuorumStopsThePrimaryAndNobodyPromotesUntilItIsBack) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  etcd_->Kill(1, SIGKILL);
  etcd_->Kill(2, SIGKILL);
  ASSERT_TRUE(P::WaitFor([&] { return hooks_.Count("on_demote", "primary") == 1; }, 10s)) << Logs();
  std::this_thread::sleep_for(std::chrono::milliseconds(2 * kWindowMs));
  EXPECT_EQ(hooks_.Count("on_promote", "standby"), 0u) << Logs();
  EXPECT_EQ(hooks_.Count("on_promote", "primary"), 0u) << Logs();
  EXPECT_NE(pair_->log(P::kStandby).find("nobody promotes without it"), std::string::npos)
      << Logs();
  etcd_->Start(1);
  etcd_->Start(2);
  ASSERT_TRUE(etcd_->WaitReady());
  ASSERT_TRUE(P::WaitFor(
      [&] { return hooks_.Count("on_promote", "standby") + hooks_.Count("on_promote", "primary"); },
      30s))
      << Logs();
  std::this_thread::sleep_for(std::chrono::milliseconds(2 * kWindowMs));
  EXPECT_EQ(hooks_.Count("on_promote", "standby") + hooks_.Count("on_promote", "primary"), 1u)
      << Logs();
  std::ofstream(pair_->root(P::kStandby) + "/job.2") << "after\n";
  std::ofstream(pair_->root(P::kPrimary) + "/job.2") << "after\n";
  EXPECT_TRUE(pair_->WaitConverged(30s).empty()) << Logs();
  ExpectNeverTwoPrimaries(hooks_);
}

// Etcd members restarted one by one (SIGTERM, start, back in the cluster): the primary's
// renewals fail over to the members left, so nothing changes role. One round of three
// restarts; HASYNC_LONG=1: ten.
TEST_F(ArbiterPair, EtcdMembersRestartedOneByOneChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  const char* long_mode = std::getenv("HASYNC_LONG");
  const int rounds = long_mode != nullptr && std::string(long_mode) == "1" ? 10 : 1;
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < EtcdCluster::kMembers; ++i) {
      etcd_->Kill(i, SIGTERM);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      etcd_->Start(i);
      ASSERT_TRUE(etcd_->WaitReady()) << "member " << i;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(kWindowMs));
  std::printf(
      "arbiter: %d round(s) of 3 etcd member restarts: %zu role changes\n", rounds,
      pair_->CountEvents(P::kPrimary, "demoting") + pair_->CountEvents(P::kStandby, "promoted"));
  EXPECT_EQ(pair_->CountEvents(P::kPrimary, "demoting"), 0u) << Logs();
  EXPECT_EQ(pair_->CountEvents(P::kStandby, "promoted"), 0u) << Logs();
  EXPECT_EQ(hooks_.Count("on_demote", "primary"), 0u);
  std::ofstream(pair_->root(P::kPrimary) + "/job.2") << "after\n";
  EXPECT_TRUE(pair_->WaitConverged(30s).empty()) << Logs();
}

}  // namespace
}  // namespace hasync::testing
