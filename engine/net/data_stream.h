// Data streams (DESIGN §5, docs/PROTOCOL.md §6): extra connections beside the ordered
// control stream that carry only EXTENT and HOLE frames, each with a thread of its own,
// so that encrypting (primary) and decrypting (standby) file content is spread over
// cores instead of sharing the event loop's one.
//
// Primary: DataStreamOut dials the standby, proves the sync key and exchanges HELLOs
// (stream_kind = data, the control stream's session_id) on its thread, then encodes,
// encrypts and sends the frames queued to it, in queue order.
// Standby: DataStreamIn takes a connection the event loop accepted and opened, and on
// its thread receives, decrypts and decodes frames into a queue the event loop reads.
//
// Both queues are bounded by bytes (kDataQueueBytes; one frame larger than the bound
// still passes an empty queue): a full queue holds the producer — on the primary the
// sender, on the standby its socket and so, by TCP flow control, the primary's stream.
// Errors are sticky. A stream that fails once open ends the whole session: an extent
// cannot be sent again alone, so the primary drops the session and resyncs. One that
// never opened carried nothing; the primary dials it again (StreamPool::Check in
// engine/node/stream_pool.cpp).
//
// Plain mode: a DataFrame may name a file instead of holding the extent's bytes; the
// primary's thread then sends the frame's head and splices the bytes file → pipe →
// socket (SendSpliced), so they are never copied through user space.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/net/connection.h"
#include "engine/net/rng.h"
#include "wire/messages.h"

namespace hasync::engine {

inline constexpr size_t kDataQueueBytes = 4u << 20;
// A data stream's connect, handshake and HELLO exchange must finish within this.
inline constexpr int64_t kDataStreamSetupMs = 10'000;
// The primary's data stream gives up when the standby accepts nothing for this long.
inline constexpr int64_t kDataStreamStallMs = 30'000;

struct DataFrame {
  uint64_t seq = 0;
  wire::Message message;
  size_t bytes = 0;  // accounted against the queue's bound
  // Plain mode, primary: an EXTENT whose data is not in `message` (empty there) but is
  // spliced from this file, `splice_length` bytes at the extent's offset, when sent.
  std::shared_ptr<const UniqueFd> splice_file;
  uint32_t splice_length = 0;
};

// Bytes a frame counts for in a queue: its payload, or a small constant.
size_t DataFrameBytes(const wire::Message& message);

// A bounded FIFO of frames between one producer thread and one consumer thread.
class FrameQueue {
 public:
  explicit FrameQueue(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Appends if there is room (or the queue is empty); false otherwise or when closed.
  bool TryPush(DataFrame& frame);
  // Appends, waiting up to timeout_ms for room. false on timeout or when closed.
  bool Push(DataFrame& frame, int64_t timeout_ms);
  // Waits up to timeout_ms until the queue has room for `bytes` (or is closed).
  void WaitForRoom(size_t bytes, int64_t timeout_ms);
  // Consumer: the oldest frame, or null; it stays valid until PopFront.
  DataFrame* Front();
  void PopFront();
  // Consumer: moves up to `max` frames out, waiting up to timeout_ms for the first.
  // Returns false once closed and empty.
  bool PopSome(std::vector<DataFrame>& out, size_t max, int64_t timeout_ms);
  // Wakes both sides; no push succeeds afterwards.
  void Close();
  size_t bytes() const;

 private:
  bool HasRoom(size_t bytes) const { return bytes_ == 0 || bytes_ + bytes <= max_bytes_; }
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::condition_variable room_;
  std::condition_variable data_;
  std::deque<DataFrame> frames_;
  size_t bytes_ = 0;
  bool closed_ = false;
};

// What both ends share: the socket, the queue, the thread, and why the stream stopped.
class DataStreamThread {
 public:
  uint16_t index() const { return index_; }
  // OK while healthy; the reason it stopped otherwise (thread-safe).
  Status failed() const;
  // Ends the thread (the socket is shut down, the queue closed) and waits for it.
  void Stop();

 protected:
  explicit DataStreamThread(uint16_t index) : index_(index), queue_(kDataQueueBytes) {}
  // The derived class's destructor calls Stop(), while the members the thread uses live.
  ~DataStreamThread() = default;
  // Keeps the first failure, named after the stream, and closes the queue: no push
  // succeeds afterwards, and a side waiting on the queue sees it at once.
  void RecordFailure(const Status& s);

  const uint16_t index_;
  UniqueFd fd_;
  FrameQueue queue_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};

 private:
  mutable std::mutex mu_;
  Status failed_;
};

// Primary: one outgoing data stream.
class DataStreamOut : public DataStreamThread {
 public:
  struct Options {
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    std::vector<std::byte> psk;
    ChannelMode mode = ChannelMode::kTls;
    wire::Hello hello;              // stream_kind = data, stream_index, session_id set
    uint64_t epoch = 0;             // carried by every frame
    uint64_t expected_node_id = 0;  // the standby's, from its control-stream HELLO
  };

  // Creates the socket and starts the thread, which connects and handshakes.
  static Result<std::unique_ptr<DataStreamOut>> Start(Options options);
  ~DataStreamOut();

  // Queues a frame if there is room; false (frame untouched) when full or failed (a
  // failure closes the queue). Event loop only.
  bool TryEnqueue(DataFrame& frame) {
    if (!queue_.TryPush(frame)) return false;
    ++enqueued_;
    return true;
  }
  // Every frame queued so far has left (into the socket; a spliced one's file bytes were
  // taken). Event loop only.
  bool drained() const { return frames_sent_.load(std::memory_order_acquire) == enqueued_; }
  // Waits up to timeout_ms for drained() (or a failure). Event loop only.
  void WaitDrained(int64_t timeout_ms);
  void WaitForRoom(size_t bytes, int64_t timeout_ms) { queue_.WaitForRoom(bytes, timeout_ms); }
  size_t queued_bytes() const { return queue_.bytes(); }
  // Set up (handshake and HELLOs done); never cleared. A stream that fails before this
  // carried nothing and can be replaced; one that fails after it lost queued content.
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  uint64_t bytes_sent() const { return bytes_sent_.load(std::memory_order_relaxed); }
  // Of those, file bytes that went by splice(2) (plain mode).
  uint64_t bytes_spliced() const { return bytes_spliced_.load(std::memory_order_relaxed); }

 private:
  explicit DataStreamOut(Options options)
      : DataStreamThread(options.hello.stream_index), options_(std::move(options)) {}
  void Run();
  Result<std::unique_ptr<Connection>> Setup();
  Status SendAll(Connection& conn);
  // Blocking send of all of `bytes` (SO_SNDTIMEO bounds each wait), counted in bytes_sent.
  Status SendBytes(std::span<const std::byte> bytes);
  // Sends a spliced EXTENT: its head through the connection, then its data from the file.
  Status SendSpliced(Connection& conn, const DataFrame& frame);
  Status SpliceRange(int file, uint64_t offset, uint32_t length);

  Options options_;
  uint64_t enqueued_ = 0;                 // event loop
  std::atomic<uint64_t> frames_sent_{0};  // this thread
  uint64_t frames_in_outbox_ = 0;         // this thread: queued in the connection
  std::mutex sent_mu_;
  std::condition_variable sent_cv_;  // frames_sent_ moved
  void AddSent(uint64_t frames);
  UniqueFd pipe_read_, pipe_write_;  // splice goes file → pipe → socket
  size_t pipe_bytes_ = 0;
  std::atomic<bool> ready_{false};
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> bytes_spliced_{0};
  std::vector<std::byte> tx_;
  std::unique_ptr<Rng> rng_;  // this thread's own (Rng is not thread-safe)
};

// Standby: one incoming data stream, handed over once open.
class DataStreamIn : public DataStreamThread {
 public:
  // conn is open (HELLOs exchanged); `first` (a frame decoded with the HELLO) and then
  // bytes it already buffered are read first. notify_fd (an eventfd) is written after
  // each frame queued and when the stream ends.
  DataStreamIn(UniqueFd fd, std::unique_ptr<Connection> conn, std::optional<wire::Frame> first,
               uint16_t index, uint64_t min_epoch, int notify_fd);
  ~DataStreamIn();

  // Event loop: the oldest decoded frame, or null.
  DataFrame* Front() { return queue_.Front(); }
  void PopFront() { queue_.PopFront(); }
  uint64_t bytes_received() const { return bytes_received_.load(std::memory_order_relaxed); }
  // Nothing arrived after the hand-over: no frame, no byte. A primary that gave up on
  // setting this stream up (it routes content only to streams it saw open) closes it in
  // this state, and nothing of the session's content went with it.
  bool unused() const {
    return frames_taken_.load(std::memory_order_acquire) == 0 && bytes_received() == 0;
  }
  // The stream ended because the primary closed it (a TLS close_notify, or an end of
  // stream between frames) rather than on a refused frame, a socket error or a cut:
  // every frame it sent before the close is in the queue, and the primary's control
  // stream may still hold frames sent before it (a DEMOTED). Meaningful once failed()
  // is not OK.
  bool closed_by_peer() const { return closed_by_peer_.load(std::memory_order_acquire); }

 private:
  void Run();
  // Checks one decoded frame and queues it; false when the stream ends (failed/stopping).
  bool Take(wire::Frame& frame);
  void Notify();
  void SetFailed(const Status& s);  // RecordFailure, then wakes the event loop

  std::unique_ptr<Connection> conn_;
  std::optional<wire::Frame> first_;
  const uint64_t min_epoch_;
  const int notify_fd_;
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<uint64_t> frames_taken_{0};
  std::atomic<bool> closed_by_peer_{false};
};

}  // namespace hasync::engine
