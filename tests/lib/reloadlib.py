"""Helpers shared by the reload tests (tests/reload/).  Builds on tests/mount/harness.py.

Values planted here are never printed: failures name secrets and byte counts only.
"""
import hashlib
import json
import os
import shutil
import signal
import sys
import time


import harness  # noqa: E402
from harness import Sandbox, TestFailure, check, need_fuse, read_to_eof, run_all  # noqa: E402,F401

CACHE_MODES = ("kernel", "none")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def read_small(path, chunk=7):
    """Reads a whole file with many small read()s."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while True:
            b = os.read(fd, chunk)
            if not b:
                return b"".join(parts)
            parts.append(b)
    finally:
        os.close(fd)


def absent(path):
    """True if open() and stat() both say ENOENT."""
    try:
        os.stat(path)
        return False
    except FileNotFoundError:
        pass
    try:
        with open(path, "rb"):
            return False
    except FileNotFoundError:
        return True


def status(mnt):
    out = {}
    with open(os.path.join(mnt, ".status")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            out[k] = v
    return out


def store_cmd(sb, store, args, input=None):
    """Runs a store command against an explicit store file."""
    return sb.run(list(args) + ["--store", store], input=input)


def make_store(sb, store, values):
    """Creates (or extends) the store file `store` with {name: bytes}."""
    for name, value in values.items():
        store_cmd(sb, store, ["set", name], input=value)


def install_store(sb, prepared):
    """Replaces sb.store with a copy of `prepared`, atomically (copy beside it, rename)."""
    tmp = sb.store + ".incoming"
    shutil.copyfile(prepared, tmp)
    os.rename(tmp, sb.store)


def replace_values(sb, values):
    """Makes the store hold exactly {name: bytes} (built aside, then renamed into place)."""
    staged = sb.store + ".staged"
    if os.path.exists(staged):
        os.unlink(staged)
    make_store(sb, staged, values)
    os.rename(staged, sb.store)


def reload_cli(sb, mnt, timeout=20):
    """`secretfs reload MNT`; returns CompletedProcess (never raises on exit status)."""
    return sb.run(["reload", "--timeout", str(timeout), mnt], check_rc=False,
                  timeout=timeout + 30)


def reload_ok(sb, mnt):
    p = reload_cli(sb, mnt)
    check(p.returncode == 0, "secretfs reload exited %d: %s" % (
        p.returncode, p.stderr.decode(errors="replace")[-500:]))


def sighup_and_wait(mnt, pid, timeout=20.0):
    """Sends SIGHUP and waits until .status counts one more reload; returns .status."""
    before = int(status(mnt)["reloads"])
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(mnt)
        if int(st["reloads"]) > before:
            return st
        time.sleep(0.001)
    raise TestFailure("no reload reported within %.0f s of SIGHUP" % timeout)


def mem_of(pid):
    """{'VmRSS': kB, 'VmLck': kB, ...} of a process."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k.startswith("Vm") or k == "Threads":
                out[k] = int(v.split()[0])
    return out


def sanitized_build():
    """True if the secretfs under test is built with AddressSanitizer (whose quarantine
    holds freed memory and whose mlock is a no-op, so memory figures mean nothing)."""
    path = shutil.which(harness.SECRETFS) or harness.SECRETFS
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


def bind_file(sb, src, name="bound"):
    """Bind-mounts the single file `src` onto a new file in the sandbox; returns its path.
    The bind is unmounted (before the FUSE mount) by the sandbox's cleanup."""
    d = os.path.join(sb.dir, "bind")
    os.makedirs(d, exist_ok=True)
    target = os.path.join(d, name)
    open(target, "wb").close()
    rc = os.spawnvp(os.P_WAIT, "mount", ["mount", "--bind", src, target])
    check(rc == 0, "mount --bind of %s failed (exit %d)" % (os.path.basename(src), rc))
    sb.mounts.insert(0, target)
    return target


# ---- self-checking values for the stress tests ----

def checked_value(gen, name, size):
    """A value of exactly `size` bytes that says its generation and name and carries a
    SHA-256 of everything before the checksum line."""
    head = ("gen=%s name=%s len=%06d\n" % (gen, name, size)).encode()
    tail_len = len("sum=") + 64 + 1
    fill = size - len(head) - tail_len
    assert fill > 0
    seed = hashlib.sha256(("%s/%s" % (gen, name)).encode()).hexdigest().encode()
    body = (seed * (fill // len(seed) + 1))[:fill - 1] + b"\n"
    digest = hashlib.sha256(head + body).hexdigest().encode()
    value = head + body + b"sum=" + digest + b"\n"
    assert len(value) == size
    return value


def verify_value(data, name):
    """Returns the generation tag of a whole value, or None if it is torn or mixed."""
    if len(data) < 30 or not data.startswith(b"gen="):
        return None
    nl = data.find(b"\n")
    try:
        fields = dict(f.split(b"=", 1) for f in data[:nl].split(b" "))
        size = int(fields[b"len"])
    except (ValueError, KeyError):
        return None
    if size != len(data) or fields.get(b"name") != name.encode():
        return None
    cut = len(data) - (len("sum=") + 64 + 1)
    if data[cut:cut + 4] != b"sum=" or not data.endswith(b"\n"):
        return None
    if hashlib.sha256(data[:cut]).hexdigest().encode() != data[cut + 4:-1]:
        return None
    return fields[b"gen"].decode()


def each_mode(fn):
    """Runs fn(sb, cache) in a fresh sandbox for each cache mode."""
    for cache in CACHE_MODES:
        with Sandbox() as sb:
            print("-- cache=%s" % cache, flush=True)
            fn(sb, cache)


def fork_reader(body):
    """Runs body(out_fd) in a child process that writes its JSON report to out_fd; returns
    (pid, read end) for collect_readers."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        code = 0
        try:
            os.close(r)
            body(w)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(w)
    return child, r


def collect_readers(children):
    """Waits for fork_reader children; returns each one's report, or {"crashed": status}."""
    results = []
    for child, r in children:
        data = read_to_eof(r)
        _, status = os.waitpid(child, 0)
        results.append(json.loads(data) if data else {"crashed": status})
    return results
