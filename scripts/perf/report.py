#!/usr/bin/env python3
"""report.py — the tables and plots of docs/PERFORMANCE.md from the perf scripts' JSON.

Reads RESULTS/{sidebyside,failover,microbench}.json (whichever exist), prints one Markdown
section with every table (each figure next to its same-run baseline and the DESIGN §8
target), and draws PNG plots with gnuplot into RESULTS/plots/: throughput bars, lag CDFs,
failover latencies. With --write-docs the section replaces the text between the markers
`<!-- perf:all begin -->` and `<!-- perf:all end -->` in docs/PERFORMANCE.md and the
plots are copied to docs/perf/.

usage: report.py [--results DIR] [--write-docs] [--command "what was run"]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BEGIN, END = "<!-- perf:all begin -->", "<!-- perf:all end -->"


def load(results, name):
    p = os.path.join(results, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def f(x, digits=2):
    if x is None:
        return "—"
    if isinstance(x, float):
        if abs(x) >= 1000:
            return "{:,.0f}".format(x)
        return "{:.{}f}".format(x, digits)
    return "{:,}".format(x) if isinstance(x, int) else str(x)


def verdict(ok):
    return "**met**" if ok else "**missed**"


def table(head, rows):
    lines = ["| " + " | ".join(head) + " |",
             "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(head))) + " |"]
    lines += ["| " + " | ".join(f(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ side by side
def throughput_md(sbs):
    rows = sbs.get("throughput")
    if not rows:
        return []
    # A baseline that never delivered (sidebyside.py "missed") has no figures for that
    # phase; it is listed under the tables as a finding, and ratios to it are left blank.
    rs = next((r for r in rows if r["tool"].startswith("rsync")), None)
    out = ["#### Throughput: initial sync of the spool, then a 1 % change of it", ""]
    sp = sbs["spool"]
    out.append("Spool (`spoolgen.py`, seed %d): %s files, %s bytes (%d small of 1–8 KiB in %s "
               "job directories, %d state files, %d × %d MiB). \"Complete\": every file on the "
               "copy with its size (polled every 20 ms); \"durable\": the tool's own work "
               "(hasync: every change acknowledged by the standby) and then a syncfs of the "
               "copy's filesystem, timed. Wire: both directions of the veth, headers included; TCP "
               "payload: the same less 66 bytes of Ethernet, IP and TCP header per frame."
               % (sp["seed"], f(sp["files"]), f(sp["bytes"]), sp["small"], f(sp["dirs"] - 10),
                  sp["state_files"], sp["large"], sp["large_mib"]))
    out.append("")
    head = ["tool", "durable by itself", "complete s", "durable s", "files/s", "MB/s",
            "wire MB", "wire ÷ spool", "durable time ÷ rsync", "identical", "§8 target"]
    body = []
    for r in rows:
        i = r["initial"]
        if i.get("missed"):
            body.append([r["tool"], "yes" if r["durable_by_itself"] else "no",
                         "**missed** %d of %d files" % (i["missing_files"], i["files"])]
                        + [None] * 6 + ["**NO**", ""])
            continue
        ratio = ratio_to(i, rs, "initial")
        target = ""
        if r["tool"].startswith("hasync") and ratio is not None:
            target = "≤ 0.6 × rsync: %s" % verdict(ratio <= 0.6)
        body.append([r["tool"], "yes" if r["durable_by_itself"] else "no", i["seconds"],
                     i["durable_seconds"], i["files_per_s"], i["mb_per_s"], i["wire_bytes"] / 1e6,
                     i["wire_over_bytes"], ratio, "yes" if r["identical"] else "**NO**", target])
    out += [table(head, body), ""]
    head = ["tool", "complete s", "durable s", "changed files", "changed MB", "wire MB",
            "TCP payload MB", "payload ÷ changed", "durable time ÷ rsync", "§8 target"]
    body = []
    for r in rows:
        c = r.get("change")
        if c is None:
            continue  # its initial sync missed: no change was made
        if c.get("missed"):
            body.append([r["tool"], "**missed** %d of %d files" % (c["missing_files"], c["files"])]
                        + [None] * 8)
            continue
        ratio = ratio_to(c, rs, "change")
        target = ""
        if r["tool"].startswith("hasync"):
            target = "≤ 0.1 × rsync: %s; payload ≤ 1.05 × changed: %s" % (
                "— (rsync missed)" if ratio is None else verdict(ratio <= 0.1),
                verdict(c["payload_over_bytes"] <= 1.05))
        body.append([r["tool"], c["seconds"], c["durable_seconds"], c["files"], c["bytes"] / 1e6,
                     c["wire_bytes"] / 1e6, c["payload_bytes"] / 1e6, f(c["payload_over_bytes"], 3),
                     ratio, target])
    out += ["The 1 % change (small files rewritten whole, large files rewritten in place or "
            "appended to by 1 % of their size; the live tools ship while it is being made, "
            "so their clock starts when it is complete):", "", table(head, body), ""]
    found = sbs.get("findings") or []
    if found:
        out += ["Findings (a baseline that did not deliver is reported, not waited for: "
                "`sidebyside.py` gives it its own delay plus a grace):", ""]
        out += ["- " + x for x in found] + [""]
    return out


def ratio_to(phase_row, rs, phase):
    """durable time ÷ rsync's, or None when either is missing."""
    base = rs.get(phase) if rs else None
    if not base or base.get("missed"):
        return None
    return phase_row["durable_seconds"] / base["durable_seconds"]


def lag_md(sbs):
    lag = sbs.get("lag")
    if not lag:
        return []
    out = ["#### Replication lag (change closed on the primary → new content visible on the copy)", "",
           "hasync publishes a file only after its fsync, so visible there means durable; "
           "lsyncd's copy is never fsynced. The floor is the same writer and watcher on one "
           "directory with no replication: what the method itself costs.", ""]
    head = ["rate /s", "tool", "achieved /s", "seen", "p50 ms", "p90 ms", "p99 ms", "max ms",
            "final copy identical", "p50 ÷ lsyncd", "§8 target (1,000/s: p50 ≤ 2, p99 ≤ 20)"]
    body = []
    by_rate = {}
    for tool in ("hasync", "lsyncd", "floor"):
        for r in lag.get(tool, []):
            by_rate.setdefault(r["rate"], {})[tool] = r
    for rate in sorted(by_rate):
        ls = by_rate[rate].get("lsyncd")
        for tool in ("hasync", "lsyncd", "floor"):
            r = by_rate[rate].get(tool)
            if not r:
                continue
            ratio = (r["p50_ms"] / ls["p50_ms"] if ls and ls.get("p50_ms") and r.get("p50_ms") is not None
                     else None)
            target = ""
            if tool == "hasync" and rate == 1000 and r["p50_ms"] is not None:
                target = "p50 %s, p99 %s" % (verdict(r["p50_ms"] <= 2), verdict(r["p99_ms"] <= 20))
            final = r.get("final_identical_after_s")
            body.append([f(rate), tool, r["achieved_rate"], "%d / %d" % (r["observed"], r["writes"]),
                         r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"],
                         "yes" if final is not None else
                         "**no**: %s files older 20 s after" % f(r.get("final_differing_files")),
                         ratio, target])
    out += [table(head, body), "",
            "\"seen\" counts versions observed on the copy; a version overwritten on the "
            "primary before it was shipped is coalesced, by design, and is never seen.", ""]
    return out


def slowdown_md(sbs):
    reps = sbs.get("slowdown")
    if not reps:
        return []
    out = ["#### Writer slowdown on the primary (C++ writer: create + write 4 KiB + close)", ""]
    head = ["condition", "files/s per repetition", "median", "median ratio to none", "§8 target"]
    body = []
    for cond in ("none", "bare", "hasync"):
        vals = [r[cond] for r in reps]
        ratio = statistics.median(r[cond] / r["none"] for r in reps)
        target = ""
        if cond == "hasync":
            target = "slowdown ≤ 20 %%: %s (%.0f %%)" % (verdict(ratio >= 0.8), (1 - ratio) * 100)
        label = {"none": "nothing watching", "bare": "a bare fanotify listener (filesystem mark)",
                 "hasync": "hasync replicating the spool"}[cond]
        body.append([label, ", ".join("{:,.0f}".format(v) for v in vals), statistics.median(vals),
                     ratio, target])
    out += [table(head, body), "",
            "Ratios are taken within each repetition (the three conditions run back to back, "
            "rotated), then the median. The standby runs on the same two cores here; on a "
            "real pair it is another machine.", ""]
    return out


def memory_md(sbs):
    m = sbs.get("memory")
    if not m or "full" not in m:
        return []
    e = m["empty"]
    out = ["#### Memory per tracked entry (VmRSS at rest, full spool minus an empty one)", ""]
    head = ["node", "pair", "RSS empty KiB", "RSS full KiB", "entries tracked", "bytes per entry",
            "§8 target"]
    body = []
    for key, label in (("full", "started over the full spool"),
                       ("after_run", "after the throughput runs")):
        fl = m.get(key)
        if not fl:
            continue
        n = fl.get("tracked") or 0
        for node in ("primary", "standby"):
            per = (fl[node + "_kib"] - e[node + "_kib"]) * 1024 / n if n else None
            target = "≤ 200: %s" % verdict(per <= 200) if per is not None and key == "full" else ""
            body.append([node, label, e[node + "_kib"], fl[node + "_kib"], n, per, target])
    out += [table(head, body), "",
            "Entries are the primary's tracked files and directories (its last `resync_sent` "
            "line); both nodes read once everything was acknowledged and neither RSS had risen "
            "for 13 s, by which time a node has given a burst's freed heap back "
            "(engine/node/heap_trim.h; before 6e946fa: 3 s after). \"Started over the "
            "full spool\": a pair restarted over a spool the standby already holds, so the "
            "resync sends nothing: the model plus fixed costs. \"After the throughput runs\": "
            "the pair that moved 1.5 GB, which also keeps what its transfer buffers left in "
            "the heap (a fixed cost, not a per-file one).", ""]
    if m.get("command"):
        out += ["Measured by %s." % m["command"], ""]
    return out


# ------------------------------------------------------------------ failover
def failover_md(fo):
    if not fo:
        return []
    meta, target = fo.get("meta", {}), fo.get("target", {})
    window, beat = meta.get("window_ms"), meta.get("beat_ms")
    out = ["#### Failover latency (`scripts/perf/failover.sh`)", "",
           "Each node in a network namespace of its own; %s trial%s of each failure, interleaved, "
           "every one from a fresh pair in sync. Window %s ms, beat %s ms; clock CLOCK_MONOTONIC "
           "(injector, log stamper, hooks). Detection: fault → the standby's verdict line; "
           "promotion: fault → `on_promote` started; \"after detection\": verdict → `on_promote`, "
           "minus the guard hooks' own run time (quorum_check, fence). False promotions in the "
           "run: %s." % (meta.get("trials"), "" if meta.get("trials") == 1 else "s", f(window),
                         f(beat), fo.get("false_promotions_total")), ""]
    head = ["failure", "promoted / trials", "detection ms min / p50 / p90 / max",
            "detection p50 ÷ window", "promotion ms p50 / max", "after detection, hooks excluded, p50 / max ms",
            "§8 target"]
    body = []
    for kind, s in fo.get("kinds", {}).items():
        d, pr = s.get("detection_ms") or {}, s.get("promotion_ms") or {}
        ad = s.get("after_detection_excl_hooks_ms") or {}
        quad = " / ".join(f(d.get(k), 0) for k in ("min", "p50", "p90", "max"))
        bound = s.get("detection_bound_ms", target.get("detection_ms"))
        ok = s.get("detection_within_bound")
        ok2 = s.get("after_detection_excl_hooks_within_100ms")
        goal = ("detection ≤ %s ms: %s; then ≤ 100 ms: %s" % (f(bound), verdict(bool(ok)), verdict(bool(ok2)))
                if ok is not None else "")
        body.append([s.get("title", kind), "%s / %s" % (s.get("promoted"), s.get("trials")), quad,
                     (d.get("ratio_to_window") or {}).get("p50"),
                     "%s / %s" % (f(pr.get("p50"), 0), f(pr.get("max"), 0)),
                     "%s / %s" % (f(ad.get("p50"), 0), f(ad.get("max"), 0)), goal])
    out += [table(head, body), "",
            "The failing-probe bound adds the probe's interval and timeout to window + beat: the "
            "beat stops only once a probe run has failed.", ""]
    return out


# ------------------------------------------------------------------ micro-benchmarks
def microbench_md(mb):
    if not mb:
        return []
    out = ["#### Micro-benchmarks (Google Benchmark, medians, CPU time)", ""]
    for subject, rows in mb.get("subjects", mb).items():
        if not isinstance(rows, list) or not rows:
            continue
        out += ["%s:" % subject, ""]
        head = ["benchmark", "CPU ns/op", "bytes/s", "counters", "ratio", "baseline"]
        body = [[r.get("name"), r.get("cpu_ns"), r.get("bytes_per_second") and
                 "%.2f GB/s" % (r["bytes_per_second"] / 1e9),
                 ", ".join("%s=%s" % (k, f(v)) for k, v in (r.get("counters") or {}).items()),
                 r.get("ratio"), r.get("baseline") or ""]
                for r in rows]
        out += [table(head, body), ""]
    return out


# ------------------------------------------------------------------ plots
def gnuplot(script):
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        print("report.py: gnuplot failed: " + r.stderr.strip(), file=sys.stderr)
        return False
    return True


def plot_throughput(sbs, plots):
    rows = sbs.get("throughput")
    if not rows:
        return None
    dat = os.path.join(plots, "throughput.dat")
    with open(dat, "w") as fh:
        for r in rows:
            secs = [(r.get(ph) or {}).get("durable_seconds") for ph in ("initial", "change")]
            fh.write('"%s" %s %s\n' % (r["tool"].replace(", ", "\\n"),
                                       *("NaN" if x is None else "%f" % x for x in secs)))
    png = os.path.join(plots, "throughput.png")
    ok = gnuplot("""set terminal pngcairo size 1100,520 font ",10"
set output '%s'
set title "Initial sync and a 1 %% change, seconds until durable (log scale; lower is better)"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel "seconds"
set xtics rotate by 0 font ",8"
set key top left
set grid ytics
plot '%s' using 2:xtic(1) title "initial sync", '' using 3 title "1 %% change"
""" % (png, dat))
    return png if ok else None


def plot_lag(sbs, plots):
    lag = sbs.get("lag")
    if not lag:
        return None
    series = []
    for tool in ("hasync", "lsyncd", "floor"):
        for r in lag.get(tool, []):
            vals = r.get("lags_ms") or []
            if not vals:
                continue
            dat = os.path.join(plots, "lag_%s_%d.dat" % (tool, r["rate"]))
            with open(dat, "w") as fh:
                n = len(vals)
                for i, v in enumerate(vals):
                    fh.write("%f %f\n" % (max(v, 0.001), (i + 1) / n))
            # one colour per rate, one dash pattern per tool
            colour = {100: "#1b9e77", 1000: "#d95f02", 10000: "#7570b3"}.get(r["rate"], "#666666")
            dash = {"hasync": 1, "lsyncd": 2, "floor": 3}[tool]
            series.append("'%s' using 1:2 with lines lw 2 lc rgb '%s' dt %d title '%s, %d/s'"
                          % (dat, colour, dash, tool, r["rate"]))
    if not series:
        return None
    png = os.path.join(plots, "lag_cdf.png")
    ok = gnuplot("""set terminal pngcairo size 1000,560 font ",10"
set output '%s'
set title "Lag CDF: change closed on the primary -> visible on the copy (lags <= 1 us drawn at 1 us)"
set logscale x
set xlabel "milliseconds (log)"
set ylabel "fraction of observed changes"
set key bottom right
set grid
set arrow from 2, graph 0 to 2, graph 1 nohead dt 2
set arrow from 20, graph 0 to 20, graph 1 nohead dt 3
plot %s
""" % (png, ", ".join(series)))
    return png if ok else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default=os.path.join(REPO, "build-perf", "results"))
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--command", default="./scripts/perf/all.sh")
    a = p.parse_args()
    sbs = load(a.results, "sidebyside")
    fo = load(a.results, "failover")
    mb = load(a.results, "microbench")
    plots = os.path.join(a.results, "plots")
    os.makedirs(plots, exist_ok=True)
    md = []
    m = (sbs or {}).get("machine")
    if m:
        md += ["Run of %s, commit %s, `%s`: %s CPUs (%s), %s GiB, kernel %s, rsync %s, lsyncd %s; "
               "load average at the end %s." % (m["date"], m["commit"], a.command, m["nproc"], m["cpu"],
                                                m["mem_gib"], m["kernel"], m["rsync"], m["lsyncd"],
                                                " / ".join(m["loadavg_end"])), ""]
    if sbs:
        md += throughput_md(sbs) + lag_md(sbs) + slowdown_md(sbs) + memory_md(sbs)
    md += failover_md(fo) + microbench_md(mb)
    pngs = [x for x in (plot_throughput(sbs or {}, plots), plot_lag(sbs or {}, plots)) if x]
    fo_png = os.path.join(a.results, "failover.png")
    if fo and os.path.exists(fo_png):
        pngs.append(fo_png)
    if pngs:
        md += ["Plots: " + ", ".join("[%s](perf/%s)" % (os.path.basename(x), os.path.basename(x))
                                     for x in pngs) + ".", ""]
    text = "\n".join(md)
    print(text)
    if a.write_docs:
        doc = os.path.join(REPO, "docs", "PERFORMANCE.md")
        body = open(doc).read()
        if BEGIN not in body or END not in body:
            sys.exit("report.py: %s lacks the markers %s / %s" % (doc, BEGIN, END))
        head, rest = body.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(doc, "w") as fh:
            fh.write(head + BEGIN + "\n" + text + "\n" + END + tail)
        dest = os.path.join(REPO, "docs", "perf")
        os.makedirs(dest, exist_ok=True)
        for x in pngs:
            shutil.copy(x, dest)
        print("report.py: wrote %s and %d plots to %s" % (doc, len(pngs), dest), file=sys.stderr)


if __name__ == "__main__":
    main()
