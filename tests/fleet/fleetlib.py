"""Helpers for the fleet tests (tests/fleet/): a loopback etcd cluster, the sandbox's key and
config pointed at a fresh prefix in it, daemons each pointed at a different member, and
event-driven waits on what the mounts serve.

    with Fleet() as f:                       # 3-member cluster, key, config, prefix
        f.admin(["update-secrets", ...])     # a "fourth process": every endpoint
        mnt = f.mount(0)                     # secretfs mount -f, member 0 first
        f.wait_served([mnt], {"DB": b"v"})   # until every mount serves these exact bytes

Cleanup (mounts, daemons, `secretfs run`s, the cluster, the temp dir) runs on exit, on
failure, and on SIGTERM (meson's timeout).  Values are never printed: failures name secrets
and byte counts; every command's output and every log is searched for planted canaries.
"""
import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
# harness.py moves from tests/mount/ to tests/lib/: take whichever the tree has.
for d in (os.path.join(TESTS, "run"), os.path.join(TESTS, "mount"), os.path.join(TESTS, "lib")):
    sys.path.insert(0, d)

import harness  # noqa: E402
from harness import (SECRETFS, TestFailure, canary, check, leaks, pid_alive,  # noqa: E402,F401
                     redact, run_all, unmount, wait_for)
import etcd_cluster  # noqa: E402
from etcd_cluster import EtcdCluster, EtcdError  # noqa: E402,F401

# [etcd] timeouts the tests give every command and daemon (seconds), one place to change.
DIAL_TIMEOUT = 1
REQUEST_TIMEOUT = 3
# How long a daemon may take to see a change in normal operation / after a fault heals.
SERVE_DEADLINE = 15.0
RECOVER_DEADLINE = 45.0


def need_fleet():
    """Exit 77 unless root, /dev/fuse and etcd are there; cleanup also on SIGTERM."""
    harness.need_fuse()
    reason = etcd_cluster.available()
    if reason:
        print("SKIP: %s" % reason)
        sys.exit(harness.SKIP)
    etcd_cluster.cleanup_on_signals()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def status(mnt):
    return harness.Sandbox.status(None, mnt)


class Inotify:
    """Minimal inotify (ctypes): wait(timeout) returns when any watched dir changed."""
    IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x8, 0x80, 0x100

    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.watched = set()

    def add(self, directory):
        if directory in self.watched:
            return
        mask = self.IN_CLOSE_WRITE | self.IN_MOVED_TO | self.IN_CREATE
        if self.libc.inotify_add_watch(self.fd, directory.encode(), mask) >= 0:
            self.watched.add(directory)

    def wait(self, timeout):
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if r:
            with contextlib.suppress(BlockingIOError):
                while os.read(self.fd, 65536):
                    pass
        return bool(r)

    def close(self):
        os.close(self.fd)


def generation_file(mnt):
    """The daemon's generation file (`notify=` in .status), or None."""
    with contextlib.suppress(OSError):
        return status(mnt).get("notify") or None
    return None


def wait_until(cond, what, mnts=(), timeout=SERVE_DEADLINE, tick=0.1):
    """Waits for cond() to be true, waking on every generation-file change of the given
    mounts (inotify) and at least every `tick` s (a change of .status alone, e.g. the
    connection state, writes no generation file).  Returns the seconds it took."""
    ino = Inotify()
    try:
        for m in mnts:
            g = generation_file(m)
            if g:
                ino.add(os.path.dirname(g))
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            if cond():
                return time.monotonic() - t0
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure("timed out after %.0f s waiting for %s" % (timeout, what))
            ino.wait(min(tick, left))
    finally:
        ino.close()


def serves(mnt, expected):
    """True if `mnt` serves exactly `expected` ({name: bytes}; None: absent)."""
    try:
        for name, value in expected.items():
            path = os.path.join(mnt, name)
            if value is None:
                if os.path.exists(path):
                    return False
            elif read(path) != value:
                return False
    except OSError:
        return False
    return True


def wrong_values(mnt, allowed):
    """Names whose served bytes are in none of their allowed versions ({name: [bytes|None]}).
    Never returns values."""
    bad = []
    for name, versions in allowed.items():
        try:
            got = read(os.path.join(mnt, name))
        except FileNotFoundError:
            got = None
        except OSError as e:
            bad.append("%s (%s)" % (name, e.strerror))
            continue
        if got not in versions:
            bad.append("%s (%s bytes)" % (name, "no" if got is None else len(got)))
    return bad


class _Detached:
    """A detached daemon (not our child) with the bits of Popen that cleanup uses."""

    def __init__(self, pid):
        self.pid = pid

    def poll(self):
        return None if pid_alive(self.pid) else 0

    def wait(self, timeout=None):
        deadline = time.monotonic() + (timeout or 1e9)
        while pid_alive(self.pid):
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("secretfs mount", timeout)
            time.sleep(0.01)
        return 0

    def kill(self):
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


class Fleet(harness.CliSandbox):
    """A CliSandbox (key, config, canary-checked runs) whose store is a fresh prefix in a
    loopback etcd cluster it owns."""

    def __init__(self, members=3, auth_token_ttl=300, etcd_config=""):
        self.daemons = []            # (mnt, Popen, log path)
        self.runners = []
        self.cluster = None
        super().__init__()
        try:
            self.cluster = EtcdCluster(members, auth_token_ttl=auth_token_ttl,
                                       parent_dir=self.dir)
        except BaseException:
            super().cleanup()
            raise
        self.prefix = "sfs-fleet-%s/" % os.urandom(4).hex()
        self.location = self.cluster.location(self.prefix)
        self.etcd_config = etcd_config
        # the daemons' local sealed cache: in the sandbox, not /var/cache/secretfs
        self.cache_file = os.path.join(self.dir, "daemon.cache")
        self.write_fleet_config()

    def write_fleet_config(self, extra=""):
        with open(self.config, "w") as f:
            f.write("[store]\npath = %s\nkey_file = %s\n" % (self.location, self.key))
            f.write("[etcd]\ndial_timeout = %s\nrequest_timeout = %s\ncache_file = %s\n%s\n"
                    % (DIAL_TIMEOUT, REQUEST_TIMEOUT, self.cache_file, self.etcd_config))
            f.write(extra)

    def loc(self, first=0, only=False):
        """This prefix's location with member `first` first (only=True: that member alone)."""
        n = self.cluster.n
        order = [first] if only else [(first + k) % n for k in range(n)]
        return self.cluster.location(self.prefix, order)

    def admin(self, args, member=None, **kw):
        """A writer: `secretfs ARGS` through every endpoint (or member `member` first)."""
        store = self.location if member is None else self.loc(member)
        return self.run(list(args) + ["--store", store], **kw)

    def put_secrets(self, values, member=None, overwrite=False):
        """One `update-secrets --secrets-file` of {name: bytes} (printable values without
        quotes or backslashes; the file keeps them out of argv and failure messages)."""
        self._n_env = getattr(self, "_n_env", 0) + 1
        path = self.write("update-%d.env" % self._n_env, b"".join(
            b"%s='%s'\n" % (k.encode(), v) for k, v in values.items()))
        args = ["update-secrets", "--secrets-file", path]
        if overwrite:
            args.append("--overwrite")
        return self.admin(args, member=member)

    def mount(self, member=0, opts=(), only=False, location=None, name=None, env=None,
              background=False):
        """`secretfs mount -f` of this prefix with member `member` first; returns the
        mountpoint once visible.  Its log is self.log_of(mnt).  background=True: plain
        `secretfs mount` (the daemon detaches and logs to syslog), as a host runs it."""
        name = name or "mnt%d-%d" % (member, len(self.daemons))
        mnt = self.mountpoint(name)
        log = os.path.join(self.dir, name + ".log")
        loc = location or self.loc(member, only=only)
        if background:
            harness.Sandbox.mount(self, mnt, ["--store", loc] + list(opts), env=env)
            open(log, "wb").close()
            self.daemons.append((mnt, _Detached(self.daemon_pid(mnt)), log))
            return mnt
        p = harness.start_foreground(self, mnt, ["--store", loc] + list(opts), log=log,
                                     env=env)
        self.daemons.append((mnt, p, log))
        return mnt

    def daemon(self, mnt):
        for m, p, log in self.daemons:
            if m == mnt:
                return p
        raise KeyError(mnt)

    def log_of(self, mnt):
        for m, p, log in self.daemons:
            if m == mnt:
                with open(log, "rb") as f:
                    return f.read()
        return b""

    def stop_daemon(self, mnt, timeout=20):
        """Unmounts `mnt` and waits for its daemon to exit (it removes its generation file)."""
        p = self.daemon(mnt)
        unmount(mnt)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            raise TestFailure("the daemon of %s did not exit after unmount" % os.path.basename(mnt))

    def wait_served(self, mnts, expected, timeout=SERVE_DEADLINE, what=None):
        """Waits until every mount serves `expected` exactly; returns the seconds it took."""
        return wait_until(lambda: all(serves(m, expected) for m in mnts),
                          what or "%d mount(s) to serve %s" % (len(mnts), ",".join(
                              sorted(expected)[:5])), mnts, timeout)

    def all_logs(self):
        """Every daemon log and every member's log (bytes)."""
        out = b""
        for _, _, log in self.daemons:
            with contextlib.suppress(OSError):
                out += read(log)
        return out + self.cluster.logs().encode(errors="replace")

    def check_no_leaks(self, names=()):
        """No planted canary in any daemon or etcd log, nor any canary or `names` in the
        members' data dirs; no sanitizer report in a foreground daemon's log."""
        logs = self.all_logs()
        check(leaks(logs) == 0, "a secret value appears in a daemon or etcd log")
        for _, _, log in self.daemons:
            with contextlib.suppress(OSError):
                text = read(log)
                check(b"Sanitizer" not in text and b"runtime error:" not in text,
                      "a sanitizer reported an error in the daemon log %s: %s" % (
                          os.path.basename(log), redact(text)[-1500:]))
        # short names could match etcd's own bytes by chance: only names of 8+ bytes
        needles = list(harness._CANARIES) + [n.encode() for n in names if len(n) >= 8]
        found = self.cluster.grep_data(needles)
        check(not found, "plaintext in etcd data dirs: %d needle(s), e.g. %s in %s" % (
            len(found), "a value" if list(found)[0] in harness._CANARIES else
            list(found)[0].decode(), os.path.basename(list(found.values())[0][0])) if found
            else "")

    def cleanup(self):
        for r in self.runners:
            with contextlib.suppress(Exception):
                r.kill_all()
        for mnt, p, _ in self.daemons:
            unmount(mnt)
        deadline = time.monotonic() + 5
        while any(p.poll() is None for _, p, _ in self.daemons) and time.monotonic() < deadline:
            time.sleep(0.02)
        for _, p, _ in self.daemons:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                with contextlib.suppress(Exception):
                    p.wait(5)
        if self.cluster:
            self.cluster.close()
        super().cleanup()


MEMORY_REGION_MAX = 1 << 30   # larger mappings are sanitizer shadow memory, not data


def memory_of(pid):
    """[(secure, bytes)] of every readable mapping of `pid` (root only): secure is true for
    the mlock()ed ones (VmFlags "lo" in /proc/PID/smaps: the secure arenas of
    crypto/secmem.c and libsodium's guarded allocations).  In a sanitizer build, whose
    mlock() is a no-op, the arenas are told by MADV_DONTDUMP ("dd") instead.  Never print
    what it returns."""
    with open("/proc/%d/maps" % pid) as f:
        secure_flag = "dd" if "libasan" in f.read() else "lo"
    maps, cur = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split(None, 2)
            if head and "-" in head[0] and not head[0].endswith(":"):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                cur = [lo, hi, "r" in head[1], False]
                maps.append(cur)
            elif line.startswith("VmFlags:") and cur:
                cur[3] = secure_flag in line.split()[1:]
    out = []
    with open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for lo, hi, readable, locked in maps:
            if not readable or hi - lo > MEMORY_REGION_MAX:
                continue
            try:
                mem.seek(lo)
                out.append((locked, mem.read(hi - lo)))
            except (OSError, ValueError, OverflowError):
                continue   # [vvar] and the like
    return out


def fleet_main(*tests):
    need_fleet()
    run_all(*tests)


def stop_reader(pid, r):
    """Stops a forked reader child with SIGTERM and returns the JSON report it wrote to the
    pipe `r` before exiting."""
    os.kill(pid, signal.SIGTERM)
    data = harness.read_to_eof(r)
    os.waitpid(pid, 0)
    return json.loads(data)
