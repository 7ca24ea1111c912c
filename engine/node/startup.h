// Start-up: what a node needs before its parts are made, from the configuration.
//
// The state dir (created 0700 if missing); the node's persisted state, or for a node
// without one a new node id and the role --initial-role gives (saved before anything
// else happens; a persisted role always wins over --initial-role, which is then only
// logged as ignored); the event loop on an io_uring that has every opcode the loop uses
// (a kernel without one stops the node here, naming it); and the log lines that open a
// run. Each is an expected failure with a sentence saying what to do, never a crash.
//
// Threading: the caller's (RunNode's) only.
#pragma once

#include <memory>
#include <optional>

#include "base/status.h"
#include "engine/config.h"
#include "engine/net/rng.h"
#include "engine/node/state.h"
#include "iouring/loop.h"

namespace hasync::engine {

// Creates <state_dir> (0700) unless it exists.
Status MakeStateDir(const Config& cfg);

// Rolls back every in-place patch a crash left under an undo record
// (<state_dir>/undo/<root hash>/, engine/apply/inplace.h), for every sync root, whatever
// the role: before the node serves, acknowledges, computes a manifest or starts the
// scheduler. A record that cannot be rolled back stops the start with the reason.
Status RollBackInPlacePatches(const Config& cfg);

struct StartState {
  NodeState state;
  bool created = false;  // a first start: the state was made from --initial-role
};
// The node's persisted state, or a new one from `initial_role` (saved). Without state
// and without `initial_role`: FailedPrecondition saying how to start the pair.
Result<StartState> LoadOrCreateNodeState(const Config& cfg, std::optional<NodeRole> initial_role,
                                         Rng& rng);

// The node's event loop, on a ring that supports accept, connect, receive, send, poll
// and timeouts.
Result<std::unique_ptr<iouring::Loop>> MakeEventLoop();

// `event=start` (and a warning when the transport is plain).
void LogStart(const Config& cfg, const NodeState& state);

}  // namespace hasync::engine
