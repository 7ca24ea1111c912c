#!/usr/bin/env bash
# Builds the Google Benchmark micro-benchmarks (RelWithDebInfo) and runs every
# bench/<subject>_bench, 5 repetitions each, reporting medians: the figures in
# docs/PERFORMANCE.md.
#   scripts/perf/microbench.sh [--quick] [extra Google Benchmark flags, e.g. --benchmark_filter=Judge]
#   --quick  one repetition of each benchmark with --benchmark_min_time=0.01: what CI runs
#            to keep the benchmarks building and running. Its figures mean nothing and no
#            timing is checked; a benchmark that reports an error fails the script.
# Subjects are the bench/<subject>_bench.cpp files: lockwin, wire, xxh3, journal, tls,
# tls_stream.
# The build directory is build-perf/ ($HASYNC_PERF_BUILD overrides it, relative to the
# repository root).
#
# Writes, in <build>/results/:
#   <subject>.json     Google Benchmark's JSON for one binary (aggregates only; with
#                      --quick, the single runs)
#   microbench.json    every subject combined, for the script that writes the docs:
#     {
#       "machine": {"cpu": str, "cpus": int, "kernel": str, "mem_gib": float,
#                   "avx2": bool},
#       "run": {"utc": "YYYY-MM-DDTHH:MM:SSZ" (when the runs ended), "quick": bool,
#               "repetitions": int, "load_avg": [1 min, 5 min, 15 min] (after the runs),
#               "library_build_type": str (of libbenchmark)},
#       "subjects": {
#         "<subject>": [                     # in the order the binary ran them
#           {"name": str,                    # Google Benchmark's run name,
#                                            #   e.g. "xxh3_64/inline/4096"
#            "cpu_ns": float,                # median CPU time per iteration, ns
#            "real_ns": float,               # median real time per iteration, ns
#            "cv_real": float | null,        # coefficient of variation of the real
#                                            #   time across repetitions (null: one run)
#            "bytes_per_second": float | null,
#            "items_per_second": float | null,
#            "counters": {str: float},       # the benchmark's own counters (medians) as
#                                            #   Google Benchmark writes them; per_<x> is
#                                            #   CPU seconds per <x> (journal's per_change)
#            "label": str | null,
#            "error": str | null,            # set when the benchmark skipped with an error
#            "baseline": str | null,         # name of the row it is compared with (same
#                                            #   subject, same run)
#            "ratio": float | null}          # cpu_ns / the baseline's cpu_ns; below 1 is
#         ]                                  #   faster than the baseline
#       }
#     }
# Baselines: lockwin, the same benchmark at window 1 s; wire, memcpy of the extent's
# payload; xxh3, the shared libxxhash ("shared") for the same call and size; journal, a
# plain queue of the same events; tls, the suite's raw AEAD in the same direction.
#
# It prints the machine and one Markdown table per subject (medians, throughput,
# counters, ratio to the baseline). The machine may be shared and noisy: compare
# figures from one run, prefer CPU time to real time, and read the cv column before
# trusting a difference.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$here"
build=${HASYNC_PERF_BUILD:-build-perf}
out=$build/results

quick=0
if [[ ${1:-} == --quick ]]; then
  quick=1
  shift
fi
if ((quick)); then
  run_flags=(--benchmark_repetitions=1 --benchmark_min_time=0.01)
  repetitions=1
else
  run_flags=(--benchmark_repetitions=5 --benchmark_report_aggregates_only=true)
  repetitions=5
fi

subjects=()
for source in bench/*_bench.cpp; do
  name=${source#bench/}
  subjects+=("${name%_bench.cpp}")
done
targets=("${subjects[@]/%/_bench}")

start=$SECONDS
# A build directory that exists is used as it is configured (scripts/test.sh passes the
# suite's own build/, whose tests must stay configured); a new one gets only the benchmarks.
if [[ ! -f $build/build.ninja ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHASYNC_BUILD_TESTS=OFF \
    -DHASYNC_BUILD_BENCH=ON >/dev/null
elif ! grep -q '^HASYNC_BUILD_BENCH:BOOL=ON' "$build/CMakeCache.txt"; then
  echo "microbench: $build is configured without HASYNC_BUILD_BENCH; use another directory" >&2
  exit 1
fi
if ! ninja -C "$build" "${targets[@]}" >"$build/microbench-build.log" 2>&1; then
  tail -n 40 "$build/microbench-build.log" >&2
  echo "microbench: the build failed (full log: $build/microbench-build.log)" >&2
  exit 1
fi
mkdir -p "$out"

for subject in "${subjects[@]}"; do
  echo "running ${subject}_bench ($repetitions repetition(s))..." >&2
  "$build/bench/${subject}_bench" --benchmark_format=json "${run_flags[@]}" "$@" \
    >"$out/$subject.json"
done

python3 - "$out" "$quick" "$repetitions" "${subjects[@]}" <<'PY'
import datetime, json, os, platform, re, sys

out_dir, quick, repetitions, subjects = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4:]

# subject -> [(pattern of a row's name, template of its baseline's name)]; the first
# pattern that matches wins, and a row never is its own baseline.
BASELINES = {
    "lockwin": [(r"^(BM_\w+)/(\d+)$", r"\1/1000")],
    "wire": [(r"^BM_(?:Encode|Decode)Extent/(\d+)$", r"BM_MemcpyBaseline/\1")],
    "xxh3": [(r"^([^/]+)/[^/]+/(\d+)$", r"\1/shared/\2")],
    "journal": [(r"^journal/(.+)$", r"queue/\1")],
    "tls": [(r"^(seal|open)/[^/]+/([^/]+)$", r"\1/raw_aead/\2")],
}
# Throughput unit per subject: DESIGN §8 quotes hashing and cipher speeds in GB/s.
DECIMAL_GB = {"xxh3", "tls", "tls_stream"}
# Fields of a Google Benchmark run that are not the benchmark's own counters.
NOT_COUNTERS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type",
    "repetitions", "repetition_index", "threads", "iterations", "real_time", "cpu_time",
    "time_unit", "bytes_per_second", "items_per_second", "label", "aggregate_name",
    "aggregate_unit", "error_occurred", "error_message",
}

def machine():
    cpu, avx2 = "unknown", False
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                avx2 = avx2 or "avx2" in line.split()
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
            "mem_gib": round(mem_kib / 1024 / 1024, 1), "avx2": avx2}

def ns(b, field):
    return b[field] * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]

def rows_of(data):
    """Median rows (or the single runs of a one-repetition run), in run order."""
    medians, cvs, singles = {}, {}, {}
    for b in data["benchmarks"]:
        name = b.get("run_name", b["name"])
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = b
            elif b.get("aggregate_name") == "cv":
                cvs[name] = b
        else:
            singles.setdefault(name, b)
    chosen = medians or singles
    # A benchmark that failed reports one errored run and no aggregates.
    for name, b in singles.items():
        if b.get("error_occurred"):
            chosen.setdefault(name, b)
    rows = []
    for name, b in chosen.items():
        err = b.get("error_message") if b.get("error_occurred") else None
        rows.append({
            "name": name,
            "cpu_ns": None if err else ns(b, "cpu_time"),
            "real_ns": None if err else ns(b, "real_time"),
            "cv_real": cvs[name]["real_time"] if name in cvs else None,
            "bytes_per_second": b.get("bytes_per_second"),
            "items_per_second": b.get("items_per_second"),
            "counters": {k: v for k, v in b.items()
                         if k not in NOT_COUNTERS and isinstance(v, (int, float))},
            "label": b.get("label") or None,
            "error": err,
            "baseline": None,
            "ratio": None,
        })
    return rows, data["context"]

def add_ratios(subject, rows):
    by_name = {r["name"]: r for r in rows}
    for r in rows:
        for pattern, template in BASELINES.get(subject, []):
            m = re.match(pattern, r["name"])
            if not m:
                continue
            base = m.expand(template)
            if base != r["name"] and base in by_name:
                r["baseline"] = base
                b = by_name[base]
                if r["cpu_ns"] and b["cpu_ns"]:
                    r["ratio"] = r["cpu_ns"] / b["cpu_ns"]
            break

def throughput(subject, r):
    if r["bytes_per_second"]:
        if subject in DECIMAL_GB:
            return f"{r['bytes_per_second'] / 1e9:.2f} GB/s"
        return f"{r['bytes_per_second'] / 2**30:.2f} GiB/s"
    if r["items_per_second"]:
        return f"{r['items_per_second'] / 1e6:.2f} M/s"
    return ""

def counter(name, v):
    # per_<x> counters are inverted rates: CPU seconds per <x>.
    if name.startswith("per_"):
        return f"{name}={v * 1e9:,.1f} ns"
    if v == int(v) and abs(v) < 1e15:
        return f"{name}={int(v):,}"
    return f"{name}={v:,.3g}" if abs(v) < 100 else f"{name}={v:,.1f}"

subject_rows, context = {}, None
for subject in subjects:
    with open(os.path.join(out_dir, subject + ".json")) as f:
        text = f.read()
    if not text.strip():  # a --benchmark_filter that matched nothing in this binary
        continue
    rows, ctx = rows_of(json.loads(text))
    context = context or ctx
    add_ratios(subject, rows)
    subject_rows[subject] = rows

context = context or {}
m = machine()
load = [round(x, 2) for x in os.getloadavg()]
utc = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
combined = {
    "machine": m,
    "run": {"utc": utc, "quick": quick, "repetitions": repetitions, "load_avg": load,
            "library_build_type": context.get("library_build_type")},
    "subjects": subject_rows,
}
with open(os.path.join(out_dir, "microbench.json"), "w") as f:
    json.dump(combined, f, indent=1)
    f.write("\n")

print(f"machine: {m['cpus']} CPUs, {m['cpu']}{' (AVX2)' if m['avx2'] else ''}, "
      f"kernel {m['kernel']}, {m['mem_gib']:.1f} GiB RAM")
print(f"run: ended {utc}, {'--quick: 1 repetition, figures not meaningful' if quick else f'medians of {repetitions} repetitions'}, "
      f"load average after the run {' / '.join(f'{x:.1f}' for x in load)} (1/5/15 min), "
      f"benchmark library build {context.get('library_build_type', '?')}")
print("ratio: the row's median CPU time ÷ its baseline's (same run); below 1 is faster.")
errors = 0
for subject, rows in subject_rows.items():
    print()
    print(f"### {subject} ({subject}_bench)")
    print()
    print("| benchmark | median CPU ns/op | median real ns/op | throughput | counters | baseline | ratio | cv (real) |")
    print("| --- | ---: | ---: | ---: | --- | --- | ---: | ---: |")
    for r in rows:
        if r["error"]:
            errors += 1
            print(f"| `{r['name']}` | error: {r['error']} | | | | | | |")
            continue
        counters = ", ".join(counter(k, v) for k, v in r["counters"].items())
        base = f"`{r['baseline']}`" if r["baseline"] else ""
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else ""
        cv = f"{r['cv_real'] * 100:.1f} %" if r["cv_real"] is not None else ""
        print(f"| `{r['name']}` | {r['cpu_ns']:,.1f} | {r['real_ns']:,.1f} | "
              f"{throughput(subject, r)} | {counters} | {base} | {ratio} | {cv} |")
if errors:
    print(f"\nmicrobench: {errors} benchmark(s) reported an error", file=sys.stderr)
    sys.exit(1)
PY
echo "microbench: done in $((SECONDS - start)) s; results in $out/" >&2
