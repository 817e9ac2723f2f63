"""`secretfs run` and reloads: --restart-on-change, --grace, --signal.

- after `secretfs reload`, the change is noticed within 1 s (the old child receives its
  signal), the old child and its whole process group are gone once the grace period ends
  (a group member that ignores SIGTERM is killed), and only then does the new child start,
  with the new values
- a child that ignores SIGTERM is killed with SIGKILL once --grace has passed
- --signal HUP without --restart-on-change only signals the running child
- an idle `secretfs run` makes no read calls (inotify on the daemon's generation file)
- a rejected reload (corrupt store) restarts nothing
- without a generation file, run checks .status once a second; it never starts the program
  while the generation file says a reload is running (odd seq)
"""
import os
import time

from runlib import (ChildDir, Runner, RunSandbox, check, need_fuse, pid_alive, run_all,
                    wait_for)

NOTICE_S = 1.0


def start(sb, mnt, run_opts, child_opts=()):
    cd = ChildDir(sb)
    r = Runner(sb, ["--mount", mnt] + list(run_opts) + ["--"] + cd.argv(*child_opts))
    return r, cd, cd.wait_started(1)


def reload_with(sb, mnt, values):
    sb.set_secrets(values)
    sb.run(["reload", mnt])
    return time.monotonic()


def signal_time(cd, pid, name, timeout):
    wait_for(lambda: name in [s for s, _ in cd.signals(pid)], "%s to reach child %d" %
             (name, pid), timeout)
    return [t for s, t in cd.signals(pid) if s == name][0]


def test_restart_on_change():
    with RunSandbox() as sb:
        sb.set_secrets({"DB": b"old", "STAYS": b"same"})
        mnt, _ = sb.mount()
        r, cd, old = start(sb, mnt, ["--restart-on-change", "--grace", "1.5"],
                           ["--stubborn-grandchild"])
        with open(os.path.join(cd.dir, "grandchild.%d" % old)) as f:
            grandchild = int(f.read())
        check(cd.env(old).get(b"DB") == b"old", "first child: DB is not the stored value")
        t0 = reload_with(sb, mnt, {"DB": b"new"})
        t_term = signal_time(cd, old, "SIGTERM", 5)
        check(t_term - t0 < NOTICE_S, "the change was noticed %.2f s after the reload "
              "returned (limit %.1f s)" % (t_term - t0, NOTICE_S))
        wait_for(lambda: not pid_alive(old), "the old child to exit", 5)
        # its group member that ignores SIGTERM is killed once the grace period is over,
        # and only then does the new program start
        wait_for(lambda: not pid_alive(grandchild), "the old process group to be gone", 3.5)
        new = cd.wait_started(2)
        check(new != old, "no new child")
        check(cd.start_time(new) >= t_term + 1.4, "the new child started %.2f s after the old "
              "group was told to stop, before the grace period ended"
              % (cd.start_time(new) - t_term))
        env = cd.env(new)
        check(env.get(b"DB") == b"new" and env.get(b"STAYS") == b"same",
              "the new child does not see the new values")
        check(r.p.poll() is None, "secretfs run exited during the restart")
        check(b"restarting" in r.stderr(), "run did not say it restarts the program")


def test_ignored_term_is_killed_after_grace():
    with RunSandbox() as sb:
        sb.set_secrets({"DB": b"old"})
        mnt, _ = sb.mount()
        r, cd, old = start(sb, mnt, ["--restart-on-change", "--grace", "1.5"], ["--ignore-term"])
        t0 = reload_with(sb, mnt, {"DB": b"new"})
        t_term = signal_time(cd, old, "SIGTERM", 5)
        check(t_term - t0 < NOTICE_S, "noticed %.2f s after the reload" % (t_term - t0))
        time.sleep(max(0.0, t_term + 1.0 - time.monotonic()))
        check(pid_alive(old), "the child was killed before --grace 1.5 had passed")
        wait_for(lambda: not pid_alive(old), "SIGKILL after the grace period", 3)
        t_dead = time.monotonic()
        check(t_dead - t_term < 3.0, "the child outlived the grace period by %.1f s"
              % (t_dead - t_term - 1.5))
        new = cd.wait_started(2)
        check(cd.env(new).get(b"DB") == b"new", "the new child does not see the new value")


def test_custom_restart_signal():
    with RunSandbox() as sb:
        sb.set_secrets({"DB": b"old"})
        mnt, _ = sb.mount()
        r, cd, old = start(sb, mnt, ["--restart-on-change", "--signal", "INT"])
        reload_with(sb, mnt, {"DB": b"new"})
        signal_time(cd, old, "SIGINT", 5)
        check("SIGTERM" not in [s for s, _ in cd.signals(old)], "SIGTERM sent despite --signal")
        new = cd.wait_started(2)
        check(cd.env(new).get(b"DB") == b"new", "the new child does not see the new value")


def test_signal_only():
    with RunSandbox() as sb:
        sb.set_secrets({"DB": b"old"})
        mnt, _ = sb.mount()
        r, cd, pid = start(sb, mnt, ["--signal", "HUP"])
        for n in (1, 2):
            t0 = reload_with(sb, mnt, {"DB": b"v%d" % n})
            wait_for(lambda: len([s for s, _ in cd.signals(pid) if s == "SIGHUP"]) >= n,
                     "SIGHUP #%d" % n, 5)
            t_hup = [t for s, t in cd.signals(pid) if s == "SIGHUP"][n - 1]
            check(t_hup - t0 < NOTICE_S, "HUP #%d came %.2f s after the reload" % (n, t_hup - t0))
        time.sleep(0.5)
        check(cd.pids() == [pid] and pid_alive(pid), "--signal alone restarted the child")
        check(cd.env(pid).get(b"DB") == b"old", "the running child's environment changed")
        check(len(cd.signals(pid)) == 2, "expected exactly 2 signals, got %s"
              % [s for s, _ in cd.signals(pid)])


def syscalls_read(pid):
    with open("/proc/%d/io" % pid) as f:
        return int([l for l in f if l.startswith("syscr:")][0].split()[1])


def test_idle_costs_nothing():
    with RunSandbox() as sb:
        sb.set_secrets({"DB": b"old"})
        mnt, _ = sb.mount()
        check(sb.status(mnt).get("notify", "").startswith("/"), ".status has no notify= line")
        r, cd, pid = start(sb, mnt, ["--restart-on-change"])
        time.sleep(0.3)
        before = syscalls_read(r.pid)
        time.sleep(2.5)
        reads = syscalls_read(r.pid) - before
        check(reads == 0, "an idle secretfs run made %d read calls in 2.5 s (polling?)" % reads)
        t0 = reload_with(sb, mnt, {"DB": b"new"})
        t_term = signal_time(cd, pid, "SIGTERM", 5)
        check(t_term - t0 < NOTICE_S, "noticed %.2f s after the reload" % (t_term - t0))


def test_rejected_reload_restarts_nothing():
    with RunSandbox() as sb:
        sb.set_secrets({"DB": b"old"})
        mnt, _ = sb.mount()
        r, cd, pid = start(sb, mnt, ["--restart-on-change"])
        with open(sb.store, "r+b") as f:
            f.seek(100)
            f.write(b"\xff" * 8)
        p = sb.run(["reload", mnt], check_rc=False)
        check(p.returncode == 1, "reload of a corrupt store exited %d" % p.returncode)
        time.sleep(1.5)
        check(cd.pids() == [pid] and not cd.signals(pid),
              "a rejected reload restarted or signalled the child")


def fake_mount(sb, generation, notify=None, values=None):
    """A plain directory that looks like a mount to `secretfs run`."""
    mnt = sb.mountpoint("fake")
    for name, value in (values or {}).items():
        with open(os.path.join(mnt, name), "wb") as f:
            f.write(value)
    write_atomic(os.path.join(mnt, ".status"), "generation=%d\npid=%d\n%s" % (
        generation, os.getpid(), "notify=%s\n" % notify if notify else ""))
    return mnt


def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def test_fallback_polling_and_reload_in_progress():
    with RunSandbox() as sb:
        # no generation file: .status is read once a second
        mnt = fake_mount(sb, 1, values={"DB": b"old"})
        r, cd, old = start(sb, mnt, ["--restart-on-change", "--grace", "2"])
        with open(os.path.join(mnt, "DB"), "wb") as f:
            f.write(b"new")
        fake_mount(sb, 2)
        t0 = time.monotonic()
        t_term = signal_time(cd, old, "SIGTERM", 5)
        check(t_term - t0 < 1.0 + 0.5, "polling noticed the change after %.2f s" % (t_term - t0))
        check(cd.env(cd.wait_started(2)).get(b"DB") == b"new", "polling: new value missing")
        r.p.terminate()
        r.wait()
        # a generation file with an odd seq: a reload is running; run waits for it to end
        gen_file = os.path.join(sb.dir, "fake.generation")
        write_atomic(gen_file, "pid=%d\ngeneration=1\nseq=3\n" % os.getpid())
        mnt = fake_mount(sb, 1, notify=gen_file)
        cd = ChildDir(sb, "child-seq")
        r = Runner(sb, ["--mount", mnt, "--restart-on-change", "--"] + cd.argv(), name="run2")
        time.sleep(1.0)
        check(not cd.pids(), "the program started while a reload was running")
        write_atomic(gen_file, "pid=%d\ngeneration=1\nseq=4\n" % os.getpid())
        first = cd.wait_started(1, timeout=5)
        # a change announced through the generation file restarts it (inotify, no polling)
        with open(os.path.join(mnt, "DB"), "wb") as f:
            f.write(b"third")
        fake_mount(sb, 2, notify=gen_file)
        t0 = time.monotonic()
        write_atomic(gen_file, "pid=%d\ngeneration=2\nseq=6\n" % os.getpid())
        t_term = signal_time(cd, first, "SIGTERM", 5)
        check(t_term - t0 < 0.5, "inotify noticed the change after %.2f s" % (t_term - t0))
        check(cd.env(cd.wait_started(2)).get(b"DB") == b"third", "inotify: new value missing")


if __name__ == "__main__":
    need_fuse()
    run_all(test_restart_on_change, test_ignored_term_is_killed_after_grace,
            test_custom_restart_signal, test_signal_only, test_idle_costs_nothing,
            test_rejected_reload_restarts_nothing,
            test_fallback_polling_and_reload_in_progress)
