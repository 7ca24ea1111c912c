#include "engine/watch/handle_cache.h"

#include <cstring>

#include "base/assert.h"

namespace hasync::engine::watch {

HandleCache::HandleCache(size_t max_entries) : max_entries_(max_entries) {
  HASYNC_ASSERT(max_entries > 0);
}

std::string HandleCache::Key(uint64_t fsid, int32_t handle_type, std::string_view handle) {
  std::string key(12 + handle.size(), '\0');
  std::memcpy(key.data(), &fsid, 8);
  std::memcpy(key.data() + 8, &handle_type, 4);
  std::memcpy(key.data() + 12, handle.data(), handle.size());
  return key;
}

std::string HandleCache::Key(const Fid& fid) { return Key(fid.fsid, fid.handle_type, fid.handle); }

bool HandleCache::IsAtOrUnder(std::string_view path, std::string_view prefix) {
  if (!path.starts_with(prefix)) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

const HandleCache::Entry* HandleCache::Find(std::string_view key) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &it->second->entry;
}

void HandleCache::Insert(std::string_view key, std::string path, bool speculative) {
  Entry entry{std::move(path), speculative ? epoch_ : 0};
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->entry = std::move(entry);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (index_.size() >= max_entries_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
    ++evictions_;
  }
  lru_.push_front(Node{std::string(key), std::move(entry)});
  index_.emplace(lru_.front().key, lru_.begin());
}

void HandleCache::Erase(std::string_view key) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
}

HandleCache::RenameOutcome HandleCache::RenameSubtree(std::string_view old_path,
                                                      std::string_view new_path) {
  RenameOutcome outcome;
  for (auto it = lru_.begin(); it != lru_.end();) {
    auto next = std::next(it);
    Entry& e = it->entry;
    if (IsAtOrUnder(e.path, old_path)) {
      if (IsSpeculative(e)) {
        index_.erase(it->key);
        lru_.erase(it);
        ++outcome.dropped;
      } else {
        e.path = std::string(new_path) + e.path.substr(old_path.size());
        ++outcome.rewritten;
      }
    } else if (IsAtOrUnder(e.path, new_path)) {
      if (IsSpeculative(e)) outcome.speculative_under_new = true;
      index_.erase(it->key);
      lru_.erase(it);
      ++outcome.dropped;
    }
    it = next;
  }
  return outcome;
}

size_t HandleCache::EraseSubtree(std::string_view path) {
  size_t n = 0;
  for (auto it = lru_.begin(); it != lru_.end();) {
    auto next = std::next(it);
    if (IsAtOrUnder(it->entry.path, path)) {
      index_.erase(it->key);
      lru_.erase(it);
      ++n;
    }
    it = next;
  }
  return n;
}

void HandleCache::Clear() {
  index_.clear();
  lru_.clear();
}

}  // namespace hasync::engine::watch
