#include "engine/node/state.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>

#include "base/unique_fd.h"

namespace hasync::engine {

std::string_view NodeRoleName(NodeRole role) {
  return role == NodeRole::kPrimary ? "primary" : "standby";
}

Result<NodeRole> ParseNodeRole(std::string_view text) {
  if (text == "primary") return NodeRole::kPrimary;
  if (text == "standby") return NodeRole::kStandby;
  return InvalidArgument("role '" + std::string(text.substr(0, 32)) +
                         "' is not primary or standby");
}

std::string EncodeNodeState(const NodeState& s) {
  std::string out = "# hasync node state: written by hasync, do not edit while it runs\n";
  out += "node_id=" + std::to_string(s.node_id) + "\n";
  out += "epoch=" + std::to_string(s.epoch) + "\n";
  out += "role=" + std::string(NodeRoleName(s.role)) + "\n";
  out += "last_applied_seq=" + std::to_string(s.last_applied_seq) + "\n";
  if (s.rejoin_epoch != 0) out += "rejoin_epoch=" + std::to_string(s.rejoin_epoch) + "\n";
  if (s.handed_over) out += "handed_over=1\n";
  if (s.last_failover_unix_ms != 0) {
    out += "last_failover_unix_ms=" + std::to_string(s.last_failover_unix_ms) + "\n";
  }
  return out;
}

Result<NodeState> DecodeNodeState(std::string_view text, std::string_view origin) {
  NodeState s;
  bool have_id = false, have_epoch = false, have_role = false, have_seq = false;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    auto bad = [&](std::string why) {
      return InvalidArgument(std::string(origin) + ":" + std::to_string(line_no) + ": " + why);
    };
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return bad("expected key=value");
    std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    auto number = [&](uint64_t& out) -> Status {
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
      if (ec != std::errc() || p != value.data() + value.size()) {
        return bad(std::string(key) + " is not a number");
      }
      return Status::Ok();
    };
    if (key == "node_id") {
      RETURN_IF_ERROR(number(s.node_id));
      have_id = true;
    } else if (key == "epoch") {
      RETURN_IF_ERROR(number(s.epoch));
      have_epoch = true;
    } else if (key == "last_applied_seq") {
      RETURN_IF_ERROR(number(s.last_applied_seq));
      have_seq = true;
    } else if (key == "rejoin_epoch") {
      RETURN_IF_ERROR(number(s.rejoin_epoch));
    } else if (key == "handed_over") {
      uint64_t v = 0;
      RETURN_IF_ERROR(number(v));
      if (v > 1) return bad("handed_over is 0 or 1");
      s.handed_over = v == 1;
    } else if (key == "last_failover_unix_ms") {
      RETURN_IF_ERROR(number(s.last_failover_unix_ms));
    } else if (key == "role") {
      auto role = ParseNodeRole(value);
      if (!role.ok()) return bad(role.status().message());
      s.role = *role;
      have_role = true;
    } else {
      return bad("unknown key " + std::string(key.substr(0, 32)));
    }
  }
  if (!(have_id && have_epoch && have_role && have_seq)) {
    return InvalidArgument(std::string(origin) +
                           ": missing one of node_id, epoch, role, last_applied_seq");
  }
  if (s.node_id == 0) return InvalidArgument(std::string(origin) + ": node_id must be nonzero");
  return s;
}

Result<NodeState> LoadNodeState(std::string_view state_dir) {
  std::string path = std::string(state_dir) + "/" + std::string(kStateFileName);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return ErrnoStatus(errno, "open " + path);
  std::string text(kStateFileMax + 1, '\0');
  ssize_t n = read(fd.get(), text.data(), text.size());
  if (n < 0) return ErrnoStatus(errno, "read " + path);
  if (static_cast<size_t>(n) > kStateFileMax) {
    return InvalidArgument(path + ": larger than kStateFileMax " + std::to_string(kStateFileMax));
  }
  text.resize(static_cast<size_t>(n));
  return DecodeNodeState(text, path);
}

Status SaveNodeState(std::string_view state_dir, const NodeState& state) {
  HASYNC_ASSERT(state.node_id != 0);
  std::string dir(state_dir);
  std::string tmp = dir + "/." + std::string(kStateFileName) + ".tmp";
  std::string path = dir + "/" + std::string(kStateFileName);
  std::string text = EncodeNodeState(state);
  {
    UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return ErrnoStatus(errno, "create " + tmp);
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = write(fd.get(), text.data() + done, text.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "write " + tmp);
      }
      done += static_cast<size_t>(n);
    }
    if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync " + tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) return ErrnoStatus(errno, "rename " + tmp);
  UniqueFd dfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) return ErrnoStatus(errno, "open " + dir);
  if (fsync(dfd.get()) != 0) return ErrnoStatus(errno, "fsync " + dir);
  return Status::Ok();
}

}  // namespace hasync::engine
