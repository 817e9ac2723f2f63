"""A store that cannot be opened, decrypted or parsed, or a bad platform file, never replaces
the serving snapshot: the old values keep serving, `.status` says `last_reload=error: ...`,
and `secretfs reload` exits non-zero with the reason.  A good store afterwards reloads."""
import os

from reloadlib import (check, each_mode, run_all, need_fuse, read, reload_cli, reload_ok,
                       replace_values, sighup_and_wait, status)

OLD = {"DB_PASSWORD": b"old-password", "API_TOKEN": b"old-token"}
NEW = {"DB_PASSWORD": b"new-password-longer", "API_TOKEN": b"t"}


def write_atomic(path, data):
    tmp = path + ".bad"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def expect_old(mnt, gen, what):
    for name, value in OLD.items():
        got = read(os.path.join(mnt, name))
        check(got == value, "%s: %s replaced the old value (read %d bytes)" % (
            name, what, len(got)))
        check(os.stat(os.path.join(mnt, name)).st_size == len(value),
              "%s: size changed after %s" % (name, what))
    st = status(mnt)
    check(st["generation"] == str(gen), "generation moved to %s after %s" % (
        st["generation"], what))
    check(st["last_reload"].startswith("error: "), "last_reload after %s: %r" % (
        what, st["last_reload"][:200]))
    return st["last_reload"]


def fail_reload(sb, mnt, gen, what, reason_words):
    p = reload_cli(sb, mnt)
    err = p.stderr.decode(errors="replace")
    check(p.returncode != 0, "secretfs reload exited 0 for %s" % what)
    for word in reason_words:
        check(word in err, "secretfs reload's message for %s lacks %r: %s" % (
            what, word, err[-300:]))
    line = expect_old(mnt, gen, what)
    for word in reason_words:
        check(word in line, ".status for %s lacks %r" % (what, word))
    print("  %s -> exit %d: %s" % (what, p.returncode, err.strip()[-160:]))


def scenario(sb, cache):
    platform = os.path.join(sb.dir, "platform.env")
    with open(platform, "w") as f:
        f.write("LIVEKIT_URL=wss://ok.example\n")
    sb.write_config("[platform]\nfile = %s\n" % platform)
    sb.set_secrets(OLD)
    mnt, pid = sb.mount(opts=["-o", "cache=%s" % cache])
    for name in OLD:
        read(os.path.join(mnt, name))
    good = read(sb.store)
    store = os.path.basename(sb.store)

    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x40
    write_atomic(sb.store, bytes(flipped))
    fail_reload(sb, mnt, 1, "a bit-flipped store", [store])
    write_atomic(sb.store, good[:len(good) - 9])
    fail_reload(sb, mnt, 1, "a truncated store", [store])
    write_atomic(sb.store, b"DB_PASSWORD=plaintext\n")
    fail_reload(sb, mnt, 1, "a store that is not a store", [store])
    os.unlink(sb.store)
    fail_reload(sb, mnt, 1, "a missing store", [store])
    write_atomic(sb.store, good)

    # SIGHUP alone reports the failure in .status too
    write_atomic(sb.store, bytes(flipped))
    st = sighup_and_wait(mnt, pid)
    check(st["last_reload"].startswith("error: "), "SIGHUP with a bad store: last_reload=%r"
          % st["last_reload"][:200])
    expect_old(mnt, 1, "SIGHUP with a bad store")

    # a bad platform file, with a good new store: nothing of the new generation is served
    replace_values(sb, NEW)
    with open(platform, "w") as f:
        f.write("LIVEKIT_URL=wss://ok.example\nNOT_PLATFORM=x\n")
    fail_reload(sb, mnt, 1, "a platform file with a non-platform name", ["platform file"])
    with open(platform, "w") as f:
        f.write('LIVEKIT_URL="unterminated\n')
    fail_reload(sb, mnt, 1, "a platform file that does not parse", ["platform file"])
    os.unlink(platform)
    fail_reload(sb, mnt, 1, "a missing platform file", ["platform file"])
    check(read(os.path.join(mnt, "LIVEKIT_URL")) == b"wss://ok.example",
          "platform entry changed by a failed reload")

    # and a good reload afterwards works and clears the error
    with open(platform, "w") as f:
        f.write("LIVEKIT_URL=wss://fixed.example\n")
    reload_ok(sb, mnt)
    st = status(mnt)
    check(st["last_reload"] == "ok" and st["generation"] == "2",
          "after a good reload: generation %s, last_reload %r" % (
              st["generation"], st["last_reload"][:200]))
    for name, value in NEW.items():
        check(read(os.path.join(mnt, name)) == value, "%s: not the new value" % name)
    check(read(os.path.join(mnt, "LIVEKIT_URL")) == b"wss://fixed.example",
          "platform entry not updated by a good reload")


def test():
    need_fuse()
    each_mode(scenario)


run_all(test)
