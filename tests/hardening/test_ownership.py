"""Issue 12, items 5 and 6: files someone else controls are refused (as OpenSSH's
StrictModes does), a rewrite keeps the store's owner, group and mode, a symlinked store
never makes root create a lock in another user's directory, and a held lock gives up after
--lock-timeout with a message saying who waits for what."""
import fcntl
import os
import time

from harness import CliSandbox, check, ensure_test_user, run_all


def test_key_owned_by_another_user():
    uid, gid = ensure_test_user()
    with CliSandbox() as sb:
        sb.run(["set", "A"], input=b"one")
        os.chown(sb.key, uid, gid)  # still 0600: only its owner is wrong
        sb.fails(["list"], 1, sb.key, "owned by uid %d" % uid, "chown")
        sb.fails(["set", "A"], 1, sb.key, "owned by uid %d" % uid, input=b"two")


def test_store_dir_owned_by_another_user():
    uid, gid = ensure_test_user()
    with CliSandbox() as sb:
        d = os.path.join(sb.dir, "theirs")
        os.mkdir(d, 0o755)
        store = os.path.join(d, "s.store")
        sb.run(["set", "--store", store, "A"], input=b"one")
        os.chown(d, uid, gid)
        sb.fails(["get", "--store", store, "A"], 1, d, "owned by uid %d" % uid)
        sb.fails(["set", "--store", store, "A"], 1, d, "owned by uid %d" % uid, input=b"x")


def test_store_dir_writable_by_others():
    with CliSandbox() as sb:
        d = os.path.join(sb.dir, "loose")
        os.mkdir(d)
        store = os.path.join(d, "s.store")
        sb.run(["set", "--store", store, "A"], input=b"one")
        for mode, who in ((0o770, "its group"), (0o757, "others")):
            os.chmod(d, mode)
            sb.fails(["list", "--store", store], 1, d, "writable by %s" % who, "chmod go-w")


def test_symlink_into_another_users_dir():
    uid, gid = ensure_test_user()
    with CliSandbox() as sb:
        theirs = os.path.join(sb.dir, "theirs")
        os.mkdir(theirs, 0o755)
        target = os.path.join(theirs, "target.store")
        sb.run(["set", "--store", target, "A"], input=b"one")
        os.chown(theirs, uid, gid)
        os.chown(target, uid, gid)
        os.unlink(target + ".lock")  # left by the setup, when the directory was root's
        link = os.path.join(sb.dir, "link.store")
        os.symlink(target, link)
        sb.fails(["set", "--store", link, "A"], 1, theirs, input=b"two")
        check(sorted(os.listdir(theirs)) == ["target.store"],
              "root created %s in the other user's directory" % sorted(os.listdir(theirs)))


def test_rewrite_keeps_owner_and_mode():
    uid, gid = ensure_test_user()
    with CliSandbox() as sb:
        sb.run(["set", "A"], input=b"one")
        os.chown(sb.store, uid, gid)
        os.chmod(sb.store, 0o640)
        for args, inp in ((["set", "A"], b"two"), (["update-secrets", "--secrets", "B=x"], None),
                          (["rm", "B"], None)):
            sb.run(args, input=inp)
            st = os.stat(sb.store)
            check((st.st_uid, st.st_gid, st.st_mode & 0o7777) == (uid, gid, 0o640),
                  "%s rewrote the store as %d:%d %04o, want %d:%d 0640" % (
                      args[0], st.st_uid, st.st_gid, st.st_mode & 0o7777, uid, gid))
        check(sb.get("A") == b"two", "the rewritten store lost the change")


def test_lock_timeout():
    with CliSandbox() as sb:
        sb.run(["set", "A"], input=b"one")
        lock = os.open(sb.store + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            t0 = time.monotonic()
            p = sb.fails(["set", "--lock-timeout", "1.5", "A"], 1, "--lock-timeout",
                         sb.store + ".lock", input=b"two")
            took = time.monotonic() - t0
            err = p.stderr.decode(errors="replace")
            check(1.4 < took < 5, "gave up after %.1f s, want about 1.5" % took)
            check("is waiting for" in err and "pid " in err,
                  "no word after a second about who waits for what: %s" % err)
            sb.fails(["rm", "--lock-timeout", "0.2", "A"], 1, "--lock-timeout")
            sb.fails(["update-secrets", "--lock-timeout", "0.2", "--secrets", "B=b"], 1,
                     "--lock-timeout")
            sb.fails(["set", "--lock-timeout", "soon", "A"], 2, "--lock-timeout", input=b"x")
        finally:
            os.close(lock)
        check(sb.get("A") == b"one", "a command that gave up changed the store")


def test_lock_timeout_from_config():
    """[store] lock_timeout sets the wait; --lock-timeout still wins; a bad value is named."""
    with CliSandbox() as sb:
        sb.run(["set", "A"], input=b"one")
        sb.write_config("lock_timeout = 0.3\n")
        lock = os.open(sb.store + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            t0 = time.monotonic()
            sb.fails(["set", "A"], 1, "held the store's lock for 0.3 s", "[store] lock_timeout",
                     input=b"two")
            check(time.monotonic() - t0 < 20, "the config's 0.3 s was not used")
            sb.fails(["set", "--lock-timeout", "0.5", "A"], 1, "for 0.5 s", input=b"two")
        finally:
            os.close(lock)
        check(sb.get("A") == b"one", "a command that gave up changed the store")
        sb.write_config("lock_timeout = soon\n")
        sb.fails(["list"], 1, sb.config + ":4:", "lock_timeout 'soon'", "seconds")


if __name__ == "__main__":
    run_all(test_key_owned_by_another_user, test_store_dir_owned_by_another_user,
            test_store_dir_writable_by_others, test_symlink_into_another_users_dir,
            test_rewrite_keeps_owner_and_mode, test_lock_timeout,
            test_lock_timeout_from_config)
