#include "engine/node/startup.h"

#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>

#include "engine/log.h"

namespace hasync::engine {

Status MakeStateDir(const Config& cfg) {
  if (mkdir(cfg.sync.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "create state dir " + cfg.sync.state_dir);
  }
  return Status::Ok();
}

Result<StartState> LoadOrCreateNodeState(const Config& cfg, std::optional<NodeRole> initial_role,
                                         Rng& rng) {
  StartState start;
  NodeState& state = start.state;
  auto loaded = LoadNodeState(cfg.sync.state_dir);
  if (loaded.ok()) {
    state = *loaded;
    // The persisted role and epoch are the truth once a node has state (a restarted
    // old primary must not take the role back); --initial-role only seeds a new node.
    if (initial_role && *initial_role != state.role) {
      Log(Level::kWarn, "initial_role_ignored")
          .kv("asked", NodeRoleName(*initial_role))
          .kv("role", NodeRoleName(state.role))
          .kv("epoch", state.epoch)
          .kv("why",
              "the state dir holds this node's state; --initial-role only applies to a "
              "node without state");
    }
    return start;
  }
  if (loaded.status().code() != Code::kNotFound) return loaded.status();
  if (!initial_role) {
    return FailedPrecondition("state dir " + cfg.sync.state_dir +
                              " holds no node state yet: start once with --initial-role "
                              "primary on one node and --initial-role standby on the other");
  }
  std::array<std::byte, 8> id{};
  do {
    RETURN_IF_ERROR(rng.Fill(id));
    std::memcpy(&state.node_id, id.data(), id.size());
  } while (state.node_id == 0);
  state.role = *initial_role;
  state.epoch = state.role == NodeRole::kPrimary ? 1 : 0;
  RETURN_IF_ERROR(SaveNodeState(cfg.sync.state_dir, state));
  start.created = true;
  return start;
}

Result<std::unique_ptr<iouring::Loop>> MakeEventLoop() {
  auto ring = iouring::Ring::Create(256);
  if (!ring.ok()) return ring.status().Annotate("io_uring (hasync needs it for its event loop)");
  auto probe = iouring::OpcodeProbe::Query(*ring);
  if (!probe.ok()) return probe.status();
  const int needed[] = {IORING_OP_ACCEPT, IORING_OP_CONNECT,  IORING_OP_RECV,
                        IORING_OP_SEND,   IORING_OP_POLL_ADD, IORING_OP_TIMEOUT};
  RETURN_IF_ERROR(probe->Require(needed));
  return std::make_unique<iouring::Loop>(std::move(ring).value());
}

void LogStart(const Config& cfg, const NodeState& state) {
  Log(Level::kInfo, "start")
      .kv("node", cfg.node.name)
      .kv("role", NodeRoleName(state.role))
      .kv("epoch", state.epoch)
      .kv("roots", static_cast<uint64_t>(cfg.sync.roots.size()))
      .kv("transport", TransportModeName(cfg.transport.mode));
  if (cfg.transport.mode == TransportMode::kPlain) {
    Log(Level::kWarn, "plain_transport")
        .kv("note", "file contents and names cross the network unencrypted (authenticated only)");
  }
}

}  // namespace hasync::engine
