"""Helpers for the Docker volume plugin tests (tests/docker/).  Builds on tests/mount/harness.py.

No Docker engine runs here, so `Engine` speaks to the plugin exactly as dockerd's plugin
client does (moby pkg/plugins/client.go and transport/): HTTP/1.1 POST over the unix socket
on one kept-alive connection, no Content-Type, `Accept: application/vnd.docker.plugins.v1.2+json`,
Go's `User-Agent` and `Accept-Encoding: gzip`, a Host that means nothing (recent engines send
`plugin.moby.localhost`), bodies as Go's json.Encoder writes them (compact, then a newline;
Plugin.Activate has an empty body).  Values planted by tests are never printed.
"""
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time


import harness  # noqa: E402
from harness import TestFailure, check  # noqa: E402,F401

ACCEPT = "application/vnd.docker.plugins.v1.2+json"
REPLY_TYPE = "application/vnd.docker.plugins.v1+json"


def mount_id():
    """A mount ID as dockerd makes them: 64 hex digits."""
    return os.urandom(32).hex()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Reply:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw)
        except ValueError:
            self.json = None

    @property
    def err(self):
        return (self.json or {}).get("Err", "")

    def __repr__(self):  # statuses and error texts only: never values
        return "<%d %s>" % (self.status, harness.redact(self.raw)[:300])


class Engine:
    """One plugin client connection, as dockerd keeps it."""

    def __init__(self, sock_path, host="plugin.moby.localhost"):
        self.conn = UnixHTTPConnection(sock_path)
        self.host = host
        self.replies = []
        self.first_sock = None

    def close(self):
        self.conn.close()

    def raw(self, path, body=b"", method="POST", headers=None):
        """Sends one request with exactly these bytes as body; returns a Reply."""
        c = self.conn
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if self.host is not None:
            c.putheader("Host", self.host)
        c.putheader("User-Agent", "Go-http-client/1.1")
        c.putheader("Content-Length", str(len(body)))
        c.putheader("Accept", ACCEPT)
        c.putheader("Accept-Encoding", "gzip")
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        c.endheaders(body)
        if self.first_sock is None:
            self.first_sock = c.sock
        resp = c.getresponse()
        data = resp.read()
        r = Reply(resp.status, dict(resp.getheaders()), data)
        self.replies.append(data)
        check(r.json is not None and isinstance(r.json, dict),
              "%s: the reply is not a JSON object: %r" % (path, r))
        check(resp.getheader("Content-Type") == REPLY_TYPE,
              "%s: Content-Type %r" % (path, resp.getheader("Content-Type")))
        if r.status != 200:
            check(isinstance(r.err, str) and r.err, "%s: status %d without an Err" % (path, r.status))
        return r

    def call(self, method, args):
        """dockerd's Client.Call: args None means no body (Plugin.Activate)."""
        body = b"" if args is None else (json.dumps(args, separators=(",", ":")) + "\n").encode()
        return self.raw("/" + method, body)

    def kept_alive(self):
        """True while every request so far went over the first connection."""
        return self.conn.sock is not None and self.conn.sock is self.first_sock

    # the calls volume/drivers/proxy.go makes
    def activate(self):
        return self.call("Plugin.Activate", None)

    def create(self, name, opts=None):
        return self.call("VolumeDriver.Create", {"Name": name, "Opts": opts})

    def remove(self, name):
        return self.call("VolumeDriver.Remove", {"Name": name})

    def mount(self, name, id):
        return self.call("VolumeDriver.Mount", {"Name": name, "ID": id})

    def unmount(self, name, id):
        return self.call("VolumeDriver.Unmount", {"Name": name, "ID": id})

    def path(self, name):
        return self.call("VolumeDriver.Path", {"Name": name})

    def get(self, name):
        return self.call("VolumeDriver.Get", {"Name": name})

    def list(self):
        return self.call("VolumeDriver.List", {})

    def capabilities(self):
        return self.call("VolumeDriver.Capabilities", {})


def ok(reply, what):
    check(reply.status == 200 and reply.err == "", "%s: %r" % (what, reply))
    return reply


def fails(reply, what, *needles, status=None):
    check(reply.status != 200 and reply.err, "%s: expected an Err, got %r" % (what, reply))
    if status is not None:
        check(reply.status == status, "%s: status %d, expected %d" % (what, reply.status, status))
    for n in needles:
        check(n in reply.err, "%s: Err lacks %r: %r" % (what, n, reply))
    return reply


def mounted_fs(path):
    """The fstype of what is mounted at path, or None."""
    real = os.path.realpath(path)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mnt = fields[4].encode().decode("unicode_escape")
            if mnt == real:
                found = fields[fields.index("-") + 1]
    return found


class PluginSandbox(harness.Sandbox):
    """A Sandbox plus a plugin: socket, state and volumes directories inside it."""

    def __init__(self):
        super().__init__()
        self.sock = os.path.join(self.dir, "plugin.sock")
        self.state = os.path.join(self.dir, "state")
        self.vols = os.path.join(self.dir, "volumes")
        self.log = os.path.join(self.dir, "plugin.log")
        self.proc = None
        self.engines = []
        self.binds = []

    def start_plugin(self, extra=(), expect_fail=False, env=None):
        logf = open(self.log, "ab")
        args = [harness.SECRETFS, "docker-plugin", "--socket", self.sock, "--state", self.state,
                "--volumes", self.vols] + list(extra)
        p = subprocess.Popen(args, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                             env=env or self.env)
        logf.close()
        if expect_fail:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise TestFailure("the plugin kept running; it was expected to refuse to start")
            return p
        self.proc = p
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise TestFailure("the plugin exited %d at start: %s" % (
                    p.returncode, self.log_text()[-1500:]))
            if self.answers():
                return p
            time.sleep(0.02)
        raise TestFailure("the plugin does not answer on its socket")

    def answers(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def stop_plugin(self, sig=signal.SIGTERM):
        """Stops the plugin with sig; returns its exit code."""
        for e in self.engines:
            e.close()
        self.engines = []
        if not self.proc:
            return None
        p, self.proc = self.proc, None
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(sig)
        try:
            return p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise TestFailure("the plugin did not stop on signal %d" % sig)

    def engine(self, host="plugin.moby.localhost"):
        e = Engine(self.sock, host)
        self.engines.append(e)
        return e

    def log_text(self):
        with open(self.log, "rb") as f:
            return harness.redact(f.read())

    def log_bytes(self):
        with open(self.log, "rb") as f:
            return f.read()

    def volume_dir(self, name):
        return os.path.join(self.vols, name)

    def bind(self, name, target_name=None):
        """Bind-mounts a volume where a container would see it (as dockerd does); returns the
        path.  The sandbox is 0755, the volumes directory 0700: only a bind lets other users
        reach a volume, as in Docker."""
        target = os.path.join(self.dir, target_name or ("ctr-" + name))
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", "--bind", self.volume_dir(name), target], check=True)
        self.binds.append(target)
        return target

    def unbind(self, target):
        subprocess.run(["umount", target], check=True)
        self.binds.remove(target)

    def daemon_pids(self):
        pids = []
        if os.path.isdir(self.vols):
            for name in os.listdir(self.vols):
                with contextlib.suppress(OSError, TestFailure, ValueError):
                    pids.append(self.daemon_pid(self.volume_dir(name)))
        return pids

    def __exit__(self, exc_type, *rest):
        """Stops the plugin (SIGTERM, so a sanitizer build reports leaks), cleans up, and fails
        a test that otherwise passed if the plugin's log holds a sanitizer report or a
        planted value."""
        log = b""
        try:
            if exc_type is None and self.proc:
                self.stop_plugin()
            if os.path.exists(self.log):
                log = self.log_bytes()
        finally:
            self.cleanup()
        if exc_type is None:
            check(b"Sanitizer" not in log and b"runtime error" not in log,
                  "a sanitizer report in the plugin's log: %s" % harness.redact(log)[-2000:])
            check(harness.leaks(log) == 0, "a planted value appears in the plugin's log")
        return False

    def cleanup(self):
        for e in self.engines:
            with contextlib.suppress(Exception):
                e.close()
        if self.proc:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=30)
            self.proc = None
        for t in list(self.binds):
            harness.unmount(t)
        pids = self.daemon_pids()
        if os.path.isdir(self.vols):
            for name in os.listdir(self.vols):
                harness.unmount(self.volume_dir(name))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        super().cleanup()


def wait_gone(pid, what, timeout=15):
    harness.wait_for(lambda: not harness.pid_alive(pid), what, timeout=timeout)


def protect_key(sb, tag="pass", kdf="interactive", ends_with_cr=False):
    """Replaces the sandbox's key with one protected by a new canary passphrase (Argon2id
    cost `kdf`); returns (passphrase, a 0600 file holding it).  ends_with_cr: the
    passphrase's last byte is a "\r" (the file then ends "\r\r\n": a reader drops one
    "\n", then one "\r")."""
    passphrase = harness.canary(tag)
    pfile = write_secret_file(sb, "passphrase",
                              passphrase + (b"\r\r\n" if ends_with_cr else b"\n"))
    os.unlink(sb.key)
    sb.run(["keygen", "--passphrase", "--kdf", kdf, "--passphrase-file", pfile,
            sb.key])
    return passphrase, pfile


def write_secret_file(sb, name, data):
    path = os.path.join(sb.dir, name)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path


def store_with_passphrase(sb, pfile, values):
    for name, value in values.items():
        sb.run(["set", name, "--passphrase-file", pfile], input=value)


class ProcWatch:
    """Reads every process's argv and environment, over and over, until stopped: counts
    those that hold `needle`, and how many processes it saw."""

    def __init__(self, needle):
        self.needle = needle
        self.hits, self.seen, self.rounds = [], set(), 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                for what in ("cmdline", "environ"):
                    try:
                        with open("/proc/%s/%s" % (pid, what), "rb") as f:
                            data = f.read()
                    except OSError:
                        continue
                    self.seen.add(pid)
                    if self.needle in data:
                        self.hits.append((pid, what))
            self.rounds += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        return False


def audit_records(path):
    """The JSON records of an audit log (none while it does not exist); fails the test if a
    planted value is in it."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        with open(path, "rb") as f:
            data = f.read()
        check(harness.leaks(data) == 0, "a secret value appears in the audit log %s" % path)
        for line in data.splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def wait_audit_record(path, what, timeout=15, **want):
    """The first record of the log at `path` whose fields equal `want`; waits for it."""
    found = []

    def seen():
        found[:] = [r for r in audit_records(path) if all(r.get(k) == v for k, v in want.items())]
        return bool(found)
    harness.wait_for(seen, "an audit record of %s (%s)" % (what, sorted(want)), timeout=timeout)
    return found[0]
