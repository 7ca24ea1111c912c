// Translator: turns decoded fanotify events into WatchEvents for the sync roots.
//
// It owns the directory handle cache and the modify debouncer and reaches the
// filesystem only through DirResolver, so every rule below is unit-tested with a fake
// resolver and synthetic events (no root, no fanotify).
//
// Rules (DESIGN §6, "never a silent miss"):
// - Events whose directory is outside every root are dropped; the directory stays in
//   the cache as "outside" so the next one costs one hash lookup.
// - A directory handle whose directory is gone (removed before we looked; NotFound from
//   the resolver): the events *inside* it are skipped, because its removal (or its
//   top-most removed ancestor's) is still queued behind them and is reported from a
//   parent that exists. A rename out of or into a gone directory becomes a Create/
//   Rescan of the new name or a Delete of the old. Without this, unrelated short-lived
//   directories elsewhere on the filesystem would keep rescanning the spool.
// - A handle that fails to resolve for any other reason → Rescan of every root on that
//   filesystem: the directory may have been inside one.
// - Queue overflow or a malformed buffer (LostEvents) → Rescan of every root, cache
//   cleared and pre-loaded again.
// - One kernel event whose mask holds more than one namespace change for the same name
//   (the kernel merges e.g. unlink X + link X.new X into CREATE|DELETE on X) → Rescan
//   of that name: the order inside a merged mask is unknown.
// - Renames: within a root → Rename; across the root boundary → Delete of the old name
//   and Create (file) or Rescan (directory) of the new one. A renamed directory's
//   cached subtree is rewritten; a rename of a root or of its ancestor moves the root.
// - Move-pair mode (kernels without FAN_RENAME): a MOVED_FROM followed directly by its
//   MOVED_TO is one rename; anything else is a Delete and a Create/Rescan.
// Thread safety: none; owned by the watcher's loop.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "engine/watch/clock.h"
#include "engine/watch/debouncer.h"
#include "engine/watch/event_parser.h"
#include "engine/watch/handle_cache.h"
#include "engine/watch/watch_event.h"

namespace hasync::engine::watch {

// The filesystem behind the translator (fanotify_resolver.h is the real one).
class DirResolver {
 public:
  virtual ~DirResolver() = default;
  // The absolute path, now, of the directory whose cache key (HandleCache::Key) this
  // is. Not found if it is gone.
  virtual Result<std::string> PathOf(std::string_view key) = 0;
  // The cache key (HandleCache::Key) of the directory at `abs_path`, now.
  virtual Result<std::string> KeyOf(uint64_t fsid, const std::string& abs_path) = 0;
  // Appends (key, absolute path) for `abs_root` and the directories below it, at most
  // `max` of them, without following symlinks or crossing mounts.
  virtual Status ListDirs(uint64_t fsid, const std::string& abs_root, size_t max,
                          std::vector<std::pair<std::string, std::string>>* out) = 0;
};

struct SyncRoot {
  std::string path;  // absolute, canonical, no trailing '/'
  uint64_t fsid = 0;
};

struct TranslatorOptions {
  std::vector<SyncRoot> roots;
  size_t handle_cache_entries = 0;
  int64_t debounce_ns = 0;
  size_t debounce_max_pending = 0;
  bool move_pairs = false;  // MOVED_FROM/MOVED_TO instead of FAN_RENAME
};

struct TranslatorStats {
  uint64_t events = 0;           // kernel events processed
  uint64_t dropped_outside = 0;  // events outside every root
  uint64_t dropped_foreign = 0;  // events from a filesystem we did not mark
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;      // resolved through DirResolver
  uint64_t misses_inside = 0;     // ... of which inside a root (pre-load should avoid)
  uint64_t gone = 0;              // handles of directories already removed (skipped)
  uint64_t unresolved = 0;        // handles DirResolver failed on (→ Rescan)
  uint64_t no_dir = 0;            // events without a directory record (ignored)
  uint64_t overflows = 0;         // FAN_Q_OVERFLOW seen
  uint64_t lost = 0;              // LostEvents calls (overflow or parse error)
  uint64_t rescans = 0;           // Rescan events emitted
  uint64_t merged_namespace = 0;  // merged masks turned into a Rescan
  uint64_t coalesced_modify = 0;  // modifies folded into a pending one
  uint64_t renames_paired = 0;    // move-pair mode: MOVED_FROM+MOVED_TO made one rename
  uint64_t moves_unpaired = 0;    // move-pair mode: halves without their partner
  uint64_t roots_moved = 0;       // a root or its ancestor renamed
  uint64_t roots_deleted = 0;
};

class Translator {
 public:
  Translator(TranslatorOptions options, DirResolver* resolver, const Clock* clock);

  // Loads the roots' directories into the cache (start-up, after an overflow).
  void Preload();
  void Process(const RawEvent& ev, std::vector<WatchEvent>* out);
  // The kernel queue was read empty: settle speculative cache entries and, in move-pair
  // mode, report a MOVED_FROM whose MOVED_TO did not follow.
  void EndOfBatch(std::vector<WatchEvent>* out);
  // Events were lost (overflow, undecodable buffer): rescan every root.
  void LostEvents(std::vector<WatchEvent>* out);
  void FlushDue(std::vector<WatchEvent>* out);
  std::optional<int64_t> NextDeadlineNs() const { return debouncer_.NextDeadlineNs(); }

  const std::vector<SyncRoot>& roots() const { return options_.roots; }
  const TranslatorStats& stats() const { return stats_; }
  const HandleCache& cache() const { return cache_; }
  size_t debounce_pending() const { return debouncer_.pending(); }

 private:
  // Where an absolute path falls: root index and path relative to it, or outside.
  struct Place {
    int root = -1;
    std::string rel;
  };
  // A MOVED_FROM waiting for its MOVED_TO (move-pair mode).
  struct Stash {
    uint64_t fsid = 0;
    std::string old_abs;
    bool is_dir = false;
    std::string object_key;  // empty when the kernel gave no target fid
  };

  Place Classify(std::string_view abs) const;
  // The directory's absolute path, from the cache or the resolver; nullopt if unknown:
  // then *gone says whether it was removed (skip) or else the Rescan it needs has been
  // emitted already.
  std::optional<std::string> DirPath(const Fid& dir, bool* gone, std::vector<WatchEvent>* out);
  void RescanFs(uint64_t fsid, std::vector<WatchEvent>* out);
  void EmitRescan(int root, std::string rel, bool is_dir, std::vector<WatchEvent>* out,
                  std::string_view object = {});
  void Emit(WatchKind kind, const Place& p, bool is_dir, std::vector<WatchEvent>* out,
            std::string_view object = {});
  // A namespace change touching `abs`: emit pending modifies at or below it first.
  void FlushPlace(const Place& p, std::vector<WatchEvent>* out);
  bool RootAtOrUnder(std::string_view abs) const;
  // Moves the roots at or under old_abs; returns true if any did.
  bool MoveRoots(std::string_view old_abs, std::string_view new_abs, std::vector<WatchEvent>* out);
  void HandleMove(uint64_t fsid, const std::string& old_abs, const std::string& new_abs,
                  bool is_dir, const std::string& object_key, std::vector<WatchEvent>* out);
  void FlushStash(std::vector<WatchEvent>* out);
  void MovedOut(const std::string& old_abs, bool is_dir, std::vector<WatchEvent>* out);
  void MovedIn(const std::string& new_abs, bool is_dir, const std::string& object_key,
               std::vector<WatchEvent>* out);
  bool KnownFsid(uint64_t fsid) const;
  // Finds the roots again by their handles after they moved somewhere unknown.
  void RefreshRoots(std::vector<WatchEvent>* out);

  TranslatorOptions options_;
  DirResolver* resolver_;
  const Clock* clock_;
  HandleCache cache_;
  Debouncer debouncer_;
  std::vector<std::string> root_keys_;  // cache key of each root ("" if unknown)
  std::optional<Stash> stash_;
  TranslatorStats stats_;
};

}  // namespace hasync::engine::watch
