// Runs the real `hasync` executable (path from the build, HASYNC_BIN) and checks what an
// admin sees: exit codes, stdout, and that an error is exactly one line on stderr.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/cli_commands.h"
#include "engine/node/history.h"
#include "tests/engine/config_fixture.h"

extern char** environ;

namespace hasync {
namespace {

using ::hasync::testing::BadConfigCase;
using ::hasync::testing::ConfigTree;
using ::hasync::testing::GoodDoc;
using ::hasync::testing::ReadFile;
using ::hasync::testing::TempDir;
using ::hasync::testing::TomlDoc;
using ::hasync::testing::WriteFile;
using ::testing::HasSubstr;

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  size_t err_lines() const { return static_cast<size_t>(std::count(err.begin(), err.end(), '\n')); }
};

// Runs hasync with `args`, stdout and stderr captured through files (no pipe to drain).
RunResult RunHasync(const std::vector<std::string>& args) {
  TempDir io;
  const std::string out_path = io / "out", err_path = io / "err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> argv_s = {HASYNC_BIN};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, HASYNC_BIN, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  RunResult r;
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << HASYNC_BIN << ": " << std::strerror(rc);
    return r;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  EXPECT_TRUE(WIFEXITED(status)) << "hasync died from a signal";
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  return r;
}

TEST(HasyncCli, VersionPrintsTheProjectVersion) {
  RunResult r = RunHasync({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "hasync " HASYNC_EXPECTED_VERSION "\n");
}

TEST(HasyncCli, KeygenWritesA0600KeyAndRefusesToOverwriteIt) {
  TempDir dir;
  const std::string key = dir / "sync.key";
  RunResult first = RunHasync({"keygen", key});
  EXPECT_EQ(first.exit_code, engine::kExitOk) << first.err;
  EXPECT_THAT(first.out, HasSubstr("wrote a 256-bit key to " + key));
  struct stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  const std::string original = ReadFile(key);
  EXPECT_THAT(original, ::testing::MatchesRegex("[0-9a-f]{64}\n"));

  RunResult second = RunHasync({"keygen", key});
  EXPECT_EQ(second.exit_code, engine::kExitAlreadyExists);
  EXPECT_EQ(second.err_lines(), 1u) << second.err;
  EXPECT_THAT(second.err, HasSubstr("already exists: refusing to overwrite it"));
  EXPECT_EQ(ReadFile(key), original);
}

TEST(HasyncCli, KeygenIntoMissingDirectoryFails) {
  TempDir dir;
  RunResult r = RunHasync({"keygen", dir / "no/dir/key"});
  EXPECT_EQ(r.exit_code, engine::kExitFailure);
  EXPECT_EQ(r.err_lines(), 1u) << r.err;
}

TEST(HasyncCli, CheckConfigOnAGoodConfigExitsZeroWithASummary) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("hooks.quorum_check", "command", "[\"" + t.hook() + "\"]");
  d.Set("hooks.fence", "command", "[\"" + t.hook() + "\"]");
  d.Set("probe", "command", "[\"" + t.hook() + "\"]");
  WriteFile(t.config(), d.Render());
  RunResult r = RunHasync({"check-config", "-c", t.config()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("config " + t.config() + ": OK"));
  EXPECT_THAT(r.out, HasSubstr("hooks: fence, quorum_check"));
  EXPECT_EQ(r.err, "");  // a guarded config with a probe draws no warning
}

TEST(HasyncCli, CheckConfigWarnsButSucceedsOnPlainUnguardedConfig) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  d.Set("transport", "mode", "\"plain\"").Set("failover", "promote_on_silence_unguarded", "true");
  WriteFile(t.config(), d.Render());
  RunResult r = RunHasync({"check-config", "--config", t.config()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("warning: config " + t.config() +
                               ": failover.promote_on_silence_unguarded = true"));
  EXPECT_THAT(r.err, HasSubstr("warning: config " + t.config() + ": transport.mode = \"plain\""));
}

class CheckConfigBad : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(CheckConfigBad, ExitsTwoWithExactlyOneLineOnStderr) {
  ConfigTree t;
  TomlDoc d = GoodDoc(t);
  GetParam().breakit(d, t);
  WriteFile(t.config(), d.Render());
  RunResult r = RunHasync({"check-config", "-c", t.config()});
  EXPECT_EQ(r.exit_code, engine::kExitBadConfig);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err_lines(), 1u) << r.err;
  EXPECT_THAT(r.err, ::testing::StartsWith("hasync: config " + t.config() + ": "));
  EXPECT_THAT(r.err, HasSubstr(GetParam().reason));
}

INSTANTIATE_TEST_SUITE_P(Kinds, CheckConfigBad, ::testing::ValuesIn(testing::BadConfigCases()),
                         [](const auto& p) { return p.param.name; });

TEST(HasyncCli, CheckConfigOnAMissingFileExitsTwo) {
  TempDir dir;
  RunResult r = RunHasync({"check-config", "-c", dir / "absent.toml"});
  EXPECT_EQ(r.exit_code, engine::kExitBadConfig);
  EXPECT_EQ(r.err, "hasync: config " + (dir / "absent.toml") + ": No such file or directory\n");
}

TEST(HasyncCli, CheckConfigOnASyntaxErrorExitsTwoWithOneLine) {
  ConfigTree t;
  WriteFile(t.config(), "[node\nname = 1\n");
  RunResult r = RunHasync({"check-config", "-c", t.config()});
  EXPECT_EQ(r.exit_code, engine::kExitBadConfig);
  EXPECT_EQ(r.err_lines(), 1u) << r.err;
  EXPECT_THAT(r.err, HasSubstr("config " + t.config() + ":1:"));
}

// status, switchover and verify talk to a running node; with none they fail on one line that
// says so (the running cases are in tests/integration/failover_test.cpp).
TEST(HasyncCli, StatusAndSwitchoverWithoutARunningNodeSayNoNodeAnswers) {
  ConfigTree t;
  WriteFile(t.config(), GoodDoc(t).Render());
  const std::vector<std::vector<std::string>> commands = {
      {"status", "--json", "-c", t.config()},
      {"switchover", "--timeout-ms", "5000", "-c", t.config()},
      {"verify", "--json", "-c", t.config()},
  };
  for (const auto& args : commands) {
    RunResult r = RunHasync(args);
    EXPECT_EQ(r.exit_code, engine::kExitFailure) << args[0];
    EXPECT_EQ(r.err_lines(), 1u) << r.err;
    EXPECT_THAT(r.err, HasSubstr("no hasync node answers on ")) << args[0];
  }
}

// history reads <state_dir>/history: it works with no node running.
TEST(HasyncCli, HistoryPrintsTheRoleChangesOfTheStateDir) {
  ConfigTree t;
  WriteFile(t.config(), GoodDoc(t).Render());
  RunResult none = RunHasync({"history", "-c", t.config()});
  EXPECT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(none.out, "no role change recorded in " + t.state() + "\n");

  std::filesystem::create_directories(t.state());
  ASSERT_TRUE(engine::AppendHistory(t.state(), {1'764'255'600'123, engine::NodeRole::kPrimary, 1,
                                                "first start (--initial-role)"})
                  .ok());
  ASSERT_TRUE(engine::AppendHistory(t.state(), {1'764'255'661'007, engine::NodeRole::kStandby, 2,
                                                "demoted: peer holds epoch 2"})
                  .ok());
  RunResult r = RunHasync({"history", "-c", t.config()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "2025-11-27T15:00:00.123Z  primary  epoch 1     first start (--initial-role)\n"
            "2025-11-27T15:01:01.007Z  standby  epoch 2     demoted: peer holds epoch 2\n");
  EXPECT_EQ(r.err, "");
  RunResult j = RunHasync({"history", "--json", "-c", t.config()});
  EXPECT_EQ(j.exit_code, 0) << j.err;
  EXPECT_THAT(j.out, HasSubstr("\"role\": \"standby\""));
  EXPECT_THAT(j.out, HasSubstr("\"unix_ms\": 1764255661007"));
  EXPECT_THAT(j.out, HasSubstr("\"skipped_lines\": 0"));
}

TEST(HasyncCli, BadCommandLineIsAUsageErrorOnOneLine) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{},
                                             {"frobnicate"},
                                             {"status", "--jsno"},
                                             {"keygen"},
                                             {"switchover", "--timeout-ms", "0"}}) {
    RunResult r = RunHasync(args);
    EXPECT_EQ(r.exit_code, engine::kExitUsage) << ::testing::PrintToString(args);
    EXPECT_EQ(r.err_lines(), 1u) << r.err;
    EXPECT_THAT(r.err, HasSubstr("(see hasync --help)"));
  }
}

TEST(HasyncCli, HelpListsEverySubcommand) {
  RunResult r = RunHasync({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* sub :
       {"keygen", "check-config", "run", "status", "switchover", "history", "verify"}) {
    EXPECT_THAT(r.out, HasSubstr(sub));
  }
}

}  // namespace
}  // namespace hasync
