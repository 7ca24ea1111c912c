// The symlink flipper: a hostile local process for tests/security/symlink_flip_test.cpp.
// For each level it is given (a directory, a name in it, a partner name and a symlink
// target), it plants the partner as a symlink to the target, then swaps the name and the
// partner with renameat2(RENAME_EXCHANGE) in a tight loop, so the name is a real
// directory one instant and a symlink pointing out of the sync root the next. Each level's
// directory is held by an O_PATH fd opened at start, so a deeper level keeps flipping
// inside the real directory wherever an outer level has moved it.
//
// A name the standby removed is planted again (the partner symlink) or moved back (the
// real directory), so the race lasts as long as the flipper runs. On SIGTERM, at the
// time limit or after the swap limit it stops, puts each real directory back at its
// name, removes its symlinks, sets `done` in the counters and exits 0.
//
// Usage: flipper COUNTERS_FILE MAX_SECONDS MAX_SWAPS (--level DIR NAME PARTNER TARGET)...
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/security/flipper.h"

namespace {

using hasync::testing::FlipCounters;

constexpr auto kRelease = std::memory_order_release;
constexpr auto kRelaxed = std::memory_order_relaxed;
// At most this many levels; the test uses two (the directory and one below it).
constexpr size_t kMaxLevels = 8;

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

struct Level {
  int dir_fd = -1;
  std::string name, partner, target;
};

// -1 when the name does not exist, else its S_IFMT bits (never following a symlink).
int KindOf(int dir_fd, const std::string& name) {
  struct stat st {};
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return -1;
  return static_cast<int>(st.st_mode & S_IFMT);
}

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// One swap; on a missing name, re-arms the level so the next swap can race again.
void Flip(const Level& l, FlipCounters* c) {
  if (renameat2(l.dir_fd, l.name.c_str(), l.dir_fd, l.partner.c_str(), RENAME_EXCHANGE) == 0) {
    c->swaps.fetch_add(1, kRelease);
    return;
  }
  if (errno != ENOENT) {
    c->errors.fetch_add(1, kRelaxed);
    return;
  }
  c->missing.fetch_add(1, kRelaxed);
  const int partner = KindOf(l.dir_fd, l.partner);
  if (partner < 0) {
    if (symlinkat(l.target.c_str(), l.dir_fd, l.partner.c_str()) == 0) {
      c->recreated.fetch_add(1, kRelaxed);
    }
  } else if (partner == S_IFDIR && KindOf(l.dir_fd, l.name) < 0) {
    // The symlink at the name was removed while the real directory was at the partner:
    // put the directory back so the next exchange swaps it out again.
    renameat2(l.dir_fd, l.partner.c_str(), l.dir_fd, l.name.c_str(), RENAME_NOREPLACE);
  }
}

// Leaves the real directory at its name and no symlink of ours behind. True when the
// name is a directory afterwards.
bool Restore(const Level& l) {
  if (KindOf(l.dir_fd, l.name) == S_IFLNK && KindOf(l.dir_fd, l.partner) == S_IFDIR) {
    renameat2(l.dir_fd, l.name.c_str(), l.dir_fd, l.partner.c_str(), RENAME_EXCHANGE);
  }
  if (KindOf(l.dir_fd, l.partner) == S_IFLNK) unlinkat(l.dir_fd, l.partner.c_str(), 0);
  if (KindOf(l.dir_fd, l.name) == S_IFLNK) unlinkat(l.dir_fd, l.name.c_str(), 0);
  if (KindOf(l.dir_fd, l.name) < 0 && KindOf(l.dir_fd, l.partner) == S_IFDIR) {
    renameat2(l.dir_fd, l.partner.c_str(), l.dir_fd, l.name.c_str(), RENAME_NOREPLACE);
  }
  return KindOf(l.dir_fd, l.name) == S_IFDIR;
}

int Usage() {
  fprintf(stderr,
          "usage: flipper COUNTERS_FILE MAX_SECONDS MAX_SWAPS "
          "(--level DIR NAME PARTNER TARGET)...\n");
  return hasync::testing::kFlipperUsage;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 9) return Usage();
  const char* counters_path = argv[1];
  const int64_t max_seconds = std::atoll(argv[2]);
  const uint64_t max_swaps = std::strtoull(argv[3], nullptr, 10);
  if (max_seconds <= 0 || max_seconds > 3600 || max_swaps == 0) return Usage();
  std::vector<Level> levels;
  for (int i = 4; i < argc;) {
    if (std::strcmp(argv[i], "--level") != 0 || i + 4 >= argc || levels.size() == kMaxLevels) {
      return Usage();
    }
    Level l;
    l.dir_fd = open(argv[i + 1], O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (l.dir_fd < 0) {
      fprintf(stderr, "flipper: open %s: %s\n", argv[i + 1], strerror(errno));
      return hasync::testing::kFlipperSetupFailed;
    }
    l.name = argv[i + 2];
    l.partner = argv[i + 3];
    l.target = argv[i + 4];
    levels.push_back(std::move(l));
    i += 5;
  }

  int cfd = open(counters_path, O_RDWR | O_CLOEXEC);
  if (cfd < 0 || ftruncate(cfd, sizeof(FlipCounters)) != 0) {
    fprintf(stderr, "flipper: counters %s: %s\n", counters_path, strerror(errno));
    return hasync::testing::kFlipperSetupFailed;
  }
  void* map = mmap(nullptr, sizeof(FlipCounters), PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
  close(cfd);
  if (map == MAP_FAILED) return hasync::testing::kFlipperSetupFailed;
  auto* c = static_cast<FlipCounters*>(map);  // zero-filled by ftruncate; atomics of zero

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  for (const Level& l : levels) {
    if (KindOf(l.dir_fd, l.name) != S_IFDIR) {
      fprintf(stderr, "flipper: %s is not a directory at start\n", l.name.c_str());
      return hasync::testing::kFlipperSetupFailed;
    }
    if (KindOf(l.dir_fd, l.partner) < 0 &&
        symlinkat(l.target.c_str(), l.dir_fd, l.partner.c_str()) != 0) {
      fprintf(stderr, "flipper: symlink %s: %s\n", l.partner.c_str(), strerror(errno));
      return hasync::testing::kFlipperSetupFailed;
    }
    // Probe: a filesystem without RENAME_EXCHANGE cannot host this test at all.
    if (renameat2(l.dir_fd, l.name.c_str(), l.dir_fd, l.partner.c_str(), RENAME_EXCHANGE) != 0) {
      const int err = errno;
      fprintf(stderr, "flipper: renameat2(RENAME_EXCHANGE) %s: %s\n", l.name.c_str(),
              strerror(err));
      Restore(l);
      return err == EINVAL || err == ENOSYS ? hasync::testing::kFlipperNoExchange
                                            : hasync::testing::kFlipperSetupFailed;
    }
    c->swaps.fetch_add(1, kRelease);
  }
  c->magic.store(FlipCounters::kMagic, kRelease);

  const int64_t deadline = NowNs() + max_seconds * 1'000'000'000;
  uint64_t n = 0;
  while (g_stop == 0 && c->swaps.load(kRelaxed) < max_swaps) {
    Flip(levels[n % levels.size()], c);
    if (++n % 256 == 0 && NowNs() >= deadline) break;
  }

  uint64_t restored = 0;
  for (auto l = levels.rbegin(); l != levels.rend(); ++l) restored += Restore(*l) ? 1u : 0u;
  c->restored.store(restored, kRelaxed);
  c->done.store(1, kRelease);
  printf("flipper swaps=%llu missing=%llu recreated=%llu errors=%llu restored=%llu/%zu\n",
         static_cast<unsigned long long>(c->swaps.load(kRelaxed)),
         static_cast<unsigned long long>(c->missing.load(kRelaxed)),
         static_cast<unsigned long long>(c->recreated.load(kRelaxed)),
         static_cast<unsigned long long>(c->errors.load(kRelaxed)),
         static_cast<unsigned long long>(restored), levels.size());
  return hasync::testing::kFlipperOk;
}
