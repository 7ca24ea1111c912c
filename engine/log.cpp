#include "engine/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>

namespace hasync::engine {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "?";
}

bool NeedsEscape(unsigned char c) { return c < 0x20 || c == 0x7f; }

// A value goes in bare when it has no space, quote, '=' or control byte; otherwise in
// double quotes with \" \\ \n \t and \xNN for the other control bytes, so a value
// (a path from the peer, a hook's output) can never start a line of its own or move
// the cursor of a terminal showing the log.
void AppendValue(std::string& out, std::string_view v) {
  bool quote = v.empty() || v.find_first_of(" \"=\\") != std::string_view::npos;
  for (char c : v) quote = quote || NeedsEscape(static_cast<unsigned char>(c));
  if (!quote) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (NeedsEscape(u)) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    } else {
      out += c;
    }
  }
  out += '"';
}
}  // namespace

void SetLogLevel(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }
bool LogEnabled(Level level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

LogLine::LogLine(Level level, std::string_view event) : enabled_(LogEnabled(level)) {
  if (!enabled_) return;
  line_.reserve(160);
  line_ += "level=";
  line_ += LevelName(level);
  line_ += " event=";
  line_ += event;
}

LogLine::~LogLine() {
  if (!enabled_) return;
  line_ += '\n';
  // One write per line so concurrent lines never interleave.
  ssize_t n = write(STDERR_FILENO, line_.data(), line_.size());
  (void)n;
}

LogLine& LogLine::kv(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  line_ += ' ';
  line_ += key;
  line_ += '=';
  AppendValue(line_, value);
  return *this;
}

LogLine& LogLine::kv(std::string_view key, uint64_t value) {
  return kv(key, std::to_string(value));
}
LogLine& LogLine::kv(std::string_view key, int64_t value) { return kv(key, std::to_string(value)); }
LogLine& LogLine::kv(std::string_view key, double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", value);
  return kv(key, std::string_view(buf));
}

}  // namespace hasync::engine
