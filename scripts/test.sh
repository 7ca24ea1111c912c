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
# Compile-only work runs in the background, at nice 19 and idle I/O priority, while a
# ctest stage runs in the foreground: the tests mostly wait (timers, fsync, network
# namespaces, serial tests one at a time) and leave the CPUs idle. The plain Release and
# clang builds overlap the first ctest stage; the package, ThreadSanitizer and fuzz
# builds overlap the ASan+UBSan tests. A background build's output is printed when it is
# waited for, under its own stage heading and time. The perf scripts reuse build/.
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
declare -A bg_pid=() bg_t0=() bg_name=() # background builds: pid, start, stage name
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
  bg_stop_all
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

# Background builds (compile only; no ctest inside, so the totals stay in this shell).
# bg_start KEY NAME FUNCTION: starts FUNCTION in the background at nice 19 and idle I/O
# priority, its output in build-results/KEY.log.
bg_start() {
  local key=$1
  bg_name[$key]=$2
  bg_t0[$key]=$SECONDS
  (
    renice -n 19 -p "$BASHPID" >/dev/null
    ionice -c 3 -p "$BASHPID" 2>/dev/null || true
    rc=0 t0=$(date +%s)
    "$3" || rc=$?
    echo $(($(date +%s) - t0)) >"$results/$key.time" # its own time, not the wait's
    exit "$rc"
  ) >"$results/$key.log" 2>&1 &
  bg_pid[$key]=$!
  printf '(started in the background, nice 19: %s; output: %s)\n' "$2" "$results/$key.log"
}
# bg_wait KEY: waits for a background build, prints its output under its own heading and
# records it as a stage (a failure is a failed stage). Returns its status.
bg_wait() {
  local key=$1 rc=0
  wait "${bg_pid[$key]}" || rc=$?
  unset "bg_pid[$key]"
  local took name="${bg_name[$key]} [background]"
  took=$(cat "$results/$key.time" 2>/dev/null || echo $((SECONDS - bg_t0[$key])))
  printf '\n==== %s ====\n' "$name"
  cat "$results/$key.log"
  stage_names+=("$name")
  stage_times+=("$took")
  printf -- '---- %s: %dm%02ds\n' "$name" $((took / 60)) $((took % 60))
  if ((rc != 0)); then
    failed_stages+=("$name")
    echo "---- stage failed: $name"
  fi
  return "$rc"
}
# A run that stops early stops its background builds too.
bg_stop_all() {
  local key
  for key in "${!bg_pid[@]}"; do
    pkill -TERM -P "${bg_pid[$key]}" 2>/dev/null || true
    kill "${bg_pid[$key]}" 2>/dev/null || true
  done
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
package_build() {
  cmake -S . -B build-pkg -G Ninja -DCMAKE_BUILD_TYPE=Release -DHASYNC_DEB_PACKAGE=ON \
    -DHASYNC_BUILD_TESTS=OFF -DHASYNC_BUILD_BENCH=OFF -DHASYNC_WERROR=ON >/dev/null &&
    ninja -C build-pkg -j "$jobs"
}
package_test() {
  run_ctest package --test-dir build-pkg -L package --timeout 900
}

# Every test again, Debug, with ASan + UBSan; any report aborts the test. -O1, as the
# sanitizers' documentation advises: the checks are the same, the tests run faster than at
# -O0 (the stage was the longest of the run).
asan_build() {
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" \
    -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DHASYNC_SANITIZE=ON \
    -DHASYNC_BUILD_BENCH=OFF -DHASYNC_WERROR=ON >/dev/null &&
    ninja -C build-asan -j "$jobs"
}
asan_test() {
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest asan --test-dir build-asan -j "$jobs" --timeout 900
}

# Only the binaries with threads are built (lockwin_test; the data streams' frame_queue_test
# and data_stream_test; the standby's pipelined commit, pipeline_test); the "tsan" label
# selects their tests, and --no-tests=error makes an
# empty selection fail rather than pass.
tsan_build() {
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHASYNC_TSAN=ON \
    -DHASYNC_BUILD_BENCH=OFF -DHASYNC_WERROR=ON >/dev/null &&
    ninja -C build-tsan -j "$jobs" lockwin_test frame_queue_test data_stream_test pipeline_test
}
tsan_test() {
  TSAN_OPTIONS=halt_on_error=1 run_ctest tsan --test-dir build-tsan -L tsan --timeout 900
}

# Only the fuzz targets (and their corpus generators) are built: the engine and the app
# are not needed and are only built with g++.
fuzz_build() {
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DHASYNC_FUZZ=ON -DHASYNC_BUILD_TESTS=OFF -DHASYNC_BUILD_BENCH=OFF -DHASYNC_WERROR=ON \
    -DHASYNC_FUZZ_SECONDS="$fuzz_seconds" >/dev/null &&
    ninja -C build-fuzz -j "$jobs" fuzz_targets
}
fuzz_test() {
  run_ctest fuzz --test-dir build-fuzz -L fuzz --timeout $((fuzz_seconds + 300))
}

# Every perf script at CI size (scripts/perf/all.sh --quick) with the binaries of build/
# (the same RelWithDebInfo build; compiling them again would only cost time): keeps the
# benchmarks and the side-by-side, failover and report scripts working. Figures from a
# shared CI machine mean nothing, so nothing about them is asserted; a script that fails
# (a tool missing, a copy that differs, a pair that never syncs) fails the stage.
perf_quick() {
  ./scripts/perf/all.sh --quick --build "$here/build"
}

# Without the packages nothing else can run: this one stops the run.
stage "install Debian packages"
./scripts/install-deps.sh
end_stage

quick=${HASYNC_TEST_QUICK:-0}
release_name="plain Release build, no -Werror (build-release/)"
clang_name="clang 14 compiles everything, no run (build-clang/)"

run_stage "build (RelWithDebInfo) in build/" build_main
if [[ ${#failed_stages[@]} == 0 ]]; then
  if [[ $quick != 1 ]]; then
    bg_start release "$release_name" release_plain
    bg_start clang "$clang_name" clang_build
  fi
  run_stage "every test (ctest, build/)" test_main
fi

if [[ $quick == 1 ]]; then
  echo "HASYNC_TEST_QUICK=1: Release, clang, package, sanitizer, fuzz and perf stages not run"
  exit 0
fi

# (If build/ failed, the Release and clang builds were not started: they run here.)
if [[ -v bg_pid[release] ]]; then bg_wait release || true; else run_stage "$release_name" release_plain; fi
if [[ -v bg_pid[clang] ]]; then bg_wait clang || true; else run_stage "$clang_name" clang_build; fi

run_stage "ASan + UBSan build (build-asan/)" asan_build
bg_start pkg "Debian package build (build-pkg/)" package_build
bg_start tsan "ThreadSanitizer build of the threaded tests (build-tsan/)" tsan_build
bg_start fuzz "fuzz targets build (clang libFuzzer, build-fuzz/)" fuzz_build
if [[ ${failed_stages[*]} != *"ASan + UBSan build"* ]]; then
  run_stage "every test under ASan + UBSan (build-asan/)" asan_test
fi
if bg_wait pkg; then
  run_stage "Debian package: cpack, lintian, dpkg -i/-r/-P (build-pkg/, ctest -L package)" package_test
fi
if bg_wait tsan; then
  run_stage "threaded tests (lock window, data streams) under ThreadSanitizer (build-tsan/, ctest -L tsan)" tsan_test
fi
if bg_wait fuzz; then
  run_stage "fuzz targets, ${fuzz_seconds}s each (clang libFuzzer, build-fuzz/)" fuzz_test
fi
run_stage "perf scripts, --quick (scripts/perf/all.sh with build/; no timing asserts)" perf_quick
