// Canonical codec and fingerprint of the lock record; the layout and the reason the
// fingerprint covers only the progress section are in lock_record.h.
#include "lockwin/lock_record.h"

#include <array>
#include <bit>
#include <string>
#include <string_view>

#include "base/hash.h"
#include "lockwin/internal/le_bytes.h"

namespace hasync::lockwin {
namespace {

using internal::LeReader;
using internal::LeWriter;

// probe_ok (u8) + probe_latency_us (u32) + monotonic_ns (i64): the tail of every
// encoding, outside the fingerprint.
constexpr size_t kTelemetryBytes = 1 + 4 + 8;

// A parsed encoding whose strings still point into the input bytes.
struct RecordView {
  uint64_t epoch = 0;
  uint64_t node_id = 0;
  uint64_t change_seq = 0;
  uint64_t beat = 0;
  std::string_view probe_token;
  std::string_view path;
  uint64_t size_bytes = 0;
  uint64_t xxh3 = 0;
  bool probe_ok = false;
  uint32_t probe_latency_us = 0;
  int64_t monotonic_ns = 0;
  size_t progress_bytes = 0;  // length of the fingerprinted prefix
};

Status Truncated(std::string_view field, size_t offset, size_t total) {
  return InvalidArgument("lock record truncated: " + std::string(field) + " at offset " +
                         std::to_string(offset) + " runs past the end of " + std::to_string(total) +
                         " bytes");
}

// The single parser behind DecodeLockRecord and FingerprintEncodedLockRecord: accepts
// exactly the bytes EncodeLockRecordTo can produce.
Status ParseLockRecord(std::span<const std::byte> bytes, RecordView* view) {
  const size_t total = bytes.size();
  if (total > kLockRecordEncodedMax) {
    return OutOfRange("lock record is " + std::to_string(total) +
                      " bytes > kLockRecordEncodedMax " + std::to_string(kLockRecordEncodedMax));
  }
  LeReader in(bytes);

  uint8_t version = 0;
  if (!in.GetUint(&version)) return Truncated("format version", in.position(), total);
  if (version != kLockRecordFormatVersion) {
    return InvalidArgument("lock record format version " + std::to_string(version) +
                           " is not the supported version " +
                           std::to_string(kLockRecordFormatVersion));
  }
  if (!in.GetUint(&view->epoch)) return Truncated("epoch", in.position(), total);
  if (!in.GetUint(&view->node_id)) return Truncated("node_id", in.position(), total);
  if (!in.GetUint(&view->change_seq)) return Truncated("change_seq", in.position(), total);
  if (!in.GetUint(&view->beat)) return Truncated("beat", in.position(), total);

  uint16_t token_len = 0;
  if (!in.GetUint(&token_len)) return Truncated("probe_token length", in.position(), total);
  if (token_len > kProbeTokenMax) {
    return OutOfRange("probe_token length " + std::to_string(token_len) + " > kProbeTokenMax " +
                      std::to_string(kProbeTokenMax));
  }
  if (!in.GetBytes(token_len, &view->probe_token)) {
    return Truncated("probe_token", in.position(), total);
  }

  uint16_t path_len = 0;
  if (!in.GetUint(&path_len)) return Truncated("last_change.path length", in.position(), total);
  if (path_len > kLastChangePathMax) {
    return OutOfRange("last_change.path length " + std::to_string(path_len) +
                      " > kLastChangePathMax " + std::to_string(kLastChangePathMax));
  }
  const size_t path_offset = in.position();
  if (!in.GetBytes(path_len, &view->path)) {
    return Truncated("last_change.path", in.position(), total);
  }
  if (size_t nul = view->path.find('\0'); nul != std::string_view::npos) {
    return InvalidArgument("last_change.path holds a NUL byte at offset " +
                           std::to_string(path_offset + nul));
  }
  if (!in.GetUint(&view->size_bytes)) {
    return Truncated("last_change.size_bytes", in.position(), total);
  }
  if (!in.GetUint(&view->xxh3)) return Truncated("last_change.xxh3", in.position(), total);
  view->progress_bytes = in.position();

  uint8_t probe_ok = 0;
  const size_t probe_ok_offset = in.position();
  if (!in.GetUint(&probe_ok)) return Truncated("probe_ok", in.position(), total);
  if (probe_ok > 1) {
    return InvalidArgument("probe_ok byte " + std::to_string(probe_ok) + " at offset " +
                           std::to_string(probe_ok_offset) + " is neither 0 nor 1");
  }
  view->probe_ok = probe_ok == 1;
  if (!in.GetUint(&view->probe_latency_us)) {
    return Truncated("probe_latency_us", in.position(), total);
  }
  uint64_t monotonic = 0;
  if (!in.GetUint(&monotonic)) return Truncated("monotonic_ns", in.position(), total);
  view->monotonic_ns = std::bit_cast<int64_t>(monotonic);

  if (in.remaining() != 0) {
    return InvalidArgument(std::to_string(in.remaining()) +
                           " trailing bytes after the lock record at offset " +
                           std::to_string(in.position()));
  }
  HASYNC_ASSERT(total - view->progress_bytes == kTelemetryBytes);
  return Status::Ok();
}

}  // namespace

Status ValidateLockRecord(const LockRecord& record) {
  if (record.probe_token.size() > kProbeTokenMax) {
    return OutOfRange("probe_token length " + std::to_string(record.probe_token.size()) +
                      " > kProbeTokenMax " + std::to_string(kProbeTokenMax));
  }
  const std::string& path = record.last_change.path;
  if (path.size() > kLastChangePathMax) {
    return OutOfRange("last_change.path length " + std::to_string(path.size()) +
                      " > kLastChangePathMax " + std::to_string(kLastChangePathMax));
  }
  if (size_t nul = path.find('\0'); nul != std::string::npos) {
    return InvalidArgument("last_change.path holds a NUL byte at index " + std::to_string(nul));
  }
  return Status::Ok();
}

size_t EncodedLockRecordSize(const LockRecord& record) {
  return kLockRecordFixedBytes + record.probe_token.size() + record.last_change.path.size();
}

Result<size_t> EncodeLockRecordTo(const LockRecord& record, std::span<std::byte> out) {
  RETURN_IF_ERROR(ValidateLockRecord(record));
  const size_t size = EncodedLockRecordSize(record);
  HASYNC_ASSERT(size <= kLockRecordEncodedMax);
  if (out.size() < size) {
    return OutOfRange("lock record needs " + std::to_string(size) + " bytes, buffer has " +
                      std::to_string(out.size()));
  }
  LeWriter w(out);
  w.PutUint(kLockRecordFormatVersion);
  w.PutUint(record.epoch);
  w.PutUint(record.node_id);
  w.PutUint(record.change_seq);
  w.PutUint(record.beat);
  // Both lengths were bounded by ValidateLockRecord, far below UINT16_MAX.
  w.PutUint(static_cast<uint16_t>(record.probe_token.size()));
  w.PutBytes(record.probe_token);
  w.PutUint(static_cast<uint16_t>(record.last_change.path.size()));
  w.PutBytes(record.last_change.path);
  w.PutUint(record.last_change.size_bytes);
  w.PutUint(record.last_change.xxh3);
  w.PutUint(static_cast<uint8_t>(record.probe_ok ? 1 : 0));
  w.PutUint(record.probe_latency_us);
  w.PutUint(std::bit_cast<uint64_t>(record.monotonic_ns));
  HASYNC_ASSERT(w.position() == size);
  return size;
}

Result<std::vector<std::byte>> EncodeLockRecord(const LockRecord& record) {
  RETURN_IF_ERROR(ValidateLockRecord(record));
  std::vector<std::byte> out(EncodedLockRecordSize(record));
  ASSIGN_OR_RETURN(size_t written, EncodeLockRecordTo(record, out));
  HASYNC_ASSERT(written == out.size());
  return out;
}

Result<LockRecord> DecodeLockRecord(std::span<const std::byte> bytes) {
  RecordView v;
  RETURN_IF_ERROR(ParseLockRecord(bytes, &v));
  LockRecord r;
  r.epoch = v.epoch;
  r.node_id = v.node_id;
  r.change_seq = v.change_seq;
  r.beat = v.beat;
  r.probe_token.assign(v.probe_token);
  r.last_change.path.assign(v.path);
  r.last_change.size_bytes = v.size_bytes;
  r.last_change.xxh3 = v.xxh3;
  r.probe_ok = v.probe_ok;
  r.probe_latency_us = v.probe_latency_us;
  r.monotonic_ns = v.monotonic_ns;
  return r;
}

Result<uint64_t> LockRecordFingerprint(const LockRecord& record) {
  std::array<std::byte, kLockRecordEncodedMax> buf;
  ASSIGN_OR_RETURN(size_t size, EncodeLockRecordTo(record, buf));
  HASYNC_ASSERT(size >= kTelemetryBytes);
  return Xxh3_64(std::span<const std::byte>(buf.data(), size - kTelemetryBytes));
}

Result<uint64_t> FingerprintEncodedLockRecord(std::span<const std::byte> bytes) {
  RecordView v;
  RETURN_IF_ERROR(ParseLockRecord(bytes, &v));
  return Xxh3_64(bytes.first(v.progress_bytes));
}

}  // namespace hasync::lockwin
