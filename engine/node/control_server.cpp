#include "engine/node/control_server.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/log.h"
#include "engine/node/control.h"

namespace hasync::engine {

Status ControlServer::Listen(std::string_view state_dir) {
  ASSIGN_OR_RETURN(fd_, ListenControl(state_dir));
  return Status::Ok();
}

void ControlServer::PostAccept() {
  Status s = loop_.Submit(
      [this](io_uring_sqe* sqe) {
        io_uring_prep_accept(sqe, fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      },
      [this](int32_t res) {
        if (res >= 0) {
          Handle(UniqueFd(res));
        } else {
          Log(Level::kWarn, "control_accept_failed").kv("error", std::strerror(-res));
        }
        if (handlers_.accepting()) PostAccept();
      });
  if (!s.ok()) handlers_.fail(s);
}

void ControlServer::Handle(UniqueFd fd) {
  // Local, root-only and bounded (1 s per direction): handled on the loop.
  auto request = ReadControlRequest(fd.get());
  if (!request.ok()) {
    Log(Level::kWarn, "control_refused").kv("reason", request.status().ToString());
    return;
  }
  std::string reply;
  if (*request == "status") {
    reply = handlers_.status();
  } else if (request->rfind("verify ", 0) == 0) {
    int64_t timeout_ms = 0;
    int rounds = 0;
    std::istringstream in(request->substr(7));
    std::string mode;
    in >> timeout_ms >> rounds >> mode;
    reply = handlers_.verify(std::clamp<int64_t>(timeout_ms, 1'000, 86'400'000),
                             std::clamp(rounds, 2, 10), mode == "repair");
  } else if (request->rfind("verify-result ", 0) == 0) {
    uint64_t id = 0;
    size_t offset = 0;
    std::istringstream in(request->substr(14));
    in >> id >> offset;
    reply = handlers_.verify_result(id, offset);
  } else if (request->rfind("switchover ", 0) == 0) {
    int64_t timeout_ms = std::atoll(request->c_str() + 11);
    reply = handlers_.switchover(std::clamp<int64_t>(timeout_ms, 1, 86'400'000));
  } else {
    reply = nlohmann::json{{"ok", false}, {"error", "unknown request"}}.dump();
  }
  WriteControlReply(fd.get(), reply + "\n").IgnoreError();
}

}  // namespace hasync::engine
