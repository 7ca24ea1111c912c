#include "engine/net/connection.h"

#include <gtest/gtest.h>

#include "engine/net/rng.h"

namespace hasync::engine {
namespace {

std::vector<std::byte> Key(uint8_t fill) { return std::vector<std::byte>(32, std::byte{fill}); }

wire::Hello HelloFor(std::string name, wire::Role role) {
  wire::Hello h;
  h.role = role;
  h.node_id = name == "mu01" ? 1 : 2;
  h.session_id = 77;
  h.node_name = std::move(name);
  return h;
}

void Move(Connection& from, Connection& to) {
  auto out = from.outgoing();
  std::vector<std::byte> copy(out.begin(), out.end());
  from.Consume(out.size());
  if (!copy.empty()) to.Feed(copy).IgnoreError();  // errors are read from failed()
}

// Shuttles bytes until neither side has anything to send (bounded).
void Exchange(Connection& a, Connection& b) {
  for (int i = 0; i < 50 && (a.outgoing_size() > 0 || b.outgoing_size() > 0); ++i) {
    Move(a, b);
    Move(b, a);
  }
}

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto rng = Rng::Create();
    ASSERT_TRUE(rng.ok());
    rng_ = std::move(rng).value();
  }
  std::unique_ptr<Connection> Make(wire::TlsRole role, uint8_t key, wire::Hello hello,
                                   ChannelMode mode = ChannelMode::kTls) {
    auto c =
        Connection::Create(role, Key(key), Rng::Generate, rng_->ctx(), std::move(hello), 5, mode);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  // A client (mu01, primary) and a server (mu02, standby) on key 9, handshake and HELLOs
  // done; both open when it returns without a fatal failure.
  void OpenPair(std::unique_ptr<Connection>& client, std::unique_ptr<Connection>& server,
                ChannelMode mode = ChannelMode::kTls) {
    client = Make(wire::TlsRole::kClient, 9, HelloFor("mu01", wire::Role::kPrimary), mode);
    server = Make(wire::TlsRole::kServer, 9, HelloFor("mu02", wire::Role::kStandby), mode);
    ASSERT_TRUE(client && server);
    Exchange(*client, *server);
    ASSERT_TRUE(client->Next().ok());
    ASSERT_TRUE(server->Next().ok());
    ASSERT_TRUE(client->open() && server->open());
  }
  std::unique_ptr<Rng> rng_;
};

TEST_F(ConnectionTest, HandshakeThenHelloThenFramesFlow) {
  std::unique_ptr<Connection> client, server;
  ASSERT_NO_FATAL_FAILURE(OpenPair(client, server));
  EXPECT_EQ(server->peer_hello().node_name, "mu01");
  EXPECT_EQ(client->peer_hello().role, wire::Role::kStandby);
  EXPECT_EQ(server->peer_epoch(), 5u);

  ASSERT_TRUE(client->Send(5, 0, wire::Ping{42, 1000}).ok());
  ASSERT_TRUE(client->Send(5, 1, wire::Unlink{"0/jobs/old"}).ok());
  Exchange(*client, *server);
  auto f1 = server->Next();
  ASSERT_TRUE(f1.ok() && f1->has_value());
  EXPECT_EQ(std::get<wire::Ping>((*f1)->message).token, 42u);
  auto f2 = server->Next();
  ASSERT_TRUE(f2.ok() && f2->has_value());
  EXPECT_EQ((*f2)->seq, 1u);
  EXPECT_EQ(std::get<wire::Unlink>((*f2)->message).path, "0/jobs/old");
  auto none = server->Next();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

// The last frames before a close_notify, read in one piece with it (a slow reader):
// each is handed out, and only then the close. Before, the close failed the connection
// while it decoded, and a DEMOTED sent just before it was lost (switchover seed 9992).
TEST_F(ConnectionTest, FramesReadTogetherWithThePeersCloseAreHandedOutBeforeTheClose) {
  std::unique_ptr<Connection> client, server;
  ASSERT_NO_FATAL_FAILURE(OpenPair(client, server));

  ASSERT_TRUE(client->Send(5, 7, wire::Unlink{"0/jobs/old"}).ok());
  ASSERT_TRUE(client->Send(5, 0, wire::Demoted{wire::RoleChangeReason::kSwitchover, true, 7}).ok());
  client->Close();
  auto out = client->outgoing();
  std::vector<std::byte> all(out.begin(), out.end());  // frames and close_notify at once
  client->Consume(all.size());
  ASSERT_TRUE(server->Feed(all).ok()) << "the close is reported by Next, after the frames";
  auto f1 = server->Next();
  ASSERT_TRUE(f1.ok() && f1->has_value()) << f1.status().ToString();
  EXPECT_EQ(std::get<wire::Unlink>((*f1)->message).path, "0/jobs/old");
  auto f2 = server->Next();
  ASSERT_TRUE(f2.ok() && f2->has_value()) << f2.status().ToString();
  ASSERT_TRUE(std::holds_alternative<wire::Demoted>((*f2)->message));
  EXPECT_EQ(std::get<wire::Demoted>((*f2)->message).last_seq, 7u);
  auto closed = server->Next();
  ASSERT_FALSE(closed.ok());
  EXPECT_EQ(closed.status().code(), Code::kUnavailable) << closed.status().ToString();
  EXPECT_FALSE(server->failed().ok());
  EXPECT_FALSE(server->Next().ok()) << "the close stays reported";
  EXPECT_FALSE(server->Feed(all).ok()) << "nothing is taken after the close";
}

// The asynchronous send takes the whole outbox (after a partial send) into its own
// buffer; the peer must see the same byte stream, and later frames must follow it.
TEST_F(ConnectionTest, TakeOutgoingHandsOverTheStreamInOrderInBothModes) {
  for (ChannelMode mode : {ChannelMode::kTls, ChannelMode::kPlain}) {
    SCOPED_TRACE(mode == ChannelMode::kTls ? "tls" : "plain");
    auto client = Make(wire::TlsRole::kClient, 6, HelloFor("mu01", wire::Role::kPrimary), mode);
    auto server = Make(wire::TlsRole::kServer, 6, HelloFor("mu02", wire::Role::kStandby), mode);
    Exchange(*client, *server);
    ASSERT_TRUE(client->Next().ok());
    ASSERT_TRUE(server->Next().ok());
    ASSERT_TRUE(client->open() && server->open());

    std::vector<std::byte> taken(3, std::byte{0x55});  // old contents must be replaced
    for (uint64_t round = 0; round < 3; ++round) {
      for (uint64_t i = 0; i < 4; ++i) {
        ASSERT_TRUE(
            client->Send(5, round * 10 + i + 1, wire::Unlink{"0/f" + std::to_string(i)}).ok());
      }
      // Part of the outbox went out the ordinary way first (a short send).
      auto out = client->outgoing();
      std::vector<std::byte> head(out.begin(), out.begin() + 7);
      client->Consume(head.size());
      client->TakeOutgoing(taken);
      EXPECT_EQ(client->outgoing_size(), 0u);
      ASSERT_TRUE(server->Feed(head).ok());
      ASSERT_TRUE(server->Feed(taken).ok());
      for (uint64_t i = 0; i < 4; ++i) {
        auto f = server->Next();
        ASSERT_TRUE(f.ok() && f->has_value()) << f.status().ToString();
        EXPECT_EQ((*f)->seq, round * 10 + i + 1);
        EXPECT_EQ(std::get<wire::Unlink>((*f)->message).path, "0/f" + std::to_string(i));
      }
      auto none = server->Next();
      ASSERT_TRUE(none.ok());
      EXPECT_FALSE(none->has_value());
      // Idle now: freeing the buffers must not disturb the next round.
      client->ReleaseIdleBuffer(0);
    }
  }
}

TEST_F(ConnectionTest, WrongKeyNeverOpensAndNoFrameIsParsed) {
  auto client = Make(wire::TlsRole::kClient, 1, HelloFor("mu01", wire::Role::kPrimary));
  auto server = Make(wire::TlsRole::kServer, 2, HelloFor("mu02", wire::Role::kStandby));
  Exchange(*client, *server);
  auto next = server->Next();
  EXPECT_FALSE(next.ok());
  EXPECT_EQ(server->failed().code(), Code::kPermissionDenied) << server->failed().ToString();
  EXPECT_FALSE(server->open());
  // Told apart from other failures: the standby holds its promotion on it (FAILOVER.md).
  EXPECT_TRUE(server->key_refused());
}

TEST_F(ConnectionTest, FirstFrameOtherThanHelloIsRefused) {
  // A peer with the right key that skips HELLO: drive a raw TLS session by hand.
  auto server = Make(wire::TlsRole::kServer, 3, HelloFor("mu02", wire::Role::kStandby));
  auto raw = wire::TlsSession::Create(wire::TlsRole::kClient, Key(3), Rng::Generate, rng_->ctx());
  ASSERT_TRUE(raw.ok());
  wire::TlsSession& tls = **raw;
  for (int i = 0; i < 20 && !tls.established(); ++i) {
    tls.Handshake().IgnoreError();
    std::vector<std::byte> out(tls.outgoing().begin(), tls.outgoing().end());
    tls.ConsumeOutgoing(out.size());
    server->Feed(out).IgnoreError();
    std::vector<std::byte> back(server->outgoing().begin(), server->outgoing().end());
    server->Consume(back.size());
    ASSERT_TRUE(tls.Feed(back).ok());
  }
  ASSERT_TRUE(tls.established());
  ASSERT_TRUE(tls.Write(wire::EncodeFrame(wire::Frame{5, 1, wire::Unlink{"0/x"}})).ok());
  std::vector<std::byte> out(tls.outgoing().begin(), tls.outgoing().end());
  server->Feed(out).IgnoreError();
  auto next = server->Next();
  EXPECT_FALSE(next.ok());
  EXPECT_NE(next.status().message().find("not HELLO"), std::string::npos)
      << next.status().ToString();
  EXPECT_FALSE(server->key_refused()) << "the key matched; the protocol was wrong";
}

// Bytes that are not TLS at all are a protocol failure, not a key mismatch: junk from
// the peer's address must not pass for a live primary keyed differently.
TEST_F(ConnectionTest, JunkIsNotAKeyMismatch) {
  for (ChannelMode mode : {ChannelMode::kTls, ChannelMode::kPlain}) {
    auto server = Make(wire::TlsRole::kServer, 4, HelloFor("mu02", wire::Role::kStandby), mode);
    std::vector<std::byte> junk(64, std::byte{0x5a});
    server->Feed(junk).IgnoreError();
    (void)server->Next();
    EXPECT_FALSE(server->failed().ok());
    EXPECT_FALSE(server->key_refused()) << server->failed().ToString();
  }
}

TEST_F(ConnectionTest, PlainModeAuthenticatesThenCarriesFrames) {
  auto client =
      Make(wire::TlsRole::kClient, 4, HelloFor("mu01", wire::Role::kPrimary), ChannelMode::kPlain);
  auto server =
      Make(wire::TlsRole::kServer, 4, HelloFor("mu02", wire::Role::kStandby), ChannelMode::kPlain);
  Exchange(*client, *server);
  ASSERT_TRUE(client->Next().ok());
  ASSERT_TRUE(server->Next().ok());
  ASSERT_TRUE(client->open() && server->open())
      << client->failed().ToString() << server->failed().ToString();
  EXPECT_EQ(server->peer_hello().node_name, "mu01");
  ASSERT_TRUE(client->Send(5, 3, wire::Unlink{"0/a"}).ok());
  Exchange(*client, *server);
  auto f = server->Next();
  ASSERT_TRUE(f.ok() && f->has_value());
  EXPECT_EQ((*f)->seq, 3u);
}

TEST_F(ConnectionTest, PlainModeWrongKeyIsRefusedBeforeAnyOtherFrame) {
  auto client =
      Make(wire::TlsRole::kClient, 4, HelloFor("mu01", wire::Role::kPrimary), ChannelMode::kPlain);
  auto server =
      Make(wire::TlsRole::kServer, 5, HelloFor("mu02", wire::Role::kStandby), ChannelMode::kPlain);
  Exchange(*client, *server);
  EXPECT_FALSE(server->Next().ok());
  EXPECT_EQ(server->failed().code(), Code::kPermissionDenied) << server->failed().ToString();
  EXPECT_FALSE(server->open());
  EXPECT_FALSE(client->open());
  EXPECT_TRUE(server->key_refused());
}

TEST_F(ConnectionTest, PlainModeFrameBeforeAuthenticationIsRefused) {
  auto server =
      Make(wire::TlsRole::kServer, 4, HelloFor("mu02", wire::Role::kStandby), ChannelMode::kPlain);
  std::vector<std::byte> hostile = wire::EncodeFrame(wire::Frame{1, 1, wire::Unlink{"0/x"}});
  EXPECT_FALSE(server->Feed(hostile).ok());
  EXPECT_NE(server->failed().message().find("before plain-mode authentication"), std::string::npos)
      << server->failed().ToString();
}

// A RESPONSE reflected back to its author must not verify: the MAC input names the side.
TEST_F(ConnectionTest, PlainModeReflectedResponseDoesNotVerify) {
  auto server =
      Make(wire::TlsRole::kServer, 4, HelloFor("mu02", wire::Role::kStandby), ChannelMode::kPlain);
  // Read the server's CHALLENGE, answer with that same nonce as our challenge, then
  // send back the server's own RESPONSE.
  auto out = server->outgoing();
  auto ch = wire::DecodeFrame(std::vector<std::byte>(out.begin(), out.end()));
  ASSERT_TRUE(ch.ok());
  server->Consume(out.size());
  ASSERT_TRUE(server->Feed(wire::EncodeFrame(ch.value())).ok());  // its own nonce as ours
  auto resp_bytes = server->outgoing();
  auto resp = wire::DecodeFrame(std::vector<std::byte>(resp_bytes.begin(), resp_bytes.end()));
  ASSERT_TRUE(resp.ok());
  ASSERT_TRUE(std::holds_alternative<wire::Response>(resp->message));
  EXPECT_FALSE(server->Feed(wire::EncodeFrame(resp.value())).ok());
  EXPECT_EQ(server->failed().code(), Code::kPermissionDenied);
}

}  // namespace
}  // namespace hasync::engine
