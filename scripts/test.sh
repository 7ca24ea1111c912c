#!/usr/bin/env bash
# The whole test suite, as README.md states it and .ci/run calls it:
#   install packages → build → every test (ctest) → a plain Release build → a clang build
#   → the Debian package built, linted, installed and removed → every test again under
#   ASan+UBSan → the threaded tests under ThreadSanitizer → the fuzz targets briefly
#   (clang) → every perf script at CI size (scripts/perf/all.sh --quick).
# Must run as root on Debian 12. Each stage prints what it runs and how long it took.
# The project's own builds here turn warnings into errors (-DHASYNC_WERROR=ON); a plain
# Release build, as a user or a distribution makes it, does not (docs/PACKAGING.md).
# A failing stage does not hide the others: every stage runs (a stage whose build fails
# runs no tests), and the script exits non-zero if any stage failed. The run ends with a
# table of stage times and, as its very last line, the test count over all ctest stages
# in the form "N passed, N failed" (skipped tests are counted apart, on the line before,
# never as passed).
#
# HASYNC_TEST_QUICK=1 skips every stage after the first ctest (Release, clang, package,
# sanitizers, fuzz, perf) for a fast local loop; CI never sets it. HASYNC_FUZZ_SECONDS
# sets the per-target fuzz time (default 30).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
jobs=$(nproc)
fuzz_seconds=${HASYNC_FUZZ_SECONDS:-30}
results=$here/build-results # one JUnit file per ctest stage
rm -rf "$results"
mkdir -p "$results"

stage_names=()
stage_times=()
failed_stages=()
stage_started=0
current_stage=""
total_passed=0
total_failed=0
total_skipped=0

stage() {
  end_stage
  current_stage=$*
  stage_started=$SECONDS
  printf '\n==== %s ====\n' "$current_stage"
}

end_stage() {
  if [[ -n $current_stage ]]; then
    local took=$((SECONDS - stage_started))
    stage_names+=("$current_stage")
    stage_times+=("$took")
    printf -- '---- %s: %dm%02ds\n' "$current_stage" $((took / 60)) $((took % 60))
    current_stage=""
  fi
}

summary() {
  local rc=$?
  trap - EXIT
  current_stage_at_exit=$current_stage
  [[ -n $current_stage ]] && end_stage
  printf '\n==== summary ====\n'
  local i
  for i in "${!stage_names[@]}"; do
    printf '%6dm%02ds  %s\n' $((stage_times[i] / 60)) $((stage_times[i] % 60)) "${stage_names[i]}"
  done
  printf '%6dm%02ds  total\n' $((SECONDS / 60)) $((SECONDS % 60))
  if ((rc == 0 && ${#failed_stages[@]} == 0)); then
    echo "all stages passed"
  else
    ((rc == 0)) && rc=1
    local f
    for f in "${failed_stages[@]}"; do echo "FAILED: $f"; done
    ((${#failed_stages[@]} == 0)) && echo "FAILED (exit $rc) in: ${current_stage_at_exit:-start-up}"
  fi
  echo "$total_skipped skipped (reasons in the ctest output above)"
  echo "$total_passed passed, $total_failed failed"
  exit "$rc"
}
trap summary EXIT

# junit_count FILE ATTRIBUTE: an attribute of the <testsuite> element ctest writes.
junit_count() {
  grep -m1 -o "\b$2=\"[0-9]*\"" "$1" | grep -o '[0-9]\+' || echo 0
}

# run_ctest NAME ARGS...: ctest with its JUnit report; adds the counts to the totals.
# "No tests were found" is an error: a stage that runs nothing must not pass.
run_ctest() {
  local name=$1 rc=0
  shift
  ctest --output-on-failure --no-tests=error --output-junit "$results/$name.xml" "$@" || rc=$?
  if [[ -f $results/$name.xml ]]; then
    local tests failures skipped disabled
    tests=$(junit_count "$results/$name.xml" tests)
    failures=$(junit_count "$results/$name.xml" failures)
    skipped=$(junit_count "$results/$name.xml" skipped)
    disabled=$(junit_count "$results/$name.xml" disabled)
    total_passed=$((total_passed + tests - failures - skipped - disabled))
    total_failed=$((total_failed + failures))
    total_skipped=$((total_skipped + skipped + disabled))
  elif ((rc != 0)); then
    total_failed=$((total_failed + 1)) # ctest itself failed before running anything
  fi
  return "$rc"
}

# run_stage NAME FUNCTION: runs one stage; a failure is recorded and the run goes on.
# (errexit does not apply inside a function called as a condition, so every stage
# function chains its steps with &&.)
run_stage() {
  stage "$1"
  if ! "$2"; then
    failed_stages+=("$1")
    echo "---- stage failed: $1"
  fi
  end_stage
}

build_main() {
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHASYNC_WERROR=ON >/dev/null &&
    ninja -C build -j "$jobs"
}
test_main() {
  run_ctest main --test-dir build -j "$jobs" --timeout 900
}

# A plain Release build, as a user or a distribution makes one: CMake's default generator,
# no -DHASYNC_WERROR, every target (tests and benchmarks too). Warnings are printed, not
# fatal: a new compiler's false positive must not break a build outside the project's runs.
release_plain() {
  cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build build-release -j "$jobs"
}

# Everything compiled once with clang 14, -Werror included (tests and benchmarks; nothing
# is run): code that only g++ accepts, or that clang warns about, fails here. -O0 without
# debug info: clang's warnings come from its front end, not the optimiser, and the stage
# takes about half the time of an optimised build.
clang_build() {
  CC=clang CXX=clang++ cmake -S . -B build-clang -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS_DEBUG=-O0 -DCMAKE_CXX_FLAGS_DEBUG=-O0 -DHASYNC_WERROR=ON >/dev/null &&
    ninja -C build-clang -j "$jobs"
}

# The Debian package (docs/PACKAGING.md): only the binary, the man page and the changelog
# are built; the "package" tests make the .deb with cpack, run lintian, and install,
# check, remove and purge it on this machine (a trap purges it whatever happens).
package() {
  cmake -S . -B build-pkg -G Ninja -DCMAKE_BUILD_TYPE=Release -DHASYNC_DEB_PACKAGE=ON \
    -DHASYNC_BUILD_TESTS=OFF -DHASYNC_BUILD_BENCH=OFF -DHASYNC_WERROR=ON >/dev/null &&
    ninja -C build-pkg -j "$jobs" &&
    run_ctest package --test-dir build-pkg -L package --timeout 900
}

# Every test again, Debug, with ASan + UBSan; any report aborts the test. -O1, as the
# sanitizers' documentation advises: the checks are the same, the tests run faster than at
# -O0 (the stage was the longest of the run).
asan() {
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" \
    -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DHASYNC_SANITIZE=ON \
    -DHASYNC_BUILD_BENCH=OFF -DHASYNC_WERROR=ON >/dev/null &&
    ninja -C build-asan -j "$jobs" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      run_ctest asan --test-dir build-asan -j "$jobs" --timeout 900
}

# Only the binaries with threads are built (lockwin_test; the data streams' frame_queue_test
# and data_stream_test); the "tsan" label selects their tests, and --no-tests=error makes an
# empty selection fail rather than pass.
tsan() {
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHASYNC_TSAN=ON \
    -DHASYNC_BUILD_BENCH=OFF -DHASYNC_WERROR=ON >/dev/null &&
    ninja -C build-tsan -j "$jobs" lockwin_test frame_queue_test data_stream_test &&
    TSAN_OPTIONS=halt_on_error=1 run_ctest tsan --test-dir build-tsan -L tsan --timeout 900
}

# Only the fuzz targets (and their corpus generators) are built: the engine and the app
# are not needed and are only built with g++.
fuzz() {
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DHASYNC_FUZZ=ON -DHASYNC_BUILD_TESTS=OFF -DHASYNC_BUILD_BENCH=OFF -DHASYNC_WERROR=ON \
    -DHASYNC_FUZZ_SECONDS="$fuzz_seconds" >/dev/null &&
    ninja -C build-fuzz -j "$jobs" fuzz_targets &&
    run_ctest fuzz --test-dir build-fuzz -L fuzz --timeout $((fuzz_seconds + 300))
}

# Every perf script at CI size (scripts/perf/all.sh --quick, build-perf/): keeps the
# benchmarks and the side-by-side, failover and report scripts working. Figures from a
# shared CI machine mean nothing, so nothing about them is asserted; a script that fails
# (a tool missing, a copy that differs, a pair that never syncs) fails the stage.
perf_quick() {
  ./scripts/perf/all.sh --quick
}

# Without the packages nothing else can run: this one stops the run.
stage "install Debian packages"
./scripts/install-deps.sh
end_stage

run_stage "build (RelWithDebInfo) in build/" build_main
if [[ ${#failed_stages[@]} == 0 ]]; then
  run_stage "every test (ctest, build/)" test_main
fi

if [[ ${HASYNC_TEST_QUICK:-0} == 1 ]]; then
  echo "HASYNC_TEST_QUICK=1: Release, clang, package, sanitizer, fuzz and perf stages not run"
  exit 0
fi

run_stage "plain Release build, no -Werror (build-release/)" release_plain
run_stage "clang 14 compiles everything, no run (build-clang/)" clang_build
run_stage "Debian package: cpack, lintian, dpkg -i/-r/-P (build-pkg/, ctest -L package)" package
run_stage "every test under ASan + UBSan (build-asan/)" asan
run_stage "threaded tests (lock window, data streams) under ThreadSanitizer (build-tsan/, ctest -L tsan)" tsan
run_stage "fuzz targets, ${fuzz_seconds}s each (clang libFuzzer, build-fuzz/)" fuzz
run_stage "perf scripts, --quick (scripts/perf/all.sh, build-perf/; no timing asserts)" perf_quick
