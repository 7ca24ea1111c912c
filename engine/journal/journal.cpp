#include "engine/journal/journal.h"

#include <algorithm>
#include <map>
#include <utility>

namespace hasync::engine {

std::string_view ChangeKindName(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::kUpsert:
      return "upsert";
    case ChangeKind::kRemove:
      return "remove";
    case ChangeKind::kRename:
      return "rename";
    case ChangeKind::kRescan:
      return "rescan";
  }
  return "?";
}

namespace {
bool IsAtOrBelow(std::string_view path, std::string_view top) {
  if (top.empty()) return true;
  if (path.size() < top.size() || path.substr(0, top.size()) != top) return false;
  return path.size() == top.size() || path[top.size()] == '/';
}
}  // namespace

Journal::Journal(JournalLimits limits, uint32_t root_count)
    : limits_(limits), root_count_(root_count) {
  HASYNC_ASSERT(root_count_ > 0);
  HASYNC_ASSERT(limits_.max_entries >= root_count_);
}

std::string Journal::Key(uint32_t root, std::string_view path) {
  std::string key = std::to_string(root);
  key += ':';
  key += path;
  return key;
}

Journal::Slot* Journal::At(size_t abs_index) {
  if (abs_index < base_ || abs_index - base_ >= slots_.size()) return nullptr;
  return &slots_[abs_index - base_];
}

void Journal::CountMentions(const Change& change, int delta) {
  if (change.kind == ChangeKind::kRescan) {
    pending_rescans_ = delta > 0 ? pending_rescans_ + 1 : pending_rescans_ - 1;
    return;
  }
  auto bump = [&](std::string_view path) {
    std::string key = Key(change.root, path);
    if (delta > 0) {
      ++mentions_[key];
      return;
    }
    auto it = mentions_.find(key);
    HASYNC_ASSERT(it != mentions_.end() && it->second > 0);
    if (--it->second == 0) mentions_.erase(it);
  };
  bump(change.path);
  if (change.kind == ChangeKind::kRename) bump(change.from);
}

bool Journal::Mentions(uint32_t root, std::string_view path) const {
  if (mentions_.count(Key(root, path)) != 0) return true;
  if (pending_rescans_ == 0) return false;
  for (const Slot& slot : slots_) {  // rescans are rare: only after overflow or doubt
    if (slot.live && slot.change.kind == ChangeKind::kRescan && slot.change.root == root &&
        IsAtOrBelow(path, slot.change.path)) {
      return true;
    }
  }
  return false;
}

void Journal::Append(Change change) {
  change.seq = seq_;
  CountMentions(change, +1);
  bytes_ += TextBytes(change);
  if (change.kind == ChangeKind::kUpsert) {
    pending_upsert_[Key(change.root, change.path)] = base_ + slots_.size();
  }
  slots_.push_back(Slot{std::move(change), true});
  ++live_;
  if (OverLimit()) Overflow();
}

void Journal::Kill(size_t abs_index) {
  Slot* slot = At(abs_index);
  HASYNC_ASSERT(slot != nullptr && slot->live);
  slot->live = false;
  CountMentions(slot->change, -1);
  bytes_ -= TextBytes(slot->change);
  --live_;
  // A dead slot waits in the deque until Take passes it; free its text now.
  std::string().swap(slot->change.path);
  std::string().swap(slot->change.object);
  std::vector<std::string>().swap(slot->change.other_objects);
  std::string().swap(slot->change.from);
}

bool Journal::OverLimit() const {
  // Dead slots count too: they occupy the deque until Take passes them.
  return slots_.size() > limits_.max_entries || bytes_ > limits_.max_bytes;
}

void Journal::Overflow() {
  ++stats_.overflows;
  slots_.clear();
  pending_upsert_.clear();
  mentions_.clear();
  pending_rescans_ = root_count_;
  base_ = 0;
  live_ = 0;
  bytes_ = 0;
  for (uint32_t root = 0; root < root_count_; ++root) {
    slots_.push_back(Slot{Change{ChangeKind::kRescan, root, "", "", seq_}, true});
    ++live_;
  }
}

void Journal::Upsert(uint32_t root, std::string_view path, std::string_view object) {
  AddUpsert(root, path, object, /*object_is_newest=*/true);
}

void Journal::Requeue(uint32_t root, std::string_view path, std::string_view object,
                      const std::vector<std::string>& other_objects) {
  AddUpsert(root, path, object, /*object_is_newest=*/false);
  if (other_objects.empty()) return;
  // The entry just added or coalesced into is the pending one for the name (none after
  // an overflow: the rescan that replaced everything covers it).
  auto it = pending_upsert_.find(Key(root, path));
  if (it == pending_upsert_.end()) return;
  Slot* slot = At(it->second);
  if (slot == nullptr || !slot->live) return;
  // Oldest last here, so each goes in front of the ones kept: their order stays.
  bytes_ -= TextBytes(slot->change);
  for (auto k = other_objects.rbegin(); k != other_objects.rend(); ++k) {
    if (!AddObject(slot->change, *k, false)) ++stats_.objects_dropped;
  }
  bytes_ += TextBytes(slot->change);
  if (OverLimit()) Overflow();
}

size_t Journal::TextBytes(const Change& c) {
  size_t n = c.path.size() + c.from.size() + c.object.size();
  for (const std::string& key : c.other_objects) n += key.size();
  return n;
}

bool Journal::AddObject(Change& change, std::string_view key, bool newest) {
  if (key.empty() || change.object == key) return true;
  auto& others = change.other_objects;
  auto seen = std::find(others.begin(), others.end(), key);
  if (seen != others.end()) {
    if (!newest) return true;
    others.erase(seen);  // again the latest: it becomes `object` below
  }
  if (change.object.empty()) {
    change.object = std::string(key);
  } else if (newest) {
    others.push_back(std::move(change.object));
    change.object = std::string(key);
  } else {
    others.insert(others.begin(), std::string(key));  // older than every one kept
  }
  if (others.size() <= Change::kMaxOtherObjects) return true;
  // Bounded: the oldest goes. Its inode's other names are then compared only if a later
  // event names one of them (a fifth inode under one name in one entry).
  others.erase(others.begin());
  return false;
}

void Journal::AddUpsert(uint32_t root, std::string_view path, std::string_view object,
                        bool object_is_newest) {
  HASYNC_ASSERT(root < root_count_);
  ++seq_;
  ++stats_.pushed;
  auto it = pending_upsert_.find(Key(root, path));
  if (it != pending_upsert_.end()) {
    Slot* slot = At(it->second);
    if (slot != nullptr && slot->live) {
      ++stats_.coalesced;  // the sender reads the file as it is when it sends
      bytes_ -= TextBytes(slot->change);
      if (!AddObject(slot->change, object, object_is_newest)) ++stats_.objects_dropped;
      bytes_ += TextBytes(slot->change);
      if (OverLimit()) Overflow();
      return;
    }
    pending_upsert_.erase(it);
  }
  Change c{ChangeKind::kUpsert, root, std::string(path), "", 0};
  c.object = std::string(object);
  Append(std::move(c));
}

void Journal::Remove(uint32_t root, std::string_view path, std::string_view object) {
  HASYNC_ASSERT(root < root_count_);
  ++seq_;
  ++stats_.pushed;
  // The earlier Upsert stays where it is (its content may be the source of a hard link
  // made before this removal), but a later Upsert of the same name is a new object and
  // must not be merged into it.
  pending_upsert_.erase(Key(root, path));
  Change c{ChangeKind::kRemove, root, std::string(path), "", 0};
  c.object = std::string(object);
  Append(std::move(c));
}

namespace {

// The latest object first, then the others from the most recent back.
std::vector<std::string> ObjectsOf(const Change& c) {
  std::vector<std::string> out;
  if (!c.object.empty()) out.push_back(c.object);
  out.insert(out.end(), c.other_objects.rbegin(), c.other_objects.rend());
  return out;
}

}  // namespace

void Journal::KillUpsertsUnder(
    uint32_t root, std::string_view path, bool subtree,
    std::vector<std::pair<std::string, std::vector<std::string>>>* collect) {
  if (!subtree) {
    auto it = pending_upsert_.find(Key(root, path));
    if (it == pending_upsert_.end()) return;
    Slot* slot = At(it->second);
    if (slot != nullptr && slot->live) {
      if (collect != nullptr) collect->emplace_back(std::string(), ObjectsOf(slot->change));
      Kill(it->second);
    }
    pending_upsert_.erase(it);
    return;
  }
  // A directory: every pending Upsert at or below it. O(pending), bounded by
  // max_entries; directory renames are rare in a spool.
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    if (!slot.live || slot.change.kind != ChangeKind::kUpsert || slot.change.root != root ||
        !IsAtOrBelow(slot.change.path, path)) {
      continue;
    }
    if (collect != nullptr) {
      collect->emplace_back(slot.change.path.substr(path.size()), ObjectsOf(slot.change));
    }
    pending_upsert_.erase(Key(root, slot.change.path));
    Kill(base_ + i);
  }
}

void Journal::Rename(uint32_t root, std::string_view from, std::string_view to, bool is_dir) {
  HASYNC_ASSERT(root < root_count_);
  ++seq_;
  ++stats_.pushed;
  // Pending Upserts at or below the target move behind the rename too. Either they
  // were of the replaced object (read before the rename they would ship the renamed
  // object's content ahead of its rename; read after it, they find it unchanged) or
  // they are of the renamed object itself: the watcher names a file by its directory's
  // handle, resolved when the event is read, so a file written in `from/…` just before
  // the rename is reported under `to/…`. Dropping them lost that file.
  // Each name keeps the objects of both ends (the inodes their events were about), the
  // replaced one's first: an Upsert of the replaced file, taken after the rename, finds
  // the renamed file under the name and, by that object, the replaced inode's other
  // names, which may hold a change made through this name (without it, those names kept
  // their old content for good). The renamed file's own object costs a comparison of
  // the name's handle: after the rename the name holds that inode.
  std::vector<std::pair<std::string, std::vector<std::string>>> killed;  // (suffix, objects)
  KillUpsertsUnder(root, to, is_dir, &killed);
  KillUpsertsUnder(root, from, is_dir, &killed);
  // The sender may already have taken an Upsert of the object (or, for a directory, of
  // something inside it) under the old name and found nothing there: the rename came
  // first on disk, its event later, and no pending entry would ever name the new one.
  // So the new name is looked at again after the rename: an Upsert of a file (a stat and
  // nothing more if the model is current), a rescan of a directory's subtree.
  if (!is_dir) killed.emplace_back();
  // suffix → objects, the target's before the source's, each once; parents first.
  std::map<std::string, std::vector<std::string>> moved;
  for (auto& [suffix, objects] : killed) {
    std::vector<std::string>& keep = moved[suffix];
    for (std::string& key : objects) {
      if (std::find(keep.begin(), keep.end(), key) == keep.end()) keep.push_back(std::move(key));
    }
  }
  Append(Change{ChangeKind::kRename, root, std::string(to), std::string(from), 0});
  for (auto& [suffix, objects] : moved) {
    ++stats_.rewritten;
    Change c{ChangeKind::kUpsert, root, std::string(to) + suffix, "", 0};
    // Oldest (last) first, each as the latest so far: the first ends as `object`.
    for (auto k = objects.rbegin(); k != objects.rend(); ++k) {
      if (!AddObject(c, *k, true)) ++stats_.objects_dropped;
    }
    Append(std::move(c));
  }
  if (is_dir) Append(Change{ChangeKind::kRescan, root, std::string(to), "", 0});
}

void Journal::Rescan(uint32_t root, std::string_view subtree, std::string_view object) {
  HASYNC_ASSERT(root < root_count_);
  ++seq_;
  ++stats_.pushed;
  Change c{ChangeKind::kRescan, root, std::string(subtree), "", 0};
  c.object = std::string(object);
  Append(std::move(c));
}

size_t Journal::Take(std::vector<Change>& out, size_t max) {
  size_t taken = 0;
  while (taken < max && !slots_.empty()) {
    Slot& front = slots_.front();
    if (front.live) {
      if (front.change.kind == ChangeKind::kUpsert) {
        auto it = pending_upsert_.find(Key(front.change.root, front.change.path));
        if (it != pending_upsert_.end() && it->second == base_) pending_upsert_.erase(it);
      }
      CountMentions(front.change, -1);
      bytes_ -= TextBytes(front.change);
      --live_;
      out.push_back(std::move(front.change));
      ++taken;
    }
    slots_.pop_front();
    ++base_;
  }
  if (slots_.empty()) ReleaseIdleTables();
  return taken;
}

void Journal::ReleaseIdleTables() {
  // A hash table's bucket array never shrinks as entries go: after a burst of N pending
  // paths both tables would keep 8 bytes per bucket of that peak for good (memory at
  // rest, DESIGN §8). Empty, they are replaced by fresh ones.
  if (pending_upsert_.empty() && pending_upsert_.bucket_count() > kIdleBuckets) {
    decltype(pending_upsert_)().swap(pending_upsert_);
  }
  if (mentions_.empty() && mentions_.bucket_count() > kIdleBuckets) {
    decltype(mentions_)().swap(mentions_);
  }
}

void Journal::Clear() {
  slots_.clear();
  pending_upsert_.clear();
  mentions_.clear();
  pending_rescans_ = 0;
  base_ = 0;
  live_ = 0;
  bytes_ = 0;
  ReleaseIdleTables();
}

}  // namespace hasync::engine
