"""The plugin under a real dockerd, as users drive it with the docker CLI: volume create,
ls, inspect, run as root, as the granted uid and as a denied uid, the subset, .env sourced
in a container, a volume created on first use, reloads reaching running containers, two
containers on one volume, rm in use and after, bad options named in the CLI's error."""
import os
import re
import signal

from enginelib import IMAGE, check, harness, run_module


def secrets(sb):
    values = {"DB_PASSWORD": harness.canary("db"), "API_TOKEN": harness.canary("api"),
              "UNRELATED": harness.canary("x")}
    sb.set_secrets(values)
    sb.start_plugin()
    return values


def test_create_ls_inspect_run(dk, sb):
    values = secrets(sb)
    uid, gid = harness.ensure_test_user()
    dk.docker(["volume", "create", "-d", sb.driver, "-o", "secrets=DB_PASSWORD,API_TOKEN",
               "-o", "uid=%d" % uid, "-o", "gid=%d" % gid, "-o", "mode=0440", "db-secrets"])
    check(dk.volumes(sb.driver) == ["db-secrets"], "docker volume ls lists the volume")
    info = dk.inspect_volume("db-secrets")
    st = info.get("Status") or {}
    check(info["Driver"] == sb.driver and st.get("secrets") == "DB_PASSWORD,API_TOKEN" and
          st.get("owner") == "%d:%d" % (uid, gid) and st.get("mode") == "0440",
          "docker volume inspect shows the options: %s" % st)
    # as root: the owner is another user and the mode 0440: root reads through DAC override
    p = dk.run(["-v", "db-secrets:/run/secrets:ro", IMAGE, "ls", "-a", "/run/secrets"])
    listing = sorted(p.stdout.decode().split())
    check(listing == sorted(harness.expected_listing(["DB_PASSWORD", "API_TOKEN"]) +
                            [".", ".."]),
          "the container sees exactly the subset: %s" % listing)
    # as the granted uid: reads both, byte for byte (compared here, never printed)
    p = dk.run(["--user", "%d:%d" % (uid, gid), "-v", "db-secrets:/run/secrets:ro", IMAGE,
                "cat", "/run/secrets/DB_PASSWORD", "/run/secrets/API_TOKEN"])
    check(p.stdout == values["DB_PASSWORD"] + values["API_TOKEN"],
          "the granted uid reads both secrets exactly (%d bytes)" % len(p.stdout))
    # a denied uid: permission denied, and nothing of the value in what docker prints
    p = dk.run(["--user", "65534:65534", "-v", "db-secrets:/run/secrets:ro", IMAGE,
                "cat", "/run/secrets/DB_PASSWORD"], check_rc=False)
    check(p.returncode != 0 and b"Permission denied" in p.stderr and
          harness.leaks(p.stdout + p.stderr) == 0,
          "uid 65534 is refused: rc %d %s" % (p.returncode, harness.redact(p.stderr)[-300:]))
    # the subset really excludes the others, even for root
    p = dk.run(["-v", "db-secrets:/run/secrets:ro", IMAGE, "cat", "/run/secrets/UNRELATED"],
               check_rc=False)
    check(p.returncode != 0 and b"No such file" in p.stderr and harness.leaks(p.stdout) == 0,
          "a name outside the subset does not exist in the container")
    p = dk.run(["-v", "db-secrets:/run/secrets:ro", IMAGE, "grep", "-c", "UNRELATED",
                "/run/secrets/.env", "/run/secrets/.env.json"], check_rc=False)
    check(b":0" in p.stdout and b":1" not in p.stdout, "the views leave out other secrets too")
    # read-only, whatever the user tries
    p = dk.run(["-v", "db-secrets:/run/secrets", IMAGE, "sh", "-c",
                "echo x > /run/secrets/NEW"], check_rc=False)
    check(p.returncode != 0, "the volume is read-only even without :ro")
    check(harness.leaks(p.stdout + p.stderr) == 0, "no value in docker's output")
    check(dk.inspect_volume("db-secrets")["Status"]["references"] == 0,
          "no references left after the containers exited")


def test_env_sourced_in_container(dk, sb):
    values = secrets(sb)
    dk.docker(["volume", "create", "-d", sb.driver, "-o", "secrets=DB_PASSWORD,API_TOKEN",
               "envvol"])
    p = dk.run(["-v", "envvol:/run/secrets:ro", IMAGE, "sh", "-c",
                '. /run/secrets/.env && printf %s "$DB_PASSWORD" && printf / && '
                'printf %s "${UNRELATED-unset}"'])
    db, _, rest = p.stdout.partition(b"/")
    check(db == values["DB_PASSWORD"] and rest == b"unset",
          "busybox sh sources .env in the container: the subset's values, nothing else")
    p = dk.run(["-v", "envvol:/app/conf:ro", IMAGE, "sh", "-c", "grep '^#' /app/conf/.env"])
    check(sb.dir.encode() not in p.stdout and b"/run/secrets" not in p.stdout and
          b"source this file" in p.stdout,
          "the header of .env names no path that is false in the container: %r" % p.stdout)


def test_status_in_container_is_true_there(dk, sb):
    """Inside a container, .status names no host pid or host path (status=container); on the
    host, `secretfs reload VOLUME_DIR` still finds the daemon, through its generation file."""
    secrets(sb)
    dk.docker(["volume", "create", "-d", sb.driver, "-o", "secrets=DB_PASSWORD", "stvol"])
    c = dk.start_container("sfs-status-%d" % os.getpid(), ["-v", "stvol:/app/conf:ro"])
    text = dk.exec(c, ["cat", "/app/conf/.status"]).stdout
    host_paths = [sb.dir.encode(), sb.volume_dir("stvol").encode(), b"/run/secretfs"]
    check(not re.search(rb"(?m)^pid=", text) and not re.search(rb"(?m)^notify=", text) and
          not any(h in text for h in host_paths) and b"\nview=container\n" in text,
          "the container's .status has no host pid or path: %r" % text)
    fields = dict(line.split(b"=", 1) for line in text.splitlines() if b"=" in line)
    check(fields.get(b"secrets") == b"1" and fields.get(b"last_reload") == b"ok",
          "and says what is true there: %r" % text)
    # the daemon is still found from the host, by the plugin and by the CLI
    pid = sb.daemon_pid(sb.volume_dir("stvol"))
    check(os.path.exists("/proc/%d" % pid), "the generation file names the live daemon")
    gen = int(fields[b"generation"])
    p = sb.run(["reload", sb.volume_dir("stvol")])
    check(b"reloaded, generation %d" % (gen + 1) in p.stdout,
          "secretfs reload on the host reaches a container view's daemon: %r" % p.stdout)
    text = dk.exec(c, ["cat", "/app/conf/.status"]).stdout
    check(b"generation=%d\n" % (gen + 1) in text, "and the container sees the new generation")
    # the mount went exactly onto the plugin's own directory (through its descriptor)
    with open("/proc/self/mountinfo") as f:
        where = [ln.split()[4] for ln in f if " - fuse.secretfs " in ln]
    check(sb.volume_dir("stvol") in where, "mounted at the volume's directory: %s" % where)


ENV_DOCKER_VALUES = {
    "QUOTES": b"it's \"double\" and `back`",
    "DOLLARS": b"$HOME ${PATH} $(id)",
    "BACKSLASH": b"a\\b\\nc\\",
    "HASH": b"x #y#z",
    "SPACES": b"  lead and trail \t ",
    "EQUALS": b"a=b:c=d",
    "UTF8": "h\u00e9llo \u2603".encode(),
    "EMPTYISH": b" ",
    "NEWLINE": b"two\nlines",   # .env.docker cannot carry it: left out, named in a comment
}


def test_env_docker_through_engine(dk, sb):
    """`docker run --env-file MOUNT/.env.docker`: the real engine hands every variable the
    view carries to the container byte for byte, and the ones it leaves out are named."""
    values = {k: harness.canary(k.lower()) + b"|" + v for k, v in ENV_DOCKER_VALUES.items()}
    sb.set_secrets(values)
    mnt, _ = sb.mount()
    with open(os.path.join(mnt, ".env.docker"), "rb") as f:
        view = f.read()
    skipped = set(m.decode() for m in re.findall(rb"^# skipped ([A-Za-z0-9._-]+): ", view,
                                                 re.M))
    check("NEWLINE" in skipped, ".env.docker does not name NEWLINE as left out: %s"
          % sorted(skipped))
    check(len(skipped) < len(values) // 2, ".env.docker leaves out most values: %s"
          % sorted(skipped))
    names = sorted(n for n in values if n not in skipped)
    script = "printf '%s\\0' " + " ".join('"$%s"' % n for n in names)
    p = dk.run(["--env-file", os.path.join(mnt, ".env.docker"), IMAGE, "sh", "-c", script])
    got = p.stdout.split(b"\0")[:-1]
    check(len(got) == len(names), "the container printed %d of %d variables" % (
        len(got), len(names)))
    print("  %d variables compared in the container, %d left out" % (len(names), len(skipped)))
    for name, out in zip(names, got):
        check(out == values[name], "%s differs in the container (%d bytes, want %d)"
              % (name, len(out), len(values[name])))


def test_volume_driver_creates_on_use(dk, sb):
    values = secrets(sb)
    p = dk.run(["--volume-driver", sb.driver, "-v", "on-use:/run/secrets:ro", IMAGE,
                "cat", "/run/secrets/API_TOKEN"])
    check(p.stdout == values["API_TOKEN"], "a volume created on first use serves the store")
    check(dk.volumes(sb.driver) == ["on-use"], "and it stays defined: %s" % dk.volumes(sb.driver))
    st = dk.inspect_volume("on-use")["Status"]
    check(st["secrets"] == "(all)" and st["mode"] == "0400", "with the defaults: %s" % st)


def test_reload_reaches_running_containers(dk, sb):
    """A change to the store and SIGHUP to the plugin reach two running containers that
    share one volume; docker volume rm refuses while they run and succeeds after."""
    secrets(sb)
    dk.docker(["volume", "create", "-d", sb.driver, "-o", "secrets=DB_PASSWORD", "shared"])
    a = dk.start_container("sfs-a-%d" % os.getpid(), ["-v", "shared:/run/secrets:ro"])
    b = dk.start_container("sfs-b-%d" % os.getpid(), ["-v", "shared:/s:ro"])
    check(dk.inspect_volume("shared")["Status"]["references"] == 2,
          "two containers hold two references")
    new = harness.canary("new")
    sb.set_secrets({"DB_PASSWORD": new})
    sb.proc.send_signal(signal.SIGHUP)
    for name, path in ((a, "/run/secrets/DB_PASSWORD"), (b, "/s/DB_PASSWORD")):
        harness.wait_for(lambda: dk.exec(name, ["cat", path]).stdout == new,
                         "container %s to read the new value" % name, timeout=20)
    err = dk.fails(["volume", "rm", "shared"], "volume is in use")
    check("shared" in err, "the in-use error names the volume")
    dk.docker(["rm", "-f", a])
    dk.containers.remove(a)
    check(dk.exec(b, ["cat", "/s/DB_PASSWORD"]).stdout == new,
          "the second container still reads after the first went")
    dk.docker(["rm", "-f", b])
    dk.containers.remove(b)
    dk.docker(["volume", "rm", "shared"])
    check(dk.volumes(sb.driver) == [], "the volume is gone")
    check(not os.path.exists(sb.volume_dir("shared")), "and so is its mountpoint directory")


def test_bad_options_named_by_the_cli(dk, sb):
    secrets(sb)
    dk.fails(["volume", "create", "-d", sb.driver, "-o", "colour=blue", "v1"],
             "unknown option 'colour'", "known: secrets")
    dk.fails(["volume", "create", "-d", sb.driver, "-o", "mode=999", "v2"], "option mode")
    dk.fails(["volume", "create", "-d", sb.driver, "-o", "uid=root", "v3"], "option uid")
    dk.fails(["volume", "create", "-d", sb.driver, "-o", "secrets=DB_PASSWRD", "v4"],
             "DB_PASSWRD", "not in the store", "optional=")
    check(dk.volumes(sb.driver) == [], "no volume was created by a refused create")
    # the user may say a name may be missing
    dk.docker(["volume", "create", "-d", sb.driver, "-o", "secrets=DB_PASSWORD,LATER",
               "-o", "optional=LATER", "opt"])
    st = dk.inspect_volume("opt")["Status"]
    check(st.get("missing") == "LATER", "inspect's Status names the missing name: %s" % st)
    p = dk.run(["-v", "opt:/run/secrets:ro", IMAGE, "ls", "/run/secrets"])
    check(p.stdout.split() == [b"DB_PASSWORD"], "only the present name is served")


def test_name_removed_later_is_reported(dk, sb):
    secrets(sb)
    dk.docker(["volume", "create", "-d", sb.driver, "-o", "secrets=DB_PASSWORD,API_TOKEN",
               "later"])
    c = dk.start_container("sfs-later-%d" % os.getpid(), ["-v", "later:/run/secrets:ro"])
    sb.run(["rm", "API_TOKEN"])
    sb.proc.send_signal(signal.SIGHUP)
    harness.wait_for(lambda: b"missing=API_TOKEN" in dk.exec(c, ["cat", "/run/secrets/.status"])
                     .stdout, "the volume's .status to name the missing secret", timeout=20)
    st = dk.inspect_volume("later")["Status"]
    check(st.get("missing") == "API_TOKEN", "inspect's Status names it too: %s" % st)


if __name__ == "__main__":
    run_module([test_create_ls_inspect_run, test_env_sourced_in_container,
                test_env_docker_through_engine, test_status_in_container_is_true_there,
                test_volume_driver_creates_on_use, test_reload_reaches_running_containers,
                test_bad_options_named_by_the_cli, test_name_removed_later_is_reported])
