"""Mounts, daemons and the Sandbox that cleans both up (tests/lib/harness.py re-exports all)."""
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile

from core import SECRETFS, TestFailure, wait_for

CACHE_MODES = ("kernel", "none")


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


def genfile_path(mnt, base="/run/secretfs"):
    """Where the daemon serving `mnt` keeps its generation file (fs/notify.c's naming,
    systemd-escape --path style), written out here independently of the C code."""
    raw = os.path.realpath(mnt).encode()
    out, h = "", 0xcbf29ce484222325
    body = raw.lstrip(b"/")
    keep = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.")
    for i, c in enumerate(body):
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        if c == ord("/") and (i + 1 == len(body) or body[i + 1] == ord("/")):
            continue
        if c == ord("/"):
            out += "-"
        elif c in keep and not (not out and c == ord(".")):
            out += chr(c)
        else:
            out += "\\x%02x" % c
    if not body:
        out = "-"
    if len(out) > 180:
        out = out[:180] + "-%016x" % h
    return os.path.join(base, out, "generation")


def genfile_pid(mnt):
    for base in ("/run/secretfs", os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"),
                                               "secretfs")):
        with contextlib.suppress(FileNotFoundError):
            with open(genfile_path(mnt, base)) as f:
                for line in f:
                    if line.startswith("pid="):
                        return int(line[4:])
    raise TestFailure("%s: a container view, and no generation file names its daemon" % mnt)


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
        # the rollback high-water marks of this sandbox's daemons stay in the sandbox
        self.env["SECRETFS_STATE_DIR"] = os.path.join(self.dir, "rollback-state")
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
        """The daemon's pid: .status's pid= line, or for a container view (status=container,
        which names no pid) the mount's generation file."""
        st = self.status(mnt)
        if "pid" in st:
            return int(st["pid"])
        if st.get("view") == "container":
            return genfile_pid(mnt)
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
