// See event_parser.h. Every struct is copied out with memcpy: the kernel packs records
// at 4-byte boundaries only, and a synthetic test buffer may not even be that aligned.
#include "engine/watch/event_parser.h"

#include <sys/fanotify.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "engine/watch/limits.h"

namespace hasync::engine::watch {
namespace {

Status Bad(size_t offset, const std::string& why) {
  return InvalidArgument("fanotify event at offset " + std::to_string(offset) + ": " + why);
}

// Layout of FAN_EVENT_INFO_TYPE_*FID* records: header, fsid, struct file_handle
// (handle_bytes, handle_type, f_handle[]), then for *_NAME types a NUL-terminated name.
constexpr size_t kInfoHeaderBytes = sizeof(fanotify_event_info_header);
constexpr size_t kFidFixedBytes = kInfoHeaderBytes + 8 + 8;
static_assert(kInfoHeaderBytes == 4);
static_assert(sizeof(fanotify_event_metadata) == 24);

Status ParseFidRecord(std::string_view rec, size_t offset, bool with_name, Fid* fid,
                      std::string_view* name) {
  if (rec.size() < kFidFixedBytes) {
    return Bad(offset, "fid record of " + std::to_string(rec.size()) + " bytes < " +
                           std::to_string(kFidFixedBytes));
  }
  std::memcpy(&fid->fsid, rec.data() + kInfoHeaderBytes, 8);
  uint32_t handle_bytes = 0;
  std::memcpy(&handle_bytes, rec.data() + kInfoHeaderBytes + 8, 4);
  std::memcpy(&fid->handle_type, rec.data() + kInfoHeaderBytes + 12, 4);
  if (handle_bytes == 0 || handle_bytes > kMaxHandleBytes) {
    return Bad(offset, "file handle of " + std::to_string(handle_bytes) + " bytes outside 1.." +
                           std::to_string(kMaxHandleBytes));
  }
  if (handle_bytes > rec.size() - kFidFixedBytes) {
    return Bad(offset, "file handle of " + std::to_string(handle_bytes) +
                           " bytes overruns its record of " + std::to_string(rec.size()));
  }
  fid->handle = rec.substr(kFidFixedBytes, handle_bytes);
  if (!with_name) return Status::Ok();
  std::string_view tail = rec.substr(kFidFixedBytes + handle_bytes);
  size_t nul = tail.find('\0');
  if (nul == std::string_view::npos) return Bad(offset, "entry name is not NUL-terminated");
  std::string_view n = tail.substr(0, nul);
  if (n.empty()) return Bad(offset, "empty entry name");
  if (n.size() > NAME_MAX) return Bad(offset, "entry name longer than NAME_MAX");
  if (n.find('/') != std::string_view::npos) return Bad(offset, "entry name contains '/'");
  if (n == "..") return Bad(offset, "entry name is \"..\"");
  *name = n;
  return Status::Ok();
}

}  // namespace

Status ParseEvents(std::string_view buf, std::vector<RawEvent>* out) {
  size_t off = 0;
  while (off < buf.size()) {
    const size_t left = buf.size() - off;
    fanotify_event_metadata md{};
    if (left < sizeof(md)) {
      return Bad(
          off, std::to_string(left) + " bytes left < metadata size " + std::to_string(sizeof(md)));
    }
    std::memcpy(&md, buf.data() + off, sizeof(md));
    if (md.vers != FANOTIFY_METADATA_VERSION) {
      return Bad(off, "metadata version " + std::to_string(md.vers) +
                          " != " + std::to_string(FANOTIFY_METADATA_VERSION));
    }
    if (md.metadata_len < sizeof(md) || md.metadata_len > md.event_len) {
      return Bad(off, "metadata_len " + std::to_string(md.metadata_len) +
                          " outside 24..event_len " + std::to_string(md.event_len));
    }
    if (md.event_len > left) {
      return Bad(off, "event_len " + std::to_string(md.event_len) + " > " + std::to_string(left) +
                          " bytes left");
    }
    if (md.fd != FAN_NOFD) {
      // In FID mode the kernel never opens a file for us; an fd here means the group was
      // set up differently from what this parser decodes.
      return Bad(off, "event carries fd " + std::to_string(md.fd) + " in FID mode");
    }
    RawEvent ev;
    ev.mask = md.mask;
    ev.pid = md.pid;
    std::string_view info = buf.substr(off + md.metadata_len, md.event_len - md.metadata_len);
    size_t ioff = 0;
    while (ioff < info.size()) {
      const size_t at = off + md.metadata_len + ioff;
      if (info.size() - ioff < kInfoHeaderBytes) return Bad(at, "truncated info header");
      fanotify_event_info_header hdr{};
      std::memcpy(&hdr, info.data() + ioff, sizeof(hdr));
      if (hdr.len < kInfoHeaderBytes || hdr.len > info.size() - ioff) {
        return Bad(at, "info record length " + std::to_string(hdr.len) + " outside 4.." +
                           std::to_string(info.size() - ioff));
      }
      std::string_view rec = info.substr(ioff, hdr.len);
      switch (hdr.info_type) {
        case FAN_EVENT_INFO_TYPE_DFID_NAME:
        case FAN_EVENT_INFO_TYPE_DFID:
        case FAN_EVENT_INFO_TYPE_OLD_DFID_NAME: {
          if (ev.has_dir) return Bad(at, "second directory record");
          const bool named = hdr.info_type != FAN_EVENT_INFO_TYPE_DFID;
          RETURN_IF_ERROR(ParseFidRecord(rec, at, named, &ev.dir, &ev.name));
          ev.has_dir = true;
          break;
        }
        case FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:
          if (ev.has_new_dir) return Bad(at, "second new-directory record");
          RETURN_IF_ERROR(ParseFidRecord(rec, at, true, &ev.new_dir, &ev.new_name));
          ev.has_new_dir = true;
          break;
        case FAN_EVENT_INFO_TYPE_FID:
          if (ev.has_object) return Bad(at, "second object fid record");
          RETURN_IF_ERROR(ParseFidRecord(rec, at, false, &ev.object, nullptr));
          ev.has_object = true;
          break;
        default:
          break;  // pidfd, error and future record types carry nothing we use
      }
      ioff += hdr.len;
    }
    if ((ev.mask & FAN_Q_OVERFLOW) == 0 && !ev.has_dir && !ev.has_object) {
      return Bad(
          off, "event mask 0x" + [&] {
            char hex[20];
            std::snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(ev.mask));
            return std::string(hex);
          }() + " has no file id record");
    }
    out->push_back(ev);
    off += md.event_len;
  }
  return Status::Ok();
}

}  // namespace hasync::engine::watch
