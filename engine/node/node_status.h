// What `hasync status` prints about a running node (docs/OPERATIONS.md "Reading
// status"): one JSON object assembled from the node's parts at one moment.
//
// Both roles: name, node id, role, epoch, whether it is changing role, the failover
// controller's phase, the peer (connected, its epoch) and the files ever quarantined.
// Primary: the session's phase, the sequence numbers sent and acknowledged, the lag,
// the beat, how long ago the standby was heard, the probe's last result, a switchover
// draining. Standby: the last applied sequence number, a resync or rejoin in progress,
// the lock window's verdict and history, and why it is not promoting. With [arbiter]:
// each etcd member's last answer, the leader key's holder, etcd's epoch, this node's
// lease and the time it has left (a primary: when it self-fences without a renewal).
//
// Threading: the loop's thread (the lock window's snapshot is taken under its mutex).
#pragma once

#include <cstdint>
#include <string>

#include "engine/config.h"
#include "engine/node/arbiter_worker.h"
#include "engine/node/failover_driver.h"
#include "engine/node/peer_link.h"
#include "engine/node/primary_role.h"
#include "engine/node/standby_role.h"
#include "engine/node/state.h"

namespace hasync::engine {

// The node's parts as the status reads them. Exactly one of primary and standby is set;
// session is null when there is none.
struct StatusParts {
  const Config* cfg = nullptr;
  const NodeState* state = nullptr;
  const FailoverDriver* failover = nullptr;
  const Peer* session = nullptr;
  const PrimaryRole* primary = nullptr;
  const StandbyRole* standby = nullptr;
  const ArbiterWorker* arbiter = nullptr;  // [arbiter] only
};

// The control socket's answer to "status", at `now`.
std::string NodeStatusJson(int64_t now, const StatusParts& parts);

}  // namespace hasync::engine
