// Writes the seed corpus for handshake_fuzz (input layout: handshake_input.h): real,
// successful handshakes between a dialling Connection and an accepting one, both with
// kGoodKey and deterministic random generators, recorded as the dialler's bytes and
// followed by sample frames; then truncated, bit-flipped and out-of-order variants.
// Usage: make_handshake_corpus <output dir>. The output is committed under
// tests/fuzz/corpus/handshake/; rerun it when the handshake or the message set changes.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/net/connection.h"
#include "tests/fuzz/handshake_input.h"
#include "tests/wire/samples.h"
#include "wire/frame.h"

namespace {

using namespace hasync;
using namespace hasync::fuzz;

struct Transcript {
  std::vector<std::byte> client;  // everything the dialler sent
  size_t handshake_bytes = 0;     // of which the handshake (through its HELLO)
};

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "make_handshake_corpus: %s\n", why.c_str());
  std::exit(1);
}

void Pump(engine::Connection& from, engine::Connection& to, std::vector<std::byte>* record) {
  std::span<const std::byte> out = from.outgoing();
  if (out.empty()) return;
  if (record != nullptr) record->insert(record->end(), out.begin(), out.end());
  Status s = to.Feed(out);
  if (!s.ok()) Die("feed: " + s.message());
  from.Consume(out.size());
  for (int i = 0; i < 1000; ++i) {
    auto next = to.Next();
    if (!next.ok()) Die("next: " + next.status().message());
    if (!next->has_value()) break;
  }
}

Transcript Record(bool tls, uint64_t server_seed, const std::vector<wire::Frame>& after) {
  DetRng server_rng{server_seed};
  DetRng client_rng{0xC0FFEE};
  auto mode = tls ? engine::ChannelMode::kTls : engine::ChannelMode::kPlain;
  auto server =
      engine::Connection::Create(wire::TlsRole::kServer, kGoodKey, &DetRng::Generate, &server_rng,
                                 wire::Hello{.role = wire::Role::kStandby,
                                             .node_id = 2,
                                             .session_id = 0x5e5510,
                                             .node_name = "standby"},
                                 5, mode);
  auto client = engine::Connection::Create(
      wire::TlsRole::kClient, kGoodKey, &DetRng::Generate, &client_rng,
      wire::Hello{.role = wire::Role::kPrimary,
                  .node_id = 1,
                  .session_id = 0x9919,
                  .capabilities = wire::kCapDataStreams | wire::kCapDelta,
                  .node_name = "primary"},
      5, mode);
  if (!server.ok() || !client.ok()) Die("create");
  Transcript t;
  for (int round = 0; round < 20 && !((*server)->open() && (*client)->open()); ++round) {
    Pump(**client, **server, &t.client);
    Pump(**server, **client, nullptr);
  }
  Pump(**client, **server, &t.client);
  if (!(*server)->open() || !(*client)->open()) Die("the handshake did not complete");
  t.handshake_bytes = t.client.size();
  for (const wire::Frame& f : after) {
    Status s = (*client)->Send(f.epoch, f.seq, f.message);
    if (!s.ok()) Die("send: " + s.message());
  }
  std::span<const std::byte> out = (*client)->outgoing();
  t.client.insert(t.client.end(), out.begin(), out.end());
  return t;
}

std::vector<std::byte> Input(uint8_t flags, uint64_t seed, std::span<const std::byte> stream) {
  std::vector<std::byte> in(kHeaderBytes);
  in[0] = static_cast<std::byte>(flags);
  for (size_t i = 0; i < 8; ++i) in[1 + i] = static_cast<std::byte>(seed >> (8 * i));
  in.insert(in.end(), stream.begin(), stream.end());
  return in;
}

void Write(const std::string& path, const std::vector<std::byte>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  bool ok = f != nullptr && std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (f == nullptr || std::fclose(f) != 0 || !ok) Die("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  // Post-handshake frames: the small samples (the large EXTENT ones would only slow the
  // fuzzer down), at their own epochs and sequence numbers.
  std::vector<wire::Frame> after;
  for (wire::Frame& f : wire::testing::SampleFrames()) {
    if (wire::EncodedFrameSize(f.message) <= 256 &&
        !std::holds_alternative<wire::Hello>(f.message)) {
      after.push_back(std::move(f));
    }
  }
  // A few, then a second HELLO (which ends the session).
  std::vector<wire::Frame> some(after.begin(),
                                after.begin() + std::min<std::ptrdiff_t>(std::ssize(after), 6));
  some.push_back(wire::testing::SampleHello());

  for (bool tls : {false, true}) {
    const std::string mode = tls ? "tls" : "plain";
    const uint8_t base = tls ? kFlagTls : 0;
    for (uint64_t seed : {uint64_t{1}, uint64_t{0xFEEDFACE}}) {
      Transcript t = Record(tls, seed, seed == 1 ? after : some);
      const std::string tag = mode + "_s" + std::to_string(seed & 0xff);
      Write(dir + "/" + tag + "_ok", Input(base, seed, t.client));
      Write(dir + "/" + tag + "_ok_half", Input(base | kFlagHalfConsume, seed, t.client));
      for (size_t c = 1; c < kChunkSizes.size(); c += 2) {
        Write(dir + "/" + tag + "_ok_chunk" + std::to_string(kChunkSizes[c]),
              Input(static_cast<uint8_t>(base | ChunkFlag(c)), seed, t.client));
      }
      // The handshake alone, and cut inside it.
      std::span<const std::byte> hs(t.client.data(), t.handshake_bytes);
      Write(dir + "/" + tag + "_handshake_only", Input(base, seed, hs));
      for (size_t cut : {hs.size() / 4, hs.size() / 2, hs.size() - 1}) {
        Write(dir + "/" + tag + "_cut" + std::to_string(cut), Input(base, seed, hs.first(cut)));
      }
      // One flipped bit near the start (CHALLENGE / ClientHello) and near the end of the
      // handshake (the RESPONSE MAC or HELLO / the encrypted Finished).
      for (size_t at : {size_t{20}, hs.size() / 2, hs.size() - 8}) {
        std::vector<std::byte> flipped = t.client;
        flipped[at] ^= std::byte{0x01};
        Write(dir + "/" + tag + "_flip" + std::to_string(at), Input(base, seed, flipped));
      }
      // The right transcript replayed to a server with another random seed (a replay
      // from an earlier connection: the nonce or ServerHello random differs).
      Write(dir + "/" + tag + "_replayed", Input(base, seed + 1, t.client));
    }
  }

  // Plain mode out of order: what the acceptor must refuse before authentication.
  auto plain = [&](const std::string& name, const std::vector<wire::Frame>& frames) {
    std::vector<std::byte> stream;
    for (const wire::Frame& f : frames) wire::EncodeFrame(f, stream);
    Write(dir + "/plain_" + name, Input(0, 1, stream));
  };
  wire::Frame challenge{0, 0, wire::Challenge{wire::testing::Array<wire::kNonceSize>(9)}};
  wire::Frame response{0, 0, wire::Response{wire::testing::Array<wire::kMacSize>(3)}};
  wire::Frame hello = wire::testing::SampleHello();
  plain("hello_first", {hello});
  plain("response_first", {response, challenge});
  plain("two_challenges", {challenge, challenge});
  auto change =
      std::find_if(after.begin(), after.end(), [](const wire::Frame& f) { return f.seq != 0; });
  if (change == after.end()) Die("no change frame among the samples");
  plain("change_before_auth", {challenge, *change});
  plain("wrong_mac_then_hello", {challenge, response, hello});
  return 0;
}
