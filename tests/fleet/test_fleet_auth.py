"""Fleet with etcd auth: daemons read with a read-only role, administrators write with a
read-write role; simple tokens expire every 2 s (--auth-token-ttl 2) and are renewed.

- daemons configured with [etcd] user/password_file of the read-only user serve and follow
- an admin (read-write user) update reaches them, also after their tokens expired
- a write by the read-only user is refused clearly (permission denied) and changes nothing
- a wrong password, and a password file others may read, are refused clearly
- the password, and the tokens it buys, are nowhere in a daemon's memory but its locked
  arenas (a scan of /proc/PID/mem over every other mapping)
"""
import json
import os
import re
import time
import urllib.error
import urllib.request

from fleetlib import (RECOVER_DEADLINE, Fleet, TestFailure, canary, check, fleet_main,
                      memory_of, redact, serves, status)

TTL = 2


def write_user_config(f, name, user, pw, mode=0o600):
    pwfile = f.write(name + ".password", pw, mode)
    cfg = os.path.join(f.dir, name + ".ini")
    with open(cfg, "w") as fh:
        fh.write("[store]\npath = %s\nkey_file = %s\n" % (f.location, f.key))
        fh.write("[etcd]\nuser = %s\npassword_file = %s\ndial_timeout = 1\n"
                 "request_timeout = 3\ncache_file = %s\n" % (user, pwfile, f.cache_file))
    return cfg


def token_refused(member, token):
    """True once `token` (issued by `member`) is no longer accepted."""
    req = urllib.request.Request(member.url + "/v3/kv/range", data=json.dumps(
        {"key": "eA=="}).encode(), headers={"Authorization": token}, method="POST")
    try:
        urllib.request.urlopen(req, timeout=3).read()
        return False
    except urllib.error.HTTPError as e:
        return b"invalid auth token" in e.read()


def fresh_token(f, member, cred):
    name, _, pw = cred.partition(":")
    req = urllib.request.Request(member.url + "/v3/auth/authenticate", data=json.dumps(
        {"name": name, "password": pw}).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())["token"]


def wait_token_expiry(f, cred, per_member=8, tick=0.5):
    """Waits (on etcd's own answer, not a fixed sleep) until a token issued now has expired
    on every member, so every token the daemons last used before now has expired too.
    Using a simple token renews it, so each probe token is tried only once: a batch is
    issued now, and one untouched token per member is tried each tick."""
    batches = [(m, [fresh_token(f, m, cred) for _ in range(per_member)])
               for m in f.cluster.members]
    pending = {m.name: (m, toks) for m, toks in batches}
    deadline = time.monotonic() + TTL * 10 + 10
    while pending:
        for name, (m, toks) in list(pending.items()):
            if not toks:
                raise TestFailure("tokens issued on %s did not expire within %.1f s" % (
                    name, per_member * tick))
            if token_refused(m, toks.pop()):
                del pending[name]
        if pending:
            if time.monotonic() > deadline:
                raise TestFailure("auth tokens did not expire")
            time.sleep(tick)   # the token clock is etcd's; nothing to wait on but time


def test_roles_and_token_expiry():
    with Fleet(auth_token_ttl=TTL) as f:
        base = {"AUTH_A": canary("auth"), "AUTH_B": canary("auth")}
        f.put_secrets(base)
        keyprefix = f.prefix
        dpw, apw = "rd-" + os.urandom(6).hex(), "wr-" + os.urandom(6).hex()
        c = f.cluster
        c.enable_auth(keyprefix, readers=["sfsd:" + dpw], writers=["sfsadmin:" + apw])
        # the same roles also on "/PREFIX" in case the backend keeps the URL path's slash
        end = "/" + keyprefix[:-1] + chr(ord(keyprefix[-1]) + 1)
        c.etcdctl(["role", "grant-permission", "sfs-ro", "read", "/" + keyprefix, end])
        c.etcdctl(["role", "grant-permission", "sfs-rw", "readwrite", "/" + keyprefix, end])
        daemon_cfg = write_user_config(f, "daemon", "sfsd", dpw)
        admin_cfg = write_user_config(f, "admin", "sfsadmin", apw)

        # without credentials nothing is readable
        p = f.run(["list"], check_rc=False)
        check(p.returncode == 1, "list without credentials exited %d" % p.returncode)

        mnts = [f.mount(i, opts=["--config", daemon_cfg]) for i in range(3)]
        for m in mnts:
            check(serves(m, base), "a daemon with the read-only user does not serve the set")
            check(status(m).get("connection") == "connected", "not connected")

        # the read-only user may not write: refused clearly, store unchanged
        p = f.run(["set", "AUTH_A", "--config", daemon_cfg], input=canary("ro"),
                  check_rc=False)
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 1, "a write by the read-only user exited %d" % p.returncode)
        check("permission denied" in err.lower() or "not permitted" in err.lower(),
              "the read-only user's write error is unclear: %s" % redact(p.stderr)[-400:])
        print("   read-only write refused: %s" % err.strip()[-160:])
        check(f.run(["get", "AUTH_A", "--config", admin_cfg]).stdout == base["AUTH_A"],
              "the refused write changed the store")

        # a wrong password
        bad_cfg = write_user_config(f, "bad", "sfsadmin", "wrong-" + os.urandom(4).hex())
        p = f.run(["list", "--config", bad_cfg], check_rc=False)
        msg = p.stderr.decode(errors="replace").lower()
        check(p.returncode == 1 and ("auth" in msg or "refused the password" in msg),
              "a wrong password is not reported as an authentication failure: %s" %
              redact(p.stderr)[-300:])
        # a password file others can read is refused like a key file would be
        loose_cfg = write_user_config(f, "loose", "sfsadmin", apw, mode=0o644)
        p = f.run(["list", "--config", loose_cfg], check_rc=False)
        check(p.returncode == 1 and "password" in p.stderr.decode(errors="replace"),
              "a world-readable password file was accepted: %s" % redact(p.stderr)[-300:])

        # admin updates reach the daemons after their tokens have expired, three times over
        expected = dict(base)
        for rnd in range(3):
            wait_token_expiry(f, "sfsadmin:" + apw)
            expected["AUTH_A"] = canary("rnd%d" % rnd)
            env_file = f.write("auth%d.env" % rnd, b"AUTH_A=" + expected["AUTH_A"])
            f.run(["update-secrets", "--config", admin_cfg, "--secrets-file", env_file])
            f.wait_served(mnts, expected, timeout=RECOVER_DEADLINE,
                          what="an update after token expiry (round %d)" % rnd)
        # and a daemon restarted after expiry logs in again
        wait_token_expiry(f, "sfsd:" + dpw)
        m4 = f.mount(0, opts=["--config", daemon_cfg], name="late")
        check(serves(m4, expected), "a daemon started later does not serve the set")
        for m in mnts + [m4]:
            check(status(m).get("connection") == "connected", "a daemon is not connected")
        logs = f.all_logs()
        check(dpw.encode() not in logs and apw.encode() not in logs,
              "a password appears in a log")
        f.check_no_leaks(list(expected))


# etcd 3.4's simple tokens: 16 letters, a dot, an index
SIMPLE_TOKEN = re.compile(rb"(?<![A-Za-z])[A-Za-z]{16}\.[0-9]+(?![0-9])")


def secrets_outside_locked_memory(pid, pw):
    """Scans the daemon: (whether the password is in its locked memory, whether it is
    anywhere else, the tokens found in its locked memory, those of them found elsewhere)."""
    regions = memory_of(pid)
    locked = [d for is_locked, d in regions if is_locked]
    other = [d for is_locked, d in regions if not is_locked]
    tokens = {t for d in locked for t in SIMPLE_TOKEN.findall(d)}
    return (any(pw in d for d in locked), any(pw in d for d in other), tokens,
            {t for t in tokens if any(t in d for d in other)})


def test_password_only_in_locked_memory():
    """The daemon's etcd password, and the auth tokens it gets for it, live only in locked
    secure memory: after it has authenticated (at start, for its watch, and again once its
    tokens expired), every other readable mapping of the daemon is free of them."""
    with Fleet(auth_token_ttl=TTL) as f:
        base = {"MEM_A": canary("mem")}
        f.put_secrets(base)
        c = f.cluster
        c.enable_auth(f.prefix)
        end = "/" + f.prefix[:-1] + chr(ord(f.prefix[-1]) + 1)
        c.etcdctl(["role", "grant-permission", "sfs-ro", "read", "/" + f.prefix, end])
        c.etcdctl(["role", "grant-permission", "sfs-rw", "readwrite", "/" + f.prefix, end])
        # distinctive, but not a data-dir canary: etcd 3.4's WAL keeps the plaintext of the
        # `user add` request itself; checked against every log below
        pw = ("sfsmempw-" + os.urandom(12).hex()).encode()
        c.add_user("sfsmem", pw.decode(), "sfs-ro")
        admin = "sfsmemadm:" + os.urandom(8).hex()
        c.add_user("sfsmemadm", admin.split(":")[1], "sfs-rw")
        mnt = f.mount(0, opts=["--config", write_user_config(f, "mem", "sfsmem", pw)])
        admin_cfg = write_user_config(f, "memadm", "sfsmemadm", admin.split(":")[1])
        check(serves(mnt, base), "the daemon with the canary password does not serve")
        pid = f.daemon(mnt).pid
        for rnd in range(3):
            if rnd:
                wait_token_expiry(f, "sfsmem:" + pw.decode())
                base["MEM_A"] = canary("mem%d" % rnd)
                f.run(["set", "MEM_A", "--config", admin_cfg], input=base["MEM_A"])
                f.wait_served([mnt], base, timeout=RECOVER_DEADLINE)
                f.run(["reload", "--timeout", "20", mnt], timeout=60)  # a fresh read: login
            in_locked, elsewhere, tokens, leaked = secrets_outside_locked_memory(pid, pw)
            check(in_locked, "the scan did not find the password in the locked arenas "
                  "(round %d): the scan is broken" % rnd)
            check(not elsewhere, "the etcd password is in the daemon's memory outside its "
                  "locked arenas (round %d)" % rnd)
            check(tokens, "no auth token in the daemon's locked memory (round %d)" % rnd)
            check(not leaked, "%d of %d auth tokens are in the daemon's memory outside its "
                  "locked arenas (round %d)" % (len(leaked), len(tokens), rnd))
            print("   round %d: password and %d token(s) only in locked memory" % (
                rnd, len(tokens)))
        check(pw not in f.all_logs(), "the etcd password appears in a log")
        f.check_no_leaks(list(base))


if __name__ == "__main__":
    fleet_main(test_roles_and_token_expiry, test_password_only_in_locked_memory)
