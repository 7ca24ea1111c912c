#include "engine/node/stream_pool.h"

#include <fcntl.h>
#include <sys/eventfd.h>

#include <algorithm>

#include <fmt/format.h>

#include "engine/log.h"
#include "engine/node/now.h"

namespace hasync::engine {

namespace {

// A data stream that could not be set up is tried again after this, doubling per failure.
constexpr int64_t kDataRetryMinNs = 1'000'000'000;
constexpr int64_t kDataRetryMaxNs = 30'000'000'000;
// Files at least this big ship their content on a data stream (when the session has
// any); smaller ones inline on the control stream, where a file costs no wait for
// another connection.
constexpr uint64_t kDataStreamMinBytes = 256 * 1024;
// In TLS mode, files at least this big spread their extents over all data streams (each
// extent to the least-loaded one), so one large file is encrypted on several cores. The
// standby then writes them out of order and reads the file back for its hash
// (docs/APPLY.md): worth it only for large files, and only when there is a cipher to
// spread (plain mode measured slower striped: docs/PERFORMANCE.md).
constexpr uint64_t kDataStreamStripeBytes = 8u << 20;
static_assert(kDataStreamMinBytes <= kDataStreamStripeBytes);

}  // namespace

StreamPool::StreamPool(const Config& cfg, iouring::Loop& loop, PeerLink& link,
                       const std::shared_ptr<Peer>& control, Owner& owner)
    : cfg_(cfg), loop_(loop), link_(link), control_(control), owner_(owner) {}

// ---- primary --------------------------------------------------------------------------------

Status StreamPool::Start(const wire::Hello& peer_hello) {
  Stop();
  if (cfg_.transport.data_streams == 0) return Status::Ok();
  if ((peer_hello.capabilities & wire::kCapDataStreams) == 0) {
    Log(Level::kInfo, "data_streams_off").kv("reason", "the standby does not offer them");
    return Status::Ok();
  }
  data_peer_node_id_ = peer_hello.node_id;
  for (uint32_t i = 1; i <= cfg_.transport.data_streams; ++i) {
    ASSIGN_OR_RETURN(auto ds, MakeDataStream(static_cast<uint16_t>(i)));
    data_out_.push_back(std::move(ds));
  }
  data_retry_at_ns_.assign(data_out_.size(), 0);
  data_retry_backoff_ns_.assign(data_out_.size(), kDataRetryMinNs);
  Log(Level::kInfo, "data_streams_started")
      .kv("count", static_cast<uint64_t>(data_out_.size()))
      .kv("min_file_bytes", kDataStreamMinBytes);
  return Status::Ok();
}

Result<std::unique_ptr<DataStreamOut>> StreamPool::MakeDataStream(uint16_t index) {
  DataStreamOut::Options o = owner_.DataStreamOptions(index);
  o.addr = link_.peer_address();
  o.addr_len = link_.peer_address_len();
  o.expected_node_id = data_peer_node_id_;
  return DataStreamOut::Start(std::move(o));
}

void StreamPool::Check(int64_t now) {
  for (size_t k = 0; k < data_out_.size(); ++k) {
    DataStreamOut& ds = *data_out_[k];
    if (data_retry_at_ns_[k] != 0) {
      if (now < data_retry_at_ns_[k]) continue;
      auto fresh = MakeDataStream(ds.index());
      if (!fresh.ok()) {
        link_.Drop(control_, fresh.status());
        return;
      }
      data_out_[k]->Stop();
      data_out_[k] = std::move(fresh).value();
      data_retry_at_ns_[k] = 0;
      continue;
    }
    Status f = ds.failed();
    if (f.ok()) continue;
    if (ds.ready()) {
      link_.Drop(control_, f);  // content queued on it is lost: the session resyncs
      return;
    }
    // It never opened, so nothing was routed to it (PickDataStream takes open streams
    // only): the session goes on without it, and it is tried again. The standby may be
    // busy for a while (hashing its tree for the manifest, a large fsync).
    data_retry_at_ns_[k] = now + data_retry_backoff_ns_[k];
    Log(Level::kWarn, "data_stream_retry")
        .kv("index", static_cast<uint64_t>(ds.index()))
        .kv("in_ms", data_retry_backoff_ns_[k] / 1'000'000)
        .kv("reason", f.ToString());
    data_retry_backoff_ns_[k] = std::min(data_retry_backoff_ns_[k] * 2, kDataRetryMaxNs);
  }
}

void StreamPool::Stop() {
  route_seq_ = 0;
  route_to_ = nullptr;
  uint64_t bytes = 0;
  uint64_t spliced = 0;
  size_t count = data_out_.size() + data_in_.size();
  for (auto& ds : data_out_) {
    ds->Stop();
    bytes += ds->bytes_sent();
    spliced += ds->bytes_spliced();
  }
  for (auto& ds : data_in_) {
    ds->Stop();
    bytes += ds->bytes_received();
  }
  data_out_.clear();
  data_in_.clear();
  data_retry_at_ns_.clear();
  data_retry_backoff_ns_.clear();
  if (count > 0) {
    Log(Level::kInfo, "data_streams_closed")
        .kv("count", static_cast<uint64_t>(count))
        .kv("bytes", bytes)
        .kv("spliced_bytes", spliced);
  }
}

DataStreamOut* StreamPool::PickDataStream() {
  // The least loaded open one, first looking from the one after the last pick (round
  // robin on ties); null while none is open. An open stream stays open (or ends the
  // session), so a file routed to one can keep using the open set.
  DataStreamOut* best = nullptr;
  size_t best_bytes = 0;
  for (size_t k = 0; k < data_out_.size(); ++k) {
    DataStreamOut* ds = data_out_[(next_stream_ + k) % data_out_.size()].get();
    if (!ds->ready() || !ds->failed().ok()) continue;
    size_t b = ds->queued_bytes();
    if (best == nullptr || b < best_bytes) {
      best = ds;
      best_bytes = b;
    }
  }
  next_stream_ = (next_stream_ + 1) % data_out_.size();
  return best;
}

bool StreamPool::Settled() const {
  return std::all_of(data_out_.begin(), data_out_.end(),
                     [](const auto& ds) { return ds->ready() || !ds->failed().ok(); });
}

std::optional<Status> StreamPool::Route(uint64_t seq, wire::Message& message) {
  if (data_out_.empty()) return std::nullopt;
  // A large file's content goes to one data stream, in order; a very large one's
  // is spread over all of them.
  if (const auto* begin = std::get_if<wire::FileBegin>(&message)) {
    route_seq_ = begin->size >= kDataStreamMinBytes ? seq : 0;
    route_stripe_ = begin->size >= kDataStreamStripeBytes && data_out_.size() > 1 &&
                    cfg_.transport.mode == TransportMode::kTls;
    route_to_ = route_seq_ != 0 ? PickDataStream() : nullptr;
    if (route_to_ == nullptr) route_seq_ = 0;  // no stream open yet: the control stream
  } else if (seq != 0 && seq == route_seq_ &&
             (std::holds_alternative<wire::Extent>(message) ||
              std::holds_alternative<wire::Hole>(message))) {
    if (route_stripe_) {
      // Each stripe to the least loaded open stream. None open means every stream has
      // failed since the FILE_BEGIN: the current one then reports its failure below
      // (and the session ends), rather than the route losing its stream.
      if (DataStreamOut* next = PickDataStream()) route_to_ = next;
    }
    if (route_to_ == nullptr) return Unavailable("no data stream for the routed file");
    DataFrame frame{seq, std::move(message), 0, nullptr, 0};
    frame.bytes = DataFrameBytes(frame.message);
    return Enqueue(frame);
  }
  return std::nullopt;
}

bool StreamPool::Splices(uint64_t seq) const {
  return cfg_.transport.mode == TransportMode::kPlain && cfg_.transport.splice && seq != 0 &&
         seq == route_seq_ && route_to_ != nullptr && !route_stripe_;
}

Status StreamPool::WaitSpliced() {
  // The stream splices from the file while the control stream's outbox keeps moving
  // (the standby may need this file's FILE_BEGIN before it reads the stream on).
  std::shared_ptr<Peer> control = control_;
  int64_t deadline = NowNs() + kDataStreamStallMs * 1'000'000;
  uint64_t seen = route_to_->bytes_sent();
  int64_t progress_ns = NowNs();
  while (!route_to_->drained()) {
    RETURN_IF_ERROR(route_to_->failed());
    if (control->dead) return Unavailable("session closed while sending");
    link_.StartSend(control);
    if (route_to_->bytes_sent() != seen) {
      seen = route_to_->bytes_sent();
      progress_ns = NowNs();
      deadline = progress_ns + kDataStreamStallMs * 1'000'000;
    } else if (Status lease = link_.LeaseWhileSending(std::max(progress_ns, control->last_tx_ns));
               !lease.ok()) {
      return lease;
    } else if (NowNs() > deadline) {
      return Unavailable(fmt::format("data stream {} accepted nothing for {} s", route_to_->index(),
                                     kDataStreamStallMs / 1000));
    }
    if (link_.AwaitSendInFlight(control, 1'000'000)) {
      RETURN_IF_ERROR(control->send_failed);
    } else {
      route_to_->WaitDrained(2);
    }
  }
  return route_to_->failed();
}

Status StreamPool::Enqueue(DataFrame& frame) {
  const int64_t deadline = NowNs() + kDataStreamStallMs * 1'000'000;
  std::shared_ptr<Peer> control = control_;
  uint64_t seen = route_to_->bytes_sent();
  int64_t progress_ns = NowNs();
  for (;;) {
    if (route_to_->TryEnqueue(frame)) return Status::Ok();
    RETURN_IF_ERROR(route_to_->failed());
    // Full. The standby may be holding this stream until it reads the FILE_BEGIN still
    // in the control stream's outbox: keep that one moving while waiting.
    link_.StartSend(control);
    if (route_to_->bytes_sent() != seen) {
      seen = route_to_->bytes_sent();
      progress_ns = NowNs();
    }
    RETURN_IF_ERROR(link_.LeaseWhileSending(std::max(progress_ns, control->last_tx_ns)));
    if (NowNs() > deadline) {
      return Unavailable(fmt::format("data stream {} accepted nothing for {} s", route_to_->index(),
                                     kDataStreamStallMs / 1000));
    }
    if (link_.AwaitSendInFlight(control, 2'000'000)) {
      RETURN_IF_ERROR(control->send_failed);
      if (control->dead) return Unavailable("session closed while sending");
    } else {
      route_to_->WaitForRoom(frame.bytes, 2);
    }
  }
}

// ---- standby --------------------------------------------------------------------------------

Status StreamPool::AcceptStreams(Receiver& receiver) {
  data_event_fd_ = UniqueFd(eventfd(0, EFD_CLOEXEC));
  if (!data_event_fd_) return ErrnoStatus(errno, "eventfd for data streams");
  receiver_ = &receiver;
  return Status::Ok();
}

bool StreamPool::HasUnread() const {
  for (const auto& ds : data_in_) {
    if (ds->Front() != nullptr) return true;
  }
  return false;
}

Status StreamPool::Adopt(const std::shared_ptr<Peer>& peer, std::optional<wire::Frame> first) {
  const wire::Hello& hello = peer->conn->peer_hello();
  std::string refuse;
  if (!control_ || control_->dead || !control_->conn->open()) {
    refuse = "data stream without a control stream";
  } else if (control_->conn->peer_hello().session_id != hello.session_id) {
    refuse = "data stream of another session";
  } else if (hello.stream_index == 0 || hello.stream_index > wire::kDataStreamsMax) {
    refuse = "data stream index " + std::to_string(hello.stream_index) + " out of range";
  } else if (auto old =
                 std::find_if(data_in_.begin(), data_in_.end(),
                              [&](const auto& d) { return d->index() == hello.stream_index; });
             old != data_in_.end()) {
    if ((*old)->unused()) {
      // The primary gave up on setting that one up and dialled again.
      (*old)->Stop();
      data_in_.erase(old);
    } else {
      refuse = "second data stream with index " + std::to_string(hello.stream_index);
    }
  }
  if (!refuse.empty()) return owner_.Refuse(peer, wire::ErrorCode::kProtocol, refuse);
  // Our HELLO may still be on its way out: let it go before the thread takes over.
  RETURN_IF_ERROR(link_.FlushAll(peer, kHandshakeTimeoutNs));
  UniqueFd fd(fcntl(peer->fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "dup a data stream's socket");
  peer->handed_off = true;
  peer->dead = true;  // to the event loop; the socket lives on in the thread
  link_.EndHandshake(peer);
  uint16_t index = hello.stream_index;  // `hello` lives in the connection moved below
  data_in_.push_back(std::make_unique<DataStreamIn>(std::move(fd), std::move(peer->conn),
                                                    std::move(first), index, owner_.epoch(),
                                                    data_event_fd_.get()));
  Log(Level::kInfo, "data_stream_open").kv("index", static_cast<uint64_t>(index));
  return Status::Ok();
}

void StreamPool::PostDataEvent() {
  Status s = loop_.Submit(
      [this](io_uring_sqe* sqe) {
        io_uring_prep_read(sqe, data_event_fd_.get(), &data_event_count_, sizeof data_event_count_,
                           0);
      },
      [this](int32_t res) {
        if (res < 0 && res != -EINTR && res != -EAGAIN) {
          owner_.Fail(ErrnoStatus(-res, "read the data streams' eventfd"));
          return;
        }
        Pump();
        PostDataEvent();
      });
  if (!s.ok()) owner_.Fail(s);
}

void StreamPool::Pump() {
  // Data frames can let the control stream go on (a waiting FILE_END completes), and the
  // control stream can let data frames go on (the FILE_BEGIN they waited for): alternate
  // until neither moves. Bounded per call; Tick calls again.
  for (int round = 0; round < 64; ++round) {
    std::shared_ptr<Peer> control = control_;
    if (!control || control->dead) return;
    bool progressed = false;
    std::erase_if(data_in_, [](const std::unique_ptr<DataStreamIn>& ds) {
      if (ds->failed().ok() || !ds->unused()) return false;
      // Closed before anything came on it: the primary gave up on setting it up.
      Log(Level::kInfo, "data_stream_unused_closed")
          .kv("index", static_cast<uint64_t>(ds->index()))
          .kv("reason", ds->failed().ToString());
      ds->Stop();
      return true;
    });
    Status ended;           // why a stream the primary closed ended
    bool all_ended = true;  // and every stream has: no more content can come
    for (auto& ds : data_in_) {
      Status failure = ds->failed();
      if (failure.ok()) all_ended = false;
      if (!failure.ok() && !ds->closed_by_peer()) {
        // A refused frame or a socket error: content is lost with it, the session resyncs.
        link_.Drop(control, failure);
        return;
      }
      // A stream the primary closed still holds what it sent before the close, and the
      // control stream may still hold frames sent before that (the DEMOTED of a
      // switchover, the primary's last COMMIT): both are read to their end, and the
      // control stream's own end closes the session.
      for (int i = 0; i < 4096; ++i) {
        DataFrame* f = ds->Front();
        if (f == nullptr) break;
        auto verdict = receiver_->OnData(f->seq, f->message);
        if (!verdict.ok()) {
          owner_
              .Refuse(control, wire::ErrorCode::kProtocol,
                      verdict.status().message().substr(0, wire::kErrorMessageMax))
              .IgnoreError();
          link_.Drop(control, verdict.status());
          return;
        }
        if (*verdict == Receiver::DataVerdict::kNotYet) break;  // its FILE_BEGIN is behind
        ds->PopFront();
        progressed = true;
      }
      if (!failure.ok() && ended.ok()) ended = failure;  // drained, or its head waits
    }
    if (progressed) control->last_rx_ns = NowNs();
    if (!control->recv_held) return;
    if (receiver_->waiting_for_data()) {
      if (progressed) continue;  // what came meanwhile, or that nothing more can come
      if (all_ended && !ended.ok()) {
        // The control stream waits for content, nothing moved, and every stream has
        // been closed: none can bring it. While one is open its thread wakes the loop
        // with what it reads (or with its end); DropIfSilent bounds that wait.
        link_.Drop(control, ended);
      }
      return;
    }
    owner_.ResumeControl();
  }
}

}  // namespace hasync::engine
