"""Reload semantics a user sees, in both cache modes: after `secretfs reload` returns 0 every new
open and read shows the new generation (new values with new sizes, added names, also after a
cached negative lookup, removed names ENOENT), surviving names keep their inode number, a
bind-mounted single file follows, the views are regenerated, the platform file is re-read,
and a plain SIGHUP and `--reload` on set, rm and update-secrets do the same."""
import json
import os

from reloadlib import (absent, bind_file, check, each_mode, run_all, need_fuse, read,
                       reload_ok, replace_values, sighup_and_wait, status)

GEN1 = {
    "DB_PASSWORD": b"short-1",
    "API_TOKEN": b"token-one-" + b"x" * 100,
    "GOING_AWAY": b"remove me",
    "STEADY": b"unchanged value",
}
GEN2 = {
    "DB_PASSWORD": b"a-much-longer-second-password-" + b"y" * 300,
    "API_TOKEN": b"t2",
    "STEADY": b"unchanged value",
    "NEW_ONE": b"fresh",
}
GEN3 = {
    "DB_PASSWORD": b"third",
    "API_TOKEN": b"token-three",
    "STEADY": b"unchanged value",
    "NEW_ONE": b"fresh, and longer now",
    "GOING_AWAY": b"back again",
}


def warm(mnt, values, extra_missing=()):
    """Reads, stats and lists everything so the kernel caches it (and misses)."""
    os.listdir(mnt)
    for name, value in values.items():
        path = os.path.join(mnt, name)
        check(read(path) == value, "%s: wrong value before reload" % name)
        check(os.stat(path).st_size == len(value), "%s: wrong size before reload" % name)
    for name in extra_missing:
        check(absent(os.path.join(mnt, name)), "%s exists before it is added" % name)
    for view in (".env", ".env.json", ".status"):
        read(os.path.join(mnt, view))


def expect(mnt, values, removed, gen, how):
    listing = set(os.listdir(mnt))
    for name, value in values.items():
        path = os.path.join(mnt, name)
        check(name in listing, "%s: missing from the listing after %s" % (name, how))
        got = read(path)
        check(got == value, "%s: read %d bytes after %s, want the new %d-byte value" % (
            name, len(got), how, len(value)))
        check(os.stat(path).st_size == len(value), "%s: stale size after %s" % (name, how))
    for name in removed:
        check(name not in listing, "%s: still listed after %s removed it" % (name, how))
        check(absent(os.path.join(mnt, name)), "%s: still there after %s removed it" % (
            name, how))
    st = status(mnt)
    check(st["generation"] == str(gen), "generation is %s after %s, want %d" % (
        st["generation"], how, gen))
    check(st["last_reload"] == "ok", "last_reload after %s: %s" % (how, st["last_reload"]))
    check(st["secrets"] == str(len(values)), "status counts %s secrets, want %d" % (
        st["secrets"], len(values)))
    env = read(os.path.join(mnt, ".env")).decode()
    doc = json.loads(read(os.path.join(mnt, ".env.json")))
    for name, value in values.items():
        check(("%s=" % name) in env, ".env lacks %s after %s" % (name, how))
        check(doc.get(name) == value.decode(), ".env.json: %s is not the new value" % name)
    for name in removed:
        check(("%s=" % name) not in env, ".env still has %s after %s" % (name, how))
        check(name not in doc, ".env.json still has %s after %s" % (name, how))


def scenario(sb, cache):
    platform = os.path.join(sb.dir, "platform.env")
    with open(platform, "w") as f:
        f.write("LIVEKIT_URL=wss://one.example\n")
    sb.write_config("[platform]\nfile = %s\n" % platform)
    sb.set_secrets(GEN1)
    mnt, pid = sb.mount(opts=["-o", "cache=%s" % cache])
    bound = bind_file(sb, os.path.join(mnt, "DB_PASSWORD"))
    check(read(bound) == GEN1["DB_PASSWORD"], "bind-mounted file: wrong value at first")
    inos = {n: os.stat(os.path.join(mnt, n)).st_ino for n in GEN1}
    warm(mnt, GEN1, extra_missing=["NEW_ONE"])
    lk = os.path.join(mnt, "LIVEKIT_URL")
    check(read(lk) == b"wss://one.example", "platform entry wrong before reload")

    # generation 2 through `secretfs reload`
    replace_values(sb, GEN2)
    with open(platform, "w") as f:
        f.write("LIVEKIT_URL=wss://second.example.org\n")
    reload_ok(sb, mnt)
    expect(mnt, GEN2, ["GOING_AWAY"], 2, "secretfs reload")
    check(read(lk) == b"wss://second.example.org", "platform file not re-read on reload")
    for name in ("DB_PASSWORD", "API_TOKEN", "STEADY"):
        check(os.stat(os.path.join(mnt, name)).st_ino == inos[name],
              "%s: inode number changed across a reload" % name)
    got = read(bound)
    check(got == GEN2["DB_PASSWORD"], "bind-mounted file read %d bytes after reload, want "
          "the new %d" % (len(got), len(GEN2["DB_PASSWORD"])))
    check(os.stat(bound).st_size == len(GEN2["DB_PASSWORD"]), "bind-mounted file: stale size")

    # generation 3 through a plain SIGHUP; a removed name comes back
    warm(mnt, GEN2, extra_missing=["GOING_AWAY"])
    replace_values(sb, GEN3)
    sighup_and_wait(mnt, pid)
    expect(mnt, GEN3, [], 3, "SIGHUP")
    check(read(bound) == GEN3["DB_PASSWORD"], "bind-mounted file stale after SIGHUP")
    for name in ("DB_PASSWORD", "API_TOKEN", "STEADY"):
        check(os.stat(os.path.join(mnt, name)).st_ino == inos[name],
              "%s: inode number changed across two reloads" % name)

    # a reload that changes nothing still succeeds and serves the same bytes
    reload_ok(sb, mnt)
    expect(mnt, GEN3, [], 4, "a no-op reload")

    # --reload on the store commands: the change is served when the command returns
    gen4 = dict(GEN3, DB_PASSWORD=b"set with --reload, a new length")
    sb.run(["set", "DB_PASSWORD", "--reload=%s" % mnt], input=gen4["DB_PASSWORD"])
    expect(mnt, gen4, [], 5, "set --reload")
    del gen4["NEW_ONE"]
    sb.run(["rm", "NEW_ONE", "--reload=%s" % mnt])
    expect(mnt, gen4, ["NEW_ONE"], 6, "rm --reload")
    gen4["FROM_IMPORT"] = b"imported"
    sb.run(["update-secrets", "--secrets", "FROM_IMPORT=imported", "--reload=%s" % mnt])
    expect(mnt, gen4, [], 7, "update-secrets --reload")
    check(read(bound) == gen4["DB_PASSWORD"], "bind-mounted file stale after set --reload")


def test():
    need_fuse()
    each_mode(scenario)


run_all(test)
