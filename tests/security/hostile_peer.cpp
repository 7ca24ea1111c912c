#include "tests/security/hostile_peer.h"

#include <arpa/inet.h>
#include <mbedtls/md.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "wire/handshake.h"

namespace hasync::testing {

namespace {

using Clock = std::chrono::steady_clock;

Status TimedOut(std::string what) { return Status(Code::kFailedPrecondition, std::move(what)); }

void PutLe(Bytes& b, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xFF));
}

}  // namespace

// ---- RawBody and patches ----------------------------------------------------------------

RawBody& RawBody::U8(uint8_t v) {
  PutLe(b_, v, 1);
  return *this;
}
RawBody& RawBody::U16(uint16_t v) {
  PutLe(b_, v, 2);
  return *this;
}
RawBody& RawBody::U32(uint32_t v) {
  PutLe(b_, v, 4);
  return *this;
}
RawBody& RawBody::U64(uint64_t v) {
  PutLe(b_, v, 8);
  return *this;
}
RawBody& RawBody::Str16(std::string_view s, std::optional<uint16_t> len_field) {
  PutLe(b_, len_field.value_or(static_cast<uint16_t>(s.size())), 2);
  for (char c : s) b_.push_back(static_cast<std::byte>(c));
  return *this;
}
RawBody& RawBody::Raw(std::span<const std::byte> b) {
  b_.insert(b_.end(), b.begin(), b.end());
  return *this;
}

Bytes RawHeader(uint16_t type, uint32_t body_len, uint64_t epoch, uint64_t seq, uint32_t magic,
                uint16_t version, uint16_t flags, uint16_t reserved) {
  Bytes h;
  PutLe(h, magic, 4);
  PutLe(h, version, 2);
  PutLe(h, type, 2);
  PutLe(h, flags, 2);
  PutLe(h, reserved, 2);
  PutLe(h, body_len, 4);
  PutLe(h, epoch, 8);
  PutLe(h, seq, 8);
  return h;
}

Bytes RawFrame(wire::MessageType type, const Bytes& body, uint64_t epoch, uint64_t seq) {
  Bytes f = RawHeader(static_cast<uint16_t>(type), static_cast<uint32_t>(body.size()), epoch, seq);
  f.insert(f.end(), body.begin(), body.end());
  return f;
}

Bytes Encode(uint64_t epoch, uint64_t seq, const wire::Message& message) {
  return wire::EncodeFrame(wire::Frame{epoch, seq, message});
}

void Patch(Bytes& frame, std::string_view from, std::string_view to) {
  HASYNC_ASSERT(from.size() == to.size());
  std::string_view hay(reinterpret_cast<const char*>(frame.data()), frame.size());
  size_t at = hay.find(from);
  HASYNC_ASSERT(at != std::string_view::npos);
  std::memcpy(frame.data() + at, to.data(), to.size());
}

void PatchU64(Bytes& frame, size_t offset, uint64_t v) {
  HASYNC_ASSERT(offset + 8 <= frame.size());
  for (size_t i = 0; i < 8; ++i) frame[offset + i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
}

void PatchU32(Bytes& frame, size_t offset, uint32_t v) {
  HASYNC_ASSERT(offset + 4 <= frame.size());
  for (size_t i = 0; i < 4; ++i) frame[offset + i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
}

// ---- HostilePeer ----------------------------------------------------------------------

Result<std::unique_ptr<HostilePeer>> HostilePeer::Dial(uint16_t port, PeerMode mode,
                                                       std::span<const std::byte> key,
                                                       std::chrono::milliseconds timeout) {
  std::unique_ptr<HostilePeer> p(new HostilePeer());
  p->mode_ = mode;
  p->key_.assign(key.begin(), key.end());
  ASSIGN_OR_RETURN(p->rng_, engine::Rng::Create());
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoStatus(errno, "socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      p->fd_ = fd;
      break;
    }
    int err = errno;
    close(fd);
    if (Clock::now() >= deadline) return ErrnoStatus(err, "connect to the standby");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (mode == PeerMode::kTls) {
    ASSIGN_OR_RETURN(p->tls_, wire::TlsSession::Create(wire::TlsRole::kClient, p->key_,
                                                       engine::Rng::Generate, p->rng_->ctx()));
  }
  return p;
}

HostilePeer::~HostilePeer() {
  if (fd_ >= 0) close(fd_);
}

Status HostilePeer::SendSocket(std::span<const std::byte> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET) closed_ = true;
      return ErrnoStatus(errno, "send to the standby");
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status HostilePeer::FlushTls() {
  if (!tls_ || tls_->outgoing().empty()) return Status::Ok();
  Bytes out(tls_->outgoing().begin(), tls_->outgoing().end());
  tls_->ConsumeOutgoing(out.size());
  return SendSocket(out);
}

Status HostilePeer::Pump(Clock::time_point deadline) {
  if (closed_) return Unavailable("the standby closed the connection");
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  pollfd pfd{fd_, POLLIN, 0};
  int r = poll(&pfd, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
  if (r < 0) return ErrnoStatus(errno, "poll");
  if (r == 0) return TimedOut("nothing from the standby in time");
  std::byte buf[64 * 1024];
  ssize_t n = recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) {
    closed_ = true;
    return Unavailable(n == 0 ? "the standby closed the connection"
                              : "recv: " + std::string(std::strerror(errno)));
  }
  std::span<const std::byte> got(buf, static_cast<size_t>(n));
  if (!tls_) {
    decoder_.Append(got);
    return Status::Ok();
  }
  RETURN_IF_ERROR(tls_->Feed(got));
  return DrainTls();
}

Status HostilePeer::DrainTls() {
  if (!tls_ || !tls_->established()) return Status::Ok();
  std::byte plain[64 * 1024];
  for (int i = 0; i < 1024; ++i) {
    auto k = tls_->Read(plain);
    if (!k.ok()) {
      closed_ = true;  // close_notify or a fatal alert: nothing more will come
      return k.status();
    }
    if (*k == 0) break;
    decoder_.Append(std::span<const std::byte>(plain, *k));
  }
  return Status::Ok();
}

Status HostilePeer::Authenticate(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (tls_) {
    for (;;) {
      Status s = tls_->Handshake();
      RETURN_IF_ERROR(FlushTls());
      if (s.ok()) return Status::Ok();
      if (s.code() != Code::kUnavailable) return s;
      RETURN_IF_ERROR(Pump(deadline));
    }
  }
  // Plain mode, as the connecting side (docs/PROTOCOL.md §8).
  wire::Nonce own{};
  HASYNC_ASSERT(engine::Rng::Generate(rng_->ctx(), reinterpret_cast<unsigned char*>(own.data()),
                                      own.size()) == 0);
  RETURN_IF_ERROR(SendPlain(Encode(0, 0, wire::Challenge{own})));
  bool answered = false;
  while (!answered) {
    ASSIGN_OR_RETURN(
        wire::Frame f,
        Receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())));
    if (const auto* ch = std::get_if<wire::Challenge>(&f.message)) {
      Bytes input = wire::PlainAuthInput(wire::AuthSide::kConnector, ch->nonce, own);
      wire::Response r;
      int rc = mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                               reinterpret_cast<const unsigned char*>(key_.data()), key_.size(),
                               reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                               reinterpret_cast<unsigned char*>(r.mac.data()));
      HASYNC_ASSERT(rc == 0);
      RETURN_IF_ERROR(SendPlain(Encode(0, 0, r)));
      answered = true;
    } else {
      seen_.push_back(std::move(f));
    }
  }
  // The standby's RESPONSE; its MAC is not checked here: this client trusts nothing it
  // is told and the test is about what the standby accepts.
  for (;;) {
    ASSIGN_OR_RETURN(
        wire::Frame f,
        Receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())));
    if (std::holds_alternative<wire::Response>(f.message)) return Status::Ok();
    seen_.push_back(std::move(f));
  }
}

Status HostilePeer::ReadStandbyHello(std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(wire::Frame f, Receive(timeout));
  const auto* hello = std::get_if<wire::Hello>(&f.message);
  if (hello == nullptr) {
    return InvalidArgument("standby's first frame is " +
                           std::string(wire::MessageTypeName(wire::TypeOf(f.message))));
  }
  standby_hello_ = *hello;
  standby_epoch_ = f.epoch;
  return Status::Ok();
}

Status HostilePeer::SendHello(const HelloOptions& o) {
  wire::Hello h;
  h.role = o.role;
  h.stream_kind = wire::StreamKind::kControl;
  h.stream_index = 0;
  h.node_id = 0x405713;
  std::array<std::byte, 8> sid{};
  HASYNC_ASSERT(engine::Rng::Generate(rng_->ctx(), reinterpret_cast<unsigned char*>(sid.data()),
                                      sid.size()) == 0);
  std::memcpy(&h.session_id, sid.data(), sid.size());
  h.session_id |= 1;
  h.capabilities = o.capabilities;
  h.last_applied_seq = 0;
  h.node_name = o.node_name;
  epoch_ = o.epoch;
  return SendFrame(o.epoch, 0, h);
}

Status HostilePeer::Open(std::optional<uint64_t> epoch, std::chrono::milliseconds timeout) {
  RETURN_IF_ERROR(Authenticate(timeout));
  RETURN_IF_ERROR(ReadStandbyHello(timeout));
  HelloOptions o;
  o.epoch = epoch.value_or(standby_epoch_);
  return SendHello(o);
}

Result<Bytes> HostilePeer::Seal(std::span<const std::byte> plaintext) {
  HASYNC_ASSERT(tls_ && tls_->established());
  RETURN_IF_ERROR(FlushTls());
  RETURN_IF_ERROR(tls_->Write(plaintext));
  Bytes out(tls_->outgoing().begin(), tls_->outgoing().end());
  tls_->ConsumeOutgoing(out.size());
  return out;
}

Status HostilePeer::SendPlain(std::span<const std::byte> bytes) {
  if (!tls_) return SendSocket(bytes);
  ASSIGN_OR_RETURN(Bytes records, Seal(bytes));
  return SendSocket(records);
}

Status HostilePeer::SendFrame(uint64_t epoch, uint64_t seq, const wire::Message& message) {
  return SendPlain(Encode(epoch, seq, message));
}

Result<wire::Frame> HostilePeer::Receive(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto step = decoder_.Next();
    if (!step.ok()) return step.status().Annotate("decoding what the standby sent");
    if (auto* f = std::get_if<wire::Frame>(&*step)) return std::move(*f);
    // Records that arrived with the handshake's last flight are already in the session.
    const size_t before = decoder_.buffered();
    RETURN_IF_ERROR(DrainTls());
    if (decoder_.buffered() != before) continue;
    RETURN_IF_ERROR(Pump(deadline));
  }
}

Result<wire::Frame> HostilePeer::ReceiveReply(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    ASSIGN_OR_RETURN(
        wire::Frame f,
        Receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())));
    // A standby busy in a long walk (its manifest) PINGs: a sign of life, not a reply.
    if (!std::holds_alternative<wire::Pong>(f.message) &&
        !std::holds_alternative<wire::Ping>(f.message)) {
      return f;
    }
  }
}

bool HostilePeer::StillOpen() {
  if (closed_) return false;
  std::byte b;
  ssize_t n = recv(fd_, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) closed_ = true;
  return !closed_;
}

bool HostilePeer::WaitClosed(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!closed_) {
    auto f = Receive(std::chrono::duration_cast<std::chrono::milliseconds>(
        std::max(Clock::duration::zero(), deadline - Clock::now())));
    if (f.ok()) {
      seen_.push_back(std::move(*f));
      continue;
    }
    if (closed_) return true;
    if (f.status().code() == Code::kFailedPrecondition) return false;  // timed out
    // A byte stream we cannot decode (or a TLS failure): the connection is over for us;
    // wait for the standby's side to end too.
    std::byte buf[4096];
    while (!closed_ && Clock::now() < deadline) {
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, 50) > 0 && recv(fd_, buf, sizeof buf, 0) <= 0) closed_ = true;
    }
  }
  return true;
}

}  // namespace hasync::testing
