// Frame encoding and decoding (see wire/frame.h for the contract).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "base/assert.h"
#include "wire/frame.h"
#include "wire/internal/byte_io.h"
#include "wire/internal/checks.h"
#include "wire/internal/dispatch.h"
#include "wire/internal/fields.h"

namespace hasync::wire {
namespace {

using internal::LoadLe;
using internal::StoreLe;

// The magic as it appears on the wire, for rejecting a bad stream at its first byte.
constexpr std::byte kMagicBytes[4] = {
    std::byte{kFrameMagic & 0xFF}, std::byte{(kFrameMagic >> 8) & 0xFF},
    std::byte{(kFrameMagic >> 16) & 0xFF}, std::byte{(kFrameMagic >> 24) & 0xFF}};

// The pair assertion on the sending side: a frame that the peer would reject is a bug
// here, so it stops the process with the reason instead of reaching the wire.
void AssertValid(const Status& s, const char* file, int line) {
  if (!s.ok()) {
    std::string what = "frame is valid: " + s.message();
    ::hasync::internal::AssertFail(what.c_str(), file, line);
  }
}
#define HASYNC_ASSERT_OK(status) AssertValid((status), __FILE__, __LINE__)

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

void StoreHeader(std::byte* p, MessageType type, uint32_t body_len, uint64_t epoch, uint64_t seq) {
  StoreLe<uint32_t>(p + kHeaderMagicOffset, kFrameMagic);
  StoreLe<uint16_t>(p + kHeaderVersionOffset, kProtocolVersion);
  StoreLe<uint16_t>(p + kHeaderTypeOffset, static_cast<uint16_t>(type));
  StoreLe<uint16_t>(p + kHeaderFlagsOffset, 0);
  StoreLe<uint16_t>(p + kHeaderReservedOffset, 0);
  StoreLe<uint32_t>(p + kHeaderBodyLenOffset, body_len);
  StoreLe<uint64_t>(p + kHeaderEpochOffset, epoch);
  StoreLe<uint64_t>(p + kHeaderSeqOffset, seq);
}

}  // namespace

size_t EncodedBodySize(const Message& message) {
  return std::visit(
      [](const auto& m) {
        internal::Sizer sizer;
        internal::Fields(sizer, m);
        return sizer.size();
      },
      message);
}

void EncodeFrame(const Frame& frame, std::vector<std::byte>& out) {
  EncodeFrame(frame.epoch, frame.seq, frame.message, out);
}

void EncodeFrame(uint64_t epoch, uint64_t seq, const Message& message,
                 std::vector<std::byte>& out) {
  HASYNC_ASSERT_OK(ValidateFrame(seq, message));
  size_t body_len = EncodedBodySize(message);
  HASYNC_ASSERT(body_len <= kFrameBodyMax);
  size_t start = out.size();
  out.resize(start + kFrameHeaderSize + body_len);
  std::byte* p = out.data() + start;
  StoreHeader(p, TypeOf(message), static_cast<uint32_t>(body_len), epoch, seq);
  internal::Writer writer(p + kFrameHeaderSize, body_len);
  std::visit([&writer](const auto& m) { internal::Fields(writer, m); }, message);
  HASYNC_ASSERT(writer.pos() == body_len);
}

std::vector<std::byte> EncodeFrame(const Frame& frame) {
  std::vector<std::byte> out;
  EncodeFrame(frame, out);
  return out;
}

void EncodeExtentHead(uint64_t epoch, uint64_t seq, uint64_t file_size, uint64_t offset,
                      uint32_t length, std::vector<std::byte>& out) {
  HASYNC_ASSERT(seq != 0);
  HASYNC_ASSERT(length != 0 && length <= kExtentDataMax);
  HASYNC_ASSERT(file_size <= kFileSizeMax && offset <= file_size && length <= file_size - offset);
  size_t start = out.size();
  out.resize(start + kFrameHeaderSize + kExtentPrefixSize);
  std::byte* p = out.data() + start;
  StoreHeader(p, MessageType::kExtent, static_cast<uint32_t>(kExtentPrefixSize + length), epoch,
              seq);
  // The same layout internal::Fields(Extent) writes; the test suite checks they agree.
  StoreLe<uint64_t>(p + kFrameHeaderSize, file_size);
  StoreLe<uint64_t>(p + kFrameHeaderSize + 8, offset);
  StoreLe<uint32_t>(p + kFrameHeaderSize + 16, length);
}

Result<FrameHeader> DecodeFrameHeader(std::span<const std::byte> bytes) {
  if (bytes.size() < kFrameHeaderSize) {
    return InvalidArgument("truncated header: " + std::to_string(bytes.size()) + " of " +
                           std::to_string(kFrameHeaderSize) + " bytes");
  }
  const std::byte* p = bytes.data();
  uint32_t magic = LoadLe<uint32_t>(p + kHeaderMagicOffset);
  if (magic != kFrameMagic) {
    return InvalidArgument("bad magic " + Hex(magic) + ", expected " + Hex(kFrameMagic));
  }
  FrameHeader h;
  h.version = LoadLe<uint16_t>(p + kHeaderVersionOffset);
  if (h.version != kProtocolVersion) {
    return InvalidArgument("unsupported protocol version " + std::to_string(h.version) +
                           ", this build speaks " + std::to_string(kProtocolVersion));
  }
  uint16_t type = LoadLe<uint16_t>(p + kHeaderTypeOffset);
  if (!IsKnownMessageType(type)) {
    return InvalidArgument("unknown frame type " + Hex(type));
  }
  h.type = static_cast<MessageType>(type);
  h.flags = LoadLe<uint16_t>(p + kHeaderFlagsOffset);
  if ((h.flags & ~kHeaderFlagsKnown) != 0) {
    return InvalidArgument("unknown header flags " + Hex(h.flags));
  }
  uint16_t reserved = LoadLe<uint16_t>(p + kHeaderReservedOffset);
  if (reserved != 0) {
    return InvalidArgument("reserved header field is " + Hex(reserved) + ", must be 0");
  }
  h.body_len = LoadLe<uint32_t>(p + kHeaderBodyLenOffset);
  if (h.body_len > kFrameBodyMax) {
    return OutOfRange("frame body length " + std::to_string(h.body_len) + " > kFrameBodyMax " +
                      std::to_string(kFrameBodyMax));
  }
  h.epoch = LoadLe<uint64_t>(p + kHeaderEpochOffset);
  h.seq = LoadLe<uint64_t>(p + kHeaderSeqOffset);
  return h;
}

Result<Message> DecodeBody(const FrameHeader& header, std::span<const std::byte> body) {
  if (body.size() != header.body_len) {
    return InvalidArgument("body has " + std::to_string(body.size()) + " bytes, header says " +
                           std::to_string(header.body_len));
  }
  Status status;
  Message message;
  bool known = internal::VisitType(header.type, [&](auto t) {
    using M = typename decltype(t)::type;
    M m;
    internal::Reader reader(body);
    internal::Fields(reader, m);
    reader.Finish();
    if (!reader.ok()) {
      status = reader.status().Annotate(M::kName);
      return;
    }
    message = std::move(m);
  });
  // DecodeFrameHeader admits only known types; a hand-built header may not.
  if (!known) {
    return InvalidArgument("unknown frame type " + Hex(static_cast<uint16_t>(header.type)));
  }
  if (!status.ok()) return status;
  Frame frame{header.epoch, header.seq, std::move(message)};
  // The pair assertion on the receiving side: the same rules the sender asserted.
  RETURN_IF_ERROR(ValidateFrame(frame));
  return std::move(frame.message);
}

Result<Frame> DecodeFrame(std::span<const std::byte> bytes) {
  ASSIGN_OR_RETURN(FrameHeader header, DecodeFrameHeader(bytes));
  size_t total = kFrameHeaderSize + header.body_len;
  if (bytes.size() < total) {
    return InvalidArgument("truncated body: " + std::to_string(bytes.size() - kFrameHeaderSize) +
                           " of " + std::to_string(header.body_len) + " bytes");
  }
  if (bytes.size() > total) {
    return InvalidArgument(std::to_string(bytes.size() - total) +
                           " bytes after the end of the frame");
  }
  ASSIGN_OR_RETURN(Message message, DecodeBody(header, bytes.subspan(kFrameHeaderSize)));
  return Frame{header.epoch, header.seq, std::move(message)};
}

Result<ExtentView> DecodeExtentView(std::span<const std::byte> bytes) {
  ASSIGN_OR_RETURN(FrameHeader header, DecodeFrameHeader(bytes));
  if (header.type != MessageType::kExtent) {
    return InvalidArgument("expected an EXTENT frame, got " +
                           std::string(MessageTypeName(header.type)));
  }
  if (bytes.size() != kFrameHeaderSize + header.body_len) {
    return InvalidArgument("frame is " + std::to_string(bytes.size()) + " bytes, header says " +
                           std::to_string(kFrameHeaderSize + header.body_len));
  }
  auto fail = [](const Status& s) { return s.Annotate("EXTENT"); };
  if (header.seq == 0) return fail(InvalidArgument("change frame has header seq 0, must be >= 1"));
  // Same field order and checks as internal::Fields(Extent) and Check(Extent).
  internal::Reader reader(bytes.subspan(kFrameHeaderSize));
  ExtentView view{header.epoch, header.seq, 0, 0, {}};
  uint32_t length = 0;
  reader.Int("file_size", view.file_size);
  reader.Int("offset", view.offset);
  reader.Int("data", length);
  if (!reader.ok()) return fail(reader.status());
  if (length > kExtentDataMax) {
    return fail(OutOfRange("data length " + std::to_string(length) + " > kExtentDataMax " +
                           std::to_string(kExtentDataMax)));
  }
  if (reader.remaining() != length) {
    return fail(InvalidArgument("data length " + std::to_string(length) + " but " +
                                std::to_string(reader.remaining()) + " body bytes remain"));
  }
  RETURN_IF_ERROR(fail(internal::CheckRange(view.file_size, view.offset, length)));
  view.data = bytes.subspan(kFrameHeaderSize + kExtentPrefixSize, length);
  return view;
}

Result<DecodeStep> DecodeNext(std::span<const std::byte> buffered) {
  // Reject a stream that is not ours at its first wrong byte rather than after a
  // whole header has arrived.
  size_t magic_seen = buffered.size() < 4 ? buffered.size() : 4;
  for (size_t i = 0; i < magic_seen; ++i) {
    if (buffered[i] != kMagicBytes[i]) {
      return InvalidArgument("bad magic: byte " + std::to_string(i) + " is " +
                             Hex(std::to_integer<uint8_t>(buffered[i])) + ", expected " +
                             Hex(std::to_integer<uint8_t>(kMagicBytes[i])));
    }
  }
  if (buffered.size() < kFrameHeaderSize) {
    return DecodeStep{NeedMore{kFrameHeaderSize - buffered.size()}};
  }
  ASSIGN_OR_RETURN(FrameHeader header, DecodeFrameHeader(buffered));
  size_t total = kFrameHeaderSize + header.body_len;
  if (buffered.size() < total) return DecodeStep{NeedMore{total - buffered.size()}};
  ASSIGN_OR_RETURN(Message message,
                   DecodeBody(header, buffered.subspan(kFrameHeaderSize, header.body_len)));
  return DecodeStep{Decoded{Frame{header.epoch, header.seq, std::move(message)}, total}};
}

void FrameDecoder::Reserve(size_t n) {
  // Drop consumed bytes before growing, so the buffer stays near one frame in size.
  if (start_ == end_) {
    start_ = end_ = 0;
  } else if (start_ > 0 && (start_ >= end_ / 2 || buffer_.size() - end_ < n)) {
    std::memmove(buffer_.data(), buffer_.data() + start_, end_ - start_);
    end_ -= start_;
    start_ = 0;
  }
  if (buffer_.size() - end_ < n) buffer_.resize(std::max(end_ + n, buffer_.size() * 2));
}

void FrameDecoder::Append(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  Reserve(bytes.size());
  std::memcpy(buffer_.data() + end_, bytes.data(), bytes.size());
  end_ += bytes.size();
}

std::span<std::byte> FrameDecoder::AppendSpace(size_t n) {
  Reserve(n);
  reserved_ = n;
  return {buffer_.data() + end_, n};
}

void FrameDecoder::CommitAppend(size_t k) {
  HASYNC_ASSERT(k <= reserved_ && end_ + k <= buffer_.size());
  end_ += k;
  reserved_ = 0;
}

Result<std::variant<NeedMore, Frame>> FrameDecoder::Next() {
  if (!failed_.ok()) return failed_;
  auto step = DecodeNext(std::span<const std::byte>(buffer_.data() + start_, end_ - start_));
  if (!step.ok()) {
    failed_ = step.status();
    return failed_;
  }
  if (auto* need = std::get_if<NeedMore>(&*step)) return std::variant<NeedMore, Frame>{*need};
  auto& decoded = std::get<Decoded>(*step);
  start_ += decoded.consumed;
  return std::variant<NeedMore, Frame>{std::move(decoded.frame)};
}

}  // namespace hasync::wire
