// The primary's model of the standby (engine/sync/model.h): the compact layout must
// behave exactly like the std::map<std::string, …> plus (dev, ino) → names index it
// replaced: same order, same subtrees, names of an inode in the order they were indexed.
#include "engine/sync/model.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace hasync::engine {
namespace {

ModelEntry File(uint64_t size) {
  ModelEntry e;
  e.kind = NodeKind::kFile;
  e.size = size;
  return e;
}

std::vector<std::string> Keys(const Model& m) {
  std::vector<std::string> keys;
  for (const auto& [path, entry] : m) keys.push_back(path.str());
  return keys;
}

std::vector<std::string> Names(Model& m, uint64_t dev, uint64_t ino) {
  std::vector<std::string> names;
  for (const Model::Node* node : m.NamesOf(dev, ino)) names.push_back(node->first.str());
  return names;
}

TEST(ModelPath, ShortPathsInlineLongOnesOnTheHeapBothReadBack) {
  const std::string inline_max(ModelPath::kInlineChars, 'a');
  const std::string heap_min(ModelPath::kInlineChars + 1, 'b');
  for (const std::string& s : {std::string(), std::string("hash.3/job.1234/environment"),
                               inline_max, heap_min, std::string(4000, 'c')}) {
    ModelPath p(s);
    EXPECT_EQ(p.view(), s);
    ModelPath moved(std::move(p));
    EXPECT_EQ(moved.view(), s);
    EXPECT_EQ(p.view(), "");  // NOLINT(bugprone-use-after-move): moved-from is empty
    ModelPath assigned("x");
    assigned = std::move(moved);
    EXPECT_EQ(assigned.view(), s);
  }
}

TEST(ModelPath, BytesAboveSevenBitAreKeptAndOrderedUnsigned) {
  std::string high = "d/\xff\xfe";
  ModelPath p(high);
  EXPECT_EQ(p.view(), high);
  Model m;
  m.Put(high, File(1));
  m.Put("d/a", File(2));
  EXPECT_EQ(Keys(m), (std::vector<std::string>{"d/a", high}));
}

TEST(Model, IteratesInTheOrderOfAStdMapOfStrings) {
  std::mt19937 rng(7);
  const std::vector<std::string> parts = {
      "d", "d.old", "d 2", "d0", "x", "job.12", "job.1", std::string(45, 'L'), "\x7f", "\xc3\xa9"};
  std::map<std::string, uint64_t> reference;
  Model m;
  for (int i = 0; i < 3000; ++i) {
    std::string path = parts[rng() % parts.size()];
    for (int depth = static_cast<int>(rng() % 4); depth > 0; --depth) {
      path += '/';
      path += parts[rng() % parts.size()];
    }
    if (rng() % 4 == 0) {
      reference.erase(path);
      m.Forget(path);
    } else {
      reference[path] = static_cast<uint64_t>(i);
      m.Put(path, File(static_cast<uint64_t>(i)));
    }
  }
  std::vector<std::string> want;
  for (const auto& [path, size] : reference) want.push_back(path);
  EXPECT_EQ(Keys(m), want);
  ASSERT_EQ(m.size(), reference.size());
  for (const auto& [path, size] : reference) EXPECT_EQ(m.at(path).size, size) << path;
}

TEST(Model, DescendantsAreTheSubtreeOnlyNotNamesSortingBetween) {
  Model m;
  for (const char* p : {"", "d", "d 2", "d.old", "d/a", "d/a/b", "d/z", "d0", "e"}) {
    ModelEntry dir;
    dir.kind = NodeKind::kDirectory;
    m.Put(p, dir);
  }
  std::vector<std::string> got;
  for (auto [it, last] = m.Descendants("d"); it != last; ++it) got.push_back(it->first.str());
  EXPECT_EQ(got, (std::vector<std::string>{"d/a", "d/a/b", "d/z"}));
  got.clear();
  for (auto [it, last] = m.Descendants(""); it != last; ++it) got.push_back(it->first.str());
  EXPECT_EQ(got.size(), 8u) << "everything but the root";
}

TEST(Model, RareFieldsLiveInOneSideAllocationThatCopiesDeeply) {
  ModelEntry e = File(10);
  e.set_blocks({Hash128{1, 2}, Hash128{3, 4}});
  e.set_xattrs(77, {"user.a", "user.b"});
  ModelEntry copy = e;
  e.set_blocks({});
  e.append_blocks({Hash128{5, 6}});
  EXPECT_EQ(copy.blocks().size(), 2u);
  EXPECT_EQ(copy.xattr_hash(), 77u);
  EXPECT_EQ(copy.xattr_names(), (std::vector<std::string>{"user.a", "user.b"}));
  EXPECT_EQ(e.blocks(), (std::vector<Hash128>{Hash128{5, 6}}));
  ModelEntry plain;
  plain.set_target("");
  plain.set_xattrs(0, {});
  EXPECT_TRUE(plain.target().empty());
  EXPECT_TRUE(plain.blocks().empty());
  EXPECT_EQ(plain.xattr_hash(), 0u);
}

TEST(Model, InodeNamesComeInIndexOrderThroughPutsErasesAndGrowth) {
  // Against a reference: per (dev, ino), the names in the order they were indexed.
  std::mt19937 rng(11);
  Model m;
  std::map<std::string, std::pair<uint64_t, uint64_t>> where;  // path → (dev, ino)
  std::map<std::pair<uint64_t, uint64_t>, std::vector<std::string>> names;
  auto unindex = [&](const std::string& path) {
    auto it = where.find(path);
    if (it == where.end()) return;
    auto& v = names[it->second];
    v.erase(std::find(v.begin(), v.end(), path));
    where.erase(it);
  };
  for (int i = 0; i < 20000; ++i) {
    const auto hash = rng() % 10;  // (two draws in one expression: unspecified order)
    std::string path = "hash." + std::to_string(hash) + "/job." + std::to_string(rng() % 700);
    const uint64_t dev = 1 + rng() % 2;
    const uint64_t ino = 1 + rng() % 300;  // many names per inode, long clusters
    switch (rng() % 5) {
      case 0:
      case 1: {  // a new version under this name
        ModelEntry e = File(1);
        m.SetInode(e, dev, ino);
        unindex(path);
        m.Put(path, std::move(e));
        where[path] = {dev, ino};
        names[{dev, ino}].push_back(path);
        break;
      }
      case 2:  // removed
        unindex(path);
        m.Forget(path);
        break;
      case 3: {  // known from a manifest, inode learnt later
        unindex(path);
        auto it = m.Put(path, File(2));
        if (rng() % 2 == 0) {
          m.SetInode(it, dev, ino);
          where[path] = {dev, ino};
          names[{dev, ino}].push_back(path);
        }
        break;
      }
      case 4: {  // a directory: never indexed
        unindex(path);
        ModelEntry dir;
        dir.kind = NodeKind::kDirectory;
        m.SetInode(dir, dev, ino);
        m.Put(path, std::move(dir));
        break;
      }
    }
    if (i % 997 == 0) {
      for (const auto& [key, want] : names) {
        ASSERT_EQ(Names(m, key.first, key.second), want) << "step " << i;
      }
    }
  }
  for (const auto& [key, want] : names) EXPECT_EQ(Names(m, key.first, key.second), want);
  // Erased in random order, the table shrinks and the order holds; empty, it is gone.
  const size_t peak = m.index_capacity();
  std::vector<std::string> paths = Keys(m);
  std::shuffle(paths.begin(), paths.end(), rng);
  for (size_t i = 0; i < paths.size(); ++i) {
    unindex(paths[i]);
    m.Forget(paths[i]);
    if (i % 101 == 0) {
      for (const auto& [key, want] : names) {
        ASSERT_EQ(Names(m, key.first, key.second), want) << "erase " << i;
      }
    }
  }
  EXPECT_GT(peak, 1024u);
  EXPECT_EQ(m.size(), 0u);
  EXPECT_EQ(m.index_capacity(), 0u);
  EXPECT_TRUE(m.NamesOf(1, 1).empty());
}

TEST(Model, SetInodeOfTheSameInodeKeepsTheNamesPlace) {
  Model m;
  for (const char* p : {"a", "b", "c"}) {
    ModelEntry e = File(1);
    m.SetInode(e, 5, 9);
    m.Put(p, std::move(e));
  }
  m.SetInode(m.find("a"), 5, 9);
  EXPECT_EQ(Names(m, 5, 9), (std::vector<std::string>{"a", "b", "c"}));
  m.SetInode(m.find("a"), 5, 10);
  EXPECT_EQ(Names(m, 5, 9), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(Names(m, 5, 10), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(m.IsInode(m.at("a"), 5, 10));
  EXPECT_FALSE(m.IsInode(m.at("a"), 6, 10));
  EXPECT_TRUE(m.SameInode(m.at("b"), m.at("c")));
  EXPECT_FALSE(m.SameInode(m.at("a"), m.at("b")));
}

TEST(Model, TakeMovesAnEntryOutOfTheIndex) {
  Model m;
  ModelEntry e = File(3);
  e.set_target("kept");
  m.SetInode(e, 1, 2);
  m.Put("from", std::move(e));
  ModelEntry out;
  m.Take(m.find("from"), &out);
  EXPECT_TRUE(m.NamesOf(1, 2).empty());
  EXPECT_EQ(out.target(), "kept");
  m.Put("to", std::move(out));
  EXPECT_EQ(Names(m, 1, 2), (std::vector<std::string>{"to"}));
}

TEST(Model, DevicesPastTheLimitAreRecordedWithAnUnknownInode) {
  Model m;
  for (uint64_t dev = 1; dev <= Model::kMaxDevices + 5; ++dev) {
    ModelEntry e = File(1);
    m.SetInode(e, dev, 42);
    m.Put("f" + std::to_string(dev), std::move(e));
  }
  // Device 0 holds slot 0, so kMaxDevices - 1 real devices fit.
  EXPECT_EQ(Names(m, Model::kMaxDevices - 1, 42).size(), 1u);
  EXPECT_EQ(m.at("f" + std::to_string(Model::kMaxDevices + 1)).ino(), 0u);
  EXPECT_TRUE(m.NamesOf(Model::kMaxDevices + 1, 42).empty());
}

TEST(SlotPool, ReusesFreedSlotsAndGivesEverySlabBackWithTheLastOne) {
  SlotPool pool;
  std::vector<void*> slots;
  slots.push_back(pool.Allocate(128));
  const size_t per_slab = pool.slots_per_slab();
  EXPECT_EQ(per_slab, SlotPool::kSlabBytes / 128);
  while (slots.size() < 3 * per_slab + 1) slots.push_back(pool.Allocate(128));
  EXPECT_EQ(pool.slot_bytes(), 128u);
  EXPECT_EQ(pool.slabs(), 4u);
  EXPECT_EQ(pool.in_use(), 3 * per_slab + 1);
  // Distinct, 8-byte aligned and writable to the last byte.
  std::vector<void*> sorted = slots;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
  for (void* s : slots) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(s) % 8, 0u);
    std::memset(s, 0xab, 128);
  }
  // Each slot has its own handle, found from any byte inside it, and the handle leads
  // back to the slot.
  std::vector<uint32_t> handles;
  for (void* s : slots) {
    const uint32_t h = pool.Handle(s);
    EXPECT_EQ(pool.Handle(static_cast<char*>(s) + 127), h);
    EXPECT_EQ(pool.SlotAt(h), s);
    handles.push_back(h);
  }
  std::sort(handles.begin(), handles.end());
  EXPECT_EQ(std::adjacent_find(handles.begin(), handles.end()), handles.end());
  EXPECT_LT(handles.back(), 4 * per_slab);
  // Freed slots are the next ones handed out, the last freed first; no slab is added.
  pool.Free(slots[7]);
  pool.Free(slots[300]);
  pool.Free(slots[3]);
  EXPECT_EQ(pool.Allocate(128), slots[3]);
  EXPECT_EQ(pool.Allocate(128), slots[300]);
  EXPECT_EQ(pool.Allocate(128), slots[7]);
  EXPECT_EQ(pool.slabs(), 4u);
  // All but one freed: the slabs stay; the last one freed: they all go.
  for (size_t i = 1; i < slots.size(); ++i) pool.Free(slots[i]);
  EXPECT_EQ(pool.in_use(), 1u);
  EXPECT_EQ(pool.slabs(), 4u);
  pool.Free(slots[0]);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.slabs(), 0u);
  void* again = pool.Allocate(128);
  EXPECT_EQ(pool.slabs(), 1u);
  EXPECT_EQ(pool.SlotAt(pool.Handle(again)), again);
}

TEST(Model, APathsNodeTakesOnePoolSlotOfTheSizeTheLayoutSays) {
  // model.h: tree links 32 + key 32 + entry 56 (libstdc++'s node on a 64-bit target).
  Model m;
  EXPECT_EQ(m.node_bytes(), 0u);
  std::vector<std::string> paths;
  for (int i = 0; i < 1000; ++i) {
    paths.push_back("hash." + std::to_string(i % 10) + "/job." + std::to_string(10000000 + i) +
                    "/environment");  // 31 characters: inline
  }
  for (const std::string& p : paths) m.Put(p, File(1));
  if (sizeof(void*) == 8) {
    EXPECT_EQ(m.node_bytes(), 120u);
  }
  const size_t per_slab = SlotPool::kSlabBytes / m.node_bytes();
  EXPECT_EQ(m.node_slabs(), (1000 + per_slab - 1) / per_slab);
  // A moved model keeps its nodes and its pool; the moved-from one, cleared, is a model
  // again (inode index included).
  Model moved = std::move(m);
  EXPECT_EQ(moved.size(), 1000u);
  EXPECT_EQ(Keys(moved).front(), "hash.0/job.10000000/environment");
  m.clear();  // NOLINT(bugprone-use-after-move): what model.h allows after a move
  ModelEntry linked = File(2);
  m.SetInode(linked, 5, 9);
  m.Put("again", std::move(linked));
  EXPECT_EQ(Names(m, 5, 9), (std::vector<std::string>{"again"}));
  m.clear();
  // Emptied, the model holds no slab.
  for (const std::string& p : paths) moved.Forget(p);
  EXPECT_EQ(moved.size(), 0u);
  EXPECT_EQ(moved.node_slabs(), 0u);
}

TEST(Model, EveryEntryReadsBackTheOwnerItWasGivenPastTheTablesBoundToo) {
  // Owners drawn from a small set (a spool's handful) and from a range far past
  // kMaxOwners, checked against a reference after each change; copies keep theirs.
  std::mt19937_64 rng(19);
  Model m;
  std::map<std::string, std::pair<uint32_t, uint32_t>> reference;
  const size_t n = 2 * Model::kMaxOwners;  // about 1.5 × kMaxOwners distinct owners
  for (size_t i = 0; i < n; ++i) {
    const std::string path = "f" + std::to_string(i);
    ModelEntry e = File(i);
    const bool few = rng() % 4 == 0;
    const auto uid = static_cast<uint32_t>(few ? 100 + rng() % 3 : i + 1000);
    const auto gid = static_cast<uint32_t>(few ? 200 : rng());
    m.SetOwner(e, uid, gid);
    m.Put(path, std::move(e));
    reference[path] = {uid, gid};
  }
  EXPECT_EQ(m.owners(), Model::kMaxOwners - 1);  // full: the rest are in their entries
  // Changes: to another owner (maybe a new one, maybe root:root), and copies.
  for (int round = 0; round < 20000; ++round) {
    const std::string path = "f" + std::to_string(rng() % n);
    if (rng() % 3 == 0) {
      const std::string to = "f" + std::to_string(rng() % n);
      m.Put(to, m.at(path));
      reference[to] = reference[path];
      continue;
    }
    const auto uid = static_cast<uint32_t>(rng() % 2 ? 0 : rng());
    const auto gid = static_cast<uint32_t>(uid == 0 ? 0 : rng());
    m.SetOwner(m.at(path), uid, gid);
    reference[path] = {uid, gid};
  }
  // What else an entry keeps behind its pointer comes and goes; the owner stays.
  for (size_t i = 0; i < n; i += 7) {
    ModelEntry& e = m.at("f" + std::to_string(i));
    e.set_blocks({Hash128{1, 2}});
    e.set_blocks({});
    e.set_target("t");
    e.set_target("");
  }
  // Moved, the model keeps its tables with its entries.
  Model moved = std::move(m);
  m.clear();  // NOLINT(bugprone-use-after-move): what model.h allows after a move
  size_t checked = 0;
  for (const auto& [path, owner] : reference) {
    const ModelEntry& e = moved.at(path);
    ASSERT_EQ(moved.uid(e), owner.first) << path;
    ASSERT_EQ(moved.gid(e), owner.second) << path;
    ASSERT_TRUE(moved.HasOwner(e, owner.first, owner.second)) << path;
    ASSERT_FALSE(moved.HasOwner(e, owner.first, owner.second + 1)) << path;
    ++checked;
  }
  EXPECT_EQ(checked, n);
  // Cleared, the table starts over: an owner it held before gets a new index.
  moved.clear();
  EXPECT_EQ(moved.owners(), 0u);
  ModelEntry e = File(1);
  moved.SetOwner(e, 7, 8);
  ModelEntry again = File(1);
  moved.SetOwner(again, 101, 200);  // one of the few from before the clear
  EXPECT_EQ(moved.owners(), 2u);
  moved.Put("x", std::move(e));
  moved.Put("y", std::move(again));
  EXPECT_EQ(moved.uid(moved.at("x")), 7u);
  EXPECT_EQ(moved.gid(moved.at("x")), 8u);
  EXPECT_EQ(moved.uid(moved.at("y")), 101u);
  EXPECT_EQ(moved.gid(moved.at("y")), 200u);
  ModelEntry fresh;
  EXPECT_TRUE(moved.HasOwner(fresh, 0, 0));  // a default entry is root:root
}

TEST(ModelEntry, ModeKeepsPermissionBitsAndMarksAnythingElseUnknown) {
  EXPECT_EQ(ModelEntry::Mode(0644), 0644);
  EXPECT_EQ(ModelEntry::Mode(07777), 07777);
  EXPECT_EQ(ModelEntry::Mode(0100644), ModelEntry::kUnknownMode);  // with the file type
  EXPECT_EQ(ModelEntry::Mode(0xffffffffu), ModelEntry::kUnknownMode);
  for (uint32_t mode = 0; mode <= 07777; ++mode) ASSERT_EQ(ModelEntry::Mode(mode), mode);
}

}  // namespace
}  // namespace hasync::engine
