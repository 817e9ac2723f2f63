#!/usr/bin/env python3
"""The man pages: mandoc -T lint finds nothing, and secretfs(1) documents exactly the
commands, flags and exit codes that `secretfs --help` and `secretfs COMMAND --help` do."""
import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "mount"))
from harness import check, run_all  # noqa: E402
import helpdoc  # noqa: E402

SECRETFS = os.environ["SECRETFS_BIN"]
MAN = os.path.join(os.environ["SFS_SOURCE_ROOT"], "man")
# Only these mandoc messages depend on the machine, not the page: our own pages are not
# installed yet, and the system's mandoc.db may be stale.
MACHINE_NOISE = ("referenced manual not found", "mandoc.db")


def test_lint():
    pages = sorted(glob.glob(os.path.join(MAN, "*.[1-9]")))
    check(len(pages) == 3, "expected secretfs.1, secretfs.ini.5, secretfs.7; found %s" % pages)
    for page in pages:
        p = subprocess.run(["mandoc", "-T", "lint", "-W", "style", page],
                           capture_output=True, text=True)
        msgs = [m for m in (p.stdout + p.stderr).splitlines()
                if not any(n in m for n in MACHINE_NOISE)]
        check(not msgs, "mandoc -T lint %s:\n%s" % (os.path.basename(page), "\n".join(msgs)))


def test_commands():
    h, m = helpdoc.from_help(SECRETFS), helpdoc.from_man(os.path.join(MAN, "secretfs.1"))
    check(len(h["commands"]) >= 10, "parsed only %s from --help" % h["commands"])
    missing = [c for c in h["commands"] if c not in m["commands"]]
    extra = [c for c in m["commands"] if c not in h["commands"]]
    check(not missing, "secretfs(1) has no COMMANDS entry for %s" % missing)
    check(not extra, "secretfs(1) documents commands --help does not list: %s" % extra)
    check(h["common"] == m["common"] and h["common"],
          "store options: --help %s, secretfs(1) %s" % (sorted(h["common"]),
                                                         sorted(m["common"])))


def test_flags():
    h, m = helpdoc.from_help(SECRETFS), helpdoc.from_man(os.path.join(MAN, "secretfs.1"))
    bad = []
    for c in h["commands"]:
        hf, mf = h["flags"][c], m["flags"].get(c, set())
        if hf != mf:
            bad.append("%s: only in --help %s, only in secretfs(1) %s"
                       % (c, sorted(hf - mf), sorted(mf - hf)))
    check(not bad, "flags differ:\n  " + "\n  ".join(bad))
    check("--restart-on-change" in h["flags"]["run"] and "-f" in h["flags"]["mount"],
          "the --help parser misses flags: %s" % h["flags"])


def test_exit_codes():
    h, m = helpdoc.from_help(SECRETFS), helpdoc.from_man(os.path.join(MAN, "secretfs.1"))
    check(h["codes"].get("secretfs") == {"0", "1", "2"}, "main --help codes: %s" % h["codes"])
    check(h["codes"] == m["codes"], "exit codes: --help %s, secretfs(1) EXIT STATUS %s"
          % (sorted((k, sorted(v)) for k, v in h["codes"].items()),
             sorted((k, sorted(v)) for k, v in m["codes"].items())))


def test_parser_sees_drift():
    """The comparison would notice a command or flag missing from the page."""
    h = helpdoc.from_help(SECRETFS)
    path = os.path.join(MAN, "secretfs.1")
    with open(path) as f:
        src = f.read()
    cut = src.replace(".It Cm reload Oo Fl -timeout Ar seconds Oc Op Ar mountpoint\n", "")
    check(cut != src, "the reload entry is not where this test expects it")
    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "sfs-man-%d.1" % os.getpid())
    try:
        with open(tmp, "w") as f:
            f.write(cut)
        m = helpdoc.from_man(tmp)
    finally:
        os.unlink(tmp)
    check("reload" not in m["commands"] and "reload" in h["commands"],
          "removing the reload entry went unnoticed")


if __name__ == "__main__":
    run_all(test_lint, test_commands, test_flags, test_exit_codes, test_parser_sees_drift)
