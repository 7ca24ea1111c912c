// The monitoring files of packaging/monitoring/ (issue 17): the alert rules load in
// Prometheus, each alert fires on the series it is meant for, the dashboard's queries are
// PromQL, and every metric the rules, their unit tests and the dashboard name is one that
// hasync exports.
//
// - `promtool check rules hasync-alerts.yml` passes;
// - `promtool test rules hasync-alerts.test.yml` passes: a healthy pair fires nothing, and
//   each alert fires on its own case and not on the similar neighbour there;
// - the dashboard is JSON and each of its queries, Grafana's variables replaced, passes
//   `promtool check rules` as a recording rule;
// - every `hasync_*` name in those three files is a sample name of a real node's /metrics
//   (a primary and a standby on loopback, scraped over HTTP; root, for fanotify), and, so
//   the check also runs without root, a name engine/node/metrics.cpp writes.
//
// promtool comes with Debian's `prometheus` package (scripts/install-deps.sh installs it);
// without it the promtool tests skip and say so.
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/process_pair.h"
#include "tests/support/skip_loudly.h"

namespace hasync::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kMonitoring = fs::path(HASYNC_SOURCE_DIR) / "packaging" / "monitoring";
const fs::path kRules = kMonitoring / "hasync-alerts.yml";
const fs::path kRuleTests = kMonitoring / "hasync-alerts.test.yml";
const fs::path kDashboard = kMonitoring / "hasync-dashboard.json";
constexpr const char* kPromtool = "/usr/bin/promtool";

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Ran {
  int rc = -1;
  std::string out;  // stdout and stderr together
};

// Runs `cmd` through /bin/sh in `dir`, stdout and stderr captured together.
Ran RunIn(const fs::path& dir, const std::string& cmd) {
  char tmpl[] = "/tmp/hasync-monitoring-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  if (fd < 0) return {};
  ::close(fd);
  const int status =
      std::system(("cd '" + dir.string() + "' && " + cmd + " >" + tmpl + " 2>&1").c_str());
  Ran r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadAll(tmpl);
  ::unlink(tmpl);
  return r;
}

bool IsNameChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

// Every distinct "hasync_<name>" token of `text` (not preceded by a name character).
std::set<std::string> HasyncNames(const std::string& text) {
  std::set<std::string> out;
  for (size_t at = text.find("hasync_"); at != std::string::npos;
       at = text.find("hasync_", at + 1)) {
    if (at > 0 && (IsNameChar(text[at - 1]) || (text[at - 1] >= 'A' && text[at - 1] <= 'Z'))) {
      continue;
    }
    size_t end = at;
    while (end < text.size() && IsNameChar(text[end])) ++end;
    out.insert(text.substr(at, end - at));
  }
  return out;
}

// The names the rules, their unit tests and the dashboard use.
std::set<std::string> UsedNames() {
  std::set<std::string> used;
  for (const fs::path& p : {kRules, kRuleTests, kDashboard}) {
    const std::string text = ReadAll(p);
    EXPECT_FALSE(text.empty()) << p;
    used.merge(HasyncNames(text));
  }
  return used;
}

// The value of every JSON string member named `key` in `json` (the dashboard is written
// by a JSON serializer: the only escapes are \" \\ \/ \n \t and \u00XX).
std::vector<std::string> JsonStrings(const std::string& json, const std::string& key) {
  std::vector<std::string> out;
  const std::string needle = "\"" + key + "\":";
  for (size_t at = json.find(needle); at != std::string::npos;
       at = json.find(needle, at + needle.size())) {
    size_t i = at + needle.size();
    while (i < json.size() && json[i] == ' ') ++i;
    if (i >= json.size() || json[i] != '"') continue;  // an object, e.g. "query": {...}
    std::string value;
    for (++i; i < json.size() && json[i] != '"'; ++i) {
      if (json[i] != '\\' || i + 1 >= json.size()) {
        value += json[i];
        continue;
      }
      const char e = json[++i];
      if (e == 'n') {
        value += '\n';
      } else if (e == 't') {
        value += '\t';
      } else if (e == 'u' && i + 4 < json.size()) {
        value += static_cast<char>(std::stoi(json.substr(i + 1, 4), nullptr, 16));
        i += 4;
      } else {
        value += e;
      }
    }
    out.push_back(value);
  }
  return out;
}

void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

// A dashboard query as Prometheus would receive it: Grafana's variables given values, and
// a variable query `label_values(EXPR, label)` reduced to its EXPR.
std::string AsPromQL(std::string q) {
  if (q.starts_with("label_values(")) {
    q = q.substr(13, q.rfind(',') - 13);
  }
  ReplaceAll(q, "$__rate_interval", "1m");
  ReplaceAll(q, "$__interval", "1m");
  ReplaceAll(q, "$__range", "1h");
  ReplaceAll(q, "$job", "hasync");
  ReplaceAll(q, "$instance", ".*");
  return q;
}

std::string YamlQuoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

#define NEED_PROMTOOL()                                                                      \
  do {                                                                                       \
    if (::access(kPromtool, X_OK) != 0) {                                                    \
      SKIP_LOUDLY(std::string(kPromtool) +                                                   \
                  " is not installed (Debian package prometheus; scripts/install-deps.sh)"); \
    }                                                                                        \
  } while (0)

TEST(Monitoring, AlertRulesPassPromtoolCheck) {
  NEED_PROMTOOL();
  const Ran r = RunIn(kMonitoring, std::string(kPromtool) + " check rules " + kRules.string());
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("SUCCESS"), std::string::npos) << r.out;
}

TEST(Monitoring, EveryAlertFiresOnItsSeriesInPromtoolUnitTests) {
  NEED_PROMTOOL();
  const Ran r = RunIn(kMonitoring, std::string(kPromtool) + " test rules " + kRuleTests.string());
  EXPECT_EQ(r.rc, 0) << r.out;
  // Every alert of the rules has a case of its own in the unit tests (a firing one).
  const std::string rules = ReadAll(kRules), tests = ReadAll(kRuleTests);
  int alerts = 0;
  for (size_t at = rules.find("- alert: "); at != std::string::npos;
       at = rules.find("- alert: ", at + 1)) {
    const size_t begin = at + 9;
    const std::string name = rules.substr(begin, rules.find('\n', begin) - begin);
    ++alerts;
    size_t firing = 0;
    for (size_t t = tests.find("alertname: " + name + "\n"); t != std::string::npos;
         t = tests.find("alertname: " + name + "\n", t + 1)) {
      const size_t next = tests.find("eval_time", t);
      if (tests.substr(t, next - t).find("exp_alerts:") != std::string::npos) ++firing;
    }
    EXPECT_GE(firing, 1u) << name << " has no unit test in which it fires";
  }
  EXPECT_GE(alerts, 7) << "the issue's seven alerts at least";
}

TEST(Monitoring, DashboardIsJsonAndItsQueriesArePromQL) {
  const std::string json = ReadAll(kDashboard);
  ASSERT_FALSE(json.empty());
  if (::access("/usr/bin/python3", X_OK) == 0) {
    const Ran r =
        RunIn(kMonitoring, "/usr/bin/python3 -m json.tool " + kDashboard.string() + " >/dev/null");
    EXPECT_EQ(r.rc, 0) << "not JSON: " << r.out;
  } else {
    std::fprintf(stderr, "NOTE: python3 missing, the dashboard's JSON syntax is not checked\n");
  }
  NEED_PROMTOOL();
  std::vector<std::string> queries = JsonStrings(json, "expr");
  const size_t panel_queries = queries.size();
  for (std::string& q : JsonStrings(json, "query")) {
    if (q.starts_with("label_values(")) queries.push_back(q);
  }
  ASSERT_GE(panel_queries, 20u);
  ASSERT_GE(queries.size(), panel_queries + 2) << "the job and instance variables";
  const fs::path dir = fs::temp_directory_path();
  const fs::path rules = dir / ("hasync-dashboard-rules-" + std::to_string(::getpid()) + ".yml");
  {
    std::ofstream out(rules);
    out << "groups:\n  - name: dashboard\n    rules:\n";
    for (size_t i = 0; i < queries.size(); ++i) {
      out << "      - record: dashboard:query_" << i
          << "\n        expr: " << YamlQuoted(AsPromQL(queries[i])) << "\n";
    }
  }
  const Ran r = RunIn(dir, std::string(kPromtool) + " check rules " + rules.string());
  EXPECT_EQ(r.rc, 0) << r.out << "\n--- the queries as rules:\n" << ReadAll(rules);
  fs::remove(rules);
}

// Static: the names engine/node/metrics.cpp writes (string literals "hasync_...").
TEST(Monitoring, EveryMetricUsedIsWrittenByMetricsCpp) {
  const std::string source =
      ReadAll(fs::path(HASYNC_SOURCE_DIR) / "engine" / "node" / "metrics.cpp");
  ASSERT_FALSE(source.empty());
  std::set<std::string> written;
  for (const std::string& name : HasyncNames(source)) {
    if (source.find("\"" + name + "\"") != std::string::npos) written.insert(name);
  }
  ASSERT_TRUE(written.contains("hasync_role")) << "metrics.cpp no longer reads as expected";
  for (const std::string& name : UsedNames()) {
    EXPECT_TRUE(written.contains(name)) << name << " is used by packaging/monitoring but "
                                        << "engine/node/metrics.cpp does not write it";
  }
}

// The real export: a primary and a standby on loopback, each /metrics scraped over HTTP.
TEST(Monitoring, EveryMetricUsedIsExportedByARealNode) {
  if (::geteuid() != 0) {
    SKIP_LOUDLY("needs root: a real node's fanotify filesystem marks need CAP_SYS_ADMIN");
  }
  PairNet net;
  net.metrics = true;
  ProcessPair pair("monitoring", "", net);
  ASSERT_GT(pair.Start(ProcessPair::kPrimary), 0);
  ASSERT_GT(pair.Start(ProcessPair::kStandby), 0);
  std::set<std::string> exported;
  for (const auto node : {ProcessPair::kPrimary, ProcessPair::kStandby}) {
    std::string body;
    ASSERT_TRUE(ProcessPair::WaitFor(
        [&] {
          httplib::Client client("127.0.0.1", pair.metrics_port(node));
          client.set_connection_timeout(1, 0);
          client.set_read_timeout(2, 0);
          auto res = client.Get("/metrics");
          if (!res || res->status != 200) return false;
          body = res->body;
          return true;
        },
        15s))
        << "no /metrics from node " << node << "; its log:\n"
        << pair.log(node);
    std::istringstream in(body);
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with("# TYPE ")) {
        exported.insert(line.substr(7, line.find(' ', 7) - 7));
      } else if (!line.empty() && line[0] != '#') {
        exported.insert(line.substr(0, line.find_first_of("{ ")));
      }
    }
  }
  ASSERT_TRUE(exported.contains("hasync_role")) << "the scrape did not parse";
  for (const std::string& name : UsedNames()) {
    EXPECT_TRUE(exported.contains(name))
        << name << " is used by packaging/monitoring but a running hasync does not export it";
  }
}

}  // namespace
}  // namespace hasync::testing
