// Named limits of the primary's watcher (engine/watch). Every queue, cache and buffer
// the watcher keeps is bounded by one of these; their relationships are checked below.
#pragma once

#include <linux/limits.h>

#include <cstddef>
#include <cstdint>

namespace hasync::engine::watch {

// Bytes read from the fanotify fd in one read(2). The kernel never splits an event
// across reads, and one event with two names and three file handles fits easily.
inline constexpr size_t kReadBufferBytes = 64 * 1024;
// Reads per OnReadable()/Poll() call, so one call is bounded even under a storm of
// unrelated activity; the fd stays readable and the caller comes back.
inline constexpr int kMaxReadsPerCall = 16;
// Largest file handle we accept in an info record (the kernel's MAX_HANDLE_SZ).
inline constexpr size_t kMaxHandleBytes = 128;
// Sync roots one watcher serves.
inline constexpr size_t kMaxRoots = 16;
// Directory handle → path cache entries (default; configurable). A spool is a few
// hundred directories; the rest is room for unrelated directories remembered as
// "outside" so their events are dropped without a syscall.
inline constexpr size_t kDefaultHandleCacheEntries = 16384;
inline constexpr size_t kMaxHandleCacheEntries = 1 << 20;
// Paths waiting in the modify debouncer; past this the oldest is emitted early.
inline constexpr size_t kDefaultDebounceMaxPending = 4096;
// Default debounce window for FAN_MODIFY on files kept open (logs).
inline constexpr int64_t kDefaultDebounceNs = 25'000'000;
inline constexpr int64_t kMaxDebounceNs = 1'000'000'000;
// Ready events held for the caller. The watcher stops reading the fanotify fd at this
// level (the kernel queue then absorbs the burst, and overflows into a Rescan).
inline constexpr size_t kReadyHighWater = 16384;
// Smallest event the kernel can deliver with FAN_REPORT_DFID_NAME: metadata (24) + info
// header (4) + fsid (8) + file_handle header (8) + a 1-byte name and NUL, 4-aligned.
inline constexpr size_t kMinFidEventBytes = 24 + 4 + 8 + 8 + 4;
// One kernel event becomes at most this many WatchEvents (e.g. Remove+Rescan, or
// Create+Attrib+CloseWrite).
inline constexpr size_t kMaxOutputsPerEvent = 4;
// Worst case the ready queue can reach: high water plus one full read.
inline constexpr size_t kReadyHardMax =
    kReadyHighWater + kReadBufferBytes / kMinFidEventBytes * kMaxOutputsPerEvent;
// Directories pre-loaded into the cache per root at start-up and after an overflow.
inline constexpr size_t kMaxPreloadDirsPerRoot = 1 << 16;

static_assert(kReadBufferBytes >= 4096, "a read must hold at least a page of events");
static_assert(kMaxHandleBytes <= 128, "MAX_HANDLE_SZ is 128");
static_assert(kDefaultHandleCacheEntries <= kMaxHandleCacheEntries);
static_assert(kDefaultDebounceNs > 0 && kDefaultDebounceNs <= kMaxDebounceNs);
static_assert(kReadyHardMax < 4 * kReadyHighWater, "one read must not dwarf the ready queue");
static_assert(PATH_MAX == 4096);

}  // namespace hasync::engine::watch
