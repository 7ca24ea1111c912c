#include "engine/arbiter/arbiter.h"

#include <fmt/format.h>

#include <charconv>
#include <optional>

#include "engine/node/now.h"

namespace hasync::engine::arbiter {

Result<uint64_t> ParseEpochValue(std::string_view value) {
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size()) {
    return DataLoss(
        fmt::format("etcd: the epoch key holds \"{}\", not a decimal number", value.substr(0, 40)));
  }
  return v;
}

Arbiter::Arbiter(std::unique_ptr<EtcdClient> client, std::string prefix, std::string node_name,
                 int64_t ttl_s)
    : client_(std::move(client)),
      prefix_(std::move(prefix)),
      name_(std::move(node_name)),
      ttl_s_(ttl_s) {}

Result<int64_t> Arbiter::EnsureLease() {
  if (lease_id_ != 0) {
    const int64_t sent = NowNs();
    Result<int64_t> ttl = client_->KeepAlive(lease_id_);
    if (ttl.ok()) return sent;
    if (ttl.status().code() != Code::kNotFound) return ttl.status();
    lease_id_ = 0;  // expired: a new one
  }
  const int64_t sent = NowNs();
  ASSIGN_OR_RETURN(Lease lease, client_->Grant(ttl_s_));
  if (lease.ttl_s != ttl_s_) {
    // Etcd raises a TTL below its minimum (1.5 election timeouts); the proof's arithmetic
    // was done for ttl_s, so a longer lease would break it.
    (void)client_->Revoke(lease.id);
    return FailedPrecondition(fmt::format(
        "etcd granted a lease of {} s for the {} s asked (arbiter.ttl_s is below its minimum "
        "lease TTL: lengthen ttl_s, or shorten etcd's --election-timeout)",
        lease.ttl_s, ttl_s_));
  }
  lease_id_ = lease.id;
  return sent;
}

Result<std::optional<Acquisition>> Arbiter::AdoptOwnKey(uint64_t local_epoch) {
  Txn t;
  t.success.push_back({TxnOp::Kind::kRange, leader_key(), "", 0});
  t.success.push_back({TxnOp::Kind::kRange, epoch_key(), "", 0});
  ASSIGN_OR_RETURN(TxnResult r, client_->Txn(t));
  if (!r.succeeded || r.ranges.size() != 2) {
    return Internal("etcd: a transaction without comparisons did not succeed");
  }
  const std::optional<KeyValue>& leader = r.ranges[0];
  if (!leader || leader->value != name_ || leader->lease == 0 || !r.ranges[1]) {
    return std::optional<Acquisition>();
  }
  ASSIGN_OR_RETURN(const uint64_t etcd_epoch, ParseEpochValue(r.ranges[1]->value));
  if (etcd_epoch != local_epoch) return std::optional<Acquisition>();
  // The key names this node at its own epoch: it was put by this node (a promotion
  // whose restart this is, or this process's previous run). Its lease is this node's.
  const int64_t sent = NowNs();
  Result<int64_t> ttl = client_->KeepAlive(leader->lease);
  if (!ttl.ok()) {
    if (ttl.status().code() == Code::kNotFound) return std::optional<Acquisition>();
    return ttl.status();
  }
  if (lease_id_ != 0 && lease_id_ != leader->lease) (void)client_->Revoke(lease_id_);
  lease_id_ = leader->lease;
  Acquisition out;
  out.kind = Acquisition::Kind::kAcquired;
  out.epoch = etcd_epoch;
  out.sent_ns = sent;
  out.holder = name_;
  return std::optional<Acquisition>(out);
}

Result<Acquisition> Arbiter::Acquire(uint64_t local_epoch, bool bump) {
  if (!bump) {
    ASSIGN_OR_RETURN(std::optional<Acquisition> own, AdoptOwnKey(local_epoch));
    if (own) return *own;
  }
  ASSIGN_OR_RETURN(const int64_t sent, EnsureLease());
  ASSIGN_OR_RETURN(RangeResult seen, client_->Range(epoch_key()));
  uint64_t etcd_epoch = 0;
  if (seen.kv) {
    ASSIGN_OR_RETURN(etcd_epoch, ParseEpochValue(seen.kv->value));
  }
  Acquisition out;
  if (!bump && etcd_epoch > local_epoch) {
    out.kind = Acquisition::Kind::kHigherEpoch;
    out.epoch = etcd_epoch;
    return out;
  }
  const uint64_t next = bump ? std::max(etcd_epoch, local_epoch) + 1 : local_epoch;
  Txn t;
  t.compare.push_back({leader_key(), Compare::Target::kCreateRevision, Compare::Op::kEqual, 0, ""});
  // The epoch exactly as read: a concurrent change (another node's promotion) fails this.
  t.compare.push_back({epoch_key(),
                       seen.kv ? Compare::Target::kModRevision : Compare::Target::kCreateRevision,
                       Compare::Op::kEqual, seen.kv ? seen.kv->mod_revision : 0, ""});
  t.success.push_back({TxnOp::Kind::kPut, leader_key(), name_, lease_id_});
  t.success.push_back({TxnOp::Kind::kPut, epoch_key(), std::to_string(next), 0});
  t.failure.push_back({TxnOp::Kind::kRange, leader_key(), "", 0});
  t.failure.push_back({TxnOp::Kind::kRange, epoch_key(), "", 0});
  ASSIGN_OR_RETURN(TxnResult r, client_->Txn(t));
  if (r.succeeded) {
    out.kind = Acquisition::Kind::kAcquired;
    out.epoch = next;
    out.sent_ns = sent;
    out.holder = name_;
    return out;
  }
  out.kind = Acquisition::Kind::kHeld;
  if (r.ranges.size() == 2) {
    if (r.ranges[0]) out.holder = r.ranges[0]->value;
    if (r.ranges[1]) {
      ASSIGN_OR_RETURN(out.epoch, ParseEpochValue(r.ranges[1]->value));
    }
    // The key names this node on the lease it just renewed: an earlier try of this
    // process won it and its answer was lost (a timeout after etcd applied it). Only this
    // process puts keys on its lease, and the epoch moves only with the key's creation,
    // so the epoch read is the one that try wrote: the key is this node's. Without this
    // the node would renew its own key on every try and never promote (found by the
    // simulator's etcd model, seed 136).
    if (r.ranges[0] && r.ranges[0]->value == name_ && r.ranges[0]->lease == lease_id_ &&
        r.ranges[1]) {
      out.kind = Acquisition::Kind::kAcquired;
      out.sent_ns = sent;
      out.holder = name_;
    }
  }
  return out;
}

Result<Renewal> Arbiter::Renew(uint64_t my_epoch) {
  Renewal out;
  if (lease_id_ == 0) {
    out.why = "this node holds no lease";
    return out;
  }
  const int64_t sent = NowNs();
  Result<int64_t> ttl = client_->KeepAlive(lease_id_);
  if (!ttl.ok()) {
    if (ttl.status().code() != Code::kNotFound) return ttl.status();
    lease_id_ = 0;
    out.why = "the lease is gone (expired or revoked): etcd may have let another node in";
    return out;
  }
  // Linearizable reads of both keys, after the keep-alive.
  Txn t;
  t.success.push_back({TxnOp::Kind::kRange, leader_key(), "", 0});
  t.success.push_back({TxnOp::Kind::kRange, epoch_key(), "", 0});
  ASSIGN_OR_RETURN(TxnResult r, client_->Txn(t));
  if (!r.succeeded || r.ranges.size() != 2) {
    return Internal("etcd: a transaction without comparisons did not succeed");
  }
  if (r.ranges[1]) {
    ASSIGN_OR_RETURN(out.etcd_epoch, ParseEpochValue(r.ranges[1]->value));
  }
  if (out.etcd_epoch > my_epoch) {
    out.kind = Renewal::Kind::kHigherEpoch;
    out.why = fmt::format("etcd holds epoch {} above this node's {}", out.etcd_epoch, my_epoch);
    return out;
  }
  const std::optional<KeyValue>& leader = r.ranges[0];
  if (!leader || leader->value != name_ || leader->lease != lease_id_ ||
      out.etcd_epoch != my_epoch) {
    out.why = !leader ? "the leader key is gone"
                      : fmt::format(
                            "the leader key names {} (lease {:x}) at epoch {}, not this "
                            "node at {}",
                            leader->value, leader->lease, out.etcd_epoch, my_epoch);
    return out;
  }
  out.kind = Renewal::Kind::kRenewed;
  out.sent_ns = sent;
  return out;
}

Status Arbiter::Release() {
  if (lease_id_ == 0) return Status::Ok();
  const int64_t id = lease_id_;
  lease_id_ = 0;
  Status st = client_->Revoke(id);
  if (st.code() == Code::kNotFound) return Status::Ok();  // gone already
  return st;
}

}  // namespace hasync::engine::arbiter
