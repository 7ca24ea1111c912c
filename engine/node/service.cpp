#include "engine/node/service.h"

#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>

#include "engine/log.h"

namespace hasync::engine {

ServiceNotifier ServiceNotifier::FromEnvironment() {
  ServiceNotifier n;
  const char* socket = std::getenv("NOTIFY_SOCKET");
  n.managed_ = socket != nullptr && socket[0] != '\0';
  uint64_t usec = 0;
  // > 0: the manager wants pings from this pid every usec (WATCHDOG_PID, when set, must
  // name this process).
  if (n.managed_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    n.watchdog_ns_ = static_cast<int64_t>(usec) * 1000;
  }
  return n;
}

void ServiceNotifier::Send(const std::string& message) {
  if (!managed_) return;
  int r = sd_notify(0, message.c_str());
  if (r < 0 && !error_logged_) {
    error_logged_ = true;
    Log(Level::kWarn, "sd_notify_failed").kv("error", std::strerror(-r)).kv("message", message);
  }
}

void ServiceNotifier::Ready(std::string_view status) {
  if (ready_sent_) return Status(status);
  ready_sent_ = true;
  Send("READY=1\nSTATUS=" + std::string(status));
}

void ServiceNotifier::Status(std::string_view status) { Send("STATUS=" + std::string(status)); }

void ServiceNotifier::Stopping(std::string_view status) {
  Send("STOPPING=1\nSTATUS=" + std::string(status));
}

void ServiceNotifier::Watchdog(int64_t now_ns) {
  if (watchdog_ns_ == 0 || now_ns - last_ping_ns_ < watchdog_ns_ / 2) return;
  last_ping_ns_ = now_ns;
  ++pings_;
  Send("WATCHDOG=1");
}

}  // namespace hasync::engine
