#!/usr/bin/env python3
"""scale_plot.py — cost against the size of the tree, from scale.py's results.

Reads one or more scale.json files (scale.py writes BUILD/results/scale.json; the runs
recorded in docs/PERFORMANCE.md are kept in docs/perf/scale-*.json) and draws one PNG of
four panels, each against the entries tracked (log scale):

  initial sync   seconds until durable, hasync and rsync -a --fsync of the same spool
  resync         seconds after a standby restart and a primary restart, and after a
                 fanotify queue overflow where the run measured it
  CPU            core-seconds per second of both nodes at the steady rate (1,000
                 changes/s) and idle: what must not grow with the tree
  memory         VmRSS at rest of both nodes over the entries tracked (files, directories and
                 symlinks: a Slurm spool has about 1.5 per small file), with the goal of
                 200 bytes per tracked entry (docs/PERFORMANCE.md measures it so)

A size measured in several files is merged field by field, the last file given winning:
one run may add what another did not measure (the overflow phase, say). Needs gnuplot
(scripts/install-deps.sh installs it).

usage: scale_plot.py [-o OUT.png] SCALE.json [SCALE.json ...]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def load(paths):
    by_size = {}
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        for r in run.get("sizes", []):
            merged = by_size.setdefault(r["small_files"], {"_runs": []})
            merged.update(r)
            merged["_runs"].append("%s at %s" % (run.get("date", "?"), run.get("commit", "?")))
    return [by_size[k] for k in sorted(by_size)]


def num(v):
    return "NaN" if v is None else repr(float(v))


def rows(sizes):
    """One line per size: entries and every plotted value (NaN where not measured)."""
    out = []
    for r in sizes:
        m, ov = r.get("memory", {}), r.get("overflow") or {}
        entries = m.get("tracked") or r.get("entries")
        per = lambda kib: None if kib is None or not entries else kib * 1024 / entries  # noqa: E731
        out.append(" ".join(num(v) for v in (
            entries, r.get("hasync_initial_s"), r.get("rsync_initial_s"),
            r.get("standby_restart_s"), r.get("primary_restart_s"), ov.get("seconds"),
            ov.get("rsync_s"), (r.get("steady") or {}).get("primary_cpu_per_s"),
            (r.get("steady") or {}).get("standby_cpu_per_s"),
            (r.get("idle") or {}).get("primary_cpu_per_s"),
            (r.get("idle") or {}).get("standby_cpu_per_s"),
            per(m.get("primary_kib")), per(m.get("standby_kib")))))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-o", "--out", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "perf", "scale.png"))
    p.add_argument("results", nargs="+")
    a = p.parse_args()
    sizes = load(a.results)
    if not sizes:
        sys.exit("scale_plot.py: no sizes in " + " ".join(a.results))
    runs = sorted({run for r in sizes for run in r["_runs"]})
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as dat:
        dat.write("\n".join(rows(sizes)) + "\n")
    script = """set terminal pngcairo size 1200,900 font ",10"
set output '{out}'
set multiplot layout 2,2 title "hasync on Slurm-like spools of growing size (scale.py; {runs})"
set logscale x
set xrange [8000:3000000]
set xlabel "entries tracked (log)"
set grid
set key top left
set format x "%.0s%c"
set title "Initial sync, seconds until durable (lower is better)"
set logscale y
set ylabel "seconds (log)"
plot '{dat}' using 1:2 with linespoints lw 2 pt 7 title "hasync", \\
     '' using 1:3 with linespoints lw 2 pt 5 dt 2 title "rsync -a --fsync"
set title "Resync of the whole tree, seconds until all acknowledged"
plot '{dat}' using 1:4 with linespoints lw 2 pt 7 title "after a standby restart", \\
     '' using 1:5 with linespoints lw 2 pt 5 title "after a primary restart", \\
     '' using 1:6 with linespoints lw 2 pt 9 title "after a queue overflow", \\
     '' using 1:7 with linespoints lw 2 pt 9 dt 2 title "rsync of the overflow's change"
unset logscale y
set yrange [0:*]
set title "CPU at 1,000 changes/s and idle: flat in the size of the tree"
set ylabel "core-seconds per second"
plot '{dat}' using 1:8 with linespoints lw 2 pt 7 title "primary, 1,000/s", \\
     '' using 1:9 with linespoints lw 2 pt 5 title "standby, 1,000/s", \\
     '' using 1:10 with linespoints lw 1 pt 6 dt 2 title "primary, idle", \\
     '' using 1:11 with linespoints lw 1 pt 4 dt 2 title "standby, idle"
set title "Memory at rest, VmRSS ÷ entries tracked (fixed cost dominates small trees)"
set ylabel "bytes per entry (log)"
set logscale y
set yrange [*:*]
plot '{dat}' using 1:12 with linespoints lw 2 pt 7 title "primary", \\
     '' using 1:13 with linespoints lw 2 pt 5 title "standby", \\
     200 with lines dt 3 lc rgb "black" title "goal: 200 per tracked entry"
unset multiplot
""".format(out=os.path.abspath(a.out), dat=dat.name, runs="; ".join(runs))
    try:
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    except OSError as e:
        sys.exit("scale_plot.py: cannot run gnuplot (scripts/install-deps.sh installs it): %s" % e)
    finally:
        os.unlink(dat.name)
    if r.returncode != 0:
        sys.exit("scale_plot.py: gnuplot failed: " + r.stderr.strip())
    print("scale_plot.py: wrote %s (%d sizes)" % (os.path.abspath(a.out), len(sizes)))


if __name__ == "__main__":
    main()
