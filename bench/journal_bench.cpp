// Journal micro-benchmarks: the primary's cost per change event, from the watcher's
// hand-off (Upsert / Remove) to the sender taking the entry out (Take, one at a time, as
// Sender::Pump does), for the event patterns a scheduler's state directory produces:
//   rewrite_in_place  a few state files rewritten in place again and again
//                     (Modify + CloseWrite per write): everything coalesces;
//   new_job_files     job directories in ten hash.N directories, each a mkdir and two
//                     new files (Create, Modify, CloseWrite each);
//   create_delete     temporary files created, closed and removed: nothing coalesces,
//                     the Upsert stays ahead of its Remove (DESIGN §6);
//   slurm_save        Slurm's save of a state file X, one event per syscall: write X.new,
//                     unlink X.old, link X X.old, unlink X, link X.new X, unlink X.new.
// Each iteration pushes one burst of about kBurstChanges events and then drains the
// journal, so the coalescing seen is that of a sender one burst behind.
// Counters: per_change (CPU time ÷ events pushed, in seconds), coalescing (events
// pushed ÷ entries taken) and changes (events per burst).
// Baseline: queue/<pattern> stores the same events in a std::deque of Change, with no
// per-path index and no coalescing, and pops them the same way: the least an ordered
// list of changes costs. scripts/perf/microbench.sh divides journal/<pattern> by it.
// Run: build/bench/journal_bench, or scripts/perf/microbench.sh for the documented figures.
#include <benchmark/benchmark.h>

#include <deque>
#include <string>
#include <vector>

#include "engine/journal/journal.h"

namespace hasync::engine {
namespace {

constexpr size_t kBurstChanges = 4096;
constexpr uint32_t kRoot = 0;

// One watcher event as engine/node hands it to the journal.
struct Event {
  ChangeKind kind;
  std::string path;
};

using Burst = std::vector<Event>;

const char* const kStateFiles[] = {"job_state",  "node_state",      "part_state",
                                   "resv_state", "trigger_state",   "assoc_mgr_state",
                                   "qos_usage",  "last_config_lite"};

Burst RewriteInPlace() {
  Burst burst;
  while (burst.size() < kBurstChanges) {
    for (const char* file : kStateFiles) {
      burst.push_back({ChangeKind::kUpsert, file});  // Modify
      burst.push_back({ChangeKind::kUpsert, file});  // CloseWrite
    }
  }
  return burst;
}

Burst NewJobFiles() {
  Burst burst;
  for (int job = 4711; burst.size() < kBurstChanges; ++job) {
    const std::string dir = "hash." + std::to_string(job % 10) + "/job." + std::to_string(job);
    burst.push_back({ChangeKind::kUpsert, dir});  // mkdir
    for (const char* file : {"/script", "/environment"}) {
      for (int event = 0; event < 3; ++event) {  // Create, Modify, CloseWrite
        burst.push_back({ChangeKind::kUpsert, dir + file});
      }
    }
  }
  return burst;
}

Burst CreateDelete() {
  Burst burst;
  for (int n = 0; burst.size() < kBurstChanges; ++n) {
    const std::string path = "hash." + std::to_string(n % 10) + "/job." +
                             std::to_string(4711 + n / 4) + "/tmp." + std::to_string(n);
    burst.push_back({ChangeKind::kUpsert, path});  // Create
    burst.push_back({ChangeKind::kUpsert, path});  // CloseWrite
    burst.push_back({ChangeKind::kRemove, path});  // Delete
  }
  return burst;
}

Burst SlurmSave() {
  Burst burst;
  while (burst.size() < kBurstChanges) {
    for (const char* file : kStateFiles) {
      const std::string x = file;
      burst.push_back({ChangeKind::kUpsert, x + ".new"});  // Create X.new
      burst.push_back({ChangeKind::kUpsert, x + ".new"});  // CloseWrite X.new
      burst.push_back({ChangeKind::kRemove, x + ".old"});  // unlink X.old
      burst.push_back({ChangeKind::kUpsert, x + ".old"});  // link X X.old
      burst.push_back({ChangeKind::kRemove, x});           // unlink X
      burst.push_back({ChangeKind::kUpsert, x});           // link X.new X
      burst.push_back({ChangeKind::kRemove, x + ".new"});  // unlink X.new
    }
  }
  return burst;
}

void SetCounters(benchmark::State& state, size_t changes, size_t taken) {
  const double pushed = static_cast<double>(state.iterations()) * static_cast<double>(changes);
  // A rate (÷ CPU seconds) inverted: CPU seconds per event, which the console prints
  // with its unit ("312ns") and the JSON holds in seconds.
  state.counters["per_change"] =
      benchmark::Counter(pushed, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["coalescing"] = static_cast<double>(changes) / static_cast<double>(taken);
  state.counters["changes"] = static_cast<double>(changes);
  state.SetItemsProcessed(static_cast<int64_t>(pushed));
}

void JournalPushAndDrain(benchmark::State& state, Burst (*make)()) {
  const Burst burst = make();
  Journal journal(JournalLimits{}, 1);
  std::vector<Change> one;
  size_t taken = 0;
  for (auto _ : state) {
    for (const Event& e : burst) {
      if (e.kind == ChangeKind::kUpsert) {
        journal.Upsert(kRoot, e.path);
      } else {
        journal.Remove(kRoot, e.path);
      }
    }
    taken = 0;
    for (;;) {
      one.clear();
      if (journal.Take(one, 1) == 0) break;
      benchmark::DoNotOptimize(one.front());
      ++taken;
    }
  }
  if (journal.stats().overflows != 0) state.SkipWithError("the journal overflowed");
  SetCounters(state, burst.size(), taken);
}

void QueuePushAndDrain(benchmark::State& state, Burst (*make)()) {
  const Burst burst = make();
  std::deque<Change> queue;
  std::vector<Change> one;
  uint64_t seq = 0;
  size_t taken = 0;
  for (auto _ : state) {
    for (const Event& e : burst) {
      queue.push_back(Change{e.kind, kRoot, std::string(e.path), "", ++seq});
    }
    taken = 0;
    while (!queue.empty()) {
      one.clear();
      one.push_back(std::move(queue.front()));
      queue.pop_front();
      benchmark::DoNotOptimize(one.front());
      ++taken;
    }
  }
  SetCounters(state, burst.size(), taken);
}

BENCHMARK_CAPTURE(JournalPushAndDrain, rewrite_in_place, RewriteInPlace)
    ->Name("journal/rewrite_in_place");
BENCHMARK_CAPTURE(QueuePushAndDrain, rewrite_in_place, RewriteInPlace)
    ->Name("queue/rewrite_in_place");
BENCHMARK_CAPTURE(JournalPushAndDrain, new_job_files, NewJobFiles)->Name("journal/new_job_files");
BENCHMARK_CAPTURE(QueuePushAndDrain, new_job_files, NewJobFiles)->Name("queue/new_job_files");
BENCHMARK_CAPTURE(JournalPushAndDrain, create_delete, CreateDelete)->Name("journal/create_delete");
BENCHMARK_CAPTURE(QueuePushAndDrain, create_delete, CreateDelete)->Name("queue/create_delete");
BENCHMARK_CAPTURE(JournalPushAndDrain, slurm_save, SlurmSave)->Name("journal/slurm_save");
BENCHMARK_CAPTURE(QueuePushAndDrain, slurm_save, SlurmSave)->Name("queue/slurm_save");

}  // namespace
}  // namespace hasync::engine

BENCHMARK_MAIN();
