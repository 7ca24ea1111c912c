#!/usr/bin/env python3
"""Helper for scripts/perf/failover.sh (standard library only).

One clock everywhere: CLOCK_MONOTONIC in nanoseconds (time.monotonic_ns()), the clock
hasync's own detector uses, the clock the hook program of failover.sh logs, and the clock
read here just before a fault is injected. Every loop is bounded by a count and by a
deadline.

  stamp OUT                       copy stdin to OUT line by line, each line prefixed with
                                  the monotonic ns at which it was read (a node's log)
  inject signal PID SIG [LOCK]    monotonic ns, then kill(PID, SIG); with LOCK (the
                                  primary's <state_dir>/lock), once PID has stopped or
                                  died, the last lock record it made
  inject touch PATH               monotonic ns, then create PATH
  inject cmd ARG...               monotonic ns, then run ARG... (t1 = when it returned)
  ready BIN CFG_P CFG_S TIMEOUT_S [MIN_SEQ]
                                  poll `hasync status --json` of both nodes until they are
                                  joined and in sync (epoch > 0, live session, nothing
                                  unacknowledged, standby alive and caught up)
  wait TIMEOUT_S FILE REGEX [FILE REGEX]...
                                  until every FILE has a line matching its REGEX
  trial DIR KIND INDEX            one trial's timeline from DIR's logs, as JSON
  report RAW_DIR OUT_JSON OUT_PNG the per-kind statistics, failover.json, the gnuplot
                                  plot and the Markdown table (stdout)

Every subcommand but `stamp`, `wait` and `report` prints one JSON object.
"""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

KINDS = ["kill9", "sigstop", "probe", "linkcut"]
KIND_TITLES = {
    "kill9": "kill -9 of the primary",
    "sigstop": "SIGSTOP of the primary (hang)",
    "probe": "failing probe on the primary (Stalled)",
    "linkcut": "link cut (primary's veth down)",
}


def out(obj):
    print(json.dumps(obj), flush=True)


def mono_ns():
    return time.monotonic_ns()


# ---------------------------------------------------------------- stamp
def cmd_stamp(path):
    """Reads stdin with raw os.read calls and stamps every complete line with the time
    of the read that completed it: the delay to a line's write is one pipe wake-up."""
    fd = sys.stdin.fileno()
    pending = b""
    with open(path, "ab", buffering=0) as f:
        for _ in range(100_000_000):  # bounded; ends at EOF long before
            chunk = os.read(fd, 65536)
            t = mono_ns()
            if not chunk:
                break
            pending += chunk
            lines = pending.split(b"\n")
            pending = lines.pop()
            if lines:
                f.write(b"".join(b"%d %s\n" % (t, ln) for ln in lines))
        if pending:
            f.write(b"%d %s\n" % (mono_ns(), pending))


# ---------------------------------------------------------------- inject
def cmd_inject(what, *args):
    extra = {}
    if what == "signal":
        pid, sig = int(args[0]), getattr(signal, args[1])
        t0 = mono_ns()
        os.kill(pid, sig)
        t1 = mono_ns()
        if len(args) > 2:  # the primary rewrites its lock file on every beat, before sending
            for _ in range(200):  # up to ~1 s for the signal to take effect
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        state = f.read().rsplit(")", 1)[1].split()[0]
                except (FileNotFoundError, ProcessLookupError, IndexError):
                    break
                if state in ("Z", "X", "T", "t"):
                    break
                time.sleep(0.005)
            extra["last_made"] = read_lock(args[2])
    elif what == "touch":
        t0 = mono_ns()
        with open(args[0], "w"):
            pass
        t1 = mono_ns()
    elif what == "cmd":
        t0 = mono_ns()
        rc = subprocess.run(list(args), stdin=subprocess.DEVNULL, timeout=10).returncode
        t1 = mono_ns()
        if rc != 0:
            print(f"inject: {' '.join(args)} exited {rc}", file=sys.stderr)
            sys.exit(1)
    else:
        sys.exit(f"inject: unknown kind {what}")
    out({"what": what, "args": list(args), "t0_ns": t0, "t1_ns": t1, **extra})


# ---------------------------------------------------------------- lock file
def read_lock(path):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    rec = {"source": text.split("(", 1)[1].split(")", 1)[0] if "(" in text else ""}
    for line in text.splitlines():
        k, eq, v = line.partition("=")
        if eq and k in ("epoch", "beat", "change_seq", "monotonic_ns"):
            rec[k] = int(v) if v.isdigit() else v
    return rec if "monotonic_ns" in rec else None


# ---------------------------------------------------------------- ready
def status(binary, cfg):
    try:
        p = subprocess.run([binary, "status", "--json", "-c", cfg], capture_output=True,
                           text=True, timeout=5, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:
        return None
    try:
        return json.loads(p.stdout)
    except ValueError:
        return None


def joined(p, s, min_seq):
    """Why the pair is not yet joined and in sync, or "" when it is."""
    if p is None or s is None:
        return "a node does not answer on its control socket"
    if p.get("role") != "primary" or s.get("role") != "standby":
        return f"roles {p.get('role')}/{s.get('role')}"
    if not p.get("epoch") or p.get("epoch") != s.get("epoch"):
        return f"epochs {p.get('epoch')}/{s.get('epoch')}"
    if p.get("session") != "live" or not p["peer"].get("connected") or not s["peer"].get("connected"):
        return f"session {p.get('session')}"
    lag = p.get("lag", {})
    if lag.get("changes_unacked") or lag.get("batches_unacked") or lag.get("journal_pending"):
        return f"lag {lag}"
    if p.get("last_sent_seq") != p.get("last_acked_seq"):
        return "primary has unacknowledged changes"
    if s.get("last_acked_seq") != p.get("last_acked_seq") or s.get("last_acked_seq", 0) < min_seq:
        return f"standby at seq {s.get('last_acked_seq')}, primary at {p.get('last_acked_seq')}"
    if s.get("in_resync") or s.get("rejoining"):
        return "standby resyncing"
    v = s.get("verdict", {})
    if v.get("now") != "alive" or v.get("records", 0) < 2:
        return f"verdict {v.get('now')} after {v.get('records')} records"
    if "probe" in p and not p["probe"].get("ok"):
        return "probe not passing"
    return ""


def cmd_ready(binary, cfg_p, cfg_s, timeout_s, min_seq="0"):
    t0 = mono_ns()
    deadline = time.monotonic() + float(timeout_s)
    why, p, s = "not polled", None, None
    for polls in range(1, 10_000):
        p, s = status(binary, cfg_p), status(binary, cfg_s)
        why = joined(p, s, int(min_seq))
        if not why:
            out({"ok": True, "t_ns": mono_ns(), "waited_ms": (mono_ns() - t0) / 1e6, "polls": polls,
                 "epoch": p["epoch"], "seq": s["last_acked_seq"],
                 "standby_records": s["verdict"]["records"]})
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    out({"ok": False, "why": why, "primary": p, "standby": s})
    sys.exit(1)


# ---------------------------------------------------------------- wait
def cmd_wait(timeout_s, *pairs):
    if len(pairs) % 2:
        sys.exit("wait: FILE REGEX pairs")
    goals = [(pairs[i], re.compile(pairs[i + 1])) for i in range(0, len(pairs), 2)]
    deadline = time.monotonic() + float(timeout_s)
    for _ in range(1_000_000):
        done = 0
        for path, rx in goals:
            try:
                with open(path, "r", errors="replace") as f:
                    if any(rx.search(line) for line in f):
                        done += 1
            except FileNotFoundError:
                pass
        if done == len(goals):
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    sys.exit(1)


# ---------------------------------------------------------------- trial
KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_log(path):
    """A stamped node log as [(t_ns, {key: value})]; non-event lines are skipped."""
    events = []
    try:
        with open(path, "r", errors="replace") as f:
            for line in f:
                ts, _, rest = line.rstrip("\n").partition(" ")
                if not ts.isdigit() or "event=" not in rest:
                    continue
                kv = {}
                for k, v in KV.findall(rest):
                    if v.startswith('"'):
                        v = re.sub(r"\\(.)", r"\1", v[1:-1])
                    kv[k] = v
                events.append((int(ts), kv))
    except FileNotFoundError:
        pass
    return events


def parse_hooks(path):
    """The hook program's log: "<hook> <node> <t_ns> <epoch> <role>" per run."""
    runs = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= 3 and p[2].isdigit():
                    runs.append({"hook": p[0], "node": p[1], "t_ns": int(p[2]),
                                 "epoch": p[3] if len(p) > 3 else "-"})
    except FileNotFoundError:
        pass
    return runs


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def ms(a, b):
    """b - a in ms, or None."""
    if a is None or b is None:
        return None
    return round((b - a) / 1e6, 3)


def cmd_trial(d, kind, index):
    meta = load_json(os.path.join(d, "settings.json")) or {}
    inj = load_json(os.path.join(d, "inject.json"))
    ready = load_json(os.path.join(d, "ready.json")) or {}
    cont = load_json(os.path.join(d, "cont.json"))
    a = parse_log(os.path.join(d, "a.log"))   # the primary (namespace A)
    b = parse_log(os.path.join(d, "b.log"))   # the standby (namespace B)
    hooks = parse_hooks(os.path.join(d, "hooks.log"))
    t_inj = inj["t0_ns"] if inj else None
    lm = (inj or {}).get("last_made")
    t_last_rec = lm["monotonic_ns"] if lm and isinstance(lm.get("monotonic_ns"), int) else None
    t_ready = ready.get("t_ns")
    rec = {"kind": kind, "index": int(index), "t_inject_ns": t_inj,
           "inject_call_ms": ms(inj["t0_ns"], inj["t1_ns"]) if inj else None,
           "join_ms": ready.get("waited_ms"), "notes": []}

    def first(events, name, after=None, **want):
        for t, kv in events:
            if kv.get("event") != name or (after is not None and t < after):
                continue
            if all(kv.get(k) == v for k, v in want.items()):
                return t, kv
        return None, None

    def hook_first(hook, node, after=None):
        for r in hooks:
            if r["hook"] == hook and r["node"] == node and (after is None or r["t_ns"] >= after):
                return r["t_ns"]
        return None

    def hook_ms(events, hook, after=None):
        """Run time hasync logged for the first run of `hook` (after `after`)."""
        t, kv = first(events, "hook", after, hook=hook)
        return float(kv["ms"]) if kv and kv.get("ms", "").isdigit() else None

    # Detection: the standby's first verdict change away from alive after the fault.
    t_det = None
    for t, kv in b:
        if kv.get("event") == "verdict" and kv.get("to") in ("silent", "stalled") and t_inj and t >= t_inj:
            t_det, rec["verdict"] = t, kv["to"]
            break
    t_prom_line, prom = first(b, "promoted", t_inj)
    t_on_promote = hook_first("on_promote", "b", t_inj)
    t_quorum_b = hook_first("quorum_check", "b", t_inj)
    t_quorum_a = hook_first("quorum_check", "a", t_inj)
    t_on_demote_a = hook_first("on_demote", "a", t_inj)
    t_probe_fail = hook_first("probe_fail", "a", t_inj)
    t_demote_req, _ = first(b, "demote_requested", t_inj)
    t_peer_demoted, _ = first(b, "peer_demoted", t_inj)
    t_demoting_a, _ = first(a, "demoting", t_inj)
    rec.update({
        "detection_ms": ms(t_inj, t_det),
        "last_record_before_fault_ms": ms(t_last_rec, t_inj),
        "detection_after_last_record_ms": ms(t_last_rec, t_det),
        "promoted_line_ms": ms(t_inj, t_prom_line),
        "promotion_ms": ms(t_inj, t_on_promote),
        "after_detection_ms": ms(t_det, t_on_promote),
        "promoted_epoch": int(prom["epoch"]) if prom and prom.get("epoch", "").isdigit() else None,
        "promote_reason": prom.get("reason") if prom else None,
        "quorum_check_standby_start_ms": ms(t_inj, t_quorum_b),
        "quorum_check_standby_run_ms": hook_ms(b, "quorum_check", t_inj),
        "quorum_check_primary_start_ms": ms(t_inj, t_quorum_a),
        "first_failing_probe_ms": ms(t_inj, t_probe_fail),
        "detection_after_first_failing_probe_ms": ms(t_probe_fail, t_det),
        "demote_requested_ms": ms(t_inj, t_demote_req),
        "peer_demoted_ms": ms(t_inj, t_peer_demoted),
        "old_primary_demoting_ms": ms(t_inj, t_demoting_a),
        "old_primary_on_demote_ms": ms(t_inj, t_on_demote_a),
        "old_primary_on_demote_run_ms": hook_ms(a, "on_demote", t_inj),
        "on_promote_run_ms": hook_ms(b, "on_promote", t_inj),
    })
    # The guard hooks that sit between detection and promotion, excluded as DESIGN §8
    # says: quorum_check on silence; on_demote of the old primary on the Stalled path.
    excl = 0.0
    if rec.get("verdict") == "silent" and rec["quorum_check_standby_run_ms"] is not None:
        excl += rec["quorum_check_standby_run_ms"]
    if rec.get("verdict") == "stalled" and t_peer_demoted and rec["old_primary_on_demote_run_ms"]:
        excl += rec["old_primary_on_demote_run_ms"]
    rec["guard_hooks_ms"] = excl
    rec["after_detection_excl_hooks_ms"] = (
        round(rec["after_detection_ms"] - excl, 3) if rec["after_detection_ms"] is not None else None)
    # The old primary stopped its scheduler before the new one started it (> 0), or after.
    rec["demote_before_promote_ms"] = ms(t_on_demote_a, t_on_promote) if t_on_demote_a else None
    if cont:
        rec["cont_after_inject_ms"] = ms(t_inj, cont["t0_ns"])
        rec["old_primary_on_demote_after_cont_ms"] = ms(cont["t0_ns"], hook_first("on_demote", "a", cont["t0_ns"]))
        t_dem, _ = first(a, "demoted", cont["t0_ns"])
        rec["old_primary_demoted_after_cont_ms"] = ms(cont["t0_ns"], t_dem)

    # False promotions: a promotion not caused by the fault, i.e. any before it, any by
    # the node that was primary, and any after the first on the standby.
    before = [t for t, kv in a + b if kv.get("event") == "promoted" and t_inj and t < t_inj]
    by_old = [t for t, kv in a if kv.get("event") == "promoted" and (not t_inj or t >= t_inj)]
    extra_b = max(0, len([1 for t, kv in b if kv.get("event") == "promoted" and t_inj and t >= t_inj]) - 1)
    hook_runs = [r for r in hooks if r["hook"] == "on_promote"]
    rec["false_promotions"] = len(before) + len(by_old) + extra_b
    rec["on_promote_runs"] = len(hook_runs)
    rec["verdicts_before_fault"] = len([1 for t, kv in b if kv.get("event") == "verdict" and t_ready
                                        and t_ready <= t and (not t_inj or t < t_inj)])
    rec["promoted"] = t_on_promote is not None
    if not inj:
        rec["notes"].append("no fault injected (the pair did not join)")
    elif t_on_promote is None:
        rec["notes"].append("no on_promote on the standby within the wait")
    if len(hook_runs) > 1:
        rec["notes"].append(f"on_promote ran {len(hook_runs)} times")
    if kind in ("linkcut", "probe") and t_on_demote_a and t_on_promote and t_on_promote < t_on_demote_a:
        rec["notes"].append("the new primary started before the old one stopped (two primaries)")
    rec["window_ms"], rec["beat_ms"] = meta.get("window_ms"), meta.get("beat_ms")
    out(rec)


# ---------------------------------------------------------------- report
def pct(vals, p):
    """Percentile with linear interpolation between closest ranks (numpy's default)."""
    v = sorted(vals)
    if not v:
        return None
    k = (len(v) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def dist(vals, window):
    vals = [x for x in vals if x is not None]
    if not vals:
        return None
    d = {"n": len(vals), "min": min(vals), "p50": pct(vals, 50), "p90": pct(vals, 90), "max": max(vals)}
    d = {k: (round(v, 1) if k != "n" else v) for k, v in d.items()}
    d["ratio_to_window"] = {k: round(d[k] / window, 3) for k in ("min", "p50", "p90", "max")}
    return d


def cmd_report(raw, out_json, out_png):
    meta = load_json(os.path.join(raw, "meta.json")) or {}
    trials = []
    with open(os.path.join(raw, "trials.jsonl")) as f:
        for line in f:
            if line.strip():
                trials.append(json.loads(line))
    W, B = meta["window_ms"], meta["beat_ms"]
    det_target = W + B
    prom_target = 100
    kinds = {}
    for k in KINDS:
        ts = [t for t in trials if t["kind"] == k]
        if not ts:
            continue
        det = dist([t["detection_ms"] for t in ts], W)
        prom = dist([t["promotion_ms"] for t in ts], W)
        after = dist([t["after_detection_ms"] for t in ts], W)
        excl = dist([t["after_detection_excl_hooks_ms"] for t in ts], W)
        s = {"title": KIND_TITLES[k], "trials": len(ts),
             "promoted": sum(1 for t in ts if t["promoted"]),
             "false_promotions": sum(t["false_promotions"] for t in ts),
             "verdicts_before_fault": sum(t["verdicts_before_fault"] for t in ts),
             "verdicts": sorted({t.get("verdict") or "none" for t in ts}),
             "detection_ms": det, "promotion_ms": prom,
             "after_detection_ms": after, "after_detection_excl_hooks_ms": excl}
        dem = [t["old_primary_on_demote_ms"] for t in ts if t.get("old_primary_on_demote_ms") is not None]
        if k in ("probe", "linkcut"):
            s["old_primary_on_demote_ms"] = dist(dem, W)
            s["demote_before_promote_ms"] = dist([t.get("demote_before_promote_ms") for t in ts], W)
        if k in ("kill9", "sigstop"):  # Silent counts from the last record's arrival
            s["detection_after_last_record_ms"] = dist([t.get("detection_after_last_record_ms") for t in ts], W)
            s["last_record_before_fault_ms"] = dist([t.get("last_record_before_fault_ms") for t in ts], W)
        if k == "probe":
            s["detection_after_first_failing_probe_ms"] = dist(
                [t.get("detection_after_first_failing_probe_ms") for t in ts], W)
        if k == "sigstop":
            s["old_primary_on_demote_after_cont_ms"] = dist(
                [t.get("old_primary_on_demote_after_cont_ms") for t in ts], W)
        # DESIGN §8 is written for crash and hang detection. A failing probe adds, by
        # design, up to one probe interval plus its run time before the beat stops.
        bound = det_target + (meta["probe_interval_ms"] + meta["probe_timeout_ms"] if k == "probe" else 0)
        s["detection_bound_ms"] = bound
        s["detection_within_bound"] = bool(det) and det["max"] <= bound and s["promoted"] == len(ts)
        s["after_detection_excl_hooks_within_100ms"] = bool(excl) and excl["max"] <= prom_target
        kinds[k] = s
    result = {
        "meta": meta,
        "target": {
            "text": "DESIGN §8: crash and hang detection <= window + one beat; promotion done "
                    "<= 100 ms later (hooks excluded)",
            "detection_ms": det_target, "promotion_after_detection_ms": prom_target,
            "window_ms": W, "beat_ms": B,
        },
        "definitions": {
            "clock": "CLOCK_MONOTONIC ns, read by the injector, by the log stamper of each node "
                     "and by the hook program",
            "detection_ms": "fault injected -> the standby's `event=verdict from=alive to=silent|stalled` line",
            "promotion_ms": "fault injected -> the standby's on_promote hook started",
            "after_detection_ms": "verdict line -> on_promote started",
            "detection_after_last_record_ms": "kill9 and sigstop: monotonic_ns of the last lock record the "
                                              "primary made (its <state_dir>/lock, read once the signal took "
                                              "effect) -> verdict line; Silent counts from that record's arrival",
            "after_detection_excl_hooks_ms": "the same minus the run time hasync logged for the guard "
                                             "hooks on the path: quorum_check (silent) or the old "
                                             "primary's on_demote (stalled)",
            "percentiles": "linear interpolation between closest ranks",
        },
        "kinds": kinds,
        "false_promotions_total": sum(s["false_promotions"] for s in kinds.values()),
        "trials": trials,
    }
    with open(out_json, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    plot(result, out_png)
    markdown(result)


def f0(x):
    return "–" if x is None else f"{x:,.0f}"


def markdown(r):
    m, W, B = r["meta"], r["meta"]["window_ms"], r["meta"]["beat_ms"]
    print(f"Failover latency, window {W} ms, beat {B} ms, lease {m['lease_ms']} ms, probe every "
          f"{m['probe_interval_ms']} ms (timeout {m['probe_timeout_ms']} ms), {m['trials']} trial(s) "
          f"per kind; `{m['command']}`, {m['date']}, {m['nproc']} cores, load average "
          f"{m['loadavg_start']} (start) / {m['loadavg_end']} (end), commit {m['commit']}"
          + (f" + {m['files_differing_from_commit']} changed file(s) in the working tree"
             if m.get("files_differing_from_commit") else "") + ".")
    print()
    print("| failure | n | verdict | detection ms min / p50 / p90 / max | × window (p50 / max) "
          "| target (window + beat) | on_promote ms min / p50 / max | after detection, hooks excluded, "
          "p50 / max (target ≤ 100) | old primary on_demote ms | false promotions |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for k, s in r["kinds"].items():
        d, p, e = s["detection_ms"] or {}, s["promotion_ms"] or {}, s["after_detection_excl_hooks_ms"] or {}
        ratio = d.get("ratio_to_window", {})
        bound = s["detection_bound_ms"]
        tgt = f"≤ {bound:,}" + ("" if k != "probe" else " (+ probe interval and timeout)")
        tgt += " met" if s["detection_within_bound"] else " **missed**"
        dem = "–"
        if k == "kill9":
            dem = "dead"
        elif k == "sigstop" and s.get("old_primary_on_demote_after_cont_ms"):
            x = s["old_primary_on_demote_after_cont_ms"]
            dem = f"{f0(x['p50'])} / {f0(x['max'])} after SIGCONT"
        elif s.get("old_primary_on_demote_ms"):
            x = s["old_primary_on_demote_ms"]
            dem = f"{f0(x['p50'])} / {f0(x['max'])}"
            bp = s.get("demote_before_promote_ms")
            if bp:
                dem += f" (min {f0(bp['min'])} ms before on_promote)" if bp["min"] >= 0 else \
                       f" (**{f0(-bp['min'])} ms after on_promote**)"
        print(f"| {s['title']} | {s['promoted']}/{s['trials']} | {', '.join(s['verdicts'])} "
              f"| {f0(d.get('min'))} / {f0(d.get('p50'))} / {f0(d.get('p90'))} / {f0(d.get('max'))} "
              f"| {ratio.get('p50', '–')} / {ratio.get('max', '–')} | {tgt} "
              f"| {f0(p.get('min'))} / {f0(p.get('p50'))} / {f0(p.get('max'))} "
              f"| {f0(e.get('p50'))} / {f0(e.get('max'))}"
              f"{'' if s['after_detection_excl_hooks_within_100ms'] else ' **missed**'} "
              f"| {dem} | {s['false_promotions']} |")
    print()
    pr = r["kinds"].get("probe", {}).get("detection_after_first_failing_probe_ms")
    if pr:
        print(f"Failing probe, detection counted from the first failing probe run instead of the fault: "
              f"min {f0(pr['min'])} / p50 {f0(pr['p50'])} / max {f0(pr['max'])} ms "
              f"(window + beat = {W + B:,} ms).")
    parts = []
    for k, s in r["kinds"].items():
        x, g = s.get("detection_after_last_record_ms"), s.get("last_record_before_fault_ms")
        if x and g:
            parts.append(f"{k} {f0(x['min'])}–{f0(x['max'])} ms (last record {f0(g['min'])}–{f0(g['max'])} ms "
                         f"before the fault)")
    if parts:
        print("Detection counted from when the primary made its last lock record (the record's "
              f"monotonic_ns): {'; '.join(parts)}.")
    st = r["kinds"].get("sigstop", {}).get("old_primary_on_demote_after_cont_ms")
    if st:
        print(f"SIGSTOP: the stopped primary runs on_demote only once it is continued "
              f"(here right after the standby's on_promote): {f0(st['p50'])} ms after SIGCONT (p50).")
    print(f"False promotions in all trials: {r['false_promotions_total']}.")


def plot(r, png):
    gp = shutil.which("gnuplot")
    if gp is None:
        print("report: gnuplot not found, no plot (apt-get install gnuplot-nox)", file=sys.stderr)
        return
    m, W, B = r["meta"], r["meta"]["window_ms"], r["meta"]["beat_ms"]
    work = os.path.dirname(os.path.abspath(png))
    pts, boxes = os.path.join(work, "failover_points.dat"), os.path.join(work, "failover_boxes.dat")
    kinds = list(r["kinds"])
    with open(pts, "w") as f:
        f.write("# x detection_ms promotion_ms kind\n")
        for t in r["trials"]:
            if t["kind"] not in kinds:
                continue
            x = kinds.index(t["kind"]) + 1
            j = ((t["index"] % 5) - 2) * 0.03  # spread equal values apart
            f.write(f"{x - 0.18 + j} {t['detection_ms'] if t['detection_ms'] is not None else 'NaN'} "
                    f"{x + 0.18 + j} {t['promotion_ms'] if t['promotion_ms'] is not None else 'NaN'} "
                    f"{t['kind']}\n")
    with open(boxes, "w") as f:
        f.write("# x min p50 p90 max (detection at x-0.18, on_promote at x+0.18)\n")
        for i, k in enumerate(kinds, 1):
            for off, key in ((-0.18, "detection_ms"), (0.18, "promotion_ms")):
                d = r["kinds"][k][key]
                if d:
                    f.write(f"{i + off} {d['min']} {d['p50']} {d['p90']} {d['max']}\n")
    labels = {"kill9": "kill -9", "sigstop": "SIGSTOP", "probe": "failing probe", "linkcut": "link cut"}
    xt = ", ".join(f'"{labels[k]}" {i}' for i, k in enumerate(kinds, 1))
    ys = [y for t in r["trials"] for y in (t["detection_ms"], t["promotion_ms"]) if y is not None]
    bounds = os.path.join(work, "failover_bounds.dat")
    has_bounds = False
    with open(bounds, "w") as f:
        f.write("# x detection bound of the kind, where it differs from window + beat\n")
        for i, k in enumerate(kinds, 1):
            b = r["kinds"][k]["detection_bound_ms"]
            if b != W + B:
                f.write(f"{i} {b}\n")
                ys.append(b)
                has_bounds = True
    lo = min(ys + [W - B]) - 50
    hi = max(ys + [W + B + 100]) + 50
    extra = ""
    if has_bounds:
        extra = (f', \\\n     "{bounds}" using ($1-0.4):2:(0.8):(0) with vectors nohead dt 4 lw 2 '
                 f'lc rgb "#2e8b57" title "probe: + probe interval + timeout"')
    script = f"""
set terminal pngcairo size 1000,620 font ",10" noenhanced
set output "{png}"
set title "hasync failover latency: window {W} ms, beat {B} ms, {m['trials']} trial(s) per kind ({m['date']})"
set ylabel "ms after the fault was injected"
set xrange [0.4:{len(kinds) + 0.6}]
set yrange [{lo}:{hi}]
set xtics ({xt})
set grid ytics
set key outside bottom center horizontal maxrows 3
set boxwidth 0.22
set style fill transparent solid 0.25
plot "{boxes}" using 1:3:2:5:4 with candlesticks lc rgb "#3b6ea8" title "box p50-p90, whiskers min-max", \\
     "{boxes}" using 1:3:3:3:3 with candlesticks lc rgb "#3b6ea8" lw 2 notitle, \\
     "{pts}" using 1:2 with points pt 7 ps 0.9 lc rgb "#1f4e79" title "detection (verdict line, left)", \\
     "{pts}" using 3:4 with points pt 5 ps 0.9 lc rgb "#b5522b" title "on_promote started (right)", \\
     {W} with lines dt 2 lc rgb "#555555" title "window ({W} ms)", \\
     {W + B} with lines lw 2 lc rgb "#2e8b57" title "window + beat ({W + B} ms): detection target", \\
     {W + B + 100} with lines dt 3 lw 2 lc rgb "#c0392b" title "+ 100 ms ({W + B + 100} ms): promotion target, hooks excluded"{extra}
"""
    sp = os.path.join(work, "failover.gp")
    with open(sp, "w") as f:
        f.write(script)
    p = subprocess.run([gp, sp], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        print(f"report: gnuplot failed: {p.stderr.strip()}", file=sys.stderr)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = globals().get("cmd_" + cmd.replace("-", "_"))
    if fn is None:
        sys.exit(f"unknown subcommand {cmd}\n{__doc__}")
    fn(*args)


if __name__ == "__main__":
    main()
