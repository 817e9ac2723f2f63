#!/usr/bin/env python3
"""`secretfs update-secrets`: merge and --overwrite, --secrets parsing, --secret-mount,
precedence, empty values, LIVEKIT_* names, invalid names, syntax errors, and that nothing
is written unless the whole input is valid."""
import os
import re
import sys

from harness import CliSandbox, canary, check, run_all  # noqa: E402

MIB = 1 << 20
SUMMARY = re.compile(rb"(\d+) added, (\d+) changed, (\d+) unchanged, (\d+) removed")


def summary(p):
    m = SUMMARY.search(p.stdout)
    check(m, "update-secrets printed no summary")
    return tuple(int(x) for x in m.groups())


def values(sb):
    return {n: sb.get(n) for n in sb.names()}


def test_merge_and_overwrite():
    with CliSandbox() as sb:
        a, b = canary("a"), canary("b")
        p = sb.run(["update-secrets", "--secrets", b"A=" + a, "--secrets", b"B=" + b])
        check(summary(p) == (2, 0, 0, 0), "first import: %s" % (summary(p),))
        p = sb.run(["update-secrets", "--secrets", "C=3", "--secrets", b"A=" + a])
        check(summary(p) == (1, 0, 1, 0), "merge: %s" % (summary(p),))
        check(values(sb) == {"A": a, "B": b, "C": b"3"}, "merge lost or changed a secret")
        p = sb.run(["update-secrets", "--secrets", "C=4", "--secrets", "D=5"])
        check(summary(p) == (1, 1, 0, 0), "change: %s" % (summary(p),))
        p = sb.run(["update-secrets", "--overwrite", "--secrets", "D=5", "--secrets", "E=6"])
        check(summary(p) == (1, 0, 1, 3), "overwrite: %s" % (summary(p),))
        check(values(sb) == {"D": b"5", "E": b"6"}, "--overwrite did not make the store "
              "exactly the given set")
        check(sb.temp_files() == [], "temporary files left")


def test_secrets_values_are_dotenv_lines():
    with CliSandbox() as sb:
        cases = {
            "COMMAS": ("COMMAS=a,b,c", b"a,b,c"),
            "NOSPLIT": ("NOSPLIT=x,OTHER=y", b"x,OTHER=y"),
            "DQ": ('DQ="line1\\nline2"', b"line1\nline2"),
            "SQ": ("SQ='lit $X \\n'", b"lit $X \\n"),
            "TRIM": ("TRIM=  spaced value  # comment", b"spaced value"),
            "HASH": ("HASH=a#b", b"a#b"),
            "ESC": ('ESC="a\\"b"', b'a"b'),
            "YAML": ("YAML: v", b"v"),
            "EXP": ("export EXP=1", b"1"),
            "EQ": ("EQ=a=b", b"a=b"),
            "UTF8": ("UTF8=\u00e9\u00e8", "\u00e9\u00e8".encode()),
        }
        args = []
        for line, _ in cases.values():
            args += ["--secrets", line]
        sb.run(["update-secrets"] + args)
        got = values(sb)
        for name, (line, want) in cases.items():
            check(got.get(name) == want, "--secrets %s stored %r" % (line, got.get(name)))
        check(set(got) == set(cases), "--secrets stored names %s" % sorted(got))
        before = sb.store_bytes()
        # one pair per --secrets; what is wrong is said, with the fix
        for bad, needle in (("A=1\nB=2", "exactly one"), ("", "exactly one"),
                            ("A=\"open", "--secrets:1:3"), ("NOVALUE", "NAME=VALUE")):
            p = sb.run(["update-secrets", "--secrets", bad], check_rc=False)
            check(p.returncode in (1, 2), "--secrets %r exited %d" % (bad, p.returncode))
            check(needle.encode() in p.stderr, "--secrets %r: no %r in the error: %s" % (
                bad, needle, p.stderr.decode(errors="replace").strip()))
        check(sb.store_bytes() == before, "a refused --secrets changed the store")


def test_secret_mount():
    with CliSandbox() as sb:
        d = os.path.join(sb.dir, "mounted")
        os.mkdir(d)
        binary = bytes(range(256)) * 4 + b"\n\n"
        p1 = os.path.join(d, "TLS_KEY.pem")
        with open(p1, "wb") as f:
            f.write(binary)
        p2 = os.path.join(d, "exact")
        with open(p2, "wb") as f:
            f.write(b"y" * MIB)
        sb.run(["update-secrets", "--secret-mount", p1, "--secret-mount", p2])
        check(sb.get("TLS_KEY.pem") == binary, "--secret-mount bytes differ")
        check(sb.names()["exact"] == MIB, "a 1 MiB --secret-mount was not stored whole")
        before = sb.store_bytes()
        big = os.path.join(d, "BIG")
        with open(big, "wb") as f:
            f.write(b"z" * (MIB + 1))
        sb.fails(["update-secrets", "--secret-mount", big, "--secrets", "OK=1"], 1, big,
                 "limit")
        sb.fails(["update-secrets", "--secret-mount", os.path.join(d, "missing")], 1,
                 "missing")
        hidden = os.path.join(d, ".hidden")
        with open(hidden, "wb") as f:
            f.write(b"h")
        sb.fails(["update-secrets", "--secret-mount", hidden], 1, ".hidden")
        empty = os.path.join(d, "EMPTY")
        open(empty, "wb").close()
        sb.fails(["update-secrets", "--secret-mount", empty], 1, "EMPTY",
                 "--ignore-empty-secrets")
        check(sb.store_bytes() == before, "a refused --secret-mount changed the store")
        lk = os.path.join(d, "LIVEKIT_API_SECRET")
        with open(lk, "wb") as f:
            f.write(canary())
        sb.fails(["update-secrets", "--secret-mount", lk], 1,
                 "LIVEKIT_API_SECRET is supplied by the platform; not stored",
                 "no valid secrets provided; LIVEKIT_* are supplied by the platform")
        check(sb.store_bytes() == before, "a LIVEKIT_* --secret-mount changed the store")


def test_precedence():
    with CliSandbox() as sb:
        d = os.path.join(sb.dir, "m")
        os.mkdir(d)
        for name in ("A", "B"):
            with open(os.path.join(d, name), "wb") as f:
                f.write(b"mount-" + name.encode())
        env = sb.write("s.env", "A=file-A\nB=file-B\nC=file-C\nD=file-D\n")
        sb.run(["update-secrets", "--secrets-file", env,
                "--secrets", "B=secrets-B", "--secrets", "C=secrets-C",
                "--secret-mount", os.path.join(d, "A"), "--secret-mount", os.path.join(d, "B")])
        got = values(sb)
        want = {"A": b"mount-A", "B": b"secrets-B", "C": b"secrets-C", "D": b"file-D"}
        for n in want:
            check(got.get(n) == want[n], "precedence: %s came from the wrong source (%r)" % (
                n, got.get(n)))


def test_empty_values():
    with CliSandbox() as sb:
        sb.run(["set", "KEEP"], input=b"k")
        before = sb.store_bytes()
        sb.fails(["update-secrets", "--secrets", "E1=", "--secrets", "OK=1"], 1, "E1",
                 "--ignore-empty-secrets", "nothing was stored")
        env = sb.write("e.env", "OK=1\nE2=\nE3=''\nE4=${UNDEFINED}\n")
        p = sb.fails(["update-secrets", "--secrets-file", env], 1, "E2 (%s:2)" % env,
                     "E3 (%s:3)" % env, "E4 (%s:4)" % env, "3 problems")
        check(sb.store_bytes() == before, "empty values changed the store")
        p = sb.run(["update-secrets", "--secrets-file", env, "--ignore-empty-secrets"])
        for n in ("E2", "E3", "E4"):
            check(re.search(rb"skipped %s\b" % n.encode(), p.stdout),
                  "--ignore-empty-secrets does not name the skipped %s" % n)
        check(set(sb.names()) == {"KEEP", "OK"}, "--ignore-empty-secrets stored %s" %
              sorted(sb.names()))
        before = sb.store_bytes()
        sb.fails(["update-secrets", "--secrets", "E=", "--ignore-empty-secrets"], 1,
                 "no secrets provided")
        check(sb.store_bytes() == before, "an all-empty import changed the store")


def test_livekit_names():
    with CliSandbox() as sb:
        lk = canary("lk")
        env = sb.write("lk.env", b"LIVEKIT_API_KEY=" + lk + b"\nLIVEKIT_API_SECRET=" + lk +
                       b"\nAPP=1\n")
        p = sb.run(["update-secrets", "--secrets", b"LIVEKIT_URL=" + lk, "--secrets-file", env])
        err = p.stderr.decode()
        for n in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
            check("%s is supplied by the platform; not stored" % n in err,
                  "no warning naming %s" % n)
        check(set(sb.names()) == {"APP"}, "LIVEKIT_* names were stored: %s" % sorted(
            sb.names()))
        before = sb.store_bytes()
        only = sb.write("only.env", b"LIVEKIT_URL=" + lk + b"\n")
        for args in (["--secrets", b"LIVEKIT_URL=" + lk], ["--secrets-file", only],
                     ["--secrets-file", only, "--overwrite"]):
            sb.fails(["update-secrets"] + args, 1,
                     "LIVEKIT_URL is supplied by the platform; not stored",
                     "no valid secrets provided; LIVEKIT_* are supplied by the platform")
        check(sb.store_bytes() == before, "a LIVEKIT_*-only import changed the store")
        # the prefix is case-sensitive: livekit_url is an ordinary name
        sb.run(["update-secrets", "--secrets", "livekit_url=x"])
        check("livekit_url" in sb.names(), "livekit_url (lower case) was not stored")


def test_invalid_names_and_syntax():
    with CliSandbox() as sb:
        sb.run(["set", "KEEP"], input=canary())
        before = sb.store_bytes()
        v = canary("bad").decode()
        # godotenv accepts these names, secretfs cannot store them: FILE:LINE and the rule
        for body, line, needle in (
                ("OK=%s\n.hidden=%s\n" % (v, v), 2, "'.hidden'"),
                ("OK=%s\n\nA B=%s\n" % (v, v), 3, "'A B'"),
                ("=%s\n" % v, 1, "empty"),
                ("%s=%s\n" % ("N" * 256, v), 1, "255")):
            f = sb.write("n.env", body)
            sb.fails(["update-secrets", "--secrets-file", f], 1, "%s:%d" % (f, line), needle,
                     "nothing was stored")
        # names godotenv itself rejects: FILE:LINE:COLUMN
        for body, where, needle in (
                ("OK=1\nd-e=%s\n" % v, "2:2", "not allowed in a name"),
                ("caf\u00e9=%s\n" % v, "1:", "not allowed in a name"),
                ("OK=1\n\nC=\"%s\n" % v, "3:3", "unterminated double quote"),
                ("S='%s\n" % v, "1:3", "unterminated single quote"),
                ("OK=1\nJUNK\n", "2:5", "=")):
            f = sb.write("s.env", body)
            sb.fails(["update-secrets", "--secrets-file", f], 1, "%s:%s" % (f, where), needle)
        # names that are storable although unusual for env files
        f = sb.write("ok.env", "b.c=1\n9X=2\nexport a.B=3\n")
        sb.run(["update-secrets", "--secrets-file", f])
        check({"b.c", "9X", "a.B"} <= set(sb.names()), "storable dotted names were refused")
        before = sb.store_bytes()
        for name in (".x", "a b", "x" * 256):
            sb.fails(["update-secrets", "--secrets", "%s=1" % name], 1, "names use")
        check(sb.store_bytes() == before, "a refused --secrets name changed the store")
        sb.fails(["update-secrets", "--secrets-file", os.path.join(sb.dir, "nope.env")], 1,
                 "nope.env")


def test_nothing_written_unless_all_valid():
    with CliSandbox() as sb:
        sb.set_secrets({"KEEP": canary(), "OTHER": b"o"})
        before = sb.store_bytes()
        st = os.stat(sb.store)
        good = sb.write("good.env", "G1=1\nG2=2\n")
        bad_file = sb.write("bad.env", "G3=3\nG4=\"x\n")
        empty_file = sb.write("empty.env", "G5=5\nG6=\n")
        m = sb.write("big.bin", b"b" * (MIB + 1))
        for args in (["--secrets-file", bad_file, "--secrets", "X=1"],
                     ["--secrets-file", empty_file, "--secrets", "X=1"],
                     ["--secrets-file", good, "--secrets", ".bad=1"],
                     ["--secrets-file", good, "--secret-mount", m],
                     ["--secrets-file", good, "--secrets", "E="],
                     ["--overwrite", "--secrets-file", good, "--secrets", "A B=1"],
                     ["--overwrite", "--secrets-file", bad_file]):
            sb.run(["update-secrets"] + args, rc=1)
            check(sb.store_bytes() == before, "update-secrets %s changed the store" % args)
            check(os.stat(sb.store).st_ino == st.st_ino, "update-secrets %s replaced the "
                  "store file" % args)
        check(set(sb.names()) == {"KEEP", "OTHER"}, "names changed")
        check(sb.temp_files() == [], "temporary files left")


def test_warnings_name_lines():
    with CliSandbox() as sb:
        f = sb.write("w.env", "A=1\nB=${UNDEF}x\nA=2\nC=\"t\\tq\"\n")
        p = sb.run(["update-secrets", "--secrets-file", f])
        err = p.stderr.decode()
        for line in (2, 3, 4):
            check(re.search(r"warning: %s:%d:" % (re.escape(f), line), err),
                  "no warning naming %s:%d" % (f, line))
        check(values(sb) == {"A": b"2", "B": b"x", "C": b"ttq"},
              "the stored values are not what godotenv reads")


if __name__ == "__main__":
    run_all(test_merge_and_overwrite, test_secrets_values_are_dotenv_lines, test_secret_mount,
            test_precedence, test_empty_values, test_livekit_names,
            test_invalid_names_and_syntax, test_nothing_written_unless_all_valid,
            test_warnings_name_lines)
