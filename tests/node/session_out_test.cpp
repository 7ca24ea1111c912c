// SessionOut::Progress during a long walk: the walk holds the event loop (no RunOnce), so
// only Progress can keep the session alive. The regression it guards (516da5a): the
// PING Progress queued every second never left, because the completion of the send in
// flight was not reaped while the walk ran; the peer heard nothing for kIdleTimeoutNs
// and closed the session (the 1,000,000-file initial sync, 26 sessions in a row).
#include "engine/node/session_out.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "engine/config.h"
#include "engine/net/rng.h"
#include "engine/node/metrics.h"
#include "engine/node/now.h"
#include "engine/node/peer_link.h"
#include "engine/node/state.h"
#include "engine/node/stream_pool.h"
#include "iouring/loop.h"
#include "iouring/ring.h"
#include "tests/node/session_fakes.h"

namespace hasync::engine {
namespace {

using namespace std::chrono_literals;

TEST(SessionOut, ALongWalkKeepsSendingAPingEverySecond) {
  // One generator per side: an Rng is not thread-safe, and the standby's side runs on
  // the reader thread below.
  auto rng = Rng::Create();
  auto standby_rng = Rng::Create();
  ASSERT_TRUE(rng.ok() && standby_rng.ok());
  auto ring = iouring::Ring::Create();
  if (!ring.ok()) GTEST_SKIP() << "io_uring is not available here: " << ring.status().ToString();
  iouring::Loop loop(std::move(ring).value());

  // A session whose handshake is done: the primary's end on a socket, the standby's in
  // memory, fed from the other end of that socket by a reader thread.
  for (auto mode : {ChannelMode::kTls, ChannelMode::kPlain}) {
    SCOPED_TRACE(mode == ChannelMode::kTls ? "tls" : "plain");
    testing::ConnectionPair pair =
        testing::OpenFakePair(mode, 0, *rng.value(), *standby_rng.value());
    ASSERT_TRUE(pair.primary && pair.standby);

    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    auto session = std::make_shared<Peer>();
    session->fd = UniqueFd(sv[0]);
    session->conn = std::move(pair.primary);
    session->session_opened = true;
    UniqueFd far(sv[1]);

    std::atomic<int> pings{0};
    std::atomic<bool> stop{false};
    Status reader_failed;  // written by the reader, read after the join
    std::thread reader([&] {
      std::vector<std::byte> buf(64 * 1024);
      while (!stop.load()) {
        ssize_t n = recv(far.get(), buf.data(), buf.size(), MSG_DONTWAIT);
        if (n <= 0) {
          std::this_thread::sleep_for(5ms);
          continue;
        }
        if (Status fed = pair.standby->Feed({buf.data(), static_cast<size_t>(n)}); !fed.ok()) {
          reader_failed = fed;
          return;
        }
        for (;;) {
          auto f = pair.standby->Next();
          if (!f.ok()) {
            reader_failed = f.status();
            return;
          }
          if (!f->has_value()) break;
          if (std::holds_alternative<wire::Ping>((*f)->message)) pings.fetch_add(1);
        }
      }
    });
    // Joined on every way out of this iteration, an ASSERT's return included.
    struct JoinReader {
      std::atomic<bool>& stop;
      std::thread& reader;
      ~JoinReader() {
        stop = true;
        if (reader.joinable()) reader.join();
      }
    } join_reader{stop, reader};

    testing::FakeNodeOwner owner;
    Config cfg;
    NodeState state;
    state.epoch = 3;
    Metrics metrics;
    PeerLink link(loop, owner, PeerLink::Options{}, UniqueFd());
    StreamPool streams(cfg, loop, link, session, owner);
    SessionOut out(state, metrics, session, link, streams);

    // The walk: 3.5 s of work with Progress called every 10 ms, and the loop never run.
    // Its first PING goes a second in, then one a second: 3 by the end.
    const int64_t end = NowNs() + 3'500'000'000;
    while (NowNs() < end) {
      ASSERT_TRUE(out.Progress().ok());
      std::this_thread::sleep_for(10ms);
    }
    // What was queued by the last Progress has had time to arrive.
    for (int i = 0; i < 100 && pings.load() < 3; ++i) std::this_thread::sleep_for(10ms);
    stop = true;
    reader.join();
    EXPECT_TRUE(reader_failed.ok())
        << "the standby's end could not read: " << reader_failed.ToString();
    EXPECT_GE(pings.load(), 3) << "PINGs queued during the walk did not leave";
    EXPECT_LE(pings.load(), 4) << "more than one PING a second";
    // The send still in flight completes before the socket and its buffers go.
    for (int i = 0; i < 100 && session->sending; ++i) ASSERT_TRUE(loop.RunOnce(10'000'000).ok());
    ASSERT_FALSE(session->sending) << "a send still in flight after 1 s";
    EXPECT_TRUE(owner.drops.empty()) << "the session was dropped: " << owner.drops.front();
  }
}

}  // namespace
}  // namespace hasync::engine
