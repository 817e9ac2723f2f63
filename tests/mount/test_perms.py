#!/usr/bin/python3
"""Owners and modes, enforced by the kernel for a real unprivileged user (created here if
missing): denied by the default 0400, allowed where [secret:NAME] grants it, directory
permissions that follow from the files, views that never grant more than the mount default,
[mount]/-o uid= gid= mode=, and allow_other.  Both cache modes; root reads every file first
so the kernel's caches are warm when the user tries."""
import json
import os
import stat

from harness import (CACHE_MODES, Sandbox, check, ensure_test_user, expected_listing, need_fuse,
                     read_bytes, run_all, user_listdir, user_read)

STRANGER = (54321, 54321)   # another unprivileged identity, in no group of interest


def values():
    return {"DEFAULT_ONE": b"default secret one", "DEFAULT_TWO": b"default secret two",
            "USER_OWNED": b"owned by the test user", "WORLD": b"world readable value",
            "GROUP_READ": b"group readable value"}


def warm(mnt, names):
    for n in names:
        read_bytes(os.path.join(mnt, n))
    os.listdir(mnt)


def expect_read(who, path, want_ok, value, what):
    res, data = user_read(who[0], who[1], path)
    if want_ok:
        check(res == "ok", "%s: read as uid %d gave %s, want success" % (what, who[0], res))
        check(data == value, "%s: uid %d read wrong bytes" % (what, who[0]))
    else:
        check(res == "EACCES", "%s: read as uid %d gave %s, want EACCES" % (what, who[0], res))


def test_default_denies():
    user = ensure_test_user()
    with Sandbox() as sb:
        vals = values()
        sb.set_secrets(vals)
        for mode in CACHE_MODES:
            mnt, _ = sb.mount(sb.mountpoint("mnt-" + mode), ["-o", "cache=" + mode])
            warm(mnt, list(vals) + [".env", ".env.json", ".status"])
            st = os.stat(mnt)
            check(stat.S_IMODE(st.st_mode) == 0o500 and st.st_uid == 0,
                  "cache=%s: default root dir is %o uid %d, want 0500 uid 0" % (
                      mode, stat.S_IMODE(st.st_mode), st.st_uid))
            for n in vals:
                fst = os.stat(os.path.join(mnt, n))
                check(stat.S_IMODE(fst.st_mode) == 0o400 and fst.st_uid == 0 and fst.st_gid == 0,
                      "cache=%s: %s is %o %d:%d, want 0400 0:0" % (
                          mode, n, stat.S_IMODE(fst.st_mode), fst.st_uid, fst.st_gid))
                expect_read(user, os.path.join(mnt, n), False, None,
                            "cache=%s default %s" % (mode, n))
            for v in (".env", ".env.json"):
                expect_read(user, os.path.join(mnt, v), False, None, "cache=%s %s" % (mode, v))
            res, _ = user_listdir(user[0], user[1], mnt)
            check(res == "EACCES", "cache=%s: the user lists the default mount: %s" % (mode, res))


def perms_config(uid, gid, with_world=True):
    text = ("[secret:USER_OWNED]\nuid = %d\n"
            "[secret:GROUP_READ]\ngid = %d\nmode = 0440\n" % (uid, gid))
    if with_world:
        text += "[secret:WORLD]\nmode = 0444\n"
    return text


def test_secret_sections_grant():
    user = ensure_test_user()
    with Sandbox() as sb:
        vals = values()
        sb.set_secrets(vals)
        sb.write_config(perms_config(*user))
        custom = {"USER_OWNED", "WORLD", "GROUP_READ"}
        for mode in CACHE_MODES:
            mnt, _ = sb.mount(sb.mountpoint("mnt-" + mode), ["-o", "cache=" + mode])
            warm(mnt, list(vals) + [".env", ".env.json"])
            want = {"DEFAULT_ONE": (0o400, 0, 0), "DEFAULT_TWO": (0o400, 0, 0),
                    "USER_OWNED": (0o400, user[0], 0), "WORLD": (0o444, 0, 0),
                    "GROUP_READ": (0o440, 0, user[1]), ".env": (0o400, 0, 0),
                    ".env.json": (0o400, 0, 0)}
            for n, (m, u, g) in want.items():
                fst = os.stat(os.path.join(mnt, n))
                got = (stat.S_IMODE(fst.st_mode), fst.st_uid, fst.st_gid)
                check(got == (m, u, g), "cache=%s: %s is %o %d:%d, want %o %d:%d" % (
                    (mode, n) + got + (m, u, g)))
            dmode = stat.S_IMODE(os.stat(mnt).st_mode)
            check(dmode == 0o555, "cache=%s: root dir is %o, want 0555 (group and others "
                  "may list because WORLD is 0444)" % (mode, dmode))
            for n in vals:
                expect_read(user, os.path.join(mnt, n), n in custom, vals[n],
                            "cache=%s user %s" % (mode, n))
                expect_read(STRANGER, os.path.join(mnt, n), n == "WORLD", vals[n],
                            "cache=%s stranger %s" % (mode, n))
            for v in (".env", ".env.json"):
                expect_read(user, os.path.join(mnt, v), False, None, "cache=%s %s" % (mode, v))
            res, data = user_read(user[0], user[1], os.path.join(mnt, ".status"))
            check(res == "ok", "cache=%s: the user cannot read .status (%s)" % (mode, res))
            check(not any(v in data for v in vals.values()), "cache=%s: .status holds a value"
                  % mode)
            res, names = user_listdir(user[0], user[1], mnt)
            check(res == "ok" and sorted(names) == expected_listing(vals),
                  "cache=%s: the user cannot list a 0555 root (%s)" % (mode, res))
            # the views never widen access: secrets with their own owner/mode are left out
            env_text = read_bytes(os.path.join(mnt, ".env"))
            view = json.loads(read_bytes(os.path.join(mnt, ".env.json")))
            check(sorted(view) == ["DEFAULT_ONE", "DEFAULT_TWO"],
                  "cache=%s: .env.json shows %s" % (mode, sorted(view)))
            for n in custom:
                check(vals[n] not in env_text and b"export %s=" % n.encode() not in env_text,
                      "cache=%s: .env exports %s, which has its own owner or mode" % (mode, n))


def test_dir_follows_files():
    """Without a world-readable file, others may reach their files but not list."""
    user = ensure_test_user()
    with Sandbox() as sb:
        vals = values()
        sb.set_secrets(vals)
        sb.write_config(perms_config(*user, with_world=False))
        for mode in CACHE_MODES:
            mnt, _ = sb.mount(sb.mountpoint("mnt-" + mode), ["-o", "cache=" + mode])
            dmode = stat.S_IMODE(os.stat(mnt).st_mode)
            check(dmode == 0o501, "cache=%s: root dir is %o, want 0501" % (mode, dmode))
            res, _ = user_listdir(user[0], user[1], mnt)
            check(res == "EACCES", "cache=%s: the user lists a 0501 root (%s)" % (mode, res))
            expect_read(user, os.path.join(mnt, "USER_OWNED"), True, vals["USER_OWNED"],
                        "cache=%s user USER_OWNED through a search-only dir" % mode)
            expect_read(user, os.path.join(mnt, "GROUP_READ"), True, vals["GROUP_READ"],
                        "cache=%s user GROUP_READ through a search-only dir" % mode)
            expect_read(user, os.path.join(mnt, "WORLD"), False, None,
                        "cache=%s user WORLD (0400 here)" % mode)
            expect_read(STRANGER, os.path.join(mnt, "USER_OWNED"), False, None,
                        "cache=%s stranger USER_OWNED" % mode)


def test_mount_owner_and_mode():
    user = ensure_test_user()
    with Sandbox() as sb:
        vals = values()
        sb.set_secrets(vals)
        for mode in CACHE_MODES:
            # -o uid=NAME gid=NUMBER mode=0440
            mnt, _ = sb.mount(sb.mountpoint("opt-" + mode), [
                "-o", "cache=%s,uid=sfs-test-user,gid=%d,mode=0440" % (mode, user[1])])
            dst = os.stat(mnt)
            check(dst.st_uid == user[0] and dst.st_gid == user[1] and
                  stat.S_IMODE(dst.st_mode) == 0o550,
                  "cache=%s -o: root dir is %o %d:%d, want 0550 owned by the user" % (
                      mode, stat.S_IMODE(dst.st_mode), dst.st_uid, dst.st_gid))
            for n in list(vals) + [".env", ".env.json"]:
                fst = os.stat(os.path.join(mnt, n))
                check((stat.S_IMODE(fst.st_mode), fst.st_uid, fst.st_gid) ==
                      (0o440, user[0], user[1]), "cache=%s -o: %s has the wrong owner or "
                      "mode" % (mode, n))
            for n in vals:
                expect_read(user, os.path.join(mnt, n), True, vals[n], "cache=%s -o %s" % (mode, n))
                expect_read(STRANGER, os.path.join(mnt, n), False, None,
                            "cache=%s -o stranger %s" % (mode, n))
            res, data = user_read(user[0], user[1], os.path.join(mnt, ".env.json"))
            check(res == "ok" and json.loads(data) == {k: v.decode() for k, v in vals.items()},
                  "cache=%s -o: the owner cannot read .env.json exactly (%s)" % (mode, res))
        # the same from the config file
        sb.write_config("[mount]\nuid = %d\ngid = %d\nmode = 0400\n" % user)
        mnt, _ = sb.mount(sb.mountpoint("cfg"))
        fst = os.stat(os.path.join(mnt, "DEFAULT_ONE"))
        check((stat.S_IMODE(fst.st_mode), fst.st_uid, fst.st_gid) == (0o400,) + user,
              "[mount] uid/gid/mode not applied")
        expect_read(user, os.path.join(mnt, "DEFAULT_ONE"), True, vals["DEFAULT_ONE"],
                    "[mount] uid= owner reads")
        res, _ = user_read(user[0], user[1], os.path.join(mnt, ".env"))
        check(res == "ok", "[mount] uid= owner cannot read .env (%s)" % res)


def test_allow_other():
    user = ensure_test_user()
    with Sandbox() as sb:
        vals = values()
        sb.set_secrets(vals)
        sb.write_config(perms_config(*user))
        mnt, _ = sb.mount(sb.mountpoint("noallow"), ["-o", "noallow_other"])
        opts = [l for l in open("/proc/self/mountinfo") if " %s " % mnt in l]
        check(opts and "allow_other" not in opts[0], "-o noallow_other still mounts with "
              "allow_other")
        expect_read(user, os.path.join(mnt, "WORLD"), False, None,
                    "noallow_other: a 0444 file for another user")
        mnt2, _ = sb.mount(sb.mountpoint("default"))
        opts = [l for l in open("/proc/self/mountinfo") if " %s " % mnt2 in l]
        check(opts and "allow_other" in opts[0] and "default_permissions" in opts[0],
              "as root the mount lacks allow_other or default_permissions")


if __name__ == "__main__":
    need_fuse()
    run_all(test_default_denies, test_secret_sections_grant, test_dir_follows_files,
            test_mount_owner_and_mode, test_allow_other)
