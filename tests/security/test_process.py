"""The daemon's process hygiene, checked from outside as a real unprivileged user:
no ptrace (even by the same user), no readable /proc environ, no core dumps, locked memory."""
import ctypes
import os
import pwd
import signal
import subprocess
import sys
import time

from harness import SECRETFS, Sandbox, check, run_all, need_fuse, unmount  # noqa: E402

USER = "sfs-sec-user"
CANARY = b"CANARY-7f3a9c-process-hygiene"
PTRACE_ATTACH = 16


def ensure_user():
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", USER], check=True)
        return pwd.getpwnam(USER)


def as_user(pw, argv, **kw):
    cmd = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--clear-groups",
           "--reset-env"] + argv
    return subprocess.run(cmd, capture_output=True, **kw)


PTRACE_PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(%d, int(sys.argv[1]), 0, 0)
print(r, ctypes.get_errno())
""" % PTRACE_ATTACH


def ptrace_errno(pw, pid):
    out = as_user(pw, ["/usr/bin/python3", "-c", PTRACE_PROBE, str(pid)]).stdout.split()
    check(len(out) == 2, "ptrace probe printed %r" % out)
    return int(out[0]), int(out[1])


def core_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4]
    return None


def sanitized():
    """ASan intercepts mlock() and makes it a no-op, so VmLck stays 0 in that build."""
    out = subprocess.run(["ldd", SECRETFS], capture_output=True).stdout
    return b"libasan" in out


def locked_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    return 0


def daemon_as_user(sb, pw):
    """Mounts as the unprivileged user (Debian's /dev/fuse is 0666; some hosts make it
    0600, so the test opens it up for its own duration)."""
    os.chown(sb.dir, pw.pw_uid, pw.pw_gid)
    for f in (sb.key, sb.store):
        os.chown(f, pw.pw_uid, pw.pw_gid)
    mnt = sb.mountpoint("usermnt")
    os.chown(mnt, pw.pw_uid, pw.pw_gid)
    env = ["env", "SECRETFS_CONFIG=/dev/null", "SECRETFS_STORE=" + sb.store,
           "SECRETFS_KEY_FILE=" + sb.key]
    p = as_user(pw, env + [SECRETFS, "mount", mnt], timeout=60)
    sb.mounts.append(mnt)
    check(p.returncode == 0, "user mount failed: %s" % p.stderr.decode(errors="replace"))
    check(CANARY not in p.stderr, "canary in mount's stderr")
    # without allow_other only the mounting user may look inside, not even root
    p = as_user(pw, ["cat", os.path.join(mnt, ".status")])
    pids = [int(l[4:]) for l in p.stdout.decode().splitlines() if l.startswith("pid=")]
    check(len(pids) == 1, "no pid in the user mount's .status")
    sb.pids.append(pids[0])
    return mnt, pids[0]


def test():
    need_fuse()
    pw = ensure_user()
    mode = os.stat("/dev/fuse").st_mode & 0o777
    with Sandbox() as sb:
        sb.set_secrets({"TOKEN": CANARY})
        try:
            if mode & 0o006 != 0o006:
                os.chmod("/dev/fuse", 0o666)
            mnt, pid = daemon_as_user(sb, pw)
        finally:
            os.chmod("/dev/fuse", mode)

        p = as_user(pw, ["cat", os.path.join(mnt, "TOKEN")])
        check(p.returncode == 0 and p.stdout == CANARY, "the owner cannot read its secret")
        check(locked_kb(pid) > 0 or sanitized(), "VmLck is 0: secret pages are not locked")
        check(core_limit(pid) == "0", "RLIMIT_CORE is not 0 (%s)" % core_limit(pid))

        # PR_SET_DUMPABLE 0: even the same user may not attach or read /proc/PID/environ
        rc, err = ptrace_errno(pw, pid)
        check(rc == -1 and err == 1, "same-user ptrace attach: rc %d errno %d" % (rc, err))
        st = os.stat("/proc/%d/environ" % pid)
        check(st.st_uid == 0, "/proc/PID/environ belongs to uid %d, not root" % st.st_uid)
        p = as_user(pw, ["cat", "/proc/%d/environ" % pid])
        check(p.returncode != 0, "the same user can read the daemon's /proc/PID/environ")
        p = as_user(pw, ["cat", "/proc/%d/mem" % pid])
        check(p.returncode != 0, "the same user can open the daemon's /proc/PID/mem")

        # a crash leaves no core file (the daemon runs in /)
        before = set(f for f in os.listdir("/") if f.startswith("core"))
        os.kill(pid, signal.SIGSEGV)
        for _ in range(100):
            if not os.path.exists("/proc/%d" % pid):
                break
            time.sleep(0.05)
        after = set(f for f in os.listdir("/") if f.startswith("core"))
        check(after == before, "a core file appeared: %s" % sorted(after - before))
        unmount(mnt)

    # a root daemon: another user can neither ptrace it nor read a 0400 secret
    with Sandbox() as sb:
        sb.set_secrets({"TOKEN": CANARY})
        mnt, pid = sb.mount()
        rc, err = ptrace_errno(pw, pid)
        check(rc == -1 and err == 1, "non-root ptrace of the root daemon: rc %d errno %d"
              % (rc, err))
        p = as_user(pw, ["cat", os.path.join(mnt, "TOKEN")])
        check(p.returncode != 0 and CANARY not in p.stdout,
              "another user read a 0400 secret")


run_all(test)
