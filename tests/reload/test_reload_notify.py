"""The kernel notifications matter: with them disabled (-o debug_no_invalidate), a changed
value that was read (so cached) is still read stale in cache=kernel after a reload, and a
name added after a cached miss stays invisible; with them, over many rounds, never."""
import os

from reloadlib import (absent, check, run_all, need_fuse, read, reload_ok, replace_values,
                       Sandbox)

ROUNDS = 25


def value(i):
    return (b"round-%d-" % i) + b"v" * (i * 7 % 50)


def rounds(sb, mnt):
    """Returns (stale reads, stale sizes, missing added names) over ROUNDS reloads."""
    path = os.path.join(mnt, "DB_PASSWORD")
    stale = stale_size = missing = 0
    for i in range(1, ROUNDS + 1):
        read(path)
        os.stat(path)
        added = os.path.join(mnt, "ADDED_%d" % i)
        absent(added)  # caches the miss
        replace_values(sb, {"DB_PASSWORD": value(i), "ADDED_%d" % i: b"new"})
        reload_ok(sb, mnt)
        if read(path) != value(i):
            stale += 1
        if os.stat(path).st_size != len(value(i)):
            stale_size += 1
        if absent(added):
            missing += 1
    return stale, stale_size, missing


def test():
    need_fuse()
    results = {}
    for opts in (["-o", "cache=kernel,debug_no_invalidate"], ["-o", "cache=kernel"]):
        with Sandbox() as sb:
            sb.set_secrets({"DB_PASSWORD": value(0)})
            mnt, _ = sb.mount(opts=opts)
            results[opts[1]] = rounds(sb, mnt)
            print("%-36s stale reads %d/%d, stale sizes %d/%d, added names missing %d/%d" % (
                opts[1], results[opts[1]][0], ROUNDS, results[opts[1]][1], ROUNDS,
                results[opts[1]][2], ROUNDS))
    off = results["cache=kernel,debug_no_invalidate"]
    on = results["cache=kernel"]
    check(off[0] == ROUNDS and off[2] == ROUNDS,
          "without notifications the kernel's caches should have been stale every round; "
          "the test no longer proves anything")
    check(on == (0, 0, 0), "with notifications, stale reads/sizes/missing names: %r" % (on,))


run_all(test)
