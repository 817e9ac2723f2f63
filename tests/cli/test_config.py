#!/usr/bin/env python3
"""Where the store and key come from (flag > environment > [store] in the config file >
default), which config file is read, and every config error naming FILE:LINE."""
import os
import sys

from harness import CliSandbox, check, run_all  # noqa: E402

DEFAULT_CONFIG = "/etc/secretfs/secretfs.ini"
DEFAULT_STORE = "/var/lib/secretfs/secrets.store"
DEFAULT_KEY = "/etc/secretfs/master.key"


def stores(sb):
    """Three stores under the sandbox key, each holding WHICH=its own name."""
    paths = {}
    for which in ("flag", "env", "ini"):
        paths[which] = os.path.join(sb.dir, "%s.store" % which)
        sb.run(["set", "WHICH", "--store", paths[which]], input=which.encode())
    return paths


def ini(sb, text, name="secretfs.ini"):
    return sb.write(name, text, 0o644)


def which(sb, args=(), env=None):
    return sb.run(["get", "WHICH"] + list(args), env=env).stdout.decode()


def test_store_precedence():
    with CliSandbox() as sb:
        s = stores(sb)
        ini(sb, "[store]\npath = %s\nkey_file = %s\n" % (s["ini"], sb.key))
        check(which(sb) == "ini", "[store] path was not used")
        env = sb.env_with(SECRETFS_STORE=s["env"])
        check(which(sb, env=env) == "env", "SECRETFS_STORE did not win over the config")
        check(which(sb, ["--store", s["flag"]], env=env) == "flag",
              "--store did not win over SECRETFS_STORE")
        check(which(sb, ["--store", s["flag"]]) == "flag", "--store did not win over [store]")
        check(which(sb, env=sb.env_with(SECRETFS_STORE="")) == "ini",
              "an empty SECRETFS_STORE was not ignored")
        # writers resolve the same way
        sb.run(["set", "W"], input=b"1", env=env)
        check("W" in sb.names(["--store", s["env"]]) and
              "W" not in sb.names(["--store", s["ini"]]), "set wrote to the wrong store")
        # with nothing set, the default path (only read here, never written)
        ini(sb, "[store]\nkey_file = %s\n" % sb.key)
        p = sb.run(["list"], rc=1)
        check(DEFAULT_STORE.encode() in p.stderr, "the default store path is not used")


def test_key_precedence():
    with CliSandbox() as sb:
        s = stores(sb)
        missing = {w: os.path.join(sb.dir, "missing-%s.key" % w) for w in ("flag", "env", "ini")}
        ini(sb, "[store]\npath = %s\nkey_file = %s\n" % (s["ini"], missing["ini"]))
        sb.fails(["list"], 1, missing["ini"], "no such key file")
        check(which(sb, env=sb.env_with(SECRETFS_KEY_FILE=sb.key)) == "ini",
              "SECRETFS_KEY_FILE did not win over [store] key_file")
        env = sb.env_with(SECRETFS_KEY_FILE=missing["env"])
        sb.fails(["list"], 1, missing["env"], env=env)
        check(which(sb, ["--key-file", sb.key], env=env) == "ini",
              "--key-file did not win over SECRETFS_KEY_FILE")
        p = sb.run(["list", "--key-file", missing["flag"]], env=env, rc=1)
        check(missing["flag"].encode() in p.stderr and missing["env"].encode() not in p.stderr,
              "--key-file did not win in the error either")
        if not os.path.exists(DEFAULT_KEY):
            ini(sb, "[store]\npath = %s\n" % s["ini"])
            sb.fails(["list"], 1, DEFAULT_KEY, "keygen")


def test_which_config_file():
    with CliSandbox() as sb:
        s = stores(sb)
        c_flag = ini(sb, "[store]\npath = %s\nkey_file = %s\n" % (s["flag"], sb.key), "f.ini")
        c_env = ini(sb, "[store]\npath = %s\nkey_file = %s\n" % (s["env"], sb.key), "e.ini")
        env = sb.env_with(SECRETFS_CONFIG=c_env)
        check(which(sb, env=env) == "env", "SECRETFS_CONFIG was not read")
        check(which(sb, ["--config", c_flag], env=env) == "flag",
              "--config did not win over SECRETFS_CONFIG")
        # a config file named explicitly must exist
        missing = os.path.join(sb.dir, "missing.ini")
        common = ["--store", s["ini"], "--key-file", sb.key]
        sb.fails(["list", "--config", missing] + common, 1, missing)
        sb.fails(["list"] + common, 1, missing, env=sb.env_with(SECRETFS_CONFIG=missing))
        sb.fails(["list", "--config", sb.dir] + common, 1, sb.dir, "directory")
        newkey = os.path.join(sb.dir, "new.key")
        sb.fails(["keygen", newkey, "--config", missing], 1, missing)
        check(not os.path.exists(newkey), "keygen wrote a key despite a missing config")
        # the default config file may be missing
        if os.path.exists(DEFAULT_CONFIG):
            print("note: %s exists; not testing its absence" % DEFAULT_CONFIG)
        else:
            for env in (sb.env_with(SECRETFS_CONFIG=None), sb.env_with(SECRETFS_CONFIG="")):
                check(which(sb, common, env=env) == "ini",
                      "a missing default config file is an error")


def test_config_errors_name_file_and_line():
    with CliSandbox() as sb:
        s = stores(sb)
        head = "[store]\npath = %s\nkey_file = %s\n" % (s["ini"], sb.key)
        long_value = "x" * (196 - len("only = "))
        cases = [
            (head + "[bogus]\nkey = 1\n", 4, "unknown section [bogus]"),
            (head + "[bogus]\n", 4, "unknown section [bogus]"),      # even with no keys
            (head + "[mount]\n[Store]\n", 5, "unknown section [Store]"),
            (head + "bogus = 1\n", 4, "unknown key 'bogus'"),
            ("# comment\n" + head + "path = /x\n", 5, "'path' is set twice"),
            (head + "[mount]\ncache = none\n[store]\nkey_file = /x\n", 7, "set twice"),
            (head + "[mount]\nonly = %sy\n" % long_value, 5, "197 bytes"),
            (head + ";%s\n" % ("c" * 196), 4, "197 bytes"),
            (head + "[mount]\nonly = A\x00B\n", 5, "NUL"),
            (head + "  ; an indented comment is fine\n  only = x\n", 5, "whitespace"),
            (head + "[mount]\n\tcache = none\n", 5, "whitespace"),
            (head + "just words\n", 4, "not a [section] or key = value"),
            ("path = /x\n" + head, 1, "outside any section"),
            ("[store\n" + head, 1, "not a [section]"),
            (head + "[mount]junk\n", 4, "after the ']'"),
            (head + "[secret:%s]\nmode = 0400\n" % ("A" * 50), 4, "too long"),
            ("[store]\npath =\nkey_file = %s\n" % sb.key, 2, "path is empty"),
            (head + "[mount]\nonly = a\x0bb\n", 5, "control character"),
            (head + "[mount]\nonly = a\rb\n", 5, "control character"),
            (head + "[mount]\ncache = sometimes\n", 5, "kernel or none"),
            (head + "max_secret_size = lots\n", 4, "not a size"),
            (head + "[secret:.x]\nmode = 0400\n", 4, "[secret:.x]"),
        ]
        before = sb.store_bytes(s["ini"])
        for body, line, needle in cases:
            ini(sb, body)
            where = "%s:%d:" % (sb.config, line)
            sb.fails(["list"], 1, where, needle)
            sb.fails(["set", "NEW"], 1, where, input=b"v")
            p = sb.fails(["list", "--config", sb.config, "--store", s["flag"]], 1, where)
            check(p.stdout == b"", "a config error still listed the store")
        check(sb.store_bytes(s["ini"]) == before, "a config error let a write through")
        # what inih reads correctly is accepted: comments, CRLF, a BOM, 196-byte lines
        pad = "/" * (196 - len("path = ") - len(s["ini"]))
        for body in ("# c\n; c\n[store] ; c\npath = %s ; c\nkey_file = %s\n" % (s["ini"], sb.key),
                     head.replace("\n", "\r\n"),
                     "\ufeff" + head,
                     "[store]\npath = %s%s\nkey_file = %s\n;%s\n" % (pad, s["ini"], sb.key,
                                                                     "c" * 195),
                     head + "\n\n[mount]\ncache = none\n[platform]\n[secret:ok]\nmode = 0440\n"):
            ini(sb, body)
            check(which(sb) == "ini", "a valid config was misread: %r" % body[:60])


if __name__ == "__main__":
    run_all(test_store_precedence, test_key_precedence, test_which_config_file,
            test_config_errors_name_file_and_line)
