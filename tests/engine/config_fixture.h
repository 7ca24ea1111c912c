// Test fixture shared by tests/engine and tests/app: a temporary tree holding what a
// valid config points at (a sync root, a key file made by keygen, an executable hook),
// a small TOML builder, and the list of bad-config kinds with the reason each must give.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "engine/keyfile.h"

namespace hasync::testing {

// A directory from mkdtemp, removed with everything in it at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hasync-test-XXXXXX").string();
    char* made = ::mkdtemp(tmpl.data());
    HASYNC_ASSERT(made != nullptr);
    path_ = made;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);  // best effort: a leftover tmp dir is harmless
  }
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view rel) const { return path_ + "/" + std::string(rel); }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, std::string_view content, mode_t mode = 0600) {
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << content;
  }
  HASYNC_ASSERT(::chmod(path.c_str(), mode) == 0);
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// What a valid config needs on disk.
class ConfigTree {
 public:
  ConfigTree() {
    std::filesystem::create_directories(dir_ / "spool");
    std::filesystem::create_directories(dir_ / "other");
    std::filesystem::create_directories(dir_ / "hooks");
    HASYNC_ASSERT(engine::WriteNewKeyFile(key()).ok());
    WriteFile(hook(), "#!/bin/sh\nexit 0\n", 0755);
  }
  std::string root() const { return dir_.path(); }
  std::string spool() const { return dir_ / "spool"; }
  std::string other() const { return dir_ / "other"; }
  std::string key() const { return dir_ / "sync.key"; }
  std::string hook() const { return dir_ / "hooks/ok.sh"; }
  std::string state() const { return dir_ / "state"; }
  std::string config() const { return dir_ / "hasync.toml"; }

 private:
  TempDir dir_;
};

inline std::string Q(std::string_view s) { return "\"" + std::string(s) + "\""; }

// A TOML document as ordered sections of ordered key = literal lines, so a test can set
// or remove one key of a good config without string surgery.
class TomlDoc {
 public:
  TomlDoc& Set(std::string_view section, std::string_view key, std::string value) {
    auto& keys = Section(section);
    for (auto& kv : keys) {
      if (kv.first == key) {
        kv.second = std::move(value);
        return *this;
      }
    }
    keys.emplace_back(std::string(key), std::move(value));
    return *this;
  }
  TomlDoc& Erase(std::string_view section, std::string_view key) {
    auto& keys = Section(section);
    std::erase_if(keys, [&](const auto& kv) { return kv.first == key; });
    return *this;
  }
  std::string Render() const {
    std::string out;
    for (const auto& [name, keys] : sections_) {
      out += "[" + name + "]\n";
      for (const auto& [k, v] : keys) out += k + " = " + v + "\n";
      out += "\n";
    }
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>>& Section(std::string_view name) {
    for (auto& s : sections_) {
      if (s.first == name) return s.second;
    }
    sections_.emplace_back(std::string(name), std::vector<std::pair<std::string, std::string>>{});
    return sections_.back().second;
  }
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> sections_;
};

// The smallest valid config: the required keys plus paths into the tree.
inline TomlDoc GoodDoc(const ConfigTree& t) {
  TomlDoc d;
  d.Set("node", "name", Q("mu01")).Set("node", "listen", Q("10.0.0.1:7460"));
  d.Set("peer", "name", Q("mu02")).Set("peer", "address", Q("10.0.0.2:7460"));
  d.Set("sync", "roots", "[" + Q(t.spool()) + "]")
      .Set("sync", "state_dir", Q(t.state()))
      .Set("sync", "key_file", Q(t.key()));
  return d;
}

// One kind of bad config: how to break a good one, and what the one-line reason must say.
struct BadConfigCase {
  std::string name;
  std::function<void(TomlDoc&, const ConfigTree&)> breakit;
  std::string reason;
};

// GoogleTest prints the parameter after each test name, and CTest's discovered names carry
// it ("# GetParam() = ..."); without this it would be a hex dump of the struct's bytes.
inline void PrintTo(const BadConfigCase& c, std::ostream* os) { *os << c.name; }

inline std::vector<BadConfigCase> BadConfigCases() {
  return {
      {"MissingRequiredKey", [](TomlDoc& d, const ConfigTree&) { d.Erase("node", "name"); },
       "missing required key node.name"},
      {"AddressWithoutPort",
       [](TomlDoc& d, const ConfigTree&) { d.Set("node", "listen", Q("10.0.0.1")); },
       "node.listen = \"10.0.0.1\": missing port"},
      {"AddressPortOutOfRange",
       [](TomlDoc& d, const ConfigTree&) { d.Set("peer", "address", Q("host:99999")); },
       "peer.address = \"host:99999\": port 99999 is out of range 1..65535"},
      {"AddressWithoutHost",
       [](TomlDoc& d, const ConfigTree&) { d.Set("node", "listen", Q(":80")); },
       "node.listen = \":80\": missing host"},
      {"WindowNotGreaterThanBeat",
       [](TomlDoc& d, const ConfigTree&) { d.Set("failover", "window_ms", "200"); },
       "failover.window_ms = 200 must be greater than failover.beat_ms (250)"},
      {"WindowNotGreaterThanLeasePlusMargin",
       [](TomlDoc& d, const ConfigTree&) {
         d.Set("failover", "window_ms", "7000").Set("failover", "lease_ms", "6000");
       },
       "failover.window_ms = 7000 must be greater than failover.lease_ms + margin (6000 + 1000 "
       "= 7000)"},
      {"KeyFileWorldReadable",
       [](TomlDoc&, const ConfigTree& t) { HASYNC_ASSERT(::chmod(t.key().c_str(), 0644) == 0); },
       "mode 0644: must not be accessible by group or others (chmod 600)"},
      {"KeyFileTooShort",
       [](TomlDoc&, const ConfigTree& t) {
         std::filesystem::remove(t.key());
         WriteFile(t.key(), "00112233445566778899aabbccddee\n");  // 120 bits
       },
       "key is 120 bits, shorter than the minimum 128 bits"},
      {"SyncRootMissing",
       [](TomlDoc& d, const ConfigTree& t) {
         d.Set("sync", "roots", "[" + Q(t.root() + "/nope") + "]");
       },
       "/nope\" does not exist"},
      {"SyncRootRelative",
       [](TomlDoc& d, const ConfigTree&) { d.Set("sync", "roots", "[\"var/spool\"]"); },
       "sync.roots[0] = \"var/spool\" must be an absolute path"},
      {"SyncRootsNested",
       [](TomlDoc& d, const ConfigTree& t) {
         std::filesystem::create_directories(t.spool() + "/inner");
         d.Set("sync", "roots", "[" + Q(t.spool()) + ", " + Q(t.spool() + "/inner") + "]");
       },
       "sync roots must not be nested"},
      {"UnknownKey", [](TomlDoc& d, const ConfigTree&) { d.Set("failover", "windw_ms", "10000"); },
       "unknown key failover.windw_ms (did you mean failover.window_ms?)"},
      {"WrongType",
       [](TomlDoc& d, const ConfigTree&) { d.Set("failover", "window_ms", Q("10000")); },
       "failover.window_ms must be an integer, not a string"},
      {"HookNotAbsolute",
       [](TomlDoc& d, const ConfigTree&) {
         d.Set("hooks.fence", "command", "[\"fence.sh\", \"mu02\"]");
       },
       "hooks.fence.command[0] = \"fence.sh\" must be an absolute path"},
  };
}

}  // namespace hasync::testing
