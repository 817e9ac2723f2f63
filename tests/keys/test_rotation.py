#!/usr/bin/env python3
"""secretfs rekey while readers, reloads and `get`s run: nothing may fail, ever."""
import os
import threading
import time

from harness import Sandbox, check, need_fuse, run_all, wait_for  # noqa: E402

VALUE = b"rotating-value-0123456789"


def test_rekey_under_load():
    need_fuse()
    with Sandbox() as sb:
        sb.set_secrets({"A": VALUE, "B": b"second"})
        state = os.path.join(sb.dir, "state")
        mnt, pid = sb.mount(opts=["-o", "cache=none", "--state-dir", state])
        stop = threading.Event()
        counts = {"reads": 0, "bad_reads": 0, "reloads": 0, "bad_reloads": 0, "gets": 0,
                  "bad_gets": 0}
        errors = []
        lock = threading.Lock()

        def bump(key, err=None):
            with lock:
                counts[key] += 1
                if err and len(errors) < 5:
                    errors.append(err)

        def reader():
            while not stop.is_set():
                try:
                    with open(os.path.join(mnt, "A"), "rb") as f:
                        ok = f.read() == VALUE
                    bump("reads")
                    if not ok:
                        bump("bad_reads", "read a wrong value")
                except OSError as e:
                    bump("reads")
                    bump("bad_reads", "read failed: %s" % e)

        def reloader():
            while not stop.is_set():
                p = sb.run(["reload", mnt], check_rc=False)
                bump("reloads")
                if p.returncode != 0:
                    bump("bad_reloads", p.stderr.decode(errors="replace")[-300:])

        def getter():
            while not stop.is_set():
                p = sb.run(["get", "A"], check_rc=False)
                bump("gets")
                if p.returncode != 0 or p.stdout != VALUE:
                    bump("bad_gets", p.stderr.decode(errors="replace")[-300:])

        threads = [threading.Thread(target=f) for f in (reader, reader, reloader, getter)]
        for t in threads:
            t.start()
        started = time.monotonic()
        try:
            time.sleep(0.3)
            rekeys = 0
            for i in range(6):
                sb.run(["rekey"])
                rekeys += 1
                time.sleep(0.1)
            # the fleet's three steps, also under load
            sb.run(["rekey", "--stage"])
            time.sleep(0.2)
            sb.run(["rekey", "--promote"])
            time.sleep(0.2)
            sb.run(["rekey", "--finish"])
            rekeys += 3
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        elapsed = time.monotonic() - started
        print("rekey under load: %d rekey steps in %.1f s; reads %d (failed %d), reloads %d "
              "(failed %d), gets %d (failed %d)" % (
                  rekeys, elapsed, counts["reads"], counts["bad_reads"], counts["reloads"],
                  counts["bad_reloads"], counts["gets"], counts["bad_gets"]))
        check(counts["bad_reads"] == 0 and counts["bad_reloads"] == 0 and
              counts["bad_gets"] == 0, "failures during rekey: %s" % errors)
        check(counts["reads"] > 100 and counts["reloads"] > 5 and counts["gets"] > 5,
              "too little load to mean anything: %s" % counts)
        with open(sb.key, "rb") as f:
            lines = f.read().split(b"\n")
        check(lines[0] == b"secretfs-key-v2" and len(lines) == 3,
              "after --finish the key file should hold one key")
        check(sb.status(mnt)["last_reload"] == "ok", "the daemon's last reload failed")
        sb.run(["reload", mnt])


def test_finish_refuses_while_in_use():
    with Sandbox() as sb:
        sb.set_secrets({"A": VALUE})
        sb.run(["rekey", "--stage"])
        before = open(sb.key, "rb").read()
        # the store is sealed under the first key: staged keys are unused, so --finish drops
        # them; but after a --promote that did not reseal, the store uses the second key
        with open(sb.store, "rb") as f:
            store_before = f.read()
        sb.run(["rekey", "--promote"])
        with open(sb.store, "wb") as f:
            f.write(store_before)                 # as if the reseal had not happened
        p = sb.run(["rekey", "--finish"], check_rc=False)
        check(p.returncode == 1, "--finish dropped a key the store still uses")
        check(b"still sealed under key" in p.stderr and b"--reseal" in p.stderr,
              "the refusal does not say what to do: %r" % p.stderr)
        check(open(sb.key, "rb").read() != before and open(sb.key, "rb").read().count(b"key:") == 2,
              "the refused --finish changed the key file")
        sb.run(["rekey", "--reseal"])
        sb.run(["rekey", "--finish"])
        check(sb.run(["get", "A"]).stdout == VALUE, "the store does not open after --finish")


def test_old_one_key_file_loads():
    with Sandbox() as sb:
        sb.set_secrets({"A": VALUE})
        data = open(sb.key, "rb").read()
        v1 = b"secretfs-key-v1:" + data.split(b"\n")[1][4:] + b"\n"
        with open(sb.key, "wb") as f:
            f.write(v1)
        check(sb.run(["get", "A"]).stdout == VALUE, "a v1 key file does not open the store")
        sb.run(["rekey"])                           # rewrites it as v2, two keys
        check(open(sb.key, "rb").read().startswith(b"secretfs-key-v2\nkey:"),
              "rekey did not write the v2 format")
        check(sb.run(["get", "A"]).stdout == VALUE, "the store does not open after rekey")


if __name__ == "__main__":
    run_all(test_rekey_under_load, test_finish_refuses_while_in_use, test_old_one_key_file_loads)
