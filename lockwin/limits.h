// Limits of the lockwin module, in one place (STYLE: "a limit on everything").
//
// Every bound a lock record, the arrival ring or the detector's history obeys is a named
// constant here, and the relationships between them are checked at compile time. The
// wire module carries an encoded lock record as opaque bytes of at most
// kLockRecordWireMax, so the largest canonical encoding must fit in that.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace hasync::lockwin {

// --- Lock record -------------------------------------------------------------------

// Version byte that opens every encoding. A decoder accepts exactly this value, so a
// future layout change is a new version rather than a silent reinterpretation.
inline constexpr uint8_t kLockRecordFormatVersion = 1;

// The probe prints a short token (newest job id, owner, submit time); longer output is
// the engine's to truncate before it builds a record.
inline constexpr size_t kProbeTokenMax = 256;

// PATH_MAX - 1: the longest relative path the last-change summary can name.
inline constexpr size_t kLastChangePathMax = 4095;

// Opaque lock-record bytes the wire module accepts in one LOCK frame.
inline constexpr size_t kLockRecordWireMax = 8192;

// Field sizes of the canonical encoding (see lock_record.h for the layout).
inline constexpr size_t kLockRecordFixedBytes = 1     // format version
                                                + 8   // epoch
                                                + 8   // node_id
                                                + 8   // change_seq
                                                + 8   // beat
                                                + 2   // probe_token length
                                                + 2   // last_change.path length
                                                + 8   // last_change.size_bytes
                                                + 8   // last_change.xxh3
                                                + 1   // probe_ok
                                                + 4   // probe_latency_us
                                                + 8;  // monotonic_ns
inline constexpr size_t kLockRecordEncodedMin = kLockRecordFixedBytes;
inline constexpr size_t kLockRecordEncodedMax =
    kLockRecordFixedBytes + kProbeTokenMax + kLastChangePathMax;

static_assert(kLockRecordEncodedMax <= 8192, "a lock record must fit the wire's opaque limit");
static_assert(kLockRecordEncodedMax <= kLockRecordWireMax);
static_assert(kProbeTokenMax <= UINT16_MAX && kLastChangePathMax <= UINT16_MAX,
              "string lengths are encoded as u16");

// --- Arrival ring ------------------------------------------------------------------

// Entries added to ceil(window / beat_interval): lock records also travel with data
// changes, so a burst brings more than one record per beat.
inline constexpr size_t kRingSlack = 64;

// Hard upper bound on ring entries (16 bytes each: 1 MiB). At the default 250 ms beat
// this admits a window of (65536 - 64) * 250 ms, about 4.5 hours.
inline constexpr size_t kRingCapacityMax = size_t{1} << 16;

// Smallest ring: ceil(window / beat) is at least 1, so 1 + kRingSlack rounded up.
inline constexpr size_t kRingCapacityMin = std::bit_ceil(1 + kRingSlack);

static_assert(std::has_single_bit(kRingCapacityMax), "ring capacity is a power of two");
static_assert(kRingSlack < kRingCapacityMax);

// Producer and consumer indices sit on separate lines of this size. 64 bytes is the
// x86-64 and most AArch64 line; std::hardware_destructive_interference_size would say
// the same but g++ warns (-Winterference-size) when it appears in a header.
inline constexpr size_t kCacheLineBytes = 64;

// --- Detector ----------------------------------------------------------------------

// Runs of equal fingerprints the detector remembers for `hasync status`.
inline constexpr size_t kHistoryRunsMax = 32;

}  // namespace hasync::lockwin
