// Static checks of the scheduler recipes in packaging/examples/ (issue 6): the files an
// administrator copies to /etc must at least parse where they are going.
//
// - every hook script parses under the shell its first line names (`sh -n` is dash on
//   Debian, stricter than bash), is executable and not writable by group or others, and
//   stops on the first error (`set -eu`);
// - every example hasync.toml passes `hasync check-config` once its /etc paths point at
//   this checkout (hook scripts) and at temporary directories (sync roots, state dir, a
//   fresh key); the recipes must pass without a single warning;
// - every systemd drop-in passes `systemd-analyze verify` applied to the unit it extends
//   (Debian's slurmctld.service when installed, a stand-in for the PBS units, which Debian
//   12 does not package), with hasync.service beside it.
//
// The Slurm recipe is exercised for real by slurm_failover_test.cpp; the PBS recipe cannot
// be here (no TORQUE or OpenPBS package on Debian 12), so these checks are all it gets.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/skip_loudly.h"

namespace hasync::testing {
namespace {

namespace fs = std::filesystem;

const fs::path kExamples = fs::path(HASYNC_SOURCE_DIR) / "packaging" / "examples";

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const fs::path& p, const std::string& text, mode_t mode) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
  ::chmod(p.c_str(), mode);
}

struct Ran {
  int rc = -1;
  std::string out;  // stdout and stderr together
};

// Runs `cmd` through /bin/sh with stdout+stderr captured in `scratch`.
Ran RunShell(const std::string& cmd, const fs::path& scratch) {
  const fs::path out = scratch / "run.out";
  int status = std::system((cmd + " >" + out.string() + " 2>&1").c_str());
  Ran r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadAll(out);
  return r;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/var/tmp/hasync-recipe-XXXXXX";
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

std::vector<fs::path> Find(const std::string& suffix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(kExamples)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Recipes, EveryHookScriptParsesIsExecutableAndStopsOnErrors) {
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  const std::vector<fs::path> scripts = Find(".sh");
  ASSERT_GE(scripts.size(), 10u) << "the recipes' hook scripts are missing from " << kExamples;
  for (const fs::path& script : scripts) {
    SCOPED_TRACE(script.string());
    const std::string text = ReadAll(script);
    const std::string first = text.substr(0, text.find('\n'));
    struct stat st {};
    ASSERT_EQ(::stat(script.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 022, 0u) << "writable by group or others: hasync runs it as root";
    std::string shell;
    if (first == "#!/bin/sh") {
      shell = "/bin/sh";
    } else if (first == "#!/bin/bash") {
      shell = "/bin/bash";
    } else {
      // A library sourced by the hooks: no #! line, and not executable by itself.
      EXPECT_EQ(first, "# shellcheck shell=sh") << "neither a #! line nor a sourced sh library";
      EXPECT_EQ(st.st_mode & 0111, 0u) << "a sourced library should not be executable";
      shell = "/bin/sh";
    }
    if (first.rfind("#!", 0) == 0) {
      EXPECT_EQ(st.st_mode & 0111, 0111u) << "a hook must be executable by everyone (0755)";
      EXPECT_TRUE(std::regex_search(text, std::regex(R"(\nset -eu(o pipefail)?\n)")))
          << "a hook must stop at the first error: set -eu";
    }
    Ran r = RunShell(shell + " -n " + script.string(), tmp.path());
    EXPECT_EQ(r.rc, 0) << shell << " -n: " << r.out;
  }
}

// The example config with its /etc paths replaced: hook scripts from this checkout, sync
// roots, state dir and key file in `dir`; the [arbiter] section's files (CA, client
// certificate and key, password) become empty stand-ins in `dir` with the example's
// names, the secret ones mode 0600 (check-config checks that they exist, and warns when a
// secret is readable by others).
std::string Localize(const std::string& toml, const fs::path& dir, const fs::path& key) {
  std::string out = toml;
  const std::pair<std::string, fs::path> hook_dirs[] = {
      {"/etc/hasync/slurm/", kExamples / "slurm" / "hooks"},
      {"/etc/hasync/pbs/", kExamples / "pbs" / "hooks"},
      {"/etc/hasync/hooks/", kExamples / "hooks"},
  };
  for (const auto& [from, to] : hook_dirs) {
    for (size_t at = out.find(from); at != std::string::npos; at = out.find(from, at)) {
      out.replace(at, from.size(), to.string() + "/");
      at += to.string().size() + 1;
    }
  }
  const std::regex arbiter_file(R"re(^(ca_file|cert_file|key_file|password_file) = "([^"]*)"$)re");
  std::istringstream in(out);
  std::string line, result, section;
  int roots = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.front() == '[') section = line;
    std::smatch m;
    if (line.rfind("roots = [", 0) == 0) {
      // As many temporary roots as the example names.
      std::string list;
      const auto quoted = std::count(line.begin(), line.end(), '"') / 2;
      for (long i = 0; i < quoted; ++i) {
        fs::path root = dir / ("root" + std::to_string(roots++));
        fs::create_directories(root);
        list += (list.empty() ? "\"" : ", \"") + root.string() + "\"";
      }
      line = "roots = [" + list + "]";
    } else if (section == "[sync]" &&
               (line.rfind("state_dir = ", 0) == 0 || line.rfind("key_file = ", 0) == 0)) {
      continue;
    } else if (section == "[arbiter]" && std::regex_match(line, m, arbiter_file)) {
      const fs::path stand_in = dir / ("arbiter-" + fs::path(m[2].str()).filename().string());
      const bool secret = m[1] == "key_file" || m[1] == "password_file";
      WriteAll(stand_in, secret ? "secret\n" : "", secret ? 0600 : 0644);
      line = m[1].str() + " = \"" + stand_in.string() + "\"";
    }
    result += line + "\n";
    if (line == "[sync]") {
      result += "state_dir = \"" + (dir / "state").string() + "\"\n";
      result += "key_file = \"" + key.string() + "\"\n";
    }
  }
  return result;
}

TEST(Recipes, EveryExampleConfigPassesCheckConfig) {
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  const fs::path key = tmp.path() / "sync.key";
  ASSERT_EQ(RunShell(std::string(HASYNC_BIN) + " keygen " + key.string(), tmp.path()).rc, 0);
  const std::vector<fs::path> configs = Find(".toml");
  ASSERT_GE(configs.size(), 3u) << "expected the generic example and the Slurm and PBS recipes";
  for (const fs::path& config : configs) {
    SCOPED_TRACE(config.string());
    const fs::path dir = tmp.path() / config.parent_path().filename();
    fs::create_directories(dir);
    const std::string text = Localize(ReadAll(config), dir, key);
    const fs::path local = dir / "hasync.toml";
    WriteAll(local, text, 0600);
    const fs::path err = dir / "stderr";
    Ran r = RunShell(
        std::string(HASYNC_BIN) + " check-config -c " + local.string() + " 2>" + err.string(), dir);
    const std::string warnings = ReadAll(err);
    EXPECT_EQ(r.rc, 0) << warnings << "\n--- localized config:\n" << text;
    if (config.parent_path() != kExamples) {
      // A recipe sets a probe and either fence and quorum_check or an arbiter: nothing to
      // warn about.
      EXPECT_EQ(warnings, "") << "a recipe must pass check-config without warnings";
    }
  }
}

// `systemd-analyze verify UNIT` with SYSTEMD_UNIT_PATH=`units`: it loads the unit's
// drop-ins from there, and prints a line for every unknown key or bad value.
void VerifyUnit(const fs::path& units, const std::string& unit, const fs::path& scratch) {
  Ran r = RunShell("SYSTEMD_UNIT_PATH=" + units.string() + ": systemd-analyze verify --man=no " +
                       (units / unit).string(),
                   scratch);
  EXPECT_EQ(r.rc, 0) << unit << ": " << r.out;
  EXPECT_EQ(r.out, "") << unit << ": systemd-analyze printed warnings";
}

// Copies `dropin` into units/<unit>.d/, with the installed hook paths pointed at this
// checkout (verify checks that ExecStartPre= names an executable).
void InstallDropIn(const fs::path& dropin, const fs::path& units, const std::string& unit) {
  std::string text = ReadAll(dropin);
  const std::string from = "/etc/hasync/hooks/";
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
    text.replace(at, from.size(), (kExamples / "hooks").string() + "/");
  }
  fs::create_directories(units / (unit + ".d"));
  WriteAll(units / (unit + ".d") / dropin.filename(), text, 0644);
}

void InstallHasyncUnit(const fs::path& units) {
  std::string unit = ReadAll(fs::path(HASYNC_SOURCE_DIR) / "packaging" / "hasync.service");
  const std::string from = "/usr/sbin/hasync";
  for (size_t at = unit.find(from); at != std::string::npos; at = unit.find(from, at)) {
    unit.replace(at, from.size(), HASYNC_BIN);
  }
  WriteAll(units / "hasync.service", unit, 0644);
}

TEST(Recipes, TheSlurmDropInsPassSystemdAnalyzeVerify) {
  if (std::system("command -v systemd-analyze >/dev/null 2>&1") != 0) {
    SKIP_LOUDLY("systemd-analyze is not installed (Debian package systemd)");
  }
  const fs::path debian_unit = "/lib/systemd/system/slurmctld.service";
  if (!fs::exists(debian_unit)) {
    SKIP_LOUDLY(
        "Debian's slurmctld.service is not installed (package slurmctld; "
        "scripts/install-deps.sh installs it)");
  }
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  const fs::path units = tmp.path() / "units";
  fs::create_directories(units);
  fs::copy_file(debian_unit, units / "slurmctld.service");
  InstallHasyncUnit(units);
  InstallDropIn(kExamples / "slurm" / "slurmctld.service.d" / "hasync.conf", units,
                "slurmctld.service");
  InstallDropIn(kExamples / "slurm" / "hasync.service.d" / "slurm.conf", units, "hasync.service");
  VerifyUnit(units, "slurmctld.service", tmp.path());
  VerifyUnit(units, "hasync.service", tmp.path());
}

TEST(Recipes, ThePbsDropInsPassSystemdAnalyzeVerify) {
  if (std::system("command -v systemd-analyze >/dev/null 2>&1") != 0) {
    SKIP_LOUDLY("systemd-analyze is not installed (Debian package systemd)");
  }
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  const fs::path units = tmp.path() / "units";
  fs::create_directories(units);
  InstallHasyncUnit(units);
  // Debian 12 packages neither TORQUE nor OpenPBS: stand-ins with the units' names carry
  // the drop-in (what is checked is the drop-in's own text).
  for (const std::string unit : {"pbs_server.service", "pbs.service"}) {
    WriteAll(units / unit,
             "[Unit]\nDescription=stand-in for " + unit +
                 "\n[Service]\nType=forking\nExecStart=/bin/true\n",
             0644);
    InstallDropIn(kExamples / "pbs" / "pbs_server.service.d" / "hasync.conf", units, unit);
    VerifyUnit(units, unit, tmp.path());
  }
  InstallDropIn(kExamples / "pbs" / "hasync.service.d" / "pbs.conf", units, "hasync.service");
  VerifyUnit(units, "hasync.service", tmp.path());
}

}  // namespace
}  // namespace hasync::testing
