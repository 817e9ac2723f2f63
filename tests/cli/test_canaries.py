#!/usr/bin/env python3
"""No secret value ever reaches stderr (or stdout, but for `get`), on any failure path, nor
`list`.  Every command here runs through CliSandbox.run, which fails the test as soon as a
planted canary value shows up in its output."""
import os
import sys

from harness import CliSandbox, canary, check, leaks, run_all  # noqa: E402

MIB = 1 << 20


def test_store_failure_paths():
    with CliSandbox() as sb:
        c = {n: canary(n) for n in ("A", "B", "C")}
        c["BIN"] = b"\x00\n" + canary("bin") + b"\n\xff"
        sb.set_secrets(c)
        for n, v in c.items():
            check(sb.get(n) == v, "get %s" % n)
        for args in (["list"], ["list", "--json"]):
            out = sb.run(args).stdout
            check(leaks(out) == 0, "%s shows a value" % " ".join(args))
        good = sb.store_bytes()
        other = os.path.join(sb.dir, "other.key")
        sb.run(["keygen", other])
        runs = 0
        for key in (other, os.path.join(sb.dir, "missing.key")):
            for args in (["list"], ["get", "A"], ["rm", "A"], ["set", "D"],
                         ["update-secrets", "--secrets", b"D=" + canary()]):
                sb.run(args + ["--key-file", key], input=canary(), rc=1)
                runs += 1
        key_data = open(sb.key, "rb").read()
        loose = sb.write("loose.key", key_data, 0o644)
        sb.run(["get", "A", "--key-file", loose], rc=1)
        for data in (good[:len(good) // 2], good[:-1], good[:70] + bytes([good[70] ^ 4]) +
                     good[71:], good + b"junk"):
            with open(sb.store, "wb") as f:
                f.write(data)
            for args in (["list"], ["list", "--json"], ["get", "A"], ["rm", "A"], ["set", "E"]):
                sb.run(args, input=canary(), rc=1)
                runs += 1
        with open(sb.store, "wb") as f:
            f.write(good)
        sb.run(["get", "NOPE"], rc=1)
        sb.run(["rm", "A", "NOPE"], rc=1)
        for bad in (".x", "a b", "LIVEKIT_URL", "x" * 256, "a/b"):
            sb.run(["set", bad], input=canary(), check_rc=False)
        sb.run(["set", "BIG"], input=canary() * (MIB // 20), rc=1)
        check(sb.ran > 40, "too few commands ran")


def test_import_failure_and_warning_paths():
    with CliSandbox() as sb:
        sb.run(["set", "KEEP"], input=canary())
        v = lambda: canary().decode()  # noqa: E731
        bodies = [
            'A=%s\nB="%s\n' % (v(), v()),                 # unterminated double quote
            "A='%s\n" % v(),                              # unterminated single quote
            'A="%s"%s\n' % (v(), v()),                    # junk after a closing quote
            "bad-name=%s\n" % v(),
            "b@d=%s\n" % v(),
            'B"C=%s\n' % v(),
            "B'C=%s\n" % v(),
            "\u00e9=%s\n" % v(),
            "A=%s\nNOEQUALS %s\n" % (v(), v()),
            "A=%s\n.hidden=%s\n" % (v(), v()),
            "A=%s\nE=\n" % v(),
            "%s=%s\n" % ("N" * 300, v()),
            "LIVEKIT_URL=%s\n" % v(),
            "LIVEKIT_API_KEY=%s\nLIVEKIT_API_SECRET=%s\n" % (v(), v()),
        ]
        warnings = [
            'W1="${UNDEF}%s"\n' % v(),
            'W2="\\t%s"\n' % v(),
            "W3=%s\nW3=%s\n" % (v(), v()),
            'W4="$(date)%s"\n' % v(),
            'W5="%s\\""\n' % v(),
            "W6=%s\r\nW7=%s # comment %s\n" % (v(), v(), v()),
        ]
        for i, body in enumerate(bodies + warnings):
            f = sb.write("c%d.env" % i, body)
            sb.run(["update-secrets", "--secrets-file", f], check_rc=False)
            sb.run(["update-secrets", "--secrets-file", f, "--ignore-empty-secrets"],
                   check_rc=False)
            lines = [l for l in body.splitlines() if l]
            if len(lines) == 1:  # the same text as one --secrets value
                sb.run(["update-secrets", "--secrets", lines[0]], check_rc=False)
        for arg in (v(), "A B %s" % v(), '"%s' % v(), "='%s'" % v(), "A=%s\nB=%s" % (v(), v()),
                    "LIVEKIT_URL=%s" % v()):
            sb.run(["update-secrets", "--secrets", arg], check_rc=False)
        d = os.path.join(sb.dir, "m")
        os.mkdir(d)
        for name, data in (("BIG", canary() * (MIB // 20)), (".dot", canary()),
                           ("LIVEKIT_URL", canary()), ("bad name", canary())):
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(data)
            sb.run(["update-secrets", "--secret-mount", path], rc=1)
        for out in (sb.run(["list"]).stdout, sb.run(["list", "--json"]).stdout):
            check(leaks(out) == 0, "list shows a value")
        check(sb.ran > 50, "too few commands ran")


if __name__ == "__main__":
    run_all(test_store_failure_paths, test_import_failure_and_warning_paths)
