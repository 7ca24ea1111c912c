// TlsSession: one TLS 1.2 endpoint (mbedTLS 2.28) driven over memory buffers.
//
// The transport moves bytes between the socket and this object; the session never
// touches a socket, a clock or an entropy source itself (wire/ makes no syscalls): the
// random generator is passed in by the caller (engine/ seeds a CTR-DRBG from the
// kernel).
//
// Security (DESIGN §5): the sync key is the pre-shared key; the only cipher suites are
// ECDHE-PSK with ChaCha20-Poly1305 and DHE-PSK with AES-128-GCM, so every session has
// an ephemeral key exchange (forward secrecy) and an AEAD record protection. A peer
// with a different key fails the handshake's Finished check: no application byte is
// ever produced for it, so nothing it sent reaches a frame parser.
//
// Use:
//   session.Feed(bytes from socket);    (or Lend(bytes) ... EndLend(), without a copy)
//   session.Handshake()   → OK when done, Unavailable while it needs more bytes
//   session.Write(plain)  → records appended to outgoing()
//   session.Read(buf)     → plaintext bytes, 0 when it needs more input
//   send outgoing() to the socket, then ConsumeOutgoing(n)
// Thread safety: none; one session belongs to one connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/byte_queue.h"
#include "base/status.h"

namespace hasync::wire {

// The PSK identity both ends present; a mismatch means another protocol or version.
inline constexpr std::string_view kPskIdentity = "hasync/1";
inline constexpr size_t kPskMinBytes = 16;  // 128 bits (DESIGN §5)
inline constexpr size_t kPskMaxBytes = 64;
// Bounds of the buffered ciphertext in either direction: one TLS record is at most
// 16 KiB + overhead; a frame is at most kFrameMax; keep a few of each.
inline constexpr size_t kTlsInBufferMax = 4u << 20;
inline constexpr size_t kTlsOutBufferMax = 8u << 20;
// The largest plaintext one TLS 1.2 record carries (RFC 5246 §6.2.1; mbedTLS's
// MBEDTLS_SSL_OUT_CONTENT_LEN in Debian's build). Write() cuts its input into records
// of this size; a caller that fills a record's worth before writing wastes none.
inline constexpr size_t kTlsRecordPlainMax = 16384;

enum class TlsRole { kClient, kServer };

// int rng(void* ctx, unsigned char* out, size_t len): 0 on success (mbedTLS's f_rng).
using RngFn = int (*)(void*, unsigned char*, size_t);

class TlsSession {
 public:
  static Result<std::unique_ptr<TlsSession>> Create(TlsRole role, std::span<const std::byte> psk,
                                                    RngFn rng, void* rng_ctx);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext received from the peer. ResourceExhausted past kTlsInBufferMax.
  Status Feed(std::span<const std::byte> ciphertext);
  // Feed without the copy: the session reads `ciphertext` where it is (Handshake and
  // Read take from it after any bytes fed before) until EndLend(), which copies what
  // is left unread into the session. The bytes must stay valid and unchanged until
  // then; one lend at a time. Same bound and error as Feed, checked here.
  Status Lend(std::span<const std::byte> ciphertext);
  void EndLend();
  // Advances the handshake: OK once complete; Unavailable("handshake needs more input")
  // while waiting; PermissionDenied when the peer proved a different key; any other
  // code for a protocol failure. A failure is final: later calls return it again.
  Status Handshake();
  bool established() const { return established_; }
  // Name of the negotiated cipher suite (after the handshake).
  std::string cipher_suite() const;

  // Encrypts all of `plaintext` into outgoing().
  Status Write(std::span<const std::byte> plaintext);
  // Decrypts into `out`; returns the bytes produced, 0 when more ciphertext is needed.
  // Unavailable("peer closed") after the peer's close_notify.
  Result<size_t> Read(std::span<std::byte> out);
  // Queues a close_notify alert.
  Status Close();

  std::span<const std::byte> outgoing() const { return out_.data(); }
  void ConsumeOutgoing(size_t n) { out_.Consume(n); }
  // Moves everything in outgoing() into `into` (replacing its contents) and empties
  // outgoing(); swaps buffers when it can, so the bytes are not copied. For a caller
  // that hands the bytes to an asynchronous send, which must not see them move.
  void TakeOutgoing(std::vector<std::byte>& into) { out_.Take(into); }
  // Frees the outgoing buffer if it is empty and holds more than `keep` bytes of
  // capacity (a burst is over; the memory goes back).
  // Returns whether it freed anything.
  bool ReleaseIdleBuffer(size_t keep) { return out_.ReleaseIfIdle(keep); }
  size_t pending_input() const { return in_.size() - in_start_ + lent_.size(); }

 private:
  TlsSession();
  struct Impl;
  static int SendCb(void* self, const unsigned char* buf, size_t len);
  static int RecvCb(void* self, unsigned char* buf, size_t len);
  Status MapError(int rc, std::string_view what) const;

  std::unique_ptr<Impl> impl_;
  std::vector<std::byte> in_;
  size_t in_start_ = 0;
  std::span<const std::byte> lent_;  // unread rest of a Lend(), after in_
  bool lending_ = false;
  ByteQueue out_;
  bool established_ = false;
  Status failed_;
};

}  // namespace hasync::wire
