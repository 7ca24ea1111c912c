// The incremental decoder a streaming receiver uses: frames arrive in arbitrary pieces.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "tests/wire/samples.h"
#include "tests/wire/test_bytes.h"
#include "wire/frame.h"

namespace hasync::wire {
namespace {

using ::hasync::wire::testing::Bytes;
using ::hasync::wire::testing::Change;
using ::hasync::wire::testing::Control;
using ::hasync::wire::testing::SampleFrames;
using ::hasync::wire::testing::SetLe;
using ::testing::HasSubstr;

std::vector<std::byte> EncodeAll(const std::vector<Frame>& frames) {
  std::vector<std::byte> out;
  for (const Frame& f : frames) EncodeFrame(f, out);
  return out;
}

// Feeds `stream` in pieces of `chunk` bytes, draining every frame after each piece.
std::vector<Frame> FeedInChunks(const std::vector<std::byte>& stream, size_t chunk) {
  FrameDecoder decoder;
  std::vector<Frame> frames;
  for (size_t i = 0; i < stream.size(); i += chunk) {
    size_t n = std::min(chunk, stream.size() - i);
    decoder.Append(std::span<const std::byte>(stream).subspan(i, n));
    while (true) {
      auto step = decoder.Next();
      EXPECT_TRUE(step.ok()) << step.status().ToString();
      if (!step.ok() || std::holds_alternative<NeedMore>(*step)) break;
      frames.push_back(std::get<Frame>(std::move(*step)));
    }
  }
  EXPECT_EQ(decoder.buffered(), 0u);
  return frames;
}

TEST(FrameDecoder, ByteByByteFeedingYieldsEveryFrame) {
  std::vector<Frame> frames = SampleFrames();
  EXPECT_EQ(FeedInChunks(EncodeAll(frames), 1), frames);
}

TEST(FrameDecoder, ArbitraryChunkSizesYieldEveryFrame) {
  std::vector<Frame> frames = SampleFrames();
  frames.push_back(Change(Extent{1 << 21, 0, Bytes(kExtentDataMax, 1)}));
  frames.push_back(Control(Ping{1, 2}));
  std::vector<std::byte> stream = EncodeAll(frames);
  for (size_t chunk : {2u, 7u, 31u, 32u, 33u, 4096u, 65537u}) {
    SCOPED_TRACE(chunk);
    EXPECT_EQ(FeedInChunks(stream, chunk), frames);
  }
  EXPECT_EQ(FeedInChunks(stream, stream.size()), frames);
}

// The in-place path (the TLS layer decrypting into the decoder) yields the same frames
// as Append; bytes written but not committed are not part of the stream.
TEST(FrameDecoder, AppendInPlaceYieldsEveryFrame) {
  std::vector<Frame> frames = SampleFrames();
  frames.push_back(Change(Extent{1 << 21, 0, Bytes(kExtentDataMax, 3)}));
  frames.push_back(Control(Ping{3, 4}));
  std::vector<std::byte> stream = EncodeAll(frames);
  for (size_t chunk : {1u, 5u, 16384u, 70000u}) {
    SCOPED_TRACE(chunk);
    FrameDecoder decoder;
    std::vector<Frame> got;
    for (size_t i = 0; i < stream.size(); i += chunk) {
      size_t n = std::min(chunk, stream.size() - i);
      std::span<std::byte> space = decoder.AppendSpace(n + 9);
      ASSERT_GE(space.size(), n + 9);
      std::memcpy(space.data(), stream.data() + i, n);
      std::memset(space.data() + n, 0xFF, 9);  // written, never committed
      decoder.CommitAppend(n);
      while (true) {
        auto step = decoder.Next();
        ASSERT_TRUE(step.ok()) << step.status().ToString();
        if (std::holds_alternative<NeedMore>(*step)) break;
        got.push_back(std::get<Frame>(std::move(*step)));
      }
    }
    EXPECT_EQ(got, frames);
    EXPECT_EQ(decoder.buffered(), 0u);
  }
}

TEST(FrameDecoder, NeedMoreReportsTheExactShortfall) {
  std::vector<std::byte> frame = EncodeFrame(Control(Commit{10, 2}));  // 32 + 12 bytes
  FrameDecoder decoder;
  auto step = decoder.Next();
  ASSERT_TRUE(step.ok());
  EXPECT_EQ(std::get<NeedMore>(*step).bytes, kFrameHeaderSize);

  decoder.Append(std::span<const std::byte>(frame).first(10));
  step = decoder.Next();
  ASSERT_TRUE(step.ok());
  EXPECT_EQ(std::get<NeedMore>(*step).bytes, kFrameHeaderSize - 10);

  decoder.Append(std::span<const std::byte>(frame).subspan(10, kFrameHeaderSize - 10 + 5));
  step = decoder.Next();
  ASSERT_TRUE(step.ok());
  EXPECT_EQ(std::get<NeedMore>(*step).bytes, 12u - 5u);

  decoder.Append(std::span<const std::byte>(frame).subspan(kFrameHeaderSize + 5));
  step = decoder.Next();
  ASSERT_TRUE(step.ok());
  EXPECT_EQ(std::get<Frame>(*step), Control(Commit{10, 2}));
}

TEST(FrameDecoder, DecodeNextReportsBytesConsumedAndLeavesTheRest) {
  std::vector<std::byte> stream = EncodeAll({Control(Ping{1, 1}), Control(Pong{1, 1})});
  auto step = DecodeNext(stream);
  ASSERT_TRUE(step.ok());
  const auto& decoded = std::get<Decoded>(*step);
  EXPECT_EQ(decoded.consumed, kFrameHeaderSize + 16);
  EXPECT_EQ(decoded.frame, Control(Ping{1, 1}));
}

TEST(FrameDecoder, BadMagicIsRejectedAtTheFirstWrongByte) {
  FrameDecoder decoder;
  decoder.Append(std::vector<std::byte>{std::byte{'H'}, std::byte{'T'}});
  auto step = decoder.Next();
  ASSERT_FALSE(step.ok());
  EXPECT_THAT(step.status().message(), HasSubstr("bad magic: byte 1 is 0x54, expected 0x53"));
}

TEST(FrameDecoder, OversizedHeaderIsRejectedBeforeItsBodyArrives) {
  std::vector<std::byte> frame = EncodeFrame(Control(Ping{1, 2}));
  SetLe(frame, kHeaderBodyLenOffset, 70000000, 4);
  FrameDecoder decoder;
  decoder.Append(std::span<const std::byte>(frame).first(kFrameHeaderSize));
  auto step = decoder.Next();
  ASSERT_FALSE(step.ok());
  EXPECT_THAT(step.status().message(), HasSubstr("frame body length 70000000 > kFrameBodyMax"));
}

TEST(FrameDecoder, UnknownTypeIsRejectedBeforeItsBodyArrives) {
  std::vector<std::byte> frame = EncodeFrame(Control(Ping{1, 2}));
  SetLe(frame, kHeaderTypeOffset, 0x7777, 2);
  auto step = DecodeNext(std::span<const std::byte>(frame).first(kFrameHeaderSize));
  ASSERT_FALSE(step.ok());
  EXPECT_THAT(step.status().message(), HasSubstr("unknown frame type 0x7777"));
}

TEST(FrameDecoder, ErrorIsStickyBecauseTheStreamIsOutOfSync) {
  std::vector<std::byte> bad = EncodeFrame(Control(Ack{1, true}));
  SetLe(bad, kFrameHeaderSize + 8, 7, 1);  // durable = 7
  FrameDecoder decoder;
  decoder.Append(bad);
  auto first = decoder.Next();
  ASSERT_FALSE(first.ok());
  decoder.Append(EncodeFrame(Control(Ping{1, 2})));
  auto second = decoder.Next();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(), first.status().message());
}

TEST(FrameDecoder, BufferDoesNotGrowWithDrainedFrames) {
  std::vector<std::byte> frame = EncodeFrame(Control(Lock{Bytes(1000, 1)}));
  FrameDecoder decoder;
  for (int i = 0; i < 1000; ++i) {
    decoder.Append(frame);
    auto step = decoder.Next();
    ASSERT_TRUE(step.ok());
    ASSERT_TRUE(std::holds_alternative<Frame>(*step));
    EXPECT_EQ(decoder.buffered(), 0u);
  }
}

}  // namespace
}  // namespace hasync::wire
