"""`secretfs run`: what the child's environment holds, and where values never go.

- every hostile value reaches the child byte for byte (through /usr/bin/env -0)
- precedence: platform entry > secret > inherited variable (also against a store that was
  sealed with a platform name in it)
- names that are not environment variable names, and values with a NUL byte, are skipped
  with a warning naming them; --only limits the names
- values never appear in any process's argv, in run's stderr, or anywhere in the memory of
  the supervising `secretfs run` process (only its short-lived child holds them)
- exit codes: 1 when the mount cannot be read, 127 / 126 when COMMAND cannot be run
"""
import os
import subprocess
import time

from runlib import (PY, SECRETFS, ChildDir, Runner, RunSandbox, all_cmdlines, check,
                    compare_env, hostile_values, memory_holds, need_fuse, parse_env0,
                    run_all, seal_store, wait_for)

CANARY = b"CANARY-run-4b1d9e-"


def run_env(sb, mnt, extra=(), env=None):
    """Runs `secretfs run --mount MNT EXTRA -- env -0`; returns (rc, env dict, stderr)."""
    p = subprocess.run([SECRETFS, "run", "--mount", mnt] + list(extra) + ["--", "/usr/bin/env",
                                                                          "-0"],
                       capture_output=True, env=env or sb.env, timeout=60)
    return p.returncode, parse_env0(p.stdout), p.stderr


def test_hostile_values():
    values = hostile_values()
    for cache in ("kernel", "none"):
        with RunSandbox() as sb:
            seal_store(sb.store, sb.key, values)  # the CLI refuses H_EMPTY; a store may hold it
            mnt, _ = sb.mount(opts=["-o", "cache=" + cache])
            rc, env, err = run_env(sb, mnt)
            check(rc == 0, "cache=%s: run exited %d" % (cache, rc))
            compare_env(env, {k.encode(): v for k, v in values.items()},
                        "cache=%s: hostile values" % cache)
            leaked = [k for k, v in values.items() if len(v) >= 4 and v in err]
            check(not leaked, "cache=%s: run's stderr holds the value of %s" % (cache, leaked[:5]))
            check(b"warning" not in err, "cache=%s: warnings for valid names" % cache)


def test_precedence():
    with RunSandbox() as sb:
        sb.set_secrets({"DB_PASSWORD": b"from-store", "ONLY_SECRET": b"s"})
        daemon_env = dict(sb.env, LIVEKIT_URL="wss://from-platform",
                          LIVEKIT_API_KEY="key-from-platform")
        mnt, _ = sb.mount(env=daemon_env)
        inherited = dict(sb.env, DB_PASSWORD="inherited", LIVEKIT_URL="inherited",
                         KEEP_ME="inherited", LIVEKIT_API_SECRET="inherited")
        rc, env, _ = run_env(sb, mnt, env=inherited)
        check(rc == 0, "run exited %d" % rc)
        compare_env(env, {b"DB_PASSWORD": b"from-store", b"LIVEKIT_URL": b"wss://from-platform",
                          b"LIVEKIT_API_KEY": b"key-from-platform", b"KEEP_ME": b"inherited",
                          b"ONLY_SECRET": b"s",
                          # the platform does not supply it: the inherited value stays
                          b"LIVEKIT_API_SECRET": b"inherited"}, "precedence")
        # a store that holds a platform name (sealed directly: the CLI refuses it) loses
        seal_store(sb.store, sb.key, {"DB_PASSWORD": b"from-store-2",
                                      "LIVEKIT_API_KEY": b"key-from-store"})
        sb.run(["reload", mnt])
        rc, env, _ = run_env(sb, mnt, env=inherited)
        check(rc == 0, "run exited %d after the reload" % rc)
        compare_env(env, {b"DB_PASSWORD": b"from-store-2",
                          b"LIVEKIT_API_KEY": b"key-from-platform"}, "platform over store")
        check(env.get(b"ONLY_SECRET") is None, "a removed secret is still set")


def test_skipped_names_and_only():
    with RunSandbox() as sb:
        sb.set_secrets({"GOOD": b"good", "bad-name": b"x1", "has.dot": b"x2", "9lives": b"x3",
                        "WITH_NUL": b"a\0b", "OTHER": b"other"})
        mnt, _ = sb.mount()
        rc, env, err = run_env(sb, mnt)
        check(rc == 0, "run exited %d" % rc)
        check(env.get(b"GOOD") == b"good" and env.get(b"OTHER") == b"other",
              "valid names missing")
        for bad in ("bad-name", "has.dot", "9lives", "WITH_NUL"):
            check(not any(k.startswith(bad.encode()) for k in env), "%s reached the child" % bad)
            check(bad.encode() in err and b"warning" in err, "no warning naming %s" % bad)
        for v in (b"x1", b"x2", b"x3", b"a\0b"):
            check(v not in err, "stderr holds a skipped value")
        rc, env, err = run_env(sb, mnt, ["--only", "GOOD,MISSING"])
        check(rc == 0, "--only: run exited %d" % rc)
        check(env.get(b"GOOD") == b"good", "--only GOOD: GOOD missing")
        check(b"OTHER" not in env, "--only GOOD: OTHER was set")
        check(b"MISSING" in err, "--only MISSING: no warning naming it")
        check(b"bad-name" not in err, "--only: warned about a name it was not asked for")
        rc, _, err = run_env(sb, mnt, ["--only", "bad-name"])
        check(rc == 2, "--only with an invalid name exited %d, not 2" % rc)


def test_values_stay_out_of_argv_stderr_and_supervisor():
    need = {"CANARY_%d" % i: CANARY + b"%d" % i for i in range(3)}
    with RunSandbox() as sb:
        sb.set_secrets(need)
        mnt, _ = sb.mount()
        cd = ChildDir(sb)
        r = Runner(sb, ["--mount", mnt, "--restart-on-change", "--"] + cd.argv())
        pid = cd.wait_started(1)
        compare_env(cd.env(pid), {k.encode(): v for k, v in need.items()}, "canaries")
        hits = [p for p, cmd in all_cmdlines().items() if CANARY in cmd]
        check(not hits, "a canary is in the argv of pids %s" % hits)
        with open("/proc/%d/environ" % r.pid, "rb") as f:
            check(CANARY not in f.read(), "a canary is in secretfs run's own environment")
        check(not memory_holds(r.pid, [CANARY]), "the supervising secretfs run holds a value "
              "in its memory")
        # and across a restart
        sb.set_secrets({"CANARY_0": CANARY + b"new"})
        sb.run(["reload", mnt])
        pid2 = cd.wait_started(2)
        check(cd.env(pid2).get(b"CANARY_0") == CANARY + b"new", "restart: new value missing")
        hits = [p for p, cmd in all_cmdlines().items() if CANARY in cmd]
        check(not hits, "after a restart a canary is in the argv of pids %s" % hits)
        check(not memory_holds(r.pid, [CANARY]), "after a restart the supervisor holds a value")
        r.p.terminate()
        r.wait()
        check(CANARY not in r.stderr(), "a canary is in run's stderr")


def test_errors():
    with RunSandbox() as sb:
        sb.set_secrets({"A": b"a"})
        plain = sb.mountpoint("not-a-mount")
        p = subprocess.run([SECRETFS, "run", "--mount", plain, "--", "true"],
                           capture_output=True, env=sb.env, timeout=30)
        check(p.returncode == 1, "not a mount: exit %d, not 1" % p.returncode)
        check(b".status" in p.stderr and b"--mount" in p.stderr,
              "not a mount: the message does not name .status and --mount")
        mnt, _ = sb.mount()
        p = subprocess.run([SECRETFS, "run", "--mount", mnt, "--", "/nonexistent/cmd"],
                           capture_output=True, env=sb.env, timeout=30)
        check(p.returncode == 127, "missing command: exit %d, not 127" % p.returncode)
        check(b"/nonexistent/cmd" in p.stderr, "missing command: not named in the message")
        noexec = os.path.join(sb.dir, "noexec.sh")
        with open(noexec, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(noexec, 0o644)
        p = subprocess.run([SECRETFS, "run", "--mount", mnt, "--", noexec],
                           capture_output=True, env=sb.env, timeout=30)
        check(p.returncode == 126, "non-executable command: exit %d, not 126" % p.returncode)
        p = subprocess.run([SECRETFS, "run", "--mount", mnt], capture_output=True, env=sb.env,
                           timeout=30)
        check(p.returncode == 2, "no command: exit %d, not 2" % p.returncode)
        # the command's own options are its own
        p = subprocess.run([SECRETFS, "run", "--mount", mnt, PY, "-c",
                            "import os,sys; sys.exit(0 if os.environ['A'] == 'a' else 5)"],
                           capture_output=True, env=sb.env, timeout=30)
        check(p.returncode == 0, "COMMAND without '--': exit %d" % p.returncode)


if __name__ == "__main__":
    need_fuse()
    run_all(test_hostile_values, test_precedence, test_skipped_names_and_only,
            test_values_stay_out_of_argv_stderr_and_supervisor, test_errors)
