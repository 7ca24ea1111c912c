// TLS record sealing (encrypt) and opening (decrypt) of 16 KiB records, per cipher suite
// the project allows (wire/tls_session.h: ECDHE-PSK + ChaCha20-Poly1305 and DHE-PSK +
// AES-128-GCM, TLS 1.2 over mbedTLS 2.28), on a connected pair of endpoints in memory.
//   hasync_session  wire::TlsSession, what the data streams run. Its server always
//                   picks ChaCha20-Poly1305 (its first suite), so it appears once.
//   mbedtls_ssl     a bare mbedTLS endpoint set up the same way (TLS 1.2, PSK, no
//                   renegotiation, no tickets) but offering one suite only, so each
//                   suite is measured; against hasync_session it shows what the session's
//                   own buffering costs.
//   raw_aead        the suite's AEAD alone through mbedTLS's cipher layer
//                   (mbedtls_cipher_auth_encrypt_ext / _decrypt_ext, the calls its record
//                   layer makes), 16 KiB with the 13-byte additional data of a TLS 1.2
//                   record: the baseline. scripts/perf/microbench.sh divides every
//                   seal/open row by the raw_aead row of the same suite and direction.
// Sealing counts Write plus handing the record bytes out; opening counts Feed of one
// record's bytes plus the Read that returns its 16 KiB. The records an opening run
// consumes are sealed in batches with the timer paused. Bytes/s count plaintext.
// Counter record_bytes: the size of one sealed record on the wire.
// Run: build/bench/tls_bench, or scripts/perf/microbench.sh for the documented figures.
#include <benchmark/benchmark.h>
#include <mbedtls/cipher.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/dhm.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "wire/tls_session.h"

namespace hasync::wire {
namespace {

constexpr size_t kRecordPlainBytes = 16 << 10;  // the largest TLS record payload
constexpr size_t kAeadTagBytes = 16;
constexpr size_t kAeadNonceBytes = 12;
constexpr size_t kTls12AadBytes = 13;  // sequence number, type, version, length
constexpr int kOpenBatchRecords = 64;  // records sealed per paused stretch
constexpr int kHandshakeRounds = 20;

struct Suite {
  const char* name;  // in benchmark names
  const char* iana;  // as mbedtls_ssl_get_ciphersuite() spells it
  int id;            // MBEDTLS_TLS_*
  mbedtls_cipher_type_t aead;
  unsigned key_bits;
};

const Suite kChaCha = {"chacha20_poly1305", "TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256",
                       MBEDTLS_TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
                       MBEDTLS_CIPHER_CHACHA20_POLY1305, 256};
const Suite kAesGcm = {"aes_128_gcm", "TLS-DHE-PSK-WITH-AES-128-GCM-SHA256",
                       MBEDTLS_TLS_DHE_PSK_WITH_AES_128_GCM_SHA256, MBEDTLS_CIPHER_AES_128_GCM,
                       128};

std::vector<std::byte> Pattern(size_t n) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>(i * 131 + 7);
  return out;
}

const unsigned char* U8(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* U8(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }

std::string MbedtlsFailure(std::string_view what, int rc) {
  return std::string(what) + " failed: -0x" + [&] {
    char hex[16];
    std::snprintf(hex, sizeof hex, "%04x", static_cast<unsigned>(-rc));
    return std::string(hex);
  }();
}

// A CTR-DRBG seeded from the kernel's entropy, as engine/ gives the session in
// production. Neither copyable nor movable: mbedTLS keeps pointers to it.
class Drbg {
 public:
  Drbg() {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&drbg_);
    seed_rc_ = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, nullptr, 0);
  }
  ~Drbg() {
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
  }
  Drbg(const Drbg&) = delete;
  Drbg& operator=(const Drbg&) = delete;

  Status status() const {
    return seed_rc_ == 0 ? Status::Ok()
                         : Internal(MbedtlsFailure("mbedtls_ctr_drbg_seed", seed_rc_));
  }
  RngFn fn() const { return mbedtls_ctr_drbg_random; }
  void* ctx() { return &drbg_; }

 private:
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
  int seed_rc_ = 0;
};

// One TLS 1.2 PSK endpoint straight on mbedTLS, offering exactly one suite, with the
// subset of TlsSession's interface the loops below use. Neither copyable nor movable:
// the ssl context points at the config and at this object.
class PinnedTls {
 public:
  static Result<std::unique_ptr<PinnedTls>> Create(TlsRole role, const Suite& suite,
                                                   std::span<const std::byte> psk, Drbg& rng) {
    std::unique_ptr<PinnedTls> t(new PinnedTls(suite));
    const bool server = role == TlsRole::kServer;
    int rc = mbedtls_ssl_config_defaults(&t->conf_,
                                         server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                         MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) return Internal(MbedtlsFailure("mbedtls_ssl_config_defaults", rc));
    mbedtls_ssl_conf_min_version(&t->conf_, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&t->conf_, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&t->conf_, t->suites_.data());
    mbedtls_ssl_conf_rng(&t->conf_, rng.fn(), rng.ctx());
    mbedtls_ssl_conf_renegotiation(&t->conf_, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_session_tickets(&t->conf_, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
    rc = mbedtls_ssl_conf_psk(&t->conf_, U8(psk.data()), psk.size(), U8(PskIdentityBytes()),
                              kPskIdentity.size());
    if (rc != 0) return Internal(MbedtlsFailure("mbedtls_ssl_conf_psk", rc));
    if (server) {
      // The DHE suite needs group parameters on the server: RFC 3526's 2048-bit group.
      static const unsigned char kP[] = MBEDTLS_DHM_RFC3526_MODP_2048_P_BIN;
      static const unsigned char kG[] = MBEDTLS_DHM_RFC3526_MODP_2048_G_BIN;
      rc = mbedtls_ssl_conf_dh_param_bin(&t->conf_, kP, sizeof kP, kG, sizeof kG);
      if (rc != 0) return Internal(MbedtlsFailure("mbedtls_ssl_conf_dh_param_bin", rc));
    }
    rc = mbedtls_ssl_setup(&t->ssl_, &t->conf_);
    if (rc != 0) return Internal(MbedtlsFailure("mbedtls_ssl_setup", rc));
    mbedtls_ssl_set_bio(&t->ssl_, t.get(), &PinnedTls::Send, &PinnedTls::Recv, nullptr);
    return t;
  }

  ~PinnedTls() {
    mbedtls_ssl_free(&ssl_);
    mbedtls_ssl_config_free(&conf_);
  }
  PinnedTls(const PinnedTls&) = delete;
  PinnedTls& operator=(const PinnedTls&) = delete;

  Status Handshake() {
    const int rc = mbedtls_ssl_handshake(&ssl_);
    if (rc == 0) return Status::Ok();
    if (rc == MBEDTLS_ERR_SSL_WANT_READ) return Unavailable("handshake needs more input");
    return Internal(MbedtlsFailure("mbedtls_ssl_handshake", rc));
  }
  std::string cipher_suite() const {
    const char* name = mbedtls_ssl_get_ciphersuite(&ssl_);
    return name != nullptr ? name : "";
  }
  Status Feed(std::span<const std::byte> bytes) {
    in_.insert(in_.end(), bytes.begin(), bytes.end());
    return Status::Ok();
  }
  Status Write(std::span<const std::byte> plain) {
    size_t done = 0;
    while (done < plain.size()) {
      const int rc = mbedtls_ssl_write(&ssl_, U8(plain.data() + done), plain.size() - done);
      if (rc < 0) return Internal(MbedtlsFailure("mbedtls_ssl_write", rc));
      done += static_cast<size_t>(rc);
    }
    return Status::Ok();
  }
  Result<size_t> Read(std::span<std::byte> out) {
    const int rc = mbedtls_ssl_read(&ssl_, U8(out.data()), out.size());
    if (rc > 0) return static_cast<size_t>(rc);
    if (rc == MBEDTLS_ERR_SSL_WANT_READ) return size_t{0};
    return Internal(MbedtlsFailure("mbedtls_ssl_read", rc));
  }
  std::span<const std::byte> outgoing() const { return out_; }
  void ConsumeOutgoing(size_t n) {
    out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(n));
  }

 private:
  explicit PinnedTls(const Suite& suite) : suites_{suite.id, 0} {
    mbedtls_ssl_config_init(&conf_);
    mbedtls_ssl_init(&ssl_);
  }
  static const std::byte* PskIdentityBytes() {
    return reinterpret_cast<const std::byte*>(kPskIdentity.data());
  }
  static int Send(void* self, const unsigned char* buf, size_t len) {
    auto* t = static_cast<PinnedTls*>(self);
    const auto* p = reinterpret_cast<const std::byte*>(buf);
    t->out_.insert(t->out_.end(), p, p + len);
    return static_cast<int>(len);
  }
  static int Recv(void* self, unsigned char* buf, size_t len) {
    auto* t = static_cast<PinnedTls*>(self);
    const size_t avail = t->in_.size() - t->in_start_;
    if (avail == 0) return MBEDTLS_ERR_SSL_WANT_READ;
    const size_t n = std::min(avail, len);
    std::memcpy(buf, t->in_.data() + t->in_start_, n);
    t->in_start_ += n;
    if (t->in_start_ == t->in_.size()) {
      t->in_.clear();
      t->in_start_ = 0;
    }
    return static_cast<int>(n);
  }

  std::array<int, 2> suites_;  // zero-terminated, as mbedTLS wants; outlives conf_
  mbedtls_ssl_config conf_;
  mbedtls_ssl_context ssl_;
  std::vector<std::byte> in_;
  size_t in_start_ = 0;
  std::vector<std::byte> out_;
};

template <typename Endpoint>
struct Pair {
  std::unique_ptr<Endpoint> client;
  std::unique_ptr<Endpoint> server;
};

// Moves everything `from` has sealed into `to`.
template <typename Endpoint>
Status Deliver(Endpoint& from, Endpoint& to) {
  std::span<const std::byte> bytes = from.outgoing();
  RETURN_IF_ERROR(to.Feed(bytes));
  from.ConsumeOutgoing(bytes.size());
  return Status::Ok();
}

template <typename Endpoint>
Status HandshakeBoth(Pair<Endpoint>& pair) {
  for (int round = 0; round < kHandshakeRounds; ++round) {
    const Status c = pair.client->Handshake();
    const Status s = pair.server->Handshake();
    RETURN_IF_ERROR(Deliver(*pair.client, *pair.server));
    RETURN_IF_ERROR(Deliver(*pair.server, *pair.client));
    if (c.ok() && s.ok()) return Status::Ok();
    if (!c.ok() && c.code() != Code::kUnavailable) return c.Annotate("client");
    if (!s.ok() && s.code() != Code::kUnavailable) return s.Annotate("server");
  }
  return Internal("handshake not done after " + std::to_string(kHandshakeRounds) + " rounds");
}

// Any fixed 32-byte key: both ends hold the same one.
std::vector<std::byte> Psk() { return Pattern(32); }

Result<Pair<TlsSession>> SessionPair(Drbg& rng, const Suite& suite) {
  const std::vector<std::byte> psk = Psk();
  Pair<TlsSession> pair;
  ASSIGN_OR_RETURN(pair.client, TlsSession::Create(TlsRole::kClient, psk, rng.fn(), rng.ctx()));
  ASSIGN_OR_RETURN(pair.server, TlsSession::Create(TlsRole::kServer, psk, rng.fn(), rng.ctx()));
  RETURN_IF_ERROR(HandshakeBoth(pair));
  if (pair.client->cipher_suite() != suite.iana) {
    return FailedPrecondition("the session negotiated " + pair.client->cipher_suite() + ", not " +
                              suite.iana);
  }
  return pair;
}

Result<Pair<PinnedTls>> PinnedPair(Drbg& rng, const Suite& suite) {
  const std::vector<std::byte> psk = Psk();
  Pair<PinnedTls> pair;
  ASSIGN_OR_RETURN(pair.client, PinnedTls::Create(TlsRole::kClient, suite, psk, rng));
  ASSIGN_OR_RETURN(pair.server, PinnedTls::Create(TlsRole::kServer, suite, psk, rng));
  RETURN_IF_ERROR(HandshakeBoth(pair));
  if (pair.client->cipher_suite() != suite.iana) {
    return FailedPrecondition("negotiated " + pair.client->cipher_suite() + ", not " + suite.iana);
  }
  return pair;
}

template <typename Endpoint>
using PairMaker = Result<Pair<Endpoint>> (*)(Drbg&, const Suite&);

void SetRecordCounters(benchmark::State& state, size_t record_bytes) {
  state.counters["record_bytes"] = static_cast<double>(record_bytes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kRecordPlainBytes));
}

template <typename Endpoint>
void Seal(benchmark::State& state, PairMaker<Endpoint> make, const Suite* suite) {
  Drbg rng;
  if (Status s = rng.status(); !s.ok()) return state.SkipWithError(s.ToString().c_str());
  Result<Pair<Endpoint>> pair = make(rng, *suite);
  if (!pair.ok()) return state.SkipWithError(pair.status().ToString().c_str());
  Endpoint& client = *pair->client;
  const std::vector<std::byte> plain = Pattern(kRecordPlainBytes);
  size_t record_bytes = 0;
  for (auto _ : state) {
    if (Status s = client.Write(plain); !s.ok()) return state.SkipWithError(s.ToString().c_str());
    record_bytes = client.outgoing().size();
    client.ConsumeOutgoing(record_bytes);
  }
  state.SetLabel(client.cipher_suite());
  SetRecordCounters(state, record_bytes);
}

template <typename Endpoint>
void Open(benchmark::State& state, PairMaker<Endpoint> make, const Suite* suite) {
  Drbg rng;
  if (Status s = rng.status(); !s.ok()) return state.SkipWithError(s.ToString().c_str());
  Result<Pair<Endpoint>> pair = make(rng, *suite);
  if (!pair.ok()) return state.SkipWithError(pair.status().ToString().c_str());
  Endpoint& client = *pair->client;
  Endpoint& server = *pair->server;
  const std::vector<std::byte> plain = Pattern(kRecordPlainBytes);
  std::vector<std::byte> opened(kRecordPlainBytes);
  std::vector<std::byte> sealed;  // a batch of records, consumed front to back
  size_t next = 0;
  size_t record_bytes = 0;
  for (auto _ : state) {
    if (next == sealed.size()) {
      state.PauseTiming();
      for (int i = 0; i < kOpenBatchRecords; ++i) {
        if (Status s = client.Write(plain); !s.ok()) {
          return state.SkipWithError(s.ToString().c_str());
        }
      }
      sealed.assign(client.outgoing().begin(), client.outgoing().end());
      client.ConsumeOutgoing(sealed.size());
      record_bytes = sealed.size() / kOpenBatchRecords;
      next = 0;
      state.ResumeTiming();
    }
    // Every record has the same size: a full payload with a fixed overhead.
    if (Status s = server.Feed({sealed.data() + next, record_bytes}); !s.ok()) {
      return state.SkipWithError(s.ToString().c_str());
    }
    next += record_bytes;
    Result<size_t> n = server.Read(opened);
    if (!n.ok() || *n != kRecordPlainBytes) {
      return state.SkipWithError(n.ok() ? "a read did not return one whole record"
                                        : n.status().ToString().c_str());
    }
    benchmark::DoNotOptimize(opened.data());
  }
  if (std::memcmp(opened.data(), plain.data(), plain.size()) != 0) {
    return state.SkipWithError("the opened record differs from the sealed one");
  }
  state.SetLabel(server.cipher_suite());
  SetRecordCounters(state, record_bytes);
}

// The suite's AEAD alone through mbedTLS's cipher layer, keyed once. Owns the cipher
// context: neither copyable nor movable, freed by the destructor.
class RawAead {
 public:
  explicit RawAead(const Suite& suite) {
    mbedtls_cipher_init(&ctx_);
    const std::vector<std::byte> key = Pattern(suite.key_bits / 8);
    rc_ = mbedtls_cipher_setup(&ctx_, mbedtls_cipher_info_from_type(suite.aead));
    if (rc_ == 0) {
      rc_ = mbedtls_cipher_setkey(&ctx_, U8(key.data()), static_cast<int>(suite.key_bits),
                                  MBEDTLS_ENCRYPT);
    }
  }
  ~RawAead() { mbedtls_cipher_free(&ctx_); }
  RawAead(const RawAead&) = delete;
  RawAead& operator=(const RawAead&) = delete;

  int setup_rc() const { return rc_; }
  int Encrypt(std::span<const std::byte> nonce, std::span<const std::byte> aad,
              std::span<const std::byte> plain, std::span<std::byte> sealed) {
    size_t n = 0;
    return mbedtls_cipher_auth_encrypt_ext(&ctx_, U8(nonce.data()), nonce.size(), U8(aad.data()),
                                           aad.size(), U8(plain.data()), plain.size(),
                                           U8(sealed.data()), sealed.size(), &n, kAeadTagBytes);
  }
  int Decrypt(std::span<const std::byte> nonce, std::span<const std::byte> aad,
              std::span<const std::byte> sealed, std::span<std::byte> plain) {
    size_t n = 0;
    return mbedtls_cipher_auth_decrypt_ext(&ctx_, U8(nonce.data()), nonce.size(), U8(aad.data()),
                                           aad.size(), U8(sealed.data()), sealed.size(),
                                           U8(plain.data()), plain.size(), &n, kAeadTagBytes);
  }

 private:
  mbedtls_cipher_context_t ctx_;
  int rc_ = 0;
};

void RawSeal(benchmark::State& state, const Suite* suite) {
  RawAead aead(*suite);
  if (aead.setup_rc() != 0)
    return state.SkipWithError(MbedtlsFailure("cipher setup", aead.setup_rc()).c_str());
  const std::vector<std::byte> plain = Pattern(kRecordPlainBytes);
  std::vector<std::byte> sealed(kRecordPlainBytes + kAeadTagBytes);
  std::array<std::byte, kAeadNonceBytes> nonce{};
  std::array<std::byte, kTls12AadBytes> aad{};
  uint64_t seq = 0;
  for (auto _ : state) {
    ++seq;  // a fresh nonce per record, as the record layer derives one from the sequence
    std::memcpy(nonce.data() + nonce.size() - sizeof seq, &seq, sizeof seq);
    if (int rc = aead.Encrypt(nonce, aad, plain, sealed); rc != 0) {
      return state.SkipWithError(MbedtlsFailure("mbedtls_cipher_auth_encrypt_ext", rc).c_str());
    }
    benchmark::DoNotOptimize(sealed.data());
  }
  SetRecordCounters(state, sealed.size());
}

void RawOpen(benchmark::State& state, const Suite* suite) {
  RawAead aead(*suite);
  if (aead.setup_rc() != 0)
    return state.SkipWithError(MbedtlsFailure("cipher setup", aead.setup_rc()).c_str());
  const std::vector<std::byte> plain = Pattern(kRecordPlainBytes);
  std::vector<std::byte> sealed(kRecordPlainBytes + kAeadTagBytes);
  std::vector<std::byte> opened(kRecordPlainBytes);
  const std::array<std::byte, kAeadNonceBytes> nonce{};
  const std::array<std::byte, kTls12AadBytes> aad{};
  if (int rc = aead.Encrypt(nonce, aad, plain, sealed); rc != 0) {
    return state.SkipWithError(MbedtlsFailure("mbedtls_cipher_auth_encrypt_ext", rc).c_str());
  }
  // Opening the same record again and again is as much work as opening a new one each
  // time: nonces only matter to the sealing side.
  for (auto _ : state) {
    if (int rc = aead.Decrypt(nonce, aad, sealed, opened); rc != 0) {
      return state.SkipWithError(MbedtlsFailure("mbedtls_cipher_auth_decrypt_ext", rc).c_str());
    }
    benchmark::DoNotOptimize(opened.data());
  }
  SetRecordCounters(state, sealed.size());
}

void RegisterAll() {
  using benchmark::RegisterBenchmark;
  const std::string session = "hasync_session/" + std::string(kChaCha.name);
  RegisterBenchmark(("seal/" + session).c_str(), Seal<TlsSession>, &SessionPair, &kChaCha);
  RegisterBenchmark(("open/" + session).c_str(), Open<TlsSession>, &SessionPair, &kChaCha);
  for (const Suite* suite : {&kChaCha, &kAesGcm}) {
    const std::string pinned = "mbedtls_ssl/" + std::string(suite->name);
    const std::string raw = "raw_aead/" + std::string(suite->name);
    RegisterBenchmark(("seal/" + pinned).c_str(), Seal<PinnedTls>, &PinnedPair, suite);
    RegisterBenchmark(("open/" + pinned).c_str(), Open<PinnedTls>, &PinnedPair, suite);
    RegisterBenchmark(("seal/" + raw).c_str(), RawSeal, suite);
    RegisterBenchmark(("open/" + raw).c_str(), RawOpen, suite);
  }
}

}  // namespace
}  // namespace hasync::wire

int main(int argc, char** argv) {
  hasync::wire::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
