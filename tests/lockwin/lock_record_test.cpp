// Lock record: canonical encoding, strict decoding with reasons, and a fingerprint that
// moves with progress and only with progress.
#include "lockwin/lock_record.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/hash.h"

namespace hasync::lockwin {
namespace {

using ::testing::HasSubstr;

LockRecord TypicalRecord() {
  LockRecord r;
  r.epoch = 7;
  r.node_id = 2;
  r.change_seq = 123456;
  r.beat = 9001;
  r.probe_token = "job 4711 alice 1732650000";
  r.last_change = {"job_state/job.4711/script", 1834, 0x1122334455667788u};
  r.probe_ok = true;
  r.probe_latency_us = 3150;
  r.monotonic_ns = 987654321012;
  return r;
}

std::vector<std::byte> EncodeOrDie(const LockRecord& r) {
  Result<std::vector<std::byte>> bytes = EncodeLockRecord(r);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.ok() ? std::move(bytes).value() : std::vector<std::byte>{};
}

uint64_t FingerprintOrDie(const LockRecord& r) {
  Result<uint64_t> fp = LockRecordFingerprint(r);
  EXPECT_TRUE(fp.ok()) << fp.status().ToString();
  return fp.ok() ? *fp : 0;
}

// Offset of the probe_ok byte: right after the fingerprinted progress section.
size_t ProbeOkOffset(const LockRecord& r) { return EncodedLockRecordSize(r) - (1 + 4 + 8); }

TEST(LockRecordCodec, DecodeOfEncodeGivesTheSameRecord) {
  const LockRecord r = TypicalRecord();
  std::vector<std::byte> bytes = EncodeOrDie(r);
  EXPECT_EQ(bytes.size(), EncodedLockRecordSize(r));
  Result<LockRecord> decoded = DecodeLockRecord(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, r);
  EXPECT_EQ(EncodeOrDie(*decoded), bytes);
}

TEST(LockRecordCodec, ExtremeValuesAndMaximalStringsRoundTrip) {
  LockRecord r;
  r.epoch = UINT64_MAX;
  r.node_id = UINT64_MAX;
  r.change_seq = UINT64_MAX;
  r.beat = UINT64_MAX;
  r.probe_token = std::string(kProbeTokenMax, '\xff');
  r.probe_token[3] = '\0';  // a token may hold any bytes
  r.last_change = {std::string(kLastChangePathMax, 'p'), UINT64_MAX, UINT64_MAX};
  r.probe_ok = true;
  r.probe_latency_us = UINT32_MAX;
  r.monotonic_ns = INT64_MIN;
  std::vector<std::byte> bytes = EncodeOrDie(r);
  EXPECT_EQ(bytes.size(), kLockRecordEncodedMax);
  Result<LockRecord> decoded = DecodeLockRecord(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, r);
}

TEST(LockRecordCodec, EmptyRecordHasTheMinimalEncoding) {
  std::vector<std::byte> bytes = EncodeOrDie(LockRecord{});
  EXPECT_EQ(bytes.size(), kLockRecordEncodedMin);
  Result<LockRecord> decoded = DecodeLockRecord(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, LockRecord{});
}

TEST(LockRecordCodec, IntegersAreLittleEndianInFixedOrder) {
  LockRecord r;
  r.epoch = 0x0102030405060708u;
  r.node_id = 0x1112131415161718u;
  r.probe_token = "ab";
  r.monotonic_ns = -2;
  std::vector<std::byte> b = EncodeOrDie(r);
  ASSERT_EQ(b.size(), kLockRecordEncodedMin + 2);
  EXPECT_EQ(b[0], std::byte{kLockRecordFormatVersion});
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(b[1 + i], std::byte(0x08 - i)) << "epoch byte " << i;
    EXPECT_EQ(b[9 + i], std::byte(0x18 - i)) << "node_id byte " << i;
  }
  // probe_token: u16 length 2 then the bytes.
  EXPECT_EQ(b[33], std::byte{2});
  EXPECT_EQ(b[34], std::byte{0});
  EXPECT_EQ(b[35], std::byte{'a'});
  EXPECT_EQ(b[36], std::byte{'b'});
  // monotonic_ns -2 is the last 8 bytes, two's complement little-endian.
  EXPECT_EQ(b[b.size() - 8], std::byte{0xfe});
  for (size_t i = b.size() - 7; i < b.size(); ++i) EXPECT_EQ(b[i], std::byte{0xff});
}

TEST(LockRecordCodec, TrailingBytesAreRejected) {
  std::vector<std::byte> bytes = EncodeOrDie(TypicalRecord());
  bytes.push_back(std::byte{0});
  Result<LockRecord> decoded = DecodeLockRecord(bytes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("1 trailing bytes"));
}

TEST(LockRecordCodec, BoolByteOtherThanZeroOrOneIsRejected) {
  const LockRecord r = TypicalRecord();
  std::vector<std::byte> bytes = EncodeOrDie(r);
  ASSERT_EQ(bytes[ProbeOkOffset(r)], std::byte{1});
  bytes[ProbeOkOffset(r)] = std::byte{2};
  Result<LockRecord> decoded = DecodeLockRecord(bytes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_THAT(decoded.status().message(), HasSubstr("probe_ok byte 2"));
  EXPECT_FALSE(FingerprintEncodedLockRecord(bytes).ok());
}

TEST(LockRecordCodec, EveryTruncationIsRejected) {
  std::vector<std::byte> bytes = EncodeOrDie(TypicalRecord());
  for (size_t len = 0; len < bytes.size(); ++len) {
    Result<LockRecord> decoded = DecodeLockRecord(std::span(bytes).first(len));
    ASSERT_FALSE(decoded.ok()) << "prefix of " << len << " bytes was accepted";
    EXPECT_THAT(decoded.status().message(), HasSubstr("truncated")) << len;
  }
}

TEST(LockRecordCodec, UnknownFormatVersionIsRejected) {
  std::vector<std::byte> bytes = EncodeOrDie(TypicalRecord());
  bytes[0] = std::byte{kLockRecordFormatVersion + 1};
  Result<LockRecord> decoded = DecodeLockRecord(bytes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_THAT(decoded.status().message(), HasSubstr("format version 2"));
}

TEST(LockRecordCodec, OverLongProbeTokenLengthIsRejected) {
  // A well-formed record in every other respect, with a 257-byte token.
  LockRecord r;
  std::vector<std::byte> bytes = EncodeOrDie(r);
  const size_t token_len_offset = 33;
  const uint16_t len = kProbeTokenMax + 1;
  bytes[token_len_offset] = std::byte(len & 0xff);
  bytes[token_len_offset + 1] = std::byte(len >> 8);
  bytes.insert(bytes.begin() + token_len_offset + 2, len, std::byte{'x'});
  Result<LockRecord> decoded = DecodeLockRecord(bytes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Code::kOutOfRange);
  EXPECT_THAT(decoded.status().message(), HasSubstr("probe_token length 257 > kProbeTokenMax 256"));
}

TEST(LockRecordCodec, OverLongPathLengthIsRejected) {
  LockRecord r;
  std::vector<std::byte> bytes = EncodeOrDie(r);
  const size_t path_len_offset = 35;  // empty token
  const uint16_t len = kLastChangePathMax + 1;
  bytes[path_len_offset] = std::byte(len & 0xff);
  bytes[path_len_offset + 1] = std::byte(len >> 8);
  bytes.insert(bytes.begin() + path_len_offset + 2, len, std::byte{'p'});
  Result<LockRecord> decoded = DecodeLockRecord(bytes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Code::kOutOfRange);
  EXPECT_THAT(decoded.status().message(), HasSubstr("last_change.path length 4096"));
}

TEST(LockRecordCodec, InputLongerThanTheMaximumIsRejectedBeforeParsing) {
  std::vector<std::byte> bytes(kLockRecordEncodedMax + 1, std::byte{0});
  bytes[0] = std::byte{kLockRecordFormatVersion};
  Result<LockRecord> decoded = DecodeLockRecord(bytes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Code::kOutOfRange);
  EXPECT_THAT(decoded.status().message(), HasSubstr("> kLockRecordEncodedMax"));
}

TEST(LockRecordCodec, NulInPathIsRejectedByEncodeAndDecode) {
  LockRecord r = TypicalRecord();
  r.last_change.path = std::string("a\0b", 3);
  EXPECT_FALSE(EncodeLockRecord(r).ok());
  EXPECT_FALSE(LockRecordFingerprint(r).ok());

  LockRecord clean = TypicalRecord();
  clean.last_change.path = "a_b";
  std::vector<std::byte> bytes = EncodeOrDie(clean);
  const size_t path_offset = 33 + 2 + clean.probe_token.size() + 2;
  ASSERT_EQ(bytes[path_offset + 1], std::byte{'_'});
  bytes[path_offset + 1] = std::byte{0};
  Result<LockRecord> decoded = DecodeLockRecord(bytes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_THAT(decoded.status().message(), HasSubstr("NUL byte at offset"));
}

TEST(LockRecordCodec, EncodeRejectsStringsBeyondTheirBounds) {
  LockRecord r = TypicalRecord();
  r.probe_token = std::string(kProbeTokenMax + 1, 't');
  Result<std::vector<std::byte>> bytes = EncodeLockRecord(r);
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.status().code(), Code::kOutOfRange);

  r = TypicalRecord();
  r.last_change.path = std::string(kLastChangePathMax + 1, 'p');
  EXPECT_FALSE(EncodeLockRecord(r).ok());
  EXPECT_FALSE(ValidateLockRecord(r).ok());
}

TEST(LockRecordCodec, EncodeIntoTooSmallBufferFails) {
  const LockRecord r = TypicalRecord();
  std::vector<std::byte> out(EncodedLockRecordSize(r) - 1);
  Result<size_t> written = EncodeLockRecordTo(r, out);
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.status().code(), Code::kOutOfRange);
  out.resize(EncodedLockRecordSize(r));
  written = EncodeLockRecordTo(r, out);
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(*written, out.size());
  EXPECT_EQ(out, EncodeOrDie(r));
}

// Canonical means one encoding per record: any single-bit change of a valid encoding is
// either rejected or decodes to a different record whose encoding is exactly those bytes.
TEST(LockRecordCodec, EveryBitFlipIsRejectedOrIsAnotherRecordsOnlyEncoding) {
  const LockRecord r = TypicalRecord();
  const std::vector<std::byte> original = EncodeOrDie(r);
  size_t accepted = 0;
  for (size_t i = 0; i < original.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<std::byte> bytes = original;
      bytes[i] ^= std::byte(1u << bit);
      Result<LockRecord> decoded = DecodeLockRecord(bytes);
      if (!decoded.ok()) continue;
      ++accepted;
      EXPECT_NE(*decoded, r) << "byte " << i << " bit " << bit;
      EXPECT_EQ(EncodeOrDie(*decoded), bytes) << "byte " << i << " bit " << bit;
    }
  }
  EXPECT_GT(accepted, 0u);  // the integer fields accept any value
}

TEST(LockRecordFingerprint, SameRecordGivesSameFingerprint) {
  const LockRecord r = TypicalRecord();
  const LockRecord copy = r;
  EXPECT_EQ(FingerprintOrDie(r), FingerprintOrDie(r));
  EXPECT_EQ(FingerprintOrDie(r), FingerprintOrDie(copy));
}

TEST(LockRecordFingerprint, SurvivesEncodeAndDecode) {
  const LockRecord r = TypicalRecord();
  std::vector<std::byte> bytes = EncodeOrDie(r);
  Result<LockRecord> decoded = DecodeLockRecord(bytes);
  ASSERT_TRUE(decoded.ok());
  Result<uint64_t> from_bytes = FingerprintEncodedLockRecord(bytes);
  ASSERT_TRUE(from_bytes.ok()) << from_bytes.status().ToString();
  EXPECT_EQ(*from_bytes, FingerprintOrDie(r));
  EXPECT_EQ(FingerprintOrDie(*decoded), FingerprintOrDie(r));
}

TEST(LockRecordFingerprint, IsXxh3OfTheProgressSection) {
  const LockRecord r = TypicalRecord();
  std::vector<std::byte> bytes = EncodeOrDie(r);
  EXPECT_EQ(FingerprintOrDie(r), Xxh3_64(std::span(bytes).first(ProbeOkOffset(r))));
  EXPECT_NE(FingerprintOrDie(r), Xxh3_64(bytes));
}

// DESIGN §3: a record re-sent unchanged keeps its fingerprint. The primary re-makes the
// record every tick, so a new timestamp, a new probe latency or a flipped probe_ok alone
// must not look like progress, or a hung primary that still beats is never Stalled.
TEST(LockRecordFingerprint, ReMadeRecordWithOnlyNewTelemetryKeepsItsFingerprint) {
  const LockRecord r = TypicalRecord();
  LockRecord remade = r;
  remade.monotonic_ns += 250'000'000;
  remade.probe_latency_us += 17;
  remade.probe_ok = !r.probe_ok;
  EXPECT_NE(EncodeOrDie(remade), EncodeOrDie(r));  // the telemetry is still carried
  EXPECT_EQ(FingerprintOrDie(remade), FingerprintOrDie(r));
}

TEST(LockRecordFingerprint, ChangingAnyProgressFieldChangesIt) {
  const std::vector<std::pair<const char*, std::function<void(LockRecord&)>>> mutations = {
      {"epoch", [](LockRecord& r) { ++r.epoch; }},
      {"node_id", [](LockRecord& r) { ++r.node_id; }},
      {"change_seq", [](LockRecord& r) { ++r.change_seq; }},
      {"beat", [](LockRecord& r) { ++r.beat; }},
      {"probe_token", [](LockRecord& r) { r.probe_token = "job 4712 bob 1732650009"; }},
      {"probe_token length", [](LockRecord& r) { r.probe_token += ' '; }},
      {"last_change.path", [](LockRecord& r) { r.last_change.path += ".new"; }},
      {"last_change.size_bytes", [](LockRecord& r) { ++r.last_change.size_bytes; }},
      {"last_change.xxh3", [](LockRecord& r) { r.last_change.xxh3 ^= 1; }},
  };
  const uint64_t base = FingerprintOrDie(TypicalRecord());
  std::set<uint64_t> seen = {base};
  for (const auto& [field, mutate] : mutations) {
    LockRecord r = TypicalRecord();
    mutate(r);
    const uint64_t fp = FingerprintOrDie(r);
    EXPECT_NE(fp, base) << field;
    EXPECT_TRUE(seen.insert(fp).second) << field << " collides with another mutation";
  }
}

// Moving bytes between the token and the path keeps the concatenated bytes equal; the
// length prefixes must still tell the two records apart.
TEST(LockRecordFingerprint, LengthPrefixesSeparateAdjacentStrings) {
  LockRecord a = TypicalRecord();
  a.probe_token = "ab";
  a.last_change.path = "c";
  LockRecord b = a;
  b.probe_token = "a";
  b.last_change.path = "bc";
  EXPECT_NE(FingerprintOrDie(a), FingerprintOrDie(b));
}

}  // namespace
}  // namespace hasync::lockwin
