// Round trips: every message type encodes, decodes to an equal frame, and re-encodes to
// the same bytes; limits at their maximum still round-trip; the header sits at the
// documented offsets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "tests/wire/samples.h"
#include "tests/wire/test_bytes.h"
#include "wire/frame.h"

namespace hasync::wire {
namespace {

using ::hasync::wire::testing::Bytes;
using ::hasync::wire::testing::Change;
using ::hasync::wire::testing::Control;
using ::hasync::wire::testing::GetLe;
using ::hasync::wire::testing::SampleFrames;

void ExpectRoundTrip(const Frame& frame) {
  std::vector<std::byte> bytes = EncodeFrame(frame);
  ASSERT_EQ(bytes.size(), EncodedFrameSize(frame.message));
  Result<Frame> decoded = DecodeFrame(bytes);
  ASSERT_TRUE(decoded.ok()) << MessageTypeName(TypeOf(frame.message)) << ": "
                            << decoded.status().ToString();
  EXPECT_EQ(*decoded, frame) << MessageTypeName(TypeOf(frame.message));
  EXPECT_EQ(EncodeFrame(*decoded), bytes) << "encoding is not canonical";
}

TEST(FrameCodec, EveryMessageTypeRoundTrips) {
  for (const Frame& frame : SampleFrames()) {
    SCOPED_TRACE(std::string(MessageTypeName(TypeOf(frame.message))));
    ExpectRoundTrip(frame);
  }
}

TEST(FrameCodec, SamplesCoverEveryMessageType) {
  std::set<size_t> covered;
  for (const Frame& frame : SampleFrames()) covered.insert(frame.message.index());
  EXPECT_EQ(covered.size(), std::variant_size_v<Message>)
      << "a message type has no sample in tests/wire/samples.h";
}

TEST(FrameCodec, EveryTypeHasAName) {
  for (const Frame& frame : SampleFrames()) {
    MessageType type = TypeOf(frame.message);
    EXPECT_NE(MessageTypeName(type), "unknown");
    EXPECT_TRUE(IsKnownMessageType(static_cast<uint16_t>(type)));
  }
  EXPECT_EQ(MessageTypeName(static_cast<MessageType>(0x0999)), "unknown");
}

TEST(FrameCodec, HeaderIsLittleEndianAtDocumentedOffsets) {
  std::vector<std::byte> b =
      EncodeFrame(Frame{0x0102030405060708, 0, Ping{0xAABBCCDDEEFF0011, 0x55}});
  ASSERT_EQ(b.size(), kFrameHeaderSize + 16);
  EXPECT_EQ(static_cast<char>(b[0]), 'H');
  EXPECT_EQ(static_cast<char>(b[1]), 'S');
  EXPECT_EQ(static_cast<char>(b[2]), 'Y');
  EXPECT_EQ(static_cast<char>(b[3]), 'N');
  EXPECT_EQ(GetLe(b, kHeaderVersionOffset, 2), kProtocolVersion);
  EXPECT_EQ(GetLe(b, kHeaderTypeOffset, 2), 0x0105u);
  EXPECT_EQ(GetLe(b, kHeaderFlagsOffset, 2), 0u);
  EXPECT_EQ(GetLe(b, kHeaderReservedOffset, 2), 0u);
  EXPECT_EQ(GetLe(b, kHeaderBodyLenOffset, 4), 16u);
  EXPECT_EQ(std::to_integer<int>(b[kHeaderEpochOffset]), 0x08);
  EXPECT_EQ(GetLe(b, kHeaderEpochOffset, 8), 0x0102030405060708u);
  EXPECT_EQ(GetLe(b, kHeaderSeqOffset, 8), 0u);
  EXPECT_EQ(GetLe(b, kFrameHeaderSize, 8), 0xAABBCCDDEEFF0011u);
  EXPECT_EQ(GetLe(b, kFrameHeaderSize + 8, 8), 0x55u);
}

TEST(FrameCodec, ChangeFrameCarriesSeqInHeader) {
  std::vector<std::byte> b = EncodeFrame(Change(Unlink{"x"}, 0xABCDEF));
  EXPECT_EQ(GetLe(b, kHeaderSeqOffset, 8), 0xABCDEFu);
}

TEST(FrameCodec, EncodingAppendsToTheCallersBuffer) {
  std::vector<std::byte> out;
  std::vector<Frame> frames = SampleFrames();
  for (const Frame& f : frames) EncodeFrame(f, out);
  size_t offset = 0;
  for (const Frame& f : frames) {
    size_t size = EncodedFrameSize(f.message);
    Result<Frame> d = DecodeFrame(std::span<const std::byte>(out).subspan(offset, size));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(*d, f);
    offset += size;
  }
  EXPECT_EQ(offset, out.size());
}

TEST(FrameCodec, LargestExtentRoundTrips) {
  ExpectRoundTrip(
      Change(Extent{kFileSizeMax, kFileSizeMax - kExtentDataMax, Bytes(kExtentDataMax, 9)}));
}

TEST(FrameCodec, ExtentEndingExactlyAtFileSizeRoundTrips) {
  ExpectRoundTrip(Change(Extent{100, 99, Bytes(1, 1)}));
  ExpectRoundTrip(Change(Hole{100, 0, 100}));
}

TEST(FrameCodec, LongestPathsNamesAndValuesRoundTrip) {
  std::string component(kNameMax, 'c');
  std::string path;
  while (path.size() + 1 + kNameMax <= kPathMax) path += component + "/";
  path += std::string(kPathMax - path.size(), 'z');
  ASSERT_EQ(path.size(), kPathMax);
  ExpectRoundTrip(
      Change(SetXattr{path, std::string(kXattrNameMax, 'n'), Bytes(kXattrValueMax, 2)}));
  ExpectRoundTrip(Change(Rename{0, path, path}));
  ExpectRoundTrip(Change(Symlink{0, 0, 0, path, std::string(kSymlinkTargetMax, '/')}));
  ExpectRoundTrip(Control(Lock{Bytes(kLockRecordMax, 3)}));
  ExpectRoundTrip(Control(Error{ErrorCode::kInternal, std::string(kErrorMessageMax, 'e')}));
  ExpectRoundTrip(
      Control(Hello{.node_id = 1, .session_id = 1, .node_name = std::string(kNodeNameMax, 'n')}));

  ManifestEntries full{1, kManifestLast, {}};
  for (size_t i = 0; i < kManifestEntriesMax; ++i) {
    // The longest name list the limit allows: names of kXattrNameMax bytes, NUL after
    // each, as many as fit, ascending.
    std::string names;
    for (char c = 'a'; names.size() + kXattrNameMax + 1 <= kManifestXattrNamesMax; ++c) {
      names += std::string(kXattrNameMax, c) + '\0';
    }
    full.entries.push_back(
        ManifestEntry{EntryKind::kFile, 0644, 1, 1, i, 0, Hash128{i, i}, 1, i + 1, names, path});
  }
  EXPECT_LE(EncodedBodySize(full), kFrameBodyMax);
  ExpectRoundTrip(Control(full));

  BlocksReply blocks{1, uint64_t{kBlockHashesMax} * kBlockSizeMax, kBlockSizeMax, 0, kBlocksLast,
                     {}};
  blocks.hashes.resize(kBlockHashesMax, Hash128{1, 2});
  ExpectRoundTrip(Control(blocks));
}

TEST(FrameCodec, ExtentHeadMatchesTheFullEncoding) {
  Extent extent{1 << 20, 4096, Bytes(3000, 6)};
  std::vector<std::byte> full = EncodeFrame(Change(extent, 5, 3));
  std::vector<std::byte> head;
  EncodeExtentHead(3, 5, extent.file_size, extent.offset, static_cast<uint32_t>(extent.data.size()),
                   head);
  ASSERT_EQ(head.size(), kFrameHeaderSize + kExtentPrefixSize);
  head.insert(head.end(), extent.data.begin(), extent.data.end());
  EXPECT_EQ(head, full);
}

TEST(FrameCodec, EncodingAnInvalidFrameIsAProgrammerError) {
  EXPECT_DEATH(EncodeFrame(Change(Unlink{"../etc/passwd"})), "frame is valid: UNLINK: path");
  EXPECT_DEATH(EncodeFrame(Control(Unlink{"x"})), "change frame has header seq 0");
  EXPECT_DEATH(EncodeFrame(Change(Extent{10, 5, Bytes(6, 0)})), "> file_size 10");
}

TEST(ValidateMessage, NamesTheMessageAndTheViolation) {
  Status s = ValidateMessage(FileBegin{.mode = 0170644, .path = "x"});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), ::testing::HasSubstr("FILE_BEGIN: mode 0o170644"));
  EXPECT_THAT(s.message(), ::testing::HasSubstr("kModeMask"));
}

}  // namespace
}  // namespace hasync::wire

namespace hasync::wire {
namespace {

using ::hasync::wire::testing::Bytes;
using ::hasync::wire::testing::Change;
using ::hasync::wire::testing::Control;
using ::hasync::wire::testing::SetLe;

TEST(ExtentView, AgreesWithTheFullDecoderWithoutCopying) {
  Frame frame = Change(Extent{1 << 20, 4096, Bytes(3000, 6)}, 77, 5);
  std::vector<std::byte> bytes = EncodeFrame(frame);
  Result<ExtentView> view = DecodeExtentView(bytes);
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  const Extent& extent = std::get<Extent>(frame.message);
  EXPECT_EQ(view->epoch, 5u);
  EXPECT_EQ(view->seq, 77u);
  EXPECT_EQ(view->file_size, extent.file_size);
  EXPECT_EQ(view->offset, extent.offset);
  EXPECT_EQ(view->data.data(), bytes.data() + kFrameHeaderSize + kExtentPrefixSize);
  EXPECT_TRUE(
      std::equal(view->data.begin(), view->data.end(), extent.data.begin(), extent.data.end()));
}

TEST(ExtentView, RejectsWhatTheFullDecoderRejectsWithTheSameReason) {
  std::vector<std::byte> good = EncodeFrame(Change(Extent{1000, 900, Bytes(100, 0)}));
  std::vector<std::vector<std::byte>> bad(5, good);
  SetLe(bad[0], kFrameHeaderSize + 8, UINT64_MAX - 10, 8);  // offset + length overflows
  SetLe(bad[1], kFrameHeaderSize + 8, 901, 8);              // beyond file_size
  SetLe(bad[2], kHeaderSeqOffset, 0, 8);                    // change without seq
  SetLe(bad[3], kFrameHeaderSize + 16, 99, 4);              // length disagrees with body
  SetLe(bad[4], kFrameHeaderSize + 16, kExtentDataMax + 1, 4);
  for (const auto& b : bad) {
    Result<ExtentView> view = DecodeExtentView(b);
    Result<Frame> full = DecodeFrame(b);
    ASSERT_FALSE(view.ok());
    ASSERT_FALSE(full.ok());
    EXPECT_THAT(view.status().message(), ::testing::StartsWith("EXTENT: "));
    // bad[3] is worded differently: the view checks the length against the body, the
    // full decoder finds the byte left over.
    if (&b != &bad[3]) {
      EXPECT_EQ(view.status().message(), full.status().message());
    }
  }
  Result<ExtentView> other = DecodeExtentView(EncodeFrame(Control(Ping{1, 2})));
  ASSERT_FALSE(other.ok());
  EXPECT_THAT(other.status().message(), ::testing::HasSubstr("expected an EXTENT frame, got PING"));
}

}  // namespace
}  // namespace hasync::wire
