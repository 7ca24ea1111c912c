// hasync's configuration: the TOML file every node reads at start-up, parsed into a
// Config and validated in full before anything runs.
//
// Contract:
// - ParseConfig/LoadConfig return either a Config where every key has a value (defaults
//   applied), every number is inside its bounds and every cross-key rule holds, or a
//   Status whose message is ONE line naming the file and the key and saying what is wrong:
//     config /etc/hasync/hasync.toml: failover.window_ms = 200 must be greater than
//     failover.beat_ms (250)
//   Unknown keys and sections are errors (a typo must not be ignored silently).
// - Filesystem facts (sync roots exist and are directories, hooks are executable, the key
//   file loads) are read through a ConfigEnv so tests can substitute them.
// - ConfigWarnings lists legal but risky choices (unguarded promotion, plain transport…);
//   it never fails.
// - No exceptions escape: toml++'s parse_error is caught here and returned as a Status.
// docs/CONFIG.md documents every key, default, bound, rule and warning.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace hasync::engine {

inline constexpr std::string_view kDefaultConfigPath = "/etc/hasync/hasync.toml";

// Bounds of every numeric key, in one place. Each is [min, max], inclusive.
struct IntBounds {
  int64_t min;
  int64_t max;
};
inline constexpr int64_t kKiB = 1024;
inline constexpr int64_t kMiB = 1024 * kKiB;
inline constexpr int64_t kGiB = 1024 * kMiB;
inline constexpr int64_t kTiB = 1024 * kGiB;

inline constexpr IntBounds kWindowMsBounds{100, 3'600'000};
inline constexpr IntBounds kBeatMsBounds{10, 60'000};
inline constexpr IntBounds kLeaseMsBounds{100, 3'600'000};
inline constexpr IntBounds kMinFailoverIntervalMsBounds{0, 86'400'000};
inline constexpr IntBounds kProbeIntervalMsBounds{100, 600'000};
inline constexpr IntBounds kProbeTimeoutMsBounds{10, 600'000};
inline constexpr IntBounds kHookTimeoutMsBounds{100, 3'600'000};
inline constexpr IntBounds kDataStreamsBounds{0, 16};
inline constexpr IntBounds kJournalMemoryBytesBounds{16 * kMiB, 64 * kGiB};
inline constexpr IntBounds kMaxBatchBytesBounds{64 * kKiB, 1 * kGiB};
// At most what the standby stages in one batch of one root (apply::kMaxBatchFiles):
// a larger batch of new files would be refused every time and never converge.
inline constexpr IntBounds kMaxBatchFilesBounds{1, 4'096};
inline constexpr IntBounds kMaxQueuedBytesBounds{1 * kMiB, 1 * kTiB};
inline constexpr IntBounds kMaxTrackedFilesBounds{1'000, 100'000'000};
// Anti-entropy: 0 turns the background comparison off; otherwise a pass starts this
// long after the previous one started (or at once when that one took longer).
inline constexpr IntBounds kAntiEntropyIntervalMsBounds{0, 7 * 86'400'000LL};
// The share of one core each node's walk of a background pass may use.
inline constexpr IntBounds kAntiEntropyCpuPercentBounds{1, 100};

// The primary must have stopped serving (lease expired) clearly before the standby's
// window runs out: window_ms > lease_ms + margin, margin = max(kLeaseMarginBeats beats,
// kLeaseMarginMinMs). Two beats cover the one-beat difference between the two nodes'
// notion of "last heard" plus one beat of scheduling jitter; 1 s keeps it meaningful
// when beats are very short.
inline constexpr int64_t kLeaseMarginBeats = 2;
inline constexpr int64_t kLeaseMarginMinMs = 1000;
// The window must span at least this many beats, so one late beat is not a failure.
inline constexpr int64_t kMinBeatsPerWindow = 2;
// [arbiter]: etcd grants lease TTLs in whole seconds; below 2 s etcd raises the TTL to
// its own minimum (1.5 election timeouts), above 10 min a failover waits too long.
inline constexpr IntBounds kArbiterTtlSBounds{2, 600};
inline constexpr IntBounds kArbiterRequestTimeoutMsBounds{50, 60'000};
inline constexpr size_t kMaxArbiterEndpoints = 16;
inline constexpr size_t kMaxArbiterPrefixLength = 128;
// The self-fence's allowance for the primary's clock running at another rate than the
// etcd leader's: max(ttl / kArbiterDriftDivisor, kArbiterDriftMinMs) (docs/FAILOVER.md).
inline constexpr int64_t kArbiterDriftDivisor = 100;
inline constexpr int64_t kArbiterDriftMinMs = 100;
inline constexpr size_t kMaxNameLength = 64;
inline constexpr size_t kMaxSyncRoots = 64;
inline constexpr size_t kMaxArgvEntries = 256;
inline constexpr size_t kMaxProbeTokenBytes = 128;  // wire limit lives in wire/; doc only

struct HostPort {
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
  bool ipv6 = false;  // written as [host]:port
  std::string ToString() const;
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// "host:port", "a.b.c.d:port" or "[v6]:port"; port 1..65535. Error says what is wrong.
Result<HostPort> ParseHostPort(std::string_view text);

// A hook or probe: an argv array (never a shell string) run with a timeout.
struct Command {
  std::vector<std::string> argv;  // empty = not configured
  int64_t timeout_ms = 0;
  bool configured() const { return !argv.empty(); }
};

// One etcd member's client URL: http://host:port or https://host:port.
struct EtcdEndpoint {
  bool tls = false;
  HostPort address;
  std::string ToString() const;
  friend bool operator==(const EtcdEndpoint&, const EtcdEndpoint&) = default;
};
// "http://host:port" / "https://[v6]:port", nothing after the port.
Result<EtcdEndpoint> ParseEtcdEndpoint(std::string_view text);

enum class TransportMode { kTls, kPlain };
// How the standby makes a batch durable (DESIGN §7 group commit, docs/CONFIG.md).
enum class GroupCommit {
  kFsync,   // every temp and directory of the batch fsynced, all in flight at once (io_uring)
  kSyncfs,  // one syncfs(2) per batch; for a spool on a filesystem of its own
};
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };
std::string_view TransportModeName(TransportMode mode);
std::string_view GroupCommitName(GroupCommit mode);
std::string_view LogLevelName(LogLevel level);

// Mirrors the file: cfg.failover.window_ms is [failover] window_ms.
struct Config {
  std::string origin;  // file path, or whatever ParseConfig was given, for messages

  struct Node {
    std::string name;  // required
    HostPort listen;   // required
  } node;
  struct Peer {
    std::string name;  // required
    HostPort address;  // required
  } peer;
  struct Sync {
    std::vector<std::string> roots;  // required; absolute, normalised, existing dirs
    std::string state_dir = "/var/lib/hasync";
    std::string key_file = "/etc/hasync/hasync.key";
    GroupCommit group_commit = GroupCommit::kFsync;
  } sync;
  struct Failover {
    int64_t window_ms = 10'000;
    int64_t beat_ms = 250;
    int64_t lease_ms = 6'000;
    int64_t min_failover_interval_ms = 300'000;
    bool promote_on_silence_unguarded = false;
  } failover;
  struct Probe {
    std::vector<std::string> command;  // empty = no scheduler probe
    int64_t interval_ms = 2'000;
    int64_t timeout_ms = 1'000;
  } probe;
  struct Hooks {
    Command promote_guard{{}, 5'000};
    Command fence{{}, 60'000};
    Command on_promote{{}, 60'000};
    Command on_demote{{}, 30'000};
    Command quorum_check{{}, 2'000};
  } hooks;
  struct Transport {
    TransportMode mode = TransportMode::kTls;
    uint32_t data_streams = 2;
    // Plain mode: file content on the data streams is spliced from the page cache to the
    // socket (splice(2)) instead of being copied through hasync's buffers.
    bool splice = true;
  } transport;
  struct Limits {
    uint64_t journal_memory_bytes = 256 * kMiB;
    uint64_t max_batch_bytes = 8 * kMiB;
    uint32_t max_batch_files = 1'024;
    uint64_t max_queued_bytes = 1 * kGiB;
    uint64_t max_tracked_files = 10'000'000;
  } limits;
  struct AntiEntropy {
    int64_t interval_ms = 600'000;  // 0: off
    uint32_t cpu_percent = 5;
    bool repair = true;  // false: report differences (log, metrics) but leave them
  } anti_entropy;
  struct Metrics {
    bool enabled = true;
    HostPort listen{"127.0.0.1", 9469, false};
  } metrics;
  struct Log {
    LogLevel level = LogLevel::kInfo;
  } log;
  // [arbiter]: the leader key in etcd (docs/FAILOVER.md "The arbiter"). Absent: none.
  struct Arbiter {
    bool enabled = false;  // the section is present (kind = "etcd")
    std::vector<EtcdEndpoint> endpoints;
    std::string prefix;     // "/hasync/<pair>/": starts and ends with '/'
    std::string ca_file;    // TLS: verify the members against this CA (https endpoints)
    std::string cert_file;  // TLS client certificate and its key (both or neither)
    std::string key_file;
    std::string user;           // etcd authentication (with password_file)
    std::string password_file;  // the password, first line
    int64_t ttl_s = 5;
    int64_t request_timeout_ms = 1'000;
    int64_t ttl_ms() const { return ttl_s * 1000; }
    // The self-fence's allowance for clock rate: max(ttl / 100, 100 ms).
    int64_t drift_ms() const {
      const int64_t share = ttl_ms() / kArbiterDriftDivisor;
      return share > kArbiterDriftMinMs ? share : kArbiterDriftMinMs;
    }
  } arbiter;

  // [arbiter]: how long before its lease can expire the primary must begin stopping its
  // scheduler, beyond the drift: on_demote's timeout, plus quorum_check's when there is
  // one (the deadline may pass while a quorum_check of the primary's lease check runs:
  // the loop acts on it only when the hook is over).
  int64_t arbiter_stop_ms() const {
    return (hooks.on_demote.configured() ? hooks.on_demote.timeout_ms : 0) +
           (hooks.quorum_check.configured() ? hooks.quorum_check.timeout_ms : 0);
  }

  // Lease margin this config is validated against (see kLeaseMarginBeats).
  int64_t lease_margin_ms() const;
};

// What validation needs to know about the filesystem. The default reads the real one.
struct PathInfo {
  enum class Kind { kMissing, kDirectory, kRegular, kOther };
  Kind kind = Kind::kMissing;
  uint32_t mode = 0;  // permission bits
  uint32_t uid = 0;
};
class ConfigEnv {
 public:
  virtual ~ConfigEnv() = default;
  // stat(2), following symlinks. A missing path is kind kMissing, not an error.
  virtual Result<PathInfo> Stat(const std::string& path) const;
  // The path with symlinks resolved as far as it exists (weakly canonical), so two
  // spellings of one directory compare equal.
  virtual std::string Resolve(const std::string& path) const;
  // Loads the key file and discards the key: LoadKeyFile's checks.
  virtual Status CheckKeyFile(const std::string& path) const;
};
const ConfigEnv& RealConfigEnv();

// Parses and validates `text`; `origin` names it in messages ("config <origin>: ...").
Result<Config> ParseConfig(std::string_view text, std::string_view origin,
                           const ConfigEnv& env = RealConfigEnv());
// Reads `path` and calls ParseConfig.
Result<Config> LoadConfig(const std::string& path, const ConfigEnv& env = RealConfigEnv());

// Legal but risky settings, one line each, without the "config <path>: " prefix.
std::vector<std::string> ConfigWarnings(const Config& cfg, const ConfigEnv& env = RealConfigEnv());

}  // namespace hasync::engine
