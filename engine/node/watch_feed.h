// WatchFeed: the primary's filesystem events (engine/watch) into its journal
// (engine/journal), in the order the watcher reported them.
//
// A create, write, close-after-write or metadata change is an Upsert of its path, a
// delete a Remove, a rename a Rename, an overflow or a doubt a Rescan of the subtree.
// Each call takes at most kWatchDrainRounds batches of kWatchDrainBatch events, so a
// storm of events cannot hold the loop; what is left waits for the next call.
//
// What it owns: only the buffer the events pass through (reused between calls). The
// watcher and the journal are the node's.
//
// Threading: the loop's thread only.
#pragma once

#include <cstddef>
#include <vector>

#include "engine/journal/journal.h"
#include "engine/watch/watcher.h"

namespace hasync::engine {

class WatchFeed {
 public:
  static constexpr size_t kWatchDrainBatch = 4096;
  static constexpr int kWatchDrainRounds = 64;

  // Records what the watcher has ready in the journal (bounded per call, see above).
  void Drain(watch::Watcher& watcher, Journal& journal);

 private:
  std::vector<watch::WatchEvent> events_;
};

}  // namespace hasync::engine
