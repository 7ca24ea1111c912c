// Sender, the content path: how one file version reaches the standby once UpsertFile
// (sender.cpp) knows which primary inode the name holds. UpsertFileInode decides what
// the standby needs — nothing, a SETATTR, a LINK to a name it already holds with this
// content, or the content itself — and SendContent ships that content: whole with holes
// skipped, or only the blocks whose hashes differ from the model's (a delta), hashed as
// it is read, spliced by the transport when it routes the file to a data stream, and
// aborted (FILE_ABORT) when the file changes while it is read. SendXattrs sends what
// changed in a name's xattrs. The policy is in sender.h's top comment; the batch and the
// model bookkeeping these rely on stay in sender.cpp.
#include "engine/sync/sender.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "engine/log.h"
#include "engine/sync/xattrs.h"
#include "wire/limits.h"

namespace hasync::engine {

namespace {

constexpr size_t kMaxDataRegions = 4096;  // more than this: treat the file as dense

struct Region {
  uint64_t start, end;
};

// Data regions of a file by SEEK_DATA/SEEK_HOLE; one region [0, size) when the file
// system cannot tell or there are too many. A file whose allocated bytes (st, its
// fstat) cover its size and go no further than its last block is taken as dense
// without asking: almost every spool file is, and the two lseeks were a tenth of a
// small file's syscalls. Blocks preallocated past the end (XFS's speculative
// preallocation of a growing file, fallocate KEEP_SIZE) or a file's extra metadata
// blocks make it ask. (Only a coincidence of both, a hole and as many blocks past the
// end, hides a hole: its zeros are then sent as data, the content is the same.)
std::vector<Region> DataRegions(int fd, uint64_t size, const struct stat& st) {
  std::vector<Region> regions;
  if (size == 0) return regions;
  if (st.st_blocks >= 0) {
    const uint64_t allocated = static_cast<uint64_t>(st.st_blocks) * 512;
    const uint64_t block = st.st_blksize > 0 ? static_cast<uint64_t>(st.st_blksize) : 4096;
    if (allocated >= size && allocated <= (size + block - 1) / block * block) return {{0, size}};
  }
  off_t pos = 0;
  while (static_cast<uint64_t>(pos) < size) {
    off_t data = lseek(fd, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      return {{0, size}};
    }
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return {{0, size}};
    regions.push_back(
        {static_cast<uint64_t>(data), std::min<uint64_t>(static_cast<uint64_t>(hole), size)});
    if (regions.size() > kMaxDataRegions) return {{0, size}};
    pos = hole;
  }
  return regions;
}

bool Overlaps(const std::vector<Region>& regions, uint64_t start, uint64_t end) {
  for (const Region& r : regions) {
    if (r.start < end && start < r.end) return true;
  }
  return false;
}

}  // namespace

Status Sender::UpsertFileInode(uint32_t root, const FileInfo& info, int fd, Journal* journal) {
  Model& m = model_[root];
  auto it = m.find(info.path);
  Entry* cur = it == m.end() ? nullptr : &it->second;

  // Same inode, same size and mtime: at most metadata changed.
  if (cur != nullptr && cur->kind == NodeKind::kFile && m.IsInode(*cur, info.dev, info.ino) &&
      cur->size == info.size && cur->mtime_ns == info.mtime_ns) {
    ++stats_.unchanged_skipped;
    RETURN_IF_ERROR(SetAttrIfNeeded(root, info, *cur));
    if (options_.replicate_xattrs) RETURN_IF_ERROR(SendXattrs(root, info.path, fd, *cur));
    return Status::Ok();
  }

  // Same inode and size, only the mtime moved (touch -d, or a rewrite with equal bytes):
  // for a small file hashing is cheaper than sending, and equal content needs a SETATTR.
  if (cur != nullptr && cur->kind == NodeKind::kFile && m.IsInode(*cur, info.dev, info.ino) &&
      cur->size == info.size && info.size < options_.delta_min_bytes) {
    ASSIGN_OR_RETURN(Hash128 h, HashFd(fd));
    if (h == cur->hash) {
      ++stats_.unchanged_skipped;
      RETURN_IF_ERROR(SetAttrIfNeeded(root, info, *cur));
      if (options_.replicate_xattrs) RETURN_IF_ERROR(SendXattrs(root, info.path, fd, *cur));
      return Status::Ok();
    }
  }

  Status parents = EnsureParents(root, info.path);
  if (parents.code() == Code::kNotFound) {
    // The name's directory went after the open: nothing ships under the name. The inode
    // it held may have other names that need what was written through it (a link
    // written through and removed with its directory), and no event may ever name them:
    // they are compared now, with or without an event's inode handle.
    return RecheckNames(root, info.dev, info.ino, OtherNames(root, info.dev, info.ino, info.path));
  }
  RETURN_IF_ERROR(parents);

  // From a manifest (inode unknown): equal content means only metadata may differ —
  // and the hard-link structure, which the manifest describes (link_id).
  // The names the standby holds as one inode with this one must all be this inode on
  // the primary too; if one is not, the link is split: the content ships whole below,
  // which gives this name an inode of its own there.
  bool split_link = false;
  std::vector<std::string> standby_linked;
  if (cur != nullptr && cur->kind == NodeKind::kFile && cur->ino() == 0) {
    standby_linked = StandbyLinked(root, info.path, cur->standby_link());
    for (const std::string& name : standby_linked) {
      auto now = StatPath(root_fds_[root], name);
      if (!now.ok() || now->kind != NodeKind::kFile || now->dev != info.dev ||
          now->ino != info.ino) {
        split_link = true;
        ++stats_.links_split;
        break;
      }
    }
  }
  if (cur != nullptr && cur->kind == NodeKind::kFile && cur->ino() == 0 && cur->size == info.size &&
      !split_link) {
    ASSIGN_OR_RETURN(Hash128 h, HashFd(fd));
    if (h == cur->hash) {
      ++stats_.unchanged_skipped;
      // Another name of this primary inode already checked in this resync that the
      // standby holds as a separate inode: link them. (Names it already holds as one
      // inode with this one need nothing.)
      for (const Model::Node* name : m.NamesOf(info.dev, info.ino)) {
        if (name->first.view() == info.path) continue;
        if (std::find(standby_linked.begin(), standby_linked.end(), name->first.view()) !=
            standby_linked.end()) {
          break;
        }
        const Entry& se = name->second;
        if (se.size == info.size && se.hash == h) {
          RETURN_IF_ERROR(EmitChange(
              wire::Link{WirePath(root, name->first.view()), WirePath(root, info.path)}, 0));
          ++stats_.links_sent;
          it = m.Put(info.path, se);  // the same node: `cur` stays valid
          break;
        }
      }
      m.SetInode(it, info.dev, info.ino);  // into the inode index
      if (info.size >= options_.delta_min_bytes && cur->blocks().empty()) {
        ASSIGN_OR_RETURN(std::vector<Hash128> blocks, BlockHashesFd(fd, options_.block_size));
        cur->set_blocks(std::move(blocks));
      }
      RETURN_IF_ERROR(SetAttrIfNeeded(root, info, *cur));
      if (options_.replicate_xattrs) RETURN_IF_ERROR(SendXattrs(root, info.path, fd, *cur));
      return Status::Ok();
    }
  }

  // Other names the standby holds for this primary inode. Any of them whose recorded
  // (size, mtime) still match can be the source of a LINK, even when the primary has
  // since dropped that name (nlink 1): at this point of the replay the standby still
  // holds it, exactly as the primary did when it made the link (Slurm's link X X.old
  // before unlink X). Names that must follow a content change are different: they are
  // re-linked only if they are still this inode on the primary. Each is asked whatever
  // the link count said: `info.path` may have been removed between its open and its
  // fstat (a link written through and dropped at once), which leaves nlink 1 while the
  // other name still holds the inode, and only that name is left to carry the content
  // (convergence seed 18).
  std::string link_source;
  for (const Model::Node* node : m.NamesOf(info.dev, info.ino)) {
    std::string_view name = node->first.view();
    const Entry& se = node->second;
    if (name != info.path && se.size == info.size && se.mtime_ns == info.mtime_ns) {
      link_source = name;
      break;
    }
  }
  if (!link_source.empty()) {
    // A new name of content the standby already has: a hard link, no bytes.
    RETURN_IF_ERROR(
        EmitChange(wire::Link{WirePath(root, link_source), WirePath(root, info.path)}, 0));
    ++stats_.links_sent;
    Entry& e = m.Put(info.path, m.at(link_source))->second;
    RETURN_IF_ERROR(SetAttrIfNeeded(root, info, e));
    if (options_.replicate_xattrs) RETURN_IF_ERROR(SendXattrs(root, info.path, fd, e));
    return Status::Ok();
  }
  std::vector<std::string> siblings;
  for (const Model::Node* node : m.NamesOf(info.dev, info.ino)) {
    std::string_view name = node->first.view();
    if (name == info.path) continue;
    auto st = StatPath(root_fds_[root], name);
    if (st.ok() && st->ino == info.ino && st->dev == info.dev) siblings.emplace_back(name);
  }

  const Entry* base = (cur != nullptr && cur->kind == NodeKind::kFile && !cur->blocks().empty() &&
                       info.size >= options_.delta_min_bytes)
                          ? cur
                          : nullptr;
  // The standby patches a file on a copy of what the name holds before its batch, so it
  // refuses a block patch of a path an earlier change of the same batch renamed, linked
  // or began (docs/APPLY.md): commit what is open first. Flush leaves the model as is.
  if (base != nullptr && TouchedInBatch(root, info.path)) RETURN_IF_ERROR(Flush());
  Entry sent;
  bool aborted = false;
  int& retries = read_retries_[WirePath(root, info.path)];
  bool allow_abort = journal != nullptr && retries < kMaxReadRetries;
  RETURN_IF_ERROR(SendContent(root, info, fd, base, &sent, allow_abort ? &aborted : nullptr));
  if (aborted) {
    ++retries;
    ++stats_.aborted_reads;
    // At the tail: a Rename queued meanwhile is followed by an Upsert of the new name.
    // With the event's object when this is the entry's own name: if the name is then
    // another inode's, the written inode's other names are compared by it.
    const bool own =
        applying_ != nullptr && applying_->root == root && applying_->path == info.path;
    journal->Requeue(root, info.path,
                     own ? std::string_view(applying_->object) : std::string_view(),
                     own ? applying_->other_objects : std::vector<std::string>{});
    return Status::Ok();
  }
  read_retries_.erase(WirePath(root, info.path));
  // The standby publishes the new content as a new inode. Names of this primary inode
  // that are not relinked below (the primary no longer has them as this inode; their
  // own events are queued) stay on the old standby inode: they leave the inode index,
  // so no attribute change and no LINK is ever taken from them as if they were linked.
  for (Model::Node* node : m.NamesOf(info.dev, info.ino)) {
    std::string_view name = node->first.view();
    if (name == info.path || std::find(siblings.begin(), siblings.end(), name) != siblings.end()) {
      continue;
    }
    m.SetInode(m.find(name), 0, 0);
  }
  Entry& e = m.Put(info.path, std::move(sent))->second;
  if (options_.replicate_xattrs) RETURN_IF_ERROR(SendXattrs(root, info.path, fd, e));
  // The standby published the new content as a new inode: the other names follow it.
  for (const std::string& name : siblings) {
    RETURN_IF_ERROR(EmitChange(wire::Link{WirePath(root, info.path), WirePath(root, name)}, 0));
    ++stats_.links_sent;
    m.Put(name, m.at(info.path));
  }
  return Status::Ok();
}

Status Sender::SendContent(uint32_t root, const FileInfo& info, int fd, const Entry* base,
                           Entry* out, bool* aborted) {
  struct stat before {};
  if (fstat(fd, &before) != 0) return ErrnoStatus(errno, "fstat " + info.path);
  const uint64_t size = static_cast<uint64_t>(before.st_size);
  const uint32_t bs = options_.block_size;
  const bool keep_blocks = size >= options_.delta_min_bytes;
  std::vector<Region> regions = DataRegions(fd, size, before);

  uint64_t seq = next_seq_++;
  std::string wpath = WirePath(root, info.path);
  int64_t mtime_ns =
      static_cast<int64_t>(before.st_mtim.tv_sec) * 1'000'000'000 + before.st_mtim.tv_nsec;
  uint32_t flags = 0;
  if (base != nullptr) flags |= wire::kFileDelta;
  if (regions.size() != 1 || (size > 0 && (regions[0].start != 0 || regions[0].end != size))) {
    flags |= wire::kFileSparse;
  }
  NoteTouched(wpath);
  if (LogEnabled(Level::kDebug)) {
    Log(Level::kDebug, "change").kv("seq", seq).kv("op", "FILE_BEGIN").kv("path", wpath);
  }
  RETURN_IF_ERROR(
      sink_.Emit(seq, wire::FileBegin{size, static_cast<uint32_t>(before.st_mode & 07777),
                                      before.st_uid, before.st_gid, flags, mtime_ns, wpath}));

  XXH3_state_t whole;
  XXH3_128bits_reset(&whole);
  std::vector<Hash128> blocks;
  if (keep_blocks) blocks.reserve(static_cast<size_t>((size + bs - 1) / bs));
  const std::vector<Hash128>* base_blocks = base != nullptr ? &base->blocks() : nullptr;
  uint32_t range_count = 0;
  uint64_t data_bytes = 0;

  // Read in chunks of whole blocks that fit one extent, kReadAhead of them ahead.
  const size_t chunk_len = (wire::kExtentDataMax / bs) * bs;
  std::vector<ReadChunk> plan;
  plan.reserve(static_cast<size_t>((size + chunk_len - 1) / chunk_len));
  for (uint64_t off = 0; off < size; off += chunk_len) {
    size_t len = static_cast<size_t>(std::min<uint64_t>(chunk_len, size - off));
    plan.push_back(ReadChunk{off, len, !Overlaps(regions, off, off + len)});
  }
  reader_->Start(fd, std::move(plan));
  struct FinishReads {
    FileReader& reader;
    ~FinishReads() { reader.Finish(); }  // no read may outlive this call's fd
  } finish_reads{*reader_};

  auto emit_extent = [&](uint64_t offset, std::vector<std::byte> data) -> Status {
    uint64_t len = data.size();
    RETURN_IF_ERROR(sink_.Emit(seq, wire::Extent{size, offset, std::move(data)}));
    ++range_count;
    data_bytes += len;
    return Status::Ok();
  };
  // Plain mode on a data stream: the bytes are read here only to be hashed; the
  // transport splices them from the page cache to the socket (docs/ARCHITECTURE.md).
  std::shared_ptr<const UniqueFd> splice_from;
  if (size > 0 && sink_.Splices(seq)) {
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return ErrnoStatus(errno, "dup " + info.path + " for splice");
    splice_from = std::make_shared<const UniqueFd>(dup);
  }

  for (uint64_t chunk_off = 0; chunk_off < size; chunk_off += chunk_len) {
    ASSIGN_OR_RETURN(ReadPiece piece, reader_->Next());
    std::vector<std::byte>& buf = piece.data;
    // Blocks to send form runs [first, end) of this chunk; one extent each.
    std::vector<std::pair<size_t, size_t>> runs;
    for (size_t at = 0; at < buf.size(); at += bs) {
      size_t len = std::min<size_t>(bs, buf.size() - at);
      uint64_t off = chunk_off + at;
      bool hole = !Overlaps(regions, off, off + len);
      // What the hash covers is what the standby will hold: a hole is zeros even if
      // data landed there after the hole map was read (the stat check then aborts).
      if (hole) std::memset(buf.data() + at, 0, len);
      std::span<const std::byte> data(buf.data() + at, len);
      XXH3_128bits_update(&whole, data.data(), data.size());
      Hash128 bh{};
      if (keep_blocks || base != nullptr) bh = Xxh3_128(data);
      if (keep_blocks) blocks.push_back(bh);

      bool send;
      if (base != nullptr) {
        size_t idx = static_cast<size_t>(off / bs);
        if (hole && off >= base->size) {
          // Past the standby's old end the patched file is extended by ftruncate, which
          // reads as zeros and stays a hole: nothing to send.
          send = false;
        } else {
          send = idx >= base_blocks->size() || (*base_blocks)[idx] != bh ||
                 (off + len > base->size);  // a short last block grew
        }
      } else {
        send = !hole;
      }
      if (!send) continue;
      if (!runs.empty() && runs.back().second == at) {
        runs.back().second = at + len;
      } else {
        runs.emplace_back(at, at + len);
      }
    }
    if (splice_from) {
      for (const auto& [first, end] : runs) {
        RETURN_IF_ERROR(sink_.EmitSpliced(seq, size, chunk_off + first,
                                          static_cast<uint32_t>(end - first), splice_from));
        ++range_count;
        data_bytes += end - first;
      }
      reader_->Recycle(std::move(buf));
      continue;
    }
    if (runs.size() == 1 && runs[0].first == 0 && runs[0].second == buf.size()) {
      // The whole chunk ships: its read buffer becomes the extent, no copy.
      RETURN_IF_ERROR(emit_extent(chunk_off, std::move(buf)));
      continue;
    }
    for (const auto& [first, end] : runs) {
      RETURN_IF_ERROR(
          emit_extent(chunk_off + first,
                      std::vector<std::byte>(buf.begin() + static_cast<std::ptrdiff_t>(first),
                                             buf.begin() + static_cast<std::ptrdiff_t>(end))));
    }
    reader_->Recycle(std::move(buf));
  }

  // A spliced file is checked below only once its bytes have left.
  if (splice_from) RETURN_IF_ERROR(sink_.WaitSpliced());
  struct stat after {};
  if (fstat(fd, &after) != 0) return ErrnoStatus(errno, "fstat " + info.path);
  bool changed = after.st_size != before.st_size || after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
                 after.st_mtim.tv_nsec != before.st_mtim.tv_nsec ||
                 after.st_ctim.tv_sec != before.st_ctim.tv_sec ||
                 after.st_ctim.tv_nsec != before.st_ctim.tv_nsec;
  if (changed && aborted != nullptr) {
    *aborted = true;
    ++batch_changes_;
    RETURN_IF_ERROR(sink_.Emit(seq, wire::FileAbort{wire::FileAbortReason::kChanged}));
    return MaybeCommit();
  }

  XXH128_hash_t h = XXH3_128bits_digest(&whole);
  RETURN_IF_ERROR(
      sink_.Emit(seq, wire::FileEnd{size, Hash128{h.low64, h.high64}, range_count, data_bytes}));
  ++stats_.files_sent;
  stats_.file_bytes_sent += data_bytes;
  if (base != nullptr) ++stats_.deltas_sent;

  out->kind = NodeKind::kFile;
  out->mode = Entry::Mode(before.st_mode & 07777);
  model_[root].SetOwner(*out, before.st_uid, before.st_gid);
  out->size = size;
  out->mtime_ns = mtime_ns;
  out->hash = Hash128{h.low64, h.high64};
  model_[root].SetInode(*out, before.st_dev, before.st_ino);
  out->set_blocks(std::move(blocks));
  ++batch_changes_;
  batch_bytes_ += data_bytes;
  return MaybeCommit();
}

Status Sender::SendXattrs(uint32_t root, const std::string& path, int fd, Entry& entry) {
  auto set = ReadXattrs(fd);
  if (!set.ok()) return set.status().Annotate(path);
  if (set->hash == entry.xattr_hash()) return Status::Ok();
  std::string wpath = WirePath(root, path);
  // Names sent before and gone now are removed; every current value is (re)sent, as
  // only a hash of the values is kept. After a manifest the standby's names are not
  // known (it lists no xattrs): an extra name there stays (docs/REPLICATION.md).
  for (const std::string& name : entry.xattr_names()) {
    if (!std::binary_search(set->names.begin(), set->names.end(), name)) {
      RETURN_IF_ERROR(EmitChange(wire::RemoveXattr{wpath, name}, 0));
    }
  }
  for (size_t i = 0; i < set->names.size(); ++i) {
    RETURN_IF_ERROR(EmitChange(wire::SetXattr{wpath, set->names[i], set->values[i]}, 0));
  }
  entry.set_xattrs(set->hash, std::move(set->names));
  ShareInodeAttrs(root, path, entry);
  return Status::Ok();
}

}  // namespace hasync::engine
