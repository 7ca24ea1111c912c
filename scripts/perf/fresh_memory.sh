#!/usr/bin/env bash
# fresh_memory.sh — how fast this machine writes into the page cache when the memory it
# gets was freed a while ago ("cold") versus a moment ago ("warm").
#
# Why: on a VM whose balloon reports free pages to the host (Firecracker/KVM with
# virtio_balloon free page reporting, `page_reporting.page_reporting_order` on the
# kernel command line), a page freed for a few seconds is handed back to the host, and
# the next touch of it costs a host fault. A large file written by the standby lands in
# such pages, so its throughput measures the host, not hasync (docs/PERFORMANCE.md).
#
# Each repetition: delete the previous file, wait IDLE seconds, write SIZE MiB ("cold");
# delete it, write SIZE MiB at once ("warm"). Medians over REPS repetitions.
# Needs g++. Writes under /var/tmp and removes what it wrote.
#
# usage: scripts/perf/fresh_memory.sh [-s SIZE_MIB] [-r REPS] [-i IDLE_SECONDS]
set -euo pipefail

SIZE=1024 REPS=3 IDLE=20
while getopts "s:r:i:" opt; do
  case $opt in
    s) SIZE=$OPTARG ;;
    r) REPS=$OPTARG ;;
    i) IDLE=$OPTARG ;;
    *) echo "usage: $0 [-s size_mib] [-r reps] [-i idle_seconds]" >&2; exit 2 ;;
  esac
done

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /var/tmp/hasync-freshmem.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
HELPER=$WORK/fresh_memory_helper
g++ -O2 -std=c++20 -o "$HELPER" "$REPO/scripts/perf/fresh_memory_helper.cpp"

rate() { python3 -c 'import json,sys; print(json.load(sys.stdin)["mb_per_s"])'; }
cold=() warm=()
for ((r = 1; r <= REPS; r++)); do
  rm -f "$WORK/f"
  sleep "$IDLE"
  cold+=("$("$HELPER" "$WORK/f" "$SIZE" | rate)")
  rm -f "$WORK/f"
  warm+=("$("$HELPER" "$WORK/f" "$SIZE" | rate)")
  echo "rep $r: cold ${cold[-1]} MB/s, warm ${warm[-1]} MB/s" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mc=$(median "${cold[@]}") mw=$(median "${warm[@]}")
echo "| page-cache write of ${SIZE} MiB, 1 MiB pwrites | runs MB/s | median MB/s |"
echo "| --- | --- | ---: |"
echo "| cold (memory freed ${IDLE} s before) | ${cold[*]} | $mc |"
echo "| warm (memory freed just before) | ${warm[*]} | $mw |"
python3 -c "print(f'cold / warm = {$mc / $mw:.2f}')"
reporting=$(grep -o 'page_reporting[^ ]*' /proc/cmdline || true)
echo "kernel: $(uname -r); free page reporting: ${reporting:-not on the command line}"
