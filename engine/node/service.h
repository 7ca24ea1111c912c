// ServiceNotifier: what `hasync run` tells its service manager (systemd, `Type=notify`):
// READY once the node is up, STATUS on every role, STOPPING on the way out, and
// WATCHDOG pings from the event loop so that a node whose loop hangs is killed and
// restarted by the manager (`WatchdogSec=` in packaging/hasync.service), which also
// stops its scheduler through on_demote-less means: DESIGN §4 counts on it for a primary
// that hangs without fencing.
//
// Without a manager (NOTIFY_SOCKET unset) every call is a no-op; without WatchdogSec
// (WATCHDOG_USEC unset or for another pid) Watchdog() is one. sd_notify errors are
// counted and logged once, never fatal: a manager that went away must not stop
// replication.
//
// Thread safety: none; Node calls it from its event loop only (Tick for the watchdog).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hasync::engine {

class ServiceNotifier {
 public:
  // Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID from the environment once.
  static ServiceNotifier FromEnvironment();

  bool managed() const { return managed_; }
  // 0 when the manager expects no watchdog pings.
  int64_t watchdog_interval_ns() const { return watchdog_ns_; }

  // READY=1 (once per process; later calls only update STATUS).
  void Ready(std::string_view status);
  void Status(std::string_view status);
  void Stopping(std::string_view status);
  // WATCHDOG=1 at most every half interval (systemd's advice); call it from the loop.
  void Watchdog(int64_t now_ns);

  uint64_t pings_sent() const { return pings_; }

 private:
  void Send(const std::string& message);

  bool managed_ = false;
  bool ready_sent_ = false;
  bool error_logged_ = false;
  int64_t watchdog_ns_ = 0;
  int64_t last_ping_ns_ = 0;
  uint64_t pings_ = 0;
};

}  // namespace hasync::engine
