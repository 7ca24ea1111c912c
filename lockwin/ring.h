// SpscRing: the lock-free single-producer / single-consumer ring that carries lock-record
// arrivals from the standby's receive path (producer) to the detector thread (consumer),
// and RingCapacityFor, which sizes it from the window and the beat interval.
//
// Thread safety
// - At any moment at most one thread calls TryPush (the producer) and at most one
//   thread calls TryPop (the consumer); the two run concurrently. Handing a role to
//   another thread needs external synchronisation (e.g. std::thread start/join). capacity() may be
//   called anywhere; SizeApprox() and dropped() from any thread, as snapshots.
// - Neither side ever blocks or spins: TryPush on a full ring and TryPop on an empty
//   ring return false at once. The producer must never wait on the detector.
//
// Invariants
// - capacity_ is a power of two in [2, kRingCapacityMax]; mask_ == capacity_ - 1.
// - tail_ (written only by the producer) and head_ (written only by the consumer) count
//   pushes and pops since construction; they never wrap in practice (2^64 entries).
// - 0 <= tail_ - head_ <= capacity_. Slots [head_, tail_) (mod capacity_) hold entries
//   the consumer has not read; the producer writes only outside that range, the consumer
//   reads only inside it, so no slot is ever touched by both at once.
// - producer_.cached_head <= head_ and consumer_.cached_tail <= tail_: each side keeps a
//   possibly stale copy of the other's index and refreshes it only when the stale copy
//   says full / empty, so the shared cache lines move only when they must.
//
// Memory orders (each pair is one happens-before edge)
// - Producer: slot write, then tail_.store(release)  ──pairs with──▶ consumer
//   tail_.load(acquire), then slot read. The consumer never reads a half-written slot.
// - Consumer: slot read, then head_.store(release)   ──pairs with──▶ producer
//   head_.load(acquire), then slot overwrite. The producer never overwrites a slot the
//   consumer is still reading.
// - Each side loads its own index relaxed: it is the only writer, so it always reads its
//   own latest value.
//
// Overflow policy: when the ring is full TryPush drops the *new* entry, counts it in
// dropped() and returns false. Dropping the oldest instead would need the producer to
// move head_, which belongs to the consumer, and pure SPSC cannot do that without a
// compare-and-swap race against a concurrent pop. The detector keeps the verdict
// correct regardless, because its verdict timestamps are published by the producer
// outside the ring (see detector.h); the ring only feeds the history.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "base/assert.h"
#include "base/status.h"
#include "lockwin/limits.h"

namespace hasync::lockwin {

// ceil(window / beat_interval) + kRingSlack rounded up to a power of two. Fails with
// InvalidArgument for a non-positive window or beat, and with OutOfRange when the window
// needs more than kRingCapacityMax entries.
Result<size_t> RingCapacityFor(int64_t window_ns, int64_t beat_interval_ns);

template <typename T>
class SpscRing {
  static_assert(std::is_trivially_copyable_v<T>, "slots are copied without locks");

 public:
  // `capacity` must be a power of two in [2, kRingCapacityMax] (use RingCapacityFor).
  explicit SpscRing(size_t capacity)
      : capacity_(capacity), mask_(capacity - 1), slots_(std::make_unique<T[]>(capacity)) {
    HASYNC_ASSERT(capacity >= 2 && capacity <= kRingCapacityMax);
    HASYNC_ASSERT(std::has_single_bit(capacity));
  }

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  // Producer only. False (and the entry counted in dropped()) if the ring is full.
  bool TryPush(const T& entry) {
    // relaxed: the producer is the only writer of tail_.
    const uint64_t tail = producer_.tail.load(std::memory_order_relaxed);
    if (tail - producer_.cached_head == capacity_) {
      // acquire: pairs with the consumer's head_.store(release) in TryPop, so its read of
      // the slot we are about to reuse happened before our write below.
      producer_.cached_head = consumer_.head.load(std::memory_order_acquire);
      if (tail - producer_.cached_head == capacity_) {
        // relaxed: a statistic; only the producer writes it and nothing is ordered by it.
        producer_.dropped.store(producer_.dropped.load(std::memory_order_relaxed) + 1,
                                std::memory_order_relaxed);
        return false;
      }
    }
    slots_[tail & mask_] = entry;
    // release: pairs with the consumer's tail_.load(acquire) in TryPop and SizeApprox,
    // publishing the slot write above.
    producer_.tail.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer only. False if the ring is empty.
  bool TryPop(T* entry) {
    // relaxed: the consumer is the only writer of head_.
    const uint64_t head = consumer_.head.load(std::memory_order_relaxed);
    if (head == consumer_.cached_tail) {
      // acquire: pairs with the producer's tail_.store(release) in TryPush, so the slot
      // write happened before our read below.
      consumer_.cached_tail = producer_.tail.load(std::memory_order_acquire);
      if (head == consumer_.cached_tail) return false;
    }
    *entry = slots_[head & mask_];
    // release: pairs with the producer's head_.load(acquire) in TryPush, so our read of
    // the slot happens before the producer reuses it.
    consumer_.head.store(head + 1, std::memory_order_release);
    return true;
  }

  size_t capacity() const { return capacity_; }

  // Entries pushed and not yet popped, as seen at some instant during the call. From the
  // producer it may overstate, from the consumer understate; exact with both idle.
  size_t SizeApprox() const {
    // acquire on both: pairs with the release stores, so the difference is never
    // negative when read from either side (head_ read first can only lag tail_).
    const uint64_t head = consumer_.head.load(std::memory_order_acquire);
    const uint64_t tail = producer_.tail.load(std::memory_order_acquire);
    // A push and a pop between the two loads can make the difference exceed capacity_.
    return static_cast<size_t>(std::min<uint64_t>(tail - head, capacity_));
  }

  // Entries TryPush refused because the ring was full.
  uint64_t dropped() const {
    // relaxed: a monotonic statistic; no other memory is read on its strength.
    return producer_.dropped.load(std::memory_order_relaxed);
  }

 private:
  // Written by the producer, read by the consumer (tail) or nobody else (cached_head).
  struct alignas(kCacheLineBytes) ProducerSide {
    std::atomic<uint64_t> tail{0};
    uint64_t cached_head = 0;
    std::atomic<uint64_t> dropped{0};
  };
  // Written by the consumer, read by the producer (head) or nobody else (cached_tail).
  struct alignas(kCacheLineBytes) ConsumerSide {
    std::atomic<uint64_t> head{0};
    uint64_t cached_tail = 0;
  };
  static_assert(sizeof(ProducerSide) == kCacheLineBytes);
  static_assert(sizeof(ConsumerSide) == kCacheLineBytes);
  static_assert(std::atomic<uint64_t>::is_always_lock_free);

  // Read-only after construction; shared by both sides without contention.
  alignas(kCacheLineBytes) const size_t capacity_;
  const size_t mask_;
  const std::unique_ptr<T[]> slots_;

  ProducerSide producer_;
  ConsumerSide consumer_;
};

}  // namespace hasync::lockwin
