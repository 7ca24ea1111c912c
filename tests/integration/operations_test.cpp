// What an administrator watches and checks on a running pair (issue 6): the Prometheus
// endpoint scraped while files replicate, and `hasync verify` on a converged pair, on a
// pair with differences planted behind replication's back, and during a write load.
// Two real processes on loopback; needs root (fanotify).
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "engine/cli_commands.h"
#include "tests/integration/process_pair.h"

namespace hasync::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using P = ProcessPair;
using ::testing::HasSubstr;

#define REQUIRE_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "needs root: fanotify filesystem marks need CAP_SYS_ADMIN"

void Write(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

// One scrape: "name{labels}" → value. Empty when the endpoint does not answer 200.
std::map<std::string, double> Scrape(uint16_t port) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(2, 0);
  auto res = client.Get("/metrics");
  std::map<std::string, double> out;
  if (!res || res->status != 200) return out;
  std::istringstream in(res->body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return out;
}

double Get(const std::map<std::string, double>& m, const std::string& key) {
  auto it = m.find(key);
  EXPECT_NE(it, m.end()) << "no sample " << key;
  return it == m.end() ? -1 : it->second;
}

PairNet WithMetrics() {
  PairNet net;
  net.metrics = true;
  return net;
}

void StartLive(P& pair) {
  pair.Start(P::kStandby);
  pair.Start(P::kPrimary);
  ASSERT_TRUE(pair.WaitEvents(P::kPrimary, "resync_sent", 1, 20s)) << pair.log(P::kPrimary);
}

TEST(Operations, MetricsMoveWhileFilesReplicate) {
  REQUIRE_ROOT();
  P pair("ops-metrics", "[probe]\ncommand = [\"/bin/true\"]\ninterval_ms = 200\ntimeout_ms = 100\n",
         WithMetrics());
  StartLive(pair);
  const uint16_t pport = pair.metrics_port(P::kPrimary);
  const uint16_t sport = pair.metrics_port(P::kStandby);
  ASSERT_TRUE(P::WaitFor([&] { return !Scrape(pport).empty() && !Scrape(sport).empty(); }, 10s));
  // The standby takes the primary's epoch when the session opens, once its state file
  // has it, and its metrics show it from the next tick: the primary may log its resync
  // before that (a CI run scraped epoch 0 there).
  ASSERT_TRUE(P::WaitFor(
      [&] {
        auto s = Scrape(sport);
        auto it = s.find("hasync_epoch");
        return it != s.end() && it->second == 1;
      },
      10s))
      << "the standby never showed the primary's epoch";

  auto p0 = Scrape(pport), s0 = Scrape(sport);
  EXPECT_EQ(Get(p0, "hasync_role{role=\"primary\"}"), 1);
  EXPECT_EQ(Get(p0, "hasync_role{role=\"standby\"}"), 0);
  EXPECT_EQ(Get(s0, "hasync_role{role=\"standby\"}"), 1);
  EXPECT_EQ(Get(p0, "hasync_epoch"), 1);
  EXPECT_EQ(Get(s0, "hasync_epoch"), 1);
  EXPECT_EQ(Get(p0, "hasync_peer_connected"), 1);
  EXPECT_EQ(Get(s0, "hasync_verdict{verdict=\"alive\"}"), 1);
  EXPECT_EQ(Get(p0, "hasync_verdict{verdict=\"alive\"}"), 0) << "a primary judges nobody";

  // Scrape while a writer adds 400 files: every counter only grows, and they move.
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    for (int i = 0; i < 400; ++i) {
      Write(pair.root(P::kPrimary) + "/job." + std::to_string(i),
            std::string(3000 + static_cast<size_t>(i), 'x'));
      if (i % 50 == 0) std::this_thread::sleep_for(20ms);
    }
    writing = false;
  });
  double last_sent = Get(p0, "hasync_sent_files_total");
  int scrapes = 0;
  for (int i = 0; i < 200 && writing; ++i, ++scrapes) {
    auto p = Scrape(pport);
    ASSERT_FALSE(p.empty());
    double sent = Get(p, "hasync_sent_files_total");
    EXPECT_GE(sent, last_sent) << "a counter went down";
    last_sent = sent;
    std::this_thread::sleep_for(5ms);
  }
  writer.join();
  EXPECT_GT(scrapes, 0);
  ASSERT_TRUE(pair.WaitConverged(30s).empty());
  // The last ACK may reach the metrics a tick after the trees match.
  ASSERT_TRUE(P::WaitFor([&] { return Get(Scrape(pport), "hasync_unacked_batches") == 0; }, 5s));

  auto p1 = Scrape(pport), s1 = Scrape(sport);
  EXPECT_GE(Get(p1, "hasync_sent_files_total") - Get(p0, "hasync_sent_files_total"), 400);
  EXPECT_GE(Get(p1, "hasync_sent_bytes_total") - Get(p0, "hasync_sent_bytes_total"), 400 * 3000);
  EXPECT_GE(Get(s1, "hasync_applied_files_total") - Get(s0, "hasync_applied_files_total"), 400);
  EXPECT_GT(Get(p1, "hasync_batches_acked_total"), Get(p0, "hasync_batches_acked_total"));
  EXPECT_GT(Get(s1, "hasync_batches_applied_total"), Get(s0, "hasync_batches_applied_total"));
  EXPECT_GT(Get(p1, "hasync_lock_records_sent_total"), Get(p0, "hasync_lock_records_sent_total"));
  EXPECT_GT(Get(s1, "hasync_lock_records_received_total"),
            Get(s0, "hasync_lock_records_received_total"));
  EXPECT_GT(Get(p1, "hasync_hook_runs_total{hook=\"probe\"}"),
            Get(p0, "hasync_hook_runs_total{hook=\"probe\"}"));
  EXPECT_EQ(Get(p1, "hasync_hook_failures_total{hook=\"probe\"}"), 0);
  EXPECT_EQ(Get(p1, "hasync_journal_pending"), 0);
  EXPECT_EQ(Get(p1, "hasync_unacked_changes"), 0);
  // The lag histogram saw every acknowledged batch, and its buckets add up.
  const double count = Get(p1, "hasync_replication_lag_seconds_count");
  EXPECT_GT(count, Get(p0, "hasync_replication_lag_seconds_count"));
  EXPECT_EQ(Get(p1, "hasync_replication_lag_seconds_bucket{le=\"+Inf\"}"), count);
  EXPECT_EQ(count, Get(p1, "hasync_batches_acked_total"));
  EXPECT_GT(Get(p1, "hasync_replication_lag_seconds_sum"), 0);
  EXPECT_LE(Get(p1, "hasync_replication_lag_seconds_bucket{le=\"0.001\"}"),
            Get(p1, "hasync_replication_lag_seconds_bucket{le=\"1\"}"));

  // A connection that sends rubbish in place of a handshake is counted by the standby.
  const double failures0 = Get(s1, "hasync_handshake_failures_total");
  {
    std::string cfg_text;
    std::ifstream in(pair.config(P::kStandby));
    std::stringstream ss;
    ss << in.rdbuf();
    std::smatch m;
    std::string text = ss.str();
    ASSERT_TRUE(std::regex_search(text, m, std::regex("listen = \"127\\.0\\.0\\.1:(\\d+)\"")));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(m[1])));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const char junk[] = "GET / HTTP/1.0\r\n\r\n this is not a hasync handshake at all";
    ASSERT_GT(write(fd, junk, sizeof junk), 0);
    char buf[256];
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
  }
  EXPECT_TRUE(P::WaitFor(
      [&] { return Get(Scrape(sport), "hasync_handshake_failures_total") > failures0; }, 5s));
  EXPECT_EQ(Get(Scrape(pport), "hasync_peer_connected"), 1) << "the real session went on";

  // Anything but GET /metrics and / is refused.
  httplib::Client client("127.0.0.1", pport);
  auto other = client.Get("/debug");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

TEST(Operations, MetricsOnAnAddressInUseStopTheNodeWithTheReason) {
  REQUIRE_ROOT();
  P pair("ops-metrics-busy", "", WithMetrics());
  // Hold the primary's metrics port.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(pair.metrics_port(P::kPrimary));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  pair.Start(P::kPrimary);
  int status = pair.WaitExit(P::kPrimary, 10s);
  close(fd);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), engine::kExitFailure);
  EXPECT_THAT(pair.log(P::kPrimary), HasSubstr("metrics: cannot listen on 127.0.0.1:" +
                                               std::to_string(pair.metrics_port(P::kPrimary))));
}

TEST(Operations, VerifyFindsNoDifferenceOnAConvergedPairAndEveryPlantedOne) {
  REQUIRE_ROOT();
  P pair("ops-verify");
  const std::string pr = pair.root(P::kPrimary), sr = pair.root(P::kStandby);
  fs::create_directories(pr + "/hash.3/job.1003");
  Write(pr + "/hash.3/job.1003/script", "#!/bin/sh\nsrun hostname\n");
  Write(pr + "/hash.3/job.1003/environment", std::string(5000, 'e'));
  Write(pr + "/job_state", std::string(70000, 's'));
  Write(pr + "/node_state", "nodes");
  Write(pr + "/resv_state", "resv");
  Write(pr + "/trigger_state", "trig");
  fs::create_symlink("job_state", pr + "/last_state");
  StartLive(pair);
  ASSERT_TRUE(pair.WaitConverged(30s).empty());

  auto same = Hasync("verify --json -c " + pair.config(P::kPrimary));
  ASSERT_EQ(same.first, engine::kExitOk) << same.second;
  auto j = nlohmann::json::parse(same.second, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << same.second;
  EXPECT_EQ(j["outcome"], "identical");
  EXPECT_EQ(j["primary_entries"], j["standby_entries"]);
  EXPECT_GE(j["primary_entries"].get<int>(), 10);  // 3 roots' worth: dirs, files, link
  EXPECT_EQ(j["differences"].size(), 0u);

  // Behind replication's back (hasync does not watch the standby): one change of each
  // kind verify must see.
  const std::string env = sr + "/hash.3/job.1003/environment";
  {
    std::fstream f(env, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('X');  // same size, other bytes
  }
  timespec keep[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
  struct stat st {};
  ASSERT_EQ(stat((pr + "/hash.3/job.1003/environment").c_str(), &st), 0);
  keep[1] = st.st_mtim;  // the mtime as it was: only the content differs
  ASSERT_EQ(utimensat(AT_FDCWD, env.c_str(), keep, 0), 0);
  ASSERT_EQ(chmod((sr + "/node_state").c_str(), 0600), 0);
  fs::remove(sr + "/resv_state");
  Write(sr + "/stray_file", "not on the primary");
  timespec old[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (sr + "/trigger_state").c_str(), old, 0), 0);
  fs::remove(sr + "/last_state");
  fs::create_symlink("node_state", sr + "/last_state");

  auto diff = Hasync("verify --json -c " + pair.config(P::kPrimary));
  ASSERT_EQ(diff.first, engine::kExitDiverged) << diff.second;
  j = nlohmann::json::parse(diff.second, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << diff.second;
  EXPECT_EQ(j["outcome"], "differences");
  std::map<std::string, std::string> found;
  for (const auto& d : j["differences"]) found[d["path"]] = d["what"];
  EXPECT_EQ(found.size(), 6u) << diff.second;
  EXPECT_THAT(found["0/hash.3/job.1003/environment"], HasSubstr("content: same size"));
  EXPECT_THAT(found["0/node_state"], HasSubstr("mode 644 vs 600"));
  EXPECT_EQ(found["0/resv_state"], "missing on the standby");
  EXPECT_EQ(found["0/stray_file"], "only on the standby");
  EXPECT_THAT(found["0/trigger_state"], HasSubstr("mtime"));
  EXPECT_THAT(found["0/last_state"], HasSubstr("content"));
  EXPECT_EQ(j["changing"].size(), 0u);
  // Every difference is also in the primary's log, one line each.
  EXPECT_EQ(pair.CountEvents(P::kPrimary, "verify_difference"), 6u);

  // The text form lists the same, and the standby refuses to run it.
  auto text = Hasync("verify -c " + pair.config(P::kPrimary));
  EXPECT_EQ(text.first, engine::kExitDiverged);
  EXPECT_THAT(text.second, HasSubstr("DIFFERS   0/resv_state: missing on the standby"));
  EXPECT_THAT(text.second, HasSubstr("verify: differences"));
  auto on_standby = Hasync("verify -c " + pair.config(P::kStandby));
  EXPECT_EQ(on_standby.first, engine::kExitFailure);
  EXPECT_THAT(on_standby.second, HasSubstr("run `hasync verify` on the primary"));
}

TEST(Operations, VerifyDuringAWriteLoadReportsNoDifferenceThatReplicationHeals) {
  REQUIRE_ROOT();
  P pair("ops-verify-busy");
  const std::string pr = pair.root(P::kPrimary);
  for (int i = 0; i < 200; ++i) Write(pr + "/job." + std::to_string(i), std::string(2000, 'a'));
  StartLive(pair);
  ASSERT_TRUE(pair.WaitConverged(30s).empty());
  // A scheduler rewriting its state files while verify runs: nothing diverges.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int n = 0; !stop && n < 20'000; ++n) {
      std::string tmp = pr + "/job_state.new";
      Write(tmp, "state " + std::to_string(n) + std::string(4000, 's'));
      fs::rename(tmp, pr + "/job_state");
      Write(pr + "/job." + std::to_string(n % 200), std::to_string(n));
      std::this_thread::sleep_for(2ms);
    }
  });
  auto busy = Hasync("verify --json -c " + pair.config(P::kPrimary));
  stop = true;
  writer.join();
  auto j = nlohmann::json::parse(busy.second, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << busy.second;
  EXPECT_TRUE(busy.first == engine::kExitOk || busy.first == engine::kExitInconclusive)
      << busy.second;
  EXPECT_EQ(j["differences"].size(), 0u) << busy.second;
  EXPECT_GE(j["round"].get<int>(), 1);
  // Once the writer stops, the pair converges and a second verify finds it identical.
  ASSERT_TRUE(pair.WaitConverged(30s).empty());
  auto after = Hasync("verify -c " + pair.config(P::kPrimary));
  EXPECT_EQ(after.first, engine::kExitOk) << after.second;
  EXPECT_THAT(after.second, HasSubstr("verify: identical"));
}

// Differences of every kind issue 16 names, planted on the standby behind replication's
// back (hasync does not watch the standby): content with size and mtime kept, mode,
// owner, mtime, a removed file, a stray file and a stray directory with a file, an
// xattr only the standby has, an xattr the standby lost, a hard link the standby split
// and one it made. Returns how many paths differ.
size_t PlantDifferences(P& pair) {
  const std::string pr = pair.root(P::kPrimary), sr = pair.root(P::kStandby);
  const std::string env = sr + "/hash.1/job.11/environment";
  {
    std::fstream f(env, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('X');
  }
  struct stat st {};
  EXPECT_EQ(stat((pr + "/hash.1/job.11/environment").c_str(), &st), 0);
  timespec keep[2] = {{0, UTIME_OMIT}, st.st_mtim};
  EXPECT_EQ(utimensat(AT_FDCWD, env.c_str(), keep, 0), 0);
  EXPECT_EQ(chmod((sr + "/node_state").c_str(), 0600), 0);
  EXPECT_EQ(chown((sr + "/resv_state").c_str(), 4242, 4242), 0);
  timespec old[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};
  EXPECT_EQ(utimensat(AT_FDCWD, (sr + "/trigger_state").c_str(), old, 0), 0);
  fs::remove(sr + "/assoc_state");
  Write(sr + "/stray_file", "not on the primary");
  fs::create_directories(sr + "/stray_dir");
  Write(sr + "/stray_dir/inside", "nor this");
  EXPECT_EQ(setxattr((sr + "/job_state").c_str(), "user.tail", "x", 1, 0), 0);
  EXPECT_EQ(removexattr((sr + "/qos_state").c_str(), "user.slurm"), 0);
  // state and state.old are one inode on the primary; the standby's state.old becomes
  // a copy. a and b are two files on the primary; the standby links them.
  fs::remove(sr + "/state.old");
  fs::copy_file(sr + "/state", sr + "/state.old");
  EXPECT_EQ(stat((pr + "/state").c_str(), &st), 0);
  timespec same[2] = {{0, UTIME_OMIT}, st.st_mtim};
  EXPECT_EQ(utimensat(AT_FDCWD, (sr + "/state.old").c_str(), same, 0), 0);
  fs::remove(sr + "/b");
  EXPECT_EQ(link((sr + "/a").c_str(), (sr + "/b").c_str()), 0);
  // environment, node_state, resv_state, trigger_state, assoc_state, stray_file,
  // stray_dir, stray_dir/inside, job_state, qos_state, state, state.old, a, b
  return 14;
}

void MakeSpool(const std::string& pr) {
  fs::create_directories(pr + "/hash.1/job.11");
  Write(pr + "/hash.1/job.11/script", "#!/bin/sh\nsrun hostname\n");
  Write(pr + "/hash.1/job.11/environment", std::string(3000, 'e'));
  for (const char* n : {"node_state", "resv_state", "trigger_state", "assoc_state", "job_state",
                        "qos_state", "state"}) {
    Write(pr + "/" + n, std::string("contents of ") + n);
  }
  ASSERT_EQ(setxattr((pr + "/qos_state").c_str(), "user.slurm", "1", 1, 0), 0);
  ASSERT_EQ(link((pr + "/state").c_str(), (pr + "/state.old").c_str()), 0);
  Write(pr + "/a", "same bytes");
  Write(pr + "/b", "same bytes");
  struct stat st {};
  ASSERT_EQ(stat((pr + "/a").c_str(), &st), 0);
  timespec same[2] = {{0, UTIME_OMIT}, st.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, (pr + "/b").c_str(), same, 0), 0);
}

// Issue 16: `hasync verify --repair` repairs every planted difference now, each logged
// with what differed; a second verify finds the pair identical.
TEST(Operations, VerifyRepairHealsEveryPlantedDifference) {
  REQUIRE_ROOT();
  P pair("ops-repair", "[anti_entropy]\ninterval_ms = 0\n");
  MakeSpool(pair.root(P::kPrimary));
  StartLive(pair);
  ASSERT_TRUE(pair.WaitConverged(30s).empty());
  const size_t planted = PlantDifferences(pair);
  EXPECT_FALSE(pair.WaitConverged(1s).empty()) << "the planted differences are visible";

  auto fixed = Hasync("verify --repair --json -c " + pair.config(P::kPrimary));
  EXPECT_EQ(fixed.first, engine::kExitDiverged) << fixed.second;
  auto j = nlohmann::json::parse(fixed.second, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << fixed.second;
  EXPECT_EQ(j["differences"].size(), planted) << fixed.second;
  EXPECT_EQ(j["repaired"].get<size_t>(), planted) << fixed.second;
  TreeDiff left = pair.WaitConverged(30s);
  EXPECT_TRUE(left.empty()) << left.ToString();
  EXPECT_EQ(pair.CountEvents(P::kPrimary, "repaired"), planted) << pair.log(P::kPrimary);
  auto again = Hasync("verify -c " + pair.config(P::kPrimary));
  EXPECT_EQ(again.first, engine::kExitOk) << again.second;
}

// Issue 16: the background pass finds and repairs the same differences by itself, and
// the metrics say so.
TEST(Operations, AntiEntropyFindsAndRepairsDivergenceOnALivePair) {
  REQUIRE_ROOT();
  P pair("ops-anti-entropy", "[anti_entropy]\ninterval_ms = 1000\ncpu_percent = 50\n",
         WithMetrics());
  MakeSpool(pair.root(P::kPrimary));
  StartLive(pair);
  ASSERT_TRUE(pair.WaitConverged(30s).empty());
  ASSERT_TRUE(pair.WaitEvents(P::kPrimary, "anti_entropy", 2, 30s)) << "a first pass, identical";
  const size_t planted = PlantDifferences(pair);
  TreeDiff left = pair.WaitConverged(60s);
  EXPECT_TRUE(left.empty()) << left.ToString() << pair.log(P::kPrimary);
  auto m = Scrape(pair.metrics_port(P::kPrimary));
  EXPECT_GE(Get(m, "hasync_divergences_found_total"), static_cast<double>(planted));
  EXPECT_GE(Get(m, "hasync_divergences_repaired_total"), static_cast<double>(planted));
  EXPECT_LT(Get(m, "hasync_antientropy_last_pass_age_seconds"), 60.0);
  EXPECT_GE(pair.CountEvents(P::kPrimary, "repaired"), planted);
}

// Issue 16, case 5: right after a restart the session is still opening; verify waits
// for it instead of failing with "session opening".
TEST(Operations, VerifyRightAfterARestartWaitsForTheSession) {
  REQUIRE_ROOT();
  P pair("ops-verify-restart");
  Write(pair.root(P::kPrimary) + "/job_state", "state");
  StartLive(pair);
  ASSERT_TRUE(pair.WaitConverged(30s).empty());
  pair.Stop(P::kStandby);
  pair.Stop(P::kPrimary);
  pair.Start(P::kPrimary);
  ASSERT_TRUE(P::WaitFor(
      [&] { return Hasync("status -c " + pair.config(P::kPrimary)).first == engine::kExitOk; },
      10s));
  std::pair<int, std::string> result{-1, ""};
  std::thread verify(
      [&] { result = Hasync("verify --timeout-ms 60000 -c " + pair.config(P::kPrimary)); });
  std::this_thread::sleep_for(1500ms);  // the standby is not there yet
  pair.Start(P::kStandby);
  verify.join();
  EXPECT_EQ(result.first, engine::kExitOk) << result.second;
  EXPECT_THAT(result.second, HasSubstr("verify: identical"));
}

}  // namespace
}  // namespace hasync::testing
