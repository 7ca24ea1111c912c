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

void AppendValue(std::string& out, std::string_view v) {
  bool quote = v.empty() || v.find_first_of(" \"=\t\n") != std::string_view::npos;
  if (!quote) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
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
