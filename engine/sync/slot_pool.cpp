#include "engine/sync/slot_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>

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
#include <sanitizer/lsan_interface.h>
#define POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
// LeakSanitizer does not look into anonymous mappings: a slab is registered so what its
// nodes point to (long paths, rare fields) is not reported as leaked.
#define POOL_MAPPED(p, n) __lsan_register_root_region(p, n)
#define POOL_UNMAPPING(p, n) __lsan_unregister_root_region(p, n)
#else
#define POOL_POISON(p, n) ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#define POOL_MAPPED(p, n) ((void)(p), (void)(n))
#define POOL_UNMAPPING(p, n) ((void)(p), (void)(n))
#endif

namespace hasync::engine {

SlotPool::~SlotPool() { ReleaseAll(); }

void* SlotPool::Allocate(size_t bytes) {
  if (slot_bytes_ == 0) {
    // Room for the free list's link, and every slot 8-byte aligned.
    slot_bytes_ = (std::max(bytes, sizeof(void*)) + 7) & ~size_t{7};
    HASYNC_ASSERT(slot_bytes_ <= kSlabBytes);
    per_slab_ = kSlabBytes / slot_bytes_;
  }
  HASYNC_ASSERT(bytes <= slot_bytes_ && bytes + 8 > slot_bytes_);  // one size per pool
  void* slot = nullptr;
  if (free_ != nullptr) {
    slot = free_;
    POOL_UNPOISON(slot, slot_bytes_);
    std::memcpy(&free_, slot, sizeof free_);
  } else {
    if (slabs_.empty() || carved_ == per_slab_) {
      // Every handle, plus one (the model's index keeps 0 for "empty"), fits in 32 bits:
      // 4 G slots, far past any spool.
      HASYNC_ASSERT((slabs_.size() + 1) * per_slab_ <= uint64_t{UINT32_MAX});
      void* mem =
          mmap(nullptr, kSlabBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mem == MAP_FAILED) throw std::bad_alloc();
      auto* slab = static_cast<std::byte*>(mem);
      POOL_MAPPED(slab, kSlabBytes);
      POOL_POISON(slab, kSlabBytes);
      const Start start{slab, static_cast<uint32_t>(slabs_.size())};
      by_address_.insert(std::upper_bound(by_address_.begin(), by_address_.end(), start), start);
      slabs_.push_back(slab);
      carved_ = 0;
    }
    slot = slabs_.back() + carved_ * slot_bytes_;
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

uint32_t SlotPool::Handle(const void* p) const {
  const auto* byte = static_cast<const std::byte*>(p);
  // The last slab that starts at or before p.
  auto it = std::upper_bound(by_address_.begin(), by_address_.end(), byte,
                             [](const std::byte* b, const Start& s) { return b < s.first; });
  HASYNC_ASSERT(it != by_address_.begin());
  --it;
  const auto offset = static_cast<size_t>(byte - it->first);
  HASYNC_ASSERT(offset < per_slab_ * slot_bytes_);  // inside one of this pool's slabs
  return static_cast<uint32_t>(it->second * per_slab_ + offset / slot_bytes_);
}

void SlotPool::ReleaseAll() {
  for (std::byte* slab : slabs_) {
    POOL_UNPOISON(slab, kSlabBytes);
    POOL_UNMAPPING(slab, kSlabBytes);
    munmap(slab, kSlabBytes);
  }
  std::vector<std::byte*>().swap(slabs_);
  std::vector<Start>().swap(by_address_);
  free_ = nullptr;
  carved_ = 0;
}

}  // namespace hasync::engine
