// Sender: batches and acknowledgements, the resync against the standby's manifest, and
// the live changes (upserts, removals, renames, rescans) with the model kept in step.
// What ships for one file version is decided and sent in sender_content.cpp.
#include "engine/sync/sender.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <ctime>

#include "engine/apply/policy.h"
#include "engine/apply/resolve.h"
#include "engine/log.h"
#include "engine/sync/xattrs.h"
#include "wire/limits.h"
#include "wire/path.h"

namespace hasync::engine {

namespace {

int64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string ParentOf(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(path.substr(0, slash));
}

NodeKind FromWire(wire::EntryKind kind) {
  switch (kind) {
    case wire::EntryKind::kFile:
      return NodeKind::kFile;
    case wire::EntryKind::kDirectory:
      return NodeKind::kDirectory;
    case wire::EntryKind::kSymlink:
      return NodeKind::kSymlink;
  }
  return NodeKind::kFile;
}

}  // namespace

std::string WirePath(uint32_t root, std::string_view path) {
  std::string out = std::to_string(root);
  if (!path.empty()) {
    out += '/';
    out += path;
  }
  return out;
}

Result<std::pair<uint32_t, std::string>> SplitWirePath(std::string_view wire_path,
                                                       uint32_t root_count) {
  size_t slash = wire_path.find('/');
  std::string_view head = wire_path.substr(0, slash);
  uint32_t root = 0;
  auto [ptr, ec] = std::from_chars(head.data(), head.data() + head.size(), root);
  if (ec != std::errc() || ptr != head.data() + head.size() || head.empty() ||
      (head.size() > 1 && head[0] == '0')) {
    return InvalidArgument("wire path does not start with a sync root index: " +
                           std::string(wire_path.substr(0, 64)));
  }
  if (root >= root_count) {
    return InvalidArgument("wire path names sync root " + std::to_string(root) + " but " +
                           std::to_string(root_count) + " are configured");
  }
  std::string rest =
      slash == std::string_view::npos ? std::string() : std::string(wire_path.substr(slash + 1));
  return std::make_pair(root, std::move(rest));
}

Sender::Sender(std::vector<int> root_fds, SenderOptions options, MessageSink& sink)
    : root_fds_(std::move(root_fds)),
      options_(options),
      sink_(sink),
      model_(root_fds_.size()),
      reader_(FileReader::Create(options_.io_uring_reads)) {
  HASYNC_ASSERT(!root_fds_.empty());
  HASYNC_ASSERT(options_.block_size >= wire::kBlockSizeMin &&
                options_.block_size <= wire::kExtentDataMax);
}

size_t Sender::tracked() const {
  size_t n = 0;
  for (const Model& m : model_) n += m.size();
  return n;
}

uint64_t Sender::unacked_bytes() const {
  uint64_t total = batch_bytes_;
  for (const Inflight& f : inflight_) total += f.bytes;
  return total;
}

bool Sender::backpressured() const {
  return inflight_.size() >= options_.max_unacked_batches ||
         unacked_bytes() >= options_.max_unacked_bytes;
}

// ---- emitting ----------------------------------------------------------------------------

void Sender::NoteTouched(const std::string& wire_path) {
  if (batch_touched_.size() < options_.max_batch_changes * 2u) {
    batch_touched_.insert(wire_path);
  } else {
    touched_overflow_ = true;  // bounded: past this every path counts as touched
  }
}

bool Sender::TouchedInBatch(uint32_t root, const std::string& path) const {
  if (batch_changes_ == 0) return false;
  if (touched_overflow_) return true;
  // The path and each ancestor, as the standby's Batch::TouchedEarlier looks them up.
  std::string p = WirePath(root, path);
  const size_t root_len = WirePath(root, "").size();
  for (size_t pass = 0; pass <= path.size() && p.size() > root_len; ++pass) {
    if (batch_touched_.count(p) != 0) return true;
    p.resize(p.rfind('/'));
  }
  return false;
}

Status Sender::EmitChange(wire::Message message, uint64_t content_bytes) {
  // What the standby's batch records as a namespace change (Batch::NoteNamespace): a
  // block patch of such a path, or below it, must wait for the next batch.
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, wire::Mkdir> || std::is_same_v<T, wire::Rmdir> ||
                      std::is_same_v<T, wire::Unlink> || std::is_same_v<T, wire::Symlink>) {
          NoteTouched(m.path);
        } else if constexpr (std::is_same_v<T, wire::Rename>) {
          NoteTouched(m.from);
          NoteTouched(m.to);
        } else if constexpr (std::is_same_v<T, wire::Link>) {
          NoteTouched(m.new_path);
        }
      },
      message);
  uint64_t seq = next_seq_++;
  if (LogEnabled(Level::kDebug)) {
    // Each namespace change as sent: with the watcher's watch_event lines, enough to
    // replay why the standby refused a batch.
    std::visit(
        [&](const auto& m) {
          using T = std::decay_t<decltype(m)>;
          LogLine line = Log(Level::kDebug, "change");
          line.kv("seq", seq).kv("op", T::kName);
          if constexpr (requires { m.from; }) line.kv("from", m.from).kv("to", m.to);
          if constexpr (requires { m.existing_path; }) {
            line.kv("from", m.existing_path).kv("to", m.new_path);
          }
          if constexpr (requires { m.path; }) line.kv("path", m.path);
        },
        message);
  }
  RETURN_IF_ERROR(sink_.Emit(seq, std::move(message)));
  ++batch_changes_;
  batch_bytes_ += content_bytes;
  return MaybeCommit();
}

Status Sender::MaybeCommit() {
  if (batch_opened_ns_ == 0) batch_opened_ns_ = MonotonicNs();
  if (batch_changes_ >= options_.max_batch_changes || batch_bytes_ >= options_.max_batch_bytes) {
    return Flush();
  }
  return Status::Ok();
}

Status Sender::Flush() {
  if (batch_changes_ == 0) return Status::Ok();
  uint64_t last = next_seq_ - 1;
  RETURN_IF_ERROR(sink_.Emit(0, wire::Commit{last, batch_changes_}));
  inflight_.push_back(
      {last, batch_bytes_, batch_opened_ns_ != 0 ? batch_opened_ns_ : MonotonicNs()});
  ++stats_.batches;
  batch_opened_ns_ = 0;
  batch_changes_ = 0;
  batch_bytes_ = 0;
  batch_touched_.clear();
  touched_overflow_ = false;
  return Status::Ok();
}

Status Sender::OnAck(const wire::Ack& ack) {
  if (ack.seq >= next_seq_) {
    return InvalidArgument("ACK for seq " + std::to_string(ack.seq) + " beyond last sent " +
                           std::to_string(next_seq_ - 1));
  }
  if (!ack.durable) return Status::Ok();
  if (ack.seq > acked_seq_) acked_seq_ = ack.seq;
  const int64_t now = on_durable_ ? MonotonicNs() : 0;
  std::erase_if(inflight_, [&](const Inflight& f) {
    if (f.last_seq > acked_seq_) return false;
    if (on_durable_) on_durable_(now - f.opened_ns);
    return true;
  });
  return Status::Ok();
}

// ---- resync ------------------------------------------------------------------------------

void Sender::BeginManifest() {
  for (Model& m : model_) m.clear();
  read_retries_.clear();
  standby_links_.assign(model_.size(), {});
}

Status Sender::AddManifestEntry(const wire::ManifestEntry& entry) {
  ASSIGN_OR_RETURN(auto split, SplitWirePath(entry.path, static_cast<uint32_t>(model_.size())));
  // The standby's walk never lists its own temporaries; a manifest that does would make
  // the resync plan a change of a reserved name, which the standby refuses every time.
  if (apply::HasReservedComponent(split.second)) {
    return InvalidArgument("manifest entry in the reserved temporary namespace: " +
                           wire::Printable(entry.path));
  }
  // A sync root is a directory on both nodes by configuration; taken as anything else,
  // the resync would plan to remove the root itself, which the standby refuses.
  if (split.second.empty() && entry.kind != wire::EntryKind::kDirectory) {
    return InvalidArgument("manifest lists sync root " + entry.path + " as a non-directory");
  }
  Entry e;
  e.kind = FromWire(entry.kind);
  e.mode = Entry::Mode(entry.mode);
  model_[split.first].SetOwner(e, entry.uid, entry.gid);
  e.size = entry.size;
  e.mtime_ns = entry.mtime_ns;
  e.hash = entry.hash;
  // What the standby holds beyond the content: its xattrs (so the resync removes the
  // ones the primary does not have) and which of its names share an inode.
  if (entry.xattr_hash != 0) e.set_xattrs(entry.xattr_hash, SplitXattrNames(entry.xattr_names));
  if (entry.link_id != 0 && e.kind == NodeKind::kFile) {
    if (standby_links_.size() != model_.size()) standby_links_.assign(model_.size(), {});
    auto& names = standby_links_[split.first][entry.link_id];
    // Bounded: each name of a group looks at the others. Names past the bound count as
    // alone there (at worst they are linked again, a no-op on the standby).
    if (names.size() < kMaxLinkGroupNames) {
      e.set_standby_link(entry.link_id);
      names.push_back(split.second);
    }
  }
  model_[split.first].Put(split.second, std::move(e));
  return Status::Ok();
}

std::vector<std::string> Sender::StandbyLinked(uint32_t root, const std::string& path,
                                               uint64_t link) {
  std::vector<std::string> out;
  if (link == 0 || root >= standby_links_.size()) return out;
  auto group = standby_links_[root].find(link);
  if (group == standby_links_[root].end()) return out;
  Model& m = model_[root];
  for (const std::string& name : group->second) {
    if (name == path) continue;
    auto it = m.find(name);
    // Names re-sent or relinked since carry another value (or none) now.
    if (it != m.end() && it->second.kind == NodeKind::kFile && it->second.standby_link() == link) {
      out.push_back(name);
    }
  }
  return out;
}

Status Sender::Distrust(const std::string& wire_path, const wire::ManifestEntry* standby_entry) {
  if (standby_entry != nullptr) return AddManifestEntry(*standby_entry);  // the same checks
  ASSIGN_OR_RETURN(auto split, SplitWirePath(wire_path, static_cast<uint32_t>(model_.size())));
  if (!split.second.empty()) model_[split.first].Forget(split.second);
  return Status::Ok();
}

Result<size_t> Sender::RequestResyncBlocks() {
  block_requests_.clear();
  uint64_t next_id = 2;  // 1 is the manifest request
  for (uint32_t root = 0; root < model_.size(); ++root) {
    Model& m = model_[root];
    Status walk = ScanTree(
        root_fds_[root], "", {},
        [&](const FileInfo& info) {
          // A walk of a million-file spool takes longer than the standby's silence
          // bound: the session's beat and keepalive go on from inside it.
          RETURN_IF_ERROR(sink_.Progress());
          if (info.kind != NodeKind::kFile || info.size < options_.delta_min_bytes)
            return Status::Ok();
          if (block_requests_.size() >= kMaxResyncBlockRequests) return Status::Ok();
          auto it = m.find(info.path);
          if (it == m.end() || it->second.kind != NodeKind::kFile || it->second.size == 0 ||
              it->second.ino() != 0) {
            return Status::Ok();
          }
          const Entry& e = it->second;
          if (e.size == info.size && e.mtime_ns == info.mtime_ns)
            return Status::Ok();  // likely same
          uint64_t id = next_id++;
          block_requests_[id] = {root, info.path};
          ++stats_.resync_block_requests;
          return sink_.Emit(
              0, wire::BlocksRequest{id, options_.block_size, WirePath(root, info.path)});
        },
        nullptr);
    RETURN_IF_ERROR(walk);
  }
  return block_requests_.size();
}

Result<bool> Sender::AddBlocks(const wire::BlocksReply& reply) {
  auto it = block_requests_.find(reply.request_id);
  if (it == block_requests_.end()) {
    return InvalidArgument("BLOCKS_REPLY for unknown request " + std::to_string(reply.request_id));
  }
  auto entry = model_[it->second.first].find(it->second.second);
  bool usable = entry != model_[it->second.first].end() &&
                reply.block_size == options_.block_size && !(reply.flags & wire::kBlocksMissing) &&
                reply.file_size == entry->second.size;
  if (usable) {
    if (reply.first_block != entry->second.blocks().size()) {
      return InvalidArgument("BLOCKS_REPLY out of order for " + it->second.second);
    }
    entry->second.append_blocks(reply.hashes);
  } else if (entry != model_[it->second.first].end()) {
    entry->second.set_blocks({});  // ship that file whole
  }
  bool last = (reply.flags & wire::kBlocksLast) != 0;
  if (last) {
    if (usable) {
      uint64_t expect = (entry->second.size + options_.block_size - 1) / options_.block_size;
      if (entry->second.blocks().size() != expect) entry->second.set_blocks({});
    }
    block_requests_.erase(it);
  }
  return last;
}

Status Sender::Resync(Journal* live) {
  live_ = live;
  struct ClearLive {
    Journal*& live;
    ~ClearLive() { live = nullptr; }
  } clear_live{live_};
  RETURN_IF_ERROR(sink_.Emit(0, wire::ResyncBegin{}));
  for (uint32_t root = 0; root < model_.size(); ++root) {
    RETURN_IF_ERROR(RescanSubtree(root, "", nullptr, live));
  }
  RETURN_IF_ERROR(Flush());
  standby_links_.clear();  // only the manifest's moment is described by them
  return sink_.Emit(0, wire::ResyncEnd{next_seq_ - 1});
}

// ---- live changes ------------------------------------------------------------------------

Status Sender::Pump(Journal& journal) {
  live_ = &journal;
  struct ClearLive {
    Journal*& live;
    ~ClearLive() { live = nullptr; }
  } clear_live{live_};
  std::vector<Change> one;
  while (!backpressured()) {
    one.clear();
    if (journal.Take(one, 1) == 0) {
      // Idle: commit the open batch now, unless enough batches are already on their way.
      // Then it keeps growing until an ACK (which pumps again) or a batch limit closes
      // it, so under load the standby makes fewer, larger batches durable (one round of
      // fsyncs each) instead of falling behind on many small ones.
      if (inflight_.size() < options_.max_inflight_commits) return Flush();
      return Status::Ok();
    }
    RETURN_IF_ERROR(Apply(one.front(), journal));
  }
  return Status::Ok();
}

Status Sender::Apply(const Change& change, Journal& journal) {
  applying_ = &change;
  event_object_checked_ = false;
  struct ClearApplying {
    const Change*& applying;
    ~ClearApplying() { applying = nullptr; }
  } clear_applying{applying_};
  switch (change.kind) {
    case ChangeKind::kUpsert:
      return Upsert(change.root, change.path, &journal);
    case ChangeKind::kRemove: {
      // If the name exists again on the primary (re-created since: Slurm's unlink X then
      // link X.new X), replace it on the standby instead of removing it: publishing is
      // atomic, so the name never goes missing there, while an unlink now would leave a
      // gap until the queued Upsert arrives, visible to a reader of the standby.
      auto now = StatPath(root_fds_[change.root], change.path);
      if (now.ok()) {
        // A directory the standby holds went away with everything below it; what is
        // there now must be compared whole, or the old children stay on the standby.
        auto held = model_[change.root].find(change.path);
        if (held != model_[change.root].end() && held->second.kind == NodeKind::kDirectory) {
          return RescanSubtree(change.root, change.path, &journal, &journal);
        }
        return Upsert(change.root, change.path, &journal);
      }
      RETURN_IF_ERROR(RecheckEventInode(change.root, change.path, -1));
      return RemoveUnlessNamedLater(change.root, change.path, &journal);
    }
    case ChangeKind::kRename:
      return Rename(change.root, change.from, change.path, journal);
    case ChangeKind::kRescan:
      // A merged event of one name: the inode it was about may have other names.
      if (!change.path.empty()) RETURN_IF_ERROR(RecheckEventInode(change.root, change.path, -1));
      return RescanSubtree(change.root, change.path, &journal, &journal);
  }
  return Status::Ok();
}

// `path` was missing when the sender looked. If a later journal entry names it
// (re-created, removed again, renamed, or under a pending rescan), the name came back on
// the primary after this removal, so the removal is not its last word: the standby keeps
// the name until that entry is handled. Removing it now could, together with the removal
// of another name that was missing at another moment, show the standby a state the
// primary never had (Slurm: neither X nor X.old). The watcher is drained first, so
// "later" covers everything that happened before the stat.
// An event named `path`, and the name does not exist now. If the standby holds it, it
// goes there too — unless a later journal entry names it again (then that entry has the
// last word). This is what keeps a file unlinked while still open from coming back: its
// last close is reported under the old name after the unlink, and must not leave the
// name on the standby.
Status Sender::NameMissing(uint32_t root, const std::string& path, Journal* journal) {
  RETURN_IF_ERROR(RecheckEventInode(root, path, -1));
  if (path.empty() || !model_[root].contains(path)) return Status::Ok();
  return RemoveUnlessNamedLater(root, path, journal != nullptr ? journal : live_);
}

Status Sender::RecheckEventInode(uint32_t root, const std::string& path, int name_fd) {
  // Once per change, and not again for the names looked at below.
  if (applying_ == nullptr || event_object_checked_) return Status::Ok();
  event_object_checked_ = true;
  if (applying_->object.empty() && applying_->other_objects.empty()) return Status::Ok();
  // The handle the name holds now (HandleCache::Key's layout: fsid, type, bytes; the
  // fsid is left out: one filesystem per root fd). An object equal to it is the name's
  // own inode, which the name's upsert covers.
  alignas(file_handle) unsigned char name_buf[sizeof(file_handle) + MAX_HANDLE_SZ] = {};
  auto* name_fh = reinterpret_cast<file_handle*>(name_buf);
  bool have_name_handle = false;
  if (name_fd >= 0) {
    name_fh->handle_bytes = MAX_HANDLE_SZ;
    int mount_id = 0;
    have_name_handle = name_to_handle_at(name_fd, "", name_fh, &mount_id, AT_EMPTY_PATH) == 0;
  }
  // The latest event's inode, then the others of coalesced events (journal.h).
  RETURN_IF_ERROR(
      RecheckObject(root, path, applying_->object, have_name_handle ? name_fh : nullptr));
  for (const std::string& key : applying_->other_objects) {
    RETURN_IF_ERROR(RecheckObject(root, path, key, have_name_handle ? name_fh : nullptr));
  }
  return Status::Ok();
}

Status Sender::RecheckObject(uint32_t root, const std::string& path, const std::string& key,
                             const file_handle* name_handle) {
  if (key.size() <= 12) return Status::Ok();  // no handle: nothing to go by
  // HandleCache::Key: fsid (8 bytes), handle type (4), the handle's bytes.
  int32_t type = 0;
  std::memcpy(&type, key.data() + 8, sizeof type);
  const size_t bytes = key.size() - 12;
  if (bytes > MAX_HANDLE_SZ) return Status::Ok();
  if (name_handle != nullptr && name_handle->handle_type == type &&
      name_handle->handle_bytes == bytes &&
      std::memcmp(name_handle->f_handle, key.data() + 12, bytes) == 0) {
    return Status::Ok();  // the name holds this inode still: its own upsert covers it
  }
  alignas(file_handle) unsigned char buf[sizeof(file_handle) + MAX_HANDLE_SZ] = {};
  auto* fh = reinterpret_cast<file_handle*>(buf);
  fh->handle_bytes = static_cast<unsigned int>(bytes);
  fh->handle_type = type;
  std::memcpy(fh->f_handle, key.data() + 12, bytes);
  UniqueFd inode(open_by_handle_at(root_fds_[root], fh, O_PATH | O_CLOEXEC));
  if (!inode) return Status::Ok();  // ESTALE: the inode is gone with every name it had
  struct stat st {};
  if (fstat(inode.get(), &st) != 0 || !S_ISREG(st.st_mode)) return Status::Ok();
  std::vector<std::string> names = OtherNames(root, st.st_dev, st.st_ino, path);
  if (names.empty()) return Status::Ok();
  ++stats_.event_inodes_rechecked;
  return RecheckNames(root, st.st_dev, st.st_ino, names);
}

// The standby holds names `names` of one primary inode whose model entry just left it
// (the name was removed, or now names another inode). A change made through the name
// that left — content written, mode changed — may never have been shipped, because the
// name was gone when its event was handled. Attributes and content belong to the
// inode, so every remaining name that is still that inode on the primary is compared
// again now (docs/REPLICATION.md, "the inode, not the name").
Status Sender::RecheckNames(uint32_t root, uint64_t dev, uint64_t ino,
                            const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    if (!model_[root].contains(name)) continue;
    auto now = StatPath(root_fds_[root], name);
    if (!now.ok() || now->kind != NodeKind::kFile || now->dev != dev || now->ino != ino) {
      continue;  // not that inode any more: the event that changed it covers it
    }
    ++stats_.names_rechecked;
    RETURN_IF_ERROR(UpsertFile(root, *now, live_));
  }
  return Status::Ok();
}

std::vector<std::string> Sender::OtherNames(uint32_t root, const Entry& entry,
                                            std::string_view except) {
  if (entry.kind != NodeKind::kFile || entry.ino() == 0) return {};
  return OtherNames(root, model_[root].dev(entry), entry.ino(), except);
}

std::vector<std::string> Sender::OtherNames(uint32_t root, uint64_t dev, uint64_t ino,
                                            std::string_view except) {
  std::vector<std::string> out;
  for (const Model::Node* node : model_[root].NamesOf(dev, ino)) {
    if (node->first.view() != except) out.push_back(node->first.str());
  }
  return out;
}

Status Sender::RemoveUnlessNamedLater(uint32_t root, const std::string& path, Journal* journal) {
  if (journal != nullptr) {
    if (refresh_) refresh_();
    if (journal->Mentions(root, path)) {
      ++stats_.removes_deferred;
      return Status::Ok();
    }
  }
  return Remove(root, path);
}

Status Sender::Upsert(uint32_t root, const std::string& path, Journal* journal) {
  // One walk to the name's directory serves the stat here and UpsertFile's open.
  Result<ParentDir> parent = OpenParentBeneath(root_fds_[root], path);
  Result<FileInfo> info = parent.ok() ? StatAt(*parent, path) : Result<FileInfo>(parent.status());
  if (!info.ok()) {
    // Gone: the truth of the name now is that it does not exist (docs/REPLICATION.md,
    // "what an event means"). A component that became a symlink or a special file: the
    // name cannot be replicated now; the event that changed the component says more.
    if (info.status().code() == Code::kNotFound) return NameMissing(root, path, journal);
    if (info.status().code() == Code::kUnimplemented ||
        info.status().code() == Code::kInvalidArgument) {
      return Status::Ok();
    }
    return info.status();
  }
  switch (info->kind) {
    case NodeKind::kDirectory:
      return UpsertDir(root, *info);
    case NodeKind::kSymlink:
      return UpsertSymlink(root, *info);
    case NodeKind::kFile:
      return UpsertFile(root, *info, journal, &*parent);
  }
  return Status::Ok();
}

Status Sender::EnsureParents(uint32_t root, const std::string& path) {
  std::string parent = ParentOf(path);
  if (parent.empty() || model_[root].contains(parent)) return Status::Ok();
  auto info = StatPath(root_fds_[root], parent);
  if (!info.ok()) return info.status();
  if (info->kind != NodeKind::kDirectory) {
    return Status(Code::kNotFound, "parent " + parent + " is no longer a directory");
  }
  return UpsertDir(root, *info);
}

Status Sender::SetAttrIfNeeded(uint32_t root, const FileInfo& info, Entry& entry) {
  wire::SetAttr attr;
  Model& m = model_[root];
  if (entry.mode != info.mode && info.kind != NodeKind::kSymlink) {
    attr.mask |= wire::kAttrMode;
    attr.mode = info.mode;
  }
  if (!m.HasOwner(entry, info.uid, info.gid)) {
    attr.mask |= wire::kAttrOwner;
    attr.uid = info.uid;
    attr.gid = info.gid;
  }
  // Directory mtimes change with every entry the standby creates in them; they are not
  // replicated (docs/ARCHITECTURE.md).
  if (info.kind != NodeKind::kDirectory && entry.mtime_ns != info.mtime_ns) {
    attr.mask |= wire::kAttrMtime;
    attr.mtime_ns = info.mtime_ns;
  }
  if (attr.mask == 0) return Status::Ok();
  attr.path = WirePath(root, info.path);
  if (info.kind != NodeKind::kSymlink) entry.mode = Entry::Mode(info.mode);
  m.SetOwner(entry, info.uid, info.gid);
  if (info.kind != NodeKind::kDirectory) entry.mtime_ns = info.mtime_ns;
  RETURN_IF_ERROR(EmitChange(std::move(attr), 0));
  ShareInodeAttrs(root, info.path, entry);
  return Status::Ok();
}

void Sender::ShareInodeAttrs(uint32_t root, const std::string& path, const Entry& entry) {
  if (entry.kind != NodeKind::kFile || entry.ino() == 0) return;
  Model& m = model_[root];
  for (Model::Node* node : m.NamesOf(m.dev(entry), entry.ino())) {
    if (node->first.view() == path) continue;
    Entry& other = node->second;
    other.mode = entry.mode;
    m.SetOwner(other, m.uid(entry), m.gid(entry));
    other.mtime_ns = entry.mtime_ns;
    other.set_xattrs(entry.xattr_hash(), entry.xattr_names());
  }
}

Status Sender::UpsertDir(uint32_t root, const FileInfo& info) {
  Model& m = model_[root];
  auto it = m.find(info.path);
  if (it != m.end() && it->second.kind != NodeKind::kDirectory) {
    RETURN_IF_ERROR(Remove(root, info.path));
    it = m.end();
  }
  if (it == m.end() && !info.path.empty()) {
    Status parents = EnsureParents(root, info.path);
    if (parents.code() == Code::kNotFound) return Status::Ok();
    RETURN_IF_ERROR(parents);
    RETURN_IF_ERROR(
        EmitChange(wire::Mkdir{info.mode, info.uid, info.gid, WirePath(root, info.path)}, 0));
    Entry e;
    e.kind = NodeKind::kDirectory;
    e.mode = Entry::Mode(info.mode);
    m.SetOwner(e, info.uid, info.gid);
    it = m.Put(info.path, std::move(e));
  } else if (it == m.end()) {
    // The root itself is not in the manifest yet: it exists on both sides by config.
    Entry e;
    e.kind = NodeKind::kDirectory;
    e.mode = Entry::kUnknownMode;  // force a SetAttr below
    it = m.Put(info.path, std::move(e));
  }
  RETURN_IF_ERROR(SetAttrIfNeeded(root, info, it->second));
  if (options_.replicate_xattrs) {
    auto fd = OpenReadBeneath(root_fds_[root], info.path);
    if (fd.ok()) RETURN_IF_ERROR(SendXattrs(root, info.path, fd->get(), it->second));
  }
  return Status::Ok();
}

Status Sender::UpsertSymlink(uint32_t root, const FileInfo& info) {
  Model& m = model_[root];
  auto it = m.find(info.path);
  Hash128 target_hash = Xxh3_128(std::as_bytes(std::span(info.target)));
  if (it != m.end()) {
    Entry& e = it->second;
    if (e.kind == NodeKind::kSymlink && e.hash == target_hash) {
      return SetAttrIfNeeded(root, info, e);
    }
    if (e.kind == NodeKind::kDirectory) RETURN_IF_ERROR(Remove(root, info.path));
  }
  Status parents = EnsureParents(root, info.path);
  if (parents.code() == Code::kNotFound) return Status::Ok();
  RETURN_IF_ERROR(parents);
  RETURN_IF_ERROR(EmitChange(
      wire::Symlink{info.uid, info.gid, info.mtime_ns, WirePath(root, info.path), info.target}, 0));
  Entry e;
  e.kind = NodeKind::kSymlink;
  m.SetOwner(e, info.uid, info.gid);
  e.size = info.target.size();
  e.mtime_ns = info.mtime_ns;
  e.hash = target_hash;
  e.set_target(info.target);
  m.Put(info.path, std::move(e));  // replaces what the name held
  return Status::Ok();
}

Status Sender::UpsertFile(uint32_t root, const FileInfo& path_info, Journal* journal,
                          const ParentDir* parent) {
  auto fd_or = parent != nullptr ? OpenReadAt(*parent, path_info.path)
                                 : OpenReadBeneath(root_fds_[root], path_info.path);
  if (!fd_or.ok()) {
    Code c = fd_or.status().code();
    if (c == Code::kNotFound) return NameMissing(root, path_info.path, journal);
    if (c == Code::kInvalidArgument) return Status::Ok();
    return fd_or.status();
  }
  UniqueFd fd = std::move(fd_or).value();
  if (after_open_) after_open_(root, path_info.path);
  ASSIGN_OR_RETURN(FileInfo info, StatFd(fd.get()));
  if (info.kind != NodeKind::kFile) return Upsert(root, path_info.path, journal);  // raced
  info.path = path_info.path;
  RETURN_IF_ERROR(RecheckEventInode(root, info.path, fd.get()));

  Model& m = model_[root];
  auto it = m.find(info.path);
  if (it != m.end() && it->second.kind == NodeKind::kDirectory) {
    RETURN_IF_ERROR(Remove(root, info.path));
    it = m.end();
  }
  Entry* cur = it == m.end() ? nullptr : &it->second;
  // The name held another primary inode until now (renamed over, unlinked and created
  // again): the names the standby still holds for that inode are compared afterwards.
  if (cur != nullptr && cur->kind == NodeKind::kFile && cur->ino() != 0 &&
      !m.IsInode(*cur, info.dev, info.ino)) {
    const uint64_t old_dev = m.dev(*cur), old_ino = cur->ino();
    std::vector<std::string> left = OtherNames(root, *cur, info.path);
    RETURN_IF_ERROR(UpsertFileInode(root, info, fd.get(), journal));
    return RecheckNames(root, old_dev, old_ino, left);
  }
  return UpsertFileInode(root, info, fd.get(), journal);
}

Status Sender::Remove(uint32_t root, const std::string& path) {
  Model& m = model_[root];
  auto it = m.find(path);
  if (it == m.end()) return Status::Ok();
  if (it->second.kind == NodeKind::kDirectory) {
    // Children the model still holds (their own removals were missed or come later):
    // deepest first, so every rmdir finds its directory empty.
    std::vector<std::string> below;
    auto [first, last] = m.Descendants(path);
    for (auto c = first; c != last; ++c) below.push_back(c->first.str());
    for (auto r = below.rbegin(); r != below.rend(); ++r) {
      const Entry& e = m.at(*r);
      if (e.kind == NodeKind::kDirectory) {
        RETURN_IF_ERROR(EmitChange(wire::Rmdir{WirePath(root, *r)}, 0));
      } else {
        RETURN_IF_ERROR(EmitChange(wire::Unlink{WirePath(root, *r)}, 0));
      }
      m.Forget(*r);
    }
    if (!path.empty()) RETURN_IF_ERROR(EmitChange(wire::Rmdir{WirePath(root, path)}, 0));
    if (!path.empty()) m.Forget(path);
    return Status::Ok();
  }
  const uint64_t dev = m.dev(it->second), ino = it->second.ino();
  std::vector<std::string> left = OtherNames(root, it->second, path);
  RETURN_IF_ERROR(EmitChange(wire::Unlink{WirePath(root, path)}, 0));
  m.Forget(path);
  return RecheckNames(root, dev, ino, left);
}

Status Sender::Rename(uint32_t root, const std::string& from, const std::string& to,
                      Journal& journal) {
  Model& m = model_[root];
  auto src = m.find(from);
  if (src == m.end() || from.empty() || to.empty()) {
    // The standby never got the source: ship the target as it is now.
    auto info = StatPath(root_fds_[root], to);
    if (info.ok() && info->kind == NodeKind::kDirectory)
      return RescanSubtree(root, to, &journal, &journal);
    return Upsert(root, to, &journal);
  }
  Status parents = EnsureParents(root, to);
  if (parents.code() == Code::kNotFound) {
    return Remove(root, from);  // the target's directory is gone too
  }
  RETURN_IF_ERROR(parents);
  bool src_dir = src->second.kind == NodeKind::kDirectory;
  // A file that changed after the standby got it (Slurm writes X.new, then renames it
  // over X; the sender may have shipped X.new empty or half written): a RENAME would
  // show that stale copy under `to` until the Upsert that follows, and a crash or a
  // failover in between leaves `to` with content it never had. Publish what `to` holds
  // now instead (atomic on the standby), then drop `from` as the rename would have.
  // A large file (block hashes) keeps the RENAME, so that the Upsert after it moves only
  // the changed blocks; for it the stale window remains (a known limit).
  if (!src_dir && src->second.blocks().empty()) {
    auto now = StatPath(root_fds_[root], to);
    if (now.ok() && now->kind == NodeKind::kFile &&
        (now->size != src->second.size || now->mtime_ns != src->second.mtime_ns ||
         (src->second.ino() != 0 && !m.IsInode(src->second, now->dev, now->ino)))) {
      RETURN_IF_ERROR(UpsertFile(root, *now, &journal));
      return Remove(root, from);
    }
  }
  auto dst = m.find(to);
  if (dst != m.end()) {
    bool dst_dir = dst->second.kind == NodeKind::kDirectory;
    auto [first, last] = m.Descendants(to);
    bool dst_has_children = dst_dir && first != last;
    if (dst_dir != src_dir || dst_has_children) RETURN_IF_ERROR(Remove(root, to));
    // Two names of one inode on the standby (linked by this sender): rename(2) between
    // them does nothing and would leave `from` behind. Point `to` at the inode again
    // (a no-op there) and drop `from`: the same end state, and `to` never goes missing.
    dst = m.find(to);
    src = m.find(from);
    if (dst != m.end() && dst->second.kind == NodeKind::kFile &&
        src->second.kind == NodeKind::kFile && m.SameInode(src->second, dst->second)) {
      RETURN_IF_ERROR(EmitChange(wire::Link{WirePath(root, from), WirePath(root, to)}, 0));
      RETURN_IF_ERROR(EmitChange(wire::Unlink{WirePath(root, from)}, 0));
      Entry copy;
      m.Take(src, &copy);
      m.Put(to, std::move(copy));
      return Status::Ok();
    }
  }
  // A file renamed over loses that name; its inode's other names may hold a change made
  // through it whose Upsert this rename overtook (or whose read was aborted): compare
  // them again afterwards, as Remove does.
  uint64_t replaced_dev = 0, replaced_ino = 0;
  std::vector<std::string> replaced_names;
  if (auto d = m.find(to); d != m.end() && d->second.kind == NodeKind::kFile) {
    replaced_dev = m.dev(d->second);
    replaced_ino = d->second.ino();
    replaced_names = OtherNames(root, d->second, to);
  }
  RETURN_IF_ERROR(EmitChange(wire::Rename{0, WirePath(root, from), WirePath(root, to)}, 0));
  // Move the model entries: `from` and everything below it.
  std::vector<std::pair<std::string, Entry>> moved;
  moved.emplace_back(to, Entry());
  m.Take(m.find(from), &moved.back().second);
  for (auto [it, last] = m.Descendants(from); it != last;) {
    moved.emplace_back(to + std::string(it->first.view().substr(from.size())), Entry());
    it = m.Take(it, &moved.back().second);
  }
  m.Forget(to);
  for (auto& [path, entry] : moved) m.Put(path, std::move(entry));
  return RecheckNames(root, replaced_dev, replaced_ino, replaced_names);
}

Status Sender::RescanSubtree(uint32_t root, const std::string& subtree, Journal* journal,
                             Journal* later) {
  std::vector<FileInfo> seen;
  Status walk = ScanTree(
      root_fds_[root], subtree, {},
      [&](const FileInfo& info) {
        seen.push_back(info);
        return sink_.Progress();  // as in RequestResyncBlocks: the walk alone can be long
      },
      nullptr);
  if (walk.code() == Code::kNotFound) {
    return RemoveUnlessNamedLater(root, subtree, later);  // gone on the primary
  }
  RETURN_IF_ERROR(walk);
  if (subtree.empty()) {
    auto top = StatPath(root_fds_[root], "");
    if (!top.ok()) return top.status();
    RETURN_IF_ERROR(UpsertDir(root, *top));
  }
  // Upserts top-down first, removals last: a name the primary replaced is never missing
  // on the standby in between (the Slurm X / X.old pair stays covered).
  for (const FileInfo& info : seen) {
    RETURN_IF_ERROR(sink_.Progress());
    switch (info.kind) {
      case NodeKind::kDirectory:
        RETURN_IF_ERROR(UpsertDir(root, info));
        break;
      case NodeKind::kSymlink:
        RETURN_IF_ERROR(UpsertSymlink(root, info));
        break;
      case NodeKind::kFile:
        RETURN_IF_ERROR(UpsertFile(root, info, journal));
        break;
    }
  }
  // What the walk saw, as one sorted array: a set of nodes allocated between the
  // model's would, once freed, leave the heap fragmented for good (memory at rest).
  std::vector<std::string_view> present;
  present.reserve(seen.size() + 1);
  present.push_back(subtree);
  for (const FileInfo& info : seen) present.push_back(info.path);
  std::sort(present.begin(), present.end());
  Model& m = model_[root];
  std::vector<std::string> gone;
  for (auto [it, last] = m.Descendants(subtree); it != last; ++it) {
    if (!std::binary_search(present.begin(), present.end(), it->first.view())) {
      gone.push_back(it->first.str());
    }
  }
  // The walk saw each name at another moment; a name missing then may be back now (a
  // rescan after a queue overflow runs while the scheduler keeps writing).
  for (auto r = gone.rbegin(); r != gone.rend(); ++r) {
    if (!m.contains(*r)) continue;
    if (later != nullptr && StatPath(root_fds_[root], *r).ok()) {
      RETURN_IF_ERROR(Upsert(root, *r, journal));
      continue;
    }
    RETURN_IF_ERROR(RemoveUnlessNamedLater(root, *r, later));
  }
  return Status::Ok();
}

}  // namespace hasync::engine
