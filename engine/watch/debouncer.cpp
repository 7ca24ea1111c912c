#include "engine/watch/debouncer.h"

#include <cstring>

#include "base/assert.h"

namespace hasync::engine::watch {

Debouncer::Debouncer(int64_t window_ns, size_t max_pending)
    : window_ns_(window_ns), max_pending_(max_pending) {
  HASYNC_ASSERT(window_ns >= 0);
  HASYNC_ASSERT(max_pending > 0);
}

std::string Debouncer::Key(uint32_t root, std::string_view path) {
  std::string key(sizeof(root), '\0');
  std::memcpy(key.data(), &root, sizeof(root));
  key.append(path);
  return key;
}

void Debouncer::Emit(List::iterator it, std::vector<WatchEvent>* out) {
  out->push_back(WatchEvent{WatchKind::kModify, it->root, it->path, {}, false});
  index_.erase(Key(it->root, it->path));
  order_.erase(it);
}

bool Debouncer::Modify(uint32_t root, std::string_view path, int64_t now_ns,
                       std::vector<WatchEvent>* out) {
  std::string key = Key(root, path);
  if (index_.contains(key)) return true;
  if (order_.size() >= max_pending_) Emit(order_.begin(), out);
  // A clock that went backwards would break the sort invariant; clamp to the last
  // deadline instead (the monotonic clock never does, a test clock might).
  int64_t deadline = now_ns + window_ns_;
  if (!order_.empty() && order_.back().deadline_ns > deadline) deadline = order_.back().deadline_ns;
  order_.push_back(Pending{root, std::string(path), deadline});
  index_.emplace(std::move(key), std::prev(order_.end()));
  return false;
}

bool Debouncer::Cancel(uint32_t root, std::string_view path) {
  auto it = index_.find(Key(root, path));
  if (it == index_.end()) return false;
  order_.erase(it->second);
  index_.erase(it);
  return true;
}

void Debouncer::FlushUnder(uint32_t root, std::string_view path, std::vector<WatchEvent>* out) {
  if (order_.empty()) return;
  for (auto it = order_.begin(); it != order_.end();) {
    auto next = std::next(it);
    const std::string& p = it->path;
    bool under = path.empty() || p == path ||
                 (p.size() > path.size() && p.starts_with(path) && p[path.size()] == '/');
    if (it->root == root && under) Emit(it, out);
    it = next;
  }
}

void Debouncer::FlushDue(int64_t now_ns, std::vector<WatchEvent>* out) {
  while (!order_.empty() && order_.front().deadline_ns <= now_ns) Emit(order_.begin(), out);
}

void Debouncer::FlushAll(std::vector<WatchEvent>* out) {
  while (!order_.empty()) Emit(order_.begin(), out);
}

std::optional<int64_t> Debouncer::NextDeadlineNs() const {
  if (order_.empty()) return std::nullopt;
  return order_.front().deadline_ns;
}

}  // namespace hasync::engine::watch
