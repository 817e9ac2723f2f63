"""Shared helpers for the tests that run the real `secretfs` binary and real FUSE mounts.

Every test is a plain script run by `meson test`: exit 0 pass, 1 fail, 77 skip.  Use
`with Sandbox() as sb:` so mounts, daemons and temp dirs are cleaned up even on failure.
Values planted by tests must never be printed: report names and byte counts only.
"""
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SECRETFS = os.environ.get("SECRETFS_BIN", "secretfs")
SRC = os.environ.get("SFS_TEST_SRC", os.path.join(os.path.dirname(__file__), ".."))
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


def is_mounted(path):
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].encode().decode("unicode_escape")
            if mnt == real:
                return True
    return False


def unmount(path):
    for cmd in (["fusermount3", "-u", "-z", path], ["umount", "-l", path]):
        if not is_mounted(path):
            return
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Sandbox:
    """A temp dir with a key, a store path, a config file and mount bookkeeping."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sfs-test-")
        os.chmod(self.dir, 0o755)
        self.key = os.path.join(self.dir, "master.key")
        self.store = os.path.join(self.dir, "secrets.store")
        self.config = os.path.join(self.dir, "secretfs.ini")
        self.mounts = []
        self.pids = []
        with open(self.config, "w") as f:
            f.write("[store]\npath = %s\nkey_file = %s\n" % (self.store, self.key))
        self.env = dict(os.environ)
        for k in ("SECRETFS_STORE", "SECRETFS_KEY_FILE", "SECRETFS_CONFIG"):
            self.env.pop(k, None)
        self.env["SECRETFS_CONFIG"] = self.config
        self.run(["keygen", self.key])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def write_config(self, text):
        """Replaces the config; [store] lines are added first."""
        with open(self.config, "w") as f:
            f.write("[store]\npath = %s\nkey_file = %s\n" % (self.store, self.key))
            f.write(text)

    def run(self, args, input=None, check_rc=True, env=None, timeout=60):
        """Runs `secretfs ARGS`; returns CompletedProcess (bytes)."""
        p = subprocess.run([SECRETFS] + list(args), input=input, capture_output=True,
                           env=env or self.env, timeout=timeout)
        if check_rc and p.returncode != 0:
            raise TestFailure("secretfs %s exited %d: %s" % (
                args[0], p.returncode, p.stderr.decode(errors="replace")[-2000:]))
        return p

    def set_secrets(self, values):
        """Stores {name: bytes} exactly (one `secretfs set` each)."""
        for name, value in values.items():
            self.run(["set", name], input=value)

    def mountpoint(self, name="mnt"):
        path = os.path.join(self.dir, name)
        os.makedirs(path, exist_ok=True)
        return path

    def mount(self, mnt=None, opts=(), env=None, check_rc=True):
        """Mounts in the background (returns when visible); returns (mnt, pid)."""
        mnt = mnt or self.mountpoint()
        p = self.run(["mount"] + list(opts) + [mnt], env=env, check_rc=check_rc)
        self.mounts.append(mnt)
        if p.returncode != 0:
            return mnt, None
        pid = self.daemon_pid(mnt)
        self.pids.append(pid)
        return mnt, pid

    def daemon_pid(self, mnt):
        with open(os.path.join(mnt, ".status")) as f:
            for line in f:
                if line.startswith("pid="):
                    return int(line[4:])
        raise TestFailure("no pid in .status")

    def status(self, mnt):
        out = {}
        with open(os.path.join(mnt, ".status")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                out[k] = v
        return out

    def cleanup(self):
        for mnt in self.mounts:
            unmount(mnt)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mnt in self.mounts:
            unmount(mnt)
        shutil.rmtree(self.dir, ignore_errors=True)


def main(test):
    """Runs test() and turns the outcome into an exit code."""
    try:
        test()
    except TestFailure as e:
        print("FAIL:", e)
        sys.exit(1)
    print("ok")
    sys.exit(0)


# ---- added for the daemon's mount tests (tests/mount/test_*.py) ----

import calendar
import errno as _errno
import json
import pwd

TEST_USER = "sfs-test-user"
CACHE_MODES = ("kernel", "none")


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


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def errno_of(fn, *args, **kw):
    """Calls fn; returns the errno name of the OSError it raised, or 'ok'."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return _errno.errorcode.get(e.errno, str(e.errno))
    return "ok"


def list_json(sb):
    """`secretfs list --json` as {name: {"size": int, "updated": epoch, "created": epoch}}."""
    out = {}
    for e in json.loads(sb.run(["list", "--json"]).stdout):
        out[e["name"]] = {
            "size": e["size"],
            "created": calendar.timegm(time.strptime(e["created"], "%Y-%m-%dT%H:%M:%SZ")),
            "updated": calendar.timegm(time.strptime(e["updated"], "%Y-%m-%dT%H:%M:%SZ")),
        }
    return out


def wait_for(cond, what, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(step)
    raise TestFailure("timed out after %.0f s waiting for %s" % (timeout, what))


def pid_alive(pid):
    """False once the process is gone or a zombie whose threads have all exited (so its
    file descriptors, /dev/fuse included, are closed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return not (state in ("Z", "X") and tasks == [str(pid)])


def visible(mnt):
    """True once the mount serves its root (the .status view answers)."""
    try:
        return is_mounted(mnt) and os.path.exists(os.path.join(mnt, ".status"))
    except OSError:
        return False


def start_foreground(sb, mnt, opts=(), env=None, log=None, prefix=()):
    """Starts `secretfs mount -f` with stderr to the file `log` (stdout too); returns the
    Popen once the mount is visible.  The Sandbox kills and unmounts it on cleanup."""
    logf = open(log or os.path.join(sb.dir, "daemon.log"), "ab")
    p = subprocess.Popen(list(prefix) + [SECRETFS, "mount", "-f"] + list(opts) + [mnt],
                         stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                         env=env or sb.env)
    logf.close()
    sb.mounts.append(mnt)
    sb.pids.append(p.pid)
    try:
        wait_for(lambda: visible(mnt) or p.poll() is not None, "the foreground mount")
    except TestFailure:
        p.kill()
        raise
    if p.poll() is not None:
        raise TestFailure("foreground daemon exited %d before mounting" % p.returncode)
    return p


VIEWS = (".env", ".env.docker", ".env.go", ".env.json", ".env.node", ".env.python", ".status")


def expected_listing(names):
    return sorted(set(names) | set(VIEWS))


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
    tb = [f for f in traceback.extract_tb(e.__traceback__)
          if os.path.dirname(os.path.abspath(f.filename)) == os.path.dirname(
              os.path.abspath(__file__))] or traceback.extract_tb(e.__traceback__)
    return ", ".join("%s:%d" % (os.path.basename(f.filename), f.lineno) for f in tb[-3:])


def _safe_message(e):
    """Messages of exceptions that cannot carry a value (others may quote data: omitted)."""
    if isinstance(e, (OSError, KeyError, subprocess.TimeoutExpired, TestFailure)):
        return str(e)[:500]
    return "(message omitted: it may quote secret data)"


# ---- added for the CLI end-to-end tests (tests/cli/test_*.py) ----

import glob

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


class CliSandbox(Sandbox):
    """A Sandbox whose run() records every command and fails the test as soon as a canary
    shows up in its stderr, or in its stdout for anything but `get`."""

    def __init__(self):
        self.ran = 0
        super().__init__()

    def run(self, args, input=None, check_rc=True, env=None, timeout=60, rc=None, cwd=None,
            umask=None):
        """Runs `secretfs ARGS`.  rc=N asserts the exit code (default: 0 when check_rc)."""
        pre = (lambda: os.umask(umask)) if umask is not None else None
        p = subprocess.run([SECRETFS] + list(args), input=input, capture_output=True,
                           env=env or self.env, timeout=timeout, cwd=cwd, preexec_fn=pre)
        self.ran += 1
        what = "secretfs %s" % " ".join(a if isinstance(a, str) else "<bytes>" for a in args)
        check(leaks(p.stderr) == 0, "%s: a secret value appears in stderr" % what)
        check(b"Sanitizer" not in p.stderr and b"runtime error:" not in p.stderr,
              "%s: a sanitizer reported an error: %s" % (what, redact(p.stderr)[-1500:]))
        if not args or args[0] != "get":
            check(leaks(p.stdout) == 0, "%s: a secret value appears in stdout" % what)
        want = rc if rc is not None else (0 if check_rc else None)
        if want is not None and p.returncode != want:
            raise TestFailure("%s exited %d, expected %d; stderr: %s" % (
                what, p.returncode, want, redact(p.stderr)[-1500:]))
        return p

    def fails(self, args, rc, *needles, **kw):
        """Runs and asserts exit code `rc` and that stderr holds every needle (str)."""
        p = self.run(args, rc=rc, **kw)
        err = p.stderr.decode(errors="replace")
        for n in needles:
            check(n in err, "secretfs %s: stderr lacks %r: %s" % (
                args[0] if args else "", n, redact(p.stderr)[-1500:]))
        return p

    def store_bytes(self, path=None):
        with open(path or self.store, "rb") as f:
            return f.read()

    def names(self, args=()):
        """`list --json` as {name: size}."""
        return {e["name"]: e["size"]
                for e in json.loads(self.run(["list", "--json"] + list(args)).stdout)}

    def get(self, name, args=()):
        return self.run(["get", name] + list(args)).stdout

    def temp_files(self, directory=None):
        """Leftover temporary store files in `directory` (default: the sandbox)."""
        return sorted(os.path.basename(p)
                      for p in glob.glob(os.path.join(directory or self.dir, "*.tmp.*")))

    def write(self, name, data, mode=0o600):
        """Writes bytes or str to a file in the sandbox; returns its path."""
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(path, mode)
        return path

    def env_with(self, **kw):
        """self.env with variables set (None removes one)."""
        env = dict(self.env)
        for k, v in kw.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env
