#!/usr/bin/env python3
"""sidebyside.py — hasync next to rsync and lsyncd on the same spool, in one run (issue 5).

Sections (each figure next to a baseline measured in the same run):
  throughput  initial sync and a 1 % change of a spoolgen.py spool, by
              hasync (TLS and plain × 1 and N data streams), an rsync daemon (--fsync)
              and lsyncd (its defaults, and delay 0): seconds until the copy is complete,
              seconds until it is durable (the tool's own work, then a syncfs of the
              standby's filesystem, timed), files/s, MB/s, bytes on the wire, whether the
              tool made it durable by itself, and a byte-for-byte check of the result.
  lag         a paced writer at each --rates value for --lag-seconds: change closed on
              the primary → new content visible on the standby, p50/p90/p99/max, for
              hasync, lsyncd (delay 0) and the floor of the method (the same watcher on
              the writer's own directory).
  slowdown    small-file create rate (C++ writer, 4 KiB files) on the primary with
              nothing watching, with a bare fanotify listener, and with the pair
              replicating, rotated over --slow-reps repetitions.
  memory      both nodes' VmRSS at rest over an empty spool and over the full one (a pair
              restarted over a spool the standby already holds; and, after the
              throughput section, the pair that did the transfers): bytes per entry.

The primary's spool lives on a loop-mounted ext4 filesystem made here, so the copies'
writes never reach the primary's fanotify mark (as on two machines). The copies go to
fresh directories on the disk under /var/tmp, one per tool: not to a loop device, where
each fsync flushes the whole backing file (rsync --fsync measured 80 files/s there, ~40×
slower than on the disk), which would distort every durable figure.
The receiving side (hasync standby, rsync daemon) runs in a network namespace
joined by a veth pair (10.215.0.1 ↔ 10.215.0.2); the veth's counters give the bytes on the
wire. Every process started here is stopped by its pid; the namespace, mounts and work
dir are removed on exit. Needs root. No timing asserts: the figures are the output.

A baseline (rsync, lsyncd) that does not deliver within its bound is a finding, not an
error: its row says which files it missed and, for a change, whether the copy still has
the source's size and mtime second (rsync's quick check then skips the file as unchanged:
an in-place change that keeps the size within the second of the last copy is invisible to
it). The run goes on with the next tool. hasync not delivering is an error. Every wait is
bounded: --timeout (600 s, 120 s with --quick) for bulk work and hasync; a baseline's 1 %
change gets its own delay plus 120 s (30 s with --quick), and lsyncd is given up on as
soon as its log shows that the rsync runs it started after the change have finished.

usage: sidebyside.py [--quick] [--small N] [--large K] [--large-mib M] [--streams N]
                     [--rates "100 1000 10000"] [--lag-seconds S] [--slow-files N]
                     [--slow-reps R] [--sections throughput,lag,slowdown,memory] [--build DIR]
                     [--perf]  (perf-record both nodes during each hasync 1 % change)
Writes BUILD/results/sidebyside.json; prints a summary.
"""
import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import spoolgen  # noqa: E402  (same directory)

NS = "hsperf-sbs"
VETH_HOST, VETH_NS = "hsp-sbs0", "hsp-sbs1"
ADDR_P, ADDR_S = "10.215.0.1", "10.215.0.2"
PORT_P, PORT_S, PORT_RSYNCD = 7311, 7312, 7313
POLL_S = 0.02
GIVE_UP_S = 3.0  # how long a baseline must stay idle, its work not arrived, to be given up on
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def mono():
    return time.monotonic()


class Lab:
    """Owns every resource the run creates; close() releases them in reverse order."""

    def __init__(self, args):
        self.args = args
        self.procs = []
        self.mounts = []
        self.netns = False
        self.work = tempfile.mkdtemp(prefix="hasync-perf-sbs.", dir="/var/tmp")

    # ---------------------------------------------------------------- processes
    def spawn(self, cmd, log_name, netns=False):
        if netns:
            cmd = ["ip", "netns", "exec", NS] + cmd
        f = open(os.path.join(self.work, log_name), "ab")
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        f.close()
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM):
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)

    # ---------------------------------------------------------------- filesystems
    def make_fs(self, name, mib):
        img, mnt = os.path.join(self.work, name + ".img"), os.path.join(self.work, name)
        if mnt in self.mounts:
            run(["umount", mnt])
            self.mounts.remove(mnt)
        os.makedirs(mnt, exist_ok=True)
        if os.path.exists(img):
            os.unlink(img)
        with open(img, "wb") as f:
            f.truncate(mib << 20)
        # Inode tables and journal written now, not by a background thread mid-run.
        # One inode per 4 KiB: a spool is mostly small files and directories (ext4's default
        # of one per 16 KiB runs out of inodes before it runs out of blocks here).
        run(["mkfs.ext4", "-q", "-F", "-i", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0",
             img])
        run(["mount", "-o", "loop", img, mnt])
        self.mounts.append(mnt)
        return mnt

    def fresh_dir(self, name):
        """A directory for one tool's copy on the disk under /var/tmp. chattr +T makes ext4
        put its subdirectories in fresh block groups: on a disk where many files were
        deleted lately, allocating inodes next to deleted ones costs ~40× more
        (docs/PERFORMANCE.md, Replication). Nothing is deleted until the run ends."""
        d = os.path.join(self.work, name)
        os.makedirs(d)
        if subprocess.run(["chattr", "+T", d], stderr=subprocess.DEVNULL).returncode != 0:
            log("chattr +T failed on %s" % d)
        return d

    def syncfs(self, path):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            t0 = mono()
            if _libc.syncfs(fd) != 0:
                raise OSError(ctypes.get_errno(), "syncfs " + path)
            return mono() - t0
        finally:
            os.close(fd)

    # ---------------------------------------------------------------- network
    def make_net(self):
        subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "del", VETH_HOST], stderr=subprocess.DEVNULL)
        run(["ip", "netns", "add", NS])
        self.netns = True
        run(["ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS])
        run(["ip", "link", "set", VETH_NS, "netns", NS])
        run(["ip", "addr", "add", ADDR_P + "/30", "dev", VETH_HOST])
        run(["ip", "link", "set", VETH_HOST, "up"])
        for c in (["ip", "addr", "add", ADDR_S + "/30", "dev", VETH_NS],
                  ["ip", "link", "set", VETH_NS, "up"], ["ip", "link", "set", "lo", "up"]):
            run(["ip", "netns", "exec", NS] + c)

    def wire(self):
        """(bytes, TCP payload bytes) through the veth so far, both directions. Each
        counted frame (one skb: with segmentation offload, up to 64 KiB of payload) carries
        one Ethernet + IPv4 + TCP-with-timestamps header, 14 + 20 + 32 = 66 bytes; the
        connections here carry nothing but TCP."""
        base = "/sys/class/net/%s/statistics/" % VETH_HOST
        get = lambda k: int(open(base + k).read())  # noqa: E731
        nbytes = get("rx_bytes") + get("tx_bytes")
        return nbytes, nbytes - 66 * (get("rx_packets") + get("tx_packets"))

    def close(self):
        log("cleaning up %s" % self.work)
        for p in reversed(self.procs):
            try:
                self.stop(p)
            except Exception as e:  # keep releasing the rest
                log("could not stop pid %d: %s" % (p.pid, e))
        for m in reversed(self.mounts):
            subprocess.run(["umount", m], stderr=subprocess.DEVNULL)
        if self.netns:
            subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)
            subprocess.run(["ip", "link", "del", VETH_HOST], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.work, ignore_errors=True)


# -------------------------------------------------------------------- completion checks
class TreeArrival:
    """Polls until every (path, size) of a list exists with that size under root. Each poll
    resumes at the first file not yet seen, so the cost of a poll is what arrived since."""

    def __init__(self, root, files):
        self.root, self.files, self.i = root, files, 0

    def done(self):
        while self.i < len(self.files):
            rel, size = self.files[self.i]
            try:
                if os.stat(os.path.join(self.root, rel)).st_size != size:
                    return False
            except FileNotFoundError:
                return False
            self.i += 1
        return True

    def missing(self):
        """(path, why) of every file not (yet) on the copy with its size."""
        out = []
        for rel, size in self.files[self.i:]:
            try:
                got = os.stat(os.path.join(self.root, rel)).st_size
                if got != size:
                    out.append((rel, "%d bytes of %d" % (got, size)))
            except FileNotFoundError:
                out.append((rel, "absent"))
        return out


class ChangeArrival:
    """Polls until the copy at root holds every changed range of a spoolgen `change`."""

    def __init__(self, root, changes):
        self.root, self.pending = root, list(changes)

    def done(self):
        self.pending = [c for c in self.pending if not spoolgen.holds(self.root, c)]
        return not self.pending

    def missing(self, src):
        """(path, why) of every change the copy lacks. "same size and mtime second" is the
        case rsync's quick check (size + whole-second mtime, --modify-window 0) cannot see."""
        out = []
        for c in self.pending:
            try:
                a, b = os.stat(os.path.join(src, c["path"])), os.stat(os.path.join(self.root, c["path"]))
            except FileNotFoundError:
                out.append((c["path"], "absent"))
                continue
            if a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime):
                out.append((c["path"], "same size and mtime second"))
            else:
                out.append((c["path"], "old content (size %d vs %d, mtime %+.3f s)"
                            % (b.st_size, a.st_size, b.st_mtime - a.st_mtime)))
        return out


def wait_until(cond, timeout, give_up=None):
    """The time cond() first held, or None once `timeout` seconds have passed or
    give_up() has held (the tool has said it is done) for GIVE_UP_S in a row."""
    deadline = mono() + timeout
    idle_since = None
    while mono() < deadline:
        if cond():
            return mono()
        if give_up is not None:
            if not give_up():
                idle_since = None
            elif idle_since is None:
                idle_since = mono()
            elif mono() - idle_since >= GIVE_UP_S:
                return None
        time.sleep(POLL_S)
    return None


def wait_for(cond, timeout, what):
    t = wait_until(cond, timeout)
    if t is None:
        raise RuntimeError("%s: not done within %d s" % (what, timeout))
    return t


def list_files(root):
    res = []
    for dp, _dn, fn in os.walk(root):
        for f in sorted(fn):
            p = os.path.join(dp, f)
            res.append((os.path.relpath(p, root), os.lstat(p).st_size))
    return res


def compare(a, b):
    r = subprocess.run([sys.executable, os.path.join(HERE, "replication_helper.py"), "compare", a, b],
                       check=True, capture_output=True, text=True)
    return json.loads(r.stdout)


# -------------------------------------------------------------------- the tools
class Hasync:
    """A primary (host side) and a standby (in the namespace) on the two filesystems."""

    def __init__(self, lab, binary, mode, streams, splice=True):
        self.lab, self.bin, self.mode, self.streams, self.splice = lab, binary, mode, streams, splice
        self.name = "hasync %s, %d data stream%s" % (mode, streams, "" if streams == 1 else "s")
        self.durable = True
        self.p = self.s = None

    def config(self, node, spool, state):
        peer = "standby" if node == "primary" else "primary"
        listen = "%s:%d" % ((ADDR_P, PORT_P) if node == "primary" else (ADDR_S, PORT_S))
        address = "%s:%d" % ((ADDR_S, PORT_S) if node == "primary" else (ADDR_P, PORT_P))
        path = os.path.join(self.lab.work, node + ".toml")
        with open(path, "w") as f:
            f.write('[node]\nname = "%s"\nlisten = "%s"\n[peer]\nname = "%s"\naddress = "%s"\n'
                    '[sync]\nroots = ["%s"]\nstate_dir = "%s"\nkey_file = "%s"\n'
                    '[transport]\nmode = "%s"\ndata_streams = %d\nsplice = %s\n'
                    '[metrics]\nenabled = false\n'
                    % (node, listen, peer, address, spool, state,
                       os.path.join(self.lab.work, "sync.key"), self.mode, self.streams,
                       "true" if self.splice else "false"))
        return path

    def start(self, src, dst):
        w = self.lab.work
        key = os.path.join(w, "sync.key")
        if not os.path.exists(key):
            run([self.bin, "keygen", key], stdout=subprocess.DEVNULL)
        self.pstate = os.path.join(w, "pstate")
        sstate = os.path.join(os.path.dirname(dst), "state")
        shutil.rmtree(self.pstate, ignore_errors=True)
        shutil.rmtree(sstate, ignore_errors=True)
        os.makedirs(self.pstate)
        os.makedirs(sstate)
        os.makedirs(dst, exist_ok=True)
        pc, sc = self.config("primary", src, self.pstate), self.config("standby", dst, sstate)
        self.s = self.lab.spawn([self.bin, "run", "-c", sc, "--initial-role", "standby"],
                                "standby.log", netns=True)
        self.p = self.lab.spawn([self.bin, "run", "-c", pc, "--initial-role", "primary"],
                                "primary.log")

    def status(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.settimeout(1.0)
                c.connect(os.path.join(self.pstate, "control.sock"))
                c.sendall(b"status\n")
                buf = b""
                while len(buf) < (1 << 20):
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
            return json.loads(buf)
        except (OSError, ValueError):
            return {}

    def all_acked(self):
        """The primary is live and the standby has acknowledged (made durable) everything."""
        st = self.status()
        lag = st.get("lag", {})
        return (st.get("session") == "live" and lag.get("changes_unacked") == 0
                and lag.get("batches_unacked") == 0 and lag.get("journal_pending") == 0)

    def settle(self, after, timeout):
        """First moment at or after `after` at which everything is acknowledged."""
        t = wait_for(self.all_acked, timeout, self.name + " acknowledgements")
        return max(t, after)

    def tag(self):
        return "%s_%d" % (self.mode, self.streams)

    def stop(self):
        self.lab.stop(self.p)
        self.lab.stop(self.s)
        self.p = self.s = None


class Profile:
    """perf record (call graphs, 499 Hz) of some pids until stop(); the top of the report
    goes to RESULTS/perf_<tag>.txt."""

    def __init__(self, lab, pids, tag):
        self.lab, self.tag = lab, tag
        self.data = os.path.join(lab.work, tag + ".perf.data")
        self.proc = lab.spawn(["perf", "record", "-F", "499", "-g", "-o", self.data, "-p",
                               ",".join(str(p) for p in pids)], "perf.log")
        time.sleep(0.5)

    def stop(self, results_dir):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        flat = subprocess.run(["perf", "report", "-i", self.data, "--no-children", "--sort",
                               "pid,dso,symbol", "--percent-limit", "1", "--stdio", "-g", "none"],
                              capture_output=True, text=True).stdout
        # Who calls the symbols above 5 %: caller chains, folded.
        chains = subprocess.run(["perf", "report", "-i", self.data, "--no-children", "--sort",
                                 "pid,symbol", "--percent-limit", "5", "--stdio", "-g",
                                 "caller,2,callee,function,percent"],
                                capture_output=True, text=True).stdout
        with open(os.path.join(results_dir, "perf_%s.txt" % self.tag), "w") as f:
            for text in (flat, chains):
                f.write("\n".join(ln for ln in text.splitlines() if ln.strip() and
                                   not ln.startswith("#"))[:40000] + "\n\n")


class RsyncDaemon:
    """rsync --daemon in the namespace; `push` runs one client transfer (rsync -a --fsync)."""

    def __init__(self, lab):
        self.lab, self.proc = lab, None

    def start(self, dst):
        conf = os.path.join(self.lab.work, "rsyncd.conf")
        with open(conf, "w") as f:
            f.write("use chroot = no\n[dst]\npath = %s\nread only = no\nuid = root\ngid = root\n" % dst)
        self.proc = self.lab.spawn(["rsync", "--daemon", "--no-detach", "--address=" + ADDR_S,
                                    "--port=%d" % PORT_RSYNCD, "--config=" + conf,
                                    "--log-file=" + os.path.join(self.lab.work, "rsyncd.log")],
                                   "rsyncd.out", netns=True)
        url = "rsync://%s:%d/" % (ADDR_S, PORT_RSYNCD)
        wait_for(lambda: subprocess.run(["rsync", url], capture_output=True).returncode == 0,
                 20, "rsync daemon start")

    def url(self):
        return "rsync://%s:%d/dst/" % (ADDR_S, PORT_RSYNCD)

    def stop(self):
        self.lab.stop(self.proc)
        self.proc = None


class RsyncPush:
    name = "rsync daemon, --fsync"
    durable = True

    def __init__(self, lab, daemon):
        self.lab, self.daemon = lab, daemon

    def start(self, src, dst):
        self.daemon.start(dst)
        self.src = src

    def push(self):
        run(["rsync", "-a", "--fsync", self.src + "/", self.daemon.url()],
            stdout=subprocess.DEVNULL)

    def stop(self):
        self.daemon.stop()


class Lsyncd:
    """lsyncd (default.rsync) into the rsync daemon; delay None = lsyncd's default (15 s)."""
    durable = False

    def __init__(self, lab, daemon, delay):
        self.lab, self.daemon, self.delay = lab, daemon, delay
        self.name = "lsyncd, defaults" if delay is None else "lsyncd, delay %d" % delay
        self.proc = None

    def start(self, src, dst):
        self.daemon.start(dst)
        conf = os.path.join(self.lab.work, "lsyncd.lua")
        delay = "" if self.delay is None else "    delay = %d,\n" % self.delay
        with open(conf, "w") as f:
            f.write('settings {\n    logfile = "%s",\n    nodaemon = true,\n}\n'
                    'sync {\n    default.rsync,\n    source = "%s",\n    target = "%s",\n%s}\n'
                    % (os.path.join(self.lab.work, "lsyncd.log"), src, self.daemon.url(), delay))
        self.proc = self.lab.spawn(["lsyncd", conf], "lsyncd.out")

    def log_mark(self):
        try:
            return os.path.getsize(os.path.join(self.lab.work, "lsyncd.log"))
        except FileNotFoundError:
            return 0

    def idle_after(self, mark):
        """A give_up for wait_until: lsyncd has started an rsync since `mark` (a log offset)
        and every one it started has finished, so it has shipped all it is going to."""
        def idle():
            try:
                with open(os.path.join(self.lab.work, "lsyncd.log"), errors="replace") as f:
                    f.seek(mark)
                    text = f.read()
            except FileNotFoundError:
                return False
            calls = text.count("Calling rsync")
            return calls >= 1 and text.count("Finished") >= calls
        return idle

    def stop(self):
        self.lab.stop(self.proc)
        self.proc = None
        self.daemon.stop()


# -------------------------------------------------------------------- sections
def throughput(lab, a, binary, src, spool_files, spool_bytes):
    daemon = RsyncDaemon(lab)
    tools = [RsyncPush(lab, daemon), Lsyncd(lab, daemon, None), Lsyncd(lab, daemon, 0),
             Hasync(lab, binary, "plain", 1), Hasync(lab, binary, "plain", a.streams),
             Hasync(lab, binary, "tls", 1), Hasync(lab, binary, "tls", a.streams)]
    rows = []
    keep = None
    for idx, tool in enumerate(tools):
        last = idx == len(tools) - 1
        log("throughput: %s" % tool.name)
        sfs = lab.fresh_dir("standby.%d" % idx)
        dst = os.path.join(sfs, "spool")
        os.makedirs(dst)
        row = {"tool": tool.name, "durable_by_itself": tool.durable}
        baseline = not isinstance(tool, Hasync)
        changed = False  # whether the change was made (and must be undone)
        for phase in ("initial", "change"):
            changes = None
            w0 = lab.wire()  # a live tool ships while the change is being made
            prof = None
            if a.perf and isinstance(tool, Hasync) and phase == "change":
                prof = Profile(lab, [tool.p.pid, tool.s.pid], "change_" + tool.tag())
            if phase == "change":
                r = subprocess.run([sys.executable, os.path.join(HERE, "spoolgen.py"), "change", src,
                                    "--seed", str(a.seed), "--small", str(a.small), "--large",
                                    str(a.large), "--undo", os.path.join(lab.work, "undo")],
                                   check=True, capture_output=True, text=True)
                changes = json.loads(r.stdout)
                changed = True
                arrival = ChangeArrival(dst, changes["changes"])
                nbytes, nfiles = changes["changed_bytes"], changes["changed_files"]
            else:
                arrival = TreeArrival(dst, spool_files)
                nbytes, nfiles = spool_bytes, len(spool_files)
            t0 = mono()  # the change is complete on the primary (or the tool starts)
            mark = tool.log_mark() if isinstance(tool, Lsyncd) else None
            if phase == "initial":
                tool.start(src, dst)
            if isinstance(tool, RsyncPush):
                tool.push()
            if baseline:
                bound, give_up = baseline_bound(a, tool, phase)
                if phase == "change" and isinstance(tool, Lsyncd):
                    give_up = tool.idle_after(mark)
                t_copy = wait_until(arrival.done, bound, give_up)
                if t_copy is None:
                    missing = (arrival.missing(src) if phase == "change" else arrival.missing())
                    row[phase] = missed(tool, phase, missing, nfiles, mono() - t0, bound)
                    if prof:
                        prof.stop(a.results_dir)
                    break  # after a missed initial copy a change means nothing
            else:
                t_copy = wait_for(arrival.done, a.timeout, tool.name + " " + phase)
            t_tool = tool.settle(t_copy, a.timeout) if isinstance(tool, Hasync) else t_copy
            if prof:
                prof.stop(a.results_dir)
            sync_s = lab.syncfs(sfs)
            w1 = lab.wire()
            wire, payload = w1[0] - w0[0], w1[1] - w0[1]
            secs, dur = t_copy - t0, t_tool - t0 + sync_s
            row[phase] = {"seconds": secs, "durable_seconds": dur, "syncfs_after_s": sync_s,
                          "files": nfiles, "bytes": nbytes, "files_per_s": nfiles / dur,
                          "mb_per_s": nbytes / dur / 1e6, "wire_bytes": wire,
                          "payload_bytes": payload,
                          "wire_over_bytes": wire / nbytes if nbytes else None,
                          "payload_over_bytes": payload / nbytes if nbytes else None}
            log("  %s: %.2f s (durable %.2f s), wire %.1f MB" % (phase, secs, dur, wire / 1e6))
        if isinstance(tool, Hasync):  # let the last acknowledgements and beats settle
            time.sleep(0.5)
        cmp = compare(src, dst)
        row["identical"] = cmp["equal"]
        if not cmp["equal"]:
            log("  copy differs: %s" % json.dumps(cmp))
        if changed:
            run([sys.executable, os.path.join(HERE, "spoolgen.py"), "undo", os.path.join(lab.work, "undo")],
                stdout=subprocess.DEVNULL)
        rows.append(row)
        if last and isinstance(tool, Hasync):
            keep = (tool, sfs, dst)  # the pair stays up for the lag and slowdown sections
        else:
            tool.stop()
    return rows, keep


def baseline_bound(a, tool, phase):
    """(seconds, give_up) for a baseline's phase: bulk work gets --timeout; rsync's push has
    already returned, so its copy is there or never will be; lsyncd gets its delay (15 s by
    default) and the grace."""
    if isinstance(tool, RsyncPush):
        return 5.0, None
    if phase == "initial":
        return a.timeout, None
    return (15 if tool.delay is None else tool.delay) + a.baseline_grace, None


def missed(tool, phase, missing, nfiles, waited, bound):
    """A finding: the row of a baseline whose copy never completed."""
    quick = sum(1 for _p, why in missing if why == "same size and mtime second")
    rep = {"missed": True, "files": nfiles, "missing_files": len(missing),
           "quick_check_invisible": quick, "waited_s": waited, "bound_s": bound,
           "examples": ["%s: %s" % m for m in missing[:5]]}
    log("  %s: FINDING: %d of %d files not delivered after %.1f s (bound %.0f s)%s; e.g. %s"
        % (phase, len(missing), nfiles, waited, bound,
           ", %d with the source's size and mtime second, which rsync's quick check skips"
           % quick if quick else "", "; ".join(rep["examples"][:3])))
    return rep


def differences(a, b):
    """Relative names whose presence, size or bytes differ between a and b."""
    fa, fb = dict(list_files(a)), dict(list_files(b))
    out = []
    for rel in sorted(set(fa) | set(fb)):
        if fa.get(rel) != fb.get(rel):
            out.append("%s: %s vs %s bytes" % (rel, fa.get(rel), fb.get(rel)))
            continue
        with open(os.path.join(a, rel), "rb") as x, open(os.path.join(b, rel), "rb") as y:
            if x.read() != y.read():
                out.append("%s: same size, other bytes" % rel)
    return out


def same_files(a, b):
    """Same relative names and bytes under a and b (small trees only: the lag runs)."""
    fa, fb = dict(list_files(a)), dict(list_files(b))
    if fa != fb:
        return False
    for rel in fa:
        with open(os.path.join(a, rel), "rb") as x, open(os.path.join(b, rel), "rb") as y:
            if x.read() != y.read():
                return False
    return True


def helper(*args):
    return [sys.executable, os.path.join(HERE, "replication_helper.py")] + [str(x) for x in args]


def lag_tool(lab, kind, *args):
    """The paced writer or the watcher: lag_helper.cpp (built once per run), which paces
    10,000 writes/s where replication_helper.py's Python tops out near 2,500 on 2 CPUs."""
    exe = os.path.join(lab.work, "lag_helper")
    if not os.path.exists(exe):
        run(["g++", "-std=c++20", "-O2", os.path.join(HERE, "lag_helper.cpp"), "-o", exe])
    return [exe, kind] + [str(x) for x in args]


def lag_run(lab, a, rate, src_dir, dst_dir, tag):
    """One paced-writer run into src_dir, watched at dst_dir. Returns the lag report."""
    for i in range(10):
        os.makedirs(os.path.join(src_dir, "l%d" % i), exist_ok=True)
    wait_for(lambda: all(os.path.isdir(os.path.join(dst_dir, "l%d" % i)) for i in range(10)),
             60, tag + " dirs on the copy")
    total = int(rate * a.lag_seconds)
    ready, seen = [os.path.join(lab.work, tag + x) for x in (".ready", ".seen.json")]
    writes = os.path.join(lab.work, tag + ".writes.json")
    watch = subprocess.Popen(lag_tool(lab, "watch", dst_dir, a.lag_seconds + 30, total - 1, ready, seen),
                             stdout=subprocess.PIPE, text=True)
    lab.procs.append(watch)
    wait_for(lambda: os.path.exists(ready), 20, tag + " watcher ready")
    wr = json.loads(subprocess.run(lag_tool(lab, "writer", src_dir, rate, a.lag_seconds, 500, writes),
                                   check=True, capture_output=True, text=True).stdout)
    watch.wait(timeout=a.lag_seconds + 60)
    rep = json.loads(subprocess.run(helper("lag-report", writes, seen), check=True,
                                    capture_output=True, text=True).stdout)
    with open(writes) as fw, open(seen) as fs:
        w = dict((int(s), t) for s, t in json.load(fw))
        lags = sorted((t - w[int(s)]) * 1000.0 for s, t in json.load(fs).items() if int(s) in w)
    # The last version of every file must reach the copy: a tool that loses one shows here.
    t_end = mono()
    same = lambda: same_files(src_dir, dst_dir)  # noqa: E731
    try:
        final = wait_for(same, 20, tag + " final contents") - t_end
    except RuntimeError:
        final = None
    rep.update({"rate": rate, "achieved_rate": wr["achieved_rate"], "lags_ms": lags,
                "final_identical_after_s": final})
    if final is None:
        diff = differences(src_dir, dst_dir)
        rep["final_differences"], rep["final_differing_files"] = diff[:5], len(diff)
        log("  %s: the copy still differs from the source 20 s after the last write, e.g. %s"
            % (tag, rep["final_differences"]))
    log("  %s at %d/s: p50 %.2f ms, p99 %.2f ms (%d of %d seen)"
        % (tag, rate, rep["p50_ms"] or -1, rep["p99_ms"] or -1, rep["observed"], rep["writes"]))
    return rep


def lag(lab, a, keep):
    """hasync (the pair of `keep`, live) and the method's floor at each rate."""
    res = {"hasync": [], "floor": []}
    _tool, _sfs, dst = keep
    src = os.path.join(a.pfs, "spool")
    for rate in a.rates:
        log("lag: hasync at %d/s" % rate)
        res["hasync"].append(lag_run(lab, a, rate, os.path.join(src, "lag%d" % rate),
                                     os.path.join(dst, "lag%d" % rate), "hasync%d" % rate))
    for rate in a.rates:
        log("lag: floor (watcher on the writer's own dir) at %d/s" % rate)
        d = os.path.join(a.pfs, "floor", "r%d" % rate)
        res["floor"].append(lag_run(lab, a, rate, d, d, "floor%d" % rate))
    return res


def lag_lsyncd(lab, a, sfs):
    """lsyncd (delay 0) from a directory of its own on the primary's filesystem to one on
    the standby's (watching the whole spool would only lengthen its start-up)."""
    res = []
    daemon = RsyncDaemon(lab)
    ls = Lsyncd(lab, daemon, 0)
    src = os.path.join(a.pfs, "lsyncd_lag")
    dst = os.path.join(sfs, "lsyncd_lag")
    for rate in a.rates:
        for i in range(10):
            os.makedirs(os.path.join(src, "lag%d" % rate, "l%d" % i), exist_ok=True)
    os.makedirs(dst)
    ls.start(src, dst)
    try:
        for rate in a.rates:
            log("lag: lsyncd delay 0 at %d/s" % rate)
            res.append(lag_run(lab, a, rate, os.path.join(src, "lag%d" % rate),
                               os.path.join(dst, "lag%d" % rate), "lsyncd%d" % rate))
    finally:
        ls.stop()
    return res


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def tracked(log_path):
    """The primary's tracked-entry count from its last resync_sent line."""
    last = None
    with open(log_path, errors="replace") as f:
        for line in f:
            if "event=resync_sent" in line:
                last = line
    kv = dict(w.split("=", 1) for w in (last or "").split() if "=" in w)
    return int(kv["tracked"]) if "tracked" in kv else None


def memory_at_rest(lab, tool, quiet_s=13.0, bound_s=40.0):
    """Both nodes' VmRSS once everything is acknowledged and the heap has been trimmed.
    A node gives a burst's freed heap back once its RSS has not grown for 10 s, checked
    every 2 s (engine/node/heap_trim.h): read once neither RSS has risen by 1 MiB for
    quiet_s (so a trim that was due has happened), or after bound_s."""
    wait_for(tool.all_acked, 120, "pair at rest")
    pids = (tool.p.pid, tool.s.pid)
    last = [rss_kib(p) for p in pids]
    t0 = flat_since = mono()
    while mono() - flat_since < quiet_s and mono() - t0 < bound_s:
        time.sleep(1.0)
        now = [rss_kib(p) for p in pids]
        if any(n >= l + 1024 for n, l in zip(now, last)):
            flat_since = mono()
        last = now
    return {"primary_kib": rss_kib(tool.p.pid), "standby_kib": rss_kib(tool.s.pid),
            "tracked": tracked(os.path.join(lab.work, "primary.log")),
            "waited_s": round(mono() - t0, 1)}


def memory_empty(lab, a, binary):
    """A fresh pair (TLS, N data streams) over an empty spool: the base the per-file
    figure is taken over."""
    tool = Hasync(lab, binary, "tls", a.streams)
    src = os.path.join(a.pfs, "empty")
    dst = lab.fresh_dir("standby.empty")
    os.makedirs(src)
    tool.start(src, os.path.join(dst, "spool"))
    try:
        return memory_at_rest(lab, tool)
    finally:
        tool.stop()


def build_writer(lab):
    out = os.path.join(lab.work, "fanotify_cost_helper")
    srcs = [os.path.join(HERE, "fanotify_cost_helper.cpp")]
    for d in ("engine/watch", "engine/watch/internal"):
        full = os.path.join(REPO, d)
        srcs += [os.path.join(full, f) for f in sorted(os.listdir(full)) if f.endswith(".cpp")]
    run(["g++", "-std=c++20", "-O2", "-D_GNU_SOURCE", "-I" + REPO] + srcs + ["-o", out])
    return out


def slowdown(lab, a, keep, writer):
    tool, sfs, dst = keep
    spool = os.path.join(a.pfs, "spool")
    reps = []
    for r in range(a.slow_reps):
        order = ["hasync", "none", "bare"] if r % 2 == 0 else ["none", "bare", "hasync"]
        rates = {}
        for cond in order:
            if cond == "hasync" and tool.p is None:
                tool.start(spool, dst)
                wait_for(tool.all_acked, a.timeout, "pair restart")
            if cond != "hasync" and tool.p is not None:
                tool.stop()
            listener = None
            if cond == "bare":
                listener = lab.spawn([writer, "bare", spool], "bare.log")
                wait_for(lambda: b"ready" in open(os.path.join(lab.work, "bare.log"), "rb").read(),
                         10, "bare listener")
            # Only the "hasync" runs write into the spool: files written there while the
            # pair is stopped would make its next start a resync of them.
            d = os.path.join(spool if cond == "hasync" else os.path.join(a.pfs, "unwatched"),
                             "slow", "%s_%d" % (cond, r))
            os.makedirs(d)
            w = subprocess.run([writer, "writer", d, str(a.slow_files)], capture_output=True, text=True)
            if w.returncode != 0:
                raise RuntimeError("the writer failed in %s: %s" % (d, w.stderr.strip()))
            rates[cond] = float(w.stdout.split()[0])
            if listener:
                lab.stop(listener)
            if cond == "hasync":
                wait_for(tool.all_acked, a.timeout, "standby catching up with the writer")
            log("slowdown rep %d, %s: %.0f files/s" % (r, cond, rates[cond]))
        reps.append(rates)
    if tool.p is not None:
        tool.stop()
    return reps


def findings(res):
    """One sentence per baseline that missed what it was to deliver."""
    out = []
    for row in res.get("throughput", []):
        for phase in ("initial", "change"):
            m = row.get(phase, {})
            if m.get("missed"):
                out.append("%s, %s: %d of %d files not delivered within %.0f s%s" % (
                    row["tool"], "initial sync" if phase == "initial" else "1 % change",
                    m["missing_files"], m["files"], m["waited_s"],
                    " (%d kept the source's size and mtime second: rsync's quick check does "
                    "not see such a change)" % m["quick_check_invisible"]
                    if m["quick_check_invisible"] else ""))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="CI-sized: keeps the scripts working")
    p.add_argument("--small", type=int)
    p.add_argument("--large", type=int)
    p.add_argument("--large-mib", type=int)
    p.add_argument("--streams", type=int, default=os.cpu_count() or 2,
                   help="N of 'N data streams' (default: the number of CPUs)")
    p.add_argument("--rates", default=None, help='lag writer rates, e.g. "100 1000 10000"')
    p.add_argument("--lag-seconds", type=float)
    p.add_argument("--slow-files", type=int)
    p.add_argument("--slow-reps", type=int)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=int, default=None,
                   help="bound on any one wait of bulk work or hasync, seconds (600; 120 with --quick)")
    p.add_argument("--baseline-grace", type=int, default=None,
                   help="what a baseline gets beyond its own delay for the 1 %% change (120; 30 with --quick)")
    p.add_argument("--sections", default="throughput,lag,slowdown,memory")
    p.add_argument("--build", default=os.path.join(REPO, "build-perf"))
    p.add_argument("--perf", action="store_true",
                   help="perf-record both hasync nodes during each 1 %% change")
    a = p.parse_args()
    q = a.quick
    a.small = a.small if a.small is not None else (2000 if q else 50_000)
    a.large = a.large if a.large is not None else (2 if q else 20)
    a.large_mib = a.large_mib if a.large_mib is not None else (8 if q else 64)
    a.rates = [int(x) for x in (a.rates or ("100 1000" if q else "100 1000 10000")).split()]
    a.lag_seconds = a.lag_seconds if a.lag_seconds is not None else (1.0 if q else 4.0)
    a.slow_files = a.slow_files if a.slow_files is not None else (2000 if q else 20_000)
    a.slow_reps = a.slow_reps if a.slow_reps is not None else (1 if q else 3)
    a.timeout = a.timeout if a.timeout is not None else (120 if q else 600)
    a.baseline_grace = a.baseline_grace if a.baseline_grace is not None else (30 if q else 120)
    sections = set(a.sections.split(","))
    spool_mib = (a.small * 6 * 1024 + a.large * a.large_mib * (1 << 20)) >> 20
    # room for the spool, a temp copy of its largest file, the growth of the change, the
    # lag and slowdown files, and ext4's own metadata
    a.fs_mib = max(512, int(spool_mib * 1.4) + 2 * a.large_mib + 512)
    if os.geteuid() != 0:
        sys.exit("sidebyside.py: run as root (fanotify, loop mounts and network namespaces need it)")
    for tool in ("rsync", "lsyncd", "mkfs.ext4", "ip", "g++"):
        if shutil.which(tool) is None:
            sys.exit("sidebyside.py: %s is missing; run ./scripts/install-deps.sh" % tool)

    t_start = mono()
    log("building hasync in %s" % a.build)
    run(["cmake", "-S", REPO, "-B", a.build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
        stdout=subprocess.DEVNULL)
    run(["ninja", "-C", a.build, "hasync"], stdout=subprocess.DEVNULL)
    binary = os.path.join(a.build, "app", "hasync")
    results_dir = a.results_dir = os.path.join(a.build, "results")
    os.makedirs(results_dir, exist_ok=True)

    lab = Lab(a)
    res = {"command": "scripts/perf/sidebyside.py" + "".join(" " + x for x in sys.argv[1:]),
           "quick": q, "spool": {}, "streams": a.streams}
    old_handlers = {s: signal.signal(s, lambda *_: sys.exit(130)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        lab.make_net()
        pfs = a.pfs = lab.make_fs("primary", a.fs_mib)
        src = os.path.join(pfs, "spool")
        os.makedirs(src)
        log("spool: %d small files, %d × %d MiB" % (a.small, a.large, a.large_mib))
        gen = json.loads(subprocess.run([sys.executable, os.path.join(HERE, "spoolgen.py"), "create", src,
                                         "--seed", str(a.seed), "--small", str(a.small), "--large",
                                         str(a.large), "--large-mib", str(a.large_mib)],
                                        check=True, capture_output=True, text=True).stdout)
        lab.syncfs(pfs)
        spool_files = list_files(src)
        res["spool"] = gen
        keep = None
        if "memory" in sections:
            res["memory"] = {"empty": memory_empty(lab, a, binary)}
        if "throughput" in sections:
            res["throughput"], keep = throughput(lab, a, binary, src, spool_files, gen["bytes"])
            if "memory" in sections:
                res["memory"]["after_run"] = memory_at_rest(lab, keep[0])
        if keep is None and ({"lag", "slowdown", "memory"} & sections):
            tool = Hasync(lab, binary, "tls", a.streams)
            sfs = lab.fresh_dir("standby")
            dst = os.path.join(sfs, "spool")
            tool.start(src, dst)
            wait_for(tool.all_acked, a.timeout, "initial sync")
            wait_for(TreeArrival(dst, spool_files).done, a.timeout, "initial copy")
            keep = (tool, sfs, dst)
        if "memory" in sections:
            # A primary started over the full spool that the standby already holds: the
            # resync compares, sends nothing, and what stays is the model plus fixed costs
            # (a long-running primary also keeps some residue of its transfer buffers,
            # which is why "after_run" is measured too).
            keep[0].stop()
            keep[0].start(src, keep[2])
            res["memory"]["full"] = memory_at_rest(lab, keep[0])
        if "lag" in sections:
            res["lag"] = lag(lab, a, keep)
            keep[0].stop()
            res["lag"]["lsyncd"] = lag_lsyncd(lab, a, keep[1])
            keep[0].start(src, keep[2])
            wait_for(keep[0].all_acked, a.timeout, "pair restart")
        if "slowdown" in sections:
            writer = build_writer(lab)
            res["slowdown"] = slowdown(lab, a, keep, writer)
        if keep and keep[0].p is not None:
            keep[0].stop()
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)
        lab.close()
    res["machine"] = {
        "nproc": os.cpu_count(), "kernel": os.uname().release,
        "cpu": next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                     if ln.startswith("model name")), "?"),
        "mem_gib": round(int(open("/proc/meminfo").read().split()[1]) / 1048576, 1),
        "loadavg_end": open("/proc/loadavg").read().split()[:3],
        "rsync": subprocess.run(["rsync", "--version"], capture_output=True, text=True).stdout.split()[2],
        "lsyncd": subprocess.run(["lsyncd", "--version"], capture_output=True, text=True).stdout.split()[-1],
        "commit": subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    res["elapsed_s"] = mono() - t_start
    res["findings"] = findings(res)
    for line in res["findings"]:
        log("finding: " + line)
    path = os.path.join(results_dir, "sidebyside.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    log("done in %.0f s; results in %s" % (res["elapsed_s"], path))


if __name__ == "__main__":
    main()
