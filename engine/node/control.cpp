#include "engine/node/control.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace hasync::engine {

namespace {

Result<sockaddr_un> Address(std::string_view state_dir) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::string path = ControlSocketPath(state_dir);
  if (path.size() >= sizeof a.sun_path) {
    return InvalidArgument("control socket path " + path + " is longer than " +
                           std::to_string(sizeof a.sun_path - 1) + " bytes");
  }
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

void SetTimeouts(int fd, int64_t ms) {
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

std::string ControlSocketPath(std::string_view state_dir) {
  return std::string(state_dir) + "/" + std::string(kControlSocketName);
}

Result<UniqueFd> ListenControl(std::string_view state_dir) {
  ASSIGN_OR_RETURN(sockaddr_un a, Address(state_dir));
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "control socket");
  // A node killed before it could clean up leaves the file; this node owns the state
  // dir (the state file is its own), so the stale one is replaced.
  unlink(a.sun_path);
  mode_t old = umask(0177);  // created 0600
  int rc = bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  umask(old);
  if (rc != 0) return ErrnoStatus(errno, std::string("bind ") + a.sun_path);
  if (chmod(a.sun_path, 0600) != 0) return ErrnoStatus(errno, std::string("chmod ") + a.sun_path);
  if (listen(fd.get(), 8) != 0) return ErrnoStatus(errno, std::string("listen ") + a.sun_path);
  return fd;
}

Result<std::string> ReadControlRequest(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ErrnoStatus(errno, "peer credentials of a control connection");
  }
  if (cred.uid != 0) {
    return PermissionDenied("control connection from uid " + std::to_string(cred.uid) +
                            " (only root is served)");
  }
  SetTimeouts(fd, 1000);
  std::string line;
  char buf[kControlRequestMax];
  while (line.find('\n') == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read a control request");
    if (n == 0) break;
    line.append(buf, static_cast<size_t>(n));
    if (line.size() > kControlRequestMax) return InvalidArgument("control request too long");
  }
  line = line.substr(0, line.find('\n'));
  return line;
}

Status WriteControlReply(int fd, std::string_view reply) {
  SetTimeouts(fd, 1000);
  size_t done = 0;
  while (done < reply.size()) {
    ssize_t n = send(fd, reply.data() + done, reply.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "write a control reply");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<std::string> ControlRequest(std::string_view state_dir, std::string_view request,
                                   int64_t timeout_ms) {
  ASSIGN_OR_RETURN(sockaddr_un a, Address(state_dir));
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "control socket");
  SetTimeouts(fd.get(), timeout_ms);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    return Status(e == ENOENT || e == ECONNREFUSED ? Code::kUnavailable : Code::kInternal,
                  std::string("no hasync node answers on ") + a.sun_path + ": " + std::strerror(e) +
                      " (is `hasync run` running with this config?)");
  }
  std::string line = std::string(request) + "\n";
  if (send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    return ErrnoStatus(errno, "send the control request");
  }
  std::string reply;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read the node's reply");
    if (n == 0) break;
    reply.append(buf, static_cast<size_t>(n));
    if (reply.size() > kControlReplyMax) return InvalidArgument("reply longer than its bound");
  }
  if (reply.empty()) return Unavailable("the node closed the control connection without a reply");
  return reply;
}

}  // namespace hasync::engine
