"""The etcd backend's C-level tests against real loopback clusters (suite `etcd`).

Starts a single-member cluster, a 3-member cluster and a single member with auth
(--auth-token-ttl 2), each on ports, data dirs and a cluster token of its own
(tests/lib/etcd_cluster.py), runs test_etcd's scenarios against them, performs the cluster
changes a scenario asks for ("STEP kill 0", "STEP compact", ...), greps every member's data
directory for the canary token and the secret names, and stops every member by pid even on
failure.  Exit 77 (skip) when etcd or etcdctl is missing.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import etcd_cluster  # noqa: E402
from etcd_cluster import EtcdCluster  # noqa: E402

EXE = os.environ.get("SFS_TEST_ETCD", "")
NAMES = [b"ALL_BYTES", b"ONE_MIB", b"BIG_9999", b"ATOM_42", b"RACER_1_7", b"TAMPER_3",
         b"COMPACT_2", b"KILL_NEW_3", b"QUORUM_0", b"AUTH_1"]
failures = []


def do_step(cluster, words):
    if words[0] == "compact":
        print("   compacted at revision %d" % cluster.compact())
    elif words[0] == "kill":
        for i in words[1:]:
            cluster.kill(int(i))
        print("   killed member(s) %s" % " ".join(words[1:]))
    elif words[0] == "restart":
        for i in words[1:]:
            cluster.restart(int(i), wait=False)
        cluster.wait_healthy()
        print("   restarted member(s) %s" % " ".join(words[1:]))
    else:
        raise RuntimeError("unknown step %r" % words)


def scenario(cluster, name, canary, env=None, prefix=None, timeout=240):
    prefix = prefix or "/sfs-test-%s-%s/" % (name, os.urandom(3).hex())
    full = dict(os.environ, SFS_ETCD_EP=",".join(cluster.endpoints), SFS_ETCD_PREFIX=prefix,
                SFS_CANARY=canary, **(env or {}))
    t0 = time.monotonic()
    print("== %s (%d member(s))" % (name, cluster.n), flush=True)
    p = subprocess.Popen([EXE, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=full, text=True)
    try:
        for line in p.stdout:
            if line.startswith("STEP "):
                do_step(cluster, line.split()[1:])
                p.stdin.write("ok\n")
                p.stdin.flush()
            else:
                print("   " + line.rstrip(), flush=True)
        rc = p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    print("   %s: exit %d in %.1f s" % (name, rc, time.monotonic() - t0), flush=True)
    if rc != 0:
        failures.append(name)
    return prefix


def no_plaintext(cluster, canary):
    found = cluster.grep_data([canary.encode()] + NAMES)
    files = len(cluster.data_files())
    if found:
        failures.append("plaintext in the data dirs")
        for needle, paths in found.items():
            print("   FOUND %r in %s" % (needle[:12], ", ".join(os.path.basename(p)
                                                               for p in paths[:3])))
    else:
        print("   no canary value or name in %d data-dir files" % files)


def write_pw(d, name, pw):
    path = os.path.join(d, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(pw + "\n")
    return path


def main():
    reason = etcd_cluster.available()
    if reason:
        print("SKIP: %s" % reason)
        return 77
    if not os.path.isfile(EXE):
        print("SKIP: SFS_TEST_ETCD does not name the test_etcd binary")
        return 77
    etcd_cluster.cleanup_on_signals()
    canary = "sfscanary%s" % os.urandom(6).hex()
    with EtcdCluster(1) as one:
        for name in ("roundtrip", "big", "atomic", "tamper", "compact"):
            scenario(one, name, canary)
        no_plaintext(one, canary)
    with EtcdCluster(3) as three:
        for name in ("race", "killwatch"):
            scenario(three, name, canary)
        no_plaintext(three, canary)
    with EtcdCluster(1, auth_token_ttl=2) as a:
        prefix = "/sfs-test-auth-%s/" % os.urandom(3).hex()
        ro, rw = os.urandom(8).hex(), os.urandom(8).hex()
        a.enable_auth(prefix, readers=["sfsro:" + ro], writers=["sfsrw:" + rw])
        env = {"SFS_ETCD_RO_PW": write_pw(a.dir, "ro.pw", ro),
               "SFS_ETCD_RW_PW": write_pw(a.dir, "rw.pw", rw)}
        scenario(a, "auth", canary, env, prefix)
        no_plaintext(a, canary)
    if failures:
        print("FAILED: %s" % ", ".join(failures))
        return 1
    print("all etcd scenarios passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
