// Node: `hasync run` — one process that is the primary or the standby of a pair.
//
// Primary: watches its sync roots (fanotify, engine/watch), journals what changed,
// dials the standby, proves the sync key (TLS PSK), exchanges HELLOs, asks for the
// standby's manifest, resyncs the difference, then ships journal changes as they come
// and waits for durable ACKs. A lost connection or a NACK ends the session; it dials
// again with backoff and resyncs (the journal keeps collecting meanwhile, bounded).
// Standby: listens, accepts one authenticated primary at a time (a newer one replaces
// an older), applies batches durably (engine/apply) and acknowledges them.
//
// The event loop is io_uring (iouring::Loop): accept, connect, receive, send, the
// watcher's readiness and timers complete there. The content of large files travels on
// data streams, each with a thread of its own on both nodes (engine/net/data_stream.h);
// docs/ARCHITECTURE.md explains both.
//
// Failover (docs/FAILOVER.md): the primary sends a lock record every beat; the standby's
// detector judges them and promotes when the rules allow; a primary demotes on a higher
// epoch, on request, or when its lease expires and quorum_check fails. A role change is
// persisted, then RunNode starts the node again in its new role (same process, same
// listening socket).
#pragma once

#include <atomic>
#include <optional>

#include "base/status.h"
#include "engine/config.h"
#include "engine/node/metrics.h"
#include "engine/node/service.h"
#include "engine/node/state.h"

namespace hasync::engine {

class ArbiterWorker;

struct RunOptions {
  // Role for a node whose state dir holds no state yet. Ignored otherwise.
  std::optional<NodeRole> initial_role;
  // Set (e.g. by a signal handler) to stop the loop; checked every tick.
  const std::atomic<bool>* stop = nullptr;
  // The service manager to notify (READY, STATUS, WATCHDOG from the loop, STOPPING).
  // RunNode reads the environment (ServiceNotifier::FromEnvironment) when this is null.
  ServiceNotifier* service = nullptr;
  // Where the node counts what it does. RunNode makes one (and serves it over HTTP when
  // [metrics] enabled) when this is null.
  Metrics* metrics = nullptr;
  // The arbiter's thread ([arbiter]; engine/node/arbiter_worker.h). RunNode starts one
  // when the config has an arbiter and this is null; it outlives the node's role changes.
  ArbiterWorker* arbiter = nullptr;
};

// Runs until *options.stop is set or a fatal error. Returns OK on a requested stop.
Status RunNode(const Config& config, const RunOptions& options);

}  // namespace hasync::engine
