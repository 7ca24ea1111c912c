// Writes the seed corpus for resync_fuzz: standby replies (MANIFEST_ENTRIES, then
// BLOCKS_REPLY) encoded as frame streams, built from the real manifest of the fixed tree
// of resync_tree.h (BuildManifest, as the standby makes it) and edited: the exact tree,
// an empty one, extra and missing names, kinds that differ, a shorter big file with its
// real block hashes (the delta path), and replies the primary must refuse.
// Usage: make_resync_corpus <output dir>. The output is committed under
// tests/fuzz/corpus/resync/; rerun it when the tree, the Sender or the messages change.
#include <cstdio>
#include <string>
#include <vector>

#include "base/hash.h"
#include "engine/sync/verify.h"
#include "tests/fuzz/resync_tree.h"
#include "wire/frame.h"

namespace {

using namespace hasync;
using wire::EntryKind;
using wire::ManifestEntry;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "make_resync_corpus: %s\n", why.c_str());
  std::exit(1);
}

void Write(const std::string& path, const std::vector<std::byte>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  bool ok = f != nullptr && std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (f == nullptr || std::fclose(f) != 0 || !ok) Die("cannot write " + path);
}

// The manifest as MANIFEST_ENTRIES frames of at most `per_frame` entries, the last
// flagged, then `after`.
std::vector<std::byte> Stream(const std::vector<ManifestEntry>& entries, size_t per_frame,
                              const std::vector<wire::Message>& after = {},
                              uint64_t request_id = 1) {
  std::vector<std::byte> out;
  size_t i = 0;
  do {
    wire::ManifestEntries m{.request_id = request_id};
    for (; i < entries.size() && m.entries.size() < per_frame; ++i) m.entries.push_back(entries[i]);
    if (i == entries.size()) m.flags = wire::kManifestLast;
    wire::EncodeFrame(wire::Frame{5, 0, std::move(m)}, out);
  } while (i < entries.size());
  for (const wire::Message& m : after) wire::EncodeFrame(wire::Frame{5, 0, m}, out);
  return out;
}

ManifestEntry Entry(EntryKind kind, std::string path, uint64_t size = 0) {
  ManifestEntry e;
  e.kind = kind;
  e.mode = kind == EntryKind::kDirectory ? 0755 : 0644;
  e.size = kind == EntryKind::kSymlink ? 3 : size;
  e.mtime_ns = fuzz::kTreeMtimeNs;
  if (kind != EntryKind::kDirectory) e.hash = Hash128{size, 7};
  e.path = std::move(path);
  return e;
}

ManifestEntry* Find(std::vector<ManifestEntry>& entries, std::string_view path) {
  for (ManifestEntry& e : entries) {
    if (e.path == path) return &e;
  }
  Die("no entry " + std::string(path));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  fuzz::FuzzTree tree;
  auto built = engine::BuildManifest(tree.root_fds(), 1000);
  if (!built.ok()) Die("BuildManifest: " + built.status().message());
  const std::vector<ManifestEntry> exact = *built;

  Write(dir + "/exact", Stream(exact, wire::kManifestEntriesMax));
  Write(dir + "/exact_by3", Stream(exact, 3));
  Write(dir + "/empty", Stream({}, 1));
  Write(dir + "/roots_only",
        Stream({Entry(EntryKind::kDirectory, "0"), Entry(EntryKind::kDirectory, "1")}, 8));

  // Names the primary does not have (removed bottom-up), and some it has, missing.
  std::vector<ManifestEntry> extra = exact;
  extra.push_back(Entry(EntryKind::kDirectory, "0/gone"));
  extra.push_back(Entry(EntryKind::kDirectory, "0/gone/deeper"));
  extra.push_back(Entry(EntryKind::kFile, "0/gone/deeper/f", 10));
  extra.push_back(Entry(EntryKind::kSymlink, "0/gone/ln"));
  extra.push_back(Entry(EntryKind::kFile, "0/a/zz", 1));
  extra.push_back(Entry(EntryKind::kFile, "1/d/old", 2));
  Write(dir + "/extra_names", Stream(extra, 4));
  std::vector<ManifestEntry> missing;
  for (const ManifestEntry& e : exact) {
    if (e.path.find("sub") == std::string::npos && e.path != "0/a/f1.old") missing.push_back(e);
  }
  Write(dir + "/missing_names", Stream(missing, 5));

  // Kinds that differ: a directory (with a child) where the primary has a file, a file
  // where it has a directory, a symlink where it has a file.
  std::vector<ManifestEntry> kinds = exact;
  *Find(kinds, "0/a/f1") = Entry(EntryKind::kDirectory, "0/a/f1");
  kinds.push_back(Entry(EntryKind::kFile, "0/a/f1/child", 4));
  std::erase_if(kinds, [](const ManifestEntry& e) { return e.path.starts_with("0/a/sub/"); });
  *Find(kinds, "0/a/sub") = Entry(EntryKind::kFile, "0/a/sub", 9);
  *Find(kinds, "0/top") = Entry(EntryKind::kSymlink, "0/top");
  Write(dir + "/kinds_differ", Stream(kinds, 6));

  // The standby holds a shorter, older big file: the primary asks for its block hashes
  // (request 2, the only large file) and ships only the blocks that differ.
  const std::string big = fuzz::BigContent();
  const uint32_t bs = wire::kBlockSizeMin;
  const uint64_t old_size = 10 * bs + 50;
  std::vector<Hash128> hashes;
  for (uint64_t at = 0; at < old_size; at += bs) {
    std::string_view block =
        std::string_view(big).substr(at, std::min<uint64_t>(bs, old_size - at));
    hashes.push_back(Xxh3_128(std::as_bytes(std::span(block.data(), block.size()))));
  }
  hashes[3].low ^= 1;  // one block differs
  std::vector<ManifestEntry> shorter = exact;
  ManifestEntry* b = Find(shorter, "0/jobs/hash.3/big");
  b->size = old_size;
  b->mtime_ns -= 1'000'000'000;
  b->hash = Hash128{1, 2};
  auto reply = [&](uint64_t first, uint64_t count, uint8_t flags) {
    std::vector<Hash128> part(hashes.begin() + static_cast<std::ptrdiff_t>(first),
                              hashes.begin() + static_cast<std::ptrdiff_t>(first + count));
    return wire::BlocksReply{2, old_size, bs, first, flags, std::move(part)};
  };
  const uint64_t n = hashes.size();
  Write(dir + "/delta_one_reply", Stream(shorter, 16, {reply(0, n, wire::kBlocksLast)}));
  Write(
      dir + "/delta_two_replies",
      Stream(shorter, 16, {reply(0, 6, 0), wire::Pong{1, 2}, reply(6, n - 6, wire::kBlocksLast)}));
  Write(dir + "/delta_missing",
        Stream(shorter, 16,
               {wire::BlocksReply{2, 0, bs, 0, wire::kBlocksLast | wire::kBlocksMissing, {}}}));
  Write(dir + "/delta_out_of_order",
        Stream(shorter, 16, {reply(6, n - 6, 0), reply(0, 6, wire::kBlocksLast)}));
  Write(dir + "/delta_short", Stream(shorter, 16, {reply(0, n - 2, wire::kBlocksLast)}));
  Write(dir + "/delta_unknown_id",
        Stream(shorter, 16, {wire::BlocksReply{99, old_size, bs, 0, wire::kBlocksLast, {}}}));

  // Refused or ignored: a reply before the manifest ends, a verify manifest first, a
  // wire path naming a root the primary does not have.
  std::vector<std::byte> early = Stream({}, 1, {}, 1);
  std::vector<std::byte> s;
  wire::EncodeFrame(wire::Frame{5, 0, reply(0, 1, 0)}, s);
  s.insert(s.end(), early.begin(), early.end());
  Write(dir + "/reply_before_manifest", s);
  std::vector<std::byte> verify = Stream(exact, 50, {}, engine::kVerifyRequestIdBase);
  std::vector<std::byte> then = Stream(extra, 50);
  verify.insert(verify.end(), then.begin(), then.end());
  Write(dir + "/verify_then_resync", verify);
  std::vector<ManifestEntry> bad_root = exact;
  bad_root.push_back(Entry(EntryKind::kFile, "2/x", 1));
  Write(dir + "/unknown_root", Stream(bad_root, 50));
  // A name in the standby's reserved temp namespace, which its own walk never lists.
  std::vector<ManifestEntry> reserved = exact;
  reserved.push_back(Entry(EntryKind::kFile, "0/a/.hasync-tmp.77", 5));
  Write(dir + "/reserved_name", Stream(reserved, 50));
  // A sync root listed as a file (the primary would plan to unlink the root itself).
  std::vector<ManifestEntry> root_file = exact;
  *Find(root_file, "1") = Entry(EntryKind::kFile, "1", 0);
  Write(dir + "/root_not_directory", Stream(root_file, 50));
  return 0;
}
