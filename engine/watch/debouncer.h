// Debouncer: coalesces FAN_MODIFY of files held open (append-only logs) per path.
//
// Contract: the first Modify of a path at time t starts its window; further Modifys
// before t + window are coalesced; the path is emitted as one kModify at t + window
// (FlushDue). The window is not extended by later writes, so a file written
// continuously is still reported every window (bounded lag, no starvation). A
// close-write Cancels the pending entry (the caller emits kCloseWrite at once instead).
// Namespace changes FlushUnder their path first so order is kept: a pending modify of a
// path is emitted before that path is deleted or renamed. At most `max_pending` paths
// wait; past that the oldest is emitted early. Time comes in as a parameter.
// Each pending path keeps the inode its modifies were about (the event's handle key,
// where the kernel gives one), and the emitted kModify carries it: a write through a
// descriptor whose name was removed or renamed over since is reported under that name,
// and only the handle says which inode's other names got the write (docs/REPLICATION.md,
// rule 4). A modify of the same path about another inode emits the pending one first,
// and so does a close-write about another inode instead of cancelling it.
// Thread safety: none; owned by the watcher's loop.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/watch/watch_event.h"

namespace hasync::engine::watch {

class Debouncer {
 public:
  Debouncer(int64_t window_ns, size_t max_pending);

  // Returns true when the modify was coalesced into one already pending. `object`: the
  // event's inode handle key, or empty.
  bool Modify(uint32_t root, std::string_view path, int64_t now_ns, std::vector<WatchEvent>* out,
              std::string_view object = {});
  // Drops the pending modify of exactly this path; returns whether there was one. If it
  // was about another inode than `object` (a close-write's), it is emitted into `out`
  // instead: that inode's write must still be looked at.
  bool Cancel(uint32_t root, std::string_view path, std::string_view object,
              std::vector<WatchEvent>* out);
  // Emits, oldest first, the pending modifies at `path` or below it ("" = whole root).
  void FlushUnder(uint32_t root, std::string_view path, std::vector<WatchEvent>* out);
  // Emits the pending modifies whose window has ended at `now_ns`.
  void FlushDue(int64_t now_ns, std::vector<WatchEvent>* out);
  void FlushAll(std::vector<WatchEvent>* out);

  std::optional<int64_t> NextDeadlineNs() const;
  size_t pending() const { return order_.size(); }
  int64_t window_ns() const { return window_ns_; }

 private:
  struct Pending {
    uint32_t root;
    std::string path;
    int64_t deadline_ns;
    std::string object;  // the inode's handle key, or empty
  };
  using List = std::list<Pending>;
  static std::string Key(uint32_t root, std::string_view path);
  void Emit(List::iterator it, std::vector<WatchEvent>* out);

  int64_t window_ns_;
  size_t max_pending_;
  // Invariant: order_ is sorted by deadline (deadline = arrival + a constant window and
  // time is monotonic), and index_ holds exactly one iterator per element of order_.
  List order_;
  std::unordered_map<std::string, List::iterator> index_;
};

}  // namespace hasync::engine::watch
