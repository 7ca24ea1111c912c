#include "engine/node/heap_trim.h"

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>

#include "base/unique_fd.h"
#include "engine/node/now.h"

namespace hasync::engine {

bool HeapTrim::Sample(int64_t now_ns, size_t rss) {
  if (rss == 0) return false;
  next_ns_ = now_ns + kEveryNs;
  if (!started_) {
    started_ = true;
    last_ = after_trim_ = rss;
    grew_ns_ = now_ns;
    return false;
  }
  if (rss >= last_ + kGrowth) grew_ns_ = now_ns;
  last_ = rss;
  if (now_ns - grew_ns_ < kQuietNs) return false;
  if (rss < after_trim_ + kStep || rss < after_trim_ + after_trim_ / 8) {
    // Shrunk (a buffer given back) or barely grew: the lower level is the base.
    if (rss < after_trim_) after_trim_ = rss;
    return false;
  }
  return true;
}

void HeapTrim::Trimmed(size_t rss_after) {
  ++trims_;
  if (rss_after != 0) after_trim_ = last_ = rss_after;
}

size_t ResidentBytes() {
  UniqueFd fd(open("/proc/self/statm", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return 0;
  char buf[128];
  ssize_t n = read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  // "size resident shared ...", in pages.
  char* end = nullptr;
  std::strtoull(buf, &end, 10);
  const unsigned long long pages = std::strtoull(end, nullptr, 10);
  return static_cast<size_t>(pages) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

bool UseOneArena() { return mallopt(M_ARENA_MAX, 1) == 1; }

HeapTrimmed TrimHeap() {
  HeapTrimmed t;
  t.rss_before = ResidentBytes();
  const int64_t t0 = NowNs();
  malloc_trim(0);
  t.took_ns = NowNs() - t0;
  t.rss_after = ResidentBytes();
  return t;
}

}  // namespace hasync::engine
