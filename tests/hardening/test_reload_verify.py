"""Issue 12, item 4: `secretfs reload DIR` signals only the daemon that serves DIR.  A fake
.status (in a directory an unprivileged user owns, or on a mount that is not secretfs) that
names some other process must not get it signalled; a real mount still reloads."""
import os
import subprocess
import tempfile
import shutil

from harness import (SECRETFS, Sandbox, check, ensure_test_user, need_fuse, run_all,
                     pid_alive)


def fake_status(directory, pid):
    with open(os.path.join(directory, ".status"), "w") as f:
        f.write("generation=1\nloaded_at=0\nsecrets=0\nplatform=0\npid=%d\ncache=kernel\n"
                "reloads=0\nreloads_started=0\nlast_reload=ok\n" % pid)


def expect_refused(sb, directory, victim, what):
    p = sb.run(["reload", "--timeout", "1", directory], check_rc=False)
    err = p.stderr.decode(errors="replace")
    check(pid_alive(victim.pid) and victim.poll() is None,
          "%s: secretfs reload signalled the process its fake .status names" % what)
    check(p.returncode == 1, "%s: reload exited %d, want 1" % (what, p.returncode))
    check(directory in err, "%s: the error does not name the directory: %s" % (what, err))
    return err


def test_fake_status_in_user_dir():
    need_fuse()
    uid, gid = ensure_test_user()
    with Sandbox() as sb:
        fake = os.path.join(sb.dir, "userdir")
        os.mkdir(fake)
        victim = subprocess.Popen(["sleep", "60"])
        try:
            fake_status(fake, victim.pid)
            os.chown(os.path.join(fake, ".status"), uid, gid)
            os.chown(fake, uid, gid)
            err = expect_refused(sb, fake, victim, "user-owned directory")
            check("not a mountpoint" in err, "the error does not say why: %s" % err)
        finally:
            victim.kill()
            victim.wait()


def test_fake_status_on_tmpfs():
    need_fuse()
    with Sandbox() as sb:
        fake = sb.mountpoint("tmpfs")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", fake], check=True)
        sb.mounts.append(fake)
        victim = subprocess.Popen(["sleep", "60"])
        try:
            fake_status(fake, victim.pid)
            err = expect_refused(sb, fake, victim, "tmpfs")
            check("not secretfs" in err, "the error does not say why: %s" % err)
        finally:
            victim.kill()
            victim.wait()
            subprocess.run(["umount", fake])


def test_real_mount_still_reloads():
    need_fuse()
    with Sandbox() as sb:
        sb.run(["set", "A"], input=b"one")
        mnt, pid = sb.mount()
        sb.run(["set", "A"], input=b"two")
        p = sb.run(["reload", mnt])
        check(b"reloaded" in p.stdout, "reload of a real mount did not report success")
        with open(os.path.join(mnt, "A"), "rb") as f:
            check(f.read() == b"two", "the real mount does not serve the new value")


if __name__ == "__main__":
    run_all(test_fake_status_in_user_dir, test_fake_status_on_tmpfs,
            test_real_mount_still_reloads)
