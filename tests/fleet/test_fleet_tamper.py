"""Fleet tampering: whatever someone with write access to etcd (but not the key) does to the
keys under the prefix, a daemon never serves a wrong value, and the old set keeps serving.

- every key under the prefix with one byte flipped (one at a time, then restored)
- every value copied onto another key (a blob moved to a key it was not sealed for)
- a foreign blob: another prefix's commit, sealed with another key, put over ours
- a key deleted, an extra key planted
A reader process reads every file of two mounts (cache=kernel, cache=none) the whole time and
counts any value that is not the stored one.  `secretfs reload` (a full resync) after each
change gives its verdict; .status then says last_reload=error when it refused.
"""
import json
import os
import signal

from fleetlib import Fleet, canary, check, fleet_main, read, serves, status, stop_reader


def prefix_keys(f):
    """{key: value} of everything this prefix stored (with or without a leading '/')."""
    for p in (f.prefix.encode(), b"/" + f.prefix.encode()):
        kvs, _ = f.cluster.range(p)
        if kvs:
            return kvs
    return {}


def start_reader(mnts, expected):
    """A child that reads every expected file of every mount until SIGTERM, then writes
    {"reads": N, "wrong": [names]} to its pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        reads, wrong = 0, set()
        try:
            while not stop:
                for m in mnts:
                    for name, value in expected.items():
                        try:
                            got = read(os.path.join(m, name))
                        except OSError as e:
                            wrong.add("%s:%s (%s)" % (os.path.basename(m), name, e.strerror))
                            continue
                        reads += 1
                        if got != value:
                            wrong.add("%s:%s (%d bytes)" % (os.path.basename(m), name,
                                                            len(got)))
        finally:
            os.write(w, json.dumps({"reads": reads, "wrong": sorted(wrong)}).encode())
            os._exit(0)
    os.close(w)
    return pid, r


def resync(f, mnts):
    """`secretfs reload` of each mount; returns the exit codes."""
    return [f.run(["reload", "--timeout", "20", m], check_rc=False, timeout=60).returncode
            for m in mnts]


def test_tampering_never_serves_a_wrong_value():
    with Fleet() as f:
        base = {"T_%d" % i: canary("tamper") for i in range(4)}
        base["T_BIN"] = bytes(range(256))
        f.put_secrets({k: v for k, v in base.items() if k != "T_BIN"})
        f.admin(["set", "T_BIN"], input=base["T_BIN"])
        # a second update, so older and newer blobs both exist
        base["T_0"] = canary("tamper2")
        f.put_secrets({"T_0": base["T_0"]})
        mnts = [f.mount(0), f.mount(1, opts=["-o", "cache=none"])]
        f.wait_served(mnts, base)
        original = prefix_keys(f)
        check(len(original) >= 2, "found %d keys under the prefix" % len(original))
        keys = sorted(original)
        print("   %d keys under the prefix" % len(keys))
        reader = start_reader(mnts, base)
        refused = 0
        try:
            def attempt(what, changes, restore):
                nonlocal refused
                for k, v in changes.items():
                    if v is None:
                        f.cluster.delete(k)
                    else:
                        f.cluster.put(k, v)
                rcs = resync(f, mnts)
                for m in mnts:
                    check(serves(m, base), "%s: %s serves a wrong or missing value" % (
                        what, os.path.basename(m)))
                    st = status(m)
                    if rcs[mnts.index(m)] == 1:
                        refused += 1
                        check(st.get("last_reload", "").startswith("error"),
                              "%s: reload refused but .status last_reload=%r" % (
                                  what, st.get("last_reload")))
                    check(rcs[mnts.index(m)] in (0, 1), "%s: reload exited %d" % (
                        what, rcs[mnts.index(m)]))
                for k, v in restore.items():
                    if v is None:
                        f.cluster.delete(k)
                    else:
                        f.cluster.put(k, v)
                return rcs

            for k in keys:
                v = bytearray(original[k])
                for pos in (len(v) // 2, 0, len(v) - 1):    # body, header, tag
                    flipped = bytearray(v)
                    flipped[pos] ^= 0x01
                    rcs = attempt("flip byte %d of %s" % (pos, k[-12:].decode(errors="replace")),
                                  {k: bytes(flipped)}, {k: original[k]})
                    if k.endswith(b"commit"):
                        check(rcs == [1, 1], "a flipped commit record was not refused "
                              "(reload exit codes %s)" % rcs)
            for i, k in enumerate(keys):
                other = keys[(i + 1) % len(keys)]
                attempt("value of %s copied onto %s" % (k[-8:], other[-8:]),
                        {other: original[k]}, {other: original[other]})
            # delete each key; plant an extra one
            for k in keys:
                attempt("delete %s" % k[-8:], {k: None}, {k: original[k]})
            extra = keys[-1][:-4] + b"beef"
            attempt("extra key", {extra: original[keys[-1]]}, {extra: None})
            # a foreign blob: another prefix with another key
            other_key = os.path.join(f.dir, "other.key")
            f.run(["keygen", other_key])
            other_loc = f.cluster.location("sfs-foreign-%s/" % os.urandom(3).hex())
            f.run(["set", "T_0", "--store", other_loc, "--key-file", other_key],
                  input=canary("foreign"))
            foreign = {k: v for k, v in f.cluster.range(None)[0].items()
                       if b"sfs-foreign-" in k}
            commit = [k for k in keys if k.endswith(b"commit")]
            fcommit = [k for k in foreign if k.endswith(b"commit")]
            if commit and fcommit:
                rcs = attempt("foreign commit", {commit[0]: foreign[fcommit[0]]},
                              {commit[0]: original[commit[0]]})
                check(rcs == [1, 1], "a commit sealed with another key was not refused")
            # restored: reload succeeds again and an honest update goes through
            check(resync(f, mnts) == [0, 0], "reload after restoring the keys failed")
            for m in mnts:
                check(status(m).get("last_reload") == "ok", "last_reload not ok after restore")
        finally:
            result = stop_reader(*reader)
        base["T_1"] = canary("honest")
        f.put_secrets({"T_1": base["T_1"]})
        f.wait_served(mnts, base)
        check(result["reads"] > 0, "the reader read nothing")
        check(not result["wrong"], "a reader saw %d wrong value(s): %s" % (
            len(result["wrong"]), ", ".join(result["wrong"][:5])))
        print("   %d reads during tampering, none wrong; %d reloads refused" % (
            result["reads"], refused))
        check(refused > 0, "no tampering was ever refused")
        f.check_no_leaks(list(base))


if __name__ == "__main__":
    fleet_main(test_tampering_never_serves_a_wrong_value)
