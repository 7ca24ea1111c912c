// Log: one line per event on stderr (journald keeps it), `level=… event=… key=value…`.
//
// Values with spaces or quotes are quoted. The level threshold is process-wide and set
// once at start-up. Thread-safe: one write(2) per line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hasync::engine {

enum class Level : uint8_t { kDebug, kInfo, kWarn, kError };

void SetLogLevel(Level level);
bool LogEnabled(Level level);

class LogLine {
 public:
  LogLine(Level level, std::string_view event);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  LogLine& kv(std::string_view key, std::string_view value);
  LogLine& kv(std::string_view key, const std::string& value) {
    return kv(key, std::string_view(value));
  }
  LogLine& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value)); }
  LogLine& kv(std::string_view key, uint64_t value);
  LogLine& kv(std::string_view key, int64_t value);
  LogLine& kv(std::string_view key, int value) { return kv(key, static_cast<int64_t>(value)); }
  LogLine& kv(std::string_view key, uint32_t value) {
    return kv(key, static_cast<uint64_t>(value));
  }
  LogLine& kv(std::string_view key, double value);
  LogLine& kv(std::string_view key, bool value) { return kv(key, value ? "true" : "false"); }

 private:
  bool enabled_;
  std::string line_;
};

inline LogLine Log(Level level, std::string_view event) { return LogLine(level, event); }

}  // namespace hasync::engine
