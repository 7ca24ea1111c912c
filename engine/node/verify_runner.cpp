#include "engine/node/verify_runner.h"

#include <time.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/log.h"
#include "engine/node/now.h"

namespace hasync::engine {

namespace {

// An operator's verify result stays this long before an anti-entropy pass replaces it.
constexpr int64_t kOperatorResultKeptNs = 60'000'000'000;
// An anti-entropy pass gives up (and the next one starts) after this long.
constexpr int64_t kAntiEntropyPassMaxNs = 86'400'000'000'000;
// A verify run holds at most this many entries per side (each ~100 bytes), and logs at
// most this many differences one per line.
constexpr size_t kVerifyEntriesMax = 5'000'000;
constexpr size_t kVerifyLogLinesMax = 10'000;
// Before each round: wait (at most this long) until every change seen is acknowledged.
constexpr int64_t kVerifySettleNs = 10'000'000'000;
// A page of `verify-result`: at most this many differences or about this many bytes.
constexpr size_t kVerifyPageMax = 1'000;
constexpr size_t kVerifyPageBytes = 128 * 1024;

nlohmann::json DifferenceJson(const ManifestDifference& d) {
  return {{"path", d.path}, {"what", d.what}};
}

}  // namespace

std::string VerifyRunner::Start(int64_t timeout_ms, int rounds, bool repair) {
  using nlohmann::json;
  auto fail = [](const std::string& why) { return json{{"ok", false}, {"error", why}}.dump(); };
  if (role_ != NodeRole::kPrimary) {
    return fail("this node is the standby: run `hasync verify` on the primary");
  }
  if (verify_ && verify_->phase != VerifyRun::Phase::kDone) {
    if (!verify_->background) {
      verify_->repair = verify_->repair || repair;
      return json{{"ok", true}, {"id", verify_->id}, {"attached", true}}.dump();
    }
    // A background pass gives way to the operator's run (its walk is cancelled).
    Log(Level::kInfo, "anti_entropy")
        .kv("phase", "cancelled")
        .kv("id", verify_->id)
        .kv("reason", "hasync verify");
    verify_.reset();
  }
  const int64_t now = NowNs();
  verify_ = std::make_unique<VerifyRun>();
  verify_->id = ++verify_count_;
  verify_->max_rounds = rounds;
  verify_->repair = repair;
  verify_->started_ns = verify_->phase_since_ns = now;
  verify_->deadline_ns = now + timeout_ms * 1'000'000;
  // Right after a start or a reconnect the session is still opening: the run waits for
  // it (within its timeout) instead of failing.
  if (owner_.SessionState() != "live") verify_->phase = VerifyRun::Phase::kAwaitSession;
  Log(Level::kInfo, "verify")
      .kv("phase", "begin")
      .kv("id", verify_->id)
      .kv("rounds", rounds)
      .kv("repair", repair);
  return json{{"ok", true}, {"id", verify_->id}}.dump();
}

void VerifyRunner::StartAntiEntropyPass(int64_t now) {
  verify_ = std::make_unique<VerifyRun>();
  verify_->id = ++verify_count_;
  verify_->max_rounds = 2;  // a difference counts once it is the same in two rounds
  verify_->repair = cfg_.anti_entropy.repair;
  verify_->background = true;
  verify_->started_ns = verify_->phase_since_ns = now;
  verify_->deadline_ns = now + kAntiEntropyPassMaxNs;
  next_pass_ns_ = now + cfg_.anti_entropy.interval_ms * 1'000'000;
  Log(Level::kInfo, "anti_entropy")
      .kv("phase", "begin")
      .kv("id", verify_->id)
      .kv("cpu_percent", static_cast<uint64_t>(cfg_.anti_entropy.cpu_percent));
}

void VerifyRunner::Repair(const std::vector<ManifestDifference>& diffs) {
  Sender* sender = owner_.sender();
  Journal* journal = owner_.journal();
  const size_t roots = owner_.RootFds().size();
  sender->BeginRepair();
  std::vector<const ManifestDifference*> queued;
  for (const ManifestDifference& d : diffs) {
    Status s = sender->Distrust(d.path, d.standby ? &*d.standby : nullptr);
    if (!s.ok()) {
      Log(Level::kWarn, "repair_skipped").kv("path", d.path).kv("reason", s.ToString());
      continue;
    }
    queued.push_back(&d);
  }
  // Queued after every model entry is corrected, so a directory removed on the
  // standby finds its children in the model and removes them first.
  for (const ManifestDifference* d : queued) {
    auto split = SplitWirePath(d->path, static_cast<uint32_t>(roots));
    if (!split.ok()) continue;  // Distrust checked it
    const bool dir = d->primary && d->primary->kind == wire::EntryKind::kDirectory;
    if (dir || split->second.empty()) {
      journal->Rescan(split->first, split->second);
    } else {
      journal->Upsert(split->first, split->second);
    }
    metrics_.divergences_repaired.fetch_add(1, std::memory_order_relaxed);
    ++verify_->repaired;
    Log(Level::kWarn, "repaired")
        .kv("id", verify_->id)
        .kv("path", d->path)
        .kv("what", d->what)
        .kv("by", verify_->background ? "anti_entropy" : "verify");
  }
}

void VerifyRunner::Finish(std::string outcome, std::string error) {
  VerifyRun& v = *verify_;
  metrics_.divergences_found.fetch_add(v.confirmed.size(), std::memory_order_relaxed);
  if (v.repair && owner_.sender() && owner_.journal() &&
      (outcome == "differences" || outcome == "inconclusive")) {
    // What changed between the rounds is in flux: an operator's repair takes it too
    // (resending the primary's truth is harmless); a background pass only what stayed.
    std::vector<ManifestDifference> fix = v.confirmed;
    if (!v.background) fix.insert(fix.end(), v.unsettled.begin(), v.unsettled.end());
    Repair(fix);
  }
  if (v.background && outcome != "failed") {
    metrics_.antientropy_last_pass_unix_s.store(static_cast<int64_t>(::time(nullptr)),
                                                std::memory_order_relaxed);
  }
  if (!v.background) operator_verify_done_ns_ = NowNs();
  v.local.reset();
  v.standby.clear();
  v.standby.shrink_to_fit();
  v.outcome = std::move(outcome);
  v.error = std::move(error);
  v.phase = VerifyRun::Phase::kDone;
  v.seconds = static_cast<double>(NowNs() - v.started_ns) / 1e9;
  size_t logged = 0;
  for (const auto* list : {&v.confirmed, &v.unsettled}) {
    for (const auto& d : *list) {
      if (logged++ >= kVerifyLogLinesMax) break;
      Log(list == &v.confirmed ? Level::kError : Level::kWarn, "verify_difference")
          .kv("id", v.id)
          .kv("path", d.path)
          .kv("what", d.what)
          .kv("judged", list == &v.confirmed ? "stable" : "changing");
    }
  }
  Log(v.outcome == "identical" ? Level::kInfo : Level::kWarn,
      v.background ? "anti_entropy" : "verify")
      .kv("phase", "done")
      .kv("id", v.id)
      .kv("outcome", v.outcome)
      .kv("differences", static_cast<uint64_t>(v.confirmed.size()))
      .kv("changing", static_cast<uint64_t>(v.unsettled.size()))
      .kv("rounds", v.round)
      .kv("primary_entries", v.primary_entries)
      .kv("standby_entries", v.standby_entries)
      .kv("seconds", v.seconds)
      .kv("repaired", v.repaired)
      .kv("error", v.error);
}

void VerifyRunner::Step(int64_t now) {
  VerifyRun& v = *verify_;
  if (v.phase == VerifyRun::Phase::kAwaitSession) {
    if (owner_.SessionState() == "live") {
      v.phase = VerifyRun::Phase::kSettle;
      v.phase_since_ns = now;
    } else if (now > v.deadline_ns) {
      Finish("failed", "no live session with the standby within the timeout (session " +
                           std::string(owner_.SessionState()) +
                           "): nothing to compare with; see `hasync status`");
      return;
    } else {
      return;
    }
  }
  if (owner_.SessionState() != "live") {
    Finish("failed", "the session with the standby ended during the run; run it again");
    return;
  }
  if (now > v.deadline_ns) {
    Finish("failed", fmt::format("not finished within the timeout (round {}, {})", v.round,
                                 v.phase == VerifyRun::Phase::kAwaitStandby
                                     ? "waiting for the standby's manifest"
                                     : "settling or hashing here"));
    return;
  }
  switch (v.phase) {
    case VerifyRun::Phase::kSettle: {
      // Compare what both sides hold once everything seen here is durable there; on a
      // spool that never rests, go ahead after kVerifySettleNs (the rounds sort it out).
      if (!owner_.Settled() && now - v.phase_since_ns < kVerifySettleNs) return;
      ++v.round;
      v.request_id = kVerifyRequestIdBase + (v.id << 8) + static_cast<uint64_t>(v.round);
      if (v.background) v.request_id |= kBackgroundRequestFlag;
      v.standby.clear();
      Status s = owner_.SendToPeer(wire::ManifestRequest{v.request_id, ""});
      if (!s.ok()) {
        Finish("failed", "could not ask the standby: " + s.ToString());
        return;
      }
      v.phase = VerifyRun::Phase::kAwaitStandby;
      v.phase_since_ns = now;
      return;
    }
    case VerifyRun::Phase::kAwaitSession:  // handled above
    case VerifyRun::Phase::kAwaitStandby:
      return;  // OnEntries moves on
    case VerifyRun::Phase::kLocal: {
      if (!v.local->done()) return;
      auto mine = v.local->Take();
      v.local.reset();
      if (!mine.ok()) {
        Finish("failed", "manifest of this node: " + mine.status().ToString());
        return;
      }
      v.primary_entries = mine->size();
      v.standby_entries = v.standby.size();
      std::vector<ManifestDifference> now_diff =
          CompareManifests(std::move(mine).value(), std::move(v.standby));
      v.standby.clear();
      if (now_diff.empty()) {
        v.confirmed.clear();
        v.unsettled.clear();
        Finish("identical", "");
        return;
      }
      // A difference counts once it is the same in two rounds in a row: neither side's
      // entry changed although everything seen in between was acknowledged.
      std::vector<ManifestDifference> confirmed, unsettled;
      if (v.round >= 2) {
        size_t k = 0;
        for (auto& d : now_diff) {
          while (k < v.previous.size() && v.previous[k].path < d.path) ++k;
          bool same = k < v.previous.size() && v.previous[k].Same(d);
          (same ? confirmed : unsettled).push_back(std::move(d));
        }
      } else {
        unsettled = std::move(now_diff);
      }
      if (!confirmed.empty() || v.round >= v.max_rounds) {
        v.confirmed = std::move(confirmed);
        v.unsettled = std::move(unsettled);
        Finish(v.confirmed.empty() ? "inconclusive" : "differences", "");
        return;
      }
      v.previous = std::move(unsettled);
      v.phase = VerifyRun::Phase::kSettle;
      v.phase_since_ns = now;
      return;
    }
    case VerifyRun::Phase::kDone:
      return;
  }
}

Status VerifyRunner::OnEntries(const wire::ManifestEntries& m) {
  if (!verify_ || verify_->phase != VerifyRun::Phase::kAwaitStandby ||
      m.request_id != verify_->request_id) {
    return Status::Ok();  // an earlier run's late answer
  }
  VerifyRun& v = *verify_;
  if (v.standby.size() + m.entries.size() > kVerifyEntriesMax) {
    Finish("failed", fmt::format("the standby lists more than {} entries", kVerifyEntriesMax));
    return Status::Ok();
  }
  const std::vector<int> fds = owner_.RootFds();
  for (const auto& e : m.entries) {
    // The same checks as the resync's: a wire path names one of our roots.
    auto split = SplitWirePath(e.path, static_cast<uint32_t>(fds.size()));
    if (!split.ok()) return split.status().Annotate("verify manifest from the standby");
    v.standby.push_back(e);
  }
  if ((m.flags & wire::kManifestLast) == 0) return Status::Ok();
  v.local = std::make_unique<ManifestJob>(
      fds, kVerifyEntriesMax, v.background ? static_cast<int>(cfg_.anti_entropy.cpu_percent) : 0);
  v.phase = VerifyRun::Phase::kLocal;
  v.phase_since_ns = NowNs();
  return Status::Ok();
}

std::string VerifyRunner::ResultJson(uint64_t id, size_t offset) {
  using nlohmann::json;
  if (!verify_ || verify_->id != id) {
    return json{{"ok", false}, {"error", "no verify run " + std::to_string(id) + " on this node"}}
        .dump();
  }
  const VerifyRun& v = *verify_;
  json j{{"ok", true}, {"id", v.id}, {"round", v.round}, {"max_rounds", v.max_rounds}};
  if (v.phase != VerifyRun::Phase::kDone) {
    static constexpr const char* kPhases[] = {"waiting for a live session with the standby",
                                              "settling", "waiting for the standby's manifest",
                                              "hashing this node's tree", "done"};
    j["state"] = "running";
    j["phase"] = kPhases[static_cast<int>(v.phase)];
    return j.dump();
  }
  j["state"] = "done";
  j["outcome"] = v.outcome;
  j["repaired"] = v.repaired;
  j["background"] = v.background;
  if (!v.error.empty()) j["error"] = v.error;
  j["seconds"] = v.seconds;
  j["primary_entries"] = v.primary_entries;
  j["standby_entries"] = v.standby_entries;
  j["differences_total"] = v.confirmed.size();
  j["changing_total"] = v.unsettled.size();
  // One page of the differences, then of the changing paths, from `offset` in the two
  // lists taken end to end.
  json diffs = json::array(), changing = json::array();
  size_t bytes = 0, n = 0;
  for (size_t i = offset; i < v.confirmed.size() + v.unsettled.size(); ++i) {
    if (n >= kVerifyPageMax || bytes >= kVerifyPageBytes) break;
    const ManifestDifference& d =
        i < v.confirmed.size() ? v.confirmed[i] : v.unsettled[i - v.confirmed.size()];
    (i < v.confirmed.size() ? diffs : changing).push_back(DifferenceJson(d));
    bytes += d.path.size() + d.what.size() + 32;
    ++n;
  }
  j["offset"] = offset;
  j["next_offset"] = offset + n;
  j["differences"] = diffs;
  j["changing"] = changing;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void VerifyRunner::Tick(int64_t now, bool live) {
  if (verify_ && verify_->phase != VerifyRun::Phase::kDone) Step(now);
  if (cfg_.anti_entropy.interval_ms > 0 && live) {
    if (next_pass_ns_ == 0) next_pass_ns_ = now + cfg_.anti_entropy.interval_ms * 1'000'000;
    const bool idle = !verify_ || verify_->phase == VerifyRun::Phase::kDone;
    if (idle && now >= next_pass_ns_ && now - operator_verify_done_ns_ >= kOperatorResultKeptNs) {
      StartAntiEntropyPass(now);
    }
  }
}

// Standby: the primary's verify request; the manifest is built on a thread of its own
// and sent from the loop once complete (StepStandbyManifest).
Status VerifyRunner::StartStandbyManifest(const wire::ManifestRequest& request) {
  if (!request.root.empty()) {
    return InvalidArgument("MANIFEST_REQUEST for a subtree is not supported by this version");
  }
  const std::vector<int> fds = owner_.RootFds();
  verify_job_.reset();  // a newer request replaces one in progress
  // An anti-entropy pass's request: the walk keeps to the background CPU budget.
  const bool background = (request.request_id & kBackgroundRequestFlag) != 0;
  verify_job_ = std::make_unique<ManifestJob>(
      fds, kVerifyEntriesMax, background ? static_cast<int>(cfg_.anti_entropy.cpu_percent) : 0);
  verify_job_request_ = request.request_id;
  verify_job_peer_ = owner_.session_peer();
  Log(Level::kInfo, "verify_manifest").kv("phase", "begin").kv("request", request.request_id);
  return Status::Ok();
}

void VerifyRunner::StepStandbyManifest() {
  if (!verify_job_ || !verify_job_->done()) return;
  auto entries = verify_job_->Take();
  verify_job_.reset();
  const Peer* asker = owner_.session_peer();
  if (asker == nullptr || asker->dead || asker != verify_job_peer_) return;  // asker gone
  if (!entries.ok()) {
    // The primary's run times out and says to look here.
    Log(Level::kError, "verify_manifest")
        .kv("phase", "failed")
        .kv("error", entries.status().ToString());
    return;
  }
  Log(Level::kInfo, "verify_manifest")
      .kv("phase", "sent")
      .kv("request", verify_job_request_)
      .kv("entries", static_cast<uint64_t>(entries->size()));
  Status s = owner_.SendManifest(verify_job_request_, *entries);
  if (!s.ok()) owner_.EndSession(s);
}

}  // namespace hasync::engine
