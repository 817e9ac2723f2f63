"""Helpers of the hardening tests (issue 12): a daemon held inside a reload, signals pending."""
import glob
import os
import signal

from harness import TestFailure, wait_for


def threads_waiting_in_fuse(pid):
    """How many threads of `pid` wait for a FUSE request to be answered (wchan)."""
    n = 0
    for path in glob.glob("/proc/%d/task/*/wchan" % pid):
        try:
            with open(path) as f:
                w = f.read()
        except OSError:
            continue
        if "fuse" in w or "request_wait_answer" in w:
            n += 1
    return n


def sighup_pending(pid):
    """True if SIGHUP waits, undelivered, for the process (every thread blocks it)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("ShdPnd:"):
                return int(line.split()[1], 16) & (1 << (signal.SIGHUP - 1)) != 0
    raise TestFailure("no ShdPnd in /proc/%d/status" % pid)


def platform_mount(sb):
    """Mounts a second, cache=none store holding `platform.env` and makes the sandbox's
    config read its platform file through it: a daemon whose platform mount is SIGSTOPped
    (Stopped) hangs inside its next reload.  Returns that mount's daemon pid."""
    pstore = os.path.join(sb.dir, "platform.store")
    penv = dict(sb.env, SECRETFS_STORE=pstore)
    sb.run(["set", "platform.env"], input=b"LIVEKIT_URL=wss://one.example\n", env=penv)
    pmnt = sb.mountpoint("platform")
    sb.run(["mount", "--store", pstore, "-o", "cache=none", pmnt])
    sb.mounts.append(pmnt)
    ppid = sb.daemon_pid(pmnt)
    sb.pids.append(ppid)
    sb.write_config("[platform]\nfile = %s/platform.env\n" % pmnt)
    return ppid


class Stopped:
    """SIGSTOPs a daemon for the with-block (always SIGCONTs it again)."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)
        wait_for(lambda: _state(self.pid) == "T", "the daemon to stop")
        return self

    def __exit__(self, *exc):
        os.kill(self.pid, signal.SIGCONT)
        return False


def _state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]
