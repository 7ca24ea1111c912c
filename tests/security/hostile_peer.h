// Test support: a malicious primary. It dials a real `hasync run` standby, completes the
// real handshake with the sync key (TLS-PSK through wire::TlsSession as the client, or
// plain mode's CHALLENGE/RESPONSE with the same HMAC the node computes), and then sends
// whatever bytes the test chooses: well-formed frames through wire::EncodeFrame, or
// hand-made / patched bytes that EncodeFrame would refuse to produce. It never checks
// what it sends; it only reads what the standby answers and notices when it hangs up.
//
// Every wait is bounded by a deadline. The socket is closed by the destructor.
// Thread safety: none; one peer belongs to one test thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/net/rng.h"
#include "wire/frame.h"
#include "wire/messages.h"
#include "wire/tls_session.h"

namespace hasync::testing {

using Bytes = std::vector<std::byte>;

// Little-endian byte builder for bodies the encoder would refuse to write.
class RawBody {
 public:
  RawBody& U8(uint8_t v);
  RawBody& U16(uint16_t v);
  RawBody& U32(uint32_t v);
  RawBody& U64(uint64_t v);
  // A str16 whose length prefix is `len_field` (normally the real length).
  RawBody& Str16(std::string_view s, std::optional<uint16_t> len_field = std::nullopt);
  RawBody& Raw(std::span<const std::byte> b);
  const Bytes& bytes() const { return b_; }

 private:
  Bytes b_;
};

// A 32-byte frame header with every field chosen by the caller.
Bytes RawHeader(uint16_t type, uint32_t body_len, uint64_t epoch, uint64_t seq,
                uint32_t magic = wire::kFrameMagic, uint16_t version = wire::kProtocolVersion,
                uint16_t flags = 0, uint16_t reserved = 0);
// Header + body with a truthful body length.
Bytes RawFrame(wire::MessageType type, const Bytes& body, uint64_t epoch, uint64_t seq);
// EncodeFrame's bytes, to be patched.
Bytes Encode(uint64_t epoch, uint64_t seq, const wire::Message& message);
// Replaces the first occurrence of `from` in `frame` (same length) by `to`; asserts it
// was found, so a patch can never silently miss.
void Patch(Bytes& frame, std::string_view from, std::string_view to);
void PatchU64(Bytes& frame, size_t offset, uint64_t v);
void PatchU32(Bytes& frame, size_t offset, uint32_t v);

enum class PeerMode { kTls, kPlain };

struct HelloOptions {
  uint64_t epoch = 0;  // header epoch of our HELLO
  std::string node_name = "primary";
  wire::Role role = wire::Role::kPrimary;
  uint64_t capabilities = wire::kCapSparse | wire::kCapDelta | wire::kCapXattr;
};

class HostilePeer {
 public:
  // Connects to 127.0.0.1:port (retrying while nothing listens yet, up to `timeout`).
  static Result<std::unique_ptr<HostilePeer>> Dial(uint16_t port, PeerMode mode,
                                                   std::span<const std::byte> key,
                                                   std::chrono::milliseconds timeout);
  ~HostilePeer();
  HostilePeer(const HostilePeer&) = delete;
  HostilePeer& operator=(const HostilePeer&) = delete;

  // TLS handshake, or CHALLENGE/RESPONSE, with the key given to Dial. Fails with the
  // reason (a different key: PermissionDenied from TLS, or the standby hanging up).
  Status Authenticate(std::chrono::milliseconds timeout);
  // Reads the standby's HELLO (it sends it first, once authenticated).
  Status ReadStandbyHello(std::chrono::milliseconds timeout);
  // Sends our HELLO claiming the primary role.
  Status SendHello(const HelloOptions& options);
  // Authenticate + ReadStandbyHello + SendHello at the standby's own epoch (or `epoch`).
  Status Open(std::optional<uint64_t> epoch = std::nullopt,
              std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Plaintext bytes of frames: encrypted into TLS records in TLS mode, raw in plain mode.
  Status SendPlain(std::span<const std::byte> bytes);
  Status SendFrame(uint64_t epoch, uint64_t seq, const wire::Message& message);
  // Bytes straight onto the socket (TLS records as they are, or garbage).
  Status SendSocket(std::span<const std::byte> bytes);
  // TLS mode: the records `plaintext` becomes, without sending them.
  Result<Bytes> Seal(std::span<const std::byte> plaintext);

  // The standby's next frame; FailedPrecondition when none came in time, Unavailable once
  // it hung up.
  Result<wire::Frame> Receive(std::chrono::milliseconds timeout);
  // The next frame that is neither a PONG nor a PING (a reply to COMMIT, an ERROR, ...).
  Result<wire::Frame> ReceiveReply(std::chrono::milliseconds timeout);
  // Reads (and keeps) frames until the standby hangs up. True if it did before `timeout`.
  bool WaitClosed(std::chrono::milliseconds timeout);
  // Frames the standby sent that a waiting call read and did not return (ERROR etc.).
  const std::vector<wire::Frame>& seen() const { return seen_; }
  bool closed() const { return closed_; }
  // Peeks without consuming: false once the standby hung up.
  bool StillOpen();

  const wire::Hello& standby_hello() const { return standby_hello_; }
  uint64_t standby_epoch() const { return standby_epoch_; }
  uint64_t epoch() const { return epoch_; }  // the epoch our HELLO carried

 private:
  HostilePeer() = default;
  // Waits for bytes and feeds them to the TLS session / decoder. False on deadline.
  Status Pump(std::chrono::steady_clock::time_point deadline);
  Status FlushTls();
  // Moves the plaintext the TLS session holds into the decoder.
  Status DrainTls();

  int fd_ = -1;
  PeerMode mode_ = PeerMode::kTls;
  Bytes key_;
  std::unique_ptr<engine::Rng> rng_;
  std::unique_ptr<wire::TlsSession> tls_;
  wire::FrameDecoder decoder_;
  bool closed_ = false;
  std::vector<wire::Frame> seen_;
  wire::Hello standby_hello_;
  uint64_t standby_epoch_ = 0;
  uint64_t epoch_ = 0;
};

}  // namespace hasync::testing
