"""Fleet: one secret set in a 3-member etcd cluster, served by three daemons.

- three daemons on three mountpoints, each pointed at a different member, serve the same set,
  and .status says backend=etcd, the same revision, connection=connected
- an update-secrets (and set, rm) through a fourth process reaches all three by the watch;
  so does the second of each of 40 pairs of back-to-back updates (1,000 secrets, readers on)
- `secretfs run --restart-on-change` on one of them restarts its child with the new value
- list/get answer from etcd; no canary value in any output or log; no value nor name in the
  members' data dirs
- `secretfs copy`: file -> etcd -> file and prefix -> prefix round trips keep every byte
"""
import contextlib
import os
import signal

from fleetlib import (Fleet, TestFailure, canary, check, fleet_main, generation_file, read,
                      redact, serves, status)
from runlib import ChildDir, Runner


def names_of(n, tag):
    return ["FLEET_%s_%d_%s" % (tag, i, os.urandom(3).hex().upper()) for i in range(n)]


def test_three_daemons_follow_one_set():
    with Fleet() as f:
        names = names_of(4, "SERVE")
        first = {n: canary("serve1") for n in names}
        f.put_secrets(first)
        binary = bytes(range(256)) * 3 + b"\0tail"
        f.admin(["set", "BINARY"], input=binary)
        first["BINARY"] = binary
        mnts = [f.mount(i) for i in range(3)]
        for m in mnts:
            check(serves(m, first), "%s does not serve the stored set" % os.path.basename(m))
            st = status(m)
            check(st.get("backend") == "etcd", ".status backend=%r, expected etcd" %
                  st.get("backend"))
            check(st.get("connection") == "connected", ".status connection=%r" %
                  st.get("connection"))
            check(int(st.get("revision", "0")) > 0, ".status has no revision")
            check(st.get("last_reload") == "ok", ".status last_reload=%r" % st.get("last_reload"))
        check(len({status(m)["revision"] for m in mnts}) == 1,
              "the three daemons serve different revisions")
        # list and get answer from etcd through any member
        listed = f.names()
        check(set(listed) == set(first), "list shows %d names, stored %d" % (len(listed),
                                                                             len(first)))
        for i, n in enumerate(names):
            check(f.admin(["get", n], member=i % 3).stdout == first[n], "get %s" % n)

        # a child of `secretfs run --restart-on-change` on daemon 1
        cd = ChildDir(f)
        runner = Runner(f, ["--mount", mnts[1], "--restart-on-change", "--grace", "2", "--"]
                        + cd.argv())
        child1 = cd.wait_started(1, timeout=20)
        check(cd.env(child1).get(names[0].encode()) == first[names[0]],
              "run's first child lacks the stored value")

        # an update through a fourth process (every endpoint) reaches all three
        second = dict(first)
        second[names[0]] = canary("serve2")
        second["FLEET_ADDED"] = canary("added")
        rev_before = int(status(mnts[0])["revision"])
        f.put_secrets({names[0]: second[names[0]], "FLEET_ADDED": second["FLEET_ADDED"]})
        took = f.wait_served(mnts, second)
        print("   update reached 3 daemons in %.3f s" % took)
        for m in mnts:
            check(int(status(m)["revision"]) > rev_before, "revision did not advance")
        child2 = cd.wait_started(2, timeout=20)
        check(child2 != child1, "run did not restart its child")
        check(cd.env(child2).get(names[0].encode()) == second[names[0]],
              "the restarted child lacks the new value")
        check(cd.env(child2).get(b"FLEET_ADDED") == second["FLEET_ADDED"],
              "the restarted child lacks the added secret")
        check(len(cd.pids()) == 2, "run started %d children for one change" % len(cd.pids()))

        # set through one member, rm through another
        f.admin(["set", names[1]], input=b"via-set\n", member=2)
        second[names[1]] = b"via-set\n"
        f.admin(["rm", names[2]], member=1)
        second[names[2]] = None
        f.wait_served(mnts, second)
        for m in mnts:
            check(names[2] not in os.listdir(m), "a removed secret is still listed")
            check(names[2].encode() not in read(os.path.join(m, ".env")),
                  ".env still names a removed secret")
        check(runner.p.poll() is None, "secretfs run exited")
        err = runner.stderr()
        check(b"cnry-" not in err, "a value appears in run's stderr: %s" % redact(err)[-500:])
        f.check_no_leaks(names + ["FLEET_ADDED", "BINARY"])


def test_back_to_back_updates_reach_every_daemon():
    """Each of many quick updates reaches all three daemons: a change that arrives while a
    daemon is still busy with the previous one (here: two writers right after each other,
    on a set of 1,000 secrets, with readers running) must not wait for some later change."""
    n = int(os.environ.get("SFS_FLEET_UPDATES", "40"))
    with Fleet() as f:
        bulk = f.write("bulk.env", "".join("BULK_%04d=%s\n" % (i, os.urandom(16).hex())
                                           for i in range(1000)))
        f.admin(["update-secrets", "--secrets-file", bulk])
        f.put_secrets({"RAPID": b"r-start"})
        # detached daemons, as `secretfs mount` leaves them (and one in the foreground)
        mnts = [f.mount(0, background=True), f.mount(1, background=True), f.mount(2)]
        f.wait_served(mnts, {"RAPID": b"r-start"})
        # readers keep reading, as applications do: reloads overlap with requests
        readers = [spin_reader(m, "RAPID") for m in mnts]
        try:
            rapid_updates(f, mnts, n)
        finally:
            for pid in readers:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        print("   %d pairs of back-to-back updates reached all three daemons" % n)


def spin_reader(mnt, name):
    pid = os.fork()
    if pid == 0:
        try:
            path = os.path.join(mnt, name)
            while True:
                with contextlib.suppress(OSError):
                    read(path)
        finally:
            os._exit(0)
    return pid


def rapid_updates(f, mnts, n):
    """n pairs of updates through member 0 (the second right after the first returns);
    every mount must end up serving the second of each pair."""
    for i in range(n):
        pair = []
        for half in "ab":
            pair.append(("r-%d%s-%s" % (i, half, os.urandom(4).hex())).encode())
            f.admin(["set", "RAPID"], input=pair[-1], member=0)
        value = pair[-1]
        try:
            f.wait_served(mnts, {"RAPID": value}, timeout=10)
        except TestFailure:
            rev = f.cluster.revision()
            what = []
            for k, m in enumerate(mnts):
                if serves(m, {"RAPID": value}):
                    continue
                try:
                    got = read(os.path.join(m, "RAPID"))
                except OSError as e:
                    got = e.strerror.encode()
                which = ("the first of the pair" if got == pair[0] else
                         "an older value" if got.startswith(b"r-") else "no value")
                st = status(m)
                gen = generation_file(m)
                genline = read(gen).decode().replace("\n", " ").strip() if gen else "-"
                what.append("daemon %d serves %s; .status revision=%s generation=%s "
                            "reloads=%s last_reload=%s connection=%s; generation file: %s" % (
                                k, which, st.get("revision"), st.get("generation"),
                                st.get("reloads"), st.get("last_reload"),
                                st.get("connection"), genline))
            raise TestFailure(
                "update pair %d of %d: the second update (etcd revision %d) did not reach "
                "every daemon within 10 s: %s" % (i + 1, n, rev, "; ".join(what)))


def test_copy_round_trip():
    with Fleet() as f:
        src = os.path.join(f.dir, "src.store")
        values = {"COPY_%d" % i: canary("copy") for i in range(20)}
        values["COPY_BIN"] = b"\0\x01\xff\n\r\t'\"$`\\" * 50
        values["COPY_BIG"] = os.urandom(1024 * 1024)           # the 1 MiB maximum
        for k, v in values.items():
            f.run(["set", k, "--store", src], input=v)
        f.run(["copy", "--from", src, "--to", f.location])
        check(f.names() == {k: len(v) for k, v in values.items()},
              "etcd after copy from a file: names or sizes differ")
        mnt = f.mount(1)
        check(serves(mnt, values), "the mount of the copied set differs")
        # etcd -> file (a backup) -> another prefix
        back = os.path.join(f.dir, "back.store")
        f.run(["copy", "--from", f.loc(2), "--to", back])
        for k, v in values.items():
            check(f.run(["get", k, "--store", back]).stdout == v, "%s differs in the backup" % k)
        other = f.cluster.location("sfs-other-%s/" % os.urandom(3).hex())
        f.run(["copy", "--from", f.location, "--to", other])
        check(f.names(["--store", other]) == f.names(), "prefix -> prefix copy differs")
        # copy over an existing set replaces it whole, atomically at the destination
        small = os.path.join(f.dir, "small.store")
        f.run(["set", "ONLY_ONE", "--store", small], input=b"one")
        f.run(["copy", "--from", small, "--to", f.location])
        f.wait_served([mnt], dict({k: None for k in values}, ONLY_ONE=b"one"))
        check(f.names() == {"ONLY_ONE": 3}, "copy onto a populated prefix did not replace it")
        f.check_no_leaks(["COPY_BIN", "COPY_BIG", "COPY_0"])


if __name__ == "__main__":
    fleet_main(test_three_daemons_follow_one_set, test_back_to_back_updates_reach_every_daemon,
               test_copy_round_trip)
