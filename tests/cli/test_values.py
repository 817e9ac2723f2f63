#!/usr/bin/env python3
"""`set`, `get`, `rm` and `list`: exact bytes in and out, all-or-nothing removal, listings
with sizes and times but never values."""
import calendar
import json
import os
import random
import sys
import time

from harness import CliSandbox, canary, check, hostile_values, leaks, run_all  # noqa: E402

MIB = 1 << 20


def iso(t):
    return calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ"))


def listing(sb):
    return {e["name"]: e for e in json.loads(sb.run(["list", "--json"]).stdout)}


def test_set_get_exact_bytes():
    with CliSandbox() as sb:
        rnd = random.Random(7)
        values = {
            "ALL_BYTES": bytes(range(256)),
            "ALL_BYTES_REV": bytes(range(255, -1, -1)) * 3,
            "TRAILING_NL": b"value\n\n\n",
            "ONLY_NL": b"\n",
            "CRLF": b"a\r\nb\r\n",
            "NUL": b"\x00",
            "NULS": b"\x00\x00a\x00",
            "SPACES": b"  padded  ",
            "EQUALS": b"a=b=c,d",
            "ONE_MIB": rnd.randbytes(MIB),
            "with.dot-dash_9": b"name chars",
            "x" * 255: b"longest name",
        }
        values.update({n: v for n, v in hostile_values().items() if v})  # empty: refused
        for name, value in values.items():
            sb.run(["set", name], input=value)
        for name, value in values.items():
            p = sb.run(["get", name])
            check(p.stdout == value, "get %s: %d bytes back for %d stored" % (
                name[:40], len(p.stdout), len(value)))
            check(p.stderr == b"", "get %s wrote to stderr" % name[:40])
        sizes = sb.names()
        check(sizes == {n: len(v) for n, v in values.items()}, "list sizes disagree with set")
        # --from-file, and options after the name
        path = sb.write("value.bin", bytes(range(256)) + b"\n")
        sb.run(["set", "FROM_FILE", "--from-file", path])
        check(sb.get("FROM_FILE") == bytes(range(256)) + b"\n", "--from-file bytes differ")
        sb.run(["set", "--from-file", path, "FROM_FILE2"])
        check(sb.get("FROM_FILE2", ["--store", sb.store]) == bytes(range(256)) + b"\n",
              "--from-file before the name")
        # replacing a value
        sb.run(["set", "NUL"], input=b"replaced")
        check(sb.get("NUL") == b"replaced", "set did not replace the value")


def test_set_refusals():
    with CliSandbox() as sb:
        sb.run(["set", "KEEP"], input=canary())
        before = sb.store_bytes()
        sb.fails(["set", "EMPTY"], 1, "empty", input=b"")
        sb.fails(["set", "BIG"], 1, "max_secret_size", input=b"x" * (MIB + 1))
        sb.fails(["set", "F", "--from-file", os.path.join(sb.dir, "missing")], 1, "missing")
        sb.fails(["set", "F", "--from-file", sb.dir], 1, sb.dir)
        for bad, why in ((".hidden", "'.'"), ("a b", "A-Z"), ("a/b", "A-Z"), ("x" * 256, "255"),
                         ("caf\u00e9", "A-Z"), ("a=b", "A-Z"), ("", "empty")):
            p = sb.run(["set", bad], input=b"v", check_rc=False)
            check(p.returncode in (1, 2), "set %r exited %d" % (bad[:20], p.returncode))
            check(b"names use" in p.stderr or why.encode() in p.stderr,
                  "set %r: the error does not say what names may be" % bad[:20])
        for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_ANYTHING"):
            sb.fails(["set", name], 1, name, "platform", input=b"v")
        check(sb.store_bytes() == before, "a refused set changed the store")
        # the limit follows [store] max_secret_size
        sb.write_config("max_secret_size = 16\n")
        sb.run(["set", "SIXTEEN"], input=b"x" * 16)
        sb.fails(["set", "SEVENTEEN"], 1, "16-byte", "max_secret_size", input=b"x" * 17)
        check(set(sb.names()) == {"KEEP", "SIXTEEN"}, "wrong names after the limits")


def test_get_errors():
    with CliSandbox() as sb:
        sb.fails(["get", "A"], 1, sb.store, "set")          # no store yet
        sb.run(["set", "A"], input=canary())
        p = sb.fails(["get", "MISSING"], 1, "MISSING")
        check(p.stdout == b"", "get of a missing name wrote to stdout")
        p = sb.fails(["get", "a"], 1, "'a'")                 # names are case-sensitive
        check(p.stdout == b"", "get is not case-sensitive")


def test_rm_all_or_nothing():
    with CliSandbox() as sb:
        vals = {n: canary(n) for n in ("A", "B", "C", "D")}
        sb.set_secrets(vals)
        before = sb.store_bytes()
        for args in (["A", "MISSING"], ["MISSING", "A"], ["A", "B", "a"], ["NOPE"]):
            p = sb.fails(["rm"] + args, 1, "nothing was removed")
            for n in args:
                if n not in vals:
                    check(n.encode() in p.stderr, "rm does not name the missing %s" % n)
            check(sb.store_bytes() == before, "a failed rm %s changed the store" % args)
        p = sb.run(["rm", "A", "C"])
        check(set(sb.names()) == {"B", "D"}, "rm A C left %s" % sorted(sb.names()))
        check(sb.get("B") == vals["B"] and sb.get("D") == vals["D"], "rm changed other values")
        sb.run(["rm", "B", "D"])
        check(sb.names() == {}, "rm of everything left names")
        out = sb.run(["list"]).stdout.decode()
        check(len(out.splitlines()) <= 1, "an empty store lists rows")
        check(sb.temp_files() == [], "temporary files left")


def test_list_sizes_times_no_values():
    with CliSandbox() as sb:
        vals = {"Z_LAST": canary("z"), "A_FIRST": canary("a") * 3, "M.mid_dle": b"\n",
                "dash-ed": b"-", "BIN": bytes(range(256))}
        t0 = int(time.time())
        sb.set_secrets(vals)
        t1 = int(time.time())
        entries = listing(sb)
        raw = json.loads(sb.run(["list", "--json"]).stdout)
        check([e["name"] for e in raw] == sorted(vals), "list --json is not sorted by name")
        for e in raw:
            check(set(e) == {"name", "size", "created", "updated"},
                  "list --json fields are %s" % sorted(e))
        for name, value in vals.items():
            e = entries[name]
            check(e["size"] == len(value), "%s: size %d, stored %d" % (name, e["size"],
                                                                      len(value)))
            c, u = iso(e["created"]), iso(e["updated"])
            check(t0 - 1 <= c <= t1 + 1 and c == u, "%s: created/updated %s/%s not now" % (
                name, e["created"], e["updated"]))
        p = sb.run(["list"])
        lines = p.stdout.decode().splitlines()
        check(lines[0].split() == ["NAME", "SIZE", "CREATED", "UPDATED"],
              "list has no NAME SIZE CREATED UPDATED header")
        rows = {l.split()[0]: l.split()[1:] for l in lines[1:]}
        check(set(rows) == set(vals), "list rows are %s" % sorted(rows))
        for name, value in vals.items():
            check(rows[name][0] == str(len(value)), "list size of %s" % name)
            check(rows[name][1] == entries[name]["created"], "list created of %s" % name)
        for out in (p.stdout, sb.run(["list", "--json"]).stdout):
            check(leaks(out) == 0, "list printed a value")
            check(bytes(range(1, 9)) not in out, "list printed binary value bytes")
        # later changes: updated moves, created stays; an unchanged value keeps both
        time.sleep(1.1)
        sb.run(["set", "Z_LAST"], input=b"changed")
        sb.run(["update-secrets", "--secrets", "M.mid_dle=\"\\n\""])
        after = listing(sb)
        check(after["Z_LAST"]["created"] == entries["Z_LAST"]["created"],
              "changing a value changed its created time")
        check(iso(after["Z_LAST"]["updated"]) > iso(entries["Z_LAST"]["updated"]),
              "changing a value did not move its updated time")
        check(after["M.mid_dle"] == entries["M.mid_dle"],
              "re-importing the same value changed its times")
        check(after["A_FIRST"] == entries["A_FIRST"], "an untouched secret changed")
        # a missing store is an error that says how to create one
        sb.fails(["list", "--store", os.path.join(sb.dir, "none")], 1, "update-secrets")


if __name__ == "__main__":
    run_all(test_set_get_exact_bytes, test_set_refusals, test_get_errors,
            test_rm_all_or_nothing, test_list_sizes_times_no_values)
