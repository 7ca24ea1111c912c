// Connection: one authenticated, framed channel to the peer, without any socket.
//
// The event loop moves bytes: Feed() what the socket received, send outgoing() and
// Consume() what went out. Inside, the layers run in order and nothing skips one:
//   TLS mode:   TLS handshake (sync key as PSK) → HELLO exchange → frames.
//   plain mode: CHALLENGE/RESPONSE (HMAC-SHA256 with the sync key over both nonces,
//               docs/PROTOCOL.md §8) → HELLO exchange → frames, unencrypted.
// In TLS mode no frame is decoded before the handshake proved the peer holds the sync
// key. In plain mode only CHALLENGE and RESPONSE (fixed 32-byte bodies) are decoded
// before the peer's MAC verified; anything else ends the connection. In both, no frame
// but HELLO is accepted before both HELLOs were exchanged (DESIGN §5).
// Frames are validated on send (EncodeFrame asserts) and on receipt (FrameDecoder).
//
// Errors are sticky: after one, the connection is dead and the caller closes the socket.
// Thread safety: none; one event loop owns it.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <vector>

#include <array>
#include "base/byte_queue.h"
#include "base/status.h"

#include "wire/frame.h"
#include "wire/handshake.h"
#include "wire/messages.h"
#include "wire/tls_session.h"

namespace hasync::engine {

// Bytes read from the socket per Feed are bounded by the caller's buffer. In TLS mode
// they are decrypted where they lie (TlsSession::Lend) straight into the frame decoder
// (FrameDecoder::AppendSpace), one record at a time; only a partial record at the end
// is kept. An EXTENT is sent as its head and first data bytes (one full record),
// then its data straight from the message: its bytes are not copied into a frame first.

enum class ChannelMode { kTls, kPlain };

class Connection {
 public:
  // role: kClient for the side that dialled. my_hello is sent once the peer proved the
  // key (TLS handshake or plain-mode MAC).
  static Result<std::unique_ptr<Connection>> Create(wire::TlsRole role,
                                                    std::span<const std::byte> psk, wire::RngFn rng,
                                                    void* rng_ctx, wire::Hello my_hello,
                                                    uint64_t my_epoch,
                                                    ChannelMode mode = ChannelMode::kTls);

  // Ciphertext from the socket. Returns the sticky error if the connection failed.
  Status Feed(std::span<const std::byte> bytes);
  // The next frame after HELLO, or nullopt when more bytes are needed.
  Result<std::optional<wire::Frame>> Next();
  // Encodes, encrypts and queues one frame. Only once open().
  Status Send(uint64_t epoch, uint64_t seq, const wire::Message& message);
  // Plain mode only: queues an EXTENT frame's header and fixed prefix; the caller sends
  // its `length` data bytes on the socket itself, right after the outbox (splice).
  Status SendExtentHead(uint64_t epoch, uint64_t seq, uint64_t file_size, uint64_t offset,
                        uint32_t length);
  // Queues a TLS close_notify.
  void Close();

  std::span<const std::byte> outgoing() const;
  void Consume(size_t n);
  // Moves all of outgoing() into `into` (see TlsSession::TakeOutgoing); for the
  // asynchronous send, whose buffer must stay put until the kernel is done with it.
  void TakeOutgoing(std::vector<std::byte>& into);
  // Frees the (empty) outbox's storage if it is larger than `keep` bytes.
  // Returns whether it freed anything.
  bool ReleaseIdleBuffer(size_t keep);
  size_t outgoing_size() const { return outgoing().size(); }

  bool open() const { return peer_hello_.has_value(); }
  const wire::Hello& peer_hello() const { return *peer_hello_; }
  uint64_t peer_epoch() const { return peer_epoch_; }
  const Status& failed() const { return failed_; }
  // TLS mode: failed() is the peer's close_notify (an orderly end), reported by Next
  // after every frame decoded before it; not a refused frame or a TLS error.
  bool closed_by_peer() const { return closed_by_peer_; }
  // Decrypted bytes of a frame not yet complete are buffered (an end of stream now cuts
  // that frame). A TLS record not yet complete is the TLS layer's and not counted.
  bool mid_frame() const { return decoder_.buffered() > 0; }
  // The connection failed because the peer proved a different sync key (TLS: the PSK
  // binder or Finished MAC did not verify; plain: the RESPONSE MAC did not), as opposed
  // to any other protocol error. Lets the standby tell "the primary is alive but keyed
  // differently" from silence (docs/FAILOVER.md).
  bool key_refused() const { return key_refused_; }
  std::string cipher_suite() const { return tls_ ? tls_->cipher_suite() : "plain (unencrypted)"; }
  ChannelMode mode() const { return tls_ ? ChannelMode::kTls : ChannelMode::kPlain; }

 private:
  Connection() = default;
  Status Advance();
  Status Fail(Status s);
  Status Write(std::span<const std::byte> frame);
  // Plain mode: the outbox's bound (the TLS layer's, plus one frame).
  bool PlainOutboxHasRoom(size_t bytes) const {
    return plain_out_.size() + bytes <= wire::kTlsOutBufferMax + wire::kFrameMax;
  }
  // Plain mode: consumes CHALLENGE/RESPONSE frames until the peer is authenticated.
  Status PlainAuth();
  std::array<std::byte, 32> Mac(wire::AuthSide side, const wire::Nonce& peer_nonce,
                                const wire::Nonce& own_nonce) const;

  std::unique_ptr<wire::TlsSession> tls_;
  // Plain mode.
  std::vector<std::byte> key_;
  wire::AuthSide side_ = wire::AuthSide::kConnector;
  wire::Nonce own_nonce_{};
  wire::Nonce peer_nonce_{};
  bool response_sent_ = false;
  bool peer_authenticated_ = false;
  ByteQueue plain_out_;
  wire::FrameDecoder decoder_;
  wire::Hello my_hello_;
  uint64_t my_epoch_ = 0;
  bool hello_sent_ = false;
  std::optional<wire::Hello> peer_hello_;
  uint64_t peer_epoch_ = 0;
  // TLS mode: each frame is encoded here before it is encrypted (kept between frames,
  // so a stream of extents allocates nothing; at most one frame, freed when idle; an
  // EXTENT's head and first record only).
  std::vector<std::byte> scratch_;
  Status failed_;
  // TLS mode: the peer's close_notify, read after records whose frames may still sit in
  // the decoder. Next hands those out first and reports the close after them: the last
  // frames before a close (a DEMOTED, an ERROR saying why) often arrive in one read with
  // it when the reader is slow.
  Status peer_closed_;
  bool closed_by_peer_ = false;  // failed_ is peer_closed_
  bool key_refused_ = false;
};

}  // namespace hasync::engine
