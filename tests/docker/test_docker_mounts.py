"""What a container sees: exactly the requested subset, with the requested owner and mode,
checked as unprivileged users through a bind mount (how dockerd hands a volume to a
container); and secret values never reach the plugin's replies, log or state."""
import os

from dockerlib import PluginSandbox, check, fails, harness, mount_id, ok


def test_subset_owner_mode():
    with PluginSandbox() as sb:
        values = {"DB_PASSWORD": harness.canary("db"), "API_TOKEN": harness.canary("api"),
                  "UNRELATED": harness.canary("x")}
        sb.set_secrets(values)
        uid, gid = harness.ensure_test_user()
        sb.start_plugin()
        e = sb.engine()
        ok(e.create("db-secrets", {"secrets": "DB_PASSWORD, API_TOKEN,DB_PASSWORD",
                                   "uid": str(uid), "gid": str(gid), "mode": "0440"}),
           "Create")
        mid = mount_id()
        mnt = ok(e.mount("db-secrets", mid), "Mount").json["Mountpoint"]
        check(sorted(os.listdir(mnt)) == harness.expected_listing(["DB_PASSWORD", "API_TOKEN"]),
              "exactly the subset: %s" % sorted(os.listdir(mnt)))
        for name in ("DB_PASSWORD", "API_TOKEN"):
            st = os.stat(os.path.join(mnt, name))
            check(st.st_uid == uid and st.st_gid == gid, "%s owned by the test user" % name)
            check(st.st_mode & 0o7777 == 0o440, "%s mode %o" % (name, st.st_mode & 0o7777))
        ctr = sb.bind("db-secrets")
        for name in ("DB_PASSWORD", "API_TOKEN"):
            res, data = harness.user_read(uid, gid, os.path.join(ctr, name))
            check(res == "ok" and data == values[name], "the owner reads %s: %s" % (name, res))
        res, names = harness.user_listdir(uid, gid, ctr)
        check(res == "ok" and "UNRELATED" not in names, "the owner lists the subset: %s" % res)
        res, _ = harness.user_read(65534, 65534, os.path.join(ctr, "DB_PASSWORD"))
        check(res == "EACCES", "another user is refused: %s" % res)
        res, _ = harness.user_read(uid, gid, os.path.join(ctr, "UNRELATED"))
        check(res == "ENOENT", "a name outside the subset does not exist: %s" % res)
        sb.unbind(ctr)
        ok(e.unmount("db-secrets", mid), "Unmount")

        # defaults: the plugin's user (root here), 0400, every secret
        ok(e.create("all", None), "Create with Opts null")
        mid = mount_id()
        mnt = ok(e.mount("all", mid), "Mount").json["Mountpoint"]
        check(sorted(os.listdir(mnt)) == harness.expected_listing(values), "every secret")
        st = os.stat(os.path.join(mnt, "UNRELATED"))
        check(st.st_uid == 0 and st.st_gid == 0 and st.st_mode & 0o7777 == 0o400,
              "defaults: root:root 0400")
        ctr = sb.bind("all")
        res, _ = harness.user_read(uid, gid, os.path.join(ctr, "DB_PASSWORD"))
        check(res == "EACCES", "0400 root-owned files refuse other users: %s" % res)
        sb.unbind(ctr)
        ok(e.unmount("all", mid), "Unmount")

        # no value anywhere the plugin writes or answers
        replies = b"".join(e.replies)
        check(harness.leaks(replies) == 0, "a secret value appears in a reply")
        check(harness.leaks(sb.log_bytes()) == 0, "a secret value appears in the plugin's log")
        for f in os.listdir(sb.state):
            with open(os.path.join(sb.state, f), "rb") as fh:
                check(harness.leaks(fh.read()) == 0, "a secret value appears in state/%s" % f)
        check(b"Sanitizer" not in sb.log_bytes() and b"runtime error" not in sb.log_bytes(),
              "sanitizer reports in the plugin's log: %s" % sb.log_text()[-1500:])


def test_cache_none_and_missing_names():
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a", "B": b"b"})
        sb.start_plugin()
        e = sb.engine()
        fails(e.create("v", {"secrets": "A,NOT_STORED,ALSO_NOT", "cache": "none"}),
              "Create naming names the store lacks", "NOT_STORED,ALSO_NOT not in the store",
              "optional=")
        fails(e.create("v", {"secrets": "A", "optional": "B"}), "optional= outside secrets=",
              "option optional: B is not one of secrets=")
        fails(e.create("v", {"optional": "B"}), "optional= without secrets=", "only with")
        check(ok(e.list(), "List").json["Volumes"] == [], "nothing was created")
        ok(e.create("v", {"secrets": "A,NOT_STORED", "optional": "NOT_STORED",
                          "cache": "none"}), "Create with optional=")
        st = ok(e.get("v"), "Get").json["Volume"]["Status"]
        check(st.get("missing") == "NOT_STORED" and st.get("optional") == "NOT_STORED",
              "Status names the missing and the optional names: %s" % st)
        mid = mount_id()
        mnt = ok(e.mount("v", mid), "Mount").json["Mountpoint"]
        check(sorted(os.listdir(mnt)) == harness.expected_listing(["A"]),
              "an optional name the store lacks is absent: %s" % sorted(os.listdir(mnt)))
        check(sb.status(mnt)["cache"] == "none", "cache=none reaches the daemon")
        check(sb.status(mnt).get("missing") == "NOT_STORED", ".status names it too")
        sb.set_secrets({"NOT_STORED": b"n"})
        check("missing" not in ok(e.get("v"), "Get").json["Volume"]["Status"],
              "once stored, it is no longer reported missing")
        ok(e.unmount("v", mid), "Unmount")


def test_config_only_does_not_narrow():
    """The plugin's config may say [mount] only for the host's mount; a volume's subset comes
    from its own secrets= option, and no option means every secret."""
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a", "B": b"b"})
        sb.write_config("[mount]\nonly = A\nuid = 4242\nmode = 0444\n")
        sb.start_plugin()
        e = sb.engine()
        ok(e.create("v", {}), "Create")
        mid = mount_id()
        mnt = ok(e.mount("v", mid), "Mount").json["Mountpoint"]
        check(sorted(os.listdir(mnt)) == harness.expected_listing(["A", "B"]),
              "every secret: %s" % sorted(os.listdir(mnt)))
        st = os.stat(os.path.join(mnt, "B"))
        check(st.st_uid == 0 and st.st_mode & 0o777 == 0o400,
              "[mount] uid/mode do not apply to volumes")
        ok(e.unmount("v", mid), "Unmount")


def test_options_refused():
    """Each bad option is an Err naming it; a value is never echoed."""
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        sb.start_plugin()
        e = sb.engine()
        leak = harness.canary("opt").decode()
        cases = [
            ({"DB_PASSWORD": leak}, "unknown option 'DB_PASSWORD'"),
            ({"A=" + leak: "x"}, "unknown option (a name of"),
            ({"secrets": ""}, "option secrets: empty"),
            ({"secrets": "A,," + leak}, "option secrets: entry 2 is empty"),
            ({"secrets": "A," + leak + "!"}, "option secrets: entry 2"),
            ({"secrets": ".env"}, "option secrets: entry 1 starts with '.'"),
            ({"secrets": "x" * 256}, "option secrets: entry 1 is longer"),
            ({"uid": leak}, "option uid"),
            ({"uid": "-1"}, "option uid"),
            ({"uid": "4294967295"}, "option uid"),
            ({"uid": "root"}, "option uid"),
            ({"gid": "1.5"}, "option gid"),
            ({"mode": "0o440"}, "option mode"),
            ({"mode": "1777"}, "option mode"),
            ({"mode": "888"}, "option mode"),
            ({"cache": "all"}, "option cache"),
            ({"Secrets": "A"}, "unknown option 'Secrets'"),
        ]
        for opts, needle in cases:
            r = fails(e.create("v", opts), "Create with %s" % list(opts)[0][:20], needle)
            check(harness.leaks(r.raw) == 0, "an Err echoes an option value")
        fails(e.get("v"), "no volume was created", "no such volume")
        check(harness.leaks(sb.log_bytes()) == 0, "the log echoes an option value")
        ok(e.create("v", {"uid": "0", "gid": "4294967294", "mode": "0", "cache": "kernel",
                          "secrets": " A "}), "edge values are accepted")


def test_mount_errors_reach_docker():
    """A mount that cannot happen is an Err with secretfs' reason; nothing is held."""
    with PluginSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        sb.start_plugin()
        e = sb.engine()
        ok(e.create("v", None), "Create")
        os.rename(sb.key, sb.key + ".away")
        mid = mount_id()
        r = fails(e.mount("v", mid), "Mount without the key", "cannot mount", "master.key")
        check(e.get("v").json["Volume"]["Status"]["references"] == 0, "no reference kept")
        os.rename(sb.key + ".away", sb.key)
        mnt = ok(e.mount("v", mid), "Mount once the key is back").json["Mountpoint"]
        check(harness.read_bytes(os.path.join(mnt, "A")) == b"a", "serving")
        ok(e.unmount("v", mid), "Unmount")
        del r


if __name__ == "__main__":
    harness.need_fuse()
    harness.run_all(test_subset_owner_mode, test_cache_none_and_missing_names,
                    test_config_only_does_not_narrow, test_options_refused,
                    test_mount_errors_reach_docker)
