// Config parsing and validation. See config.h for the contract and docs/CONFIG.md for
// the keys. The rule throughout: the first problem found (in file order for unknown keys,
// then section by section) is returned as one line that names the key.
#include "engine/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <toml++/toml.h>
#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>

#include "engine/keyfile.h"

namespace hasync::engine {
namespace {

inline constexpr size_t kMaxConfigFileBytes = 1 << 20;

// ---- small text helpers ----------------------------------------------------------------

// Shows a user string inside a one-line message: quoted, control bytes escaped, and cut
// short so a pasted blob cannot flood the terminal.
std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 120;
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMaxShown) out += "...";
  out += '"';
  return out;
}

// A key as TOML would accept it bare, else quoted (keys may hold any character).
std::string KeyName(std::string_view k) {
  const bool bare = !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
  return bare ? std::string(k) : Quote(k);
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0u : 1u)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string Suggest(std::string_view key, const std::vector<std::string_view>& known,
                    std::string_view prefix) {
  std::string_view best;
  size_t best_d = 3;  // suggest only close matches
  for (std::string_view k : known) {
    // A close spelling, or the right name without (or with a wrong) unit suffix.
    const bool stem = key.size() >= 3 && (k.starts_with(key) || key.starts_with(k));
    const size_t d = stem ? 1 : EditDistance(key, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  if (best.empty()) return "";
  return fmt::format(" (did you mean {}{}?)", prefix, best);
}

std::string_view TypeName(toml::node_type t) {
  switch (t) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength || name.front() == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

bool ValidHostname(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    const char c = h[i];
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && !(c == '-' && label > 0)) return false;
    if (++label > 63) return false;
  }
  return label > 0 && h.back() != '-';
}

// "/a/b/" → "/a/b"; "/a/./b/../c" → "/a/c".
std::string NormalizePath(std::string_view p) {
  std::string out = std::filesystem::path(p).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// True when `inner` is `outer` or lies below it (component-wise, both normalised).
bool IsSameOrInside(std::string_view inner, std::string_view outer) {
  if (outer == "/") return true;
  if (!inner.starts_with(outer)) return false;
  return inner.size() == outer.size() || inner[outer.size()] == '/';
}

// ---- schema ------------------------------------------------------------------------------

struct Section {
  std::string_view name;
  std::vector<std::string_view> keys;
};

const std::vector<Section>& Schema() {
  static const std::vector<Section> kSchema = {
      {"node", {"name", "listen"}},
      {"peer", {"name", "address"}},
      {"sync", {"roots", "state_dir", "key_file", "group_commit"}},
      {"failover",
       {"window_ms", "beat_ms", "lease_ms", "min_failover_interval_ms",
        "promote_on_silence_unguarded"}},
      {"probe", {"command", "interval_ms", "timeout_ms"}},
      {"hooks", {"promote_guard", "fence", "on_promote", "on_demote", "quorum_check"}},
      {"transport", {"mode", "data_streams", "splice"}},
      {"limits",
       {"journal_memory_bytes", "max_batch_bytes", "max_batch_files", "max_queued_bytes",
        "max_tracked_files"}},
      {"anti_entropy", {"interval_ms", "cpu_percent", "repair"}},
      {"metrics", {"enabled", "listen"}},
      {"log", {"level"}},
      {"arbiter",
       {"kind", "endpoints", "prefix", "ca_file", "cert_file", "key_file", "user", "password_file",
        "ttl_s", "request_timeout_ms"}},
  };
  return kSchema;
}
const std::vector<std::string_view> kHookKeys = {"command", "timeout_ms"};

// ---- the parser --------------------------------------------------------------------------

class Parser {
 public:
  Parser(std::string_view origin, const ConfigEnv& env) : origin_(origin), env_(env) {}

  Result<Config> Run(const toml::table& root) {
    Config cfg;
    cfg.origin = origin_;
    RETURN_IF_ERROR(CheckUnknownKeys(root));
    RETURN_IF_ERROR(ReadNode(root, cfg));
    RETURN_IF_ERROR(ReadPeer(root, cfg));
    RETURN_IF_ERROR(ReadSync(root, cfg));
    RETURN_IF_ERROR(ReadFailover(root, cfg));
    RETURN_IF_ERROR(ReadProbe(root, cfg));
    RETURN_IF_ERROR(ReadHooks(root, cfg));
    RETURN_IF_ERROR(ReadTransport(root, cfg));
    RETURN_IF_ERROR(ReadLimits(root, cfg));
    RETURN_IF_ERROR(ReadAntiEntropy(root, cfg));
    RETURN_IF_ERROR(ReadMetricsAndLog(root, cfg));
    RETURN_IF_ERROR(ReadArbiter(root, cfg));
    return cfg;
  }

  Status Fail(std::string_view msg) const {
    return InvalidArgument(fmt::format("config {}: {}", origin_, msg));
  }

 private:
  // Every key in the file must be one the schema knows. Of all unknown keys the one
  // earliest in the file is reported, so the message points where the reader looks first.
  Status CheckUnknownKeys(const toml::table& root) const {
    std::optional<std::pair<toml::source_position, std::string>> first;
    auto note = [&](const toml::node& n, std::string msg) {
      const toml::source_position pos = n.source().begin;
      if (!first || pos < first->first) first.emplace(pos, std::move(msg));
    };
    std::vector<std::string_view> section_names;
    for (const Section& s : Schema()) section_names.push_back(s.name);
    for (auto&& [key, node] : root) {
      const Section* sec = nullptr;
      for (const Section& s : Schema()) {
        if (s.name == key.str()) sec = &s;
      }
      if (sec == nullptr) {
        note(node, fmt::format("unknown key {}{}", KeyName(key.str()),
                               Suggest(key.str(), section_names, "")));
        continue;
      }
      const toml::table* tbl = node.as_table();
      if (tbl == nullptr) {
        note(node, fmt::format("{} must be a table ([{}]), not {}", sec->name, sec->name,
                               TypeName(node.type())));
        continue;
      }
      for (auto&& [k2, n2] : *tbl) {
        if (std::find(sec->keys.begin(), sec->keys.end(), k2.str()) == sec->keys.end()) {
          note(n2, fmt::format("unknown key {}.{}{}", sec->name, KeyName(k2.str()),
                               Suggest(k2.str(), sec->keys, fmt::format("{}.", sec->name))));
          continue;
        }
        if (sec->name != "hooks") continue;
        const toml::table* hook = n2.as_table();
        if (hook == nullptr) {
          note(n2, fmt::format("hooks.{} must be a table with command and timeout_ms, not {}",
                               k2.str(), TypeName(n2.type())));
          continue;
        }
        for (auto&& [k3, n3] : *hook) {
          if (std::find(kHookKeys.begin(), kHookKeys.end(), k3.str()) == kHookKeys.end()) {
            note(n3, fmt::format("unknown key hooks.{}.{}{}", k2.str(), KeyName(k3.str()),
                                 Suggest(k3.str(), kHookKeys, fmt::format("hooks.{}.", k2.str()))));
          }
        }
      }
    }
    if (first) return Fail(first->second);
    return Status::Ok();
  }

  static const toml::table* Sub(const toml::table& t, std::string_view name) {
    const toml::node* n = t.get(name);
    return n == nullptr ? nullptr : n->as_table();  // type checked in CheckUnknownKeys
  }

  Status WrongType(std::string_view key, std::string_view want, const toml::node& n) const {
    return Fail(fmt::format("{} must be {}, not {}", key, want, TypeName(n.type())));
  }
  Status Missing(std::string_view key) const {
    return Fail(fmt::format("missing required key {}", key));
  }

  // Each getter leaves `out` untouched (the default) when the key is absent.
  Status GetString(const toml::table* t, std::string_view section, std::string_view key,
                   bool required, std::string& out) const {
    const std::string full = fmt::format("{}.{}", section, key);
    const toml::node* n = t == nullptr ? nullptr : t->get(key);
    if (n == nullptr) return required ? Missing(full) : Status::Ok();
    const auto* s = n->as_string();
    if (s == nullptr) return WrongType(full, "a string", *n);
    if (s->get().find('\0') != std::string::npos) {
      return Fail(fmt::format("{} = {} must not contain a NUL character", full, Quote(s->get())));
    }
    out = s->get();
    return Status::Ok();
  }

  Status GetInt(const toml::table* t, std::string_view full_prefix, std::string_view key,
                IntBounds bounds, int64_t& out) const {
    const std::string full = fmt::format("{}.{}", full_prefix, key);
    const toml::node* n = t == nullptr ? nullptr : t->get(key);
    if (n == nullptr) return Status::Ok();
    const auto* i = n->as_integer();
    if (i == nullptr) return WrongType(full, "an integer", *n);
    const int64_t v = i->get();
    if (v < bounds.min || v > bounds.max) {
      return Fail(fmt::format("{} = {} is out of range {}..{}", full, v, bounds.min, bounds.max));
    }
    out = v;
    return Status::Ok();
  }

  template <typename T>
  Status GetUnsigned(const toml::table* t, std::string_view section, std::string_view key,
                     IntBounds bounds, T& out) const {
    static_assert(std::is_unsigned_v<T>);
    int64_t v = static_cast<int64_t>(out);
    RETURN_IF_ERROR(GetInt(t, section, key, bounds, v));
    HASYNC_ASSERT(v >= 0);
    out = static_cast<T>(v);
    return Status::Ok();
  }

  Status GetBool(const toml::table* t, std::string_view section, std::string_view key,
                 bool& out) const {
    const std::string full = fmt::format("{}.{}", section, key);
    const toml::node* n = t == nullptr ? nullptr : t->get(key);
    if (n == nullptr) return Status::Ok();
    const auto* b = n->as_boolean();
    if (b == nullptr) return WrongType(full, "a boolean (true or false)", *n);
    out = b->get();
    return Status::Ok();
  }

  // An argv array for a hook or the probe: non-empty, strings only, argv[0] an absolute
  // path to an executable regular file. Never a shell string.
  Status GetArgv(const toml::table* t, std::string_view prefix,
                 std::vector<std::string>& out) const {
    const std::string full = fmt::format("{}.command", prefix);
    const toml::node* n = t == nullptr ? nullptr : t->get("command");
    if (n == nullptr) return Status::Ok();
    const auto* arr = n->as_array();
    if (arr == nullptr) {
      if (n->is_string()) {
        return Fail(fmt::format(
            "{} must be an array of strings (argv, e.g. [\"/usr/bin/systemctl\", \"start\", "
            "\"slurmctld\"]), not a shell string",
            full));
      }
      return WrongType(full, "an array of strings (argv)", *n);
    }
    if (arr->empty()) {
      return Fail(fmt::format("{} must not be empty (remove the key to leave it unset)", full));
    }
    if (arr->size() > kMaxArgvEntries) {
      return Fail(
          fmt::format("{} has {} entries, more than {}", full, arr->size(), kMaxArgvEntries));
    }
    std::vector<std::string> argv;
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& e = *arr->get(i);
      const auto* s = e.as_string();
      if (s == nullptr) return WrongType(fmt::format("{}[{}]", full, i), "a string", e);
      if (s->get().find('\0') != std::string::npos) {
        return Fail(fmt::format("{}[{}] must not contain a NUL character", full, i));
      }
      argv.push_back(s->get());
    }
    const std::string& prog = argv[0];
    if (prog.empty() || prog.front() != '/') {
      return Fail(fmt::format("{}[0] = {} must be an absolute path", full, Quote(prog)));
    }
    ASSIGN_OR_RETURN(PathInfo info, env_.Stat(prog));
    if (info.kind == PathInfo::Kind::kMissing) {
      return Fail(fmt::format("{}[0] = {} does not exist", full, Quote(prog)));
    }
    if (info.kind != PathInfo::Kind::kRegular) {
      return Fail(fmt::format("{}[0] = {} is not a regular file", full, Quote(prog)));
    }
    if ((info.mode & 0111u) == 0) {
      return Fail(
          fmt::format("{}[0] = {} is not executable (mode {:04o})", full, Quote(prog), info.mode));
    }
    out = std::move(argv);
    return Status::Ok();
  }

  Status GetAddress(const toml::table* t, std::string_view section, std::string_view key,
                    bool required, HostPort& out) const {
    std::string text;
    bool present = t != nullptr && t->get(key) != nullptr;
    RETURN_IF_ERROR(GetString(t, section, key, required, text));
    if (!present) return Status::Ok();
    Result<HostPort> hp = ParseHostPort(text);
    if (!hp.ok()) {
      return Fail(fmt::format("{}.{} = {}: {}", section, key, Quote(text), hp.status().message()));
    }
    out = std::move(hp).value();
    return Status::Ok();
  }

  Status GetAbsPath(const toml::table* t, std::string_view section, std::string_view key,
                    std::string& out) const {
    const std::string full = fmt::format("{}.{}", section, key);
    std::string raw = out;
    RETURN_IF_ERROR(GetString(t, section, key, false, raw));
    if (raw.empty() || raw.front() != '/') {
      return Fail(fmt::format("{} = {} must be an absolute path", full, Quote(raw)));
    }
    out = NormalizePath(raw);
    if (out == "/")
      return Fail(fmt::format("{} = {} must not be the root directory", full, Quote(raw)));
    return Status::Ok();
  }

  // ---- sections ----

  Status ReadNode(const toml::table& root, Config& cfg) const {
    const toml::table* t = Sub(root, "node");
    RETURN_IF_ERROR(GetString(t, "node", "name", true, cfg.node.name));
    if (!ValidName(cfg.node.name)) return BadName("node.name", cfg.node.name);
    return GetAddress(t, "node", "listen", true, cfg.node.listen);
  }

  Status ReadPeer(const toml::table& root, Config& cfg) const {
    const toml::table* t = Sub(root, "peer");
    RETURN_IF_ERROR(GetString(t, "peer", "name", true, cfg.peer.name));
    if (!ValidName(cfg.peer.name)) return BadName("peer.name", cfg.peer.name);
    if (cfg.peer.name == cfg.node.name) {
      return Fail(fmt::format("peer.name = {} must differ from node.name", Quote(cfg.peer.name)));
    }
    RETURN_IF_ERROR(GetAddress(t, "peer", "address", true, cfg.peer.address));
    const std::string& h = cfg.peer.address.host;
    if (h == "0.0.0.0" || h == "::") {
      return Fail(
          fmt::format("peer.address = {} is a wildcard address; give the peer's own address",
                      Quote(cfg.peer.address.ToString())));
    }
    if (cfg.peer.address == cfg.node.listen) {
      return Fail(fmt::format("peer.address = {} equals node.listen: a node cannot be its own peer",
                              Quote(cfg.peer.address.ToString())));
    }
    return Status::Ok();
  }

  Status BadName(std::string_view key, std::string_view value) const {
    return Fail(fmt::format(
        "{} = {} must be 1..{} characters of letters, digits, '.', '_' or '-' (not starting "
        "with '-')",
        key, Quote(value), kMaxNameLength));
  }

  Status ReadSync(const toml::table& root, Config& cfg) const {
    const toml::table* t = Sub(root, "sync");
    const toml::node* n = t == nullptr ? nullptr : t->get("roots");
    if (n == nullptr) return Missing("sync.roots");
    const auto* arr = n->as_array();
    if (arr == nullptr) return WrongType("sync.roots", "an array of absolute paths", *n);
    if (arr->empty()) return Fail("sync.roots must name at least one directory");
    if (arr->size() > kMaxSyncRoots) {
      return Fail(
          fmt::format("sync.roots has {} entries, more than {}", arr->size(), kMaxSyncRoots));
    }
    std::vector<std::string> resolved;
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& e = *arr->get(i);
      const std::string key = fmt::format("sync.roots[{}]", i);
      const auto* s = e.as_string();
      if (s == nullptr) return WrongType(key, "a string", e);
      const std::string& raw = s->get();
      if (raw.empty() || raw.front() != '/') {
        return Fail(fmt::format("{} = {} must be an absolute path", key, Quote(raw)));
      }
      if (raw.find('\0') != std::string::npos) {
        return Fail(fmt::format("{} must not contain a NUL character", key));
      }
      std::string norm = NormalizePath(raw);
      if (norm == "/") {
        return Fail(fmt::format("{} = {} must not be the root directory", key, Quote(raw)));
      }
      ASSIGN_OR_RETURN(PathInfo info, env_.Stat(norm));
      if (info.kind == PathInfo::Kind::kMissing) {
        return Fail(fmt::format("{} = {} does not exist", key, Quote(raw)));
      }
      if (info.kind != PathInfo::Kind::kDirectory) {
        return Fail(fmt::format("{} = {} is not a directory", key, Quote(raw)));
      }
      std::string real = env_.Resolve(norm);
      for (size_t j = 0; j < resolved.size(); ++j) {
        const std::string other = fmt::format("sync.roots[{}] = {}", j, Quote(cfg.sync.roots[j]));
        if (real == resolved[j]) {
          return Fail(fmt::format("{} = {} is the same directory as {}", key, Quote(raw), other));
        }
        if (IsSameOrInside(real, resolved[j]) || IsSameOrInside(resolved[j], real)) {
          const bool inner_is_new = IsSameOrInside(real, resolved[j]);
          return Fail(fmt::format("{} = {} {} {}: sync roots must not be nested", key, Quote(raw),
                                  inner_is_new ? "is inside" : "contains", other));
        }
      }
      cfg.sync.roots.push_back(std::move(norm));
      resolved.push_back(std::move(real));
    }

    RETURN_IF_ERROR(GetAbsPath(t, "sync", "state_dir", cfg.sync.state_dir));
    const std::string state_real = env_.Resolve(cfg.sync.state_dir);
    for (size_t j = 0; j < resolved.size(); ++j) {
      if (IsSameOrInside(state_real, resolved[j]) || IsSameOrInside(resolved[j], state_real)) {
        return Fail(fmt::format(
            "sync.state_dir = {} overlaps sync.roots[{}] = {}: the state dir must be outside "
            "every sync root",
            Quote(cfg.sync.state_dir), j, Quote(cfg.sync.roots[j])));
      }
    }
    ASSIGN_OR_RETURN(PathInfo state_info, env_.Stat(cfg.sync.state_dir));
    if (state_info.kind != PathInfo::Kind::kMissing &&
        state_info.kind != PathInfo::Kind::kDirectory) {
      return Fail(fmt::format("sync.state_dir = {} exists and is not a directory",
                              Quote(cfg.sync.state_dir)));
    }

    RETURN_IF_ERROR(GetAbsPath(t, "sync", "key_file", cfg.sync.key_file));
    Status key = env_.CheckKeyFile(cfg.sync.key_file);
    if (!key.ok()) return Fail(fmt::format("sync.key_file: {}", key.message()));

    std::string commit(GroupCommitName(cfg.sync.group_commit));
    RETURN_IF_ERROR(GetString(t, "sync", "group_commit", false, commit));
    if (commit == "fsync") {
      cfg.sync.group_commit = GroupCommit::kFsync;
    } else if (commit == "syncfs") {
      cfg.sync.group_commit = GroupCommit::kSyncfs;
    } else {
      return Fail(
          fmt::format("sync.group_commit = {} must be \"fsync\" or \"syncfs\"", Quote(commit)));
    }
    return Status::Ok();
  }

  Status ReadFailover(const toml::table& root, Config& cfg) const {
    const toml::table* t = Sub(root, "failover");
    Config::Failover& f = cfg.failover;
    RETURN_IF_ERROR(GetInt(t, "failover", "window_ms", kWindowMsBounds, f.window_ms));
    RETURN_IF_ERROR(GetInt(t, "failover", "beat_ms", kBeatMsBounds, f.beat_ms));
    RETURN_IF_ERROR(GetInt(t, "failover", "lease_ms", kLeaseMsBounds, f.lease_ms));
    RETURN_IF_ERROR(GetInt(t, "failover", "min_failover_interval_ms", kMinFailoverIntervalMsBounds,
                           f.min_failover_interval_ms));
    RETURN_IF_ERROR(
        GetBool(t, "failover", "promote_on_silence_unguarded", f.promote_on_silence_unguarded));
    if (f.window_ms <= f.beat_ms) {
      return Fail(fmt::format("failover.window_ms = {} must be greater than failover.beat_ms ({})",
                              f.window_ms, f.beat_ms));
    }
    if (f.window_ms < kMinBeatsPerWindow * f.beat_ms) {
      return Fail(fmt::format(
          "failover.window_ms = {} must be at least {} x failover.beat_ms ({}) so one late beat "
          "is not taken for a failure",
          f.window_ms, kMinBeatsPerWindow, kMinBeatsPerWindow * f.beat_ms));
    }
    if (f.lease_ms < kMinBeatsPerWindow * f.beat_ms) {
      return Fail(fmt::format("failover.lease_ms = {} must be at least {} x failover.beat_ms ({})",
                              f.lease_ms, kMinBeatsPerWindow, kMinBeatsPerWindow * f.beat_ms));
    }
    const int64_t margin = cfg.lease_margin_ms();
    if (f.window_ms <= f.lease_ms + margin) {
      return Fail(fmt::format(
          "failover.window_ms = {} must be greater than failover.lease_ms + margin ({} + {} = {}) "
          "so an isolated primary stops before the standby promotes",
          f.window_ms, f.lease_ms, margin, f.lease_ms + margin));
    }
    return Status::Ok();
  }

  Status ReadProbe(const toml::table& root, Config& cfg) const {
    const toml::table* t = Sub(root, "probe");
    Config::Probe& p = cfg.probe;
    RETURN_IF_ERROR(GetArgv(t, "probe", p.command));
    RETURN_IF_ERROR(GetInt(t, "probe", "interval_ms", kProbeIntervalMsBounds, p.interval_ms));
    RETURN_IF_ERROR(GetInt(t, "probe", "timeout_ms", kProbeTimeoutMsBounds, p.timeout_ms));
    if (p.timeout_ms >= p.interval_ms) {
      return Fail(fmt::format("probe.timeout_ms = {} must be less than probe.interval_ms ({})",
                              p.timeout_ms, p.interval_ms));
    }
    if (!p.command.empty() && p.interval_ms + p.timeout_ms >= cfg.failover.window_ms) {
      return Fail(fmt::format(
          "probe.interval_ms + probe.timeout_ms ({} + {}) must be less than failover.window_ms "
          "({}) or a healthy scheduler's probe result goes stale for a whole window",
          p.interval_ms, p.timeout_ms, cfg.failover.window_ms));
    }
    return Status::Ok();
  }

  Status ReadHooks(const toml::table& root, Config& cfg) const {
    const toml::table* t = Sub(root, "hooks");
    const std::pair<std::string_view, Command*> hooks[] = {
        {"promote_guard", &cfg.hooks.promote_guard}, {"fence", &cfg.hooks.fence},
        {"on_promote", &cfg.hooks.on_promote},       {"on_demote", &cfg.hooks.on_demote},
        {"quorum_check", &cfg.hooks.quorum_check},
    };
    for (const auto& [name, cmd] : hooks) {
      const toml::table* h = t == nullptr ? nullptr : Sub(*t, name);
      if (h == nullptr) continue;
      const std::string prefix = fmt::format("hooks.{}", name);
      if (h->get("command") == nullptr) return Missing(prefix + ".command");
      RETURN_IF_ERROR(GetArgv(h, prefix, cmd->argv));
      RETURN_IF_ERROR(GetInt(h, prefix, "timeout_ms", kHookTimeoutMsBounds, cmd->timeout_ms));
    }
    return Status::Ok();
  }

  Status ReadTransport(const toml::table& root, Config& cfg) const {
    const toml::table* t = Sub(root, "transport");
    std::string mode(TransportModeName(cfg.transport.mode));
    RETURN_IF_ERROR(GetString(t, "transport", "mode", false, mode));
    if (mode == "tls") {
      cfg.transport.mode = TransportMode::kTls;
    } else if (mode == "plain") {
      cfg.transport.mode = TransportMode::kPlain;
    } else {
      return Fail(fmt::format("transport.mode = {} must be \"tls\" or \"plain\"", Quote(mode)));
    }
    RETURN_IF_ERROR(GetUnsigned(t, "transport", "data_streams", kDataStreamsBounds,
                                cfg.transport.data_streams));
    return GetBool(t, "transport", "splice", cfg.transport.splice);
  }

  Status ReadLimits(const toml::table& root, Config& cfg) const {
    const toml::table* t = Sub(root, "limits");
    Config::Limits& l = cfg.limits;
    RETURN_IF_ERROR(GetUnsigned(t, "limits", "journal_memory_bytes", kJournalMemoryBytesBounds,
                                l.journal_memory_bytes));
    RETURN_IF_ERROR(
        GetUnsigned(t, "limits", "max_batch_bytes", kMaxBatchBytesBounds, l.max_batch_bytes));
    RETURN_IF_ERROR(
        GetUnsigned(t, "limits", "max_batch_files", kMaxBatchFilesBounds, l.max_batch_files));
    RETURN_IF_ERROR(
        GetUnsigned(t, "limits", "max_queued_bytes", kMaxQueuedBytesBounds, l.max_queued_bytes));
    RETURN_IF_ERROR(
        GetUnsigned(t, "limits", "max_tracked_files", kMaxTrackedFilesBounds, l.max_tracked_files));
    if (l.max_batch_bytes > l.max_queued_bytes) {
      return Fail(
          fmt::format("limits.max_batch_bytes = {} must not exceed limits.max_queued_bytes ({})",
                      l.max_batch_bytes, l.max_queued_bytes));
    }
    if (l.max_batch_bytes > l.journal_memory_bytes) {
      return Fail(fmt::format(
          "limits.max_batch_bytes = {} must not exceed limits.journal_memory_bytes ({})",
          l.max_batch_bytes, l.journal_memory_bytes));
    }
    return Status::Ok();
  }

  Status ReadAntiEntropy(const toml::table& root, Config& cfg) const {
    const toml::table* t = Sub(root, "anti_entropy");
    Config::AntiEntropy& a = cfg.anti_entropy;
    RETURN_IF_ERROR(
        GetInt(t, "anti_entropy", "interval_ms", kAntiEntropyIntervalMsBounds, a.interval_ms));
    RETURN_IF_ERROR(
        GetUnsigned(t, "anti_entropy", "cpu_percent", kAntiEntropyCpuPercentBounds, a.cpu_percent));
    return GetBool(t, "anti_entropy", "repair", a.repair);
  }

  Status ReadMetricsAndLog(const toml::table& root, Config& cfg) const {
    const toml::table* m = Sub(root, "metrics");
    RETURN_IF_ERROR(GetBool(m, "metrics", "enabled", cfg.metrics.enabled));
    RETURN_IF_ERROR(GetAddress(m, "metrics", "listen", false, cfg.metrics.listen));
    if (cfg.metrics.enabled && cfg.metrics.listen == cfg.node.listen) {
      return Fail(fmt::format("metrics.listen = {} equals node.listen",
                              Quote(cfg.metrics.listen.ToString())));
    }
    const toml::table* l = Sub(root, "log");
    std::string level(LogLevelName(cfg.log.level));
    RETURN_IF_ERROR(GetString(l, "log", "level", false, level));
    static constexpr LogLevel kLevels[] = {LogLevel::kTrace, LogLevel::kDebug, LogLevel::kInfo,
                                           LogLevel::kWarn, LogLevel::kError};
    for (LogLevel lv : kLevels) {
      if (LogLevelName(lv) == level) {
        cfg.log.level = lv;
        return Status::Ok();
      }
    }
    return Fail(fmt::format(
        "log.level = {} must be one of \"trace\", \"debug\", \"info\", \"warn\", \"error\"",
        Quote(level)));
  }

  // An existing regular file given by absolute path (TLS material, the password file).
  Status GetFile(const toml::table* t, std::string_view section, std::string_view key,
                 std::string& out) const {
    const std::string full = fmt::format("{}.{}", section, key);
    if (t == nullptr || t->get(key) == nullptr) return Status::Ok();
    std::string raw;
    RETURN_IF_ERROR(GetString(t, section, key, false, raw));
    if (raw.empty() || raw.front() != '/') {
      return Fail(fmt::format("{} = {} must be an absolute path", full, Quote(raw)));
    }
    ASSIGN_OR_RETURN(PathInfo info, env_.Stat(raw));
    if (info.kind == PathInfo::Kind::kMissing) {
      return Fail(fmt::format("{} = {} does not exist", full, Quote(raw)));
    }
    if (info.kind != PathInfo::Kind::kRegular) {
      return Fail(fmt::format("{} = {} is not a regular file", full, Quote(raw)));
    }
    out = std::move(raw);
    return Status::Ok();
  }

  // [arbiter]: the keys, then the timing rules of docs/FAILOVER.md "Why there is never
  // more than one primary", each error saying which inequality failed and why it matters.
  Status ReadArbiter(const toml::table& root, Config& cfg) const {
    const toml::table* t = Sub(root, "arbiter");
    if (t == nullptr) return Status::Ok();
    Config::Arbiter& a = cfg.arbiter;
    std::string kind;
    RETURN_IF_ERROR(GetString(t, "arbiter", "kind", true, kind));
    if (kind != "etcd") {
      return Fail(fmt::format("arbiter.kind = {} must be \"etcd\" (the only arbiter hasync has)",
                              Quote(kind)));
    }
    a.enabled = true;
    const toml::node* en = t->get("endpoints");
    if (en == nullptr) return Missing("arbiter.endpoints");
    const toml::array* arr = en->as_array();
    if (arr == nullptr) return WrongType("arbiter.endpoints", "an array of URLs", *en);
    if (arr->empty() || arr->size() > kMaxArbiterEndpoints) {
      return Fail(fmt::format("arbiter.endpoints has {} entries; give 1 to {} etcd client URLs",
                              arr->size(), kMaxArbiterEndpoints));
    }
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& e = *arr->get(i);
      const auto* str = e.as_string();
      const std::string key = fmt::format("arbiter.endpoints[{}]", i);
      if (str == nullptr) return WrongType(key, "a string", e);
      Result<EtcdEndpoint> ep = ParseEtcdEndpoint(str->get());
      if (!ep.ok()) {
        return Fail(fmt::format("{} = {}: {}", key, Quote(str->get()), ep.status().message()));
      }
      if (std::find(a.endpoints.begin(), a.endpoints.end(), *ep) != a.endpoints.end()) {
        return Fail(fmt::format("{} = {} is listed twice", key, Quote(str->get())));
      }
      a.endpoints.push_back(std::move(ep).value());
    }
    RETURN_IF_ERROR(GetString(t, "arbiter", "prefix", true, a.prefix));
    if (a.prefix.size() < 2 || a.prefix.front() != '/' || a.prefix.back() != '/' ||
        a.prefix.size() > kMaxArbiterPrefixLength ||
        std::any_of(a.prefix.begin(), a.prefix.end(),
                    [](char ch) { return ch <= ' ' || ch > '~'; })) {
      return Fail(fmt::format(
          "arbiter.prefix = {} must start and end with '/', hold printable ASCII without spaces "
          "and be at most {} bytes (e.g. \"/hasync/slurm/\"; one prefix per pair)",
          Quote(a.prefix), kMaxArbiterPrefixLength));
    }
    RETURN_IF_ERROR(GetFile(t, "arbiter", "ca_file", a.ca_file));
    RETURN_IF_ERROR(GetFile(t, "arbiter", "cert_file", a.cert_file));
    RETURN_IF_ERROR(GetFile(t, "arbiter", "key_file", a.key_file));
    RETURN_IF_ERROR(GetString(t, "arbiter", "user", false, a.user));
    RETURN_IF_ERROR(GetFile(t, "arbiter", "password_file", a.password_file));
    const bool any_tls = std::any_of(a.endpoints.begin(), a.endpoints.end(),
                                     [](const EtcdEndpoint& e) { return e.tls; });
    const bool all_tls = std::all_of(a.endpoints.begin(), a.endpoints.end(),
                                     [](const EtcdEndpoint& e) { return e.tls; });
    if (any_tls != all_tls) {
      return Fail("arbiter.endpoints mixes http:// and https://: use one scheme for every member");
    }
    if (a.cert_file.empty() != a.key_file.empty()) {
      return Fail("arbiter.cert_file and arbiter.key_file go together: set both or neither");
    }
    if (all_tls && a.ca_file.empty()) {
      return Fail(
          "arbiter.ca_file is required with https:// endpoints: the members' certificates are "
          "verified against it");
    }
    if (!any_tls && (!a.ca_file.empty() || !a.cert_file.empty())) {
      return Fail(
          "arbiter.ca_file/cert_file/key_file are set but every endpoint is http://: use "
          "https:// endpoints or remove them");
    }
    if (a.user.empty() != a.password_file.empty()) {
      return Fail("arbiter.user and arbiter.password_file go together: set both or neither");
    }
    if (!a.user.empty() && (a.user.size() > kMaxNameLength ||
                            std::any_of(a.user.begin(), a.user.end(),
                                        [](char ch) { return ch <= ' ' || ch > '~'; }))) {
      return Fail(
          fmt::format("arbiter.user = {} must be 1 to {} printable ASCII characters without spaces",
                      Quote(a.user), kMaxNameLength));
    }
    RETURN_IF_ERROR(GetInt(t, "arbiter", "ttl_s", kArbiterTtlSBounds, a.ttl_s));
    RETURN_IF_ERROR(GetInt(t, "arbiter", "request_timeout_ms", kArbiterRequestTimeoutMsBounds,
                           a.request_timeout_ms));
    const Config::Failover& f = cfg.failover;
    const int64_t ttl = a.ttl_ms();
    if (ttl >= f.window_ms) {
      return Fail(fmt::format(
          "arbiter.ttl_s = {} ({} ms) must be less than failover.window_ms ({}) so a dead "
          "primary's leader key is gone by the time the standby's window ends",
          a.ttl_s, ttl, f.window_ms));
    }
    if (3 * a.request_timeout_ms >= ttl) {
      return Fail(fmt::format(
          "arbiter.request_timeout_ms = {} must be less than arbiter.ttl_s / 3 ({} ms) so "
          "renewals can time out twice and a third still land before the lease runs out",
          a.request_timeout_ms, ttl / 3));
    }
    const int64_t stop_ms = cfg.arbiter_stop_ms();
    const int64_t slack = ttl - stop_ms - a.drift_ms();
    const int64_t need = f.beat_ms + 2 * a.request_timeout_ms;
    if (slack < need) {
      const Config::Hooks& h = cfg.hooks;
      const bool qc = h.quorum_check.configured();
      const int64_t demote_ms = h.on_demote.configured() ? h.on_demote.timeout_ms : 0;
      return Fail(fmt::format(
          "arbiter.ttl_s = {} too short: the primary must start stopping its scheduler at "
          "ttl - hooks.on_demote.timeout_ms{} - drift ({} - {}{} - {} = {} ms) after its last "
          "renewal, which must leave room for failover.beat_ms + 2 x arbiter.request_timeout_ms "
          "({} + 2 x {} = {} ms) or one lost renewal stops the scheduler; lengthen ttl_s (and "
          "failover.window_ms) or shorten hooks.on_demote.timeout_ms{}",
          a.ttl_s, qc ? " - hooks.quorum_check.timeout_ms" : "", ttl, demote_ms,
          qc ? fmt::format(" - {}", h.quorum_check.timeout_ms) : "", a.drift_ms(), slack, f.beat_ms,
          a.request_timeout_ms, need, qc ? " or hooks.quorum_check.timeout_ms" : ""));
    }
    return Status::Ok();
  }

  std::string origin_;
  const ConfigEnv& env_;
};

// A one-line description of a toml++ parse error; its text can span lines.
std::string OneLine(std::string_view s) {
  std::string out;
  for (char c : s) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  return out;
}

}  // namespace

std::string EtcdEndpoint::ToString() const {
  return fmt::format("{}://{}", tls ? "https" : "http", address.ToString());
}

Result<EtcdEndpoint> ParseEtcdEndpoint(std::string_view text) {
  EtcdEndpoint out;
  std::string_view rest;
  if (text.starts_with("http://")) {
    rest = text.substr(7);
  } else if (text.starts_with("https://")) {
    out.tls = true;
    rest = text.substr(8);
  } else {
    return InvalidArgument("must start with http:// or https:// (an etcd client URL)");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) {
    return InvalidArgument("must not have a path (hasync adds /v3/...)");
  }
  Result<HostPort> hp = ParseHostPort(rest);
  if (!hp.ok()) return hp.status();
  out.address = std::move(hp).value();
  return out;
}

std::string HostPort::ToString() const {
  return ipv6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

Result<HostPort> ParseHostPort(std::string_view text) {
  constexpr std::string_view kExpect = "(expected host:port or [ipv6]:port)";
  HostPort out;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return InvalidArgument(fmt::format("missing ']' after the IPv6 address {}", kExpect));
    }
    out.host = std::string(text.substr(1, close - 1));
    out.ipv6 = true;
    in6_addr a6{};
    if (out.host.empty() || ::inet_pton(AF_INET6, out.host.c_str(), &a6) != 1) {
      return InvalidArgument(fmt::format("{} is not an IPv6 address", Quote(out.host)));
    }
    const std::string_view rest = text.substr(close + 1);
    if (!rest.starts_with(':') || rest.size() == 1) {
      return InvalidArgument(fmt::format("missing port {}", kExpect));
    }
    port_text = rest.substr(1);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return InvalidArgument(fmt::format("missing port {}", kExpect));
    }
    if (text.find(':') != colon) {
      return InvalidArgument(
          fmt::format("an IPv6 address must be written in brackets {}", kExpect));
    }
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (out.host.empty()) {
      return InvalidArgument(
          fmt::format("missing host {}; use 0.0.0.0 or [::] to listen on every address", kExpect));
    }
    const bool numeric = std::all_of(out.host.begin(), out.host.end(),
                                     [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
    in_addr a4{};
    if (numeric && ::inet_pton(AF_INET, out.host.c_str(), &a4) != 1) {
      return InvalidArgument(fmt::format("{} is not an IPv4 address", Quote(out.host)));
    }
    if (!numeric && !ValidHostname(out.host)) {
      return InvalidArgument(fmt::format("{} is not a valid host name", Quote(out.host)));
    }
  }
  if (port_text.empty()) return InvalidArgument(fmt::format("missing port {}", kExpect));
  uint32_t port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') {
      return InvalidArgument(fmt::format("port {} is not a number", Quote(port_text)));
    }
    port = port * 10 + static_cast<uint32_t>(c - '0');
    if (port > 65535) break;
  }
  if (port == 0 || port > 65535) {
    return InvalidArgument(fmt::format("port {} is out of range 1..65535", port_text));
  }
  out.port = static_cast<uint16_t>(port);
  return out;
}

std::string_view GroupCommitName(GroupCommit mode) {
  return mode == GroupCommit::kFsync ? "fsync" : "syncfs";
}

std::string_view TransportModeName(TransportMode mode) {
  return mode == TransportMode::kTls ? "tls" : "plain";
}

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

int64_t Config::lease_margin_ms() const {
  return std::max(kLeaseMarginBeats * failover.beat_ms, kLeaseMarginMinMs);
}

Result<PathInfo> ConfigEnv::Stat(const std::string& path) const {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return PathInfo{};
    return ErrnoStatus(errno, fmt::format("stat {}", path));
  }
  PathInfo info;
  info.kind = S_ISDIR(st.st_mode)   ? PathInfo::Kind::kDirectory
              : S_ISREG(st.st_mode) ? PathInfo::Kind::kRegular
                                    : PathInfo::Kind::kOther;
  info.mode = static_cast<uint32_t>(st.st_mode) & 07777u;
  info.uid = st.st_uid;
  return info;
}

std::string ConfigEnv::Resolve(const std::string& path) const {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::weakly_canonical(path, ec);
  if (ec) return NormalizePath(path);  // compare lexically when the OS cannot tell us more
  return NormalizePath(p.string());
}

Status ConfigEnv::CheckKeyFile(const std::string& path) const { return LoadKeyFile(path).status(); }

const ConfigEnv& RealConfigEnv() {
  static const ConfigEnv kEnv;
  return kEnv;
}

Result<Config> ParseConfig(std::string_view text, std::string_view origin, const ConfigEnv& env) {
  Parser parser(origin, env);
  // toml++ reports syntax errors by exception; this is the boundary where they become a
  // Status (STYLE: no exceptions out of engine/).
  try {
    toml::table root = toml::parse(text, origin);
    return parser.Run(root);
  } catch (const toml::parse_error& e) {
    const toml::source_position pos = e.source().begin;
    return InvalidArgument(
        fmt::format("config {}:{}:{}: {}", origin, pos.line, pos.column, OneLine(e.description())));
  } catch (const std::exception& e) {
    return Internal(fmt::format("config {}: {}", origin, OneLine(e.what())));
  }
}

Result<Config> LoadConfig(const std::string& path, const ConfigEnv& env) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return ErrnoStatus(errno, fmt::format("config {}", path));
  std::string text;
  Status st;
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) {
    st = ErrnoStatus(errno, fmt::format("config {}", path));
  } else if (!S_ISREG(sb.st_mode)) {
    st = InvalidArgument(fmt::format("config {}: not a regular file", path));
  } else if ((sb.st_mode & S_IWOTH) != 0) {
    // The config names commands hasync runs as root: a world-writable one is a way in.
    st = PermissionDenied(
        fmt::format("config {} mode {:04o}: must not be writable by others (chmod o-w)", path,
                    static_cast<unsigned>(sb.st_mode) & 07777u));
  } else {
    text.resize(kMaxConfigFileBytes + 1);
    size_t used = 0;
    while (used < text.size()) {
      ssize_t n = ::read(fd, text.data() + used, text.size() - used);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        st = ErrnoStatus(errno, fmt::format("read config {}", path));
        break;
      }
      if (n == 0) break;
      used += static_cast<size_t>(n);
    }
    text.resize(used);
    if (st.ok() && used > kMaxConfigFileBytes) {
      st = InvalidArgument(
          fmt::format("config {}: larger than {} bytes", path, kMaxConfigFileBytes));
    }
  }
  ::close(fd);
  RETURN_IF_ERROR(st);
  return ParseConfig(text, path, env);
}

std::vector<std::string> ConfigWarnings(const Config& cfg, const ConfigEnv& env) {
  std::vector<std::string> w;
  const Config::Hooks& h = cfg.hooks;
  const bool guarded = h.fence.configured() || h.quorum_check.configured() || cfg.arbiter.enabled;
  if (cfg.failover.promote_on_silence_unguarded) {
    if (guarded) {
      w.push_back(
          "failover.promote_on_silence_unguarded = true has no effect while hooks.fence, "
          "hooks.quorum_check or [arbiter] is configured; remove it");
    } else {
      w.push_back(
          "failover.promote_on_silence_unguarded = true: the standby promotes after "
          "failover.window_ms of silence without fence or quorum check, so a cut link gives "
          "two primaries");
    }
  } else if (!guarded) {
    w.push_back(
        "neither hooks.fence nor hooks.quorum_check is configured: the standby will never "
        "promote on silence (a dead primary host needs a manual switchover); configure one, or "
        "set failover.promote_on_silence_unguarded = true to accept the split-brain risk");
  }
  if (cfg.transport.mode == TransportMode::kPlain) {
    w.push_back(
        "transport.mode = \"plain\": replicated data crosses the network unencrypted (the key "
        "only authenticates the connection); use it on trusted links only");
  }
  if (cfg.probe.command.empty()) {
    w.push_back(
        "probe.command is not set: a hung scheduler is not detected, only a dead or hung "
        "hasync");
  }
  if (cfg.arbiter.enabled) {
    const Config::Arbiter& a = cfg.arbiter;
    if (a.endpoints.size() < 3) {
      w.push_back(fmt::format(
          "arbiter.endpoints lists {} etcd member(s): with fewer than three, losing one etcd "
          "member stops the scheduler (the primary cannot renew its lease); run three on three "
          "hosts (docs/OPERATIONS.md)",
          a.endpoints.size()));
    }
    if (!a.endpoints.front().tls && a.user.empty()) {
      w.push_back(
          "arbiter: http:// endpoints without arbiter.user: anyone who reaches etcd can delete "
          "or take the leader key; use https:// with a client certificate, or etcd users");
    }
    if (!a.password_file.empty()) {
      Result<PathInfo> info = env.Stat(a.password_file);
      if (info.ok() && (info->mode & 0077u) != 0) {
        w.push_back(
            fmt::format("arbiter.password_file = {} mode {:04o} is readable by others; "
                        "make it 0600",
                        Quote(a.password_file), info->mode));
      }
    }
  }
  if (h.quorum_check.configured() && !h.fence.configured() && !cfg.arbiter.enabled) {
    const int64_t stop_ms =
        cfg.failover.lease_ms + h.quorum_check.timeout_ms + h.on_demote.timeout_ms;
    if (stop_ms >= cfg.failover.window_ms) {
      w.push_back(fmt::format(
          "without hooks.fence an isolated primary may take up to failover.lease_ms + "
          "hooks.quorum_check.timeout_ms + hooks.on_demote.timeout_ms ({} ms) to stop its "
          "scheduler, not less than failover.window_ms ({} ms): configure fence, shorten those "
          "timeouts or lengthen the window",
          stop_ms, cfg.failover.window_ms));
    }
  }
  const std::pair<std::string_view, const std::vector<std::string>*> cmds[] = {
      {"probe.command", &cfg.probe.command},
      {"hooks.promote_guard.command", &h.promote_guard.argv},
      {"hooks.fence.command", &h.fence.argv},
      {"hooks.on_promote.command", &h.on_promote.argv},
      {"hooks.on_demote.command", &h.on_demote.argv},
      {"hooks.quorum_check.command", &h.quorum_check.argv},
  };
  for (const auto& [key, argv] : cmds) {
    if (argv->empty()) continue;
    Result<PathInfo> info = env.Stat((*argv)[0]);
    if (info.ok() && (info->mode & 0022u) != 0) {
      w.push_back(fmt::format(
          "{}[0] = {} mode {:04o} is writable by group or others, and hasync runs it as {}", key,
          Quote((*argv)[0]), info->mode, ::geteuid() == 0 ? "root" : "its own user"));
    }
  }
  return w;
}

}  // namespace hasync::engine
