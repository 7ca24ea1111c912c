// The failover simulator: a deterministic world around failover::Controller.
//
// Two nodes (A, B), a witness (W) and, in half the seeds, etcd as the arbiter (E) on a
// simulated network, with a simulated clock, disk, hook processes and scheduler, driven by
// one seeded PRNG: the same seed replays the same run event for event (FoundationDB's
// simulation, TigerBeetle's VOPR). Faults (crashes, SIGSTOP pauses of hasync or of the
// whole host, partitions, lossy links, failing hooks and persists, a hung scheduler,
// operator switchovers, etcd without quorum, slow or cut off) are drawn from the seed, and the
// invariants of docs/TESTING.md
// ("Failover simulator") are checked after every event. Nothing here reads a clock,
// starts a thread or touches a file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/failover/controller.h"

namespace hasync::sim {

struct SimOptions {
  uint64_t seed = 1;
  engine::failover::Mutations mutations;
  bool keep_trace = false;   // keep every trace line (for printing)
  bool hash_trace = false;   // hash every trace line (determinism check)
  bool print_trace = false;  // print every trace line as it happens (survives an abort)
  int64_t duration_ns = 0;   // 0: drawn from the seed
};

// Counters, summed over seeds by Add.
struct SimStats {
  uint64_t seeds = 0;
  int64_t simulated_ns = 0;
  uint64_t events = 0;
  uint64_t promotions = 0;
  uint64_t demotions = 0;
  uint64_t self_fences = 0;
  uint64_t switchovers_requested = 0;
  uint64_t switchovers_completed = 0;
  uint64_t failovers_after_crash = 0;
  uint64_t liveness_checked = 0;
  uint64_t liveness_skipped = 0;
  uint64_t arbiter_seeds = 0;
  uint64_t arbiter_acquired = 0;      // ArbiterAcquired fed
  uint64_t arbiter_held = 0;          // ArbiterHeld fed
  uint64_t arbiter_lost = 0;          // ArbiterLost fed
  uint64_t arbiter_self_fences = 0;   // a primary's demotion begun at its renewal deadline
  uint64_t arbiter_held_by_self = 0;  // a standby's try found the key its own lease holds
  // Seeds where a standby's tries kept finding its own key for longer than TTL + window.
  uint64_t arbiter_self_held_stuck_seeds = 0;
  std::map<std::string, uint64_t> faults;           // fault kind → how many injected
  std::map<std::string, uint64_t> envelope_splits;  // limit → seeds that had two schedulers
  std::map<std::string, uint64_t> configs;          // guard configuration → seeds
  void Add(const SimStats& o);
};

struct SimResult {
  bool ok = true;
  std::string invariant;  // which one failed
  std::string detail;
  int64_t failed_at_ns = 0;
  uint64_t trace_hash = 0;
  std::vector<std::string> trace;
  SimStats stats;
};

SimResult RunSeed(const SimOptions& options);

// The state table of docs/FAILOVER.md, from failover::Transitions(), between marker lines.
std::string TransitionTable();

// "skip_lease_check" etc.; false for an unknown name.
bool MutationByName(std::string_view name, engine::failover::Mutations* m);
inline constexpr std::string_view kMutationNames[] = {"skip_lease_check", "adopt_lower_epoch",
                                                      "skip_quorum_check", "promote_before_persist",
                                                      "skip_arbiter_fence"};

}  // namespace hasync::sim
