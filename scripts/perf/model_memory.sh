#!/usr/bin/env bash
# model_memory.sh — bytes per tracked file of the primary's model at rest (DESIGN §8:
# ≤ 200), measured inside one process with mallinfo2 and VmRSS (model_memory.cpp says
# what is counted). Cheaper and steadier than replication.sh's RSS of a running pair,
# which also counts the node's buffers and the heap's fragmentation after a resync.
#
# Builds the engine library (in BUILD_DIR, default build-model-memory/, tests and
# benchmarks off; an existing build dir such as build/ works too), links the helper
# against it, creates a Slurm-like tree of FILES files under /var/tmp (kept for the next
# run with -k), and runs the helper once per mode, each in a fresh process.
#
# usage: scripts/perf/model_memory.sh [-n FILES] [-l LARGE_FILES] [-b BUILD_DIR] [-k]
set -euo pipefail

N=100000 LARGE=20 KEEP=0
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$REPO/build-model-memory
while getopts "n:l:b:k" opt; do
  case $opt in
    n) N=$OPTARG ;;
    l) LARGE=$OPTARG ;;
    b) BUILD=$(realpath "$OPTARG") ;;
    k) KEEP=1 ;;
    *) echo "usage: $0 [-n files] [-l large_files] [-b build_dir] [-k]" >&2; exit 2 ;;
  esac
done

if [[ ! -f $BUILD/build.ninja ]]; then
  cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DHASYNC_BUILD_TESTS=OFF -DHASYNC_BUILD_BENCH=OFF >/dev/null
fi
ninja -C "$BUILD" hasync_engine >/dev/null

HELPER=$BUILD/model_memory
# shellcheck disable=SC2046  # pkg-config prints several words on purpose
g++ -std=c++20 -O2 -g -D_GNU_SOURCE -I"$REPO" "$REPO/scripts/perf/model_memory.cpp" \
  -Wl,--start-group "$BUILD"/engine/libhasync_engine.a "$BUILD"/wire/libhasync_wire.a \
  "$BUILD"/lockwin/libhasync_lockwin.a "$BUILD"/iouring/libhasync_iouring.a -Wl,--end-group \
  $(pkg-config --libs liburing libxxhash tomlplusplus) -lfmt -lmbedtls -lmbedx509 -lmbedcrypto \
  -lpthread -o "$HELPER"

TREE=/var/tmp/hasync-model-memory-$N-$LARGE
if [[ ! -f $TREE/complete ]]; then
  rm -rf "$TREE"
  echo "creating $N files (${LARGE} of 2 MiB) in $TREE" >&2
  "$HELPER" make "$TREE" "$N" "$LARGE" 2 >/dev/null
fi
[[ $KEEP == 1 ]] || trap 'rm -rf "$TREE"' EXIT

echo "model memory, $N files ($LARGE large), $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%FT%TZ)"
for mode in resync manifest; do
  "$HELPER" "$mode" "$TREE"
done
