#include "wire/tls_session.h"

#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>

#include <cstdio>
#include <cstring>

namespace hasync::wire {

namespace {
// ECDHE-PSK + ChaCha20-Poly1305 first (fastest on CPUs without AES-NI and a cheap
// elliptic-curve exchange); DHE-PSK + AES-128-GCM as the AES alternative. Both AEAD,
// both ephemeral. Zero-terminated, as mbedTLS wants it.
const int kCipherSuites[] = {
    MBEDTLS_TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_DHE_PSK_WITH_AES_128_GCM_SHA256,
    0,
};

std::string MbedtlsError(int rc) {
  char buf[160];
  mbedtls_strerror(rc, buf, sizeof buf);
  return std::string(buf) + " (-0x" + [&] {
    char hex[16];
    std::snprintf(hex, sizeof hex, "%04x", static_cast<unsigned>(-rc));
    return std::string(hex);
  }() + ")";
}
}  // namespace

struct TlsSession::Impl {
  mbedtls_ssl_config conf;
  mbedtls_ssl_context ssl;
  Impl() {
    mbedtls_ssl_config_init(&conf);
    mbedtls_ssl_init(&ssl);
  }
  ~Impl() {
    mbedtls_ssl_free(&ssl);
    mbedtls_ssl_config_free(&conf);
  }
};

TlsSession::TlsSession() : impl_(std::make_unique<Impl>()) {}
TlsSession::~TlsSession() = default;

Result<std::unique_ptr<TlsSession>> TlsSession::Create(TlsRole role, std::span<const std::byte> psk,
                                                       RngFn rng, void* rng_ctx) {
  if (psk.size() < kPskMinBytes || psk.size() > kPskMaxBytes) {
    return InvalidArgument("pre-shared key of " + std::to_string(psk.size()) + " bytes not in [" +
                           std::to_string(kPskMinBytes) + ", " + std::to_string(kPskMaxBytes) +
                           "]");
  }
  HASYNC_ASSERT(rng != nullptr);
  std::unique_ptr<TlsSession> s(new TlsSession());
  mbedtls_ssl_config& conf = s->impl_->conf;
  int rc = mbedtls_ssl_config_defaults(
      &conf, role == TlsRole::kClient ? MBEDTLS_SSL_IS_CLIENT : MBEDTLS_SSL_IS_SERVER,
      MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc != 0) return Internal("mbedtls_ssl_config_defaults: " + MbedtlsError(rc));
  mbedtls_ssl_conf_min_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_ciphersuites(&conf, kCipherSuites);
  mbedtls_ssl_conf_rng(&conf, rng, rng_ctx);
  mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);  // no certificates: PSK only
  mbedtls_ssl_conf_renegotiation(&conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
  mbedtls_ssl_conf_session_tickets(&conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
  rc = mbedtls_ssl_conf_psk(&conf, reinterpret_cast<const unsigned char*>(psk.data()), psk.size(),
                            reinterpret_cast<const unsigned char*>(kPskIdentity.data()),
                            kPskIdentity.size());
  if (rc != 0) return Internal("mbedtls_ssl_conf_psk: " + MbedtlsError(rc));
  if (role == TlsRole::kServer) {
    // DHE-PSK needs group parameters on the server: the RFC 3526 2048-bit MODP group.
    static const unsigned char kP[] = MBEDTLS_DHM_RFC3526_MODP_2048_P_BIN;
    static const unsigned char kG[] = MBEDTLS_DHM_RFC3526_MODP_2048_G_BIN;
    rc = mbedtls_ssl_conf_dh_param_bin(&conf, kP, sizeof kP, kG, sizeof kG);
    if (rc != 0) return Internal("mbedtls_ssl_conf_dh_param_bin: " + MbedtlsError(rc));
  }
  rc = mbedtls_ssl_setup(&s->impl_->ssl, &conf);
  if (rc != 0) return Internal("mbedtls_ssl_setup: " + MbedtlsError(rc));
  mbedtls_ssl_set_bio(&s->impl_->ssl, s.get(), &TlsSession::SendCb, &TlsSession::RecvCb, nullptr);
  return s;
}

int TlsSession::SendCb(void* self, const unsigned char* buf, size_t len) {
  auto* s = static_cast<TlsSession*>(self);
  if (s->out_.size() + len > kTlsOutBufferMax) return MBEDTLS_ERR_SSL_WANT_WRITE;
  s->out_.Append({reinterpret_cast<const std::byte*>(buf), len});
  return static_cast<int>(len);
}

int TlsSession::RecvCb(void* self, unsigned char* buf, size_t len) {
  auto* s = static_cast<TlsSession*>(self);
  size_t avail = s->in_.size() - s->in_start_;
  if (avail == 0) {
    // Bytes fed earlier come first; then those lent now, read in place.
    if (s->lent_.empty()) return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = std::min(s->lent_.size(), len);
    std::memcpy(buf, s->lent_.data(), n);
    s->lent_ = s->lent_.subspan(n);
    return static_cast<int>(n);
  }
  size_t n = std::min(avail, len);
  std::memcpy(buf, s->in_.data() + s->in_start_, n);
  s->in_start_ += n;
  if (s->in_start_ == s->in_.size()) {
    s->in_.clear();
    s->in_start_ = 0;
  }
  return static_cast<int>(n);
}

Status TlsSession::Lend(std::span<const std::byte> ciphertext) {
  HASYNC_ASSERT(!lending_);
  if (pending_input() + ciphertext.size() > kTlsInBufferMax) {
    return Status(Code::kResourceExhausted, "TLS input buffer would exceed kTlsInBufferMax " +
                                                std::to_string(kTlsInBufferMax));
  }
  lending_ = true;
  lent_ = ciphertext;
  return Status::Ok();
}

void TlsSession::EndLend() {
  HASYNC_ASSERT(lending_);
  std::span<const std::byte> rest = lent_;
  lent_ = {};
  lending_ = false;
  // Within the bound: Lend checked it for all of them, and reading only shrank in_.
  if (!rest.empty()) {
    Status s = Feed(rest);
    HASYNC_ASSERT(s.ok());
  }
}

Status TlsSession::Feed(std::span<const std::byte> ciphertext) {
  HASYNC_ASSERT(!lending_);
  if (pending_input() + ciphertext.size() > kTlsInBufferMax) {
    return Status(Code::kResourceExhausted, "TLS input buffer would exceed kTlsInBufferMax " +
                                                std::to_string(kTlsInBufferMax));
  }
  if (in_start_ > 0 && in_start_ * 2 > in_.size()) {
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(in_start_));
    in_start_ = 0;
  }
  in_.insert(in_.end(), ciphertext.begin(), ciphertext.end());
  return Status::Ok();
}

Status TlsSession::MapError(int rc, std::string_view what) const {
  std::string msg = std::string(what) + ": " + MbedtlsError(rc);
  switch (rc) {
    case MBEDTLS_ERR_SSL_WANT_READ:
      return Unavailable(std::string(what) + " needs more input");
    case MBEDTLS_ERR_SSL_WANT_WRITE:
      return Status(Code::kResourceExhausted, std::string(what) + ": TLS output buffer full");
    case MBEDTLS_ERR_SSL_BAD_HS_FINISHED:
    case MBEDTLS_ERR_SSL_UNKNOWN_IDENTITY:
    case MBEDTLS_ERR_SSL_INVALID_MAC:
      return PermissionDenied(msg + " — the peer does not hold the same sync key");
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
      return PermissionDenied(msg + " — the peer refused the session (different sync key?)");
    case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
      return Unavailable("peer closed the TLS session");
    default:
      return Status(Code::kInvalidArgument, msg);
  }
}

Status TlsSession::Handshake() {
  if (established_) return Status::Ok();
  if (!failed_.ok()) return failed_;
  int rc = mbedtls_ssl_handshake(&impl_->ssl);
  if (rc == 0) {
    established_ = true;
    return Status::Ok();
  }
  Status s = MapError(rc, "TLS handshake");
  if (s.code() != Code::kUnavailable) failed_ = s;  // a failed handshake stays failed
  return s;
}

std::string TlsSession::cipher_suite() const {
  const char* name = mbedtls_ssl_get_ciphersuite(&impl_->ssl);
  return name != nullptr ? name : "";
}

Status TlsSession::Write(std::span<const std::byte> plaintext) {
  HASYNC_ASSERT(established_);
  size_t done = 0;
  while (done < plaintext.size()) {
    int rc = mbedtls_ssl_write(&impl_->ssl,
                               reinterpret_cast<const unsigned char*>(plaintext.data() + done),
                               plaintext.size() - done);
    if (rc < 0) return MapError(rc, "TLS write");
    done += static_cast<size_t>(rc);
  }
  return Status::Ok();
}

Result<size_t> TlsSession::Read(std::span<std::byte> out) {
  HASYNC_ASSERT(established_);
  int rc = mbedtls_ssl_read(&impl_->ssl, reinterpret_cast<unsigned char*>(out.data()), out.size());
  if (rc > 0) return static_cast<size_t>(rc);
  if (rc == MBEDTLS_ERR_SSL_WANT_READ) return size_t{0};
  if (rc == 0) return Unavailable("peer closed the TLS session");
  return MapError(rc, "TLS read");
}

Status TlsSession::Close() {
  int rc = mbedtls_ssl_close_notify(&impl_->ssl);
  if (rc < 0 && rc != MBEDTLS_ERR_SSL_WANT_WRITE) return MapError(rc, "TLS close");
  return Status::Ok();
}

}  // namespace hasync::wire
