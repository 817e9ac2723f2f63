#!/usr/bin/env python3
"""`secretfs --help`, `COMMAND --help`, `--version`, and exit code 2 for every usage error."""
import os
import re
import subprocess
import sys

from harness import CliSandbox, check, run_all  # noqa: E402

COMMANDS = ["keygen", "update-secrets", "set", "rm", "list", "get", "mount", "reload", "run"]
STORE_COMMANDS = ["keygen", "update-secrets", "set", "rm", "list", "get"]


def test_main_help():
    with CliSandbox() as sb:
        for args in (["--help"], ["-h"], ["help"]):
            p = sb.run(args)
            out = p.stdout.decode()
            check(out.startswith("usage: secretfs"), "%s: no usage line" % args)
            check(p.stderr == b"", "%s wrote to stderr" % args)
            for c in COMMANDS:
                check(re.search(r"^  %s\b" % re.escape(c), out, re.M),
                      "%s does not list the command %s" % (args, c))
            for opt in ("--store", "--key-file", "--config", "SECRETFS_STORE",
                        "SECRETFS_KEY_FILE", "SECRETFS_CONFIG", "--version"):
                check(opt in out, "%s does not mention %s" % (args, opt))
            flat = " ".join(out.split())
            for code, what in (("0", "success"), ("1", "operational failure"),
                               ("2", "usage error")):
                check(re.search(r"\b%s %s" % (code, what), flat),
                      "main help does not document exit code %s (%s)" % (code, what))


def pkg_version(module):
    p = subprocess.run(["pkg-config", "--modversion", module], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def test_version():
    with CliSandbox() as sb:
        for args in (["--version"], ["version"]):
            p = sb.run(args)
            lines = p.stdout.decode().splitlines()
            check(len(lines) == 4, "%s printed %r" % (args, p.stdout))
            check(re.fullmatch(r"secretfs \d+\.\d+\.\d+", lines[0]), "%s: %r" % (args, lines[0]))
            # the libraries as loaded: they match what the build found
            for line, lib, module in ((lines[1], "libfuse", "fuse3"),
                                      (lines[2], "libsodium", "libsodium")):
                want = pkg_version(module)
                check(line == "%s %s" % (lib, want), "%s: %r, but pkg-config says %s %s"
                      % (args, line, module, want))
            if os.geteuid() == 0 and os.path.exists("/dev/fuse"):
                m = re.fullmatch(r"kernel FUSE protocol (\d+)\.(\d+)", lines[3])
                check(m and m.group(1) == "7" and int(m.group(2)) >= 26,
                      "%s as root: %r" % (args, lines[3]))
            else:
                check(lines[3].startswith("kernel FUSE protocol unknown: "), repr(lines[3]))
            with open("/proc/self/mountinfo") as f:
                check("secretfs-probe" not in f.read(), "the probe mount was left mounted")


def test_command_help():
    with CliSandbox() as sb:
        # help must work before, and without, a readable config, key or store
        env = sb.env_with(SECRETFS_CONFIG=os.path.join(sb.dir, "missing.ini"))
        for c in COMMANDS:
            for flag in ("--help", "-h"):
                p = sb.run([c, flag], env=env)
                out = p.stdout.decode()
                check(out.startswith("usage: secretfs %s" % c),
                      "%s %s: stdout does not start with its usage line" % (c, flag))
                check(p.stderr == b"", "%s %s wrote to stderr" % (c, flag))
        out = sb.run(["update-secrets", "--help"]).stdout.decode()
        for opt in ("--secrets", "--secrets-file", "--secret-mount", "--overwrite",
                    "--ignore-empty-secrets"):
            check(opt in out, "update-secrets --help does not document %s" % opt)
        check("--from-file" in sb.run(["set", "--help"]).stdout.decode(),
              "set --help does not document --from-file")
        check("--json" in sb.run(["list", "--help"]).stdout.decode(),
              "list --help does not document --json")
        check(not os.path.exists(sb.store), "a --help created the store")


def test_usage_errors():
    with CliSandbox() as sb:
        p = sb.run([], rc=2)
        check(b"usage:" in p.stderr and p.stdout == b"", "no arguments: usage not on stderr")
        p = sb.fails(["frobnicate"], 2, "frobnicate")
        check(p.stdout == b"", "unknown command wrote to stdout")
        sb.fails(["--frobnicate"], 2)
        for c in COMMANDS:
            sb.fails([c, "--no-such-option"], 2, "secretfs %s --help" % c)
        for args in (["get"], ["get", "A", "B"], ["set"], ["set", "A", "B"], ["rm"],
                     ["list", "extra"], ["keygen", "a", "b"],
                     ["update-secrets", "A=1"], ["update-secrets", "--secrets"],
                     ["update-secrets", "--secrets-file", "a", "--secrets-file", "b"],
                     ["list", "--store"], ["get", "--key-file"], ["set", "A", "--from-file"]):
            p = sb.fails(args, 2, "--help")
            check(p.stdout == b"", "%s: a usage error wrote to stdout" % args)
        # a wrong number of operands says what was expected
        for args, needle in ((["get"], "NAME"), (["get", "A", "B"], "NAME"), (["set"], "NAME"),
                             (["rm"], "NAME"), (["list", "extra"], "'extra'"),
                             (["keygen", "a", "b"], "PATH"), (["update-secrets", "A=1"],
                                                               "'A=1'")):
            sb.fails(args, 2, needle)
        check(not os.path.exists(sb.store), "a usage error created the store")


if __name__ == "__main__":
    run_all(test_main_help, test_version, test_command_help, test_usage_errors)
