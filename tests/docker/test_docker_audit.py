"""docker-plugin --audit: every volume's mount records each open of a secret (journal, or
DIR/VOLUME.log with DIR created 0700 and held to the StrictModes rule), implies cache=none,
and says so in Get's Status; without it, the config's [mount] audit (the host mount's) does
not reach volumes.  A record names the secret and the reader's pid and uid, never a value."""
import os

from auditlib import finish, start_reader
from dockerlib import (PluginSandbox, audit_records, check, harness, mount_id, ok,
                       wait_audit_record)


def test_audit_dir():
    with PluginSandbox() as sb:
        values = {"DB_PASSWORD": harness.canary("db"), "OTHER": harness.canary("o")}
        sb.set_secrets(values)
        uid, gid = harness.ensure_test_user()
        audit = os.path.join(sb.dir, "audit", "volumes")
        sb.start_plugin(extra=["--audit", audit])
        check(os.stat(audit).st_mode & 0o777 == 0o700, "the audit directory is made 0700")
        e = sb.engine()
        ok(e.create("db", {"secrets": "DB_PASSWORD", "uid": str(uid), "cache": "kernel"}),
           "Create")
        st = ok(e.get("db"), "Get").json["Volume"]["Status"]
        log = os.path.join(audit, "db.log")
        check(st.get("audit") == log and st.get("cache") == "none",
              "Status shows the volume's log and cache=none: %s" % st)
        mid = mount_id()
        mnt = ok(e.mount("db", mid), "Mount").json["Mountpoint"]
        status = sb.status(mnt)
        check(status.get("audit") == "on" and status.get("cache") == "none",
              "the mount is audited, cache=none: %s" % status)
        ctr = sb.bind("db")
        reader = start_reader(os.path.join(ctr, "DB_PASSWORD"), user=(uid, gid))
        try:
            rec = wait_audit_record(log, "the read through the bind", event="open",
                                    name="DB_PASSWORD")
            check(rec["pid"] == reader.pid and rec["uid"] == uid and rec["gid"] == gid,
                  "the record names the reader: pid %s uid %s (want %d, %d)" % (
                      rec["pid"], rec["uid"], reader.pid, uid))
            check(rec["mount"] == sb.volume_dir("db"), "the record names the volume's mount")
        finally:
            finish(reader, timeout=30)
        check(wait_audit_record(log, "the mount", event="mount")["secrets"] == 1,
              "the mount is recorded, with the subset's one secret")
        sb.unbind(ctr)
        ok(e.unmount("db", mid), "Unmount")
        ok(e.remove("db"), "Remove")
        check(os.path.exists(log), "the log outlives the volume")
        check(os.stat(log).st_mode & 0o777 == 0o600, "the log is 0600")
        check(harness.leaks(sb.log_bytes()) == 0, "no value in the plugin's log")


def test_audit_journal_and_none():
    with PluginSandbox() as sb:
        sb.set_secrets({"A": harness.canary("a")})
        host_log = os.path.join(sb.dir, "host-audit.jsonl")
        sb.write_config("[mount]\naudit = %s\n" % host_log)
        # without --audit, [mount] audit is the host mount's: volumes are not audited
        sb.start_plugin()
        check("Docker volumes are audited only with docker-plugin --audit" in sb.log_text(),
              "the plugin says [mount] audit does not reach volumes: %s" % sb.log_text()[-500:])
        e = sb.engine()
        ok(e.create("v", {"secrets": "A"}), "Create")
        st = ok(e.get("v"), "Get").json["Volume"]["Status"]
        check("audit" not in st and st["cache"] == "kernel", "no audit in Status: %s" % st)
        mid = mount_id()
        mnt = ok(e.mount("v", mid), "Mount").json["Mountpoint"]
        ctr = sb.bind("v")  # held, so the restart below adopts the mount
        harness.read_bytes(os.path.join(mnt, "A"))
        check("audit" not in sb.status(mnt) and not audit_records(host_log),
              "the volume's mount is not audited into the host's log")
        check(sb.stop_plugin() == 0, "stopped")
        # --audit journal (no journald needs to listen: records it cannot send are counted)
        sb.start_plugin(extra=["--audit", "journal"])
        check("its mount is not audited" in sb.log_text(),
              "the adopted mount made before --audit is reported: %s" % sb.log_text()[-600:])
        e = sb.engine()
        ok(e.create("w", {"secrets": "A"}), "Create")
        st = ok(e.get("w"), "Get").json["Volume"]["Status"]
        check(st.get("audit") == "journal" and st["cache"] == "none", "Status: %s" % st)
        mid2 = mount_id()
        mnt2 = ok(e.mount("w", mid2), "Mount").json["Mountpoint"]
        check(sb.status(mnt2).get("audit") == "on", "the new mount is audited")
        ok(e.unmount("w", mid2), "Unmount")
        sb.unbind(ctr)
        ok(e.unmount("v", mid), "Unmount")


def test_audit_dir_refused():
    with PluginSandbox() as sb:
        shared = os.path.join(sb.dir, "shared")
        os.makedirs(shared)
        os.chmod(shared, 0o777)
        p = sb.start_plugin(extra=["--audit", os.path.join(shared, "audit")], expect_fail=True)
        check(p.returncode == 1 and "--audit" in sb.log_text() and "chmod go-w" in sb.log_text(),
              "a directory others may write is refused, naming the fix: %s" %
              sb.log_text()[-400:])
        p = sb.start_plugin(extra=["--audit", os.path.join(sb.dir, "a,b")], expect_fail=True)
        check(p.returncode == 2 and "','" in sb.log_text(),
              "a path with a comma is a usage error: %s" % sb.log_text()[-300:])
        check(not os.path.exists(sb.sock), "nothing served")


def test_audit_from_config():
    """[docker] audit in the config does what --audit does (a managed plugin's entrypoint is
    fixed, its config is not); the flag wins; a relative directory is refused."""
    with PluginSandbox() as sb:
        sb.set_secrets({"A": harness.canary("a")})
        audit = os.path.join(sb.dir, "cfg-audit")
        sb.write_config("[docker]\naudit = %s\n" % audit)
        sb.start_plugin()
        e = sb.engine()
        ok(e.create("c", {"secrets": "A"}), "Create")
        st = ok(e.get("c"), "Get").json["Volume"]["Status"]
        check(st.get("audit") == os.path.join(audit, "c.log") and st["cache"] == "none",
              "the config's [docker] audit applies: %s" % st)
        check(sb.stop_plugin() == 0, "stopped")
        sb.start_plugin(extra=["--audit", "journal"])
        st = ok(sb.engine().get("c"), "Get").json["Volume"]["Status"]
        check(st.get("audit") == "journal", "--audit wins over the config: %s" % st)
        check(sb.stop_plugin() == 0, "stopped")
        sb.write_config("[docker]\naudit = relative/dir\n")
        p = sb.start_plugin(expect_fail=True)
        check(p.returncode == 1 and "[docker] audit = relative/dir" in sb.log_text() and
              "absolute" in sb.log_text(), "a relative directory is refused: %s" %
              sb.log_text()[-300:])


if __name__ == "__main__":
    harness.need_fuse()
    harness.run_all(test_audit_dir, test_audit_journal_and_none, test_audit_dir_refused,
                    test_audit_from_config)
