#include "engine/sync/model.h"

#include <cstring>

#include "base/assert.h"

namespace hasync::engine {

namespace {

constexpr size_t kMinSlots = 16;

// splitmix64's finalizer: inode numbers are often dense, the table needs spread bits.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

// ---- ModelPath ---------------------------------------------------------------------------

ModelPath::ModelPath(std::string_view path) {
  if (path.size() <= kInlineChars) {
    std::memcpy(bytes_, path.data(), path.size());
    bytes_[kInlineChars] = static_cast<char>(path.size());
    return;
  }
  char* data = new char[path.size()];
  std::memcpy(data, path.data(), path.size());
  const size_t size = path.size();
  std::memcpy(bytes_, &data, sizeof data);
  std::memcpy(bytes_ + sizeof data, &size, sizeof size);
  bytes_[kInlineChars] = static_cast<char>(kHeap);
}

ModelPath::ModelPath(ModelPath&& other) noexcept {
  std::memcpy(bytes_, other.bytes_, sizeof bytes_);
  other.bytes_[kInlineChars] = 0;  // empty, inline: nothing to release
}

ModelPath& ModelPath::operator=(ModelPath&& other) noexcept {
  if (this != &other) {
    Release();
    std::memcpy(bytes_, other.bytes_, sizeof bytes_);
    other.bytes_[kInlineChars] = 0;
  }
  return *this;
}

ModelPath::~ModelPath() { Release(); }

void ModelPath::Release() {
  if (!on_heap()) return;
  char* data = nullptr;
  std::memcpy(&data, bytes_, sizeof data);
  delete[] data;
  bytes_[kInlineChars] = 0;
}

std::string_view ModelPath::view() const {
  if (!on_heap()) {
    return std::string_view(bytes_, static_cast<unsigned char>(bytes_[kInlineChars]));
  }
  const char* data = nullptr;
  size_t size = 0;
  std::memcpy(&data, bytes_, sizeof data);
  std::memcpy(&size, bytes_ + sizeof data, sizeof size);
  return std::string_view(data, size);
}

// ---- ModelEntry --------------------------------------------------------------------------

ModelEntry::ModelEntry(const ModelEntry& other)
    : size(other.size),
      mtime_ns(other.mtime_ns),
      hash(other.hash),
      mode(other.mode),
      kind(other.kind),
      dev_index_(other.dev_index_),
      owner_index_(other.owner_index_),
      ino_(other.ino_),
      extra_(other.extra_ ? std::make_unique<Extra>(*other.extra_) : nullptr) {}

ModelEntry& ModelEntry::operator=(const ModelEntry& other) {
  if (this != &other) {
    ModelEntry copy(other);
    *this = std::move(copy);
  }
  return *this;
}

const std::string& ModelEntry::target() const {
  static const std::string kNone;
  return extra_ ? extra_->target : kNone;
}

const std::vector<std::string>& ModelEntry::xattr_names() const {
  static const std::vector<std::string> kNone;
  return extra_ ? extra_->xattr_names : kNone;
}

const std::vector<Hash128>& ModelEntry::blocks() const {
  static const std::vector<Hash128> kNone;
  return extra_ ? extra_->blocks : kNone;
}

ModelEntry::Extra& ModelEntry::MutableExtra() {
  if (!extra_) extra_ = std::make_unique<Extra>();
  return *extra_;
}

void ModelEntry::DropExtraIfEmpty() {
  if (extra_ && extra_->empty() && owner_index_ != kOwnerInExtra) extra_.reset();
}

void ModelEntry::set_target(std::string target) {
  MutableExtra().target = std::move(target);
  DropExtraIfEmpty();
}

void ModelEntry::set_xattrs(uint64_t hash_of_xattrs, std::vector<std::string> names) {
  Extra& extra = MutableExtra();
  extra.xattr_hash = hash_of_xattrs;
  extra.xattr_names = std::move(names);
  DropExtraIfEmpty();
}

void ModelEntry::set_standby_link(uint64_t link) {
  MutableExtra().standby_link = link;
  DropExtraIfEmpty();
}

void ModelEntry::set_blocks(std::vector<Hash128> blocks) {
  MutableExtra().blocks = std::move(blocks);
  DropExtraIfEmpty();
}

void ModelEntry::append_blocks(const std::vector<Hash128>& more) {
  if (more.empty()) return;
  std::vector<Hash128>& blocks = MutableExtra().blocks;
  blocks.insert(blocks.end(), more.begin(), more.end());
}

// ---- Model -------------------------------------------------------------------------------

Model::Entry& Model::at(std::string_view path) {
  auto it = map_.find(path);
  HASYNC_ASSERT(it != map_.end());
  return it->second;
}

Model::iterator Model::Put(std::string_view path, Entry entry) {
  auto it = map_.lower_bound(path);
  if (it != map_.end() && it->first.view() == path) {
    if (Indexed(it->second)) Unindex(&*it);
    it->second = std::move(entry);
  } else {
    it = map_.emplace_hint(it, ModelPath(path), std::move(entry));
  }
  if (Indexed(it->second)) Index(&*it);
  return it;
}

Model::iterator Model::erase(iterator it) {
  if (Indexed(it->second)) Unindex(&*it);
  return map_.erase(it);
}

Model::iterator Model::Take(iterator it, Entry* out) {
  if (Indexed(it->second)) Unindex(&*it);
  *out = std::move(it->second);
  return map_.erase(it);
}

void Model::Forget(std::string_view path) {
  auto it = map_.find(path);
  if (it != map_.end()) erase(it);
}

void Model::clear() {
  map_.clear();
  std::vector<uint32_t>().swap(slots_);
  indexed_ = 0;
  devs_.assign(1, 0);
  std::vector<uint64_t>{0}.swap(owners_);
  std::unordered_map<uint64_t, uint16_t>{{0, 0}}.swap(owner_index_of_);
}

void Model::SetOwner(Entry& entry, uint32_t uid, uint32_t gid) {
  const uint64_t owner = PackOwner(uid, gid);
  auto it = owner_index_of_.find(owner);
  if (it == owner_index_of_.end() && owners_.size() < kMaxOwners) {
    it = owner_index_of_.emplace(owner, static_cast<uint16_t>(owners_.size())).first;
    owners_.push_back(owner);
  }
  if (it != owner_index_of_.end()) {
    entry.owner_index_ = it->second;
    if (entry.extra_) {
      entry.extra_->owner = 0;
      entry.DropExtraIfEmpty();
    }
    return;
  }
  entry.MutableExtra().owner = owner;
  entry.owner_index_ = Entry::kOwnerInExtra;
}

std::pair<Model::iterator, Model::iterator> Model::Descendants(std::string_view top) {
  if (top.empty()) return {map_.upper_bound(std::string_view()), map_.end()};
  std::string lo(top), hi(top);
  lo += '/';
  hi += static_cast<char>('/' + 1);
  return {map_.lower_bound(std::string_view(lo)), map_.lower_bound(std::string_view(hi))};
}

int Model::FindDev(uint64_t dev) const {
  for (size_t i = 0; i < devs_.size(); ++i) {
    if (devs_[i] == dev) return static_cast<int>(i);
  }
  return -1;
}

int Model::DevIndex(uint64_t dev) {
  int found = FindDev(dev);
  if (found >= 0) return found;
  if (devs_.size() >= kMaxDevices) return -1;
  devs_.push_back(dev);
  return static_cast<int>(devs_.size() - 1);
}

void Model::SetInode(Entry& entry, uint64_t dev, uint64_t ino) {
  int index = DevIndex(dev);
  entry.ino_ = index < 0 ? 0 : ino;
  entry.dev_index_ = static_cast<uint16_t>(index < 0 ? 0 : index);
}

void Model::SetInode(iterator it, uint64_t dev, uint64_t ino) {
  Entry updated;
  SetInode(updated, dev, ino);
  Entry& e = it->second;
  if (e.ino_ == updated.ino_ && e.dev_index_ == updated.dev_index_) return;  // keeps its place
  if (Indexed(e)) Unindex(&*it);
  e.ino_ = updated.ino_;
  e.dev_index_ = updated.dev_index_;
  if (Indexed(e)) Index(&*it);
}

bool Model::IsInode(const Entry& entry, uint64_t dev, uint64_t ino) const {
  return entry.ino_ == ino && devs_[entry.dev_index_] == dev;
}

bool Model::SameInode(const Entry& a, const Entry& b) const {
  return a.ino_ != 0 && a.ino_ == b.ino_ && a.dev_index_ == b.dev_index_;
}

std::vector<Model::Node*> Model::NamesOf(uint64_t dev, uint64_t ino) {
  std::vector<Node*> names;
  int d = FindDev(dev);
  if (d < 0 || indexed_ == 0) return names;
  const uint16_t dev_index = static_cast<uint16_t>(d);
  for (size_t i = Home(dev_index, ino); slots_[i] != 0; i = Next(i)) {
    Node* node = NodeAt(slots_[i]);
    const Entry& e = node->second;
    if (e.ino_ == ino && e.dev_index_ == dev_index) names.push_back(node);
  }
  return names;
}

size_t Model::Home(uint16_t dev_index, uint64_t ino) const {
  // Mapped onto the table's size by a multiply (Lemire's reduction), not a mask: the
  // size need not be a power of two.
  const uint64_t h = Mix(ino + 0x9e3779b97f4a7c15ull * (uint64_t{dev_index} + 1));
  return static_cast<size_t>((static_cast<unsigned __int128>(h) * slots_.size()) >> 64);
}

void Model::Index(Node* node) {
  if ((indexed_ + 1) * 4 > slots_.size() * 3) {
    Resize(slots_.empty() ? kMinSlots : slots_.size() + slots_.size() / 2);
  }
  const uint32_t value = SlotValue(node);
  if (indexed_ == 0) {
    node_offset_ = static_cast<size_t>(reinterpret_cast<std::byte*>(node) -
                                       static_cast<std::byte*>(pool_->SlotAt(value - 1)));
  }
  HASYNC_ASSERT(NodeAt(value) == node);
  size_t i = Home(node->second.dev_index_, node->second.ino_);
  while (slots_[i] != 0) i = Next(i);
  slots_[i] = value;
  ++indexed_;
}

void Model::Unindex(Node* node) {
  HASYNC_ASSERT(indexed_ > 0);
  const uint32_t value = SlotValue(node);
  size_t i = Home(node->second.dev_index_, node->second.ino_);
  while (slots_[i] != value) {
    HASYNC_ASSERT(slots_[i] != 0);  // every indexed node is reachable from its home
    i = Next(i);
  }
  // Backward shift (Knuth 6.4, algorithm R): move each following entry of the cluster
  // into the hole unless its home lies cyclically in (hole, its slot].
  for (size_t j = Next(i); slots_[j] != 0; j = Next(j)) {
    const Entry& e = NodeAt(slots_[j])->second;
    size_t home = Home(e.dev_index_, e.ino_);
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    slots_[i] = slots_[j];
    i = j;
  }
  slots_[i] = 0;
  --indexed_;
  if (indexed_ == 0) {
    std::vector<uint32_t>().swap(slots_);
  } else if (slots_.size() > kMinSlots && indexed_ * 8 < slots_.size()) {
    Resize(slots_.size() / 2);
  }
}

void Model::Resize(size_t capacity) {
  std::vector<uint32_t> old(capacity, 0);
  old.swap(slots_);
  if (old.empty()) return;
  // Start after an empty slot so each cluster is re-inserted in probe order: the names
  // of one inode keep their order.
  size_t start = 0;
  while (old[start] != 0) ++start;  // the table is never full
  for (size_t k = 1; k <= old.size(); ++k) {
    const uint32_t value = old[(start + k) % old.size()];
    if (value == 0) continue;
    const Entry& e = NodeAt(value)->second;
    size_t i = Home(e.dev_index_, e.ino_);
    while (slots_[i] != 0) i = Next(i);
    slots_[i] = value;
  }
}

}  // namespace hasync::engine
