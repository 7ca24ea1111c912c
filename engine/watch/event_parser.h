// Decoding of the bytes read from a fanotify fd opened with FAN_REPORT_DFID_NAME (and
// optionally FAN_REPORT_FID | FAN_REPORT_TARGET_FID). Pure: no syscalls, so it is
// tested on synthetic buffers, including short and malformed ones.
//
// Contract: ParseEvents appends one RawEvent per complete, well-formed event, in buffer
// order. Views in a RawEvent point into the input buffer and live as long as it does.
// On the first malformed byte it stops and returns InvalidArgument saying what was
// wrong and at which offset; the events before it stay in `out`. The caller treats a
// parse error as doubt (Rescan), never as "no events".
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace hasync::engine::watch {

// A file identifier from an info record: filesystem id plus the kernel's file handle.
struct Fid {
  uint64_t fsid = 0;        // __kernel_fsid_t's two ints, in memory order
  int32_t handle_type = 0;  // file_handle.handle_type
  std::string_view handle;  // file_handle.f_handle, handle_bytes long
};

struct RawEvent {
  uint64_t mask = 0;
  int32_t pid = 0;
  // Directory + entry name: DFID_NAME, DFID (name empty) or, for FAN_RENAME,
  // OLD_DFID_NAME. Name "." means the event is on the directory itself.
  bool has_dir = false;
  Fid dir;
  std::string_view name;
  // FAN_RENAME only: NEW_DFID_NAME.
  bool has_new_dir = false;
  Fid new_dir;
  std::string_view new_name;
  // The object itself (FID record; with FAN_REPORT_TARGET_FID also for dirent events).
  bool has_object = false;
  Fid object;
};

Status ParseEvents(std::string_view buf, std::vector<RawEvent>* out);

}  // namespace hasync::engine::watch
