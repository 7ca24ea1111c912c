// Hostile and malformed frames: each is rejected, and the reason says why.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/wire/samples.h"
#include "tests/wire/test_bytes.h"
#include "wire/frame.h"

namespace hasync::wire {
namespace {

using ::hasync::wire::testing::Bytes;
using ::hasync::wire::testing::Change;
using ::hasync::wire::testing::Control;
using ::hasync::wire::testing::Find;
using ::hasync::wire::testing::GrowBody;
using ::hasync::wire::testing::Overwrite;
using ::hasync::wire::testing::SampleHello;
using ::hasync::wire::testing::SetLe;
using ::hasync::wire::testing::ShrinkBody;
using ::testing::HasSubstr;

// Decodes `bytes` and returns the rejection reason; fails the test if it decoded.
std::string RejectReason(const std::vector<std::byte>& bytes) {
  Result<Frame> r = DecodeFrame(bytes);
  EXPECT_FALSE(r.ok()) << "hostile frame was accepted";
  return r.ok() ? std::string() : r.status().message();
}

constexpr size_t kBody = kFrameHeaderSize;

// ---- Header ----------------------------------------------------------------------------

TEST(FrameDecoder, BadMagicIsRejected) {
  auto b = EncodeFrame(Control(Ping{1, 2}));
  Overwrite(b, 0, "HTTP");
  EXPECT_THAT(RejectReason(b), HasSubstr("bad magic 0x50545448, expected 0x4e595348"));
}

TEST(FrameDecoder, OtherProtocolVersionIsRejected) {
  auto b = EncodeFrame(Control(Ping{1, 2}));
  SetLe(b, kHeaderVersionOffset, 2, 2);
  EXPECT_THAT(RejectReason(b), HasSubstr("unsupported protocol version 2, this build speaks 1"));
}

TEST(FrameDecoder, UnknownTypeIsRejected) {
  auto b = EncodeFrame(Control(Ping{1, 2}));
  SetLe(b, kHeaderTypeOffset, 0x0999, 2);
  EXPECT_THAT(RejectReason(b), HasSubstr("unknown frame type 0x999"));
}

TEST(FrameDecoder, UnknownHeaderFlagsAreRejected) {
  auto b = EncodeFrame(Control(Ping{1, 2}));
  SetLe(b, kHeaderFlagsOffset, 0x8000, 2);
  EXPECT_THAT(RejectReason(b), HasSubstr("unknown header flags 0x8000"));
}

TEST(FrameDecoder, NonzeroReservedHeaderFieldIsRejected) {
  auto b = EncodeFrame(Control(Ping{1, 2}));
  SetLe(b, kHeaderReservedOffset, 1, 2);
  EXPECT_THAT(RejectReason(b), HasSubstr("reserved header field is 0x1"));
}

TEST(FrameDecoder, OversizedBodyLengthIsRejected) {
  auto b = EncodeFrame(Control(Ping{1, 2}));
  SetLe(b, kHeaderBodyLenOffset, kFrameBodyMax + 1, 4);
  EXPECT_THAT(RejectReason(b), HasSubstr("frame body length 1052673 > kFrameBodyMax 1052672"));
  SetLe(b, kHeaderBodyLenOffset, 0xFFFFFFFF, 4);
  EXPECT_THAT(RejectReason(b), HasSubstr("frame body length 4294967295 > kFrameBodyMax"));
}

TEST(FrameDecoder, TruncatedHeaderIsRejected) {
  auto b = EncodeFrame(Control(Ping{1, 2}));
  b.resize(kFrameHeaderSize - 1);
  EXPECT_THAT(RejectReason(b), HasSubstr("truncated header: 31 of 32 bytes"));
}

// ---- Body framing ----------------------------------------------------------------------

TEST(FrameDecoder, TruncatedBodyIsRejected) {
  auto b = EncodeFrame(Change(Unlink{"job_state.old"}));
  b.pop_back();
  EXPECT_THAT(RejectReason(b), HasSubstr("truncated body: 14 of 15 bytes"));
}

TEST(FrameDecoder, BodyShorterThanItsFieldsIsRejected) {
  auto b = EncodeFrame(Change(FileBegin{.size = 1, .path = "abc"}));
  ShrinkBody(b, 2);  // the header agrees, but the path's length prefix promises 3 bytes
  EXPECT_THAT(RejectReason(b), HasSubstr("FILE_BEGIN: truncated body: path needs 3 bytes"));
}

TEST(FrameDecoder, EmptyBodyOfAMessageWithFieldsIsRejected) {
  auto b = EncodeFrame(Control(Commit{5, 1}));
  ShrinkBody(b, b.size() - kFrameHeaderSize);
  EXPECT_THAT(RejectReason(b), HasSubstr("COMMIT: truncated body: last_seq needs 8 bytes"));
}

TEST(FrameDecoder, TrailingBytesInsideBodyAreRejected) {
  auto b = EncodeFrame(Control(Ack{9, true}));
  GrowBody(b, {std::byte{0}});
  EXPECT_THAT(RejectReason(b), HasSubstr("ACK: 1 trailing bytes after the last field"));
  auto e = EncodeFrame(Control(ResyncBegin{}));
  GrowBody(e, {std::byte{1}, std::byte{2}});
  EXPECT_THAT(RejectReason(e), HasSubstr("RESYNC_BEGIN: 2 trailing bytes"));
}

TEST(FrameDecoder, BytesAfterTheFrameAreRejectedByDecodeFrame) {
  auto b = EncodeFrame(Control(Ack{9, true}));
  b.push_back(std::byte{0x48});
  EXPECT_THAT(RejectReason(b), HasSubstr("1 bytes after the end of the frame"));
}

TEST(FrameDecoder, OversizedFieldLengthIsRejectedBeforeReading) {
  auto b = EncodeFrame(Control(Lock{Bytes(kLockRecordMax, 1)}));
  SetLe(b, kBody, kLockRecordMax + 1, 4);
  GrowBody(b, {std::byte{0}});
  EXPECT_THAT(RejectReason(b), HasSubstr("LOCK: record length 8193 > kLockRecordMax 8192"));
}

TEST(FrameDecoder, OversizedPathLengthIsRejected) {
  auto b = EncodeFrame(Change(Unlink{"a"}));
  SetLe(b, kBody, 5000, 2);
  EXPECT_THAT(RejectReason(b), HasSubstr("UNLINK: path length 5000 > kPathMax 4095"));
}

TEST(FrameDecoder, OversizedExtentDataLengthIsRejected) {
  auto b = EncodeFrame(Change(Extent{100, 0, Bytes(4, 0)}));
  SetLe(b, kBody + 16, kExtentDataMax + 1, 4);
  EXPECT_THAT(RejectReason(b), HasSubstr("EXTENT: data length 1048577 > kExtentDataMax 1048576"));
}

TEST(FrameDecoder, OversizedXattrValueIsRejected) {
  auto b = EncodeFrame(Change(SetXattr{"f", "user.a", Bytes(1, 0)}));
  size_t value_len_at = b.size() - 1 - 4;
  SetLe(b, value_len_at, kXattrValueMax + 1, 4);
  EXPECT_THAT(RejectReason(b), HasSubstr("value length 65537 > kXattrValueMax 65536"));
}

// ---- Ranges ----------------------------------------------------------------------------

TEST(FrameDecoder, ExtentOffsetPlusLengthOverflowIsRejected) {
  auto b = EncodeFrame(Change(Extent{kFileSizeMax, 0, Bytes(100, 0)}));
  SetLe(b, kBody + 8, UINT64_MAX - 10, 8);  // offset
  EXPECT_THAT(RejectReason(b),
              HasSubstr("EXTENT: offset 18446744073709551605 + length 100 overflows 64 bits"));
}

TEST(FrameDecoder, ExtentBeyondDeclaredFileSizeIsRejected) {
  auto b = EncodeFrame(Change(Extent{1000, 900, Bytes(100, 0)}));
  SetLe(b, kBody + 8, 901, 8);
  EXPECT_THAT(RejectReason(b), HasSubstr("offset 901 + length 100 > file_size 1000"));
}

TEST(FrameDecoder, EmptyExtentIsRejected) {
  auto b = EncodeFrame(Change(Extent{1000, 0, Bytes(1, 0)}));
  SetLe(b, kBody + 16, 0, 4);
  ShrinkBody(b, 1);
  EXPECT_THAT(RejectReason(b), HasSubstr("EXTENT: range length is 0"));
}

TEST(FrameDecoder, FileSizeBeyondOffTIsRejected) {
  auto b = EncodeFrame(Change(Extent{1000, 0, Bytes(1, 0)}));
  SetLe(b, kBody, uint64_t{1} << 63, 8);
  EXPECT_THAT(RejectReason(b), HasSubstr("file_size 9223372036854775808 > kFileSizeMax"));
}

TEST(FrameDecoder, HoleOverflowIsRejected) {
  auto b = EncodeFrame(Change(Hole{kFileSizeMax, 1, 1}));
  SetLe(b, kBody + 16, UINT64_MAX, 8);
  EXPECT_THAT(RejectReason(b), HasSubstr("HOLE: offset 1 + length 18446744073709551615 overflows"));
}

TEST(FrameDecoder, FileEndWithMoreDataThanSizeIsRejected) {
  auto b = EncodeFrame(Change(FileEnd{10, {}, 1, 10}));
  SetLe(b, b.size() - 8, 11, 8);
  EXPECT_THAT(RejectReason(b), HasSubstr("data_bytes 11 > size 10"));
}

TEST(FrameDecoder, BlockHashesBeyondTheFileAreRejected) {
  // 3 blocks of 4 KiB cover 12 KiB; claim the file is one block long.
  auto b = EncodeFrame(Control(BlocksReply{1, 3 * 4096, 4096, 0, 0, {{}, {}, {}}}));
  SetLe(b, kBody + 8, 4096, 8);
  EXPECT_THAT(RejectReason(b), HasSubstr("exceed the 1 blocks of a 4096-byte file"));
}

TEST(FrameDecoder, BlockSizeThatIsNotAPowerOfTwoIsRejected) {
  auto b = EncodeFrame(Control(BlocksRequest{1, 8192, "f"}));
  SetLe(b, kBody + 8, 12288, 4);
  EXPECT_THAT(RejectReason(b), HasSubstr("block_size 12288 is not a power of two"));
}

// ---- Counts ----------------------------------------------------------------------------

TEST(FrameDecoder, ManifestEntryCountAboveLimitIsRejected) {
  auto b = EncodeFrame(Control(ManifestEntries{1, 0, {}}));
  SetLe(b, kBody + 9, kManifestEntriesMax + 1, 2);
  EXPECT_THAT(RejectReason(b), HasSubstr("entries length 129 > kManifestEntriesMax 128"));
}

TEST(FrameDecoder, BlockHashCountAboveLimitIsRejected) {
  auto b = EncodeFrame(Control(BlocksReply{1, 0, 4096, 0, 0, {}}));
  SetLe(b, b.size() - 4, kBlockHashesMax + 1, 4);
  EXPECT_THAT(RejectReason(b), HasSubstr("hashes length 4097 > kBlockHashesMax 4096"));
}

TEST(FrameDecoder, CountLargerThanTheBodyIsRejectedBeforeAllocating) {
  auto b = EncodeFrame(Control(BlocksReply{1, 1 << 30, 4096, 0, 0, {}}));
  SetLe(b, b.size() - 4, 100, 4);
  EXPECT_THAT(RejectReason(b),
              HasSubstr("truncated body: hashes count 100 needs at least 1600 bytes, 0 remain"));
}

TEST(FrameDecoder, CommitOfTooManyChangesIsRejected) {
  auto b = EncodeFrame(Control(Commit{1 << 20, 1}));
  SetLe(b, kBody + 8, kBatchChangesMax + 1, 4);
  EXPECT_THAT(RejectReason(b),
              HasSubstr("change_count 65537 is outside [1, kBatchChangesMax 65536]"));
}

// ---- Enums, booleans, flags ------------------------------------------------------------

TEST(FrameDecoder, InvalidEnumValueIsRejected) {
  auto hello = EncodeFrame(SampleHello());
  SetLe(hello, kBody + 4, 9, 1);  // role
  EXPECT_THAT(RejectReason(hello), HasSubstr("HELLO: role 9 is not a defined value"));

  auto error = EncodeFrame(Control(Error{ErrorCode::kIo, ""}));
  SetLe(error, kBody, 0, 2);
  EXPECT_THAT(RejectReason(error), HasSubstr("ERROR: code 0 is not a defined value"));

  auto entries = EncodeFrame(
      Control(ManifestEntries{1, 0, {ManifestEntry{EntryKind::kFile, 0, 0, 0, 0, 0, {}, 0, 0, "", "f"}}}));
  SetLe(entries, kBody + 11, 4, 1);  // first entry's kind
  EXPECT_THAT(RejectReason(entries), HasSubstr("entry 0: kind 4 is not a defined value"));
}

TEST(FrameDecoder, BooleanOtherThanZeroOrOneIsRejected) {
  auto b = EncodeFrame(Control(Ack{1, true}));
  SetLe(b, kBody + 8, 2, 1);
  EXPECT_THAT(RejectReason(b), HasSubstr("ACK: durable: boolean byte 2 is neither 0 nor 1"));
}

TEST(FrameDecoder, UnknownBodyFlagsAreRejected) {
  auto file = EncodeFrame(Change(FileBegin{.path = "f"}));
  SetLe(file, kBody + 20, 0x80, 4);
  EXPECT_THAT(RejectReason(file), HasSubstr("FILE_BEGIN: flags 0x80 has unknown bits"));

  auto rename = EncodeFrame(Change(Rename{0, "a", "b"}));
  SetLe(rename, kBody, kRenameExchange | kRenameNoReplace, 4);
  EXPECT_THAT(RejectReason(rename), HasSubstr("RENAME: flags 0x3"));
}

TEST(FrameDecoder, SetAttrFieldOutsideItsMaskIsRejected) {
  auto b = EncodeFrame(Change(SetAttr{kAttrMtime, 0, 0, 0, 5, "f"}));
  SetLe(b, kBody + 4, 0644, 4);  // mode without kAttrMode
  EXPECT_THAT(RejectReason(b), HasSubstr("mode is set but kAttrMode is not in the mask"));
}

TEST(FrameDecoder, InvalidOwnerIsRejected) {
  auto b = EncodeFrame(Change(Mkdir{0755, 1, 1, "d"}));
  SetLe(b, kBody + 4, kInvalidId, 4);
  EXPECT_THAT(RejectReason(b), HasSubstr("MKDIR: uid 4294967295 is not a valid owner"));
}

TEST(FrameDecoder, HelloWithNonPrintableNodeNameIsRejected) {
  auto b = EncodeFrame(SampleHello());
  Overwrite(b, Find(b, "mu01"), "mu\n1");
  EXPECT_THAT(RejectReason(b),
              HasSubstr("node_name 'mu\\x0a1' has a byte outside printable ASCII"));
}

// ---- Sequence numbers ------------------------------------------------------------------

TEST(FrameDecoder, ChangeFrameWithoutSeqIsRejected) {
  auto b = EncodeFrame(Change(Unlink{"f"}, 3));
  SetLe(b, kHeaderSeqOffset, 0, 8);
  EXPECT_THAT(RejectReason(b), HasSubstr("UNLINK: change frame has header seq 0"));
}

TEST(FrameDecoder, NonChangeFrameWithSeqIsRejected) {
  auto b = EncodeFrame(Control(Ack{1, false}));
  SetLe(b, kHeaderSeqOffset, 3, 8);
  EXPECT_THAT(RejectReason(b), HasSubstr("ACK: header seq 3 on a frame that is not a change"));
}

// ---- Paths inside frames ---------------------------------------------------------------

TEST(FrameDecoder, HostilePathInsideAFrameIsRejected) {
  auto dotdot = EncodeFrame(Change(Unlink{"aa/etc/passwd"}));
  Overwrite(dotdot, Find(dotdot, "aa/"), "..");
  EXPECT_THAT(RejectReason(dotdot),
              HasSubstr("UNLINK: path: path '../etc/passwd' has a '..' component"));

  auto absolute = EncodeFrame(Change(Link{"ok", "xetc/shadow"}));
  Overwrite(absolute, Find(absolute, "xetc"), "/");
  EXPECT_THAT(RejectReason(absolute), HasSubstr("LINK: new_path: path '/etc/shadow' is absolute"));

  auto nul = EncodeFrame(Change(Rename{0, "a", "b.c"}));
  SetLe(nul, Find(nul, "b.c") + 1, 0, 1);
  EXPECT_THAT(RejectReason(nul), HasSubstr("RENAME: to: path 'b\\x00c' contains NUL at byte 1"));

  auto manifest = EncodeFrame(Control(ManifestRequest{1, "x/y"}));
  Overwrite(manifest, Find(manifest, "x/y"), "x//");
  EXPECT_THAT(RejectReason(manifest), HasSubstr("MANIFEST_REQUEST: root: path 'x//'"));
}

TEST(FrameDecoder, SymlinkTargetWithNulIsRejectedButDotDotIsKept) {
  Frame ok = Change(Symlink{0, 0, 0, "l", "../../etc/passwd"});
  Result<Frame> decoded = DecodeFrame(EncodeFrame(ok));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(std::get<Symlink>(decoded->message).target, "../../etc/passwd");

  auto b = EncodeFrame(ok);
  SetLe(b, Find(b, "../../etc") + 2, 0, 1);
  EXPECT_THAT(RejectReason(b), HasSubstr("SYMLINK: symlink target contains NUL at byte 2"));
}

TEST(FrameDecoder, XattrNameWithNulIsRejected) {
  auto b = EncodeFrame(Change(RemoveXattr{"f", "user.x"}));
  SetLe(b, Find(b, "user.x") + 4, 0, 1);
  EXPECT_THAT(RejectReason(b), HasSubstr("REMOVEXATTR: xattr name contains NUL at byte 4"));
}

}  // namespace
}  // namespace hasync::wire
