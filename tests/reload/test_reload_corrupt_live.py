"""A bad store reloaded while readers run: every reload fails with the reason (and `.status`
says so), and the readers see only the old generation's values, never an error or a torn
value.  Both cache modes; in cache=none half the readers use many small read()s."""
import os
import time

from reloadlib import (check, collect_readers, fork_reader, install_store, run_all, make_store,
                       need_fuse, reload_cli, sighup_and_wait, status, Sandbox)
import test_reload_stress as stress

ROUNDS = 40


def bad_stores(sb, good):
    """{description: path} of stores the daemon must reject."""
    data = open(good, "rb").read()
    out = {}

    def put(what, blob):
        path = os.path.join(sb.dir, "bad-%d.store" % len(out))
        with open(path, "wb") as f:
            f.write(blob)
        out[what] = path

    flipped = bytearray(data)
    flipped[len(data) - 40] ^= 0x01
    put("a bit flip in the ciphertext", bytes(flipped))
    header = bytearray(data)
    header[6] ^= 0x80
    put("a bit flip in the header", bytes(header))
    put("a truncated store", data[:len(data) // 2])
    put("trailing garbage", data + b"\0garbage")
    put("an empty file", b"")
    other_key = os.path.join(sb.dir, "other.key")
    sb.run(["keygen", other_key])
    wrong = os.path.join(sb.dir, "bad-wrongkey.store")
    sb.run(["set", "S0", "--store", wrong, "--key-file", other_key], input=b"x")
    out["a store sealed with another key"] = wrong
    return out


def run_mode(cache, kinds):
    with Sandbox() as sb:
        good = os.path.join(sb.dir, "prepared-A.store")
        make_store(sb, good, stress.values("A"))
        install_store(sb, good)
        mnt, pid = sb.mount(opts=["-o", "cache=%s" % cache])
        bad = bad_stores(sb, good)
        stop = os.path.join(sb.dir, "stop")
        children = []
        for n, kind in enumerate(kinds):
            children.append(fork_reader(
                lambda w, n=n, kind=kind: stress.reader(mnt, kind, stop, w, n * 3,
                                                        cache == "none")))
        rejected = accepted = 0
        reasons_missing = []
        started = time.monotonic()
        try:
            names = sorted(bad)
            for k in range(ROUNDS):
                what = names[k % len(names)]
                install_store(sb, bad[what])
                if k % 2 == 0:
                    p = reload_cli(sb, mnt)
                    err = p.stderr.decode(errors="replace")
                    if p.returncode == 0:
                        accepted += 1
                        continue
                    rejected += 1
                    if os.path.basename(sb.store) not in err or "error" not in err:
                        reasons_missing.append(what)
                else:
                    st = sighup_and_wait(mnt, pid)
                    if st["last_reload"] == "ok":
                        accepted += 1
                    else:
                        rejected += 1
                st = status(mnt)
                check(st["generation"] == "1", "generation moved to %s after %s" % (
                    st["generation"], what))
                check(st["last_reload"].startswith("error: "),
                      ".status after %s: last_reload=%r" % (what, st["last_reload"][:200]))
            # the readers keep going a little after the last rejection
            time.sleep(0.5)
        finally:
            open(stop, "w").close()
            results = collect_readers(children)
        for n, res in enumerate(results):
            print("cache=%-6s reader %d (%s): reads %d, old gen %d, new gen %d, torn %d, "
                  "errors %d" % (cache, n, res.get("kind"), res.get("reads", 0),
                                 res.get("A", 0), res.get("B", 0),
                                 res.get("torn", 0) + res.get("torn_resized", 0),
                                 res.get("errors", 0)))
        print("cache=%-6s bad reloads %d in %.1f s: rejected %d, accepted %d" % (
            cache, ROUNDS, time.monotonic() - started, rejected, accepted), flush=True)
        check(accepted == 0, "cache=%s: %d bad stores were accepted" % (cache, accepted))
        check(not reasons_missing, "secretfs reload did not give the reason for: %s" %
              ", ".join(sorted(set(reasons_missing))))
        for n, res in enumerate(results):
            check("crashed" not in res, "reader %d crashed" % n)
            check(res["reads"] > 0, "reader %d read nothing" % n)
            check(res["errors"] == 0, "cache=%s reader %d: %d read errors (%s)" % (
                cache, n, res["errors"], "; ".join(res["err_kinds"])))
            check(res["torn"] + res["torn_resized"] == 0 and res["B"] == 0,
                  "cache=%s reader %d saw something other than the old values" % (cache, n))


def test():
    need_fuse()
    run_mode("kernel", ["whole"] * 4)
    run_mode("none", ["whole", "whole", "small", "small"])


run_all(test)
