#include "engine/sync/slot_pool.h"

#include <algorithm>
#include <cstring>

#include "base/assert.h"

#if defined(__SANITIZE_ADDRESS__)
#define HASYNC_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HASYNC_POOL_ASAN 1
#endif
#endif

#ifdef HASYNC_POOL_ASAN
#include <sanitizer/asan_interface.h>
#define POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POOL_POISON(p, n) ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace hasync::engine {

SlotPool::~SlotPool() { ReleaseAll(); }

void* SlotPool::Allocate(size_t bytes) {
  if (slot_bytes_ == 0) {
    // Room for the free list's link, and every slot 8-byte aligned.
    slot_bytes_ = (std::max(bytes, sizeof(void*)) + 7) & ~size_t{7};
    HASYNC_ASSERT(slot_bytes_ <= kSlabBytes);
  }
  HASYNC_ASSERT(bytes <= slot_bytes_ && bytes + 8 > slot_bytes_);  // one size per pool
  void* slot = nullptr;
  if (free_ != nullptr) {
    slot = free_;
    POOL_UNPOISON(slot, slot_bytes_);
    std::memcpy(&free_, slot, sizeof free_);
  } else {
    const size_t per_slab = kSlabBytes / slot_bytes_;
    if (slabs_.empty() || carved_ == per_slab) {
      slabs_.push_back(std::make_unique_for_overwrite<std::byte[]>(kSlabBytes));
      POOL_POISON(slabs_.back().get(), kSlabBytes);
      carved_ = 0;
    }
    slot = slabs_.back().get() + carved_ * slot_bytes_;
    ++carved_;
    POOL_UNPOISON(slot, slot_bytes_);
  }
  ++in_use_;
  return slot;
}

void SlotPool::Free(void* slot) {
  HASYNC_ASSERT(in_use_ > 0);
  if (--in_use_ == 0) {
    ReleaseAll();  // the last one: give every slab back
    return;
  }
  std::memcpy(slot, &free_, sizeof free_);
  POOL_POISON(slot, slot_bytes_);
  free_ = slot;
}

void SlotPool::ReleaseAll() {
  for (auto& slab : slabs_) POOL_UNPOISON(slab.get(), kSlabBytes);
  std::vector<std::unique_ptr<std::byte[]>>().swap(slabs_);
  free_ = nullptr;
  carved_ = 0;
}

}  // namespace hasync::engine
