#!/usr/bin/env python3
"""The etcd writer under faults, through the CLI and a TCP proxy in front of a real member
(tests/lib/etcd_cluster.py TcpProxy.fault):

- a lost answer: the member applies the commit txn, the writer's connection is reset before
  the answer arrives.  `rm`, a staged `update-secrets` and an `rm` overtaken by another
  writer report what really happened (the change landed: exit 0) and apply it once; when
  etcd cannot be reached any more, the command says the outcome is unknown.
"""
import base64
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mount"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import SECRETFS, CliSandbox, canary, check, redact, run_all  # noqa: E402
import etcd_cluster  # noqa: E402
from etcd_cluster import EtcdCluster, txn_touching  # noqa: E402

CONFIG = "[etcd]\ndial_timeout = 2\nrequest_timeout = 8\n"


class Writer:
    """A sandbox, a one-member cluster, a fresh prefix, and a proxy to the member."""

    def __init__(self, sb, c):
        self.sb, self.c = sb, c
        self.prefix = "/sfs-writer-%s/" % os.urandom(3).hex()
        self.commit_key = (self.prefix + "commit").encode()
        self.px = c.proxy(0)
        self.via_proxy = "etcd://%s%s" % (self.px.endpoint, self.prefix)
        self.direct = "etcd://%s%s" % (c.members[0].endpoint, self.prefix)
        sb.write_config(CONFIG)

    def run(self, args, store=None, **kw):
        return self.sb.run(list(args) + ["--store", store or self.via_proxy], **kw)

    def set(self, name, value, store=None):
        return self.run(["set", name], store=store, input=value)

    def names(self):
        return set(self.sb.names(["--store", self.direct]))

    def commit_version(self):
        """etcd's modification count of the commit key: +1 per commit that landed."""
        r = self.c._post("kv/range", {"key": base64.b64encode(self.commit_key).decode()})
        return int(r["kvs"][0]["version"])

    def lose_next_commit_answer(self, hook=None):
        return self.px.fault(txn_touching(self.commit_key), "drop_answer", hook=hook)


def test_lost_answer_rm():
    """`secretfs rm A` whose commit answer is lost: A is gone, exit 0, one commit."""
    with CliSandbox() as sb, EtcdCluster(1, parent_dir=sb.dir) as c:
        w = Writer(sb, c)
        w.set("A", canary("lost"))
        w.set("B", canary("lost"))
        before = w.commit_version()
        f = w.lose_next_commit_answer()
        p = w.run(["rm", "A"], check_rc=False)
        check(f.fired == 1, "the proxy dropped no commit answer")
        check(p.returncode == 0, "rm after a lost answer exited %d: %s" % (
            p.returncode, redact(p.stderr)[-600:]))
        check(w.names() == {"B"}, "names after the rm: %s" % sorted(w.names()))
        check(w.commit_version() == before + 1, "the rm was committed %d times" % (
            w.commit_version() - before))


def test_lost_answer_staged():
    """A staged write (150 new values) whose commit answer is lost: every value is there,
    exit 0, one commit, and the set it committed still opens (its generation was kept)."""
    with CliSandbox() as sb, EtcdCluster(1, parent_dir=sb.dir) as c:
        w = Writer(sb, c)
        w.set("BASE", canary("staged"))
        values = {"S%03d" % i: canary("s%d" % i) for i in range(150)}
        env = sb.write("many.env", b"".join(b"%s='%s'\n" % (k.encode(), v)
                                            for k, v in values.items()))
        before = w.commit_version()
        f = w.lose_next_commit_answer()
        p = w.run(["update-secrets", "--secrets-file", env], check_rc=False)
        check(f.fired == 1, "the proxy dropped no commit answer")
        check(p.returncode == 0, "a staged write after a lost answer exited %d: %s" % (
            p.returncode, redact(p.stderr)[-600:]))
        got = sb.run(["list", "--json", "--store", w.direct], check_rc=False)
        check(got.returncode == 0, "the set does not open after the lost answer: %s" %
              redact(got.stderr)[-600:])
        check(w.names() == set(values) | {"BASE"}, "%d names after the staged write" %
              len(w.names()))
        check(w.commit_version() == before + 1, "the write was committed %d times" % (
            w.commit_version() - before))
        check(sb.get("S007", ["--store", w.direct]) == values["S007"], "S007 differs")


def test_lost_answer_then_another_writer():
    """The answer is lost and another writer commits before the first one asks again: the
    first still finds out that its rm landed (the commit's history, not its current value,
    says so), and the other writer's change is kept."""
    with CliSandbox() as sb, EtcdCluster(1, parent_dir=sb.dir) as c:
        w = Writer(sb, c)
        w.set("A", canary("race"))
        w.set("B", canary("race"))
        other = canary("other")

        def other_writer():
            p = subprocess.run([SECRETFS, "set", "OTHER", "--store", w.direct], input=other,
                               capture_output=True, env=sb.env, timeout=30)
            check(p.returncode == 0, "the other writer failed: %s" % redact(p.stderr)[-400:])

        before = w.commit_version()
        f = w.lose_next_commit_answer(hook=other_writer)
        p = w.run(["rm", "A"], check_rc=False)
        check(f.fired == 1, "the proxy dropped no commit answer")
        check(p.returncode == 0, "rm overtaken after a lost answer exited %d: %s" % (
            p.returncode, redact(p.stderr)[-600:]))
        check(w.names() == {"B", "OTHER"}, "names: %s" % sorted(w.names()))
        check(w.commit_version() == before + 2, "%d commits for two changes" % (
            w.commit_version() - before))


def test_lost_answer_unreachable():
    """The answer is lost and the member cannot be reached any more: the command cannot
    know whether its change landed, and says exactly that (exit 1), instead of "failed"."""
    with CliSandbox() as sb, EtcdCluster(1, parent_dir=sb.dir) as c:
        w = Writer(sb, c)
        w.set("A", canary("unknown"))
        w.set("B", canary("unknown"))
        sb.write_config("[etcd]\ndial_timeout = 0.5\nrequest_timeout = 2\n")
        f = w.lose_next_commit_answer(hook=w.px.cut)
        p = w.run(["rm", "A"], check_rc=False)
        check(f.fired == 1, "the proxy dropped no commit answer")
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 1 and "outcome of this write is unknown" in err,
              "rm with its answer lost and etcd gone exited %d: %s" % (
                  p.returncode, redact(p.stderr)[-600:]))
        print("   %s" % err.strip()[-200:])
        w.px.heal()
        check(w.names() == {"B"}, "the rm did not land after all: %s" % sorted(w.names()))


def main():
    reason = etcd_cluster.available()
    if reason:
        print("SKIP: %s" % reason)
        return 77
    etcd_cluster.cleanup_on_signals()
    return run_all(test_lost_answer_rm, test_lost_answer_staged,
                   test_lost_answer_then_another_writer, test_lost_answer_unreachable)


if __name__ == "__main__":
    sys.exit(main())
