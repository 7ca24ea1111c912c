// The Slurm recipe of packaging/examples/slurm as an administrator meets it (issue 17):
//
// - shellcheck finds nothing in any hook script of the recipes (slurm, pbs, and the shared
//   examples/hooks), sourced libraries followed;
// - the hooks' controller_index gives 0 for the first-listed controller and 1 for the
//   second, for SlurmctldHost lines and for the older ControlMachine/BackupController
//   form, run exactly as on-promote.sh uses it (`[ "$index" -gt 0 ]`) with nothing on
//   stderr: it printed an empty string for the first controller, and every promotion there
//   logged "[: Illegal number:";
// - `hasync check-config` passes without a warning on the recipe's hasync.toml and on its
//   no-BMC variant (the [hooks.fence] section removed and the longer window the file's own
//   comment gives), and the no-BMC variant with the BMC timers does warn, which is what
//   README step 4 used to leave the administrator with.
//
// tests/system/recipe_test.cpp checks every recipe's syntax, modes and systemd drop-ins;
// tests/system/slurm_failover_test.cpp fails a real slurmctld over with these hooks.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/skip_loudly.h"

namespace hasync::testing {
namespace {

namespace fs = std::filesystem;

const fs::path kExamples = fs::path(HASYNC_SOURCE_DIR) / "packaging" / "examples";
const fs::path kSlurm = kExamples / "slurm";

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const fs::path& p, const std::string& text, mode_t mode = 0600) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
  ::chmod(p.c_str(), mode);
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/var/tmp/hasync-slurm-recipe-XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

struct Ran {
  int rc = -1;
  std::string out, err;
};

// Runs `cmd` through /bin/sh, stdout and stderr captured apart in `scratch`.
Ran RunSh(const std::string& cmd, const fs::path& scratch) {
  const fs::path out = scratch / "stdout", err = scratch / "stderr";
  const int status = std::system((cmd + " >" + out.string() + " 2>" + err.string()).c_str());
  Ran r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadAll(out);
  r.err = ReadAll(err);
  return r;
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

TEST(SlurmRecipe, ShellcheckFindsNothingInAnyRecipesHooks) {
  if (std::system("command -v shellcheck >/dev/null 2>&1") != 0) {
    SKIP_LOUDLY("shellcheck is not installed (Debian package shellcheck; scripts/install-deps.sh)");
  }
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  std::vector<std::string> scripts;
  for (const fs::path& dir : {kSlurm / "hooks", kExamples / "pbs" / "hooks", kExamples / "hooks"}) {
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() == ".sh") scripts.push_back(e.path().string());
    }
  }
  std::sort(scripts.begin(), scripts.end());
  ASSERT_GE(scripts.size(), 11u) << "hook scripts missing";
  std::string cmd = "shellcheck --external-sources";
  for (const std::string& s : scripts) cmd += " " + Quote(s);
  // From an unrelated directory: the source directives must not depend on the caller's.
  const Ran r = RunSh("cd " + Quote(tmp.path().string()) + " && " + cmd, tmp.path());
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "");
}

// controller_index of hooks/common.sh for host `host` against `slurm_conf`, used as
// on-promote.sh uses it. Prints "first", "backup #N", or exits 2 as on-promote.sh does.
Ran ControllerIndex(const std::string& slurm_conf, const std::string& host, const fs::path& dir) {
  const fs::path conf = dir / "slurm.conf";
  WriteAll(conf, slurm_conf, 0644);
  const std::string script =
      "set -eu\n"
      "SLURMHA_HOOK=on_promote\n"
      ". " +
      Quote((kSlurm / "hooks" / "common.sh").string()) +
      "\n"
      "index=$(controller_index) || exit 2\n"
      "if [ \"$index\" -gt 0 ]; then echo \"backup #$index\"; else echo first; fi\n";
  WriteAll(dir / "index.sh", script, 0644);
  return RunSh("SLURM_CONF=" + Quote(conf.string()) + " SLURMHA_HOST=" + Quote(host) +
                   " SLURMHA_CONTROL=direct /bin/sh " + Quote((dir / "index.sh").string()),
               dir);
}

TEST(SlurmRecipe, ControllerIndexIsZeroForTheFirstListedHostAndOneForTheSecond) {
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  struct Case {
    std::string what, conf, host, out;
    int rc;
  };
  const std::string ctld =
      "# the recipe's form\n"
      "ClusterName=hpc\n"
      "SlurmctldHost=mu01(10.0.0.1)\n"
      "SlurmctldHost=mu02(10.0.0.2)   # backup\n"
      "StateSaveLocation=/var/spool/slurmctld\n";
  const std::string swapped =
      "SlurmctldHost=mu02.cluster.example(10.0.0.2)\n"
      "slurmctldhost=mu01\n";
  const std::string old_form =
      "ControlMachine=mu01\n"
      "ControlAddr=10.0.0.1\n"
      "BackupController=mu02\n"
      "BackupAddr=10.0.0.2\n";
  const std::string both = old_form + "SlurmctldHost=mu02\nSlurmctldHost=mu01\n";
  const Case cases[] = {
      {"SlurmctldHost, this host first", ctld, "mu01", "first\n", 0},
      {"SlurmctldHost, this host second", ctld, "mu02", "backup #1\n", 0},
      {"SlurmctldHost, not listed", ctld, "mu03", "", 2},
      {"long name and lower-case key, second", swapped, "mu01", "backup #1\n", 0},
      {"long name and lower-case key, first", swapped, "mu02", "first\n", 0},
      {"ControlMachine", old_form, "mu01", "first\n", 0},
      {"BackupController", old_form, "mu02", "backup #1\n", 0},
      {"old form, not listed", old_form, "mu03", "", 2},
      {"both forms: SlurmctldHost wins, first", both, "mu02", "first\n", 0},
      {"both forms: SlurmctldHost wins, second", both, "mu01", "backup #1\n", 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what + " (host " + c.host + ")");
    const Ran r = ControllerIndex(c.conf, c.host, tmp.path());
    EXPECT_EQ(r.rc, c.rc) << r.out << r.err;
    EXPECT_EQ(r.out, c.out);
    if (c.rc == 0) {
      EXPECT_EQ(r.err, "") << "nothing on stderr (the bug: \"[: Illegal number:\")";
    } else {
      EXPECT_NE(r.err.find(c.host + " is not a SlurmctldHost"), std::string::npos) << r.err;
    }
  }
}

// ---- check-config on the recipe and its no-BMC variant ----------------------------------

// The recipe's hasync.toml with its /etc paths pointed at this checkout (hooks) and at
// `dir` (sync root, state dir, the key `key`).
std::string Localize(std::string toml, const fs::path& dir, const fs::path& key) {
  const std::pair<std::string, fs::path> hook_dirs[] = {
      {"/etc/hasync/slurm/", kSlurm / "hooks"},
      {"/etc/hasync/hooks/", kExamples / "hooks"},
  };
  for (const auto& [from, to] : hook_dirs) {
    for (size_t at = toml.find(from); at != std::string::npos; at = toml.find(from, at)) {
      toml.replace(at, from.size(), to.string() + "/");
      at += to.string().size() + 1;
    }
  }
  fs::create_directories(dir / "spool");
  std::istringstream in(toml);
  std::string line, out, section;
  while (std::getline(in, line)) {
    if (line.starts_with("[")) section = line;
    if (section != "[sync]") {
      // [arbiter]'s key_file is the etcd client key, not the sync key.
    } else if (line.starts_with("roots = ")) {
      line = "roots = [\"" + (dir / "spool").string() + "\"]";
    } else if (line.starts_with("state_dir = ")) {
      line = "state_dir = \"" + (dir / "state").string() + "\"";
    } else if (line.starts_with("key_file = ")) {
      line = "key_file = \"" + key.string() + "\"";
    }
    out += line + "\n";
  }
  return out;
}

// The no-BMC variant as README step 4 tells the administrator to make it: the
// [hooks.fence] table removed (up to the next table), and the window line replaced by
// the commented one marked "without [hooks.fence]". `window` empty: keep the BMC window.
std::string NoBmcVariant(const std::string& toml, std::string* window) {
  std::istringstream in(toml);
  std::string line, out, no_bmc_window;
  bool in_fence = false;
  std::vector<std::string> lines;
  while (std::getline(in, line)) {
    if (line.starts_with("[")) in_fence = line == "[hooks.fence]";
    if (in_fence) continue;
    if (line.starts_with("# window_ms = ") &&
        line.find("without [hooks.fence]") != std::string::npos) {
      no_bmc_window = line.substr(2);
    }
    lines.push_back(line);
  }
  if (window != nullptr) *window = no_bmc_window;
  for (std::string& l : lines) {
    if (window != nullptr && !no_bmc_window.empty() && l.starts_with("window_ms = ")) {
      l = no_bmc_window;
    }
    out += l + "\n";
  }
  return out;
}

Ran CheckConfig(const std::string& toml, const fs::path& dir, const std::string& name) {
  const fs::path config = dir / name;
  WriteAll(config, toml);
  return RunSh(std::string(HASYNC_BIN) + " check-config -c " + Quote(config.string()), dir);
}

TEST(SlurmRecipe, CheckConfigWarnsAboutNothingWithOrWithoutABmc) {
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  const fs::path key = tmp.path() / "sync.key";
  ASSERT_EQ(RunSh(std::string(HASYNC_BIN) + " keygen " + Quote(key.string()), tmp.path()).rc, 0);
  const std::string recipe = Localize(ReadAll(kSlurm / "hasync.toml"), tmp.path(), key);
  ASSERT_NE(recipe.find("\n[hooks.fence]\n"), std::string::npos);

  Ran r = CheckConfig(recipe, tmp.path(), "with-bmc.toml");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find(": OK"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "") << "the recipe as shipped must pass without a warning";

  std::string window;
  const std::string no_bmc = NoBmcVariant(recipe, &window);
  ASSERT_FALSE(window.empty()) << "hasync.toml gives no '# window_ms = ... without "
                                  "[hooks.fence]' line for README step 4";
  ASSERT_EQ(no_bmc.find("\n[hooks.fence]\n"), std::string::npos);
  ASSERT_NE(no_bmc.find("\n" + window + "\n"), std::string::npos);
  r = CheckConfig(no_bmc, tmp.path(), "no-bmc.toml");
  SCOPED_TRACE("no-BMC variant with " + window);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.err, "") << "the no-BMC variant must pass without a warning";

  // What step 4 used to say: drop [hooks.fence], keep the timers. That warns; this is
  // the test's proof that it can tell.
  r = CheckConfig(NoBmcVariant(recipe, nullptr), tmp.path(), "no-bmc-old-timers.toml");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("without hooks.fence an isolated primary"), std::string::npos) << r.err;
}

// The arbiter variant: no BMC, no tie-breaker, an etcd cluster (its TLS files and password
// stand in as files of the right modes).
TEST(SlurmRecipe, TheArbiterVariantPassesCheckConfigWithoutAWarning) {
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  const fs::path key = tmp.path() / "sync.key";
  ASSERT_EQ(RunSh(std::string(HASYNC_BIN) + " keygen " + Quote(key.string()), tmp.path()).rc, 0);
  std::string toml = ReadAll(kSlurm / "hasync-arbiter.toml");
  ASSERT_EQ(toml.find("[hooks.fence]\n"), std::string::npos);
  ASSERT_EQ(toml.find("[hooks.quorum_check]\n"), std::string::npos);
  const std::string etc = "/etc/hasync/etcd";
  for (size_t at = toml.find(etc); at != std::string::npos; at = toml.find(etc, at)) {
    toml.replace(at, etc.size(), (tmp.path() / "etcd").string());
    at += (tmp.path() / "etcd").string().size();
  }
  for (const char* f : {"etcd-ca.pem", "etcd-client.pem", "etcd-client.key", "etcd.password"}) {
    WriteAll(tmp.path() / f, "x\n");
    ASSERT_EQ(::chmod((tmp.path() / f).c_str(), 0600), 0);
  }
  Ran r = CheckConfig(Localize(toml, tmp.path(), key), tmp.path(), "arbiter.toml");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find(": OK"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("arbiter timing: lease ttl 40000 ms < window 50000 ms"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.err, "") << "the arbiter variant must pass without a warning";
}

}  // namespace
}  // namespace hasync::testing
