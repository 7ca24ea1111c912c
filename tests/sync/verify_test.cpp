// Manifests and their comparison (engine/sync/verify.h), the heart of `hasync verify`:
// what counts as a difference (by replication's promises and the standby's policy), a
// manifest of a real tree, the framing of a large one, and the background job.
#include "engine/sync/verify.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>
#include <tuple>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "wire/frame.h"
#include "wire/limits.h"

namespace hasync::engine {
namespace {

using ::testing::HasSubstr;
using wire::EntryKind;
using wire::ManifestEntry;

ManifestEntry File(std::string path, uint32_t mode = 0644, uint64_t size = 10, uint64_t hash = 1) {
  ManifestEntry e;
  e.kind = EntryKind::kFile;
  e.mode = mode;
  e.uid = 0;
  e.gid = 0;
  e.size = size;
  e.mtime_ns = 1'700'000'000'000'000'000;
  e.hash = Hash128{hash, hash};
  e.path = std::move(path);
  return e;
}

ManifestEntry Dir(std::string path, uint32_t mode = 0755, int64_t mtime = 1) {
  ManifestEntry e;
  e.kind = EntryKind::kDirectory;
  e.mode = mode;
  e.mtime_ns = mtime;
  e.path = std::move(path);
  return e;
}

TEST(Verify, IdenticalManifestsInAnyOrderHaveNoDifference) {
  std::vector<ManifestEntry> p = {Dir("0/"), File("0/a"), File("0/b", 0600, 3, 9)};
  std::vector<ManifestEntry> s = {p[2], p[0], p[1]};
  EXPECT_TRUE(CompareManifests(p, s).empty());
}

TEST(Verify, EachKindOfDifferenceIsNamed) {
  std::vector<ManifestEntry> p = {File("0/content", 0644, 10, 1),
                                  File("0/size", 0644, 10, 1),
                                  File("0/mode"),
                                  File("0/owner"),
                                  File("0/mtime"),
                                  File("0/gone"),
                                  File("0/kind")};
  std::vector<ManifestEntry> s = p;
  s[0].hash = Hash128{2, 2};
  s[1].size = 11;
  s[2].mode = 0600;
  s[3].uid = 1000;
  s[4].mtime_ns += 1;
  s.erase(s.begin() + 5);
  s[5] = Dir("0/kind");
  s.push_back(File("0/extra"));
  auto d = CompareManifests(p, s);
  std::map<std::string, std::string> by_path;
  for (const auto& x : d) by_path[x.path] = x.what;
  ASSERT_EQ(by_path.size(), 8u);
  EXPECT_EQ(by_path["0/content"], "content: same size, different bytes");
  EXPECT_EQ(by_path["0/size"], "content: size 10 vs 11");
  EXPECT_EQ(by_path["0/mode"], "mode 644 vs 600");
  EXPECT_EQ(by_path["0/owner"], "owner 0:0 vs 1000:0");
  EXPECT_THAT(by_path["0/mtime"], HasSubstr("mtime "));
  EXPECT_EQ(by_path["0/gone"], "missing on the standby");
  EXPECT_EQ(by_path["0/extra"], "only on the standby");
  EXPECT_EQ(by_path["0/kind"], "kind: file on the primary, directory on the standby");
  // Sorted by path, with both sides' entries where they exist.
  EXPECT_TRUE(std::is_sorted(d.begin(), d.end(),
                             [](const auto& a, const auto& b) { return a.path < b.path; }));
  for (const auto& x : d) {
    if (x.path == "0/gone") {
      EXPECT_FALSE(x.standby.has_value());
    }
    if (x.path == "0/extra") {
      EXPECT_FALSE(x.primary.has_value());
    }
  }
}

TEST(Verify, WhatReplicationDoesNotPromiseIsNoDifference) {
  // Directory mtimes move with every entry created in them; symlink modes mean nothing;
  // the standby strips setuid/setgid from files and setuid from directories by policy.
  std::vector<ManifestEntry> p = {Dir("0/d", 02775, 5), File("0/suid", 04755),
                                  File("0/sgid", 02755), Dir("0/x", 04755)};
  ManifestEntry link = File("0/l", 0, 5, 3);
  link.kind = EntryKind::kSymlink;
  p.push_back(link);
  std::vector<ManifestEntry> s = p;
  s[0].mtime_ns = 99;
  s[1].mode = 0755;
  s[2].mode = 0755;
  s[3].mode = 0755;
  EXPECT_TRUE(CompareManifests(p, s).empty());
  // …but a setgid directory that lost its bit is a difference (the policy keeps it).
  s[0].mode = 0775;
  auto d = CompareManifests(p, s);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].what, "mode 2775 vs 775");
}

TEST(Verify, XattrsAndHardLinkStructureAreCompared) {
  // Primary: a and b one inode, c alone, xattr user.x on c. Standby: a alone, b and c one
  // inode, no xattrs. Every name in an affected group reports what it shares.
  std::vector<ManifestEntry> p = {File("0/a"), File("0/b"), File("0/c")};
  p[0].link_id = p[1].link_id = 7;
  p[2].xattr_hash = 42;
  p[2].xattr_names = std::string("user.x") + '\0';
  std::vector<ManifestEntry> s = {File("0/a"), File("0/b"), File("0/c")};
  s[1].link_id = s[2].link_id = 99;  // other values: only the grouping matters
  auto d = CompareManifests(p, s);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_THAT(d[0].what, HasSubstr("hard links: one inode with [0/b] on the primary, with [] on"));
  EXPECT_THAT(d[1].what, HasSubstr("with [0/a] on the primary, with [0/c] on the standby"));
  EXPECT_THAT(d[2].what, HasSubstr("xattrs [user.x] vs [none]"));
  EXPECT_THAT(d[2].what, HasSubstr("with [] on the primary, with [0/b] on the standby"));
  // The same grouping under other link ids, and a link id of a group of one (its other
  // names are outside the roots), are no difference.
  s = p;
  s[0].link_id = s[1].link_id = 1234;
  s[2].link_id = 5;
  EXPECT_TRUE(CompareManifests(p, s).empty());
}

TEST(Verify, ManifestEntriesWithXattrsAndLinksSurviveTheWire) {
  wire::ManifestEntries m;
  m.request_id = 3;
  m.flags = wire::kManifestLast;
  m.entries = {File("0/a"), File("0/b")};
  m.entries[0].link_id = 77;
  m.entries[0].xattr_hash = 5;
  m.entries[0].xattr_names = std::string("user.a") + '\0' + "user.b" + '\0';
  auto bytes = wire::EncodeFrame(wire::Frame{1, 0, m});
  auto back = wire::DecodeFrame(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(std::get<wire::ManifestEntries>(back->message), m);
  EXPECT_EQ(bytes.size(), wire::kFrameHeaderSize + wire::kManifestEntriesPrefixSize +
                              ManifestEntryWireSize(m.entries[0]) +
                              ManifestEntryWireSize(m.entries[1]));
  // Refused: names out of order, a name without its NUL, names with hash 0, a link id
  // on a directory.
  auto refused = [&](ManifestEntry e) {
    wire::ManifestEntries bad = m;
    bad.entries = {std::move(e)};
    // The encoder asserts validity, so the validator the decoder runs is asked directly.
    return !wire::ValidateMessage(bad).ok();
  };
  ManifestEntry e = File("0/x");
  e.xattr_hash = 1;
  e.xattr_names = std::string("user.b") + '\0' + "user.a" + '\0';
  EXPECT_TRUE(refused(e));
  e.xattr_names = "user.a";
  EXPECT_TRUE(refused(e));
  e.xattr_hash = 0;
  e.xattr_names = std::string("user.a") + '\0';
  EXPECT_TRUE(refused(e));
  ManifestEntry d = Dir("0/d");
  d.link_id = 3;
  EXPECT_TRUE(refused(d));
}

class TempTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hasync-verify-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  int OpenRoot(const std::string& sub) {
    std::filesystem::create_directories(dir_ + "/" + sub);
    int fd = open((dir_ + "/" + sub).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    fds_.emplace_back(fd);
    return fd;
  }
  std::string dir_;
  std::vector<UniqueFd> fds_;
};

TEST_F(TempTree, ManifestOfATreeListsEveryEntryWithContentHashes) {
  int a = OpenRoot("a"), b = OpenRoot("b");
  std::filesystem::create_directories(dir_ + "/a/hash.1/job.11");
  std::ofstream(dir_ + "/a/hash.1/job.11/script") << "#!/bin/sh\n";
  std::ofstream(dir_ + "/a/job_state") << std::string(100'000, 'j');
  std::filesystem::create_symlink("job_state", dir_ + "/a/link");
  std::ofstream(dir_ + "/b/other") << "x";
  auto m = BuildManifest({a, b}, 1000);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  std::map<std::string, ManifestEntry> by;
  for (const auto& e : *m) by[e.path] = e;
  EXPECT_EQ(by.size(), 8u);  // 2 roots + hash.1 + job.11 + script + job_state + link + other
  ASSERT_TRUE(by.count("0/job_state"));
  EXPECT_EQ(by["0/job_state"].size, 100'000u);
  EXPECT_NE(by["0/job_state"].hash, (Hash128{}));
  EXPECT_EQ(by["0/link"].kind, EntryKind::kSymlink);
  EXPECT_TRUE(by.count("1/other"));
  // A tree compared with itself; then one byte changed.
  auto again = BuildManifest({a, b}, 1000);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(CompareManifests(*m, *again).empty());
  {
    std::fstream f(dir_ + "/a/job_state", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(50'000);
    f.put('k');
  }
  auto changed = BuildManifest({a, b}, 1000);
  ASSERT_TRUE(changed.ok());
  auto d = CompareManifests(*m, *changed);
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d[0].path, "0/job_state");
  // The bound holds.
  auto small = BuildManifest({a, b}, 3);
  EXPECT_EQ(small.status().code(), Code::kResourceExhausted);
}

TEST_F(TempTree, AJobBuildsOffTheCallersThreadAndCanBeCancelled) {
  int a = OpenRoot("a");
  for (int i = 0; i < 50; ++i) std::ofstream(dir_ + "/a/f" + std::to_string(i)) << i;
  ManifestJob job({a}, 1000);
  for (int i = 0; i < 500 && !job.done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(job.done());
  auto m = job.Take();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->size(), 51u);
  EXPECT_FALSE(job.Take().ok()) << "taken once";
  // Destroying a job in progress cancels and joins it (no leak, no hang).
  for (int i = 0; i < 20; ++i) ManifestJob other({a}, 1000);
}

TEST_F(TempTree, ManifestListsXattrsAndWhichNamesShareAnInode) {
  int a = OpenRoot("a");
  std::ofstream(dir_ + "/a/f") << "x";
  std::ofstream(dir_ + "/a/g") << "x";
  ASSERT_EQ(link((dir_ + "/a/f").c_str(), (dir_ + "/a/f2").c_str()), 0);
  if (setxattr((dir_ + "/a/g").c_str(), "user.job", "1", 1, 0) != 0) {
    GTEST_SKIP() << "SKIPPED LOUDLY: this filesystem keeps no user xattrs (" << strerror(errno)
                 << ")";
  }
  auto m = BuildManifest({a}, 100);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  std::map<std::string, ManifestEntry> by;
  for (const auto& e : *m) by[e.path] = e;
  EXPECT_NE(by["0/f"].link_id, 0u);
  EXPECT_EQ(by["0/f"].link_id, by["0/f2"].link_id);
  EXPECT_EQ(by["0/g"].link_id, 0u);
  EXPECT_NE(by["0/g"].xattr_hash, 0u);
  EXPECT_EQ(by["0/g"].xattr_names, std::string("user.job") + '\0');
  EXPECT_EQ(by["0/f"].xattr_hash, 0u);
  // The walk opens entries from their parent's descriptor; each entry equals what
  // MakeManifestEntry makes from the root for the same path.
  std::filesystem::create_directories(dir_ + "/a/d1/d2/d3");
  std::ofstream(dir_ + "/a/d1/d2/d3/deep") << "deep";
  std::ofstream(dir_ + "/a/d1/side") << "side";
  auto walked = BuildManifest({a}, 100);
  ASSERT_TRUE(walked.ok()) << walked.status().ToString();
  EXPECT_EQ(walked->size(), 9u);
  for (const auto& e : *walked) {
    std::string rel = e.path.size() > 2 ? e.path.substr(2) : "";
    auto info = StatPath(a, rel);
    ASSERT_TRUE(info.ok()) << e.path;
    auto one = MakeManifestEntry(a, 0, *info);
    ASSERT_TRUE(one.ok()) << e.path;
    EXPECT_EQ(*one, e) << e.path;
  }
}

TEST_F(TempTree, ABackgroundWalkKeepsToItsCpuBudget) {
  int a = OpenRoot("a");
  auto cpu_and_wall = [&](int percent) {
    timespec c0{}, c1{}, w0{}, w1{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    clock_gettime(CLOCK_MONOTONIC, &w0);
    auto m = BuildManifest({a}, 1'000'000, nullptr, percent);
    EXPECT_TRUE(m.ok());
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    auto ns = [](timespec t) {
      return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
    };
    return std::make_pair(ns(c1) - ns(c0), ns(w1) - ns(w0));
  };
  // The walk must cost several budget slices of CPU to be judged, whatever the machine's
  // speed: the tree grows (2,000 files of 128 KiB a round, at most 6 rounds) until it does.
  // A fast CPU hashed the first round in 27 ms, under the 30 ms the check needs.
  const double slice = static_cast<double>(CpuBudget::kSliceNs);
  const std::string big(128 * 1024, 'b');
  double cpu = 0, wall = 0;
  for (int round = 0; round < 6 && cpu <= 5 * slice; ++round) {
    for (int i = 0; i < 2000; ++i) {
      std::ofstream(dir_ + "/a/f" + std::to_string(round) + "." + std::to_string(i)) << big;
    }
    std::tie(cpu, wall) = cpu_and_wall(20);
    std::cerr << "walk at 20 % over " << (round + 1) * 2000 << " files: " << cpu / 1e6
              << " ms CPU over " << wall / 1e6 << " ms\n";
  }
  // Not a timing assert on speed: a slow machine only makes both longer. The budget
  // sleeps 4 × every full 10 ms slice of CPU (20 %); only the last slice may run unslept,
  // (with the entry that ends it), so wall ≥ cpu + 4 × (cpu − 2 slices) on any machine.
  ASSERT_GT(cpu, 3 * slice) << "too little work to judge the budget after 12,000 files";
  EXPECT_GE(wall * 1.001, cpu + 4 * (cpu - 2 * slice))
      << "cpu " << cpu / 1e6 << " ms over " << wall / 1e6 << " ms";
}

class Collect : public MessageSink {
 public:
  Status Emit(uint64_t, wire::Message message) override {
    frames.push_back(std::get<wire::ManifestEntries>(std::move(message)));
    return Status::Ok();
  }
  std::vector<wire::ManifestEntries> frames;
};

TEST(Verify, ALargeManifestIsSplitIntoFramesWithinTheLimitsAndTheLastIsFlagged) {
  std::vector<ManifestEntry> entries;
  for (int i = 0; i < 1000; ++i) {
    entries.push_back(
        File("0/" + std::string(static_cast<size_t>(i % 300) + 1, 'p') + std::to_string(i)));
  }
  Collect sink;
  ASSERT_TRUE(EmitManifest(sink, kVerifyRequestIdBase + 7, entries).ok());
  ASSERT_GE(sink.frames.size(), 1000u / wire::kManifestEntriesMax);
  size_t total = 0;
  for (size_t i = 0; i < sink.frames.size(); ++i) {
    const auto& f = sink.frames[i];
    EXPECT_EQ(f.request_id, kVerifyRequestIdBase + 7);
    EXPECT_LE(f.entries.size(), wire::kManifestEntriesMax);
    EXPECT_LE(wire::EncodedBodySize(wire::Message(f)), wire::kFrameBodyMax);
    EXPECT_EQ((f.flags & wire::kManifestLast) != 0, i + 1 == sink.frames.size());
    total += f.entries.size();
  }
  EXPECT_EQ(total, entries.size());
  Collect empty;
  ASSERT_TRUE(EmitManifest(empty, 9, {}).ok());
  ASSERT_EQ(empty.frames.size(), 1u);
  EXPECT_EQ(empty.frames[0].flags, wire::kManifestLast);
}

}  // namespace
}  // namespace hasync::engine
