"""Issue 12, item 3: a platform file that is a FIFO (or any non-regular file) is refused at
once instead of wedging the reload, and a reload stuck on a file that does not answer (here
on a second secretfs mount whose daemon is stopped) never keeps SIGTERM from unmounting and
stopping the daemon."""
import os
import signal
import time

from harness import (Sandbox, check, is_mounted, need_fuse, pid_alive, run_all, wait_for)
from hardlib import Stopped, platform_mount, threads_waiting_in_fuse


def expect_stops(pid, mnt, within, what):
    t0 = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    try:
        wait_for(lambda: not pid_alive(pid) and not is_mounted(mnt), "the daemon to stop",
                 timeout=within)
    except Exception:
        check(False, "%s: SIGTERM did not stop the daemon within %.0f s" % (what, within))
    print("%s: stopped %.2f s after SIGTERM" % (what, time.monotonic() - t0))


def test_fifo_platform_file():
    need_fuse()
    with Sandbox() as sb:
        platform = os.path.join(sb.dir, "platform.env")
        with open(platform, "w") as f:
            f.write("LIVEKIT_URL=wss://one.example\n")
        sb.write_config("[platform]\nfile = %s\n" % platform)
        sb.run(["set", "A"], input=b"one")
        mnt, pid = sb.mount()
        os.unlink(platform)
        os.mkfifo(platform)
        t0 = time.monotonic()
        p = sb.run(["reload", "--timeout", "5", mnt], check_rc=False)
        took = time.monotonic() - t0
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 1, "reload with a FIFO as platform file exited %d" % p.returncode)
        check("not a regular file" in err and platform in err,
              "the error does not name the FIFO: %s" % err)
        check(took < 4, "reload took %.1f s to refuse a FIFO" % took)
        with open(os.path.join(mnt, "A"), "rb") as f:
            check(f.read() == b"one", "the old generation does not keep serving")
        expect_stops(pid, mnt, 5, "FIFO platform file")


def test_sigterm_during_stuck_reload():
    need_fuse()
    with Sandbox() as sb:
        ppid = platform_mount(sb)
        sb.run(["set", "A"], input=b"one")
        mnt, pid = sb.mount()
        with Stopped(ppid):
            os.kill(pid, signal.SIGHUP)
            wait_for(lambda: threads_waiting_in_fuse(pid) > 0,
                     "the reload to wait on the platform file")
            expect_stops(pid, mnt, 8, "reload stuck on a file that does not answer")


if __name__ == "__main__":
    run_all(test_fifo_platform_file, test_sigterm_during_stuck_reload)
