// DataStreamOut → DataStreamIn over a real loopback TCP connection, each on its thread:
// frames arrive complete and in order, the bounds hold, and every way a stream can end
// (the standby refuses, the primary sends what does not belong, a stale epoch, a stop)
// says why. Also run under ThreadSanitizer (label "tsan").
#include "engine/net/data_stream.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "engine/net/rng.h"

namespace hasync::engine {
namespace {

constexpr uint64_t kSession = 0x1234567;
constexpr uint64_t kStandbyId = 22;

std::vector<std::byte> Key() { return std::vector<std::byte>(32, std::byte{7}); }

wire::Hello Hello(wire::Role role, uint64_t node_id) {
  wire::Hello h;
  h.role = role;
  h.node_id = node_id;
  h.session_id = kSession;
  h.node_name = role == wire::Role::kPrimary ? "mu01" : "mu02";
  return h;
}

wire::Extent ExtentOf(uint64_t i, size_t bytes) {
  wire::Extent e;
  e.file_size = 64u << 20;
  e.offset = i * bytes;
  e.data.assign(bytes, std::byte{static_cast<uint8_t>(i)});
  return e;
}

// The standby's side of set-up, done here the way the node's event loop does it:
// accept, handshake, HELLOs; then the connection goes to a DataStreamIn.
class DataStreamTest : public ::testing::TestWithParam<ChannelMode> {
 protected:
  void SetUp() override {
    listen_fd_ = UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(listen_fd_.valid());
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(listen_fd_.get(), 4), 0);
    socklen_t len = sizeof addr_;
    ASSERT_EQ(getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr_), &len), 0);
    addr_len_ = len;
    event_fd_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    ASSERT_TRUE(event_fd_.valid());
    auto rng = Rng::Create();
    ASSERT_TRUE(rng.ok());
    rng_ = std::move(rng).value();
  }

  DataStreamOut::Options OutOptions(uint64_t epoch = 5) {
    DataStreamOut::Options o;
    o.addr = addr_;
    o.addr_len = addr_len_;
    o.psk = Key();
    o.mode = GetParam();
    o.hello = Hello(wire::Role::kPrimary, 11);
    o.hello.stream_kind = wire::StreamKind::kData;
    o.hello.stream_index = 1;
    o.epoch = epoch;
    o.expected_node_id = kStandbyId;
    return o;
  }

  // Accepts and opens one connection (blocking, bounded). `refuse`: answer with an
  // ERROR instead, as a standby does for a data stream it cannot place.
  std::unique_ptr<Connection> AcceptOpen(UniqueFd* fd_out, std::optional<wire::Frame>* first,
                                         const char* refuse = nullptr) {
    pollfd p{listen_fd_.get(), POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 10'000), 1);
    UniqueFd fd(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_TRUE(fd.valid());
    auto conn = Connection::Create(wire::TlsRole::kServer, Key(), Rng::Generate, rng_->ctx(),
                                   Hello(wire::Role::kStandby, kStandbyId), 5, GetParam());
    EXPECT_TRUE(conn.ok());
    std::vector<std::byte> buf(64 * 1024);
    for (int i = 0; i < 100 && !(*conn)->open(); ++i) {
      std::vector<std::byte> out;
      (*conn)->TakeOutgoing(out);
      if (!out.empty()) {
        EXPECT_EQ(send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(out.size()));
      }
      pollfd r{fd.get(), POLLIN, 0};
      if (poll(&r, 1, 10'000) != 1) break;
      ssize_t n = recv(fd.get(), buf.data(), buf.size(), 0);
      if (n <= 0) break;
      EXPECT_TRUE(
          (*conn)->Feed(std::span<const std::byte>(buf.data(), static_cast<size_t>(n))).ok());
      auto next = (*conn)->Next();
      EXPECT_TRUE(next.ok());
      if (next.ok() && next->has_value()) *first = std::move(*next);
    }
    EXPECT_TRUE((*conn)->open());
    if (refuse != nullptr) {
      EXPECT_TRUE((*conn)->Send(5, 0, wire::Error{wire::ErrorCode::kProtocol, refuse}).ok());
    }
    std::vector<std::byte> out;
    (*conn)->TakeOutgoing(out);
    if (!out.empty()) send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL);
    *fd_out = std::move(fd);
    return std::move(conn).value();
  }

  // Pops frames from `in` until `count` arrived or 20 s passed.
  std::vector<DataFrame> Collect(DataStreamIn& in, size_t count) {
    std::vector<DataFrame> got;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (got.size() < count && std::chrono::steady_clock::now() < deadline) {
      if (DataFrame* f = in.Front()) {
        got.push_back(std::move(*f));
        in.PopFront();
        continue;
      }
      if (!in.failed().ok()) break;
      pollfd p{event_fd_.get(), POLLIN, 0};
      poll(&p, 1, 100);
      uint64_t v = 0;
      ssize_t n = read(event_fd_.get(), &v, sizeof v);
      (void)n;
    }
    return got;
  }

  UniqueFd listen_fd_, event_fd_;
  sockaddr_storage addr_{};
  socklen_t addr_len_ = 0;
  std::unique_ptr<Rng> rng_;
};

TEST_P(DataStreamTest, FramesArriveCompleteAndInOrderAcrossTheThreads) {
  auto out = DataStreamOut::Start(OutOptions());
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  UniqueFd fd;
  std::optional<wire::Frame> first;
  auto conn = AcceptOpen(&fd, &first);
  ASSERT_TRUE(conn);
  DataStreamIn in(std::move(fd), std::move(conn), std::move(first), 1, 5, event_fd_.get());
  // 48 MiB through 4 MiB queues on both sides: the producer is held by the bounds.
  constexpr size_t kFrames = 48;
  std::thread producer([&] {
    for (uint64_t i = 0; i < kFrames; ++i) {
      DataFrame f{i + 1, ExtentOf(i, 1u << 20), 0, nullptr, 0};
      f.bytes = DataFrameBytes(f.message);
      while (!(*out)->TryEnqueue(f)) {
        ASSERT_TRUE((*out)->failed().ok()) << (*out)->failed().ToString();
        EXPECT_LE((*out)->queued_bytes(), kDataQueueBytes);
        (*out)->WaitForRoom(f.bytes, 100);
      }
    }
  });
  std::vector<DataFrame> got = Collect(in, kFrames);
  producer.join();
  ASSERT_EQ(got.size(), kFrames) << in.failed().ToString() << " / " << (*out)->failed().ToString();
  for (uint64_t i = 0; i < kFrames; ++i) {
    EXPECT_EQ(got[i].seq, i + 1);
    const auto& e = std::get<wire::Extent>(got[i].message);
    EXPECT_EQ(e.offset, i << 20);
    ASSERT_EQ(e.data.size(), 1u << 20);
    EXPECT_EQ(e.data.front(), std::byte{static_cast<uint8_t>(i)});
    EXPECT_EQ(e.data.back(), std::byte{static_cast<uint8_t>(i)});
  }
  EXPECT_TRUE((*out)->ready());
  EXPECT_GE(in.bytes_received(), kFrames << 20);
  // The primary stops: the standby's stream ends and says so.
  (*out)->Stop();
  for (int i = 0; i < 200 && in.failed().ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(in.failed().ok()) << "the standby did not notice the stream ended";
}

TEST_P(DataStreamTest, ARefusedStreamFailsWithTheStandbysReason) {
  auto out = DataStreamOut::Start(OutOptions());
  ASSERT_TRUE(out.ok());
  UniqueFd fd;
  std::optional<wire::Frame> first;
  auto conn = AcceptOpen(&fd, &first, "data stream of another session");
  for (int i = 0; i < 500 && (*out)->failed().ok() && !(*out)->ready(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Either the ERROR arrived during set-up (the reason) or after (the closed socket);
  // with the socket still open the reason must be the one read.
  ASSERT_FALSE((*out)->failed().ok() && !(*out)->ready());
  if (!(*out)->ready()) {
    EXPECT_NE((*out)->failed().message().find("another session"), std::string::npos)
        << (*out)->failed().ToString();
  }
  fd.reset();  // the standby closes: a ready stream fails at its next send
  DataFrame f{1, ExtentOf(0, 1024), 0, nullptr, 0};
  f.bytes = DataFrameBytes(f.message);
  for (int i = 0; i < 500 && (*out)->failed().ok(); ++i) {
    if ((*out)->TryEnqueue(f))
      f = DataFrame{1, ExtentOf(0, 1024), DataFrameBytes(ExtentOf(0, 1024)), nullptr, 0};
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE((*out)->failed().ok());
  EXPECT_FALSE((*out)->TryEnqueue(f)) << "a failed stream took a frame";
}

TEST_P(DataStreamTest, TheStandbyRefusesWhatDoesNotBelongOnADataStream) {
  for (int c = 0; c < 2; ++c) {
    SCOPED_TRACE(c == 0 ? "stale epoch" : "not an extent");
    // Case 0: frames at epoch 4 to a standby at 5. Case 1: an UNLINK.
    auto out = DataStreamOut::Start(OutOptions(c == 0 ? 4 : 5));
    ASSERT_TRUE(out.ok());
    UniqueFd fd;
    std::optional<wire::Frame> first;
    auto conn = AcceptOpen(&fd, &first);
    ASSERT_TRUE(conn);
    DataStreamIn in(std::move(fd), std::move(conn), std::move(first), 1, 5, event_fd_.get());
    DataFrame f{3, c == 0 ? wire::Message(ExtentOf(0, 4096)) : wire::Message(wire::Unlink{"0/x"}),
                0, nullptr, 0};
    f.bytes = DataFrameBytes(f.message);
    ASSERT_TRUE((*out)->TryEnqueue(f));
    std::vector<DataFrame> got = Collect(in, 1);
    EXPECT_TRUE(got.empty()) << "a frame that does not belong reached the event loop";
    ASSERT_FALSE(in.failed().ok());
    EXPECT_NE(in.failed().message().find(c == 0 ? "stale epoch" : "UNLINK"), std::string::npos)
        << in.failed().ToString();
  }
}

// Splicing is a plain-mode path only (TLS must encrypt the bytes in user space).
class SpliceTest : public DataStreamTest {};

// Plain mode: an EXTENT whose data is spliced from a file goes out as a normal frame,
// in order with the frames around it, with the file's bytes at its offset; drained()
// says when the file's bytes were taken. A file that shrank before its splice gives
// zeros for the missing part (the sender aborts that version), and the stream goes on.
TEST_P(SpliceTest, SplicedExtentsCarryTheFilesBytesInOrder) {
  char path[] = "/tmp/hasync-splice-XXXXXX";
  int tmp = mkstemp(path);
  ASSERT_GE(tmp, 0);
  unlink(path);
  constexpr size_t kFile = 3u << 20;
  std::vector<std::byte> content(kFile);
  for (size_t i = 0; i < kFile; ++i) content[i] = std::byte{static_cast<uint8_t>(i * 7 + i / 4096)};
  ASSERT_EQ(pwrite(tmp, content.data(), kFile, 0), static_cast<ssize_t>(kFile));
  auto file = std::make_shared<const UniqueFd>(tmp);

  auto out = DataStreamOut::Start(OutOptions());
  ASSERT_TRUE(out.ok());
  UniqueFd fd;
  std::optional<wire::Frame> first;
  auto conn = AcceptOpen(&fd, &first);
  ASSERT_TRUE(conn);
  DataStreamIn in(std::move(fd), std::move(conn), std::move(first), 1, 5, event_fd_.get());
  for (int i = 0; i < 500 && !(*out)->ready(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE((*out)->ready()) << (*out)->failed().ToString();
  // A copied frame, three spliced ones (1 MiB, 1 MiB - 1, 1 byte), a copied one.
  std::vector<DataFrame> frames;
  frames.push_back(DataFrame{1, ExtentOf(0, 4096), 0, nullptr, 0});
  const uint64_t offsets[] = {0, 1u << 20, (2u << 20) - 1};
  const uint32_t lengths[] = {1u << 20, (1u << 20) - 1, 1};
  for (int k = 0; k < 3; ++k) {
    frames.push_back(DataFrame{2, wire::Extent{kFile, offsets[k], {}}, 0, file, lengths[k]});
  }
  frames.push_back(DataFrame{3, ExtentOf(1, 4096), 0, nullptr, 0});
  for (DataFrame& f : frames) {
    f.bytes = DataFrameBytes(f.message);
    ASSERT_TRUE((*out)->TryEnqueue(f));
  }
  std::vector<DataFrame> got = Collect(in, 5);
  ASSERT_EQ(got.size(), 5u) << in.failed().ToString() << " / " << (*out)->failed().ToString();
  for (int w = 0; w < 200 && !(*out)->drained(); ++w) (*out)->WaitDrained(10);
  EXPECT_TRUE((*out)->drained());
  EXPECT_EQ(got[0].seq, 1u);
  EXPECT_EQ(got[4].seq, 3u);
  for (int k = 0; k < 3; ++k) {
    const auto& e = std::get<wire::Extent>(got[static_cast<size_t>(k) + 1].message);
    EXPECT_EQ(got[static_cast<size_t>(k) + 1].seq, 2u);
    EXPECT_EQ(e.offset, offsets[k]);
    ASSERT_EQ(e.data.size(), lengths[k]);
    EXPECT_EQ(0, std::memcmp(e.data.data(), content.data() + offsets[k], lengths[k]))
        << "spliced bytes differ from the file at " << offsets[k];
  }
  EXPECT_EQ((*out)->bytes_spliced(), 2u << 20);

  // The file shrinks to 100 bytes before the next splice of 4096 bytes at 0.
  ASSERT_EQ(ftruncate(file->get(), 100), 0);
  DataFrame shrunk{4, wire::Extent{kFile, 0, {}}, 0, file, 4096};
  shrunk.bytes = DataFrameBytes(shrunk.message);
  DataFrame after{5, ExtentOf(2, 4096), 0, nullptr, 0};
  after.bytes = DataFrameBytes(after.message);
  ASSERT_TRUE((*out)->TryEnqueue(shrunk));
  ASSERT_TRUE((*out)->TryEnqueue(after));
  got = Collect(in, 2);
  ASSERT_EQ(got.size(), 2u) << in.failed().ToString() << " / " << (*out)->failed().ToString();
  const auto& e = std::get<wire::Extent>(got[0].message);
  ASSERT_EQ(e.data.size(), 4096u);
  EXPECT_EQ(0, std::memcmp(e.data.data(), content.data(), 100));
  EXPECT_EQ(e.data[100], std::byte{0});
  EXPECT_EQ(e.data[4095], std::byte{0});
  EXPECT_EQ(got[1].seq, 5u) << "the stream lost step after a short splice";
  EXPECT_TRUE((*out)->failed().ok());
}

INSTANTIATE_TEST_SUITE_P(Modes, DataStreamTest,
                         ::testing::Values(ChannelMode::kTls, ChannelMode::kPlain),
                         [](const ::testing::TestParamInfo<ChannelMode>& param) {
                           return std::string(param.param == ChannelMode::kTls ? "tls" : "plain");
                         });

INSTANTIATE_TEST_SUITE_P(Plain, SpliceTest, ::testing::Values(ChannelMode::kPlain),
                         [](const ::testing::TestParamInfo<ChannelMode>&) {
                           return std::string("plain");
                         });

}  // namespace
}  // namespace hasync::engine
