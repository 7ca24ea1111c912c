#include "iouring/ring.h"

#include <cerrno>
#include <ctime>
#include <string>

namespace hasync::iouring {

Result<Ring> Ring::Create(unsigned entries) {
  if (entries == 0 || entries > kMaxRingEntries) {
    return InvalidArgument("io_uring entries " + std::to_string(entries) + " not in [1, " +
                           std::to_string(kMaxRingEntries) + "]");
  }
  Ring ring;
  int rc = io_uring_queue_init(entries, &ring.ring_, 0);
  if (rc < 0) {
    Status s = ErrnoStatus(-rc, "io_uring_queue_init");
    if (rc == -ENOSYS) {
      return Unimplemented(s.message() + " (kernel built without io_uring)");
    }
    if (rc == -EPERM) {
      return PermissionDenied(s.message() +
                              " (io_uring disabled: check sysctl kernel.io_uring_disabled)");
    }
    return s;
  }
  ring.valid_ = true;
  return ring;
}

Ring::Ring(Ring&& other) noexcept : ring_(other.ring_), valid_(other.valid_) {
  other.valid_ = false;
  other.ring_ = {};
}

Ring& Ring::operator=(Ring&& other) noexcept {
  if (this != &other) {
    Release();
    ring_ = other.ring_;
    valid_ = other.valid_;
    other.valid_ = false;
    other.ring_ = {};
  }
  return *this;
}

Ring::~Ring() { Release(); }

void Ring::Release() {
  if (valid_) {
    io_uring_queue_exit(&ring_);
    valid_ = false;
  }
}

Result<io_uring_sqe*> Ring::GetSqe() {
  HASYNC_ASSERT(valid_);
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe != nullptr) return sqe;
  // SQ full: hand what is queued to the kernel, then there is room again.
  auto submitted = Submit();
  if (!submitted.ok()) return submitted.status();
  sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) return Status(Code::kResourceExhausted, "io_uring SQ full after submit");
  return sqe;
}

Result<unsigned> Ring::Submit() {
  HASYNC_ASSERT(valid_);
  for (;;) {
    int rc = io_uring_submit(&ring_);
    if (rc >= 0) return static_cast<unsigned>(rc);
    if (rc == -EINTR) continue;
    return ErrnoStatus(-rc, "io_uring_submit");
  }
}

Result<size_t> Ring::Reap(std::vector<Completion>& out, unsigned wait_nr, int64_t timeout_ns,
                          size_t max_batch) {
  HASYNC_ASSERT(valid_);
  io_uring_cqe* cqe = nullptr;
  if (wait_nr > 0) {
    __kernel_timespec ts{};
    __kernel_timespec* tsp = nullptr;
    if (timeout_ns >= 0) {
      ts.tv_sec = timeout_ns / 1'000'000'000;
      ts.tv_nsec = timeout_ns % 1'000'000'000;
      tsp = &ts;
    }
    for (;;) {
      int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, wait_nr, tsp, nullptr);
      if (rc >= 0 || rc == -ETIME) break;
      if (rc == -EINTR) continue;
      return ErrnoStatus(-rc, "io_uring_submit_and_wait_timeout");
    }
  } else {
    auto submitted = Submit();
    if (!submitted.ok()) return submitted.status();
  }
  // Drain everything that is ready into `out` before anyone acts on it.
  size_t n = 0;
  unsigned head = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    if (n == max_batch) break;
    out.push_back(Completion{cqe->user_data, cqe->res, cqe->flags});
    ++n;
  }
  io_uring_cq_advance(&ring_, static_cast<unsigned>(n));
  return n;
}

Result<OpcodeProbe> OpcodeProbe::Query(Ring& ring) {
  io_uring_probe* probe = io_uring_get_probe_ring(ring.raw());
  if (probe == nullptr) {
    return Unimplemented("io_uring probe not supported (kernel older than 5.6)");
  }
  OpcodeProbe p;
  p.supported_.assign(IORING_OP_LAST, false);
  for (int op = 0; op < IORING_OP_LAST; ++op) {
    p.supported_[static_cast<size_t>(op)] = io_uring_opcode_supported(probe, op) != 0;
  }
  io_uring_free_probe(probe);
  return p;
}

OpcodeProbe OpcodeProbe::FromSupported(std::span<const int> ops) {
  OpcodeProbe p;
  p.supported_.assign(IORING_OP_LAST, false);
  for (int op : ops) {
    if (op >= 0 && op < IORING_OP_LAST) p.supported_[static_cast<size_t>(op)] = true;
  }
  return p;
}

bool OpcodeProbe::Supports(int op) const {
  return op >= 0 && static_cast<size_t>(op) < supported_.size() &&
         supported_[static_cast<size_t>(op)];
}

Status OpcodeProbe::Require(std::span<const int> ops) const {
  std::string missing;
  for (int op : ops) {
    if (Supports(op)) continue;
    if (!missing.empty()) missing += ", ";
    missing += OpcodeName(op);
  }
  if (missing.empty()) return Status::Ok();
  return Unimplemented("kernel io_uring lacks " + missing +
                       "; run hasync on Linux 5.19 or newer (Debian 12 ships 6.1)");
}

std::string_view OpcodeName(int op) {
  switch (op) {
    case IORING_OP_NOP:
      return "NOP";
    case IORING_OP_READV:
      return "READV";
    case IORING_OP_WRITEV:
      return "WRITEV";
    case IORING_OP_FSYNC:
      return "FSYNC";
    case IORING_OP_READ_FIXED:
      return "READ_FIXED";
    case IORING_OP_WRITE_FIXED:
      return "WRITE_FIXED";
    case IORING_OP_TIMEOUT:
      return "TIMEOUT";
    case IORING_OP_ACCEPT:
      return "ACCEPT";
    case IORING_OP_ASYNC_CANCEL:
      return "ASYNC_CANCEL";
    case IORING_OP_LINK_TIMEOUT:
      return "LINK_TIMEOUT";
    case IORING_OP_CONNECT:
      return "CONNECT";
    case IORING_OP_OPENAT:
      return "OPENAT";
    case IORING_OP_CLOSE:
      return "CLOSE";
    case IORING_OP_STATX:
      return "STATX";
    case IORING_OP_READ:
      return "READ";
    case IORING_OP_WRITE:
      return "WRITE";
    case IORING_OP_SEND:
      return "SEND";
    case IORING_OP_RECV:
      return "RECV";
    case IORING_OP_OPENAT2:
      return "OPENAT2";
    case IORING_OP_SPLICE:
      return "SPLICE";
    case IORING_OP_RENAMEAT:
      return "RENAMEAT";
    case IORING_OP_UNLINKAT:
      return "UNLINKAT";
    case IORING_OP_MKDIRAT:
      return "MKDIRAT";
    case IORING_OP_SYMLINKAT:
      return "SYMLINKAT";
    case IORING_OP_LINKAT:
      return "LINKAT";
    default:
      return "OP?";
  }
}

}  // namespace hasync::iouring
