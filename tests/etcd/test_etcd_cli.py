#!/usr/bin/env python3
"""The CLI's etcd wiring against a real single-member cluster: the [etcd] section (accepted
keys, refused values, the password file's checks), every store command on an etcd://
location, and `secretfs copy` file -> etcd -> file and prefix -> prefix, exactly and
atomically.  Exit 77 without etcd."""
import os
import sys

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


def main():
    reason = etcd_cluster.available()
    if reason:
        print("SKIP: %s" % reason)
        return 77
    return run_all(test_config_section, test_commands_and_copy)


if __name__ == "__main__":
    sys.exit(main())
