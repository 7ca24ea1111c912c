// HandleCache: directory file handle → absolute path, bounded, least recently used out.
//
// Why: every fanotify event names its directory by file handle; turning a handle into a
// path costs open_by_handle_at + readlink. The cache answers most events with one hash
// lookup, including "this directory is outside every sync root" (the entry's path is
// outside), so unrelated activity on a filesystem mark is dropped without a syscall.
//
// Exact vs speculative entries. An entry learned from the event stream (a mkdir carrying
// the new directory's handle, a rename rewriting a subtree) is exact *as of the event
// being processed*. An entry resolved by a syscall tells where the directory is *now*,
// which may be ahead of the events still queued (a rename not yet read). It stays
// speculative until the kernel queue has been seen empty after it was resolved
// (Settle()): from then on every earlier event has been processed, so it is exact too.
// RenameSubtree reports speculative entries it finds under the new name: events
// translated with them may carry the new path before the rename; the caller rescans.
//
// Invariant: lru_ and index_ hold the same entries; size() <= max_entries.
// Thread safety: none; owned by the watcher's loop.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

#include "engine/watch/event_parser.h"

namespace hasync::engine::watch {

class HandleCache {
 public:
  struct Entry {
    std::string path;  // absolute, no trailing '/'
    uint64_t epoch;    // 0 = exact; otherwise the resolve epoch (see Settle)
  };
  struct RenameOutcome {
    size_t rewritten = 0;                // entries moved from old to new prefix
    size_t dropped = 0;                  // entries erased (stale or speculative)
    bool speculative_under_new = false;  // doubt: rescan the new subtree
  };

  explicit HandleCache(size_t max_entries);

  // fsid, handle type and handle bytes, as one map key.
  static std::string Key(const Fid& fid);
  static std::string Key(uint64_t fsid, int32_t handle_type, std::string_view handle);

  // The entry for `key`, marked most recently used; nullptr when absent.
  const Entry* Find(std::string_view key);
  void Insert(std::string_view key, std::string path, bool speculative);
  void Erase(std::string_view key);
  // A directory moved from old_path to new_path (absolute). Exact entries at or below
  // old_path are rewritten; speculative ones there, and every entry at or below
  // new_path (the replaced target, or directories resolved after the rename), are
  // erased so they are resolved again.
  RenameOutcome RenameSubtree(std::string_view old_path, std::string_view new_path);
  // Erases every entry at or below `path`; returns how many.
  size_t EraseSubtree(std::string_view path);
  // The kernel queue was seen empty: every entry resolved before now becomes exact.
  void Settle() { settled_epoch_ = epoch_++; }
  bool IsSpeculative(const Entry& e) const { return e.epoch > settled_epoch_; }
  void Clear();

  size_t size() const { return index_.size(); }
  size_t max_entries() const { return max_entries_; }
  uint64_t evictions() const { return evictions_; }

  static bool IsAtOrUnder(std::string_view path, std::string_view prefix);

 private:
  struct Node {
    std::string key;
    Entry entry;
  };
  using List = std::list<Node>;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  size_t max_entries_;
  List lru_;  // front = most recently used
  std::unordered_map<std::string, List::iterator, Hash, std::equal_to<>> index_;
  uint64_t epoch_ = 1;
  uint64_t settled_epoch_ = 0;
  uint64_t evictions_ = 0;
};

}  // namespace hasync::engine::watch
