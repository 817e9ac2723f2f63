"""Fleet reboot: a host that starts while etcd is unreachable serves its local sealed cache.

- a daemon serves the set, then its host "reboots" (the daemon exits) while the set changes
  and every member goes away
- the daemon started again mounts within its dial timeout from the local sealed cache (the
  set it last served), and .status says it serves the cache and is retrying
- when the cluster is back it catches up to the newer set and says connected
- the cache holds ciphertext only: no value or name in it
"""
import glob
import os
import time

from fleetlib import (DIAL_TIMEOUT, RECOVER_DEADLINE, Fleet, canary, check, fleet_main,
                      serves, status, wait_until)


def cache_files(f, since):
    """Sealed store files (magic SFSSTORE) written since `since` where a daemon may keep its
    cache (the sandbox, /var/lib/secretfs, /var/cache/secretfs, /run/secretfs)."""
    out = []
    for root in (f.dir, "/var/lib/secretfs", "/var/cache/secretfs", "/run/secretfs"):
        for path in glob.glob(os.path.join(root, "**"), recursive=True):
            if "sfs-etcd-" in path or not os.path.isfile(path):
                continue
            if os.stat(path).st_mtime >= since:
                with open(path, "rb") as fh:
                    if fh.read(8) == b"SFSSTORE":
                        out.append(path)
    return out


def test_reboot_while_cluster_unreachable():
    # names long and unique enough that ciphertext never holds one by chance: the scan below
    # reads every cache file written meanwhile, other tests' too (a 3-byte name matched a
    # 1.5 MB cache of a concurrent benchmark about one time in four)
    tag = os.urandom(8).hex().upper()
    a, b, c = ("REBOOT_%s_%s" % (tag, x) for x in "ABC")
    with Fleet() as f:
        t_start = time.time() - 1
        base = {a: canary("reboot"), b: canary("reboot")}
        f.put_secrets(base)
        mnt = f.mount(0, name="host")
        check(serves(mnt, base), "the first daemon does not serve the set")
        f.stop_daemon(mnt)
        newer = dict(base)
        newer[a], newer[c] = canary("newer"), canary("newer")
        f.put_secrets({a: newer[a], c: newer[c]})
        for i in range(3):
            f.cluster.kill(i)

        t0 = time.monotonic()
        mnt2 = f.mount(0, name="host")
        took = time.monotonic() - t0
        print("   mounted from the local cache in %.2f s (dial_timeout %d s)" % (
            took, DIAL_TIMEOUT))
        check(took < DIAL_TIMEOUT + 10, "mounting with etcd unreachable took %.1f s" % took)
        check(serves(mnt2, base), "after the reboot the daemon does not serve its last set")
        st = status(mnt2)
        text = "\n".join("%s=%s" % kv for kv in st.items() if kv[0] != "cache")
        check("cache" in text, ".status does not say it serves the local cache: %s" %
              sorted(st))
        check(st.get("connection", "").startswith("retrying since "),
              ".status connection=%r while etcd is down" % st.get("connection"))
        print("   .status: %s" % ", ".join("%s=%s" % kv for kv in st.items()
                                             if kv[0] in ("backend", "connection", "source",
                                                          "revision", "last_reload")))

        for i in range(3):
            f.cluster.restart(i, wait=False)
        f.cluster.wait_healthy()
        f.wait_served([mnt2], newer, timeout=RECOVER_DEADLINE,
                      what="the rebooted daemon to catch up")
        wait_until(lambda: status(mnt2).get("connection") == "connected",
                   "connection=connected after the cluster returned", [mnt2],
                   RECOVER_DEADLINE)
        needles = list(base.values()) + list(newer.values()) + [n.encode() for n in (a, b, c)]
        caches = cache_files(f, t_start)
        print("   %d sealed cache file(s) found" % len(caches))
        for path in caches:
            with open(path, "rb") as fh:
                data = fh.read()
            check(not any(n in data for n in needles),
                  "plaintext in %s" % os.path.basename(path))
        f.check_no_leaks(list(newer))


if __name__ == "__main__":
    fleet_main(test_reboot_while_cluster_unreachable)
