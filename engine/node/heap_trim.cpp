#include "engine/node/heap_trim.h"

#include <malloc.h>

#include <algorithm>
#include <utility>

#include "engine/node/now.h"

namespace hasync::engine {
namespace {

HeapTrim::Sample GlibcSample() {
  struct mallinfo2 mi = mallinfo2();
  // uordblks: in use from the arenas; hblkhd: chunks served by mmap (returned on free).
  return {mi.fordblks, mi.uordblks + mi.hblkhd};
}

}  // namespace

HeapTrim::HeapTrim() : HeapTrim(GlibcSample, [] { malloc_trim(0); }) {}

HeapTrim::HeapTrim(std::function<Sample()> sample, std::function<void()> trim)
    : sample_(std::move(sample)), trim_(std::move(trim)) {}

bool HeapTrim::Check(int64_t now_ns, Trimmed* out) {
  if (now_ns < next_ns_) return false;
  next_ns_ = now_ns + kEveryNs;
  const Sample s = sample_();
  low_ = std::min(low_, s.free_bytes);
  if (s.free_bytes - low_ < kStep) return false;
  const int64_t t0 = NowNs();
  trim_();
  const int64_t t1 = NowNs();
  const Sample after = sample_();
  low_ = after.free_bytes;
  ++trims_;
  if (out != nullptr) *out = {s, after, t1 - t0};
  return true;
}

}  // namespace hasync::engine
