// NodeState: what a node must remember across restarts (DESIGN §4): its epoch, its
// role, the last change sequence it applied, and its stable node id.
//
// Stored as `<state_dir>/state`, a small key=value text file (readable by an operator),
// written by temp file + fsync + rename + directory fsync, so a crash leaves either the
// old or the new state, never a torn one. A missing file is a fresh node; a malformed
// one is an error naming the line, never silently reset.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace hasync::engine {

enum class NodeRole : uint8_t { kStandby = 1, kPrimary = 2 };
std::string_view NodeRoleName(NodeRole role);
Result<NodeRole> ParseNodeRole(std::string_view text);

struct NodeState {
  uint64_t node_id = 0;  // random, nonzero, fixed at first start
  uint64_t epoch = 0;    // 0 = never joined a pair
  NodeRole role = NodeRole::kStandby;
  uint64_t last_applied_seq = 0;
  // Optional (absent in files of older versions = 0):
  // the epoch this node last served as primary before it was demoted; while nonzero,
  // files the new primary replaces or removes are first kept in quarantine/<epoch>/.
  uint64_t rejoin_epoch = 0;
  // Wall-clock time (Unix ms) of this node's last automatic promotion: the anti-flap
  // interval counts from it across restarts.
  uint64_t last_failover_unix_ms = 0;
  // Set when this node handed the primary role over by a planned switchover: until its
  // first resync under the new primary completes it does not promote by itself (a
  // handover the other node did not take leaves two standbys, and only the one that
  // holds the latest copy may take over), but nothing is kept in quarantine.
  bool handed_over = false;
  friend bool operator==(const NodeState&, const NodeState&) = default;
};

inline constexpr std::string_view kStateFileName = "state";
inline constexpr size_t kStateFileMax = 4096;

// NotFound when the state dir holds no state yet.
Result<NodeState> LoadNodeState(std::string_view state_dir);
Status SaveNodeState(std::string_view state_dir, const NodeState& state);

std::string EncodeNodeState(const NodeState& state);
Result<NodeState> DecodeNodeState(std::string_view text, std::string_view origin);

}  // namespace hasync::engine
