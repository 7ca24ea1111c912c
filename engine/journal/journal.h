// Journal: the primary's bounded, ordered list of changes waiting to be sent.
//
// The watcher tells the journal *what was touched*; the sender later looks at the file
// as it is *now* and decides what to ship (content, a hard link, metadata, nothing).
// So the journal keeps only four kinds of entry:
//   Upsert(p)      p was created, written, closed after writing, or had metadata changed
//   Remove(p)      p was unlinked or rmdir'ed
//   Rename(a, b)   a was renamed to b (file or directory)
//   Rescan(p)      anything under p may have changed without an event (overflow, doubt)
//
// Contract:
// - Order: entries come out in the order the namespace changes happened on the primary;
//   Upserts are coalesced per path only while no Remove/Rename touched that path in
//   between, so the standby replays the primary's sequence of links, unlinks and renames
//   (DESIGN §6) and always holds a state the primary had.
// - Renames: a pending Upsert of a path under a renamed directory (or of the renamed
//   file) is rewritten to the new name and moved behind the Rename: once the rename has
//   happened the old name no longer exists on the primary, so the content can only be
//   read under the new one. A pending Upsert of the rename's *target* (or below it)
//   moves behind the Rename as well: read before it, it would ship the renamed file's
//   content under the target ahead of the rename; and it may name the renamed object
//   itself, because the watcher resolves a directory handle to its path when it reads
//   the event, which can be after the rename. Every Rename is followed by a look at its
//   new name — an Upsert of a file, a Rescan of a directory: an Upsert the sender took
//   before the rename's event arrived found nothing under the old name (the rename had
//   already happened on disk), and only a look at the new name finds that content again.
// - Bounded memory: at most `max_entries` entries and `max_bytes` of text (paths and
//   inode handle keys). Going
//   past either collapses the journal into one Rescan per root ("overflow"); a rescan
//   compares the primary with what the standby acknowledged, so nothing is missed.
// - Sequence: each Push that changes the journal advances change_seq, which the lock
//   record reports as progress.
// Thread safety: none; the primary's event loop owns the journal.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"

namespace hasync::engine {

enum class ChangeKind : uint8_t { kUpsert, kRemove, kRename, kRescan };
std::string_view ChangeKindName(ChangeKind kind);

struct Change {
  ChangeKind kind = ChangeKind::kUpsert;
  uint32_t root = 0;  // index into the configured sync roots
  std::string path;   // relative to the root; "" is the root itself (Rescan only)
  std::string from;   // Rename only: the old name
  uint64_t seq = 0;   // journal sequence when it was pushed
  // Upsert/Remove/Rescan: the handle key of the inode the latest event for this entry was about
  // (WatchEvent::object), or empty. A hint; not part of the change's identity.
  std::string object = {};
  // Upsert: the other inodes that coalesced events of this name were about, oldest
  // first, at most kMaxOtherObjects. One name can be two inodes' within one entry: a
  // write through a name that a file was then renamed over reports the written inode
  // under the name, and the kernel may merge that event into one queued earlier, ahead
  // of an event of the file now there. Each inode's other names must be compared.
  std::vector<std::string> other_objects = {};
  static constexpr size_t kMaxOtherObjects = 4;
  friend bool operator==(const Change& a, const Change& b) {
    return a.kind == b.kind && a.root == b.root && a.path == b.path && a.from == b.from &&
           a.seq == b.seq;
  }
};

struct JournalLimits {
  size_t max_entries = 1 << 20;
  size_t max_bytes = 256u << 20;
};

struct JournalStats {
  uint64_t pushed = 0;           // Push calls
  uint64_t coalesced = 0;        // Upserts merged into a pending one
  uint64_t rewritten = 0;        // Upserts placed behind a Rename (moved, or of its new name)
  uint64_t overflows = 0;        // collapses into Rescan
  uint64_t objects_dropped = 0;  // an Upsert's oldest other object, past kMaxOtherObjects
};

class Journal {
 public:
  Journal(JournalLimits limits, uint32_t root_count);

  // `object`: the event's inode handle key, if the kernel gave one (kept per entry: the
  // latest of coalesced Upserts as `object`, the other ones in `other_objects`).
  void Upsert(uint32_t root, std::string_view path, std::string_view object = {});
  // The sender putting back an entry it could not finish (a read aborted by a change):
  // an Upsert whose objects are older than any event's already pending for the name, so
  // they fill in a missing object and never replace the latest one.
  void Requeue(uint32_t root, std::string_view path, std::string_view object,
               const std::vector<std::string>& other_objects = {});
  void Remove(uint32_t root, std::string_view path, std::string_view object = {});
  // is_dir: the renamed object is a directory (pending Upserts below it move too).
  void Rename(uint32_t root, std::string_view from, std::string_view to, bool is_dir);
  // `object`: for the Rescan of one name whose namespace events the kernel merged, the
  // handle key of the inode the event was about (see Upsert).
  void Rescan(uint32_t root, std::string_view subtree, std::string_view object = {});

  // Moves up to `max` entries, oldest first, into `out`; returns how many.
  size_t Take(std::vector<Change>& out, size_t max);
  // Drops everything pending (a resync after reconnect supersedes it).
  void Clear();

  // Whether a pending entry names `path` of `root` (an Upsert or Remove of it, a Rename
  // to or from it) or a pending Rescan covers it. The sender asks before it removes a
  // name that is missing now: if a later entry names it, the removal is not the last
  // word about that name, and acting on it now could show the standby a state the
  // primary never had (docs/REPLICATION.md, "removals of names that come back").
  bool Mentions(uint32_t root, std::string_view path) const;

  bool empty() const { return live_ == 0; }
  size_t size() const { return live_; }
  size_t bytes() const { return bytes_; }
  uint64_t change_seq() const { return seq_; }
  const JournalStats& stats() const { return stats_; }

 private:
  struct Slot {
    Change change;
    bool live = false;
  };
  void AddUpsert(uint32_t root, std::string_view path, std::string_view object,
                 bool object_is_newest);
  // Adds `key` to the change's objects (as the latest one, or as an older one), bounded;
  // false when the oldest other had to go. The caller keeps bytes_.
  static bool AddObject(Change& change, std::string_view key, bool newest);
  static size_t TextBytes(const Change& c);
  void Append(Change change);
  void Kill(size_t abs_index);
  // Kills pending Upserts at `path` or below it; returns their paths (relative to path)
  // and objects (the latest first) when `collect` is set.
  void KillUpsertsUnder(uint32_t root, std::string_view path, bool subtree,
                        std::vector<std::pair<std::string, std::vector<std::string>>>* collect);
  void Overflow();
  bool OverLimit() const;
  // Gives back the hash tables' bucket arrays grown by a burst, once the journal is empty.
  void ReleaseIdleTables();
  static constexpr size_t kIdleBuckets = 1024;
  Slot* At(size_t abs_index);
  static std::string Key(uint32_t root, std::string_view path);

  JournalLimits limits_;
  uint32_t root_count_;
  // Entries live in a deque addressed by an absolute index (base_ + position) so the
  // per-path index below stays valid while the front is consumed.
  std::deque<Slot> slots_;
  size_t base_ = 0;
  size_t live_ = 0;
  size_t bytes_ = 0;
  uint64_t seq_ = 0;
  // root+path → absolute index of its pending Upsert that no later namespace change
  // on the same path has passed.
  std::unordered_map<std::string, size_t> pending_upsert_;
  // root+path → how many live entries name it (path, or a Rename's from); at most two
  // keys per live entry, erased at zero.
  std::unordered_map<std::string, uint32_t> mentions_;
  size_t pending_rescans_ = 0;
  void CountMentions(const Change& change, int delta);
  JournalStats stats_;
};

}  // namespace hasync::engine
