#!/usr/bin/env python3
"""`meson install --destdir`: exactly the files the README's Install table lists (under this
build's prefix), every unit in examples/systemd/ among them and running the installed
binary, man pages that man(1) finds and mandoc lints clean."""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mount"))
from harness import check, run_all  # noqa: E402

SRC = os.environ["SFS_SOURCE_ROOT"]
BUILD = os.environ["SFS_BUILD_ROOT"]
UNIT_SUFFIXES = (".service", ".socket", ".mount", ".timer", ".path", ".target")


def readme_files():
    """The paths in the README's Install table: rows that start with | `/...` |."""
    with open(os.path.join(SRC, "README.md")) as f:
        text = f.read()
    section = re.search(r"^## Install\n(.*?)^## ", text, re.M | re.S)
    check(section, "README has no '## Install' section")
    return sorted(re.findall(r"^\| `(/[^`]+)` \|", section.group(1), re.M))


def build_option(name):
    opts = json.loads(subprocess.run(["meson", "introspect", "--buildoptions", BUILD],
                                     capture_output=True, text=True, check=True).stdout)
    return next(o["value"] for o in opts if o["name"] == name)


def installed(destdir):
    out = []
    for root, _, files in os.walk(destdir):
        out += [os.path.join(root, f)[len(destdir):] for f in files]
    return sorted(out)


def test_destdir():
    prefix = build_option("prefix")
    with tempfile.TemporaryDirectory(prefix="sfs-install-") as dest:
        p = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet",
                            "--destdir", dest], capture_output=True, text=True)
        check(p.returncode == 0, "meson install failed: %s" % (p.stdout + p.stderr)[-2000:])
        want = sorted(re.sub(r"^/usr/", prefix.rstrip("/") + "/", f) for f in readme_files())
        got = installed(dest)
        check(len(want) >= 9, "the README's Install table lists only %s" % want)
        check(got == want, "meson install: not in the README %s; in the README, not installed %s"
              % (sorted(set(got) - set(want)), sorted(set(want) - set(got))))

        units = sorted(os.path.basename(u) for u in glob.glob(os.path.join(
            SRC, "examples", "systemd", "*")) if u.endswith(UNIT_SUFFIXES))
        got_units = sorted(os.path.basename(f) for f in got if f.endswith(UNIT_SUFFIXES))
        check(units and units == got_units, "examples/systemd has %s, installed %s (add new "
              "units to systemd_units in examples/systemd/meson.build)" % (units, got_units))
        binary = os.path.join(prefix, build_option("bindir"), "secretfs")
        check(os.access(dest + binary, os.X_OK), "%s is not installed" % binary)
        for f in got:
            if f.endswith(".service"):
                with open(dest + f) as u:
                    execs = re.findall(r"^Exec(?:Start|StartPre|Reload)=(\S+)", u.read(), re.M)
                for e in execs:
                    check(e == binary or not e.endswith("secretfs"),
                          "%s runs %s, but the binary is installed as %s" % (f, e, binary))

        mandir = dest + os.path.join(prefix, build_option("mandir"))
        for page, sect in (("secretfs", "1"), ("secretfs.ini", "5"), ("secretfs", "7")):
            p = subprocess.run(["man", "-M", mandir, "-w", sect, page], capture_output=True,
                               text=True)
            check(p.returncode == 0 and p.stdout.strip().startswith(mandir),
                  "man -w %s %s: %s" % (sect, page, p.stdout + p.stderr))
            lint = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", p.stdout.strip()],
                                  capture_output=True, text=True)
            check(lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(),
                  "mandoc -T lint: %s" % (lint.stdout + lint.stderr))

        ex = dest + os.path.join(prefix, build_option("datadir"), "doc", "secretfs", "examples",
                                 "secretfs.ini")
        with open(ex) as a, open(os.path.join(SRC, "examples", "secretfs.ini")) as b:
            check(a.read() == b.read(), "the installed example config differs from examples/")


if __name__ == "__main__":
    run_all(test_destdir)
