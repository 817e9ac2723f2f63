#!/usr/bin/python3
"""Writes that fail during `update-secrets` (and `set`, `rm`) leave the store exactly as it
was and say why: a full disk (a tiny tmpfs: no space, then no free inode), RLIMIT_FSIZE,
a read-only filesystem, a directory an unprivileged user may not write, and errors
injected with strace into every system call of the write path (open, read, flock, the
temporary file's openat/fchmod/write/fsync/close, rename).  Each: exit 1, a message naming
the store and the reason and what to do, the store's bytes unchanged, no temporary file
left, the old set still opens, and no planted value in stdout or stderr.  Transient EINTR is
retried; a failed directory fsync after the rename reports that the store was replaced."""
import os
import re
import resource
import shutil
import subprocess

import faultlib as fl
from faultlib import SECRETFS, check
from harness import CliSandbox, as_user, canary, ensure_test_user, run_all

UNCHANGED = "the store is unchanged"


def prepare(sb, directory):
    """Moves the sandbox's store and key into `directory` and stores the old set there.
    Returns (old {name: bytes}, the store's bytes)."""
    os.makedirs(directory, exist_ok=True)
    key = os.path.join(directory, "master.key")
    shutil.copyfile(sb.key, key)
    os.chmod(key, 0o600)
    sb.key = key
    sb.store = os.path.join(directory, "secrets.store")
    sb.write_config("")
    old = {"DB_PASSWORD": canary("old"), "API_TOKEN": canary("old"), "SMALL": canary("old")}
    env = fl.write_env(os.path.join(sb.dir, "old.env"), old)
    sb.run(["update-secrets", "--overwrite", "--secrets-file", env])
    return old, sb.store_bytes()


def big_new(n=12, size=16384):
    """A new set of `n` values of `size` bytes, each holding a canary."""
    out = {}
    for i in range(n):
        c = canary("new")
        out["NEW_%02d" % i] = c + b"x" * (size - len(c))
    return out


def unchanged(sb, old, before, what):
    check(sb.store_bytes() == before, "%s: the store's bytes changed" % what)
    left = fl.temp_files(os.path.dirname(sb.store))
    check(not left, "%s: temporary files left behind: %s" % (what, left))
    check(fl.same_set(fl.store_set(sb), old), "%s: the store no longer opens to the old set"
          % what)


def test_full_disk():
    with CliSandbox() as sb:
        disk = os.path.join(sb.dir, "disk")
        with fl.tmpfs(disk, "64k"):
            old, before = prepare(sb, disk)
            new = big_new()
            env = fl.write_env(os.path.join(sb.dir, "new.env"), new)
            sb.fails(["update-secrets", "--secrets-file", env], 1, sb.store,
                     "No space left on device", "free space", UNCHANGED)
            unchanged(sb, old, before, "update-secrets on a full disk")
            sb.fails(["update-secrets", "--overwrite", "--secrets-file", env], 1, sb.store,
                     "No space left on device", UNCHANGED)
            unchanged(sb, old, before, "update-secrets --overwrite on a full disk")
            big = sb.write("big-value", b"".join(new.values())[:200000])
            sb.fails(["set", "HUGE", "--from-file", big], 1, sb.store,
                     "No space left on device", UNCHANGED)
            unchanged(sb, old, before, "set on a full disk")

            # no free inode: not even the temporary file can be created
            vfs = os.statvfs(disk)
            fl.remount_tmpfs(disk, "64k,nr_inodes=%d" % (vfs.f_files - vfs.f_ffree))
            check(os.statvfs(disk).f_ffree == 0, "the tmpfs still has free inodes")
            sb.fails(["set", "SMALL"], 1, sb.store, "cannot create a temporary file",
                     "No space left on device", UNCHANGED, input=canary("new"))
            unchanged(sb, old, before, "set with no free inode")
            sb.fails(["rm", "SMALL"], 1, sb.store, "No space left on device", UNCHANGED)
            unchanged(sb, old, before, "rm with no free inode")

            # once there is room, the same update works and nothing is left over
            fl.remount_tmpfs(disk, "4m,nr_inodes=1000")
            sb.run(["update-secrets", "--secrets-file", env])
            want = dict(old)
            want.update(new)
            check(fl.same_set(fl.store_set(sb), want), "the update after freeing space did "
                  "not store the merged set")
            check(not fl.temp_files(disk), "temporary files left after a good update")
            print("full disk: old store %d bytes on a 64 KiB tmpfs, update of %d bytes "
                  "refused 3 times, 2 refusals with no free inode, then stored (%d bytes)"
                  % (len(before), sum(map(len, new.values())), len(sb.store_bytes())))


def test_file_size_limit():
    """RLIMIT_FSIZE: write() fails with EFBIG, and SIGXFSZ must not kill the writer before
    it can clean up and say why (subprocess restores SIGXFSZ's default action)."""
    with CliSandbox() as sb:
        old, before = prepare(sb, os.path.join(sb.dir, "fsize"))
        env = fl.write_env(os.path.join(sb.dir, "new.env"), big_new())

        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

        for args in (["update-secrets", "--secrets-file", env],
                     ["set", "HUGE", "--from-file", env]):
            p = subprocess.run([SECRETFS] + args, env=sb.env, capture_output=True,
                               preexec_fn=limit, timeout=60)
            check(p.returncode != -25, "%s was killed by SIGXFSZ (no message, temporary file "
                  "left behind)" % args[0])
            fl.checked(p, "%s over RLIMIT_FSIZE" % args[0], 1,
                       [sb.store, "File too large", "ulimit -f", UNCHANGED])
            unchanged(sb, old, before, "%s over RLIMIT_FSIZE" % args[0])
        print("RLIMIT_FSIZE 16 KiB: 2 writes refused with EFBIG, store unchanged")


def test_read_only_filesystem():
    with CliSandbox() as sb:
        d = os.path.join(sb.dir, "ro")
        old, before = prepare(sb, d)
        env = fl.write_env(os.path.join(sb.dir, "new.env"), big_new(2, 100))
        refusals = 0
        for with_lock in (True, False):
            if not with_lock:
                os.unlink(sb.store + ".lock")
            with fl.read_only_bind(d):
                for args in (["update-secrets", "--secrets-file", env], ["rm", "SMALL"]):
                    sb.fails(args, 1, sb.store, "Read-only file system", "read-only")
                    refusals += 1
                    unchanged(sb, old, before, "%s on a read-only filesystem" % args[0])
        print("read-only filesystem: %d writes refused with EROFS (with and without a lock "
              "file), store unchanged" % refusals)


def test_unwritable_directory_as_user():
    """An unprivileged owner of the store and key, in a directory it may not write."""
    uid, gid = ensure_test_user()
    with CliSandbox() as sb:
        d = os.path.join(sb.dir, "shared")
        old, before = prepare(sb, d)
        os.chmod(d, 0o755)
        for f in (sb.store, sb.key, sb.store + ".lock"):
            os.chown(f, uid, gid)
        env_file = fl.write_env(os.path.join(sb.dir, "new.env"), big_new(2, 100))
        os.chmod(env_file, 0o644)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SECRETFS_CONFIG": "/dev/null",
               "SECRETFS_STORE": sb.store, "SECRETFS_KEY_FILE": sb.key}
        cases = (("the lock file exists", "cannot create a temporary file"),
                 ("no lock file", "cannot open lock file"))
        for what, needle in cases:
            if what == "no lock file":
                os.unlink(sb.store + ".lock")
            p = as_user(uid, gid, [SECRETFS, "update-secrets", "--secrets-file", env_file],
                        env=env)
            fl.checked(p, "update-secrets as uid %d (%s)" % (uid, what), 1,
                       [sb.store, needle, "Permission denied", "writ"])
            os.chown(sb.key, 0, 0)  # root reads the store only with a key it owns
            unchanged(sb, old, before, "an unwritable directory (%s)" % what)
            os.chown(sb.key, uid, gid)
        p = as_user(uid, gid, [SECRETFS, "list"], env=env)
        fl.checked(p, "list as the store's owner", 0)
        print("unwritable directory as uid %d: 2 writes refused with EACCES, store unchanged"
              % uid)


# (syscall, how to find the call in an strace -y log, error, message needles, outcome)
# outcome: "refused" (before anything is written), "unchanged" (refused while writing: the
# message must also say the store is unchanged), "retried" (succeeds), "replaced" (new store,
# exit 1 and says so)
def cases(sb):
    store = sb.store.replace("\\", "\\\\")
    tmp = r"\.tmp\.[A-Za-z0-9]{6}>?"
    lock = r"%s\.lock" % store
    return [
        ("openat", r'"%s", O_RDONLY' % store, "EACCES", ["cannot open store",
                                                         "Permission denied"], "refused"),
        ("read", r"<%s>" % store, "EIO", ["cannot read store", "Input/output error"],
         "refused"),
        ("flock", r"<%s>" % lock, "ENOLCK", ["cannot lock", "No locks available"],
         "refused"),
        ("flock", r"<%s>" % lock, "EINTR", [], "retried"),
        ("openat", tmp, "ENOSPC", ["cannot create a temporary file",
                                   "No space left on device", "free space"], "unchanged"),
        ("openat", tmp, "EMFILE", ["cannot create a temporary file", "Too many open files"],
         "unchanged"),
        ("fchmod", tmp, "EPERM", ["cannot set mode 0600", "Operation not permitted"],
         "unchanged"),
        ("write", tmp, "ENOSPC", ["cannot write", "No space left on device", "free space"],
         "unchanged"),
        ("write", tmp, "EDQUOT", ["cannot write", "Disk quota exceeded", "free space"],
         "unchanged"),
        ("write", tmp, "EIO", ["cannot write", "Input/output error", "dmesg"], "unchanged"),
        ("write", tmp, "EINTR", [], "retried"),
        ("fsync", tmp, "EIO", ["cannot fsync", "Input/output error"], "unchanged"),
        ("fsync", tmp, "ENOSPC", ["cannot fsync", "No space left on device"], "unchanged"),
        ("close", tmp, "EIO", ["cannot close", "Input/output error"], "unchanged"),
        ("rename", tmp, "EXDEV", ["cannot replace the store", "Invalid cross-device link"],
         "unchanged"),
        ("rename", tmp, "EIO", ["cannot replace the store", "Input/output error"],
         "unchanged"),
        ("rename", tmp, "EACCES", ["cannot replace the store", "Permission denied"],
         "unchanged"),
        ("fsync", r"<%s>\)" % re.escape(os.path.dirname(sb.store)), "EIO",
         ["the store was replaced", "fsync of its directory failed", "Input/output error"],
         "replaced"),
    ]


def test_injected_syscall_faults():
    fl.need_strace()
    with CliSandbox() as sb:
        d = os.path.join(sb.dir, "inj")
        old, before = prepare(sb, d)
        new = big_new(4, 2000)
        env = fl.write_env(os.path.join(sb.dir, "new.env"), new)
        merged = dict(old)
        merged.update(new)
        update = ["update-secrets", "--secrets-file", env]
        profile = os.path.join(sb.dir, "profile.log")
        p = fl.strace_run(sb, update, profile)
        fl.checked(p, "update-secrets under strace", 0)
        check(fl.same_set(fl.store_set(sb), merged), "the profiled update stored the wrong set")

        def restore():
            o = fl.write_env(os.path.join(sb.dir, "old.env"), old)
            sb.run(["update-secrets", "--overwrite", "--secrets-file", o])
            return sb.store_bytes()

        before = restore()
        outcomes = {"refused": 0, "unchanged": 0, "retried": 0, "replaced": 0}
        for name, pattern, error, needles, outcome in cases(sb):
            what = "%s %s" % (name, error)
            k = fl.nth_matching(profile, name, pattern)
            check(k is not None, "%s: the write path makes no such call (pattern %s)" % (
                what, pattern))
            log = os.path.join(sb.dir, "inject.log")
            p = fl.strace_run(sb, update, log, ["%s:error=%s:when=%d" % (name, error, k)])
            hit = fl.injected(log)
            check(len(hit) == 1 and re.search(pattern, hit[0]),
                  "%s: the fault hit %d calls, not the intended one" % (what, len(hit)))
            if outcome in ("refused", "unchanged"):
                fl.checked(p, what, 1, [sb.store] + needles +
                           ([UNCHANGED] if outcome == "unchanged" else []))
                unchanged(sb, old, before, what)
            else:
                if outcome == "retried":
                    fl.checked(p, what, 0)
                else:
                    err = fl.checked(p, what, 1, [sb.store] + needles)
                    check("unchanged" not in err and "not changed" not in err,
                          "%s: the message says the store is unchanged, but it was replaced"
                          % what)
                check(not fl.temp_files(d), "%s: temporary files left behind" % what)
                check(fl.same_set(fl.store_set(sb), merged), "%s: the store does not hold the "
                      "new set" % what)
                before = restore()
            outcomes[outcome] += 1
        # the other writers take the same path
        for args in (["set", "SMALL"], ["rm", "SMALL"]):
            log = os.path.join(sb.dir, "other.log")
            p = fl.strace_run(sb, args, log, input=canary("new"))
            fl.checked(p, args[0], 0)
            before = restore()
            k = fl.nth_matching(log, "write", r"\.tmp\.")
            p = fl.strace_run(sb, args, log, ["write:error=ENOSPC:when=%d" % k],
                              input=canary("new"))
            fl.checked(p, "%s with write ENOSPC" % args[0], 1,
                       [sb.store, "No space left on device", UNCHANGED])
            unchanged(sb, old, before, "%s with write ENOSPC" % args[0])
            outcomes["unchanged"] += 1
        print("injected faults: %d refused before writing, %d refused while writing (store "
              "unchanged), %d EINTR retried, %d directory fsync failures reported after the "
              "rename" % (outcomes["refused"], outcomes["unchanged"], outcomes["retried"],
                          outcomes["replaced"]))


if __name__ == "__main__":
    fl.need_root()
    run_all(test_full_disk, test_file_size_limit, test_read_only_filesystem,
            test_unwritable_directory_as_user, test_injected_syscall_faults)
