"""A passphrase-protected key with the plugin: the passphrase is asked once, at start
(--passphrase-file or SECRETFS_PASSPHRASE_FD), checked there (a wrong one stops the start
with a message naming the fix), and handed to each `secretfs mount` and `secretfs list`
child through a pipe: the passphrase (a canary) is in no log, no reply, no state file, no
process's argv or environment, while volumes are created, mounted, read and inspected."""
import os
import subprocess
import time

from dockerlib import (PluginSandbox, ProcWatch, check, harness, mount_id, ok, protect_key,
                       store_with_passphrase, write_secret_file)


def test_protected_key_through_the_plugin():
    with PluginSandbox() as sb:
        # a passphrase ending in "\r": each child must read back exactly these bytes
        passphrase, pfile = protect_key(sb, ends_with_cr=True)
        values = {"DB_PASSWORD": harness.canary("db"), "API_TOKEN": harness.canary("api")}
        store_with_passphrase(sb, pfile, values)
        with ProcWatch(passphrase) as watch:
            sb.start_plugin(extra=["--passphrase-file", pfile])
            os.unlink(pfile)  # asked once, at start: the plugin never reads it again
            e = sb.engine()
            t = time.monotonic()
            ok(e.create("db", {"secrets": "DB_PASSWORD"}), "Create (the store listed)")
            t_create = time.monotonic() - t
            mid = mount_id()
            t = time.monotonic()
            mnt = ok(e.mount("db", mid), "Mount").json["Mountpoint"]
            t_mount = time.monotonic() - t
            check(harness.read_bytes(os.path.join(mnt, "DB_PASSWORD")) ==
                  values["DB_PASSWORD"], "the volume serves the protected store's value")
            st = ok(e.get("db"), "Get").json["Volume"]["Status"]
            check("missing" not in st, "Get lists the store with the passphrase: %s" % st)
            ok(e.list(), "List")
            daemon = sb.daemon_pid(mnt)
            with open("/proc/%d/environ" % daemon, "rb") as f:
                env = f.read().split(b"\0")
            check([v for v in env if v.startswith(b"SECRETFS_PASSPHRASE_FD=")] ==
                  [b"SECRETFS_PASSPHRASE_FD=4"],
                  "the mount's daemon was handed the passphrase as descriptor 4")
            fds = [os.readlink("/proc/%d/fd/%s" % (daemon, fd))
                   for fd in os.listdir("/proc/%d/fd" % daemon)]
            check(not [f for f in fds if f.startswith("pipe:")],
                  "the daemon keeps no descriptor of the passphrase's pipe: %s" % fds)
            ok(e.unmount("db", mid), "Unmount")
            ok(e.remove("db"), "Remove")
            time.sleep(0.2)
        print("interactive KDF: Create %.2f s, Mount %.2f s" % (t_create, t_mount))
        check(watch.rounds > 0 and len(watch.seen) > 10, "the /proc watch ran")
        check(not watch.hits, "the passphrase is in the argv or environment of %s" %
              sorted(set(watch.hits)))
        check(harness.leaks(b"".join(e.replies)) == 0, "a canary in the plugin's replies")
        for f in os.listdir(sb.state):
            with open(os.path.join(sb.state, f), "rb") as fh:
                check(harness.leaks(fh.read()) == 0, "a canary in the state file %s" % f)
        # the log is searched for every canary, the passphrase too, when the sandbox closes


def test_passphrase_from_a_descriptor_across_a_restart():
    with PluginSandbox() as sb:
        passphrase, pfile = protect_key(sb)
        store_with_passphrase(sb, pfile, {"A": harness.canary("a")})
        sb.start_plugin(extra=["--passphrase-file", pfile])
        e = sb.engine()
        ok(e.create("v", {"secrets": "A"}), "Create")
        mid = mount_id()
        mnt = ok(e.mount("v", mid), "Mount").json["Mountpoint"]
        ctr = sb.bind("v")  # a container holds it: the restarted plugin adopts the mount
        check(sb.stop_plugin() == 0, "the plugin stops cleanly")
        os.unlink(pfile)
        # systemd's way: a descriptor (here a pipe) named by SECRETFS_PASSPHRASE_FD
        r, w = os.pipe()
        os.write(w, passphrase + b"\n")
        os.close(w)
        env = dict(sb.env, SECRETFS_PASSPHRASE_FD=str(r))
        logf = open(sb.log, "ab")
        sb.proc = subprocess.Popen(
            [harness.SECRETFS, "docker-plugin", "--socket", sb.sock, "--state", sb.state,
             "--volumes", sb.vols], stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
            env=env, pass_fds=(r,))
        logf.close()
        os.close(r)
        harness.wait_for(sb.answers, "the restarted plugin answers", timeout=30)
        e = sb.engine()
        st = ok(e.get("v"), "Get after the restart").json["Volume"]["Status"]
        check(st["mounted"] and "missing" not in st, "adopted, the store listed: %s" % st)
        ok(e.create("w", {"secrets": "A"}), "Create after the restart")
        mid2 = mount_id()
        mnt2 = ok(e.mount("w", mid2), "Mount after the restart").json["Mountpoint"]
        check(harness.read_bytes(os.path.join(mnt2, "A")) ==
              harness.read_bytes(os.path.join(ctr, "A")), "both volumes serve the value")
        sb.unbind(ctr)
        # the names listed are kept while the store file is the same: a write is seen at once
        pfile = write_secret_file(sb, "passphrase", passphrase + b"\n")
        store_with_passphrase(sb, pfile, {"LATER": b"l"})
        ok(e.create("later", {"secrets": "LATER"}), "Create of a name stored just now")
        ok(e.create("both", {"secrets": "A,SOON", "optional": "SOON"}), "Create")
        check(ok(e.get("both"), "Get").json["Volume"]["Status"].get("missing") == "SOON",
              "Get names the missing name")
        store_with_passphrase(sb, pfile, {"SOON": b"s"})
        check("missing" not in ok(e.get("both"), "Get").json["Volume"]["Status"],
              "a name stored since is not missing at the next Get")
        ok(e.unmount("w", mid2), "Unmount")
        ok(e.unmount("v", mid), "Unmount")


def test_wrong_or_missing_passphrase_refused_at_start():
    with PluginSandbox() as sb:
        _, pfile = protect_key(sb)
        store_with_passphrase(sb, pfile, {"A": b"a"})
        wrong = write_secret_file(sb, "wrong", harness.canary("wrongpass") + b"\n")
        p = sb.start_plugin(extra=["--passphrase-file", wrong], expect_fail=True)
        log = sb.log_text()
        check(p.returncode == 1, "a wrong passphrase: exit %d" % p.returncode)
        check("wrong passphrase" in log and "--passphrase-file" in log and
              "SECRETFS_PASSPHRASE_FD" in log and sb.key in log,
              "the message names the key file, the mistake and the fix: %s" % log[-600:])
        check(not os.path.exists(sb.sock), "nothing is served with a wrong passphrase")
        # no passphrase at all (no terminal either): refused, saying how to give one
        with open(sb.log, "wb"):
            pass
        logf = open(sb.log, "ab")
        p = subprocess.run([harness.SECRETFS, "docker-plugin", "--socket", sb.sock, "--state",
                            sb.state, "--volumes", sb.vols], stdout=logf, stderr=logf,
                           stdin=subprocess.DEVNULL, env=sb.env, start_new_session=True,
                           timeout=60)
        logf.close()
        log = sb.log_text()
        check(p.returncode == 1 and "protected by a passphrase" in log and
              "--passphrase-file" in log, "no passphrase: exit %d: %s" % (p.returncode,
                                                                        log[-400:]))
        # a passphrase file others may read is refused too, before it is used
        os.chmod(wrong, 0o644)
        p = sb.start_plugin(extra=["--passphrase-file", wrong], expect_fail=True)
        check(p.returncode == 1 and "chmod 600" in sb.log_text(),
              "a readable passphrase file: %s" % sb.log_text()[-300:])


if __name__ == "__main__":
    harness.need_fuse()
    harness.run_all(test_protected_key_through_the_plugin,
                    test_passphrase_from_a_descriptor_across_a_restart,
                    test_wrong_or_missing_passphrase_refused_at_start)
