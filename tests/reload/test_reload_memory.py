"""Reloading 1,000 times does not grow the daemon: VmRSS and VmLck after 1,000 reloads stay
within a small bound of their values after the first.  Each generation's views are rendered
and, in cache=none, a handle keeps an old generation alive for a while and then lets go."""
import os
import sys
import threading
import time

from reloadlib import (check, install_store, main, make_store, mem_of, need_fuse, read,
                       sanitized_build, sighup_and_wait, Sandbox)

RELOADS = 1000
RSS_SLACK_KB = 1024
LCK_SLACK_KB = 64


def values(tag, width):
    return {"V%02d" % i: (b"%s-%02d-" % (tag, i)) + b"z" * (width + 37 * i) for i in range(24)}


def warm_workers(mnt, seconds=1.0, threads=12):
    """Concurrent reads, so the daemon's FUSE worker pool (and each worker's malloc arena)
    is at its working size before the first measurement, not grown during the loop."""
    stop = time.monotonic() + seconds

    def spin(i):
        while time.monotonic() < stop:
            read(os.path.join(mnt, "V%02d" % (i % 24)))
            read(os.path.join(mnt, ".status"))
            os.listdir(mnt)

    ts = [threading.Thread(target=spin, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


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
        print("cache=%-6s after 1 reload: VmRSS %d kB, VmLck %d kB; after %d: VmRSS %d kB, "
              "VmLck %d kB (VmSize %d -> %d kB)" % (
                  cache, first["VmRSS"], first.get("VmLck", 0), RELOADS, last["VmRSS"],
                  last.get("VmLck", 0), first["VmSize"], last["VmSize"]), flush=True)
        check(last["VmRSS"] <= first["VmRSS"] + RSS_SLACK_KB,
              "cache=%s: VmRSS grew by %d kB over %d reloads" % (
                  cache, last["VmRSS"] - first["VmRSS"], RELOADS))
        check(last.get("VmLck", 0) <= first.get("VmLck", 0) + LCK_SLACK_KB,
              "cache=%s: VmLck grew by %d kB over %d reloads" % (
                  cache, last.get("VmLck", 0) - first.get("VmLck", 0), RELOADS))


def test():
    need_fuse()
    if sanitized_build():
        print("SKIP: AddressSanitizer build (its quarantine keeps freed memory; mlock is a "
              "no-op)")
        sys.exit(77)
    for cache in ("kernel", "none"):
        run_mode(cache)


main(test)
