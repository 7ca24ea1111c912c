// FileReader: the sender's reads of one file's content, chunk after chunk, through a
// private io_uring with up to kReadAhead chunks in flight. While the sender hashes and
// encrypts one chunk the kernel is already fetching the next ones (from disk when the
// spool is cold, as after a reboot); a chunk the sender ships whole is handed over as
// the extent's buffer instead of being copied. Without a usable io_uring (kernel, sysctl
// or seccomp refused it) the same interface reads with pread, one chunk at a time.
//
// Contract: Start() plans the chunks of one file; Next() returns them in plan order,
// each exactly its planned length: bytes past the end of a file that shrank while it
// was read are zeros and `got` tells how many were read (the sender's stat check after
// the read aborts such a version anyway). Finish() (also run by Start() and the
// destructor) waits for every read still in flight, so no buffer the kernel writes into
// is ever freed or reused early, and no read outlives the caller's fd.
// Thread safety: none; the sender owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "iouring/ring.h"

namespace hasync::engine {

inline constexpr unsigned kReadAhead = 4;

struct ReadChunk {
  uint64_t offset = 0;
  size_t len = 0;
  bool hole = false;  // entirely inside a hole: not read, all zeros
};

struct ReadPiece {
  uint64_t offset = 0;
  size_t got = 0;               // bytes read; the rest of data up to the chunk length is 0
  std::vector<std::byte> data;  // the chunk's length; the caller may keep it
};

class FileReader {
 public:
  // Uses io_uring if the kernel lets it (else pread); `use_io_uring = false` forces pread.
  static std::unique_ptr<FileReader> Create(bool use_io_uring = true);
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  // Plans the reads of `chunks` (in order) from `fd`, which must stay open until the
  // last Next() or Finish().
  void Start(int fd, std::vector<ReadChunk> chunks);
  // The next chunk of the plan, or the read's error (the plan is then abandoned).
  Result<ReadPiece> Next();
  // Gives a buffer back for the next reads (optional; saves an allocation).
  void Recycle(std::vector<std::byte> buf);
  // Waits for every read in flight and abandons the rest of the plan.
  void Finish();

  bool uses_io_uring() const { return ring_.has_value() && !broken_; }
  // Why io_uring is not used ("" when it is).
  const std::string& fallback_reason() const { return fallback_reason_; }

 private:
  struct Slot {
    size_t chunk = 0;  // index into chunks_
    std::vector<std::byte> buf;
    bool in_flight = false;
    bool done = false;
    int32_t res = 0;
  };
  FileReader() = default;
  std::vector<std::byte> TakeBuffer(size_t len);
  Status Submit(size_t chunk);
  // Waits for at least one read in flight and marks every finished one done.
  Status Reap();
  Result<ReadPiece> ReadSync(const ReadChunk& chunk, std::vector<std::byte> buf, size_t already);

  std::optional<iouring::Ring> ring_;
  // The ring failed to reap (never seen): reads in flight keep their slots (and
  // buffers) for good, and every later read uses pread.
  bool broken_ = false;
  std::string fallback_reason_;
  int fd_ = -1;
  std::vector<ReadChunk> chunks_;
  size_t next_submit_ = 0;                     // first chunk not submitted yet
  size_t next_return_ = 0;                     // first chunk not returned yet
  std::vector<Slot> slots_;                    // kReadAhead; chunk i lives in slot i % kReadAhead
  std::vector<std::vector<std::byte>> spare_;  // at most kReadAhead recycled buffers
  unsigned in_flight_ = 0;
  std::vector<iouring::Completion> reaped_;  // scratch of Reap()
};

}  // namespace hasync::engine
