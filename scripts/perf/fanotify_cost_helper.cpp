// Helper of scripts/perf/fanotify_cost.sh: the small-file writer and the three kinds of
// listener whose cost on that writer the script measures (DESIGN §6, "the cost of
// watching"). Not part of hasync; built by the script with the watcher's sources.
//
//   writer DIR N        create+write(4 KiB)+close N new files in DIR; prints files/s
//   bare PATH           filesystem mark on PATH's filesystem, drain and discard
//   hasync SPOOL        hasync's Watcher on SPOOL (filesystem mark + filtering)
//   inode SPOOL         one inode mark per directory under SPOOL (FAN_EVENT_ON_CHILD)
// Listeners print "ready" once marked, run until SIGTERM (bounded: at most 10 min),
// then print "events=<n> cpu_ms=<user+sys>".
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/fanotify.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/watch/clock.h"
#include "engine/watch/watcher.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void OnTerm(int) { g_stop = 1; }

constexpr uint64_t kMask =
    FAN_CREATE | FAN_DELETE | FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ATTRIB | FAN_ONDIR | FAN_RENAME;
constexpr auto kMaxRun = std::chrono::minutes(10);

double CpuMs() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

int Fail(const char* what) {
  std::fprintf(stderr, "fanotify_cost_helper: %s: %s\n", what, std::strerror(errno));
  return 1;
}

int Writer(const std::string& dir, long n) {
  char buf[4096];
  std::memset(buf, 'x', sizeof(buf));
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    std::string p = dir + "/f" + std::to_string(i);
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Fail("open");
    if (::write(fd, buf, sizeof(buf)) != static_cast<ssize_t>(sizeof(buf))) return Fail("write");
    ::close(fd);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%.0f\n", static_cast<double>(n) / s);
  return 0;
}

// Reads and discards until SIGTERM; returns the number of events read.
long DrainFd(int fd) {
  std::vector<char> buf(64 * 1024);
  long events = 0;
  const auto end = std::chrono::steady_clock::now() + kMaxRun;
  while (!g_stop && std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    for (;;) {
      ssize_t r = ::read(fd, buf.data(), buf.size());
      if (r <= 0) break;
      for (size_t off = 0; off + sizeof(fanotify_event_metadata) <= static_cast<size_t>(r);) {
        fanotify_event_metadata md;
        std::memcpy(&md, buf.data() + off, sizeof(md));
        if (md.event_len == 0) break;
        ++events;
        off += md.event_len;
      }
    }
  }
  return events;
}

int Group() {
  return ::fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME_TARGET,
                         O_RDONLY | O_LARGEFILE);
}

int Bare(const std::string& path) {
  int fd = Group();
  if (fd < 0) return Fail("fanotify_init");
  if (::fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, kMask, AT_FDCWD, path.c_str()) != 0) {
    return Fail("fanotify_mark");
  }
  std::printf("ready\n");
  std::fflush(stdout);
  long events = DrainFd(fd);
  std::printf("events=%ld cpu_ms=%.0f\n", events, CpuMs());
  return 0;
}

int Inode(const std::string& spool) {
  int fd = Group();
  if (fd < 0) return Fail("fanotify_init");
  long marks = 0;
  auto mark = [&](const std::string& d) {
    if (::fanotify_mark(fd, FAN_MARK_ADD, kMask | FAN_EVENT_ON_CHILD, AT_FDCWD, d.c_str()) == 0) {
      ++marks;
    }
  };
  mark(spool);
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(spool, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->symlink_status(ec).type() == std::filesystem::file_type::directory) {
      mark(it->path().string());
    }
  }
  std::printf("ready marks=%ld\n", marks);
  std::fflush(stdout);
  long events = DrainFd(fd);
  std::printf("events=%ld cpu_ms=%.0f\n", events, CpuMs());
  return 0;
}

int Hasync(const std::string& spool) {
  hasync::engine::watch::MonotonicClock clock;
  hasync::engine::watch::WatcherOptions o;
  o.roots = {spool};
  auto w = hasync::engine::watch::Watcher::Open(o, &clock);
  if (!w.ok()) {
    std::fprintf(stderr, "fanotify_cost_helper: %s\n", w.status().ToString().c_str());
    return 1;
  }
  std::printf("ready mode=\"%s\"\n", w->ModeDescription().c_str());
  std::fflush(stdout);
  std::vector<hasync::engine::watch::WatchEvent> out;
  long emitted = 0;
  const auto end = std::chrono::steady_clock::now() + kMaxRun;
  while (!g_stop && std::chrono::steady_clock::now() < end) {
    auto n = w->Poll(100);
    if (!n.ok()) {
      std::fprintf(stderr, "fanotify_cost_helper: %s\n", n.status().ToString().c_str());
      return 1;
    }
    out.clear();
    emitted += static_cast<long>(w->Drain(&out, 1 << 20));
  }
  auto s = w->stats();
  std::printf(
      "events=%llu emitted=%ld dropped_outside=%llu misses=%llu gone=%llu no_dir=%llu "
      "rescans=%llu cpu_ms=%.0f\n",
      static_cast<unsigned long long>(s.translator.events), emitted,
      static_cast<unsigned long long>(s.translator.dropped_outside),
      static_cast<unsigned long long>(s.translator.cache_misses),
      static_cast<unsigned long long>(s.translator.gone),
      static_cast<unsigned long long>(s.translator.no_dir),
      static_cast<unsigned long long>(s.translator.rescans), CpuMs());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s writer DIR N | bare PATH | hasync SPOOL | inode SPOOL\n",
                 argv[0]);
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = OnTerm;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  std::string mode = argv[1];
  if (mode == "writer" && argc == 4) return Writer(argv[2], std::atol(argv[3]));
  if (mode == "bare") return Bare(argv[2]);
  if (mode == "inode") return Inode(argv[2]);
  if (mode == "hasync") return Hasync(argv[2]);
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
