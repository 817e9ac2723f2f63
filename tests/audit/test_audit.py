"""The access audit on real mounts, with real processes (README "Access audit").

Readers: a real unprivileged user in a child cgroup (cgroup v2, when one can be made here),
root in another process, a short-lived cat, `secretfs run`'s child; after a reload the new
generation and fingerprint; `secretfs audit --fingerprint` finds the value's opens; no
value ever in the log; a full tmpfs under the log never fails a read; SIGUSR1 reopens
after mv.  A Docker volume read (the container's cgroup) belongs to the Docker engine tests.
Every value is a canary: failures name secrets and counts only.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import faultlib
from auditlib import finish, start_reader
import harness
from harness import (SECRETFS, SKIP, CliSandbox, TestFailure, canary, check, ensure_test_user,
                     leaks, need_fuse, run_all, start_foreground, wait_for)


def records(log):
    out = []
    with contextlib.suppress(FileNotFoundError):
        with open(log, "rb") as f:
            data = f.read()
        check(leaks(data) == 0, "a secret value appears in the audit log")
        for line in data.splitlines():
            with contextlib.suppress(ValueError):  # a line cut by a full disk
                out.append(json.loads(line))
    return out


def wait_record(log, what, **want):
    """The first record of `log` whose fields equal `want`; waits for it."""
    found = []

    def seen():
        found[:] = [r for r in records(log) if all(r.get(k) == v for k, v in want.items())]
        return bool(found)
    wait_for(seen, "an audit record of %s (%s)" % (what, sorted(want)), timeout=10)
    return found[0]


def audited(sb, log, opts=()):
    mnt, pid = sb.mount(opts=["-o", ",".join(["audit=%s" % log] + list(opts))])
    check(pid, "the audited mount did not start")
    return mnt, pid


def cgroup2_root():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] == "cgroup2":
                return left.split()[4]
    return None


@contextlib.contextmanager
def child_cgroup():
    """A new cgroup v2 child for the with-block, or None (with the reason printed)."""
    root = cgroup2_root()
    path = root and os.path.join(root, "sfs-audit-%d" % os.getpid())
    try:
        os.mkdir(path)
    except (OSError, TypeError) as e:
        print("note: no writable cgroup v2 here (%s): the cgroup check is skipped" %
              (e if root else "none mounted"))
        yield None
        return
    try:
        yield path
    finally:
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.1)




def fingerprint(sb, value, log):
    """`secretfs audit --fingerprint -` (value on stdin) as the matching records."""
    out = sb.run(["audit", "--json", "--fingerprint", "-", log], input=value).stdout
    return [json.loads(l) for l in out.splitlines()]


def test_callers_pid_uid_exe_cgroup():
    uid, gid = ensure_test_user()
    with CliSandbox() as sb, child_cgroup() as cg:
        log = os.path.join(sb.dir, "audit.jsonl")
        sb.set_secrets({"DB_PASSWORD": canary(), "API_TOKEN": canary()})
        mnt, _ = audited(sb, log, ["uid=%d,gid=%d,mode=0400" % (uid, gid)])
        user = start_reader(os.path.join(mnt, "DB_PASSWORD"), (uid, gid), cg)
        root = start_reader(os.path.join(mnt, "API_TOKEN"))
        cat = subprocess.Popen(["cat", os.path.join(mnt, ".env")], stdout=subprocess.DEVNULL)
        check(cat.wait(timeout=10) == 0, "cat .env failed")
        r = wait_record(log, "the user's open", name="DB_PASSWORD", pid=user.pid)
        check(r["event"] == "open" and r["uid"] == uid and r["gid"] == gid,
              "the user's open has uid/gid %s/%s, expected %d/%d" % (r["uid"], r["gid"], uid,
                                                                     gid))
        check(r["exe"] == os.path.realpath("/usr/bin/python3"), "exe is %r" % r["exe"])
        check(r["process"] == "running" and r["cmdline"][-1].endswith("DB_PASSWORD"),
              "the user's command line is not recorded")
        if cg:
            check(r["cgroup"] == "/" + os.path.basename(cg),
                  "cgroup %r, expected /%s" % (r["cgroup"], os.path.basename(cg)))
        with open("/proc/self/cgroup") as f:
            mine = [l.split(":", 2)[2] for l in f.read().splitlines() if l.startswith("0::")]
        r = wait_record(log, "root's open", name="API_TOKEN", pid=root.pid)
        check(r["uid"] == 0 and r["generation"] == 1 and len(r["fingerprint"]) == 32,
              "root's open: uid %s generation %s" % (r["uid"], r["generation"]))
        check(not mine or r["cgroup"] == mine[0], "root's cgroup %r, expected %r" % (
            r["cgroup"], mine))
        r = wait_record(log, "cat's open of .env", name=".env", pid=cat.pid)
        check(r["exe"] == os.path.realpath("/usr/bin/cat"), "cat's exe is %r" % r["exe"])
        check(r["process"] in ("running", "exited"), "process is %r" % r["process"])
        finish(user)
        finish(root)
        opens = [r for r in records(log) if r["event"] == "open"]
        check(len(opens) == 3, "%d open records, expected 3 (.status is not recorded)" %
              len(opens))
        check(records(log)[0]["event"] == "mount", "the first record is not the mount's")


def test_run_child():
    with CliSandbox() as sb:
        log = os.path.join(sb.dir, "audit.jsonl")
        sb.set_secrets({"A": canary(), "B": canary()})
        mnt, _ = audited(sb, log)
        pidfile = os.path.join(sb.dir, "child.pid")
        sb.run(["run", "--mount", mnt, "--", "/bin/sh", "-c", 'echo $$ > "$0"', pidfile])
        with open(pidfile) as f:
            child = int(f.read())
        for name in ("A", "B"):
            r = wait_record(log, "run's child reading %s" % name, name=name, pid=child)
            check(r["exe"] == os.path.realpath(SECRETFS),
                  "run's child's exe is %r, expected secretfs" % r["exe"])


def test_reload_fingerprint_and_cli():
    with CliSandbox() as sb:
        log = os.path.join(sb.dir, "audit.jsonl")
        old, new, other = canary(), canary(), canary()
        sb.set_secrets({"A": old, "GONE": canary()})
        sb.write_config("[mount]\naudit = %s\n" % log)
        mnt, pid = sb.mount()
        check(sb.status(mnt).get("cache") == "none", "[mount] audit did not imply cache=none")
        check(sb.status(mnt).get("audit") == log and sb.status(mnt).get("audit_dropped") == "0",
              ".status lacks audit= and audit_dropped=0")
        check(harness.read_bytes(os.path.join(mnt, "A")) == old, "A: wrong bytes")
        sb.run(["set", "A"], input=new)
        sb.run(["set", "ADDED"], input=canary())
        sb.run(["rm", "GONE", "--reload=%s" % mnt])
        check(harness.read_bytes(os.path.join(mnt, "A")) == new, "A: wrong bytes after reload")
        r2 = wait_record(log, "A in generation 2", name="A", generation=2)
        r1 = wait_record(log, "A in generation 1", name="A", generation=1)
        check(r1["fingerprint"] != r2["fingerprint"], "a new value kept its fingerprint")
        rl = wait_record(log, "the reload", event="reload", generation=2)
        check(rl["changed"] == ["A"] and rl["added"] == ["ADDED"] and rl["removed"] == ["GONE"],
              "reload record: %s" % {k: rl[k] for k in ("added", "changed", "removed")})
        with open(sb.store, "r+b") as f:
            f.seek(40)
            f.write(b"\0" * 16)
        sb.run(["reload", mnt], rc=1)
        rf = wait_record(log, "the refused reload", event="reload_refused")
        check(rf["generation"] == 2 and rf["error"], "refused reload record: generation %s" %
              rf["generation"])
        # who got exactly this value?  (the log comes from [mount] audit)
        got = [(r["name"], r["generation"]) for r in fingerprint(sb, old, log)]
        check(got == [("A", 1)], "--fingerprint of the old value found %s" % got)
        valfile = sb.write("suspect", new)
        out = sb.run(["audit", "--json", "--fingerprint", valfile]).stdout
        got = [(json.loads(l)["name"], json.loads(l)["generation"]) for l in out.splitlines()]
        check(got == [("A", 2)], "--fingerprint FILE of the new value found %s" % got)
        check(fingerprint(sb, other, log) == [], "--fingerprint of another value matched")
        table = sb.run(["audit", "--name", "A"]).stdout.decode()
        check(table.startswith("TIME") and table.count("\n") == 4,
              "the table for --name A has %d lines, expected a header, 2 opens, 1 reload" %
              table.count("\n"))
        check(sb.run(["audit", "--since", "2999-01-01", "--json"]).stdout == b"",
              "--since in the future matched records")
        check(len(sb.run(["audit", "--since", "1h", "--json"]).stdout.splitlines()) ==
              len(records(log)), "--since 1h left records out")
        sb.fails(["audit", "--since", "yesterday"], 2, "--since yesterday")


def test_no_value_in_the_log():
    values = {"V%d" % i: canary() for i in range(8)}
    values["HOSTILE"] = b'"\n\\' + canary()
    with CliSandbox() as sb:
        log = os.path.join(sb.dir, "audit.jsonl")
        sb.set_secrets(values)
        mnt, _ = audited(sb, log)
        for view in (".env", ".env.json", ".status"):
            harness.read_bytes(os.path.join(mnt, view))
        for name, value in values.items():
            check(harness.read_bytes(os.path.join(mnt, name)) == value, "%s: wrong bytes" % name)
        wait_for(lambda: len(records(log)) >= 1 + 2 + len(values), "every open recorded")
        sb.run(["audit", log])  # CliSandbox fails the test if a canary reaches its output
        sb.run(["audit", "--json", log])


def test_full_disk_never_fails_a_read():
    tmp = tempfile.mkdtemp(prefix="sfs-audit-full-")
    try:
        with faultlib.tmpfs(tmp, "64k"), CliSandbox() as sb:
            log = os.path.join(tmp, "audit.jsonl")
            value = canary()
            sb.set_secrets({"A": value})
            mnt = sb.mountpoint()
            dlog = os.path.join(sb.dir, "daemon.log")
            start_foreground(sb, mnt, ["-o", "audit=%s" % log], log=dlog)
            with open(os.path.join(tmp, "filler"), "wb", buffering=0) as f:
                with contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * 4096)
            t0 = time.monotonic()
            for _ in range(300):
                check(harness.read_bytes(os.path.join(mnt, "A")) == value,
                      "a read failed or was wrong while the audit disk is full")
            took = time.monotonic() - t0
            wait_for(lambda: int(sb.status(mnt)["audit_dropped"]) >= 250, "audit_dropped")
            os.unlink(os.path.join(tmp, "filler"))
            harness.read_bytes(os.path.join(mnt, "A"))
            wait_for(lambda: b"writing again" in harness.read_bytes(dlog), "writing again")
            text = harness.read_bytes(dlog)
            check(leaks(text) == 0, "a value appears in the daemon's log")
            check(text.count(b"cannot write a record") == 1,
                  "the write failure was logged %d times, expected once" %
                  text.count(b"cannot write a record"))
            print("note: 300 reads with the audit disk full took %.3f s; audit_dropped=%s" %
                  (took, sb.status(mnt)["audit_dropped"]))
    finally:
        faultlib.umount(tmp)
        with contextlib.suppress(OSError):
            os.rmdir(tmp)


def test_sigusr1_reopens_after_mv():
    with CliSandbox() as sb:
        log = os.path.join(sb.dir, "audit.jsonl")
        sb.set_secrets({"A": canary()})
        mnt, pid = audited(sb, log)
        harness.read_bytes(os.path.join(mnt, "A"))
        wait_record(log, "the first open", name="A")
        os.rename(log, log + ".1")
        harness.read_bytes(os.path.join(mnt, "A"))  # still goes to the moved file
        wait_for(lambda: len([r for r in records(log + ".1") if r["event"] == "open"]) == 2,
                 "the second open in the moved file")
        os.kill(pid, signal.SIGUSR1)
        wait_for(lambda: os.path.exists(log), "the reopened log")
        check(os.stat(log).st_mode & 0o777 == 0o600, "the new log is not mode 0600")
        harness.read_bytes(os.path.join(mnt, "A"))
        wait_record(log, "the open after SIGUSR1", name="A")
        check(harness.pid_alive(pid), "SIGUSR1 killed the daemon")


def test_cache_override_and_refusals():
    with CliSandbox() as sb:
        sb.set_secrets({"A": canary()})
        log = os.path.join(sb.dir, "audit.jsonl")
        p = sb.run(["mount", "-o", "cache=kernel,audit=%s" % log, sb.mountpoint("m1")])
        check(b"overrides cache=kernel" in p.stderr, "no word that audit overrode cache=kernel")
        sb.mounts.append(sb.mountpoint("m1"))
        sb.pids.append(sb.daemon_pid(sb.mountpoint("m1")))
        check(sb.status(sb.mountpoint("m1"))["cache"] == "none", "audit= left cache=kernel")
        open_log = sb.write("wide.jsonl", "", mode=0o644)
        sb.fails(["mount", "-o", "audit=%s" % open_log, sb.mountpoint("m2")], 1, "chmod 600")
        sb.fails(["mount", "-o", "audit=%s" % os.path.join(sb.dir, "no", "such"),
                  sb.mountpoint("m3")], 1, "audit log")
        os.kill(sb.daemon_pid(sb.mountpoint("m1")), signal.SIGUSR1)  # reopen, not a crash
        time.sleep(0.2)
        check(harness.pid_alive(sb.pids[-1]), "SIGUSR1 killed the daemon")


def test_journal():
    """audit=journal through journald when one listens here; else the unit test
    (tests/unit/test_audit.c) checks the fields through the sink seam."""
    if not os.path.exists("/run/systemd/journal/socket") or not os.path.exists(
            "/usr/bin/journalctl"):
        print("note: no journald here; the journal's fields are checked by the unit test "
              "audit_unit through its sink seam")
        return
    with CliSandbox() as sb:
        sb.set_secrets({"JOURNALED": canary()})
        mnt, _ = audited(sb, "journal")
        p = subprocess.Popen(["cat", os.path.join(mnt, "JOURNALED")], stdout=subprocess.DEVNULL)
        p.wait()

        def found():
            out = subprocess.run(["journalctl", "-o", "json", "--no-pager", "-q",
                                  "SECRETFS_NAME=JOURNALED", "SECRETFS_PID=%d" % p.pid],
                                 capture_output=True).stdout
            return out.strip() != b""
        wait_for(found, "the journal entry", timeout=10)


if __name__ == "__main__":
    need_fuse()
    run_all(test_callers_pid_uid_exe_cgroup, test_run_child, test_reload_fingerprint_and_cli,
            test_no_value_in_the_log, test_full_disk_never_fails_a_read,
            test_sigusr1_reopens_after_mv, test_cache_override_and_refusals, test_journal)
