// The primary's fixed local tree that resync_fuzz compares fuzzed standby manifests
// against, shared with its seed-corpus generator so the seeds name real paths, sizes,
// mtimes and block hashes. Two sync roots ("0" and "1" on the wire) under a fresh
// temporary directory; every mtime and mode is fixed so the tree is the same in every
// run. Removed with everything below it when the FuzzTree is destroyed or Remove()d.
#pragma once

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "engine/sync/sender.h"
#include "wire/limits.h"

namespace hasync::fuzz {

// Sender options the target runs with: small blocks so a 44 KiB file takes the delta
// path (BLOCKS_REQUEST / BLOCKS_REPLY), small batches so COMMITs interleave.
inline engine::SenderOptions ResyncSenderOptions() {
  engine::SenderOptions o;
  o.block_size = wire::kBlockSizeMin;
  o.delta_min_bytes = 16 * 1024;
  o.max_batch_changes = 8;
  o.replicate_xattrs = false;  // tmpfs or not, the tree sets none
  o.io_uring_reads = false;    // pread: no ring per input
  return o;
}

inline constexpr int64_t kTreeMtimeNs = 1'700'000'000'000'000'000;
inline constexpr size_t kBigFileBytes = 11 * wire::kBlockSizeMin + 100;

// Content of the one file large enough for block hashes ("0/jobs/hash.3/big").
inline std::string BigContent() {
  std::string big(kBigFileBytes, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return big;
}

class FuzzTree {
 public:
  // Aborts on failure: without its tree the target cannot run at all.
  FuzzTree() {
    char tmpl[] = "/tmp/hasync-fuzz-resync-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Die("mkdtemp");
    dir_ = tmpl;
    umask(022);
    for (const char* root : {"/r0", "/r1"}) MkDir(root);
    MkDir("/r0/a");
    MkDir("/r0/a/sub");
    MkDir("/r0/jobs");
    MkDir("/r0/jobs/hash.3");
    File("/r0/a/f1", std::string(300, 'x'));
    File("/r0/a/sub/g", "g content\n");
    File("/r0/top", "");
    File("/r0/jobs/hash.3/big", BigContent());
    File("/r0/jobs/hash.3/script", "#!/bin/sh\nexit 0\n");
    Link("/r0/a/f1", "/r0/a/f1.old");  // two names of one inode: a LINK on resync
    Symlink("f1", "/r0/a/ln");
    Symlink("/etc/passwd", "/r0/a/abs");  // a target outside: stored literally
    MkDir("/r1/d");
    File("/r1/x", "x\n");
    // Fixed times, children before parents (creating a child touches its directory).
    for (const char* p : {"/r0/a/f1", "/r0/a/sub/g", "/r0/top", "/r0/jobs/hash.3/big",
                          "/r0/jobs/hash.3/script", "/r0/a/ln", "/r0/a/abs", "/r1/x", "/r0/a/sub",
                          "/r0/jobs/hash.3", "/r0/jobs", "/r0/a", "/r1/d", "/r0", "/r1"}) {
      Touch(p);
    }
    for (const char* root : {"/r0", "/r1"}) {
      int fd = open((dir_ + root).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) Die(root);
      fds_.emplace_back(fd);
    }
  }
  ~FuzzTree() { Remove(); }
  // Idempotent; also called on a finding, before the process aborts.
  void Remove() {
    fds_.clear();
    if (dir_.empty()) return;
    nftw(
        dir_.c_str(),
        [](const char* path, const struct stat*, int, struct FTW*) { return remove(path); }, 16,
        FTW_DEPTH | FTW_PHYS);
    dir_.clear();
  }
  FuzzTree(const FuzzTree&) = delete;
  FuzzTree& operator=(const FuzzTree&) = delete;

  std::vector<int> root_fds() const {
    std::vector<int> out;
    for (const UniqueFd& fd : fds_) out.push_back(fd.get());
    return out;
  }
  uint32_t root_count() const { return static_cast<uint32_t>(fds_.size()); }

 private:
  [[noreturn]] void Die(const std::string& what) {
    std::perror(("resync fuzz tree: " + what).c_str());
    Remove();
    std::abort();
  }
  void MkDir(const std::string& p) {
    if (mkdir((dir_ + p).c_str(), 0755) != 0) Die(p);
  }
  void File(const std::string& p, const std::string& content) {
    int fd = open((dir_ + p).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size()))
      Die(p);
    close(fd);
  }
  void Link(const std::string& from, const std::string& to) {
    if (link((dir_ + from).c_str(), (dir_ + to).c_str()) != 0) Die(to);
  }
  void Symlink(const std::string& target, const std::string& p) {
    if (symlink(target.c_str(), (dir_ + p).c_str()) != 0) Die(p);
  }
  void Touch(const std::string& p) {
    timespec t[2];
    t[0].tv_sec = t[1].tv_sec = kTreeMtimeNs / 1'000'000'000;
    t[0].tv_nsec = t[1].tv_nsec = 123;
    if (utimensat(AT_FDCWD, (dir_ + p).c_str(), t, AT_SYMLINK_NOFOLLOW) != 0) Die(p);
  }

  std::string dir_;
  std::vector<UniqueFd> fds_;
};

}  // namespace hasync::fuzz
