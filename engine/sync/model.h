// Model: what the standby holds under one sync root, as the primary's Sender believes it
// (engine/sync/sender.h says when it is updated and when it is no longer trusted). Per
// path: kind, metadata, content hash and, for a file, the primary inode its content was
// sent from; an index finds the names the standby holds for one primary inode.
//
// The layout is chosen for memory at rest (DESIGN §8: ≤ 200 bytes per tracked file;
// docs/PERFORMANCE.md, "Memory per tracked file", has the figures):
// - one std::map node per path: tree links, the path inside the key when it has at most
//   ModelPath::kInlineChars characters (a Slurm spool's `hash.3/job.12345678/environment`
//   has 31), and a 56-byte Entry, 32 + 32 + 56 = 120 bytes in a slot of the model's own
//   SlotPool (engine/sync/slot_pool.h; from malloc each would take 144 bytes);
// - what few entries have (a symlink's target, xattr names, block hashes) sits behind
//   one pointer, allocated only while one of them is present;
// - st_dev is a 16-bit index into a table of the devices seen under the root (one,
//   unless something is mounted below it), and the owner a 16-bit index into a table of
//   the (uid, gid) pairs seen (a handful in a spool; past kMaxOwners distinct pairs an
//   entry keeps its own behind the pointer below); the mode is the 12 permission bits,
//   in 16;
// - the inode index is an open-addressing table of the nodes' 32-bit slot numbers in
//   that pool (SlotPool::Handle; a node stays put until erased), not a second copy of
//   each path, between half and three quarters full while it grows (down to an eighth
//   when entries leave, then halved).
//
// Order: paths compare bytewise, as std::string does, so iteration order and the
// contiguity of subtrees (Descendants) are those of a std::map<std::string, …>.
//
// Invariant: a node is in the inode index iff its entry is a file whose inode is known
// (ino ≠ 0), and the index yields the names of one inode in the order they were indexed.
// The Model keeps this itself: entries enter, change inode and leave only through Put,
// SetInode, Take and erase; callers may change any field but `kind` of an entry in
// place. An entry refers to its model's device and owner tables: it moves between paths
// of one model, never to another model.
//
// Thread safety: none; the Sender that owns it runs on the primary's event loop.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "engine/scan/scanner.h"
#include "engine/sync/slot_pool.h"

namespace hasync::engine {

// A path as a key of the model: short paths are kept inside the object, longer ones in
// one heap allocation. Move-only (map keys are never copied).
class ModelPath {
 public:
  static constexpr size_t kInlineChars = 31;

  explicit ModelPath(std::string_view path);
  ModelPath(ModelPath&& other) noexcept;
  ModelPath& operator=(ModelPath&& other) noexcept;
  ModelPath(const ModelPath&) = delete;
  ModelPath& operator=(const ModelPath&) = delete;
  ~ModelPath();

  std::string_view view() const;
  std::string str() const { return std::string(view()); }

 private:
  // Inline: bytes_[0, n) hold the path and bytes_[kInlineChars] = n. Heap: the same
  // byte is kHeap and bytes_ start with the pointer and the length (memcpy'd).
  static constexpr unsigned char kHeap = 0xff;
  bool on_heap() const { return static_cast<unsigned char>(bytes_[kInlineChars]) == kHeap; }
  void Release();
  char bytes_[kInlineChars + 1] = {};
};
static_assert(sizeof(ModelPath) == ModelPath::kInlineChars + 1);

// One path's state as the standby holds it.
class ModelEntry {
 public:
  // A mode not known (the entry of a root not yet listed): no real mode equals it.
  static constexpr uint16_t kUnknownMode = 0xffff;

  // (Declared largest first: mode, kind and the private table indexes fill one word.)
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  Hash128 hash;       // content hash as the standby holds it (symlinks: of the target)
  uint16_t mode = 0;  // permission bits (st_mode & 07777), or kUnknownMode; see Mode()
  NodeKind kind = NodeKind::kFile;

  // `mode` for a mode as stat or the wire gives it: its permission bits; kUnknownMode
  // when it has bits that are not (never from stat; a manifest could say anything).
  static uint16_t Mode(uint32_t mode) {
    return mode <= 07777 ? static_cast<uint16_t>(mode) : kUnknownMode;
  }

  ModelEntry() = default;
  ModelEntry(const ModelEntry& other);
  ModelEntry& operator=(const ModelEntry& other);
  ModelEntry(ModelEntry&&) noexcept = default;
  ModelEntry& operator=(ModelEntry&&) noexcept = default;
  ~ModelEntry() = default;

  // Primary inode the content was sent from; 0 = unknown (from a manifest). Set through
  // Model::SetInode; the device is kept by the Model (Model::dev).
  uint64_t ino() const { return ino_; }

  // Symlinks: the literal target.
  const std::string& target() const;
  void set_target(std::string target);
  // XXH3-64 of the sorted allowed xattrs (0 = none) and the names sent, sorted, so the
  // ones gone get a REMOVEXATTR.
  uint64_t xattr_hash() const { return extra_ ? extra_->xattr_hash : 0; }
  const std::vector<std::string>& xattr_names() const;
  void set_xattrs(uint64_t hash, std::vector<std::string> names);
  // Block hashes of files of at least delta_min_bytes; empty otherwise.
  const std::vector<Hash128>& blocks() const;
  void set_blocks(std::vector<Hash128> blocks);
  // Appends, for block hashes that arrive in pieces (BLOCKS_REPLY).
  void append_blocks(const std::vector<Hash128>& more);
  // From the standby's manifest: the link_id of its entry (names with the same nonzero
  // value are one inode there); 0 when alone or not from a manifest. Copied with the
  // entry when a LINK makes another name of the same standby inode.
  uint64_t standby_link() const { return extra_ ? extra_->standby_link : 0; }
  void set_standby_link(uint64_t link);

 private:
  friend class Model;
  // owner_index_ of an entry whose owner is in its Extra (the model's table was full).
  static constexpr uint16_t kOwnerInExtra = 0xffff;
  struct Extra {
    std::string target;
    uint64_t xattr_hash = 0;
    std::vector<std::string> xattr_names;
    std::vector<Hash128> blocks;
    uint64_t standby_link = 0;
    uint64_t owner = 0;  // (uid << 32 | gid) while owner_index_ is kOwnerInExtra
    // Nothing but the owner, which the entry's owner_index_ says is here or not.
    bool empty() const {
      return target.empty() && xattr_hash == 0 && xattr_names.empty() && blocks.empty() &&
             standby_link == 0;
    }
  };
  Extra& MutableExtra();
  void DropExtraIfEmpty();

  uint16_t dev_index_ = 0;
  uint16_t owner_index_ = 0;  // into Model::owners_ (0 is root:root), or kOwnerInExtra
  uint64_t ino_ = 0;
  std::unique_ptr<Extra> extra_;
};
// The common case costs these 56 bytes plus the map node and its key; see the top.
static_assert(sizeof(ModelEntry) <= 56);

class Model {
  struct Less {
    using is_transparent = void;
    bool operator()(const ModelPath& a, const ModelPath& b) const { return a.view() < b.view(); }
    bool operator()(const ModelPath& a, std::string_view b) const { return a.view() < b; }
    bool operator()(std::string_view a, const ModelPath& b) const { return a < b.view(); }
  };
  using Map =
      std::map<ModelPath, ModelEntry, Less, PoolAllocator<std::pair<const ModelPath, ModelEntry>>>;

 public:
  using Entry = ModelEntry;
  using iterator = Map::iterator;
  using const_iterator = Map::const_iterator;
  using Node = Map::value_type;  // (path, entry)
  // More distinct st_dev values than this under one root: the extra ones are recorded
  // with an unknown inode (their files are compared by content, never linked).
  static constexpr size_t kMaxDevices = 1024;
  // More distinct owners than this under one root: an entry with another one keeps it
  // in its own Extra (an allocation of about 112 bytes unless it has one), still exact.
  // The table is emptied by clear() only (each resync), so owners that left count
  // until then.
  static constexpr size_t kMaxOwners = Entry::kOwnerInExtra;

  Model() = default;
  // A model moved from may only be cleared, assigned to or destroyed.
  Model(Model&&) noexcept = default;
  Model& operator=(Model&&) noexcept = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  size_t size() const { return map_.size(); }
  bool contains(std::string_view path) const { return map_.find(path) != map_.end(); }
  iterator begin() { return map_.begin(); }
  iterator end() { return map_.end(); }
  const_iterator begin() const { return map_.begin(); }
  const_iterator end() const { return map_.end(); }
  iterator find(std::string_view path) { return map_.find(path); }
  const_iterator find(std::string_view path) const { return map_.find(path); }
  // The entry of a path the caller knows is there (asserted).
  Entry& at(std::string_view path);

  // Inserts or replaces the entry of `path`; returns its position.
  iterator Put(std::string_view path, Entry entry);
  // Removes one entry; returns the next position.
  iterator erase(iterator it);
  // Removes one entry and moves it to *out (to be Put under another path).
  iterator Take(iterator it, Entry* out);
  // Removes `path` if present.
  void Forget(std::string_view path);
  void clear();

  // The strict descendants of `top` ("" = everything but the root entry), as a range.
  // Keys compare bytewise, so "d.old" and "d 2" sort between "d" and "d/…": the
  // descendants are the keys in ["d/", "d0"), never "the entries right after d".
  std::pair<iterator, iterator> Descendants(std::string_view top);

  // Records the primary inode of an entry in the model (re-indexing it), or of one
  // that is not in it yet (Put indexes it).
  void SetInode(iterator it, uint64_t dev, uint64_t ino);
  void SetInode(Entry& entry, uint64_t dev, uint64_t ino);
  // Whether `entry` was sent from primary inode (dev, ino), with ino ≠ 0.
  bool IsInode(const Entry& entry, uint64_t dev, uint64_t ino) const;
  // Whether two entries of this model record the same known primary inode.
  bool SameInode(const Entry& a, const Entry& b) const;
  uint64_t dev(const Entry& entry) const { return devs_[entry.dev_index_]; }

  // The owner of an entry of this model (or of one about to be Put in it): the pair is
  // kept once in the model's table and the entry holds its index.
  void SetOwner(Entry& entry, uint32_t uid, uint32_t gid);
  uint32_t uid(const Entry& entry) const { return static_cast<uint32_t>(Owner(entry) >> 32); }
  uint32_t gid(const Entry& entry) const { return static_cast<uint32_t>(Owner(entry)); }
  bool HasOwner(const Entry& entry, uint32_t uid, uint32_t gid) const {
    return Owner(entry) == PackOwner(uid, gid);
  }
  // Distinct (uid, gid) pairs the table holds past root:root (for tests).
  size_t owners() const { return owners_.size() - 1; }
  // Names of primary inode (dev, ino), in the order they were indexed. Valid until the
  // node is erased.
  std::vector<Node*> NamesOf(uint64_t dev, uint64_t ino);

  // Slots of the inode index's table (for tests).
  size_t index_capacity() const { return slots_.size(); }
  // Bytes of one path's node, and the slabs its pool holds (for tests; 0 before the
  // first Put).
  size_t node_bytes() const { return pool_->slot_bytes(); }
  size_t node_slabs() const { return pool_->slabs(); }

 private:
  static bool Indexed(const Entry& e) { return e.kind == NodeKind::kFile && e.ino_ != 0; }
  static uint64_t PackOwner(uint32_t uid, uint32_t gid) { return uint64_t{uid} << 32 | gid; }
  uint64_t Owner(const Entry& entry) const {
    return entry.owner_index_ == Entry::kOwnerInExtra ? entry.extra_->owner
                                                      : owners_[entry.owner_index_];
  }
  // Index of `dev` in devs_, added if new; -1 when the table is full.
  int DevIndex(uint64_t dev);
  // Index of `dev` in devs_; -1 when it is not there.
  int FindDev(uint64_t dev) const;
  size_t Home(uint16_t dev_index, uint64_t ino) const;
  void Index(Node* node);
  void Unindex(Node* node);
  void Resize(size_t capacity);
  size_t Next(size_t i) const { return i + 1 == slots_.size() ? 0 : i + 1; }
  // A slot's value: 0 = empty, else the node's pool handle + 1.
  uint32_t SlotValue(const Node* node) const { return pool_->Handle(node) + 1; }
  Node* NodeAt(uint32_t value) const {
    return reinterpret_cast<Node*>(static_cast<std::byte*>(pool_->SlotAt(value - 1)) +
                                   node_offset_);
  }

  Map map_;
  // The pool map_'s nodes come from (shared with a model moved from this one), and
  // where in its slot a node's (path, entry) pair begins (the same for every node; set by
  // the first Index).
  SlotPool* pool_ = map_.get_allocator().pool().get();
  size_t node_offset_ = 0;
  // devs_[i] is the st_dev of index i, searched linearly (one or two in practice).
  // Index 0 is device 0, so a default Entry refers to a valid slot.
  std::vector<uint64_t> devs_{0};
  // owners_[i] is the PackOwner of index i; owner_index_of_ finds a pair's index. Index
  // 0 is root:root, so a default Entry refers to a valid slot.
  std::vector<uint64_t> owners_{0};
  std::unordered_map<uint64_t, uint16_t> owner_index_of_{{0, 0}};
  // Linear probing over a table of slot values (SlotValue), its size any number: it grows
  // by half when it would pass 3/4 full, halves below 1/8; erasing shifts the following
  // entries back (no tombstones), which keeps the names of one inode in the order they
  // were indexed.
  std::vector<uint32_t> slots_;
  size_t indexed_ = 0;
};

}  // namespace hasync::engine
