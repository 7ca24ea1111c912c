// lag_helper: the replication-lag writer and watcher of apply_pipeline.sh in C++, for
// rates the Python ones (replication_helper.py lag-writer / lag-watch) cannot pace or
// follow on a 2-CPU host next to both nodes (they top out near 2,500 changes/s).
// Same arguments, same files, same JSON on stdout, same clock (CLOCK_MONOTONIC, as
// Python's time.monotonic), so lag-report reads either.
//
//   lag_helper writer DIR RATE SECONDS FILES OUT
//       RATE × SECONDS paced writes, each open(O_TRUNC) + write("seq N\n" + 1000 bytes)
//       + close of DIR/l<k % 10>/f<k>, k = seq % FILES; (seq, t_closed) pairs to OUT.
//   lag_helper watch DIR TIMEOUT LASTSEQ READY OUT
//       inotify on DIR/l0..l9; on each close-write / moved-to / create of an f* file,
//       reads its head and records when each seq was first seen; {seq: t} to OUT. Ends
//       when LASTSEQ has been seen and 0.5 s pass without an event, or at TIMEOUT s.
//
// Build: g++ -std=c++20 -O2 scripts/perf/lag_helper.cpp -o lag_helper
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

constexpr int kSubdirs = 10;

double Mono() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "lag_helper: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

void SleepUntil(double t) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(t);
  ts.tv_nsec = static_cast<long>((t - static_cast<double>(ts.tv_sec)) * 1e9);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// Writes OUT whole or dies: a full disk must not leave half a JSON file behind a 0 exit.
void CloseOrDie(FILE* f, const char* outp) {
  if (std::ferror(f) != 0 || std::fclose(f) != 0) Die(std::string("write ") + outp);
}

int Writer(const std::string& root, double rate, double seconds, long files, const char* outp) {
  const long total = static_cast<long>(rate * seconds);
  for (int d = 0; d < kSubdirs; ++d) {
    std::string p = root + "/l" + std::to_string(d);
    if (mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) Die("mkdir " + p);
  }
  std::string pad(1000, 'x');
  std::vector<std::pair<long, double>> recs;
  recs.reserve(static_cast<size_t>(total));
  const double t0 = Mono() + 0.05;
  long late = 0;
  std::string path, body;
  for (long seq = 0; seq < total; ++seq) {
    const double due = t0 + static_cast<double>(seq) / rate;
    const double now = Mono();
    if (due > now) {
      SleepUntil(due);
    } else if (now - due > 0.005) {
      ++late;
    }
    const long k = seq % files;
    path = root + "/l" + std::to_string(k % kSubdirs) + "/f" + std::to_string(k);
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) Die("open " + path);
    body = "seq " + std::to_string(seq) + "\n" + pad;
    const ssize_t put = write(fd, body.data(), body.size());
    if (put < 0) Die("write " + path);
    if (put != static_cast<ssize_t>(body.size())) {
      errno = EIO;
      Die("short write to " + path);
    }
    close(fd);
    recs.emplace_back(seq, Mono());
  }
  const double t1 = Mono();
  FILE* f = std::fopen(outp, "w");
  if (f == nullptr) Die(std::string("open ") + outp);
  std::fputc('[', f);
  for (size_t i = 0; i < recs.size(); ++i) {
    std::fprintf(f, "%s[%ld, %.9f]", i ? ", " : "", recs[i].first, recs[i].second);
  }
  std::fputs("]\n", f);
  CloseOrDie(f, outp);
  std::printf(
      "{\"writes\": %ld, \"seconds\": %.6f, \"achieved_rate\": %.3f, \"late_over_5ms\": %ld, "
      "\"last_seq\": %ld, \"writer\": \"c++\"}\n",
      total, t1 - t0, static_cast<double>(total) / (t1 - t0), late, total - 1);
  return 0;
}

int Watch(const std::string& root, double timeout, long lastseq, const char* ready,
          const char* outp) {
  const double deadline = Mono() + timeout;
  int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (in < 0) Die("inotify_init1");
  std::unordered_map<int, std::string> dirs;
  for (int d = 0; d < kSubdirs; ++d) {
    std::string p = root + "/l" + std::to_string(d);
    int wd = inotify_add_watch(in, p.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE);
    if (wd < 0) Die("inotify_add_watch " + p);
    dirs[wd] = p;
  }
  int r = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (r < 0) Die(std::string("open ") + ready);
  close(r);
  std::unordered_map<long, double> seen;
  long overflow = 0;
  double last_at = -1;
  alignas(inotify_event) char buf[1 << 16];
  std::string path;
  while (Mono() < deadline) {
    pollfd p{in, POLLIN, 0};
    // Never negative: poll(-1) would wait for an event that may never come.
    const double wait = std::clamp(deadline - Mono(), 0.0, 0.5);
    int n = poll(&p, 1, static_cast<int>(wait * 1000));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Die("poll");
    if (n == 0) {
      if (seen.count(lastseq) != 0) break;  // the last write arrived; quiet for 0.5 s
      continue;
    }
    ssize_t len = read(in, buf, sizeof buf);
    if (len < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (len < 0) Die("read inotify");
    for (char* q = buf; q < buf + len;) {
      auto* ev = reinterpret_cast<inotify_event*>(q);
      q += sizeof(inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        ++overflow;
        continue;
      }
      auto it = dirs.find(ev->wd);
      if (it == dirs.end() || ev->len == 0 || ev->name[0] != 'f') continue;
      const double t = Mono();
      path = it->second + "/" + ev->name;
      int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;  // replaced again already
      char head[33];
      ssize_t got = read(fd, head, 32);
      close(fd);
      if (got < 5 || std::memcmp(head, "seq ", 4) != 0) continue;
      head[got] = '\0';
      char* end = nullptr;
      long seq = std::strtol(head + 4, &end, 10);
      if (end == head + 4 || *end != '\n') continue;
      if (seen.emplace(seq, t).second) last_at = t;
    }
  }
  FILE* f = std::fopen(outp, "w");
  if (f == nullptr) Die(std::string("open ") + outp);
  std::fputc('{', f);
  bool first = true;
  for (const auto& [seq, t] : seen) {
    std::fprintf(f, "%s\"%ld\": %.9f", first ? "" : ", ", seq, t);
    first = false;
  }
  std::fputs("}\n", f);
  CloseOrDie(f, outp);
  if (last_at < 0) {
    std::printf("{\"seen\": %zu, \"overflow\": %ld, \"last_at\": null}\n", seen.size(), overflow);
  } else {
    std::printf("{\"seen\": %zu, \"overflow\": %ld, \"last_at\": %.9f}\n", seen.size(), overflow,
                last_at);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 6 && a[0] == "writer") {
    return Writer(a[1], std::atof(a[2].c_str()), std::atof(a[3].c_str()), std::atol(a[4].c_str()),
                  a[5].c_str());
  }
  if (a.size() == 6 && a[0] == "watch") {
    return Watch(a[1], std::atof(a[2].c_str()), std::atol(a[3].c_str()), a[4].c_str(),
                 a[5].c_str());
  }
  std::fprintf(stderr,
               "usage: lag_helper writer DIR RATE SECONDS FILES OUT\n"
               "       lag_helper watch DIR TIMEOUT LASTSEQ READY OUT\n");
  return 2;
}
