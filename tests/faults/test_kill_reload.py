#!/usr/bin/python3
"""The daemon killed mid-reload, then restarted, serves the last good store.

A store of thousands of self-checking secrets (so a reload takes measurable time); each
round atomically installs the other generation, sends SIGHUP, waits a varied short delay
and sends SIGKILL.  The generation file (outside the mount, left behind by the dead daemon)
tells whether the kill landed before, during (odd seq) or after the reload.  Then: a mount
over the dead one is refused with the fix, `fusermount3 -u`, mount again, and the new
daemon must serve exactly the store on disk (every name, values of that generation).
Also: a store that is corrupt or partial at restart (truncated, a flipped bit, empty, half
a `cp`) makes mount refuse with a message naming the store and the reason, leaving nothing
mounted and no daemon; after the good store is restored, mount works again."""
import os
import random
import signal
import subprocess
import time

import faultlib as fl
import reloadlib
from faultlib import check
from harness import VIEWS, Sandbox, need_fuse, pid_alive, run_all, unmount, wait_for

SECRETS = int(os.environ.get("SFS_FAULTS_RELOAD_SECRETS", "6000"))
ROUNDS = int(os.environ.get("SFS_FAULTS_KILL_ROUNDS", "40"))
SAMPLE = 60


def daemons_on(mnt):
    """Pids of live processes whose command line names `mnt`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if mnt.encode() in argv and pid_alive(int(d)):
            out.append(int(d))
    return out


def serves(mnt, gen, names, rnd):
    """Checks that the mount serves exactly generation `gen` of the whole set."""
    st = reloadlib.status(mnt)
    check(st["secrets"] == str(len(names)) and st["last_reload"] == "ok",
          "the restarted daemon serves %s secrets (last_reload %s), not %d" % (
              st["secrets"], st["last_reload"][:100], len(names)))
    listing = os.listdir(mnt)
    check(len(listing) == len(names) + len(VIEWS), "the restarted daemon lists %d names, not %d" % (
        len(listing), len(names) + len(VIEWS)))
    for name in rnd.sample(names, SAMPLE) + [names[0], names[-1]]:
        got = reloadlib.verify_value(reloadlib.read(os.path.join(mnt, name)), name)
        check(got == gen, "the restarted daemon serves %s of generation %s, not %s" % (
            name, got, gen))


def mount(sb, mnt):
    mnt, pid = sb.mount(mnt)
    return pid


def kill_daemon(sb, mnt, pid):
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), "the killed daemon to go")
    if pid in sb.pids:
        sb.pids.remove(pid)   # never signal a recycled pid at cleanup


def test_killed_mid_reload_then_restarted():
    need_fuse()
    seed = int(os.environ.get("SFS_FAULTS_SEED", str(int.from_bytes(os.urandom(4), "little"))))
    rnd = random.Random(seed)
    with Sandbox() as sb:
        stores = {}
        for gen in ("A", "B"):
            stores[gen] = os.path.join(sb.dir, "prepared-%s.store" % gen)
            fl.build_store(sb, stores[gen], fl.big_values(gen, SECRETS))
        names = sorted("S%05d" % i for i in range(SECRETS))
        mnt = sb.mountpoint()
        reloadlib.install_store(sb, stores["A"])
        pid = mount(sb, mnt)
        notify = fl.notify_path(mnt)
        # how long one reload of this store takes here
        times = []
        for gen in ("B", "A", "B", "A", "B"):
            reloadlib.install_store(sb, stores[gen])
            t = time.monotonic()
            st = reloadlib.sighup_and_wait(mnt, pid)
            times.append(time.monotonic() - t)
            check(st["last_reload"] == "ok", "a good reload failed: %s" % st["last_reload"])
        window = sorted(times)[len(times) // 2] * 2
        print("%d secrets (%d bytes): a reload takes %.1f ms here (median of 5); seed %d" % (
            SECRETS, os.path.getsize(stores["A"]), window / 2 * 1000, seed), flush=True)

        on_disk = "A"
        reloadlib.install_store(sb, stores[on_disk])
        st = reloadlib.sighup_and_wait(mnt, pid)
        landed = {"before": 0, "during": 0, "after": 0, "unknown": 0}
        recent = []
        refused_dead = False
        for r in range(ROUNDS):
            on_disk = "B" if on_disk == "A" else "A"
            reloadlib.install_store(sb, stores[on_disk])
            delay = rnd.uniform(0, window)
            gen_before = int(reloadlib.status(mnt)["generation"])
            os.kill(pid, signal.SIGHUP)
            time.sleep(delay)
            kill_daemon(sb, mnt, pid)
            gf = fl.read_notify(notify) if notify else None
            if gf is None:
                where = "unknown"
            elif gf["seq"] % 2:
                where = "during"
            else:
                where = "after" if gf["generation"] > gen_before else "before"
            landed[where] += 1
            recent.append(where)
            if len(recent) == 8:  # keep most kills inside the reload, some on either side
                hits = recent.count("during")
                if hits < 3:
                    window *= 0.7 if recent.count("after") > recent.count("before") else 1.4
                elif hits > 6:
                    window *= 1.3
                recent = []
            if not refused_dead:
                p = sb.run(["mount", mnt], check_rc=False)
                fl.checked(p, "mount over a dead mount", 1, [mnt, "fusermount3 -u"])
                refused_dead = True
            p = subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
            check(p.returncode == 0, "round %d: fusermount3 -u failed: %s" % (
                r, p.stderr.decode(errors="replace")))
            pid = mount(sb, mnt)
            serves(mnt, on_disk, names, rnd)
            st = reloadlib.status(mnt)
            check(st["generation"] == "1", "round %d: the new daemon is at generation %s" % (
                r, st["generation"]))
        print("kills: %d rounds (SIGHUP, then SIGKILL after 0-%.1f ms by the end): before the "
              "reload %d, during it %d, after it %d%s; every restart served the store on "
              "disk (%d values checked each)" % (
                  ROUNDS, window * 1000, landed["before"], landed["during"], landed["after"],
                  (", unknown %d (no generation file)" % landed["unknown"])
                  if landed["unknown"] else "", SAMPLE + 2), flush=True)
        check(notify is None or landed["during"] >= ROUNDS // 10,
              "only %d of %d kills landed during a reload" % (landed["during"], ROUNDS))

        # a corrupt or partial store at restart: refused, nothing served, then fixed
        kill_daemon(sb, mnt, pid)
        subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        good = reloadlib.read(stores[on_disk])
        flipped = bytearray(good)
        flipped[len(good) // 2] ^= 0x10
        bad = {
            "half of it (a cp cut short)": (good[:len(good) // 2], "truncated"),
            "its header only": (good[:68], "truncated"),
            "a flipped bit": (bytes(flipped), "authentication"),
            "an empty file": (b"", "truncated"),
            "trailing garbage": (good + b"\0" * 100, "trailing data"),
        }
        refused = 0
        for what, (data, needle) in bad.items():
            with open(sb.store, "wb") as f:   # in place, as a crash of a non-atomic writer
                f.write(data)
            p = sb.run(["mount", mnt], check_rc=False)
            err = fl.checked(p, "mount of %s" % what, 1, [sb.store, needle])
            check(b"sum=" not in p.stderr and b"gen=" not in p.stderr,
                  "mount of %s: the message quotes a value" % what)
            check("restore" in err, "mount of %s: the message does not say what to do" % what)
            check(not fl.is_mounted(mnt), "mount of %s left a mount" % what)
            wait_for(lambda: not daemons_on(mnt), "no daemon left after the refusal")
            refused += 1
        reloadlib.install_store(sb, stores[on_disk])
        pid = mount(sb, mnt)
        serves(mnt, on_disk, names, rnd)
        unmount(mnt)
        wait_for(lambda: not pid_alive(pid), "the daemon to exit after unmount")
        print("corrupt store at restart: %d kinds refused with the reason, nothing mounted, "
              "no daemon left; the restored store mounts and serves" % refused)


if __name__ == "__main__":
    run_all(test_killed_mid_reload_then_restarted)
