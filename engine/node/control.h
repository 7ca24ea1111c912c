// The control socket: how `hasync status` and `hasync switchover` talk to a running node.
//
// A Unix stream socket at <state_dir>/control.sock, mode 0600 inside the 0700 state dir,
// and every connection's peer credentials are checked: only root (uid 0) is served. One
// request line per connection ("status" or "switchover <timeout_ms>"), one JSON reply,
// then the node closes it. Requests and replies are bounded (kControlRequestMax,
// kControlReplyMax); a client that does not send its line within a second is dropped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/unique_fd.h"

namespace hasync::engine {

inline constexpr std::string_view kControlSocketName = "control.sock";
inline constexpr size_t kControlRequestMax = 256;
inline constexpr size_t kControlReplyMax = 256 * 1024;

std::string ControlSocketPath(std::string_view state_dir);

// Server: binds and listens (a stale socket file from a killed node is replaced).
Result<UniqueFd> ListenControl(std::string_view state_dir);
// Server: reads the request line of an accepted connection (1 s limit) and checks that
// the peer is root. PermissionDenied names the uid of a refused peer.
Result<std::string> ReadControlRequest(int fd);
// Server: writes the reply (blocking, bounded by 1 s).
Status WriteControlReply(int fd, std::string_view reply);

// Client: one request, the whole reply. Unavailable (with the path) when no node runs.
Result<std::string> ControlRequest(std::string_view state_dir, std::string_view request,
                                   int64_t timeout_ms);

}  // namespace hasync::engine
