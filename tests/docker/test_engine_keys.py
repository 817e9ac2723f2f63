"""The plugin under a real dockerd with a passphrase-protected key (the default Argon2id
cost, as an operator would make it): volume create, run and inspect work, and what the
derivation in each child costs them is measured against a plain key.  The passphrase is a
canary: it is in no log, no docker output and no process's argv or environment."""
import statistics
import time

from enginelib import IMAGE, check, harness, run_module
from dockerlib import ProcWatch, protect_key, store_with_passphrase

ROUNDS = 3


def timed(fn):
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def measure(dk, sb, value):
    """Seconds for docker volume create, then (medians of ROUNDS) docker run (each one
    mounts the volume and unmounts it), docker volume inspect and docker volume ls."""
    name = "timed"
    t = {"create": timed(lambda: dk.docker(["volume", "create", "-d", sb.driver, "-o",
                                            "secrets=DB_PASSWORD", name]))}
    runs, inspects, lists = [], [], []
    for _ in range(ROUNDS):
        p = []
        runs.append(timed(lambda: p.append(dk.run(["-v", name + ":/run/secrets:ro", IMAGE,
                                                    "cat", "/run/secrets/DB_PASSWORD"]))))
        check(p[0].stdout == value, "the container reads the value (%d bytes)" %
              len(p[0].stdout))
        inspects.append(timed(lambda: dk.inspect_volume(name)))
        lists.append(timed(lambda: dk.volumes(sb.driver)))
    t["run"] = statistics.median(runs)
    t["inspect"] = statistics.median(inspects)
    t["ls"] = statistics.median(lists)
    st = dk.inspect_volume(name)["Status"]
    check("missing" not in st, "inspect lists the store: %s" % st)
    dk.docker(["volume", "rm", name])
    return t


def show(what, t):
    print("%s: volume create %.2f s, run %.2f s, inspect %.2f s, ls %.2f s (medians of %d)" % (
        what, t["create"], t["run"], t["inspect"], t["ls"], ROUNDS))


def test_plain_key_baseline(dk, sb):
    value = harness.canary("db")
    sb.set_secrets({"DB_PASSWORD": value})
    sb.start_plugin()
    show("plain key", measure(dk, sb, value))


def test_protected_key(dk, sb):
    passphrase, pfile = protect_key(sb, kdf="moderate")
    value = harness.canary("db")
    store_with_passphrase(sb, pfile, {"DB_PASSWORD": value})
    with ProcWatch(passphrase) as watch:
        sb.start_plugin(extra=["--passphrase-file", pfile])
        t = measure(dk, sb, value)
        p = dk.run(["-v", "other:/run/secrets:ro", "--volume-driver", sb.driver, IMAGE,
                    "cat", "/run/secrets/DB_PASSWORD"])
        check(p.stdout == value, "a volume created on first use serves the protected store")
    show("protected key (--kdf moderate)", t)
    check(not watch.hits, "the passphrase is in the argv or environment of %s" %
          sorted(set(watch.hits)))
    with open(dk.log, "rb") as f:
        check(harness.leaks(f.read()) == 0, "a canary in dockerd's log")


if __name__ == "__main__":
    run_module([test_plain_key_baseline, test_protected_key])
