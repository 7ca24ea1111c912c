// Ring sizing; the ring itself is a template in ring.h.
#include "lockwin/ring.h"

#include <string>

namespace hasync::lockwin {

Result<size_t> RingCapacityFor(int64_t window_ns, int64_t beat_interval_ns) {
  if (beat_interval_ns <= 0) {
    return InvalidArgument("beat interval " + std::to_string(beat_interval_ns) +
                           " ns is not positive");
  }
  if (window_ns <= 0) {
    return InvalidArgument("window " + std::to_string(window_ns) + " ns is not positive");
  }
  // ceil(window / beat) without the overflow of (window + beat - 1) near INT64_MAX.
  const int64_t beats_signed =
      window_ns / beat_interval_ns + (window_ns % beat_interval_ns != 0 ? 1 : 0);
  const auto beats = static_cast<uint64_t>(beats_signed);
  constexpr uint64_t kBeatsMax = kRingCapacityMax - kRingSlack;
  if (beats > kBeatsMax) {
    return OutOfRange("window " + std::to_string(window_ns) + " ns at beat interval " +
                      std::to_string(beat_interval_ns) + " ns needs " + std::to_string(beats) +
                      " + " + std::to_string(kRingSlack) + " ring entries > kRingCapacityMax " +
                      std::to_string(kRingCapacityMax));
  }
  const size_t capacity = std::bit_ceil(static_cast<size_t>(beats) + kRingSlack);
  HASYNC_ASSERT(capacity >= kRingCapacityMin && capacity <= kRingCapacityMax);
  return capacity;
}

}  // namespace hasync::lockwin
