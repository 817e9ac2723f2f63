"""Helpers for the fault-injection tests (tests/faults/).  Builds on tests/mount/harness.py
and tests/reload/reloadlib.py; what is here is only what those lack: strace-driven syscall
profiles and fault injection, a small tmpfs, big self-checking stores, and the daemon's
generation file.

Values planted here are never printed: failures name secrets, counts and byte sizes only.
"""
import collections
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys

import harness  # noqa: E402
import reloadlib  # noqa: E402
from harness import SECRETFS, SKIP, check, is_mounted  # noqa: E402,F401

STRACE = shutil.which("strace")


def need_strace():
    if not STRACE:
        print("SKIP: needs strace (scripts/install-deps.sh installs it)")
        sys.exit(SKIP)


def need_root():
    if os.geteuid() != 0:
        print("SKIP: needs root (tmpfs and bind mounts)")
        sys.exit(SKIP)


# ---- strace: which system calls a command makes, and faults injected into them ----

# "PID name(args) = ret", "PID name(args <unfinished ...>", "PID <... name resumed>..."
_CALL = re.compile(r"^(?:\[pid\s+)?\d+\]?\s+([a-z_0-9]+)\(")


def strace_run(sb, args, log, inject=(), input=None, timeout=120, env=None, preexec=None):
    """Runs `secretfs ARGS` under `strace -f -y -o LOG` with `-e inject=SPEC` for each spec.
    The log (which holds the command line) stays in the sandbox and is never printed.
    Returns the CompletedProcess of strace (its exit status is the command's; -9 if the
    command was killed by SIGKILL)."""
    cmd = [STRACE, "-f", "-qq", "-y", "-s", "0", "-o", log]
    for spec in inject:
        cmd += ["-e", "inject=" + spec]
    env = dict(env or sb.env)
    # LeakSanitizer (in the sanitizer build) cannot stop the world of a traced process
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "detect_leaks=0"]))
    return subprocess.run(cmd + [SECRETFS] + list(args), input=input, capture_output=True,
                          env=env, timeout=timeout, preexec_fn=preexec)


def calls(log):
    """The system calls in an strace log, in order, as [(name, line)] (one per call: a
    resumed call is not counted twice)."""
    out = []
    with open(log, errors="replace") as f:
        for line in f:
            m = _CALL.match(line)
            if m:
                out.append((m.group(1), line.rstrip("\n")))
    return out


def points(log):
    """Every syscall invocation of a log as (name, k): the k-th call of that name, the
    coordinates `strace -e inject=NAME:...:when=K` takes (it counts per syscall and per
    process: `inject=all:when=N` would fire at the N-th call of each name, not at the N-th
    call overall)."""
    seen = collections.Counter()
    out = []
    for name, _ in calls(log):
        seen[name] += 1
        out.append((name, seen[name]))
    return out


def nth_matching(log, name, pattern):
    """k such that the k-th call of `name` is the first whose line matches `pattern`, or
    None."""
    k = 0
    for n, line in calls(log):
        if n == name:
            k += 1
            if re.search(pattern, line):
                return k
    return None


def injected(log):
    """The log lines of calls strace tampered with."""
    return [line for _, line in calls(log) if "(INJECTED)" in line]


# ---- a small tmpfs and read-only bind mounts, always undone ----

@contextlib.contextmanager
def tmpfs(path, size, extra=""):
    """Mounts a tmpfs of `size` (mount's syntax: "64k") on `path` for the with-block."""
    os.makedirs(path, exist_ok=True)
    opts = "size=%s,mode=0755%s" % (size, extra)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "sfs-faults", path],
                       capture_output=True)
    check(p.returncode == 0, "cannot mount a tmpfs on %s: %s" % (
        path, p.stderr.decode(errors="replace")))
    try:
        yield path
    finally:
        umount(path)


@contextlib.contextmanager
def read_only_bind(path):
    """Makes the directory `path` read-only (a read-only bind mount over itself)."""
    p = subprocess.run(["mount", "--bind", path, path], capture_output=True)
    check(p.returncode == 0, "mount --bind failed: %s" % p.stderr.decode(errors="replace"))
    try:
        p = subprocess.run(["mount", "-o", "remount,bind,ro", path], capture_output=True)
        check(p.returncode == 0, "remount,ro failed: %s" % p.stderr.decode(errors="replace"))
        yield path
    finally:
        umount(path)


def umount(path):
    for _ in range(5):
        if not is_mounted(path):
            return
        subprocess.run(["umount", path], capture_output=True)
        if is_mounted(path):
            subprocess.run(["umount", "-l", path], capture_output=True)


def remount_tmpfs(path, size):
    p = subprocess.run(["mount", "-o", "remount,size=%s" % size, path], capture_output=True)
    check(p.returncode == 0, "cannot resize the tmpfs: %s" % p.stderr.decode(errors="replace"))


# ---- what is in a directory ----

def temp_files(directory):
    """Leftover temporary store files (STORE.tmp.XXXXXX)."""
    return sorted(n for n in os.listdir(directory) if ".tmp." in n)


def plaintext_on_disk(directory, values):
    """Names of files in `directory` that hold any of `values` (bytes) in the clear."""
    hits = []
    for n in sorted(os.listdir(directory)):
        path = os.path.join(directory, n)
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if any(v in data for v in values):
            hits.append(n)
    return hits


# ---- big stores of self-checking values ----

def value_size(i):
    """Sizes 120-375 bytes, varied per name."""
    return 120 + (i * 37) % 256


def big_values(gen, n):
    """{name: value} of `n` self-checking values (reloadlib.checked_value) of generation
    `gen`: each says its generation and name and carries a SHA-256."""
    return {"S%05d" % i: reloadlib.checked_value(gen, "S%05d" % i, value_size(i))
            for i in range(n)}


def build_store(sb, store, values):
    """Writes a new store file `store` holding exactly `values`, in one update-secrets
    (--secret-mount of one file per value, so the bytes are stored exactly)."""
    d = store + ".src"
    os.makedirs(d)
    args = ["update-secrets", "--overwrite", "--store", store]
    for name, value in values.items():
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(value)
        args += ["--secret-mount", path]
    sb.run(args, timeout=300)
    shutil.rmtree(d)


# ---- the daemon's generation file (README: "seq turns odd when a reload starts") ----

def notify_path(mnt):
    st = reloadlib.status(mnt)
    return st.get("notify") or None


def read_notify(path):
    """{'pid': .., 'generation': .., 'seq': ..} from the generation file, or None."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition("=")
        if v.isdigit():
            out[k] = int(v)
    return out if "seq" in out else None


# ---- what a refused command must look like ----

def checked(p, what, rc=None, needles=(), stdout_may_leak=False):
    """Checks a finished `secretfs` run (CompletedProcess, bytes): no planted canary in its
    stderr (nor stdout, unless `stdout_may_leak`), no sanitizer report, exit status `rc`
    (when given) and every needle (str) in stderr.  Returns stderr as text, canaries
    redacted."""
    err = harness.redact(p.stderr)
    check(harness.leaks(p.stderr) == 0, "%s: a secret value appears in stderr" % what)
    if not stdout_may_leak:
        check(harness.leaks(p.stdout) == 0, "%s: a secret value appears in stdout" % what)
    check(b"Sanitizer" not in p.stderr and b"runtime error:" not in p.stderr,
          "%s: a sanitizer reported an error: %s" % (what, err[-1500:]))
    if rc is not None:
        check(p.returncode == rc, "%s exited %d, expected %d; stderr: %s" % (
            what, p.returncode, rc, err[-1500:]))
    for n in needles:
        check(n in err, "%s: stderr lacks %r: %s" % (what, n, err[-1500:]))
    return err


def store_set(sb, store=None, args=()):
    """{name: value} of the store (list --json, then get for each name); None if the store
    does not open.  The values stay in memory, never in a message."""
    extra = list(args) + (["--store", store] if store else [])
    p = sb.run(["list", "--json"] + extra, check_rc=False)
    if p.returncode != 0:
        return None
    names = [e["name"] for e in json.loads(p.stdout)]
    return {n: sb.run(["get", n] + extra).stdout for n in names}


def same_set(got, want):
    """True if {name: bytes} sets are equal (compares without printing)."""
    return got is not None and sorted(got) == sorted(want) and all(
        got[n] == want[n] for n in want)


def write_env(path, values):
    """Writes {name: bytes} as a dotenv file of single-quoted values (no quote, newline or
    backslash may occur in them); returns path."""
    with open(path, "wb") as f:
        for n, v in values.items():
            assert not any(c in v for c in b"'\n\\")
            f.write(b"%s='%s'\n" % (n.encode(), v))
    os.chmod(path, 0o600)
    return path
