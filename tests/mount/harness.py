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
