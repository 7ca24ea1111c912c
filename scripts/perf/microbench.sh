#!/usr/bin/env bash
# Builds the micro-benchmarks (RelWithDebInfo, build-perf/) and runs lockwin_bench and
# wire_bench, 5 repetitions each, reporting medians: the figures in docs/PERFORMANCE.md.
#   scripts/perf/microbench.sh [extra Google Benchmark flags, e.g. --benchmark_filter=Judge]
# Writes build-perf/results/{lockwin,wire}.json (Google Benchmark's JSON, aggregates
# only) and prints the machine, a Markdown table of medians, and the ratios the
# document quotes (O(1) window check, extent codec against memcpy). The machine may be
# shared and noisy: compare figures from one run, prefer CPU time to real time, and read
# the cv column before trusting a difference.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$here"
build=build-perf
out=$build/results

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHASYNC_BUILD_TESTS=OFF \
  -DHASYNC_BUILD_BENCH=ON >/dev/null
ninja -C "$build" lockwin_bench wire_bench >/dev/null
mkdir -p "$out"

for subject in lockwin wire; do
  echo "running ${subject}_bench (5 repetitions)..." >&2
  "$build/bench/${subject}_bench" --benchmark_format=json --benchmark_repetitions=5 \
    --benchmark_report_aggregates_only=true "$@" >"$out/$subject.json"
done

python3 - "$out/lockwin.json" "$out/wire.json" <<'PY'
import json, os, platform, sys

def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return cpu, os.cpu_count(), platform.release(), mem_kib / 1024 / 1024

medians, cvs = {}, {}
context = None
for path in sys.argv[1:]:
    with open(path) as f:
        data = json.load(f)
    context = context or data["context"]
    for b in data["benchmarks"]:
        if b.get("run_type") != "aggregate":
            continue
        name = b["run_name"]
        if b["aggregate_name"] == "median":
            medians[name] = b
        elif b["aggregate_name"] == "cv":
            cvs[name] = b

cpu, ncpu, kernel, mem_gib = machine()
load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
print(f"machine: {ncpu} CPUs, {cpu}, kernel {kernel}, {mem_gib:.1f} GiB RAM")
print(f"run: {context.get('date', '?')}, load average after the run {load} (1/5/15 min), "
      f"benchmark library build {context.get('library_build_type', '?')}")
print()
print("| benchmark | median real ns/op | median CPU ns/op | throughput | cv (real) |")
print("| --- | ---: | ---: | ---: | ---: |")

def ns(b):
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
    return b["real_time"] * scale, b["cpu_time"] * scale

for name, b in medians.items():
    real, cputime = ns(b)
    if "bytes_per_second" in b:
        tp = f"{b['bytes_per_second'] / 2**30:.2f} GiB/s"
    elif "items_per_second" in b:
        tp = f"{b['items_per_second'] / 1e6:.2f} M/s"
    else:
        tp = ""
    cv = cvs.get(name)
    cv_text = f"{cv['real_time'] * 100:.1f} %" if cv else ""
    print(f"| `{name}` | {real:,.1f} | {cputime:,.1f} | {tp} | {cv_text} |")

def ratio(a, b, what):
    if a in medians and b in medians:
        print(f"- {what}: {ns(medians[a])[1] / ns(medians[b])[1]:.2f}")

print()
print("Ratios (median CPU time, same run; CPU time leaves out time the process was")
print("descheduled, which on a shared machine is noise):")
for bench in ("BM_PushAndStep", "BM_PushAndJudge", "BM_Judge"):
    ratio(f"{bench}/3600000", f"{bench}/1000", f"{bench} window 1 h / window 1 s")
for size, label in ((1048576, "1 MiB"), (65536, "64 KiB")):
    ratio(f"BM_EncodeExtent/{size}", f"BM_MemcpyBaseline/{size}", f"extent encode / memcpy, {label}")
    ratio(f"BM_DecodeExtent/{size}", f"BM_MemcpyBaseline/{size}", f"extent decode / memcpy, {label}")
PY
