#!/usr/bin/env python3
"""Helper for scripts/perf/replication.sh (standard library only).

Every subcommand prints one JSON object on stdout. Times are CLOCK_MONOTONIC seconds
(time.monotonic()), comparable between processes on the same machine. Every loop is
bounded by a count and by a deadline.

  freeport                               a free TCP port on 127.0.0.1
  mkfiles DIR N SEED [--t0-file F]       N files of 1-8 KiB in 100 dirs (deterministic)
  mkdirs DIR NDIRS                       the 100 (or NDIRS) dirs of mkfiles, empty
  watch-names ROOT NDIRS N TIMEOUT READY first appearance of N distinct names in
                                         ROOT/dNN (inotify IN_MOVED_TO|IN_CLOSE_WRITE)
  compare A B                            same names, sizes and bytes?
  lag-writer DIR RATE SECONDS FILES OUT  paced creates/overwrites, (seq, t_closed) to OUT
  lag-watch DIR TIMEOUT LASTSEQ READY OUT
                                         when each seq's content appeared on the standby
  lag-report WRITES SEEN                 p50/p99/max of appeared - closed
  wait-file PATH SIZE TIMEOUT READY      when PATH appears with SIZE bytes
  tcp-recv PORT MODE [OUT]               receive one stream; MODE discard|write (fsync)
  tcp-send PORT FILE                     send FILE with sendfile(2)
  mbedtls-speed MIB                      ChaCha20-Poly1305 of libmbedcrypto, 16 KiB records
  perf-threads PERF_DATA                 per thread: share of samples, and ÷ its cipher samples
  create-rate DIR N SIZE                 create+write+close rate of N files
  mono                                   time.monotonic() now
  rename-now SRC DST                     rename, with the monotonic time just before
  report RAWDIR OUTJSON                  replication.json and the Markdown table
"""
import ctypes
import ctypes.util
import hashlib
import json
import os
import random
import select
import socket
import struct
import sys
import time

NDIRS_DEFAULT = 100


def out(obj):
    print(json.dumps(obj), flush=True)


# ---------------------------------------------------------------- inotify via ctypes
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Inotify:
    def __init__(self):
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wd = {}

    def add(self, path, mask):
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch " + path)
        self.wd[wd] = path

    def read(self, timeout):
        """Events as (dir, mask, name); [] on timeout. At most one read per call."""
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not r:
            return []
        try:
            buf = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return []
        evs, i = [], 0
        while i + 16 <= len(buf):
            wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, i)
            name = buf[i + 16:i + 16 + ln].split(b"\0", 1)[0].decode()
            evs.append((self.wd.get(wd), mask, name))
            i += 16 + ln
        return evs


# ---------------------------------------------------------------- file trees
_POOL = random.Random(12345).randbytes(16384)


def file_content(i, rng):
    size = rng.randint(1024, 8192)
    off = rng.randint(0, 16384 - size)
    head = b"file %d\n" % i
    return head + _POOL[off + len(head):off + size]


def tree_names(n, ndirs):
    return ["d%02d/f%d" % (i % ndirs, i) for i in range(n)]


def cmd_mkdirs(root, ndirs):
    for d in range(int(ndirs)):
        os.makedirs(os.path.join(root, "d%02d" % d), exist_ok=True)
    out({"dirs": int(ndirs)})


def cmd_mkfiles(root, n, seed, *rest):
    n, ndirs = int(n), NDIRS_DEFAULT
    rng = random.Random(int(seed))
    names = tree_names(n, ndirs)
    contents = [file_content(i, rng) for i in range(n)]  # generated before the clock
    for d in range(ndirs):
        os.makedirs(os.path.join(root, "d%02d" % d), exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    t0 = time.monotonic()
    for name, data in zip(names, contents):
        fd = os.open(os.path.join(root, name), flags, 0o644)
        os.write(fd, data)
        os.close(fd)
    t1 = time.monotonic()
    out({"n": n, "bytes": sum(map(len, contents)), "t_start": t0, "t_end": t1,
         "seconds": t1 - t0, "files_per_s": n / (t1 - t0)})


def walk_sizes(root):
    res = {}
    for dp, _dn, fn in os.walk(root):
        for f in fn:
            p = os.path.join(dp, f)
            try:
                res[os.path.relpath(p, root)] = os.lstat(p).st_size
            except FileNotFoundError:
                pass
    return res


def cmd_compare(a, b):
    sa, sb = walk_sizes(a), walk_sizes(b)
    missing = [k for k in sa if k not in sb]
    extra = [k for k in sb if k not in sa]
    size_diff = [k for k in sa if k in sb and sa[k] != sb[k]]
    content_diff = []
    for k in sa:
        if k in sb and sa[k] == sb[k]:
            with open(os.path.join(a, k), "rb") as fa, open(os.path.join(b, k), "rb") as fb:
                if hashlib.blake2b(fa.read()).digest() != hashlib.blake2b(fb.read()).digest():
                    content_diff.append(k)
    out({"equal": not (missing or extra or size_diff or content_diff), "files_a": len(sa),
         "files_b": len(sb), "missing": len(missing), "extra": len(extra),
         "size_diff": len(size_diff), "content_diff": len(content_diff),
         "examples": (missing + extra + size_diff + content_diff)[:5]})


def cmd_watch_names(root, ndirs, n, timeout, ready):
    """Burst: when did the N-th distinct name become visible in ROOT/dNN?"""
    ndirs, n, deadline = int(ndirs), int(n), time.monotonic() + float(timeout)
    ino = Inotify()
    for d in range(ndirs):
        ino.add(os.path.join(root, "d%02d" % d), IN_MOVED_TO | IN_CLOSE_WRITE)
    seen = {}
    open(ready, "w").close()
    overflow, t_first = False, None
    while len(seen) < n and time.monotonic() < deadline:
        for dpath, mask, name in ino.read(deadline - time.monotonic()):
            if mask & IN_Q_OVERFLOW:
                overflow = True
                continue
            if not name.startswith("f"):  # temp names of the apply are not final names
                continue
            key = (dpath, name)
            if key not in seen:
                t = time.monotonic()
                seen[key] = t
                t_first = t_first or t
        if overflow:
            break
    method = "inotify"
    if overflow:  # fall back to polling the tree (coarser: 0.2 s steps)
        method = "poll-after-overflow"
        while time.monotonic() < deadline:
            cnt = sum(len(os.listdir(os.path.join(root, "d%02d" % d))) for d in range(ndirs))
            if cnt >= n:
                break
            time.sleep(0.2)
        t_done = time.monotonic()
    else:
        t_done = max(seen.values()) if seen else None
    out({"seen": len(seen), "complete": len(seen) >= n or method != "inotify",
         "t_first": t_first, "t_done": t_done, "method": method})


# ---------------------------------------------------------------- lag
LAG_SUBDIRS = 10


def cmd_lag_writer(root, rate, seconds, files, outp):
    rate, seconds, files = float(rate), float(seconds), int(files)
    total = int(rate * seconds)
    for d in range(LAG_SUBDIRS):
        os.makedirs(os.path.join(root, "l%d" % d), exist_ok=True)
    pad = b"x" * 1000
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    recs = []
    t0 = time.monotonic() + 0.05
    late = 0
    for seq in range(total):
        due = t0 + seq / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.005:
            late += 1
        k = seq % files
        path = os.path.join(root, "l%d" % (k % LAG_SUBDIRS), "f%d" % k)
        fd = os.open(path, flags, 0o644)
        os.write(fd, b"seq %d\n" % seq + pad)
        os.close(fd)
        recs.append((seq, time.monotonic()))
    t1 = time.monotonic()
    with open(outp, "w") as f:
        json.dump(recs, f)
    out({"writes": total, "seconds": t1 - t0, "achieved_rate": total / (t1 - t0),
         "late_over_5ms": late, "last_seq": total - 1})


def cmd_lag_watch(root, timeout, lastseq, ready, outp):
    """Records when each seq's content was first seen on the standby. Ends when the
    final version of every file has been seen (LASTSEQ's file and all others) or on the
    deadline."""
    deadline, lastseq = time.monotonic() + float(timeout), int(lastseq)
    ino = Inotify()
    mask = IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE
    for d in range(LAG_SUBDIRS):
        ino.add(os.path.join(root, "l%d" % d), mask)
    open(ready, "w").close()
    seen, overflow = {}, 0
    last_at = None
    while time.monotonic() < deadline:
        evs = ino.read(min(0.5, deadline - time.monotonic()))
        if not evs and lastseq in seen:
            break  # the last write arrived and things went quiet for 0.5 s
        for dpath, m, name in evs:
            if m & IN_Q_OVERFLOW:
                overflow += 1
                continue
            if not name.startswith("f") or dpath is None:
                continue
            t = time.monotonic()
            try:
                with open(os.path.join(dpath, name), "rb") as f:
                    head = f.read(32)
            except FileNotFoundError:
                continue
            if not head.startswith(b"seq "):
                continue
            try:
                seq = int(head[4:head.index(b"\n")])
            except ValueError:
                continue
            if seq not in seen:
                seen[seq] = t
                last_at = t
    with open(outp, "w") as f:
        json.dump(seen, f)
    out({"seen": len(seen), "overflow": overflow, "last_at": last_at})


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def cmd_lag_report(writes, seen):
    with open(writes) as f:
        w = json.load(f)
    with open(seen) as f:
        s = {int(k): v for k, v in json.load(f).items()}
    lags = sorted((s[seq] - t) * 1000.0 for seq, t in w if seq in s)
    # A write whose file was overwritten again before the standby showed it may be
    # coalesced by the sender (per-path journal): it never appears, by design.
    out({"writes": len(w), "observed": len(lags), "not_observed": len(w) - len(lags),
         "p50_ms": pct(lags, 50), "p90_ms": pct(lags, 90), "p99_ms": pct(lags, 99),
         "max_ms": lags[-1] if lags else None, "min_ms": lags[0] if lags else None})


# ---------------------------------------------------------------- large file
def cmd_wait_file(path, size, timeout, ready):
    size, deadline = int(size), time.monotonic() + float(timeout)
    d, name = os.path.split(path)
    ino = Inotify()
    ino.add(d, IN_MOVED_TO | IN_CLOSE_WRITE)
    open(ready, "w").close()
    t_done = None
    while time.monotonic() < deadline and t_done is None:
        evs = ino.read(min(0.5, deadline - time.monotonic()))
        now = time.monotonic()
        if any(n == name for _, _, n in evs) or not evs:
            try:
                if os.stat(path).st_size == size:
                    t_done = now
            except FileNotFoundError:
                pass
    out({"t_done": t_done})


def cmd_tcp_recv(port, mode, outp=None):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(port)))
    ls.listen(1)
    ls.settimeout(60)
    print("ready", file=sys.stderr, flush=True)
    c, _ = ls.accept()
    c.settimeout(120)
    buf = bytearray(1 << 20)
    mv = memoryview(buf)
    fd = os.open(outp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) if mode == "write" else -1
    total, t_first = 0, None
    while True:
        n = c.recv_into(buf)
        if n == 0:
            break
        if t_first is None:
            t_first = time.monotonic()
        total += n
        if fd >= 0:
            w = 0
            while w < n:
                w += os.write(fd, mv[w:n])
    if fd >= 0:
        os.fsync(fd)
        os.close(fd)
    t_end = time.monotonic()
    out({"bytes": total, "t_first": t_first, "t_end": t_end})


def cmd_tcp_send(port, path):
    s = None
    for _ in range(100):  # the receiver may still be binding: 5 s
        try:
            s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
            break
        except ConnectionRefusedError:
            time.sleep(0.05)
    if s is None:
        raise SystemExit("tcp-send: could not connect")
    s.settimeout(120)
    size = os.stat(path).st_size
    t0 = time.monotonic()
    with open(path, "rb") as f:
        off = s.sendfile(f, 0, size)  # os.sendfile underneath, honours the timeout
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()
    out({"bytes": off, "t_start": t0})


# ---------------------------------------------------------------- cipher
def cmd_mbedtls_speed(mib):
    lib = ctypes.CDLL("libmbedcrypto.so.7")
    ctx = ctypes.create_string_buffer(4096)  # sizeof(mbedtls_chachapoly_context) < 4 KiB
    key = ctypes.create_string_buffer(bytes(range(32)), 32)
    lib.mbedtls_chachapoly_init(ctx)
    if lib.mbedtls_chachapoly_setkey(ctx, key) != 0:
        raise SystemExit("setkey failed")
    rec = 16384  # one TLS record
    src = ctypes.create_string_buffer(os.urandom(rec), rec)
    dst = ctypes.create_string_buffer(rec)
    tag = ctypes.create_string_buffer(16)
    aad = ctypes.create_string_buffer(13)
    nonce = ctypes.create_string_buffer(12)
    fn = lib.mbedtls_chachapoly_encrypt_and_tag
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                   ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    n = int(float(mib) * 1048576) // rec
    best = 0.0
    for _rep in range(3):
        t0c, t0 = time.process_time(), time.monotonic()
        for _ in range(n):
            if fn(ctx, rec, nonce, aad, 13, src, dst, tag) != 0:
                raise SystemExit("encrypt failed")
        cpu, wall = time.process_time() - t0c, time.monotonic() - t0
        best = max(best, n * rec / cpu / 1e6 if cpu > 0 else 0)
    lib.mbedtls_chachapoly_free(ctx)
    out({"lib": "libmbedcrypto.so.7", "record_bytes": rec, "mb_per_s_cpu": best,
         "note": "best of 3, per CPU second; ctypes call overhead included (~1 us/record)"})


# ---------------------------------------------------------------- perf: threads
def cmd_perf_threads(data):
    """Per thread of a `perf record` of both nodes: its share of the samples and, for a
    thread that spends most of them in libmbedcrypto (a data stream's), its samples ÷
    its cipher samples: 1.00 would be a thread that only runs the cipher."""
    import collections
    import re
    import subprocess
    res = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "pid,dso",
                          "--stdio", "-g", "none", "--percent-limit", "0"],
                         capture_output=True, text=True, check=False).stdout
    total, cipher, comm = collections.Counter(), collections.Counter(), {}
    for line in res.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\d+):(\S+)\s+(.*)", line)
        if not m:
            continue
        pct, tid = float(m.group(1)), int(m.group(2))
        total[tid] += pct
        comm[tid] = m.group(3)
        if "mbedcrypto" in m.group(4):
            cipher[tid] += pct
    threads = []
    for tid in sorted(total, key=lambda t: -total[t]):
        if total[tid] < 0.5:
            continue
        stream = cipher[tid] > 0.5 * total[tid]
        threads.append({"tid": tid, "comm": comm[tid], "pct": round(total[tid], 2),
                        "cipher_pct": round(cipher[tid], 2),
                        "x_cipher": round(total[tid] / cipher[tid], 3) if stream else None})
    out({"perf_data": data, "threads": threads})


# ---------------------------------------------------------------- writer slowdown
def cmd_create_rate(root, n, size):
    n, size = int(n), int(size)
    os.makedirs(root, exist_ok=True)
    data = os.urandom(size)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    t0 = time.monotonic()
    for i in range(n):
        fd = os.open(os.path.join(root, "job.%d" % i), flags, 0o600)
        os.write(fd, data)
        os.close(fd)
    t1 = time.monotonic()
    out({"n": n, "seconds": t1 - t0, "files_per_s": n / (t1 - t0)})


def cmd_mono():
    out({"t": time.monotonic()})


def cmd_rename_now(src, dst):
    t = time.monotonic()
    os.rename(src, dst)
    out({"t": t})


# ---------------------------------------------------------------- report
def _load(raw, name, default=None):
    p = os.path.join(raw, name)
    if not os.path.exists(p):
        return default
    with open(p) as f:
        txt = f.read().strip()
    try:
        return json.loads(txt) if txt else default
    except ValueError:
        return default


def _median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def _div(a, b):
    return a / b if a is not None and b else None


def _stats_lines(raw):
    res = []
    p = os.path.join(raw, "stats_all.txt")
    if os.path.exists(p):
        for line in open(p):
            kv = dict(w.split("=", 1) for w in line.split() if "=" in w)
            res.append(kv)
    return res


def cmd_report(raw, outjson):
    meta = _load(raw, "meta.json", {})
    n = meta.get("files")
    big = meta.get("big_mib", 0) * 1048576
    r = {"meta": meta}

    # 1. burst
    cp = _load(raw, "cp.json", {})
    rs = _load(raw, "rsync_plain.json", {})
    rsf = _load(raw, "rsync_fsync.json", {})
    bw, bwt = _load(raw, "burst_writer.json", {}), _load(raw, "burst_watch.json", {})
    it0, iw = _load(raw, "init_t0.json", {}), _load(raw, "init_watch.json", {})
    live_s = (bwt.get("t_done") - bw.get("t_start")) if bwt.get("t_done") and bw.get("t_start") else None
    init_s = (iw.get("t_done") - it0.get("t")) if iw.get("t_done") and it0.get("t") else None
    burst = {
        "files": n,
        "hasync_live": {"seconds": live_s, "files_per_s": _div(n, live_s),
                        "writer_seconds": bw.get("seconds"), "watch": bwt,
                        "compare": _load(raw, "burst_compare.json")},
        "hasync_initial": {"seconds": init_s, "files_per_s": _div(n, init_s), "watch": iw,
                           "compare": _load(raw, "init_compare.json")},
        "cp_a": {"seconds": cp.get("cp_s"), "files_per_s": _div(n, cp.get("cp_s"))},
        "cp_a_sync": {"seconds": cp.get("cp_sync_s"), "files_per_s": _div(n, cp.get("cp_sync_s"))},
        "rsync_daemon": {"seconds": rs.get("seconds"), "files_per_s": _div(n, rs.get("seconds")),
                         "compare": _load(raw, "rsync_plain_compare.json")},
        "rsync_daemon_fsync": {"seconds": rsf.get("seconds"),
                               "files_per_s": _div(n, rsf.get("seconds")),
                               "compare": _load(raw, "rsync_fsync_compare.json")},
        "target_files_per_s": 15000,
    }
    r["burst"] = burst

    # 2. lag
    lag = {}
    for rate in ("100", "1000"):
        lag[rate] = {"report": _load(raw, "lag%s_report.json" % rate),
                     "writer": _load(raw, "lag%s_writer.json" % rate),
                     "watch": _load(raw, "lag%s_watch.json" % rate)}
    lag["floor_1000"] = {"report": _load(raw, "lagfloor_report.json"),
                         "writer": _load(raw, "lagfloor_writer.json")}
    lag["target"] = {"p50_ms": 2, "p99_ms": 20, "at_rate": 1000}
    r["lag"] = lag

    # 3. large file
    def mbps(nbytes, s):
        return nbytes / s / 1e6 if s else None
    large = {"bytes": big}
    for mode in ("discard", "write"):
        rv, sd = _load(raw, "tcp_%s_recv.json" % mode, {}), _load(raw, "tcp_%s_send.json" % mode, {})
        s = rv.get("t_end") - sd.get("t_start") if rv.get("t_end") and sd.get("t_start") else None
        large["tcp_" + mode] = {"seconds": s, "mb_per_s": mbps(rv.get("bytes"), s)}
    streams = [int(x) for x in str(meta.get("streams", "0 2")).split()]
    large["streams"] = streams
    for mode in ("tls", "plain", "plaincopy"):
        for ns in streams:
            if mode == "plaincopy" and ns == 0:
                continue  # splice = false changes nothing without data streams
            tag = "%s_s%d" % (mode, ns)
            t0, w = _load(raw, "big_%s_t0.json" % tag, {}), _load(raw, "big_%s_watch.json" % tag, {})
            s = w.get("t_done") - t0.get("t") if w.get("t_done") and t0.get("t") else None
            cpu = _load(raw, "big_%s_cpu.json" % tag, {}) or {}
            hz = cpu.get("hz") or 100
            gib = big / 1073741824 if big else None
            per_gib = {n: (cpu[n + "_ticks"] / hz / gib if gib and n + "_ticks" in cpu else None)
                       for n in ("primary", "standby")}
            large["hasync_" + tag] = {"seconds": s, "mb_per_s": mbps(big, s),
                                      "primary_cpu_s_per_gib": per_gib["primary"],
                                      "standby_cpu_s_per_gib": per_gib["standby"],
                                      "compare": _load(raw, "big_%s_compare.json" % tag)}
    large["mbedtls_chachapoly"] = _load(raw, "mbedtls.json")
    r["large"] = large

    # 4. writer slowdown
    offs = [(_load(raw, "slow_off_%d.json" % i) or {}).get("files_per_s")
            for i in range(1, meta.get("slow_reps", 3) + 1)]
    ons = [(_load(raw, "slow_on_%d.json" % i) or {}).get("files_per_s")
           for i in range(1, meta.get("slow_reps", 3) + 1)]
    moff, mon = _median(offs), _median(ons)
    r["slowdown"] = {"off_files_per_s": offs, "on_files_per_s": ons, "median_off": moff,
                     "median_on": mon, "ratio_on_off": _div(mon, moff),
                     "slowdown_pct": (1 - mon / moff) * 100 if mon and moff else None,
                     "target_pct": 20}
    # 5. memory per tracked file
    e, i = _load(raw, "rss_empty.json", {}), _load(raw, "rss_init.json", {})
    files = (i.get("tracked") or 0) - (e.get("tracked") or 0)
    mem = {"empty": e, "full": i, "files": files, "target_bytes": 200}
    for node in ("primary", "standby"):
        a, b = e.get(node + "_kib"), i.get(node + "_kib")
        mem[node + "_bytes_per_file"] = (b - a) * 1024 / files if a and b and files > 0 else None
    r["memory"] = mem
    r["node_stats"] = _stats_lines(raw)
    with open(outjson, "w") as f:
        json.dump(r, f, indent=1)

    # ---- Markdown
    def f0(x):
        return "—" if x is None else "{:,.0f}".format(x)

    def f1(x):
        return "—" if x is None else "{:,.1f}".format(x)

    def f2(x):
        return "—" if x is None else "{:.2f}".format(x)

    def met(ok):
        return "—" if ok is None else ("met" if ok else "**missed**")

    L = []
    L.append("run: %s, commit %s, %s CPUs (%s), load %s, %s, group_commit %s, %s"
             % (meta.get("date"), meta.get("commit"), meta.get("nproc"), meta.get("cpu"),
                meta.get("loadavg"), meta.get("fs"), meta.get("group_commit", "fsync"),
                "QUICK (tiny sizes)" if meta.get("quick") else "full"))
    L.append("")
    first_cut = len(L)  # --large-only: sections 1 and 2 were not run
    b = burst
    hl, hi = b["hasync_live"]["files_per_s"], b["hasync_initial"]["files_per_s"]
    rsf_r, rs_r = b["rsync_daemon_fsync"]["files_per_s"], b["rsync_daemon"]["files_per_s"]
    L.append("### Burst of %s small files (1–8 KiB, 100 dirs)" % f0(n))
    L.append("")
    L.append("| | seconds | files/s | hasync live ÷ this | §8 target |")
    L.append("| --- | ---: | ---: | ---: | --- |")
    L.append("| **hasync, live** (first write → last name visible on the standby), TLS | %s | **%s** | 1.00 | ≥ 15,000 files/s durable: %s |"
             % (f2(live_s), f0(hl), met(hl >= 15000 if hl else None)))
    L.append("| hasync, initial sync (pair start → last name visible), TLS | %s | %s | %s | ≤ 0.6 × rsync daemon's time: %s (%.2f ×) |"
             % (f2(init_s), f0(hi), f2(_div(hl, hi)),
                met(init_s <= 0.6 * rsf.get("seconds") if init_s and rsf.get("seconds") else None),
                _div(init_s, rsf.get("seconds")) or 0))
    L.append("| rsync daemon push, `--fsync` (durable) | %s | %s | %s | |"
             % (f2(rsf.get("seconds")), f0(rsf_r), f2(_div(hl, rsf_r))))
    L.append("| rsync daemon push (no fsync) | %s | %s | %s | |"
             % (f2(rs.get("seconds")), f0(rs_r), f2(_div(hl, rs_r))))
    L.append("| `cp -a` + `sync -f` (local floor, durable) | %s | %s | %s | |"
             % (f2(cp.get("cp_sync_s")), f0(b["cp_a_sync"]["files_per_s"]), f2(_div(hl, b["cp_a_sync"]["files_per_s"]))))
    L.append("| `cp -a` (no sync) | %s | %s | %s | |"
             % (f2(cp.get("cp_s")), f0(b["cp_a"]["files_per_s"]), f2(_div(hl, b["cp_a"]["files_per_s"]))))
    L.append("| the writer alone (Python, create+write+close), live run | %s | %s | | |"
             % (f2(bw.get("seconds")), f0(bw.get("files_per_s"))))
    L.append("")
    L.append("### Replication lag (write closed on the primary → new content visible on the standby)")
    L.append("")
    L.append("| rate | writes | seen | p50 ms | p90 ms | p99 ms | max ms | §8 target (at 1,000/s) |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for rate, label in (("100", "hasync, 100/s"), ("1000", "hasync, 1,000/s"),
                        ("floor_1000", "floor: same watcher on the primary's own dir, 1,000/s")):
        rep = (lag[rate] or {}).get("report") or {}
        wr = (lag[rate] or {}).get("writer") or {}
        tgt = ""
        if rate == "1000" and rep.get("p50_ms") is not None:
            tgt = "p50 ≤ 2: %s; p99 ≤ 20: %s" % (met(rep["p50_ms"] <= 2), met(rep["p99_ms"] <= 20))
        L.append("| %s (achieved %s/s) | %s | %s | %s | %s | %s | %s | %s |"
                 % (label, f0(wr.get("achieved_rate")), f0(rep.get("writes")), f0(rep.get("observed")),
                    f2(rep.get("p50_ms")), f2(rep.get("p90_ms")), f2(rep.get("p99_ms")),
                    f1(rep.get("max_ms")), tgt))
    L.append("")
    if meta.get("large_only"):
        del L[first_cut:]
    L.append("### One large file (%s MiB), renamed into the primary's spool → hash-identical on the standby" % (big // 1048576))
    L.append("")
    cph = (large["mbedtls_chachapoly"] or {}).get("mb_per_s_cpu")
    raw_tcp, cop = large["tcp_discard"]["mb_per_s"], large["tcp_write"]["mb_per_s"]
    L.append("| | MB/s | ÷ raw TCP | ÷ minimal copier | §8 target |")
    L.append("| --- | ---: | ---: | ---: | --- |")
    for ns in large["streams"]:
        tls = large["hasync_tls_s%d" % ns]["mb_per_s"]
        # DESIGN §8: 0.8 × the cipher's speed per stream; the control stream counts as one.
        k = max(ns, 1)
        L.append("| **hasync, TLS** (ChaCha20-Poly1305), data_streams = %d | **%s** | %s | %s | ≥ 0.8 × %d × cipher = %s MB/s: %s (%.2f × cipher) |"
                 % (ns, f0(tls), f2(_div(tls, raw_tcp)), f2(_div(tls, cop)), k,
                    f0(0.8 * k * cph if cph else None),
                    met(tls >= 0.8 * k * cph if tls and cph else None), _div(tls, cph) or 0))
    for ns in large["streams"]:
        pl = large["hasync_plain_s%d" % ns]["mb_per_s"]
        L.append("| **hasync, plain**, data_streams = %d | **%s** | %s | %s | ≥ 0.8 × minimal copier = %s MB/s: %s |"
                 % (ns, f0(pl), f2(_div(pl, raw_tcp)), f2(_div(pl, cop)), f0(0.8 * cop if cop else None),
                    met(pl >= 0.8 * cop if pl and cop else None)))
    for ns in large["streams"]:
        if ns == 0:
            continue
        pc = large["hasync_plaincopy_s%d" % ns]["mb_per_s"]
        pl = large["hasync_plain_s%d" % ns]["mb_per_s"]
        L.append("| hasync, plain, data_streams = %d, `splice = false` (content copied) | %s | %s | %s | spliced ÷ copied = %s |"
                 % (ns, f0(pc), f2(_div(pc, raw_tcp)), f2(_div(pc, cop)), f2(_div(pl, pc))))
    L.append("| raw TCP stream, loopback (Python, sendfile → recv_into, discarded) | %s | 1.00 | | |" % f0(raw_tcp))
    L.append("| minimal copier (same stream, written to a file + fsync) | %s | %s | 1.00 | |"
             % (f0(cop), f2(_div(cop, raw_tcp))))
    L.append("| mbedTLS 2.28 ChaCha20-Poly1305 encrypt, 16 KiB records, 1 core (libmbedcrypto via ctypes) | %s | | | |" % f0(cph))
    L.append("")
    L.append("CPU seconds per GiB moved (utime + stime of every thread of each node during the transfer;"
             " ÷ cipher: that over the cipher's own CPU seconds per GiB, the row above — a ratio the"
             " machine's load moves much less than MB/s):")
    L.append("")
    L.append("| run | primary | standby | primary ÷ cipher | standby ÷ cipher | primary ÷ plain copied (same streams) |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    cipher_s_per_gib = 1073.741824 / cph if cph else None
    for m in ("tls", "plain", "plaincopy"):
        for ns in large["streams"]:
            if m == "plaincopy" and ns == 0:
                continue
            e = large["hasync_%s_s%d" % (m, ns)]
            base = large.get("hasync_plaincopy_s%d" % ns, {}).get("primary_cpu_s_per_gib")
            L.append("| %s, data_streams = %d | %s | %s | %s | %s | %s |"
                     % ({"tls": "TLS", "plain": "plain, spliced", "plaincopy": "plain, copied"}[m], ns,
                        f2(e["primary_cpu_s_per_gib"]), f2(e["standby_cpu_s_per_gib"]),
                        f2(_div(e["primary_cpu_s_per_gib"], cipher_s_per_gib)),
                        f2(_div(e["standby_cpu_s_per_gib"], cipher_s_per_gib)),
                        f2(_div(e["primary_cpu_s_per_gib"], base)) if base else ""))
    L.append("")
    # --perf: each data stream thread's samples ÷ its cipher samples (1.00 = the cipher only).
    thread_rows = []
    for ns in large["streams"]:
        th = _load(raw, "big_tls_s%d_threads.json" % ns)
        if th:
            xs = [t["x_cipher"] for t in th["threads"] if t.get("x_cipher")]
            thread_rows.append("| TLS, data_streams = %d | %s |" % (ns, ", ".join("%.2f" % x for x in xs) or "—"))
    if thread_rows:
        L.append("Data stream threads (perf samples of the thread ÷ its samples in libmbedcrypto):")
        L.append("")
        L.append("| run | each stream thread ÷ its cipher |")
        L.append("| --- | --- |")
        L.extend(thread_rows)
        L.append("")
    second_cut = len(L)  # --large-only: sections 4 and 5 were not run
    s4 = r["slowdown"]
    L.append("### Writer slowdown on the primary (%s creates of 4 KiB, Python, medians of %d alternating runs)"
             % (f0(meta.get("slow_files")), meta.get("slow_reps", 3)))
    L.append("")
    L.append("| | files/s (runs) | median | ratio on ÷ off | §8 target |")
    L.append("| --- | --- | ---: | ---: | --- |")
    L.append("| pair off | %s | %s | 1.00 | |" % (", ".join(f0(x) for x in offs), f0(moff)))
    L.append("| pair on, replicating that spool | %s | %s | %s | slowdown ≤ 20 %%: %s (%s %%) |"
             % (", ".join(f0(x) for x in ons), f0(mon), f2(s4["ratio_on_off"]),
                met(s4["slowdown_pct"] <= 20 if s4["slowdown_pct"] is not None else None),
                f1(s4["slowdown_pct"])))
    L.append("")
    L.append("### Memory per tracked file (VmRSS of a fresh pair over the full spool minus over an empty one)")
    L.append("")
    L.append("| node | RSS empty KiB | RSS full KiB | files tracked | bytes per file | §8 target |")
    L.append("| --- | ---: | ---: | ---: | ---: | --- |")
    for node in ("primary", "standby"):
        bpf = mem[node + "_bytes_per_file"]
        L.append("| %s | %s | %s | %s | %s | %s |"
                 % (node, f0(e.get(node + "_kib")), f0(i.get(node + "_kib")), f0(files), f0(bpf),
                    ("≤ 200 bytes: " + met(bpf <= 200 if bpf is not None else None)) if node == "primary" else ""))
    L.append("")
    if meta.get("large_only"):
        del L[second_cut:]
    ok = [("burst", (burst["hasync_live"]["compare"] or {}).get("equal")),
          ("initial", (burst["hasync_initial"]["compare"] or {}).get("equal")),
          ] + [("large %s %d streams" % (m, ns),
                (large["hasync_%s_s%d" % (m, ns)]["compare"] or {}).get("equal"))
               for m in ("tls", "plain", "plaincopy") for ns in large["streams"]
               if not (m == "plaincopy" and ns == 0)]
    if meta.get("large_only"):
        ok = ok[2:]
    ran = set(str(meta.get("modes", "tls plain plaincopy")).split())
    ok = [(k, v) for k, v in ok if not k.startswith("large ") or k.split()[1] in ran]
    L.append("Content checks (standby tree byte-identical after each run): "
             + ", ".join("%s %s" % (k, "ok" if v else "FAILED") for k, v in ok))
    print("\n".join(L))


def cmd_freeport():
    # Below the ephemeral range (32768-60999): a port bind(0) handed out can be handed
    # out again to any connect() once its listener stops, and a restarted node then
    # fails with EADDRINUSE.
    rng = random.Random(os.getpid() ^ int(time.time()))
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        out({"port": port})
        return
    sys.exit("freeport: no free port in 20000-31999 after 200 attempts")


def cmd_rss(primary_pid, standby_pid, resync_line):
    """VmRSS of both nodes (KiB) and the primary's tracked-file count from its last
    resync_sent log line."""
    def rss(pid):
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None
    kv = dict(w.split("=", 1) for w in resync_line.split() if "=" in w)
    out({"primary_kib": rss(primary_pid), "standby_kib": rss(standby_pid),
         "tracked": int(kv["tracked"]) if "tracked" in kv else None})


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd, args = sys.argv[1].replace("-", "_"), sys.argv[2:]
    fn = globals().get("cmd_" + cmd)
    if fn is None:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    fn(*args)


if __name__ == "__main__":
    main()
