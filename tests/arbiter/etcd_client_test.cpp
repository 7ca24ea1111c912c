// engine/arbiter/etcd_client: the JSON gateway's wire format (no etcd needed), then every
// call against a real three-member etcd 3.4 cluster started on loopback ports by the test
// and stopped by pid: leases, the leader key's create transaction, the epoch's
// compare-and-swap, expiry, endpoint failover, and the loss of quorum. Skips (loudly)
// when etcd is not installed (scripts/install-deps.sh installs etcd-server).
#include "engine/arbiter/etcd_client.h"
#include "tests/arbiter/etcd_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hasync::engine::arbiter {
namespace {

using ::testing::HasSubstr;
using testing::RealEtcd;

// ---- the wire format ---------------------------------------------------------------------

TEST(EtcdWire, Base64RoundTripsAndRejectsGarbage) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("/hasync/slurm/leader"), "L2hhc3luYy9zbHVybS9sZWFkZXI=");
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n < all.size(); n += 37) {
    Result<std::string> back = Base64Decode(Base64Encode(all.substr(0, n)));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, all.substr(0, n));
  }
  EXPECT_FALSE(Base64Decode("Zg=").ok());       // not a multiple of 4
  EXPECT_FALSE(Base64Decode("Z!==").ok());      // not the alphabet
  EXPECT_FALSE(Base64Decode("Zg==Zg==").ok());  // padding in the middle
  EXPECT_FALSE(Base64Decode("Z=g=").ok());
}

TEST(EtcdWire, TxnOfTheLeaderKeyEncodesEveryComparisonAndOperation) {
  Txn t;
  t.compare.push_back({"/p/leader", Compare::Target::kCreateRevision, Compare::Op::kEqual, 0, ""});
  t.compare.push_back({"/p/epoch", Compare::Target::kValue, Compare::Op::kEqual, 0, "7"});
  t.compare.push_back({"/p/epoch", Compare::Target::kModRevision, Compare::Op::kLess, 42, ""});
  t.success.push_back({TxnOp::Kind::kPut, "/p/leader", "mu02", 1234567890123456789});
  t.success.push_back({TxnOp::Kind::kPut, "/p/epoch", "8", 0});
  t.failure.push_back({TxnOp::Kind::kRange, "/p/leader", "", 0});
  t.failure.push_back({TxnOp::Kind::kDelete, "/p/x", "", 0});
  EXPECT_EQ(
      EncodeTxn(t),
      R"({"compare":[{"create_revision":"0","key":"L3AvbGVhZGVy","result":"EQUAL","target":"CREATE"},)"
      R"({"key":"L3AvZXBvY2g=","result":"EQUAL","target":"VALUE","value":"Nw=="},)"
      R"({"key":"L3AvZXBvY2g=","mod_revision":"42","result":"LESS","target":"MOD"}],)"
      R"("failure":[{"request_range":{"key":"L3AvbGVhZGVy"}},{"request_delete_range":{"key":"L3AveA=="}}],)"
      R"("success":[{"request_put":{"key":"L3AvbGVhZGVy","lease":"1234567890123456789","value":"bXUwMg=="}},)"
      R"({"request_put":{"key":"L3AvZXBvY2g=","value":"OA=="}}]})");
}

// Bodies as etcd 3.4's gateway writes them (captured from etcd 3.4.23).
TEST(EtcdWire, ParsesWhatTheGatewayAnswers) {
  Result<Lease> l = ParseLeaseGrant(
      R"({"header":{"cluster_id":"1","member_id":"2","revision":"1","raft_term":"2"},"ID":"4111120456964960261","TTL":"2"})");
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->id, 4111120456964960261);
  EXPECT_EQ(l->ttl_s, 2);

  Result<int64_t> ka = ParseKeepAlive(
      R"({"result":{"header":{"revision":"1"},"ID":"4111120456964960263","TTL":"5"}})"
      "\n");
  ASSERT_TRUE(ka.ok()) << ka.status().ToString();
  EXPECT_EQ(*ka, 5);
  // A lease etcd does not hold: the TTL field is absent (zero).
  Result<int64_t> gone = ParseKeepAlive(R"({"result":{"header":{"revision":"1"},"ID":"12345"}})");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), Code::kNotFound);
  EXPECT_EQ(ParseTimeToLive(R"({"header":{},"ID":"12345","TTL":"-1"})").status().code(),
            Code::kNotFound);
  EXPECT_FALSE(
      ParseKeepAlive(R"({"error":{"grpc_code":14,"message":"etcdserver: no leader"}})").ok());

  const std::string held =
      R"({"header":{"revision":"2"},"responses":[{"response_range":{"header":{"revision":"2"},)"
      R"("kvs":[{"key":"YQ==","create_revision":"2","mod_revision":"3","version":"1","value":"Yg==","lease":"99"}],"count":"1"}}]})";
  Txn t;
  t.failure.push_back({TxnOp::Kind::kRange, "a", "", 0});
  t.success.push_back({TxnOp::Kind::kPut, "a", "b", 0});
  Result<TxnResult> r = ParseTxn(held, t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->succeeded);  // "succeeded" absent: false
  EXPECT_EQ(r->revision, 2);
  ASSERT_EQ(r->ranges.size(), 1u);
  ASSERT_TRUE(r->ranges[0].has_value());
  EXPECT_EQ(r->ranges[0]->key, "a");
  EXPECT_EQ(r->ranges[0]->value, "b");
  EXPECT_EQ(r->ranges[0]->create_revision, 2);
  EXPECT_EQ(r->ranges[0]->mod_revision, 3);
  EXPECT_EQ(r->ranges[0]->lease, 99);
  Result<TxnResult> won = ParseTxn(
      R"({"header":{"revision":"2"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"2"}}}]})",
      t);
  ASSERT_TRUE(won.ok()) << won.status().ToString();
  EXPECT_TRUE(won->succeeded);
  // A response count that does not match the branch is an error, not a guess.
  EXPECT_THAT(ParseTxn(R"({"succeeded":true,"responses":[]})", t).status().message(),
              HasSubstr("0 responses for 1 operations"));

  Result<RangeResult> none = ParseRange(R"({"header":{"revision":"7"}})");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->revision, 7);
  EXPECT_FALSE(none->kv.has_value());
  EXPECT_FALSE(ParseRange("not json").ok());
  EXPECT_FALSE(ParseRange(R"({"header":{"revision":"x7"}})").ok());
  EXPECT_EQ(
      ErrorText(
          R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})"),
      "etcdserver: requested lease not found");
  EXPECT_EQ(ParseAuthenticate(R"({"header":{},"token":"abc.12"})").value(), "abc.12");
  EXPECT_FALSE(ParseAuthenticate(R"({"header":{}})").ok());
}

// ---- a real cluster ------------------------------------------------------------------------

// The leader-key protocol of docs/FAILOVER.md "The arbiter", step by step.
Txn Acquire(const std::string& me, int64_t lease, const std::string& epoch_now,
            const std::string& epoch_next) {
  Txn t;
  t.compare.push_back(
      {"/hasync/test/leader", Compare::Target::kCreateRevision, Compare::Op::kEqual, 0, ""});
  if (epoch_now.empty()) {
    t.compare.push_back(
        {"/hasync/test/epoch", Compare::Target::kCreateRevision, Compare::Op::kEqual, 0, ""});
  } else {
    t.compare.push_back(
        {"/hasync/test/epoch", Compare::Target::kValue, Compare::Op::kEqual, 0, epoch_now});
  }
  t.success.push_back({TxnOp::Kind::kPut, "/hasync/test/leader", me, lease});
  t.success.push_back({TxnOp::Kind::kPut, "/hasync/test/epoch", epoch_next, 0});
  t.failure.push_back({TxnOp::Kind::kRange, "/hasync/test/leader", "", 0});
  t.failure.push_back({TxnOp::Kind::kRange, "/hasync/test/epoch", "", 0});
  return t;
}

TEST_F(RealEtcd, OnlyOneNodeWinsTheLeaderKeyAndTheEpochMovesByCompareAndSwap) {
  auto a = EtcdClient::Create(cluster_->ArbiterConfig({0, 1, 2}), "").value();
  auto b = EtcdClient::Create(cluster_->ArbiterConfig({2, 1, 0}), "").value();
  Result<Lease> la = a->Grant(2);
  ASSERT_TRUE(la.ok()) << la.status().ToString();
  EXPECT_EQ(la->ttl_s, 2);
  Result<Lease> lb = b->Grant(2);
  ASSERT_TRUE(lb.ok()) << lb.status().ToString();

  Result<TxnResult> won = a->Txn(Acquire("mu01", la->id, "", "1"));
  ASSERT_TRUE(won.ok()) << won.status().ToString();
  EXPECT_TRUE(won->succeeded);
  // The key exists: b loses, and learns who holds it and the epoch.
  Result<TxnResult> lost = b->Txn(Acquire("mu02", lb->id, "1", "2"));
  ASSERT_TRUE(lost.ok()) << lost.status().ToString();
  EXPECT_FALSE(lost->succeeded);
  ASSERT_EQ(lost->ranges.size(), 2u);
  ASSERT_TRUE(lost->ranges[0].has_value());
  EXPECT_EQ(lost->ranges[0]->value, "mu01");
  EXPECT_EQ(lost->ranges[0]->lease, la->id);
  ASSERT_TRUE(lost->ranges[1].has_value());
  EXPECT_EQ(lost->ranges[1]->value, "1");

  Result<int64_t> ttl = a->KeepAlive(la->id);
  ASSERT_TRUE(ttl.ok()) << ttl.status().ToString();
  EXPECT_EQ(*ttl, 2);
  Result<int64_t> left = a->TimeToLive(la->id);
  ASSERT_TRUE(left.ok()) << left.status().ToString();
  EXPECT_GE(*left, 1);

  // The holder steps down (revokes): the key goes with the lease; b wins at epoch 2, and a
  // stale comparison (epoch 1 → 2 again) can never succeed twice.
  ASSERT_TRUE(a->Revoke(la->id).ok());
  Result<TxnResult> b_won = b->Txn(Acquire("mu02", lb->id, "1", "2"));
  ASSERT_TRUE(b_won.ok()) << b_won.status().ToString();
  EXPECT_TRUE(b_won->succeeded);
  Result<Lease> la2 = a->Grant(2);
  ASSERT_TRUE(la2.ok());
  ASSERT_TRUE(b->Revoke(lb->id).ok());
  Result<TxnResult> stale = a->Txn(Acquire("mu01", la2->id, "1", "2"));
  ASSERT_TRUE(stale.ok());
  EXPECT_FALSE(stale->succeeded);
  ASSERT_TRUE(stale->ranges[1].has_value());
  EXPECT_EQ(stale->ranges[1]->value, "2");

  // The revoked lease is gone: keep-alive says so (the primary's cue to self-fence).
  Result<int64_t> gone = a->KeepAlive(la->id);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), Code::kNotFound) << gone.status().ToString();
  // A put on a lease etcd does not know is refused by etcd itself, not retried elsewhere.
  Status bad = a->Put("/hasync/test/x", "y", la->id);
  EXPECT_EQ(bad.code(), Code::kNotFound) << bad.ToString();
  EXPECT_THAT(bad.message(), HasSubstr("requested lease not found"));
}

TEST_F(RealEtcd, AnUnrenewedLeaseTakesTheLeaderKeyWithIt) {
  auto a = EtcdClient::Create(cluster_->ArbiterConfig({0, 1, 2}), "").value();
  Result<Lease> la = a->Grant(2);
  ASSERT_TRUE(la.ok()) << la.status().ToString();
  ASSERT_TRUE(a->Txn(Acquire("mu01", la->id, "", "1")).value().succeeded);
  // Renewed for 2.5 s (longer than the TTL): still held.
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(2500)) {
    ASSERT_TRUE(a->KeepAlive(la->id).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  Result<RangeResult> held = a->Range("/hasync/test/leader");
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE(held->kv.has_value());
  EXPECT_EQ(held->kv->value, "mu01");
  // Not renewed: gone within TTL + a bound (etcd checks expiry every 500 ms).
  const auto last = std::chrono::steady_clock::now();
  bool gone = false;
  for (int k = 0; k < 50 && !gone; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Result<RangeResult> r = a->Range("/hasync/test/leader");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    gone = !r->kv.has_value();
  }
  EXPECT_TRUE(gone) << "the leader key outlived its lease by more than 5 s";
  std::printf("the leader key went %lld ms after the last renewal (TTL 2000 ms)\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - last)
                                         .count()));
  EXPECT_EQ(a->KeepAlive(la->id).status().code(), Code::kNotFound);
}

TEST_F(RealEtcd, ACallFailsOverToTheNextMemberAndNoQuorumFailsWithinTheTimeout) {
  // The first endpoint listed is dead from the start.
  cluster_->Kill(0, SIGKILL);
  // If the dead member was the raft leader, the other two need an election first (one
  // election timeout, longer on a loaded machine): wait for a linearizable read, so that
  // what is timed below is the client's failover, not etcd's election.
  ASSERT_TRUE(cluster_->WaitReady()) << "two members left did not elect a leader within 10 s";
  auto c = EtcdClient::Create(cluster_->ArbiterConfig({0, 1, 2}, 1000), "").value();
  Result<Lease> l = c->Grant(3);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_NE(c->current_endpoint(), cluster_->Endpoint(0).ToString());
  // Kill the member that answered: the next call goes to the one left... which alone has
  // no quorum, so it fails — within the request timeout, naming each member's reason.
  const std::string answered = c->current_endpoint();
  const size_t victim = answered == cluster_->Endpoint(1).ToString() ? 1 : 2;
  cluster_->Kill(victim, SIGKILL);
  // The survivor may go on as leader until its check-quorum notices (up to two election
  // timeouts, 1 s here) and renew meanwhile: etcd 3.4.23 renews on the leader without a
  // raft round. That is safe because a new leader on the other side extends every lease
  // by an election timeout plus the TTL (docs/FAILOVER.md). After that, renewals fail.
  const auto kill_time = std::chrono::steady_clock::now();
  Result<int64_t> ka = int64_t{0};
  int64_t ms = 0;
  for (int k = 0; k < 50 && ka.ok(); ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    ka = c->KeepAlive(l->id);
    ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    if (ka.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto renewing_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - kill_time)
                               .count();
  ASSERT_FALSE(ka.ok()) << "renewals still succeed 5 s after etcd lost its quorum";
  EXPECT_LT(renewing_ms, 6000) << "a leader without quorum renewed for too long";
  EXPECT_EQ(ka.status().code(), Code::kUnavailable) << ka.status().ToString();
  EXPECT_THAT(ka.status().message(), HasSubstr("no member answered within 1000 ms"));
  // The bound is the point: a renewal never blocks the arbiter for longer than this.
  EXPECT_LT(ms, 2000) << ka.status().ToString();
  std::printf(
      "quorum lost: the last member renewed for %lld ms after the kill; the failing "
      "call took %lld ms: %s\n",
      static_cast<long long>(renewing_ms), static_cast<long long>(ms),
      ka.status().ToString().c_str());
  // The killed member back: quorum again, the same lease renews (etcd extended it on the
  // new leader's election instead of letting it expire).
  cluster_->Start(victim);
  bool renewed = false;
  for (int k = 0; k < 50 && !renewed; ++k) {
    renewed = c->KeepAlive(l->id).ok();
    if (!renewed) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(renewed) << "no renewal within 10 s of the quorum coming back";
}

// TLS to etcd: the members serve https and require a client certificate. With the CA,
// the certificate and its key the protocol runs; without the client certificate, or
// trusting another CA, no member is reached and each one's reason is given.
TEST(RealEtcdTls, TheClientVerifiesTheMembersAndPresentsItsCertificate) {
  if (::access(testing::kEtcd, X_OK) != 0 || ::access("/usr/bin/openssl", X_OK) != 0) {
    GTEST_SKIP() << "needs " << testing::kEtcd << " (etcd-server) and /usr/bin/openssl";
  }
  // A member that resets a TLS connection raises SIGPIPE on the client's next write:
  // hasync ignores it (hasync run), and so must a test that speaks TLS.
  ::signal(SIGPIPE, SIG_IGN);
  testing::EtcdCluster cluster(/*tls=*/true);
  Config::Arbiter cfg = cluster.ArbiterConfig({0, 1, 2}, 1000);
  auto c = EtcdClient::Create(cfg, "").value();
  bool up = false;
  for (int k = 0; k < 100 && !up; ++k) {
    up = c->Range("/hasync/test/ready").ok();
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(up) << c->Range("/hasync/test/ready").status().ToString();
  EXPECT_EQ(c->current_endpoint().substr(0, 8), "https://");
  Result<Lease> l = c->Grant(2);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  ASSERT_TRUE(c->Put("/hasync/test/leader", "mu01", l->id).ok());
  ASSERT_TRUE(c->KeepAlive(l->id).ok());

  Config::Arbiter no_cert = cfg;
  no_cert.cert_file.clear();
  no_cert.key_file.clear();
  Result<RangeResult> refused = EtcdClient::Create(no_cert, "").value()->Range("/hasync/test/x");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kUnavailable) << refused.status().ToString();

  Config::Arbiter other_ca = cfg;
  other_ca.ca_file = "/etc/ssl/certs/ca-certificates.crt";  // the system's, not the test CA
  if (::access(other_ca.ca_file.c_str(), R_OK) == 0) {
    Result<RangeResult> untrusted =
        EtcdClient::Create(other_ca, "").value()->Range("/hasync/test/x");
    ASSERT_FALSE(untrusted.ok()) << "a member whose certificate is not from ca_file was trusted";
    EXPECT_THAT(untrusted.status().message(), HasSubstr("no member answered"));
  }
}

}  // namespace
}  // namespace hasync::engine::arbiter
