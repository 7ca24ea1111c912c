// What the node's session tests share: an owner for PeerLink and StreamPool that
// records what they ask of the node, and a primary/standby connection pair whose
// handshake is done in memory.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "engine/net/connection.h"
#include "engine/net/rng.h"
#include "engine/node/peer_link.h"
#include "engine/node/stream_pool.h"

namespace hasync::engine::testing {

inline constexpr uint64_t kFakeEpoch = 3;
inline constexpr uint64_t kFakeSession = 11;

// Records every drop and resume; a node stop is a test failure.
class FakeNodeOwner : public PeerLink::Owner, public StreamPool::Owner {
 public:
  Result<std::unique_ptr<Connection>> NewConnection(wire::TlsRole) override {
    return Unavailable("not in this test");
  }
  bool ChangingRole() const override { return false; }
  void Dialled(const std::shared_ptr<Peer>&) override {}
  void DialFailed() override {}
  void Received(const std::shared_ptr<Peer>&, size_t) override {}
  void Dropped(const std::shared_ptr<Peer>&, const Status& why) override {
    drops.push_back(why.ToString());
  }
  Status LeaseWhileSending(int64_t) override { return Status::Ok(); }
  DataStreamOut::Options DataStreamOptions(uint16_t) override { return {}; }
  uint64_t epoch() const override { return kFakeEpoch; }
  Status Refuse(const std::shared_ptr<Peer>&, wire::ErrorCode, const std::string& why) override {
    return Unavailable(why);
  }
  // As the node's does: the control stream (if set) is read on.
  void ResumeControl() override {
    ++resumed;
    if (control) control->recv_held = false;
  }
  void Fail(Status why) override { ADD_FAILURE() << "the node would stop: " << why.ToString(); }

  std::vector<std::string> drops;
  int resumed = 0;
  std::shared_ptr<Peer> control;
};

// HELLO of the primary (node 1) or the standby (node 2) of session kFakeSession; a
// nonzero stream_index makes it a data stream's.
inline wire::Hello FakeHello(wire::Role role, uint16_t stream_index = 0) {
  wire::Hello h;
  h.role = role;
  h.node_id = role == wire::Role::kPrimary ? 1 : 2;
  h.node_name = role == wire::Role::kPrimary ? "ctl1" : "ctl2";
  h.session_id = kFakeSession;
  if (stream_index != 0) {
    h.stream_kind = wire::StreamKind::kData;
    h.stream_index = stream_index;
  }
  return h;
}

struct ConnectionPair {
  std::unique_ptr<Connection> primary;
  std::unique_ptr<Connection> standby;
};

// Both ends of one connection with the handshake done in memory, at kFakeEpoch. Each side
// has its own generator: an Rng is not thread-safe. Empty ends on failure (reported).
inline ConnectionPair OpenFakePair(ChannelMode mode, uint16_t stream_index, Rng& primary_rng,
                                   Rng& standby_rng) {
  const std::vector<std::byte> key(32, std::byte{7});
  auto primary =
      Connection::Create(wire::TlsRole::kClient, key, Rng::Generate, primary_rng.ctx(),
                         FakeHello(wire::Role::kPrimary, stream_index), kFakeEpoch, mode);
  auto standby =
      Connection::Create(wire::TlsRole::kServer, key, Rng::Generate, standby_rng.ctx(),
                         FakeHello(wire::Role::kStandby, stream_index), kFakeEpoch, mode);
  if (!primary.ok() || !standby.ok()) {
    ADD_FAILURE() << "Connection::Create failed";
    return {};
  }
  // Moves one side's outbox into the other.
  auto move = [](Connection& from, Connection& to) {
    auto out = from.outgoing();
    std::vector<std::byte> copy(out.begin(), out.end());
    from.Consume(out.size());
    return copy.empty() || to.Feed(copy).ok();
  };
  for (int i = 0; i < 50 && ((*primary)->outgoing_size() > 0 || (*standby)->outgoing_size() > 0);
       ++i) {
    if (!move(**primary, **standby) || !move(**standby, **primary)) {
      ADD_FAILURE() << "the handshake failed";
      return {};
    }
  }
  if (!(*primary)->Next().ok() || !(*standby)->Next().ok() || !(*primary)->open() ||
      !(*standby)->open()) {
    ADD_FAILURE() << "the handshake did not finish";
    return {};
  }
  return {std::move(primary).value(), std::move(standby).value()};
}

}  // namespace hasync::engine::testing
