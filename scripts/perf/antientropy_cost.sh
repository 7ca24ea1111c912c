#!/usr/bin/env bash
# antientropy_cost.sh — the cost of one anti-entropy pass per file, next to rsync's
# content comparison of the same trees in the same run (issue 16: a full pass over a
# 1,000,000-file spool within 10 minutes at ≤ 5 % of one core).
#
# A pass makes each node walk its tree once (BuildManifest: stat, read and XXH3 every
# file, its xattrs); the baseline is `rsync -rc --dry-run` between the tree and a copy
# of it, which reads and checksums both trees — the same work a content comparison of a
# pair needs — in one run of rsync. The helper (antientropy_cost.cpp) is linked against
# the engine library of BUILD_DIR (default build/). Page cache warm for both (each tree
# read once before timing).
#
# Prints: per-entry CPU of the walk at full speed, of rsync -rc per entry per side, their
# ratio, the measured wall time of a walk at PERCENT (default 5), and the time a pass
# over 1,000,000 such files takes at that budget (CPU per entry × 1e6 / share).
#
# usage: scripts/perf/antientropy_cost.sh [-n FILES] [-p PERCENT] [-b BUILD_DIR]
set -euo pipefail

N=100000 PERCENT=5
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$REPO/build
while getopts "n:p:b:" opt; do
  case $opt in
    n) N=$OPTARG ;;
    p) PERCENT=$OPTARG ;;
    b) BUILD=$(realpath "$OPTARG") ;;
    *) echo "usage: $0 [-n files] [-p percent] [-b build_dir]" >&2; exit 2 ;;
  esac
done
command -v rsync >/dev/null || { echo "antientropy_cost.sh: rsync missing (scripts/install-deps.sh)" >&2; exit 1; }

if [[ ! -f $BUILD/build.ninja ]]; then
  cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DHASYNC_BUILD_TESTS=OFF -DHASYNC_BUILD_BENCH=OFF >/dev/null
fi
ninja -C "$BUILD" hasync_engine >/dev/null
HELPER=$BUILD/antientropy_cost
# shellcheck disable=SC2046  # pkg-config prints several words on purpose
g++ -std=c++20 -O2 -D_GNU_SOURCE -I"$REPO" "$REPO/scripts/perf/antientropy_cost.cpp" \
  -Wl,--start-group "$BUILD"/engine/libhasync_engine.a "$BUILD"/wire/libhasync_wire.a \
  "$BUILD"/lockwin/libhasync_lockwin.a "$BUILD"/iouring/libhasync_iouring.a -Wl,--end-group \
  $(pkg-config --libs liburing libxxhash tomlplusplus) -lfmt -lmbedtls -lmbedx509 -lmbedcrypto \
  -lpthread -o "$HELPER"

WORK=$(mktemp -d /var/tmp/hasync-antientropy-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
python3 "$REPO/scripts/perf/spoolgen.py" create "$WORK/a" --small "$N" --large 2 --large-mib 8 >/dev/null
cp -a "$WORK/a" "$WORK/b"
find "$WORK/a" "$WORK/b" -type f -exec cat {} + >/dev/null  # warm

full=$("$HELPER" "$WORK/a" 100)
slow=$("$HELPER" "$WORK/a" "$PERCENT")
# rsync's CPU, both sides (it forks a receiver), from the children's rusage.
rsync_cpu=$(python3 - "$WORK" <<'PY'
import resource, subprocess, sys
w = sys.argv[1]
before = resource.getrusage(resource.RUSAGE_CHILDREN)
subprocess.run(["rsync", "-rc", "--dry-run", "--delete", w + "/a/", w + "/b/"], check=True,
               stdout=subprocess.DEVNULL)
after = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime):.3f}")
PY
)
python3 - "$full" "$slow" "$rsync_cpu" "$N" "$PERCENT" <<'PY'
import json, sys
full, slow = json.loads(sys.argv[1]), json.loads(sys.argv[2])
rsync_cpu, n, pct = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
entries = full["entries"]
walk_us = full["cpu_us_per_entry"]
rsync_us = rsync_cpu * 1e6 / entries / 2  # per entry per side
print(f"tree: {entries} entries ({n} small files, 2 × 8 MiB)")
print(f"walk at 100 %: {walk_us:.1f} µs CPU per entry ({full['cpu_s']:.2f} s CPU, {full['wall_s']:.2f} s wall)")
print(f"rsync -rc --dry-run: {rsync_us:.1f} µs CPU per entry per side ({rsync_cpu:.2f} s for both)")
print(f"ratio walk / rsync per side: {walk_us / rsync_us:.2f}")
print(f"walk at {pct} %: {slow['cpu_s']:.2f} s CPU over {slow['wall_s']:.2f} s wall = {100 * slow['cpu_s'] / slow['wall_s']:.1f} % of a core")
print(f"a pass over 1,000,000 such entries at {pct} %: {walk_us * 1e6 / 1e6 / (pct / 100) / 60:.1f} min (CPU per entry × 1e6 / share)")
PY
