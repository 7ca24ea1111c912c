// Convergence test support: a seeded generator of what a scheduler or an administrator
// does to a state directory, run for real on one root.
//
// Contract: the sequence of operations depends only on the seed and on the tree under
// the root, and the tree under the root depends only on the operations run on it (hasync
// never writes a primary's root). So for a root nobody else writes, the same seed gives
// the same operations, op for op, on every run: a failing seed replays exactly. Timing
// (inter-op sleeps, 0–60 ms) is drawn from the same PRNG; only the speed of the
// replication between the steps differs from run to run.
//
// Choices are made over a sorted walk of the root taken before each operation, never
// over readdir order or inode numbers. Every operation is one line of log(); an
// operation that fails (it should not: the walk says what exists) logs its errno.
//
// The surface: create, overwrite, append (by path and through held descriptors, up to
// kMaxHeld at once), truncate and extend, sparse writes, unlink (also while open),
// rename of files over open files and over existing names, directory renames across
// levels, hard links across directories and their removal, chmod/chown/utimensat through
// any link, user xattrs set and removed, symlinks (created, retargeted by rename, lchown,
// mtime), mkdir/rmdir, O_TMPFILE + linkat, and Slurm's state save (write X.new, fsync,
// unlink X.old, link X X.old, unlink X, link X.new X, unlink X.new), plus the short
// sequences of issue 16's known divergences as weighted composite operations.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace hasync::convergence {

class Workload {
 public:
  static constexpr size_t kMaxHeld = 4;       // descriptors held open at once
  static constexpr size_t kMaxEntries = 160;  // the tree stays small: collisions, not bulk
  static constexpr size_t kMaxDepth = 4;      // directory levels below the root

  // `label` prefixes every log line (e.g. "primary", "new-primary").
  Workload(uint64_t seed, std::string root, std::string label);
  ~Workload();
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  // Runs `count` operations (each followed by its drawn pause).
  void Run(size_t count);
  // Closes every held descriptor (logged).
  void CloseAll();
  // Goes on on another root (the new primary after a switchover): closes every held
  // descriptor first, as a scheduler stopped by on_demote would.
  void MoveTo(std::string root, std::string label);

  const std::vector<std::string>& log() const { return log_; }
  size_t ops_run() const { return ops_; }
  // A number drawn from this workload's PRNG (for plans made alongside the operations,
  // such as when to kill a node: they stay a function of the seed).
  uint64_t Draw(uint64_t bound) { return Below(bound); }

 private:
  struct Node {
    std::string path;  // relative; "" is the root
    char type = '?';   // 'f', 'd', 'l'
    uint64_t dev = 0, ino = 0, size = 0;
    size_t depth = 0;
  };
  struct Held {
    int fd = -1;
    std::string opened_as;
    int id = 0;
  };

  void RunOne();
  void Snapshot();
  void Pause();

  // Helpers over the last snapshot ("" when there is none of that kind).
  std::string PickFile();
  std::string PickDir(bool include_root);
  std::string PickNonDir();
  std::string PickAnyNonRoot();
  const Node* Find(const std::string& path) const;
  std::string NameIn(const std::string& dir, bool dir_name);
  std::string FreshNameIn(const std::string& dir, bool dir_name);
  std::string OtherNameOf(const std::string& file);  // another name of the same inode
  std::string Content(size_t max_len);
  std::string Abs(const std::string& rel) const;
  uint64_t Below(uint64_t bound);
  bool Chance(uint32_t percent) { return Below(100) < percent; }

  void Note(const std::string& what, int rc);
  void Step(const std::string& what, int rc) { Note("  " + what, rc); }

  // Operations.
  void OpCreate();
  void OpOverwrite();
  void OpAppend();
  void OpHoldOpen();
  void OpHeldWrite();
  void OpHeldSparse();
  void OpHeldTruncate();
  void OpHeldFsync();
  void OpHeldClose();
  void OpTruncate();
  void OpSparseCreate();
  void OpUnlink();
  void OpUnlinkHeld();
  void OpRenameFile();
  void OpRenameOverHeld();
  void OpRenameDir();
  void OpLink();
  void OpChmod();
  void OpChown();
  void OpUtimes();
  void OpSetXattr();
  void OpRemoveXattr();
  void OpSymlink();
  void OpMkdir();
  void OpRmdir();
  void OpTmpfileLinkat();
  void OpSlurmSave();
  void OpAppendUnlinkWhileOpen();        // issue 16 case 1
  void OpAppendThroughLinkThenUnlink();  // case 2
  void OpChmodThroughTwoLinks();         // case 3

  std::mt19937_64 rng_;
  std::string root_, label_;
  std::vector<Node> nodes_;
  std::vector<Held> held_;
  std::vector<std::string> log_;
  size_t ops_ = 0;
  int next_held_id_ = 1;
  uint64_t fresh_ = 0;
};

}  // namespace hasync::convergence
