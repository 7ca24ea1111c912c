// ControlServer: the node's side of the control socket (engine/node/control.h).
//
// It accepts on <state_dir>/control.sock through the node's io_uring, reads one request
// line per connection, dispatches it to the node's handler and writes the JSON reply:
// "status", "verify <timeout_ms> <rounds> [repair]", "verify-result <id> <offset>",
// "switchover <timeout_ms>". Arguments are clamped to sane ranges here, so a handler
// sees only values it can act on. A connection is handled whole on the loop: it is
// local, root-only and bounded (1 s per direction, kControlRequestMax,
// kControlReplyMax).
//
// What it owns: the listening socket. The answers (status, switchover, verify) are the
// node's, through ControlServer::Handlers.
//
// Threading: the loop's thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/unique_fd.h"
#include "iouring/loop.h"

namespace hasync::engine {

class ControlServer {
 public:
  // The node's answers, each returning the JSON reply. Called on the loop's thread.
  struct Handlers {
    std::function<std::string()> status;
    std::function<std::string(int64_t timeout_ms, int rounds, bool repair)> verify;
    std::function<std::string(uint64_t id, size_t offset)> verify_result;
    std::function<std::string(int64_t timeout_ms)> switchover;
    // False once the node is changing role: no further ACCEPT is posted.
    std::function<bool()> accepting;
    // The loop refused the ACCEPT: the node stops.
    std::function<void(Status)> fail;
  };

  ControlServer(iouring::Loop& loop, Handlers handlers)
      : loop_(loop), handlers_(std::move(handlers)) {}
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds <state_dir>/control.sock (a stale one from a killed node is replaced).
  Status Listen(std::string_view state_dir);
  bool listening() const { return static_cast<bool>(fd_); }
  // Posts the ACCEPT; each connection is answered and the next ACCEPT posted.
  void PostAccept();

 private:
  void Handle(UniqueFd fd);

  iouring::Loop& loop_;
  Handlers handlers_;
  UniqueFd fd_;
};

}  // namespace hasync::engine
