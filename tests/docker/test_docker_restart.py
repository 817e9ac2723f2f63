"""A plugin restart: volumes are still listed; a live mount a container still holds is
adopted; a dead (stale) one is mounted again; references no container holds are dropped; a
mount nobody holds is unmounted; a broken state file, a second plugin on the same state
directory or socket, are refused.  A bind of the volume (sb.bind) stands for a container."""
import json
import os
import signal
import socket
import subprocess

from dockerlib import (PluginSandbox, check, fails, harness, mount_id, mounted_fs, ok,
                       wait_gone)


def volumes(e):
    return {v["Name"]: v for v in ok(e.list(), "List").json["Volumes"]}


def test_restart_adopts_live_mount():
    """SIGKILL (a crash) with a mounted volume: the daemon keeps serving; the new plugin
    adopts it, and the held references still unmount it at the end."""
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a", "B": b"b"})
        sb.start_plugin()
        e = sb.engine()
        ok(e.create("live", {"secrets": "A"}), "Create")
        ok(e.create("idle", None), "Create a second, never mounted")
        a, b = mount_id(), mount_id()
        mnt = ok(e.mount("live", a), "Mount").json["Mountpoint"]
        ok(e.mount("live", b), "Mount b")
        ctr = sb.bind("live")
        pid = sb.daemon_pid(mnt)
        sb.stop_plugin(signal.SIGKILL)
        check(not sb.answers(), "nothing answers on the socket of a dead plugin (no daemon "
              "inherited the listening socket)")
        check(harness.pid_alive(pid) and harness.read_bytes(os.path.join(mnt, "A")) == b"a",
              "the mount keeps serving while the plugin is down")
        sb.start_plugin()
        e = sb.engine()
        vs = volumes(e)
        check(sorted(vs) == ["idle", "live"], "both volumes are still listed: %s" % sorted(vs))
        check(vs["live"].get("Mountpoint") == mnt and vs["live"]["Status"]["references"] == 2,
              "the live mount is adopted with its references: %r" % vs["live"]["Status"])
        check(sb.daemon_pid(mnt) == pid, "adopted, not remounted")
        check("adopted" in sb.log_text(), "the log says it adopted the mount")
        sb.unbind(ctr)
        ok(e.unmount("live", a), "Unmount a")
        check(mounted_fs(mnt) == "fuse.secretfs", "b still holds it")
        ok(e.unmount("live", b), "Unmount b")
        check(mounted_fs(mnt) is None, "unmounted at zero")
        wait_gone(pid, "the adopted daemon to exit")


def test_restart_remounts_stale_mount():
    """The plugin and the daemon both die (a managed plugin's container stopping kills
    both): the mount is dead (ENOTCONN).  The restarted plugin unmounts it and mounts again
    for the references Docker still holds."""
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        sb.start_plugin()
        e = sb.engine()
        ok(e.create("v", None), "Create")
        mid = mount_id()
        mnt = ok(e.mount("v", mid), "Mount").json["Mountpoint"]
        ctr = sb.bind("v")
        pid = sb.daemon_pid(mnt)
        sb.stop_plugin(signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, "the daemon to die")
        check(harness.errno_of(os.stat, os.path.join(mnt, "A")) == "ENOTCONN",
              "the mount is stale")
        sb.start_plugin()
        check(mounted_fs(mnt) == "fuse.secretfs", "mounted again")
        new_pid = sb.daemon_pid(mnt)
        check(new_pid != pid and harness.read_bytes(os.path.join(mnt, "A")) == b"a",
              "a new daemon serves the volume")
        e = sb.engine()
        check(ok(e.get("v"), "Get").json["Volume"]["Status"]["references"] == 1,
              "the reference is kept")
        sb.unbind(ctr)
        ok(e.unmount("v", mid), "Unmount")
        check(mounted_fs(mnt) is None, "unmounted")
        wait_gone(new_pid, "the new daemon to exit")


def test_restart_drops_unheld_references():
    """Docker died without Unmount (its containers gone), or the machine lost power: the
    references in the state file are held by no container.  The restarted plugin drops
    them, unmounts (live or dead) and does not mount again; Remove then works."""
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        sb.start_plugin()
        e = sb.engine()
        ok(e.create("live", None), "Create")
        ok(e.create("gone", None), "Create")
        mnt = ok(e.mount("live", mount_id()), "Mount").json["Mountpoint"]
        ok(e.mount("live", mount_id()), "Mount by a second container")
        gone = ok(e.mount("gone", mount_id()), "Mount").json["Mountpoint"]
        pid, pid2 = sb.daemon_pid(mnt), sb.daemon_pid(gone)
        sb.stop_plugin(signal.SIGKILL)
        harness.unmount(gone)  # as after a reboot: nothing mounted, the state file remains
        wait_gone(pid2, "the daemon to exit")
        sb.start_plugin()
        check(mounted_fs(mnt) is None and mounted_fs(gone) is None,
              "nothing is mounted for references no container holds")
        wait_gone(pid, "the unheld daemon to exit")
        log = sb.log_text()
        check("live: no container holds its mount: dropping 2 stale references" in log and
              "gone: no container holds its mount: dropping 1 stale reference" in log,
              "the log names the dropped references: %s" % log[-800:])
        e = sb.engine()
        for name in ("live", "gone"):
            check(ok(e.get(name), "Get").json["Volume"]["Status"]["references"] == 0,
                  "%s: no references left" % name)
        with open(os.path.join(sb.state, "volumes.json")) as f:
            check(all(v["mounts"] == {} for v in json.load(f)["volumes"]),
                  "the state file is saved without them")
        ok(e.remove("live"), "Remove works")


def test_mount_replaces_dead_mount():
    """A volume's daemon dies while the plugin runs: the next Mount (a new container)
    unmounts the dead mount and mounts again; the references carry over."""
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        sb.start_plugin()
        e = sb.engine()
        ok(e.create("v", None), "Create")
        first, second = mount_id(), mount_id()
        mnt = ok(e.mount("v", first), "Mount").json["Mountpoint"]
        pid = sb.daemon_pid(mnt)
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, "the daemon to die")
        check(harness.errno_of(os.stat, os.path.join(mnt, "A")) == "ENOTCONN", "stale")
        ok(e.mount("v", second), "Mount by a new container")
        new_pid = sb.daemon_pid(mnt)
        check(new_pid != pid and harness.read_bytes(os.path.join(mnt, "A")) == b"a",
              "a new daemon serves the volume")
        check("is dead; mounting it again" in sb.log_text(), "the log says why")
        check(e.get("v").json["Volume"]["Status"]["references"] == 2, "both references")
        ok(e.unmount("v", first), "Unmount the first")
        check(mounted_fs(mnt) == "fuse.secretfs", "the second still holds it")
        ok(e.unmount("v", second), "Unmount the second")
        check(mounted_fs(mnt) is None, "unmounted")
        wait_gone(new_pid, "the daemon to exit")


def test_restart_cleans_unheld_mounts():
    """A mount at a volume's place that no reference holds (the plugin died between mounting
    and saving, or someone mounted by hand) is unmounted; so is a stale one."""
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        sb.start_plugin()
        e = sb.engine()
        ok(e.create("orphan", None), "Create")
        ok(e.create("stale", None), "Create")
        sb.stop_plugin()
        live = sb.volume_dir("orphan")
        os.makedirs(live, exist_ok=True)
        _, pid = sb.mount(live)
        stale = sb.volume_dir("stale")
        os.makedirs(stale, exist_ok=True)
        _, pid2 = sb.mount(stale)
        os.kill(pid2, signal.SIGKILL)
        wait_gone(pid2, "the daemon to die")
        sb.start_plugin()
        check(mounted_fs(live) is None and mounted_fs(stale) is None,
              "unheld mounts are unmounted at start")
        wait_gone(pid, "the orphan's daemon to exit")
        e = sb.engine()
        check(sorted(volumes(e)) == ["orphan", "stale"], "the volumes remain")
        mid = mount_id()
        ok(e.mount("stale", mid), "the volume mounts normally afterwards")
        ok(e.unmount("stale", mid), "Unmount")


def test_sigterm_leaves_mounts_serving():
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        sb.start_plugin()
        e = sb.engine()
        ok(e.create("v", None), "Create")
        mid = mount_id()
        mnt = ok(e.mount("v", mid), "Mount").json["Mountpoint"]
        ctr = sb.bind("v")
        pid = sb.daemon_pid(mnt)
        check(sb.stop_plugin(signal.SIGTERM) == 0, "SIGTERM: exit 0")
        check(harness.read_bytes(os.path.join(mnt, "A")) == b"a", "still serving")
        sb.start_plugin()
        e = sb.engine()
        check(ok(e.path("v"), "Path").json["Mountpoint"] == mnt, "adopted after SIGTERM")
        check(sb.daemon_pid(mnt) == pid, "same daemon")
        sb.unbind(ctr)
        ok(e.unmount("v", mid), "Unmount")
        wait_gone(pid, "the daemon to exit")


def test_refusals_at_start():
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        sb.start_plugin()
        # a second plugin on the same state directory
        p = sb.start_plugin(extra=["--socket", os.path.join(sb.dir, "other.sock")],
                            expect_fail=True)
        check(p.returncode == 1 and "another secretfs docker-plugin uses" in sb.log_text(),
              "a second plugin on the state directory is refused")
        # a second plugin on the same socket
        p = sb.start_plugin(extra=["--state", os.path.join(sb.dir, "state2")],
                            expect_fail=True)
        check(p.returncode == 1 and "another process is serving" in sb.log_text(),
              "a second plugin on the socket is refused")
        check(sb.answers(), "the first plugin still serves")
        sb.stop_plugin()
        # a dead socket file left behind is replaced
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(sb.sock):
            os.unlink(sb.sock)
        s.bind(sb.sock)
        s.close()
        sb.start_plugin()
        ok(sb.engine().list(), "serves after replacing a dead socket file")
        sb.stop_plugin()
        # a broken state file
        path = os.path.join(sb.state, "volumes.json")
        with open(path, "w") as f:
            f.write('{"version": 1, "volumes": [{"name": "../x"}]}')
        p = sb.start_plugin(expect_fail=True)
        check(p.returncode == 1 and "volumes.json" in sb.log_text() and
              "field name is missing or not a volume name" in sb.log_text(), "a bad state file is refused, naming it: %s"
              % sb.log_text()[-400:])
        with open(path, "w") as f:
            f.write('{"version": 2, "volumes": []}')
        p = sb.start_plugin(expect_fail=True)
        check(p.returncode == 1 and "upgrade" in sb.log_text(), "a newer state file")
        with open(path, "w") as f:
            json.dump({"version": 1, "volumes": [
                {"name": "v", "secrets": "A", "uid": 0, "gid": 0, "mode": "0400",
                 "cache": "kernel", "created": "2026-01-01T00:00:00Z", "mounts": {}}]}, f)
        sb.start_plugin()
        check(sorted(volumes(sb.engine())) == ["v"], "a hand-written state file loads")
        sb.stop_plugin()
        # a state directory others may write to is refused; an open volumes directory is
        # only reported, and left as it is
        loose = os.path.join(sb.dir, "loose-state")
        os.makedirs(loose)
        os.chmod(loose, 0o777)
        p = sb.start_plugin(extra=["--state", loose], expect_fail=True)
        check(p.returncode == 1 and "writable by group or others" in sb.log_text(),
              "a world-writable state directory is refused")
        open_vols = os.path.join(sb.dir, "open-volumes")
        os.makedirs(open_vols)
        os.chmod(open_vols, 0o755)
        sb.start_plugin(extra=["--volumes", open_vols])
        check("lets others look inside" in sb.log_text(), "an open volumes directory is reported")
        check(os.stat(open_vols).st_mode & 0o777 == 0o755, "and left as it is")
        sb.stop_plugin()
        # boot order: the socket's directory (/run/docker/plugins before dockerd ran) is
        # created
        saved, sb.sock = sb.sock, os.path.join(sb.dir, "run", "docker", "plugins", "x.sock")
        sb.start_plugin()
        check(os.stat(os.path.dirname(sb.sock)).st_mode & 0o777 == 0o700,
              "the socket's missing directories are created 0700")
        sb.stop_plugin()
        sb.sock = saved
        # socket activation that passes something else than a listening unix socket
        with open(os.path.join(sb.dir, "notasocket"), "w") as f:
            f.write("x")
        r = subprocess.run(["sh", "-c", 'LISTEN_PID=$$ exec "$@" 3<"$0"',
                            os.path.join(sb.dir, "notasocket"), harness.SECRETFS,
                            "docker-plugin", "--state", sb.state, "--volumes", sb.vols],
                           capture_output=True, env=dict(sb.env, LISTEN_FDS="1"), timeout=60)
        check(r.returncode == 1 and b"not a listening unix stream socket" in r.stderr,
              "a bad socket from systemd is refused: %r" % r.stderr[-300:])
        sb.start_plugin()
        # usage errors
        r = subprocess.run([harness.SECRETFS, "docker-plugin", "--bogus"], capture_output=True,
                           env=sb.env)
        check(r.returncode == 2, "usage error: exit 2")
        r = subprocess.run([harness.SECRETFS, "docker-plugin", "--help"], capture_output=True,
                           env=sb.env)
        check(r.returncode == 0 and b"--volumes DIR" in r.stdout, "--help")
        fails(sb.engine().remove("nope"), "still answering", "no such volume")


def test_untrusted_directories():
    """The StrictModes rule: a state or volumes directory owned by another user, or below a
    directory another user owns, or writable by others, is refused with what to fix (a
    user could otherwise hand root a volumes.json of their own, or swap a mountpoint for a
    symlink); a symlink planted where a mountpoint goes is refused at Mount."""
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        uid, gid = harness.ensure_test_user()
        theirs = os.path.join(sb.dir, "theirs")
        os.makedirs(theirs, mode=0o700)
        os.chown(theirs, uid, gid)
        p = sb.start_plugin(extra=["--state", theirs], expect_fail=True)
        check(p.returncode == 1 and "%s: owned by uid %d" % (theirs, uid) in sb.log_text() and
              "chown it to root" in sb.log_text(),
              "a state directory another user owns is refused: %s" % sb.log_text()[-300:])
        below = os.path.join(theirs, "volumes")
        os.makedirs(below, mode=0o700)
        p = sb.start_plugin(extra=["--volumes", below], expect_fail=True)
        check(p.returncode == 1 and "%s: owned by uid %d" % (theirs, uid) in sb.log_text(),
              "a volumes directory below one another user owns is refused")
        loose = os.path.join(sb.dir, "loose-volumes")
        os.makedirs(loose)
        os.chmod(loose, 0o777)
        p = sb.start_plugin(extra=["--volumes", loose], expect_fail=True)
        check(p.returncode == 1 and "writable by group or others (mode 0777)" in sb.log_text()
              and "chmod go-w it" in sb.log_text(),
              "a world-writable volumes directory is refused")
        sb.start_plugin()
        e = sb.engine()
        ok(e.create("v", None), "Create")
        os.makedirs(sb.vols, exist_ok=True)
        os.symlink(theirs, sb.volume_dir("v"))
        fails(e.mount("v", mount_id()), "Mount over a planted symlink",
              "not a directory (a symlink")
        check(mounted_fs(theirs) is None, "nothing is mounted where the symlink points")
        os.unlink(sb.volume_dir("v"))
        mid = mount_id()
        ok(e.mount("v", mid), "Mount once the symlink is gone")
        ok(e.unmount("v", mid), "Unmount")


if __name__ == "__main__":
    harness.need_fuse()
    harness.run_all(test_restart_adopts_live_mount, test_restart_remounts_stale_mount,
                    test_restart_drops_unheld_references,
                    test_mount_replaces_dead_mount, test_restart_cleans_unheld_mounts, test_sigterm_leaves_mounts_serving,
                    test_refusals_at_start, test_untrusted_directories)
