// HeapTrim: hands freed heap memory back to the kernel once enough of it has piled up.
//
// glibc keeps what a program frees for reuse. After a burst that is most of a node's
// RSS: a resync's manifest and scan state, transfer buffers and the temporaries of the
// comparison lie freed between the model's long-lived nodes, where the heap's top never
// shrinks past them (measured at 150,000 entries: 76.6 MiB of RSS at rest, 46.0 MiB after
// one malloc_trim; docs/PERFORMANCE.md, "Memory per tracked entry"). malloc_trim(0) gives
// the whole free pages among them back (madvise), in every arena.
//
// Policy: the event loop calls Check every tick; every kEvery it samples the free bytes
// the allocator holds (mallinfo2: fordblks, cost O(free chunks)) and trims when they
// have grown by kStep since their lowest sample after the last trim. The lowest sample,
// not the figure right after the trim, is the base because trimmed chunks stay on the
// free lists (only their pages are returned): memory reused and freed again shows only
// as a rise from a low point. A steady node never trims; a burst costs one trim once it
// has settled.
//
// Thread safety: none; one instance, on the event loop. (malloc_trim itself takes each
// arena's lock in turn, so threads allocating meanwhile wait for it, not break.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace hasync::engine {

class HeapTrim {
 public:
  static constexpr int64_t kEveryNs = 2'000'000'000;
  static constexpr size_t kStep = size_t{8} << 20;

  struct Sample {
    size_t free_bytes = 0;  // held by the allocator, not in use
    size_t in_use = 0;
  };
  // What a trim did (for the log).
  struct Trimmed {
    Sample before;
    Sample after;
    int64_t took_ns = 0;
  };

  // The defaults read glibc (mallinfo2) and call malloc_trim(0); tests inject both.
  HeapTrim();
  HeapTrim(std::function<Sample()> sample, std::function<void()> trim);

  // Called with the loop's clock; true when it trimmed, with *out filled in.
  bool Check(int64_t now_ns, Trimmed* out);

  uint64_t trims() const { return trims_; }

 private:
  std::function<Sample()> sample_;
  std::function<void()> trim_;
  int64_t next_ns_ = 0;
  size_t low_ = SIZE_MAX;
  uint64_t trims_ = 0;
};

}  // namespace hasync::engine
