// failover_sim: runs the failover simulator (tests/sim/sim.h) from the command line.
//
//   failover_sim --seed S [--trace] [--mutation NAME]   one seed; the trace on failure or asked
//   failover_sim --seeds N [--first-seed S] [--mutation NAME]   N seeds, summary counts
//   failover_sim --table                                 docs/FAILOVER.md's state table
// Exit status: 0 all seeds passed, 1 a seed failed, 2 usage.
#include <fmt/format.h>

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tests/sim/sim.h"

namespace {

// A controller assertion (HASYNC_ASSERT in Go(): a transition not in the table) aborts
// the process; say which seed it was and how to replay it.
volatile uint64_t g_seed = 0;
volatile bool g_running = false;
char g_mutation[64] = "";

void OnAbort(int) {
  if (g_running) {
    char buf[256];
    const int len = std::snprintf(
        buf, sizeof buf,
        "FAIL seed=%llu invariant=controller-assertion (a transition not in the table?)\n"
        "replay: failover_sim --seed %llu --trace%s%s\n",
        static_cast<unsigned long long>(g_seed), static_cast<unsigned long long>(g_seed),
        g_mutation[0] ? " --mutation " : "", g_mutation);
    if (len > 0) (void)!write(2, buf, static_cast<size_t>(len));
  }
  std::signal(SIGABRT, SIG_DFL);
  std::abort();
}

int Usage() {
  std::fprintf(stderr,
               "usage: failover_sim --seed S [--trace] [--mutation NAME]\n"
               "       failover_sim --seeds N [--first-seed S] [--mutation NAME]\n"
               "       failover_sim --table\n"
               "mutations: skip_lease_check adopt_lower_epoch skip_quorum_check "
               "promote_before_persist skip_arbiter_fence\n");
  return 2;
}

std::string Replay(uint64_t seed, std::string_view mutation) {
  std::string cmd = fmt::format("failover_sim --seed {} --trace", seed);
  if (!mutation.empty()) cmd += fmt::format(" --mutation {}", mutation);
  return cmd;
}

void PrintStats(const hasync::sim::SimStats& s, double wall_s) {
  fmt::print("seeds: {}\n", s.seeds);
  fmt::print("simulated hours: {:.1f}\n", static_cast<double>(s.simulated_ns) / 3.6e12);
  fmt::print("events: {}\n", s.events);
  fmt::print("wall seconds: {:.2f} ({:.0f} seeds/s)\n", wall_s,
             wall_s > 0 ? static_cast<double>(s.seeds) / wall_s : 0.0);
  fmt::print("promotions: {}\ndemotions: {}\nself-fences (lease quorum_check failed): {}\n",
             s.promotions, s.demotions, s.self_fences);
  fmt::print("switchovers: {} requested, {} completed\n", s.switchovers_requested,
             s.switchovers_completed);
  fmt::print("failovers with the old primary's host down: {}\n", s.failovers_after_crash);
  fmt::print("liveness checks: {} (skipped: {})\n", s.liveness_checked, s.liveness_skipped);
  fmt::print(
      "arbiter seeds: {}; keys won {}, tries refused (held) {}, leases lost {}, "
      "self-fences at the renewal deadline {}, tries that found the key held by the "
      "node itself {} (seeds where that lasted over TTL + window: {})\n",
      s.arbiter_seeds, s.arbiter_acquired, s.arbiter_held, s.arbiter_lost, s.arbiter_self_fences,
      s.arbiter_held_by_self, s.arbiter_self_held_stuck_seeds);
  fmt::print("configurations:");
  for (const auto& [k, v] : s.configs) fmt::print(" {}={}", k, v);
  fmt::print("\nfaults:");
  for (const auto& [k, v] : s.faults) fmt::print(" {}={}", k, v);
  fmt::print("\nenvelope-limit splits (seeds with two schedulers outside the claim):");
  if (s.envelope_splits.empty()) fmt::print(" none");
  for (const auto& [k, v] : s.envelope_splits) fmt::print(" {}={}", k, v);
  fmt::print("\n");
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = 0;
  uint64_t seeds = 0;
  uint64_t first = 1;
  bool one = false;
  bool trace = false;
  bool table = false;
  std::string mutation;
  hasync::sim::SimOptions opt;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--seed") {
      const char* v = value();
      if (!v) return Usage();
      seed = std::strtoull(v, nullptr, 10);
      one = true;
    } else if (a == "--seeds") {
      const char* v = value();
      if (!v) return Usage();
      seeds = std::strtoull(v, nullptr, 10);
    } else if (a == "--first-seed") {
      const char* v = value();
      if (!v) return Usage();
      first = std::strtoull(v, nullptr, 10);
    } else if (a == "--mutation") {
      const char* v = value();
      if (!v || !hasync::sim::MutationByName(v, &opt.mutations)) return Usage();
      mutation = v;
    } else if (a == "--trace") {
      trace = true;
    } else if (a == "--table") {
      table = true;
    } else {
      return Usage();
    }
  }
  std::snprintf(g_mutation, sizeof g_mutation, "%s", mutation.c_str());
  std::signal(SIGABRT, OnAbort);
  if (table) {
    fmt::print("{}", hasync::sim::TransitionTable());
    return 0;
  }
  if (one) {
    opt.seed = seed;
    // With --trace every line is printed as it happens, so a controller assertion still
    // leaves the trace up to it.
    opt.print_trace = trace;
    opt.keep_trace = !trace;
    opt.hash_trace = true;
    g_seed = seed;
    g_running = true;
    const hasync::sim::SimResult r = hasync::sim::RunSeed(opt);
    g_running = false;
    if (!trace && !r.ok) {
      for (const auto& line : r.trace) fmt::print("{}\n", line);
    }
    std::fflush(stdout);
    fmt::print("trace_hash={:016x}\n", r.trace_hash);
    PrintStats(r.stats, 0);
    if (!r.ok) {
      fmt::print("FAIL seed={} invariant={} at={:.3f}s: {}\nreplay: {}\n", seed, r.invariant,
                 static_cast<double>(r.failed_at_ns) / 1e9, r.detail, Replay(seed, mutation));
      return 1;
    }
    fmt::print("PASS seed={}\n", seed);
    return 0;
  }
  if (seeds == 0) return Usage();
  hasync::sim::SimStats total;
  uint64_t failures = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t s = first; s < first + seeds; ++s) {
    opt.seed = s;
    g_seed = s;
    g_running = true;
    const hasync::sim::SimResult r = hasync::sim::RunSeed(opt);
    g_running = false;
    total.Add(r.stats);
    if (!r.ok) {
      ++failures;
      fmt::print("FAIL seed={} invariant={} at={:.3f}s: {}\n  replay: {}\n", s, r.invariant,
                 static_cast<double>(r.failed_at_ns) / 1e9, r.detail, Replay(s, mutation));
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PrintStats(total, wall);
  fmt::print("failures: {}\n", failures);
  return failures == 0 ? 0 : 1;
}
