// SlotPool: equal-sized slots carved from 256 KiB slabs (anonymous mappings: a page
// costs memory once a slot on it is used), with a free list; and PoolAllocator, which
// gives a node-based container (the model's std::map) its nodes from one. The model
// holds one node per path of the spool, a million and more: glibc's malloc puts an
// 8-byte header in front of each and rounds it up to 16 bytes, which a slot does not
// (docs/PERFORMANCE.md, "The model's nodes from a pool of its own").
//
// Bounds: a pool holds as many slots as the most it ever had in use at once (a freed
// slot goes to the free list for the next allocation, not back to the kernel); all its
// slabs are unmapped when the last slot in use is freed, and with the pool. A model that
// shrinks for good after a peak keeps the peak's slabs; one that is cleared (a resync
// starting over) gives them all back.
//
// Handles: each slot has a 32-bit number (Handle, SlotAt), half the size of a pointer,
// which the model's inode index stores. A pointer finds its slab by a binary search over
// the slabs' addresses (a model of 1.5 million entries has about 730 slabs).
//
// Builds with AddressSanitizer poison every slot not in use, so a node used after it was
// freed is reported while its slot stays free. Unlike malloc's, the pool has no
// quarantine: a freed slot is the next one handed out, and a stale pointer into it then
// reads the new node unreported.
//
// Thread safety: none; a pool belongs to one container, on one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace hasync::engine {

class SlotPool {
 public:
  static constexpr size_t kSlabBytes = 256 * 1024;

  SlotPool() = default;
  SlotPool(const SlotPool&) = delete;
  SlotPool& operator=(const SlotPool&) = delete;
  ~SlotPool();

  // A slot of `bytes` (8-byte aligned). Every call of one pool must ask the same size:
  // the first call fixes it (asserted). Throws std::bad_alloc when no slab can be mapped.
  void* Allocate(size_t bytes);
  // Returns a slot of this pool.
  void Free(void* slot);

  // The number of the slot that holds `p` (any address inside a slot of this pool), and
  // the start of the slot with number `handle`. Stable while the slot is in use.
  uint32_t Handle(const void* p) const;
  void* SlotAt(uint32_t handle) const {
    return slabs_[handle / per_slab_] + (handle % per_slab_) * slot_bytes_;
  }

  size_t slot_bytes() const { return slot_bytes_; }
  size_t slots_per_slab() const { return per_slab_; }  // once slot_bytes() is set
  size_t in_use() const { return in_use_; }
  size_t slabs() const { return slabs_.size(); }

 private:
  using Start = std::pair<const std::byte*, uint32_t>;  // (a slab's address, its number)

  void ReleaseAll();

  size_t slot_bytes_ = 0;
  size_t per_slab_ = 1;            // slots per slab, once slot_bytes_ is known
  std::vector<std::byte*> slabs_;  // by number (a handle's quotient), each mmap'd
  std::vector<Start> by_address_;  // the same slabs, by address, for Handle
  void* free_ = nullptr;           // free list, linked through the first bytes of each slot
  size_t carved_ = 0;              // slots handed out of the last slab so far
  size_t in_use_ = 0;
};

// An allocator whose single-object allocations (a node-based container's nodes) come
// from a shared SlotPool; anything else (none for std::map) goes to operator new. Copies
// and rebinds share the pool; a container that is moved takes its pool along.
template <typename T>
class PoolAllocator {
 public:
  using value_type = T;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  using is_always_equal = std::false_type;

  PoolAllocator() : pool_(std::make_shared<SlotPool>()) {}
  // Copied, never moved from: a moved-from container keeps allocating from the pool.
  PoolAllocator(const PoolAllocator&) noexcept = default;
  PoolAllocator& operator=(const PoolAllocator&) noexcept = default;
  template <typename U>
  PoolAllocator(const PoolAllocator<U>& other) noexcept : pool_(other.pool()) {}  // NOLINT

  T* allocate(size_t n) {
    static_assert(alignof(T) <= alignof(std::max_align_t));
    if (n == 1 && pool_ && alignof(T) <= 8) return static_cast<T*>(pool_->Allocate(sizeof(T)));
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n == 1 && pool_ && alignof(T) <= 8) {
      pool_->Free(p);
    } else {
      std::allocator<T>().deallocate(p, n);
    }
  }

  const std::shared_ptr<SlotPool>& pool() const { return pool_; }

  template <typename U>
  bool operator==(const PoolAllocator<U>& other) const {
    return pool_ == other.pool();
  }

 private:
  std::shared_ptr<SlotPool> pool_;
};

}  // namespace hasync::engine
