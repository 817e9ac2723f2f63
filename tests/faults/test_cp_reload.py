#!/usr/bin/python3
"""Reloads while a non-atomic writer replaces the store: a daemon serves a store of
thousands of self-checking secrets (each value says its generation, A or B, and its name,
and carries a SHA-256), a writer loop does plain `cp B.store store; cp A.store store`
(truncate, then write: the file is partial while cp runs), the test sends SIGHUP after
SIGHUP (and in cache=kernel the daemon also watches the store), and reader processes check
every value they read, the listing, the count in `.status`, and batches of values read
between two equal even `seq` of the generation file (one generation by the README's
promise).  Many reloads must fail (the daemon rejects the partial files and keeps
serving); torn values, mixed batches, partial sets and read errors must be 0.  Both cache
modes."""
import json
import os
import random
import subprocess
import time

import faultlib as fl
import reloadlib
from faultlib import check
from harness import VIEWS, Sandbox, need_fuse, run_all, unmount

SECRETS = int(os.environ.get("SFS_FAULTS_SECRETS", "3000"))
SECONDS = float(os.environ.get("SFS_FAULTS_CP_SECONDS", "12"))
READERS = 3
BATCH = 12


def reader(mnt, names, stop, out_fd, seed, small, notify):
    rnd = random.Random(seed)
    c = {"reads": 0, "A": 0, "B": 0, "torn": 0, "errors": 0, "err_kinds": [],
         "listings": 0, "partial_listings": 0, "status_reads": 0, "partial_status": 0,
         "batches": 0, "mixed_batches": 0, "unbracketed": 0}
    want_listing = len(names) + len(VIEWS)
    read = reloadlib.read_small if small else reloadlib.read
    it = 0

    def one(name):
        try:
            data = read(os.path.join(mnt, name))
        except OSError as e:
            c["errors"] += 1
            if len(c["err_kinds"]) < 5:
                c["err_kinds"].append("%s: %s" % (name, e.strerror))
            return None
        c["reads"] += 1
        gen = reloadlib.verify_value(data, name)
        if gen is None:
            c["torn"] += 1
        else:
            c[gen] += 1
        return gen

    while not os.path.exists(stop):
        it += 1
        for _ in range(10):
            one(names[rnd.randrange(len(names))])
        if it % 5 == 0:
            try:
                c["listings"] += 1
                if len(os.listdir(mnt)) != want_listing:
                    c["partial_listings"] += 1
                c["status_reads"] += 1
                if reloadlib.status(mnt).get("secrets") != str(len(names)):
                    c["partial_status"] += 1
            except OSError as e:
                c["errors"] += 1
                if len(c["err_kinds"]) < 5:
                    c["err_kinds"].append("listing: %s" % e.strerror)
        if notify and it % 2 == 0:
            before = fl.read_notify(notify)
            gens = [one(names[rnd.randrange(len(names))]) for _ in range(BATCH)]
            after = fl.read_notify(notify)
            if before and after and before["seq"] == after["seq"] and before["seq"] % 2 == 0:
                c["batches"] += 1
                if len(set(gens)) != 1:
                    c["mixed_batches"] += 1
            else:
                c["unbracketed"] += 1
    os.write(out_fd, json.dumps(c).encode())


# with QUIET=1 the writer sometimes pauses longer than the store watch's 200 ms debounce,
# so the watch reloads too (it waits for the writer to go quiet)
WRITER = r'''
while [ ! -e "$STOP" ]; do
  cp "$B" "$S"; n=$((n+1)); sleep 0.00$((RANDOM % 8))
  cp "$A" "$S"; n=$((n+1)); sleep 0.00$((RANDOM % 8))
  if [ "$QUIET" = 1 ] && [ $((n % 40)) = 0 ]; then sleep 0.3; fi
done
echo $n > "$COUNT"
'''


def reason(last):
    for key in ("truncated", "trailing data", "authentication", "bad magic", "header"):
        if key in last:
            return key
    return "other"


def run_mode(sb, stores, cache):
    reloadlib.install_store(sb, stores["A"])
    opts = "cache=%s" % cache + (",watch" if cache == "kernel" else "")
    mnt, pid = sb.mount(sb.mountpoint("mnt-" + cache), ["-o", opts])
    names = sorted("S%05d" % i for i in range(SECRETS))
    notify = fl.notify_path(mnt)
    stop = os.path.join(sb.dir, "stop-" + cache)
    count_file = os.path.join(sb.dir, "cp-count-" + cache)
    children = []
    writer = None
    ok = failed = 0
    reasons = {}
    try:
        for n in range(READERS):
            children.append(reloadlib.fork_reader(
                lambda w, n=n: reader(mnt, names, stop, w, n * 7919, cache == "none" and n == 0,
                                      notify)))
        env = dict(os.environ, A=stores["A"], B=stores["B"], S=sb.store, STOP=stop,
                   COUNT=count_file, n="0", QUIET="1" if cache == "kernel" else "0")
        writer = subprocess.Popen(["bash", "-c", WRITER], env=env)
        started = time.monotonic()
        while time.monotonic() - started < SECONDS:
            st = reloadlib.sighup_and_wait(mnt, pid)
            if st["last_reload"] == "ok":
                ok += 1
            else:
                failed += 1
                k = reason(st["last_reload"])
                reasons[k] = reasons.get(k, 0) + 1
        elapsed = time.monotonic() - started
    finally:
        open(stop, "w").close()
        if writer:
            try:
                writer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                writer.kill()
                writer.wait()
        results = reloadlib.collect_readers(children)
    cps = int(open(count_file).read()) if os.path.exists(count_file) else -1
    st = reloadlib.status(mnt)
    # the daemon is still healthy: a complete store is accepted and served
    reloadlib.install_store(sb, stores["B"])
    final = reloadlib.sighup_and_wait(mnt, pid)
    check(final["last_reload"] == "ok", "cache=%s: a complete store was refused after the "
          "run: %s" % (cache, final["last_reload"][:200]))
    check(reloadlib.verify_value(reloadlib.read(os.path.join(mnt, names[0])), names[0]) == "B",
          "cache=%s: the final reload does not serve generation B" % cache)
    unmount(mnt)

    tot = {k: sum(r.get(k, 0) for r in results) for k in (
        "reads", "A", "B", "torn", "errors", "listings", "partial_listings", "status_reads",
        "partial_status", "batches", "mixed_batches", "unbracketed")}
    print("cache=%-6s %d secrets, %.1f s: %d cp over the store, %d reloads (SIGHUP%s): %d "
          "ok, %d failed (%s); generation %s at the end" % (
              cache, SECRETS, elapsed, cps, ok + failed,
              " and the store watch" if cache == "kernel" else "", ok, failed,
              ", ".join("%s %d" % kv for kv in sorted(reasons.items())) or "-",
              st["generation"]))
    print("cache=%-6s readers: %d reads (gen A %d, gen B %d), torn %d, read errors %d; "
          "listings %d (partial %d); .status %d (partial %d); one-generation batches %d "
          "(mixed %d, %d not bracketed by one even seq)" % (
              cache, tot["reads"], tot["A"], tot["B"], tot["torn"], tot["errors"],
              tot["listings"], tot["partial_listings"], tot["status_reads"],
              tot["partial_status"], tot["batches"], tot["mixed_batches"],
              tot["unbracketed"]), flush=True)
    for n, r in enumerate(results):
        check("crashed" not in r, "cache=%s: reader %d crashed" % (cache, n))
        check(r["reads"] > 0, "cache=%s: reader %d read nothing" % (cache, n))
        check(r["errors"] == 0, "cache=%s: reader %d: %d read errors (%s)" % (
            cache, n, r["errors"], "; ".join(r["err_kinds"])))
    check(tot["torn"] == 0, "cache=%s: %d torn values" % (cache, tot["torn"]))
    check(tot["partial_listings"] == 0 and tot["partial_status"] == 0,
          "cache=%s: a partial set was served (%d listings, %d .status)" % (
              cache, tot["partial_listings"], tot["partial_status"]))
    check(tot["mixed_batches"] == 0, "cache=%s: %d batches mixed two generations" % (
        cache, tot["mixed_batches"]))
    check(notify is None or tot["batches"] > 0, "cache=%s: no batch was bracketed by one "
          "generation" % cache)
    check(failed > 0, "cache=%s: no reload met a partial store; the test did not race cp"
          % cache)
    check(ok > 0 and tot["A"] > 0 and tot["B"] > 0, "cache=%s: the readers did not see both "
          "generations (ok reloads %d)" % (cache, ok))


def test_cp_over_the_store_during_reloads():
    need_fuse()
    with Sandbox() as sb:
        stores = {}
        for gen in ("A", "B"):
            stores[gen] = os.path.join(sb.dir, "prepared-%s.store" % gen)
            fl.build_store(sb, stores[gen], fl.big_values(gen, SECRETS))
        print("stores: %d secrets, %d and %d bytes" % (
            SECRETS, os.path.getsize(stores["A"]), os.path.getsize(stores["B"])), flush=True)
        for cache in ("none", "kernel"):
            run_mode(sb, stores, cache)


if __name__ == "__main__":
    run_all(test_cp_over_the_store_during_reloads)
