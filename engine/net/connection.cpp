#include "engine/net/connection.h"

#include <mbedtls/md.h>

#include <algorithm>
#include <cstring>

namespace hasync::engine {

Result<std::unique_ptr<Connection>> Connection::Create(wire::TlsRole role,
                                                       std::span<const std::byte> psk,
                                                       wire::RngFn rng, void* rng_ctx,
                                                       wire::Hello my_hello, uint64_t my_epoch,
                                                       ChannelMode mode) {
  std::unique_ptr<Connection> c(new Connection());
  c->my_hello_ = std::move(my_hello);
  c->my_epoch_ = my_epoch;
  if (mode == ChannelMode::kPlain) {
    if (psk.size() < wire::kPskMinBytes || psk.size() > wire::kPskMaxBytes) {
      return InvalidArgument("sync key of " + std::to_string(psk.size()) + " bytes not in [" +
                             std::to_string(wire::kPskMinBytes) + ", " +
                             std::to_string(wire::kPskMaxBytes) + "]");
    }
    c->key_.assign(psk.begin(), psk.end());
    c->side_ =
        role == wire::TlsRole::kClient ? wire::AuthSide::kConnector : wire::AuthSide::kAcceptor;
    if (rng(rng_ctx, reinterpret_cast<unsigned char*>(c->own_nonce_.data()),
            c->own_nonce_.size()) != 0) {
      return Internal("random generator failed for the plain-mode nonce");
    }
    // Pre-authentication frames carry epoch 0 (docs/PROTOCOL.md §8).
    RETURN_IF_ERROR(c->Write(wire::EncodeFrame(wire::Frame{0, 0, wire::Challenge{c->own_nonce_}})));
    return c;
  }
  ASSIGN_OR_RETURN(c->tls_, wire::TlsSession::Create(role, psk, rng, rng_ctx));
  // The client speaks first in TLS: produce its ClientHello now.
  Status s = c->tls_->Handshake();
  if (!s.ok() && s.code() != Code::kUnavailable) return s;
  return c;
}

Status Connection::Fail(Status s) {
  if (failed_.ok()) failed_ = std::move(s);
  return failed_;
}

Status Connection::Feed(std::span<const std::byte> bytes) {
  if (!failed_.ok()) return failed_;
  if (!tls_) {
    if (decoder_.buffered() + bytes.size() > wire::kTlsInBufferMax) {
      return Fail(
          Status(Code::kResourceExhausted, "peer sent more than kTlsInBufferMax unread bytes"));
    }
    decoder_.Append(bytes);
    return PlainAuth();
  }
  // Decrypted in place: the session copies only a partial record left at the end.
  Status s = tls_->Lend(bytes);
  if (!s.ok()) return Fail(s);
  s = Advance();
  tls_->EndLend();
  return s;
}

std::span<const std::byte> Connection::outgoing() const {
  if (tls_) return tls_->outgoing();
  return plain_out_.data();
}

void Connection::Consume(size_t n) {
  if (tls_) {
    tls_->ConsumeOutgoing(n);
  } else {
    plain_out_.Consume(n);
  }
}

void Connection::TakeOutgoing(std::vector<std::byte>& into) {
  if (tls_) {
    tls_->TakeOutgoing(into);
  } else {
    plain_out_.Take(into);
  }
}

bool Connection::ReleaseIdleBuffer(size_t keep) {
  bool freed = tls_ ? tls_->ReleaseIdleBuffer(keep) : plain_out_.ReleaseIfIdle(keep);
  if (scratch_.capacity() > keep) {
    std::vector<std::byte>().swap(scratch_);
    freed = true;
  }
  return freed;
}

Status Connection::Write(std::span<const std::byte> frame) {
  if (tls_) return tls_->Write(frame);
  if (!PlainOutboxHasRoom(frame.size())) {
    return Status(Code::kResourceExhausted, "outgoing buffer full");
  }
  plain_out_.Append(frame);
  return Status::Ok();
}

std::array<std::byte, 32> Connection::Mac(wire::AuthSide side, const wire::Nonce& peer_nonce,
                                          const wire::Nonce& own_nonce) const {
  std::vector<std::byte> input = wire::PlainAuthInput(side, peer_nonce, own_nonce);
  std::array<std::byte, 32> mac{};
  int rc = mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                           reinterpret_cast<const unsigned char*>(key_.data()), key_.size(),
                           reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                           reinterpret_cast<unsigned char*>(mac.data()));
  HASYNC_ASSERT(rc == 0);
  return mac;
}

Status Connection::PlainAuth() {
  for (int i = 0; i < 4 && !peer_authenticated_; ++i) {
    auto step = decoder_.Next();
    if (!step.ok()) return Fail(step.status());
    if (std::holds_alternative<wire::NeedMore>(*step)) return Status::Ok();
    wire::Frame frame = std::get<wire::Frame>(std::move(*step));
    if (const auto* ch = std::get_if<wire::Challenge>(&frame.message)) {
      if (response_sent_) return Fail(PermissionDenied("second CHALLENGE from the peer"));
      wire::Response r;
      r.mac = Mac(side_, ch->nonce, own_nonce_);
      peer_nonce_ = ch->nonce;
      response_sent_ = true;
      RETURN_IF_ERROR(Write(wire::EncodeFrame(wire::Frame{0, 0, r})));
      continue;
    }
    if (const auto* resp = std::get_if<wire::Response>(&frame.message)) {
      if (!response_sent_) return Fail(PermissionDenied("RESPONSE before CHALLENGE"));
      wire::AuthSide peer_side = side_ == wire::AuthSide::kConnector ? wire::AuthSide::kAcceptor
                                                                     : wire::AuthSide::kConnector;
      std::array<std::byte, 32> expect = Mac(peer_side, own_nonce_, peer_nonce_);
      unsigned char diff = 0;  // constant time: no early exit on the first differing byte
      for (size_t k = 0; k < expect.size(); ++k) {
        diff |= static_cast<unsigned char>(expect[k] ^ resp->mac[k]);
      }
      if (diff != 0) {
        key_refused_ = true;
        return Fail(PermissionDenied(
            "plain-mode authentication failed: the peer does not hold the same sync key"));
      }
      peer_authenticated_ = true;
      hello_sent_ = true;
      return Write(wire::EncodeFrame(wire::Frame{my_epoch_, 0, my_hello_}));
    }
    return Fail(PermissionDenied(std::string(wire::MessageTypeName(wire::TypeOf(frame.message))) +
                                 " before plain-mode authentication"));
  }
  return Status::Ok();
}

// Runs the handshake, sends HELLO once, and moves decrypted bytes into the decoder.
Status Connection::Advance() {
  if (!tls_) return peer_authenticated_ ? Status::Ok() : PlainAuth();
  if (!tls_->established()) {
    Status s = tls_->Handshake();
    if (s.code() == Code::kUnavailable) return Status::Ok();  // needs more bytes
    // TlsSession reports a key that does not match (and only that) as PermissionDenied.
    if (s.code() == Code::kPermissionDenied) key_refused_ = true;
    if (!s.ok()) return Fail(s);
  }
  if (!hello_sent_) {
    std::vector<std::byte> frame = wire::EncodeFrame(wire::Frame{my_epoch_, 0, my_hello_});
    Status s = Write(frame);
    if (!s.ok()) return Fail(s);
    hello_sent_ = true;
  }
  // Bounded: the input holds at most kTlsInBufferMax bytes, so fewer records than this
  // (every record but the last of a burst is full; a short one still has 21+ bytes of
  // overhead).
  if (!peer_closed_.ok()) return Status::Ok();  // nothing comes after a close_notify
  for (size_t i = 0; i < wire::kTlsInBufferMax / 16; ++i) {
    // Each record's plaintext goes straight into the decoder, not through a staging
    // buffer (mbedtls_ssl_read returns one record's worth at most).
    std::span<std::byte> space = decoder_.AppendSpace(wire::kTlsRecordPlainMax);
    auto n = tls_->Read(space);
    if (!n.ok()) {
      decoder_.CommitAppend(0);
      // TlsSession::Read answers Unavailable only for the peer's close (its close_notify;
      // the receive callback never reports an end of stream): the frames decoded before
      // it are still the peer's word.
      if (n.status().code() == Code::kUnavailable) {
        peer_closed_ = n.status();
        return Status::Ok();
      }
      return Fail(n.status());
    }
    decoder_.CommitAppend(*n);
    if (*n == 0) break;
  }
  return Status::Ok();
}

Result<std::optional<wire::Frame>> Connection::Next() {
  if (!failed_.ok()) return failed_;
  if (!tls_ && !peer_authenticated_) {
    Status s = PlainAuth();
    if (!s.ok()) return s;
    if (!peer_authenticated_) return std::optional<wire::Frame>();
  }
  for (;;) {
    auto step = decoder_.Next();
    if (!step.ok()) return Fail(step.status());
    if (std::holds_alternative<wire::NeedMore>(*step)) {
      // The decoder drained what the TLS layer had; pull more plaintext if any.
      size_t before = decoder_.buffered();
      Status s = Advance();
      if (!s.ok()) return s;
      if (decoder_.buffered() == before) {
        // Every whole frame before the peer's close has been handed out: now the close.
        if (!peer_closed_.ok()) {
          closed_by_peer_ = true;  // failed_ is OK here (checked on entry): this is it
          return Fail(peer_closed_);
        }
        return std::optional<wire::Frame>();
      }
      continue;
    }
    wire::Frame frame = std::get<wire::Frame>(std::move(*step));
    if (!peer_hello_) {
      auto* hello = std::get_if<wire::Hello>(&frame.message);
      if (hello == nullptr) {
        return Fail(InvalidArgument(
            "first frame after the TLS handshake is " +
            std::string(wire::MessageTypeName(wire::TypeOf(frame.message))) + ", not HELLO"));
      }
      if (hello->version_min > wire::kProtocolVersion ||
          hello->version_max < wire::kProtocolVersion) {
        return Fail(Unimplemented("peer speaks protocol versions " +
                                  std::to_string(hello->version_min) + ".." +
                                  std::to_string(hello->version_max) + ", this node " +
                                  std::to_string(wire::kProtocolVersion)));
      }
      peer_hello_ = *hello;
      peer_epoch_ = frame.epoch;
      continue;
    }
    if (std::holds_alternative<wire::Hello>(frame.message)) {
      return Fail(InvalidArgument("second HELLO on an open connection"));
    }
    return std::optional<wire::Frame>(std::move(frame));
  }
}

Status Connection::Send(uint64_t epoch, uint64_t seq, const wire::Message& message) {
  if (!failed_.ok()) return failed_;
  HASYNC_ASSERT(hello_sent_);
  Status s;
  const auto* extent = std::get_if<wire::Extent>(&message);
  if (tls_ && extent != nullptr && extent->data.size() > wire::kTlsRecordPlainMax) {
    // The frame's head and as much data as fills the first record, then the rest of
    // the data straight from the message: the TLS layer copies each byte into its
    // record once, and nothing copies the extent into a frame before that.
    const std::span<const std::byte> data = extent->data;
    scratch_.clear();
    wire::EncodeExtentHead(epoch, seq, extent->file_size, extent->offset,
                           static_cast<uint32_t>(data.size()), scratch_);
    const size_t first = std::min(data.size(), wire::kTlsRecordPlainMax - scratch_.size());
    scratch_.insert(scratch_.end(), data.begin(),
                    data.begin() + static_cast<std::ptrdiff_t>(first));
    s = tls_->Write(scratch_);
    if (s.ok()) s = tls_->Write(data.subspan(first));
  } else if (tls_) {
    // Encoded into a reused buffer, then encrypted into the TLS outbox.
    scratch_.clear();
    wire::EncodeFrame(epoch, seq, message, scratch_);
    s = tls_->Write(scratch_);
  } else if (!PlainOutboxHasRoom(wire::EncodedFrameSize(message))) {
    s = Status(Code::kResourceExhausted, "outgoing buffer full");
  } else {
    wire::EncodeFrame(epoch, seq, message, plain_out_.back());  // straight into the outbox
  }
  if (!s.ok()) return Fail(s);
  return Status::Ok();
}

Status Connection::SendExtentHead(uint64_t epoch, uint64_t seq, uint64_t file_size, uint64_t offset,
                                  uint32_t length) {
  if (!failed_.ok()) return failed_;
  HASYNC_ASSERT(hello_sent_ && !tls_);
  if (!PlainOutboxHasRoom(wire::kFrameHeaderSize + wire::kExtentPrefixSize)) {
    return Fail(Status(Code::kResourceExhausted, "outgoing buffer full"));
  }
  wire::EncodeExtentHead(epoch, seq, file_size, offset, length, plain_out_.back());
  return Status::Ok();
}

void Connection::Close() {
  if (tls_) tls_->Close().IgnoreError();
}

}  // namespace hasync::engine
