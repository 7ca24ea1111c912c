#include "engine/node/watch_feed.h"

#include "engine/log.h"

namespace hasync::engine {

void WatchFeed::Drain(watch::Watcher& watcher, Journal& journal) {
  for (int round = 0; round < kWatchDrainRounds && watcher.ready() > 0; ++round) {
    events_.clear();
    watcher.Drain(&events_, kWatchDrainBatch);
    const bool debug = LogEnabled(Level::kDebug);
    for (const watch::WatchEvent& e : events_) {
      if (debug) {
        Log(Level::kDebug, "watch_event")
            .kv("kind", static_cast<uint64_t>(e.kind))
            .kv("root", e.root)
            .kv("path", e.path)
            .kv("from", e.old_path);
      }
      switch (e.kind) {
        case watch::WatchKind::kCreate:
        case watch::WatchKind::kModify:
        case watch::WatchKind::kCloseWrite:
        case watch::WatchKind::kAttrib:
          journal.Upsert(e.root, e.path, e.object);
          break;
        case watch::WatchKind::kDelete:
          journal.Remove(e.root, e.path, e.object);
          break;
        case watch::WatchKind::kRename:
          journal.Rename(e.root, e.old_path, e.path, e.is_dir);
          break;
        case watch::WatchKind::kRescan:
          journal.Rescan(e.root, e.path, e.object);
          break;
      }
    }
  }
}

}  // namespace hasync::engine
