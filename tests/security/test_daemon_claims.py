#!/usr/bin/python3
"""Threat-model claims about the daemon that the CLI tests do not reach:

- a key file behind a symlink (or readable by others) is refused by `secretfs mount` and
  by a reload, not only by the store commands;
- no planted value reaches the daemon's log, `secretfs mount`'s or `secretfs reload`'s
  output, `.status` or the generation file, on any failure path of mount and reload;
- a crashing root daemon (whose cwd, /, root may write) leaves no core file, checked
  against a control process that does leave one (test_process.py looks for cores only
  after crashing a non-root daemon, which could not write one in / anyway)."""
import os
import signal
import subprocess
import sys
import time

from harness import (Sandbox, canary, check, is_mounted, leaks, need_fuse,  # noqa: E402
                     pid_alive, redact, run_all, start_foreground, unmount, wait_for)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def status_text(mnt):
    return read(os.path.join(mnt, ".status"))


def notify_file(mnt):
    for line in status_text(mnt).decode().splitlines():
        if line.startswith("notify="):
            return line[len("notify="):]
    return None


def no_leak(data, what):
    check(leaks(data) == 0, "%s holds a planted value" % what)


def refused(p, what, *needles):
    err = redact(p.stderr)
    no_leak(p.stdout + p.stderr, what)
    check(p.returncode == 1, "%s exited %d, expected 1: %s" % (what, p.returncode, err[-500:]))
    for n in needles:
        check(n in err, "%s: stderr lacks %r: %s" % (what, n, err[-500:]))


def test_daemon_refuses_unsafe_key_files():
    need_fuse()
    with Sandbox() as sb:
        values = {"DB_PASSWORD": canary("db"), "TOKEN": canary("tok")}
        sb.set_secrets(values)
        real_key = os.path.join(sb.dir, "real.key")
        os.rename(sb.key, real_key)
        os.symlink(real_key, sb.key)
        mnt = sb.mountpoint()
        sb.mounts.append(mnt)
        p = sb.run(["mount", mnt], check_rc=False)
        refused(p, "mount with a symlinked key", sb.key, "symlink")
        check(not is_mounted(mnt), "a mount with a symlinked key was made")
        os.unlink(sb.key)
        loose = read(real_key)
        with open(sb.key, "wb") as f:
            f.write(loose)
        os.chmod(sb.key, 0o640)
        p = sb.run(["mount", mnt], check_rc=False)
        refused(p, "mount with a group-readable key", sb.key, "chmod 600")
        check(not is_mounted(mnt), "a mount with a group-readable key was made")

        # a running daemon: the key becomes a symlink, then a good key again
        os.chmod(sb.key, 0o600)
        mnt, pid = sb.mount(mnt)
        tmp_link = sb.key + ".link"
        os.symlink(real_key, tmp_link)
        os.rename(tmp_link, sb.key)
        p = sb.run(["reload", mnt], check_rc=False)
        refused(p, "reload with a symlinked key", sb.key, "symlink")
        st = status_text(mnt).decode()
        check("last_reload=error:" in st and "symlink" in st,
              ".status does not report the symlinked key")
        check(read(os.path.join(mnt, "TOKEN")) == values["TOKEN"],
              "a refused key changed what the mount serves")
        os.unlink(sb.key)
        with open(sb.key, "wb") as f:
            f.write(loose)
        os.chmod(sb.key, 0o600)
        sb.run(["reload", mnt])
        print("symlinked key: mount and reload refuse it; group-readable key: mount refuses it")


def test_daemon_failure_paths_leak_nothing():
    need_fuse()
    with Sandbox() as sb:
        values = {"DB_PASSWORD": canary("db"), "TOKEN": canary("tok"),
                  "BIN": b"\0" + canary("bin") + b"\n"}
        sb.set_secrets(values)
        platform = os.path.join(sb.dir, "platform.env")
        with open(platform, "wb") as f:
            f.write(b"LIVEKIT_API_SECRET=" + canary("platform") + b"\n")
        sb.write_config("[platform]\nfile = %s\n" % platform)
        env = dict(sb.env, LIVEKIT_API_KEY=canary("env").decode())
        log = os.path.join(sb.dir, "daemon.log")
        mnt = sb.mountpoint()
        daemon = start_foreground(sb, mnt, env=env, log=log)
        check(read(os.path.join(mnt, "LIVEKIT_API_SECRET")).startswith(b"cnry-platform"),
              "the platform file is not served")
        good_store, good_key, good_platform = read(sb.store), read(sb.key), read(platform)
        notify = notify_file(mnt)
        other_key = os.path.join(sb.dir, "other.key")
        sb.run(["keygen", other_key])

        def put(path, data, mode=0o600):
            tmp = path + ".new"
            with open(tmp, "wb") as f:
                f.write(data)
            os.chmod(tmp, mode)
            os.rename(tmp, path)

        flipped = bytearray(good_store)
        flipped[len(flipped) // 2] ^= 1
        failures = [
            ("a bit-flipped store", lambda: put(sb.store, bytes(flipped))),
            ("a truncated store", lambda: put(sb.store, good_store[:-20])),
            ("a plaintext file as the store", lambda: put(
                sb.store, b"DB_PASSWORD=" + values["DB_PASSWORD"] + b"\n")),
            ("a missing store", lambda: os.unlink(sb.store)),
            ("another key", lambda: put(sb.key, read(other_key))),
            ("a group-readable key", lambda: put(sb.key, good_key, 0o640)),
            ("a platform file with a store name", lambda: put(
                platform, b"LIVEKIT_URL=" + canary("p") + b"\nDB_PASSWORD=" + canary("p") +
                b"\n")),
            ("a platform file that does not parse", lambda: put(
                platform, b'LIVEKIT_URL="' + canary("p") + b"\n")),
            ("a platform file with a bad name", lambda: put(
                platform, b"LIVEKIT URL=" + canary("p") + b"\n")),
        ]
        outputs = 0
        for what, breakit in failures:
            breakit()
            p = sb.run(["reload", mnt], check_rc=False)
            refused(p, "reload with %s" % what)
            st = status_text(mnt)
            no_leak(st, ".status after %s" % what)
            check(b"last_reload=error:" in st, ".status does not report %s" % what)
            if notify:
                no_leak(read(notify), "the generation file after %s" % what)
            # mount (background and foreground) refuses the same state on a new mountpoint
            for fg in ([], ["-f"]):
                other = sb.mountpoint("other")
                sb.mounts.append(other)
                p = sb.run(["mount"] + fg + [other], check_rc=False, env=env, timeout=30)
                refused(p, "mount %s with %s" % (" ".join(fg), what))
                check(not is_mounted(other), "mount with %s was made" % what)
                outputs += 1
            put(sb.store, good_store)
            put(sb.key, good_key)
            put(platform, good_platform)
            outputs += 1
        sb.run(["reload", mnt])
        for name, value in values.items():
            check(read(os.path.join(mnt, name)) == value, "%s changed" % name)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        text = read(log)
        no_leak(text, "the daemon's log")
        failed_logged = text.count(b"reload failed")
        check(failed_logged == len(failures), "the log reports %d failed reloads, not %d" % (
            failed_logged, len(failures)))
        print("%d failure paths: %d outputs of reload/mount, %d .status reads and a %d-byte "
              "daemon log hold no planted value" % (len(failures), outputs, len(failures),
                                                    len(text)))


def cores_in(directory):
    try:
        return {n for n in os.listdir(directory) if n == "core" or n.startswith("core.")}
    except OSError:
        return set()


def test_crashing_root_daemon_leaves_no_core():
    need_fuse()
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    if pattern.startswith("|") or "/" in pattern:
        print("core_pattern is %r (not a file in the cwd): only the control is skipped; "
              "cores are searched in / and the sandbox" % pattern)
    with Sandbox() as sb:
        before_root = cores_in("/")
        created = []
        try:
            # control: a root process in a directory, with cores allowed, does dump here
            control_dir = os.path.join(sb.dir, "control")
            os.mkdir(control_dir)
            control = None
            if not pattern.startswith("|") and "/" not in pattern:
                p = subprocess.Popen(["sh", "-c", "ulimit -c unlimited && exec sleep 60"],
                                     cwd=control_dir)
                time.sleep(0.2)
                p.send_signal(signal.SIGABRT)
                p.wait(timeout=30)
                wait_for(lambda: cores_in(control_dir), "the control's core file", 10)
                control = sorted(cores_in(control_dir))
            sb.set_secrets({"TOKEN": canary("core")})
            mnt, pid = sb.mount()
            check(os.readlink("/proc/%d/cwd" % pid) == "/", "the daemon's cwd is not /")
            os.kill(pid, signal.SIGABRT)
            wait_for(lambda: not pid_alive(pid), "the daemon to die", 10)
            time.sleep(0.5)
            sb.pids.remove(pid)
            new = cores_in("/") - before_root
            created += ["/" + n for n in new]
            check(not new, "the crashing daemon left %s in /" % sorted(new))
            unmount(mnt)
            print("crashing root daemon (SIGABRT): no core in /; a control process in a "
                  "directory dumped %s" % (control if control else "(skipped)"))
        finally:
            for path in created:
                if os.path.isfile(path):
                    os.unlink(path)


if __name__ == "__main__":
    run_all(test_daemon_refuses_unsafe_key_files, test_daemon_failure_paths_leak_nothing,
            test_crashing_root_daemon_leaves_no_core)
