"""SIGHUP to the plugin reloads every mounted volume, as `secretfs reload` does: new values
appear in each volume (both cache modes, subsets respected), a store that cannot be read
keeps every volume on its old values, and the plugin keeps serving."""
import os
import signal
import time

from dockerlib import PluginSandbox, check, harness, mount_id, ok


def read(path):
    return harness.read_bytes(path)


def wait_value(path, value, what, timeout=20):
    harness.wait_for(lambda: read(path) == value, what, timeout=timeout)


def test_sighup_reloads_every_volume():
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a1", "B": b"b1"})
        sb.start_plugin()
        e = sb.engine()
        ok(e.create("kernel", {"secrets": "A"}), "Create")
        ok(e.create("strict", {"secrets": "A,B,C", "optional": "C", "cache": "none"}),
           "Create")
        ok(e.create("idle", None), "Create (never mounted)")
        ids = {}
        mnts = {}
        for name in ("kernel", "strict"):
            ids[name] = mount_id()
            mnts[name] = ok(e.mount(name, ids[name]), "Mount").json["Mountpoint"]
        for name in ("kernel", "strict"):
            check(read(os.path.join(mnts[name], "A")) == b"a1", "%s serves A" % name)
        gens = {n: sb.status(m)["generation"] for n, m in mnts.items()}

        sb.set_secrets({"A": b"a2-new", "C": b"c2"})
        sb.proc.send_signal(signal.SIGHUP)
        for name in ("kernel", "strict"):
            wait_value(os.path.join(mnts[name], "A"), b"a2-new", "%s to serve the new A" % name)
        check(read(os.path.join(mnts["strict"], "C")) == b"c2", "a new name in the subset")
        check(not os.path.exists(os.path.join(mnts["kernel"], "C")),
              "a new name outside the subset stays out")
        for name, mnt in mnts.items():
            st = sb.status(mnt)
            check(int(st["generation"]) > int(gens[name]) and st["last_reload"] == "ok",
                  "%s: a new generation" % name)
            gens[name] = st["generation"]
        harness.wait_for(lambda: sb.log_text().count("reloaded, generation") >= 2,
                         "the plugin to log both reloads")

        # a store that fails to open keeps the old values everywhere
        good = read(sb.store)
        bad = bytearray(good)
        bad[-1] ^= 0x55
        tmp = sb.store + ".bad"
        with open(tmp, "wb") as f:
            f.write(bad)
        os.rename(tmp, sb.store)
        sb.proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: "2 volumes kept serving the previous secrets" in sb.log_text(),
                         "the plugin to report both failed reloads")
        check(sb.log_text().count("not reloaded") == 2, "one warning per volume")
        for name, mnt in mnts.items():
            check(read(os.path.join(mnt, "A")) == b"a2-new", "%s keeps the old value" % name)
            st = sb.status(mnt)
            check(st["generation"] == gens[name] and st["last_reload"].startswith("error"),
                  "%s: the bad store was rejected" % name)
        check(sb.proc.poll() is None, "the plugin is still running")
        ok(e.list(), "and answering")

        # repaired: the next SIGHUP succeeds
        tmp = sb.store + ".good"
        with open(tmp, "wb") as f:
            f.write(good)
        os.rename(tmp, sb.store)
        before = sb.log_text().count("reloaded, generation")
        time.sleep(0.05)
        sb.proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: sb.log_text().count("reloaded, generation") >= before + 2,
                         "both volumes to reload again")
        for name in ("kernel", "strict"):
            ok(e.unmount(name, ids[name]), "Unmount %s" % name)
        check(harness.leaks(sb.log_bytes()) == 0, "no value in the log")


if __name__ == "__main__":
    harness.need_fuse()
    harness.run_all(test_sighup_reloads_every_volume)
