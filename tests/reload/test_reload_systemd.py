"""Under systemd (examples/systemd/secretfs.service: Type=notify, ExecReload=kill -HUP
$MAINPID) the daemon speaks the notify protocol: READY=1 once the files are visible,
RELOADING=1 with MONOTONIC_USEC when a reload starts, READY=1 again when it ends (with a
STATUS= saying whether it failed), STOPPING=1 on SIGTERM.  The test plays systemd: it owns
the NOTIFY_SOCKET datagram socket, starts `secretfs mount -f` and sends what ExecReload
sends."""
import os
import signal
import socket
import time

import subprocess

from reloadlib import Sandbox, check, run_all, need_fuse, read
from harness import SECRETFS, visible, wait_for

CANARY = b"systemd-canary-7f3a9c"


def messages(sock, until, timeout=10.0):
    """Datagrams (as dicts) until one holds the key=value `until`."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(4096)
        except socket.timeout:
            break
        check(CANARY not in data, "a secret value reached the notify socket")
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        got.append(fields)
        k, v = until.split("=", 1)
        if fields.get(k) == v:
            return got
    raise AssertionError("no %s from the daemon within %.0f s; got %r" % (until, timeout, got))


def test():
    need_fuse()
    with Sandbox() as sb:
        sb.set_secrets({"DB_PASSWORD": CANARY, "OTHER": b"one"})
        path = os.path.join(sb.dir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        try:
            env = dict(sb.env, NOTIFY_SOCKET=path)
            mnt = sb.mountpoint()
            with open(os.path.join(sb.dir, "daemon.log"), "ab") as log:
                p = subprocess.Popen([SECRETFS, "mount", "-f", mnt], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, env=env)
            sb.mounts.append(mnt)
            sb.pids.append(p.pid)
            got = messages(sock, "READY=1")
            # Type=notify starts dependent units on READY=1: the files must be there by then
            check(visible(mnt), "READY=1 came before the mount was visible")
            check(len([m for m in got if m.get("READY") == "1"]) == 1, "two READY=1 at start")
            check(got[-1].get("STATUS", "").startswith("serving"),
                  "READY=1 came without a STATUS line: %r" % got)
            time.sleep(0.2)
            sock.settimeout(0.01)
            try:
                extra = sock.recv(4096)
                check(False, "an unexpected message after READY=1: %r" % extra[:100])
            except socket.timeout:
                pass

            # ExecReload=/bin/kill -HUP $MAINPID
            sb.run(["set", "OTHER"], input=b"two")
            os.kill(p.pid, signal.SIGHUP)
            got = messages(sock, "READY=1")
            reloading = [m for m in got if m.get("RELOADING") == "1"]
            check(reloading, "no RELOADING=1 before READY=1 on SIGHUP: %r" % got)
            usec = int(reloading[0].get("MONOTONIC_USEC", "0"))
            now = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
            check(0 < usec <= now and now - usec < 60e6,
                  "RELOADING=1 carries no plausible MONOTONIC_USEC (%d, now %d)" % (usec, now))
            check(read(os.path.join(mnt, "OTHER")) == b"two", "the reload did not take")
            print("reload: %d messages, RELOADING=1 then READY=1, STATUS=%s" % (
                len(got), got[-1].get("STATUS", "")))

            # a failed reload: RELOADING=1, then READY=1 saying the old secrets still serve
            with open(sb.store, "r+b") as f:
                f.seek(-5, os.SEEK_END)
                f.write(b"XXXXX")
            os.kill(p.pid, signal.SIGHUP)
            got = messages(sock, "READY=1")
            check(any(m.get("RELOADING") == "1" for m in got), "no RELOADING=1 for the bad store")
            check("fail" in got[-1].get("STATUS", ""),
                  "READY=1 after a failed reload does not say it failed: %r" % got[-1])
            check(read(os.path.join(mnt, "OTHER")) == b"two", "a failed reload changed the mount")
            print("failed reload: STATUS=%s" % got[-1].get("STATUS", ""))

            p.send_signal(signal.SIGTERM)
            messages(sock, "STOPPING=1")
            wait_for(lambda: p.poll() is not None, "the daemon to exit on SIGTERM")
            check(p.returncode == 0, "SIGTERM: exit %d, want 0" % p.returncode)
        finally:
            sock.close()


run_all(test)
