#!/usr/bin/env bash
# Installs every Debian 12 package hasync needs to build, test and benchmark.
# Idempotent: packages already present are left alone, and apt-get update runs
# only when something is missing. Must run as root (CI and the README run it so).
set -euo pipefail

# Build toolchain and libraries (DESIGN §2, issue 2).
build_pkgs=(
  build-essential cmake ninja-build pkg-config git
  clang libclang-rt-14-dev            # libFuzzer + sanitizer runtimes
  liburing-dev libxxhash-dev libmbedtls-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libtomlplusplus-dev libcli11-dev libfmt-dev libspdlog-dev
  libsystemd-dev nlohmann-json3-dev libcpp-httplib-dev
)
# Tools the system tests and perf scripts drive (netns, faults, baselines; python3
# turns benchmark JSON into the tables of docs/PERFORMANCE.md).
tool_pkgs=(
  iproute2 procps psmisc strace attr acl python3
  iputils-ping stress-ng util-linux   # netns system tests: quorum_check, load, flock
  rsync e2fsprogs linux-perf         # replication baselines, chattr +T, profiles
  lsyncd gnuplot-nox                 # perf: the lsyncd baseline, the plots of PERFORMANCE.md
  systemd                            # systemd-analyze verify of packaging/hasync.service
  slurmctld slurm-client munge       # the Slurm recipe's system test (slurm_failover_test)
  scdoc lintian fakeroot             # the Debian package: man page source → roff, its checks
  shellcheck                         # the recipes' hook scripts are linted in the tests
  prometheus                         # promtool checks the alert rules (packaging/monitoring)
  etcd-server etcd-client            # the arbiter's tests run a real three-member etcd (tests/arbiter)
)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: must run as root (it calls apt-get install)" >&2
  exit 1
fi

missing=()
for p in "${build_pkgs[@]}" "${tool_pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps.sh: all ${#build_pkgs[@]}+${#tool_pkgs[@]} packages present"
  exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
