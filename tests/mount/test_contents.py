#!/usr/bin/python3
"""What the mount shows: one regular file per secret with its name, exact size, exact bytes
and mtime = the secret's `updated` time; the hostile-values table byte for byte; `--only`
and `[mount] only`.  Every check runs in both cache modes."""
import os
import stat
import time

from harness import (CACHE_MODES, Sandbox, check, errno_of, expected_listing,
                     hostile_values, is_mounted, list_json, need_fuse, read_bytes, run_all)

EXTRA = {
    "db.password": b"not a shell name\n",
    "api-key": b"k-123",
    "bin-nul": b"\x00a\x00b\x00",
    "big": bytes(range(256)) * 1200,   # 300 KiB: several kernel read requests
    "UPDATED_LATER": b"v1",
}


def build_store(sb):
    # the CLI refuses empty values by design, so H_EMPTY cannot be stored
    values = {k: v for k, v in hostile_values().items() if v}
    values.update(EXTRA)
    sb.set_secrets(values)
    time.sleep(1.1)                     # so `updated` differs from `created` and from others
    values["UPDATED_LATER"] = b"version two"
    sb.set_secrets({"UPDATED_LATER": values["UPDATED_LATER"]})
    time.sleep(1.1)                     # so the mount's load time differs from every mtime
    return values


def check_tree(sb, mnt, values, listed, mode):
    names = sorted(os.listdir(mnt))
    check(names == expected_listing(values),
          "cache=%s: listing differs: missing %s, extra %s" % (
              mode, sorted(set(expected_listing(values)) - set(names)),
              sorted(set(names) - set(expected_listing(values)))))
    loaded_at = int(sb.status(mnt)["loaded_at"])
    inodes = {e.name: e.inode() for e in os.scandir(mnt)}
    for name, value in sorted(values.items()):
        path = os.path.join(mnt, name)
        st = os.stat(path)
        check(stat.S_ISREG(st.st_mode), "cache=%s: %s is not a regular file" % (mode, name))
        check(st.st_size == len(value), "cache=%s: %s st_size %d, want %d" % (
            mode, name, st.st_size, len(value)))
        check(listed[name]["size"] == len(value), "list --json size of %s" % name)
        check(int(st.st_mtime) == listed[name]["updated"],
              "cache=%s: %s mtime %d != updated %d from list --json" % (
                  mode, name, int(st.st_mtime), listed[name]["updated"]))
        check(st.st_ino == inodes[name], "cache=%s: %s inode differs between readdir and "
              "stat" % (mode, name))
        got = read_bytes(path)
        check(got == value, "cache=%s: %s bytes differ (%d bytes read, %d stored)" % (
            mode, name, len(got), len(value)))
        check(read_bytes(path) == value, "cache=%s: %s differs on a second read" % (mode, name))
    later = os.stat(os.path.join(mnt, "UPDATED_LATER")).st_mtime
    check(listed["UPDATED_LATER"]["updated"] != listed["UPDATED_LATER"]["created"],
          "test setup: UPDATED_LATER was not updated after creation")
    check(int(later) != loaded_at and int(os.stat(os.path.join(mnt, "H_SQUOTE")).st_mtime)
          != int(later), "cache=%s: mtimes do not tell secrets apart (all the load time?)"
          % mode)
    # reads at offsets, small and across the end
    big = values["big"]
    fd = os.open(os.path.join(mnt, "big"), os.O_RDONLY)
    try:
        for off, n in ((0, 1), (1, 4096), (4095, 2), (131071, 70000), (len(big) - 3, 100),
                       (len(big), 10), (len(big) + 5000, 10)):
            got = os.pread(fd, n, off)
            check(got == big[off:off + n], "cache=%s: pread(%d, %d) of big returned %d wrong "
                  "bytes" % (mode, n, off, len(got)))
    finally:
        os.close(fd)
    # the views' sizes are exact too
    for view in (".env", ".env.json", ".status"):
        path = os.path.join(mnt, view)
        check(os.stat(path).st_size == len(read_bytes(path)),
              "cache=%s: %s st_size differs from its length" % (mode, view))
    for missing in ("NOPE", "h_squote", "H_SQUOTE ", ".env.bak"):
        for _ in range(2):   # the second one may come from the kernel's negative cache
            check(errno_of(os.stat, os.path.join(mnt, missing)) == "ENOENT",
                  "cache=%s: stat of absent name %r is not ENOENT" % (mode, missing))
    st = sb.status(mnt)
    check(st.get("cache") == mode, "cache=%s: .status says cache=%s" % (mode, st.get("cache")))
    check(st.get("secrets") == str(len(values)), "cache=%s: .status secrets=%s, want %d" % (
        mode, st.get("secrets"), len(values)))


def test_contents_both_modes():
    with Sandbox() as sb:
        values = build_store(sb)
        listed = list_json(sb)
        check(sorted(listed) == sorted(values), "list --json does not list every secret")
        env = dict(sb.env)
        for k in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
            env.pop(k, None)
        for mode in CACHE_MODES:
            mnt, _ = sb.mount(sb.mountpoint("mnt-" + mode), ["-o", "cache=" + mode], env=env)
            check_tree(sb, mnt, values, listed, mode)


ONLY = ["H_SQUOTE", "db.password", "LIVEKIT_URL"]


def check_only(sb, mnt, values, mode, how):
    names = sorted(os.listdir(mnt))
    check(names == expected_listing(ONLY), "%s cache=%s: listing is %s" % (how, mode, names))
    for name in ONLY:
        check(read_bytes(os.path.join(mnt, name)) == values[name],
              "%s cache=%s: %s bytes differ" % (how, mode, name))
    for name in ("H_DQUOTE", "big", "LIVEKIT_API_KEY"):
        check(errno_of(os.stat, os.path.join(mnt, name)) == "ENOENT",
              "%s cache=%s: %s is served although not listed" % (how, mode, name))
    import json
    view = json.loads(read_bytes(os.path.join(mnt, ".env.json")))
    check(sorted(view) == sorted(ONLY), "%s cache=%s: .env.json has %s" % (
        how, mode, sorted(view)))
    env_text = read_bytes(os.path.join(mnt, ".env"))
    for name in ("H_DQUOTE", "LIVEKIT_API_KEY", "big"):
        check(name.encode() not in env_text, "%s cache=%s: .env names %s" % (how, mode, name))
    st = sb.status(mnt)
    check(st.get("secrets") == "2" and st.get("platform") == "1",
          "%s cache=%s: .status counts secrets=%s platform=%s, want 2 and 1" % (
              how, mode, st.get("secrets"), st.get("platform")))


def test_only():
    with Sandbox() as sb:
        values = {"H_SQUOTE": b"'", "H_DQUOTE": b'"', "db.password": b"pw", "big": b"x" * 9000}
        sb.set_secrets(values)
        env = dict(sb.env, LIVEKIT_URL="wss://only.example", LIVEKIT_API_KEY="only-key")
        env.pop("LIVEKIT_API_SECRET", None)
        values["LIVEKIT_URL"] = b"wss://only.example"
        for mode in CACHE_MODES:
            mnt, _ = sb.mount(sb.mountpoint("flag-" + mode),
                              ["-o", "cache=" + mode, "--only", ",".join(ONLY)], env=env)
            check_only(sb, mnt, values, mode, "--only")
        sb.write_config("[mount]\nonly = %s\n" % " ".join(ONLY))
        for mode in CACHE_MODES:
            mnt, _ = sb.mount(sb.mountpoint("cfg-" + mode), ["-o", "cache=" + mode], env=env)
            check_only(sb, mnt, values, mode, "[mount] only")
        bad = sb.mountpoint("bad")
        p = sb.run(["mount", "--only", "H_SQUOTE,../etc", bad], check_rc=False)
        check(p.returncode == 2, "--only with an invalid name exited %d, want 2" % p.returncode)
        check(b"--only" in p.stderr, "--only error does not say what was wrong")
        check(not is_mounted(bad), "--only with an invalid name left a mount")


if __name__ == "__main__":
    need_fuse()
    run_all(test_contents_both_modes, test_only)
