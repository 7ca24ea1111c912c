// ByteQueue: an outbox. Bytes are appended at the back and consumed from the front; the
// consumed prefix is reclaimed lazily (all at once when the queue empties, or when it
// is over 1 MiB and more than half the storage).
//
// Contract: data() is every byte appended and not consumed yet, in order. Take() moves
// them into the caller's vector — by swapping storage when nothing was consumed, so a
// full outbox is handed over without a copy — and leaves the queue empty.
// Thread safety: none.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "base/assert.h"

namespace hasync {

class ByteQueue {
 public:
  std::span<const std::byte> data() const { return {buf_.data() + start_, buf_.size() - start_}; }
  size_t size() const { return buf_.size() - start_; }

  void Append(std::span<const std::byte> bytes) {
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
  }
  // For encoders that append to a vector themselves; they must only append.
  std::vector<std::byte>& back() { return buf_; }

  void Consume(size_t n) {
    HASYNC_ASSERT(n <= size());
    start_ += n;
    if (start_ == buf_.size()) {
      buf_.clear();
      start_ = 0;
    } else if (start_ > (size_t{1} << 20) && start_ * 2 > buf_.size()) {
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(start_));
      start_ = 0;
    }
  }

  // Replaces `into`'s contents with data() and empties the queue.
  void Take(std::vector<std::byte>& into) {
    into.clear();
    if (start_ == 0) {
      into.swap(buf_);  // the queue keeps into's old storage for what comes next
    } else {
      into.assign(buf_.begin() + static_cast<std::ptrdiff_t>(start_), buf_.end());
      buf_.clear();
    }
    start_ = 0;
  }

  // Frees the storage of an empty queue holding more than `keep` bytes of capacity;
  // returns whether it did.
  bool ReleaseIfIdle(size_t keep) {
    if (size() != 0 || buf_.capacity() <= keep) return false;
    std::vector<std::byte>().swap(buf_);
    start_ = 0;
    return true;
  }

 private:
  std::vector<std::byte> buf_;
  size_t start_ = 0;
};

}  // namespace hasync
