#include "engine/net/data_stream.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "engine/net/rng.h"
#include "engine/net/socket_tuning.h"

namespace hasync::engine {

namespace {

constexpr size_t kRecvBytes = 256 * 1024;
// The primary's stream encrypts frames until this much ciphertext waits, then sends.
constexpr size_t kSendBatchBytes = 512 * 1024;
constexpr size_t kPopBatch = 16;
// What an idle stream's connection keeps of its outgoing buffer.
constexpr size_t kIdleKeepBytes = 64 * 1024;
// The pipe a spliced extent passes through (one extent, kExtentDataMax, at most).
constexpr int kSplicePipeBytes = 1 << 20;

void SetTimeout(int fd, int option, int64_t ms) {
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv);
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

size_t DataFrameBytes(const wire::Message& message) {
  if (const auto* e = std::get_if<wire::Extent>(&message)) return e->data.size() + 64;
  return 64;
}

// ---- FrameQueue --------------------------------------------------------------------------

bool FrameQueue::TryPush(DataFrame& frame) {
  {
    std::lock_guard lock(mu_);
    if (closed_ || !HasRoom(frame.bytes)) return false;
    bytes_ += frame.bytes;
    frames_.push_back(std::move(frame));
  }
  data_.notify_one();
  return true;
}

bool FrameQueue::Push(DataFrame& frame, int64_t timeout_ms) {
  {
    std::unique_lock lock(mu_);
    if (!room_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                        [&] { return closed_ || HasRoom(frame.bytes); })) {
      return false;
    }
    if (closed_) return false;
    bytes_ += frame.bytes;
    frames_.push_back(std::move(frame));
  }
  data_.notify_one();
  return true;
}

void FrameQueue::WaitForRoom(size_t bytes, int64_t timeout_ms) {
  std::unique_lock lock(mu_);
  room_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                 [&] { return closed_ || HasRoom(bytes); });
}

DataFrame* FrameQueue::Front() {
  std::lock_guard lock(mu_);
  // std::deque keeps references to its elements valid across push_back.
  return frames_.empty() ? nullptr : &frames_.front();
}

void FrameQueue::PopFront() {
  {
    std::lock_guard lock(mu_);
    if (frames_.empty()) return;
    bytes_ -= frames_.front().bytes;
    frames_.pop_front();
  }
  room_.notify_all();
}

bool FrameQueue::PopSome(std::vector<DataFrame>& out, size_t max, int64_t timeout_ms) {
  {
    std::unique_lock lock(mu_);
    data_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                   [&] { return closed_ || !frames_.empty(); });
    if (frames_.empty()) return !closed_;
    for (size_t i = 0; i < max && !frames_.empty(); ++i) {
      bytes_ -= frames_.front().bytes;
      out.push_back(std::move(frames_.front()));
      frames_.pop_front();
    }
  }
  room_.notify_all();
  return true;
}

void FrameQueue::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  room_.notify_all();
  data_.notify_all();
}

size_t FrameQueue::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

// ---- DataStreamThread --------------------------------------------------------------------

void DataStreamThread::Stop() {
  stopping_.store(true);
  queue_.Close();
  if (fd_) shutdown(fd_.get(), SHUT_RDWR);  // wakes connect, recv and send
  if (thread_.joinable()) thread_.join();
}

Status DataStreamThread::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

void DataStreamThread::RecordFailure(const Status& s) {
  {
    std::lock_guard lock(mu_);
    if (failed_.ok()) failed_ = s.Annotate("data stream " + std::to_string(index_));
  }
  queue_.Close();
}

// ---- DataStreamOut -----------------------------------------------------------------------

Result<std::unique_ptr<DataStreamOut>> DataStreamOut::Start(Options options) {
  std::unique_ptr<DataStreamOut> s(new DataStreamOut(std::move(options)));
  s->fd_ = UniqueFd(socket(s->options_.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s->fd_) return ErrnoStatus(errno, "socket for a data stream");
  TuneSessionSocket(s->fd_.get());
  // Bounds connect(2), the handshake's reads and writes; widened for sends once open.
  SetTimeout(s->fd_.get(), SO_SNDTIMEO, kDataStreamSetupMs);
  SetTimeout(s->fd_.get(), SO_RCVTIMEO, kDataStreamSetupMs);
  s->thread_ = std::thread([p = s.get()] { p->Run(); });
  return s;
}

DataStreamOut::~DataStreamOut() { Stop(); }

Status DataStreamOut::SendAll(Connection& conn) {
  if (conn.outgoing_size() == 0) {
    AddSent(frames_in_outbox_);
    frames_in_outbox_ = 0;
    return Status::Ok();
  }
  conn.TakeOutgoing(tx_);
  RETURN_IF_ERROR(SendBytes(tx_));
  AddSent(frames_in_outbox_);
  frames_in_outbox_ = 0;
  return Status::Ok();
}

Status DataStreamOut::SendBytes(std::span<const std::byte> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = send(fd_.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return Unavailable(ready() ? "standby accepted no data for 30 s"
                                   : "data stream set-up did not finish within 10 s");
      }
      return ErrnoStatus(errno, "send");
    }
    done += static_cast<size_t>(n);
    bytes_sent_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  }
  return Status::Ok();
}

void DataStreamOut::AddSent(uint64_t frames) {
  if (frames == 0) return;
  {
    std::lock_guard lock(sent_mu_);
    frames_sent_.fetch_add(frames, std::memory_order_release);
  }
  sent_cv_.notify_all();
}

void DataStreamOut::WaitDrained(int64_t timeout_ms) {
  std::unique_lock lock(sent_mu_);
  sent_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                    [&] { return drained() || !failed().ok(); });
}

Status DataStreamOut::SendSpliced(Connection& conn, const DataFrame& frame) {
  const auto& extent = std::get<wire::Extent>(frame.message);
  RETURN_IF_ERROR(conn.SendExtentHead(options_.epoch, frame.seq, extent.file_size, extent.offset,
                                      frame.splice_length));
  RETURN_IF_ERROR(SendAll(conn));  // the frames before it, and its head
  RETURN_IF_ERROR(SpliceRange(frame.splice_file->get(), extent.offset, frame.splice_length));
  AddSent(1);
  return Status::Ok();
}

Status DataStreamOut::SpliceRange(int file, uint64_t offset, uint32_t length) {
  if (!pipe_read_) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe for splice");
    pipe_read_ = UniqueFd(p[0]);
    pipe_write_ = UniqueFd(p[1]);
    // Larger than the default 64 KiB when allowed (pipe-max-size): fewer calls.
    int got = fcntl(pipe_write_.get(), F_SETPIPE_SZ, kSplicePipeBytes);
    if (got < 0) got = fcntl(pipe_write_.get(), F_GETPIPE_SZ);
    pipe_bytes_ = got > 0 ? static_cast<size_t>(got) : 65536;
  }
  loff_t at = static_cast<loff_t>(offset);
  size_t rest = length;
  while (rest > 0) {
    ssize_t in =
        splice(file, &at, pipe_write_.get(), nullptr, std::min(rest, pipe_bytes_), SPLICE_F_MOVE);
    if (in < 0 && errno == EINTR) continue;
    if (in < 0) return ErrnoStatus(errno, "splice from the file");
    if (in == 0) {
      // The file shrank after it was read and hashed. The frame promised `length` bytes:
      // zeros keep the stream in step. The sender sees the change when it checks the
      // file again before FILE_END, and aborts this version instead.
      return SendBytes(std::vector<std::byte>(rest));
    }
    size_t left = static_cast<size_t>(in);
    while (left > 0) {
      ssize_t out = splice(pipe_read_.get(), nullptr, fd_.get(), nullptr, left,
                           SPLICE_F_MOVE | (rest > static_cast<size_t>(in) ? SPLICE_F_MORE : 0));
      if (out < 0 && errno == EINTR) continue;
      if (out < 0) {
        return errno == EAGAIN ? Unavailable("standby accepted no data for 30 s")
                               : ErrnoStatus(errno, "splice to the socket");
      }
      left -= static_cast<size_t>(out);
      bytes_sent_.fetch_add(static_cast<uint64_t>(out), std::memory_order_relaxed);
      bytes_spliced_.fetch_add(static_cast<uint64_t>(out), std::memory_order_relaxed);
    }
    rest -= static_cast<size_t>(in);
  }
  return Status::Ok();
}

Result<std::unique_ptr<Connection>> DataStreamOut::Setup() {
  int64_t deadline = NowMs() + kDataStreamSetupMs;
  if (connect(fd_.get(), reinterpret_cast<const sockaddr*>(&options_.addr), options_.addr_len) !=
      0) {
    return ErrnoStatus(errno, "connect");
  }
  // The TLS handshake draws randomness (ephemeral keys): this thread has its own source.
  ASSIGN_OR_RETURN(rng_, Rng::Create());
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn,
                   Connection::Create(wire::TlsRole::kClient, options_.psk, Rng::Generate,
                                      rng_->ctx(), options_.hello, options_.epoch, options_.mode));
  std::vector<std::byte> rx(kRecvBytes);
  while (!conn->open()) {
    RETURN_IF_ERROR(SendAll(*conn));
    if (stopping_.load() || NowMs() > deadline) {
      return Unavailable("data stream set-up did not finish within 10 s");
    }
    ssize_t n = recv(fd_.get(), rx.data(), rx.size(), 0);
    if (n == 0) return Unavailable("standby closed the data stream during set-up");
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return Unavailable("data stream set-up did not finish within 10 s");
      return ErrnoStatus(errno, "recv");
    }
    RETURN_IF_ERROR(conn->Feed(std::span<const std::byte>(rx.data(), static_cast<size_t>(n))));
    ASSIGN_OR_RETURN(auto frame, conn->Next());
    if (frame) {
      if (const auto* err = std::get_if<wire::Error>(&frame->message)) {
        return Unavailable("standby refused the data stream: " + err->message);
      }
      return InvalidArgument("standby sent " +
                             std::string(wire::MessageTypeName(wire::TypeOf(frame->message))) +
                             " on a data stream");
    }
  }
  RETURN_IF_ERROR(SendAll(*conn));  // our HELLO
  if (conn->peer_hello().node_id != options_.expected_node_id) {
    return PermissionDenied("data stream reached another node than the control stream");
  }
  return conn;
}

void DataStreamOut::Run() {
  auto conn = Setup();
  if (!conn.ok()) {
    RecordFailure(conn.status());
    return;
  }
  SetTimeout(fd_.get(), SO_SNDTIMEO, kDataStreamStallMs);
  ready_.store(true, std::memory_order_release);
  std::vector<DataFrame> batch;
  while (!stopping_.load()) {
    batch.clear();
    if (!queue_.PopSome(batch, kPopBatch, 1000)) break;  // closed
    if (batch.empty()) {
      // A second with nothing to send: the burst is over. Its buffers (the outbox and
      // tx_, which swap storage in SendAll: up to a batch plus the largest frame each)
      // go back to the heap rather than stay for good.
      (*conn)->ReleaseIdleBuffer(kIdleKeepBytes);
      if (tx_.capacity() > kIdleKeepBytes) std::vector<std::byte>().swap(tx_);
      continue;
    }
    for (DataFrame& f : batch) {
      if (f.splice_file) {
        Status s = SendSpliced(**conn, f);
        f.splice_file.reset();  // the file is closed once its last extent went out
        if (!s.ok()) {
          RecordFailure(s);
          return;
        }
        continue;
      }
      Status s = (*conn)->Send(options_.epoch, f.seq, f.message);
      ++frames_in_outbox_;
      if (s.ok() && (*conn)->outgoing_size() >= kSendBatchBytes) s = SendAll(**conn);
      if (!s.ok()) {
        RecordFailure(s);
        return;
      }
    }
    Status s = SendAll(**conn);
    if (!s.ok()) {
      RecordFailure(s);
      return;
    }
  }
}

// ---- DataStreamIn ------------------------------------------------------------------------

DataStreamIn::DataStreamIn(UniqueFd fd, std::unique_ptr<Connection> conn,
                           std::optional<wire::Frame> first, uint16_t index, uint64_t min_epoch,
                           int notify_fd)
    : DataStreamThread(index),
      conn_(std::move(conn)),
      first_(std::move(first)),
      min_epoch_(min_epoch),
      notify_fd_(notify_fd) {
  fd_ = std::move(fd);
  thread_ = std::thread([this] { Run(); });
}

DataStreamIn::~DataStreamIn() { Stop(); }

void DataStreamIn::SetFailed(const Status& s) {
  RecordFailure(s);
  Notify();
}

void DataStreamIn::Notify() {
  uint64_t one = 1;
  ssize_t n = write(notify_fd_, &one, sizeof one);
  (void)n;  // the counter cannot overflow in practice; a missed wake-up is re-tried by the tick
}

bool DataStreamIn::Take(wire::Frame& frame) {
  frames_taken_.fetch_add(1, std::memory_order_release);  // even one refused below
  if (frame.epoch < min_epoch_) {
    SetFailed(PermissionDenied("frame with stale epoch " + std::to_string(frame.epoch)));
    return false;
  }
  if (!std::holds_alternative<wire::Extent>(frame.message) &&
      !std::holds_alternative<wire::Hole>(frame.message)) {
    SetFailed(InvalidArgument("primary sent " +
                              std::string(wire::MessageTypeName(wire::TypeOf(frame.message))) +
                              " on a data stream (only EXTENT and HOLE belong there)"));
    return false;
  }
  DataFrame f{frame.seq, std::move(frame.message), 0, nullptr, 0};
  f.bytes = DataFrameBytes(f.message);
  // Full: the event loop is behind (or waits for the control stream); this thread stops
  // reading, and TCP holds the primary.
  while (!queue_.Push(f, 1000)) {
    if (stopping_.load()) return false;
  }
  Notify();
  return true;
}

void DataStreamIn::Run() {
  if (first_ && !Take(*first_)) return;
  first_.reset();
  std::vector<std::byte> rx(kRecvBytes);
  while (!stopping_.load()) {
    // Frames already decoded (some may have come with the HELLO).
    for (;;) {
      auto next = conn_->Next();
      if (!next.ok()) {
        // The peer's close_notify is reported after every frame decoded before it.
        if (conn_->closed_by_peer()) closed_by_peer_.store(true, std::memory_order_release);
        SetFailed(next.status());
        return;
      }
      if (!next->has_value()) break;
      if (!Take(**next)) return;
    }
    ssize_t n = recv(fd_.get(), rx.data(), rx.size(), 0);
    if (n == 0) {
      // The primary ends a data stream by closing its socket (no close_notify), between
      // frames. An end inside a frame is a cut, not its word: the session ends at once.
      if (!conn_->mid_frame()) {
        closed_by_peer_.store(true, std::memory_order_release);
        SetFailed(Unavailable("primary closed the data stream"));
      } else {
        SetFailed(Unavailable("data stream ended inside a frame"));
      }
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      SetFailed(ErrnoStatus(errno, "recv"));
      return;
    }
    bytes_received_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    Status s = conn_->Feed(std::span<const std::byte>(rx.data(), static_cast<size_t>(n)));
    if (!s.ok()) {
      SetFailed(s);
      return;
    }
  }
}

}  // namespace hasync::engine
