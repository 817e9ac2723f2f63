#!/usr/bin/python3
"""Fleet rows of secretfs-bench (issue 14): a 3-member loopback etcd cluster, three daemons
each pointed at a different member, and

  11  update-secrets returning -> all three daemons serving the change (small set),
      p50 and p99 over >= 200 updates
  12  the same for a 10,000-secret set with one secret changed, with the bytes etcd sent to
      each daemon per update
  13  `secretfs mount` of a 10,000-secret etcd store until the files are visible

"Serving" is detected as a reader would: inotify on each daemon's generation file (the
daemon rewrites it once the new generation serves and the kernel's caches are invalidated),
then the changed file read through the mount must hold the new value (cache=kernel).

Bytes per update are measured on etcd's side: the writer talks to member 0 only and
daemon i watches member i first, so members 1 and 2 each serve exactly one daemon; the
growth of their etcd_network_client_grpc_sent_bytes_total (etcd's count of response bytes
to clients, the JSON gateway's traffic included, as protobuf before the gateway's base64
and JSON) during the updates, divided by the updates, is what one daemon fetched.

A benchmark, not a test: it prints figures against targets and exits 0 whenever every row
was measured (1: a row could not be measured; 77: no root, /dev/fuse or etcd).  Every
process it starts is stopped by pid, every mount unmounted, every directory removed, also
on failure and SIGTERM.  Values are random and never printed.

usage: fleet-bench.py --secretfs PATH [--quick] [--json] [--updates N]
"""
import argparse
import contextlib
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
import etcd_cluster  # noqa: E402

N_SMALL = 10
N_BIG = 10000
TARGET_P99_MS = 100.0
MISS_S = 5.0     # an update no daemon-set serves within this is counted as missed, not timed


def log(msg):
    print("fleet-bench: " + msg, file=sys.stderr, flush=True)


def pct(v, p):
    """The p-th percentile (nearest rank) of v."""
    s = sorted(v)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def is_mounted(path):
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == real for line in f)


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="sfs-fleet-bench-")
        os.chmod(self.dir, 0o755)
        self.key = os.path.join(self.dir, "master.key")
        self.config = os.path.join(self.dir, "secretfs.ini")
        self.mounts = []           # (path, pid)
        self.cluster = None
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("SECRETFS_") and not k.startswith("LIVEKIT_")}
        self.env["SECRETFS_CONFIG"] = self.config
        self.env["SECRETFS_KEY_FILE"] = self.key
        self.cmdlog = open(os.path.join(self.dir, "commands.log"), "ab")
        self.missed = []

    def sfs(self, argv, input=None, check=True):
        p = subprocess.run([self.args.secretfs] + argv, input=input, env=self.env,
                           stdout=self.cmdlog, stderr=subprocess.PIPE, timeout=300)
        if check and p.returncode != 0:
            raise RuntimeError("secretfs %s exited %d: %s" % (
                argv[0], p.returncode, p.stderr.decode(errors="replace")[-600:]))
        return p

    def setup(self):
        self.cluster = etcd_cluster.EtcdCluster(3, parent_dir=self.dir)
        with open(self.config, "w") as f:
            f.write("[store]\nkey_file = %s\n[etcd]\ndial_timeout = 2\nrequest_timeout = 10\n"
                    % self.key)
        self.sfs(["keygen", self.key])

    def loc(self, prefix, first, only=False):
        order = [first] if only else [(first + k) % 3 for k in range(3)]
        return self.cluster.location(prefix, order)

    def write_set(self, prefix, values):
        path = os.path.join(self.dir, "set.env")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            for k, v in values.items():
                f.write(b"%s=%s\n" % (k.encode(), v))
        self.sfs(["update-secrets", "--overwrite", "--secrets-file", path, "--store",
                  self.loc(prefix, 0, only=True)])

    def mount(self, prefix, member, name):
        mnt = os.path.join(self.dir, name)
        os.makedirs(mnt, exist_ok=True)
        t0 = time.monotonic()
        self.sfs(["mount", "--store", self.loc(prefix, member), mnt])
        os.stat(os.path.join(mnt, ".status"))
        took = time.monotonic() - t0
        st = self.status(mnt)
        self.mounts.append((mnt, int(st["pid"])))
        return mnt, took

    def unmount(self, mnt):
        for m, pid in list(self.mounts):
            if m != mnt:
                continue
            for cmd in (["fusermount3", "-u", "-z", m], ["umount", "-l", m]):
                if is_mounted(m):
                    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.01)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.mounts.remove((m, pid))

    def cleanup(self):
        for mnt, _ in list(self.mounts):
            with contextlib.suppress(Exception):
                self.unmount(mnt)
        if self.cluster:
            self.cluster.close()
        self.cmdlog.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def status(mnt):
        out = {}
        with open(os.path.join(mnt, ".status")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                out[k] = v
        return out

    def sent_bytes(self, member):
        with urllib.request.urlopen(self.cluster.members[member].url + "/metrics",
                                    timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("etcd_network_client_grpc_sent_bytes_total "):
                    return float(line.split()[1])
        return float("nan")

    # ---- one timed update ----

    def timed_updates(self, prefix, mnts, name, count, size):
        """`count` updates of `name` through member 0; returns the latencies (s) from the
        writer's exit to the last of `mnts` serving the new value."""
        ino = Inotify()
        gens = []
        for m in mnts:
            g = self.status(m).get("notify")
            if not g:
                raise RuntimeError("%s has no generation file (notify=)" % m)
            gens.append(g)
            ino.add(os.path.dirname(g))
        path = os.path.join(self.dir, "one.env")
        lat = []
        writer = self.loc(prefix, 0, only=True)
        try:
            for i in range(count):
                value = os.urandom(size // 2).hex().encode()[:size]
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(b"%s=%s\n" % (name.encode(), value))
                ino.drain()
                self.sfs(["update-secrets", "--secrets-file", path, "--store", writer])
                t0 = time.monotonic()
                pending = set(range(len(mnts)))
                deadline = t0 + MISS_S
                while pending:
                    for k in list(pending):
                        if read_value(os.path.join(mnts[k], name)) == value:
                            pending.discard(k)
                    if not pending:
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        info = []
                        for k in sorted(pending):
                            st = self.status(mnts[k])
                            info.append("daemon %d at revision %s (etcd %d)" % (
                                k, st.get("revision"), self.cluster.revision()))
                        self.missed.append("update %d: %s" % (i, ", ".join(info)))
                        log("update %d not served within %.0f s: %s" % (i, MISS_S,
                                                                         "; ".join(info)))
                        break
                    ino.wait(min(left, 0.05))
                if pending:
                    continue
                lat.append(time.monotonic() - t0)
        finally:
            ino.close()
        return lat


def read_value(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


class Inotify:
    """inotify on directories (ctypes): wait(timeout) returns when one changed."""

    def __init__(self):
        import ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")

    def add(self, directory):
        # IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
        if self.libc.inotify_add_watch(self.fd, directory.encode(), 0x8 | 0x80 | 0x100) < 0:
            raise OSError("inotify_add_watch %s failed" % directory)

    def drain(self):
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 65536):
                pass

    def wait(self, timeout):
        if select.select([self.fd], [], [], max(0.0, timeout))[0]:
            self.drain()

    def close(self):
        os.close(self.fd)


def missed_text(missed):
    if not missed:
        return ""
    return ("; %d update(s) NOT served within %.0f s, until a later one (%s)" % (
        len(missed), MISS_S, missed[0]))


def rand_values(n, size=64, tag="v"):
    return {"BENCH_%05d" % i: os.urandom(size // 2).hex().encode() for i in range(n)}


def run(args):
    rows = []
    b = Bench(args)
    try:
        b.setup()
        quick = args.quick
        n_upd = args.updates or (20 if quick else 200)
        n_big_upd = args.updates or (5 if quick else 200)
        rounds = 2 if quick else 7

        # 11: small set, three daemons on three members
        log("row 11: %d updates of a %d-secret set, 3 daemons" % (n_upd, N_SMALL))
        small = "bench-small-%s/" % os.urandom(3).hex()
        b.write_set(small, rand_values(N_SMALL))
        mnts = [b.mount(small, i, "small%d" % i)[0] for i in range(3)]
        b.missed = []
        lat = b.timed_updates(small, mnts, "BENCH_00000", n_upd, 64)
        missed11 = list(b.missed)
        p50, p99 = pct(lat, 50) * 1e3, pct(lat, 99) * 1e3
        rows.append({"id": 11, "name": "update-secrets -> 3 daemons serve it (%d secrets)" %
                     N_SMALL, "unit": "ms", "p50": p50, "p99": p99, "max": max(lat) * 1e3,
                     "samples": len(lat), "target": "p99 < %.0f ms" % TARGET_P99_MS,
                     "met": p99 < TARGET_P99_MS and not missed11, "missed": len(missed11),
                     "detail": "p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d updates served"
                               "%s" % (p50, p99, max(lat) * 1e3, len(lat), missed_text(
                                   missed11))})
        for m in mnts:
            b.unmount(m)

        # 12: 10,000 secrets, one changed per update; bytes on members 1 and 2
        log("row 12: %d updates of one secret in a %d-secret set" % (n_big_upd, N_BIG))
        big = "bench-big-%s/" % os.urandom(3).hex()
        values = rand_values(N_BIG)
        b.write_set(big, values)
        stored = sum(len(v) for v in b.cluster.range(("/" + big).encode())[0].values())
        mnts = [b.mount(big, i, "big%d" % i)[0] for i in range(3)]
        def daemon_bytes():
            return [float(b.status(m).get("watch_received_bytes", "nan")) for m in mnts]
        before, dbefore = [b.sent_bytes(1), b.sent_bytes(2)], daemon_bytes()
        t_before = time.monotonic()
        b.missed = []
        lat = b.timed_updates(big, mnts, "BENCH_04242", n_big_upd, 64)
        missed12 = list(b.missed)
        idle_s = time.monotonic() - t_before
        after, dafter = [b.sent_bytes(1), b.sent_bytes(2)], daemon_bytes()
        per_update = [(a - s) / n_big_upd for a, s in zip(after, before)]
        bpu = statistics.mean(per_update)
        dpu = statistics.mean((a - s) / n_big_upd for a, s in zip(dafter, dbefore))
        p50, p99 = pct(lat, 50) * 1e3, pct(lat, 99) * 1e3
        rows.append({"id": 12, "name": "the same, %d secrets, one changed" % N_BIG,
                     "unit": "ms", "p50": p50, "p99": p99, "max": max(lat) * 1e3,
                     "samples": len(lat), "target": "p99 < %.0f ms" % TARGET_P99_MS,
                     "met": p99 < TARGET_P99_MS and not missed12, "missed": len(missed12),
                     "bytes_per_update": bpu,
                     "daemon_watch_bytes_per_update": dpu, "set_bytes": stored,
                     "detail": "p50 %.1f ms, p99 %.1f ms over %d updates; etcd sent %.0f B "
                               "per daemon per update (members 1, 2: %.0f, %.0f; protobuf, "
                               "%.0f s of progress notifies included); the daemons' watch "
                               "streams received %.0f B per update (JSON, .status "
                               "watch_received_bytes); the whole set is %d B in etcd%s"
                               % (p50, p99, len(lat), bpu, per_update[0], per_update[1],
                                  idle_s, dpu, stored, missed_text(missed12))})
        for m in mnts:
            b.unmount(m)

        # 13: mount of the 10,000-secret store until visible
        log("row 13: %d mounts of a %d-secret etcd store" % (rounds, N_BIG))
        times = []
        for r in range(rounds):
            mnt, took = b.mount(big, r % 3, "mount%d" % r)
            first = read_value(os.path.join(mnt, "BENCH_00001"))
            if first != values["BENCH_00001"]:
                raise RuntimeError("mount %d does not serve the stored value" % r)
            times.append(took)
            b.unmount(mnt)
        med = statistics.median(times) * 1e3
        rows.append({"id": 13, "name": "mount %d-secret etcd store until visible" % N_BIG,
                     "unit": "ms", "p50": med, "p99": None, "max": max(times) * 1e3,
                     "samples": len(times), "target": "report", "met": None,
                     "detail": "median %.1f ms, min %.1f, max %.1f over %d mounts" % (
                         med, min(times) * 1e3, max(times) * 1e3, len(times))})
    finally:
        b.cleanup()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secretfs", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--updates", type=int, default=0)
    args = ap.parse_args()
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("SKIP: fleet rows need root and /dev/fuse")
        return 77
    reason = etcd_cluster.available()
    if reason:
        print("SKIP: fleet rows: %s" % reason)
        return 77
    etcd_cluster.cleanup_on_signals()
    t0 = time.monotonic()
    try:
        rows = run(args)
        err = None
    except (RuntimeError, etcd_cluster.EtcdError, OSError, subprocess.SubprocessError) as e:
        rows, err = [], str(e)
    if args.json:
        print(json.dumps({"rows": rows, "error": err, "elapsed_s": time.monotonic() - t0},
                         indent=2))
    else:
        print("%-3s %-48s %12s %12s  %-26s %s" % ("#", "fleet (etcd, 3 members, 3 daemons)",
                                                  "p50", "p99", "target", "met"))
        for r in rows:
            p99 = "-" if r["p99"] is None else "%.1f ms" % r["p99"]
            met = "report" if r["met"] is None else ("yes" if r["met"] else "NO")
            print("%-3d %-48s %12s %12s  %-26s %s" % (r["id"], r["name"], "%.1f ms" % r["p50"],
                                                     p99, r["target"], met))
            if r.get("bytes_per_update") is not None:
                print("%-3s %-48s %12s" % ("", "  bytes etcd sent per daemon per update",
                                           "%.0f B" % r["bytes_per_update"]))
                print("%-3s %-48s %12s" % ("", "  bytes of the daemon's watch per update",
                                           "%.0f B" % r["daemon_watch_bytes_per_update"]))
        for r in rows:
            print("%2d: %s" % (r["id"], r["detail"]))
        if err:
            print("fleet rows: ERROR: %s" % err)
    return 1 if err else 0


if __name__ == "__main__":
    sys.exit(main())
