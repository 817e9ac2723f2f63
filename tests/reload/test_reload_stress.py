"""Stress: 4 reader processes read in a loop while 500 reloads alternate between two stores
whose values are self-checking (each says its generation and name and carries a SHA-256).
Whole-file reads (both cache modes) and many-small-read()s readers (cache=none) must never
see a torn or mixed value or an error; every reload must succeed; and right after each
reload a new open must see the new generation.  The counts are printed."""
import json
import os
import time

from reloadlib import (check, read_small, collect_readers, fork_reader, install_store, run_all, make_store,
                       need_fuse, reload_cli, sighup_and_wait, Sandbox, checked_value,
                       verify_value)

RELOADS = int(os.environ.get("SFS_STRESS_RELOADS", "500"))
NAMES = ["S%d" % i for i in range(8)]
# S0-S3 change size between the generations, S4-S7 keep it (only their bytes change)
SIZES = {"A": [300, 1100, 2270, 3500, 700, 1500, 2300, 3100],
         "B": [3500, 700, 3090, 1040, 700, 1500, 2300, 3100]}
RESIZED = {n for i, n in enumerate(NAMES) if SIZES["A"][i] != SIZES["B"][i]}


def values(gen):
    return {n: checked_value(gen, n, SIZES[gen][i]) for i, n in enumerate(NAMES)}


def whole_read(path):
    """One read() with a buffer larger than any value, then the read() that should say EOF.
    Returns (first, rest)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        first = os.read(fd, 65536)
        rest = b""
        while True:
            more = os.read(fd, 65536)
            if not more:
                return first, rest
            rest += more
    finally:
        os.close(fd)


def small_read(path):
    return read_small(path, chunk=13)


def classify(data, name):
    """Describes a torn read without printing it: which generations it is made of."""
    i = NAMES.index(name)
    out = []
    for gen in ("A", "B"):
        v = values(gen)[name]
        common = 0
        while common < min(len(v), len(data)) and v[common] == data[common]:
            common += 1
        out.append("%s: size %d, first %d bytes match" % (gen, len(v), common))
    zeros = len(data) - len(data.rstrip(b"\0"))
    return "%s read %d bytes (%d trailing NULs); %s" % (name, len(data), zeros, "; ".join(out))


def reader(mnt, kind, stop, out_fd, seed, per_open):
    counts = {"kind": kind, "reads": 0, "torn": 0, "torn_resized": 0, "errors": 0, "A": 0,
              "B": 0, "err_kinds": [], "past_eof": 0}
    fn = whole_read if kind == "whole" else small_read
    i = seed
    while not os.path.exists(stop):
        for _ in range(20):
            name = NAMES[i % len(NAMES)]
            i += 1
            try:
                data = fn(os.path.join(mnt, name))
            except OSError as e:
                counts["errors"] += 1
                if len(counts["err_kinds"]) < 5:
                    counts["err_kinds"].append("%s: %s" % (name, e.strerror))
                continue
            counts["reads"] += 1
            if kind == "whole":
                data, rest = data
                if rest:
                    # cache=kernel: a reload between the read() calls of one open shows
                    # the new generation's bytes past the old end (opens pin nothing there)
                    counts["past_eof"] += 1
                    if per_open:
                        data += rest
            gen = verify_value(data, name)
            if gen is None:
                counts["torn_resized" if name in RESIZED else "torn"] += 1
                if len(counts.setdefault("samples", [])) < 6:
                    counts["samples"].append(classify(data, name))
            else:
                counts[gen] += 1
    os.write(out_fd, json.dumps(counts).encode())


def run_mode(cache, kinds):
    with Sandbox() as sb:
        stores = {}
        for gen in ("A", "B"):
            stores[gen] = os.path.join(sb.dir, "prepared-%s.store" % gen)
            make_store(sb, stores[gen], values(gen))
        install_store(sb, stores["A"])
        mnt, pid = sb.mount(opts=["-o", "cache=%s,rollback=allow" % cache])
        stop = os.path.join(sb.dir, "stop")
        children = []
        for n, kind in enumerate(kinds):
            children.append(fork_reader(
                lambda w, n=n, kind=kind: reader(mnt, kind, stop, w, n * 3, cache == "none")))
        failed = stale_after = 0
        fail_msgs = []
        started = time.monotonic()
        try:
            for k in range(RELOADS):
                gen = "B" if k % 2 == 0 else "A"
                install_store(sb, stores[gen])
                if k % 2 == 0:
                    p = reload_cli(sb, mnt)
                    ok = p.returncode == 0
                    if not ok and len(fail_msgs) < 3:
                        fail_msgs.append(p.stderr.decode(errors="replace").strip()[-200:])
                else:
                    st = sighup_and_wait(mnt, pid)
                    ok = st["last_reload"] == "ok"
                    if not ok and len(fail_msgs) < 3:
                        fail_msgs.append(st["last_reload"][:200])
                failed += not ok
                probe = NAMES[k % len(NAMES)]
                first, rest = whole_read(os.path.join(mnt, probe))
                if verify_value(first, probe) != gen or rest:
                    stale_after += 1
        finally:
            open(stop, "w").close()
            results = collect_readers(children)
        elapsed = time.monotonic() - started
        report(cache, results, failed, stale_after, fail_msgs, elapsed)


def report(cache, results, failed, stale_after, fail_msgs, elapsed):
    for n, res in enumerate(results):
        print("cache=%-6s reader %d (%s): reads %d, torn/mixed %d (same-size values) + %d "
              "(resized values), errors %d, gen A %d, gen B %d, data past the first EOF %d%s"
              % (cache, n, res.get("kind"), res.get("reads", 0), res.get("torn", 0),
                 res.get("torn_resized", 0), res.get("errors", 0), res.get("A", 0),
                 res.get("B", 0), res.get("past_eof", 0),
                 (" " + "; ".join(res["err_kinds"])) if res.get("err_kinds") else ""))
        for smp in res.get("samples", [])[:3]:
            print("    torn: " + smp)
    print("cache=%-6s reloads %d in %.1f s, failed %d, stale right after reload %d%s" % (
        cache, RELOADS, elapsed, failed, stale_after,
        (": " + " | ".join(fail_msgs)) if fail_msgs else ""), flush=True)
    check(all("crashed" not in r for r in results), "a reader process crashed")
    for n, res in enumerate(results):
        check(res["reads"] > 0, "reader %d read nothing" % n)
        check(res["torn"] == 0, "cache=%s reader %d (%s): %d torn or mixed reads of values "
              "that keep their size" % (cache, n, res["kind"], res["torn"]))
        if cache == "none":
            # one open reads one generation, whatever the sizes and however it reads
            check(res["torn_resized"] == 0, "cache=none reader %d (%s): %d torn or mixed "
                  "reads" % (n, res["kind"], res["torn_resized"]))
        check(res["errors"] == 0, "cache=%s reader %d: %d read errors" % (
            cache, n, res["errors"]))
        check(res["A"] > 0 and res["B"] > 0, "cache=%s reader %d never saw both "
              "generations" % (cache, n))
    check(failed == 0, "cache=%s: %d reloads failed" % (cache, failed))
    check(stale_after == 0, "cache=%s: %d reads right after a reload were stale" % (
        cache, stale_after))


def test():
    need_fuse()
    run_mode("kernel", ["whole"] * 4)
    run_mode("none", ["whole", "whole", "small", "small"])


if __name__ == "__main__":
    run_all(test)
