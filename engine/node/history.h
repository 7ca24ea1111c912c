// The role history: one line per role change of this node, in <state_dir>/history, for
// `hasync history` (issue 6) and for the operator reading the state dir after an
// incident. Written when a node gets its first role (--initial-role), when it promotes
// and when it demotes, right after the new role is persisted.
//
// Format, one line per change (text, so `cat` works):
//     unix_ms=<ms> role=<primary|standby> epoch=<n> reason=<rest of the line>
// The reason is printable: control bytes become '?', and it is cut at
// kHistoryReasonMax bytes. A line that does not decode (a torn last line after a crash
// mid-append) is skipped and counted, never fatal.
//
// Bounds: appending to a file over kHistoryFileMax bytes first rewrites it (temp file,
// fsync, rename) with its newest kHistoryKeep entries, so the file never grows past
// kHistoryFileMax plus one line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/node/state.h"

namespace hasync::engine {

inline constexpr std::string_view kHistoryFileName = "history";
inline constexpr size_t kHistoryReasonMax = 512;
inline constexpr size_t kHistoryFileMax = 256 * 1024;
inline constexpr size_t kHistoryKeep = 500;
static_assert(kHistoryKeep * (kHistoryReasonMax + 96) < kHistoryFileMax * 2,
              "a trimmed history must be well under the bound it was trimmed for");

struct HistoryEntry {
  int64_t unix_ms = 0;
  NodeRole role = NodeRole::kStandby;
  uint64_t epoch = 0;
  std::string reason;
  friend bool operator==(const HistoryEntry&, const HistoryEntry&) = default;
};

struct History {
  std::vector<HistoryEntry> entries;  // oldest first
  size_t skipped_lines = 0;           // lines that did not decode
};

std::string EncodeHistoryLine(const HistoryEntry& e);  // with the trailing '\n'
Result<HistoryEntry> DecodeHistoryLine(std::string_view line);

// Appends one entry and fsyncs it (trimming first past kHistoryFileMax).
Status AppendHistory(std::string_view state_dir, const HistoryEntry& e);
// Every entry of <state_dir>/history; an empty History when there is no file yet.
Result<History> ReadHistory(std::string_view state_dir);

}  // namespace hasync::engine
