// Metrics (engine/node/metrics.h): the exposition text, the lag histogram, hook counts,
// the mirrors of per-session statistics, the HTTP endpoint, and docs/OPERATIONS.md
// naming every metric the endpoint serves.
#include "engine/node/metrics.h"

#include "engine/node/state.h"

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

namespace hasync::engine {
namespace {

using ::testing::HasSubstr;

// name{labels} → value of every sample in `text`.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    out[line.substr(0, sp)] = line.substr(sp + 1);
  }
  return out;
}

TEST(Metrics, EveryFamilyHasHelpAndTypeAndEverySampleBelongsToOne) {
  Metrics m;
  const std::string text = m.Render();
  std::set<std::string> families;
  std::regex type_line("^# TYPE (hasync_[a-z_]+) (counter|gauge|histogram)$");
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::smatch sm;
    if (std::regex_match(line, sm, type_line)) families.insert(sm[1]);
  }
  EXPECT_GE(families.size(), 25u);
  for (const auto& [key, value] : Samples(text)) {
    std::string name = key.substr(0, key.find('{'));
    std::string family = std::regex_replace(name, std::regex("_(bucket|sum|count)$"), "");
    EXPECT_TRUE(families.count(name) || families.count(family)) << key;
    EXPECT_THAT(text, HasSubstr("# HELP " + (families.count(name) ? name : family) + " "));
    // Counters end in _total (the Prometheus convention).
    if (text.find("# TYPE " + name + " counter") != std::string::npos) {
      EXPECT_TRUE(name.ends_with("_total")) << name;
    }
  }
}

TEST(Metrics, TheArbitersGaugesAndCounters) {
  Metrics m;
  auto s = Samples(m.Render());
  EXPECT_EQ(s["hasync_arbiter_configured"], "0");
  EXPECT_EQ(s["hasync_arbiter_lease_remaining_seconds"], "0");
  m.arbiter_configured = 1;
  m.arbiter_endpoints_up = 2;
  m.arbiter_leader = 1;
  m.arbiter_epoch = 9;
  m.arbiter_lease_remaining_ms = 4750;
  m.arbiter_requests.fetch_add(12);
  m.arbiter_request_failures.fetch_add(3);
  s = Samples(m.Render());
  EXPECT_EQ(s["hasync_arbiter_configured"], "1");
  EXPECT_EQ(s["hasync_arbiter_endpoints_up"], "2");
  EXPECT_EQ(s["hasync_arbiter_leader"], "1");
  EXPECT_EQ(s["hasync_arbiter_epoch"], "9");
  EXPECT_EQ(s["hasync_arbiter_lease_remaining_seconds"], "4.75");
  EXPECT_EQ(s["hasync_arbiter_requests_total"], "12");
  EXPECT_EQ(s["hasync_arbiter_request_failures_total"], "3");
}

TEST(Metrics, RoleVerdictAndHooksAreLabelledSamples) {
  Metrics m;
  m.role = static_cast<int64_t>(NodeRole::kStandby);
  m.epoch = 7;
  m.verdict = 1;  // stalled
  m.CountHook(HookKind::kOnPromote, true);
  m.CountHook(HookKind::kOnPromote, false);
  m.CountHook(HookKindFromName("quorum_check"), false);
  m.CountHook(HookKindFromName("no_such_hook"), false);  // ignored
  auto s = Samples(m.Render());
  EXPECT_EQ(s["hasync_role{role=\"standby\"}"], "1");
  EXPECT_EQ(s["hasync_role{role=\"primary\"}"], "0");
  EXPECT_EQ(s["hasync_epoch"], "7");
  EXPECT_EQ(s["hasync_verdict{verdict=\"stalled\"}"], "1");
  EXPECT_EQ(s["hasync_verdict{verdict=\"alive\"}"], "0");
  EXPECT_EQ(s["hasync_hook_runs_total{hook=\"on_promote\"}"], "2");
  EXPECT_EQ(s["hasync_hook_failures_total{hook=\"on_promote\"}"], "1");
  EXPECT_EQ(s["hasync_hook_failures_total{hook=\"quorum_check\"}"], "1");
  EXPECT_EQ(s["hasync_hook_runs_total{hook=\"probe\"}"], "0");
}

TEST(Metrics, LagHistogramIsCumulativeWithSumAndCount) {
  Metrics m;
  m.ObserveLagNs(500'000);          // 0.5 ms → le 0.001
  m.ObserveLagNs(3'000'000);        // 3 ms → le 0.005
  m.ObserveLagNs(2'000'000'000);    // 2 s → le 2.5
  m.ObserveLagNs(900'000'000'000);  // 15 min → +Inf only
  m.ObserveLagNs(-5);               // a clock step: counted as 0
  auto s = Samples(m.Render());
  EXPECT_EQ(s["hasync_replication_lag_seconds_bucket{le=\"0.001\"}"], "2");
  EXPECT_EQ(s["hasync_replication_lag_seconds_bucket{le=\"0.0025\"}"], "2");
  EXPECT_EQ(s["hasync_replication_lag_seconds_bucket{le=\"0.005\"}"], "3");
  EXPECT_EQ(s["hasync_replication_lag_seconds_bucket{le=\"2.5\"}"], "4");
  EXPECT_EQ(s["hasync_replication_lag_seconds_bucket{le=\"300\"}"], "4");
  EXPECT_EQ(s["hasync_replication_lag_seconds_bucket{le=\"+Inf\"}"], "5");
  EXPECT_EQ(s["hasync_replication_lag_seconds_count"], "5");
  EXPECT_NEAR(std::stod(s["hasync_replication_lag_seconds_sum"]), 902.0035, 1e-6);
}

TEST(Metrics, MirrorAddsWhatASessionGainedAndStartsOverWithANewOne) {
  Metrics::Counter total{0};
  CounterMirror mirror;
  mirror.Update(total, 10);
  mirror.Update(total, 25);
  EXPECT_EQ(total.load(), 25u);
  mirror.Restart();  // a new sender: its statistics start at 0
  mirror.Update(total, 4);
  EXPECT_EQ(total.load(), 29u);
  mirror.Update(total, 4);
  EXPECT_EQ(total.load(), 29u);
}

TEST(Metrics, ServerAnswersMetricsAndRefusesTheRest) {
  Metrics m;
  m.files_sent = 42;
  MetricsServer server(m);
  ASSERT_TRUE(server.Start({"127.0.0.1", 0, false}).ok());
  ASSERT_GT(server.port(), 0);
  httplib::Client client("127.0.0.1", server.port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/plain; version=0.0.4"));
  EXPECT_THAT(res->body, HasSubstr("\nhasync_sent_files_total 42\n"));
  auto missing = client.Get("/metrics/../etc/passwd");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto post = client.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_NE(post->status, 200);
  // A second server on the same port says which address it could not take.
  MetricsServer second(m);
  Status busy = second.Start({"127.0.0.1", static_cast<uint16_t>(server.port()), false});
  EXPECT_FALSE(busy.ok());
  EXPECT_THAT(busy.message(),
              HasSubstr("cannot listen on 127.0.0.1:" + std::to_string(server.port())));
  server.Stop();
  EXPECT_FALSE(client.Get("/metrics")) << "stopped means closed";
}

TEST(Metrics, OperationsDocNamesEveryMetric) {
  std::ifstream in(std::string(HASYNC_SOURCE_DIR) + "/docs/OPERATIONS.md");
  ASSERT_TRUE(in.good());
  std::stringstream doc;
  doc << in.rdbuf();
  Metrics m;
  std::regex type_line("^# TYPE (hasync_[a-z_]+) ");
  std::istringstream text(m.Render());
  int n = 0;
  for (std::string line; std::getline(text, line);) {
    std::smatch sm;
    if (!std::regex_search(line, sm, type_line)) continue;
    ++n;
    EXPECT_NE(doc.str().find("`" + sm[1].str() + "`"), std::string::npos)
        << "docs/OPERATIONS.md does not name " << sm[1];
  }
  EXPECT_GT(n, 0);
}

TEST(Metrics, QuarantineCountIsBounded) {
  char tmpl[] = "/tmp/hasync-metrics-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  EXPECT_EQ(CountQuarantined(dir), 0u);  // no quarantine dir yet
  std::filesystem::create_directories(dir + "/quarantine/3/a");
  for (int i = 0; i < 5; ++i) std::ofstream(dir + "/quarantine/3/a/f" + std::to_string(i)) << i;
  EXPECT_EQ(CountQuarantined(dir), 5u);
  EXPECT_EQ(CountQuarantined(dir, 3), 3u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hasync::engine
