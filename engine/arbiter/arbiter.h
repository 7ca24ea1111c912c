// The arbiter's protocol on top of EtcdClient: the leader key and the epoch counter of
// docs/FAILOVER.md "The arbiter", as the node carries out the controller's RenewLease,
// TryAcquire and ReleaseLease. Each call is blocking (bounded by the client's request
// timeout per request, at most six requests) and meant for a thread of its own, never
// the node's loop. Times are CLOCK_MONOTONIC ns (engine/node/now.h), the controller's.
//
// Keys: <prefix>leader (this node's name, on this node's lease) and <prefix>epoch (a
// decimal counter moved only by compare-and-swap, together with the leader key's creation).
//
// Thread safety: none; one owner.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/status.h"
#include "engine/arbiter/etcd_client.h"

namespace hasync::engine::arbiter {

// The answer to Renew.
struct Renewal {
  enum class Kind {
    kRenewed,      // the lease lives and the key names this node at its epoch: sent_ns counts
    kLost,         // the lease is gone or the key names someone else / is missing: self-fence now
    kHigherEpoch,  // etcd's epoch is above this node's: demote to it
  };
  Kind kind = Kind::kLost;
  int64_t sent_ns = 0;      // kRenewed: when the keep-alive was sent
  uint64_t etcd_epoch = 0;  // as read
  std::string why;          // kLost, kHigherEpoch
};

// The answer to Acquire.
struct Acquisition {
  enum class Kind {
    kAcquired,     // the key is this node's at `epoch`; its lease was last renewed at sent_ns
    kHeld,         // someone holds the key (holder, epoch), or the epoch moved meanwhile
    kHigherEpoch,  // a cold start found etcd above this node's epoch: this node is deposed
  };
  Kind kind = Kind::kHeld;
  uint64_t epoch = 0;
  int64_t sent_ns = 0;
  std::string holder;  // kAcquired: this node
};

class Arbiter {
 public:
  Arbiter(std::unique_ptr<EtcdClient> client, std::string prefix, std::string node_name,
          int64_t ttl_s);

  std::string leader_key() const { return prefix_ + "leader"; }
  std::string epoch_key() const { return prefix_ + "epoch"; }

  // Takes the leader key if nobody holds it. `bump`: a promotion — etcd's epoch becomes
  // max(etcd's, local_epoch) + 1. Without: a primary's start — it keeps the key if the
  // key already names this node at its epoch (the restart after its promotion, or after
  // its process died: the key's lease is adopted, no wait for it to run out), else takes
  // it at its own epoch, and is deposed if etcd's is higher. Grants the lease first if
  // this node has none. Unavailable when etcd cannot be asked.
  Result<Acquisition> Acquire(uint64_t local_epoch, bool bump);
  // Keep-alive, then reads the key and the epoch (one transaction) to check they are
  // still this node's. Unavailable when etcd cannot be asked (the controller's deadline
  // decides what that means).
  Result<Renewal> Renew(uint64_t my_epoch);
  // Revokes the lease (the key goes with it) and forgets it.
  Status Release();

  int64_t lease_id() const { return lease_id_; }
  EtcdClient& client() { return *client_; }

 private:
  Result<int64_t> EnsureLease();  // the send time of the grant or of a fresh keep-alive
  // The key names this node at local_epoch and its lease lives: adopted (kAcquired).
  Result<std::optional<Acquisition>> AdoptOwnKey(uint64_t local_epoch);

  std::unique_ptr<EtcdClient> client_;
  std::string prefix_;
  std::string name_;
  int64_t ttl_s_;
  int64_t lease_id_ = 0;
};

// The epoch key's value: a decimal number, or absent (0). Anything else is an error: an
// arbiter must not guess an epoch.
Result<uint64_t> ParseEpochValue(std::string_view value);

}  // namespace hasync::engine::arbiter
