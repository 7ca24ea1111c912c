#include "engine/watch/translator.h"

#include <sys/fanotify.h>

#include <bit>

#include "base/assert.h"
#include "engine/watch/limits.h"

namespace hasync::engine::watch {
namespace {

constexpr uint64_t kNamespaceMask = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO;

std::string Join(std::string_view dir, std::string_view name) {
  std::string out(dir);
  if (out != "/") out += '/';
  out += name;
  return out;
}

}  // namespace

Translator::Translator(TranslatorOptions options, DirResolver* resolver, const Clock* clock)
    : options_(std::move(options)),
      resolver_(resolver),
      clock_(clock),
      cache_(options_.handle_cache_entries),
      debouncer_(options_.debounce_ns, options_.debounce_max_pending),
      root_keys_(options_.roots.size()) {
  HASYNC_ASSERT(resolver_ != nullptr && clock_ != nullptr);
  HASYNC_ASSERT(!options_.roots.empty() && options_.roots.size() <= kMaxRoots);
  for (const SyncRoot& r : options_.roots) {
    HASYNC_ASSERT(r.path.size() > 1 && r.path.front() == '/' && r.path.back() != '/');
  }
}

void Translator::Preload() {
  const size_t per_root = std::min(kMaxPreloadDirsPerRoot, cache_.max_entries());
  for (size_t i = 0; i < options_.roots.size(); ++i) {
    const SyncRoot& root = options_.roots[i];
    std::vector<std::pair<std::string, std::string>> dirs;
    // A failed walk only costs cache misses later (each resolved on demand), so its
    // status is not an error of the watcher.
    resolver_->ListDirs(root.fsid, root.path, per_root, &dirs).IgnoreError();
    for (auto& [key, path] : dirs) {
      if (path == root.path) root_keys_[i] = key;
      cache_.Insert(key, std::move(path), /*speculative=*/true);
    }
    if (root_keys_[i].empty()) {
      Result<std::string> key = resolver_->KeyOf(root.fsid, root.path);
      if (key.ok()) root_keys_[i] = *key;
    }
  }
}

bool Translator::KnownFsid(uint64_t fsid) const {
  for (const SyncRoot& r : options_.roots) {
    if (r.fsid == fsid) return true;
  }
  return false;
}

Translator::Place Translator::Classify(std::string_view abs) const {
  for (size_t i = 0; i < options_.roots.size(); ++i) {
    const std::string& root = options_.roots[i].path;
    if (!HandleCache::IsAtOrUnder(abs, root)) continue;
    Place p;
    p.root = static_cast<int>(i);
    if (abs.size() > root.size()) p.rel = std::string(abs.substr(root.size() + 1));
    return p;
  }
  return {};
}

bool Translator::RootAtOrUnder(std::string_view abs) const {
  for (const SyncRoot& r : options_.roots) {
    if (HandleCache::IsAtOrUnder(r.path, abs)) return true;
  }
  return false;
}

void Translator::EmitRescan(int root, std::string rel, bool is_dir, std::vector<WatchEvent>* out,
                            std::string_view object) {
  HASYNC_ASSERT(root >= 0);
  ++stats_.rescans;
  out->push_back(WatchEvent{WatchKind::kRescan,
                            static_cast<uint32_t>(root),
                            std::move(rel),
                            {},
                            is_dir,
                            is_dir ? std::string() : std::string(object)});
}

void Translator::Emit(WatchKind kind, const Place& p, bool is_dir, std::vector<WatchEvent>* out,
                      std::string_view object) {
  HASYNC_ASSERT(p.root >= 0);
  out->push_back(WatchEvent{kind,
                            static_cast<uint32_t>(p.root),
                            p.rel,
                            {},
                            is_dir,
                            is_dir ? std::string() : std::string(object)});
}

void Translator::FlushPlace(const Place& p, std::vector<WatchEvent>* out) {
  if (p.root >= 0) debouncer_.FlushUnder(static_cast<uint32_t>(p.root), p.rel, out);
}

void Translator::RescanFs(uint64_t fsid, std::vector<WatchEvent>* out) {
  for (size_t i = 0; i < options_.roots.size(); ++i) {
    if (options_.roots[i].fsid == fsid) {
      debouncer_.FlushUnder(static_cast<uint32_t>(i), "", out);
      EmitRescan(static_cast<int>(i), "", true, out);
    }
  }
}

std::optional<std::string> Translator::DirPath(const Fid& dir, bool* gone,
                                               std::vector<WatchEvent>* out) {
  *gone = false;
  std::string key = HandleCache::Key(dir);
  if (const HandleCache::Entry* e = cache_.Find(key)) {
    ++stats_.cache_hits;
    return e->path;
  }
  ++stats_.cache_misses;
  Result<std::string> path = resolver_->PathOf(key);
  if (!path.ok() && path.status().code() == Code::kNotFound) {
    ++stats_.gone;
    *gone = true;
    return std::nullopt;
  }
  if (!path.ok()) {
    // We cannot tell where the directory is: it may be inside a root, so every root on
    // its filesystem is rescanned.
    ++stats_.unresolved;
    RescanFs(dir.fsid, out);
    return std::nullopt;
  }
  if (Classify(*path).root >= 0) ++stats_.misses_inside;
  cache_.Insert(key, *path, /*speculative=*/true);
  return std::move(path).value();
}

bool Translator::MoveRoots(std::string_view old_abs, std::string_view new_abs,
                           std::vector<WatchEvent>* out) {
  bool any = false;
  for (size_t i = 0; i < options_.roots.size(); ++i) {
    std::string& path = options_.roots[i].path;
    if (!HandleCache::IsAtOrUnder(path, old_abs)) continue;
    path = std::string(new_abs) + path.substr(old_abs.size());
    ++stats_.roots_moved;
    debouncer_.FlushUnder(static_cast<uint32_t>(i), "", out);
    EmitRescan(static_cast<int>(i), "", true, out);
    any = true;
  }
  return any;
}

void Translator::RefreshRoots(std::vector<WatchEvent>* out) {
  for (size_t i = 0; i < options_.roots.size(); ++i) {
    if (root_keys_[i].empty()) continue;
    Result<std::string> path = resolver_->PathOf(root_keys_[i]);
    if (!path.ok()) {
      ++stats_.roots_deleted;
      continue;
    }
    if (*path != options_.roots[i].path) {
      options_.roots[i].path = std::move(path).value();
      ++stats_.roots_moved;
      EmitRescan(static_cast<int>(i), "", true, out);
    }
  }
}

void Translator::HandleMove(uint64_t fsid, const std::string& old_abs, const std::string& new_abs,
                            bool is_dir, const std::string& object_key,
                            std::vector<WatchEvent>* out) {
  (void)fsid;
  if (is_dir && RootAtOrUnder(old_abs)) {
    // A root (or a directory above it) moved: nothing changed inside the root, but the
    // operator moved the spool under us; follow it and rescan to be sure.
    cache_.RenameSubtree(old_abs, new_abs);
    if (!object_key.empty()) cache_.Insert(object_key, new_abs, false);
    MoveRoots(old_abs, new_abs, out);
    return;
  }
  const Place a = Classify(old_abs);
  const Place b = Classify(new_abs);
  FlushPlace(a, out);
  FlushPlace(b, out);
  bool doubt = false;
  if (is_dir) {
    doubt = cache_.RenameSubtree(old_abs, new_abs).speculative_under_new;
    if (!object_key.empty()) cache_.Insert(object_key, new_abs, false);
  }
  if (b.root >= 0 && b.rel.empty()) {
    // Something was renamed over a root directory itself (possible when it was empty).
    if (a.root >= 0) Emit(WatchKind::kDelete, a, is_dir, out);
    ++stats_.roots_deleted;
    EmitRescan(b.root, "", true, out);
    return;
  }
  if (a.root >= 0 && a.root == b.root) {
    out->push_back(
        WatchEvent{WatchKind::kRename, static_cast<uint32_t>(b.root), b.rel, a.rel, is_dir});
    if (doubt) EmitRescan(b.root, b.rel, is_dir, out);
    return;
  }
  if (a.root >= 0) Emit(WatchKind::kDelete, a, is_dir, out);
  if (b.root >= 0) {
    if (is_dir) {
      EmitRescan(b.root, b.rel, true, out);
    } else {
      Emit(WatchKind::kCreate, b, false, out);
    }
  }
}

void Translator::MovedOut(const std::string& old_abs, bool is_dir, std::vector<WatchEvent>* out) {
  if (is_dir) {
    cache_.EraseSubtree(old_abs);
    if (RootAtOrUnder(old_abs)) {
      // A root moved and we did not see where to: find it again by its handle.
      RefreshRoots(out);
      return;
    }
  }
  const Place a = Classify(old_abs);
  if (a.root < 0) return;
  FlushPlace(a, out);
  Emit(WatchKind::kDelete, a, is_dir, out);
}

void Translator::MovedIn(const std::string& new_abs, bool is_dir, const std::string& object_key,
                         std::vector<WatchEvent>* out) {
  if (is_dir && !object_key.empty()) cache_.Insert(object_key, new_abs, false);
  const Place b = Classify(new_abs);
  if (b.root < 0) return;
  FlushPlace(b, out);
  if (is_dir) {
    EmitRescan(b.root, b.rel, true, out);
  } else {
    Emit(WatchKind::kCreate, b, false, out);
  }
}

void Translator::FlushStash(std::vector<WatchEvent>* out) {
  if (!stash_) return;
  Stash s = std::move(*stash_);
  stash_.reset();
  ++stats_.moves_unpaired;
  MovedOut(s.old_abs, s.is_dir, out);
}

void Translator::Process(const RawEvent& ev, std::vector<WatchEvent>* out) {
  ++stats_.events;
  if (ev.mask & FAN_Q_OVERFLOW) {
    ++stats_.overflows;
    LostEvents(out);
    return;
  }
  if (!ev.has_dir) {
    ++stats_.no_dir;  // object-only records: no event we subscribe to needs them
    return;
  }
  const uint64_t fsid = ev.dir.fsid;
  if (!KnownFsid(fsid)) {
    ++stats_.dropped_foreign;
    return;
  }
  const bool is_dir = (ev.mask & FAN_ONDIR) != 0;
  const std::string object_key = ev.has_object ? HandleCache::Key(ev.object) : std::string();

  if (ev.mask & FAN_RENAME) {
    FlushStash(out);
    if (!ev.has_new_dir) {
      RescanFs(fsid, out);
      return;
    }
    bool old_gone = false;
    bool new_gone = false;
    std::optional<std::string> old_dir = DirPath(ev.dir, &old_gone, out);
    std::optional<std::string> new_dir = DirPath(ev.new_dir, &new_gone, out);
    if (!old_dir && !new_dir) return;
    if (!old_dir || !new_dir) {
      if ((!old_dir && !old_gone) || (!new_dir && !new_gone)) {
        // A Rescan of the filesystem's roots is out; still keep the cache right.
        if (old_dir && is_dir) cache_.EraseSubtree(Join(*old_dir, ev.name));
        return;
      }
      // One side was a directory removed since: the move is a departure or an arrival.
      if (old_dir) {
        MovedOut(Join(*old_dir, ev.name), is_dir, out);
      } else {
        MovedIn(Join(*new_dir, ev.new_name), is_dir, object_key, out);
      }
      return;
    }
    HandleMove(fsid, Join(*old_dir, ev.name), Join(*new_dir, ev.new_name), is_dir, object_key, out);
    return;
  }

  const uint64_t ns = ev.mask & kNamespaceMask;
  if (stash_) {
    const bool partner =
        ns == FAN_MOVED_TO && is_dir == stash_->is_dir && fsid == stash_->fsid &&
        (object_key.empty() || stash_->object_key.empty() || object_key == stash_->object_key);
    if (partner) {
      Stash s = std::move(*stash_);
      stash_.reset();
      bool gone = false;
      std::optional<std::string> new_dir = DirPath(ev.dir, &gone, out);
      if (!new_dir) {
        MovedOut(s.old_abs, s.is_dir, out);
        return;
      }
      ++stats_.renames_paired;
      HandleMove(fsid, s.old_abs, Join(*new_dir, ev.name), is_dir,
                 object_key.empty() ? s.object_key : object_key, out);
      return;
    }
    FlushStash(out);
  }

  bool gone = false;
  std::optional<std::string> dir_abs = DirPath(ev.dir, &gone, out);
  if (!dir_abs) return;  // gone: its removal is still queued; else rescanned
  const bool on_dir_itself = ev.name.empty() || ev.name == ".";
  const std::string abs = on_dir_itself ? std::move(*dir_abs) : Join(*dir_abs, ev.name);
  const Place p = Classify(abs);

  if (ev.mask & (FAN_DELETE_SELF | FAN_MOVE_SELF)) {
    // Only the roots carry self marks. A moved root is followed by the rename event of
    // its parent; a deleted one is reported here. Either way the root is rescanned.
    if (p.root >= 0 && p.rel.empty()) {
      if (ev.mask & FAN_DELETE_SELF) ++stats_.roots_deleted;
      EmitRescan(p.root, "", true, out);
    }
    return;
  }

  if (p.root < 0) {
    ++stats_.dropped_outside;
    if (!is_dir) return;
    // Outside every root, only the cache has to stay right.
    if (ns == FAN_CREATE && !object_key.empty()) {
      cache_.Insert(object_key, abs, false);
    } else if (ns == FAN_DELETE && !object_key.empty()) {
      cache_.Erase(object_key);
    } else if (ns == FAN_MOVED_FROM && RootAtOrUnder(abs) && options_.move_pairs) {
      stash_ = Stash{fsid, abs, true, object_key};
    } else if (ns & (FAN_MOVED_FROM | FAN_MOVED_TO)) {
      if (ns & FAN_MOVED_FROM) cache_.EraseSubtree(abs);
      if (ns == FAN_MOVED_TO && !object_key.empty()) cache_.Insert(object_key, abs, false);
      if (RootAtOrUnder(abs)) RefreshRoots(out);
    }
    return;
  }

  if (std::popcount(ns) > 1) {
    ++stats_.merged_namespace;
    FlushPlace(p, out);
    if (is_dir) cache_.EraseSubtree(abs);
    if (p.rel.empty()) RefreshRoots(out);
    // The inode it was about goes along: a link made, written through and removed
    // between two reads of the queue arrives as one merged event, and only the handle
    // says which file's other names got the write.
    EmitRescan(p.root, p.rel, is_dir, out, object_key);
    return;
  }
  if (ns == FAN_DELETE) {
    FlushPlace(p, out);
    if (is_dir && !object_key.empty()) cache_.Erase(object_key);
    if (p.rel.empty()) {
      ++stats_.roots_deleted;
      EmitRescan(p.root, "", true, out);
      return;
    }
    Emit(WatchKind::kDelete, p, is_dir, out, object_key);
    return;
  }
  if (ns == FAN_MOVED_FROM) {
    if (options_.move_pairs) {
      stash_ = Stash{fsid, abs, is_dir, object_key};
    } else {
      MovedOut(abs, is_dir, out);
    }
    return;
  }
  if (ns == FAN_MOVED_TO) {
    ++stats_.moves_unpaired;
    MovedIn(abs, is_dir, object_key, out);
    return;
  }
  if (ns == FAN_CREATE) {
    FlushPlace(p, out);
    Emit(WatchKind::kCreate, p, is_dir, out, object_key);
    if (is_dir) {
      if (!object_key.empty()) {
        cache_.Insert(object_key, abs, false);
      } else {
        // No target fid (older kernel): learn the new directory's handle now, so events
        // inside it need no open_by_handle_at. It is where it is *now*: speculative.
        Result<std::string> key = resolver_->KeyOf(fsid, abs);
        if (key.ok()) cache_.Insert(*key, abs, true);
      }
    }
  }
  if (ev.mask & FAN_ATTRIB) Emit(WatchKind::kAttrib, p, is_dir, out, object_key);
  if (ev.mask & FAN_CLOSE_WRITE) {
    debouncer_.Cancel(static_cast<uint32_t>(p.root), p.rel, object_key, out);
    Emit(WatchKind::kCloseWrite, p, false, out, object_key);
  } else if ((ev.mask & FAN_MODIFY) && !is_dir) {
    if (debouncer_.Modify(static_cast<uint32_t>(p.root), p.rel, clock_->NowNs(), out, object_key)) {
      ++stats_.coalesced_modify;
    }
  }
}

void Translator::EndOfBatch(std::vector<WatchEvent>* out) {
  FlushStash(out);
  cache_.Settle();
}

void Translator::LostEvents(std::vector<WatchEvent>* out) {
  ++stats_.lost;
  debouncer_.FlushAll(out);
  stash_.reset();
  cache_.Clear();
  RefreshRoots(out);
  for (size_t i = 0; i < options_.roots.size(); ++i) {
    EmitRescan(static_cast<int>(i), "", true, out);
  }
  Preload();
}

void Translator::FlushDue(std::vector<WatchEvent>* out) {
  debouncer_.FlushDue(clock_->NowNs(), out);
}

}  // namespace hasync::engine::watch
