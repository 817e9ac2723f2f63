"""A real Docker engine for the plugin's tests (tests/docker/test_engine_*.py).

`Dockerd` starts Debian's dockerd (20.10) without network or registry under a temporary
directory with its own socket (a private DOCKER_HOST), and drives it with Debian's client
/usr/bin/docker (same API version).  The test image is built here: Debian's busybox and the
libraries `ldd` lists for it, loaded with `docker import` (no registry is reachable).

The plugin runs as in production, found by dockerd in /run/docker/plugins; each run uses a
driver name of its own (`sfs-test-PID-N`) so that tests running at the same time on this
machine never meet.  Everything is stopped by pid and removed, also when a test fails.
Values planted by tests are never printed: outputs are passed through harness.redact.
"""
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from dockerlib import PluginSandbox, TestFailure, check, harness  # noqa: F401

DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
IMAGE = "sfs-test-busybox:1"
PLUGINS_DIR = "/run/docker/plugins"
BUSYBOX = "/usr/bin/busybox"
APPLETS = ("sh", "cat", "ls", "id", "sleep", "echo", "test", "stat", "wc", "grep", "env",
           "true", "printf")

_PR_SET_CHILD_SUBREAPER = 36
_counter = [0]


def skip(why):
    print("SKIP: %s" % why)
    sys.exit(harness.SKIP)


def become_subreaper():
    """dockerd's containerd is reparented to us when dockerd is killed, so we can reap it
    (a restarted dockerd refuses to start while the old containerd lingers)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def need_engine():
    harness.need_fuse()
    for p in (DOCKER, DOCKERD, "/usr/bin/containerd", BUSYBOX):
        if not os.path.exists(p):
            skip("%s is missing (scripts/install-deps.sh installs docker.io and busybox)" % p)
    become_subreaper()


def driver_name():
    _counter[0] += 1
    return "sfs-test-%d-%d" % (os.getpid(), _counter[0])


def _pid_of(path):
    with contextlib.suppress(OSError, ValueError):
        with open(path) as f:
            return int(f.read().strip())
    return None


def _reap(pid, timeout):
    """Waits for pid to be gone, reaping it if it is our child (we are a subreaper)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            r, _ = os.waitpid(pid, os.WNOHANG)
            if r == pid:
                return True
        if not harness.pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


class Dockerd:
    """One dockerd of our own.  Use as a context manager; start() skips the test when dockerd
    cannot start here."""

    def __init__(self, live_restore=False):
        self.dir = tempfile.mkdtemp(prefix="sfs-dockerd-")
        self.sock = os.path.join(self.dir, "docker.sock")
        self.pidfile = os.path.join(self.dir, "docker.pid")
        self.log = os.path.join(self.dir, "dockerd.log")
        self.proc = None
        self.live_restore = live_restore
        self.env = dict(os.environ)
        self.env["DOCKER_HOST"] = "unix://" + self.sock
        self.env["DOCKER_CONFIG"] = os.path.join(self.dir, "client")
        self.env.pop("DOCKER_CONTEXT", None)
        self.containers = []
        self.image_built = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    # ---- the daemon ----

    def start(self, first=True):
        with open(os.path.join(self.dir, "daemon.json"), "w") as f:
            json.dump({"live-restore": self.live_restore}, f)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [DOCKERD, "--iptables=false", "--ip6tables=false", "--bridge=none",
             "--storage-driver=vfs", "--data-root", os.path.join(self.dir, "root"),
             "--exec-root", os.path.join(self.dir, "exec"), "--pidfile", self.pidfile,
             "-H", "unix://" + self.sock, "--config-file",
             os.path.join(self.dir, "daemon.json"), "--shutdown-timeout", "2"],
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, env=self.env)
        logf.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.docker(["version", "--format", "{{.Server.Version}}"],
                           check_rc=False).returncode == 0:
                return
            time.sleep(0.1)
        tail = self.log_text()[-800:]
        self.stop()
        if first:
            skip("dockerd cannot start here: %s" % tail)
        raise TestFailure("dockerd did not start again: %s" % tail)

    def containerd_pid(self):
        return _pid_of(os.path.join(self.dir, "exec", "containerd", "containerd.pid"))

    def kill(self):
        """SIGKILL, as a crash; then waits for its containerd to be reaped, so start() can
        follow (else: `libcontainerd: containerd is still running`)."""
        cpid = self.containerd_pid()
        if self.proc:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None
        if cpid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(cpid, signal.SIGKILL)
            check(_reap(cpid, 30), "the killed dockerd's containerd (pid %d) is still there" % cpid)

    def stop(self):
        """SIGTERM (a clean stop: with live-restore, containers keep running)."""
        if not self.proc:
            return
        cpid = self.containerd_pid()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if cpid:
            _reap(cpid, 30)

    def log_text(self):
        with contextlib.suppress(OSError):
            with open(self.log, "rb") as f:
                return harness.redact(f.read())
        return ""

    # ---- the client ----

    def docker(self, args, check_rc=True, timeout=120, input=None, env=None, cwd=None):
        """Runs /usr/bin/docker ARGS; returns CompletedProcess (text, canaries redacted in
        what a failure shows)."""
        p = subprocess.run([DOCKER] + list(args), capture_output=True, timeout=timeout,
                           input=input, env=env or self.env, cwd=cwd)
        if check_rc and p.returncode != 0:
            raise TestFailure("docker %s exited %d: %s" % (
                " ".join(a for a in args[:3]), p.returncode, harness.redact(p.stderr)[-1500:]))
        return p

    def docker_compose(self, args, env, cwd, timeout=180):
        """docker-compose ARGS in cwd (talks to this dockerd through env's DOCKER_HOST)."""
        return subprocess.run(["/usr/bin/docker-compose"] + list(args), capture_output=True,
                              timeout=timeout, env=env, cwd=cwd)

    def out(self, args, **kw):
        return self.docker(args, **kw).stdout.decode(errors="replace")

    def fails(self, args, *needles):
        """docker ARGS must fail, and its stderr (the CLI's own output) name every needle."""
        p = self.docker(args, check_rc=False)
        err = harness.redact(p.stderr)
        check(p.returncode != 0, "docker %s succeeded; expected a failure" % " ".join(args[:3]))
        for n in needles:
            check(n in err, "docker %s: the error lacks %r: %s" % (" ".join(args[:3]), n,
                                                                    err[-800:]))
        check(harness.leaks(p.stdout + p.stderr) == 0, "a planted value in docker's output")
        return err

    def build_image(self):
        """The test image: busybox, its libraries, applet links, /tmp."""
        if self.image_built:
            return
        root = os.path.join(self.dir, "image-root")
        os.makedirs(os.path.join(root, "bin"))
        os.makedirs(os.path.join(root, "tmp"), mode=0o1777)
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
        ldd = subprocess.run(["ldd", BUSYBOX], capture_output=True, text=True, check=True)
        for line in ldd.stdout.splitlines():
            parts = line.split()
            lib = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
            if not lib.startswith("/"):
                continue  # linux-vdso
            dst = root + lib
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(os.path.realpath(lib), dst)
        for a in APPLETS:
            os.symlink("busybox", os.path.join(root, "bin", a))
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        self.docker(["import", "-c", "ENV PATH=/bin", "-", IMAGE], input=tar.stdout.read())
        tar.wait()
        shutil.rmtree(root)
        self.image_built = True

    def run(self, args, check_rc=True, timeout=120):
        """docker run --rm ARGS (IMAGE and the command are in ARGS)."""
        return self.docker(["run", "--rm", "--network", "none"] + list(args),
                           check_rc=check_rc, timeout=timeout)

    def start_container(self, name, args, cmd=("sleep", "600")):
        """A detached container that keeps running; removed at cleanup."""
        self.containers.append(name)
        self.docker(["run", "-d", "--network", "none", "--stop-timeout", "1", "--name", name] +
                    list(args) + [IMAGE] + list(cmd))
        return name

    def exec(self, name, cmd, user=None, check_rc=True):
        return self.docker(["exec"] + (["--user", user] if user else []) + [name] + list(cmd),
                           check_rc=check_rc)

    def volumes(self, driver):
        names = self.out(["volume", "ls", "-q", "--filter", "driver=" + driver]).split()
        return sorted(names)

    def inspect_volume(self, name):
        return json.loads(self.out(["volume", "inspect", name]))[0]

    def cleanup(self):
        if self.proc:
            for c in self.containers:
                self.docker(["rm", "-f", c], check_rc=False, timeout=60)
            self.stop()
        else:
            cpid = self.containerd_pid()
            if cpid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(cpid, signal.SIGKILL)
                _reap(cpid, 30)
        # whatever dockerd left mounted under its directory (vfs layers, shm, netns)
        with open("/proc/self/mountinfo") as f:
            mnts = [line.split()[4].encode().decode("unicode_escape") for line in f]
        for m in sorted((m for m in mnts if m.startswith(self.dir + "/")), reverse=True):
            subprocess.run(["umount", "-l", m], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


class EnginePlugin(PluginSandbox):
    """A plugin that dockerd finds as driver self.driver (its socket in /run/docker/plugins);
    the store has the canary values in self.values."""

    def __init__(self, extra_socket_dir=None):
        super().__init__()
        self.driver = driver_name()
        os.makedirs(PLUGINS_DIR, exist_ok=True)
        self.sock = os.path.join(extra_socket_dir or PLUGINS_DIR, self.driver + ".sock")

    def cleanup(self):
        super().cleanup()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.sock)


def drop_driver_volumes(dk, plugin):
    """Removes every volume of this driver dockerd still knows (between tests)."""
    for v in dk.volumes(plugin.driver):
        dk.docker(["volume", "rm", "-f", v], check_rc=False)


def run_module(tests, live_restore=False):
    """Runs the tests of one module against one shared dockerd: each test is called with
    (dockerd, plugin) and gets a fresh plugin sandbox; the dockerd is stopped at the end."""
    need_engine()
    only = os.environ.get("SFS_ENGINE_ONLY")  # run one test: SFS_ENGINE_ONLY=test_name
    if only:
        tests = [t for t in tests if t.__name__ == only]
    t0 = time.monotonic()
    failed = []
    with Dockerd(live_restore=live_restore) as dk:
        dk.start()
        dk.build_image()
        print("dockerd up and image built in %.1f s" % (time.monotonic() - t0))
        for t in tests:
            t1 = time.monotonic()
            try:
                with EnginePlugin() as sb:
                    try:
                        t(dk, sb)
                    except Exception:
                        print("--- plugin log (end) ---\n%s\n--- dockerd log (end) ---\n%s" % (
                            sb.log_text()[-1500:] if os.path.exists(sb.log) else "",
                            dk.log_text()[-1500:]))
                        raise
                    finally:
                        for c in list(dk.containers):
                            dk.docker(["rm", "-f", c], check_rc=False, timeout=60)
                            dk.containers.remove(c)
                        if dk.proc and sb.proc and sb.proc.poll() is None:
                            drop_driver_volumes(dk, sb)  # (with the plugin down, dockerd
                            # would wait 15-30 s for it)
                print("ok   %s (%.1f s)" % (t.__name__, time.monotonic() - t1))
            except TestFailure as e:
                print("FAIL %s: %s" % (t.__name__, e))
                failed.append(t.__name__)
            except Exception as e:  # an unexpected error is a failure, not a crash
                failed.append(t.__name__)
                print("FAIL %s: unexpected %s at %s: %s" % (
                    t.__name__, type(e).__name__, harness._where(e), harness._safe_message(e)))
            sys.stdout.flush()
            if not dk.proc:
                dk.start(first=False)
    print("module done in %.1f s" % (time.monotonic() - t0))
    if failed:
        print("FAILED: %s" % ", ".join(failed))
        sys.exit(1)
    sys.exit(0)
