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
