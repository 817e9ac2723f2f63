#!/usr/bin/env python3
"""The store through the CLI: wrong key, truncation, bit flips, unknown version, file mode,
temporary files, symlinked stores, and the golden store."""
import os
import random
import shutil
import stat
import sys

from harness import SRC, CliSandbox, canary, check, leaks, run_all  # noqa: E402

# what a damaged store may be called; each message also names the store file
DAMAGE = ("truncated", "not a secretfs store", "corrupted", "authentication",
          "format version", "format flags", "trailing data", "different key")
WRITERS = ((["set", "NEW"], b"new"), (["update-secrets", "--secrets", "NEW=1"], None),
           (["update-secrets", "--overwrite", "--secrets", "NEW=1"], None), (["rm", "A"], None))


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def damaged(sb, data, what):
    """Installs `data` as the store; every command must refuse it and leave it alone."""
    with open(sb.store, "wb") as f:
        f.write(data)
    p = sb.run(["list"], rc=1)
    err = p.stderr.decode(errors="replace")
    check(sb.store in err, "%s: the error does not name the store" % what)
    check(any(d in err for d in DAMAGE), "%s: unclear error: %s" % (what, err.strip()))
    check(p.stdout == b"", "%s: list printed something from a damaged store" % what)
    p = sb.run(["get", "A"], rc=1)
    check(p.stdout == b"", "%s: get printed part of a damaged store" % what)
    return err


def test_wrong_key():
    with CliSandbox() as sb:
        sb.run(["set", "A"], input=canary())
        before = sb.store_bytes()
        other = os.path.join(sb.dir, "other.key")
        sb.run(["keygen", other])
        for args, inp in [(["list"], None), (["get", "A"], None)] + list(WRITERS):
            p = sb.fails(args + ["--key-file", other], 1, sb.store, "different key",
                         input=inp)
            check(p.stdout == b"", "%s with the wrong key printed something" % args[0])
        check(sb.store_bytes() == before, "a command with the wrong key changed the store")
        check(sb.temp_files() == [], "temporary files left: %s" % sb.temp_files())


def test_truncation_and_bit_flips():
    with CliSandbox() as sb:
        sb.set_secrets({"A": canary(), "B": b"\x00\xff" * 3})
        good = sb.store_bytes()
        rnd = random.Random(2)
        messages = set()
        for n in range(len(good)):
            err = damaged(sb, good[:n], "truncated to %d bytes" % n)
            messages.add(err.split(sb.store + ": ")[-1][:40])
            check("truncated" in err, "truncation to %d bytes is not called truncation" % n)
        for off in range(len(good)):
            b = bytearray(good)
            b[off] ^= 1 << rnd.randrange(8)
            messages.add(damaged(sb, bytes(b), "a bit flip at byte %d" % off)
                         .split(sb.store + ": ")[-1][:40])
        damaged(sb, good + b"\0", "trailing byte")
        check(len(messages) >= 4, "damage is not told apart: %d distinct messages" %
              len(messages))
        # an unknown version is its own error, saying what to do
        b = bytearray(good)
        b[8] = 3
        err = damaged(sb, bytes(b), "version 3")
        check("version 3" in err and "upgrade" in err, "unknown version: %s" % err.strip())
        # writers refuse a damaged store rather than replacing it with a fresh one
        for data in (good[:len(good) // 2], bytes(b), good[:-1] + bytes([good[-1] ^ 0x80])):
            with open(sb.store, "wb") as f:
                f.write(data)
            for args, inp in WRITERS:
                sb.run(args, input=inp, rc=1)
                check(sb.store_bytes() == data, "%s replaced a damaged store" % args[0])
        check(sb.temp_files() == [], "temporary files left: %s" % sb.temp_files())
        # and the good bytes still open
        with open(sb.store, "wb") as f:
            f.write(good)
        check(set(sb.names()) == {"A", "B"}, "the restored store does not open")


def test_mode_and_temp_files():
    with CliSandbox() as sb:
        for umask in (0, 0o022):
            if os.path.exists(sb.store):
                os.unlink(sb.store)
            sb.run(["set", "A"], input=b"1", umask=umask)
            check(mode_of(sb.store) == 0o600, "umask %03o: new store is %04o, not 0600" % (
                umask, mode_of(sb.store)))
        os.chmod(sb.store, 0o644)
        sb.run(["update-secrets", "--secrets", "B=2"], umask=0)
        check(mode_of(sb.store) == 0o644, "a rewrite changed the store's mode 0644 to %04o" %
              mode_of(sb.store))
        ino = os.stat(sb.store).st_ino
        sb.run(["rm", "B"])
        check(os.stat(sb.store).st_ino != ino, "the store was rewritten in place, not replaced")
        lock = sb.store + ".lock"
        check(not os.path.exists(lock) or mode_of(lock) & 0o077 == 0,
              "the lock file is %04o" % mode_of(lock))
        check(sb.temp_files() == [], "temporary files left: %s" % sb.temp_files())
        # a store directory that does not exist yet is created private
        deep = os.path.join(sb.dir, "var", "lib", "s.store")
        sb.run(["set", "A", "--store", deep], input=b"1")
        check(mode_of(os.path.dirname(deep)) == 0o700, "the new store directory is not 0700")
        # a failed write (over [store] max_store_size) leaves nothing behind
        sb.write_config("max_store_size = 10\n")
        before = sb.store_bytes()
        sb.fails(["set", "BIG"], 1, "max_store_size", "nothing was written", input=b"x" * 11)
        check(sb.store_bytes() == before, "a refused write changed the store")
        check(sb.temp_files() == [], "temporary files left: %s" % sb.temp_files())


def test_store_paths():
    with CliSandbox() as sb:
        value = canary()
        # the store may be a symlink (operators link it): writes replace the target
        real_dir = os.path.join(sb.dir, "real")
        os.mkdir(real_dir)
        real = os.path.join(real_dir, "s.store")
        sb.run(["set", "A", "--store", real], input=value)
        os.symlink(real, sb.store)
        sb.run(["set", "B"], input=b"2")
        check(os.path.islink(sb.store), "writing replaced the store's symlink")
        check(sb.names(["--store", real]) == {"A": len(value), "B": 1},
              "the write did not reach the symlink's target")
        sb.run(["update-secrets", "--secrets", "C=3"])
        check(os.path.islink(sb.store) and sb.get("A") == value, "symlinked store broken")
        check(sb.temp_files() == [] and sb.temp_files(real_dir) == [],
              "temporary files left next to the link or its target")
        # the value is encrypted at rest
        for path in [real] + [os.path.join(real_dir, f) for f in os.listdir(real_dir)]:
            with open(path, "rb") as f:
                check(leaks(f.read()) == 0, "%s holds a value in plain text" % path)
        # a directory is not a store
        sb.fails(["list", "--store", sb.dir], 1, sb.dir, "directory")
        # a missing store: readers say how to create one; writers create it
        missing = os.path.join(sb.dir, "missing.store")
        for args in (["list"], ["get", "A"]):
            sb.fails(args + ["--store", missing], 1, missing, "update-secrets")
        check(not os.path.exists(missing), "a reader created the store")
        sb.fails(["rm", "A", "--store", missing], 1, "A")
        sb.run(["list", "--store", missing], rc=1)


def test_golden_store():
    with CliSandbox() as sb:
        key = os.path.join(sb.dir, "golden.key")
        store = os.path.join(sb.dir, "golden.store")
        shutil.copy(os.path.join(SRC, "data", "golden.key"), key)
        os.chmod(key, 0o600)
        shutil.copy(os.path.join(SRC, "data", "golden.store"), store)
        args = ["--key-file", key, "--store", store]
        names = sb.names(args)
        check(len(names) > 0, "the golden store lists no secrets")
        for name, size in names.items():
            check(len(sb.get(name, args)) == size, "golden %s: get and list disagree" % name)


if __name__ == "__main__":
    run_all(test_wrong_key, test_truncation_and_bit_flips, test_mode_and_temp_files,
            test_store_paths, test_golden_store)
