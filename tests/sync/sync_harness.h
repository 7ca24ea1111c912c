// Test support: a primary Sender and a standby Receiver wired back to back in memory.
// Every message goes through the real frame codec (encode → bytes → decode), so the
// bytes counted are what a connection would carry (before TLS).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "engine/apply/tree.h"
#include "engine/journal/journal.h"
#include "engine/sync/receiver.h"
#include "engine/sync/sender.h"
#include "tests/support/tree_compare.h"
#include "wire/frame.h"

namespace hasync::testing {

// File helpers shared by the sync tests: read(2) rather than streams (g++-12 warns
// falsely on istreambuf_iterator with -Wnull-dereference).
inline std::string ReadFile(const std::string& path) {
  std::string out;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}
// n bytes from a seeded generator: the same seed gives the same content.
inline std::string Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class CodecLoop : public engine::MessageSink {
 public:
  // Called after each message is queued, with the decoded message: lets a test act at a
  // precise point of the sender's work (e.g. change a file right after its FILE_BEGIN).
  using Hook = std::function<void(uint64_t seq, const wire::Message&)>;

  Status Emit(uint64_t seq, wire::Message message) override {
    std::vector<std::byte> bytes = wire::EncodeFrame(wire::Frame{1, seq, std::move(message)});
    bytes_ += bytes.size();
    auto frame = wire::DecodeFrame(bytes);
    if (!frame.ok()) return frame.status();
    if (const auto* ext = std::get_if<wire::Extent>(&frame->message))
      extent_bytes_ += ext->data.size();
    ++counts_[wire::TypeOf(frame->message)];
    queue_.emplace_back(frame->seq, std::move(frame->message));
    if (hook_) hook_(queue_.back().first, queue_.back().second);
    return Status::Ok();
  }
  void set_hook(Hook hook) { hook_ = std::move(hook); }
  // Calls of Progress (the sender's "still working" during a long walk) since the last
  // ResetCounters.
  Status Progress() override {
    ++progress_calls_;
    return Status::Ok();
  }
  uint64_t progress_calls() const { return progress_calls_; }

  // Splicing as a plain-mode data stream does it: an extent names the file, and its bytes
  // are taken from the file only later, when the sender waits for them (WaitSpliced).
  void set_splice(bool on) { splice_ = on; }
  bool Splices(uint64_t /*seq*/) override { return splice_; }
  Status EmitSpliced(uint64_t seq, uint64_t file_size, uint64_t offset, uint32_t length,
                     std::shared_ptr<const UniqueFd> file) override {
    spliced_.push_back(Spliced{seq, file_size, offset, length, std::move(file)});
    ++spliced_extents_;
    return Status::Ok();
  }
  Status WaitSpliced() override {
    for (Spliced& s : spliced_) {
      std::vector<std::byte> data(s.length);  // zeros past a shrunk file's end
      ssize_t n = pread(s.file->get(), data.data(), data.size(), static_cast<off_t>(s.offset));
      if (n < 0) return Status(Code::kInternal, "pread for a spliced extent");
      RETURN_IF_ERROR(Emit(s.seq, wire::Extent{s.file_size, s.offset, std::move(data)}));
    }
    spliced_.clear();
    return Status::Ok();
  }
  uint64_t spliced_extents() const { return spliced_extents_; }
  // Messages of `type` emitted since the last ResetCounters.
  uint64_t count(wire::MessageType type) const {
    auto it = counts_.find(type);
    return it == counts_.end() ? 0 : it->second;
  }
  bool empty() const { return queue_.empty(); }
  std::pair<uint64_t, wire::Message> Pop() {
    auto front = std::move(queue_.front());
    queue_.pop_front();
    return front;
  }
  uint64_t bytes() const { return bytes_; }
  uint64_t extent_bytes() const { return extent_bytes_; }
  void ResetCounters() {
    bytes_ = extent_bytes_ = progress_calls_ = 0;
    counts_.clear();
  }

 private:
  struct Spliced {
    uint64_t seq, file_size, offset;
    uint32_t length;
    std::shared_ptr<const UniqueFd> file;
  };
  std::deque<std::pair<uint64_t, wire::Message>> queue_;
  std::vector<Spliced> spliced_;
  bool splice_ = false;
  uint64_t spliced_extents_ = 0;
  std::map<wire::MessageType, uint64_t> counts_;
  Hook hook_;
  uint64_t bytes_ = 0;
  uint64_t extent_bytes_ = 0;
  uint64_t progress_calls_ = 0;
};

class SyncPair {
 public:
  explicit SyncPair(const std::string& tag) {
    primary_dir_ = MakeDir(tag + "-p");
    standby_dir_ = MakeDir(tag + "-s");
  }
  ~SyncPair() {
    receiver_.reset();
    sender_.reset();
    tree_.reset();
    std::filesystem::remove_all(primary_dir_);
    std::filesystem::remove_all(standby_dir_);
  }

  const std::string& primary() const { return primary_dir_; }
  const std::string& standby() const { return standby_dir_; }
  engine::Journal& journal() { return journal_; }
  engine::Sender& sender() { return *sender_; }
  engine::Receiver& receiver() { return *receiver_; }
  CodecLoop& to_standby() { return to_standby_; }
  CodecLoop& to_primary() { return to_primary_; }
  uint64_t nacks() const { return nacks_; }
  const std::string& last_nack() const { return last_nack_; }
  // The receiver commits on its committer thread (the node's mode); Drain reaps each
  // background commit once nothing else is left to deliver, as the node's eventfd does.
  // Call before Start().
  void SetPipelined(bool on) { pipelined_ = on; }
  // The standby's tree syncs through `fs` (fault injection). Call before Start().
  void SetStandbyFs(engine::apply::FsOps* fs) { standby_fs_ = fs; }
  // Replaces the (empty) journal with one bounded by `limits`, to provoke overflow.
  void SetJournalLimits(engine::JournalLimits limits) { journal_ = engine::Journal(limits, 1); }

  // (Re)starts both ends: a fresh sender (empty model) and a fresh receiver.
  void Start(engine::SenderOptions options = {}) {
    receiver_.reset();
    sender_.reset();
    tree_.reset();
    primary_fd_ = UniqueFd(open(primary_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(primary_fd_.valid());
    auto tree = engine::apply::Tree::Open(standby_dir_, {}, standby_fs_);
    ASSERT_TRUE(tree.ok()) << tree.status().ToString();
    tree_ = std::make_unique<engine::apply::Tree>(std::move(tree).value());
    sender_ =
        std::make_unique<engine::Sender>(std::vector<int>{primary_fd_.get()}, options, to_standby_);
    receiver_ = std::make_unique<engine::Receiver>(std::vector<engine::apply::Tree*>{tree_.get()},
                                                   to_primary_);
    if (pipelined_) {
      Status s = receiver_->EnablePipeline();
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }

  // Manifest exchange and resync, as after a connect.
  void InitialSync() {
    sender_->BeginManifest();
    Status manifest = receiver_->OnMessage(0, wire::ManifestRequest{1, ""});
    ASSERT_TRUE(manifest.ok()) << manifest.ToString();
    Drain();
    auto pending = sender_->RequestResyncBlocks();
    ASSERT_TRUE(pending.ok()) << pending.status().ToString();
    Drain();  // the standby answers; Drain hands the replies to the sender
    Status resync = sender_->Resync();
    ASSERT_TRUE(resync.ok()) << resync.ToString();
    Drain();
  }

  // Ships everything in the journal and delivers it.
  void Ship() {
    for (int round = 0; round < 10'000; ++round) {
      Status s = sender_->Pump(journal_);
      ASSERT_TRUE(s.ok()) << s.ToString();
      Drain();
      if (journal_.empty() && !sender_->backpressured() && !sender_->has_open_batch()) return;
    }
    FAIL() << "journal did not drain";
  }

  // Data streams as the nodes use them (docs/PROTOCOL.md §6): the content of files of at
  // least min_bytes goes to one of `streams` simulated data streams (round robin per
  // file), everything else to the control stream; Drain then delivers from the control
  // stream and the data streams in an order drawn from `seed`, as far as the receiver
  // lets each go on (a control stream waiting for data, a data stream ahead of its
  // FILE_BEGIN). Files of at least stripe_bytes spread their extents over all streams
  // (round robin per extent), as the primary does in TLS mode. Call after Start().
  void UseDataStreams(size_t streams, uint64_t min_bytes, uint32_t seed,
                      uint64_t stripe_bytes = UINT64_MAX) {
    data_streams_.assign(streams, {});
    data_min_bytes_ = min_bytes;
    data_stripe_bytes_ = stripe_bytes;
    order_.seed(seed);
    receiver_->set_data_streams(true);
  }
  uint64_t data_stream_frames() const { return data_stream_frames_; }

  // Delivers every queued message both ways until both queues are empty.
  void Drain() {
    for (int round = 0; round < 1'000'000 && !(to_standby_.empty() && to_primary_.empty() &&
                                               !receiver_->commit_pending());
         ++round) {
      if (to_standby_.empty() && to_primary_.empty()) {
        Status s = receiver_->FinishPending();  // the committer's event
        ASSERT_TRUE(s.ok()) << "receiver: " << s.ToString();
      }
      if (!data_streams_.empty()) {
        DeliverThroughDataStreams();
        if (::testing::Test::HasFatalFailure()) return;
      }
      while (!to_standby_.empty()) {
        auto [seq, msg] = to_standby_.Pop();
        Status s = receiver_->OnMessage(seq, msg);
        ASSERT_TRUE(s.ok()) << "receiver: " << s.ToString();
      }
      while (!to_primary_.empty()) {
        auto [seq, msg] = to_primary_.Pop();
        if (auto* ack = std::get_if<wire::Ack>(&msg)) {
          ASSERT_TRUE(sender_->OnAck(*ack).ok());
        } else if (auto* nack = std::get_if<wire::Nack>(&msg)) {
          ++nacks_;
          last_nack_ = nack->message;
        } else if (auto* blocks = std::get_if<wire::BlocksReply>(&msg)) {
          ASSERT_TRUE(sender_->AddBlocks(*blocks).ok());
        } else if (auto* entries = std::get_if<wire::ManifestEntries>(&msg)) {
          for (const auto& e : entries->entries) ASSERT_TRUE(sender_->AddManifestEntry(e).ok());
        }
      }
    }
  }

  void DeliverThroughDataStreams() {
    using Item = std::pair<uint64_t, wire::Message>;
    while (!to_standby_.empty()) {
      Item item = to_standby_.Pop();
      if (const auto* b = std::get_if<wire::FileBegin>(&item.second)) {
        route_seq_ = b->size >= data_min_bytes_ ? item.first : 0;
        route_stripe_ = b->size >= data_stripe_bytes_;
        if (route_seq_ != 0) route_to_ = next_stream_++ % data_streams_.size();
      }
      bool range = std::holds_alternative<wire::Extent>(item.second) ||
                   std::holds_alternative<wire::Hole>(item.second);
      if (range && item.first != 0 && item.first == route_seq_) {
        if (route_stripe_) route_to_ = next_stream_++ % data_streams_.size();
        data_streams_[route_to_].push_back(std::move(item));
        ++data_stream_frames_;
      } else {
        control_.push_back(std::move(item));
      }
    }
    // A data stream whose head waits for its FILE_BEGIN is blocked until the control
    // stream moves; the control stream while the receiver waits for data.
    std::vector<bool> blocked(data_streams_.size(), false);
    for (int step = 0; step < 10'000'000; ++step) {
      std::vector<size_t> ready;  // index data_streams_.size() = the control stream
      for (size_t k = 0; k < data_streams_.size(); ++k) {
        if (!data_streams_[k].empty() && !blocked[k]) ready.push_back(k);
      }
      if (!control_.empty() && !receiver_->waiting_for_data())
        ready.push_back(data_streams_.size());
      if (ready.empty()) {
        bool all_empty = control_.empty();
        for (const auto& q : data_streams_) all_empty = all_empty && q.empty();
        ASSERT_TRUE(all_empty) << "data streams deadlocked: the control stream "
                               << (receiver_->waiting_for_data() ? "waits for data" : "is empty")
                               << " and every data stream waits for a FILE_BEGIN";
        return;
      }
      size_t pick = ready[order_() % ready.size()];
      if (pick == data_streams_.size()) {
        Item item = std::move(control_.front());
        control_.pop_front();
        Status s = receiver_->OnMessage(item.first, item.second);
        ASSERT_TRUE(s.ok()) << "receiver (control): " << s.ToString();
        blocked.assign(blocked.size(), false);
      } else {
        auto& q = data_streams_[pick];
        auto verdict = receiver_->OnData(q.front().first, q.front().second);
        ASSERT_TRUE(verdict.ok()) << "receiver (data): " << verdict.status().ToString();
        if (*verdict == engine::Receiver::DataVerdict::kNotYet) {
          blocked[pick] = true;
        } else {
          q.pop_front();
        }
      }
    }
    FAIL() << "data stream delivery did not finish";
  }

  TreeDiff Compare(const CompareOptions& options = {}) const {
    return CompareTrees(primary_dir_, standby_dir_, options);
  }

 private:
  static std::string MakeDir(const std::string& tag) {
    std::string tmpl = "/var/tmp/hasync-" + tag + "-XXXXXX";
    char* p = mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    return tmpl;
  }

  std::string primary_dir_, standby_dir_;
  UniqueFd primary_fd_;
  std::unique_ptr<engine::apply::Tree> tree_;
  bool pipelined_ = false;
  engine::apply::FsOps* standby_fs_ = nullptr;
  CodecLoop to_standby_, to_primary_;
  std::unique_ptr<engine::Sender> sender_;
  std::unique_ptr<engine::Receiver> receiver_;
  engine::Journal journal_{{}, 1};
  uint64_t nacks_ = 0;
  std::string last_nack_;
  // UseDataStreams.
  std::vector<std::deque<std::pair<uint64_t, wire::Message>>> data_streams_;
  std::deque<std::pair<uint64_t, wire::Message>> control_;
  uint64_t data_min_bytes_ = 0;
  uint64_t data_stripe_bytes_ = UINT64_MAX;
  bool route_stripe_ = false;
  uint64_t route_seq_ = 0;
  size_t route_to_ = 0;
  size_t next_stream_ = 0;
  uint64_t data_stream_frames_ = 0;
  std::mt19937_64 order_;
};

}  // namespace hasync::testing
