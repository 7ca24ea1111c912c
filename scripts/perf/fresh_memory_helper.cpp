// fresh_memory_helper: writes SIZE_MIB MiB to a new file with 1 MiB pwrites from one
// reused buffer and prints the rate as JSON. Nothing is fsynced: the figure is the
// kernel's copy into the page cache, which is what the standby's writes cost.
// usage: fresh_memory_helper PATH SIZE_MIB
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s PATH SIZE_MIB\n", argv[0]);
    return 2;
  }
  const size_t chunk = size_t{1} << 20;
  const size_t total = std::strtoull(argv[2], nullptr, 10) * chunk;
  std::vector<char> buf(chunk, 'x');
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror("open");
    return 1;
  }
  auto t0 = std::chrono::steady_clock::now();
  for (size_t off = 0; off < total; off += chunk) {
    if (pwrite(fd, buf.data(), chunk, static_cast<off_t>(off)) != static_cast<ssize_t>(chunk)) {
      std::perror("pwrite");
      return 1;
    }
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  close(fd);
  std::printf("{\"bytes\": %zu, \"seconds\": %.4f, \"mb_per_s\": %.1f}\n", total, s,
              total / s / 1e6);
  return 0;
}
