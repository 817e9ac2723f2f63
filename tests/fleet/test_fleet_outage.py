"""Fleet faults: members die, quorum goes, history is compacted; mounts keep serving.

- kill -9 of the member a daemon watches; updates during the outage; the daemon resumes on
  another endpoint and catches up with none lost (every intermediate name is there)
- two members down: writes fail within their timeout with a clear error and change nothing,
  every mount keeps serving, .status says why (connection=retrying since ...), all catch up
  once quorum is back
- compaction past a disconnected daemon's revision (cut off by a proxy while the cluster
  stays whole) forces a full resync with the right result (removed names gone, changed
  names new)
"""
import os
import time

from fleetlib import (DIAL_TIMEOUT, RECOVER_DEADLINE, REQUEST_TIMEOUT, Fleet, canary, check,
                      fleet_main, redact, serves, status, wait_until, wrong_values)


def test_watched_member_killed():
    with Fleet() as f:
        base = {"OUT_A": canary("out"), "OUT_B": canary("out")}
        f.put_secrets(base)
        mnts = [f.mount(i) for i in range(3)]
        f.wait_served(mnts, base)
        f.cluster.kill(0)                         # the member daemon 0 watches
        expected = dict(base)
        for k in range(6):                        # distinct names: a lost event shows
            name = "DURING_%d" % k
            expected[name] = canary("during")
            expected["OUT_A"] = canary("outa")
            f.put_secrets({name: expected[name], "OUT_A": expected["OUT_A"]},
                          member=1 + k % 2)
        f.admin(["rm", "OUT_B"], member=2)
        expected["OUT_B"] = None
        took = f.wait_served(mnts, expected, timeout=RECOVER_DEADLINE,
                             what="every daemon to catch up while member 0 is down")
        print("   caught up %.2f s after the last update, member 0 down" % took)
        revs = {status(m).get("revision") for m in mnts}
        check(len(revs) == 1, "daemons serve different revisions after catching up: %s" %
              sorted(revs))
        f.cluster.restart(0)
        expected["AFTER"] = canary("after")
        f.put_secrets({"AFTER": expected["AFTER"]}, member=0)
        f.wait_served(mnts, expected)
        wait_until(lambda: all(status(m).get("connection") == "connected" for m in mnts),
                   "connection=connected everywhere", mnts, RECOVER_DEADLINE)
        f.check_no_leaks(list(expected))


def test_quorum_lost():
    with Fleet() as f:
        base = {"Q_A": canary("q"), "Q_B": canary("q")}
        f.put_secrets(base)
        mnts = [f.mount(i) for i in range(3)]
        f.wait_served(mnts, base)
        f.cluster.kill(1)
        f.cluster.kill(2)
        # a write through every endpoint fails within its timeout, clearly, and stores nothing
        t0 = time.monotonic()
        p = f.admin(["set", "Q_A"], input=canary("refused"), check_rc=False)
        took = time.monotonic() - t0
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 1, "a write without quorum exited %d: %s" % (p.returncode,
                                                                          redact(p.stderr)))
        limit = DIAL_TIMEOUT + REQUEST_TIMEOUT + 5
        check(took < limit, "a write without quorum took %.1f s (timeouts %d+%d s)" % (
            took, DIAL_TIMEOUT, REQUEST_TIMEOUT))
        check("etcd" in err and any(w in err for w in ("timed out", "timeout", "quorum",
                                                        "unreachable", "leader", "unavailable")),
              "the error does not say etcd is unavailable: %s" % redact(p.stderr)[-400:])
        print("   write without quorum failed in %.2f s: %s" % (took, err.strip()[-160:]))
        # every mount keeps serving the last good set, and .status says why it is stale
        for m in mnts:
            check(serves(m, base), "%s stopped serving during the outage" % os.path.basename(m))
        no_reason = []

        def all_retrying():
            states = [status(m).get("connection", "") for m in mnts]
            no_reason.extend(s for s in states if s.startswith("retrying")
                             and not s.partition(": ")[2].strip())
            return all(s.startswith("retrying since ") for s in states)
        wait_until(all_retrying, "every daemon's .status to say connection=retrying since ...",
                   mnts, RECOVER_DEADLINE, tick=0.02)
        check(not no_reason, ".status said connection=retrying with an empty reason (%d of "
              "the samples, e.g. %r)" % (len(no_reason), no_reason[:1]))
        for i, m in enumerate(mnts):
            conn = status(m).get("connection", "")
            print("   daemon %d .status: connection=%s" % (i, conn[:200]))
        for i, m in enumerate(mnts):
            conn = status(m).get("connection", "")
            reason = conn.split(": ", 1)[1].strip() if ": " in conn else ""
            check(reason, "daemon %d: .status says connection=%r without a reason" % (i, conn))
        for m in mnts:
            check(serves(m, base), "%s stopped serving during the outage" % os.path.basename(m))
        # quorum back: the refused write is nowhere, new writes reach everyone
        f.cluster.restart(1, wait=False)
        f.cluster.restart(2, wait=False)
        f.cluster.wait_healthy()
        check(f.admin(["get", "Q_A"]).stdout == base["Q_A"], "the refused write was stored")
        after = dict(base, Q_C=canary("q"))
        f.put_secrets({"Q_C": after["Q_C"]}, member=2)
        f.wait_served(mnts, after, timeout=RECOVER_DEADLINE,
                      what="every daemon to catch up after quorum returned")
        wait_until(lambda: all(status(m).get("connection") == "connected" for m in mnts),
                   "connection=connected everywhere", mnts, RECOVER_DEADLINE)
        f.check_no_leaks(list(after))


def test_compaction_forces_resync():
    with Fleet() as f:
        base = {"C_KEEP": canary("c"), "C_CHANGE": canary("c"), "C_GONE": canary("c")}
        f.put_secrets(base)
        # the daemon reaches member 2 only through a proxy, which then cuts it off: the
        # cluster itself stays whole, so the compaction is everywhere when it comes back
        px = f.cluster.proxy(2)
        watcher = f.mount(location="etcd://%s/%s" % (px.endpoint, f.prefix), name="cut")
        f.wait_served([watcher], base)
        served_rev = int(status(watcher)["revision"])
        px.cut()
        wait_until(lambda: status(watcher).get("connection", "").startswith("retrying"),
                   "the cut-off daemon to say connection=retrying", [watcher],
                   RECOVER_DEADLINE)
        expected = dict(base)
        for k in range(5):
            expected["C_CHANGE"] = canary("c%d" % k)
            f.put_secrets({"C_CHANGE": expected["C_CHANGE"]}, member=k % 3)
        f.admin(["rm", "C_GONE"], member=0)
        expected["C_GONE"] = None
        expected["C_NEW"] = canary("cnew")
        f.put_secrets({"C_NEW": expected["C_NEW"]}, member=1)
        rev = f.cluster.compact(member=2)
        check(rev > served_rev + 1, "compaction did not pass the daemon's revision")
        check(serves(watcher, base), "the disconnected daemon stopped serving its set")
        px.heal()
        took = f.wait_served([watcher], expected, timeout=RECOVER_DEADLINE,
                             what="a full resync after compaction")
        print("   resynced %.2f s after the partition healed (compacted at %d, served %d)" %
              (took, rev, served_rev))
        check(int(status(watcher)["revision"]) >= rev, ".status revision is before the "
              "compaction")
        check(not wrong_values(watcher, {k: [v] for k, v in expected.items()}),
              "wrong values after resync")
        wait_until(lambda: status(watcher).get("connection") == "connected",
                   "connection=connected after the resync", [watcher], RECOVER_DEADLINE)
        # and the watch goes on from there
        expected["C_LATER"] = canary("later")
        f.put_secrets({"C_LATER": expected["C_LATER"]}, member=2)
        f.wait_served([watcher], expected)
        f.check_no_leaks(list(expected))


if __name__ == "__main__":
    fleet_main(test_watched_member_killed, test_quorum_lost, test_compaction_forces_resync)
