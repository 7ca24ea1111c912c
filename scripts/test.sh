#!/usr/bin/env bash
# The whole test suite, as README.md states it and .ci/run calls it:
#   install packages → build → every test (ctest) → unit tests under ASan+UBSan →
#   the lock-window ring under ThreadSanitizer → the fuzz targets briefly (clang).
# Must run as root on Debian 12. Each stage prints what it runs; the first failure stops
# the run with a non-zero exit. HASYNC_TEST_QUICK=1 skips the sanitizer and fuzz stages
# (for a fast local loop; CI never sets it). HASYNC_FUZZ_SECONDS sets the per-target
# fuzz time (default 30).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
jobs=$(nproc)
fuzz_seconds=${HASYNC_FUZZ_SECONDS:-30}

stage() { printf '\n==== %s ====\n' "$*"; }

stage "install Debian packages"
./scripts/install-deps.sh

stage "build (RelWithDebInfo) in build/"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build -j "$jobs"

stage "every test (ctest, build/)"
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 900

if [[ ${HASYNC_TEST_QUICK:-0} == 1 ]]; then
  echo "HASYNC_TEST_QUICK=1: sanitizer and fuzz stages not run"
  exit 0
fi

stage "unit tests under ASan + UBSan (build-asan/)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DHASYNC_SANITIZE=ON \
  -DHASYNC_BUILD_BENCH=OFF >/dev/null
ninja -C build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" --timeout 900

stage "lock-window ring under ThreadSanitizer (build-tsan/)"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHASYNC_TSAN=ON \
  -DHASYNC_BUILD_BENCH=OFF >/dev/null
ninja -C build-tsan -j "$jobs" lockwin_test
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan/tests/lockwin --output-on-failure --timeout 900

stage "fuzz targets, ${fuzz_seconds}s each (clang libFuzzer, build-fuzz/)"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DHASYNC_FUZZ=ON -DHASYNC_BUILD_TESTS=OFF -DHASYNC_BUILD_BENCH=OFF \
  -DHASYNC_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
ninja -C build-fuzz -j "$jobs"
ctest --test-dir build-fuzz --output-on-failure --timeout 900

stage "all stages passed"
