// Lock records (DESIGN §3, docs/FAILOVER.md "The pieces"), both ends.
//
// Primary: BeatSource makes the lock record the primary sends every beat and with every
// batch. The beat advances only on a tick of the loop and while the scheduler probe's
// latest result is a pass no older than two intervals plus its timeout; a record made
// for a batch carries the batch's progress, not a new beat. Each beat's record is also
// written to <state_dir>/lock for an operator to read.
//
// Standby: WindowWatch decodes each record that arrives, pushes its fingerprint into the
// lock window's detector (lockwin/detector.h) and keeps the operator's copy in
// <state_dir>/lock. A thread of its own steps the detector, so the verdict is judged on
// time even while the loop is busy, and keeps a snapshot for the status.
//
// What they own: BeatSource the probe (and its thread), the beat counter, the newest
// file sent and when the next beat is due; WindowWatch the detector, its thread and the
// snapshot. Sending a record is the session's (engine/node/session_out.h); judging a
// verdict is the failover controller's (engine/failover/controller.h).
//
// Threading: the loop's thread, except WindowWatch's detector thread, which only steps
// the detector and writes the snapshot under the watch's mutex.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/status.h"
#include "engine/config.h"
#include "engine/node/hooks.h"
#include "engine/node/metrics.h"
#include "engine/node/state.h"
#include "engine/sync/sender.h"
#include "lockwin/detector.h"
#include "lockwin/lock_record.h"
#include "wire/messages.h"

namespace hasync::engine {

// Writes `record` to <state_dir>/lock (temp + rename) for an operator to read; `source`
// says where it came from. Not a source of truth, so not fsynced; a failure is ignored.
void WriteLockFile(const std::string& state_dir, const lockwin::LockRecord& record,
                   std::string_view source);

// The primary's lock records.
class BeatSource {
 public:
  // `state`: the node's (epoch, node id); `sender`: the primary's, whose last sequence
  // number every record carries (none yet: 0). Both are read at each call.
  BeatSource(const Config& cfg, const NodeState& state, const std::unique_ptr<Sender>& sender)
      : cfg_(cfg), state_(state), sender_(sender) {}
  BeatSource(const BeatSource&) = delete;
  BeatSource& operator=(const BeatSource&) = delete;

  // Starts the scheduler probe when [probe] names a command; logs which it is.
  void StartProbe();
  void StopProbe() { probe_.reset(); }
  const Probe* probe() const { return probe_.get(); }
  uint64_t beat() const { return beat_; }

  // Whether a beat is due at `now`; when it is, the next one is due failover.beat_ms on.
  bool Due(int64_t now);
  // The record at `now`. `tick`: a beat of the loop (the beat advances if the probe is
  // healthy); false: the record sent with a batch's COMMIT.
  lockwin::LockRecord Make(int64_t now, bool tick);
  // A beat: the record made (tick), written to <state_dir>/lock and encoded for the
  // standby. Nullopt when it does not encode (logged; a bug, not the peer's doing).
  std::optional<std::vector<std::byte>> Beat(int64_t now);
  // Notes the newest file sent: FILE_BEGIN's path and size, FILE_END's hash.
  void NoteSent(const wire::Message& message);

 private:
  const Config& cfg_;
  const NodeState& state_;
  const std::unique_ptr<Sender>& sender_;
  std::unique_ptr<Probe> probe_;
  uint64_t beat_ = 0;
  lockwin::LastChange last_change_;  // the newest file sent: path, size, hash
  int64_t next_beat_ns_ = 0;
};

// The standby's lock window.
class WindowWatch {
 public:
  WindowWatch(const Config& cfg, Metrics& metrics) : cfg_(cfg), metrics_(metrics) {}
  ~WindowWatch() { Stop(); }
  WindowWatch(const WindowWatch&) = delete;
  WindowWatch& operator=(const WindowWatch&) = delete;

  // Makes the detector (Silent counts from `start_ns` until a first record; each verdict
  // change is logged) and starts its thread.
  Status Start(int64_t start_ns);
  // Stops and joins the detector's thread (again: nothing).
  void Stop();
  // A LOCK frame from the primary. A record that does not decode is a protocol error (it
  // came through the session's authentication, so it is a bug or a hostile primary):
  // the caller ends the session.
  Status OnLock(const wire::Lock& lock);
  // The verdict at `now` (Alive before Start).
  lockwin::Verdict Judge(int64_t now) const {
    return detector_ ? detector_->Judge(now) : lockwin::Verdict::kAlive;
  }
  // The detector thread's last snapshot (history, silence, records), for the status.
  lockwin::DetectorSnapshot Snapshot() const;
  const lockwin::Detector* detector() const { return detector_.get(); }

 private:
  const Config& cfg_;
  Metrics& metrics_;
  // The detector (its thread only Steps it: history and verdict log lines).
  std::unique_ptr<lockwin::Detector> detector_;
  std::thread thread_;
  mutable std::mutex mu_;
  lockwin::DetectorSnapshot snapshot_;  // under mu_
  std::condition_variable cv_;
  bool stop_ = false;                 // under mu_
  int64_t lock_file_written_ns_ = 0;  // <state_dir>/lock, last rewritten
};

}  // namespace hasync::engine
