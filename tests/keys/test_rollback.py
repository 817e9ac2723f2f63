#!/usr/bin/env python3
"""A store older than what the daemon serves (or this host served) is refused."""
import os
import re

from harness import Sandbox, check, need_fuse, run_all, unmount  # noqa: E402


def store_bytes(sb):
    with open(sb.store, "rb") as f:
        return f.read()


def put_store(sb, data):
    tmp = sb.store + ".copy"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.rename(tmp, sb.store)


def test_rollback_at_reload_and_start():
    need_fuse()
    with Sandbox() as sb:
        state = os.path.join(sb.dir, "state")
        opts = ["--state-dir", state]
        sb.set_secrets({"A": b"one"})              # store version V1 (the clock, in us)
        old = store_bytes(sb)
        sb.set_secrets({"A": b"two"})              # version V2 > V1
        mnt, pid = sb.mount(opts=opts)
        check(open(os.path.join(mnt, "A"), "rb").read() == b"two", "wrong value served")

        # at reload: refused, the newer set keeps serving
        put_store(sb, old)
        p = sb.run(["reload", mnt], check_rc=False)
        check(p.returncode == 1, "a rolled-back store was swapped in")
        st = sb.status(mnt)
        last = st["last_reload"]
        m = re.fullmatch(r"error: store version (\d+) is older than the served version "
                         r"(\d+) \(rollback\?\)", last)
        check(m, ".status says %r" % last)
        check(m and st.get("store_version") == m.group(2),
              ".status store_version names the served version: %s" % st.get("store_version"))
        check(b"older than the served version" in p.stderr, "reload does not say why")
        check(open(os.path.join(mnt, "A"), "rb").read() == b"two", "the old value is served")
        unmount(mnt)

        # at start: this host served version 2 before
        mnt2 = sb.mountpoint("mnt2")
        p = sb.run(["mount"] + opts + [mnt2], check_rc=False)
        check(p.returncode == 1, "a daemon started on a rolled-back store")
        check(re.search(rb"store version \d+ is older than version \d+", p.stderr) and
              b"--allow-rollback" in p.stderr, "the start refusal: %r" % p.stderr[-400:])
        check(not os.path.exists(os.path.join(mnt2, "A")), "something was mounted")

        # --allow-rollback once: accepted, and recorded, so the next start needs nothing
        mnt2, pid2 = sb.mount(mnt2, opts=opts + ["--allow-rollback"])
        check(open(os.path.join(mnt2, "A"), "rb").read() == b"one", "restore not served")
        unmount(mnt2)
        mnt3, _ = sb.mount(sb.mountpoint("mnt3"), opts=opts)
        check(open(os.path.join(mnt3, "A"), "rb").read() == b"one", "restore not served")
        # newer writes still go through
        sb.set_secrets({"A": b"three"})
        sb.run(["reload", mnt3])
        check(open(os.path.join(mnt3, "A"), "rb").read() == b"three", "a newer store refused")


def test_v1_golden_store_is_version_zero():
    """The previous format's store opens (as version 0), and is older than any write."""
    need_fuse()
    src = os.environ["SFS_TEST_SRC"]
    with Sandbox() as sb:
        with open(os.path.join(src, "data", "golden.key"), "rb") as f:
            key = f.read()
        with open(sb.key, "wb") as f:
            f.write(key)
        os.chmod(sb.key, 0o600)
        with open(os.path.join(src, "data", "golden.store"), "rb") as f:
            golden = f.read()
        put_store(sb, golden)
        check(sb.run(["get", "API_TOKEN"]).stdout == b"tok_live_0123456789abcdef",
              "the golden v1 store does not open")
        state = os.path.join(sb.dir, "state")
        mnt, _ = sb.mount(opts=["--state-dir", state])
        check("store_version" not in sb.status(mnt), "a v1 store has no version to show")
        sb.set_secrets({"NEW": b"x"})               # rewritten as v2, version 1
        sb.run(["reload", mnt])
        check(store_bytes(sb)[8] == 2, "a write did not produce a version-2 store")
        put_store(sb, golden)
        check(sb.run(["reload", mnt], check_rc=False).returncode == 1,
              "the v1 store replaced a newer one")


if __name__ == "__main__":
    run_all(test_rollback_at_reload_and_start, test_v1_golden_store_is_version_zero)
