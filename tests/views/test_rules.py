#!/usr/bin/python3
"""The rules every view follows, checked on the dotenv views in a real mount, both cache
modes: a secret with its own owner or mode is in none of them, `--only` limits them, their
sizes are exact, and a reload shows the new generation in each (the kernel is told)."""
import os
import stat

from viewlib import CACHE_MODES, Sandbox, check, need_fuse, read_bytes, run_all

VIEWS = (".env.python", ".env.node", ".env.go", ".env.docker")


def line_of(name, text):
    return any(l.startswith(name.encode() + b"=") for l in text.split(b"\n"))


def views(mnt):
    out = {}
    for v in VIEWS:
        path = os.path.join(mnt, v)
        out[v] = read_bytes(path)
        st = os.stat(path)
        check(st.st_size == len(out[v]), "%s: st_size %d, read %d" % (v, st.st_size,
                                                                       len(out[v])))
        check(stat.S_IMODE(st.st_mode) == 0o400, "%s: mode %o" % (v, stat.S_IMODE(st.st_mode)))
    return out


def test_own_mode_and_only():
    with Sandbox() as sb:
        vals = {"SHARED": b"shared-" + os.urandom(6).hex().encode(),
                "PRIVATE": b"private-" + os.urandom(6).hex().encode(),
                "OTHER": b"other-" + os.urandom(6).hex().encode()}
        sb.set_secrets(vals)
        sb.write_config("[secret:PRIVATE]\nmode = 0440\n")
        for mode in CACHE_MODES:
            mnt, _ = sb.mount(sb.mountpoint("mnt-" + mode), ["-o", "cache=" + mode])
            for v, text in views(mnt).items():
                check(line_of("SHARED", text) and line_of("OTHER", text),
                      "cache=%s %s: a default-mode secret is missing" % (mode, v))
                check(not line_of("PRIVATE", text) and vals["PRIVATE"] not in text,
                      "cache=%s %s: holds PRIVATE, which has its own mode" % (mode, v))
            only, _ = sb.mount(sb.mountpoint("only-" + mode),
                               ["-o", "cache=" + mode, "--only", "OTHER"])
            for v, text in views(only).items():
                check(line_of("OTHER", text) and not line_of("SHARED", text)
                      and vals["SHARED"] not in text,
                      "cache=%s --only OTHER: %s shows more than OTHER" % (mode, v))


def test_reload():
    with Sandbox() as sb:
        sb.set_secrets({"A": b"first-value", "GONE": b"gone-value"})
        for mode in CACHE_MODES:
            sb.set_secrets({"A": b"first-value", "GONE": b"gone-value"})
            mnt, _ = sb.mount(sb.mountpoint("mnt-" + mode), ["-o", "cache=" + mode])
            before = views(mnt)
            sb.set_secrets({"A": b"second, longer value"})
            sb.run(["rm", "GONE"])
            sb.run(["reload", mnt])
            after = views(mnt)
            for v in VIEWS:
                check(before[v] != after[v] and b"second, longer value" in after[v]
                      and b"first-value" not in after[v] and b"gone-value" not in after[v],
                      "cache=%s %s: not the new generation after reload" % (mode, v))


if __name__ == "__main__":
    need_fuse()
    run_all(test_own_mode_and_only, test_reload)
