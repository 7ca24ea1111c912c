// TuneSessionSocket: the TCP options every session socket (control and data streams,
// both directions) gets.
//
// Failure detection runs on the peer's silence, so TCP must not add silence of its own.
// After a short cut (a switch reboot, a flapping link) a connection's retransmission
// timer has backed off exponentially: with the default 120 s ceiling a 3.5 s cut left
// the healed link quiet for 3 s more, and a cut of about 6 s for 6 more — long enough
// for the standby's window to expire on a link that was already back (a false failover).
// - TCP_RTO_MAX_MS (Linux ≥ 6.15) caps the backed-off timer at 1 s;
// - TCP_THIN_LINEAR_TIMEOUTS keeps it linear for a thin stream (the beat) on older ones.
// Both are best effort: an older kernel refuses the option and nothing else changes.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace hasync::engine {

#ifndef TCP_RTO_MAX_MS
#define TCP_RTO_MAX_MS 44  // linux/tcp.h since 6.15; libc headers may lag
#endif

inline constexpr int kTcpRtoMaxMs = 1000;  // the kernel's lowest allowed ceiling

inline void TuneSessionSocket(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, &one, sizeof one);
  int rto_max = kTcpRtoMaxMs;
  setsockopt(fd, IPPROTO_TCP, TCP_RTO_MAX_MS, &rto_max, sizeof rto_max);
}

}  // namespace hasync::engine
