#!/usr/bin/env python3
"""Keys that are not plain files: a systemd credential, a passphrase-protected key."""
import os
import shutil
import subprocess
import time

from harness import Sandbox, check, need_fuse, run_all  # noqa: E402

PASS = b"correct horse battery staple\n"


def creds_available():
    return shutil.which("systemd-creds") is not None


def test_systemd_credential():
    need_fuse()
    if not creds_available():
        print("skip: no systemd-creds")
        return
    with Sandbox() as sb:
        sb.set_secrets({"A": b"from-a-credential"})
        enc = os.path.join(sb.dir, "secretfs.key.cred")
        p = subprocess.run(["systemd-creds", "encrypt", "--with-key=host",
                            "--name=secretfs.key", sb.key, enc], capture_output=True)
        check(p.returncode == 0, "systemd-creds encrypt: %r" % p.stderr)
        os.unlink(sb.key)                           # never stored plain from here on
        # what systemd does at service start: a private directory, the decrypted file 0400
        cdir = os.path.join(sb.dir, "credentials")
        os.mkdir(cdir, 0o500)
        out = os.path.join(cdir, "secretfs.key")
        os.chmod(cdir, 0o700)
        p = subprocess.run(["systemd-creds", "decrypt", "--name=secretfs.key", enc, out],
                           capture_output=True)
        check(p.returncode == 0, "systemd-creds decrypt: %r" % p.stderr)
        os.chmod(out, 0o400)
        os.chmod(cdir, 0o500)
        env = dict(sb.env, CREDENTIALS_DIRECTORY=cdir)
        for cfg in ("key_file = %credential/secretfs.key\n", "key_credential = secretfs.key\n"):
            with open(sb.config, "w") as f:
                f.write("[store]\npath = %s\n%s" % (sb.store, cfg))
            check(sb.run(["get", "A"], env=env).stdout == b"from-a-credential",
                  "%s: get failed" % cfg.strip())
        mnt, _ = sb.mount(env=env, opts=["--state-dir", os.path.join(sb.dir, "st")])
        check(open(os.path.join(mnt, "A"), "rb").read() == b"from-a-credential",
              "the mount does not serve with a credential key")
        sb.run(["reload", mnt], env=env)
        # without $CREDENTIALS_DIRECTORY: says what to do
        env2 = dict(sb.env)
        env2.pop("CREDENTIALS_DIRECTORY", None)
        p = sb.run(["get", "A"], env=env2, check_rc=False)
        check(p.returncode == 1 and b"CREDENTIALS_DIRECTORY" in p.stderr and
              b"LoadCredentialEncrypted=secretfs.key" in p.stderr, "no hint: %r" % p.stderr)
        # others may not read it, even in a credential directory
        os.chmod(cdir, 0o700)
        os.chmod(out, 0o404)
        p = sb.run(["get", "A"], env=env, check_rc=False)
        check(p.returncode == 1 and b"readable by others" in p.stderr, "0404 accepted")
        os.chmod(out, 0o440)                         # systemd's ACL for User= shows as this
        check(sb.run(["get", "A"], env=env).stdout == b"from-a-credential",
              "a credential with systemd's ACL mask is refused")
        # rekey refuses to write a credential
        p = sb.run(["rekey"], env=env, check_rc=False)
        check(p.returncode == 1 and b"systemd credential" in p.stderr, "rekey: %r" % p.stderr)


def test_passphrase():
    need_fuse()
    with Sandbox() as sb:
        pkey = os.path.join(sb.dir, "protected.key")
        pfile = os.path.join(sb.dir, "pass")
        with open(pfile, "wb") as f:
            f.write(PASS)
        os.chmod(pfile, 0o600)
        t = time.monotonic()
        sb.run(["keygen", "--passphrase", "--kdf", "interactive", "--passphrase-file", pfile,
                pkey])
        print("keygen --passphrase --kdf interactive: %.2f s" % (time.monotonic() - t))
        with open(pkey, "rb") as f:
            check(PASS.strip() not in f.read(), "the passphrase is in the key file")
        common = ["--key-file", pkey]
        sb.run(["set", "A", "--passphrase-file", pfile] + common, input=b"locked")
        # from a descriptor
        r, w = os.pipe()
        os.write(w, PASS)
        os.close(w)
        env = dict(sb.env, SECRETFS_PASSPHRASE_FD=str(r))
        p = subprocess.run([os.environ["SECRETFS_BIN"], "get", "A"] + common, env=env,
                           capture_output=True, pass_fds=(r,))
        os.close(r)
        check(p.returncode == 0 and p.stdout == b"locked", "fd: %r" % p.stderr)
        # a wrong passphrase: its own message, not a wrong key's
        wrong = os.path.join(sb.dir, "wrong")
        with open(wrong, "wb") as f:
            f.write(b"Tr0ub4dor&3\n")
        os.chmod(wrong, 0o600)
        p = sb.run(["get", "A", "--passphrase-file", wrong] + common, check_rc=False)
        check(p.returncode == 1 and b"wrong passphrase" in p.stderr and
              b"different key" not in p.stderr, "wrong passphrase: %r" % p.stderr)
        check(b"Tr0ub4dor" not in p.stderr + p.stdout, "the passphrase was echoed")
        # no source at all (no terminal here)
        p = subprocess.run([os.environ["SECRETFS_BIN"], "get", "A"] + common, env=sb.env,
                           capture_output=True, stdin=subprocess.DEVNULL, start_new_session=True)
        check(p.returncode == 1 and b"--passphrase-file" in p.stderr, "no source: %r" % p.stderr)
        # the daemon asks once, at start, and reloads (also across a rekey) without asking
        mnt, pid = sb.mount(opts=common + ["--passphrase-file", pfile, "--state-dir",
                                           os.path.join(sb.dir, "st")])
        os.unlink(pfile)                             # the daemon cannot read it again
        check(open(os.path.join(mnt, "A"), "rb").read() == b"locked", "not served")
        with open(wrong, "wb") as f:
            f.write(PASS)
        sb.run(["rekey", "--passphrase-file", wrong] + common)
        sb.run(["reload", mnt])
        sb.run(["set", "A", "--passphrase-file", wrong, "--reload=" + mnt] + common,
               input=b"after-rekey")
        check(open(os.path.join(mnt, "A"), "rb").read() == b"after-rekey",
              "the daemon did not follow the rekeyed, still protected key file")


if __name__ == "__main__":
    run_all(test_systemd_credential, test_passphrase)
