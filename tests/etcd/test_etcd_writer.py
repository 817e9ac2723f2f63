#!/usr/bin/env python3
"""The etcd writer under faults, through the CLI and a TCP proxy in front of a real member
(tests/lib/etcd_cluster.py TcpProxy.fault):

- a lost answer: the member applies the commit txn, the writer's connection is reset before
  the answer arrives.  `rm`, a staged `update-secrets` and an `rm` overtaken by another
  writer report what really happened (the change landed: exit 0) and apply it once; when
  etcd cannot be reached any more, the command says the outcome is unknown.
- orphaned staged generations: a writer killed between staging and commit, and one left
  by an older secretfs (no mark), are reclaimed by later writers once abandoned, never
  while their writer may be at work; a writer whose generation is reclaimed under it (a
  backdated mark) stages again instead of committing a broken set.
"""
import base64
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mount"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import SECRETFS, CliSandbox, canary, check, leaks, redact, run_all  # noqa: E402
import etcd_cluster  # noqa: E402
from etcd_cluster import EtcdCluster, txn_not_touching, txn_touching  # noqa: E402

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


def spawn(w, args, store=None):
    """`secretfs ARGS --store STORE` in the background (the proxy's hooks may kill it)."""
    return subprocess.Popen([SECRETFS] + list(args) + ["--store", store or w.via_proxy],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=w.sb.env)


def finished(p, what, rc):
    out, err = p.communicate(timeout=120)
    check(leaks(out + err) == 0, "%s: a secret value appears in its output" % what)
    check(p.returncode == rc, "%s exited %d, expected %d: %s" % (
        what, p.returncode, rc, redact(err)[-600:]))
    return err.decode(errors="replace")


def many(sb, tag, n):
    """{name: canary} of n values and a dotenv file holding them: an update-secrets of
    more than 99 new values stages a whole generation."""
    values = {"%s%03d" % (tag, i): canary(tag) for i in range(n)}
    env = sb.write(tag + ".env", b"".join(b"%s='%s'\n" % (k.encode(), v)
                                          for k, v in values.items()))
    return values, env


def test_crashed_writer_reclaimed():
    """A writer killed (-9) between staging 250 new values (a whole set of 251) and its
    commit leaves a marked generation that is not the set; later writers leave it alone
    while its writer could still be at work, and reclaim it (logging what) once its mark
    says it is abandoned."""
    with CliSandbox() as sb, EtcdCluster(1, parent_dir=sb.dir) as c:
        w = Writer(sb, c)
        w.set("BASE", canary("crash"))
        values, env = many(sb, "C", 250)
        victim = []
        f = w.px.fault(txn_touching(w.commit_key), "drop_request",
                       hook=lambda: os.kill(victim[0].pid, signal.SIGKILL))
        victim.append(spawn(w, ["update-secrets", "--secrets-file", env]))
        finished(victim[0], "the writer killed before its commit", -signal.SIGKILL)
        check(f.fired == 1, "the writer never reached its commit")
        gens = c.generations(w.prefix)
        staged = [g for g, v in gens.items() if v["mark"] is not None]
        check(len(gens) == 2 and len(staged) == 1, "generations after the crash: %s" % {
            g: (v["values"], v["mark"] is not None) for g, v in gens.items()})
        orphan = staged[0]
        check(gens[orphan]["values"] == 251, "the orphan holds %d values" %
              gens[orphan]["values"])
        check(w.names() == {"BASE"}, "the staged generation was taken for the set")
        w.set("X", canary("crash"), store=w.direct)
        check(orphan in c.generations(w.prefix), "a writer reclaimed a generation whose "
              "writer may still be staging")
        c.abandon(w.prefix, orphan)
        p = w.set("Y", canary("crash"), store=w.direct)
        err = p.stderr.decode(errors="replace")
        check("reclaimed generation %s (251 values" % orphan in err,
              "the writer did not say what it reclaimed: %s" % redact(p.stderr)[-400:])
        print("   %s" % err.strip())
        gens = c.generations(w.prefix)
        check(list(gens) != [orphan] and len(gens) == 1 and
              all(v["mark"] is None for v in gens.values()),
              "generations after the reclaim: %d" % len(gens))
        check(w.names() == {"BASE", "X", "Y"}, "names: %s" % sorted(w.names()))


def test_unmarked_generation_reclaimed():
    """A generation without a mark that is not the set (an older secretfs's orphan) is
    marked by the next writer, dated then, and reclaimed once that mark is old."""
    with CliSandbox() as sb, EtcdCluster(1, parent_dir=sb.dir) as c:
        w = Writer(sb, c)
        w.set("BASE", canary("unmarked"))
        gen = os.urandom(8).hex()
        c.put_many({(w.prefix + "g/%s/%s" % (gen, os.urandom(16).hex())).encode():
                    os.urandom(80) for _ in range(3)})
        p = w.set("X", canary("unmarked"), store=w.direct)
        check("%s (3 values, 240 bytes) is not the set and has no staging mark" % gen in
              p.stderr.decode(), "no mark for the unmarked generation: %s" %
              redact(p.stderr)[-400:])
        mark = c.generations(w.prefix)[gen]["mark"]
        check(mark is not None and abs(int(mark.split()[0]) - time.time()) < 60,
              "the mark is not dated now")
        c.abandon(w.prefix, gen)
        p = w.set("Y", canary("unmarked"), store=w.direct)
        check("reclaimed generation %s" % gen in p.stderr.decode(), "not reclaimed: %s" %
              redact(p.stderr)[-400:])
        check(gen not in c.generations(w.prefix), "the generation is still there")


def test_slow_writer_survives_reclaim():
    """A writer that is still staging when another writer reclaims its generation (its mark
    backdated: a stuck process, or clocks far apart) never commits the reclaimed generation:
    its next batch compares the mark, it stages again and commits a whole set."""
    with CliSandbox() as sb, EtcdCluster(1, parent_dir=sb.dir) as c:
        w = Writer(sb, c)
        w.set("BASE", canary("slow"))
        values, env = many(sb, "W", 250)
        hold = w.px.fault(txn_not_touching(w.commit_key), "hold", skip=1)
        slow = spawn(w, ["update-secrets", "--secrets-file", env])
        try:
            w.px.wait_held(hold)
            staged = [g for g, v in c.generations(w.prefix).items() if v["mark"]]
            check(len(staged) == 1, "%d staged generations while held" % len(staged))
            w.set("Z", canary("slow"), store=w.direct)
            check(staged[0] in c.generations(w.prefix), "a young generation was reclaimed")
            c.abandon(w.prefix, staged[0])
            p = w.set("Y", canary("slow"), store=w.direct)
            check("reclaimed generation %s" % staged[0] in p.stderr.decode(),
                  "the backdated generation was not reclaimed: %s" % redact(p.stderr)[-400:])
        finally:
            w.px.release(hold)
        finished(slow, "the slow writer", 0)
        check(w.names() == set(values) | {"BASE", "Z", "Y"}, "%d names in the end" %
              len(w.names()))
        gens = c.generations(w.prefix)
        check(len(gens) == 1 and all(v["mark"] is None and v["values"] == 253
                                     for v in gens.values()),
              "generations in the end: %s" % {g: v["values"] for g, v in gens.items()})


def main():
    reason = etcd_cluster.available()
    if reason:
        print("SKIP: %s" % reason)
        return 77
    etcd_cluster.cleanup_on_signals()
    return run_all(test_lost_answer_rm, test_lost_answer_staged,
                   test_lost_answer_then_another_writer, test_lost_answer_unreachable,
                   test_crashed_writer_reclaimed, test_unmarked_generation_reclaimed,
                   test_slow_writer_survives_reclaim)


if __name__ == "__main__":
    sys.exit(main())
