"""Issue 12, item 4: `secretfs reload DIR` signals only the daemon that serves DIR.  A fake
.status (in a directory an unprivileged user owns, or on a mount that is not secretfs) that
names some other process must not get it signalled; a real mount still reloads."""
import os
import subprocess
import tempfile
import shutil

from harness import (SECRETFS, Sandbox, check, ensure_test_user, genfile_path, need_fuse,
                     run_all, pid_alive)


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


def test_container_view():
    """A status=container mount names no pid: reload finds the daemon through the generation
    file, and only a file of the mount's user counts (a user's planted one does not)."""
    need_fuse()
    uid, gid = ensure_test_user()
    with Sandbox() as sb:
        sb.run(["set", "A"], input=b"one")
        mnt, _ = sb.mount(opts=["-o", "status=container"])
        st = sb.status(mnt)
        check("pid" not in st and "notify" not in st and st.get("view") == "container",
              "the container view leaves out the pid and paths: %s" % st)
        sb.pids.append(sb.daemon_pid(mnt))
        sb.run(["set", "A"], input=b"two")
        p = sb.run(["reload", mnt])
        check(b"reloaded, generation 2" in p.stdout, "reload finds it: %r" % p.stdout)
        # without the real file, a generation file the user planted is not believed
        real = os.path.dirname(genfile_path(mnt))
        xdg = tempfile.mkdtemp(prefix="sfs-xdg-")
        victim = subprocess.Popen(["sleep", "60"])
        os.rename(real, real + ".aside")
        try:
            planted = os.path.dirname(genfile_path(mnt, os.path.join(xdg, "secretfs")))
            os.makedirs(planted)
            with open(os.path.join(planted, "generation"), "w") as f:
                f.write("pid=%d\ngeneration=2\nseq=4\n" % victim.pid)
            for d in (xdg, os.path.join(xdg, "secretfs"), planted,
                      os.path.join(planted, "generation")):
                os.chown(d, uid, gid)
            env = dict(sb.env, XDG_RUNTIME_DIR=xdg)
            p = subprocess.run([SECRETFS, "reload", "--timeout", "1", mnt], env=env,
                               capture_output=True, timeout=30)
            err = p.stderr.decode(errors="replace")
            check(p.returncode == 1 and victim.poll() is None and pid_alive(victim.pid),
                  "a planted generation file got its pid signalled: rc %d" % p.returncode)
            check("container view" in err and "generation file" in err,
                  "the error says why: %s" % err)
        finally:
            os.rename(real + ".aside", real)
            victim.kill()
            victim.wait()
            shutil.rmtree(xdg)
        p = sb.run(["reload", mnt])
        check(b"reloaded, generation 3" in p.stdout, "with its file back, reload works")


if __name__ == "__main__":
    run_all(test_fake_status_in_user_dir, test_fake_status_on_tmpfs,
            test_real_mount_still_reloads, test_container_view)
