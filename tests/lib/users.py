"""A real unprivileged user, and running things as it (tests/lib/harness.py re-exports all)."""
import contextlib
import json
import pwd
import subprocess
import time

from core import TestFailure

TEST_USER = "sfs-test-user"


def ensure_test_user(name=TEST_USER):
    """Returns (uid, gid) of a throwaway unprivileged user, creating it if missing.

    Tests run in parallel: useradd may find /etc/passwd locked, so it is retried."""
    for _ in range(50):
        with contextlib.suppress(KeyError):
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with contextlib.suppress(KeyError):
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        time.sleep(0.1)
    raise TestFailure("cannot create the test user %s" % name)


def as_user(uid, gid, argv, **kw):
    """Runs argv as uid/gid with no supplementary groups; returns CompletedProcess."""
    return subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
                           "--clear-groups", "--"] + list(argv),
                          capture_output=True, timeout=60, **kw)


def user_read(uid, gid, path):
    """Reads `path` as uid/gid.  Returns (errno name or 'ok', bytes read).  The bytes go
    through a pipe, never through argv or a log."""
    code = ("import os,sys\n"
            "try:\n"
            "    fd = os.open(sys.argv[1], os.O_RDONLY)\n"
            "    data = b''\n"
            "    while True:\n"
            "        b = os.read(fd, 65536)\n"
            "        if not b: break\n"
            "        data += b\n"
            "    os.close(fd)\n"
            "    sys.stdout.buffer.write(b'ok\\n' + data)\n"
            "except OSError as e:\n"
            "    sys.stdout.buffer.write(__import__('errno').errorcode.get(e.errno, str(e.errno)).encode() + b'\\n')\n")
    p = as_user(uid, gid, ["/usr/bin/python3", "-c", code, path])
    head, _, data = p.stdout.partition(b"\n")
    return head.decode(errors="replace"), data


def user_listdir(uid, gid, path):
    """Lists `path` as uid/gid: ('ok', sorted names) or (errno name, None)."""
    code = ("import os,sys,json\n"
            "try:\n"
            "    names = sorted(os.listdir(sys.argv[1]))\n"
            "    print('ok'); print(json.dumps(names))\n"
            "except OSError as e:\n"
            "    print(__import__('errno').errorcode.get(e.errno, str(e.errno)))\n")
    p = as_user(uid, gid, ["/usr/bin/python3", "-c", code, path])
    lines = p.stdout.decode().splitlines()
    if not lines:
        return "no output", None
    if lines[0] == "ok":
        return "ok", json.loads(lines[1])
    return lines[0], None
