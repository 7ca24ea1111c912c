#!/usr/bin/env bash
# replication.sh — end-to-end replication figures of a hasync pair on loopback (issue 3),
# each next to a baseline measured in the same run and the DESIGN §8 target.
#
#   1. burst of N small files (1–8 KiB, 100 dirs): live (written while the pair runs) and
#      initial sync (tree present before the pair starts), vs `cp -a`(+sync) and an
#      rsync daemon push (with and without --fsync)
#   2. replication lag at 100 and 1,000 changes/s (write closed → new content visible on
#      the standby), p50/p99/max
#   3. one large file, TLS and plain, with each data-stream count of --streams (default
#      "0 2": all on the control stream, and two data streams), plain also with
#      `splice = false` (content copied), vs a raw TCP stream and a
#      minimal copier (recv + write + fsync) of the same bytes, and mbedTLS
#      ChaCha20-Poly1305 speed
#   4. the primary's small-file create rate with the pair off vs on (3× each, alternating)
#   5. memory per tracked file: both nodes' RSS over an empty spool vs over the full one
#
# Builds hasync in build-perf-repl/ (RelWithDebInfo), runs everything under a temp dir in
# /var/tmp (ext4), stops every process it started by pid (trap on EXIT), and writes
# build-perf-repl/results/replication.json plus a Markdown table on stdout.
# Needs root (fanotify). Traffic only on 127.0.0.1. No timing asserts.
#
# usage: scripts/perf/replication.sh [--quick] [--files N] [--big-mib M] [--lag-seconds S]
#                                    [--perf]   (perf record both nodes during the burst and the large files)
#                                    [--group-commit fsync|syncfs]  (the standby's [sync] group_commit)
#                                    [--streams "0 2"]  (transport.data_streams values for section 3)
#                                    [--large-only]  (section 3 and its baselines only: the large
#                                                     file, raw TCP, copier and cipher speed)
#                                    [--modes "tls plain plaincopy"]  (transport modes of section 3)
set -euo pipefail

QUICK=0 PERF=0 GROUP_COMMIT=fsync STREAMS="0 2" SET_N=0 SET_BIG=0 SET_LAG=0
LARGE_ONLY=0 MODES="tls plain plaincopy"
N=20000 BIG_MIB=1024 LAG_S=10 SLOW_N=20000 SLOW_REPS=3 CIPHER_MIB=256
ARGS_STR="$*"
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --files) N=$2; SET_N=1; shift ;;
    --big-mib) BIG_MIB=$2; SET_BIG=1; shift ;;
    --lag-seconds) LAG_S=$2; SET_LAG=1; shift ;;
    --perf) PERF=1 ;;
    --group-commit) GROUP_COMMIT=$2; shift ;;
    --streams) STREAMS=$2; shift ;;
    --large-only) LARGE_ONLY=1 ;;
    --modes) MODES=$2; shift ;;
    *) echo "usage: $0 [--quick] [--files N] [--big-mib M] [--lag-seconds S] [--perf] [--group-commit fsync|syncfs] [--streams \"0 2\"] [--large-only] [--modes \"tls plain plaincopy\"]" >&2; exit 2 ;;
  esac
  shift
done
if ((QUICK)); then  # smaller defaults; what was given explicitly stays
  ((SET_N)) || N=500
  ((SET_BIG)) || BIG_MIB=64
  ((SET_LAG)) || LAG_S=1
  SLOW_N=1000 CIPHER_MIB=16
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "replication.sh: run as root (hasync uses fanotify, which needs CAP_SYS_ADMIN)" >&2
  exit 1
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$REPO/build-perf-repl
RESULTS=$BUILD/results
BIN=${HASYNC_PERF_BIN:-$BUILD/app/hasync}  # HASYNC_PERF_BIN: a prebuilt binary (A/B runs); no build
H=(python3 "$REPO/scripts/perf/replication_helper.py")

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

"$REPO/scripts/install-deps.sh" >&2
if [[ -z ${HASYNC_PERF_BIN:-} ]]; then
  log "building hasync in $BUILD"
  cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C "$BUILD" hasync >&2
fi

WORK=$(mktemp -d /var/tmp/hasync-perf-repl.XXXXXX)
RAW=$WORK/raw
mkdir -p "$RAW" "$RESULTS"
# ext4 allocates a new inode near its directory and, in a block group where many inodes
# were deleted in the last minutes, skips each of them after reading its inode table
# block (recently_deleted() in find_inode_bit()). Under /var/tmp, where every test of
# this machine creates and removes trees, that made an empty-file create cost ~1.7 ms of
# kernel CPU instead of ~40 us (perf: 60 % of samples in recently_deleted). The
# top-of-hierarchy flag (chattr +T) makes ext4 spread the subdirectories of our work
# dirs over fresh block groups, and nothing is deleted until the end, so every
# measurement below creates its files in groups without that history.
topdir() { mkdir -p "$@"; chattr +T "$@" 2>/dev/null || log "chattr +T failed on $*"; }
topdir "$WORK"
PIDS=()          # every background process we started
PRIMARY_PID="" STANDBY_PID="" RSYNCD_PID=""

stop_pid() {  # pid: TERM, up to 5 s, then KILL
  local pid=$1
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if ((rc != 0)); then
    log "failed (exit $rc); node logs:"
    tail -n 15 "$WORK"/primary.log "$WORK"/standby.log >&2 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

jget() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(v)' "$1" "$2"; }
now() { echo "$EPOCHREALTIME"; }  # wall clock, for durations measured here in bash
elapsed() { python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$1" "$2"; }

wait_until() {  # timeout_s command...: poll every 50 ms, bounded
  local deadline=$((SECONDS + $1)); shift
  for ((i = 0; i < 100000; i++)); do
    "$@" && return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
  return 1
}
count_dirs() { [[ $(find "$1" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l) -ge $2 ]]; }
exists() { [[ -e $1 ]]; }
absent() { [[ ! -e $1 ]]; }

# ------------------------------------------------------------------ the pair
PORT_P=$("${H[@]}" freeport | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
PORT_S=$("${H[@]}" freeport | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
[[ $PORT_P != "$PORT_S" ]] || PORT_S=$((PORT_P + 1))
topdir "$WORK"/{primary,standby} "$WORK"/{primary,standby}/spool "$WORK/runs"
mkdir -p "$WORK"/{primary,standby}/state
"$BIN" keygen "$WORK/sync.key" >/dev/null
STARTED_ONCE=0

write_configs() {  # transport-mode [data-streams, default 2]
  local n peer port peerport
  for n in primary standby; do
    if [[ $n == primary ]]; then peer=standby port=$PORT_P peerport=$PORT_S
    else peer=primary port=$PORT_S peerport=$PORT_P; fi
    cat >"$WORK/$n.toml" <<CONF
[node]
name = "$n"
listen = "127.0.0.1:$port"
[peer]
name = "$peer"
address = "127.0.0.1:$peerport"
[sync]
roots = ["$WORK/$n/spool"]
state_dir = "$WORK/$n/state"
key_file = "$WORK/sync.key"
group_commit = "$GROUP_COMMIT"
[transport]
mode = "${1%copy}"
data_streams = ${2:-2}
splice = $([ "$1" = plaincopy ] && echo false || echo true)
[metrics]
enabled = false
CONF
    "$BIN" check-config -c "$WORK/$n.toml" >/dev/null 2>>"$WORK/check-config.log"
  done
}

resyncs() { grep -c 'event=resync_sent' "$WORK/primary.log" 2>/dev/null || true; }
start_pair() {  # transport-mode [data-streams]; returns once the primary has sent its resync
  write_configs "$@"
  local before role_p=() role_s=()
  before=$(resyncs); before=${before:-0}
  if ((STARTED_ONCE == 0)); then role_p=(--initial-role primary) role_s=(--initial-role standby); fi
  "$BIN" run -c "$WORK/standby.toml" "${role_s[@]}" >>"$WORK/standby.log" 2>&1 </dev/null &
  STANDBY_PID=$!; PIDS+=("$STANDBY_PID")
  "$BIN" run -c "$WORK/primary.toml" "${role_p[@]}" >>"$WORK/primary.log" 2>&1 </dev/null &
  PRIMARY_PID=$!; PIDS+=("$PRIMARY_PID")
  STARTED_ONCE=1
  resynced() { (($(resyncs) > before)); }
  wait_until 120 resynced || { log "pair did not finish its resync within 120 s"; exit 1; }
}
stop_pair() {  # primary first, so its last sender_stats are logged
  stop_pid "$PRIMARY_PID"; stop_pid "$STANDBY_PID"
  PRIMARY_PID="" STANDBY_PID=""
}
SP=$WORK/primary/spool SS=$WORK/standby/spool

# --perf: sample both nodes (call graphs) from perf_start TAG to perf_stop TAG; the top
# symbols go to $RESULTS/TAG.perf.txt.
PERF_PID=""
perf_start() {
  ((PERF)) && command -v perf >/dev/null || return 0
  perf record -F 499 -g -o "$RESULTS/$1.perf.data" -p "$PRIMARY_PID,$STANDBY_PID" \
    >/dev/null 2>>"$WORK/perf.log" &
  PERF_PID=$!; PIDS+=("$PERF_PID")
  sleep 0.5
}
perf_stop() {
  [[ -n $PERF_PID ]] || return 0
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  PERF_PID=""
  perf report -i "$RESULTS/$1.perf.data" --no-children --sort comm,dso,symbol \
    --percent-limit 1.5 --stdio 2>/dev/null | grep -v '^$' | head -n 120 >"$RESULTS/$1.perf.txt" || true
  "${H[@]}" perf-threads "$RESULTS/$1.perf.data" >"$RAW/$1_threads.json" || true
}

# Waits until dir D exists on the standby with at least K subdirs.
wait_standby_dirs() { wait_until 60 count_dirs "$1" "$2" || { log "standby lacks $1"; exit 1; }; }

# ------------------------------------------------------------------ inputs
log "generating inputs: $N small files, ${BIG_MIB} MiB file"
((LARGE_ONLY)) || "${H[@]}" mkfiles "$WORK/src" "$N" 1 >"$RAW/src_tree.json"
head -c "$((BIG_MIB * 1048576))" /dev/urandom >"$WORK/big.bin"
BIG_BYTES=$((BIG_MIB * 1048576))
sync -f "$WORK"

if ((LARGE_ONLY == 0)); then
# ------------------------------------------------------------------ 1. burst baselines
log "baseline: cp -a + sync"
sync -f "$WORK"
t0=$(now); cp -a "$WORK/src" "$WORK/runs/cpdst"; t1=$(now); sync -f "$WORK/runs/cpdst"; t2=$(now)
printf '{"cp_s": %s, "cp_sync_s": %s}\n' "$(elapsed "$t0" "$t1")" "$(elapsed "$t0" "$t2")" >"$RAW/cp.json"

RSYNC_PORT=$("${H[@]}" freeport | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
mkdir -p "$WORK/runs/rsyncdst_plain" "$WORK/runs/rsyncdst_fsync"
cat >"$WORK/rsyncd.conf" <<CONF
use chroot = no
pid file = $WORK/rsyncd.pid
[plain]
path = $WORK/runs/rsyncdst_plain
read only = no
uid = root
gid = root
[fsync]
path = $WORK/runs/rsyncdst_fsync
read only = no
uid = root
gid = root
CONF
rsync --daemon --no-detach --address=127.0.0.1 --port="$RSYNC_PORT" \
  --config="$WORK/rsyncd.conf" --log-file="$WORK/rsyncd.log" </dev/null &
RSYNCD_PID=$!; PIDS+=("$RSYNCD_PID")
rsync_up() { rsync "rsync://127.0.0.1:$RSYNC_PORT/" >/dev/null 2>&1; }
wait_until 20 rsync_up || { log "rsync daemon did not start"; exit 1; }
for variant in plain fsync; do
  log "baseline: rsync daemon push ($variant)"
  sync -f "$WORK"
  extra=(); [[ $variant == fsync ]] && extra=(--fsync)
  t0=$(now)
  rsync -a "${extra[@]}" "$WORK/src/" "rsync://127.0.0.1:$RSYNC_PORT/$variant/"
  t1=$(now)
  printf '{"seconds": %s}\n' "$(elapsed "$t0" "$t1")" >"$RAW/rsync_$variant.json"
  "${H[@]}" compare "$WORK/src" "$WORK/runs/rsyncdst_$variant" >"$RAW/rsync_${variant}_compare.json"
done
stop_pid "$RSYNCD_PID"

fi  # LARGE_ONLY
# ------------------------------------------------------------------ 3. stream baselines
for mode in discard write; do
  log "baseline: raw TCP stream of ${BIG_MIB} MiB ($mode)"
  port=$("${H[@]}" freeport | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
  "${H[@]}" tcp-recv "$port" "$mode" "$WORK/tcpdst.bin" >"$RAW/tcp_${mode}_recv.json" 2>/dev/null &
  rpid=$!; PIDS+=("$rpid")
  "${H[@]}" tcp-send "$port" "$WORK/big.bin" >"$RAW/tcp_${mode}_send.json"
  wait "$rpid"
  rm -f "$WORK/tcpdst.bin"  # one inode: no allocation history to speak of
done
sync -f "$WORK"
log "baseline: mbedTLS ChaCha20-Poly1305, ${CIPHER_MIB} MiB"
"${H[@]}" mbedtls-speed "$CIPHER_MIB" >"$RAW/mbedtls.json"

if ((LARGE_ONLY == 0)); then
# ------------------------------------------------------------------ 4. writer slowdown
# Alternating off/on; each run writes SLOW_N files into a fresh dir (a fresh block
# group, see topdir): "off" with the pair stopped, beside the spool; "on" in the
# primary's spool while the pair runs and replicates it. After an "on" run the standby
# catches up and the pair stops (so "off" runs really have nothing running).
for ((r = 1; r <= SLOW_REPS; r++)); do
  for state in off on; do
    if [[ $state == on ]]; then start_pair tls; d=$SP/wr_on_$r; else d=$WORK/runs/wr_off_$r; fi
    if [[ $state == on && $r == 1 ]]; then  # memory of a fresh pair over an empty spool
      "${H[@]}" rss "$PRIMARY_PID" "$STANDBY_PID" "$(grep 'event=resync_sent' "$WORK/primary.log" | tail -n 1)" \
        >"$RAW/rss_empty.json"
    fi
    log "writer slowdown: rep $r, hasync $state"
    "${H[@]}" create-rate "$d" "$SLOW_N" 4096 >"$RAW/slow_${state}_$r.json"
    if [[ $state == on ]]; then
      caught_up() { [[ $(find "$SS/wr_on_$r" -maxdepth 1 -name 'job.*' 2>/dev/null | wc -l) -ge $SLOW_N ]]; }
      wait_until 120 caught_up || log "standby did not catch up with wr_on_$r within 120 s"
      stop_pair
    fi
    sync -f "$WORK"
  done
done

# ------------------------------------------------------------------ 1b. initial sync
# The same tree on the primary only (plus the 100 empty dirs on the standby so that a
# watcher can see the names arrive), then the pair starts.
log "hasync initial sync of the $N-file tree (TLS)"
cp -a "$WORK/src" "$SP/init"
"${H[@]}" mkdirs "$SS/init" 100 >/dev/null
sync -f "$WORK"
"${H[@]}" watch-names "$SS/init" 100 "$N" 300 "$WORK/init.ready" >"$RAW/init_watch.json" &
wpid=$!; PIDS+=("$wpid")
wait_until 20 exists "$WORK/init.ready"
"${H[@]}" mono >"$RAW/init_t0.json"
start_pair tls
wait "$wpid"
# Memory once the fresh primary tracks every file of the spool (init + the writer runs)
# and the standby holds them all: the steady state, not the resync's send queue (up to
# 4 MiB in flight plus 4 MiB queued, freed once it drains), read once the node has given
# the resync's freed heap back: it trims once its RSS has not grown for 10 s, checked
# every 2 s (engine/node/heap_trim.h).
sleep 13
"${H[@]}" rss "$PRIMARY_PID" "$STANDBY_PID" "$(grep 'event=resync_sent' "$WORK/primary.log" | tail -n 1)" \
  >"$RAW/rss_init.json"
"${H[@]}" compare "$SP/init" "$SS/init" >"$RAW/init_compare.json"
grep 'event=resync_sent' "$WORK/primary.log" | tail -n 1 >"$RAW/init_resync_line.txt"

# ------------------------------------------------------------------ 1a. live burst
log "hasync live burst: $N files written while the pair runs (TLS)"
"${H[@]}" mkdirs "$SP/burst" 100 >/dev/null
wait_standby_dirs "$SS/burst" 100
"${H[@]}" watch-names "$SS/burst" 100 "$N" 300 "$WORK/burst.ready" >"$RAW/burst_watch.json" &
wpid=$!; PIDS+=("$wpid")
wait_until 20 exists "$WORK/burst.ready"
perf_start burst
"${H[@]}" mkfiles "$SP/burst" "$N" 1 >"$RAW/burst_writer.json"
wait "$wpid"
perf_stop burst
"${H[@]}" compare "$SP/burst" "$SS/burst" >"$RAW/burst_compare.json"

# ------------------------------------------------------------------ 2. lag
for rate in 100 1000; do
  log "lag at $rate changes/s for $LAG_S s"
  d=lag$rate
  for ((i = 0; i < 10; i++)); do mkdir -p "$SP/$d/l$i"; done
  wait_standby_dirs "$SS/$d" 10
  total=$(python3 -c "print(int($rate * $LAG_S))")
  "${H[@]}" lag-watch "$SS/$d" "$((LAG_S + 30))" "$((total - 1))" "$WORK/$d.ready" \
    "$WORK/$d.seen.json" >"$RAW/${d}_watch.json" &
  wpid=$!; PIDS+=("$wpid")
  wait_until 20 exists "$WORK/$d.ready"
  "${H[@]}" lag-writer "$SP/$d" "$rate" "$LAG_S" 500 "$WORK/$d.writes.json" >"$RAW/${d}_writer.json"
  wait "$wpid"
  "${H[@]}" lag-report "$WORK/$d.writes.json" "$WORK/$d.seen.json" >"$RAW/${d}_report.json"
done

# The floor of this method: the same writer and watcher on one directory of the
# primary outside the spool (no replication), at 1,000/s.
log "lag floor: watcher on the writer's own dir, 1000/s for $LAG_S s"
topdir "$WORK/lagfloor"
for ((i = 0; i < 10; i++)); do mkdir -p "$WORK/lagfloor/l$i"; done
total=$((1000 * LAG_S))
"${H[@]}" lag-watch "$WORK/lagfloor" "$((LAG_S + 30))" "$((total - 1))" "$WORK/lagfloor.ready" \
  "$WORK/lagfloor.seen.json" >"$RAW/lagfloor_watch.json" &
wpid=$!; PIDS+=("$wpid")
wait_until 20 exists "$WORK/lagfloor.ready"
"${H[@]}" lag-writer "$WORK/lagfloor" 1000 "$LAG_S" 500 "$WORK/lagfloor.writes.json" >"$RAW/lagfloor_writer.json"
wait "$wpid"
"${H[@]}" lag-report "$WORK/lagfloor.writes.json" "$WORK/lagfloor.seen.json" >"$RAW/lagfloor_report.json"

fi  # LARGE_ONLY
# ------------------------------------------------------------------ 3. large file
cpu_ticks() {  # pid → utime + stime in clock ticks (fields 14 and 15 of /proc/pid/stat)
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
big_run() {  # tag
  log "large file, $1: ${BIG_MIB} MiB renamed into the primary's spool"
  "${H[@]}" wait-file "$SS/big.bin" "$BIG_BYTES" 600 "$WORK/big_$1.ready" >"$RAW/big_$1_watch.json" &
  wpid=$!; PIDS+=("$wpid")
  wait_until 20 exists "$WORK/big_$1.ready"
  perf_start "big_$1"
  local cpu0_p cpu0_s
  cpu0_p=$(cpu_ticks "$PRIMARY_PID"); cpu0_s=$(cpu_ticks "$STANDBY_PID")
  "${H[@]}" rename-now "$WORK/big.bin" "$SP/big.bin" >"$RAW/big_$1_t0.json"
  wait "$wpid"
  # CPU seconds each node spent on the transfer (utime + stime of all its threads).
  echo "{\"primary_ticks\": $(( $(cpu_ticks "$PRIMARY_PID") - cpu0_p )), \"standby_ticks\": $(( $(cpu_ticks "$STANDBY_PID") - cpu0_s )), \"hz\": $(getconf CLK_TCK)}" \
    >"$RAW/big_$1_cpu.json"
  perf_stop "big_$1"
  if cmp -s "$SP/big.bin" "$SS/big.bin"; then echo '{"equal": true}'; else echo '{"equal": false}'; fi \
    >"$RAW/big_$1_compare.json"
  mv "$SP/big.bin" "$WORK/big.bin"   # back out: the standby removes its copy
  wait_until 60 absent "$SS/big.bin" || log "standby still holds big.bin"
}
stop_pair
for mode in $MODES; do   # plaincopy: plain with splice = false
  for s in $STREAMS; do
    [ "$mode" = plaincopy ] && [ "$s" = 0 ] && continue   # splice is for data streams only
    start_pair "$mode" "$s"
    big_run "${mode}_s$s"
    stop_pair
  done
done
grep -E 'event=(sender_stats|receiver_stats)' "$WORK/primary.log" "$WORK/standby.log" \
  >"$RAW/stats_all.txt" || true

# ------------------------------------------------------------------ report
{
  echo "{\"quick\": $QUICK, \"files\": $N, \"big_mib\": $BIG_MIB, \"lag_seconds\": $LAG_S,"
  echo " \"slow_files\": $SLOW_N, \"slow_reps\": $SLOW_REPS, \"cipher_mib\": $CIPHER_MIB,"
  echo " \"command\": \"scripts/perf/replication.sh${ARGS_STR:+ $ARGS_STR}\","
  echo " \"nproc\": $(nproc), \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\","
  echo " \"kernel\": \"$(uname -r)\", \"mem_gib\": $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo),"
  echo " \"fs\": \"$(findmnt -n -o FSTYPE -T "$WORK")\", \"rsync\": \"$(rsync --version | head -n1 | awk '{print $3}')\","
  echo " \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"date\": \"$(date -u +%Y-%m-%dT%H:%MZ)\","
  echo " \"group_commit\": \"$GROUP_COMMIT\", \"streams\": \"$STREAMS\", \"modes\": \"$MODES\", \"large_only\": $LARGE_ONLY,"
  echo " \"bin\": \"$BIN\", \"commit\": \"$(git -C "$REPO" rev-parse --short HEAD)\"}"
} >"$RAW/meta.json"
rm -rf "$RESULTS/raw" && cp -r "$RAW" "$RESULTS/raw"  # a fresh copy, not one nested in the last
"${H[@]}" report "$RAW" "$RESULTS/replication.json"
