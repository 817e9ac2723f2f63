"""Issue 12, item 7: what a daemon killed with SIGKILL leaves behind is handled: the next
daemon to start removes its /run/secretfs/MOUNT/ directory, and `secretfs mount` on its
mountpoint names the dead mount and the `fusermount3 -u` that fixes it."""
import os
import signal

from harness import (Sandbox, check, need_fuse, pid_alive, run_all, unmount, wait_for)


def kill9(pid):
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), "the killed daemon to go")


def test_stale_generation_dirs_removed():
    need_fuse()
    with Sandbox() as sb:
        sb.run(["set", "A"], input=b"one")
        left = []
        for n in range(3):
            mnt, pid = sb.mount(sb.mountpoint("dead%d" % n))
            notify = sb.status(mnt).get("notify", "")
            check(notify, "the daemon names no generation file")
            kill9(pid)
            unmount(mnt)
            check(os.path.exists(notify), "the killed daemon's generation file went by itself")
            left.append(os.path.dirname(notify))
        mnt, pid = sb.mount(sb.mountpoint("next"))
        still = [d for d in left if os.path.exists(d)]
        print("%d of %d directories of killed daemons left after the next start" % (
            len(still), len(left)))
        check(not still, "a starting daemon left %d directories of dead daemons: %s" % (
            len(still), still))
        check(os.path.exists(sb.status(mnt)["notify"]), "the new daemon has no generation file")


def test_dead_mount_is_named():
    need_fuse()
    with Sandbox() as sb:
        sb.run(["set", "A"], input=b"one")
        for cache in ("none", "kernel"):
            mnt = sb.mountpoint("m-" + cache)
            mnt, pid = sb.mount(mnt, opts=["-o", "cache=" + cache])
            kill9(pid)
            p = sb.run(["mount", mnt], check_rc=False)
            err = p.stderr.decode(errors="replace")
            check(p.returncode == 1, "cache=%s: mount over a dead mount exited %d" % (
                cache, p.returncode))
            check("dead" in err and "fusermount3 -u %s" % mnt in err,
                  "cache=%s: the error does not name the dead mount and its fix: %s" % (
                      cache, err.strip()))
            unmount(mnt)
            sb.mount(mnt, opts=["-o", "cache=" + cache])


if __name__ == "__main__":
    run_all(test_stale_generation_dirs_removed, test_dead_mount_is_named)
