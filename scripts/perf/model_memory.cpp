// model_memory: what the primary's model of the standby (engine/sync/sender.h) costs per
// tracked file at rest, for a Slurm-like spool (DESIGN §8: ≤ 200 bytes per file).
//
// The spool (DIR/spool; DIR/complete marks it finished): `hash.<id % 10>/job.<id>/`
// `{environment,script}`, file paths of 22–29 characters, two files per job directory,
// regular files of 1–8 KiB without xattrs; the last LARGE jobs hold a large file
// `checkpoint` (≥ delta_min_bytes, so the model keeps its block hashes) instead of their
// script.
//
// Two modes, one per process so each starts from a clean heap:
//   resync    a fresh Sender walks the tree and ships everything (to a sink that
//             discards it), as a primary does at start-up: the model then holds every
//             entry with its inode, and the inode index is filled.
//   manifest  the model is filled from a manifest of the same tree (AddManifestEntry),
//             as after a reconnect: no inode is known yet, so the index stays empty.
// Reported: heap bytes in use (mallinfo2 uordblks + hblkhd) after minus before, and
// VmRSS after minus before (after malloc_trim, as the node trims after a burst), each
// divided by the entries tracked (directories included, as the node's "tracked" log
// field and docs/PERFORMANCE.md count) and by the regular files. The model's nodes live
// in slabs mapped outside malloc's heap (engine/sync/slot_pool.h), which the heap figure
// does not see: the RSS figure is the model's cost.
//
// usage: model_memory make  DIR FILES [LARGE] [LARGE_MIB]   (creates the tree once)
//        model_memory resync DIR
//        model_memory manifest DIR
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "engine/scan/scanner.h"
#include "engine/sync/sender.h"

namespace {

using hasync::Status;
using hasync::engine::FileInfo;
using hasync::engine::NodeKind;

// Discards every message, as a transport does once it has sent them.
class NullSink : public hasync::engine::MessageSink {
 public:
  Status Emit(uint64_t /*seq*/, hasync::wire::Message /*message*/) override {
    ++messages_;
    return Status::Ok();
  }
  uint64_t messages() const { return messages_; }

 private:
  uint64_t messages_ = 0;
};

size_t HeapInUse() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

size_t RssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

void Die(const std::string& what) {
  std::fprintf(stderr, "model_memory: %s\n", what.c_str());
  std::exit(1);
}

void WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die("create " + path + ": " + std::strerror(errno));
  for (size_t off = 0; off < data.size();) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n <= 0) Die("write " + path + ": " + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
  close(fd);
}

void MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    Die("mkdir " + path + ": " + std::strerror(errno));
  }
}

// FILES regular files in FILES / 2 job directories (two files each; the last
// LARGE jobs hold a large checkpoint file instead of their script).
int Make(const std::string& dir, size_t files, size_t large, size_t large_mib) {
  std::mt19937_64 rng(1);
  MakeDir(dir);
  const std::string spool = dir + "/spool";
  MakeDir(spool);
  for (int h = 0; h < 10; ++h) MakeDir(spool + "/hash." + std::to_string(h));
  const size_t jobs = (files + 1) / 2;
  uint64_t id = 1000;
  size_t made = 0;
  std::string content(8192, '\0');
  for (size_t j = 0; j < jobs && made < files; ++j) {
    id += 1 + rng() % 3;  // job ids of 4 to 6 digits at the default FILES
    std::string job = spool + "/hash." + std::to_string(id % 10) + "/job." + std::to_string(id);
    MakeDir(job);
    for (const char* name : {"environment", "script"}) {
      if (made == files) break;
      bool big = std::strcmp(name, "script") == 0 && j + large >= jobs;
      if (big) {
        std::string chunk(1 << 20, '\0');
        for (char& c : chunk) c = static_cast<char>(rng());
        std::string data;
        for (size_t m = 0; m < large_mib; ++m) data += chunk;
        WriteFile(job + "/checkpoint", data);
      } else {
        size_t len = 1024 + rng() % (7 * 1024 + 1);
        for (size_t i = 0; i < len; ++i) content[i] = static_cast<char>(rng());
        WriteFile(job + "/" + name, content.substr(0, len));
      }
      ++made;
    }
  }
  WriteFile(dir + "/complete", std::to_string(files) + "\n");
  std::printf("{\"made\": %zu, \"large\": %zu, \"large_mib\": %zu}\n", made, large, large_mib);
  return 0;
}

struct Counts {
  size_t entries = 0;  // directories, files and symlinks below the root
  size_t files = 0;
};

Counts Count(int root_fd) {
  Counts c;
  Status s = hasync::engine::ScanTree(
      root_fd, "", {},
      [&](const FileInfo& info) {
        ++c.entries;
        if (info.kind == NodeKind::kFile) ++c.files;
        return Status::Ok();
      },
      nullptr);
  if (!s.ok()) Die("scan: " + s.ToString());
  return c;
}

void Report(const char* mode, size_t tracked, const Counts& counts, size_t heap0, size_t heap1,
            size_t rss0, size_t rss1, uint64_t messages) {
  auto per = [](size_t a, size_t b, size_t n) {
    return n == 0 ? 0.0
                  : (static_cast<double>(b) - static_cast<double>(a)) / static_cast<double>(n);
  };
  std::printf(
      "{\"mode\": \"%s\", \"tracked\": %zu, \"files\": %zu, \"messages\": %llu,\n"
      " \"heap_bytes\": %zu, \"heap_per_tracked\": %.1f, \"heap_per_file\": %.1f,\n"
      " \"rss_bytes\": %zu, \"rss_per_tracked\": %.1f, \"rss_per_file\": %.1f}\n",
      mode, tracked, counts.files, static_cast<unsigned long long>(messages), heap1 - heap0,
      per(heap0, heap1, tracked), per(heap0, heap1, counts.files), rss1 - rss0,
      per(rss0, rss1, tracked), per(rss0, rss1, counts.files));
}

int Measure(const std::string& mode, const std::string& dir) {
  if (access((dir + "/complete").c_str(), F_OK) != 0) {
    Die(dir + " holds no complete tree: run `model_memory make` first");
  }
  const std::string spool = dir + "/spool";
  int root_fd = open(spool.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) Die("open " + spool + ": " + std::strerror(errno));
  const Counts counts = Count(root_fd);

  // The manifest is built before the baseline: it is the standby's message, not state
  // the primary keeps (the node adds entries frame by frame and drops each frame).
  std::vector<hasync::wire::ManifestEntry> manifest;
  if (mode == "manifest") {
    Status s = hasync::engine::ScanTree(
        root_fd, "", {},
        [&](const FileInfo& info) {
          hasync::wire::ManifestEntry e;
          e.kind = info.kind == NodeKind::kDirectory ? hasync::wire::EntryKind::kDirectory
                   : info.kind == NodeKind::kSymlink ? hasync::wire::EntryKind::kSymlink
                                                     : hasync::wire::EntryKind::kFile;
          e.mode = info.mode;
          e.uid = info.uid;
          e.gid = info.gid;
          e.size = info.size;
          e.mtime_ns = info.mtime_ns;
          e.path = hasync::engine::WirePath(0, info.path);
          manifest.push_back(std::move(e));
          return Status::Ok();
        },
        nullptr);
    if (!s.ok()) Die("scan: " + s.ToString());
  } else if (mode != "resync") {
    Die("unknown mode " + mode);
  }

  NullSink sink;
  hasync::engine::SenderOptions options;
  options.replicate_xattrs = true;
  malloc_trim(0);
  const size_t heap0 = HeapInUse();
  const size_t rss0 = RssBytes();
  auto sender = std::make_unique<hasync::engine::Sender>(std::vector<int>{root_fd}, options, sink);
  if (mode == "manifest") {
    sender->BeginManifest();
    for (const auto& e : manifest) {
      Status s = sender->AddManifestEntry(e);
      if (!s.ok()) Die("manifest: " + s.ToString());
    }
  } else {
    Status s = sender->Resync(nullptr);
    if (!s.ok()) Die("resync: " + s.ToString());
  }
  malloc_trim(0);
  const size_t heap1 = HeapInUse();
  const size_t rss1 = RssBytes();
  Report(mode.c_str(), sender->tracked(), counts, heap0, heap1, rss0, rss1, sink.messages());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() >= 3 && args[0] == "make") {
    size_t large = args.size() > 3 ? std::stoul(args[3]) : 20;
    size_t large_mib = args.size() > 4 ? std::stoul(args[4]) : 2;
    return Make(args[1], std::stoul(args[2]), large, large_mib);
  }
  if (args.size() == 2) return Measure(args[0], args[1]);
  std::fprintf(stderr,
               "usage: model_memory make DIR FILES [LARGE] [LARGE_MIB]\n"
               "       model_memory resync|manifest DIR\n");
  return 2;
}
