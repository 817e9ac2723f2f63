#!/usr/bin/env python3
"""The CLI's etcd wiring against a real single-member cluster: the [etcd] section (accepted
keys, refused values, the password file's checks), every store command on an etcd://
location, and `secretfs copy` file -> etcd -> file and prefix -> prefix, exactly and
atomically.  Exit 77 without etcd."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mount"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import CliSandbox, canary, check, run_all  # noqa: E402
import etcd_cluster  # noqa: E402
from etcd_cluster import EtcdCluster  # noqa: E402


def fresh_prefix(tag):
    return "/sfs-cli-%s-%s/" % (tag, os.urandom(3).hex())


def test_config_section():
    with CliSandbox() as sb:
        loc = "etcd://127.0.0.1:1/sfs-cli-none/"
        sb.write_config("[etcd]\ndial_timeout = 0.2\nrequest_timeout = 0.5\nca_file = /x\n")
        p = sb.fails(["list", "--store", loc], 1, "127.0.0.1:1", "no member answered")
        check(p.stdout == b"", "list printed something without a cluster")
        sb.write_config("[etcd]\ndial_timeout = soon\n")
        sb.fails(["list"], 1, "secretfs.ini:5", "dial_timeout", "seconds")
        sb.write_config("[etcd]\nendpoints = x\n")
        sb.fails(["list"], 1, "secretfs.ini:5", "unknown key 'endpoints' in [etcd]")
        pw = sb.write("etcd.pw", "hunter2\n", mode=0o644)
        sb.write_config("[etcd]\nuser = u\npassword_file = %s\n" % pw)
        sb.fails(["list", "--store", loc], 1, pw, "chmod 600")
        os.chmod(pw, 0o600)
        os.symlink(pw, pw + ".link")
        sb.write_config("[etcd]\nuser = u\npassword_file = %s.link\n" % pw)
        sb.fails(["list", "--store", loc], 1, pw + ".link", "symlink")
        sb.write_config("[etcd]\nuser = u\n")
        sb.fails(["list", "--store", loc], 1, "password_file")
        sb.fails(["list", "--store", "etcd://127.0.0.1:2379"], 1, "no prefix")
        sb.fails(["list", "--store", "etcd://u:pw@127.0.0.1:2379/p/"], 1, "credentials")


def test_commands_and_copy():
    with CliSandbox() as sb, EtcdCluster(1, parent_dir=sb.dir) as c:
        a, b = c.location(fresh_prefix("a")), c.location(fresh_prefix("b"))
        values = {"A": canary("copy"), "BIN": bytes(range(256))}
        sb.set_secrets(values)
        sb.write_config("[etcd]\ndial_timeout = 2\nrequest_timeout = 5\n")
        sb.fails(["list", "--store", a], 1, "no store there yet")
        p = sb.run(["copy", "--from", sb.store, "--to", a])
        check(b"copied 2 secrets" in p.stdout, "copy did not say what it did")
        for name, v in values.items():
            check(sb.get(name, ["--store", a]) == v, "%s differs after file -> etcd" % name)
        sb.run(["set", "NEW", "--store", a], input=canary("new"))
        sb.run(["rm", "A", "--store", a])
        sb.run(["update-secrets", "--store", a, "--secrets", "UPD=1"])
        want = sb.names(["--store", a])
        check(set(want) == {"BIN", "NEW", "UPD"}, "names after set/rm/update: %s" %
              sorted(want))
        sb.run(["copy", "--from", a, "--to", b])
        check(sb.names(["--store", b]) == want, "prefix -> prefix differs")
        backup = os.path.join(sb.dir, "backup.store")
        sb.run(["copy", "--from", b, "--to", backup])
        check(sb.names(["--store", backup]) == want, "etcd -> file differs")
        check(sb.get("BIN", ["--store", backup]) == bytes(range(256)), "BIN differs")
        check(os.stat(backup).st_mode & 0o077 == 0, "the backup is readable by others")
        sb.fails(["copy", "--from", c.location(fresh_prefix("none")), "--to", backup], 1,
                 "nothing to copy")
        check(sb.names(["--store", backup]) == want, "a failed copy changed the destination")
        sb.fails(["copy", "--from", a], 2, "give --from and --to")
        sb.fails(["copy", "--from", a, "--to", a], 2, "the same store")
        other = os.path.join(sb.dir, "other.key")
        sb.run(["keygen", other])
        sb.fails(["copy", "--from", a, "--to", b, "--key-file", other], 1, "key id")
        found = c.grep_data([v for v in values.values() if len(v) > 8] + [b"UPD"])
        check(not found, "plaintext in etcd's data dir")


def test_rekey():
    """A fleet's rotation on etcd: stage (a host with the staged ring still reads), promote
    (reseals the whole set under the new key), finish (refused before, allowed after)."""
    with CliSandbox() as sb, EtcdCluster(1, parent_dir=sb.dir) as c:
        loc = c.location(fresh_prefix("rk"))
        values = {"A": canary("rk"), "B": canary("rk2")}
        sb.write_config("[etcd]\ndial_timeout = 2\nrequest_timeout = 5\n")
        for name, v in values.items():
            sb.run(["set", name, "--store", loc], input=v)
        old_ring = sb.store_bytes(sb.key)
        sb.run(["rekey", "--stage", "--store", loc])
        staged = sb.store_bytes(sb.key)
        check(sb.get("A", ["--store", loc]) == values["A"], "the staged ring cannot read")
        sb.run(["rekey", "--promote", "--store", loc])
        for name, v in values.items():
            check(sb.get(name, ["--store", loc]) == v, "%s differs after promote" % name)
        # a host that still has the staged ring (old key first) reads the resealed set
        host = sb.write("host.key", staged)
        check(sb.get("B", ["--store", loc, "--key-file", host]) == values["B"],
              "a host with the staged ring cannot read after the reseal")
        # and one with only the old key cannot
        old = sb.write("old.key", old_ring)
        sb.fails(["get", "A", "--store", loc, "--key-file", old], 1, "key id")
        sb.run(["set", "C", "--store", loc], input=canary("rk3"))
        sb.run(["rekey", "--finish", "--store", loc])
        check(sb.names(["--store", loc]).keys() == {"A", "B", "C"}, "names after finish")
        check(sb.get("A", ["--store", loc]) == values["A"], "A differs after finish")


def make_certs(d):
    """A CA and a server certificate for 127.0.0.1 (openssl), or None without openssl."""
    if not shutil.which("openssl"):
        return None
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda args: subprocess.run(["openssl"] + args, cwd=d, check=True,  # noqa: E731
                                      capture_output=True)
    run(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
                                 "-subj", "/CN=sfs-test-ca"])
    run(["req"] + ec + ["-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1"])
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run(["x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "srv.pem", "-days", "1", "-extfile", "ext"])
    return os.path.join(d, "ca.pem")


def start_tls_etcd(d):
    """One etcd member serving clients over https only; returns (Popen, "127.0.0.1:PORT")."""
    base = etcd_cluster._pick_base(2)
    ep, peer = "127.0.0.1:%d" % base, "http://127.0.0.1:%d" % (base + 1)
    argv = [etcd_cluster.ETCD, "--name", "tls", "--data-dir", os.path.join(d, "data"),
            "--listen-client-urls", "https://" + ep, "--advertise-client-urls", "https://" + ep,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "tls=" + peer, "--initial-cluster-token",
            "sfs-tls-%d-%s" % (os.getpid(), os.urandom(4).hex()),
            "--cert-file", os.path.join(d, "srv.pem"), "--key-file", os.path.join(d, "srv.key"),
            "--logger=zap", "--log-outputs=" + os.path.join(d, "etcd.log")]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p, ep


def test_tls():
    d = tempfile.mkdtemp(prefix="sfs-etcd-tls-")
    p = None
    try:
        ca = make_certs(d)
        if not ca:
            print("   (no openssl: TLS not tested)")
            return
        p, ep = start_tls_etcd(d)
        with CliSandbox() as sb:
            loc = "etcd://%s/sfs-tls/" % ep
            sb.write_config("[etcd]\nca_file = %s\ndial_timeout = 1\nrequest_timeout = 5\n" % ca)
            deadline = time.monotonic() + 20
            while b"no store there yet" not in sb.run(["list", "--store", loc],
                                                       check_rc=False).stderr:
                check(time.monotonic() < deadline, "the TLS member never answered")
                time.sleep(0.2)
            value = canary("tls")
            sb.run(["set", "T", "--store", loc], input=value)
            check(sb.get("T", ["--store", "etcd://https://%s/sfs-tls/" % ep]) == value,
                  "get over https differs")
            sb.write_config("[etcd]\ndial_timeout = 1\nrequest_timeout = 5\n")
            t0 = time.monotonic()
            sb.fails(["list", "--store", "etcd://https://%s/sfs-tls/" % ep], 1, "TLS", "ca_file")
            check(time.monotonic() - t0 < 4, "an untrusted certificate was retried")
            sb.fails(["list", "--store", loc], 1, "https")
    finally:
        if p:
            p.send_signal(signal.SIGKILL)
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    reason = etcd_cluster.available()
    if reason:
        print("SKIP: %s" % reason)
        return 77
    return run_all(test_config_section, test_commands_and_copy, test_rekey, test_tls)


if __name__ == "__main__":
    sys.exit(main())
