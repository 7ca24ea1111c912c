// Codec throughput: encode and decode of the frames that dominate the wire (a small
// file-metadata frame, a lock record, 64 KiB and 1 MiB extents) and path validation.
// Bytes/s counts whole frames, header included. BM_MemcpyBaseline copies the same
// payload sizes with memcpy in the same run, the floor an extent encode or decode (which
// copies the data once) is compared against in docs/PERFORMANCE.md.
// Run: build/bench/wire_bench, or scripts/perf/microbench.sh for the documented figures.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "wire/frame.h"
#include "wire/path.h"

namespace hasync::wire {
namespace {

std::vector<std::byte> Pattern(size_t n) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>(i * 131 + 7);
  return out;
}

Frame MetadataFrame() {
  return Frame{7, 1001,
               FileBegin{.size = 4321,
                         .mode = 0600,
                         .uid = 64030,
                         .gid = 64030,
                         .flags = 0,
                         .mtime_ns = 1732650000123456789,
                         .path = "0/hash.3/job.1234/environment"}};
}

// A lock record is ~100-200 bytes (DESIGN §3: ids, counters, a short probe token, the
// last change's path).
Frame LockFrame() { return Frame{7, 0, Lock{Pattern(160)}}; }

Frame ExtentFrame(size_t bytes) {
  return Frame{7, 1002, Extent{uint64_t{1} << 30, uint64_t{1} << 20, Pattern(bytes)}};
}

void EncodeLoop(benchmark::State& state, const Frame& frame) {
  std::vector<std::byte> out;
  out.reserve(EncodedFrameSize(frame.message));
  for (auto _ : state) {
    out.clear();
    EncodeFrame(frame, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(out.size()));
}

void DecodeLoop(benchmark::State& state, const Frame& frame) {
  std::vector<std::byte> bytes = EncodeFrame(frame);
  for (auto _ : state) {
    Result<Frame> decoded = DecodeFrame(bytes);
    if (!decoded.ok()) state.SkipWithError(decoded.status().ToString().c_str());
    benchmark::DoNotOptimize(decoded);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(bytes.size()));
}

void BM_EncodeMetadata(benchmark::State& state) { EncodeLoop(state, MetadataFrame()); }
void BM_DecodeMetadata(benchmark::State& state) { DecodeLoop(state, MetadataFrame()); }
void BM_EncodeLock(benchmark::State& state) { EncodeLoop(state, LockFrame()); }
void BM_DecodeLock(benchmark::State& state) { DecodeLoop(state, LockFrame()); }
void BM_EncodeExtent(benchmark::State& state) {
  EncodeLoop(state, ExtentFrame(static_cast<size_t>(state.range(0))));
}
void BM_DecodeExtent(benchmark::State& state) {
  DecodeLoop(state, ExtentFrame(static_cast<size_t>(state.range(0))));
}

// The zero-copy receive path: validate and point at the data without copying it.
void BM_DecodeExtentView(benchmark::State& state) {
  std::vector<std::byte> bytes = EncodeFrame(ExtentFrame(static_cast<size_t>(state.range(0))));
  for (auto _ : state) {
    Result<ExtentView> view = DecodeExtentView(bytes);
    if (!view.ok()) state.SkipWithError(view.status().ToString().c_str());
    benchmark::DoNotOptimize(view);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(bytes.size()));
}

// The zero-copy send path: only header + extent prefix are encoded, the data is spliced.
void BM_EncodeExtentHead(benchmark::State& state) {
  std::vector<std::byte> out;
  out.reserve(kFrameHeaderSize + kExtentPrefixSize);
  for (auto _ : state) {
    out.clear();
    EncodeExtentHead(7, 1002, uint64_t{1} << 30, 0, 1 << 20, out);
    benchmark::DoNotOptimize(out.data());
  }
}

// A receive loop over a burst of small metadata frames, as the control stream sees them.
void BM_StreamDecodeMetadata(benchmark::State& state) {
  std::vector<std::byte> stream;
  for (int i = 0; i < 256; ++i) EncodeFrame(MetadataFrame(), stream);
  for (auto _ : state) {
    std::span<const std::byte> rest(stream);
    while (!rest.empty()) {
      auto step = DecodeNext(rest);
      if (!step.ok()) {
        state.SkipWithError(step.status().ToString().c_str());
        break;
      }
      rest = rest.subspan(std::get<Decoded>(*step).consumed);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 256);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(stream.size()));
}

// Baseline: one plain copy of an extent's payload, what encode and decode cost at least.
void BM_MemcpyBaseline(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<std::byte> src = Pattern(n);
  std::vector<std::byte> dst(n);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
}

void BM_ValidatePath(benchmark::State& state) {
  std::string path = "0/hash.3/job.1234/environment";
  for (auto _ : state) {
    Status s = ValidatePath(path);
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(path.size()));
}

BENCHMARK(BM_EncodeMetadata);
BENCHMARK(BM_DecodeMetadata);
BENCHMARK(BM_EncodeLock);
BENCHMARK(BM_DecodeLock);
BENCHMARK(BM_EncodeExtent)->Arg(64 << 10)->Arg(1 << 20);
BENCHMARK(BM_DecodeExtent)->Arg(64 << 10)->Arg(1 << 20);
BENCHMARK(BM_DecodeExtentView)->Arg(64 << 10)->Arg(1 << 20);
BENCHMARK(BM_EncodeExtentHead);
BENCHMARK(BM_StreamDecodeMetadata);
BENCHMARK(BM_MemcpyBaseline)->Arg(64 << 10)->Arg(1 << 20);
BENCHMARK(BM_ValidatePath);

}  // namespace
}  // namespace hasync::wire

BENCHMARK_MAIN();
