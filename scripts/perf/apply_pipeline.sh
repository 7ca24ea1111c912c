#!/usr/bin/env bash
# apply_pipeline.sh — the standby's durable apply under load (issue 19), each figure next
# to a baseline measured in the same run:
#
#   1. live burst of N small files (1–8 KiB, 100 dirs), first write → every name visible
#      (= durable: hasync publishes only after the fsync) on the standby, against
#      `cp -a` + `sync -f` of the same files (the local durable floor); REPS alternating
#      repetitions of each, medians and the ratio;
#   2. replication lag at each rate of --rates (write closed on the primary → new content
#      visible on the standby), p50/p99/max, and the p50 of the first and the last fifth
#      of the run (a standby that falls behind shows a growing lag).
#
# A pair of `hasync run` on loopback (TLS), in a temp dir under /var/tmp; every process
# it starts is stopped by pid, the dir removed. Builds hasync in build-perf-repl/ like
# replication.sh. Needs root (fanotify). No timing asserts: the figures are the output
# (Markdown on stdout, JSON in build-perf-repl/results/apply_pipeline.json).
#
# usage: scripts/perf/apply_pipeline.sh [--quick] [--files N] [--reps R]
#                                       [--rates "1000 5000 10000"] [--lag-seconds S]
#                                       [--group-commit fsync|syncfs] [--perf] (perf record
#                                        both nodes during the first burst and each lag run)
#                                       [--lag-tool c++|python] (the paced writer and
#                                        the watcher: lag_helper.cpp, default, or
#                                        replication_helper.py, which tops out near
#                                        2,500 changes/s on 2 CPUs)
#                                       [--modes "1 0"]  (HASYNC_COMMIT_PIPELINE of the
#                                        standby: 1 pipelined commit, 0 commit on the loop;
#                                        each mode gets its own pair, alternating per rep)
#                                       [--bin PATH] (run this hasync binary instead of
#                                        building one: an A/B against an older commit)
#                                       [--standby-fs shared|loop] (loop: the standby's
#                                        tree and the `cp -a` copies on an ext4 of their
#                                        own, a loop-mounted image, as on a second host;
#                                        shared, the default: the same filesystem)
#                                       [--primary-fs shared|loop] (loop: the primary's
#                                        tree, where the burst's writer creates its files,
#                                        on a fresh ext4 image of its own as well)
#
# Why --standby-fs loop: the primary's fanotify mark covers its whole filesystem, so with
# both nodes on one filesystem every temp file, write and rename of the standby is also
# an event the primary reads and discards, and the standby's writes pay for generating
# it. Two hosts never see that; a filesystem of the standby's own takes it out.
#
# Why --primary-fs loop: the burst's writer creates its files in the primary's tree,
# `cp -a` in the copies' tree. On an ext4 without a journal (this VM's /var/tmp) a new
# inode is not given a number freed in the last few seconds, and ext4 scans past such
# numbers one by one (`recently_deleted`, found with `perf record` of the writer: 90 % of
# its samples); right after earlier runs were removed the writer then made only ~2,000
# files/s against ~30,000, and the burst measured that. Fresh images for both sides
# give the writer and `cp -a` the same kind of filesystem.
#
# Each lag row also gives the CPU both nodes spent (utime + stime from /proc) over the
# writer's run, in µs per change written: the cost of one change on each side.
set -euo pipefail

QUICK=0 PERF=0 N=10000 REPS=3 RATES="1000 2000 5000 10000" LAG_S=5 GROUP_COMMIT=fsync MODES="1"
LAG_TOOL=c++ BIN_ARG="" STANDBY_FS=shared PRIMARY_FS=shared
ARGS_STR="$*"
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --files) N=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --rates) RATES=$2; shift ;;
    --lag-seconds) LAG_S=$2; shift ;;
    --group-commit) GROUP_COMMIT=$2; shift ;;
    --perf) PERF=1 ;;
    --modes) MODES=$2; shift ;;
    --lag-tool) LAG_TOOL=$2; shift ;;
    --bin) BIN_ARG=$2; shift ;;
    --standby-fs) STANDBY_FS=$2; shift ;;
    --primary-fs) PRIMARY_FS=$2; shift ;;
    *) echo "usage: $0 [--quick] [--files N] [--reps R] [--rates \"1000 5000\"] [--lag-seconds S] [--group-commit fsync|syncfs] [--perf] [--modes \"1 0\"] [--lag-tool c++|python] [--bin PATH] [--standby-fs shared|loop] [--primary-fs shared|loop]" >&2; exit 2 ;;
  esac
  shift
done
if ((QUICK)); then N=1000 REPS=1 RATES="1000" LAG_S=1; fi
[[ $STANDBY_FS == shared || $STANDBY_FS == loop ]] ||
  { echo "apply_pipeline.sh: --standby-fs is shared or loop" >&2; exit 2; }
[[ $PRIMARY_FS == shared || $PRIMARY_FS == loop ]] ||
  { echo "apply_pipeline.sh: --primary-fs is shared or loop" >&2; exit 2; }
if [[ $(id -u) -ne 0 ]]; then
  echo "apply_pipeline.sh: run as root (hasync uses fanotify)" >&2
  exit 1
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$REPO/build-perf-repl
RESULTS=$BUILD/results
BIN=$BUILD/app/hasync
H=(python3 "$REPO/scripts/perf/replication_helper.py")
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

"$REPO/scripts/install-deps.sh" >&2
mkdir -p "$BUILD"
if [[ -n $BIN_ARG ]]; then
  [[ -x $BIN_ARG ]] || { echo "apply_pipeline.sh: --bin $BIN_ARG is not an executable" >&2; exit 2; }
  BIN=$(realpath "$BIN_ARG")
  log "using $BIN (--bin)"
else
  log "building hasync in $BUILD"
  cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C "$BUILD" hasync >&2
fi
case $LAG_TOOL in
  c++)
    g++ -std=c++20 -O2 "$REPO/scripts/perf/lag_helper.cpp" -o "$BUILD/lag_helper"
    LAG_WATCH=("$BUILD/lag_helper" watch) LAG_WRITER=("$BUILD/lag_helper" writer) ;;
  python) LAG_WATCH=("${H[@]}" lag-watch) LAG_WRITER=("${H[@]}" lag-writer) ;;
  *) echo "apply_pipeline.sh: --lag-tool is c++ or python" >&2; exit 2 ;;
esac

WORK=$(mktemp -d /var/tmp/hasync-perf-apply.XXXXXX)
RAW=$WORK/raw
mkdir -p "$RAW" "$RESULTS"
# Fresh block groups for every tree (see replication.sh: ext4's recently_deleted()).
topdir() { mkdir -p "$@"; chattr +T "$@" 2>/dev/null || log "chattr +T failed on $*"; }
topdir "$WORK"
PIDS=() PRIMARY_PID="" STANDBY_PID="" PERF_PID="" LOOP_MNTS=() LOOP_DEVS=() LOOP_DIO=""
stop_pid() {
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
    tail -n 15 "$WORK/primary.log" "${SIDE:-$WORK}/standby.log" >&2 2>/dev/null || true
  fi
  for mnt in "${LOOP_MNTS[@]}"; do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" || log "cannot unmount $mnt"
  done
  for dev in "${LOOP_DEVS[@]}"; do losetup -d "$dev" 2>/dev/null || true; done
  rm -rf --one-file-system "$WORK" # never into a mount that would not come off
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now() { echo "$EPOCHREALTIME"; }
CLK_TCK=$(getconf CLK_TCK)
# utime + stime of a process (all its threads), in clock ticks; fields 14 and 15 of
# /proc/PID/stat, counted after the ")" that ends the command name.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
elapsed() { python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$1" "$2"; }
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  for ((i = 0; i < 100000; i++)); do
    "$@" && return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
  return 1
}
exists() { [[ -e $1 ]]; }
count_dirs() { [[ $(find "$1" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l) -ge $2 ]]; }
wait_standby_dirs() { wait_until 60 count_dirs "$1" "$2" || { log "standby lacks $1"; exit 1; }; }

freeport() { "${H[@]}" freeport | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])'; }
# The standby's side: $WORK/standby and the copies of the baseline ($WORK/runs) live on
# $SIDE, the same filesystem as the primary's or an ext4 image of their own.
# own_fs NAME MOUNTPOINT: a fresh ext4 in a loop-mounted image $WORK/NAME.img.
own_fs() {
  local dev
  command -v mkfs.ext4 >/dev/null || { echo "apply_pipeline.sh: a loop filesystem needs mkfs.ext4" >&2; exit 1; }
  # Sparse, far larger than the runs write. The inode tables and the journal are written
  # now, so no ext4lazyinit thread writes during the measurements. Direct I/O: the
  # loop device's writes to its image go around the host's page cache instead of
  # caching every block twice. (Its writes raise no event on the filesystem where the
  # image is, either way: inotifywait on the image saw none.)
  truncate -s 8G "$WORK/$1.img"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$WORK/$1.img"
  dev=$(losetup -f --show --direct-io=on "$WORK/$1.img") ||
    { echo "apply_pipeline.sh: cannot attach a loop device to $1.img" >&2; exit 1; }
  LOOP_DEVS+=("$dev") # from here on cleanup detaches it
  mkdir -p "$2"
  mount "$dev" "$2" || { echo "apply_pipeline.sh: cannot mount $dev" >&2; exit 1; }
  LOOP_MNTS+=("$2")
  LOOP_DIO=$(cat "/sys/block/${dev#/dev/}/loop/dio" 2>/dev/null || echo unknown)
  log "$1 side on its own ext4: $dev (direct I/O: $LOOP_DIO) at $2"
}
# The standby's side: $WORK/standby and the copies of the baseline ($WORK/runs) live on
# $SIDE, the same filesystem as the primary's or an ext4 image of their own; the
# primary's tree lives on $PSIDE, the work dir's filesystem or an image of its own.
SIDE=$WORK PSIDE=$WORK
if [[ $STANDBY_FS == loop ]]; then SIDE=$WORK/side; own_fs standby "$SIDE"; fi
if [[ $PRIMARY_FS == loop ]]; then PSIDE=$WORK/pside; own_fs primary "$PSIDE"; fi

PORT_P=$(freeport) PORT_S=$(freeport)
[[ $PORT_P != "$PORT_S" ]] || PORT_S=$((PORT_P + 1))
topdir "$PSIDE/primary" "$PSIDE/primary/spool" "$SIDE/standby" "$SIDE/standby/spool" "$SIDE/runs"
mkdir -p "$PSIDE/primary/state" "$SIDE/standby/state"
"$BIN" keygen "$WORK/sync.key" >/dev/null
for n in primary standby; do
  if [[ $n == primary ]]; then peer=standby port=$PORT_P peerport=$PORT_S dir=$PSIDE/primary
  else peer=primary port=$PORT_S peerport=$PORT_P dir=$SIDE/standby; fi
  cat >"$WORK/$n.toml" <<CONF
[node]
name = "$n"
listen = "127.0.0.1:$port"
[peer]
name = "$peer"
address = "127.0.0.1:$peerport"
[sync]
roots = ["$dir/spool"]
state_dir = "$dir/state"
key_file = "$WORK/sync.key"
group_commit = "$GROUP_COMMIT"
[transport]
mode = "tls"
[metrics]
enabled = false
CONF
  "$BIN" check-config -c "$WORK/$n.toml" >/dev/null
done
STARTED_ONCE=0
resyncs() { grep -c 'event=resync_sent' "$WORK/primary.log" 2>/dev/null || true; }
start_pair() {  # mode (HASYNC_COMMIT_PIPELINE of the standby)
  local before role_p=() role_s=()
  before=$(resyncs); before=${before:-0}
  if ((STARTED_ONCE == 0)); then role_p=(--initial-role primary) role_s=(--initial-role standby); fi
  HASYNC_COMMIT_PIPELINE=$1 "$BIN" run -c "$WORK/standby.toml" "${role_s[@]}" >>"$SIDE/standby.log" 2>&1 </dev/null &
  STANDBY_PID=$!; PIDS+=("$STANDBY_PID")
  "$BIN" run -c "$WORK/primary.toml" "${role_p[@]}" >>"$WORK/primary.log" 2>&1 </dev/null &
  PRIMARY_PID=$!; PIDS+=("$PRIMARY_PID")
  STARTED_ONCE=1
  resynced() { (($(resyncs) > before)); }
  wait_until 120 resynced || { log "pair did not finish its resync within 120 s"; exit 1; }
}
stop_pair() { stop_pid "$PRIMARY_PID"; stop_pid "$STANDBY_PID"; PRIMARY_PID="" STANDBY_PID=""; }
SP=$PSIDE/primary/spool SS=$SIDE/standby/spool

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
}

log "inputs: $N small files"
"${H[@]}" mkfiles "$WORK/src" "$N" 1 >/dev/null
sync -f "$WORK"

# ------------------------------------------------------------------ 1. burst
for ((r = 1; r <= REPS; r++)); do
  log "burst rep $r: cp -a + sync -f"
  sync -f "$WORK"; sync -f "$PSIDE"; sync -f "$SIDE"
  t0=$(now); cp -a "$WORK/src" "$SIDE/runs/cp$r"; sync -f "$SIDE/runs/cp$r"; t1=$(now)
  echo "{\"seconds\": $(elapsed "$t0" "$t1")}" >"$RAW/cp_$r.json"
  for mode in $MODES; do
    sync -f "$WORK"; sync -f "$PSIDE"; sync -f "$SIDE"
    start_pair "$mode"
    b=b${r}m$mode
    log "burst rep $r: hasync live, HASYNC_COMMIT_PIPELINE=$mode"
    "${H[@]}" mkdirs "$SP/$b" 100 >/dev/null
    wait_standby_dirs "$SS/$b" 100
    "${H[@]}" watch-names "$SS/$b" 100 "$N" 300 "$WORK/$b.ready" >"$RAW/burst_watch_${r}_$mode.json" &
    wpid=$!; PIDS+=("$wpid")
    wait_until 20 exists "$WORK/$b.ready"
    ((r == 1)) && perf_start "burst_pipeline_$mode"
    p0=$(cpu_ticks "$PRIMARY_PID")
    s0=$(cpu_ticks "$STANDBY_PID")
    "${H[@]}" mkfiles "$SP/$b" "$N" 1 >"$RAW/burst_writer_${r}_$mode.json"
    wait "$wpid"
    p1=$(cpu_ticks "$PRIMARY_PID")
    s1=$(cpu_ticks "$STANDBY_PID")
    ((r == 1)) && perf_stop
    echo "{\"primary_ticks\": $((p1 - p0)), \"standby_ticks\": $((s1 - s0)), \"clk_tck\": $CLK_TCK}" \
      >"$RAW/burst_cpu_${r}_$mode.json"
    "${H[@]}" compare "$SP/$b" "$SS/$b" >"$RAW/burst_compare_${r}_$mode.json"
    stop_pair
  done
done

# ------------------------------------------------------------------ 2. lag
for mode in $MODES; do
  start_pair "$mode"
  for rate in $RATES; do
    log "lag at $rate changes/s for $LAG_S s, HASYNC_COMMIT_PIPELINE=$mode"
    d=lag${rate}m$mode
    for ((i = 0; i < 10; i++)); do mkdir -p "$SP/$d/l$i"; done
    wait_standby_dirs "$SS/$d" 10
    total=$(python3 -c "print(int($rate * $LAG_S))")
    "${LAG_WATCH[@]}" "$SS/$d" "$((LAG_S + 60))" "$((total - 1))" "$WORK/$d.ready" \
      "$WORK/$d.seen.json" >"$RAW/lag_${rate}_${mode}_watch.json" &
    wpid=$!; PIDS+=("$wpid")
    wait_until 20 exists "$WORK/$d.ready"
    perf_start "lag_${rate}_$mode"
    p0=$(cpu_ticks "$PRIMARY_PID")
    s0=$(cpu_ticks "$STANDBY_PID")
    "${LAG_WRITER[@]}" "$SP/$d" "$rate" "$LAG_S" 500 "$WORK/$d.writes.json" >"$RAW/lag_${rate}_${mode}_writer.json"
    perf_stop
    wait "$wpid"
    # The standby's share runs until the watcher saw the last change.
    p1=$(cpu_ticks "$PRIMARY_PID")
    s1=$(cpu_ticks "$STANDBY_PID")
    for v in "$p0" "$s0" "$p1" "$s1"; do
      [[ $v =~ ^[0-9]+$ ]] || { log "cannot read a node's CPU ticks (got '$v'): did it exit?"; exit 1; }
    done
    echo "{\"primary_ticks\": $((p1 - p0)), \"standby_ticks\": $((s1 - s0)), \"clk_tck\": $CLK_TCK}" \
      >"$RAW/lag_${rate}_${mode}_cpu.json"
    cp "$WORK/$d.writes.json" "$RAW/lag_${rate}_${mode}_writes.json"
    cp "$WORK/$d.seen.json" "$RAW/lag_${rate}_${mode}_seen.json"
  done
  stop_pair
done

echo "{\"command\": \"scripts/perf/apply_pipeline.sh${ARGS_STR:+ $ARGS_STR}\", \"files\": $N, \"reps\": $REPS," \
  "\"rates\": \"$RATES\", \"modes\": \"$MODES\", \"lag_seconds\": $LAG_S, \"group_commit\": \"$GROUP_COMMIT\", \"lag_tool\": \"$LAG_TOOL\"," \
  "\"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"date\": \"$(date -u +%Y-%m-%dT%H:%MZ)\"," \
  "\"fs\": \"$(findmnt -n -o FSTYPE -T "$WORK")\", \"standby_fs\": \"$STANDBY_FS\", \"primary_fs\": \"$PRIMARY_FS\", \"loop_dio\": \"$LOOP_DIO\", \"commit\": \"$(git -C "$REPO" rev-parse --short HEAD)\", \"bin\": \"$BIN\"}" \
  >"$RAW/meta.json"
python3 - "$RAW" "$RESULTS/apply_pipeline.json" <<'PY'
import json, os, statistics, sys
raw, outp = sys.argv[1], sys.argv[2]
meta = json.load(open(os.path.join(raw, "meta.json")))
ld = lambda n: json.load(open(os.path.join(raw, n)))
n, reps, modes = meta["files"], meta["reps"], meta["modes"].split()
name = {"1": "pipelined commit", "0": "commit on the loop"}
cp = [n / ld(f"cp_{r}.json")["seconds"] for r in range(1, reps + 1)]
res = {"meta": meta, "cp_sync_files_per_s": cp, "burst": {}, "lag": {}}
print(f"Run of {meta['date']}, commit {meta['commit']}, binary {meta['bin']}, `{meta['command']}`, fs {meta['fs']}, standby's fs {meta.get('standby_fs', 'shared')}, primary's fs {meta.get('primary_fs', 'shared')}{' (ext4 images, direct I/O ' + meta['loop_dio'] + ')' if meta.get('loop_dio') else ''}, "
      f"group_commit {meta['group_commit']}, load average at the end {meta['loadavg']}.\n")
print(f"| burst of {n} files | files/s per rep | median | ÷ cp -a + sync -f (same rep), median | identical | CPU µs/file primary, standby (per rep) | writer's own files/s |")
print("| --- | --- | ---: | ---: | --- | --- | --- |")
print(f"| `cp -a` + `sync -f` | {', '.join(f'{c:,.0f}' for c in cp)} | {statistics.median(cp):,.0f} | 1.00 | | | |")
for m in modes:
    live, ok, cpus, writer = [], True, [], []
    for r in range(1, reps + 1):
        w, wr = ld(f"burst_watch_{r}_{m}.json"), ld(f"burst_writer_{r}_{m}.json")
        live.append(n / (w["t_done"] - wr["t_start"]) if w.get("t_done") else 0.0)
        writer.append(wr["files_per_s"])
        ok = ok and ld(f"burst_compare_{r}_{m}.json")["equal"]
        c = ld(f"burst_cpu_{r}_{m}.json")
        cpus.append(tuple(c[f"{side}_ticks"] / c["clk_tck"] * 1e6 / n for side in ("primary", "standby")))
    ratios = [l / c for l, c in zip(live, cp)]
    res["burst"][m] = {"live_files_per_s": live, "ratios": ratios, "identical": ok,
                       "cpu_us_per_file": cpus, "writer_files_per_s": writer}
    print(f"| hasync live, {name.get(m, m)} (first write → all durable on the standby) | "
          f"{', '.join(f'{l:,.0f}' for l in live)} | {statistics.median(live):,.0f} | "
          f"**{statistics.median(ratios):.2f}** ({', '.join(f'{x:.2f}' for x in ratios)}) | {'yes' if ok else '**no**'} | "
          f"{'; '.join(f'{p:.0f}, {s:.0f}' for p, s in cpus)} | {', '.join(f'{x:,.0f}' for x in writer)} |")
print()
print("| standby | rate /s | achieved /s | seen | p50 ms | p99 ms | max ms | p50 first fifth | p50 last fifth | CPU µs/change primary, standby |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
def pct(v, p):
    if not v: return float("nan")
    return v[min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))]
for m in modes:
  for rate in meta["rates"].split():
    w = ld(f"lag_{rate}_{m}_writes.json")
    s = {int(k): v for k, v in ld(f"lag_{rate}_{m}_seen.json").items()}
    wr = ld(f"lag_{rate}_{m}_writer.json")
    pairs = [(seq, (s[seq] - t) * 1000.0) for seq, t in w if seq in s]
    lags = sorted(l for _, l in pairs)
    k = max(1, len(pairs) // 5)
    first = sorted(l for _, l in pairs[:k]); last = sorted(l for _, l in pairs[-k:])
    row = {"achieved": wr["achieved_rate"], "writes": len(w), "seen": len(lags),
           "p50": pct(lags, 50), "p99": pct(lags, 99), "max": lags[-1] if lags else None,
           "p50_first_fifth": pct(first, 50), "p50_last_fifth": pct(last, 50)}
    cpu = ld(f"lag_{rate}_{m}_cpu.json")
    for side in ("primary", "standby"):
        row[f"{side}_cpu_us_per_change"] = (cpu[f"{side}_ticks"] / cpu["clk_tck"] * 1e6 / len(w)
                                            if w else float("nan"))
    res["lag"][f"{m}/{rate}"] = row
    print(f"| {name.get(m, m)} | {int(rate):,} | {row['achieved']:,.0f} | {row['seen']} / {row['writes']} | {row['p50']:.2f} | "
          f"{row['p99']:.2f} | {row['max']:.1f} | {row['p50_first_fifth']:.2f} | {row['p50_last_fifth']:.2f} | "
          f"{row['primary_cpu_us_per_change']:.0f}, {row['standby_cpu_us_per_change']:.0f} |")
json.dump(res, open(outp, "w"), indent=1)
PY
