#include "engine/node/startup.h"

#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>

#include "engine/apply/inplace.h"
#include "engine/apply/tree.h"
#include "engine/log.h"

namespace hasync::engine {

Status MakeStateDir(const Config& cfg) {
  if (mkdir(cfg.sync.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "create state dir " + cfg.sync.state_dir);
  }
  return Status::Ok();
}

Status RollBackInPlacePatches(const Config& cfg) {
  for (const std::string& root : cfg.sync.roots) {
    apply::TreeOptions options;
    options.undo_dir = apply::UndoDirFor(cfg.sync.state_dir, root);
    struct stat st {};
    if (stat(options.undo_dir.c_str(), &st) != 0 && errno == ENOENT) continue;  // never patched
    auto tree = apply::Tree::Open(root, options);
    if (!tree.ok()) return tree.status().Annotate("roll back in-place patches of " + root);
    auto report = tree->RecoverUndo();
    if (!report.ok()) return report.status().Annotate("roll back in-place patches of " + root);
    if (report->records > 0) {
      Log(Level::kWarn, "inplace_rolled_back")
          .kv("root", root)
          .kv("records", report->records)
          .kv("files", report->rolled_back)
          .kv("skipped", report->skipped)
          .kv("torn_records", report->torn)
          .kv("note", "unacknowledged in-place patches were undone; the primary resends them");
    }
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
