// [arbiter]: every key, the timing rules of docs/FAILOVER.md "The arbiter" with the
// reason each error gives, the warnings, and check-config's explanation of the timing.
#include <sys/stat.h>

#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/cli_commands.h"
#include "engine/config.h"
#include "tests/engine/config_fixture.h"

namespace hasync::engine {
namespace {

using ::hasync::testing::ConfigTree;
using ::hasync::testing::GoodDoc;
using ::hasync::testing::Q;
using ::hasync::testing::TomlDoc;
using ::hasync::testing::WriteFile;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kOrigin = "/etc/hasync/hasync.toml";

Result<Config> Parse(const TomlDoc& d) { return ParseConfig(d.Render(), kOrigin); }

std::string ErrorOf(const Result<Config>& r) {
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  const std::string& m = r.status().message();
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  return m;
}

// A good config with a three-member etcd arbiter over http with a user.
TomlDoc ArbiterDoc(const ConfigTree& t) {
  TomlDoc d = GoodDoc(t);
  WriteFile(t.root() + "/etcd.pw", "secret\n", 0600);
  d.Set("arbiter", "kind", Q("etcd"))
      .Set("arbiter", "endpoints",
           "[\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379\", \"http://[fd00::3]:2379\"]")
      .Set("arbiter", "prefix", Q("/hasync/slurm/"))
      .Set("arbiter", "user", Q("hasync"))
      .Set("arbiter", "password_file", Q(t.root() + "/etcd.pw"));
  return d;
}

TEST(ArbiterConfig, AbsentMeansNoArbiter) {
  ConfigTree t;
  Result<Config> r = Parse(GoodDoc(t));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->arbiter.enabled);
}

TEST(ArbiterConfig, EveryKeyIsReadWithDefaults) {
  ConfigTree t;
  Result<Config> r = Parse(ArbiterDoc(t));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Config::Arbiter& a = r->arbiter;
  EXPECT_TRUE(a.enabled);
  ASSERT_EQ(a.endpoints.size(), 3u);
  EXPECT_EQ(a.endpoints[0].ToString(), "http://10.0.0.1:2379");
  EXPECT_FALSE(a.endpoints[0].tls);
  EXPECT_EQ(a.endpoints[2].address, (HostPort{"fd00::3", 2379, true}));
  EXPECT_EQ(a.prefix, "/hasync/slurm/");
  EXPECT_EQ(a.user, "hasync");
  EXPECT_EQ(a.ttl_s, 5);
  EXPECT_EQ(a.request_timeout_ms, 1000);
  EXPECT_EQ(a.drift_ms(), 100);  // max(5000 / 100, 100)
  EXPECT_THAT(ConfigWarnings(*r), Not(Contains(HasSubstr("arbiter"))));
  // The arbiter guards a promotion on silence: no "never promote" warning.
  EXPECT_THAT(ConfigWarnings(*r), Not(Contains(HasSubstr("never promote"))));
}

TEST(ArbiterConfig, TlsNeedsACaAndCertWithKey) {
  ConfigTree t;
  TomlDoc d = ArbiterDoc(t);
  d.Set("arbiter", "endpoints", "[\"https://e1:2379\", \"https://e2:2379\", \"https://e3:2379\"]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("arbiter.ca_file is required with https://"));
  WriteFile(t.root() + "/ca.pem", "x", 0644);
  WriteFile(t.root() + "/c.pem", "x", 0644);
  WriteFile(t.root() + "/k.pem", "x", 0600);
  d.Set("arbiter", "ca_file", Q(t.root() + "/ca.pem"));
  ASSERT_TRUE(Parse(d).ok());
  d.Set("arbiter", "cert_file", Q(t.root() + "/c.pem"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("cert_file and arbiter.key_file go together"));
  d.Set("arbiter", "key_file", Q(t.root() + "/k.pem"));
  Result<Config> r = Parse(d);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->arbiter.endpoints[1].tls);
  EXPECT_EQ(r->arbiter.key_file, t.root() + "/k.pem");
  d.Set("arbiter", "key_file", Q(t.root() + "/missing.pem"));
  EXPECT_THAT(ErrorOf(Parse(d)),
              HasSubstr("arbiter.key_file = \"" + t.root() + "/missing.pem\" does not exist"));
}

struct BadArbiter {
  const char* name;
  const char* key;
  const char* value;
  const char* reason;
};

// CTest's discovered names carry the parameter: print its name, not its bytes (pointers
// that move with every run).
void PrintTo(const BadArbiter& c, std::ostream* os) { *os << c.name; }

class ArbiterBad : public ::testing::TestWithParam<BadArbiter> {};

TEST_P(ArbiterBad, GivesItsReason) {
  ConfigTree t;
  TomlDoc d = ArbiterDoc(t);
  if (std::string(GetParam().value).empty()) {
    d.Erase("arbiter", GetParam().key);
  } else {
    d.Set("arbiter", GetParam().key, GetParam().value);
  }
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr(GetParam().reason));
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, ArbiterBad,
    ::testing::Values(
        BadArbiter{"KindNotEtcd", "kind", "\"zookeeper\"", "arbiter.kind = \"zookeeper\" must be"},
        BadArbiter{"KindMissing", "kind", "", "missing required key arbiter.kind"},
        BadArbiter{"NoEndpoints", "endpoints", "[]", "arbiter.endpoints has 0 entries"},
        BadArbiter{"EndpointsMissing", "endpoints", "", "missing required key arbiter.endpoints"},
        BadArbiter{"EndpointNoScheme", "endpoints", "[\"10.0.0.1:2379\"]",
                   "arbiter.endpoints[0] = \"10.0.0.1:2379\": must start with http://"},
        BadArbiter{"EndpointPath", "endpoints", "[\"http://e1:2379/v3\"]", "must not have a path"},
        BadArbiter{"EndpointNoPort", "endpoints", "[\"http://e1\"]", "missing port"},
        BadArbiter{"EndpointTwice", "endpoints", "[\"http://e1:2379\", \"http://e1:2379\"]",
                   "is listed twice"},
        BadArbiter{"MixedSchemes", "endpoints", "[\"http://e1:2379\", \"https://e2:2379\"]",
                   "mixes http:// and https://"},
        BadArbiter{"PrefixMissing", "prefix", "", "missing required key arbiter.prefix"},
        BadArbiter{"PrefixNoTrailingSlash", "prefix", "\"/hasync/slurm\"",
                   "must start and end with '/'"},
        BadArbiter{"PrefixSpace", "prefix", "\"/has ync/\"", "must start and end with '/'"},
        BadArbiter{"UserWithoutPassword", "password_file", "",
                   "arbiter.user and arbiter.password_file go together"},
        BadArbiter{"CaOverHttp", "ca_file", "\"/etc/hostname\"", "every endpoint is http://"},
        BadArbiter{"TtlTooSmall", "ttl_s", "1", "arbiter.ttl_s = 1 is out of range 2..600"},
        BadArbiter{"TtlNotBelowWindow", "ttl_s", "10",
                   "arbiter.ttl_s = 10 (10000 ms) must be less than failover.window_ms (10000)"},
        BadArbiter{"RequestTimeoutNotBelowATHirdOfTtl", "request_timeout_ms", "1700",
                   "arbiter.request_timeout_ms = 1700 must be less than arbiter.ttl_s / 3 "
                   "(1666 ms)"},
        BadArbiter{"UnknownKey", "ttl_ms", "5000", "unknown key arbiter.ttl_ms"}),
    [](const auto& p) { return std::string(p.param.name); });

// ttl − on_demote timeout − drift must leave a beat and two request timeouts.
TEST(ArbiterConfig, TheSelfFenceMustLeaveRoomForTwoFailedRenewals) {
  ConfigTree t;
  TomlDoc d = ArbiterDoc(t);
  d.Set("hooks.on_demote", "command", "[" + Q(t.hook()) + "]");  // default timeout 30 s
  EXPECT_THAT(ErrorOf(Parse(d)),
              HasSubstr("arbiter.ttl_s = 5 too short: the primary must start stopping its "
                        "scheduler at ttl - hooks.on_demote.timeout_ms - drift (5000 - 30000 - "
                        "100 = -25100 ms)"));
  // 5000 - 2650 - 100 = 2250 = 250 + 2 x 1000: exactly enough.
  d.Set("hooks.on_demote", "timeout_ms", "2650");
  EXPECT_TRUE(Parse(d).ok());
  d.Set("hooks.on_demote", "timeout_ms", "2651");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("(250 + 2 x 1000 = 2250 ms)"));
  // A longer lease (and window) makes room for a slow on_demote.
  d.Set("failover", "window_ms", "60000").Set("arbiter", "ttl_s", "40");
  d.Set("hooks.on_demote", "timeout_ms", "30000");
  Result<Config> r = Parse(d);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->arbiter.drift_ms(), 400);  // 1 % of 40 s
}

// A primary's quorum_check blocks its loop; the self-fence deadline may pass while it runs,
// so its timeout counts against the lease like on_demote's.
TEST(ArbiterConfig, AQuorumCheckTimeoutCountsAgainstTheLease) {
  ConfigTree t;
  TomlDoc d = ArbiterDoc(t);
  d.Set("hooks.on_demote", "command", "[" + Q(t.hook()) + "]")
      .Set("hooks.on_demote", "timeout_ms", "1650")
      .Set("hooks.quorum_check", "command", "[" + Q(t.hook()) + "]")
      .Set("hooks.quorum_check", "timeout_ms", "1000");
  // 5000 - 1650 - 1000 - 100 = 2250 = 250 + 2 x 1000: exactly enough.
  Result<Config> r = Parse(d);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->arbiter_stop_ms(), 2650);
  d.Set("hooks.quorum_check", "timeout_ms", "1001");
  EXPECT_THAT(ErrorOf(Parse(d)),
              HasSubstr("ttl - hooks.on_demote.timeout_ms - hooks.quorum_check.timeout_ms - "
                        "drift (5000 - 1650 - 1001 - 100 = 2249 ms)"));
  d.Set("hooks.quorum_check", "timeout_ms", "1000");
  WriteFile(t.config(), d.Render(), 0600);
  std::ostringstream out, err;
  EXPECT_EQ(CheckConfigCommand(t.config(), out, err), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("starts stopping its scheduler 2250 ms after sending"));
  EXPECT_THAT(out.str(), HasSubstr("(ttl - on_demote timeout - quorum_check timeout 2650"));
}

TEST(ArbiterConfig, WarningsForFewMembersPlainHttpAndAReadablePassword) {
  ConfigTree t;
  TomlDoc d = ArbiterDoc(t);
  d.Set("arbiter", "endpoints", "[\"http://e1:2379\"]").Erase("arbiter", "user");
  d.Erase("arbiter", "password_file");
  Result<Config> r = Parse(d);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::vector<std::string> w = ConfigWarnings(*r);
  EXPECT_THAT(w, Contains(HasSubstr("lists 1 etcd member(s)")));
  EXPECT_THAT(w, Contains(HasSubstr("anyone who reaches etcd can delete or take the leader key")));
  TomlDoc d2 = ArbiterDoc(t);
  ASSERT_EQ(::chmod((t.root() + "/etcd.pw").c_str(), 0644), 0);
  r = Parse(d2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_THAT(ConfigWarnings(*r), Contains(HasSubstr("mode 0644 is readable by others")));
}

TEST(ArbiterConfig, CheckConfigExplainsTheTiming) {
  ConfigTree t;
  TomlDoc d = ArbiterDoc(t);
  d.Set("hooks.on_demote", "command", "[" + Q(t.hook()) + "]")
      .Set("hooks.on_demote", "timeout_ms", "1000");
  WriteFile(t.config(), d.Render(), 0600);
  std::ostringstream out, err;
  EXPECT_EQ(CheckConfigCommand(t.config(), out, err), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("arbiter: etcd http://10.0.0.1:2379, http://10.0.0.2:2379, "
                                   "http://[fd00::3]:2379 under /hasync/slurm/ as user hasync"));
  EXPECT_THAT(out.str(), HasSubstr("lease ttl 5000 ms < window 10000 ms"));
  EXPECT_THAT(out.str(), HasSubstr("starts stopping its scheduler 3900 ms after sending"));
  EXPECT_THAT(out.str(), HasSubstr("done by 4900 ms"));
}

}  // namespace
}  // namespace hasync::engine
