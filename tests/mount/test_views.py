#!/usr/bin/python3
"""The generated views at the mount root, in both cache modes:
  .env       sourced by bash, dash, zsh and busybox sh gives each variable the secret's
             exact bytes (the hostile table); skipped entries are named in comments;
  .env.json  parses as JSON and maps every UTF-8 value exactly (others left out by design);
  .status    has generation, loaded_at, secrets, platform, pid, cache, last_reload, and never
             holds a value, also after a failed reload.
Values never appear in argv or in any output: shells write each variable with
printf '%s' into a file, which the test compares."""
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

from harness import (CACHE_MODES, Sandbox, check, hostile_values, need_fuse, read_bytes,
                     run_all, wait_for)

SHELLS = [("bash", ["bash"]), ("dash", ["dash"]), ("zsh", ["zsh", "-f"]),
          ("busybox-sh", ["busybox", "sh"])]
PLATFORM_URL = "wss://lk.example/'$(echo pwned >pwned)'\"`x`\\"
NOT_IN_ENV = {"db.password": b"dotted name", "9LIVES": b"digit first",
              "api-key": b"dashed", "HAS_NUL": b"a\x00b"}


def make_values():
    values = {k: v for k, v in hostile_values().items() if v}   # CLI refuses empty values
    values.update(NOT_IN_ENV)
    values["STATUS_CANARY"] = ("canary-%s" % secrets.token_hex(16)).encode()
    return values


def utf8(v):
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        return None


def check_env_by_shells(mnt, served, mode):
    env_path = os.path.join(mnt, ".env")
    text = read_bytes(env_path)
    check(text.startswith(b"#"), "cache=%s: .env does not start with a header comment" % mode)
    check(b"\x00" not in text, "cache=%s: .env holds a NUL byte" % mode)
    comments = b"\n".join(l for l in text.split(b"\n") if l.startswith(b"#"))
    for name in NOT_IN_ENV:
        check(b"export " + name.encode() + b"=" not in text,
              "cache=%s: .env exports %s, which it must skip" % (mode, name))
        check(name.encode() in comments,
              "cache=%s: .env does not name the skipped entry %s in a comment" % (mode, name))
    exported = sorted(n for n in served if n not in NOT_IN_ENV)
    for shell, argv in SHELLS:
        if not shutil.which(argv[0]):
            check(False, "shell %s is not installed" % argv[0])
        work = tempfile.mkdtemp(prefix="sfs-shell-")
        try:
            out = os.path.join(work, "out")
            cwd = os.path.join(work, "cwd")
            os.mkdir(out)
            os.mkdir(cwd)
            script = os.path.join(work, "script.sh")
            with open(script, "w") as f:
                f.write('. "$1"\n')
                for name in exported:
                    f.write("printf '%%s' \"$%s\" > \"$2/%s\"\n" % (name, name))
                for name in NOT_IN_ENV:
                    if name.isidentifier():
                        f.write("if [ -n \"${%s+set}\" ]; then echo %s-is-set > \"$2/.bad\"; fi\n"
                                % (name, name))
                f.write("printf done > \"$2/.done\"\n")
            p = subprocess.run(argv + [script, env_path, out], cwd=cwd, capture_output=True,
                               env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}, timeout=60)
            check(p.returncode == 0, "cache=%s: %s sourcing .env exited %d" % (
                mode, shell, p.returncode))
            check(p.stdout == b"" and p.stderr == b"",
                  "cache=%s: %s wrote %d bytes of output while sourcing .env (output not shown:"
                  " it may hold values)" % (mode, shell, len(p.stdout) + len(p.stderr)))
            check(os.path.exists(os.path.join(out, ".done")),
                  "cache=%s: %s did not finish the script" % (mode, shell))
            check(not os.path.exists(os.path.join(out, ".bad")),
                  "cache=%s: %s defines a variable for a skipped entry" % (mode, shell))
            check(os.listdir(cwd) == [], "cache=%s: sourcing .env in %s created files %s "
                  "(a value was executed)" % (mode, shell, os.listdir(cwd)))
            wrong = [n for n in exported if read_bytes(os.path.join(out, n)) != served[n]]
            check(not wrong, "cache=%s: %s gives wrong bytes for %s" % (mode, shell, wrong))
        finally:
            shutil.rmtree(work, ignore_errors=True)


def check_json(mnt, served, mode):
    raw = read_bytes(os.path.join(mnt, ".env.json"))
    pairs = json.loads(raw, object_pairs_hook=lambda kv: kv)   # strict: raw control chars fail
    keys = [k for k, _ in pairs]
    check(len(keys) == len(set(keys)), "cache=%s: .env.json repeats a key" % mode)
    view = dict(pairs)
    want = {n: utf8(v) for n, v in served.items() if utf8(v) is not None}
    missing = sorted(set(want) - set(view))
    extra = sorted(set(view) - set(want))
    check(not missing, "cache=%s: .env.json lacks %s" % (mode, missing))
    check(not extra, "cache=%s: .env.json has %s (not valid UTF-8: must be left out)"
          % (mode, extra))
    wrong = sorted(n for n in want if view[n] != want[n])
    check(not wrong, "cache=%s: .env.json values differ for %s" % (mode, wrong))
    for n in ("H_INVALID_FF", "H_SURROGATE", "H_ALL_BYTES", "H_ZSH_META"):
        check(n not in view, "cache=%s: .env.json holds %s, which is not UTF-8" % (mode, n))


STATUS_KEYS = ("generation", "loaded_at", "secrets", "platform", "pid", "cache", "last_reload")


def check_status_has_no_value(mnt, values, mode, when):
    raw = read_bytes(os.path.join(mnt, ".status"))
    leaked = [n for n, v in values.items() if len(v) >= 6 and v in raw]
    check(not leaked, "cache=%s %s: .status holds the value of %s" % (mode, when, leaked))
    check(values["STATUS_CANARY"] not in raw, "cache=%s %s: canary in .status" % (mode, when))
    return raw


def check_status(sb, mnt, pid, values, n_secrets, mode, before, after):
    raw = check_status_has_no_value(mnt, values, mode, "after mount")
    lines = raw.decode().splitlines()
    check(all("=" in l for l in lines), "cache=%s: .status has a line without '='" % mode)
    st = dict(l.split("=", 1) for l in lines)
    missing = [k for k in STATUS_KEYS if k not in st]
    check(not missing, "cache=%s: .status lacks %s" % (mode, missing))
    check(st["generation"] == "1", "cache=%s: generation=%s, want 1" % (mode, st["generation"]))
    check(before - 1 <= int(st["loaded_at"]) <= after + 1,
          "cache=%s: loaded_at=%s is not the mount time" % (mode, st["loaded_at"]))
    check(st["secrets"] == str(n_secrets), "cache=%s: secrets=%s, want %d" % (
        mode, st["secrets"], n_secrets))
    check(st["platform"] == "1", "cache=%s: platform=%s, want 1" % (mode, st["platform"]))
    check(int(st["pid"]) == pid and b"secretfs" in read_bytes("/proc/%d/cmdline" % pid),
          "cache=%s: pid=%s is not the daemon" % (mode, st["pid"]))
    check(st["cache"] == mode, "cache=%s: .status says cache=%s" % (mode, st["cache"]))
    check(st["last_reload"] == "ok", "cache=%s: last_reload=%s" % (mode, st["last_reload"]))
    check(os.stat(os.path.join(mnt, ".status")).st_size == len(raw),
          "cache=%s: .status st_size is not its length" % mode)

    # a failed reload is reported in .status, which still holds no value
    os.rename(sb.store, sb.store + ".good")
    try:
        with open(sb.store, "wb") as f:
            f.write(read_bytes(sb.store + ".good")[:-7] + b"garbage")
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: sb.status(mnt).get("last_reload", "ok") != "ok",
                 "cache=%s: .status to report the failed reload" % mode)
        st2 = sb.status(mnt)
        check(st2["generation"] == "1", "cache=%s: a failed reload changed the generation"
              % mode)
        check_status_has_no_value(mnt, values, mode, "after a failed reload")
        check(read_bytes(os.path.join(mnt, "STATUS_CANARY")) == values["STATUS_CANARY"],
              "cache=%s: the old secrets stopped serving after a failed reload" % mode)
    finally:
        os.replace(sb.store + ".good", sb.store)
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: sb.status(mnt).get("last_reload") == "ok",
             "cache=%s: .status to report the good reload" % mode)
    check(sb.status(mnt)["generation"] == "2", "cache=%s: generation after a good reload is "
          "not 2" % mode)


def test_views_both_modes():
    with Sandbox() as sb:
        values = make_values()
        sb.set_secrets(values)
        env = dict(sb.env, LIVEKIT_URL=PLATFORM_URL)
        env.pop("LIVEKIT_API_KEY", None)
        env.pop("LIVEKIT_API_SECRET", None)
        served = dict(values, LIVEKIT_URL=PLATFORM_URL.encode())
        for mode in CACHE_MODES:
            before = int(time.time())
            mnt, pid = sb.mount(sb.mountpoint("mnt-" + mode), ["-o", "cache=" + mode], env=env)
            after = int(time.time())
            check_env_by_shells(mnt, served, mode)
            check_json(mnt, served, mode)
            check_status(sb, mnt, pid, values, len(values), mode, before, after)


if __name__ == "__main__":
    need_fuse()
    run_all(test_views_both_modes)
