// Frames: the fixed header, encoding a message into a frame, and decoding frames from a
// byte stream, whole or incrementally.
//
// Contract (sans-I/O): nothing here makes a syscall or throws. Encoding appends to a
// caller's buffer and asserts (HASYNC_ASSERT, always on) that the frame is valid: a
// frame that fails ValidateFrame is a programmer error on the sending side. Decoding
// validates the same rules on the receiving side and returns a Status naming the
// first violation ("frame body length 2000000 > kFrameBodyMax 1052672"). A Frame that
// decodes re-encodes to exactly the bytes it came from: the encoding is canonical.
//
// Header (32 bytes, little-endian; docs/PROTOCOL.md §2):
//   0 magic u32 | 4 version u16 | 6 type u16 | 8 flags u16 | 10 reserved u16 |
//   12 body_len u32 | 16 epoch u64 | 24 seq u64
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "base/status.h"
#include "wire/limits.h"
#include "wire/messages.h"

namespace hasync::wire {

// Byte offsets of the header fields.
inline constexpr size_t kHeaderMagicOffset = 0;
inline constexpr size_t kHeaderVersionOffset = 4;
inline constexpr size_t kHeaderTypeOffset = 6;
inline constexpr size_t kHeaderFlagsOffset = 8;
inline constexpr size_t kHeaderReservedOffset = 10;
inline constexpr size_t kHeaderBodyLenOffset = 12;
inline constexpr size_t kHeaderEpochOffset = 16;
inline constexpr size_t kHeaderSeqOffset = 24;
static_assert(kHeaderSeqOffset + 8 == kFrameHeaderSize);

// Header flag bits this version defines: none. A receiver rejects any set bit, because
// a flag may change how the body reads; new flags arrive with a new protocol version.
inline constexpr uint16_t kHeaderFlagsKnown = 0;

struct FrameHeader {
  uint16_t version = kProtocolVersion;
  MessageType type = MessageType::kPing;
  uint16_t flags = 0;
  uint32_t body_len = 0;
  uint64_t epoch = 0;  // the sender's epoch (DESIGN §4)
  uint64_t seq = 0;    // change sequence number for change types, otherwise 0
  friend bool operator==(const FrameHeader&, const FrameHeader&) = default;
};

// A decoded or to-be-encoded frame: the header fields the caller chooses plus a message.
// The type and body length follow from the message.
struct Frame {
  uint64_t epoch = 0;
  uint64_t seq = 0;
  Message message;
  friend bool operator==(const Frame&, const Frame&) = default;
};

// ValidateMessage plus the header rules that depend on the type: change types need
// seq >= 1, all others seq == 0.
Status ValidateFrame(const Frame& frame);
Status ValidateFrame(uint64_t seq, const Message& message);

// Size of the body / whole frame `message` encodes to.
size_t EncodedBodySize(const Message& message);
inline size_t EncodedFrameSize(const Message& message) {
  return kFrameHeaderSize + EncodedBodySize(message);
}

// Appends the encoded frame to `out`. Asserts ValidateFrame(frame) and that the body
// fits kFrameBodyMax; callers that batch variable-sized content (manifest entries) size
// their frames with EncodedBodySize first.
void EncodeFrame(const Frame& frame, std::vector<std::byte>& out);
std::vector<std::byte> EncodeFrame(const Frame& frame);
// The same for a message that is not in a Frame (no copy of its content is made).
void EncodeFrame(uint64_t epoch, uint64_t seq, const Message& message, std::vector<std::byte>& out);

// Appends the header and fixed prefix of an EXTENT frame whose `length` data bytes the
// caller sends itself right after (e.g. spliced from the file in plain mode). Asserts
// the same rules EncodeFrame would for the complete frame.
void EncodeExtentHead(uint64_t epoch, uint64_t seq, uint64_t file_size, uint64_t offset,
                      uint32_t length, std::vector<std::byte>& out);

// Decodes and checks the first kFrameHeaderSize bytes: magic, version, known type, no
// unknown flags, zero reserved field, body length <= kFrameBodyMax.
Result<FrameHeader> DecodeFrameHeader(std::span<const std::byte> bytes);

// Decodes the body of a frame whose header was already decoded.
Result<Message> DecodeBody(const FrameHeader& header, std::span<const std::byte> body);

// Decodes exactly one frame; bytes beyond it are an error.
Result<Frame> DecodeFrame(std::span<const std::byte> bytes);

// An EXTENT frame decoded without copying its data: `data` points into the bytes given
// to DecodeExtentView and lives only as long as they do.
struct ExtentView {
  uint64_t epoch = 0;
  uint64_t seq = 0;
  uint64_t file_size = 0;
  uint64_t offset = 0;
  std::span<const std::byte> data;
};

// The receive hot path for file content: decodes exactly one EXTENT frame with the same
// checks and reasons as DecodeFrame, so the applier can write the data straight from the
// receive buffer. Any other frame type is an error.
Result<ExtentView> DecodeExtentView(std::span<const std::byte> bytes);

// ---- Incremental decoding for a streaming receiver ------------------------------------

// Not enough bytes yet: at least `bytes` more are needed before anything can be decided.
struct NeedMore {
  size_t bytes = 0;
  friend bool operator==(const NeedMore&, const NeedMore&) = default;
};

// One complete frame, and how many bytes of the input it used.
struct Decoded {
  Frame frame;
  size_t consumed = 0;
};

using DecodeStep = std::variant<NeedMore, Decoded>;

// Looks at the start of `buffered` (bytes received and not yet consumed). Rejects as
// early as the bytes allow: a wrong magic byte is reported at once, an oversized or
// unknown-type header as soon as the header is complete, before any body is awaited.
Result<DecodeStep> DecodeNext(std::span<const std::byte> buffered);

// An owning stream decoder: Append received bytes, then call Next until it needs more.
// After an error the decoder stays failed (the stream is out of sync and must be
// closed), and Next keeps returning that error.
//
// Thread safety: none; one decoder belongs to one connection's receive path.
class FrameDecoder {
 public:
  void Append(std::span<const std::byte> bytes);
  // For a producer that writes straight into the decoder (the TLS layer decrypting
  // into it, so its plaintext is not copied once more): at least `n` writable bytes
  // after the buffered ones. CommitAppend(k) then appends the first k of them (k ≤ n);
  // bytes not committed are not part of the stream. Any other call in between
  // invalidates the span.
  std::span<std::byte> AppendSpace(size_t n);
  void CommitAppend(size_t k);
  // The next frame, or NeedMore, or the error that ended the stream.
  Result<std::variant<NeedMore, Frame>> Next();
  size_t buffered() const { return end_ - start_; }

 private:
  // Drops consumed bytes and makes room for n more after end_.
  void Reserve(size_t n);
  // [start_, end_) are buffered; buffer_.size() is the storage, grown (and zeroed) only
  // when a frame needs more than it had, so appending in place writes each byte once.
  std::vector<std::byte> buffer_;
  size_t start_ = 0;  // bytes before start_ are consumed
  size_t end_ = 0;
  size_t reserved_ = 0;  // AppendSpace's promise, for CommitAppend's check
  Status failed_;
};

}  // namespace hasync::wire
