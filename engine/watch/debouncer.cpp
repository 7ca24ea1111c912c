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
  out->push_back(WatchEvent{
      WatchKind::kModify, it->root, std::move(it->path), {}, false, std::move(it->object)});
  const WatchEvent& sent = out->back();
  index_.erase(Key(sent.root, sent.path));
  order_.erase(it);
}

bool Debouncer::Modify(uint32_t root, std::string_view path, int64_t now_ns,
                       std::vector<WatchEvent>* out, std::string_view object) {
  std::string key = Key(root, path);
  if (auto pending = index_.find(key); pending != index_.end()) {
    Pending& p = *pending->second;
    if (object.empty() || p.object == object) return true;
    if (p.object.empty()) {
      p.object = std::string(object);
      return true;
    }
    // Another inode under the same name: the pending one goes out now, with its own.
    Emit(pending->second, out);
  }
  if (order_.size() >= max_pending_) Emit(order_.begin(), out);
  // A clock that went backwards would break the sort invariant; clamp to the last
  // deadline instead (the monotonic clock never does, a test clock might).
  int64_t deadline = now_ns + window_ns_;
  if (!order_.empty() && order_.back().deadline_ns > deadline) deadline = order_.back().deadline_ns;
  order_.push_back(Pending{root, std::string(path), deadline, std::string(object)});
  index_.emplace(std::move(key), std::prev(order_.end()));
  return false;
}

bool Debouncer::Cancel(uint32_t root, std::string_view path, std::string_view object,
                       std::vector<WatchEvent>* out) {
  auto it = index_.find(Key(root, path));
  if (it == index_.end()) return false;
  if (!it->second->object.empty() && it->second->object != object) {
    Emit(it->second, out);
    return true;
  }
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
