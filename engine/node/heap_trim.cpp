#include "engine/node/heap_trim.h"

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <utility>

#include "base/unique_fd.h"
#include "engine/node/now.h"

namespace hasync::engine {

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

HeapTrim::HeapTrim() : HeapTrim(ResidentBytes, [] { malloc_trim(0); }) {}

HeapTrim::HeapTrim(std::function<size_t()> rss_bytes, std::function<void()> trim)
    : rss_(std::move(rss_bytes)), trim_(std::move(trim)) {}

bool HeapTrim::Check(int64_t now_ns, Trimmed* out) {
  if (started_ && now_ns < next_ns_) return false;
  next_ns_ = now_ns + kEveryNs;
  const size_t rss = rss_();
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
    // Shrunk (a buffer given back) or barely grew: the new level is the base.
    if (rss < after_trim_) after_trim_ = rss;
    return false;
  }
  const int64_t t0 = NowNs();
  trim_();
  const int64_t t1 = NowNs();
  after_trim_ = last_ = rss_();
  ++trims_;
  if (out != nullptr) *out = {rss, after_trim_, t1 - t0};
  return true;
}

}  // namespace hasync::engine
