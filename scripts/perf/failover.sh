#!/usr/bin/env bash
# failover.sh — failover latency distributions of a hasync pair (issue 5, DESIGN §8:
# "crash and hang detection ≤ window + one beat; promotion done ≤ 100 ms later, hooks
# excluded").
#
# N trials (--trials, default 5) of each failure kind, interleaved (kill9, sigstop,
# probe, linkcut, kill9, …):
#   kill9    kill -9 of the primary's hasync
#   sigstop  SIGSTOP of the primary's hasync (hang; SIGCONT once the standby promoted)
#   probe    the primary's scheduler probe starts failing (beat stops → Stalled →
#            DEMOTE_REQUEST → on_demote on the primary → promotion)
#   linkcut  the primary's veth set down (lease → quorum_check fails → self-fence on the
#            primary; window → quorum_check passes → promotion on the standby)
#
# Each node runs in a network namespace of its own, joined through a third that routes
# between them and is the quorum_check target (all addresses in 10.214.0.0/16, inside
# namespaces named hsperf-*-PID; nothing is sent anywhere else):
#
#   hsperf-a-PID (primary) ── veth ── hsperf-w-PID (router, tie-breaker) ── veth ── hsperf-b-PID (standby)
#   10.214.1.1                       10.214.1.254 | 10.214.2.254                    10.214.2.1
#
# Every trial starts a fresh pair (new state dirs and spools, `--initial-role`), waits
# until `hasync status --json` on both nodes says joined and in sync (epoch > 0, live
# session, nothing unacknowledged, standby caught up with a live change, verdict alive),
# lets it run a few beats plus a random part of a beat, injects the fault and waits for
# the standby's on_promote. One clock: CLOCK_MONOTONIC (hasync's own), read by the
# injector just before the fault, by a stamper that timestamps each node's log lines as
# they are written (the detector's `event=verdict` line), and by the hook program (a
# small C program built here) when a hook starts.
#
# Output: build-perf-failover/results/failover.json (every trial raw; per kind
# min/p50/p90/max of detection and promotion, also as ratios to the window),
# failover.png (gnuplot), the nodes' logs of each trial under results/raw/, and a
# Markdown table on stdout. No timing asserts: a missed target is reported, not failed.
#
# usage: scripts/perf/failover.sh [--quick] [--trials N] [--window-ms W] [--beat-ms B]
#                                 [--lease-ms L] [--probe-ms P] [--kinds "kill9 sigstop probe linkcut"]
#                                 [--no-build]  (use the hasync already built in build-perf-failover/)
#                                 [--build DIR] (build directory instead of build-perf-failover/)
# Needs root (network namespaces, fanotify), ip (iproute2), ping (iputils-ping), a C
# compiler, python3; gnuplot (gnuplot-nox) for the plot.
set -euo pipefail

BUILD_DIR="" QUICK=0 BUILD_IT=1 TRIALS=5 WINDOW_MS=2000 BEAT_MS=250 LEASE_MS="" PROBE_MS="" SET_W=0 SET_B=0 SET_T=0
KINDS="kill9 sigstop probe linkcut"
ARGS_STR="$*"
ARGS_STR=${ARGS_STR//[\\\"]/}   # it goes into JSON as it is
usage() {
  echo "usage: $0 [--quick] [--no-build] [--build DIR] [--trials N] [--window-ms W] [--beat-ms B] [--lease-ms L] [--probe-ms P] [--kinds \"kill9 sigstop probe linkcut\"]" >&2
  exit 2
}
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --no-build) BUILD_IT=0 ;;
    --build) BUILD_DIR=${2:-}; shift ;;
    --trials) TRIALS=${2:-}; SET_T=1; shift ;;
    --window-ms) WINDOW_MS=${2:-}; SET_W=1; shift ;;
    --beat-ms) BEAT_MS=${2:-}; SET_B=1; shift ;;
    --lease-ms) LEASE_MS=${2:-}; shift ;;
    --probe-ms) PROBE_MS=${2:-}; shift ;;
    --kinds) KINDS=${2:-}; shift ;;
    -h | --help) usage ;;
    *) usage ;;
  esac
  shift
done
if ((QUICK)); then  # one trial each with short timers; what was given explicitly stays
  ((SET_T)) || TRIALS=1
  ((SET_W)) || WINDOW_MS=1500
  ((SET_B)) || BEAT_MS=100
fi
for v in "$TRIALS" "$WINDOW_MS" "$BEAT_MS" ${LEASE_MS:+"$LEASE_MS"} ${PROBE_MS:+"$PROBE_MS"}; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "failover.sh: not a number: $v" >&2; usage; }
done
for k in $KINDS; do
  case $k in kill9 | sigstop | probe | linkcut) ;; *) echo "failover.sh: unknown kind $k" >&2; usage ;; esac
done
((TRIALS >= 1 && TRIALS <= 100)) || { echo "failover.sh: --trials must be 1..100" >&2; exit 2; }

if [[ $(id -u) -ne 0 ]]; then
  echo "failover.sh: must run as root (it creates network namespaces, and hasync uses fanotify)" >&2
  exit 1
fi

# Timers that pass hasync's config rules (docs/CONFIG.md): window > lease + margin with
# margin = max(2 beats, 1 s), lease ≥ 2 beats; lease + quorum_check timeout + on_demote
# timeout < window (else check-config warns); probe interval + timeout < window.
MARGIN_MS=$((2 * BEAT_MS > 1000 ? 2 * BEAT_MS : 1000))
[[ -n $LEASE_MS ]] || LEASE_MS=$((WINDOW_MS - MARGIN_MS - BEAT_MS))
if ((LEASE_MS < 2 * BEAT_MS || WINDOW_MS <= LEASE_MS + MARGIN_MS)); then
  echo "failover.sh: no valid lease for window $WINDOW_MS ms and beat $BEAT_MS ms (need window > lease + max(2 beats, 1000) and lease >= 2 beats)" >&2
  exit 2
fi
GUARD_TO_MS=$(((WINDOW_MS - LEASE_MS - 50) / 2))   # quorum_check and on_demote timeouts
((GUARD_TO_MS >= 100)) || GUARD_TO_MS=100
if [[ -z $PROBE_MS ]]; then PROBE_MS=$((QUICK ? 300 : 500)); fi
PROBE_TO_MS=$((PROBE_MS / 2))
((PROBE_TO_MS >= 10)) || PROBE_TO_MS=10
SETTLE_MS=$((QUICK ? 2 * BEAT_MS : 4 * BEAT_MS))   # beats after join before the fault
PORT=7460

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD_DIR:-$REPO/build-perf-failover}
RESULTS=$BUILD/results
BIN=$BUILD/app/hasync
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)
H=("$PY" "$REPO/scripts/perf/failover_helper.py")
CC=$(command -v cc || command -v gcc || command -v clang || true)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

missing=()
for tool in /usr/sbin/ip /usr/bin/ping; do [[ -x $tool ]] || missing+=("$tool"); done
[[ -n $CC ]] || missing+=("a C compiler (cc)")
[[ -n $PY ]] || missing+=("python3")
if ((${#missing[@]})); then
  echo "failover.sh: missing ${missing[*]} (scripts/install-deps.sh installs them)" >&2
  exit 1
fi
command -v gnuplot >/dev/null || log "gnuplot not found: no plot (apt-get install gnuplot-nox)"

T_START=$SECONDS
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if ((BUILD_IT)); then
  log "building hasync in $BUILD (only the hasync target)"
  cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C "$BUILD" hasync >&2
else
  [[ -x $BIN ]] || { echo "failover.sh: --no-build, but there is no $BIN" >&2; exit 1; }
  log "--no-build: using $BIN as built $(date -r "$BIN" '+%Y-%m-%d %H:%M')"
fi
T_BUILT=$SECONDS

WORK=$(mktemp -d /var/tmp/hasync-perf-failover.XXXXXX)
RAW=$WORK/raw
mkdir -p "$RAW" "$RESULTS"
ID=$$
NS_A=hsperf-a-$ID NS_B=hsperf-b-$ID NS_W=hsperf-w-$ID
ADDR_A=10.214.1.1 ADDR_B=10.214.2.1 GW_A=10.214.1.254 GW_B=10.214.2.254
PIDS=()          # every background process we started
NETNS_MADE=()    # every namespace we created (their veths go with them)
PID_A="" PID_B="" STAMP_A="" STAMP_B=""

stop_pid() {  # pid: CONT (a stopped process cannot act on TERM), TERM, up to 5 s, then KILL
  local pid=$1 i
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? pid ns
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  for ns in "${NETNS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null || log "could not delete netns $ns"; done
  if ((rc != 0)); then
    log "failed (exit $rc); last node log lines:"
    tail -n 12 "$WORK"/*/a.log "$WORK"/*/b.log >&2 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ namespaces
# A run killed with -9 leaves its namespaces: remove those of ours whose pid is gone.
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^hsperf-[abw]-[0-9]+$/ {print $1}'); do
  owner=${ns##*-}
  if ! kill -0 "$owner" 2>/dev/null; then log "removing stale namespace $ns"; ip netns del "$ns" || true; fi
done
net_up() {
  local ns
  for ns in "$NS_A" "$NS_B" "$NS_W"; do ip netns add "$ns"; NETNS_MADE+=("$ns"); done
  ip link add "hspa$ID" netns "$NS_A" type veth peer name wa netns "$NS_W"
  ip link add "hspb$ID" netns "$NS_B" type veth peer name wb netns "$NS_W"
  ip -n "$NS_A" link set "hspa$ID" name eth0
  ip -n "$NS_B" link set "hspb$ID" name eth0
  ip -n "$NS_A" addr add "$ADDR_A/24" dev eth0
  ip -n "$NS_B" addr add "$ADDR_B/24" dev eth0
  ip -n "$NS_W" addr add "$GW_A/24" dev wa
  ip -n "$NS_W" addr add "$GW_B/24" dev wb
  for ns in "$NS_A" "$NS_B" "$NS_W"; do ip -n "$ns" link set lo up; done
  ip -n "$NS_A" link set eth0 up
  ip -n "$NS_B" link set eth0 up
  ip -n "$NS_W" link set wa up
  ip -n "$NS_W" link set wb up
  ip -n "$NS_A" route add default via "$GW_A"
  ip -n "$NS_B" route add default via "$GW_B"
  ip netns exec "$NS_W" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$NS_A" ping -q -c1 -W2 "$ADDR_B" >/dev/null || { log "namespace A cannot reach B through W"; exit 1; }
}
heal_a() {
  ip -n "$NS_A" link set eth0 up
  ip -n "$NS_A" route replace default via "$GW_A"
}
log "network namespaces $NS_A, $NS_B, $NS_W (10.214.1.0/24, 10.214.2.0/24)"
net_up

# ------------------------------------------------------------------ the hook program
# argv: HOOK NODE LOG [ARG]. Logs "HOOK NODE <CLOCK_MONOTONIC ns> <epoch> <role>" on
# start (one O_APPEND write). quorum_check then execs ping of ARG (the router, from the
# node's namespace). probe: exit 1 (and log "probe_fail") while the file ARG exists,
# else print a token.
cat >"$WORK/hook.c" <<'C'
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void logline(const char *path, const char *hook, const char *node, long long t) {
  char line[256];
  const char *epoch = getenv("HASYNC_EPOCH"), *role = getenv("HASYNC_ROLE");
  int n = snprintf(line, sizeof line, "%s %s %lld %s %s\n", hook, node, t, epoch ? epoch : "-",
                   role ? role : "-");
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0 && n > 0) {
    if (write(fd, line, (size_t)n) < 0) perror("hook log");
    close(fd);
  }
}

int main(int argc, char **argv) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  long long t = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
  if (argc < 4) return 2;
  const char *hook = argv[1], *node = argv[2], *path = argv[3];
  if (strcmp(hook, "probe") == 0) {
    if (argc > 4 && access(argv[4], F_OK) == 0) {
      logline(path, "probe_fail", node, t);
      puts("scheduler not answering");
      return 1;
    }
    printf("job-%lld\n", (long long)ts.tv_sec);
    return 0;
  }
  logline(path, hook, node, t);
  if (strcmp(hook, "quorum_check") == 0 && argc > 4) {
    fflush(stdout);
    execl("/usr/bin/ping", "ping", "-q", "-n", "-c1", "-W1", argv[4], (char *)NULL);
    return 1;
  }
  printf("%s on %s\n", hook, node);
  return 0;
}
C
"$CC" -O2 -Wall -o "$WORK/hook" "$WORK/hook.c"
chmod 0755 "$WORK/hook"
"$BIN" keygen "$WORK/sync.key" >/dev/null

# ------------------------------------------------------------------ one pair
write_config() {  # trial-dir node(a|b)
  local T=$1 n=$2 peer addr peer_addr gw
  if [[ $n == a ]]; then peer=b addr=$ADDR_A peer_addr=$ADDR_B gw=$GW_A
  else peer=a addr=$ADDR_B peer_addr=$ADDR_A gw=$GW_B; fi
  local hk="\"$WORK/hook\""
  cat >"$T/$n.toml" <<CONF
[node]
name = "node-$n"
listen = "$addr:$PORT"
[peer]
name = "node-$peer"
address = "$peer_addr:$PORT"
[sync]
roots = ["$T/$n/spool"]
state_dir = "$T/$n/state"
key_file = "$WORK/sync.key"
[metrics]
enabled = false
[failover]
window_ms = $WINDOW_MS
beat_ms = $BEAT_MS
lease_ms = $LEASE_MS
[probe]
command = [$hk, "probe", "$n", "$T/hooks.log", "$T/probe_fails.$n"]
interval_ms = $PROBE_MS
timeout_ms = $PROBE_TO_MS
[hooks.quorum_check]
command = [$hk, "quorum_check", "$n", "$T/hooks.log", "$gw"]
timeout_ms = $GUARD_TO_MS
[hooks.on_promote]
command = [$hk, "on_promote", "$n", "$T/hooks.log"]
timeout_ms = 5000
[hooks.on_demote]
command = [$hk, "on_demote", "$n", "$T/hooks.log"]
timeout_ms = $GUARD_TO_MS
CONF
  chmod 0600 "$T/$n.toml"
  "$BIN" check-config -c "$T/$n.toml" >/dev/null 2>>"$T/check-config.log"
}

start_node() {  # trial-dir node(a|b) initial-role: the node's log goes through the stamper
  local T=$1 n=$2 role=$3 ns spid npid
  if [[ $n == a ]]; then ns=$NS_A; else ns=$NS_B; fi
  mkfifo "$T/$n.fifo"
  "${H[@]}" stamp "$T/$n.log" <"$T/$n.fifo" &
  spid=$!; PIDS+=("$spid")
  # `ip netns exec` enters the namespace and execs: the pid is hasync's own.
  ip netns exec "$ns" "$BIN" run -c "$T/$n.toml" --initial-role "$role" >"$T/$n.fifo" 2>&1 </dev/null &
  npid=$!; PIDS+=("$npid")
  if [[ $n == a ]]; then PID_A=$npid STAMP_A=$spid; else PID_B=$npid STAMP_B=$spid; fi
}

stop_pair() {  # both nodes, then their stampers (they end at EOF)
  stop_pid "$PID_A"; stop_pid "$PID_B"
  stop_pid "$STAMP_A"; stop_pid "$STAMP_B"
  PID_A="" PID_B="" STAMP_A="" STAMP_B=""
}

# ------------------------------------------------------------------ one trial
WAIT_PROMOTE_S=$((3 * WINDOW_MS / 1000 + 10))    # generous; a missing promotion is recorded
WAIT_DEMOTE_S=$((2 * WINDOW_MS / 1000 + 3))
run_trial() {  # kind index
  local kind=$1 idx=$2 T seq jitter_ms
  T=$WORK/$kind-$idx
  mkdir -p "$T"/{a,b}/{spool,state}
  printf '{"window_ms": %d, "beat_ms": %d}\n' "$WINDOW_MS" "$BEAT_MS" >"$T/settings.json"
  for ((i = 0; i < 20; i++)); do printf 'job %d state\n' "$i" >"$T/a/spool/job.$i"; done
  write_config "$T" a
  write_config "$T" b
  start_node "$T" b standby
  start_node "$T" a primary
  # Joined and in sync, then one live change that the standby must acknowledge.
  if ! "${H[@]}" ready "$BIN" "$T/a.toml" "$T/b.toml" 30 >"$T/ready0.json"; then
    log "$kind #$idx: the pair did not join within 30 s: $(head -c 300 "$T/ready0.json")"
  else
    seq=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["seq"])' "$T/ready0.json")
    printf 'trial %s %d\n' "$kind" "$idx" >"$T/a/spool/live.job"
    if ! "${H[@]}" ready "$BIN" "$T/a.toml" "$T/b.toml" 20 "$((seq + 1))" >"$T/ready.json"; then
      log "$kind #$idx: the live change was not acknowledged within 20 s"
      rm -f "$T/ready.json"
    fi
  fi
  if [[ -s $T/ready.json ]]; then
    jitter_ms=$((RANDOM % BEAT_MS))   # the fault lands anywhere within a beat
    sleep "$(printf '%d.%03d' $(((SETTLE_MS + jitter_ms) / 1000)) $(((SETTLE_MS + jitter_ms) % 1000)))"
    case $kind in
      kill9)  # reaped at once, so that bash's "Killed" notice goes to inject.err
        { "${H[@]}" inject signal "$PID_A" SIGKILL "$T/a/state/lock" >"$T/inject.json"; wait "$PID_A" || true; } 2>>"$T/inject.err" ;;
      sigstop) "${H[@]}" inject signal "$PID_A" SIGSTOP "$T/a/state/lock" >"$T/inject.json" ;;
      probe) "${H[@]}" inject touch "$T/probe_fails.a" >"$T/inject.json" ;;
      linkcut) "${H[@]}" inject cmd ip -n "$NS_A" link set eth0 down >"$T/inject.json" ;;
    esac || log "$kind #$idx: the injection failed"
    "${H[@]}" wait "$WAIT_PROMOTE_S" "$T/hooks.log" '^on_promote b ' "$T/b.log" 'event=hook hook=on_promote ' ||
      log "$kind #$idx: no on_promote on the standby within $WAIT_PROMOTE_S s"
    case $kind in
      probe | linkcut)  # the old primary's on_demote (normally already done)
        "${H[@]}" wait 3 "$T/hooks.log" '^on_demote a ' "$T/a.log" 'event=demoted ' ||
          log "$kind #$idx: no on_demote on the old primary" ;;
      sigstop)  # wake it: it must meet the higher epoch and demote
        "${H[@]}" inject signal "$PID_A" SIGCONT >"$T/cont.json"
        "${H[@]}" wait "$WAIT_DEMOTE_S" "$T/hooks.log" '^on_demote a ' "$T/a.log" 'event=demoted ' ||
          log "$kind #$idx: the old primary did not demote within $WAIT_DEMOTE_S s of SIGCONT" ;;
    esac
  fi
  stop_pair
  [[ $kind != linkcut ]] || heal_a
  "${H[@]}" trial "$T" "$kind" "$idx" >>"$RAW/trials.jsonl"
  mkdir -p "$RAW/logs/$kind-$idx"
  cp "$T"/{a.log,b.log,a.toml,b.toml} "$RAW/logs/$kind-$idx/" 2>/dev/null || true
  cp "$T"/*.json "$T"/hooks.log "$T"/check-config.log "$RAW/logs/$kind-$idx/" 2>/dev/null || true
  "$PY" -c 'import json,sys
r = [json.loads(l) for l in open(sys.argv[1])][-1]
f = lambda x: "-" if x is None else "%.0f" % x
print("%s #%d: detection %s ms (%s), on_promote %s ms, after detection %s ms (hooks excluded %s)%s" % (
  r["kind"], r["index"], f(r["detection_ms"]), r.get("verdict", "none"), f(r["promotion_ms"]),
  f(r["after_detection_ms"]), f(r["after_detection_excl_hooks_ms"]),
  "; " + "; ".join(r["notes"]) if r["notes"] else ""))' "$RAW/trials.jsonl" | while read -r line; do log "$line"; done
  rm -rf "$T"
}

# ------------------------------------------------------------------ the trials
log "window $WINDOW_MS ms, beat $BEAT_MS ms, lease $LEASE_MS ms, probe every $PROBE_MS ms (timeout $PROBE_TO_MS ms), $TRIALS trial(s) of: $KINDS"
: >"$RAW/trials.jsonl"
T_TRIALS=$SECONDS
MAX_S=$((1800))   # a bound on the whole loop, whatever happens
for ((t = 1; t <= TRIALS; t++)); do
  for kind in $KINDS; do
    if ((SECONDS - T_TRIALS > MAX_S)); then log "stopping: the trials took more than $MAX_S s"; break 2; fi
    run_trial "$kind" "$t"
  done
done
T_DONE=$SECONDS

# ------------------------------------------------------------------ report
{
  printf '{"quick": %d, "trials": %d, "kinds": "%s",\n' "$QUICK" "$TRIALS" "$KINDS"
  printf ' "window_ms": %d, "beat_ms": %d, "lease_ms": %d, "probe_interval_ms": %d, "probe_timeout_ms": %d,\n' \
    "$WINDOW_MS" "$BEAT_MS" "$LEASE_MS" "$PROBE_MS" "$PROBE_TO_MS"
  printf ' "quorum_check_timeout_ms": %d, "on_demote_timeout_ms": %d, "settle_ms": %d, "min_failover_interval_ms": "default (300000), fresh state each trial",\n' \
    "$GUARD_TO_MS" "$GUARD_TO_MS" "$SETTLE_MS"
  printf ' "command": "scripts/perf/failover.sh%s",\n' "${ARGS_STR:+ $ARGS_STR}"
  printf ' "date": "%s", "nproc": %d, "cpu": "%s",\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  printf ' "kernel": "%s", "loadavg_start": "%s", "loadavg_end": "%s",\n' "$(uname -r)" "$LOAD_START" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf ' "built_here": %d, "binary_mtime": "%s",\n' "$BUILD_IT" "$(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ)"
  # Read-only git: the commit, and how many files of the working tree (that hasync was
  # built from) differ from it.
  printf ' "build_s": %d, "trials_s": %d, "commit": "%s", "files_differing_from_commit": %d}\n' \
    "$((T_BUILT - T_START))" "$((T_DONE - T_TRIALS))" \
    "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(git -C "$REPO" --no-optional-locks diff --name-only HEAD -- 2>/dev/null | wc -l)"
} >"$RAW/meta.json"
rm -rf "$RESULTS/raw" && cp -r "$RAW" "$RESULTS/raw"
"${H[@]}" report "$RAW" "$RESULTS/failover.json" "$RESULTS/failover.png"
echo
echo "Elapsed: $((SECONDS - T_START)) s in all (build check $((T_BUILT - T_START)) s, trials $((T_DONE - T_TRIALS)) s); results in $RESULTS/failover.json and failover.png"
