#!/usr/bin/env python3
"""spoolgen.py — a job-scheduler-like spool for the perf scripts (standard library only).

The tree looks like a Slurm StateSaveLocation: jobs hashed over ten directories, each job
a directory holding its batch script and its environment, plus the controller's state
files at the top and a few large files (accounting and archive dumps). Everything comes
from a seed, so two runs with the same arguments write the same bytes.

  create ROOT --seed S --small N --large K --large-mib M
      N small files (1-8 KiB: N/2 jobs × {script, environment}) under ROOT/hash.D/job.ID/,
      the controller state files, and K files of M MiB. Prints a JSON summary (files,
      bytes, seconds).
  change ROOT --seed S --percent P --undo FILE
      Changes P % of the spool the way a scheduler does between two syncs: P % of the
      small files rewritten whole (new content, new size), and every large file changed
      by P % of its size, half of them rewritten in place at a 4 KiB-aligned offset and
      half appended to. Saves what it overwrote to FILE (for `undo`) and prints the
      changed files with what to check on a copy: size, and the hash of the range that
      changed (JSON).
  undo FILE
      Puts back what `change` overwrote (rewrites restored, appends truncated).
  check ROOT CHANGES
      One pass over the changed files of a `change` output: how many a copy at ROOT
      already holds (size and changed range equal). Used to time incremental syncs.

Every loop is bounded by the counts given on the command line.
"""
import argparse
import hashlib
import json
import os
import random
import sys
import time

HASH_DIRS = 10  # Slurm hashes job directories over hash.0 .. hash.9
STATE_FILES = ["job_state", "job_state.old", "node_state", "node_state.old", "resv_state",
               "trigger_state", "assoc_mgr_state", "assoc_usage", "qos_usage",
               "fed_mgr_state", "priority_last_decay_ran", "last_config_lite", "last_tres"]
LARGE_NAMES = ["job_state.archive", "jobacct.log", "node_state.archive", "assoc_usage.dump"]
BLOCK = 1 << 20
FIRST_JOB_ID = 1_000_000


def out(obj):
    print(json.dumps(obj), flush=True)


def job_paths(n_small):
    """The small files in creation order: (relative path, kind) with kind script|env."""
    paths = []
    for j in range((n_small + 1) // 2):
        jid = FIRST_JOB_ID + j
        d = "hash.%d/job.%d" % (jid % HASH_DIRS, jid)
        paths.append((d + "/script", "script"))
        if len(paths) < n_small:
            paths.append((d + "/environment", "env"))
    return paths[:n_small]


def large_paths(k):
    return ["%s.%02d" % (LARGE_NAMES[i % len(LARGE_NAMES)], i) for i in range(k)]


def small_content(rng, kind, jid_text):
    """A batch script or environment: readable head, seeded filler (1-8 KiB)."""
    size = rng.randint(1024, 4096) if kind == "script" else rng.randint(2048, 8192)
    head = (b"#!/bin/bash\n#SBATCH --job-name=%s\n" % jid_text if kind == "script"
            else b"SLURM_JOB_ID=%s\nPATH=/usr/bin:/bin\n" % jid_text)
    return head + rng.randbytes(max(0, size - len(head)))


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC):
    fd = os.open(path, flags, 0o600)
    try:
        view, done = memoryview(data), 0
        while done < len(data):
            done += os.write(fd, view[done:])
    finally:
        os.close(fd)


_POOLS = {}


def large_block(seed, index, block):
    """1 MiB of seeded bytes, unlike every other block: a window of a 4 MiB random pool at
    an offset chosen by (file, block), led by the block's own id. Slicing is ~50× faster
    than drawing fresh random bytes, and no two blocks have the same content."""
    pool = _POOLS.get(seed)
    if pool is None:
        pool = _POOLS[seed] = random.Random(seed).randbytes(4 * BLOCK)
    off = random.Random("%d/%d/%d" % (seed, index, block)).randrange(0, 3 * BLOCK)
    head = b"%d/%d/%d\n" % (seed, index, block)
    return head + pool[off + len(head):off + BLOCK]


def cmd_create(a):
    rng = random.Random(a.seed)
    t0 = time.monotonic()
    nbytes = 0
    for d in range(HASH_DIRS):
        os.makedirs(os.path.join(a.root, "hash.%d" % d), exist_ok=True)
    for rel, kind in job_paths(a.small):
        path = os.path.join(a.root, rel)
        if kind == "script":
            os.mkdir(os.path.dirname(path))
        data = small_content(rng, kind, rel.split("/")[1].encode())
        write_file(path, data)
        nbytes += len(data)
    for name in STATE_FILES:
        data = rng.randbytes(rng.randint(256, 64 * 1024))
        write_file(os.path.join(a.root, name), data)
        nbytes += len(data)
    for i, name in enumerate(large_paths(a.large)):
        fd = os.open(os.path.join(a.root, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for b in range(a.large_mib * BLOCK // BLOCK):
                os.write(fd, large_block(a.seed, i, b))
        finally:
            os.close(fd)
        nbytes += a.large_mib * BLOCK
    out({"files": a.small + len(STATE_FILES) + a.large, "small": a.small, "large": a.large,
         "large_mib": a.large_mib, "state_files": len(STATE_FILES), "bytes": nbytes,
         "dirs": HASH_DIRS + (a.small + 1) // 2, "seconds": time.monotonic() - t0,
         "seed": a.seed})


def digest(data):
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def cmd_change(a):
    rng = random.Random(a.seed * 7919 + 1)
    undo_meta, blobs, changes = [], [], []
    changed_bytes = 0
    small = [p for p, _ in job_paths(a.small)]
    k = max(1, round(len(small) * a.percent / 100.0)) if small else 0
    for rel in sorted(rng.sample(small, k)):
        path = os.path.join(a.root, rel)
        with open(path, "rb") as f:
            old = f.read()
        kind = "script" if rel.endswith("/script") else "env"
        new = small_content(rng, kind, b"changed")
        write_file(path, new)
        undo_meta.append({"path": rel, "op": "restore", "blob": len(blobs)})
        blobs.append(old)
        changes.append({"path": rel, "size": len(new), "offset": 0, "length": len(new),
                        "hash": digest(new)})
        changed_bytes += len(new)
    for i, rel in enumerate(large_paths(a.large)):
        path = os.path.join(a.root, rel)
        size = os.stat(path).st_size
        length = max(4096, int(size * a.percent / 100.0) // 4096 * 4096)
        data = rng.randbytes(length)
        if i % 2 == 0:  # rewrite in place
            offset = rng.randrange(0, max(1, (size - length) // 4096)) * 4096
            with open(path, "r+b") as f:
                f.seek(offset)
                old = f.read(length)
                f.seek(offset)
                f.write(data)
            undo_meta.append({"path": rel, "op": "restore_range", "offset": offset,
                              "blob": len(blobs)})
            blobs.append(old)
            new_size = size
        else:  # append
            offset = size
            with open(path, "ab") as f:
                f.write(data)
            undo_meta.append({"path": rel, "op": "truncate", "size": size})
            new_size = size + length
        changes.append({"path": rel, "size": new_size, "offset": offset, "length": length,
                        "hash": digest(data)})
        changed_bytes += length
    with open(a.undo, "wb") as f:
        meta = json.dumps({"root": os.path.abspath(a.root), "ops": undo_meta,
                           "blob_sizes": [len(b) for b in blobs]}).encode()
        f.write(len(meta).to_bytes(8, "little"))
        f.write(meta)
        for b in blobs:
            f.write(b)
    out({"changed_files": len(changes), "changed_bytes": changed_bytes,
         "small_rewritten": k, "large_changed": a.large, "changes": changes})


def cmd_undo(a):
    with open(a.file, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n))
        blobs = [f.read(s) for s in meta["blob_sizes"]]
    for op in meta["ops"]:
        path = os.path.join(meta["root"], op["path"])
        if op["op"] == "restore":
            write_file(path, blobs[op["blob"]])
        elif op["op"] == "restore_range":
            with open(path, "r+b") as f:
                f.seek(op["offset"])
                f.write(blobs[op["blob"]])
        elif op["op"] == "truncate":
            os.truncate(path, op["size"])
    out({"undone": len(meta["ops"])})


def holds(root, c):
    path = os.path.join(root, c["path"])
    try:
        if os.stat(path).st_size != c["size"]:
            return False
        with open(path, "rb") as f:
            f.seek(c["offset"])
            return digest(f.read(c["length"])) == c["hash"]
    except FileNotFoundError:
        return False


def cmd_check(a):
    with open(a.changes) as f:
        changes = json.load(f)["changes"]
    have = sum(1 for c in changes if holds(a.root, c))
    out({"changed_files": len(changes), "held": have})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("root")
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--small", type=int, default=50_000)
    c.add_argument("--large", type=int, default=20)
    c.add_argument("--large-mib", type=int, default=64)
    ch = sub.add_parser("change")
    ch.add_argument("root")
    ch.add_argument("--seed", type=int, default=1)
    ch.add_argument("--small", type=int, default=50_000, help="as given to create")
    ch.add_argument("--large", type=int, default=20, help="as given to create")
    ch.add_argument("--percent", type=float, default=1.0)
    ch.add_argument("--undo", required=True)
    u = sub.add_parser("undo")
    u.add_argument("file")
    k = sub.add_parser("check")
    k.add_argument("root")
    k.add_argument("changes")
    a = p.parse_args()
    if a.cmd == "create" and (a.small < 0 or a.large < 0 or a.large_mib < 1):
        sys.exit("spoolgen: --small and --large must be ≥ 0 and --large-mib ≥ 1")
    {"create": cmd_create, "change": cmd_change, "undo": cmd_undo, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    main()
