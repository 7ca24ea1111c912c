// Connection: one authenticated, framed channel to the peer, without any socket.
//
// The event loop moves bytes: Feed() what the socket received, send outgoing() and
// Consume() what went out. Inside, the layers run in order and nothing skips one:
//   TLS handshake (sync key as PSK) → HELLO exchange → frames.
// No frame is decoded before the TLS handshake proved the peer holds the sync key, and
// no frame but HELLO is accepted before both HELLOs were exchanged, so a wrong key or a
// confused peer is refused before any application byte is parsed (DESIGN §5).
// Frames are validated on send (EncodeFrame asserts) and on receipt (FrameDecoder).
//
// Errors are sticky: after one, the connection is dead and the caller closes the socket.
// Thread safety: none; one event loop owns it.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/status.h"
#include "wire/frame.h"
#include "wire/messages.h"
#include "wire/tls_session.h"

namespace hasync::engine {

// Bytes read from the socket per Feed are bounded by the caller's buffer; decrypted
// bytes are staged in chunks of this size.
inline constexpr size_t kPlainChunkBytes = 64 * 1024;

class Connection {
 public:
  // role: kClient for the side that dialled. my_hello is sent once TLS is up.
  static Result<std::unique_ptr<Connection>> Create(wire::TlsRole role,
                                                    std::span<const std::byte> psk, wire::RngFn rng,
                                                    void* rng_ctx, wire::Hello my_hello,
                                                    uint64_t my_epoch);

  // Ciphertext from the socket. Returns the sticky error if the connection failed.
  Status Feed(std::span<const std::byte> bytes);
  // The next frame after HELLO, or nullopt when more bytes are needed.
  Result<std::optional<wire::Frame>> Next();
  // Encodes, encrypts and queues one frame. Only once open().
  Status Send(uint64_t epoch, uint64_t seq, const wire::Message& message);
  // Queues a TLS close_notify.
  void Close();

  std::span<const std::byte> outgoing() const { return tls_->outgoing(); }
  void Consume(size_t n) { tls_->ConsumeOutgoing(n); }
  size_t outgoing_size() const { return tls_->outgoing().size(); }

  bool open() const { return peer_hello_.has_value(); }
  const wire::Hello& peer_hello() const { return *peer_hello_; }
  uint64_t peer_epoch() const { return peer_epoch_; }
  const Status& failed() const { return failed_; }
  std::string cipher_suite() const { return tls_->cipher_suite(); }

 private:
  Connection() = default;
  Status Advance();
  Status Fail(Status s);

  std::unique_ptr<wire::TlsSession> tls_;
  wire::FrameDecoder decoder_;
  wire::Hello my_hello_;
  uint64_t my_epoch_ = 0;
  bool hello_sent_ = false;
  std::optional<wire::Hello> peer_hello_;
  uint64_t peer_epoch_ = 0;
  std::vector<std::byte> plain_;
  Status failed_;
};

}  // namespace hasync::engine
