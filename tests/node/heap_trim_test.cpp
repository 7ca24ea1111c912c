#include "engine/node/heap_trim.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace hasync::engine {
namespace {

constexpr int64_t kEvery = HeapTrim::kEveryNs;
constexpr int64_t kQuiet = HeapTrim::kQuietNs;
constexpr size_t kMiB = size_t{1} << 20;

// A scripted process on the loop's 20 ms tick: `rss` is what each sample reads; a trim
// takes it to `after_trim` (or leaves it when that is 0).
struct Fake {
  HeapTrim h;
  size_t rss = 0;
  size_t after_trim = 0;
  int trims = 0;
  int samples = 0;

  // Ticks from `from` to `to`; returns the trims made.
  int Tick(int64_t from, int64_t to) {
    int made = 0;
    for (int64_t now = from; now < to; now += 20'000'000) {
      if (!h.SampleDue(now)) continue;
      ++samples;
      if (!h.Sample(now, rss)) continue;
      ++made;
      ++trims;
      if (after_trim != 0) rss = after_trim;
      h.Trimmed(rss);
    }
    return made;
  }
};

TEST(HeapTrim, TrimsOnceABurstIsOverAndNotWhileItGoesOn) {
  Fake f;
  f.rss = 40 * kMiB;
  EXPECT_EQ(f.Tick(0, kEvery), 0);
  // The burst: the RSS grows by 4 MiB a sample for a minute, to 156 MiB.
  int64_t now = kEvery;
  for (; now < 30 * kEvery; now += kEvery) {
    f.rss += 4 * kMiB;
    EXPECT_EQ(f.Tick(now, now + kEvery), 0) << "still growing at " << now;
  }
  ASSERT_EQ(f.rss, 156 * kMiB);
  // At rest, its freed part on the free lists: one trim, kQuiet after the last growth.
  f.after_trim = 50 * kMiB;
  const int64_t last_growth = now - kEvery;
  EXPECT_EQ(f.Tick(now, last_growth + kQuiet), 0) << "not before kQuiet";
  EXPECT_EQ(f.Tick(last_growth + kQuiet, last_growth + kQuiet + kEvery), 1);
  EXPECT_EQ(f.rss, 50 * kMiB);
  EXPECT_EQ(f.Tick(last_growth + kQuiet + kEvery, 20 * kQuiet), 0) << "nothing new";
  EXPECT_EQ(f.h.trims(), 1u);
}

TEST(HeapTrim, SamplesOncePerInterval) {
  Fake f;
  f.rss = 10 * kMiB;
  f.Tick(0, 10 * kEvery);
  EXPECT_EQ(f.samples, 10);
}

TEST(HeapTrim, ATrimThatFreedNothingIsNotRepeated) {
  Fake f;
  f.rss = 100 * kMiB;
  f.Tick(0, kEvery);
  f.rss = 200 * kMiB;  // the tree grew: all of it in use
  f.after_trim = 0;    // the trim gives nothing back
  EXPECT_EQ(f.Tick(kEvery, kEvery + kQuiet + kEvery), 1);
  EXPECT_EQ(f.Tick(kEvery + kQuiet + kEvery, 30 * kQuiet), 0);
  EXPECT_EQ(f.trims, 1);
}

TEST(HeapTrim, SmallGrowthIsLeftAlone) {
  Fake f;
  f.rss = 200 * kMiB;
  f.Tick(0, kEvery);
  f.rss = 220 * kMiB;  // above kStep, under an eighth of 200 MiB
  f.after_trim = 100 * kMiB;
  EXPECT_EQ(f.Tick(kEvery, 5 * kQuiet), 0);
  Fake g;
  g.rss = 10 * kMiB;
  g.Tick(0, kEvery);
  g.rss = 17 * kMiB;  // more than an eighth, under kStep
  g.after_trim = 5 * kMiB;
  EXPECT_EQ(g.Tick(kEvery, 5 * kQuiet), 0);
}

TEST(HeapTrim, ABaseThatShrankIsTheNewBase) {
  Fake f;
  f.rss = 100 * kMiB;
  f.Tick(0, kEvery);
  f.rss = 60 * kMiB;  // a buffer given back (munmap)
  EXPECT_EQ(f.Tick(kEvery, 2 * kQuiet), 0);
  f.rss = 70 * kMiB;  // 10 MiB over 60: a step and more than an eighth
  f.after_trim = 61 * kMiB;
  EXPECT_EQ(f.Tick(2 * kQuiet, 4 * kQuiet), 1);
}

TEST(HeapTrim, MemoryReusedAfterATrimIsTrimmedAgain) {
  Fake f;
  f.rss = 50 * kMiB;
  f.Tick(0, kEvery);
  f.rss = 150 * kMiB;
  f.after_trim = 60 * kMiB;
  EXPECT_EQ(f.Tick(kEvery, 2 * kQuiet), 1);
  // The next burst faults the trimmed pages back in and frees them again.
  f.rss = 140 * kMiB;
  EXPECT_EQ(f.Tick(2 * kQuiet, 4 * kQuiet), 1);
  EXPECT_EQ(f.trims, 2);
}

TEST(HeapTrim, AnUnreadableRssIsNoSample) {
  Fake f;
  f.rss = 0;
  EXPECT_EQ(f.Tick(0, 5 * kQuiet), 0);
  f.rss = 100 * kMiB;  // the first readable sample is the base
  EXPECT_EQ(f.Tick(5 * kQuiet, 10 * kQuiet), 0);
  f.rss = 0;  // unreadable again: not a fall to 0, not a new base
  EXPECT_EQ(f.Tick(10 * kQuiet, 12 * kQuiet), 0);
  f.rss = 105 * kMiB;
  EXPECT_EQ(f.Tick(12 * kQuiet, 20 * kQuiet), 0) << "5 MiB over the base: under kStep";
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HASYNC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HASYNC_SANITIZED 1
#endif
#endif

// The real allocator: 96 MiB of small blocks, every 32nd kept (so the heap's top cannot
// shrink past them, as the model's nodes pin a node's heap), the rest freed. The policy
// must call for a trim once the RSS is quiet, and TrimHeap must give most pages back.
TEST(HeapTrim, GivesAFragmentedHeapsFreePagesBackToTheKernel) {
#ifdef HASYNC_SANITIZED
  GTEST_SKIP() << "a sanitizer replaces glibc's allocator; malloc_trim does not reach its heap";
#else
  HeapTrim h;
  ASSERT_GT(ResidentBytes(), 0u) << "/proc/self/statm";
  EXPECT_FALSE(h.Sample(0, ResidentBytes()));
  constexpr size_t kBlock = 1000;
  constexpr size_t kCount = 96 * kMiB / kBlock;
  std::vector<std::unique_ptr<char[]> > blocks(kCount);
  for (auto& b : blocks) {
    b.reset(new char[kBlock]);
    std::memset(b.get(), 0x5a, kBlock);  // touched: resident
  }
  for (size_t i = 0; i < kCount; ++i) {
    if (i % 32 != 0) blocks[i].reset();
  }
  EXPECT_FALSE(h.Sample(kQuiet, ResidentBytes())) << "grew since the last sample";
  ASSERT_TRUE(h.Sample(2 * kQuiet, ResidentBytes())) << "quiet for kQuiet, 96 MiB above";
  const HeapTrimmed t = TrimHeap();
  // What stays: the kept blocks (3 MiB) and the pages they sit on (a 4 KiB page holds
  // about 4 blocks, one in 32 kept: ~1 page in 8 stays resident, ~12 MiB).
  EXPECT_GT(t.rss_before, t.rss_after + 60 * kMiB)
      << "RSS before " << (t.rss_before >> 10) << " KiB, after " << (t.rss_after >> 10);
#endif
}

#ifndef HASYNC_SANITIZED  // the one test that uses these skips under a sanitizer
// Runs this test binary again with only `test` selected and HASYNC_FRESH_PROCESS=1: for a
// test of the allocator that must start in a process no other test has used (arenas
// made by earlier tests' threads stay, and a new thread may take a free one). Returns
// the child's wait status and its output (up to 64 KiB).
std::pair<int, std::string> RunInFreshProcess(const std::string& test) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return {-1, std::string("pipe: ") + strerror(errno)};
  const std::string filter = "--gtest_filter=" + test;
  char* argv[] = {const_cast<char*>("/proc/self/exe"), const_cast<char*>(filter.c_str()), nullptr};
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.emplace_back("HASYNC_FRESH_PROCESS=1");
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    return {-1, std::string("posix_spawn: ") + strerror(rc)};
  }
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) {
    if (text.size() < 64 * 1024) text.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  int status = -1;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return {status, text};
}

bool InFreshProcess() {
  const char* v = std::getenv("HASYNC_FRESH_PROCESS");
  return v != nullptr && std::string(v) == "1";
}
#endif

// A thread's freed memory after a burst: left alone, glibc gives the thread an arena of
// its own, whose free top malloc_trim does not reach; one mapped 16 MiB block freed
// first raises the trim threshold to 32 MiB, so the 24 MiB the thread frees stays
// resident. With one arena, TrimHeap gives it back. In a process of its own, as the node
// calls UseOneArena before it starts any thread: run in one process after other tests,
// the burst's thread could take an arena an earlier test's thread left free.
TEST(HeapTrim, WithOneArenaATrimGivesBackWhatAnotherThreadFreed) {
#ifdef HASYNC_SANITIZED
  GTEST_SKIP() << "a sanitizer replaces glibc's allocator; it has arenas of its own";
#else
  if (!InFreshProcess()) {
    auto [status, output] =
        RunInFreshProcess("HeapTrim.WithOneArenaATrimGivesBackWhatAnotherThreadFreed");
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "the test in a fresh process failed (wait status " << status << "):\n"
        << output;
    EXPECT_NE(output.find("[  PASSED  ] 1 test"), std::string::npos)
        << "the fresh process ran no test:\n"
        << output;
    return;
  }
  ASSERT_TRUE(UseOneArena()) << "mallopt refused";
  {
    std::unique_ptr<char[]> big(new char[16 * kMiB]);
    std::memset(big.get(), 1, 16 * kMiB);
    asm volatile("" : : "r"(big.get()) : "memory");  // the block is really allocated
  }
  size_t peak = 0;
  std::thread burst([&] {
    constexpr size_t kBlock = 8192;
    constexpr size_t kCount = 24 * kMiB / kBlock;
    std::vector<std::unique_ptr<char[]> > blocks(kCount);
    for (auto& b : blocks) {
      b.reset(new char[kBlock]);
      std::memset(b.get(), 0x5a, kBlock);
      asm volatile("" : : "r"(b.get()) : "memory");
    }
    peak = ResidentBytes();
    for (size_t i = kCount; i-- > 0;) blocks[i].reset();
  });
  burst.join();
  ASSERT_GT(peak, 0u) << "/proc/self/statm";
  const HeapTrimmed t = TrimHeap();
  EXPECT_GT(peak, t.rss_after + 16 * kMiB)
      << "RSS at the burst's peak " << (peak >> 10) << " KiB, after its frees and a trim "
      << (t.rss_after >> 10);
#endif
}

}  // namespace
}  // namespace hasync::engine
