// Not a test: the cost on the standby of a 1 % change of large files (issue 19), block
// patch through a temp copy vs in place under an undo record, next to rsync's delta
// transfer of the same change between two local directories (--no-whole-file, so rsync
// reads the basis and writes the new file as over the network; --fsync) in the same run.
// Prints seconds and the bytes the disk wrote meanwhile (its sector counter) per mode. Run by hand (docs/PERFORMANCE.md):
//   inplace_patch [dir on the filesystem to measure] [files] [MiB each] [percent]
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/apply/inplace.h"
#include "engine/apply/tree.h"

namespace fs = std::filesystem;
using hasync::engine::apply::Batch;
using hasync::engine::apply::ContentBase;
using hasync::engine::apply::Tree;
using hasync::engine::apply::TreeOptions;

namespace {

struct Change {
  std::vector<std::pair<uint64_t, std::string>> blocks;
  std::string want;
};

// Bytes the block device under `dir` has written so far (/sys/dev/block/M:N/stat, field
// 7, sectors of 512 bytes), after a sync(). A process's own write_bytes is no measure on
// kernels whose page cache uses large folios (6.18 here): dirtying one 4 KiB block counts
// the whole folio (up to 2 MiB), although only the dirty blocks reach the disk. Other
// writers on the same device add noise: the machine is shared (docs/PERFORMANCE.md).
std::string g_stat_path;
uint64_t WrittenBytes() {
  ::sync();
  FILE* f = std::fopen(g_stat_path.c_str(), "r");
  unsigned long long v[7] = {};
  if (f == nullptr || std::fscanf(f, "%llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                                  &v[3], &v[4], &v[5], &v[6]) != 7) {
    std::fprintf(stderr, "read %s failed\n", g_stat_path.c_str());
    std::exit(1);
  }
  std::fclose(f);
  return v[6] * 512;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void PutHere(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size()) ||
      ::fsync(fd) != 0) {
    std::fprintf(stderr, "write %s failed\n", path.c_str());
    std::exit(1);
  }
  ::close(fd);
}

// In a child process, so that the setup's writes are not counted as this process's.
void Put(const std::string& path, const std::string& data) {
  pid_t pid = ::fork();
  if (pid == 0) {
    PutHere(path, data);
    ::_exit(0);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid || status != 0) {
    std::fprintf(stderr, "setup of %s failed\n", path.c_str());
    std::exit(1);
  }
}

std::string Random(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, 8);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "/var/tmp/hasync-inplace-bench";
  int files = argc > 2 ? std::atoi(argv[2]) : 4;
  uint64_t mib = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 32;
  double percent = argc > 4 ? std::atof(argv[4]) : 1.0;
  const size_t size = static_cast<size_t>(mib) << 20;
  constexpr size_t kBlock = 4096;
  fs::remove_all(dir);
  fs::create_directories(dir + "/state");
  {
    struct stat st {};
    ::stat(dir.c_str(), &st);
    g_stat_path = fmt::format("/sys/dev/block/{}:{}/stat", major(st.st_dev), minor(st.st_dev));
  }
  std::mt19937_64 rng(19);
  std::vector<std::string> base;
  std::vector<Change> changes;
  uint64_t changed = 0;
  for (int f = 0; f < files; ++f) {
    base.push_back(Random(rng, size));
    Change c;
    c.want = base.back();
    const size_t blocks = static_cast<size_t>(static_cast<double>(size) * percent / 100.0) / kBlock;
    for (size_t b = 0; b < blocks; ++b) {
      uint64_t off = (rng() % (size / kBlock)) * kBlock;
      std::string data = Random(rng, kBlock);
      c.want.replace(off, kBlock, data);
      c.blocks.emplace_back(off, std::move(data));
      changed += kBlock;
    }
    changes.push_back(std::move(c));
  }
  std::printf("%d files of %llu MiB, %.2f %% changed in 4 KiB blocks: %.2f MiB changed, in %s\n",
              files, static_cast<unsigned long long>(mib), percent,
              static_cast<double>(changed) / (1 << 20), dir.c_str());

  auto run_hasync = [&](const char* name, bool inplace) {
    std::string root = dir + "/" + name;
    fs::create_directories(root);
    for (int f = 0; f < files; ++f) Put(fmt::format("{}/f{}", root, f), base[static_cast<size_t>(f)]);
    ::sync();
    TreeOptions o;
    if (inplace) o.undo_dir = dir + "/state/undo";
    auto tree = Tree::Open(root, o);
    if (!tree.ok()) {
      std::fprintf(stderr, "%s\n", tree.status().ToString().c_str());
      std::exit(1);
    }
    std::vector<hasync::Hash128> hashes;  // the primary's work, not timed
    for (const Change& c : changes) {
      hashes.push_back(hasync::Xxh3_128(std::as_bytes(std::span(c.want.data(), c.want.size()))));
    }
    uint64_t w0 = WrittenBytes();
    double t0 = Now();
    Batch batch(*tree);
    for (int f = 0; f < files; ++f) {
      const Change& c = changes[static_cast<size_t>(f)];
      auto id = batch.BeginFile(fmt::format("f{}", f), ContentBase::kCurrent);
      if (!id.ok()) {
        std::fprintf(stderr, "%s\n", id.status().ToString().c_str());
        std::exit(1);
      }
      for (const auto& [off, data] : c.blocks) {
        auto s = batch.WriteExtent(*id, off, std::as_bytes(std::span(data.data(), data.size())));
        if (!s.ok()) std::exit(1);
      }
      auto s = batch.FinishFile(*id, c.want.size(), {}, hashes[static_cast<size_t>(f)]);
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        std::exit(1);
      }
    }
    auto s = batch.Commit();
    double secs = Now() - t0;
    uint64_t written = WrittenBytes() - w0;
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      std::exit(1);
    }
    std::printf("%-28s %8.3f s  written %9.2f MiB = %6.2f x changed  (in place: %llu files)\n",
                name, secs, static_cast<double>(written) / (1 << 20),
                static_cast<double>(written) / static_cast<double>(changed),
                static_cast<unsigned long long>(tree->stats().files_patched_in_place));
    return secs;
  };

  // rsync: dst holds the old files, src the new ones.
  std::string src = dir + "/rsync-src", dst = dir + "/rsync-dst";
  fs::create_directories(src);
  fs::create_directories(dst);
  for (int f = 0; f < files; ++f) {
    Put(fmt::format("{}/f{}", dst, f), base[static_cast<size_t>(f)]);
    Put(fmt::format("{}/f{}", src, f), changes[static_cast<size_t>(f)].want);
  }
  ::sync();
  uint64_t r0 = WrittenBytes();
  double t0 = Now();
  std::string cmd = fmt::format("rsync -a -I --no-whole-file --fsync {}/ {}/", src, dst);
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "%s failed\n", cmd.c_str());
    return 1;
  }
  double rsync_s = Now() - t0;
  uint64_t rsync_w = WrittenBytes() - r0;
  std::printf("%-28s %8.3f s  written %9.2f MiB = %6.2f x changed\n", "rsync -I --no-whole-file --fsync",
              rsync_s, static_cast<double>(rsync_w) / (1 << 20),
              static_cast<double>(rsync_w) / static_cast<double>(changed));
  double inplace_s = run_hasync("block patch in place", true);
  double temp_s = run_hasync("block patch via temp copy", false);
  std::printf("ratio to rsync: temp copy %.3f, in place %.3f\n", temp_s / rsync_s, inplace_s / rsync_s);
  fs::remove_all(dir);
  return 0;
}
