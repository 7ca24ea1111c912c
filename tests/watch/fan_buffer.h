// Builds fanotify read buffers byte by byte, for parser and translator tests.
#pragma once

#include <sys/fanotify.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace hasync::engine::watch::testing {

template <typename T>
void Append(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

// One fid info record; `name` is appended NUL-terminated when non-empty. The record is
// padded to 4 bytes like the kernel does.
inline std::string FidRecord(uint8_t type, uint64_t fsid, int32_t handle_type,
                             std::string_view handle, std::string_view name = {}) {
  std::string body;
  Append(&body, fsid);
  Append(&body, static_cast<uint32_t>(handle.size()));
  Append(&body, handle_type);
  body.append(handle);
  if (!name.empty()) {
    body.append(name);
    body.push_back('\0');
  }
  while ((body.size() + 4) % 4 != 0) body.push_back('\0');
  std::string rec;
  fanotify_event_info_header hdr{};
  hdr.info_type = type;
  hdr.len = static_cast<uint16_t>(body.size() + sizeof(hdr));
  Append(&rec, hdr);
  rec += body;
  return rec;
}

inline std::string Event(uint64_t mask, std::string_view records, int32_t pid = 1) {
  fanotify_event_metadata md{};
  md.event_len = static_cast<uint32_t>(sizeof(md) + records.size());
  md.vers = FANOTIFY_METADATA_VERSION;
  md.metadata_len = sizeof(md);
  md.mask = mask;
  md.fd = FAN_NOFD;
  md.pid = pid;
  std::string out;
  Append(&out, md);
  out.append(records);
  return out;
}

}  // namespace hasync::engine::watch::testing
