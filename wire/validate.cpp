// Semantic validation of messages: the rules the encoder asserts and the decoder checks
// (see ValidateMessage in wire/messages.h). Length limits are also enforced here, not
// only by the decoder's length prefixes, so an encoder asserting ValidateMessage can
// never produce a frame the peer would reject.
#include <bit>
#include <cstdio>
#include <string>

#include "wire/frame.h"
#include "wire/internal/checks.h"
#include "wire/internal/dispatch.h"
#include "wire/messages.h"
#include "wire/path.h"

namespace hasync::wire {
namespace {

std::string Octal(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0o%o", v);
  return buf;
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

Status Field(std::string_view field, const Status& s) { return s.ok() ? s : s.Annotate(field); }

Status CheckPath(std::string_view field, std::string_view path) {
  return Field(field, ValidatePath(path));
}

Status CheckMode(uint32_t mode) {
  if ((mode & ~kModeMask) != 0) {
    return InvalidArgument("mode " + Octal(mode) + " has bits outside kModeMask " +
                           Octal(kModeMask));
  }
  return Status::Ok();
}

Status CheckOwner(uint32_t uid, uint32_t gid) {
  if (uid == kInvalidId) return InvalidArgument("uid 4294967295 is not a valid owner");
  if (gid == kInvalidId) return InvalidArgument("gid 4294967295 is not a valid group");
  return Status::Ok();
}

Status CheckSize(std::string_view field, uint64_t size) {
  if (size > kFileSizeMax) {
    return OutOfRange(std::string(field) + " " + std::to_string(size) + " > kFileSizeMax " +
                      std::to_string(kFileSizeMax));
  }
  return Status::Ok();
}

Status CheckText(std::string_view field, std::string_view text, size_t max,
                 std::string_view max_name) {
  if (text.size() > max) {
    return OutOfRange(std::string(field) + " length " + std::to_string(text.size()) + " > " +
                      std::string(max_name) + " " + std::to_string(max));
  }
  if (size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return InvalidArgument(std::string(field) + " contains NUL at byte " + std::to_string(nul));
  }
  return Status::Ok();
}

template <class E>
Status BadEnum(std::string_view field, E value) {
  return InvalidArgument(std::string(field) + " " +
                         std::to_string(static_cast<std::underlying_type_t<E>>(value)) +
                         " is not a defined value");
}

bool Known(Role r) { return r == Role::kStandby || r == Role::kPrimary; }
bool Known(StreamKind k) { return k == StreamKind::kControl || k == StreamKind::kData; }
bool Known(RoleChangeReason r) {
  return r >= RoleChangeReason::kStalled && r <= RoleChangeReason::kHigherEpoch;
}
bool Known(ErrorCode c) { return c >= ErrorCode::kProtocol && c <= ErrorCode::kInternal; }
bool Known(FileAbortReason r) {
  return r >= FileAbortReason::kChanged && r <= FileAbortReason::kReadError;
}
bool Known(EntryKind k) { return k >= EntryKind::kFile && k <= EntryKind::kSymlink; }

#define CHECK_ENUM(field, value) \
  if (!Known(value)) return BadEnum(field, value)

Status Check(const Challenge&) { return Status::Ok(); }
Status Check(const Response&) { return Status::Ok(); }

Status Check(const Hello& m) {
  if (m.version_min == 0 || m.version_min > m.version_max) {
    return InvalidArgument("version range [" + std::to_string(m.version_min) + ", " +
                           std::to_string(m.version_max) + "] is empty or starts at 0");
  }
  CHECK_ENUM("role", m.role);
  CHECK_ENUM("stream_kind", m.stream_kind);
  if (m.stream_kind == StreamKind::kControl && m.stream_index != 0) {
    return InvalidArgument("control stream has stream_index " + std::to_string(m.stream_index) +
                           ", must be 0");
  }
  if (m.stream_kind == StreamKind::kData &&
      (m.stream_index == 0 || m.stream_index > kDataStreamsMax)) {
    return OutOfRange("data stream_index " + std::to_string(m.stream_index) +
                      " is outside [1, kDataStreamsMax " + std::to_string(kDataStreamsMax) + "]");
  }
  if (m.node_id == 0) return InvalidArgument("node_id is 0");
  if (m.session_id == 0) return InvalidArgument("session_id is 0");
  if (m.node_name.empty()) return InvalidArgument("node_name is empty");
  RETURN_IF_ERROR(CheckText("node_name", m.node_name, kNodeNameMax, "kNodeNameMax"));
  for (char c : m.node_name) {
    if (c <= 0x20 || c >= 0x7F) {
      return InvalidArgument("node_name '" + Printable(m.node_name) +
                             "' has a byte outside printable ASCII");
    }
  }
  return Status::Ok();
}

Status Check(const Error& m) {
  CHECK_ENUM("code", m.code);
  return CheckText("message", m.message, kErrorMessageMax, "kErrorMessageMax");
}

Status Check(const Ping&) { return Status::Ok(); }
Status Check(const Pong&) { return Status::Ok(); }

Status Check(const Lock& m) {
  if (m.record.empty()) return InvalidArgument("lock record is empty");
  if (m.record.size() > kLockRecordMax) {
    return OutOfRange("lock record length " + std::to_string(m.record.size()) +
                      " > kLockRecordMax " + std::to_string(kLockRecordMax));
  }
  return Status::Ok();
}

Status Check(const Promoted& m) {
  CHECK_ENUM("reason", m.reason);
  if (m.node_id == 0) return InvalidArgument("node_id is 0");
  return Status::Ok();
}

Status Check(const DemoteRequest& m) {
  CHECK_ENUM("reason", m.reason);
  return Status::Ok();
}

Status Check(const Demoted& m) {
  CHECK_ENUM("reason", m.reason);
  return Status::Ok();
}

Status Check(const FileBegin& m) {
  RETURN_IF_ERROR(CheckPath("path", m.path));
  RETURN_IF_ERROR(CheckSize("size", m.size));
  RETURN_IF_ERROR(CheckMode(m.mode));
  RETURN_IF_ERROR(CheckOwner(m.uid, m.gid));
  if ((m.flags & ~kFileFlagsKnown) != 0) {
    return InvalidArgument("flags " + Hex(m.flags) + " has unknown bits");
  }
  return Status::Ok();
}

Status Check(const Extent& m) {
  if (m.data.size() > kExtentDataMax) {
    return OutOfRange("data length " + std::to_string(m.data.size()) + " > kExtentDataMax " +
                      std::to_string(kExtentDataMax));
  }
  return internal::CheckRange(m.file_size, m.offset, m.data.size());
}

Status Check(const Hole& m) { return internal::CheckRange(m.file_size, m.offset, m.length); }

Status Check(const FileEnd& m) {
  RETURN_IF_ERROR(CheckSize("size", m.size));
  if (m.data_bytes > m.size) {
    return OutOfRange("data_bytes " + std::to_string(m.data_bytes) + " > size " +
                      std::to_string(m.size));
  }
  return Status::Ok();
}

Status Check(const FileAbort& m) {
  CHECK_ENUM("reason", m.reason);
  return Status::Ok();
}

Status Check(const Truncate& m) {
  RETURN_IF_ERROR(CheckPath("path", m.path));
  return CheckSize("size", m.size);
}

Status Check(const Mkdir& m) {
  RETURN_IF_ERROR(CheckPath("path", m.path));
  RETURN_IF_ERROR(CheckMode(m.mode));
  return CheckOwner(m.uid, m.gid);
}

Status Check(const Rmdir& m) { return CheckPath("path", m.path); }
Status Check(const Unlink& m) { return CheckPath("path", m.path); }

Status Check(const Rename& m) {
  RETURN_IF_ERROR(CheckPath("from", m.from));
  RETURN_IF_ERROR(CheckPath("to", m.to));
  if (m.flags != 0 && m.flags != kRenameNoReplace && m.flags != kRenameExchange) {
    return InvalidArgument("flags " + Hex(m.flags) +
                           " is not 0, kRenameNoReplace or kRenameExchange");
  }
  return Status::Ok();
}

Status Check(const Link& m) {
  RETURN_IF_ERROR(CheckPath("existing_path", m.existing_path));
  return CheckPath("new_path", m.new_path);
}

Status Check(const Symlink& m) {
  RETURN_IF_ERROR(CheckPath("path", m.path));
  RETURN_IF_ERROR(ValidateSymlinkTarget(m.target));
  return CheckOwner(m.uid, m.gid);
}

Status Check(const SetAttr& m) {
  RETURN_IF_ERROR(CheckPath("path", m.path));
  if (m.mask == 0 || (m.mask & ~kAttrKnown) != 0) {
    return InvalidArgument("mask " + Hex(m.mask) + " is empty or has unknown bits");
  }
  // Fields outside the mask must be zero so the encoding stays canonical.
  if ((m.mask & kAttrMode) != 0) {
    RETURN_IF_ERROR(CheckMode(m.mode));
  } else if (m.mode != 0) {
    return InvalidArgument("mode is set but kAttrMode is not in the mask");
  }
  if ((m.mask & kAttrOwner) != 0) {
    RETURN_IF_ERROR(CheckOwner(m.uid, m.gid));
  } else if (m.uid != 0 || m.gid != 0) {
    return InvalidArgument("uid/gid are set but kAttrOwner is not in the mask");
  }
  if ((m.mask & kAttrMtime) == 0 && m.mtime_ns != 0) {
    return InvalidArgument("mtime_ns is set but kAttrMtime is not in the mask");
  }
  return Status::Ok();
}

Status Check(const SetXattr& m) {
  RETURN_IF_ERROR(CheckPath("path", m.path));
  RETURN_IF_ERROR(ValidateXattrName(m.name));
  if (m.value.size() > kXattrValueMax) {
    return OutOfRange("xattr value length " + std::to_string(m.value.size()) +
                      " > kXattrValueMax " + std::to_string(kXattrValueMax));
  }
  return Status::Ok();
}

Status Check(const RemoveXattr& m) {
  RETURN_IF_ERROR(CheckPath("path", m.path));
  return ValidateXattrName(m.name);
}

Status Check(const Commit& m) {
  if (m.last_seq == 0) return InvalidArgument("last_seq is 0");
  if (m.change_count == 0 || m.change_count > kBatchChangesMax) {
    return OutOfRange("change_count " + std::to_string(m.change_count) +
                      " is outside [1, kBatchChangesMax " + std::to_string(kBatchChangesMax) + "]");
  }
  if (m.change_count > m.last_seq) {
    return InvalidArgument("change_count " + std::to_string(m.change_count) + " > last_seq " +
                           std::to_string(m.last_seq));
  }
  return Status::Ok();
}

Status Check(const Ack&) { return Status::Ok(); }

Status Check(const Nack& m) {
  CHECK_ENUM("code", m.code);
  return CheckText("message", m.message, kErrorMessageMax, "kErrorMessageMax");
}

Status Check(const ManifestRequest& m) {
  // Empty means the whole root; anything else is a path inside it.
  if (m.root.empty()) return Status::Ok();
  return CheckPath("root", m.root);
}

Status CheckEntry(const ManifestEntry& e) {
  RETURN_IF_ERROR(CheckPath("path", e.path));
  CHECK_ENUM("kind", e.kind);
  RETURN_IF_ERROR(CheckMode(e.mode));
  RETURN_IF_ERROR(CheckOwner(e.uid, e.gid));
  RETURN_IF_ERROR(CheckSize("size", e.size));
  if (e.kind == EntryKind::kDirectory && (e.size != 0 || e.hash != Hash128{})) {
    return InvalidArgument("directory entry has a nonzero size or hash");
  }
  if (e.kind == EntryKind::kSymlink && (e.size == 0 || e.size > kSymlinkTargetMax)) {
    return OutOfRange("symlink entry size " + std::to_string(e.size) +
                      " is outside [1, kSymlinkTargetMax " + std::to_string(kSymlinkTargetMax) +
                      "]");
  }
  if (e.link_id != 0 && e.kind != EntryKind::kFile) {
    return InvalidArgument("link_id on an entry that is not a file");
  }
  if (e.xattr_hash == 0 && !e.xattr_names.empty()) {
    return InvalidArgument("xattr names listed with xattr_hash 0");
  }
  // Names: each NUL-terminated, valid, in strictly ascending order.
  std::string_view names = e.xattr_names;
  std::string_view prev;
  for (size_t i = 0; !names.empty() && i <= kManifestXattrNamesMax; ++i) {
    size_t nul = names.find('\0');
    if (nul == std::string_view::npos) return InvalidArgument("xattr_names not NUL-terminated");
    std::string_view name = names.substr(0, nul);
    RETURN_IF_ERROR(Field("xattr_names", ValidateXattrName(name)));
    if (!prev.empty() && !(prev < name)) {
      return InvalidArgument("xattr_names not in strictly ascending order at " + Printable(name));
    }
    prev = name;
    names.remove_prefix(nul + 1);
  }
  return Status::Ok();
}

Status Check(const ManifestEntries& m) {
  if ((m.flags & ~kManifestLast) != 0) {
    return InvalidArgument("flags " + Hex(m.flags) + " has unknown bits");
  }
  if (m.entries.size() > kManifestEntriesMax) {
    return OutOfRange("entry count " + std::to_string(m.entries.size()) +
                      " > kManifestEntriesMax " + std::to_string(kManifestEntriesMax));
  }
  for (size_t i = 0; i < m.entries.size(); ++i) {
    RETURN_IF_ERROR(Field("entry " + std::to_string(i), CheckEntry(m.entries[i])));
  }
  return Status::Ok();
}

Status CheckBlockSize(uint32_t block_size) {
  if (block_size < kBlockSizeMin || block_size > kBlockSizeMax ||
      !std::has_single_bit(block_size)) {
    return InvalidArgument(
        "block_size " + std::to_string(block_size) + " is not a power of two in [kBlockSizeMin " +
        std::to_string(kBlockSizeMin) + ", kBlockSizeMax " + std::to_string(kBlockSizeMax) + "]");
  }
  return Status::Ok();
}

Status Check(const BlocksRequest& m) {
  RETURN_IF_ERROR(CheckPath("path", m.path));
  return CheckBlockSize(m.block_size);
}

Status Check(const BlocksReply& m) {
  RETURN_IF_ERROR(CheckBlockSize(m.block_size));
  RETURN_IF_ERROR(CheckSize("file_size", m.file_size));
  if ((m.flags & ~kBlocksFlagsKnown) != 0) {
    return InvalidArgument("flags " + Hex(m.flags) + " has unknown bits");
  }
  if (m.hashes.size() > kBlockHashesMax) {
    return OutOfRange("hash count " + std::to_string(m.hashes.size()) + " > kBlockHashesMax " +
                      std::to_string(kBlockHashesMax));
  }
  if ((m.flags & kBlocksMissing) != 0) {
    if (m.file_size != 0 || m.first_block != 0 || !m.hashes.empty()) {
      return InvalidArgument("a missing file's reply has a size, first_block or hashes");
    }
    return Status::Ok();
  }
  // file_size <= 2^63 - 1 and block_size >= 1, so this cannot overflow.
  uint64_t blocks = m.file_size / m.block_size + (m.file_size % m.block_size != 0 ? 1 : 0);
  if (m.first_block > blocks || m.hashes.size() > blocks - m.first_block) {
    return OutOfRange("blocks [" + std::to_string(m.first_block) + ", +" +
                      std::to_string(m.hashes.size()) + ") exceed the " + std::to_string(blocks) +
                      " blocks of a " + std::to_string(m.file_size) + "-byte file");
  }
  return Status::Ok();
}

Status Check(const ResyncBegin&) { return Status::Ok(); }
Status Check(const ResyncEnd&) { return Status::Ok(); }

#undef CHECK_ENUM

}  // namespace

Status internal::CheckRange(uint64_t file_size, uint64_t offset, uint64_t length) {
  RETURN_IF_ERROR(CheckSize("file_size", file_size));
  if (length == 0) return InvalidArgument("range length is 0");
  if (offset > UINT64_MAX - length) {
    return OutOfRange("offset " + std::to_string(offset) + " + length " + std::to_string(length) +
                      " overflows 64 bits");
  }
  if (offset + length > file_size) {
    return OutOfRange("offset " + std::to_string(offset) + " + length " + std::to_string(length) +
                      " > file_size " + std::to_string(file_size));
  }
  return Status::Ok();
}

MessageType TypeOf(const Message& message) {
  return std::visit([](const auto& m) { return std::decay_t<decltype(m)>::kType; }, message);
}

std::string_view MessageTypeName(MessageType type) {
  std::string_view name = "unknown";
  internal::VisitType(type, [&](auto t) { name = decltype(t)::type::kName; });
  return name;
}

bool IsKnownMessageType(uint16_t type) {
  return internal::VisitType(static_cast<MessageType>(type), [](auto) {});
}

bool IsChangeType(MessageType type) {
  bool change = false;
  internal::VisitType(type, [&](auto t) { change = decltype(t)::type::kIsChange; });
  return change;
}

Status ValidateMessage(const Message& message) {
  return std::visit(
      [](const auto& m) -> Status {
        Status s = Check(m);
        return s.ok() ? s : s.Annotate(std::decay_t<decltype(m)>::kName);
      },
      message);
}

Status ValidateFrame(const Frame& frame) { return ValidateFrame(frame.seq, frame.message); }

Status ValidateFrame(uint64_t seq, const Message& message) {
  MessageType type = TypeOf(message);
  if (IsChangeType(type) && seq == 0) {
    return InvalidArgument(std::string(MessageTypeName(type)) +
                           ": change frame has header seq 0, must be >= 1");
  }
  if (!IsChangeType(type) && seq != 0) {
    return InvalidArgument(std::string(MessageTypeName(type)) + ": header seq " +
                           std::to_string(seq) + " on a frame that is not a change");
  }
  return ValidateMessage(message);
}

}  // namespace hasync::wire
