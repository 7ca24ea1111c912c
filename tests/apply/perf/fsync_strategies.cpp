// Measures the group-commit strategies of engine/apply on this machine: small files
// published durably per batch with (a) one batch per file, (b) sequential fsyncs,
// (c) concurrent fsyncs through io_uring, (d) one syncfs per phase. Not a test: it
// prints files/s and asserts nothing. Usage: fsync_strategies [dir] [files] [batch]
#include <stdlib.h>
#include <unistd.h>

#include <fmt/format.h>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "base/hash.h"
#include "engine/apply/tree.h"
#include "engine/apply/uring_sync.h"

using namespace hasync;
using namespace hasync::engine::apply;

namespace {

double Run(const std::string& parent, const char* label, int files, int batch_size,
           SyncStrategy sync, FsOps* fs) {
  std::string root = fmt::format("{}/fsync-{}-XXXXXX", parent, label);
  if (::mkdtemp(root.data()) == nullptr) return 0;
  TreeOptions options;
  options.sync = sync;
  auto tree = Tree::Open(root, options, fs);
  if (!tree.ok()) {
    fmt::print(stderr, "{}\n", tree.status().ToString());
    return 0;
  }
  std::string content(4096, 'x');
  auto bytes = std::span<const std::byte>(reinterpret_cast<const std::byte*>(content.data()),
                                          content.size());
  Hash128 hash = Xxh3_128(bytes);
  auto start = std::chrono::steady_clock::now();
  for (int done = 0; done < files;) {
    Batch batch(*tree);
    for (int i = 0; i < batch_size && done < files; ++i, ++done) {
      auto id = batch.BeginFile(fmt::format("f{}", done), ContentBase::kEmpty);
      if (!id.ok() || !batch.WriteExtent(*id, 0, bytes).ok() ||
          !batch.FinishFile(*id, content.size(), {}, hash).ok()) {
        fmt::print(stderr, "stage failed\n");
        return 0;
      }
    }
    Status s = batch.Commit();
    if (!s.ok()) {
      fmt::print(stderr, "{}\n", s.ToString());
      return 0;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string cleanup = fmt::format("rm -rf '{}'", root);
  if (std::system(cleanup.c_str()) != 0) fmt::print(stderr, "cleanup of {} failed\n", root);
  return files / secs;
}

// The layer's own cost: every sync is a no-op (NOT durable; for comparison only).
class NoSyncFs : public PosixFsOps {
 public:
  int Fsync(int) override { return 0; }
  int Syncfs(int) override { return 0; }
};

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "/tmp";
  int files = argc > 2 ? std::atoi(argv[2]) : 4000;
  int batch = argc > 3 ? std::atoi(argv[3]) : 256;
  auto uring = UringFsOps::Create(256);
  fmt::print("{} files of 4 KiB under {}, batch {}\n", files, dir, batch);
  fmt::print("per-file commit (batch 1), fsync : {:8.0f} files/s\n",
             Run(dir, "single", files / 4, 1, SyncStrategy::kFsyncEach, nullptr));
  fmt::print("batch, sequential fsync          : {:8.0f} files/s\n",
             Run(dir, "seq", files, batch, SyncStrategy::kFsyncEach, nullptr));
  if (uring.ok()) {
    fmt::print("batch, io_uring concurrent fsync : {:8.0f} files/s\n",
               Run(dir, "uring", files, batch, SyncStrategy::kFsyncEach, uring->get()));
  } else {
    fmt::print("batch, io_uring: unavailable ({})\n", uring.status().ToString());
  }
  fmt::print("batch, syncfs                    : {:8.0f} files/s\n",
             Run(dir, "syncfs", files, batch, SyncStrategy::kSyncfs, nullptr));
  NoSyncFs nosync;
  fmt::print("batch, no sync (layer cost only) : {:8.0f} files/s\n",
             Run(dir, "nosync", files, batch, SyncStrategy::kFsyncEach, &nosync));
  return 0;
}
