#!/usr/bin/env bash
# all.sh — every performance figure of docs/PERFORMANCE.md in one command (issue 5).
#
#   1. micro-benchmarks (scripts/perf/microbench.sh: bench/*, Google Benchmark)
#   2. hasync next to rsync and lsyncd: throughput, lag, writer slowdown
#      (scripts/perf/sidebyside.py)
#   3. failover latency over repeated trials of each failure (scripts/perf/failover.sh)
#   4. the tables and plots (scripts/perf/report.py): printed, and with --write-docs
#      written into docs/PERFORMANCE.md between its perf:all markers, plots in docs/perf/
#
# --quick runs every step at CI size (seconds, not minutes): it keeps the scripts
# working and asserts nothing about the figures. The full set takes about 15 minutes on
# a 2-core machine; the elapsed time of each step is printed at the end.
# Needs root (fanotify, loop mounts, network namespaces); installs what it needs through
# scripts/install-deps.sh.
#
# usage: scripts/perf/all.sh [--quick] [--write-docs] [--build DIR]
set -euo pipefail

QUICK=() WRITE=() BUILD=""
ARGS_STR="$*"
while (($#)); do
  case $1 in
    --quick) QUICK=(--quick) ;;
    --write-docs) WRITE=(--write-docs) ;;
    --build) BUILD=$2; shift ;;
    *) echo "usage: $0 [--quick] [--write-docs] [--build DIR]" >&2; exit 2 ;;
  esac
  shift
done
if [[ $(id -u) -ne 0 ]]; then
  echo "all.sh: run as root (fanotify, loop mounts and network namespaces need it)" >&2
  exit 1
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$REPO/build-perf}
RESULTS=$BUILD/results
log() { printf '[%s] all.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

"$REPO/scripts/install-deps.sh" >&2
mkdir -p "$RESULTS"
# A result left by an earlier run must not pass for this run's.
rm -f "$RESULTS"/{microbench,sidebyside,failover}.json "$RESULTS/failover.png"

names=() times=()
step() {  # name command...
  local name=$1 t0=$SECONDS
  shift
  log "$name"
  "$@"
  names+=("$name") times+=($((SECONDS - t0)))
}
# 0.2 s per benchmark and repetition instead of Google Benchmark's 0.5 s: the medians of
# five repetitions barely move and the set fits its 15 minutes.
MB_ARGS=(--benchmark_min_time=0.2)
((${#QUICK[@]})) && MB_ARGS=(--quick)
step "micro-benchmarks" env HASYNC_PERF_BUILD="$BUILD" "$REPO/scripts/perf/microbench.sh" "${MB_ARGS[@]}"
step "side by side with rsync and lsyncd" python3 "$REPO/scripts/perf/sidebyside.py" "${QUICK[@]}" --build "$BUILD"
step "failover trials" "$REPO/scripts/perf/failover.sh" "${QUICK[@]}" --build "$BUILD"
step "report" python3 "$REPO/scripts/perf/report.py" --results "$RESULTS" "${WRITE[@]}" \
  --command "./scripts/perf/all.sh${ARGS_STR:+ $ARGS_STR}"

total=0
for i in "${!names[@]}"; do
  printf '%5ds  %s\n' "${times[i]}" "${names[i]}" >&2
  total=$((total + times[i]))
done
printf '%5ds  total (%dm%02ds)\n' "$total" $((total / 60)) $((total % 60)) >&2
