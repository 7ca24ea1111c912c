#include "wire/tls_session.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace hasync::wire {
namespace {

// A DRBG seeded from the kernel, as engine/ provides one in production.
class TestRng {
 public:
  TestRng() {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&drbg_);
    EXPECT_EQ(mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, nullptr, 0), 0);
  }
  ~TestRng() {
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
  }
  RngFn fn() const { return mbedtls_ctr_drbg_random; }
  void* ctx() { return &drbg_; }

 private:
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
};

std::vector<std::byte> Key(uint8_t fill, size_t n = 32) {
  return std::vector<std::byte>(n, std::byte{fill});
}

// Moves every pending byte between the two sessions.
void Pump(TlsSession& a, TlsSession& b) {
  auto move = [](TlsSession& from, TlsSession& to) {
    auto out = from.outgoing();
    ASSERT_TRUE(to.Feed(out).ok());
    from.ConsumeOutgoing(out.size());
  };
  move(a, b);
  move(b, a);
}

// Runs both handshakes to the end (bounded); returns the two final statuses.
std::pair<Status, Status> HandshakeBoth(TlsSession& client, TlsSession& server) {
  Status c, s;
  for (int round = 0; round < 20; ++round) {
    c = client.Handshake();
    s = server.Handshake();
    Pump(client, server);
    bool c_done = c.ok() || c.code() != Code::kUnavailable;
    bool s_done = s.ok() || s.code() != Code::kUnavailable;
    if (c_done && s_done) break;
  }
  return {c, s};
}

TEST(TlsSession, SameKeyHandshakesWithForwardSecretAeadSuite) {
  TestRng rng;
  auto client = TlsSession::Create(TlsRole::kClient, Key(7), rng.fn(), rng.ctx());
  auto server = TlsSession::Create(TlsRole::kServer, Key(7), rng.fn(), rng.ctx());
  ASSERT_TRUE(client.ok() && server.ok());
  auto [c, s] = HandshakeBoth(**client, **server);
  ASSERT_TRUE(c.ok()) << c.ToString();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ((*client)->cipher_suite(), "TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256");
}

TEST(TlsSession, ApplicationBytesRoundTripBothWays) {
  TestRng rng;
  auto client = TlsSession::Create(TlsRole::kClient, Key(1), rng.fn(), rng.ctx());
  auto server = TlsSession::Create(TlsRole::kServer, Key(1), rng.fn(), rng.ctx());
  ASSERT_TRUE(client.ok() && server.ok());
  auto [c, s] = HandshakeBoth(**client, **server);
  ASSERT_TRUE(c.ok() && s.ok());
  std::vector<std::byte> big(100'000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = std::byte(i * 31);
  ASSERT_TRUE((*client)->Write(big).ok());
  Pump(**client, **server);
  std::vector<std::byte> got;
  std::vector<std::byte> buf(16384);
  for (int i = 0; i < 100 && got.size() < big.size(); ++i) {
    auto n = (*server)->Read(buf);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) break;
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
  }
  EXPECT_EQ(got, big);
}

TEST(TlsSession, DifferentKeyIsRefusedAndNoApplicationByteIsProduced) {
  TestRng rng;
  auto client = TlsSession::Create(TlsRole::kClient, Key(1), rng.fn(), rng.ctx());
  auto server = TlsSession::Create(TlsRole::kServer, Key(2), rng.fn(), rng.ctx());
  ASSERT_TRUE(client.ok() && server.ok());
  auto [c, s] = HandshakeBoth(**client, **server);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.ToString() << " / client: " << c.ToString();
  EXPECT_FALSE((*server)->established());
  EXPECT_FALSE(c.ok());
}

TEST(TlsSession, ShortKeyIsRejected) {
  TestRng rng;
  auto s = TlsSession::Create(TlsRole::kServer, Key(1, 8), rng.fn(), rng.ctx());
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
  EXPECT_NE(s.status().message().find("not in [16, 64]"), std::string::npos);
}

TEST(TlsSession, GarbageInsteadOfHandshakeFails) {
  TestRng rng;
  auto server = TlsSession::Create(TlsRole::kServer, Key(1), rng.fn(), rng.ctx());
  ASSERT_TRUE(server.ok());
  std::vector<std::byte> junk(64, std::byte{'G'});  // "GGGG…" e.g. an HTTP client
  ASSERT_TRUE((*server)->Feed(junk).ok());
  Status s = (*server)->Handshake();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.code(), Code::kUnavailable) << s.ToString();
}

TEST(TlsSession, InputBeyondBoundIsRefused) {
  TestRng rng;
  auto server = TlsSession::Create(TlsRole::kServer, Key(1), rng.fn(), rng.ctx());
  ASSERT_TRUE(server.ok());
  std::vector<std::byte> big(kTlsInBufferMax + 1);
  EXPECT_EQ((*server)->Feed(big).code(), Code::kResourceExhausted);
}

// Lend: records are read where the caller's bytes lie, bytes fed before come first, and
// a partial record left at EndLend is kept and completed by the next input.
TEST(TlsSession, LentBytesAreReadInOrderAndTheRestIsKept) {
  TestRng rng;
  auto client = TlsSession::Create(TlsRole::kClient, Key(3), rng.fn(), rng.ctx());
  auto server = TlsSession::Create(TlsRole::kServer, Key(3), rng.fn(), rng.ctx());
  ASSERT_TRUE(client.ok() && server.ok());
  auto [c, s] = HandshakeBoth(**client, **server);
  ASSERT_TRUE(c.ok() && s.ok());
  std::vector<std::byte> big(100'000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = std::byte(i * 7 + 1);
  ASSERT_TRUE((*client)->Write(big).ok());
  std::vector<std::byte> wire((*client)->outgoing().begin(), (*client)->outgoing().end());
  (*client)->ConsumeOutgoing(wire.size());
  // 10 bytes fed the ordinary way, then lent pieces cut mid-record.
  ASSERT_TRUE((*server)->Feed(std::span<const std::byte>(wire).first(10)).ok());
  std::vector<std::byte> got;
  std::vector<std::byte> buf(kTlsRecordPlainMax);
  for (size_t at = 10; at < wire.size();) {
    size_t n = std::min<size_t>(23'456, wire.size() - at);
    std::vector<std::byte> piece(wire.begin() + static_cast<std::ptrdiff_t>(at),
                                 wire.begin() + static_cast<std::ptrdiff_t>(at + n));
    ASSERT_TRUE((*server)->Lend(piece).ok());
    EXPECT_GE((*server)->pending_input(), n);
    for (;;) {
      auto r = (*server)->Read(buf);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      if (*r == 0) break;
      got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*r));
    }
    (*server)->EndLend();
    std::fill(piece.begin(), piece.end(), std::byte{0xEE});  // the session kept its own copy
    at += n;
  }
  EXPECT_EQ(got, big);
  EXPECT_EQ((*server)->pending_input(), 0u);
}

TEST(TlsSession, LendBeyondBoundIsRefused) {
  TestRng rng;
  auto server = TlsSession::Create(TlsRole::kServer, Key(1), rng.fn(), rng.ctx());
  ASSERT_TRUE(server.ok());
  std::vector<std::byte> some(1000);
  ASSERT_TRUE((*server)->Feed(some).ok());
  std::vector<std::byte> big(kTlsInBufferMax - 999);
  EXPECT_EQ((*server)->Lend(big).code(), Code::kResourceExhausted);
  EXPECT_EQ((*server)->pending_input(), 1000u);  // nothing was taken
}

}  // namespace
}  // namespace hasync::wire
