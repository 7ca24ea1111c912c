// HeapTrim: hands freed heap memory back to the kernel once a burst is over.
//
// glibc keeps what a program frees for reuse. After a burst that is most of a node's
// RSS: a resync's manifest and scan state, transfer buffers and the temporaries of the
// comparison lie freed between the model's long-lived nodes, where the heap's top never
// shrinks past them (measured at 150,000 entries: 76.6 MiB of RSS at rest, 46.0 MiB after
// one malloc_trim; docs/PERFORMANCE.md, "Memory per tracked entry"). malloc_trim(0) gives
// the whole free pages among them back (madvise), in every arena.
//
// Policy, from the process's RSS (one read of /proc/self/statm): the event loop calls
// Check every tick; every kEvery it samples the RSS. It trims when the RSS has not grown
// for kQuiet (the burst is over: what it freed is on the free lists, not in use) and is
// at least kStep and an eighth above what it was right after the last trim. A steady
// node reuses what it freed and its RSS does not grow, so it never trims; a growing
// tree trims about once per eighth of growth.
//
// Why not the allocator's own count of free bytes (mallinfo2): it walks every free
// chunk, 64–133 ms with the 1.5 million free chunks a million-file resync leaves, too
// slow to read every few seconds on the loop. malloc_trim walks them too, but only once
// per burst.
//
// Thread safety: none; one instance, on the event loop. (malloc_trim takes each arena's
// lock in turn, so threads allocating meanwhile wait for it, not break.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace hasync::engine {

class HeapTrim {
 public:
  static constexpr int64_t kEveryNs = 2'000'000'000;
  static constexpr int64_t kQuietNs = 10'000'000'000;
  static constexpr size_t kStep = size_t{8} << 20;
  // RSS growth between two samples that counts as "still growing".
  static constexpr size_t kGrowth = size_t{1} << 20;

  // What a trim did (for the log).
  struct Trimmed {
    size_t rss_before = 0;
    size_t rss_after = 0;
    int64_t took_ns = 0;
  };

  // The defaults read /proc/self/statm and call malloc_trim(0); tests inject both.
  HeapTrim();
  HeapTrim(std::function<size_t()> rss_bytes, std::function<void()> trim);

  // Called with the loop's clock; true when it trimmed, with *out filled in.
  bool Check(int64_t now_ns, Trimmed* out);

  uint64_t trims() const { return trims_; }

 private:
  std::function<size_t()> rss_;
  std::function<void()> trim_;
  bool started_ = false;
  int64_t next_ns_ = 0;
  size_t last_ = 0;        // the previous sample
  int64_t grew_ns_ = 0;    // when the RSS last grew by kGrowth between samples
  size_t after_trim_ = 0;  // the RSS after the last trim (at start: the first sample)
  uint64_t trims_ = 0;
};

// The process's resident set in bytes (0 if /proc cannot be read).
size_t ResidentBytes();

}  // namespace hasync::engine
