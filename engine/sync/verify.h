// Manifests and their comparison: what `hasync verify` and the resync are made of.
//
// A manifest lists every entry of the sync roots (wire paths "i/p", docs/PROTOCOL.md)
// with kind, mode, owner, size, mtime and an XXH3-128 of the content (files) or target
// (symlinks). The standby sends its own in MANIFEST_ENTRIES frames; the primary builds
// its own the same way and CompareManifests says what differs, judged by what
// replication promises (docs/REPLICATION.md): content, kind, size, mode (after the
// standby's setuid/setgid policy, engine/apply/policy.h), owner, the mtime of files
// and symlinks, the replicated xattrs, and which names share an inode (hard links
// within the sync roots). Directory mtimes are not compared.
//
// ManifestJob builds a manifest on a thread of its own, so a node's event loop keeps
// turning (beats, ACKs, applies) while a large tree is read and hashed.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/scan/scanner.h"
#include "engine/sync/sender.h"  // MessageSink
#include "wire/messages.h"

namespace hasync::engine {

// MANIFEST_REQUEST ids from here up are `hasync verify`'s (below: the resync's).
inline constexpr uint64_t kVerifyRequestIdBase = uint64_t{1} << 32;
// Set in the request id of an anti-entropy pass: the standby keeps its walk to its
// anti_entropy.cpu_percent budget.
inline constexpr uint64_t kBackgroundRequestFlag = uint64_t{1} << 62;

// Holds a thread to `percent` of one core: after every kSliceNs of CPU time it sleeps
// long enough that the slice and the sleep keep that ratio. The sleep is cut into short
// naps that look at the stop flag, so a cancelled walk ends promptly.
class CpuBudget {
 public:
  static int64_t ThreadCpuNs();
  static constexpr int64_t kSliceNs = 10'000'000;  // 10 ms of work between sleeps
  static constexpr int64_t kNapNs = 50'000'000;

  CpuBudget(int percent, const std::atomic<bool>* stop)
      : percent_(percent), stop_(stop), mark_ns_(ThreadCpuNs()) {}

  // Called between units of work; sleeps when a slice is used up.
  void Charge();

 private:
  int percent_;
  const std::atomic<bool>* stop_;
  int64_t mark_ns_;
};

// One entry of root `root` (its fd borrowed), hashing the file or symlink target.
// NotFound when the entry vanished before it could be read.
Result<wire::ManifestEntry> MakeManifestEntry(int root_fd, uint32_t root, const FileInfo& info);

// Bytes the entry takes in a MANIFEST_ENTRIES body (to size frames).
size_t ManifestEntryWireSize(const wire::ManifestEntry& e);

// Every entry of every root (each root's own directory first), in walk order.
// ResourceExhausted past max_entries; Unavailable when *stop is set.
// cpu_percent in 1..99: the calling thread sleeps between entries so that the CPU time it
// spends stays within that share of one core over the walk (the background comparison's
// budget); 0 or 100: as fast as it can.
Result<std::vector<wire::ManifestEntry>> BuildManifest(const std::vector<int>& root_fds,
                                                       size_t max_entries,
                                                       const std::atomic<bool>* stop = nullptr,
                                                       int cpu_percent = 0);

// Sends `entries` as MANIFEST_ENTRIES frames for request_id, each within the frame
// limits, the last flagged kManifestLast (one empty frame for an empty manifest).
Status EmitManifest(MessageSink& sink, uint64_t request_id,
                    const std::vector<wire::ManifestEntry>& entries);

struct ManifestDifference {
  std::string path;  // wire path
  std::string what;  // "missing on the standby", "content", "mode 644 vs 600", …
  std::optional<wire::ManifestEntry> primary, standby;
  // The same difference: same path, and both sides' entries unchanged.
  bool Same(const ManifestDifference& o) const {
    return path == o.path && primary == o.primary && standby == o.standby;
  }
};

// Everything in which `standby` does not mirror `primary`, sorted by path.
std::vector<ManifestDifference> CompareManifests(std::vector<wire::ManifestEntry> primary,
                                                 std::vector<wire::ManifestEntry> standby);

// Builds a manifest of borrowed root fds on its own thread (duplicated, so the caller
// may close its own). done() turns true once; then Take() returns the result. The
// destructor cancels and joins.
class ManifestJob {
 public:
  ManifestJob(const std::vector<int>& root_fds, size_t max_entries, int cpu_percent = 0);
  ~ManifestJob();
  ManifestJob(const ManifestJob&) = delete;
  ManifestJob& operator=(const ManifestJob&) = delete;

  bool done() const { return done_.load(std::memory_order_acquire); }
  Result<std::vector<wire::ManifestEntry>> Take();

 private:
  std::vector<UniqueFd> fds_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::optional<Result<std::vector<wire::ManifestEntry>>> result_;
  std::thread thread_;
};

}  // namespace hasync::engine
