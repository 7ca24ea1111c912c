#!/usr/bin/env bash
# fanotify_cost.sh — what watching costs the scheduler's own writes (DESIGN §6).
#
# Measures the create+write(4 KiB)+close rate of small files in a directory that is NOT
# the spool, on the same filesystem as the spool, with:
#   none    nothing watching                                         (the baseline)
#   bare    a bare filesystem-mark listener that drains and discards
#   hasync  hasync's Watcher on the spool (filesystem mark + handle-cache filtering)
#   inode   one inode mark per spool directory (DIRS directories)
# Each repetition runs all four, in a rotated order, and each rate is divided by the
# baseline of the same repetition; the table shows medians over the repetitions.
# Needs root (fanotify filesystem marks) and g++. Runs under /var/tmp (the root fs;
# tmpfs /tmp cannot take a filesystem mark before Linux 6.6). Cleans up after itself.
#
# usage: scripts/perf/fanotify_cost.sh [-n FILES_PER_RUN] [-r REPS] [-d SPOOL_DIRS]
set -euo pipefail

N=2000
REPS=9
DIRS=300
while getopts "n:r:d:" opt; do
  case $opt in
    n) N=$OPTARG ;;
    r) REPS=$OPTARG ;;
    d) DIRS=$OPTARG ;;
    *) echo "usage: $0 [-n files] [-r reps] [-d spool_dirs]" >&2; exit 2 ;;
  esac
done

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /var/tmp/hasync-fancost.XXXXXX)
HELPER=$WORK/fanotify_cost_helper
listener_pid=""

stop_listener() {
  if [[ -n $listener_pid ]]; then
    kill -TERM "$listener_pid" 2>/dev/null || true
    wait "$listener_pid" 2>/dev/null || true
    listener_pid=""
  fi
}
cleanup() {
  stop_listener
  rm -rf "$WORK"
}
trap cleanup EXIT

g++ -std=c++20 -O2 -D_GNU_SOURCE -I"$REPO" "$REPO/scripts/perf/fanotify_cost_helper.cpp" \
  "$REPO"/engine/watch/*.cpp "$REPO"/engine/watch/internal/*.cpp -o "$HELPER"

# The spool: DIRS directories in groups of 30, three small files each.
mkdir -p "$WORK/spool" "$WORK/unrelated"
for ((i = 0; i < DIRS; i++)); do
  d=$WORK/spool/g$((i / 30))/d$i
  mkdir -p "$d"
  for f in 1 2 3; do echo "job $i" >"$d/f$f"; done
done

start_listener() {  # $1 = config, log to $WORK/$1.log
  local log=$WORK/$1.log
  : >"$log"
  case $1 in
    none) return 0 ;;
    bare) "$HELPER" bare "$WORK/unrelated" >>"$log" 2>&1 & ;;
    hasync) "$HELPER" hasync "$WORK/spool" >>"$log" 2>&1 & ;;
    inode) "$HELPER" inode "$WORK/spool" >>"$log" 2>&1 & ;;
  esac
  listener_pid=$!
  for ((t = 0; t < 100; t++)); do
    grep -q '^ready' "$log" && return 0
    kill -0 "$listener_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "listener $1 did not get ready:" >&2
  cat "$log" >&2
  exit 1
}

configs=(none bare hasync inode)
results=$WORK/results
: >"$results"
echo "# kernel $(uname -r), $(nproc) cores, $(stat -f -c %T /var/tmp) at /var/tmp;" \
  "$N files/run, $REPS reps, spool $DIRS dirs" >&2
for ((rep = 0; rep < REPS; rep++)); do
  for ((k = 0; k < ${#configs[@]}; k++)); do
    c=${configs[$(((k + rep) % ${#configs[@]}))]}
    start_listener "$c"
    out=$WORK/unrelated/run
    mkdir -p "$out"
    rate=$("$HELPER" writer "$out" "$N")
    stop_listener
    extra=$(tail -n 1 "$WORK/$c.log" 2>/dev/null || true)
    cpu=$(sed -n 's/.*cpu_ms=\([0-9]*\).*/\1/p' <<<"$extra")
    echo "$rep $c $rate ${cpu:-0}" >>"$results"
    printf 'rep %d %-6s %8s files/s  %s\n' "$rep" "$c" "$rate" "$extra" >&2
    rm -rf "$out"
  done
done
grep -h '^ready' "$WORK"/hasync.log "$WORK"/inode.log >&2 || true

# Per repetition: ratio to that repetition's baseline; then medians.
python3 - "$results" "$N" <<'PY'
import statistics, sys
rate, cpu, reps = {}, {}, set()
for line in open(sys.argv[1]):
    r, c, v, u = line.split()
    rate[r, c] = float(v); cpu[r, c] = float(u); reps.add(r)
n = int(sys.argv[2])
print(f"{'config':8} {'median files/s':>15} {'median ratio':>13} {'min..max ratio':>15} {'listener cpu us/file':>21}")
for c in ("none", "bare", "hasync", "inode"):
    q = [rate[r, c] / rate[r, "none"] for r in sorted(reps)]
    v = [rate[r, c] for r in sorted(reps)]
    u = statistics.median(cpu[r, c] for r in reps) * 1000 / n
    print(f"{c:8} {statistics.median(v):15.0f} {statistics.median(q):13.3f} {min(q):7.2f}..{max(q):<7.2f} {u:21.1f}")
PY
