#!/usr/bin/env python3
"""Concurrent writers never lose one another's updates, and readers never see a broken
store while they write."""
import os
import subprocess
import sys
import threading
import time

from harness import SECRETFS, CliSandbox, check, run_all  # noqa: E402

UPDATES = 200


def value(worker, i):
    return ("%s-value-%03d-" % (worker, i)).encode() * (1 + i % 5)


def writer(sb, worker, mode, barrier, errors, spans):
    barrier.wait()
    start = time.monotonic()
    for i in range(UPDATES):
        name = "%s_%03d" % (worker, i)
        if mode == "set":
            args, inp = ["set", name], value(worker, i)
        else:
            args, inp = ["update-secrets", "--secrets", name.encode() + b"=" + value(worker, i)
                         ], None
        p = subprocess.run([SECRETFS] + args, input=inp, capture_output=True, env=sb.env,
                           timeout=60)
        if p.returncode != 0:
            errors.append("%s %s exited %d: %s" % (mode, name, p.returncode,
                                                   p.stderr.decode(errors="replace")[:300]))
    spans.append((start, time.monotonic()))


def reader(sb, stop, errors, count):
    while not stop.is_set():
        p = subprocess.run([SECRETFS, "list"], capture_output=True, env=sb.env, timeout=60)
        count[0] += 1
        if p.returncode != 0 and b"no store there yet" not in p.stderr:
            errors.append("list during writes exited %d: %s" % (
                p.returncode, p.stderr.decode(errors="replace")[:300]))


def run_writers(modes):
    with CliSandbox() as sb:
        errors, spans, count = [], [], [0]
        barrier = threading.Barrier(len(modes))
        stop = threading.Event()
        threads = [threading.Thread(target=writer, args=(sb, "W%d" % k, mode, barrier, errors,
                                                         spans))
                   for k, mode in enumerate(modes)]
        rd = threading.Thread(target=reader, args=(sb, stop, errors, count))
        rd.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        rd.join()
        check(not errors, "%d commands failed; first: %s" % (len(errors),
                                                              errors[0] if errors else ""))
        check(max(s for s, _ in spans) < min(e for _, e in spans), "the writers did not overlap")
        names = sb.names()
        want = {"W%d_%03d" % (k, i): len(value("W%d" % k, i))
                for k in range(len(modes)) for i in range(UPDATES)}
        lost = sorted(set(want) - set(names))
        check(not lost, "%d updates were lost (e.g. %s)" % (len(lost), lost[:5]))
        check(names == want, "the store holds unexpected names or sizes")
        for k in range(len(modes)):
            for i in range(0, UPDATES, 7):
                name = "W%d_%03d" % (k, i)
                check(sb.get(name) == value("W%d" % k, i), "%s has the wrong bytes" % name)
        check(sb.temp_files() == [], "temporary files left: %s" % sb.temp_files()[:5])
        print("%s: %d updates, %d concurrent lists" % ("+".join(modes), len(want), count[0]))


def test_two_set_writers():
    run_writers(["set", "set"])


def test_set_and_update_secrets_writers():
    run_writers(["set", "update-secrets"])


if __name__ == "__main__":
    run_all(test_two_set_writers, test_set_and_update_secrets_writers)
