#!/usr/bin/python3
"""Platform entries: LIVEKIT_* from the daemon's environment and from `[platform] file` (whose
values win and which is re-read on reload); an unset variable is simply absent (logged once);
the store can never shadow the platform (the CLI refuses reserved names, and a stored name
that becomes reserved through `[platform] reserved_prefix` is not served).  Both cache modes."""
import json
import os
import signal

from harness import (CACHE_MODES, Sandbox, check, errno_of, expected_listing, is_mounted,
                     need_fuse, read_bytes, run_all, start_foreground, wait_for)


def clean_env(sb, **extra):
    env = dict(sb.env)
    for k in list(env):
        if k.startswith("LIVEKIT_") or k.startswith("APP_"):
            del env[k]
    env.update(extra)
    return env


def check_served(mnt, want, absent, what):
    for n, v in want.items():
        p = os.path.join(mnt, n)
        check(os.path.exists(p), "%s: %s is not served" % (what, n))
        check(os.stat(p).st_size == len(v), "%s: %s st_size differs" % (what, n))
        check(read_bytes(p) == v, "%s: %s has the wrong bytes" % (what, n))
    for n in absent:
        check(errno_of(os.stat, os.path.join(mnt, n)) == "ENOENT",
              "%s: %s is served but must be absent" % (what, n))
    view = json.loads(read_bytes(os.path.join(mnt, ".env.json")))
    for n, v in want.items():
        check(view.get(n) == v.decode(), "%s: .env.json has the wrong %s" % (what, n))
    for n in absent:
        check(n not in view, "%s: .env.json holds %s" % (what, n))
    env_text = read_bytes(os.path.join(mnt, ".env"))
    for n in absent:
        check(b"export %s=" % n.encode() not in env_text, "%s: .env exports %s" % (what, n))


def test_from_environment():
    with Sandbox() as sb:
        sb.set_secrets({"APP_TOKEN": b"app token"})
        env = clean_env(sb, LIVEKIT_URL="wss://lk.example:7880", LIVEKIT_API_KEY="APIkey123")
        want = {"LIVEKIT_URL": b"wss://lk.example:7880", "LIVEKIT_API_KEY": b"APIkey123",
                "APP_TOKEN": b"app token"}
        for mode in CACHE_MODES:
            mnt = sb.mountpoint("mnt-" + mode)
            log = os.path.join(sb.dir, "log-" + mode)
            p = start_foreground(sb, mnt, ["-o", "cache=" + mode], env=env, log=log)
            what = "env cache=%s" % mode
            check(sorted(os.listdir(mnt)) == expected_listing(want),
                  "%s: listing is %s" % (what, sorted(os.listdir(mnt))))
            check_served(mnt, want, ["LIVEKIT_API_SECRET"], what)
            st = sb.status(mnt)
            check(st.get("platform") == "2" and st.get("secrets") == "1",
                  "%s: .status platform=%s secrets=%s, want 2 and 1" % (
                      what, st.get("platform"), st.get("secrets")))
            os.kill(p.pid, signal.SIGHUP)
            wait_for(lambda: sb.status(mnt).get("generation") == "2", "%s: reload" % what)
            check_served(mnt, want, ["LIVEKIT_API_SECRET"], what + " after reload")
            os.kill(p.pid, signal.SIGTERM)
            p.wait(timeout=10)
            text = read_bytes(log)
            check(text.count(b"LIVEKIT_API_SECRET") == 1,
                  "%s: the unset LIVEKIT_API_SECRET is logged %d times, want once" % (
                      what, text.count(b"LIVEKIT_API_SECRET")))
            check(b"APIkey123" not in text and b"lk.example" not in text,
                  "%s: a platform value appears in the daemon's log" % what)


def write_platform_file(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def test_from_file():
    with Sandbox() as sb:
        sb.set_secrets({"APP_TOKEN": b"app token"})
        pf = os.path.join(sb.dir, "platform.env")
        sb.write_config("[platform]\nfile = %s\n" % pf)
        env = clean_env(sb, LIVEKIT_URL="wss://from-env", LIVEKIT_API_KEY="key-from-env")
        for mode in CACHE_MODES:
            write_platform_file(pf, "# written by the platform\nLIVEKIT_URL=wss://from-file\n"
                                "LIVEKIT_API_SECRET='s3cret $NOT_EXPANDED # kept'\n")
            mnt, _ = sb.mount(sb.mountpoint("mnt-" + mode), ["-o", "cache=" + mode], env=env)
            what = "file cache=%s" % mode
            check_served(mnt, {"LIVEKIT_URL": b"wss://from-file",
                               "LIVEKIT_API_KEY": b"key-from-env",
                               "LIVEKIT_API_SECRET": b"s3cret $NOT_EXPANDED # kept",
                               "APP_TOKEN": b"app token"}, [], what)
            check(sb.status(mnt).get("platform") == "3", "%s: .status platform != 3" % what)
            # re-read on every reload
            write_platform_file(pf, "LIVEKIT_API_SECRET=rotated\n")
            sb.run(["reload", mnt])
            check_served(mnt, {"LIVEKIT_URL": b"wss://from-env",
                               "LIVEKIT_API_KEY": b"key-from-env",
                               "LIVEKIT_API_SECRET": b"rotated"}, [], what + " after reload")
            # a file naming a non-platform variable is rejected; the old entries keep serving
            write_platform_file(pf, "LIVEKIT_API_SECRET=again\nDATABASE_URL=nope\n")
            r = sb.run(["reload", mnt], check_rc=False)
            check(r.returncode == 1, "%s: reload with a bad platform file exited %d" % (
                what, r.returncode))
            check(b"DATABASE_URL" in r.stderr and b"platform.env:2" in r.stderr,
                  "%s: the reload error does not name the file, line and name" % what)
            check(b"nope" not in r.stderr, "%s: the reload error quotes a value" % what)
            check_served(mnt, {"LIVEKIT_API_SECRET": b"rotated"}, [], what + " after bad file")
        # the same problems stop a mount before it detaches
        bad = sb.mountpoint("bad")
        r = sb.run(["mount", bad], env=env, check_rc=False)
        check(r.returncode != 0 and b"DATABASE_URL" in r.stderr and b"nope" not in r.stderr,
              "mount with a bad platform file: exit %d, message does not name the problem"
              % r.returncode)
        check(not is_mounted(bad), "a failed mount (bad platform file) left a mount")
        os.unlink(pf)
        r = sb.run(["mount", bad], env=env, check_rc=False)
        check(r.returncode != 0 and pf.encode() in r.stderr,
              "mount with a missing platform file: exit %d, message does not name the file"
              % r.returncode)
        check(not is_mounted(bad), "a failed mount (missing platform file) left a mount")


def test_store_cannot_shadow():
    with Sandbox() as sb:
        r = sb.run(["set", "LIVEKIT_URL"], input=b"wss://evil", check_rc=False)
        check(r.returncode != 0 and b"LIVEKIT_URL" in r.stderr,
              "`set LIVEKIT_URL` is not refused with a message (exit %d)" % r.returncode)
        r = sb.run(["update-secrets", "--secrets", "LIVEKIT_API_KEY=evil",
                    "--secrets", "KEEP=kept"], check_rc=False)
        check(b"LIVEKIT_API_KEY" in r.stderr, "update-secrets drops LIVEKIT_API_KEY silently")
        names = [e["name"] for e in json.loads(sb.run(["list", "--json"]).stdout)]
        check(names == ["KEEP"], "the store holds %s, want only KEEP" % names)
        # names stored under the default prefix become reserved under another one
        sb.set_secrets({"APP_URL": b"stored app url", "APP_OTHER": b"stored other"})
        sb.write_config("[platform]\nreserved_prefix = APP_\nenv = APP_URL\n")
        for mode in CACHE_MODES:
            what = "reserved_prefix cache=%s" % mode
            log = os.path.join(sb.dir, "log-" + mode)
            mnt = sb.mountpoint("mnt-" + mode)
            env = clean_env(sb, APP_URL="platform app url", LIVEKIT_URL="wss://not-platform")
            p = start_foreground(sb, mnt, ["-o", "cache=" + mode], env=env, log=log)
            check(sorted(os.listdir(mnt)) == expected_listing(["KEEP", "APP_URL"]),
                  "%s: listing is %s" % (what, sorted(os.listdir(mnt))))
            check_served(mnt, {"APP_URL": b"platform app url", "KEEP": b"kept"},
                         ["APP_OTHER", "LIVEKIT_URL"], what)
            env_text = read_bytes(os.path.join(mnt, ".env"))
            check(b"stored app url" not in env_text and b"stored other" not in env_text,
                  "%s: .env holds a stored value of a reserved name" % what)
            os.kill(p.pid, signal.SIGTERM)
            p.wait(timeout=10)
            text = read_bytes(log)
            check(b"APP_OTHER" in text, "%s: the dropped reserved name is not logged" % what)
            check(b"stored other" not in text and b"stored app url" not in text,
                  "%s: a value appears in the log" % what)
            # the platform not supplying the name does not let the store's copy through
            mnt2, _ = sb.mount(sb.mountpoint("unset-" + mode), ["-o", "cache=" + mode],
                               env=clean_env(sb))
            check_served(mnt2, {"KEEP": b"kept"}, ["APP_URL", "APP_OTHER"],
                         what + " with APP_URL unset")
        # [platform] env must name reserved variables
        sb.write_config("[platform]\nenv = LIVEKIT_URL DATABASE_URL\n")
        bad = sb.mountpoint("bad")
        r = sb.run(["mount", bad], check_rc=False)
        check(r.returncode != 0 and b"DATABASE_URL" in r.stderr,
              "[platform] env naming DATABASE_URL: exit %d, no message naming it" % r.returncode)
        check(not is_mounted(bad), "a refused [platform] env left a mount")


if __name__ == "__main__":
    need_fuse()
    run_all(test_from_environment, test_from_file, test_store_cannot_shadow)
