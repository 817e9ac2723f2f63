"""The test runner and the checks every test uses (tests/lib/harness.py re-exports all).

Every test is a plain script run by `meson test`: exit 0 pass, 1 fail, 77 skip.  Values
planted by tests must never be printed: report names and byte counts only.
"""
import base64
import errno as _errno
import os
import subprocess
import sys
import time

SECRETFS = os.environ.get("SECRETFS_BIN", "secretfs")
SRC = os.environ.get("SFS_TEST_SRC", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SKIP = 77


class TestFailure(Exception):
    pass


def check(cond, what):
    """Fails the test with `what` (which must not contain a secret value)."""
    if not cond:
        raise TestFailure(what)


def need_fuse():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("SKIP: needs root and /dev/fuse")
        sys.exit(SKIP)


def hostile_values():
    """The shared table tests/data/hostile-values.tsv as {name: bytes}."""
    table = {}
    with open(os.path.join(SRC, "data", "hostile-values.tsv")) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, b64 = line.split("\t")
            table[name] = base64.b64decode(b64)
    return table


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_to_eof(fd):
    """Everything readable from descriptor `fd` until end of file; closes it."""
    data = b""
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        data += b
    os.close(fd)
    return data


def errno_of(fn, *args, **kw):
    """Calls fn; returns the errno name of the OSError it raised, or 'ok'."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return _errno.errorcode.get(e.errno, str(e.errno))
    return "ok"


def wait_for(cond, what, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(step)
    raise TestFailure("timed out after %.0f s waiting for %s" % (timeout, what))


def run_all(*tests):
    """main() for a script made of several test functions: runs them all, reports each,
    and fails if any failed."""
    failed = []
    for t in tests:
        try:
            t()
            print("ok   %s" % t.__name__)
        except TestFailure as e:
            print("FAIL %s: %s" % (t.__name__, e))
            failed.append(t.__name__)
        except Exception as e:  # an unexpected error is a failure, not a crash
            failed.append(t.__name__)
            print("FAIL %s: unexpected %s at %s: %s" % (t.__name__, type(e).__name__,
                                                        _where(e), _safe_message(e)))
        sys.stdout.flush()
    if failed:
        print("FAILED: %s" % ", ".join(failed))
        sys.exit(1)
    sys.exit(0)


def _where(e):
    import traceback
    here = os.path.dirname(os.path.abspath(__file__))
    tb = [f for f in traceback.extract_tb(e.__traceback__)
          if os.path.dirname(os.path.abspath(f.filename)) != here] or \
        traceback.extract_tb(e.__traceback__)
    return ", ".join("%s:%d" % (os.path.basename(f.filename), f.lineno) for f in tb[-3:])


def _safe_message(e):
    """Messages of exceptions that cannot carry a value (others may quote data: omitted)."""
    if isinstance(e, (OSError, KeyError, subprocess.TimeoutExpired, TestFailure)):
        return str(e)[:500]
    return "(message omitted: it may quote secret data)"


_CANARIES = []


def canary(tag="v"):
    """A new distinctive value (bytes), remembered so CliSandbox.run can prove it never
    reaches stderr (nor stdout, except `get`'s).  Never print one."""
    value = ("cnry-%s-%s" % (tag, os.urandom(8).hex())).encode()
    _CANARIES.append(value)
    return value


def leaks(data):
    """How many planted canaries occur in `data` (bytes)."""
    return sum(1 for c in _CANARIES if c in data)


def redact(data):
    """`data` (bytes) as text with every canary replaced, safe to put in a failure."""
    for c in _CANARIES:
        data = data.replace(c, b"<CANARY>")
    return data.decode(errors="replace")
