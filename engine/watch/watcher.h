// Watcher: the primary's view of changes under its sync roots (DESIGN §6).
//
// One fanotify group with FAN_REPORT_DFID_NAME and a filesystem mark on each
// filesystem holding a root: no per-directory marks, so a directory created and
// written at once cannot be missed. Events are filtered to the roots through a
// directory handle → path cache (see translator.h for every rule), FAN_MODIFY is
// debounced per path, FAN_CLOSE_WRITE flushes at once, and any loss or doubt becomes a
// Rescan. Where the kernel has FAN_RENAME and FAN_REPORT_TARGET_FID (Linux 5.17+) they
// are used; otherwise renames are rebuilt from MOVED_FROM/MOVED_TO pairs (mode()).
//
// Driving it: either Poll(timeout_ms) in a loop, or register fd() with an event loop
// (io_uring poll) and call OnReadable() when it is readable and Tick() at
// NextDeadlineNs(). Then Drain() the ready events. All calls are non-blocking except
// Poll, which waits at most timeout_ms.
//
// Start-up errors say what to do: no CAP_SYS_ADMIN, a kernel without FID reporting, a
// filesystem without file handles (older tmpfs).
// Thread safety: none; one loop owns a Watcher. Move-only (fds are owned).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/watch/clock.h"
#include "engine/watch/limits.h"
#include "engine/watch/translator.h"
#include "engine/watch/watch_event.h"

namespace hasync::engine::watch {

enum class RenameMode : uint8_t {
  kRenameEvents,  // FAN_RENAME: one event with both names
  kMovePairs,     // MOVED_FROM + MOVED_TO, paired when adjacent
};

struct WatcherOptions {
  std::vector<std::string> roots;  // directories; made canonical, must not nest
  size_t handle_cache_entries = kDefaultHandleCacheEntries;
  int64_t debounce_ns = kDefaultDebounceNs;
  size_t debounce_max_pending = kDefaultDebounceMaxPending;
  // Use MOVED_FROM/MOVED_TO and no target fids even where the kernel has FAN_RENAME
  // (to exercise the fallback on a new kernel).
  bool force_move_pairs = false;
};

struct WatcherStats {
  TranslatorStats translator;
  uint64_t reads = 0;
  uint64_t bytes_read = 0;
  uint64_t parse_errors = 0;
  std::string last_parse_error;
  size_t cache_entries = 0;
  uint64_t cache_evictions = 0;
};

class Watcher {
 public:
  // `clock` must outlive the watcher.
  static Result<Watcher> Open(const WatcherOptions& options, const Clock* clock);

  Watcher(Watcher&&) noexcept = default;
  Watcher& operator=(Watcher&&) noexcept = default;
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;
  ~Watcher();

  int fd() const { return fan_fd_.get(); }
  RenameMode mode() const { return mode_; }
  bool target_fids() const { return target_fids_; }
  // "FAN_RENAME + FAN_REPORT_TARGET_FID" or "MOVED_FROM/MOVED_TO pairs", for logs.
  std::string ModeDescription() const;

  // Waits up to timeout_ms (less when a debounce deadline is due), then reads what the
  // kernel queued and flushes due debounces. Returns the number of ready events.
  Result<size_t> Poll(int timeout_ms);
  // Non-blocking: reads and translates what is queued (bounded per call).
  Status OnReadable();
  // Emits debounced modifies whose window has ended.
  void Tick();
  std::optional<int64_t> NextDeadlineNs() const;
  // Moves up to `max` ready events, oldest first, to `out`; returns how many.
  size_t Drain(std::vector<WatchEvent>* out, size_t max);
  size_t ready() const { return ready_.size(); }

  const std::vector<SyncRoot>& roots() const { return translator_->roots(); }
  WatcherStats stats() const;

 private:
  Watcher() = default;
  void Push(std::vector<WatchEvent>* events);

  UniqueFd fan_fd_;
  RenameMode mode_ = RenameMode::kRenameEvents;
  bool target_fids_ = false;
  const Clock* clock_ = nullptr;
  std::unique_ptr<DirResolver> resolver_;  // heap: the translator points at it
  std::unique_ptr<Translator> translator_;
  std::vector<char> buf_;
  std::vector<RawEvent> raw_;
  std::vector<WatchEvent> scratch_;
  std::deque<WatchEvent> ready_;
  uint64_t reads_ = 0;
  uint64_t bytes_read_ = 0;
  uint64_t parse_errors_ = 0;
  std::string last_parse_error_;
};

}  // namespace hasync::engine::watch
