// HeapTrim: when to hand freed heap memory back to the kernel, once a burst is over.
//
// glibc keeps what a program frees for reuse. After a burst that is most of a node's
// RSS: a resync's manifest and scan state, transfer buffers and the temporaries of the
// comparison lie freed between the model's long-lived nodes, where the heap's top never
// shrinks past them. malloc_trim(0) gives the whole free pages among them back (madvise),
// in every arena. Measured on a pair after the initial sync of 20,000 / 100,000 small
// files: the primary at rest held 44.2 / 78.8 MiB before a trim and 23.2 / 44.1 MiB after
// (docs/PERFORMANCE.md, "Scale").
//
// Policy, from the process's RSS (one read of /proc/self/statm): the event loop offers a
// sample every tick; every kEvery one is taken. Trim when the RSS has not grown for
// kQuiet (the burst is over: what it freed is on the free lists, not in use) and stands
// at least kStep and an eighth above its level right after the last trim (at start: the
// first sample). A steady node reuses what it freed and its RSS does not grow, so it
// never trims; a growing tree trims about once per eighth of growth; a trim that frees
// nothing makes its level the new base, so it is not repeated.
//
// Why not the allocator's own count of free bytes (mallinfo2): it walks every free
// chunk, 64–133 ms with the 1.5 million free chunks a million-file resync leaves, too
// slow to read every few seconds on the loop. malloc_trim walks them too, but once per
// burst. (PeerLink also trims once a resync's send buffers drain; engine/node/peer_link.cpp.)
//
// HeapTrim decides only: no clock reads, no syscalls. TrimHeap() does the trim.
// Thread safety: none; one instance, on the event loop. (malloc_trim takes each arena's
// lock in turn, so threads allocating meanwhile wait for it, not break.)
#pragma once

#include <cstddef>
#include <cstdint>

namespace hasync::engine {

class HeapTrim {
 public:
  static constexpr int64_t kEveryNs = 2'000'000'000;
  static constexpr int64_t kQuietNs = 10'000'000'000;
  static constexpr size_t kStep = size_t{8} << 20;
  // RSS growth between two samples that counts as "still growing".
  static constexpr size_t kGrowth = size_t{1} << 20;

  // Whether a sample is due at now_ns (at most one per kEvery).
  bool SampleDue(int64_t now_ns) const { return !started_ || now_ns >= next_ns_; }
  // Takes a sample (rss_bytes = 0: unreadable, ignored); true when the heap should be
  // trimmed now, after which the caller reports the RSS it left with Trimmed().
  bool Sample(int64_t now_ns, size_t rss_bytes);
  void Trimmed(size_t rss_bytes_after);

  uint64_t trims() const { return trims_; }

 private:
  bool started_ = false;
  int64_t next_ns_ = 0;
  size_t last_ = 0;        // the previous sample
  int64_t grew_ns_ = 0;    // when the RSS last grew by kGrowth between samples
  size_t after_trim_ = 0;  // the RSS after the last trim (at start: the first sample)
  uint64_t trims_ = 0;
};

// The process's resident set in bytes (0 if /proc/self/statm cannot be read).
size_t ResidentBytes();

// Makes every thread allocate from glibc's main arena (M_ARENA_MAX = 1; called once, at
// the start of RunNode, before the node starts a thread). malloc_trim gives back the
// free pages inside every arena, but the free memory at the top only of the main one:
// each other thread's arena keeps its top resident, up to glibc's trim threshold, which
// rises to 64 MiB once a large mapped block has been freed. Measured on a primary at
// rest after the initial sync of 100,000 files: two data-stream arenas held 6.2 MiB
// with 0.27 MiB in use (docs/PERFORMANCE.md, "Memory: the model's entry in 56 bytes,
// one arena"). Lowering the thresholds instead would return that memory as soon as it
// is freed, and fault it in again for the next 1 MiB extent. The cost is one lock for
// the threads' malloc and free; small blocks mostly come from each thread's own cache.
// Returns false when the allocator refused (a sanitizer's has arenas of its own); the
// node runs on either way. An operator's GLIBC_TUNABLES=glibc.malloc.arena_max is
// overridden.
bool UseOneArena();

// malloc_trim(0), with the RSS before and after and the time it took.
struct HeapTrimmed {
  size_t rss_before = 0;
  size_t rss_after = 0;
  int64_t took_ns = 0;
};
HeapTrimmed TrimHeap();

}  // namespace hasync::engine
