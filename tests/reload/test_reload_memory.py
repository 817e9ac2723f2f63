"""Reloading 1,000 times does not grow the daemon: VmRSS and VmLck after 1,000 reloads stay
within a small bound of their values after the first 100 (the baseline is taken there, not
after the first, because a FUSE worker thread that the shared machine's load makes the pool
start late gets its own malloc arena once: a one-time step, not growth per reload; the
value after the first reload is printed too).  Each generation's views are rendered
and, in cache=none, a handle keeps an old generation alive for a while and then lets go."""
import os
import sys
import time

from reloadlib import (check, install_store, run_all, make_store, mem_of, need_fuse, read,
                       sanitized_build, sighup_and_wait, Sandbox)

RELOADS = 1000
# A generation here is ~30 kB of locked values plus its tables: one leaked per reload would
# grow VmLck by ~30 MB over the loop (caught by the 64 kB VmLck slack) and VmRSS by more.
# VmRSS also takes one-time steps when the shared machine's load makes the FUSE pool start
# a worker late (its ~1 MB request buffer, seen up to 2 MB under load 20 on 2 cores): the
# RSS slack absorbs a few of those without hiding growth per reload.
RSS_SLACK_KB = 4096
LCK_SLACK_KB = 64


def values(tag, width):
    return {"V%02d" % i: (b"%s-%02d-" % (tag, i)) + b"z" * (width + 37 * i) for i in range(24)}


def warm_workers(mnt, seconds=1.5, procs=12):
    """Concurrent requests from many processes (threads would take turns on Python's lock),
    so the daemon's FUSE worker pool, each worker with its ~1 MB request buffer, is at its
    full size before the first measurement instead of growing during the loop.  .status is
    always answered by the daemon (no attribute or page caching), so every call is a
    request."""
    stop = time.monotonic() + seconds
    pids = []
    for i in range(procs):
        pid = os.fork()
        if pid == 0:
            try:
                while time.monotonic() < stop:
                    read(os.path.join(mnt, ".status"))
                    os.stat(os.path.join(mnt, ".status"))
                    read(os.path.join(mnt, "V%02d" % (i % 24)))
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)


def run_mode(cache):
    with Sandbox() as sb:
        stores = []
        for n, (tag, width) in enumerate(((b"A", 500), (b"B", 900))):
            path = os.path.join(sb.dir, "prepared-%d.store" % n)
            make_store(sb, path, values(tag, width))
            stores.append(path)
        install_store(sb, stores[0])
        mnt, pid = sb.mount(opts=["-o", "cache=%s" % cache])

        def one(k):
            install_store(sb, stores[k % 2])
            st = sighup_and_wait(mnt, pid)
            check(st["last_reload"] == "ok", "reload %d failed: %s" % (k, st["last_reload"]))
            if k % 10 == 0 or k in (1, RELOADS):
                read(os.path.join(mnt, ".env"))
                read(os.path.join(mnt, ".env.json"))
                read(os.path.join(mnt, "V%02d" % (k % 24)))

        held = None
        warm_workers(mnt)
        one(1)
        first = mem_of(pid)
        print("  after    1: VmRSS %d kB, VmLck %d kB, VmSize %d kB, threads %d" % (
            first["VmRSS"], first.get("VmLck", 0), first["VmSize"], first["Threads"]))
        for k in range(2, RELOADS + 1):
            if k in (10, 100, 500):
                m = mem_of(pid)
                if k == 100:
                    base = m
                print("  after %4d: VmRSS %d kB, VmLck %d kB, VmSize %d kB, threads %d" % (
                    k - 1, m["VmRSS"], m.get("VmLck", 0), m["VmSize"], m["Threads"]))
            if k % 100 == 50 and held is None:
                held = os.open(os.path.join(mnt, "V00"), os.O_RDONLY)
            one(k)
            if k % 100 == 90 and held is not None:
                os.close(held)
                held = None
        last = mem_of(pid)
        print("  after %4d: VmRSS %d kB, VmLck %d kB, VmSize %d kB, threads %d" % (
            RELOADS, last["VmRSS"], last.get("VmLck", 0), last["VmSize"], last["Threads"]))
        print("cache=%-6s after 1 reload: VmRSS %d kB, VmLck %d kB; after 99: VmRSS %d kB, "
              "VmLck %d kB; after %d: VmRSS %d kB, VmLck %d kB (VmSize %d -> %d kB)" % (
                  cache, first["VmRSS"], first.get("VmLck", 0), base["VmRSS"],
                  base.get("VmLck", 0), RELOADS, last["VmRSS"], last.get("VmLck", 0),
                  first["VmSize"], last["VmSize"]), flush=True)
        check(last["VmRSS"] <= base["VmRSS"] + RSS_SLACK_KB,
              "cache=%s: VmRSS grew by %d kB from reload 100 to %d" % (
                  cache, last["VmRSS"] - base["VmRSS"], RELOADS))
        check(last.get("VmLck", 0) <= base.get("VmLck", 0) + LCK_SLACK_KB,
              "cache=%s: VmLck grew by %d kB from reload 100 to %d" % (
                  cache, last.get("VmLck", 0) - base.get("VmLck", 0), RELOADS))


def test():
    need_fuse()
    if sanitized_build():
        print("SKIP: AddressSanitizer build (its quarantine keeps freed memory; mlock is a "
              "no-op)")
        sys.exit(77)
    for cache in ("kernel", "none"):
        run_mode(cache)


run_all(test)
