"""`secretfs run` as a process supervisor: its own process group for the child, signal
forwarding, exit status propagation (128+N for a signal), no zombies."""
import os
import signal
import subprocess
import time

from runlib import (SECRETFS, ChildDir, Runner, RunSandbox, check, children_of, need_fuse,
                    pid_alive, proc_stat, run_all, wait_for)


def started(sb, mnt, *child_opts, run_opts=()):
    cd = ChildDir(sb, "child-%d" % len(getattr(sb, "runners", [])))
    r = Runner(sb, ["--mount", mnt] + list(run_opts) + ["--"] + cd.argv(*child_opts),
               name="run-%d" % len(getattr(sb, "runners", [])))
    return r, cd, cd.wait_started(1)


def no_zombies(r):
    kids = children_of(r.pid)
    zombies = [p for p, st in kids if st == "Z"]
    check(not zombies, "zombie children of secretfs run: %s" % zombies)
    return kids


def test_process_group():
    with RunSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        mnt, _ = sb.mount()
        r, cd, pid = started(sb, mnt)
        st_child, st_run = proc_stat(pid), proc_stat(r.pid)
        check(st_child[1] == r.pid, "the child's parent is not secretfs run")
        check(st_child[2] == pid, "the child does not lead its own process group")
        check(st_child[2] != st_run[2], "the child shares secretfs run's process group")
        check([p for p, _ in no_zombies(r)] == [pid], "run has children other than COMMAND")


def test_forwarding():
    with RunSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        mnt, _ = sb.mount()
        # HUP and USR1 are forwarded and the child keeps running; INT then ends it
        r, cd, pid = started(sb, mnt)
        for sig in (signal.SIGHUP, signal.SIGUSR1):
            r.p.send_signal(sig)
            wait_for(lambda: sig.name in [s for s, _ in cd.signals(pid)],
                     "%s to reach the child" % sig.name, 5)
        check(r.p.poll() is None, "secretfs run exited after HUP/USR1")
        r.p.send_signal(signal.SIGINT)
        rc = r.wait()
        check("SIGINT" in [s for s, _ in cd.signals(pid)], "SIGINT did not reach the child")
        check(rc == 128 + signal.SIGINT, "child killed by SIGINT: run exited %d, not 130" % rc)
        check(not pid_alive(pid), "the child is still alive after run exited")
        # TERM
        r, cd, pid = started(sb, mnt)
        r.p.send_signal(signal.SIGTERM)
        rc = r.wait()
        check("SIGTERM" in [s for s, _ in cd.signals(pid)], "SIGTERM did not reach the child")
        check(rc == 128 + signal.SIGTERM, "child killed by SIGTERM: run exited %d, not 143" % rc)
        # the whole process group gets it: a grandchild `sleep` dies with TERM too
        r, cd, pid = started(sb, mnt, "--grandchild")
        with open(os.path.join(cd.dir, "grandchild.%d" % pid)) as f:
            gpid = int(f.read())
        r.p.send_signal(signal.SIGTERM)
        r.wait()
        wait_for(lambda: not pid_alive(gpid), "the grandchild to die of the forwarded TERM", 5)


def test_exit_status():
    with RunSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        mnt, _ = sb.mount()
        for opts, want in ((("--exit", "0"), 0), (("--exit", "7"), 7), (("--exit", "255"), 255),
                           (("--kill-self", "9"), 137), (("--kill-self", "10"), 138)):
            r, cd, pid = started(sb, mnt, *opts)
            rc = r.wait()
            check(rc == want, "child %s: run exited %d, not %d" % (" ".join(opts), rc, want))
        p = subprocess.run([SECRETFS, "run", "--mount", mnt, "--", "sh", "-c", "exit 42"],
                           env=sb.env, capture_output=True, timeout=30)
        check(p.returncode == 42, "sh -c 'exit 42': run exited %d" % p.returncode)


def test_no_zombies():
    with RunSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        mnt, _ = sb.mount()
        r, cd, pid = started(sb, mnt, run_opts=("--restart-on-change", "--grace", "2"))
        for n in (2, 3):
            sb.set_secrets({"A": b"a%d" % n})
            sb.run(["reload", mnt])
            cd.wait_started(n)
            time.sleep(0.3)
            kids = no_zombies(r)
            check([p for p, _ in kids] == [cd.pids()[-1]],
                  "after restart %d run's children are %s, expected only the new child"
                  % (n - 1, kids))
        r.p.send_signal(signal.SIGTERM)
        r.wait()
        alive = [p for p in cd.pids() if pid_alive(p)]
        check(not alive, "children still alive after run exited: %s" % alive)


if __name__ == "__main__":
    need_fuse()
    run_all(test_process_group, test_forwarding, test_exit_status, test_no_zombies)
