#!/usr/bin/env python3
"""A writer killed with SIGKILL at random points of `update-secrets` always leaves a store
that opens to either the old or the new set (never partial, never unreadable)."""
import hashlib
import json
import os
import random
import subprocess
import sys
import time

from harness import SECRETFS, CliSandbox, check, run_all  # noqa: E402

KILLS = 120
FILES = 12
MIB = 1 << 20


def make_set(sb, label, rnd, size_base, extra):
    """Writes FILES files of about 1 MiB (and one named `extra`) into a directory; returns
    (update-secrets args, {name: size}, {name: sha256})."""
    d = os.path.join(sb.dir, label)
    os.mkdir(d)
    args, sizes, digests = [], {}, {}
    for i in range(FILES + 1):
        name = extra if i == FILES else "F%02d" % i
        data = rnd.randbytes(size_base - i)
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        args += ["--secret-mount", path]
        sizes[name] = len(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return ["update-secrets", "--overwrite"] + args, sizes, digests


def test_sigkill_leaves_old_or_new():
    rnd = random.Random(int.from_bytes(os.urandom(4), "little"))
    with CliSandbox() as sb:
        sets = {"old": make_set(sb, "old", rnd, MIB, "OLD_ONLY"),
                "new": make_set(sb, "new", rnd, MIB - 1000, "NEW_ONLY")}
        # how long a whole write takes here
        t = []
        for label in ("old", "new", "old"):
            start = time.monotonic()
            sb.run(sets[label][0])
            t.append(time.monotonic() - start)
        full = sorted(t)[1]
        state = "old"
        seen = {"old": 0, "new": 0}
        killed_running = 0
        window = []
        for i in range(KILLS):
            target = "new" if state == "old" else "old"
            delay = rnd.uniform(0, full * 1.1)
            p = subprocess.Popen([SECRETFS] + sets[target][0], env=sb.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            p.kill()
            p.wait()
            check(p.returncode in (0, -9), "a writer failed (exit %d)" % p.returncode)
            if p.returncode == -9:
                killed_running += 1
            window.append(p.returncode == 0)
            if len(window) == 10:  # keep about half the kills landing mid-write under load
                done = sum(window)
                full *= 1.5 if done < 3 else 0.75 if done > 7 else 1.0
                window = []
            got = sb.run(["list", "--json"], check_rc=False)
            check(got.returncode == 0, "kill #%d after %.3f s: the store does not open: %s" % (
                i, delay, got.stderr.decode(errors="replace").strip()))
            names = {e["name"]: e["size"] for e in json.loads(got.stdout)}
            matches = [label for label in sets if names == sets[label][1]]
            check(matches, "kill #%d after %.3f s: the store holds neither set (%d names)" % (
                i, delay, len(names)))
            state = matches[0]
            seen[state] += 1
            if i % 15 == 0 or i == KILLS - 1:
                for name, digest in sets[state][2].items():
                    check(hashlib.sha256(sb.get(name)).hexdigest() == digest,
                          "kill #%d: %s has the wrong bytes for the %s set" % (i, name, state))
        leftovers = len(sb.temp_files())  # a killed writer cannot clean up; later ones work
        print("kills: %d (%d while running), store ended old %d / new %d, %d temp files "
              "left by killed writers, full write %.0f ms" % (
                  KILLS, killed_running, seen["old"], seen["new"], leftovers, full * 1000))
        check(killed_running >= KILLS // 4, "only %d kills hit a running writer" %
              killed_running)
        check(seen["old"] >= 5 and seen["new"] >= 5,
              "kills did not land both before and after the rename (old %d, new %d)" % (
                  seen["old"], seen["new"]))


if __name__ == "__main__":
    run_all(test_sigkill_leaves_old_or_new)
