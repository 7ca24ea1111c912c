// engine/arbiter/arbiter: the leader key and the epoch counter of docs/FAILOVER.md "The
// arbiter" against a real three-member etcd cluster (tests/arbiter/etcd_cluster.h): a cold
// start, a standby that waits while the primary's lease lives and wins when it runs out or
// is released, renewals that notice a lost key or a higher epoch, and the epoch's
// compare-and-swap. Skips loudly without etcd.
#include "engine/arbiter/arbiter.h"

#include <atomic>
#include <cstdlib>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/node/now.h"
#include "tests/arbiter/etcd_cluster.h"

namespace hasync::engine::arbiter {
namespace {

using testing::EtcdCluster;
using ::testing::HasSubstr;
using testing::RealEtcd;

TEST(ArbiterEpoch, OnlyADecimalNumberIsAnEpoch) {
  EXPECT_EQ(ParseEpochValue("0").value(), 0u);
  EXPECT_EQ(ParseEpochValue("18446744073709551615").value(), UINT64_MAX);
  EXPECT_FALSE(ParseEpochValue("").ok());
  EXPECT_FALSE(ParseEpochValue("7 ").ok());
  EXPECT_FALSE(ParseEpochValue("-1").ok());
  EXPECT_FALSE(ParseEpochValue("18446744073709551616").ok());
  EXPECT_EQ(ParseEpochValue("x").status().code(), Code::kDataLoss);
}

class ArbiterOnEtcd : public RealEtcd {
 protected:
  std::unique_ptr<Arbiter> Node(const std::string& name, int64_t ttl_s = 2) {
    return std::make_unique<Arbiter>(
        EtcdClient::Create(cluster_->ArbiterConfig({0, 1, 2}), "").value(), "/hasync/test/", name,
        ttl_s);
  }
};

TEST_F(ArbiterOnEtcd, TheStandbyWaitsWhileThePrimaryRenewsAndWinsWhenItsLeaseRunsOut) {
  const auto t0 = std::chrono::steady_clock::now();
  auto el = [&] {
    return static_cast<long long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count());
  };
  auto a = Node("mu01");
  auto b = Node("mu02");
  // Cold start of the primary at epoch 1: etcd had no epoch, it takes the key at 1.
  Result<Acquisition> got = a->Acquire(1, /*bump=*/false);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->kind, Acquisition::Kind::kAcquired);
  EXPECT_EQ(got->epoch, 1u);
  // The standby tries while the primary renews: held, and by whom.
  for (int k = 0; k < 9; ++k) {  // 2.25 s, past the 2 s TTL
    Result<Renewal> r = a->Renew(1);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->kind, Renewal::Kind::kRenewed) << r->why;
    EXPECT_EQ(r->etcd_epoch, 1u);
    Result<Acquisition> try_b = b->Acquire(1, /*bump=*/true);
    ASSERT_TRUE(try_b.ok()) << try_b.status().ToString();
    ASSERT_EQ(try_b->kind, Acquisition::Kind::kHeld);
    EXPECT_EQ(try_b->holder, "mu01");
    EXPECT_EQ(try_b->epoch, 1u);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  std::printf("renewed and held for %lld ms\n", el());
  // The primary stops renewing (paused, cut off): within the TTL and a bound, b wins at 2.
  Result<Acquisition> won = Acquisition{};
  for (int k = 0; k < 50; ++k) {
    won = b->Acquire(1, true);
    ASSERT_TRUE(won.ok()) << won.status().ToString();
    if (won->kind == Acquisition::Kind::kAcquired) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(won->kind, Acquisition::Kind::kAcquired) << "the key outlived its lease by 5 s";
  EXPECT_EQ(won->epoch, 2u);
  std::printf("the standby won at %lld ms\n", el());
  // The old primary, back, finds out at its next renewal: its lease is gone.
  Result<Renewal> late = a->Renew(1);
  ASSERT_TRUE(late.ok()) << late.status().ToString();
  EXPECT_EQ(late->kind, Renewal::Kind::kLost);
  EXPECT_THAT(late->why, HasSubstr("the lease is gone"));
  // Started cold at its old epoch, it is told it was deposed.
  Result<Acquisition> cold = a->Acquire(1, false);
  ASSERT_TRUE(cold.ok()) << cold.status().ToString();
  EXPECT_EQ(cold->kind, Acquisition::Kind::kHigherEpoch);
  EXPECT_EQ(cold->epoch, 2u);
}

TEST_F(ArbiterOnEtcd, AReleaseLetsTheStandbyInAtOnceAndTheEpochOnlyGrows) {
  auto a = Node("mu01");
  auto b = Node("mu02");
  ASSERT_EQ(a->Acquire(4, false).value().kind, Acquisition::Kind::kAcquired);
  ASSERT_EQ(b->Acquire(4, true).value().kind, Acquisition::Kind::kHeld);
  ASSERT_TRUE(a->Release().ok());
  EXPECT_EQ(a->lease_id(), 0);
  // A standby whose own epoch is behind etcd's still moves etcd's up, never down.
  Result<Acquisition> won = b->Acquire(2, true);
  ASSERT_TRUE(won.ok()) << won.status().ToString();
  ASSERT_EQ(won->kind, Acquisition::Kind::kAcquired);
  EXPECT_EQ(won->epoch, 5u);
  // The new primary's renewal checks the key: at epoch 5 it is its own.
  Result<Renewal> r = b->Renew(5);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, Renewal::Kind::kRenewed) << r->why;
  // Renewing at an older epoch than etcd's: demote to etcd's.
  Result<Renewal> behind = b->Renew(4);
  ASSERT_TRUE(behind.ok());
  EXPECT_EQ(behind->kind, Renewal::Kind::kHigherEpoch);
  EXPECT_EQ(behind->etcd_epoch, 5u);
}

// A primary's start when the key already names it at its epoch — the restart after its
// promotion, or its process restarted while its lease lived: it keeps the key and adopts
// the lease, instead of waiting a TTL for its own key to go. At another epoch, or under
// another name, the key is not its own.
TEST_F(ArbiterOnEtcd, AStartKeepsTheKeyThatNamesThisNodeAtItsEpoch) {
  auto before = Node("mu01");
  ASSERT_EQ(before->Acquire(3, false).value().kind, Acquisition::Kind::kAcquired);
  const int64_t lease = before->lease_id();
  auto after = Node("mu01");  // the same node, a new process
  Result<Acquisition> got = after->Acquire(3, false);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->kind, Acquisition::Kind::kAcquired);
  EXPECT_EQ(got->epoch, 3u);
  EXPECT_EQ(after->lease_id(), lease);
  Result<Renewal> r = after->Renew(3);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, Renewal::Kind::kRenewed) << r->why;
  // Another node of the same pair cannot adopt it.
  Result<Acquisition> other = Node("mu02")->Acquire(3, false);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ(other->kind, Acquisition::Kind::kHeld);
  EXPECT_EQ(other->holder, "mu01");
  // Nor the same node at an older epoch: etcd's is higher, it is deposed.
  Result<Acquisition> old_epoch = Node("mu01")->Acquire(2, false);
  ASSERT_TRUE(old_epoch.ok());
  EXPECT_EQ(old_epoch->kind, Acquisition::Kind::kHigherEpoch);
  // A promotion's winner keeps its own lease when it starts again as primary.
  ASSERT_TRUE(after->Release().ok());
  auto standby = Node("mu02");
  Result<Acquisition> won = standby->Acquire(3, true);
  ASSERT_TRUE(won.ok() && won->kind == Acquisition::Kind::kAcquired);
  const int64_t won_lease = standby->lease_id();
  Result<Acquisition> restart = standby->Acquire(won->epoch, false);
  ASSERT_TRUE(restart.ok()) << restart.status().ToString();
  EXPECT_EQ(restart->kind, Acquisition::Kind::kAcquired);
  EXPECT_EQ(standby->lease_id(), won_lease);
}

// A try that won the key but whose answer never came back (the request timed out after
// etcd applied it): the next try finds the key on this process's own lease and takes it
// as won at the epoch it put, instead of renewing its own key for ever as "held".
TEST_F(ArbiterOnEtcd, ATryWhoseAnswerWasLostFindsTheKeyItsOwn) {
  auto standby = Node("mu02");
  Result<Acquisition> first = standby->Acquire(4, true);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->kind, Acquisition::Kind::kAcquired);
  ASSERT_EQ(first->epoch, 5u);
  const int64_t lease = standby->lease_id();
  // The answer was "lost": the controller, told etcd was unreachable, tries again at the
  // same local epoch.
  Result<Acquisition> again = standby->Acquire(4, true);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->kind, Acquisition::Kind::kAcquired);
  EXPECT_EQ(again->epoch, 5u) << "the epoch that try wrote, not one more";
  EXPECT_EQ(standby->lease_id(), lease);
  // The key of this node on a lease this process does not hold (its previous process)
  // is not taken as won: it runs out first.
  auto restarted = Node("mu02");
  Result<Acquisition> other = restarted->Acquire(4, true);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ(other->kind, Acquisition::Kind::kHeld);
  EXPECT_EQ(other->holder, "mu02");
}

TEST_F(ArbiterOnEtcd, ARenewalNoticesTheLeaderKeyGoneOrTaken) {
  auto a = Node("mu01");
  ASSERT_EQ(a->Acquire(1, false).value().kind, Acquisition::Kind::kAcquired);
  // An operator deletes the key (the lease itself lives on).
  auto op = EtcdClient::Create(cluster_->ArbiterConfig({1}), "").value();
  Txn del;
  del.success.push_back({TxnOp::Kind::kDelete, "/hasync/test/leader", "", 0});
  ASSERT_TRUE(op->Txn(del).ok());
  Result<Renewal> r = a->Renew(1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, Renewal::Kind::kLost);
  EXPECT_THAT(r->why, HasSubstr("the leader key is gone"));
  // Someone else writes it without a lease: not this node's either.
  ASSERT_TRUE(op->Put("/hasync/test/leader", "intruder").ok());
  r = a->Renew(1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, Renewal::Kind::kLost);
  EXPECT_THAT(r->why, HasSubstr("names intruder"));
  // An epoch key that is not a number is an error, never a guess.
  ASSERT_TRUE(op->Put("/hasync/test/epoch", "three").ok());
  EXPECT_EQ(a->Renew(1).status().code(), Code::kDataLoss);
}

TEST_F(ArbiterOnEtcd, ALeaseBelowEtcdsMinimumIsRefused) {
  // Etcd raises a TTL below its minimum (1 s with the test cluster's 500 ms election
  // timeout): a node would then hold a longer lease than its self-fence arithmetic
  // assumed. Asking for 0 s makes etcd raise it; the arbiter refuses the lease.
  auto a = Node("mu01", /*ttl_s=*/0);
  Result<Acquisition> got = a->Acquire(1, false);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(got.status().message(), HasSubstr("below its minimum lease TTL"));
}

// Issue 20's "members restarted one by one: no failover", at the protocol level: the
// primary renews every beat (250 ms) while each member in turn is stopped (SIGTERM) and
// started again; the longest time between the send times of two good renewals must stay
// below the self-fence point (ttl 5 s − drift 100 ms, no on_demote), and no renewal may
// say the key is lost. One round (three restarts) by default; HASYNC_LONG=1: ten.
TEST_F(ArbiterOnEtcd, MembersRestartedOneByOneNeverBringThePrimaryToItsSelfFence) {
  const char* long_mode = std::getenv("HASYNC_LONG");
  const int rounds = long_mode != nullptr && std::string(long_mode) == "1" ? 10 : 1;
  auto a = Node("mu01", /*ttl_s=*/5);
  ASSERT_EQ(a->Acquire(1, false).value().kind, Acquisition::Kind::kAcquired);
  constexpr int64_t kFenceAfterNs = 4'900'000'000;
  std::atomic<bool> stop{false};
  int64_t max_gap_ns = 0, renewed = 0, unavailable = 0, lost = 0;
  std::string lost_why;
  std::thread renewer([&] {
    int64_t last_ok = NowNs();
    while (!stop.load()) {
      const int64_t started = NowNs();
      Result<Renewal> r = a->Renew(1);
      if (!r.ok()) {
        ++unavailable;
      } else if (r->kind == Renewal::Kind::kRenewed) {
        ++renewed;
        max_gap_ns = std::max(max_gap_ns, r->sent_ns - last_ok);
        last_ok = r->sent_ns;
      } else {
        ++lost;
        lost_why = r->why;
      }
      const int64_t next = started + 250'000'000;
      while (!stop.load() && NowNs() < next) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    max_gap_ns = std::max(max_gap_ns, NowNs() - last_ok);
  });
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < EtcdCluster::kMembers; ++i) {
      cluster_->Kill(i, SIGTERM);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      cluster_->Start(i);
      auto one = EtcdClient::Create(cluster_->ArbiterConfig({i}, 500), "").value();
      bool back = false;
      for (int k = 0; k < 100 && !back; ++k) {
        back = one->Range("/hasync/test/ready").ok();
        if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      ASSERT_TRUE(back) << "member " << i << " did not rejoin within 10 s";
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  }
  stop.store(true);
  renewer.join();
  std::printf(
      "%d round(s) of 3 member restarts: %lld renewals, %lld unanswered, %lld lost; "
      "longest gap between good renewals %lld ms (self-fence at 4900 ms)\n",
      rounds, static_cast<long long>(renewed), static_cast<long long>(unavailable),
      static_cast<long long>(lost), static_cast<long long>(max_gap_ns / 1'000'000));
  EXPECT_EQ(lost, 0) << lost_why;
  EXPECT_LT(max_gap_ns, kFenceAfterNs) << "a member restart would have stopped the scheduler";
  EXPECT_GT(renewed, 0);
}

// etcd's users and roles: a user allowed only the pair's prefix runs the whole protocol
// with its password; a wrong password and a key outside the prefix are refused with
// etcd's reason. etcdctl (etcd-client) sets the users up.
TEST_F(ArbiterOnEtcd, AUserLimitedToThePrefixRunsTheProtocolAndNothingElse) {
  constexpr const char* kEtcdctl = "/usr/bin/etcdctl";
  if (::access(kEtcdctl, X_OK) != 0) {
    GTEST_SKIP() << kEtcdctl << " is not installed (scripts/install-deps.sh installs etcd-client)";
  }
  const std::string ep = cluster_->Endpoint(0).ToString();
  const std::string ctl = fmt::format("{} --endpoints={} --dial-timeout=2s ", kEtcdctl, ep);
  for (const std::string& cmd :
       {ctl + "user add root:rootpw", ctl + "user add hasync:s3cret", ctl + "role add hasync",
        ctl + "role grant-permission hasync --prefix=true readwrite /hasync/test/",
        ctl + "user grant-role hasync hasync", ctl + "user grant-role root root",
        ctl + "auth enable"}) {
    ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
  }
  Config::Arbiter cfg = cluster_->ArbiterConfig({0, 1, 2});
  cfg.user = "hasync";
  Arbiter a(EtcdClient::Create(cfg, "s3cret").value(), "/hasync/test/", "mu01", 2);
  Result<Acquisition> got = a.Acquire(1, false);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->kind, Acquisition::Kind::kAcquired);
  Result<Renewal> r = a.Renew(1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, Renewal::Kind::kRenewed) << r->why;
  // Outside the prefix: etcd says no, and the client does not try elsewhere.
  Status outside = a.client().Put("/elsewhere", "x");
  EXPECT_EQ(outside.code(), Code::kPermissionDenied) << outside.ToString();
  EXPECT_THAT(outside.message(), HasSubstr("permission denied"));
  ASSERT_TRUE(a.Release().ok());
  // A wrong password: refused with etcd's reason, not retried member after member.
  auto wrong = EtcdClient::Create(cfg, "guess").value();
  Result<Lease> l = wrong->Grant(2);
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(l.status().message(), HasSubstr("authentication failed"));
  EXPECT_NE(l.status().code(), Code::kUnavailable) << l.status().ToString();
  // Without a user at all, once auth is on: refused too.
  auto anonymous = EtcdClient::Create(cluster_->ArbiterConfig({0, 1, 2}), "").value();
  EXPECT_FALSE(anonymous->Put("/hasync/test/x", "y").ok());
}

}  // namespace
}  // namespace hasync::engine::arbiter
