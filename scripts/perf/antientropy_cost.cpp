// antientropy_cost — what one node's walk of an anti-entropy pass costs (issue 16):
// BuildManifest, the walk a pass makes on each node, over a tree, with a CPU budget.
//
//   antientropy_cost ROOT PERCENT
//
// Prints one JSON line: entries, the thread's CPU time and the wall time of the walk,
// and the CPU time per entry. With PERCENT < 100 the walk sleeps to keep its share of
// one core (engine/sync/verify.h, CpuBudget), so wall ≈ CPU × 100 / PERCENT.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/sync/verify.h"

namespace {
double Seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s ROOT PERCENT\n", argv[0]);
    return 2;
  }
  int fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    std::perror(argv[1]);
    return 1;
  }
  const int percent = std::atoi(argv[2]);
  const double cpu0 = Seconds(CLOCK_THREAD_CPUTIME_ID), wall0 = Seconds(CLOCK_MONOTONIC);
  auto m = hasync::engine::BuildManifest({fd}, 100'000'000, nullptr, percent);
  const double cpu = Seconds(CLOCK_THREAD_CPUTIME_ID) - cpu0;
  const double wall = Seconds(CLOCK_MONOTONIC) - wall0;
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "{\"entries\": %zu, \"percent\": %d, \"cpu_s\": %.3f, \"wall_s\": %.3f, "
      "\"cpu_us_per_entry\": %.2f}\n",
      m->size(), percent, cpu, wall, cpu * 1e6 / static_cast<double>(m->size()));
  close(fd);
  return 0;
}
