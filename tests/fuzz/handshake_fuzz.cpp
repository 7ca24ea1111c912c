// libFuzzer target for the standby's side of the connection handshake: an accepting
// (server) engine::Connection, plain mode (CHALLENGE/RESPONSE with the HMAC, then HELLO)
// or TLS-PSK mode (mbedTLS server, then HELLO), fed the input's bytes as the dialling
// peer's flights (input layout: handshake_input.h).
//
// Properties checked on every input, beyond "no crash, no sanitizer report":
// - Next() hands out a frame only on an open connection, never a HELLO, and every frame
//   it hands out passes ValidateFrame;
// - the same bytes against a server holding another key (same random seed) never open
//   and never yield a frame; when the right key opened, the other key's connection
//   failed with key_refused();
// - plain mode, checked against an independent reading of the bytes: the connection
//   opens only if the peer's first two frames are CHALLENGE and a RESPONSE carrying the
//   right HMAC over both nonces; and with that proof and a HELLO next, it does open;
// - a failure is sticky: every later Feed() and Next() returns the same status, and
//   failed() holds it; a failure always carries a reason;
// - outgoing() stays within kOutgoingMax (the server's own flights; it sends nothing
//   else because this driver never calls Send).
#include <mbedtls/md.h>

#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "engine/net/connection.h"
#include "tests/fuzz/handshake_input.h"
#include "wire/frame.h"
#include "wire/handshake.h"

namespace {

using namespace hasync;
using namespace hasync::fuzz;

// A server flight (plain: CHALLENGE + RESPONSE + HELLO; TLS: ServerHello, key exchange
// with a 2048-bit DH group, ChangeCipherSpec, Finished, then HELLO) is well below this.
constexpr size_t kOutgoingMax = 16 * 1024;
// Bounded loops: frames drained per Feed (an input of n bytes holds < n / 24 frames).
constexpr int kMaxFramesPerStep = 4096;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "handshake_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

struct Outcome {
  bool opened = false;
  size_t frames = 0;
  bool failed = false;
  bool key_refused = false;
};

class Driver {
 public:
  Driver(engine::Connection& c) : c_(c) {}

  void NoteError(const Status& s) {
    Check(!s.ok(), "NoteError gets an error");
    if (!failed_) {
      Check(!s.message().empty(), "a failure carries a reason");
      failed_ = true;
      first_ = s;
    } else {
      Check(s.code() == first_.code() && s.message() == first_.message(),
            "a failure is sticky: later calls return the same status");
    }
    Check(!c_.failed().ok() && c_.failed().code() == first_.code() &&
              c_.failed().message() == first_.message(),
          "failed() holds the failure that was returned");
  }

  void Drain(Outcome& out) {
    for (int i = 0; i < kMaxFramesPerStep; ++i) {
      auto next = c_.Next();
      if (!next.ok()) {
        NoteError(next.status());
        return;
      }
      if (!next->has_value()) return;
      Check(!failed_, "no frame after a failure");
      Check(c_.open(), "a frame is handed out only once the peer's HELLO was taken");
      const wire::Frame& frame = **next;
      Check(!std::holds_alternative<wire::Hello>(frame.message), "HELLO is never handed out");
      Check(wire::ValidateFrame(frame).ok(), "a frame handed out is valid");
      ++out.frames;
    }
  }

  void Feed(std::span<const std::byte> piece, Outcome& out) {
    Status s = c_.Feed(piece);
    if (!s.ok()) {
      NoteError(s);
    } else {
      Check(!failed_, "Feed accepts nothing after a failure");
    }
    Drain(out);
  }

  bool failed() const { return failed_; }

 private:
  engine::Connection& c_;
  bool failed_ = false;
  Status first_;
};

Outcome Run(std::span<const std::byte, 32> key, bool tls, uint64_t seed, uint8_t flags,
            std::span<const std::byte> stream) {
  DetRng rng{seed};
  wire::Hello hello{
      .role = wire::Role::kStandby, .node_id = 2, .session_id = 0x5e5510, .node_name = "standby"};
  auto created = engine::Connection::Create(
      wire::TlsRole::kServer, key, &DetRng::Generate, &rng, hello, /*my_epoch=*/5,
      tls ? engine::ChannelMode::kTls : engine::ChannelMode::kPlain);
  Check(created.ok(), "a server connection is created");
  engine::Connection& c = **created;
  Driver d(c);
  Outcome out;
  size_t chunk = ChunkSize(flags);
  if (chunk == 0) chunk = stream.size() == 0 ? 1 : stream.size();
  const bool half = (flags & kFlagHalfConsume) != 0;
  for (size_t off = 0; off < stream.size(); off += chunk) {
    d.Feed(stream.subspan(off, std::min(chunk, stream.size() - off)), out);
    Check(c.outgoing_size() <= kOutgoingMax, "outgoing() stays bounded");
    // The socket takes everything, or (like a slow peer's window) half.
    c.Consume(half ? c.outgoing_size() / 2 : c.outgoing_size());
    if (c.open()) out.opened = true;
  }
  if (d.failed()) {
    // Sticky, also for calls that come after the end of the input.
    std::byte one{0};
    d.Feed(std::span<const std::byte>(&one, 1), out);
  }
  out.failed = d.failed();
  out.opened = out.opened || c.open();
  out.key_refused = c.key_refused();
  if (out.key_refused) Check(out.failed, "key_refused() only on a failed connection");
  return out;
}

// Plain mode, read independently of Connection: do the peer's first two frames prove
// kGoodKey (CHALLENGE, then RESPONSE = HMAC(key, 'C' || server nonce || peer nonce))?
// *hello_next: the third frame is a HELLO this node can speak.
bool PlainProof(uint64_t seed, std::span<const std::byte> stream, bool* hello_next) {
  *hello_next = false;
  DetRng rng{seed};
  wire::Nonce server_nonce{};
  DetRng::Generate(&rng, reinterpret_cast<unsigned char*>(server_nonce.data()),
                   server_nonce.size());
  std::vector<wire::Frame> frames;
  size_t off = 0;
  while (frames.size() < 3 && off < stream.size()) {
    auto step = wire::DecodeNext(stream.subspan(off));
    if (!step.ok() || std::holds_alternative<wire::NeedMore>(*step)) break;
    auto& decoded = std::get<wire::Decoded>(*step);
    off += decoded.consumed;
    frames.push_back(std::move(decoded.frame));
  }
  if (frames.size() < 2) return false;
  const auto* ch = std::get_if<wire::Challenge>(&frames[0].message);
  const auto* resp = std::get_if<wire::Response>(&frames[1].message);
  if (ch == nullptr || resp == nullptr) return false;
  std::vector<std::byte> input =
      wire::PlainAuthInput(wire::AuthSide::kConnector, server_nonce, ch->nonce);
  std::array<std::byte, 32> mac{};
  int rc = mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                           reinterpret_cast<const unsigned char*>(kGoodKey.data()), kGoodKey.size(),
                           reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                           reinterpret_cast<unsigned char*>(mac.data()));
  Check(rc == 0, "HMAC computes");
  if (mac != resp->mac) return false;
  if (frames.size() == 3) {
    const auto* h = std::get_if<wire::Hello>(&frames[2].message);
    *hello_next = h != nullptr && h->version_min <= wire::kProtocolVersion &&
                  h->version_max >= wire::kProtocolVersion;
  }
  return true;
}

// HASYNC_FUZZ_TRACE=1: one line per input saying how far it got (to check that the seeds
// really complete handshakes).
bool g_trace = false;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_trace = std::getenv("HASYNC_FUZZ_TRACE") != nullptr;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  if (in.size() < kHeaderBytes) return 0;
  const uint8_t flags = std::to_integer<uint8_t>(in[0]);
  const bool tls = (flags & kFlagTls) != 0;
  const uint64_t seed = SeedOf(in);
  std::span<const std::byte> stream = in.subspan(kHeaderBytes);

  Outcome good = Run(kGoodKey, tls, seed, flags, stream);
  Outcome wrong = Run(kWrongKey, tls, seed, flags, stream);
  Check(!wrong.opened && wrong.frames == 0,
        "a peer without the key never opens the connection nor gets a frame through");
  if (good.opened) {
    Check(wrong.failed && wrong.key_refused,
          "bytes that prove one key are refused as a key mismatch by a node with another");
  }
  if (g_trace) {
    std::fprintf(stderr, "%s: opened=%d frames=%zu failed=%d | other key: failed=%d refused=%d\n",
                 tls ? "tls" : "plain", good.opened, good.frames, good.failed, wrong.failed,
                 wrong.key_refused);
  }
  if (!tls) {
    bool hello_next = false;
    bool proof = PlainProof(seed, stream, &hello_next);
    Check(!good.opened || proof, "plain mode opens only after the right RESPONSE MAC");
    Check(!proof || !good.key_refused, "the right MAC is not refused");
    Check(!(proof && hello_next) || good.opened, "the right MAC and a HELLO open the connection");
    Check(!proof || wrong.key_refused, "the right key's MAC is refused by another key");
  }
  return 0;
}
