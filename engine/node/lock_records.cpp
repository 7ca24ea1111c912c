#include "engine/node/lock_records.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "base/unique_fd.h"
#include "engine/log.h"
#include "engine/node/now.h"

namespace hasync::engine {

void WriteLockFile(const std::string& state_dir, const lockwin::LockRecord& r,
                   std::string_view source) {
  // For an operator to read (DESIGN §3); not a source of truth, so no fsync.
  std::string text = fmt::format(
      "# hasync lock record ({}), written by hasync\nepoch={}\nnode_id={}\nchange_seq={}\n"
      "beat={}\nprobe_ok={}\nprobe_latency_us={}\nprobe_token={}\nmonotonic_ns={}\n"
      "last_change_path={}\nlast_change_size={}\nlast_change_xxh3={:016x}\n",
      source, r.epoch, r.node_id, r.change_seq, r.beat, r.probe_ok ? 1 : 0, r.probe_latency_us,
      FirstLine(r.probe_token, lockwin::kProbeTokenMax), r.monotonic_ns,
      FirstLine(r.last_change.path, lockwin::kLastChangePathMax), r.last_change.size_bytes,
      r.last_change.xxh3);
  std::string tmp = state_dir + "/.lock.tmp";
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return;
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) return;
  fd.reset();
  rename(tmp.c_str(), (state_dir + "/lock").c_str());
}

// ---- primary: the beat ---------------------------------------------------------------------

void BeatSource::StartProbe() {
  if (cfg_.probe.command.empty()) {
    Log(Level::kInfo, "probe").kv("mode", "none: the beat follows the event loop alone");
    return;
  }
  Command probe{cfg_.probe.command, cfg_.probe.timeout_ms};
  probe_ = std::make_unique<Probe>(probe, cfg_.probe.interval_ms,
                                   HookEnv{"primary", state_.epoch, "probe", cfg_.peer.name});
}

bool BeatSource::Due(int64_t now) {
  if (now < next_beat_ns_) return false;
  next_beat_ns_ = now + cfg_.failover.beat_ms * 1'000'000;
  return true;
}

lockwin::LockRecord BeatSource::Make(int64_t now, bool tick) {
  // The beat advances only on a tick of this loop (this runs on it) and while the
  // scheduler probe's latest result is a pass no older than two intervals plus its
  // timeout. A record sent with a batch carries the batch's progress, not a new beat.
  lockwin::LockRecord r;
  r.epoch = state_.epoch;
  r.node_id = state_.node_id;
  r.change_seq = sender_ ? sender_->last_seq() : 0;
  r.last_change = last_change_;
  bool healthy = true;
  if (probe_) {
    Probe::Result p = probe_->Latest();
    int64_t fresh_ns = (2 * cfg_.probe.interval_ms + cfg_.probe.timeout_ms) * 1'000'000;
    healthy = p.ran && p.ok && now - p.finished_ns <= fresh_ns;
    r.probe_ok = p.ok;
    r.probe_latency_us = p.latency_us;
    r.probe_token = p.token;
  } else {
    r.probe_ok = true;
  }
  if (healthy && tick) ++beat_;
  r.beat = beat_;
  r.monotonic_ns = now;
  return r;
}

std::optional<std::vector<std::byte>> BeatSource::Beat(int64_t now) {
  lockwin::LockRecord r = Make(now, true);
  auto bytes = lockwin::EncodeLockRecord(r);
  if (!bytes.ok()) {
    Log(Level::kError, "lock_record").kv("error", bytes.status().ToString());
    return std::nullopt;
  }
  WriteLockFile(cfg_.sync.state_dir, r, "made here");
  return std::move(bytes).value();
}

void BeatSource::NoteSent(const wire::Message& message) {
  if (const auto* begin = std::get_if<wire::FileBegin>(&message)) {
    last_change_.path = begin->path.substr(0, lockwin::kLastChangePathMax);
    last_change_.size_bytes = begin->size;
  } else if (const auto* end = std::get_if<wire::FileEnd>(&message)) {
    last_change_.xxh3 = end->hash.low;
  }
}

// ---- standby: the window -------------------------------------------------------------------

Status WindowWatch::Start(int64_t start_ns) {
  lockwin::DetectorOptions dopts;
  dopts.window_ns = cfg_.failover.window_ms * 1'000'000;
  dopts.beat_interval_ns = cfg_.failover.beat_ms * 1'000'000;
  dopts.start_ns = start_ns;  // Silent counts from here until a first lock record
  auto detector = lockwin::Detector::Create(dopts, [](const lockwin::VerdictChange& c) {
    Log(c.to == lockwin::Verdict::kAlive ? Level::kInfo : Level::kWarn, "verdict")
        .kv("from", lockwin::VerdictName(c.from))
        .kv("to", lockwin::VerdictName(c.to));
  });
  if (!detector.ok()) return detector.status().Annotate("failure detector");
  detector_ = std::move(detector).value();
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      int64_t now = NowNs();
      detector_->Step(now);
      snapshot_ = detector_->Snapshot(now);
      // Wake when the verdict can next change, at least every beat (for the history).
      int64_t next = std::min(detector_->NextChangeNs(now), now + detector_->beat_interval_ns());
      cv_.wait_for(lock, std::chrono::nanoseconds(std::max<int64_t>(next - now, 1'000'000)),
                   [&] { return stop_; });
    }
  });
  return Status::Ok();
}

void WindowWatch::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status WindowWatch::OnLock(const wire::Lock& lock) {
  ASSIGN_OR_RETURN(lockwin::LockRecord r, lockwin::DecodeLockRecord(lock.record));
  ASSIGN_OR_RETURN(uint64_t fp, lockwin::FingerprintEncodedLockRecord(lock.record));
  const int64_t now = NowNs();
  detector_->Push(fp, now);
  metrics_.lock_records_received.fetch_add(1, std::memory_order_relaxed);
  // A record comes with every batch as well as every beat: the operator's copy is
  // rewritten at most twice a beat, not on the receive path of every batch. (Once a beat
  // exactly would skip every other beat record, whose arrivals jitter around one beat
  // apart, and leave the file up to two beats old.)
  if (now - lock_file_written_ns_ >= cfg_.failover.beat_ms * 1'000'000 / 2) {
    lock_file_written_ns_ = now;
    WriteLockFile(cfg_.sync.state_dir, r, "received from " + cfg_.peer.name);
  }
  return Status::Ok();
}

lockwin::DetectorSnapshot WindowWatch::Snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

}  // namespace hasync::engine
