// libFuzzer target for the primary's side of the resync (docs/PROTOCOL.md §8, "Session
// flow"): what it does with the standby's MANIFEST_ENTRIES and BLOCKS_REPLY frames.
// The input is a stream of frames as the standby would send them; each is decoded by
// wire/ and handed to an engine::Sender exactly as PrimaryRole::OnFrame
// (engine/node/primary_role.cpp) does (manifest entries until kManifestLast,
// RequestResyncBlocks, the replies, then Resync), against the fixed local tree of
// resync_tree.h. The first error ends the session, as there.
//
// Properties checked on every input, beyond "no crash, no sanitizer report":
// - every message the Sender emits is a valid frame (ValidateFrame), and every path in
//   it names sync root 0 or 1 and no reserved (.hasync-tmp.*) component;
// - no removal or rename ever names a sync root itself;
// - the number of messages emitted is bounded by the sizes of the two trees;
// - when the manifest describes a tree that can exist (each entry's parent a directory
//   of the manifest, both roots directories), replaying the emitted changes on it gives
//   exactly the primary's tree (names and kinds): the resync converges;
// - an error carries a reason.
#include <sanitizer/common_interface_defs.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/apply/resolve.h"
#include "engine/journal/journal.h"
#include "engine/scan/scanner.h"
#include "engine/sync/sender.h"
#include "engine/sync/verify.h"
#include "tests/fuzz/resync_tree.h"
#include "wire/frame.h"

namespace {

using namespace hasync;
using engine::NodeKind;

fuzz::FuzzTree* g_tree = nullptr;

// A finding aborts, which skips static destructors: remove the temporary tree first.
void RemoveTree() {
  if (g_tree != nullptr) g_tree->Remove();
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "resync_fuzz: property violated: %s\n", what);
    RemoveTree();
    std::abort();
  }
}
// HASYNC_FUZZ_TRACE=1: one line per input saying how far it got (to check that the seeds
// reach the resync and the convergence check).
bool g_trace = false;

// The primary's tree as wire path → kind, both roots included.
std::map<std::string, NodeKind> PrimaryTree() {
  std::map<std::string, NodeKind> out;
  std::vector<int> fds = g_tree->root_fds();
  for (uint32_t root = 0; root < fds.size(); ++root) {
    out[engine::WirePath(root, "")] = NodeKind::kDirectory;
    Status s = engine::ScanTree(
        fds[root], "", {},
        [&](const engine::FileInfo& info) {
          out[engine::WirePath(root, info.path)] = info.kind;
          return Status::Ok();
        },
        nullptr);
    Check(s.ok(), "the fixed tree scans");
  }
  return out;
}

bool IsRoot(const std::string& wire_path) { return wire_path.find('/') == std::string::npos; }

void CheckPath(const std::string& p) {
  Check(engine::SplitWirePath(p, g_tree->root_count()).ok(), "an emitted path names a sync root");
  Check(!engine::apply::HasReservedComponent(p), "an emitted path has no reserved component");
}

class Sink : public engine::MessageSink {
 public:
  explicit Sink(size_t max) : max_(max) {}
  Status Emit(uint64_t seq, wire::Message message) override {
    Check(++count_ <= max_, "the messages emitted stay within the bound");
    Check(wire::ValidateFrame(seq, message).ok(), "an emitted message is a valid frame");
    std::visit(
        [&](const auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (requires { m.path; }) CheckPath(m.path);
          if constexpr (std::is_same_v<T, wire::Rename>) {
            CheckPath(m.from);
            CheckPath(m.to);
            Check(!IsRoot(m.from) && !IsRoot(m.to), "a sync root is never renamed");
          }
          if constexpr (std::is_same_v<T, wire::Link>) {
            CheckPath(m.existing_path);
            CheckPath(m.new_path);
            Check(!IsRoot(m.new_path), "a sync root is never replaced by a link");
          }
          if constexpr (std::is_same_v<T, wire::Unlink> || std::is_same_v<T, wire::Rmdir>) {
            Check(!IsRoot(m.path), "a sync root is never removed");
          }
        },
        message);
    messages.push_back(std::move(message));
    return Status::Ok();
  }
  std::vector<wire::Message> messages;

 private:
  size_t max_;
  size_t count_ = 0;
};

// Moves `from` and everything below it to `to` in a path → kind map.
void MoveSubtree(std::map<std::string, NodeKind>& ns, const std::string& from,
                 const std::string& to) {
  std::map<std::string, NodeKind> moved;
  for (auto it = ns.begin(); it != ns.end();) {
    if (it->first == from || it->first.starts_with(from + "/")) {
      moved[to + it->first.substr(from.size())] = it->second;
      it = ns.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [p, k] : moved) ns[p] = k;
}

void Erase(std::map<std::string, NodeKind>& ns, const std::string& path) {
  std::erase_if(ns,
                [&](const auto& e) { return e.first == path || e.first.starts_with(path + "/"); });
}

// The standby's namespace after the emitted changes, as the receiver applies them.
void Replay(std::map<std::string, NodeKind>& ns, const std::vector<wire::Message>& messages) {
  for (const wire::Message& message : messages) {
    std::visit(
        [&](const auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, wire::FileBegin>) {
            ns[m.path] = NodeKind::kFile;
          } else if constexpr (std::is_same_v<T, wire::Mkdir>) {
            ns[m.path] = NodeKind::kDirectory;
          } else if constexpr (std::is_same_v<T, wire::Symlink>) {
            ns[m.path] = NodeKind::kSymlink;
          } else if constexpr (std::is_same_v<T, wire::Link>) {
            ns[m.new_path] = NodeKind::kFile;
          } else if constexpr (std::is_same_v<T, wire::Unlink> || std::is_same_v<T, wire::Rmdir>) {
            Erase(ns, m.path);
          } else if constexpr (std::is_same_v<T, wire::Rename>) {
            if (m.flags & wire::kRenameExchange) {
              MoveSubtree(ns, m.from, "\x01tmp");
              MoveSubtree(ns, m.to, m.from);
              MoveSubtree(ns, "\x01tmp", m.to);
            } else {
              Erase(ns, m.to);
              MoveSubtree(ns, m.from, m.to);
            }
          }
        },
        message);
  }
}

NodeKind KindOf(wire::EntryKind k) {
  switch (k) {
    case wire::EntryKind::kDirectory:
      return NodeKind::kDirectory;
    case wire::EntryKind::kSymlink:
      return NodeKind::kSymlink;
    case wire::EntryKind::kFile:
      break;
  }
  return NodeKind::kFile;
}

// Whether a manifest (path → kind, later entries winning) describes a possible tree.
bool Consistent(const std::map<std::string, NodeKind>& ns, uint32_t roots) {
  for (uint32_t r = 0; r < roots; ++r) {
    auto it = ns.find(engine::WirePath(r, ""));
    if (it == ns.end() || it->second != NodeKind::kDirectory) return false;
  }
  for (const auto& [path, kind] : ns) {
    if (IsRoot(path)) continue;
    auto parent = ns.find(path.substr(0, path.rfind('/')));
    if (parent == ns.end() || parent->second != NodeKind::kDirectory) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  static fuzz::FuzzTree tree;
  g_tree = &tree;
  __sanitizer_set_death_callback(&RemoveTree);  // a sanitizer report ends the process too
  g_trace = std::getenv("HASYNC_FUZZ_TRACE") != nullptr;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  static const std::map<std::string, NodeKind> primary = PrimaryTree();

  // Bound: every path of either tree is sent, linked, removed or re-attributed a few
  // times at most, plus one COMMIT per batch and the resync's framing messages.
  const size_t manifest_max = in.size() / (wire::kManifestEntryFixedSize + 2) + 1;
  Sink sink(16 * (primary.size() + manifest_max) + 16);
  engine::Sender sender(g_tree->root_fds(), fuzz::ResyncSenderOptions(), sink);
  engine::Journal live(engine::JournalLimits{}, g_tree->root_count());
  sender.BeginManifest();

  enum class Phase { kManifest, kBlocks, kDone } phase = Phase::kManifest;
  size_t pending_blocks = 0;
  std::map<std::string, NodeKind> standby;  // the manifest as the Sender took it
  size_t off = 0;
  Status status;
  auto run = [&]() -> Status {
    while (phase != Phase::kDone && off < in.size()) {
      auto step = wire::DecodeNext(in.subspan(off));
      if (!step.ok()) return step.status();
      if (std::holds_alternative<wire::NeedMore>(*step)) return Status::Ok();
      auto& decoded = std::get<wire::Decoded>(*step);
      off += decoded.consumed;
      const wire::Message& message = decoded.frame.message;
      if (const auto* m = std::get_if<wire::ManifestEntries>(&message)) {
        if (m->request_id >= engine::kVerifyRequestIdBase) continue;  // verify's, not ours
        if (phase != Phase::kManifest) return InvalidArgument("MANIFEST_ENTRIES outside a resync");
        for (const auto& e : m->entries) {
          RETURN_IF_ERROR(sender.AddManifestEntry(e));
          standby[e.path] = KindOf(e.kind);
        }
        if (m->flags & wire::kManifestLast) {
          ASSIGN_OR_RETURN(pending_blocks, sender.RequestResyncBlocks());
          Check(pending_blocks <= engine::kMaxResyncBlockRequests, "block requests are bounded");
          phase = pending_blocks == 0 ? Phase::kDone : Phase::kBlocks;
        }
      } else if (const auto* b = std::get_if<wire::BlocksReply>(&message)) {
        if (phase != Phase::kBlocks) return InvalidArgument("BLOCKS_REPLY outside a resync");
        ASSIGN_OR_RETURN(bool last, sender.AddBlocks(*b));
        if (last && --pending_blocks == 0) phase = Phase::kDone;
      } else if (!std::holds_alternative<wire::Pong>(message) &&
                 !std::holds_alternative<wire::Ping>(message)) {
        return InvalidArgument("unexpected frame from the standby");
      }
    }
    if (phase != Phase::kDone) return Status::Ok();  // the session is still waiting
    size_t before = sink.messages.size();
    RETURN_IF_ERROR(sender.Resync(&live));
    Check(std::holds_alternative<wire::ResyncBegin>(sink.messages[before]) &&
              std::holds_alternative<wire::ResyncEnd>(sink.messages.back()),
          "a resync is framed by RESYNC_BEGIN and RESYNC_END");
    const bool consistent = Consistent(standby, g_tree->root_count());
    if (g_trace) {
      std::fprintf(stderr, "resync: %zu messages, %zu block requests asked, consistent=%d\n",
                   sink.messages.size() - before,
                   static_cast<size_t>(sender.stats().resync_block_requests), consistent);
    }
    if (consistent) {
      std::vector<wire::Message> changes(
          sink.messages.begin() + static_cast<std::ptrdiff_t>(before), sink.messages.end());
      Replay(standby, changes);
      Check(standby == primary, "the resync turns a possible standby tree into the primary's");
    }
    return Status::Ok();
  };
  status = run();
  if (g_trace) std::fprintf(stderr, "status: %s\n", status.ok() ? "ok" : status.message().c_str());
  if (!status.ok()) Check(!status.message().empty(), "an error carries a reason");
  return 0;
}
