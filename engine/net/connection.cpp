#include "engine/net/connection.h"

namespace hasync::engine {

Result<std::unique_ptr<Connection>> Connection::Create(wire::TlsRole role,
                                                       std::span<const std::byte> psk,
                                                       wire::RngFn rng, void* rng_ctx,
                                                       wire::Hello my_hello, uint64_t my_epoch) {
  std::unique_ptr<Connection> c(new Connection());
  ASSIGN_OR_RETURN(c->tls_, wire::TlsSession::Create(role, psk, rng, rng_ctx));
  c->my_hello_ = std::move(my_hello);
  c->my_epoch_ = my_epoch;
  c->plain_.resize(kPlainChunkBytes);
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
  Status s = tls_->Feed(bytes);
  if (!s.ok()) return Fail(s);
  return Advance();
}

// Runs the handshake, sends HELLO once, and moves decrypted bytes into the decoder.
Status Connection::Advance() {
  if (!tls_->established()) {
    Status s = tls_->Handshake();
    if (s.code() == Code::kUnavailable) return Status::Ok();  // needs more bytes
    if (!s.ok()) return Fail(s);
  }
  if (!hello_sent_) {
    std::vector<std::byte> frame = wire::EncodeFrame(wire::Frame{my_epoch_, 0, my_hello_});
    Status s = tls_->Write(frame);
    if (!s.ok()) return Fail(s);
    hello_sent_ = true;
  }
  for (int i = 0; i < 1024; ++i) {  // bounded: at most kTlsInBufferMax / 4 KiB records
    auto n = tls_->Read(plain_);
    if (!n.ok()) return Fail(n.status());
    if (*n == 0) break;
    decoder_.Append(std::span<const std::byte>(plain_.data(), *n));
  }
  return Status::Ok();
}

Result<std::optional<wire::Frame>> Connection::Next() {
  if (!failed_.ok()) return failed_;
  for (;;) {
    auto step = decoder_.Next();
    if (!step.ok()) return Fail(step.status());
    if (std::holds_alternative<wire::NeedMore>(*step)) {
      // The decoder drained what the TLS layer had; pull more plaintext if any.
      size_t before = decoder_.buffered();
      Status s = Advance();
      if (!s.ok()) return s;
      if (decoder_.buffered() == before) return std::optional<wire::Frame>();
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
  std::vector<std::byte> frame = wire::EncodeFrame(wire::Frame{epoch, seq, message});
  Status s = tls_->Write(frame);
  if (!s.ok()) return Fail(s);
  return Status::Ok();
}

void Connection::Close() { tls_->Close().IgnoreError(); }

}  // namespace hasync::engine
