#!/usr/bin/python3
"""Read-only: every write-type call fails with EROFS, in both cache modes, and the contents
stay the same.  Checked twice per mode: as mounted (`ro`, so the kernel itself refuses), and
after `mount -i -o remount,rw`, so the calls reach the daemon's handlers ("whatever the mount
options").  Run as root, so permission checks never answer first.

Calls that need a writable file descriptor (write, fallocate, ftruncate) cannot be reached
because no open for writing succeeds; on a read-only descriptor they must fail without
changing anything."""
import ctypes
import errno
import os
import stat
import subprocess

from harness import (CACHE_MODES, Sandbox, check, errno_of, expected_listing, need_fuse,
                     read_bytes, run_all)

VALUES = {"FILE_A": b"value of a", "FILE_B": b"value of b\n"}

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
libc.creat.argtypes = [ctypes.c_char_p, ctypes.c_uint]
libc.mknod.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_ulong]


def c_call(fn, *args):
    def call():
        if fn(*args) < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    return call


def open_close(path, flags, mode=0o600):
    os.close(os.open(path, flags, mode))


def write_calls(mnt, ro_state):
    """(description, callable) for every write-type call on files, views, root and new names."""
    f = os.path.join(mnt, "FILE_A")
    g = os.path.join(mnt, "FILE_B")
    new = os.path.join(mnt, "NEW_NAME")
    calls = []
    for target in (f, os.path.join(mnt, ".env"), os.path.join(mnt, ".env.json"),
                   os.path.join(mnt, ".status")):
        t = os.path.basename(target)
        calls += [
            ("open O_WRONLY " + t, lambda t=target: open_close(t, os.O_WRONLY)),
            ("open O_RDWR " + t, lambda t=target: open_close(t, os.O_RDWR)),
            ("open O_WRONLY|O_APPEND " + t, lambda t=target: open_close(t, os.O_WRONLY | os.O_APPEND)),
            ("open O_RDONLY|O_TRUNC " + t, lambda t=target: open_close(t, os.O_RDONLY | os.O_TRUNC)),
            ("open O_WRONLY|O_TRUNC " + t, lambda t=target: open_close(t, os.O_WRONLY | os.O_TRUNC)),
            ("chmod " + t, lambda t=target: os.chmod(t, 0o644)),
            ("chown " + t, lambda t=target: os.chown(t, 1, 1)),
            ("truncate 0 " + t, lambda t=target: os.truncate(t, 0)),
            ("truncate +1 " + t, lambda t=target: os.truncate(t, 4096)),
            ("utime set " + t, lambda t=target: os.utime(t, (1, 1))),
            ("utime now " + t, lambda t=target: os.utime(t)),
            ("setxattr " + t, lambda t=target: os.setxattr(t, "user.x", b"1")),
            ("removexattr " + t, lambda t=target: os.removexattr(t, "user.x")),
            ("unlink " + t, lambda t=target: os.unlink(t)),
            ("rename away " + t, lambda t=target: os.rename(t, new)),
            ("link " + t, lambda t=target: os.link(t, new)),
        ]
    calls += [
        ("rename over another file", lambda: os.rename(f, g)),
        ("rename onto itself elsewhere", lambda: os.replace(g, f)),
        ("open O_CREAT|O_WRONLY new", lambda: open_close(new, os.O_CREAT | os.O_WRONLY)),
        ("open O_CREAT|O_RDONLY new", lambda: open_close(new, os.O_CREAT | os.O_RDONLY)),
        ("open O_CREAT|O_EXCL new", lambda: open_close(new, os.O_CREAT | os.O_EXCL | os.O_RDWR)),
        ("creat new", c_call(libc.creat, new.encode(), 0o600)),
        ("mknod regular new", c_call(libc.mknod, new.encode(), stat.S_IFREG | 0o600, 0)),
        ("mkfifo new", lambda: os.mkfifo(new)),
        ("mkdir new", lambda: os.mkdir(new)),
        ("symlink new", lambda: os.symlink("FILE_A", new)),
        ("chmod root", lambda: os.chmod(mnt, 0o777)),
        ("chown root", lambda: os.chown(mnt, 1, 1)),
        ("utime root", lambda: os.utime(mnt, (1, 1))),
        ("setxattr root", lambda: os.setxattr(mnt, "user.x", b"1")),
        ("removexattr root", lambda: os.removexattr(mnt, "user.x")),
    ]
    if ro_state:
        # with a writable mount the kernel answers these from its own checks first (ENOENT,
        # ENOTDIR): the mount has no directories to remove and no such name to unlink
        calls += [
            ("rmdir a file", lambda: os.rmdir(f)),
            ("rmdir new", lambda: os.rmdir(new)),
            ("unlink new", lambda: os.unlink(new)),
        ]
    return calls


def fd_calls(mnt):
    """Calls on a read-only descriptor: must fail (EBADF or EINVAL), never write."""
    fd = os.open(os.path.join(mnt, "FILE_A"), os.O_RDONLY)
    return fd, [
        ("write", lambda: os.write(fd, b"x")),
        ("pwrite", lambda: os.pwrite(fd, b"x", 0)),
        ("ftruncate", lambda: os.ftruncate(fd, 0)),
        ("fallocate", c_call(libc.fallocate, fd, 0, 0, 4096)),
        ("fallocate punch hole", c_call(libc.fallocate, fd, 3, 0, 4)),   # KEEP_SIZE|PUNCH_HOLE
        ("fchmod", lambda: os.fchmod(fd, 0o666)),
        ("fchown", lambda: os.fchown(fd, 1, 1)),
        ("fsetxattr", lambda: os.setxattr(fd, "user.x", b"1")),
    ]


def check_unchanged(sb, mnt, mode, state):
    check(sorted(os.listdir(mnt)) == expected_listing(VALUES),
          "cache=%s %s: the listing changed" % (mode, state))
    for n, v in VALUES.items():
        check(read_bytes(os.path.join(mnt, n)) == v, "cache=%s %s: %s changed" % (mode, state, n))
        st = os.stat(os.path.join(mnt, n))
        check(stat.S_IMODE(st.st_mode) == 0o400 and st.st_uid == 0,
              "cache=%s %s: %s mode or owner changed" % (mode, state, n))
    check(sb.status(mnt).get("generation") == "1", "cache=%s %s: the generation changed"
          % (mode, state))


def is_open_of_existing(what):
    return what.startswith("open O_") and not what.endswith(" new")


def run_state(sb, mnt, mode, state, skip_existing_opens=False):
    wrong = []
    for what, fn in write_calls(mnt, state == "ro"):
        if skip_existing_opens and is_open_of_existing(what):
            continue          # checked by test_open_for_write_after_rw_remount
        got = errno_of(fn)
        if got != "EROFS":
            wrong.append("%s: %s" % (what, got))
    check(not wrong, "cache=%s %s: not EROFS: %s" % (mode, state, "; ".join(wrong)))
    fd, calls = fd_calls(mnt)
    try:
        for what, fn in calls:
            got = errno_of(fn)
            check(got in ("EBADF", "EINVAL", "EROFS"),
                  "cache=%s %s: %s on a read-only descriptor gave %s" % (mode, state, what, got))
    finally:
        os.close(fd)
    check_unchanged(sb, mnt, mode, state)


def test_every_write_is_erofs():
    with Sandbox() as sb:
        sb.set_secrets(VALUES)
        for mode in CACHE_MODES:
            mnt, _ = sb.mount(sb.mountpoint("mnt-" + mode), ["-o", "cache=" + mode])
            for n in VALUES:          # warm the caches first
                read_bytes(os.path.join(mnt, n))
            run_state(sb, mnt, mode, "ro")
            # make the kernel pass writes through to the daemon: it must still say EROFS
            p = subprocess.run(["mount", "-i", "-o", "remount,rw", mnt], capture_output=True)
            check(p.returncode == 0, "cannot remount rw for the test: %s" % p.stderr.decode())
            opts = [l.split()[5] for l in open("/proc/self/mountinfo") if " %s " % mnt in l]
            check(opts and opts[0].startswith("rw"), "remount did not make the mount rw")
            run_state(sb, mnt, mode, "remounted rw", skip_existing_opens=(mode == "kernel"))


def test_open_for_write_after_rw_remount():
    """After root runs `mount -o remount,rw`, no byte can change in either mode.  In
    cache=none every open for writing still fails with EROFS.  In cache=kernel the daemon
    answers the first open with ENOSYS (zero-message opens, the price of workload 1's speed),
    so the kernel never asks again and an open for writing succeeds; the write through it
    must still fail with EROFS (README, "Cache modes")."""
    with Sandbox() as sb:
        sb.set_secrets(VALUES)
        failures = []
        for mode in CACHE_MODES:
            mnt, _ = sb.mount(sb.mountpoint("mnt-" + mode), ["-o", "cache=" + mode])
            read_bytes(os.path.join(mnt, "FILE_A"))   # the first open: ENOSYS in cache=kernel
            p = subprocess.run(["mount", "-i", "-o", "remount,rw", mnt], capture_output=True)
            check(p.returncode == 0, "cannot remount rw for the test: %s" % p.stderr.decode())
            path = os.path.join(mnt, "FILE_A")
            for flags, name in ((os.O_WRONLY, "O_WRONLY"), (os.O_RDWR, "O_RDWR"),
                                (os.O_WRONLY | os.O_TRUNC, "O_WRONLY|O_TRUNC"),
                                (os.O_RDONLY | os.O_TRUNC, "O_RDONLY|O_TRUNC")):
                try:
                    fd = os.open(path, flags)
                except OSError as e:
                    if e.errno != errno.EROFS:
                        failures.append("cache=%s open %s: %s" % (mode, name, e.strerror))
                    continue
                try:
                    if flags & os.O_ACCMODE != os.O_RDONLY:
                        check(errno_of(os.write, fd, b"x") == "EROFS",
                              "cache=%s: write through an fd opened %s did not fail with "
                              "EROFS" % (mode, name))
                finally:
                    os.close(fd)
                if mode == "none":
                    failures.append("cache=%s open %s succeeded" % (mode, name))
            check_unchanged(sb, mnt, mode, "after opens for writing")
        check(not failures, "opens for writing on a rw-remounted mount are not EROFS: " + "; ".join(failures))


if __name__ == "__main__":
    need_fuse()
    run_all(test_every_write_is_erofs, test_open_for_write_after_rw_remount)
