"""Fleet concurrency: writers through different members never lose one another; a reader
never sees part of an update.

- ten `secretfs set` processes at once, through members 0, 1, 2 in turn: all ten changes
  are in the store and on every mount
- updates of 100 secrets at a time: readers of two mounts (cache=kernel and cache=none)
  reading the .env.json view (one generation per read) and every file (checked with the
  generation file's seq) see all 100 new values or none
"""
import json
import os
import signal
import subprocess

from fleetlib import (SECRETFS, stop_reader, Fleet, canary, check, fleet_main, generation_file, read,
                      redact, serves, wait_until)

N_WRITERS = 10
N_SECRETS = 100
N_UPDATES = 6


def test_ten_parallel_writers():
    with Fleet() as f:
        f.put_secrets({"W_BASE": canary("w")})
        mnts = [f.mount(i) for i in range(3)]
        want = {"W_%d" % i: canary("w%d" % i) for i in range(N_WRITERS)}
        procs = []
        for i, (name, value) in enumerate(want.items()):
            p = subprocess.Popen([SECRETFS, "set", name, "--store", f.loc(i % 3)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=f.env)
            procs.append((name, p, value))
        for name, p, value in procs:
            p.stdin.write(value)
            p.stdin.close()
        for name, p, value in procs:
            err = p.stderr.read()
            p.wait(60)
            check(p.returncode == 0, "writer of %s exited %d: %s" % (name, p.returncode,
                                                                   redact(err)[-400:]))
            check(b"cnry-" not in err + p.stdout.read(), "a value in a writer's output")
        listed = f.names()
        missing = sorted(set(want) - set(listed))
        check(not missing, "lost writes: %s" % ", ".join(missing))
        want["W_BASE"] = f.get("W_BASE")
        f.wait_served(mnts, want, what="all ten writes on every mount")
        f.check_no_leaks(list(want))


def reader_child(mnts, names, w):
    """Reads until SIGTERM; reports torn snapshots (mixed generation tags) by count."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    views = files = torn_views = torn_files = 0
    tags_seen = set()
    try:
        while not stop:
            for m in mnts:
                try:
                    obj = json.loads(read(os.path.join(m, ".env.json")))
                except (OSError, ValueError):
                    torn_views += 1
                    continue
                tags = {obj.get(n, "absent").split("-", 1)[0] for n in names}
                views += 1
                tags_seen |= tags
                if len(tags) != 1:
                    torn_views += 1
                gen = generation_file(m)
                before = read(gen) if gen else None
                if before is None or b"seq=" not in before or int(
                        before.split(b"seq=")[1].split()[0]) % 2:
                    continue
                try:
                    ftags = {read(os.path.join(m, n)).split(b"-", 1)[0] for n in names}
                except OSError:
                    continue
                if read(gen) != before:
                    continue          # a reload ran meanwhile: this read proves nothing
                files += 1
                if len(ftags) != 1:
                    torn_files += 1
    finally:
        os.write(w, json.dumps({"views": views, "files": files, "torn_views": torn_views,
                                "torn_files": torn_files, "tags": len(tags_seen)}).encode())
        os._exit(0)


def test_reader_sees_all_or_none():
    with Fleet() as f:
        names = ["BULK_%03d" % i for i in range(N_SECRETS)]

        def update(tag):
            path = f.write("bulk.env", "".join("%s=%s-%s\n" % (n, tag, canary("b").decode())
                                               for n in names))
            f.admin(["update-secrets", "--secrets-file", path])

        update("g0")
        mnts = [f.mount(0), f.mount(2, opts=["-o", "cache=none"])]
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            reader_child(mnts, names, w)
        os.close(w)
        try:
            for k in range(1, N_UPDATES + 1):
                update("g%d" % k)
                first = f.get(names[0])
                wait_until(lambda: all(serves(m, {names[0]: first}) for m in mnts),
                           "update %d on both mounts" % k, mnts)
        finally:
            res = stop_reader(pid, r)
        print("   %d view reads, %d whole-set file reads, %d generations seen" % (
            res["views"], res["files"], res["tags"]))
        check(res["views"] > 0 and res["files"] > 0, "the reader read nothing")
        check(res["torn_views"] == 0, "%d .env.json reads mixed two updates" % res["torn_views"])
        check(res["torn_files"] == 0, "%d reads of all 100 files within one seq mixed two "
              "updates" % res["torn_files"])
        f.check_no_leaks(names)


if __name__ == "__main__":
    fleet_main(test_ten_parallel_writers, test_reader_sees_all_or_none)
