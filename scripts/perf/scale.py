#!/usr/bin/env python3
"""scale.py — hasync on spools of growing size, each figure next to rsync in the same run.

For each --sizes N (default "10000 100000"; HASYNC_LONG=1 adds 1,000,000), a spool in
Slurm's layout (spoolgen.py: N small files as hash.D/job.ID/{script,environment}, the
controller's state files, --large files of --large-mib MiB) on a loop-mounted ext4, and:

  initial   an rsync daemon push (rsync -a --fsync) into a fresh directory, then a hasync
            pair (TLS, one data stream per CPU) from an empty standby: seconds until the
            copy is complete and durable (acknowledged; then a timed syncfs), and the
            ratio hasync / rsync. The hasync copy is compared byte for byte.
  memory    both nodes' VmRSS at rest after the initial sync; per entry, the growth from
            the previous size over the entries added (on a small spool RSS is mostly
            fixed cost).
  steady    CPU seconds per second of both nodes (utime + stime from /proc) while idle
            for --idle-seconds, and while a paced writer makes --rate changes/s for
            --steady-seconds into a corner of the spool: the cost must follow the rate,
            not the size of the tree.
  overflow  the primary paused (SIGSTOP) while --overflow-files new files are written, more
            than the kernel's fanotify queue holds (16,384 events): continued, it loses
            track of them, rescans the tree (event=overflow_rescan) and sends them; seconds
            from SIGCONT until the standby holds them all and everything is acknowledged,
            next to rsync -a --fsync bringing its copy up to date with the same new files
            (it walks the whole tree too).
  restart   the standby stopped and started again over its copy: seconds until the
            primary has compared the whole tree again and everything is acknowledged
            (the resync after a standby restart), and the same for the primary.

Both nodes run on this host, the standby in a network namespace (the veth of
sidebyside.py), so each figure is a ratio to a baseline measured in the same run, never
an absolute. No timing asserts; every wait is bounded (--timeout, scaled with N). Every
process started here is stopped by its pid; the namespace, mounts and work dir are
removed on exit. Needs root. Writes BUILD/results/scale.json, plots it into
BUILD/results/scale.png (scale_plot.py) and prints a summary.

usage: scale.py [--sizes "10000 100000"] [--large K] [--large-mib M] [--rate R]
                [--steady-seconds S] [--idle-seconds S] [--overflow-files N] [--timeout S]
                [--build DIR]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sidebyside as sbs  # noqa: E402  (same directory: the lab, the tools, the waits)

log, mono, run, wait_for = sbs.log, sbs.mono, sbs.run, sbs.wait_for
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """utime + stime of a process, seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_rate(tool, seconds, during=None):
    """CPU seconds per second of each node over `seconds` (or while `during()` runs)."""
    pids = {"primary": tool.p.pid, "standby": tool.s.pid}
    c0, t0 = {k: cpu_s(p) for k, p in pids.items()}, mono()
    extra = during() if during else time.sleep(seconds)
    dt = mono() - t0
    res = {k + "_cpu_per_s": (cpu_s(p) - c0[k]) / dt for k, p in pids.items()}
    res["seconds"] = dt
    if extra:
        res.update(extra)
    return res


def restart(lab, tool, node, timeout):
    """Stops `node` and starts it again with the same config and state; seconds until the
    pair is live with everything acknowledged."""
    w = lab.work
    if node == "standby":
        lab.stop(tool.s)
        t0 = mono()
        cfg = os.path.join(w, "standby.toml")
        tool.s = lab.spawn([tool.bin, "run", "-c", cfg, "--initial-role", "standby"],
                           "standby.log", netns=True)
    else:
        lab.stop(tool.p)
        t0 = mono()
        cfg = os.path.join(w, "primary.toml")
        tool.p = lab.spawn([tool.bin, "run", "-c", cfg, "--initial-role", "primary"],
                           "primary.log")
    time.sleep(0.5)  # the old session's status must not count as the new one's
    return wait_for(tool.all_acked, timeout, node + " restart") - t0


def overflow(lab, tool, src, dst, count, bound):
    """Pauses the primary while `count` new files are written, continues it: seconds until
    the standby holds them all and everything is acknowledged, and the overflow lines the
    primary logged meanwhile."""
    corner = os.path.join(src, "overflow")
    log_path = os.path.join(lab.work, "primary.log")
    with open(log_path, errors="replace") as f:
        seen = f.read().count("event=overflow_rescan")
    os.kill(tool.p.pid, signal.SIGSTOP)
    try:
        files = []
        for d in range(20):
            os.makedirs(os.path.join(corner, "hash.%d" % d), exist_ok=True)
        for i in range(count):
            rel = os.path.join("overflow", "hash.%d" % (i % 20), "job.%d" % i)
            with open(os.path.join(src, rel), "wb") as f:
                f.write(b"x" * 1024)
            files.append((rel, 1024))
    finally:
        t0 = mono()
        os.kill(tool.p.pid, signal.SIGCONT)
    wait_for(sbs.TreeArrival(dst, files).done, bound, "files written in the pause")
    t = wait_for(tool.all_acked, bound, "acknowledged after the overflow")
    with open(log_path, errors="replace") as f:
        logged = f.read().count("event=overflow_rescan") - seen
    return {"seconds": t - t0, "files": count, "overflow_lines": logged}


def one_size(lab, a, binary, n, idx):
    res = {"small_files": n}
    bound = max(a.timeout, int(n / 1000) * 6)  # ~6 s per thousand files: generous
    fs_mib = max(1024, int(n * 6 * 1.6 / 1024) + a.large * a.large_mib * 2 + 1024)
    pfs = a.pfs = lab.make_fs("primary%d" % idx, fs_mib)
    src = os.path.join(pfs, "spool")
    os.makedirs(src)
    log("size %d: creating the spool (%d small files, %d × %d MiB)" % (n, n, a.large, a.large_mib))
    t0 = mono()
    gen = json.loads(subprocess.run(
        [sys.executable, os.path.join(HERE, "spoolgen.py"), "create", src, "--seed", "1",
         "--small", str(n), "--large", str(a.large), "--large-mib", str(a.large_mib)],
        check=True, capture_output=True, text=True).stdout)
    lab.syncfs(pfs)
    res["spool"] = gen
    res["create_s"] = mono() - t0
    files = sbs.list_files(src)
    res["entries"] = len(files)

    # rsync: the baseline of the initial copy.
    daemon = sbs.RsyncDaemon(lab)
    push = sbs.RsyncPush(lab, daemon)
    rdst = os.path.join(lab.fresh_dir("rsync.%d" % idx), "spool")
    os.makedirs(rdst)
    push.start(src, rdst)
    t0 = mono()
    push.push()
    t_copy = mono()
    sync_s = lab.syncfs(rdst)
    res["rsync_initial_s"] = t_copy - t0 + sync_s
    push.stop()
    log("  rsync -a --fsync: %.1f s" % res["rsync_initial_s"])

    # hasync: the initial sync from an empty standby.
    tool = sbs.Hasync(lab, binary, "tls", a.streams)
    sfs = lab.fresh_dir("standby.%d" % idx)
    dst = os.path.join(sfs, "spool")
    t0 = mono()
    tool.start(src, dst)
    try:
        t_copy = wait_for(sbs.TreeArrival(dst, files).done, bound, "hasync initial copy")
        t_acked = tool.settle(t_copy, bound)
        sync_s = lab.syncfs(sfs)
        res["hasync_initial_s"] = t_acked - t0 + sync_s
        res["initial_ratio_to_rsync"] = res["hasync_initial_s"] / res["rsync_initial_s"]
        log("  hasync (TLS, %d streams): %.1f s = %.2f × rsync"
            % (a.streams, res["hasync_initial_s"], res["initial_ratio_to_rsync"]))
        cmp = sbs.compare(src, dst)
        res["identical"] = cmp["equal"]
        if not cmp["equal"]:
            log("  the copy differs: %s" % json.dumps(cmp)[:400])

        mem = sbs.memory_at_rest(lab, tool)
        mem["tracked"] = mem.get("tracked") or res["entries"]
        res["memory"] = mem
        log("  memory at rest: primary %d KiB, standby %d KiB (%d entries)"
            % (mem["primary_kib"], mem["standby_kib"], mem["tracked"]))

        res["idle"] = cpu_rate(tool, a.idle_seconds)
        corner = os.path.join(src, "scale_writer")
        outp = os.path.join(lab.work, "writes%d.json" % idx)

        def write():
            r = subprocess.run(sbs.helper("lag-writer", corner, a.rate, a.steady_seconds, 2000, outp),
                               check=True, capture_output=True, text=True)
            w = json.loads(r.stdout)
            wait_for(tool.all_acked, bound, "writer's changes acknowledged")
            return {"achieved_rate": w["achieved_rate"]}

        res["steady"] = cpu_rate(tool, 0, during=write)
        log("  CPU at %d changes/s: primary %.3f, standby %.3f s/s (idle %.3f, %.3f)"
            % (a.rate, res["steady"]["primary_cpu_per_s"], res["steady"]["standby_cpu_per_s"],
               res["idle"]["primary_cpu_per_s"], res["idle"]["standby_cpu_per_s"]))

        res["overflow"] = overflow(lab, tool, src, dst, a.overflow_files, bound)
        # The baseline: rsync bringing its own copy up to date with the same new files (it
        # walks the whole tree too, as the rescan does).
        push.start(src, rdst)
        t0 = mono()
        push.push()
        t_copy = mono()
        res["overflow"]["rsync_s"] = t_copy - t0 + lab.syncfs(rdst)
        push.stop()
        res["overflow"]["ratio_to_rsync"] = res["overflow"]["seconds"] / res["overflow"]["rsync_s"]
        log("  after a kernel queue overflow (%d files written in a pause): %.1f s, %d "
            "overflow line(s) logged; rsync of the same change %.1f s (%.2f ×)"
            % (a.overflow_files, res["overflow"]["seconds"], res["overflow"]["overflow_lines"],
               res["overflow"]["rsync_s"], res["overflow"]["ratio_to_rsync"]))
        res["standby_restart_s"] = restart(lab, tool, "standby", bound)
        res["primary_restart_s"] = restart(lab, tool, "primary", bound)
        log("  resync after a restart: standby %.1f s, primary %.1f s"
            % (res["standby_restart_s"], res["primary_restart_s"]))
    finally:
        tool.stop()
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    long_run = os.environ.get("HASYNC_LONG") == "1"
    p.add_argument("--sizes", default="10000 100000 1000000" if long_run else "10000 100000")
    p.add_argument("--large", type=int, default=4)
    p.add_argument("--large-mib", type=int, default=32)
    p.add_argument("--streams", type=int, default=os.cpu_count() or 2)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--steady-seconds", type=float, default=10.0)
    p.add_argument("--idle-seconds", type=float, default=10.0)
    p.add_argument("--overflow-files", type=int, default=20000)
    p.add_argument("--timeout", type=int, default=600)
    p.add_argument("--build", default=os.path.join(sbs.REPO, "build-perf"))
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("scale.py: run as root (fanotify, loop mounts and network namespaces need it)")
    log("building hasync in %s" % a.build)
    run(["cmake", "-S", sbs.REPO, "-B", a.build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
        stdout=subprocess.DEVNULL)
    run(["ninja", "-C", a.build, "hasync"], stdout=subprocess.DEVNULL)
    binary = os.path.join(a.build, "app", "hasync")
    results = os.path.join(a.build, "results")
    os.makedirs(results, exist_ok=True)
    out = {"command": "scripts/perf/scale.py" + "".join(" " + x for x in sys.argv[1:]),
           "sizes": [], "streams": a.streams, "rate": a.rate,
           "commit": subprocess.run(["git", "-C", sbs.REPO, "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True).stdout.strip(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    lab = sbs.Lab(a)
    # SIGINT / SIGTERM end the run through the finally below: every pid stopped, the
    # mounts and the namespace removed.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    try:
        lab.make_net()
        for idx, n in enumerate(int(x) for x in a.sizes.split()):
            out["sizes"].append(one_size(lab, a, binary, n, idx))
            with open(os.path.join(results, "scale.json"), "w") as f:
                json.dump(out, f, indent=1)  # what finished so far survives a later failure
    finally:
        lab.close()
    # RSS over entries is mostly fixed cost on a small spool: the marginal figure (the
    # growth from the previous size over the entries added) is the per-entry cost.
    prev = None
    for r in out["sizes"]:
        if prev is not None:
            added = r["memory"]["tracked"] - prev["memory"]["tracked"]
            for node in ("primary", "standby"):
                grew = (r["memory"][node + "_kib"] - prev["memory"][node + "_kib"]) * 1024
                r["memory"][node + "_marginal_bytes_per_entry"] = grew / added if added else None
        prev = r
    with open(os.path.join(results, "scale.json"), "w") as f:
        json.dump(out, f, indent=1)
    # The plot of cost against size (scale_plot.py; a failed plot is said, not fatal).
    subprocess.run([sys.executable, os.path.join(HERE, "scale_plot.py"), "-o",
                    os.path.join(results, "scale.png"), os.path.join(results, "scale.json")])
    fmt = lambda v: "—" if v is None else "%.0f" % v  # noqa: E731
    print("| small files | entries | rsync initial s | hasync initial s | ratio | RSS KiB (p, s) | "
          "marginal B/entry (p, s) | CPU s/s idle (p, s) | CPU s/s at %d/s (p, s) | after an "
          "overflow s (÷ rsync) | resync after standby / primary restart s |" % a.rate)
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in out["sizes"]:
        m = r["memory"]
        print("| %d | %d | %.1f | %.1f | %.2f | %d, %d | %s, %s | %.3f, %.3f | %.3f, %.3f | "
              "%.1f (%.2f) | %.1f / %.1f |" % (
                  r["small_files"], m["tracked"], r["rsync_initial_s"], r["hasync_initial_s"],
                  r["initial_ratio_to_rsync"], m["primary_kib"], m["standby_kib"],
                  fmt(m.get("primary_marginal_bytes_per_entry")),
                  fmt(m.get("standby_marginal_bytes_per_entry")), r["idle"]["primary_cpu_per_s"],
                  r["idle"]["standby_cpu_per_s"], r["steady"]["primary_cpu_per_s"],
                  r["steady"]["standby_cpu_per_s"], r["overflow"]["seconds"],
                  r["overflow"]["ratio_to_rsync"],
                  r["standby_restart_s"],
                  r["primary_restart_s"]))


if __name__ == "__main__":
    main()
