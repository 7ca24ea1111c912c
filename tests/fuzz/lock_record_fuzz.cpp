// libFuzzer target for the lock-record codec (lockwin/lock_record.h).
//
// The standby fingerprints every lock record it receives straight from the wire bytes
// (FingerprintEncodedLockRecord), and the failover verdict rests on that fingerprint, so
// the codec must be strict and canonical. Properties checked on every input, beyond
// "no crash, no sanitizer report":
// - DecodeLockRecord and FingerprintEncodedLockRecord accept exactly the same inputs,
//   and a rejection always carries a reason;
// - anything decode accepts re-encodes to exactly the same bytes, is a valid record of
//   that encoded size, decodes again to an equal record, and fingerprints the same from
//   the record (LockRecordFingerprint) as from the bytes;
// - the telemetry tail (probe_ok, probe_latency_us, monotonic_ns) is not fingerprinted:
//   rewriting it leaves the fingerprint unchanged;
// - read as a structured record (the same bytes drive the field values), every valid
//   record encodes, decodes back to itself and fingerprints consistently.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "lockwin/limits.h"
#include "lockwin/lock_record.h"

namespace {

using namespace hasync;
using namespace hasync::lockwin;

// probe_ok (u8) + probe_latency_us (u32) + monotonic_ns (i64), after the progress section.
constexpr size_t kTelemetryBytes = 1 + 4 + 8;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "lock_record_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

bool SameBytes(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// Pass 1: the input as received wire bytes.
void DecodeBytes(std::span<const std::byte> in) {
  Result<LockRecord> decoded = DecodeLockRecord(in);
  Result<uint64_t> fp_bytes = FingerprintEncodedLockRecord(in);
  Check(decoded.ok() == fp_bytes.ok(), "decode and fingerprint accept the same inputs");
  if (!decoded.ok()) {
    Check(!decoded.status().message().empty(), "a decode rejection carries a reason");
    Check(!fp_bytes.status().message().empty(), "a fingerprint rejection carries a reason");
    return;
  }
  const LockRecord& record = *decoded;
  Check(ValidateLockRecord(record).ok(), "a decoded record is valid");
  Check(EncodedLockRecordSize(record) == in.size(), "the encoded size matches the input");

  Result<std::vector<std::byte>> again = EncodeLockRecord(record);
  Check(again.ok(), "a decoded record encodes");
  Check(SameBytes(*again, in), "a decoded record re-encodes to the same bytes");
  Result<LockRecord> redecoded = DecodeLockRecord(*again);
  Check(redecoded.ok() && *redecoded == record, "the re-encoding decodes to an equal record");

  Result<uint64_t> fp_record = LockRecordFingerprint(record);
  Check(fp_record.ok() && *fp_record == *fp_bytes,
        "the fingerprint of the record equals the fingerprint of its bytes");

  // Rewrite the telemetry tail (keeping probe_ok a valid 0/1): same fingerprint.
  Check(in.size() >= kLockRecordEncodedMin, "an accepted record is at least the fixed size");
  std::vector<std::byte> retimed(in.begin(), in.end());
  const size_t tail = retimed.size() - kTelemetryBytes;
  retimed[tail] = retimed[tail] == std::byte{0} ? std::byte{1} : std::byte{0};
  for (size_t i = tail + 1; i < retimed.size(); ++i) retimed[i] = ~retimed[i];
  Result<uint64_t> fp_retimed = FingerprintEncodedLockRecord(retimed);
  Check(fp_retimed.ok() && *fp_retimed == *fp_bytes,
        "rewriting only the telemetry leaves the fingerprint unchanged");
}

// Reads fixed-width values and short strings off the front of the input; past the end it
// yields zeros and empty strings.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}

  uint64_t U64(size_t width = 8) {
    uint64_t v = 0;
    for (size_t i = 0; i < width && pos_ < in_.size(); ++i, ++pos_) {
      v |= std::to_integer<uint64_t>(in_[pos_]) << (8 * i);
    }
    return v;
  }

  // A length byte pair, then that many bytes (bounded by what is left, and by `max` + 1
  // so that one-past-the-limit strings are tried too).
  std::string String(size_t max) {
    size_t len = static_cast<size_t>(U64(2)) % (max + 2);
    len = std::min(len, in_.size() - pos_);
    std::string s(len, '\0');
    if (len != 0) std::memcpy(s.data(), in_.data() + pos_, len);
    pos_ += len;
    return s;
  }

 private:
  std::span<const std::byte> in_;
  size_t pos_ = 0;
};

// Pass 2: the input as the field values of a record the primary would make.
void EncodeStructured(std::span<const std::byte> in) {
  Reader r(in);
  LockRecord record;
  record.epoch = r.U64();
  record.node_id = r.U64();
  record.change_seq = r.U64();
  record.beat = r.U64();
  record.probe_token = r.String(kProbeTokenMax);
  record.last_change.path = r.String(kLastChangePathMax);
  record.last_change.size_bytes = r.U64();
  record.last_change.xxh3 = r.U64();
  record.probe_ok = (r.U64(1) & 1) != 0;
  record.probe_latency_us = static_cast<uint32_t>(r.U64(4));
  record.monotonic_ns = static_cast<int64_t>(r.U64());

  const bool valid = record.probe_token.size() <= kProbeTokenMax &&
                     record.last_change.path.size() <= kLastChangePathMax &&
                     record.last_change.path.find('\0') == std::string::npos;
  Status validation = ValidateLockRecord(record);
  Check(validation.ok() == valid, "ValidateLockRecord matches the documented bounds");
  Result<std::vector<std::byte>> bytes = EncodeLockRecord(record);
  Result<uint64_t> fp_record = LockRecordFingerprint(record);
  Check(bytes.ok() == valid && fp_record.ok() == valid, "encode accepts exactly valid records");
  if (!valid) {
    Check(!validation.message().empty(), "an invalid record is rejected with a reason");
    return;
  }
  Check(bytes->size() == EncodedLockRecordSize(record), "the encoding has the stated size");
  Check(bytes->size() <= kLockRecordEncodedMax, "the encoding fits kLockRecordEncodedMax");
  Result<LockRecord> decoded = DecodeLockRecord(*bytes);
  Check(decoded.ok() && *decoded == record, "a valid record round-trips");
  Result<uint64_t> fp_bytes = FingerprintEncodedLockRecord(*bytes);
  Check(fp_bytes.ok() && *fp_bytes == *fp_record,
        "the fingerprint of the bytes equals the fingerprint of the record");

  // The telemetry fields alone never move the fingerprint.
  LockRecord retimed = record;
  retimed.probe_ok = !record.probe_ok;
  retimed.probe_latency_us = ~record.probe_latency_us;
  retimed.monotonic_ns = record.monotonic_ns ^ 0x5555;
  Result<uint64_t> fp_retimed = LockRecordFingerprint(retimed);
  Check(fp_retimed.ok() && *fp_retimed == *fp_record,
        "changing only the telemetry leaves the fingerprint unchanged");

  // A too-small buffer is refused, not overrun.
  std::vector<std::byte> small(bytes->size() - 1);
  Check(!EncodeLockRecordTo(record, small).ok(), "a short output buffer is refused");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  DecodeBytes(in);
  EncodeStructured(in);
  return 0;
}
