// The lock record: what the primary pushes to the standby with every change and on every
// heartbeat tick, and the fingerprint the standby's window is judged on (DESIGN §3).
//
// Contract
// - Canonical encoding: explicit little-endian integers, fixed field order,
//   u16-length-prefixed strings bounded by kProbeTokenMax / kLastChangePathMax, bools as
//   exactly 0 or 1, no padding, no trailing bytes. One record has exactly one encoding
//   and DecodeLockRecord accepts only that encoding, so Encode(Decode(b)) == b for every
//   accepted b and Decode(Encode(r)) == r for every valid r.
// - The encoding is at most kLockRecordEncodedMax (<= 8192) bytes.
// - Every rejection says why ("probe_token length 300 > kProbeTokenMax 256").
// - No syscalls and no exceptions; times are values the caller passes in.
//
// Layout (offsets in bytes; n = probe_token length, m = path length)
//
//     0        u8   format version (kLockRecordFormatVersion)      ┐
//     1        u64  epoch                                          │
//     9        u64  node_id                                        │ progress section:
//     17       u64  change_seq                                     │ the fingerprint is
//     25       u64  beat                                           │ XXH3-64 over these
//     33       u16  n, then n bytes of probe_token                 │ bytes
//     35+n     u16  m, then m bytes of last_change.path            │
//     37+n+m   u64  last_change.size_bytes                         │
//     45+n+m   u64  last_change.xxh3                               ┘
//     53+n+m   u8   probe_ok (0 or 1)                              ┐ telemetry section:
//     54+n+m   u32  probe_latency_us                               │ carried, shown,
//     58+n+m   i64  monotonic_ns                                   ┘ not fingerprinted
//
// Why the fingerprint stops before the telemetry section
// The standby declares the primary Stalled when every record of the last window carries
// the same fingerprint. That is only sound if the fingerprint moves exactly when the
// primary makes progress. The primary re-makes its record on every beat tick, so:
// - monotonic_ns (when the record was made) changes on every tick, progress or not; if
//   it were fingerprinted, a primary whose scheduler hangs but whose beat timer still
//   fires would send a new fingerprint every 250 ms and never be judged Stalled.
// - probe_latency_us jitters on every probe run, and a hung scheduler's probe keeps
//   running and timing out with a slightly different latency each time; the same trap.
// - probe_ok is a measurement, not progress: `beat` advances only while the latest probe
//   passed and is fresh, so a passing probe already shows up as a new beat. A flapping
//   probe on a sick scheduler must not reset the run by itself.
// So the progress fields (epoch, node_id, change_seq, beat, probe_token, last_change)
// come first and are hashed; the telemetry follows and is only carried. A record re-sent
// unchanged, or re-made with only a new timestamp or latency, keeps its fingerprint.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "lockwin/limits.h"

namespace hasync::lockwin {

// Summary of the newest change the primary journaled.
struct LastChange {
  std::string path;         // relative to the sync root, <= kLastChangePathMax, no NUL
  uint64_t size_bytes = 0;  // file size after the change
  uint64_t xxh3 = 0;        // XXH3-64 of the file content after the change

  friend bool operator==(const LastChange&, const LastChange&) = default;
};

struct LockRecord {
  // Progress fields: any change here changes the fingerprint.
  uint64_t epoch = 0;       // the primary's epoch (DESIGN §4)
  uint64_t node_id = 0;     // the primary's configured node id
  uint64_t change_seq = 0;  // sequence number of the newest journaled change
  uint64_t beat = 0;        // advances per tick only while the pipeline and probe are healthy
  std::string probe_token;  // what the scheduler probe printed, <= kProbeTokenMax bytes
  LastChange last_change;

  // Telemetry fields: carried and shown, deliberately not fingerprinted (see above).
  bool probe_ok = false;
  uint32_t probe_latency_us = 0;
  int64_t monotonic_ns = 0;  // the primary's monotonic clock when the record was made

  friend bool operator==(const LockRecord&, const LockRecord&) = default;
};

// OK if the record has a canonical encoding: strings within their bounds and no NUL in
// the path. A probe token may hold any bytes.
Status ValidateLockRecord(const LockRecord& record);

// Exact size of the record's encoding; meaningful only for a valid record.
size_t EncodedLockRecordSize(const LockRecord& record);

// Writes the canonical encoding into `out` and returns the number of bytes written.
// Fails if the record is invalid or `out` is smaller than EncodedLockRecordSize().
Result<size_t> EncodeLockRecordTo(const LockRecord& record, std::span<std::byte> out);

// Canonical encoding as an owned buffer.
Result<std::vector<std::byte>> EncodeLockRecord(const LockRecord& record);

// Strict decode: rejects (with the reason) anything that is not the canonical encoding
// of some record.
Result<LockRecord> DecodeLockRecord(std::span<const std::byte> bytes);

// XXH3-64 over the progress section of the record's canonical encoding.
Result<uint64_t> LockRecordFingerprint(const LockRecord& record);

// The same fingerprint computed straight from received bytes, without building a
// LockRecord (no allocation): the bytes are validated exactly as DecodeLockRecord does,
// then the progress section is hashed in place. Because the encoding is canonical,
// FingerprintEncodedLockRecord(EncodeLockRecord(r)) == LockRecordFingerprint(r).
Result<uint64_t> FingerprintEncodedLockRecord(std::span<const std::byte> bytes);

}  // namespace hasync::lockwin
