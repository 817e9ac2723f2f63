"""cache=none: a file opened before a reload reads the old value to its end, with many small
reads, even when the reload changes its size or removes the name; a new open sees the new
generation.  (cache=kernel makes no such promise: it is not tested there.)"""
import os

from reloadlib import (absent, check, run_all, need_fuse, read, reload_ok, replace_values,
                       sighup_and_wait, Sandbox)

OLD = {"LONG": bytes(range(32, 127)) * 40, "GONE": b"g" * 2500, "KEEP": b"k" * 10}
NEW = {"LONG": b"new-and-shorter", "KEEP": b"k" * 10, "ADDED": b"a"}


def read_rest(fd, chunk):
    parts = []
    while True:
        b = os.read(fd, chunk)
        if not b:
            return b"".join(parts)
        parts.append(b)


def test():
    need_fuse()
    with Sandbox() as sb:
        sb.set_secrets(OLD)
        mnt, pid = sb.mount(opts=["-o", "cache=none"])
        fds = {}
        heads = {}
        for name, chunk in (("LONG", 7), ("GONE", 1), ("KEEP", 3)):
            fd = os.open(os.path.join(mnt, name), os.O_RDONLY)
            fds[name] = (fd, chunk)
            heads[name] = os.read(fd, chunk)
        replace_values(sb, NEW)
        reload_ok(sb, mnt)
        # a second generation while the handles are still open
        newer = dict(NEW, LONG=b"third generation value, longer than the second")
        replace_values(sb, newer)
        sighup_and_wait(mnt, pid)
        for name, (fd, chunk) in fds.items():
            got = heads[name] + read_rest(fd, chunk)
            os.close(fd)
            check(got == OLD[name], "%s: a handle opened before the reload read %d bytes, "
                  "want the old %d-byte value" % (name, len(got), len(OLD[name])))
        check(read(os.path.join(mnt, "LONG")) == newer["LONG"], "LONG: a new open is stale")
        check(absent(os.path.join(mnt, "GONE")), "GONE: still there after the reload")
        # pread at offsets across the old value, after the reload
        fd = os.open(os.path.join(mnt, "LONG"), os.O_RDONLY)
        replace_values(sb, OLD)
        reload_ok(sb, mnt)
        got = b"".join(os.pread(fd, 5, off) for off in range(0, len(newer["LONG"]), 5))
        os.close(fd)
        check(got == newer["LONG"], "LONG: pread on an older handle mixed generations")


run_all(test)
