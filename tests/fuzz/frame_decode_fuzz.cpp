// libFuzzer target for the frame decoder (see frame_types.h for the input convention).
//
// Properties checked on every input, beyond "no crash, no sanitizer report":
// - a rejection always carries a reason;
// - a frame that decodes re-encodes to exactly the bytes it came from (the encoding is
//   canonical), and those bytes decode to an equal frame;
// - the streaming FrameDecoder, fed the same bytes in two pieces, yields the same frames
//   and the same verdict as DecodeNext over the whole buffer.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "tests/fuzz/frame_types.h"
#include "wire/frame.h"

namespace {

using namespace hasync::wire;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "frame_decode_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

void CheckRoundTrip(const Frame& frame, std::span<const std::byte> original) {
  std::vector<std::byte> again = EncodeFrame(frame);
  Check(again.size() == original.size() && std::equal(again.begin(), again.end(), original.begin()),
        "decoded frame re-encodes to the same bytes");
  auto redecoded = DecodeFrame(again);
  Check(redecoded.ok() && *redecoded == frame, "re-encoded frame decodes to an equal frame");
}

// Pass 1: the input as a stream of frames. Returns the frames and whether it ended in an
// error (as opposed to running out of bytes).
std::vector<Frame> DecodeStream(std::span<const std::byte> in, bool* failed) {
  std::vector<Frame> frames;
  *failed = false;
  size_t offset = 0;
  while (offset < in.size()) {
    auto step = DecodeNext(in.subspan(offset));
    if (!step.ok()) {
      Check(!step.status().message().empty(), "a rejection carries a reason");
      *failed = true;
      break;
    }
    if (std::holds_alternative<NeedMore>(*step)) {
      Check(std::get<NeedMore>(*step).bytes > 0, "NeedMore asks for at least one byte");
      break;
    }
    auto& decoded = std::get<Decoded>(*step);
    Check(decoded.consumed >= kFrameHeaderSize && decoded.consumed <= in.size() - offset,
          "consumed is within the input");
    CheckRoundTrip(decoded.frame, in.subspan(offset, decoded.consumed));
    offset += decoded.consumed;
    frames.push_back(std::move(decoded.frame));
  }
  return frames;
}

// Pass 2: the same bytes through FrameDecoder in two pieces.
void DecodeSplit(std::span<const std::byte> in, const std::vector<Frame>& expected,
                 bool expect_failure) {
  size_t split = in.empty() ? 0 : std::to_integer<size_t>(in[in.size() / 2]) % (in.size() + 1);
  FrameDecoder decoder;
  std::vector<Frame> frames;
  bool failed = false;
  for (std::span<const std::byte> piece : {in.first(split), in.subspan(split)}) {
    decoder.Append(piece);
    while (!failed) {
      auto step = decoder.Next();
      if (!step.ok()) {
        failed = true;
        break;
      }
      if (std::holds_alternative<NeedMore>(*step)) break;
      frames.push_back(std::get<Frame>(std::move(*step)));
    }
  }
  Check(frames == expected, "FrameDecoder yields the frames DecodeNext does");
  Check(failed == expect_failure, "FrameDecoder fails exactly when DecodeNext does");
}

// Pass 4: the zero-copy extent decoder accepts exactly the EXTENT frames DecodeFrame does.
void CheckExtentView(std::span<const std::byte> in) {
  auto view = DecodeExtentView(in);
  auto full = DecodeFrame(in);
  bool full_extent = full.ok() && std::holds_alternative<Extent>(full->message);
  Check(view.ok() == full_extent, "DecodeExtentView agrees with DecodeFrame on EXTENT frames");
  if (!view.ok()) {
    Check(!view.status().message().empty(), "a rejection carries a reason");
    return;
  }
  const Extent& e = std::get<Extent>(full->message);
  Check(view->epoch == full->epoch && view->seq == full->seq && view->file_size == e.file_size &&
            view->offset == e.offset &&
            std::equal(view->data.begin(), view->data.end(), e.data.begin(), e.data.end()),
        "DecodeExtentView yields the fields DecodeFrame does");
}

// Pass 3: selector byte + body straight into the body parser.
void DecodeTypedBody(std::span<const std::byte> in) {
  if (in.empty() || in.size() - 1 > kFrameBodyMax) return;
  MessageType type = fuzz::kTypes[std::to_integer<size_t>(in[0]) % fuzz::kTypeCount];
  std::span<const std::byte> body = in.subspan(1);
  FrameHeader header{.type = type,
                     .body_len = static_cast<uint32_t>(body.size()),
                     .epoch = 3,
                     .seq = IsChangeType(type) ? 5u : 0u};
  auto message = DecodeBody(header, body);
  if (!message.ok()) {
    Check(!message.status().message().empty(), "a rejection carries a reason");
    return;
  }
  Check(TypeOf(*message) == type, "the body decodes as the type it was given");
  Check(EncodedBodySize(*message) == body.size(), "the encoded size matches the body");
  Frame frame{header.epoch, header.seq, std::move(*message)};
  std::vector<std::byte> encoded = EncodeFrame(frame);
  Check(std::equal(encoded.begin() + kFrameHeaderSize, encoded.end(), body.begin(), body.end()),
        "a decoded body re-encodes to the same bytes");
  auto redecoded = DecodeFrame(encoded);
  Check(redecoded.ok() && *redecoded == frame, "the framed body decodes to an equal frame");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  bool failed = false;
  std::vector<Frame> frames = DecodeStream(in, &failed);
  DecodeSplit(in, frames, failed);
  DecodeTypedBody(in);
  CheckExtentView(in);
  return 0;
}
