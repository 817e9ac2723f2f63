#!/usr/bin/python3
"""The daemon's life: SIGKILL leaves ENOTCONN and `fusermount3 -u` plus a fresh mount
recovers; mounting over a dead or a live mount fails before detaching with a clear message;
missing mountpoint, missing store, bad key, corrupt store give a non-zero exit with a message
and leave nothing mounted and no daemon; SIGTERM, SIGINT and an external unmount stop the
daemon cleanly; `-f` exits 0 on SIGTERM."""
import os
import signal
import subprocess

from harness import (CACHE_MODES, SECRETFS, Sandbox, check, errno_of, is_mounted, need_fuse,
                     pid_alive, read_bytes, run_all, start_foreground, unmount, wait_for)

VALUES = {"ALPHA": b"alpha value", "BETA": b"beta\nvalue"}


def mount_count(path):
    real = os.path.realpath(path)
    n = 0
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4].encode().decode("unicode_escape") == real:
                n += 1
    return n


def daemons_for(path):
    """PIDs of live secretfs processes whose command line names `path`."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = read_bytes("/proc/%s/cmdline" % d).split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"secretfs") for a in argv[:1]) and path.encode() in argv and \
                pid_alive(int(d)):
            found.append(int(d))
    return found


def check_serves(mnt, what):
    for n, v in VALUES.items():
        check(read_bytes(os.path.join(mnt, n)) == v, "%s: %s is not served right" % (what, n))


def kill_daemon(sb, mode, name):
    """Mounts, reads ALPHA (so cache=kernel holds its bytes), looks BETA up, SIGKILLs."""
    mnt, pid = sb.mount(sb.mountpoint(name), ["-o", "cache=" + mode])
    check(read_bytes(os.path.join(mnt, "ALPHA")) == VALUES["ALPHA"], "cache=%s: ALPHA is not "
          "served right" % mode)
    os.stat(os.path.join(mnt, "BETA"))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), "cache=%s: the killed daemon to go" % mode)
    return mnt, pid


def test_sigkill_and_recovery():
    with Sandbox() as sb:
        sb.set_secrets(VALUES)
        for mode in CACHE_MODES:
            what = "cache=%s" % mode
            mnt, pid = kill_daemon(sb, mode, "mnt-" + mode)
            # (a stat of a name looked up before the kill may still be answered from the
            # kernel's attribute cache: not checked)
            for op, fn in (("read a file not read before", lambda: read_bytes(os.path.join(mnt, "BETA"))),
                           ("read .status", lambda: read_bytes(os.path.join(mnt, ".status"))),
                           ("read .env", lambda: read_bytes(os.path.join(mnt, ".env"))),
                           ("stat a new name", lambda: os.stat(os.path.join(mnt, "GAMMA"))),
                           ("list", lambda: os.listdir(mnt))):
                got = errno_of(fn)
                check(got == "ENOTCONN", "%s: %s on a dead mount gave %s, want ENOTCONN" % (
                    what, op, got))
            r = sb.run(["mount", "-o", "cache=" + mode, mnt], check_rc=False)
            check(r.returncode == 1, "%s: mount over a dead mount exited %d, want 1" % (
                what, r.returncode))
            check(b"fusermount3 -u" in r.stderr and mnt.encode() in r.stderr,
                  "%s: mount over a dead mount does not say to run fusermount3 -u" % what)
            check(mount_count(mnt) == 1 and errno_of(os.listdir, mnt) == "ENOTCONN",
                  "%s: a refused mount changed the dead mount" % what)
            check(not daemons_for(mnt), "%s: a refused mount left a daemon" % what)
            r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
            check(r.returncode == 0, "%s: fusermount3 -u of the dead mount failed" % what)
            check(not is_mounted(mnt), "%s: still mounted after fusermount3 -u" % what)
            _, pid2 = sb.mount(mnt, ["-o", "cache=" + mode])
            check_serves(mnt, what + " after recovery")
            check(pid2 != pid and sb.status(mnt)["generation"] == "1",
                  "%s: the fresh mount is not a fresh daemon" % what)


def test_sigkill_cached_read():
    """A file read before the daemon was killed: ENOTCONN in cache=none.  In cache=kernel the
    kernel keeps serving what it cached (24 h attribute timeout, zero-message opens) until
    someone unmounts; the README's threat model says so.  Both recover by unmounting."""
    with Sandbox() as sb:
        sb.set_secrets(VALUES)
        bad = []
        for mode in CACHE_MODES:
            mnt, _ = kill_daemon(sb, mode, "cached-" + mode)
            got = errno_of(read_bytes, os.path.join(mnt, "ALPHA"))
            if mode == "kernel" and got == "ok":
                pass        # documented: the page cache outlives the daemon
            elif got != "ENOTCONN":
                bad.append("cache=%s: %s" % (mode, "the old bytes were served" if got == "ok"
                                              else got))
            unmount(mnt)
        check(not bad, "reading a file read before SIGKILL is not ENOTCONN: "
              + "; ".join(bad))


def helper_mounts(sb, mnt, opts):
    """The two ways mount(8) reaches us, both through mount.fuse3 (which runs
    `secretfs CONFIG MNT -o OPTS`): `-t fuse.secretfs` (the README's fstab line; mount.fuse3
    finds secretfs on PATH, which mount(8) resets, so it is called here directly as mount(8)
    would) and `mount -t fuse 'PROGRAM#CONFIG'`, which needs no PATH."""
    env = dict(sb.env)
    env["PATH"] = os.path.dirname(os.path.realpath(SECRETFS)) + ":" + env.get("PATH", "")
    return [
        (["mount.fuse3", sb.config, mnt, "-t", "secretfs", "-o", opts], env),
        (["mount", "-t", "fuse", "-o", opts, "%s#%s" % (os.path.realpath(SECRETFS), sb.config),
          mnt], sb.env),
    ]


def test_mount_helper_form():
    with Sandbox() as sb:
        sb.set_secrets(VALUES)
        for mode in CACHE_MODES:
            for i, (argv, env) in enumerate(helper_mounts(sb, "MNT", "cache=" + mode)):
                mnt = sb.mountpoint("helper-%s-%d" % (mode, i))
                argv = [mnt if a == "MNT" else a for a in argv]
                sb.mounts.append(mnt)
                p = subprocess.run(argv, env=env, capture_output=True, timeout=30)
                check(p.returncode == 0, "%s exited %d: %s" % (
                    " ".join(argv[:3]), p.returncode, p.stderr.decode(errors="replace")))
                check_serves(mnt, "%s cache=%s" % (argv[0], mode))
                check(sb.status(mnt)["cache"] == mode, "%s ignored -o cache=%s" % (argv[0], mode))
                pid = sb.daemon_pid(mnt)
                p = subprocess.run(["umount", mnt], capture_output=True)
                check(p.returncode == 0, "umount of the helper mount failed: %s" % p.stderr)
                wait_for(lambda: not pid_alive(pid), "the daemon to exit after umount")
        # a bad option is refused, with a message naming it, before anything is mounted
        for i, (argv, env) in enumerate(helper_mounts(sb, "MNT", "cache=sometimes")):
            mnt = sb.mountpoint("helper-bad-%d" % i)
            argv = [mnt if a == "MNT" else a for a in argv]
            p = subprocess.run(argv, env=env, capture_output=True, timeout=30)
            check(p.returncode != 0 and b"cache" in p.stderr,
                  "%s -o cache=sometimes: exit %d, message %r" % (argv[0], p.returncode,
                                                                  p.stderr[-300:]))
            check(not is_mounted(mnt), "a refused helper mount left a mount")


def test_mount_over_mounts():
    with Sandbox() as sb:
        sb.set_secrets(VALUES)
        mnt, pid = sb.mount(sb.mountpoint("live"))
        r = sb.run(["mount", mnt], check_rc=False)
        check(r.returncode == 1, "mount over a live mount exited %d, want 1" % r.returncode)
        check(b"already a mountpoint" in r.stderr and mnt.encode() in r.stderr,
              "mount over a live mount: the message does not say it is already mounted")
        check(mount_count(mnt) == 1, "mount over a live mount stacked a second mount")
        check(daemons_for(mnt) == [pid], "mount over a live mount left another daemon")
        check_serves(mnt, "the first mount after a refused second one")
        r = sb.run(["mount", "-f", mnt], check_rc=False, timeout=20)
        check(r.returncode == 1 and b"already a mountpoint" in r.stderr,
              "mount -f over a live mount: exit %d" % r.returncode)
        # over another filesystem
        other = sb.mountpoint("tmpfs")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "sfs-test", other], check=True)
        sb.mounts.append(other)
        r = sb.run(["mount", other], check_rc=False)
        check(r.returncode == 1 and b"already a mountpoint" in r.stderr and b"tmpfs" in r.stderr,
              "mount over a tmpfs: exit %d, message does not name it" % r.returncode)
        check(mount_count(other) == 1, "mount over a tmpfs stacked a mount")
        unmount(other)


def expect_refused(sb, args, what, needles, mnt, env=None, rc=1):
    for fg in ([], ["-f"]):
        r = sb.run(["mount"] + fg + args + [mnt], check_rc=False, env=env, timeout=20)
        label = "%s%s" % (what, " (-f)" if fg else "")
        check(r.returncode == rc, "%s: exit %d, want %d" % (label, r.returncode, rc))
        text = r.stderr.decode(errors="replace")
        missing = [n for n in needles if n not in text]
        check(not missing, "%s: the message lacks %s: %s" % (label, missing, text.strip()))
        check(not is_mounted(mnt) and not daemons_for(mnt),
              "%s: something was left mounted or running" % label)


def test_refused_before_mounting():
    with Sandbox() as sb:
        sb.set_secrets(VALUES)
        mnt = sb.mountpoint("m")
        sb.mounts.append(mnt)
        missing = os.path.join(sb.dir, "no", "such", "dir")
        expect_refused(sb, [], "missing mountpoint", [missing, "mkdir"], missing)
        check(not os.path.exists(missing), "an explicit missing mountpoint was created")
        afile = os.path.join(sb.dir, "a-file")
        open(afile, "w").close()
        expect_refused(sb, [], "mountpoint is a file", [afile, "not a directory"], afile)
        expect_refused(sb, ["--store", os.path.join(sb.dir, "none.store")], "missing store",
                       ["none.store", "update-secrets"], mnt)
        # another key: the store does not decrypt
        other_key = os.path.join(sb.dir, "other.key")
        sb.run(["keygen", other_key])
        expect_refused(sb, ["--key-file", other_key], "wrong key", ["secrets.store"], mnt)
        expect_refused(sb, ["--key-file", os.path.join(sb.dir, "none.key")], "missing key",
                       ["none.key"], mnt)
        loose = os.path.join(sb.dir, "loose.key")
        with open(loose, "wb") as f:
            f.write(read_bytes(sb.key))
        os.chmod(loose, 0o644)
        expect_refused(sb, ["--key-file", loose], "key readable by others",
                       ["loose.key", "chmod"], mnt)
        corrupt = os.path.join(sb.dir, "corrupt.store")
        data = bytearray(read_bytes(sb.store))
        data[len(data) // 2] ^= 0x01
        with open(corrupt, "wb") as f:
            f.write(bytes(data))
        expect_refused(sb, ["--store", corrupt], "corrupt store", ["corrupt.store"], mnt)
        expect_refused(sb, ["-o", "cache=sometimes"], "bad cache option", ["cache"], mnt, rc=2)
        # after all that, the mountpoint still works
        sb.mount(mnt)
        check_serves(mnt, "after refused mounts")


def test_stop_cleanly():
    with Sandbox() as sb:
        sb.set_secrets(VALUES)
        for mode in CACHE_MODES:
            for sig in (signal.SIGTERM, signal.SIGINT):
                what = "cache=%s %s" % (mode, sig.name)
                mnt, pid = sb.mount(sb.mountpoint("%s-%s" % (mode, sig.name)),
                                    ["-o", "cache=" + mode])
                fd = os.open(os.path.join(mnt, "ALPHA"), os.O_RDONLY)   # an open file
                os.kill(pid, sig)
                wait_for(lambda: not pid_alive(pid), "%s: the daemon to exit" % what)
                os.close(fd)
                check(not is_mounted(mnt), "%s: the mount is still there" % what)
                check(os.listdir(mnt) == [], "%s: the mountpoint is not empty" % what)
            # an external unmount stops the daemon too
            mnt, pid = sb.mount(sb.mountpoint("%s-umount" % mode), ["-o", "cache=" + mode])
            subprocess.run(["fusermount3", "-u", mnt], check=True)
            wait_for(lambda: not pid_alive(pid), "cache=%s: the daemon to exit after an "
                     "external unmount" % mode)
            # foreground: exit status 0 after SIGTERM
            mnt = sb.mountpoint("%s-fg" % mode)
            p = start_foreground(sb, mnt, ["-o", "cache=" + mode])
            check_serves(mnt, "cache=%s -f" % mode)
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=10)
            check(rc == 0, "cache=%s: mount -f exited %d after SIGTERM, want 0" % (mode, rc))
            check(not is_mounted(mnt), "cache=%s: -f left its mount after SIGTERM" % mode)


if __name__ == "__main__":
    need_fuse()
    run_all(test_sigkill_and_recovery, test_sigkill_cached_read, test_mount_helper_form,
            test_mount_over_mounts, test_refused_before_mounting,
            test_stop_cleanly)
