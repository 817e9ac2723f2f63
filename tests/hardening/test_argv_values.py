"""Issue 12, item 2: a value given on the command line is blanked in the process's argv as
the first thing secretfs does, so a local user polling /proc/PID/cmdline of an
`update-secrets` that waits on the store's lock never sees it; `--secrets NAME` takes the
value from the environment and `--secrets-file -` from standard input, so it need not be on a
command line at all."""
import fcntl
import os
import subprocess
import time

from harness import (SECRETFS, CliSandbox, canary, check, ensure_test_user, run_all)

RUNS = 5


def cmdline_as_user(pid, uid, gid):
    """What another local user reads from /proc/PID/cmdline (bytes)."""
    p = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups",
                        "--", "cat", "/proc/%d/cmdline" % pid], capture_output=True)
    return p.stdout


def blocked_update(sb, args, value, uid, gid):
    """Runs update-secrets ARGS while the store's lock is held; polls its cmdline as another
    user.  Returns how many of the polls saw `value`."""
    lock = os.open(sb.store + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    p = subprocess.Popen([SECRETFS, "update-secrets"] + args, env=sb.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = polls = 0
    try:
        # once it says it waits, it is long past main(): poll it for a while
        line = p.stderr.readline()
        check(b"waiting for" in line, "update-secrets did not say it waits for the lock")
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            polls += 1
            if value in cmdline_as_user(p.pid, uid, gid):
                seen += 1
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    p.stderr.read()
    check(p.wait(timeout=30) == 0, "update-secrets failed once the lock was free")
    return seen, polls


def test_value_blanked_in_cmdline():
    uid, gid = ensure_test_user()
    with CliSandbox() as sb:
        sb.run(["set", "SEED"], input=b"seed")
        caught = 0
        for i in range(RUNS):
            value = canary("argv")
            form = ["--secrets", "K%d=%s" % (i, value.decode())] if i % 2 else \
                ["--secrets=K%d=%s" % (i, value.decode())]
            seen, polls = blocked_update(sb, form, value, uid, gid)
            caught += 1 if seen else 0
            check(sb.get("K%d" % i) == value, "K%d was not stored exactly" % i)
        print("value seen in /proc/PID/cmdline in %d of %d runs" % (caught, RUNS))
        check(caught == 0, "another user read the value from argv in %d of %d runs" % (
            caught, RUNS))


def test_name_from_environment():
    with CliSandbox() as sb:
        value = canary("env")
        env = sb.env_with(API_TOKEN=value.decode())
        sb.run(["update-secrets", "--secrets", "API_TOKEN"], env=env)
        check(sb.get("API_TOKEN") == value, "--secrets NAME did not store NAME's value")
        p = sb.run(["update-secrets", "--secrets", "NOT_SET_ANYWHERE"], rc=1)
        check(b"#1" in p.stderr and b"environment" in p.stderr,
              "a missing variable is not reported")


def test_secrets_file_from_stdin():
    with CliSandbox() as sb:
        value = canary("stdin")
        sb.run(["update-secrets", "--secrets-file", "-"], input=b"FROM_STDIN=" + value + b"\n")
        check(sb.get("FROM_STDIN") == value, "--secrets-file - did not read standard input")


if __name__ == "__main__":
    run_all(test_value_blanked_in_cmdline, test_name_from_environment,
            test_secrets_file_from_stdin)
