// TLS end to end over a loopback TCP connection (issue 19): how close a data stream's
// transport gets to the cipher's single-core speed once sockets, threads, the record
// layer's buffers and the frame codec are in the way, with no file I/O.
//
// A sender thread (the benchmark's) and a receiver thread, like a primary's and a
// standby's data stream threads (engine/net/data_stream.cpp), on one machine:
//   stream/tls_session/<suite>      wire::TlsSession, 1 MiB writes: TLS records only
//   stream/connection_extents/<suite>
//                                   engine::Connection with 1 MiB EXTENT frames, sent
//                                   and received the way DataStreamOut / DataStreamIn
//                                   do (512 KiB send batches, 256 KiB receives,
//                                   frames decoded): what a data stream costs without
//                                   the file
//   stream/plain_extents            the same frames in plain mode (no cipher): the
//                                   floor of everything but the cipher
// Time is wall-clock (UseRealTime), bytes are plaintext (file content). On a shared
// machine wall-clock depends on who else runs, so each stream row also reports CPU time
// (CLOCK_THREAD_CPUTIME_ID, user + kernel, sockets included) of each end, as ratios to
// the cipher alone measured in the same process (mbedTLS's AEAD sealing, resp. opening,
// 16 KiB records, best of 5 × 4 MiB):
//   send_x_cipher  sender thread's CPU per byte ÷ the seal's: 1.00 = the sender costs
//                  exactly the cipher; 1.25 = 25 % on top (copies, frames, syscalls)
//   recv_x_cipher  the same for the receiver against the open
//   wall_x_cipher  plaintext bytes per wall second ÷ the seal's bytes per CPU second:
//                  what docs/PERFORMANCE.md "TLS at the cipher's pace" compares with
//                  0.8 (it needs a core per end; state the load average)
//
// A session pair is created per benchmark (handshake in memory), then each iteration
// moves kIterationBytes through the socket pair. Run: build/bench/tls_stream_bench.
#include <benchmark/benchmark.h>
#include <mbedtls/cipher.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "engine/net/connection.h"
#include "engine/net/socket_tuning.h"
#include "wire/limits.h"
#include "wire/tls_session.h"

namespace hasync {
namespace {

constexpr size_t kIterationBytes = 16u << 20;
constexpr size_t kWriteBytes = wire::kExtentDataMax;  // one EXTENT's data
constexpr size_t kSendBatchBytes = 512 * 1024;        // as DataStreamOut
constexpr size_t kRecvBytes = 256 * 1024;             // as DataStreamIn
constexpr int kHandshakeRounds = 20;

std::vector<std::byte> Pattern(size_t n) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>(i * 131 + 7);
  return out;
}

class Drbg {
 public:
  Drbg() {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&drbg_);
    rc_ = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, nullptr, 0);
  }
  ~Drbg() {
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
  }
  Drbg(const Drbg&) = delete;
  Drbg& operator=(const Drbg&) = delete;
  bool ok() const { return rc_ == 0; }
  void* ctx() { return &drbg_; }

 private:
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
  int rc_ = 0;
};

int64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// CPU nanoseconds per plaintext byte of the suite's AEAD alone, sealing and opening
// 16 KiB records with a 13-byte AAD as the TLS 1.2 record layer does (best of 5 runs of
// 4 MiB each: the least disturbed by other work on the machine).
struct CipherCost {
  double seal_ns_per_byte = 0;
  double open_ns_per_byte = 0;
};

Result<CipherCost> MeasureCipher() {
  constexpr size_t kRecord = 16 << 10;
  constexpr int kRecords = 256;
  mbedtls_cipher_context_t ctx;
  mbedtls_cipher_init(&ctx);
  const std::vector<std::byte> key = Pattern(32);
  int rc =
      mbedtls_cipher_setup(&ctx, mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_CHACHA20_POLY1305));
  if (rc == 0) {
    rc = mbedtls_cipher_setkey(&ctx, reinterpret_cast<const unsigned char*>(key.data()), 256,
                               MBEDTLS_ENCRYPT);
  }
  const std::vector<std::byte> plain = Pattern(kRecord);
  std::vector<unsigned char> sealed(kRecord + 16), opened(kRecord);
  unsigned char nonce[12] = {}, aad[13] = {};
  CipherCost best{1e9, 1e9};
  for (int run = 0; run < 5 && rc == 0; ++run) {
    int64_t t0 = ThreadCpuNs();
    for (int i = 0; i < kRecords && rc == 0; ++i) {
      size_t n = 0;
      rc = mbedtls_cipher_auth_encrypt_ext(&ctx, nonce, sizeof nonce, aad, sizeof aad,
                                           reinterpret_cast<const unsigned char*>(plain.data()),
                                           kRecord, sealed.data(), sealed.size(), &n, 16);
    }
    int64_t t1 = ThreadCpuNs();
    for (int i = 0; i < kRecords && rc == 0; ++i) {
      size_t n = 0;
      rc = mbedtls_cipher_auth_decrypt_ext(&ctx, nonce, sizeof nonce, aad, sizeof aad,
                                           sealed.data(), sealed.size(), opened.data(),
                                           opened.size(), &n, 16);
    }
    int64_t t2 = ThreadCpuNs();
    const double bytes = double{kRecord} * kRecords;
    best.seal_ns_per_byte = std::min(best.seal_ns_per_byte, static_cast<double>(t1 - t0) / bytes);
    best.open_ns_per_byte = std::min(best.open_ns_per_byte, static_cast<double>(t2 - t1) / bytes);
  }
  mbedtls_cipher_free(&ctx);
  if (rc != 0) return Internal("ChaCha20-Poly1305 through mbedtls_cipher failed");
  return best;
}

// Sets the counters every stream row reports (see the file comment).
void SetStreamCounters(benchmark::State& state, const CipherCost& cipher, int64_t send_cpu_ns,
                       int64_t recv_cpu_ns, int64_t wall_ns, size_t bytes) {
  const double b = static_cast<double>(bytes);
  state.counters["send_x_cipher"] = static_cast<double>(send_cpu_ns) / b / cipher.seal_ns_per_byte;
  state.counters["recv_x_cipher"] = static_cast<double>(recv_cpu_ns) / b / cipher.open_ns_per_byte;
  state.counters["wall_x_cipher"] = cipher.seal_ns_per_byte * b / static_cast<double>(wall_ns);
  state.counters["cipher_seal_MBps"] = 1e3 / cipher.seal_ns_per_byte;
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

// A connected loopback TCP pair with the options every session socket gets.
struct SocketPair {
  UniqueFd a, b;
};

Result<SocketPair> LoopbackPair() {
  UniqueFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener) return ErrnoStatus(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener.get(), 1) != 0 ||
      getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoStatus(errno, "bind/listen on 127.0.0.1");
  }
  SocketPair p;
  p.a = UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!p.a) return ErrnoStatus(errno, "socket");
  if (connect(p.a.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return ErrnoStatus(errno, "connect to 127.0.0.1");
  }
  p.b = UniqueFd(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!p.b) return ErrnoStatus(errno, "accept");
  engine::TuneSessionSocket(p.a.get());
  engine::TuneSessionSocket(p.b.get());
  return p;
}

Status SendAllBytes(int fd, std::span<const std::byte> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "send");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Moves every outgoing byte of one endpoint into the other, in memory (handshakes).
template <typename A, typename B>
Status Deliver(A& from, B& to) {
  std::vector<std::byte> bytes;
  from.TakeOutgoing(bytes);
  if (bytes.empty()) return Status::Ok();
  return to.Feed(bytes);
}

// ---- TlsSession alone ----------------------------------------------------------------

void StreamTlsSession(benchmark::State& state) {
  Drbg rng;
  if (!rng.ok()) return state.SkipWithError("DRBG seed failed");
  const std::vector<std::byte> psk = Pattern(32);
  auto c = wire::TlsSession::Create(wire::TlsRole::kClient, psk, mbedtls_ctr_drbg_random,
                                    rng.ctx());
  auto s = wire::TlsSession::Create(wire::TlsRole::kServer, psk, mbedtls_ctr_drbg_random,
                                    rng.ctx());
  if (!c.ok() || !s.ok()) return state.SkipWithError("TlsSession::Create failed");
  wire::TlsSession& client = **c;
  wire::TlsSession& server = **s;
  for (int i = 0; i < kHandshakeRounds && !(client.established() && server.established()); ++i) {
    Status a = client.Handshake();
    Status b = server.Handshake();
    if ((!a.ok() && a.code() != Code::kUnavailable) || (!b.ok() && b.code() != Code::kUnavailable)) {
      return state.SkipWithError("handshake failed");
    }
    if (!Deliver(client, server).ok() || !Deliver(server, client).ok()) {
      return state.SkipWithError("handshake delivery failed");
    }
  }
  if (!client.established() || !server.established()) return state.SkipWithError("no handshake");
  auto pair = LoopbackPair();
  if (!pair.ok()) return state.SkipWithError(pair.status().ToString().c_str());
  auto cipher = MeasureCipher();
  if (!cipher.ok()) return state.SkipWithError(cipher.status().ToString().c_str());
  const std::vector<std::byte> plain = Pattern(kWriteBytes);
  std::vector<std::byte> tx;
  int64_t send_cpu = 0, recv_cpu = 0, wall = 0;
  for (auto _ : state) {
    std::atomic<bool> failed{false};
    const auto w0 = std::chrono::steady_clock::now();
    const int64_t s0 = ThreadCpuNs();
    std::thread receiver([&] {
      const int64_t r0 = ThreadCpuNs();
      struct Account {
        int64_t r0;
        int64_t& total;
        ~Account() { total += ThreadCpuNs() - r0; }
      } account{r0, recv_cpu};
      std::vector<std::byte> rx(kRecvBytes);
      std::vector<std::byte> out(wire::kExtentDataMax);
      size_t got = 0;
      while (got < kIterationBytes) {
        ssize_t n = recv(pair->b.get(), rx.data(), rx.size(), 0);
        if (n <= 0) {
          failed = true;
          return;
        }
        if (!server.Feed({rx.data(), static_cast<size_t>(n)}).ok()) {
          failed = true;
          return;
        }
        for (;;) {
          auto r = server.Read(out);
          if (!r.ok()) {
            failed = true;
            return;
          }
          if (*r == 0) break;
          got += *r;
        }
      }
    });
    for (size_t sent = 0; sent < kIterationBytes; sent += plain.size()) {
      if (!client.Write(plain).ok()) {
        failed = true;
        break;
      }
      client.TakeOutgoing(tx);
      if (!SendAllBytes(pair->a.get(), tx).ok()) {
        failed = true;
        break;
      }
    }
    send_cpu += ThreadCpuNs() - s0;
    if (failed) shutdown(pair->b.get(), SHUT_RDWR);
    receiver.join();
    wall += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - w0)
                .count();
    if (failed) return state.SkipWithError("the stream failed");
  }
  state.SetLabel(client.cipher_suite());
  SetStreamCounters(state, *cipher, send_cpu, recv_cpu, wall,
                    static_cast<size_t>(state.iterations()) * kIterationBytes);
}

// ---- Connection with EXTENT frames -------------------------------------------------------

void StreamConnection(benchmark::State& state, engine::ChannelMode mode) {
  Drbg rng;
  if (!rng.ok()) return state.SkipWithError("DRBG seed failed");
  const std::vector<std::byte> psk = Pattern(32);
  wire::Hello hc, hs;
  hc.role = wire::Role::kPrimary;
  hc.node_id = 1;
  hc.session_id = 7;
  hc.node_name = "primary";
  hs.node_id = 2;
  hs.session_id = 7;
  hs.node_name = "standby";
  auto c = engine::Connection::Create(wire::TlsRole::kClient, psk, mbedtls_ctr_drbg_random,
                                      rng.ctx(), hc, 1, mode);
  auto s = engine::Connection::Create(wire::TlsRole::kServer, psk, mbedtls_ctr_drbg_random,
                                      rng.ctx(), hs, 1, mode);
  if (!c.ok() || !s.ok()) return state.SkipWithError("Connection::Create failed");
  engine::Connection& client = **c;
  engine::Connection& server = **s;
  for (int i = 0; i < kHandshakeRounds && !(client.open() && server.open()); ++i) {
    if (!Deliver(client, server).ok() || !Deliver(server, client).ok()) {
      return state.SkipWithError("handshake failed");
    }
    if (!client.Next().ok() || !server.Next().ok()) return state.SkipWithError("HELLO failed");
  }
  if (!client.open() || !server.open()) return state.SkipWithError("connection did not open");
  // Anything still queued (the last HELLO) goes in memory, before the socket takes over.
  if (!Deliver(client, server).ok() || !Deliver(server, client).ok()) {
    return state.SkipWithError("delivery failed");
  }
  auto pair = LoopbackPair();
  if (!pair.ok()) return state.SkipWithError(pair.status().ToString().c_str());
  auto cipher = MeasureCipher();
  if (!cipher.ok()) return state.SkipWithError(cipher.status().ToString().c_str());
  int64_t send_cpu = 0, recv_cpu = 0, wall = 0;
  wire::Extent extent;
  extent.file_size = uint64_t{1} << 40;
  extent.data = Pattern(kWriteBytes);
  wire::Message message = extent;
  std::vector<std::byte> tx;
  uint64_t seq = 0;
  for (auto _ : state) {
    std::atomic<bool> failed{false};
    const auto w0 = std::chrono::steady_clock::now();
    const int64_t s0 = ThreadCpuNs();
    std::thread receiver([&] {
      const int64_t r0 = ThreadCpuNs();
      struct Account {
        int64_t r0;
        int64_t& total;
        ~Account() { total += ThreadCpuNs() - r0; }
      } account{r0, recv_cpu};
      std::vector<std::byte> rx(kRecvBytes);
      size_t got = 0;
      while (got < kIterationBytes) {
        for (;;) {
          auto next = server.Next();
          if (!next.ok()) {
            failed = true;
            return;
          }
          if (!next->has_value()) break;
          const auto* e = std::get_if<wire::Extent>(&(**next).message);
          if (e == nullptr) {
            failed = true;
            return;
          }
          got += e->data.size();
        }
        if (got >= kIterationBytes) break;
        ssize_t n = recv(pair->b.get(), rx.data(), rx.size(), 0);
        if (n <= 0 || !server.Feed({rx.data(), static_cast<size_t>(n)}).ok()) {
          failed = true;
          return;
        }
      }
    });
    for (size_t sent = 0; sent < kIterationBytes && !failed; sent += kWriteBytes) {
      if (!client.Send(1, ++seq, message).ok()) {
        failed = true;
        break;
      }
      if (client.outgoing_size() >= kSendBatchBytes || sent + kWriteBytes >= kIterationBytes) {
        client.TakeOutgoing(tx);
        if (!SendAllBytes(pair->a.get(), tx).ok()) failed = true;
      }
    }
    send_cpu += ThreadCpuNs() - s0;
    if (failed) shutdown(pair->b.get(), SHUT_RDWR);
    receiver.join();
    wall += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - w0)
                .count();
    if (failed) return state.SkipWithError("the stream failed");
  }
  state.SetLabel(client.cipher_suite());
  SetStreamCounters(state, *cipher, send_cpu, recv_cpu, wall,
                    static_cast<size_t>(state.iterations()) * kIterationBytes);
}

void RegisterAll() {
  benchmark::RegisterBenchmark("stream/tls_session/chacha20_poly1305", StreamTlsSession)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("stream/connection_extents/chacha20_poly1305", StreamConnection,
                               engine::ChannelMode::kTls)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("stream/plain_extents", StreamConnection,
                               engine::ChannelMode::kPlain)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

}  // namespace
}  // namespace hasync

int main(int argc, char** argv) {
  hasync::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
