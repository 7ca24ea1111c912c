// XXH3 throughput by build: Debian's shared libxxhash (the baseline), its x86 dispatch
// entry points (what base/hash.h calls on x86-64), xxHash compiled inline with the
// project's flags (base/hash.h elsewhere), and compiled inline with -mavx2 (run only
// where the CPU has AVX2). Each build hashes the same bytes
// with the calls the engine makes: one-shot XXH3-64 (lock-record fingerprint, 160 bytes,
// and blocks), one-shot XXH3-128 (block hashes) and streaming XXH3-128 (a whole file, in
// 64 KiB pieces) over 4 KiB, 64 KiB and 1 MiB.
// Names are <call>/<build>/<bytes>; scripts/perf/microbench.sh divides each by the
// "shared" row of the same call and size.
// Run: build/bench/xxh3_bench, or scripts/perf/microbench.sh for the documented figures.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "bench/xxh3_builds.h"

namespace hasync::bench {
namespace {

constexpr size_t kLockRecordBytes = 160;  // a typical encoded lock record
constexpr size_t kStreamPieceBytes = 64 << 10;
constexpr size_t kBlockSizes[] = {4 << 10, 64 << 10, 1 << 20};
constexpr size_t kHash64Sizes[] = {kLockRecordBytes, 4 << 10, 64 << 10, 1 << 20};
constexpr size_t kStreamSizes[] = {1 << 20};

std::vector<std::byte> Pattern(size_t n) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>(i * 131 + 7);
  return out;
}

void SetBytes(benchmark::State& state, size_t len) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(len));
}

void Hash64(benchmark::State& state, const Xxh3Build* build) {
  const std::vector<std::byte> data = Pattern(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(build->hash64(data.data(), data.size()));
  }
  SetBytes(state, data.size());
}

void Hash128(benchmark::State& state, const Xxh3Build* build) {
  const std::vector<std::byte> data = Pattern(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(build->hash128(data.data(), data.size()));
  }
  SetBytes(state, data.size());
}

void Stream128(benchmark::State& state, const Xxh3Build* build) {
  const std::vector<std::byte> data = Pattern(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(build->stream128(data.data(), data.size(), kStreamPieceBytes));
  }
  SetBytes(state, data.size());
}

// Every build must compute the same hashes as the shared library, or the comparison
// is between different functions.
bool SameAsBaseline(const Xxh3Build& build) {
  for (size_t len : {size_t{0}, kLockRecordBytes, size_t{4 << 10}, size_t{1 << 20} + 17}) {
    const std::vector<std::byte> data = Pattern(len);
    const Xxh3Digest128 want = kXxh3Shared.hash128(data.data(), len);
    const Xxh3Digest128 got = build.hash128(data.data(), len);
    const Xxh3Digest128 streamed = build.stream128(data.data(), len, kStreamPieceBytes);
    if (build.hash64(data.data(), len) != kXxh3Shared.hash64(data.data(), len) ||
        got.low != want.low || got.high != want.high || streamed.low != want.low ||
        streamed.high != want.high) {
      std::fprintf(stderr, "xxh3_bench: build %s disagrees with libxxhash at %zu bytes\n",
                   build.name, len);
      return false;
    }
  }
  return true;
}

std::vector<const Xxh3Build*> AvailableBuilds() {
  std::vector<const Xxh3Build*> builds = {&kXxh3Shared, &kXxh3Inline};
#if HASYNC_BENCH_XXH3_X86
  builds.push_back(&kXxh3SharedDispatch);
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) {
    builds.push_back(&kXxh3InlineAvx2);
  } else {
    std::fprintf(stderr, "xxh3_bench: no AVX2 on this CPU, the inline_avx2 build is left out\n");
  }
#endif
  return builds;
}

using BenchFn = void (*)(benchmark::State&, const Xxh3Build*);

// Registers one call at each size for every build, builds side by side so the console
// output reads as a comparison.
void RegisterCall(const char* call, BenchFn fn, std::span<const size_t> sizes,
                  const std::vector<const Xxh3Build*>& builds) {
  for (size_t len : sizes) {
    for (const Xxh3Build* build : builds) {
      const std::string name = std::string(call) + "/" + build->name;
      benchmark::RegisterBenchmark(name.c_str(), fn, build)->Arg(static_cast<int64_t>(len));
    }
  }
}

void RegisterAll(const std::vector<const Xxh3Build*>& builds) {
  RegisterCall("xxh3_64", Hash64, kHash64Sizes, builds);
  RegisterCall("xxh3_128", Hash128, kBlockSizes, builds);
  RegisterCall("xxh3_128_stream", Stream128, kStreamSizes, builds);
}

}  // namespace
}  // namespace hasync::bench

int main(int argc, char** argv) {
  using namespace hasync::bench;
  const std::vector<const Xxh3Build*> builds = AvailableBuilds();
  for (const Xxh3Build* build : builds) {
    if (!SameAsBaseline(*build)) return 1;
  }
  RegisterAll(builds);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
