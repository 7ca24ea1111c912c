// StreamPool: a session's data streams (engine/net/data_stream.h), both ends.
//
// Primary: once the control session is open, dials transport.data_streams more
// connections, routes the content of large files to them (a file of at least
// kDataStreamMinBytes to the least-loaded open stream; in TLS mode a file of at least
// kDataStreamStripeBytes extent by extent over all of them), waits for a full queue or a
// splice while still pushing the control stream's outbox, and dials a stream that could
// not be set up again after a doubling delay (data_stream_retry). A stream that fails
// once open ends the session: the content queued on it is lost, so the primary resyncs.
//
// Standby: adopts an opened connection as a data stream of the active session (same
// session id, index in range, not a duplicate), hands its socket to the stream's thread,
// and on the eventfd the threads write gives their frames to the Receiver, alternating
// with the control stream that waits for them (Pump).
//
// What it owns: the outgoing streams and their retry state, the route of the file being
// sent, the incoming streams and the eventfd. The control stream is the node's session
// (`control`, read through a reference to the node's active peer); sends go through the
// PeerLink.
//
// Threading: the loop's thread only. Each stream has a thread of its own behind the
// DataStreamOut / DataStreamIn interface, which is safe to call from the loop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "engine/config.h"
#include "engine/net/data_stream.h"
#include "engine/node/peer_link.h"
#include "engine/sync/receiver.h"
#include "iouring/loop.h"
#include "wire/messages.h"

namespace hasync::engine {

class StreamPool {
 public:
  // What the pool asks of the node. Every call comes on the loop's thread.
  class Owner {
   public:
    virtual ~Owner() = default;
    // Primary: a new outgoing stream's key, channel mode, HELLO (this node's, with the
    // data kind and `index`) and epoch. The pool fills in the address and the peer.
    virtual DataStreamOut::Options DataStreamOptions(uint16_t index) = 0;
    // Standby: the epoch an adopted stream's frames must carry at least.
    virtual uint64_t epoch() const = 0;
    // Tells the peer why (ERROR) and returns the reason; the caller drops the peer.
    virtual Status Refuse(const std::shared_ptr<Peer>& peer, wire::ErrorCode code,
                          const std::string& why) = 0;
    // Standby: the control stream, held while a FILE_END waited for content, may go on.
    virtual void ResumeControl() = 0;
    // The loop refused an operation: the node stops.
    virtual void Fail(Status why) = 0;
  };

  // `control`: the node's session peer (null when there is none), read at each call.
  StreamPool(const Config& cfg, iouring::Loop& loop, PeerLink& link,
             const std::shared_ptr<Peer>& control, Owner& owner);
  StreamPool(const StreamPool&) = delete;
  StreamPool& operator=(const StreamPool&) = delete;

  // ---- primary ----
  // The control session opened: (re)starts the streams the standby's HELLO allows.
  Status Start(const wire::Hello& peer_hello);
  bool has_outgoing() const { return !data_out_.empty(); }
  // Every outgoing stream opened or failed (the resync's content may go).
  bool Settled() const;
  // Every tick while a session is up: a stream that failed once open ends the session;
  // one that never opened is dialled again after its backoff.
  void Check(int64_t now);
  // For each message the sender emits: a FILE_BEGIN chooses the stream (if any) for
  // that file's content; its EXTENT and HOLE frames are then queued there. Returns the
  // result of queueing when the message was taken, nullopt when it goes on the control
  // stream.
  std::optional<Status> Route(uint64_t seq, wire::Message& message);
  // The current file's content is spliced from the file (plain mode, one stream).
  bool Splices(uint64_t seq) const;
  // Queues a frame to the routed stream, waiting (bounded) while its queue is full.
  Status Enqueue(DataFrame& frame);
  // Waits until the routed stream sent everything spliced to it.
  Status WaitSpliced();

  // ---- standby ----
  // Makes the eventfd the streams' threads wake the loop with; from here on the pool
  // hands their frames to `receiver`.
  Status AcceptStreams(Receiver& receiver);
  bool accepting() const { return receiver_ != nullptr; }
  bool has_incoming() const { return !data_in_.empty(); }
  // A frame of an incoming stream waits for the receiver.
  bool HasUnread() const;
  // Adopts an opened connection as a data stream of the active session.
  // `first`: a frame that came with the HELLO, for the stream's thread to take first.
  Status Adopt(const std::shared_ptr<Peer>& peer, std::optional<wire::Frame> first);
  void PostDataEvent();
  // Hands data-stream frames to the receiver; resumes the control stream once a
  // waiting FILE_END has its content.
  void Pump();

  // Both: closes every stream (the session ended or the node stops).
  void Stop();

 private:
  Result<std::unique_ptr<DataStreamOut>> MakeDataStream(uint16_t index);
  DataStreamOut* PickDataStream();

  const Config& cfg_;
  iouring::Loop& loop_;
  PeerLink& link_;
  const std::shared_ptr<Peer>& control_;
  Owner& owner_;

  // Primary.
  std::vector<std::unique_ptr<DataStreamOut>> data_out_;
  // Per stream slot: when a stream that failed to open is tried again (0: not waiting),
  // and the wait after its next failure.
  std::vector<int64_t> data_retry_at_ns_;
  std::vector<int64_t> data_retry_backoff_ns_;
  uint64_t data_peer_node_id_ = 0;
  uint64_t route_seq_ = 0;  // the file whose content goes to route_to_
  DataStreamOut* route_to_ = nullptr;
  bool route_stripe_ = false;  // each extent of route_seq_ to the least-loaded stream
  size_t next_stream_ = 0;

  // Standby.
  Receiver* receiver_ = nullptr;
  std::vector<std::unique_ptr<DataStreamIn>> data_in_;
  UniqueFd data_event_fd_;  // eventfd the data streams' threads write
  uint64_t data_event_count_ = 0;
};

}  // namespace hasync::engine
