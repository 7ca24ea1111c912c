// Config parsing and validation: defaults, every rule's one-line reason, warnings, and
// the filesystem seam. Real temporary directories stand in for /etc and the spool.
#include "engine/config.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/cli_commands.h"
#include "tests/engine/config_fixture.h"

namespace hasync::engine {
namespace {

using ::hasync::testing::BadConfigCase;
using ::hasync::testing::ConfigTree;
using ::hasync::testing::GoodDoc;
using ::hasync::testing::Q;
using ::hasync::testing::TomlDoc;
using ::hasync::testing::WriteFile;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kOrigin = "/etc/hasync/hasync.toml";

Result<Config> Parse(const TomlDoc& d) { return ParseConfig(d.Render(), kOrigin); }

// The message of a failed parse, checked to be one line that names the file.
std::string ErrorOf(const Result<Config>& r) {
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  const std::string& m = r.status().message();
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_THAT(m, ::testing::StartsWith("config " + std::string(kOrigin)));
  return m;
}

// Tests in this file can assume nothing else in the default config draws an error.
TEST(Config, GoodConfigParsesWithDefaultsApplied) {
  ConfigTree t;
  Result<Config> r = Parse(GoodDoc(t));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Config& c = *r;
  const Config defaults;
  EXPECT_EQ(c.origin, kOrigin);
  EXPECT_EQ(c.node.name, "mu01");
  EXPECT_EQ(c.node.listen, (HostPort{"10.0.0.1", 7460, false}));
  EXPECT_EQ(c.peer.name, "mu02");
  EXPECT_EQ(c.peer.address.ToString(), "10.0.0.2:7460");
  EXPECT_EQ(c.sync.roots, std::vector<std::string>{t.spool()});
  EXPECT_EQ(c.sync.state_dir, t.state());
  EXPECT_EQ(c.sync.key_file, t.key());
  EXPECT_EQ(c.failover.window_ms, 10'000);
  EXPECT_EQ(c.failover.beat_ms, 250);
  EXPECT_EQ(c.failover.lease_ms, 6'000);
  EXPECT_EQ(c.failover.min_failover_interval_ms, defaults.failover.min_failover_interval_ms);
  EXPECT_FALSE(c.failover.promote_on_silence_unguarded);
  EXPECT_TRUE(c.probe.command.empty());
  EXPECT_EQ(c.probe.interval_ms, 2'000);
  EXPECT_EQ(c.probe.timeout_ms, 1'000);
  EXPECT_FALSE(c.hooks.fence.configured());
  EXPECT_FALSE(c.hooks.quorum_check.configured());
  EXPECT_EQ(c.hooks.on_demote.timeout_ms, defaults.hooks.on_demote.timeout_ms);
  EXPECT_EQ(c.transport.mode, TransportMode::kTls);
  EXPECT_EQ(c.transport.data_streams, 2u);
  EXPECT_EQ(c.sync.group_commit, GroupCommit::kFsync);
  EXPECT_EQ(c.limits.journal_memory_bytes, defaults.limits.journal_memory_bytes);
  EXPECT_EQ(c.limits.max_batch_bytes, defaults.limits.max_batch_bytes);
  EXPECT_EQ(c.limits.max_batch_files, defaults.limits.max_batch_files);
  EXPECT_EQ(c.limits.max_queued_bytes, defaults.limits.max_queued_bytes);
  EXPECT_TRUE(c.metrics.enabled);
  EXPECT_EQ(c.metrics.listen.ToString(), "127.0.0.1:9469");
  EXPECT_EQ(c.log.level, LogLevel::kInfo);
  EXPECT_EQ(c.lease_margin_ms(), kLeaseMarginMinMs);
}

TEST(Config, EveryKeyIsReadWhenSet) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("node", "listen", Q("[::]:7000"))
      .Set("peer", "address", Q("[fd00::2]:7001"))
      .Set("sync", "roots", "[" + Q(t.spool() + "/") + ", " + Q(t.other()) + "]")
      .Set("failover", "window_ms", "20_000")
      .Set("failover", "beat_ms", "500")
      .Set("failover", "lease_ms", "12_000")
      .Set("failover", "min_failover_interval_ms", "0")
      .Set("failover", "promote_on_silence_unguarded", "true")
      .Set("probe", "command", "[" + Q(t.hook()) + ", \"ping\"]")
      .Set("probe", "interval_ms", "3000")
      .Set("probe", "timeout_ms", "500")
      .Set("hooks.fence", "command", "[" + Q(t.hook()) + ", \"mu02\"]")
      .Set("hooks.fence", "timeout_ms", "9000")
      .Set("hooks.on_demote", "command", "[" + Q(t.hook()) + "]")
      .Set("transport", "mode", Q("plain"))
      .Set("transport", "data_streams", "4")
      .Set("transport", "splice", "false")
      .Set("sync", "group_commit", Q("syncfs"))
      .Set("limits", "journal_memory_bytes", "33554432")
      .Set("limits", "max_batch_bytes", "1048576")
      .Set("limits", "max_batch_files", "10")
      .Set("limits", "max_queued_bytes", "2097152")
      .Set("limits", "max_tracked_files", "5000")
      .Set("metrics", "enabled", "false")
      .Set("metrics", "listen", Q("[::1]:9000"))
      .Set("log", "level", Q("debug"));
  Result<Config> r = Parse(d);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Config& c = *r;
  EXPECT_EQ(c.node.listen, (HostPort{"::", 7000, true}));
  EXPECT_EQ(c.peer.address.ToString(), "[fd00::2]:7001");
  EXPECT_EQ(c.sync.roots, (std::vector<std::string>{t.spool(), t.other()}));  // slash dropped
  EXPECT_EQ(c.failover.window_ms, 20'000);
  EXPECT_EQ(c.failover.beat_ms, 500);
  EXPECT_EQ(c.failover.lease_ms, 12'000);
  EXPECT_EQ(c.failover.min_failover_interval_ms, 0);
  EXPECT_TRUE(c.failover.promote_on_silence_unguarded);
  EXPECT_EQ(c.probe.command, (std::vector<std::string>{t.hook(), "ping"}));
  EXPECT_EQ(c.probe.interval_ms, 3000);
  EXPECT_EQ(c.probe.timeout_ms, 500);
  EXPECT_EQ(c.hooks.fence.argv, (std::vector<std::string>{t.hook(), "mu02"}));
  EXPECT_EQ(c.hooks.fence.timeout_ms, 9000);
  EXPECT_TRUE(c.hooks.on_demote.configured());
  EXPECT_EQ(c.hooks.on_demote.timeout_ms, Config().hooks.on_demote.timeout_ms);
  EXPECT_EQ(c.transport.mode, TransportMode::kPlain);
  EXPECT_EQ(c.transport.data_streams, 4u);
  EXPECT_FALSE(c.transport.splice);
  EXPECT_TRUE(Config().transport.splice);
  EXPECT_EQ(c.sync.group_commit, GroupCommit::kSyncfs);
  EXPECT_EQ(c.limits.journal_memory_bytes, 33554432u);
  EXPECT_EQ(c.limits.max_batch_bytes, 1048576u);
  EXPECT_EQ(c.limits.max_batch_files, 10u);
  EXPECT_EQ(c.limits.max_queued_bytes, 2097152u);
  EXPECT_EQ(c.limits.max_tracked_files, 5000u);
  EXPECT_FALSE(c.metrics.enabled);
  EXPECT_EQ(c.metrics.listen.ToString(), "[::1]:9000");
  EXPECT_EQ(c.log.level, LogLevel::kDebug);
  EXPECT_EQ(c.lease_margin_ms(), 1000);  // max(2 x 500, 1000)
}

// ---- each kind of bad config: one line naming the key, with the reason ----------------

class BadConfig : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(BadConfig, IsRejectedWithOneLineNamingTheKey) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  GetParam().breakit(d, t);
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr(GetParam().reason));
}

INSTANTIATE_TEST_SUITE_P(Kinds, BadConfig, ::testing::ValuesIn(testing::BadConfigCases()),
                         [](const auto& p) { return p.param.name; });

TEST(Config, WindowNotGreaterThanBeatGivesTheIssuesExactSentence) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("failover", "window_ms", "200");
  EXPECT_EQ(ErrorOf(Parse(d)),
            "config /etc/hasync/hasync.toml: failover.window_ms = 200 must be "
            "greater than failover.beat_ms (250)");
  d.Set("failover", "window_ms", "500").Set("failover", "beat_ms", "500");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("window_ms = 500 must be greater than"));
}

TEST(Config, WindowMustSpanTwoBeats) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("failover", "window_ms", "900").Set("failover", "beat_ms", "500");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("failover.window_ms = 900 must be at least 2 x"));
}

TEST(Config, LeaseMarginIsTwoBeatsOrOneSecondWhicheverIsLonger) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("failover", "window_ms", "7001").Set("failover", "lease_ms", "6000");
  EXPECT_TRUE(Parse(d).ok());  // margin 1000 with 250 ms beats
  d.Set("failover", "beat_ms", "1000");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("lease_ms + margin (6000 + 2000 = 8000)"));
  d.Set("failover", "window_ms", "8001");
  EXPECT_TRUE(Parse(d).ok());
}

TEST(Config, ProbeTimeoutMustBeShorterThanInterval) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("probe", "interval_ms", "2000").Set("probe", "timeout_ms", "2000");
  EXPECT_THAT(ErrorOf(Parse(d)),
              HasSubstr("probe.timeout_ms = 2000 must be less than probe.interval_ms (2000)"));
}

TEST(Config, ProbeResultMustStayFresherThanTheWindow) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("probe", "interval_ms", "9000").Set("probe", "timeout_ms", "1000");
  d.Set("probe", "command", "[" + Q(t.hook()) + "]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("must be less than failover.window_ms (10000)"));
}

// The defaults (every 2 s, 1 s timeout) do not constrain a short window while no probe
// command is configured: nothing would go stale.
TEST(Config, ProbeTimingIsCheckedAgainstTheWindowOnlyWithAProbe) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("failover", "window_ms", "2000")
      .Set("failover", "beat_ms", "250")
      .Set("failover", "lease_ms", "900");
  auto c = Parse(d);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->probe.command.empty());
}

TEST(Config, NumbersOutsideTheirBoundsAreRejected) {
  ConfigTree t;
  struct Case {
    std::string section, key, value, reason;
  };
  const Case cases[] = {
      {"transport", "data_streams", "17", "transport.data_streams = 17 is out of range 0..16"},
      {"transport", "data_streams", "-1", "transport.data_streams = -1 is out of range 0..16"},
      {"failover", "beat_ms", "-5", "failover.beat_ms = -5 is out of range"},
      {"limits", "max_batch_files", "1000000", "limits.max_batch_files = 1000000 is out of range"},
      {"hooks.fence", "timeout_ms", "1", "hooks.fence.timeout_ms = 1 is out of range"},
  };
  for (const Case& c : cases) {
    TomlDoc d = GoodDoc(t);
    if (c.section == "hooks.fence") d.Set("hooks.fence", "command", "[" + Q(t.hook()) + "]");
    d.Set(c.section, c.key, c.value);
    EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr(c.reason)) << c.key << " = " << c.value;
  }
}

TEST(Config, BatchMustFitTheQueue) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("limits", "max_batch_bytes", "4194304").Set("limits", "max_queued_bytes", "2097152");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("limits.max_batch_bytes = 4194304 must not exceed "
                                           "limits.max_queued_bytes (2097152)"));
}

TEST(Config, AddressForms) {
  EXPECT_EQ(ParseHostPort("10.0.0.1:7460")->ToString(), "10.0.0.1:7460");
  EXPECT_EQ(ParseHostPort("mu02.cluster:7460")->host, "mu02.cluster");
  EXPECT_EQ(*ParseHostPort("[fe80::1]:1"), (HostPort{"fe80::1", 1, true}));
  EXPECT_THAT(ParseHostPort("10.0.0.1").status().message(), HasSubstr("missing port"));
  EXPECT_THAT(ParseHostPort("10.0.0.1:").status().message(), HasSubstr("missing port"));
  EXPECT_THAT(ParseHostPort(":80").status().message(), HasSubstr("missing host"));
  EXPECT_THAT(ParseHostPort("h:0").status().message(), HasSubstr("port 0 is out of range"));
  EXPECT_THAT(ParseHostPort("h:99999").status().message(),
              HasSubstr("port 99999 is out of range 1..65535"));
  EXPECT_THAT(ParseHostPort("h:8o").status().message(), HasSubstr("is not a number"));
  EXPECT_THAT(ParseHostPort("::1:80").status().message(), HasSubstr("in brackets"));
  EXPECT_THAT(ParseHostPort("[::1]").status().message(), HasSubstr("missing port"));
  EXPECT_THAT(ParseHostPort("[::1:80").status().message(), HasSubstr("missing ']'"));
  EXPECT_THAT(ParseHostPort("[10.0.0.1]:80").status().message(), HasSubstr("not an IPv6"));
  EXPECT_THAT(ParseHostPort("300.1.1.1:80").status().message(), HasSubstr("not an IPv4"));
  EXPECT_THAT(ParseHostPort("bad_host:80").status().message(), HasSubstr("not a valid host"));
}

TEST(Config, PeerMustBeAnotherNodeAtARealAddress) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("peer", "name", Q("mu01"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("peer.name = \"mu01\" must differ from node.name"));
  d = GoodDoc(t);
  d.Set("peer", "address", Q("0.0.0.0:7460"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("is a wildcard address"));
  d = GoodDoc(t);
  d.Set("peer", "address", Q("10.0.0.1:7460"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("equals node.listen"));
  d = GoodDoc(t);
  d.Set("node", "name", Q("mu 01"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("node.name = \"mu 01\" must be 1..64 characters"));
}

TEST(Config, SyncRootSpellingsOfOneDirectoryAreCaught) {
  ConfigTree t;
  std::filesystem::create_directory_symlink(t.spool(), t.root() + "/alias");
  TomlDoc d = GoodDoc(t);
  d.Set("sync", "roots", "[" + Q(t.spool()) + ", " + Q(t.root() + "/alias") + "]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("is the same directory as sync.roots[0]"));
  d.Set("sync", "roots", "[" + Q(t.spool() + "/../spool/") + ", " + Q(t.spool()) + "]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("is the same directory as"));
}

TEST(Config, NestedRootsAreRejectedInEitherOrder) {
  ConfigTree t;
  std::filesystem::create_directories(t.spool() + "/inner");
  TomlDoc d = GoodDoc(t);
  d.Set("sync", "roots", "[" + Q(t.spool() + "/inner") + ", " + Q(t.spool()) + "]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("contains sync.roots[0]"));
  // A sibling whose name merely starts with the other's is not nested.
  std::filesystem::create_directories(t.spool() + "2");
  d.Set("sync", "roots", "[" + Q(t.spool()) + ", " + Q(t.spool() + "2") + "]");
  EXPECT_TRUE(Parse(d).ok());
}

TEST(Config, SyncRootMustBeADirectoryAndNotSlash) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("sync", "roots", "[" + Q(t.key()) + "]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("is not a directory"));
  d.Set("sync", "roots", "[\"/\"]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("must not be the root directory"));
  d.Set("sync", "roots", "[]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("sync.roots must name at least one directory"));
}

TEST(Config, StateDirMustBeAbsoluteAndOutsideEverySyncRoot) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("sync", "state_dir", Q(t.spool() + "/hasync"));
  EXPECT_THAT(ErrorOf(Parse(d)),
              HasSubstr("sync.state_dir = \"" + t.spool() + "/hasync\" overlaps sync.roots[0]"));
  d.Set("sync", "state_dir", Q(t.root()));  // contains the root
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("overlaps sync.roots[0]"));
  d.Set("sync", "state_dir", Q("var/lib/hasync"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("sync.state_dir = \"var/lib/hasync\" must be an "
                                           "absolute path"));
}

TEST(Config, UnknownSectionsAndKeysAreErrorsWithSuggestions) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("failovr", "window_ms", "10000");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("unknown key failovr (did you mean failover?)"));
  d = GoodDoc(t);
  d.Set("hooks.fence", "command", "[" + Q(t.hook()) + "]").Set("hooks.fence", "timeout", "5");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("unknown key hooks.fence.timeout (did you mean "
                                           "hooks.fence.timeout_ms?)"));
  d = GoodDoc(t);
  d.Set("hooks.fencing", "command", "[" + Q(t.hook()) + "]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("unknown key hooks.fencing"));
  d = GoodDoc(t);
  d.Set("node", "colour", Q("blue"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("unknown key node.colour"));
  EXPECT_THAT(ErrorOf(Parse(d)), Not(HasSubstr("did you mean")));
}

TEST(Config, FirstUnknownKeyInFileOrderIsReported) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("node", "zzz", "1").Set("transport", "aaa", "1");  // zzz comes first in the file
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("unknown key node.zzz"));
}

TEST(Config, WrongTypesNameTheExpectedType) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("failover", "promote_on_silence_unguarded", Q("yes"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("failover.promote_on_silence_unguarded must be a "
                                           "boolean (true or false), not a string"));
  d = GoodDoc(t);
  d.Set("failover", "window_ms", "10000.5");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("must be an integer, not a floating-point number"));
  d = GoodDoc(t);
  d.Set("sync", "roots", Q(t.spool()));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("sync.roots must be an array of absolute paths"));
  // A section given as a plain value, and a hook given as a string.
  EXPECT_THAT(ErrorOf(ParseConfig("log = 3\n", kOrigin)), HasSubstr("log must be a table"));
  EXPECT_THAT(ErrorOf(ParseConfig("[hooks]\nfence = \"/bin/true\"\n", kOrigin)),
              HasSubstr("hooks.fence must be a table with command and timeout_ms"));
}

TEST(Config, HookCommandIsAnArgvOfAnAbsoluteExecutable) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("hooks.fence", "command", Q(t.hook() + " mu02"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("hooks.fence.command must be an array of strings "
                                           "(argv"));
  d.Set("hooks.fence", "command", "[]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("hooks.fence.command must not be empty"));
  d.Set("hooks.fence", "command", "[" + Q(t.root() + "/hooks/missing") + "]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("/hooks/missing\" does not exist"));
  WriteFile(t.root() + "/hooks/noexec.sh", "#!/bin/sh\n", 0644);
  d.Set("hooks.fence", "command", "[" + Q(t.root() + "/hooks/noexec.sh") + "]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("is not executable (mode 0644)"));
  d.Set("hooks.fence", "command", "[" + Q(t.root() + "/hooks") + "]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("is not a regular file"));
  d.Set("hooks.fence", "command", "[" + Q(t.hook()) + ", 3]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("hooks.fence.command[1] must be a string"));
  d = GoodDoc(t);
  d.Set("hooks.on_promote", "timeout_ms", "1000");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("missing required key hooks.on_promote.command"));
  d = GoodDoc(t);
  d.Set("probe", "command", "[\"scontrol\", \"ping\"]");
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("probe.command[0] = \"scontrol\" must be an absolute"));
}

TEST(Config, EnumeratedStringsListTheChoices) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("transport", "mode", Q("ssl"));
  EXPECT_THAT(ErrorOf(Parse(d)),
              HasSubstr("transport.mode = \"ssl\" must be \"tls\" or \"plain\""));
  d = GoodDoc(t);
  d.Set("sync", "group_commit", Q("fdatasync"));
  EXPECT_THAT(ErrorOf(Parse(d)),
              HasSubstr("sync.group_commit = \"fdatasync\" must be \"fsync\" or \"syncfs\""));
  d = GoodDoc(t);
  d.Set("log", "level", Q("verbose"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("log.level = \"verbose\" must be one of"));
}

TEST(Config, SyntaxErrorGivesLineAndColumnOnOneLine) {
  const std::string m = ErrorOf(ParseConfig("[node]\nname = \"mu01\nlisten = 1\n", kOrigin));
  EXPECT_THAT(m, ::testing::MatchesRegex("config /etc/hasync/hasync\\.toml:2:[0-9]+: .*"));
  EXPECT_THAT(ErrorOf(ParseConfig("[node]\nname = 1\nname = 2\n", kOrigin)),
              HasSubstr("config /etc/hasync/hasync.toml:3:"));
}

TEST(Config, ControlCharactersInValuesCannotBreakTheLine) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("node", "listen", Q("evil\\nhost"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("\"evil\\x0ahost\""));
}

TEST(Config, KeyFileProblemsNameTheKeyAndTheFile) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  ASSERT_EQ(::chmod(t.key().c_str(), 0640), 0);
  EXPECT_THAT(ErrorOf(Parse(d)),
              HasSubstr("sync.key_file: key file " + t.key() +
                        " mode 0640: must not be accessible by group or others (chmod 600)"));
  d.Set("sync", "key_file", Q(t.root() + "/absent.key"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("absent.key: No such file or directory"));
  d.Set("sync", "key_file", Q("sync.key"));
  EXPECT_THAT(ErrorOf(Parse(d)), HasSubstr("sync.key_file = \"sync.key\" must be an absolute"));
}

TEST(Config, LoadConfigReadsAFileAndNamesIt) {
  ConfigTree t;
  WriteFile(t.config(), GoodDoc(t).Render(), 0644);
  Result<Config> r = LoadConfig(t.config());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->origin, t.config());

  Result<Config> missing = LoadConfig(t.root() + "/nope.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "config " + t.root() + "/nope.toml: No such file or directory");
}

TEST(Config, WorldWritableConfigFileIsRefused) {
  ConfigTree t;
  WriteFile(t.config(), GoodDoc(t).Render(), 0666);
  Result<Config> r = LoadConfig(t.config());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("mode 0666: must not be writable by others"));
}

// ---- warnings -----------------------------------------------------------------------------

TEST(ConfigWarnings, NoGuardMeansNoPromotionOnSilence) {
  ConfigTree t;
  Result<Config> r = Parse(GoodDoc(t));
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(ConfigWarnings(*r),
              ::testing::Contains(HasSubstr("the standby will never promote on silence")));
}

TEST(ConfigWarnings, UnguardedPromotionWarnsOfTwoPrimaries) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("failover", "promote_on_silence_unguarded", "true");
  Result<Config> r = Parse(d);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(ConfigWarnings(*r), ::testing::Contains(HasSubstr("gives two primaries")));
  d.Set("hooks.fence", "command", "[" + Q(t.hook()) + "]");
  r = Parse(d);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(ConfigWarnings(*r), ::testing::Contains(HasSubstr("has no effect")));
}

TEST(ConfigWarnings, PlainTransportWarnsUnencrypted) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("transport", "mode", Q("plain"));
  Result<Config> r = Parse(d);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(ConfigWarnings(*r), ::testing::Contains(HasSubstr("unencrypted")));
}

TEST(ConfigWarnings, GuardedConfigWithProbeHasNoWarnings) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("hooks.fence", "command", "[" + Q(t.hook()) + "]")
      .Set("hooks.quorum_check", "command", "[" + Q(t.hook()) + "]")
      .Set("probe", "command", "[" + Q(t.hook()) + "]");
  Result<Config> r = Parse(d);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_THAT(ConfigWarnings(*r), ::testing::IsEmpty());
}

TEST(ConfigWarnings, QuorumWithoutFenceWarnsWhenDemotionCanOutlastTheWindow) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("hooks.quorum_check", "command", "[" + Q(t.hook()) + "]")
      .Set("hooks.on_demote", "command", "[" + Q(t.hook()) + "]")
      .Set("hooks.on_demote", "timeout_ms", "3000");
  Result<Config> r = Parse(d);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_THAT(ConfigWarnings(*r), ::testing::Contains(HasSubstr("(11000 ms) to stop")));
  d.Set("hooks.on_demote", "timeout_ms", "1000");  // 6000 + 2000 + 1000 < 10000
  r = Parse(d);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(ConfigWarnings(*r), Not(::testing::Contains(HasSubstr("to stop its scheduler"))));
}

TEST(ConfigWarnings, HookWritableByOthersIsFlagged) {
  ConfigTree t;
  ASSERT_EQ(::chmod(t.hook().c_str(), 0777), 0);
  TomlDoc d = GoodDoc(t);
  d.Set("hooks.fence", "command", "[" + Q(t.hook()) + "]");
  Result<Config> r = Parse(d);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(ConfigWarnings(*r), ::testing::Contains(HasSubstr("is writable by group or others")));
}

// ---- the filesystem seam, and the shipped example ------------------------------------------

// Pretends every path exists as the kind its name suggests, and that every key is good:
// validation logic can then be checked against paths that do not exist on this machine.
class FakeEnv : public ConfigEnv {
 public:
  Result<PathInfo> Stat(const std::string& path) const override {
    PathInfo info;
    const bool exe =
        path.find("/bin/") != std::string::npos || path.find("/hooks/") != std::string::npos;
    info.kind = exe ? PathInfo::Kind::kRegular : PathInfo::Kind::kDirectory;
    info.mode = exe ? 0755 : 0700;
    return info;
  }
  std::string Resolve(const std::string& path) const override { return path; }
  Status CheckKeyFile(const std::string& path) const override {
    checked_key = path;
    return Status::Ok();
  }
  mutable std::string checked_key;
};

// Uncomments every "# key = value" and "# [hooks.x]" line of the shipped example (plain
// string checks: std::regex trips a GCC 12 -Wmaybe-uninitialized false positive under ASan).
bool IsCommentedSetting(std::string_view line) {
  if (!line.starts_with("# ")) return false;
  line.remove_prefix(2);
  if (line.starts_with("[hooks.")) return true;
  const size_t eq = line.find(" = ");
  if (eq == std::string_view::npos || eq == 0) return false;
  return std::all_of(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(eq),
                     [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
}

std::string UncommentExample(const std::string& text) {
  std::istringstream in(text);
  std::string out, line;
  while (std::getline(in, line)) {
    out += IsCommentedSetting(line) ? line.substr(2) : line;
    out += '\n';
  }
  return out;
}

TEST(ConfigExample, ParsesAsShipped) {
  const std::string text =
      hasync::testing::ReadFile(std::string(HASYNC_SOURCE_DIR) + "/packaging/examples/hasync.toml");
  ASSERT_FALSE(text.empty());
  FakeEnv env;
  Result<Config> r = ParseConfig(text, "example", env);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(env.checked_key, "/etc/hasync/hasync.key");
  EXPECT_EQ(r->sync.roots, std::vector<std::string>{"/var/spool/slurmctld"});
}

TEST(ConfigExample, EveryCommentedValueIsTheDefault) {
  const std::string text = UncommentExample(hasync::testing::ReadFile(
      std::string(HASYNC_SOURCE_DIR) + "/packaging/examples/hasync.toml"));
  FakeEnv env;
  Result<Config> r = ParseConfig(text, "example", env);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Config d;
  const Config& c = *r;
  EXPECT_EQ(c.sync.state_dir, d.sync.state_dir);
  EXPECT_EQ(c.sync.key_file, d.sync.key_file);
  EXPECT_EQ(c.failover.window_ms, d.failover.window_ms);
  EXPECT_EQ(c.failover.beat_ms, d.failover.beat_ms);
  EXPECT_EQ(c.failover.lease_ms, d.failover.lease_ms);
  EXPECT_EQ(c.failover.min_failover_interval_ms, d.failover.min_failover_interval_ms);
  EXPECT_EQ(c.failover.promote_on_silence_unguarded, d.failover.promote_on_silence_unguarded);
  EXPECT_EQ(c.probe.interval_ms, d.probe.interval_ms);
  EXPECT_EQ(c.probe.timeout_ms, d.probe.timeout_ms);
  EXPECT_EQ(c.hooks.promote_guard.timeout_ms, d.hooks.promote_guard.timeout_ms);
  EXPECT_EQ(c.hooks.fence.timeout_ms, d.hooks.fence.timeout_ms);
  EXPECT_EQ(c.hooks.on_promote.timeout_ms, d.hooks.on_promote.timeout_ms);
  EXPECT_EQ(c.hooks.on_demote.timeout_ms, d.hooks.on_demote.timeout_ms);
  EXPECT_EQ(c.hooks.quorum_check.timeout_ms, d.hooks.quorum_check.timeout_ms);
  EXPECT_TRUE(c.hooks.fence.configured());  // the uncommented sections took effect
  EXPECT_EQ(c.transport.mode, d.transport.mode);
  EXPECT_EQ(c.transport.data_streams, d.transport.data_streams);
  EXPECT_EQ(c.limits.journal_memory_bytes, d.limits.journal_memory_bytes);
  EXPECT_EQ(c.limits.max_batch_bytes, d.limits.max_batch_bytes);
  EXPECT_EQ(c.limits.max_batch_files, d.limits.max_batch_files);
  EXPECT_EQ(c.limits.max_queued_bytes, d.limits.max_queued_bytes);
  EXPECT_EQ(c.limits.max_tracked_files, d.limits.max_tracked_files);
  EXPECT_EQ(c.metrics.enabled, d.metrics.enabled);
  EXPECT_EQ(c.metrics.listen, d.metrics.listen);
  EXPECT_EQ(c.log.level, d.log.level);
}

// ---- the documented bounds against the loader's ------------------------------------------

// Every hook's timeout_ms has the same bounds: the example states them once for all.
std::string BoundsKey(const std::string& section, const std::string& key) {
  return section.starts_with("hooks.") ? "hooks." + key : section + "." + key;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int64_t UnitOf(std::string_view unit) {
  if (unit == "KiB") return kKiB;
  if (unit == "MiB") return kMiB;
  if (unit == "GiB") return kGiB;
  if (unit == "TiB") return kTiB;
  return 0;
}

bool IsNumberChar(char c) { return (c >= '0' && c <= '9') || c == '_' || c == ','; }

int64_t ToNumber(std::string_view digits) {
  int64_t v = 0;
  for (char c : digits) {
    if (c >= '0' && c <= '9') v = v * 10 + (c - '0');
  }
  return v;
}

// Every "A..B" (the example) or "A–B" (docs/CONFIG.md) in `text` whose ends are numbers,
// each with an optional binary unit: "64 KiB..1 GiB", "16 MiB – 64 GiB", "100–3600000".
// Plain string scanning: see IsCommentedSetting on std::regex.
std::vector<IntBounds> RangesIn(std::string_view text, std::string_view sep) {
  std::vector<IntBounds> out;
  for (size_t at = text.find(sep); at != std::string_view::npos;
       at = text.find(sep, at + sep.size())) {
    std::string_view left = Trim(text.substr(0, at));
    int64_t left_unit = 1;
    if (left.size() >= 3 && UnitOf(left.substr(left.size() - 3)) != 0) {
      left_unit = UnitOf(left.substr(left.size() - 3));
      left = Trim(left.substr(0, left.size() - 3));
    }
    size_t begin = left.size();
    while (begin > 0 && IsNumberChar(left[begin - 1])) --begin;
    std::string_view right = Trim(text.substr(at + sep.size()));
    size_t end = 0;
    while (end < right.size() && IsNumberChar(right[end])) ++end;
    if (begin == left.size() || end == 0) continue;  // not a numeric range ("A..B")
    int64_t right_unit = 1;
    if (std::string_view rest = Trim(right.substr(end));
        rest.size() >= 3 && UnitOf(rest.substr(0, 3)) != 0) {
      right_unit = UnitOf(rest.substr(0, 3));
    }
    out.push_back(
        {ToNumber(left.substr(begin)) * left_unit, ToNumber(right.substr(0, end)) * right_unit});
  }
  return out;
}

std::string Show(IntBounds b) { return std::to_string(b.min) + ".." + std::to_string(b.max); }

// The bounds the loader itself applies to `section.key`, asked of it: a value past any
// bound (INT64_MAX) in an otherwise good config is refused with "<key> = <value> is out of
// range MIN..MAX". Nothing when the loader accepts the value or refuses it for another
// reason (no bounds, not a number, an unknown key). Hook timeouts are asked of
// [hooks.fence]. No table to keep: a key added to the loader is covered as it lands.
std::optional<IntBounds> LoaderBounds(const ConfigTree& t, const std::string& section,
                                      const std::string& key) {
  const std::string s = section.starts_with("hooks.") ? "hooks.fence" : section;
  TomlDoc d = GoodDoc(t);
  if (s == "hooks.fence") d.Set(s, "command", "[" + Q(t.hook()) + "]");
  if (s == "arbiter") {  // the section's required keys, so its numbers are reached
    d.Set(s, "kind", Q("etcd")).Set(s, "endpoints", "[\"http://e1:2379\"]").Set(s, "prefix",
                                                                                  Q("/p/"));
  }
  const std::string past = std::to_string(std::numeric_limits<int64_t>::max());
  d.Set(s, key, past);
  Result<Config> r = Parse(d);
  if (r.ok()) return std::nullopt;
  const std::string& m = r.status().message();
  const std::string said = s + "." + key + " = " + past + " is out of range ";
  const size_t at = m.find(said);
  if (at == std::string::npos) return std::nullopt;
  const std::string range = m.substr(at + said.size());
  const size_t dots = range.find("..");
  if (dots == std::string::npos) return std::nullopt;
  return IntBounds{std::stoll(range.substr(0, dots)), std::stoll(range.substr(dots + 2))};
}

TEST(ConfigBounds, TheLoaderIsAskedItsOwnBounds) {
  ConfigTree t;
  std::optional<IntBounds> b = LoaderBounds(t, "limits", "max_batch_files");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(Show(*b), Show(kMaxBatchFilesBounds));
  b = LoaderBounds(t, "hooks.on_demote", "timeout_ms");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(Show(*b), Show(kHookTimeoutMsBounds));
  EXPECT_FALSE(LoaderBounds(t, "log", "level").has_value());
  EXPECT_FALSE(LoaderBounds(t, "limits", "no_such_key").has_value());
}

// packaging/examples/hasync.toml: the comment lines above a numeric setting (since the
// previous setting or table) are its description, and an "A..B" in them must be the
// loader's bounds of that key. Every numeric setting shown must state its range, except a
// hook's timeout_ms after the first (they share one).
TEST(ConfigExample, EveryDocumentedRangeIsTheLoadersBound) {
  const std::string text =
      hasync::testing::ReadFile(std::string(HASYNC_SOURCE_DIR) + "/packaging/examples/hasync.toml");
  ASSERT_FALSE(text.empty());
  ConfigTree t;
  std::istringstream in(text);
  std::string line, section, description;
  std::set<std::string> shown;
  int numeric_settings = 0;
  while (std::getline(in, line)) {
    std::string_view body = line;
    if (body.starts_with("# ")) body.remove_prefix(2);
    if (body.starts_with("[")) {  // [limits], or "# [hooks.fence]   # comment"
      section = std::string(body.substr(1, body.find(']') - 1));
      description.clear();
      continue;
    }
    const size_t eq = body.find(" = ");
    const bool setting = eq != std::string_view::npos && eq > 0 &&
                         std::all_of(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(eq),
                                     [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
    if (!setting) {
      if (!body.empty() && body != "#") description += std::string(body) + "\n";
      continue;
    }
    const std::string key(body.substr(0, eq));
    const std::string_view value = body.substr(eq + 3);
    const bool numeric = !value.empty() && value.front() >= '0' && value.front() <= '9';
    const std::vector<IntBounds> ranges = RangesIn(description, "..");
    SCOPED_TRACE(section + "." + key + ", described as:\n" + description);
    if (!numeric) {
      EXPECT_THAT(ranges, ::testing::IsEmpty()) << "a range above a key that is no number";
    } else {
      ++numeric_settings;
      const std::optional<IntBounds> bounds = LoaderBounds(t, section, key);
      if (!bounds) {
        ADD_FAILURE() << "a number the loader does not bound";
      } else {
        EXPECT_LE(ranges.size(), 1u);
        for (IntBounds r : ranges) {
          EXPECT_EQ(Show(r), Show(*bounds)) << "the example's range is not the loader's";
        }
        if (ranges.empty()) {
          EXPECT_TRUE(shown.contains(BoundsKey(section, key)))
              << "no range stated (the loader's is " << Show(*bounds) << ")";
        }
        shown.insert(BoundsKey(section, key));
      }
    }
    description.clear();
  }
  EXPECT_GE(numeric_settings, 15);
}

// docs/CONFIG.md: the bounds column of every integer key's row is the loader's bound.
TEST(ConfigDocs, EveryIntegerKeysBoundsAreTheLoaders) {
  const std::string text =
      hasync::testing::ReadFile(std::string(HASYNC_SOURCE_DIR) + "/docs/CONFIG.md");
  ASSERT_FALSE(text.empty());
  ConfigTree t;
  std::istringstream in(text);
  std::string line, section;
  int rows = 0;
  while (std::getline(in, line)) {
    std::string_view l = line;
    if (l.starts_with("### `[")) {  // ### `[limits]`, ### `[hooks.<name>]` — ...
      l.remove_prefix(6);
      section = std::string(l.substr(0, l.find(']')));
      continue;
    }
    if (!l.starts_with("| `")) continue;
    std::vector<std::string_view> cells;
    for (size_t at = 1, next; (next = l.find('|', at)) != std::string_view::npos; at = next + 1) {
      cells.push_back(Trim(l.substr(at, next - at)));
    }
    if (cells.size() < 4 || cells[1] != "integer") continue;
    const std::string key(cells[0].substr(1, cells[0].size() - 2));
    SCOPED_TRACE("docs/CONFIG.md [" + section + "] " + key + ": " + std::string(cells[3]));
    ++rows;
    const std::optional<IntBounds> bounds = LoaderBounds(t, section, key);
    ASSERT_TRUE(bounds.has_value()) << "the loader does not bound this key";
    // Notes in parentheses go first: "0 (off) – 604800000 (7 days)".
    std::string cell(cells[3]);
    for (size_t open; (open = cell.find('(')) != std::string::npos;) {
      const size_t close = cell.find(')', open);
      cell.erase(open, close == std::string::npos ? std::string::npos : close - open + 1);
    }
    const std::vector<IntBounds> ranges = RangesIn(cell, "\u2013");  // en dash
    ASSERT_EQ(ranges.size(), 1u);
    EXPECT_EQ(Show(ranges[0]), Show(*bounds)) << "the documented bounds are not the loader's";
  }
  EXPECT_GE(rows, 13);
}

// ---- check-config in process ------------------------------------------------------------

TEST(CheckConfigCommand, GoodConfigPrintsSummaryAndWarningsAndReturnsZero) {
  ConfigTree t;
  WriteFile(t.config(), GoodDoc(t).Render());
  std::ostringstream out, err;
  EXPECT_EQ(CheckConfigCommand(t.config(), out, err), kExitOk);
  EXPECT_THAT(out.str(), HasSubstr("config " + t.config() + ": OK"));
  EXPECT_THAT(out.str(), HasSubstr("node mu01 listens on 10.0.0.1:7460; peer mu02"));
  EXPECT_THAT(err.str(), HasSubstr("hasync: warning: config " + t.config() + ": neither"));
}

TEST(CheckConfigCommand, BadConfigPrintsOneLineAndReturnsTwo) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("failover", "window_ms", "200");
  WriteFile(t.config(), d.Render());
  std::ostringstream out, err;
  EXPECT_EQ(CheckConfigCommand(t.config(), out, err), kExitBadConfig);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(err.str(), "hasync: config " + t.config() +
                           ": failover.window_ms = 200 must be greater than failover.beat_ms "
                           "(250)\n");
}

}  // namespace
}  // namespace hasync::engine
