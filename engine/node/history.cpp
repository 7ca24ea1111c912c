#include "engine/node/history.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>

#include "base/unique_fd.h"

namespace hasync::engine {
namespace {

constexpr size_t kHistoryReadMax = kHistoryFileMax + 2 * (kHistoryReasonMax + 128);

std::string Printable(std::string_view s) {
  std::string out(s.substr(0, kHistoryReasonMax));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

template <typename T>
bool ParseNumber(std::string_view text, T& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

// "key=" at the start of `line`: the value up to the next space; `line` advances past it.
bool TakeField(std::string_view& line, std::string_view key, std::string_view& value) {
  if (line.substr(0, key.size()) != key || line.size() <= key.size() || line[key.size()] != '=') {
    return false;
  }
  line.remove_prefix(key.size() + 1);
  size_t sp = line.find(' ');
  value = line.substr(0, sp);
  line.remove_prefix(sp == std::string_view::npos ? line.size() : sp + 1);
  return true;
}

Status WriteAll(int fd, std::string_view text, const std::string& what) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write " + what);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status SyncDir(const std::string& dir) {
  UniqueFd dfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) return ErrnoStatus(errno, "open " + dir);
  if (fsync(dfd.get()) != 0) return ErrnoStatus(errno, "fsync " + dir);
  return Status::Ok();
}

// Rewrites the file with its newest kHistoryKeep entries.
Status Trim(const std::string& dir, const std::string& path) {
  ASSIGN_OR_RETURN(History h, ReadHistory(dir));
  size_t from = h.entries.size() > kHistoryKeep ? h.entries.size() - kHistoryKeep : 0;
  std::string text;
  for (size_t i = from; i < h.entries.size(); ++i) text += EncodeHistoryLine(h.entries[i]);
  const std::string tmp = dir + "/." + std::string(kHistoryFileName) + ".tmp";
  {
    UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return ErrnoStatus(errno, "create " + tmp);
    RETURN_IF_ERROR(WriteAll(fd.get(), text, tmp));
    if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync " + tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) return ErrnoStatus(errno, "rename " + tmp);
  return SyncDir(dir);
}

}  // namespace

std::string EncodeHistoryLine(const HistoryEntry& e) {
  return "unix_ms=" + std::to_string(e.unix_ms) + " role=" + std::string(NodeRoleName(e.role)) +
         " epoch=" + std::to_string(e.epoch) + " reason=" + Printable(e.reason) + "\n";
}

Result<HistoryEntry> DecodeHistoryLine(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  HistoryEntry e;
  std::string_view ms, role, epoch;
  if (!TakeField(line, "unix_ms", ms) || !ParseNumber(ms, e.unix_ms)) {
    return InvalidArgument("history line: no unix_ms=<number> at its start");
  }
  if (!TakeField(line, "role", role)) return InvalidArgument("history line: no role=");
  ASSIGN_OR_RETURN(e.role, ParseNodeRole(role));
  if (!TakeField(line, "epoch", epoch) || !ParseNumber(epoch, e.epoch)) {
    return InvalidArgument("history line: no epoch=<number>");
  }
  if (line.substr(0, 7) != "reason=") return InvalidArgument("history line: no reason=");
  line.remove_prefix(7);
  if (line.size() > kHistoryReasonMax) {
    return InvalidArgument("history line: reason longer than kHistoryReasonMax");
  }
  e.reason = std::string(line);
  return e;
}

Status AppendHistory(std::string_view state_dir, const HistoryEntry& e) {
  const std::string dir(state_dir);
  const std::string path = dir + "/" + std::string(kHistoryFileName);
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && static_cast<size_t>(st.st_size) > kHistoryFileMax) {
    RETURN_IF_ERROR(Trim(dir, path));
  }
  bool created = false;
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW));
  if (!fd && errno == ENOENT) {
    fd = UniqueFd(open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    created = true;
  }
  if (!fd) return ErrnoStatus(errno, "open " + path);
  RETURN_IF_ERROR(WriteAll(fd.get(), EncodeHistoryLine(e), path));
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync " + path);
  return created ? SyncDir(dir) : Status::Ok();
}

Result<History> ReadHistory(std::string_view state_dir) {
  const std::string path = std::string(state_dir) + "/" + std::string(kHistoryFileName);
  History h;
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno == ENOENT) return h;
    return ErrnoStatus(errno, "open " + path);
  }
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read " + path);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kHistoryReadMax) {
      return InvalidArgument(path + ": larger than its bound (" + std::to_string(kHistoryReadMax) +
                             " bytes)");
    }
  }
  std::string_view rest(text);
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (line.empty()) continue;
    auto e = DecodeHistoryLine(line);
    if (e.ok()) {
      h.entries.push_back(std::move(*e));
    } else {
      ++h.skipped_lines;
    }
  }
  return h;
}

}  // namespace hasync::engine
