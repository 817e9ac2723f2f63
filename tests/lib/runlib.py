"""Helpers for the `secretfs run` tests: starting run, the test child, /proc inspection,
and sealing a store directly (to plant what the CLI refuses to store).

Values planted by tests are never printed: failures name variables and byte counts only."""
import base64
import contextlib
import ctypes
import hashlib
import os
import signal
import struct
import subprocess
import sys
import time

from harness import (SECRETFS, SRC, Sandbox, TestFailure, check, need_fuse,  # noqa: F401
                     hostile_values, run_all, wait_for, pid_alive, unmount)

PY = "/usr/bin/python3"
MEMORY_REGION_MAX = 1 << 30
CHILD = os.path.join(SRC, "run", "child.py")


def proc_stat(pid):
    """(state, ppid, pgid) of pid, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), int(fields[2])


def children_of(pid):
    """[(child pid, state)] of every process whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[1] == pid:
                out.append((int(d), st[0]))
    return out


def descendants(pid):
    found, todo = [], [pid]
    while todo:
        for c, _ in children_of(todo.pop()):
            found.append(c)
            todo.append(c)
    return found


def all_cmdlines():
    """{pid: raw cmdline bytes} of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    out[int(d)] = f.read()
    return out


def memory_holds(pid, needles):
    """The needles found anywhere in pid's readable memory (root only)."""
    found = set()
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            if "r" not in parts[1]:
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if hi - lo > MEMORY_REGION_MAX:  # sanitizer shadow memory, not data
                continue
            overlap = max(len(n) for n in needles)
            prev = b""
            for at in range(lo, hi, 1 << 20):
                try:
                    mem.seek(at)
                    data = prev + mem.read(min(1 << 20, hi - at))
                except (OSError, ValueError, OverflowError):
                    prev = b""
                    continue
                found.update(n for n in needles if n in data)
                prev = data[-overlap:]
    return found


class Runner:
    """`secretfs run` started in the background; stderr to a file in the sandbox."""

    def __init__(self, sb, args, env=None, stdout=None, name="run"):
        self.sb = sb
        self.err_path = os.path.join(sb.dir, name + ".stderr")
        errf = open(self.err_path, "wb")
        self.p = subprocess.Popen([SECRETFS, "run"] + list(args), stdin=subprocess.DEVNULL,
                                  stdout=stdout or subprocess.DEVNULL, stderr=errf,
                                  env=env or sb.env)
        errf.close()
        self.pid = self.p.pid
        runners = getattr(sb, "runners", [])
        runners.append(self)
        sb.runners = runners

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read()

    def wait(self, timeout=20):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("secretfs run did not exit within %d s" % timeout)

    def kill_all(self):
        victims = descendants(self.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        for v in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(v, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.p.wait(5)


class RunSandbox(Sandbox):
    """A Sandbox that also kills every `secretfs run` (and its children) it started."""

    def cleanup(self):
        for r in getattr(self, "runners", []):
            r.kill_all()
        # let each daemon unmount cleanly (it then removes its generation file) before the
        # harness's cleanup SIGKILLs whatever is left
        for mnt in self.mounts:
            unmount(mnt)
        deadline = time.monotonic() + 3
        while any(pid_alive(p) for p in self.pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        super().cleanup()


class ChildDir:
    """What the test child (child.py) records: env.PID, signals.PID, started."""

    def __init__(self, sb, name="child"):
        self.dir = os.path.join(sb.dir, name)
        os.makedirs(self.dir, exist_ok=True)

    def argv(self, *opts):
        return [PY, CHILD, self.dir] + list(opts)

    def pids(self):
        """Child pids in start order."""
        path = os.path.join(self.dir, "started")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [int(x.split()[0]) for x in f.read().split("\n") if x.strip()]

    def start_time(self, pid):
        with open(os.path.join(self.dir, "started")) as f:
            for line in f:
                p, t = line.split()
                if int(p) == pid:
                    return float(t)
        return None

    def env(self, pid):
        """The child's environment as {name bytes: value bytes}."""
        with open(os.path.join(self.dir, "env.%d" % pid), "rb") as f:
            return parse_env0(f.read())

    def signals(self, pid):
        """[(signal name, monotonic time)] the child received."""
        path = os.path.join(self.dir, "signals.%d" % pid)
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [(l.split()[0], float(l.split()[1])) for l in f if l.strip()]

    def wait_started(self, n, timeout=10):
        wait_for(lambda: len(self.pids()) >= n, "child #%d to start" % n, timeout)
        return self.pids()[n - 1]


def parse_env0(raw):
    """NAME=VALUE entries separated by NUL as {name: value}.  A name set twice fails the
    test: getenv() would see the first, another reader the last."""
    env = {}
    for item in raw.split(b"\0"):
        if item:
            k, _, v = item.partition(b"=")
            check(k not in env, "%s is set twice in the environment" % k.decode(errors="replace"))
            env[k] = v
    return env


def compare_env(got, want, what):
    """Fails naming the variables (never the values) that differ; both are {bytes: bytes}."""
    bad = sorted(k.decode() for k, v in want.items() if got.get(k) != v)
    check(not bad, "%s: wrong or missing value for %s" % (what, ", ".join(bad[:10])))


# ---- sealing a store without the CLI (format: README "Store and key formats") ----

def seal_store(store_path, key_path, entries):
    """Writes a version-1 store holding {name: bytes} exactly, names unchecked."""
    with open(key_path) as f:
        key = base64.b64decode(f.read().strip().split(":", 1)[1])
    sodium = ctypes.CDLL("libsodium.so.23")
    check(sodium.sodium_init() >= 0, "libsodium did not initialize")
    plain = struct.pack("<I", len(entries))
    for name in sorted(entries, key=lambda n: n.encode()):
        value, nb = entries[name], name.encode()
        plain += struct.pack("<H", len(nb)) + nb + struct.pack("<I", len(value)) + value
        plain += struct.pack("<qq", 1700000000, 1700000000)
    nonce = os.urandom(24)
    keyid = hashlib.blake2b(key, digest_size=8, person=b"secretfs-keyid-1").digest()
    head = b"SFSSTORE" + struct.pack("<HH", 1, 0) + keyid
    head += struct.pack("<Q", 68 + len(plain) + 16) + nonce
    head += hashlib.blake2b(head, digest_size=16).digest()
    out = ctypes.create_string_buffer(len(plain) + 16)
    out_len = ctypes.c_ulonglong(0)
    rc = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out, ctypes.byref(out_len), plain, ctypes.c_ulonglong(len(plain)), head,
        ctypes.c_ulonglong(len(head)), None, nonce, key)
    check(rc == 0, "sealing failed")
    with open(store_path, "wb") as f:
        f.write(head + out.raw[:out_len.value])


def reload(sb, mnt):
    """`secretfs reload MNT`; returns the monotonic time it returned."""
    sb.run(["reload", mnt])
    return time.monotonic()
