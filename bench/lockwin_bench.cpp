// lockwin micro-benchmarks: the per-record cost on the standby (push + verdict) at
// windows of 1 s, 1 min and 1 h with a 250 ms beat, which must not depend on the window
// (DESIGN §8: "same ns/op at window 1 s and 1 h"), and the cost of fingerprinting a
// typical lock record on either side.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "lockwin/detector.h"
#include "lockwin/lock_record.h"

namespace hasync::lockwin {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kBeat = 250 * kMs;

std::unique_ptr<Detector> MakeDetectorOrDie(int64_t window_ns) {
  Result<std::unique_ptr<Detector>> d =
      Detector::Create({.window_ns = window_ns, .beat_interval_ns = kBeat, .start_ns = 0});
  if (!d.ok()) std::abort();
  return std::move(d).value();
}

void SetWindowCounters(benchmark::State& state, const Detector& d) {
  state.counters["window_s"] = static_cast<double>(d.window_ns() / 1000 / kMs);
  state.counters["ring_entries"] = static_cast<double>(d.ring_capacity());
}

// One lock record on the standby: the receive path pushes its fingerprint, the detector
// thread's Step drains it into the history and judges the window. The fingerprint
// changes every fourth record so runs both grow and restart.
void BM_PushAndStep(benchmark::State& state) {
  auto d = MakeDetectorOrDie(state.range(0) * kMs);
  int64_t t = 0;
  uint64_t i = 0;
  for (auto _ : state) {
    t += kBeat;
    d->Push(++i >> 2, t);
    benchmark::DoNotOptimize(d->Step(t));
  }
  SetWindowCounters(state, *d);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PushAndStep)->Arg(1'000)->Arg(60'000)->Arg(3'600'000);

// Push and the lock-free Judge, with a Step (drain + judge) once per ring's worth, as a
// detector thread on a coarser timer would.
void BM_PushAndJudge(benchmark::State& state) {
  auto d = MakeDetectorOrDie(state.range(0) * kMs);
  const uint64_t drain_every = d->ring_capacity() / 2;
  int64_t t = 0;
  uint64_t i = 0;
  for (auto _ : state) {
    t += kBeat;
    d->Push(++i >> 2, t);
    benchmark::DoNotOptimize(d->Judge(t));
    if (i % drain_every == 0) benchmark::DoNotOptimize(d->Step(t));
  }
  SetWindowCounters(state, *d);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PushAndJudge)->Arg(1'000)->Arg(60'000)->Arg(3'600'000);

// The verdict alone, with a full window of arrivals behind it.
void BM_Judge(benchmark::State& state) {
  const int64_t window_ns = state.range(0) * kMs;
  auto d = MakeDetectorOrDie(window_ns);
  int64_t t = 0;
  for (int64_t k = 0; k < window_ns / kBeat; ++k) {
    t += kBeat;
    d->Push(static_cast<uint64_t>(k), t);
    if (d->pushed() % (d->ring_capacity() / 2) == 0) d->Step(t);
  }
  int64_t now = t;
  for (auto _ : state) {
    benchmark::DoNotOptimize(d->Judge(++now));
  }
  SetWindowCounters(state, *d);
}
BENCHMARK(BM_Judge)->Arg(1'000)->Arg(60'000)->Arg(3'600'000);

LockRecord TypicalRecord() {
  LockRecord r;
  r.epoch = 7;
  r.node_id = 2;
  r.change_seq = 123456;
  r.beat = 9001;
  r.probe_token = "job 4711 alice 2024-11-26T21:13:05";
  r.last_change = {"hash.3/job.4711/environment", 1834, 0x1122334455667788u};
  r.probe_ok = true;
  r.probe_latency_us = 3150;
  r.monotonic_ns = 987654321012;
  return r;
}

// Primary side: fingerprint of a freshly made record (encode + hash).
void BM_FingerprintRecord(benchmark::State& state) {
  LockRecord r = TypicalRecord();
  for (auto _ : state) {
    ++r.beat;
    Result<uint64_t> fp = LockRecordFingerprint(r);
    benchmark::DoNotOptimize(fp.ok() ? *fp : 0);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FingerprintRecord);

// Standby side: validate the received bytes and hash them in place (no allocation).
void BM_FingerprintEncoded(benchmark::State& state) {
  Result<std::vector<std::byte>> bytes = EncodeLockRecord(TypicalRecord());
  if (!bytes.ok()) std::abort();
  for (auto _ : state) {
    Result<uint64_t> fp = FingerprintEncodedLockRecord(*bytes);
    benchmark::DoNotOptimize(fp.ok() ? *fp : 0);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes->size()));
}
BENCHMARK(BM_FingerprintEncoded);

void BM_EncodeLockRecord(benchmark::State& state) {
  const LockRecord r = TypicalRecord();
  std::array<std::byte, kLockRecordEncodedMax> buf;
  for (auto _ : state) {
    Result<size_t> n = EncodeLockRecordTo(r, buf);
    benchmark::DoNotOptimize(n.ok() ? *n : 0);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_EncodeLockRecord);

void BM_DecodeLockRecord(benchmark::State& state) {
  Result<std::vector<std::byte>> bytes = EncodeLockRecord(TypicalRecord());
  if (!bytes.ok()) std::abort();
  for (auto _ : state) {
    Result<LockRecord> r = DecodeLockRecord(*bytes);
    benchmark::DoNotOptimize(r.ok());
  }
}
BENCHMARK(BM_DecodeLockRecord);

}  // namespace
}  // namespace hasync::lockwin

BENCHMARK_MAIN();
