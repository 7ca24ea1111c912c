#include "engine/sync/file_reader.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace hasync::engine {

std::unique_ptr<FileReader> FileReader::Create(bool use_io_uring) {
  std::unique_ptr<FileReader> r(new FileReader());
  r->slots_.resize(kReadAhead);
  if (!use_io_uring) {
    r->fallback_reason_ = "pread chosen by the caller";
    return r;
  }
  auto ring = iouring::Ring::Create(kReadAhead * 2);
  if (!ring.ok()) {
    r->fallback_reason_ = ring.status().ToString();
    return r;
  }
  auto probe = iouring::OpcodeProbe::Query(*ring);
  if (!probe.ok() || !probe->Supports(IORING_OP_READ)) {
    r->fallback_reason_ = probe.ok() ? "kernel lacks IORING_OP_READ" : probe.status().ToString();
    return r;
  }
  r->ring_.emplace(std::move(ring).value());
  return r;
}

FileReader::~FileReader() { Finish(); }

std::vector<std::byte> FileReader::TakeBuffer(size_t len) {
  std::vector<std::byte> buf;
  if (!spare_.empty()) {
    buf = std::move(spare_.back());
    spare_.pop_back();
  }
  buf.resize(len);
  return buf;
}

void FileReader::Recycle(std::vector<std::byte> buf) {
  if (spare_.size() < kReadAhead && buf.capacity() > 0) spare_.push_back(std::move(buf));
}

void FileReader::Start(int fd, std::vector<ReadChunk> chunks) {
  Finish();
  fd_ = fd;
  chunks_ = std::move(chunks);
  if (!uses_io_uring()) return;
  while (next_submit_ < chunks_.size() && next_submit_ < kReadAhead) {
    if (!Submit(next_submit_).ok()) break;  // Next() reads that chunk with pread instead
    ++next_submit_;
  }
  // Into the kernel now, so the reads run while the caller works on earlier chunks.
  if (in_flight_ > 0) (void)ring_->Submit();  // a failure shows in Reap()
}

Status FileReader::Submit(size_t chunk) {
  Slot& slot = slots_[chunk % kReadAhead];
  HASYNC_ASSERT(!slot.in_flight);
  const ReadChunk& c = chunks_[chunk];
  slot = Slot{chunk, TakeBuffer(c.len), false, false, 0};
  if (c.hole) {
    std::memset(slot.buf.data(), 0, c.len);
    slot.done = true;
    slot.res = static_cast<int32_t>(c.len);
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(io_uring_sqe * sqe, ring_->GetSqe());
  io_uring_prep_read(sqe, fd_, slot.buf.data(), static_cast<unsigned>(c.len), c.offset);
  io_uring_sqe_set_data64(sqe, chunk % kReadAhead);
  slot.in_flight = true;
  ++in_flight_;
  return Status::Ok();
}

Status FileReader::Reap() {
  reaped_.clear();
  ASSIGN_OR_RETURN(size_t n, ring_->Reap(reaped_, 1, -1));
  for (size_t i = 0; i < n; ++i) {
    Slot& slot = slots_[reaped_[i].user_data];
    HASYNC_ASSERT(slot.in_flight);
    slot.in_flight = false;
    slot.done = true;
    slot.res = reaped_[i].res;
    --in_flight_;
  }
  return Status::Ok();
}

Result<ReadPiece> FileReader::ReadSync(const ReadChunk& chunk, std::vector<std::byte> buf,
                                       size_t already) {
  buf.resize(chunk.len);
  size_t got = already;
  if (chunk.hole) {
    std::memset(buf.data(), 0, chunk.len);
    got = chunk.len;
  }
  while (got < chunk.len) {
    ssize_t n =
        pread(fd_, buf.data() + got, chunk.len - got, static_cast<off_t>(chunk.offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read at offset " + std::to_string(chunk.offset + got));
    }
    if (n == 0) break;  // the file shrank while it was read
    got += static_cast<size_t>(n);
  }
  if (got < chunk.len) std::memset(buf.data() + got, 0, chunk.len - got);
  return ReadPiece{chunk.offset, got, std::move(buf)};
}

Result<ReadPiece> FileReader::Next() {
  HASYNC_ASSERT(next_return_ < chunks_.size());
  const size_t index = next_return_;
  const ReadChunk& chunk = chunks_[index];
  Result<ReadPiece> piece = Status(Code::kInternal, "unset");
  if (!uses_io_uring() || index >= next_submit_) {
    piece = ReadSync(chunk, TakeBuffer(chunk.len), 0);
    if (uses_io_uring() && index == next_submit_)
      ++next_submit_;  // read here, not through the ring
  } else {
    Slot& slot = slots_[index % kReadAhead];
    HASYNC_ASSERT(slot.chunk == index);
    while (!slot.done) {
      Status s = Reap();
      if (!s.ok()) {
        Finish();
        return s.Annotate("wait for a file read");
      }
    }
    int32_t res = slot.res;
    std::vector<std::byte> buf = std::move(slot.buf);
    slot = Slot{};
    if (res == -EINTR || res == -EAGAIN) {
      piece = ReadSync(chunk, std::move(buf), 0);
    } else if (res < 0) {
      piece = ErrnoStatus(-res, "read at offset " + std::to_string(chunk.offset));
    } else {
      // A short read (the file shrank, or the kernel stopped early) is finished with pread.
      piece = ReadSync(chunk, std::move(buf), static_cast<size_t>(res));
    }
  }
  ++next_return_;
  if (!piece.ok()) {
    Finish();
    return piece;
  }
  if (uses_io_uring()) {
    bool submitted = false;
    while (next_submit_ < chunks_.size() && next_submit_ < next_return_ + kReadAhead) {
      if (!Submit(next_submit_).ok()) break;
      ++next_submit_;
      submitted = true;
    }
    if (submitted && in_flight_ > 0) (void)ring_->Submit();
  }
  return piece;
}

void FileReader::Finish() {
  while (uses_io_uring() && in_flight_ > 0) {
    Status s = Reap();
    if (!s.ok()) {  // never seen; never spin
      broken_ = true;
      fallback_reason_ = s.ToString();
    }
  }
  for (Slot& slot : slots_) {
    if (slot.in_flight) continue;  // only after a broken ring: the kernel may still write
    Recycle(std::move(slot.buf));
    slot = Slot{};
  }
  chunks_.clear();
  next_submit_ = next_return_ = 0;
  fd_ = -1;
}

}  // namespace hasync::engine
