#!/usr/bin/env python3
"""`secretfs keygen` and the refusals of key loading, through the real binary."""
import base64
import os
import re
import stat
import sys

from harness import CliSandbox, canary, check, run_all  # noqa: E402

KEY_RE = re.compile(rb"secretfs-key-v1:[A-Za-z0-9+/]{43}=\n")


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_keygen_creates_private_key():
    with CliSandbox() as sb:
        for umask in (0, 0o022, 0o077):
            path = os.path.join(sb.dir, "k-%03o" % umask)
            p = sb.run(["keygen", path], umask=umask)
            check(mode_of(path) & 0o077 == 0 and mode_of(path) & 0o600 == 0o600,
                  "umask %03o: key mode is %04o, not 0600" % (umask, mode_of(path)))
            with open(path, "rb") as f:
                data = f.read()
            check(KEY_RE.fullmatch(data), "the key file is not one secretfs-key-v1 line")
            check(len(base64.b64decode(data[16:-1])) == 32, "the key is not 32 bytes")
            check(path.encode() in p.stdout, "keygen does not say where it wrote the key")
            check(data[16:-1] not in p.stdout + p.stderr, "keygen printed the key")
        keys = set()
        for i in range(3):
            path = os.path.join(sb.dir, "r%d" % i)
            sb.run(["keygen", path])
            keys.add(open(path, "rb").read())
        check(len(keys) == 3, "keygen wrote the same key twice")
        # without PATH it writes the key file the other commands use
        target = os.path.join(sb.dir, "via-flag.key")
        sb.run(["keygen", "--key-file", target])
        check(os.path.isfile(target), "keygen --key-file did not write that file")
        target = os.path.join(sb.dir, "via-env.key")
        sb.run(["keygen"], env=sb.env_with(SECRETFS_KEY_FILE=target))
        check(os.path.isfile(target), "keygen did not write $SECRETFS_KEY_FILE")
        # a missing parent directory is created private
        deep = os.path.join(sb.dir, "new", "dir", "master.key")
        sb.run(["keygen", deep])
        check(mode_of(os.path.dirname(deep)) == 0o700, "keygen's new directory is not 0700")
        # and the new key works
        sb.run(["set", "K", "--key-file", deep], input=b"v")
        check(sb.get("K", ["--key-file", deep]) == b"v", "a fresh key does not round-trip")


def test_keygen_never_overwrites():
    with CliSandbox() as sb:
        before = open(sb.key, "rb").read()
        sb.fails(["keygen", sb.key], 1, sb.key, "already exists")
        check(open(sb.key, "rb").read() == before, "keygen changed an existing key")
        other = sb.write("other-file", b"not a key\n", 0o644)
        sb.fails(["keygen", other], 1, "already exists")
        check(open(other, "rb").read() == b"not a key\n", "keygen overwrote a file")
        # symlinks are never followed, dangling or not
        dangling = os.path.join(sb.dir, "dangling")
        target = os.path.join(sb.dir, "target-of-dangling")
        os.symlink(target, dangling)
        sb.fails(["keygen", dangling], 1, dangling)
        check(not os.path.exists(target), "keygen created a key through a dangling symlink")
        link = os.path.join(sb.dir, "link")
        os.symlink(other, link)
        sb.fails(["keygen", link], 1, link)
        check(open(other, "rb").read() == b"not a key\n", "keygen wrote through a symlink")
        sb.fails(["keygen", sb.dir], 1, sb.dir)  # a directory is not overwritten either


def test_key_refusals():
    with CliSandbox() as sb:
        value = canary("key")
        sb.run(["set", "A"], input=value)
        good = open(sb.key, "rb").read()
        store_before = sb.store_bytes()
        b64 = good[16:-1].decode()

        def refused(path, *needles):
            for args, inp in ((["list"], None), (["get", "A"], None), (["set", "B"], b"x"),
                              (["rm", "A"], None), (["update-secrets", "--secrets", "C=1"],
                                                    None)):
                p = sb.fails(args + ["--key-file", path], 1, path, *needles, input=inp)
                check(p.stdout == b"", "%s with a refused key wrote to stdout" % args[0])
                check(b64.encode() not in p.stderr, "an error message quotes the key")
            check(sb.store_bytes() == store_before, "a refused key changed the store")

        # permissions: any group/other bit is refused with the chmod fix
        for mode in (0o640, 0o604, 0o620, 0o602, 0o644, 0o660, 0o666, 0o610, 0o601):
            path = sb.write("k%03o" % mode, good, mode)
            refused(path, "mode %04o" % mode, "chmod 600")
        # stricter than 0600 is fine
        ro = sb.write("k400", good, 0o400)
        check(sb.get("A", ["--key-file", ro]) == value, "a 0400 key is refused")
        # symlinks are refused, with the fix
        link = os.path.join(sb.dir, "key-link")
        os.symlink(sb.key, link)
        refused(link, "symlink", "--key-file")
        # missing: say how to create one
        refused(os.path.join(sb.dir, "nope.key"), "no such key file", "keygen")
        # not a regular file
        refused(sb.dir, "directory")
        # content: wrong length, prefix, encoding, decoded size, line ending
        other_b64 = base64.b64encode(os.urandom(31)).decode()  # 44 chars, 31 bytes
        bad = {
            "empty": b"",
            "short": good[:-2] + b"\n",
            "long": good + b"\n",
            "no-newline": good[:-1] + b"=",
            "crlf": good[:-2] + b"\r\n",
            "prefix": b"secretfs-key-v2:" + b64.encode() + b"\n",
            "raw": os.urandom(61),
            "not-base64": b"secretfs-key-v1:" + b"!" + b64[1:].encode() + b"\n",
            "31-bytes": b"secretfs-key-v1:" + other_b64.encode() + b"\n",
        }
        hints = {"empty": "restore", "short": "restore", "long": "restore",
                 "no-newline": "newline", "crlf": "", "prefix": "secretfs-key-v1",
                 "raw": "secretfs-key-v1", "not-base64": "base64", "31-bytes": "31 bytes"}
        for what, data in bad.items():
            path = sb.write("bad-%s.key" % what, data, 0o600)
            refused(path, hints[what])
        # a well-formed but different key: the store says so
        other = os.path.join(sb.dir, "other.key")
        sb.run(["keygen", other])
        sb.fails(["list", "--key-file", other], 1, sb.store, "different key")
        check(sb.store_bytes() == store_before, "the store changed")


if __name__ == "__main__":
    run_all(test_keygen_creates_private_key, test_keygen_never_overwrites, test_key_refusals)
