// StreamPool on the standby: how a data stream's end bears on the control session.
//
// A primary that ends a session (a planned switchover's DEMOTED, a stop) closes its data
// streams right after the control stream's last frames. The standby's loop can learn of
// a data stream's end before it reads the control stream's last bytes; the session must
// then still deliver what both streams carried before the close. The regression this
// guards: Pump dropped the session as soon as any data stream had ended, before the
// frames queued on it and before the DEMOTED waiting in the control socket, and a
// switchover could end with both nodes standby.
#include "engine/node/stream_pool.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "base/hash.h"
#include "engine/apply/tree.h"
#include "engine/config.h"
#include "engine/net/rng.h"
#include "engine/node/peer_link.h"
#include "engine/sync/receiver.h"
#include "iouring/loop.h"
#include "iouring/ring.h"
#include "tests/node/session_fakes.h"

namespace hasync::engine {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

using testing::FakeNodeOwner;
constexpr uint64_t kEpoch = testing::kFakeEpoch;

class NullSink : public MessageSink {
 public:
  Status Emit(uint64_t, wire::Message) override { return Status::Ok(); }
};

// One connection of a session, handshake done: the standby's end is a Peer on one end of
// a socket pair; the primary's end writes into the other.
struct Wire {
  std::unique_ptr<Connection> primary;
  std::shared_ptr<Peer> standby;
  UniqueFd far;  // the primary's socket

  // Sends the primary's queued bytes to the standby's socket.
  void Flush() {
    auto out = primary->outgoing();
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = send(far.get(), out.data() + done, out.size() - done, MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << "send: " << strerror(errno);
      done += static_cast<size_t>(n);
    }
    primary->Consume(out.size());
  }
};

Wire Open(ChannelMode mode, uint16_t stream_index, Rng& primary_rng, Rng& standby_rng) {
  testing::ConnectionPair pair =
      testing::OpenFakePair(mode, stream_index, primary_rng, standby_rng);
  if (!pair.primary || !pair.standby) return {};
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Wire w;
  w.primary = std::move(pair.primary);
  w.standby = std::make_shared<Peer>();
  w.standby->fd = UniqueFd(sv[0]);
  w.standby->conn = std::move(pair.standby);
  w.standby->session_opened = stream_index == 0;
  w.far = UniqueFd(sv[1]);
  return w;
}

wire::Extent ExtentOf(const std::string& content, uint64_t offset, size_t length) {
  wire::Extent e;
  e.file_size = content.size();
  e.offset = offset;
  auto bytes = std::as_bytes(std::span<const char>(content.data() + offset, length));
  e.data.assign(bytes.begin(), bytes.end());
  return e;
}

// The primary has closed the data stream; its thread reads to the close and ends. There
// is no way to ask the pool for that, and Pump is what is tested, so wait for it.
void LetTheStreamThreadEnd() { std::this_thread::sleep_for(300ms); }

class StandbyPool : public ::testing::TestWithParam<ChannelMode> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "SKIPPED LOUDLY: needs root (the tree applies owners)";
    auto ring = iouring::Ring::Create();
    if (!ring.ok()) GTEST_SKIP() << "SKIPPED LOUDLY: io_uring: " << ring.status().ToString();
    loop_ = std::make_unique<iouring::Loop>(std::move(ring).value());
    auto p = Rng::Create();
    auto s = Rng::Create();
    ASSERT_TRUE(p.ok() && s.ok());
    primary_rng_ = std::move(p).value();
    standby_rng_ = std::move(s).value();
    dir_ = fs::temp_directory_path() / ("hasync-stream-pool-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto tree = apply::Tree::Open(dir_.string());
    ASSERT_TRUE(tree.ok()) << tree.status().ToString();
    tree_ = std::make_unique<apply::Tree>(std::move(tree).value());
    receiver_ = std::make_unique<Receiver>(std::vector<apply::Tree*>{tree_.get()}, sink_);
    receiver_->set_data_streams(true);
    link_ = std::make_unique<PeerLink>(*loop_, owner_, PeerLink::Options{}, UniqueFd());
    control_ = Open(GetParam(), 0, *primary_rng_, *standby_rng_);
    ASSERT_TRUE(control_.standby);
    owner_.control = control_.standby;
    pool_ = std::make_unique<StreamPool>(cfg_, *loop_, *link_, control_.standby, owner_);
    ASSERT_TRUE(pool_->AcceptStreams(*receiver_).ok());
    data_ = Open(GetParam(), 1, *primary_rng_, *standby_rng_);
    ASSERT_TRUE(data_.standby);
    ASSERT_TRUE(pool_->Adopt(data_.standby, std::nullopt).ok());
    ASSERT_TRUE(owner_.drops.empty());
  }

  void TearDown() override {
    if (pool_) pool_->Stop();
    receiver_.reset();
    tree_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // FILE_BEGIN of `content` as seq 1 on the control stream (handed to the receiver as
  // the control stream's reader would).
  void Begin(const std::string& content) {
    wire::FileBegin b;
    b.size = content.size();
    b.mode = 0644;
    b.mtime_ns = 1'700'000'000'000'000'000;
    b.path = "0/f";
    ASSERT_TRUE(receiver_->OnMessage(1, b).ok());
  }
  // FILE_END of `content` in two ranges: the receiver waits if they have not all come.
  void End(const std::string& content) {
    wire::FileEnd e;
    e.size = content.size();
    e.hash = Xxh3_128(std::as_bytes(std::span<const char>(content.data(), content.size())));
    e.range_count = 2;
    e.data_bytes = content.size();
    ASSERT_TRUE(receiver_->OnMessage(1, e).ok());
  }
  // The primary closes the data stream as its session ends: it closes the socket
  // (DataStreamOut::Stop) without a TLS close_notify; `notify` sends one first, which
  // the standby must take as an orderly end as well.
  void CloseDataStream(bool notify = false) {
    if (notify) {
      data_.primary->Close();
      data_.Flush();
    }
    data_.far.reset();
  }

  std::unique_ptr<iouring::Loop> loop_;
  std::unique_ptr<Rng> primary_rng_;
  std::unique_ptr<Rng> standby_rng_;
  fs::path dir_;
  std::unique_ptr<apply::Tree> tree_;
  NullSink sink_;
  std::unique_ptr<Receiver> receiver_;
  FakeNodeOwner owner_;
  Config cfg_;
  std::unique_ptr<PeerLink> link_;
  Wire control_;
  std::unique_ptr<StreamPool> pool_;
  Wire data_;
};

TEST_P(StandbyPool, AStreamThePrimaryClosedIsReadToItsEndAndTheControlStreamGoesOn) {
  const std::string content(8192, 'x');
  Begin(content);
  ASSERT_TRUE(data_.primary->Send(kEpoch, 1, ExtentOf(content, 0, 4096)).ok());
  ASSERT_TRUE(data_.primary->Send(kEpoch, 1, ExtentOf(content, 4096, 4096)).ok());
  data_.Flush();
  CloseDataStream();
  LetTheStreamThreadEnd();

  pool_->Pump();
  EXPECT_TRUE(owner_.drops.empty()) << "dropped: " << owner_.drops.front();
  EXPECT_FALSE(control_.standby->dead) << "the control stream can still hold a DEMOTED";
  EXPECT_FALSE(pool_->HasUnread()) << "frames sent before the close were not handed out";
  // Both ranges arrived: the FILE_END that follows on the control stream needs no wait.
  End(content);
  EXPECT_FALSE(receiver_->waiting_for_data());
}

TEST_P(StandbyPool, AHeldControlStreamWhoseContentCannotComeAnyMoreEndsTheSession) {
  const std::string content(8192, 'y');
  Begin(content);
  ASSERT_TRUE(data_.primary->Send(kEpoch, 1, ExtentOf(content, 0, 4096)).ok());
  data_.Flush();
  End(content);  // one range of two: the control stream is held
  ASSERT_TRUE(receiver_->waiting_for_data());
  control_.standby->recv_held = true;
  CloseDataStream(/*notify=*/true);
  LetTheStreamThreadEnd();

  pool_->Pump();
  ASSERT_EQ(owner_.drops.size(), 1u) << "a held control stream would wait for ever";
  EXPECT_NE(owner_.drops[0].find("data stream 1"), std::string::npos) << owner_.drops[0];
  EXPECT_TRUE(control_.standby->dead);
}

TEST_P(StandbyPool, AHeldControlStreamWaitsForAnOpenStreamWhenAnotherClosed) {
  // A striped file: its ranges on two streams. The first has ended (the primary is
  // closing), the second still brings the range the waiting FILE_END needs.
  Wire second = Open(GetParam(), 2, *primary_rng_, *standby_rng_);
  ASSERT_TRUE(second.standby);
  ASSERT_TRUE(pool_->Adopt(second.standby, std::nullopt).ok());
  const std::string content(8192, 'w');
  Begin(content);
  ASSERT_TRUE(data_.primary->Send(kEpoch, 1, ExtentOf(content, 0, 4096)).ok());
  data_.Flush();
  End(content);
  control_.standby->recv_held = true;
  CloseDataStream();
  LetTheStreamThreadEnd();

  pool_->Pump();
  EXPECT_TRUE(owner_.drops.empty()) << "dropped while stream 2 was open: " << owner_.drops.front();
  EXPECT_TRUE(receiver_->waiting_for_data());
  ASSERT_TRUE(second.primary->Send(kEpoch, 1, ExtentOf(content, 4096, 4096)).ok());
  second.Flush();
  LetTheStreamThreadEnd();
  pool_->Pump();
  EXPECT_TRUE(owner_.drops.empty()) << "dropped: " << owner_.drops.front();
  EXPECT_FALSE(receiver_->waiting_for_data()) << "stream 2's range did not complete the file";
  EXPECT_EQ(owner_.resumed, 1) << "the control stream was not let go on";
}

TEST_P(StandbyPool, ARefusedFrameOnADataStreamEndsTheSessionAtOnce) {
  const std::string content(8192, 'z');
  Begin(content);
  ASSERT_TRUE(data_.primary->Send(kEpoch - 1, 1, ExtentOf(content, 0, 4096)).ok());
  data_.Flush();
  LetTheStreamThreadEnd();

  pool_->Pump();
  ASSERT_EQ(owner_.drops.size(), 1u);
  EXPECT_NE(owner_.drops[0].find("stale epoch"), std::string::npos) << owner_.drops[0];
  EXPECT_TRUE(control_.standby->dead);
}

// An end of stream inside a frame is a cut, not the primary closing the stream: the
// session ends at once, as for a socket error, even with the control stream free.
TEST_P(StandbyPool, AStreamCutInsideAFrameEndsTheSessionAtOnce) {
  const std::string content(8192, 'v');
  Begin(content);
  ASSERT_TRUE(data_.primary->Send(kEpoch, 1, ExtentOf(content, 0, 4096)).ok());
  data_.Flush();
  ASSERT_TRUE(data_.primary->Send(kEpoch, 1, ExtentOf(content, 4096, 4096)).ok());
  // Half of the second frame's bytes (plain mode: the frame as it is; TLS: its record,
  // which the TLS layer holds back whole, so the cut is seen only in plain mode).
  auto out = data_.primary->outgoing();
  ASSERT_GT(send(data_.far.get(), out.data(), out.size() / 2, MSG_NOSIGNAL), 0);
  data_.far.reset();
  LetTheStreamThreadEnd();

  pool_->Pump();
  if (GetParam() == ChannelMode::kPlain) {
    ASSERT_EQ(owner_.drops.size(), 1u) << "a cut frame taken as the primary's close";
    EXPECT_NE(owner_.drops[0].find("inside a frame"), std::string::npos) << owner_.drops[0];
  } else {
    // The first record's frame is handed out; the half record never becomes a frame.
    EXPECT_TRUE(owner_.drops.empty()) << owner_.drops.front();
    End(content);
    EXPECT_TRUE(receiver_->waiting_for_data()) << "the cut range cannot have arrived";
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, StandbyPool,
                         ::testing::Values(ChannelMode::kTls, ChannelMode::kPlain),
                         [](const ::testing::TestParamInfo<ChannelMode>& p) {
                           return p.param == ChannelMode::kTls ? "tls" : "plain";
                         });

}  // namespace
}  // namespace hasync::engine
