"""Fleet and staged generations: a writer killed (-9) between staging a whole set and its
commit leaves a generation that every daemon's watch brings into its mirror.

- no daemon reloads for it (the generation files stay as they were) or serves any of it;
  .status counts it (unreferenced_generations=1, unreferenced_bytes)
- once a later writer reclaims it (its mark backdated: abandoned long ago), it says so, and
  every mirror drops it (unreferenced_generations=0) while the set keeps serving
"""
import os
import signal
import subprocess

from fleetlib import (SECRETFS, Fleet, canary, check, fleet_main, generation_file, leaks,
                      read, redact, serves, status, wait_until)
from etcd_cluster import txn_touching


def counted(mnts, n):
    return lambda: all(status(m).get("unreferenced_generations") == str(n) for m in mnts)


def test_staged_generation_never_served():
    with Fleet() as f:
        base = {"ST_A": canary("st"), "ST_B": canary("st")}
        f.put_secrets(base)
        mnts = [f.mount(0), f.mount(1)]
        f.wait_served(mnts, base)
        wait_until(counted(mnts, 0), "the daemons to report no other generation", mnts)
        generations = [read(generation_file(m)) for m in mnts]
        prefix = "/" + f.prefix
        staged = {"ST_N%03d" % i: canary("stn") for i in range(150)}
        env = f.write("staged.env", b"".join(b"%s='%s'\n" % (k.encode(), v)
                                              for k, v in staged.items()))
        px = f.cluster.proxy(2)
        victim = []
        fault = px.fault(txn_touching((prefix + "commit").encode()), "drop_request",
                         hook=lambda: os.kill(victim[0].pid, signal.SIGKILL))
        victim.append(subprocess.Popen(
            [SECRETFS, "update-secrets", "--secrets-file", env, "--store",
             "etcd://%s/%s" % (px.endpoint, f.prefix)], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=f.env))
        out, err = victim[0].communicate(timeout=120)
        check(leaks(out + err) == 0, "a value in the killed writer's output")
        check(fault.fired == 1 and victim[0].returncode == -signal.SIGKILL,
              "the writer was not killed before its commit (exit %d): %s" % (
                  victim[0].returncode, redact(err)[-400:]))
        gens = f.cluster.generations(prefix)
        orphan = [g for g, v in gens.items() if v["mark"] is not None]
        check(len(orphan) == 1, "%d staged generations after the crash" % len(orphan))
        orphan = orphan[0]
        wait_until(counted(mnts, 1), "the daemons to count the staged generation", mnts)
        for m in mnts:
            got = int(status(m).get("unreferenced_bytes", "0"))
            check(got >= gens[orphan]["bytes"], "unreferenced_bytes=%d for %d staged bytes" % (
                got, gens[orphan]["bytes"]))
            check(serves(m, base) and serves(m, {n: None for n in staged}),
                  "a daemon serves the staged generation")
        check([read(generation_file(m)) for m in mnts] == generations,
              "a daemon reloaded for a staged generation")
        print("   %d daemons mirror %d staged bytes, serve the set they had, did not reload"
              % (len(mnts), gens[orphan]["bytes"]))

        f.cluster.abandon(prefix, orphan)
        want = dict(base, ST_C=canary("stc"))
        p = f.admin(["set", "ST_C"], input=want["ST_C"])
        check(("reclaimed generation %s (152 values" % orphan).encode() in p.stderr,
              "the writer did not say what it reclaimed: %s" % redact(p.stderr)[-400:])
        f.wait_served(mnts, want)
        wait_until(counted(mnts, 0), "the daemons' mirrors to drop the reclaimed generation",
                   mnts)
        check(orphan not in f.cluster.generations(prefix), "the orphan is still in etcd")
        f.check_no_leaks(list(want) + list(staged))


if __name__ == "__main__":
    fleet_main(test_staged_generation_never_served)
