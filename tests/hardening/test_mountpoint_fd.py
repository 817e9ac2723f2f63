"""Issue 12, item 5 / issue 13: `secretfs mount --mountpoint-fd N` mounts onto exactly the
directory a supervisor opened without following symlinks (the Docker plugin's volumes), and
refuses when the path no longer names that directory, so a name swapped in between (a
symlink to a root-only directory, another directory) never gets a mount."""
import os
import subprocess

from harness import (SECRETFS, Sandbox, check, is_mounted, need_fuse, run_all, wait_for,
                     pid_alive)

FD = 7


def mount_with_fd(sb, path, fd_path, extra=()):
    """Runs `secretfs mount --mountpoint-fd 7 PATH` with FD 7 open on fd_path."""
    fd = os.open(fd_path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.dup2(fd, FD)
        return subprocess.run([SECRETFS, "mount", "--mountpoint-fd", str(FD)] + list(extra) +
                              [path], env=sb.env, capture_output=True, pass_fds=(FD,),
                              timeout=60)
    finally:
        os.close(FD)
        os.close(fd)


def test_mounts_onto_the_descriptor():
    need_fuse()
    with Sandbox() as sb:
        sb.run(["set", "A"], input=b"one")
        mnt = sb.mountpoint("m")
        p = mount_with_fd(sb, mnt, mnt)
        sb.mounts.append(mnt)
        check(p.returncode == 0, "mount through the fd failed: %s" % p.stderr[-400:])
        pid = sb.daemon_pid(mnt)
        sb.pids.append(pid)
        with open(os.path.join(mnt, "A"), "rb") as f:
            check(f.read() == b"one", "the mount serves the store")
        # the daemon unmounts through the same descriptor at SIGTERM
        os.kill(pid, 15)
        wait_for(lambda: not pid_alive(pid), "the daemon to exit after SIGTERM", timeout=20)
        check(not is_mounted(mnt), "SIGTERM left the mount behind")


def test_swapped_name_is_refused():
    need_fuse()
    with Sandbox() as sb:
        sb.run(["set", "A"], input=b"one")
        mnt = sb.mountpoint("v")
        root_only = sb.mountpoint("root-only")
        os.chmod(root_only, 0o700)
        with open(os.path.join(root_only, "precious"), "w") as f:
            f.write("x")
        fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            # after the supervisor's checks, the name becomes a symlink elsewhere
            os.rename(mnt, mnt + ".old")
            os.symlink(root_only, mnt)
            os.dup2(fd, FD)
            p = subprocess.run([SECRETFS, "mount", "--mountpoint-fd", str(FD), mnt],
                               env=sb.env, capture_output=True, pass_fds=(FD,), timeout=60)
            os.close(FD)
        finally:
            os.close(fd)
        sb.mounts.extend([root_only, mnt + ".old"])
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 1, "a swapped name was mounted: rc %d" % p.returncode)
        check("no longer the directory" in err and mnt in err and "nothing was mounted" in err,
              "the error says what happened: %s" % err)
        check(not is_mounted(root_only) and not is_mounted(mnt + ".old"),
              "nothing is mounted over either directory")
        check(os.listdir(root_only) == ["precious"], "the root-only directory is untouched")
        # another directory under the same name is refused the same way
        os.unlink(mnt)
        os.mkdir(mnt)
        p = mount_with_fd(sb, mnt, mnt + ".old")
        check(p.returncode == 1 and b"no longer the directory" in p.stderr and
              not is_mounted(mnt), "a replaced directory is refused too")


def test_bad_descriptors():
    with Sandbox() as sb:
        mnt = sb.mountpoint("b")
        for arg, want in (("2", "3 or more"), ("x", "descriptor number"),
                          ("99", "Bad file descriptor")):
            p = sb.run(["mount", "--mountpoint-fd", arg, mnt], check_rc=False)
            check(p.returncode != 0 and want.encode() in p.stderr,
                  "--mountpoint-fd %s: %s" % (arg, p.stderr[-300:]))
        path = os.path.join(sb.dir, "plain")
        open(path, "w").close()
        fd = os.open(path, os.O_RDONLY)
        os.dup2(fd, FD)
        p = subprocess.run([SECRETFS, "mount", "--mountpoint-fd", str(FD), mnt], env=sb.env,
                           capture_output=True, pass_fds=(FD,), timeout=60)
        os.close(FD)
        os.close(fd)
        check(p.returncode != 0 and b"not a directory" in p.stderr and not is_mounted(mnt),
              "a descriptor of a file is refused: %s" % p.stderr[-300:])


if __name__ == "__main__":
    run_all(test_mounts_onto_the_descriptor, test_swapped_name_is_refused, test_bad_descriptors)
