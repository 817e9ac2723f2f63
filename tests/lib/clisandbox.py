"""The CLI sandbox that fails a test when a canary leaks (tests/lib/harness.py re-exports all)."""
import calendar
import glob
import json
import os
import subprocess
import time

from core import SECRETFS, TestFailure, check, leaks, redact
from mounts import Sandbox


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
