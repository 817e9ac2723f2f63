"""Issue 12, item 1: after `secretfs reload` (or `set --reload`) exits 0, the mount serves
the store as it was when the command was called, or later, in both cache modes, even when a
reload that read the old store was already under way (and the kernel holds an old page of
.status).

Deterministic: the platform file lives on a second secretfs mount (cache=none) whose daemon
is stopped, so the first reload reads the old store and then waits in open() of the platform
file; the store changes, `secretfs reload` is started and signals, and only then the second
daemon continues.  The store holds 24 MB, so the reload that the signal starts takes a
while after the held one ends.  The first reload ends with the old store: a `reload` that took its end
for its own exits 0 with the old value served."""
import os
import subprocess
import sys
import time

from harness import (SECRETFS, Sandbox, check, need_fuse, read_bytes, run_all, wait_for)
from hardlib import Stopped, platform_mount, sighup_pending, threads_waiting_in_fuse

ROUNDS = int(os.environ.get("SFS_TRUTH_ROUNDS", "2"))


def one_round(sb, mnt, pid, ppid, use_set, n):
    old, new = b"old-value-%d" % n, b"new-value-%d-longer" % n
    sb.run(["set", "X"], input=old)
    sb.run(["reload", mnt])
    check(read_bytes(os.path.join(mnt, "X")) == old, "the mount does not serve the first value")
    read_bytes(os.path.join(mnt, ".status"))  # the kernel caches this page in cache=kernel
    with Stopped(ppid):
        os.kill(pid, 1)
        wait_for(lambda: threads_waiting_in_fuse(pid) > 0, "the reload to wait on the platform file")
        time.sleep(0.05)
        if use_set:
            args = ["set", "X", "--reload=%s" % mnt]
        else:
            sb.run(["set", "X"], input=new)
            args = ["reload", mnt]
        cli = subprocess.Popen([SECRETFS] + args, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=sb.env)
        if use_set:
            cli.stdin.write(new)
        cli.stdin.close()
        wait_for(lambda: sighup_pending(pid) or cli.poll() is not None,
                 "secretfs %s to signal the daemon" % args[0])
    cli.wait(timeout=30)
    err = cli.stderr.read()
    cli.stdout.close()
    cli.stderr.close()
    check(cli.returncode == 0, "secretfs %s exited %d: %s" % (args[0], cli.returncode,
                                                             err.decode(errors="replace")))
    got = read_bytes(os.path.join(mnt, "X"))
    return got == new


def scenario(cache, use_set):
    need_fuse()
    with Sandbox() as sb:
        ppid = platform_mount(sb)
        sb.run(["set", "X"], input=b"first")
        # a store large enough that each reload takes a while (~24 MB to decrypt): the reload
        # that follows the held one is slow, so a `reload` that polls sees the held one end
        filler = os.path.join(sb.dir, "filler.env")
        with open(filler, "w") as f:
            for i in range(24):
                f.write("FILLER_%02d=%s\n" % (i, "f" * 1000000))
        sb.run(["update-secrets", "--secrets-file", filler])
        os.unlink(filler)
        mnt, pid = sb.mount(opts=["-o", "cache=%s" % cache])
        stale = sum(0 if one_round(sb, mnt, pid, ppid, use_set, n) else 1 for n in range(ROUNDS))
        print("cache=%s %s: %d of %d rounds served the old value after exit 0" % (
            cache, "set --reload" if use_set else "reload", stale, ROUNDS))
        check(stale == 0, "cache=%s: %s exited 0 while the mount served the old value "
              "(%d of %d rounds)" % (cache, "set --reload" if use_set else "reload", stale,
                                      ROUNDS))


def test_reload_kernel():
    scenario("kernel", False)


def test_reload_none():
    scenario("none", False)


def test_set_reload_kernel():
    scenario("kernel", True)


if __name__ == "__main__":
    run_all(test_reload_kernel, test_reload_none, test_set_reload_kernel)
