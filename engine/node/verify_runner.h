// VerifyRunner: `hasync verify` and the anti-entropy pass, as the node's loop runs them.
//
// Primary (docs/OPERATIONS.md "Verifying the pair"): a run is rounds of (settle, the
// standby's manifest, this node's manifest, compare) until no difference is left or one
// stays the same over two rounds; with `repair` each difference is queued for the
// sender as a resync would ship it. The anti-entropy pass (docs/REPLICATION.md
// "Anti-entropy") is the same run started every anti_entropy.interval_ms: background,
// both walks held to anti_entropy.cpu_percent of a core, every confirmed difference
// repaired. An operator's run replaces a pass in progress, and its result stays
// readable for kOperatorResultKeptNs before a pass replaces it.
//
// Standby: the primary's verify MANIFEST_REQUEST is walked on a thread of its own
// (ManifestJob) and the manifest sent from the loop once complete, to the session that
// asked.
//
// What it owns: the run in progress or the last one (its result, paged out by
// ResultJson), the schedule of the passes, and the standby's manifest job. The session,
// the sender and the journal are the node's, reached through VerifyRunner::Owner.
//
// Threading: the loop's thread only; the manifest walks run on ManifestJob's threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/config.h"
#include "engine/journal/journal.h"
#include "engine/node/metrics.h"
#include "engine/node/peer_link.h"
#include "engine/node/state.h"
#include "engine/sync/sender.h"
#include "engine/sync/verify.h"
#include "wire/messages.h"

namespace hasync::engine {

// One run: its phase, its rounds' manifests and, once done, its result.
struct VerifyRun {
  enum class Phase { kAwaitSession, kSettle, kAwaitStandby, kLocal, kDone };
  uint64_t id = 0;
  bool repair = false;      // queue a repair of each difference found (VerifyRunner::Repair)
  bool background = false;  // an anti-entropy pass, not an operator's run
  uint64_t repaired = 0;
  int max_rounds = 3;
  int round = 0;
  Phase phase = Phase::kSettle;
  int64_t started_ns = 0;
  int64_t deadline_ns = 0;
  int64_t phase_since_ns = 0;
  uint64_t request_id = 0;  // the current round's MANIFEST_REQUEST
  std::vector<wire::ManifestEntry> standby;
  std::unique_ptr<ManifestJob> local;
  std::vector<ManifestDifference> previous;  // the last round's differences
  // The result (phase kDone).
  std::string outcome;  // "identical", "differences", "inconclusive", "failed"
  std::string error;
  std::vector<ManifestDifference> confirmed;  // the same over the last two rounds
  std::vector<ManifestDifference> unsettled;  // differed, but changed between rounds
  uint64_t primary_entries = 0, standby_entries = 0;
  double seconds = 0;
};

class VerifyRunner {
 public:
  // What a run needs of the node. Every call comes on the loop's thread.
  class Owner {
   public:
    virtual ~Owner() = default;
    // "live" (resynced, on an open connection), "idle" or "opening".
    virtual std::string_view SessionState() const = 0;
    // Primary: everything seen here is durable on the standby (nothing journaled, no
    // batch open or unacknowledged, no watcher event waiting).
    virtual bool Settled() const = 0;
    // Sends a frame to the session's peer and flushes.
    virtual Status SendToPeer(wire::Message message) = 0;
    // Standby: the verify manifest, to the session's peer, flushed.
    virtual Status SendManifest(uint64_t request_id,
                                const std::vector<wire::ManifestEntry>& entries) = 0;
    // The session's connection (null when there is none); identifies who asked.
    virtual const Peer* session_peer() const = 0;
    // Ends the session (its send failed).
    virtual void EndSession(const Status& why) = 0;
    // The sync roots' directories (primary: as opened; standby: the trees' roots).
    virtual std::vector<int> RootFds() const = 0;
    // Primary: where a repair goes (null before the first session).
    virtual Sender* sender() = 0;
    virtual Journal* journal() = 0;
  };

  // `role`: the node's, fixed for the runner's life (a role change starts a new node).
  VerifyRunner(const Config& cfg, Metrics& metrics, Owner& owner, NodeRole role)
      : cfg_(cfg), metrics_(metrics), owner_(owner), role_(role) {}

  // ---- primary ----
  // `hasync verify`: starts a run (or attaches to the operator's run in progress).
  // Returns the control reply (JSON).
  std::string Start(int64_t timeout_ms, int rounds, bool repair);
  // `hasync verify-result`: the run's phase, or its result from `offset` on (JSON).
  std::string ResultJson(uint64_t id, size_t offset);
  // Every tick: steps the run in progress and starts the next anti-entropy pass when
  // due (`live`: the session with the standby is live).
  void Tick(int64_t now, bool live);
  // The standby's answer to a run's MANIFEST_REQUEST (request ids from
  // kVerifyRequestIdBase); a late answer of an earlier run is ignored.
  Status OnEntries(const wire::ManifestEntries& m);

  // ---- standby ----
  // The primary's verify request: the walk starts on a thread of its own.
  Status StartStandbyManifest(const wire::ManifestRequest& request);
  // Every tick: sends the manifest once the walk is complete.
  void StepStandbyManifest();

 private:
  void StartAntiEntropyPass(int64_t now);
  void Step(int64_t now);
  // Points the sender at the standby's version of each differing path and queues the
  // path, so the next pump ships what differs (as a resync would). Logs each one.
  void Repair(const std::vector<ManifestDifference>& diffs);
  void Finish(std::string outcome, std::string error);

  const Config& cfg_;
  Metrics& metrics_;
  Owner& owner_;
  const NodeRole role_;
  // Primary: the run in progress or the last one.
  std::unique_ptr<VerifyRun> verify_;
  uint64_t verify_count_ = 0;
  // Anti-entropy: when the next background pass may start (0: not scheduled yet; set
  // one interval after a session is first live), and when an operator's run last ended
  // (its result stays readable a while before a pass replaces it).
  int64_t next_pass_ns_ = 0;
  int64_t operator_verify_done_ns_ = 0;
  // Standby: the manifest being built for the primary's request, and for which peer.
  std::unique_ptr<ManifestJob> verify_job_;
  uint64_t verify_job_request_ = 0;
  const Peer* verify_job_peer_ = nullptr;
};

}  // namespace hasync::engine
