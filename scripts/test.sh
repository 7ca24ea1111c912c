#!/usr/bin/env bash
# The whole test suite, as README.md states it and .ci/run calls it:
#   install packages → build (g++, -Werror) → every test (ctest) → every test again under
#   ASan+UBSan (clang, -Werror) → the Debian package (a plain Release build with CMake's
#   default generator and no -Werror) built, linted, installed and removed → the threaded
#   tests under ThreadSanitizer → the fuzz targets briefly (clang) → every perf script at
#   CI size (scripts/perf/all.sh --quick).
# Must run as root on Debian 12. Each stage prints what it runs and how long it took.
# The project's own builds here turn warnings into errors (-DHASYNC_WERROR=ON); a plain
# Release build, as a user or a distribution makes it, does not (docs/PACKAGING.md).
# A failing stage does not hide the others: every stage runs (a stage whose build fails
# runs no tests), and the script exits non-zero if any stage failed. The run ends with a
# table of stage times and, as its very last line, the test count over all ctest stages
# in the form "N passed, N failed" (skipped tests are counted apart, on the line before,
# never as passed).
#
# The stages run one after the other. Running compile-only stages in the background
# during the ctest stages was tried and measured (docs/TESTING.md): on two CPUs it saved
# nothing, because the tests then ran as much slower as the builds ran faster. The two
# compilers each build everything once (g++ optimised, clang with the sanitizers), so
# code only one of them accepts fails a stage; the perf scripts reuse build/.
#
# HASYNC_TEST_QUICK=1 skips every stage after the first ctest (sanitizers, package,
# fuzz, perf) for a fast local loop; CI never sets it. HASYNC_FUZZ_SECONDS sets the
# per-target fuzz time (default 30).
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
# run_stage_ok NAME FUNCTION: run_stage, and says whether that stage passed.
run_stage_ok() {
  local before=${#failed_stages[@]}
  run_stage "$1" "$2"
  ((${#failed_stages[@]} == before))
}

build_main() {
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHASYNC_WERROR=ON >/dev/null &&
    ninja -C build -j "$jobs"
}
test_main() {
  run_ctest main --test-dir build -j "$jobs" --timeout 900
}

# Every test again, built by clang 14 with ASan + UBSan and -Werror; any report aborts the
# test. The second compiler is here rather than in a stage of its own: code that only g++
# accepts, or that clang warns about, fails this build (build/ holds g++ to the same
# warnings). Debug at -O1, as the sanitizers' documentation advises: the checks are the
# same and the tests run faster than at -O0. Benchmarks are built too (not run), so every
# target passes both compilers.
asan_build() {
  CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DHASYNC_SANITIZE=ON \
    -DHASYNC_WERROR=ON >/dev/null &&
    ninja -C build-asan -j "$jobs"
}
asan_test() {
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest asan --test-dir build-asan -j "$jobs" --timeout 900
}

# The Debian package (docs/PACKAGING.md), built as a user or a distribution builds
# hasync: Release, CMake's default generator (make), no -DHASYNC_WERROR, so a new
# compiler's warning prints but cannot fail it. Only the binary, the man page and the
# changelog are built; the "package" tests make the .deb with cpack, run lintian, and
# install, check, remove and purge it on this machine (a trap purges it whatever happens).
# (build/ compiles every target at -O2 with -Werror; a separate plain build of every
# target cost 6 to 15 minutes and could only fail where build/ already does.)
package_build() {
  cmake -S . -B build-pkg -DCMAKE_BUILD_TYPE=Release -DHASYNC_DEB_PACKAGE=ON \
    -DHASYNC_BUILD_TESTS=OFF -DHASYNC_BUILD_BENCH=OFF >/dev/null &&
    cmake --build build-pkg -j "$jobs"
}
package_test() {
  run_ctest package --test-dir build-pkg -L package --timeout 900
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

run_stage "build (g++ 12, RelWithDebInfo, -Werror) in build/" build_main
if [[ ${#failed_stages[@]} == 0 ]]; then
  run_stage "every test (ctest, build/)" test_main
fi

if [[ $quick == 1 ]]; then
  echo "HASYNC_TEST_QUICK=1: sanitizer, package, fuzz and perf stages not run"
  exit 0
fi

# A stage whose build failed runs no tests (its failure is already recorded).
if run_stage_ok "ASan + UBSan build (clang 14, build-asan/)" asan_build; then
  run_stage "every test under ASan + UBSan (build-asan/)" asan_test
fi
if run_stage_ok "Debian package build (Release, make, no -Werror: build-pkg/)" package_build; then
  run_stage "Debian package: cpack, lintian, dpkg -i/-r/-P (build-pkg/, ctest -L package)" package_test
fi
if run_stage_ok "ThreadSanitizer build of the threaded tests (build-tsan/)" tsan_build; then
  run_stage "threaded tests (lock window, data streams, pipelined commit) under ThreadSanitizer (build-tsan/, ctest -L tsan)" tsan_test
fi
if run_stage_ok "fuzz targets build (clang libFuzzer, build-fuzz/)" fuzz_build; then
  run_stage "fuzz targets, ${fuzz_seconds}s each (clang libFuzzer, build-fuzz/)" fuzz_test
fi
run_stage "perf scripts, --quick (scripts/perf/all.sh with build/; no timing asserts)" perf_quick
