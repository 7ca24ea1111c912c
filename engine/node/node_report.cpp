#include "engine/node/node_report.h"

#include "engine/log.h"

namespace hasync::engine {

namespace {

// The quarantined-files gauge: recounted this often, counting at most this many.
constexpr int64_t kQuarantineCountNs = 10'000'000'000;
constexpr uint64_t kQuarantineCountMax = 100'000;
constexpr int64_t kOverflowLogNs = 10'000'000'000;

}  // namespace

void MetricsPublisher::Publish(int64_t now, const NodeParts& parts) {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  Metrics& m = metrics_;
  m.role.store(static_cast<int64_t>(parts.role), kRelaxed);
  m.epoch.store(static_cast<int64_t>(parts.epoch), kRelaxed);
  m.changing_role.store(parts.changing_role ? 1 : 0, kRelaxed);
  m.peer_connected.store(parts.peer_connected ? 1 : 0, kRelaxed);
  m.verdict.store(parts.detector ? static_cast<int64_t>(parts.detector->Judge(now)) : -1, kRelaxed);
  if (parts.sender) {
    const SenderStats& st = parts.sender->stats();
    mirrors_.files_sent.Update(m.files_sent, st.files_sent);
    mirrors_.bytes_sent.Update(m.bytes_sent, st.file_bytes_sent);
    const uint64_t sent = parts.sender->last_seq(), acked = parts.sender->acked_seq();
    m.unacked_changes.store(static_cast<int64_t>(sent >= acked ? sent - acked : 0), kRelaxed);
    m.unacked_batches.store(static_cast<int64_t>(parts.sender->unacked_batches()), kRelaxed);
  } else {
    m.unacked_changes.store(0, kRelaxed);
    m.unacked_batches.store(0, kRelaxed);
  }
  m.journal_pending.store(parts.journal ? static_cast<int64_t>(parts.journal->size()) : 0,
                          kRelaxed);
  if (parts.journal) {
    overflows_journal_ +=
        mirrors_.journal_overflows.Update(m.overflow_rescans, parts.journal->stats().overflows);
  }
  if (parts.watcher) {
    overflows_kernel_ += mirrors_.watch_overflows.Update(
        m.overflow_rescans, parts.watcher->stats().translator.overflows);
  }
  // Changes were lost track of and a rescan replaces them: said at once, then at most
  // every kOverflowLogNs with the count since (a writer that outruns the queue for
  // minutes must not flood the log).
  if ((overflows_journal_ + overflows_kernel_ > 0) &&
      (overflow_logged_ns_ == 0 || now - overflow_logged_ns_ >= kOverflowLogNs)) {
    overflow_logged_ns_ = now;
    Log(Level::kWarn, "overflow_rescan")
        .kv("kernel_queue", overflows_kernel_)
        .kv("journal", overflows_journal_)
        .kv("action",
            "rescanning the sync roots: changes came faster than they could be "
            "tracked one by one");
    overflows_journal_ = overflows_kernel_ = 0;
  }
  if (parts.receiver) {
    const ReceiverStats& st = parts.receiver->stats();
    mirrors_.files_applied.Update(m.files_applied, st.files_applied);
    mirrors_.bytes_applied.Update(m.bytes_applied, st.bytes_applied);
    mirrors_.batches_applied.Update(m.batches_applied, st.batches_acked);
  }
  if (parts.probe) {
    Probe::Result p = parts.probe->Latest();
    const size_t k = static_cast<size_t>(HookKind::kProbe);
    mirrors_.probe_runs.Update(m.hook_runs[k], p.runs);
    mirrors_.probe_failures.Update(m.hook_failures[k], p.failures);
  }
  // The quarantine is walked (bounded) every few seconds, not every tick.
  if (quarantine_counted_ns_ == 0 || now - quarantine_counted_ns_ >= kQuarantineCountNs) {
    quarantine_counted_ns_ = now;
    m.quarantined_files.store(
        static_cast<int64_t>(CountQuarantined(state_dir_, kQuarantineCountMax)), kRelaxed);
  }
}

void LogSessionStats(std::string_view why, const Sender* sender, const Receiver* receiver) {
  if (sender) {
    const SenderStats& st = sender->stats();
    Log(Level::kInfo, "sender_stats")
        .kv("why", why)
        .kv("files", st.files_sent)
        .kv("bytes", st.file_bytes_sent)
        .kv("links", st.links_sent)
        .kv("deltas", st.deltas_sent)
        .kv("unchanged", st.unchanged_skipped)
        .kv("aborted", st.aborted_reads)
        .kv("removes_deferred", st.removes_deferred)
        .kv("names_rechecked", st.names_rechecked)
        .kv("event_inodes_rechecked", st.event_inodes_rechecked)
        .kv("links_split", st.links_split)
        .kv("batches", st.batches)
        .kv("acked_seq", sender->acked_seq());
  }
  if (receiver) {
    const ReceiverStats& st = receiver->stats();
    Log(Level::kInfo, "receiver_stats")
        .kv("why", why)
        .kv("files", st.files_applied)
        .kv("bytes", st.bytes_applied)
        .kv("acked", st.batches_acked)
        .kv("nacked", st.batches_nacked)
        .kv("last_applied_seq", receiver->last_applied_seq());
  }
}

}  // namespace hasync::engine
