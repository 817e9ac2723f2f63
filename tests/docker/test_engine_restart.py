"""Restarts under a real dockerd: the plugin restarted while a container runs, dockerd
killed (references it never releases), dockerd restarted with --live-restore, and boot
order: the plugin socket-activated as its systemd units do, so dockerd may start first."""
import os
import signal
import subprocess
import time

from enginelib import IMAGE, check, harness, run_module

SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"


def one_secret(sb):
    value = harness.canary("a")
    sb.set_secrets({"A": value})
    return value


def refs(dk, name):
    return dk.inspect_volume(name)["Status"]["references"]


def test_plugin_restart_while_container_runs(dk, sb):
    value = one_secret(sb)
    sb.start_plugin()
    dk.docker(["volume", "create", "-d", sb.driver, "-o", "secrets=A", "v"])
    c = dk.start_container("sfs-pr-%d" % os.getpid(), ["-v", "v:/run/secrets:ro"])
    pid = sb.daemon_pid(sb.volume_dir("v"))
    sb.stop_plugin(signal.SIGKILL)
    check(dk.exec(c, ["cat", "/run/secrets/A"]).stdout == value,
          "the container reads while the plugin is down")
    sb.start_plugin()
    check("adopted the live mount" in sb.log_text(), "the restarted plugin adopts the mount")
    check(refs(dk, "v") == 1 and sb.daemon_pid(sb.volume_dir("v")) == pid,
          "one reference, the same daemon")
    dk.docker(["rm", "-f", c])
    dk.containers.remove(c)
    harness.wait_for(lambda: refs(dk, "v") == 0, "dockerd's Unmount to reach the new plugin")
    check(not harness.is_mounted(sb.volume_dir("v")), "unmounted at the last reference")
    dk.docker(["volume", "rm", "v"])


def test_dockerd_killed(dk, sb):
    """kill -9 of dockerd with a container on a volume: the restarted dockerd kills the
    container but never sends Unmount.  docker volume rm must still work (stale references
    at Remove), and a plugin restarted in between drops them itself."""
    one_secret(sb)
    sb.start_plugin()
    for v in ("v", "w"):
        dk.docker(["volume", "create", "-d", sb.driver, "-o", "secrets=A", v])
    k1 = dk.start_container("sfs-k1-%d" % os.getpid(), ["-v", "v:/run/secrets:ro"])
    dk.start_container("sfs-k2-%d" % os.getpid(), ["-v", "w:/run/secrets:ro"])
    dk.kill()
    dk.start(first=False)
    harness.wait_for(lambda: dk.out(["ps", "-q"]).strip() == "",
                     "the restarted dockerd to stop the orphaned containers", timeout=60)
    check(refs(dk, "v") == 1 and refs(dk, "w") == 1,
          "dockerd left the references behind (what the fix is about)")
    dk.docker(["rm", k1])
    dk.containers.remove(k1)
    dk.docker(["volume", "rm", "v"])
    check("removing it with 1 stale reference" in sb.log_text(),
          "the plugin logs the stale reference it dropped")
    check(not os.path.exists(sb.volume_dir("v")), "unmounted and removed")
    sb.stop_plugin()
    sb.start_plugin()
    check("w: no container holds its mount: dropping 1 stale reference" in sb.log_text(),
          "a restarted plugin reconciles references no container holds")
    check(refs(dk, "w") == 0 and not harness.is_mounted(sb.volume_dir("w")),
          "and unmounts the volume")
    for c in list(dk.containers):
        dk.docker(["rm", "-f", c])
        dk.containers.remove(c)
    dk.docker(["volume", "rm", "w"])


def test_live_restore(dk, sb):
    """With --live-restore, containers outlive a dockerd restart (clean or kill -9); their
    references stay and their secrets keep flowing; a reload reaches them."""
    value = one_secret(sb)
    sb.start_plugin()
    dk.stop()
    dk.live_restore = True
    try:
        dk.start(first=False)
        dk.docker(["volume", "create", "-d", sb.driver, "v"])
        c = dk.start_container("sfs-lr-%d" % os.getpid(), ["-v", "v:/run/secrets:ro"])
        for how in ("stop", "kill"):
            getattr(dk, how)()
            dk.start(first=False)
            check(dk.out(["inspect", "-f", "{{.State.Running}}", c]).strip() == "true",
                  "the container survives a dockerd %s" % how)
            check(dk.exec(c, ["cat", "/run/secrets/A"]).stdout == value,
                  "and reads its secret after the dockerd %s" % how)
            check(refs(dk, "v") == 1, "its reference stays")
        sb.stop_plugin()
        sb.start_plugin()
        check("adopted the live mount" in sb.log_text(),
              "a restarted plugin adopts what a live-restored container holds")
        new = harness.canary("b")
        sb.set_secrets({"A": new})
        sb.proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: dk.exec(c, ["cat", "/run/secrets/A"]).stdout == new,
                         "the reload to reach the live-restored container", timeout=20)
        dk.docker(["rm", "-f", c])
        dk.containers.remove(c)
        harness.wait_for(lambda: refs(dk, "v") == 0, "the Unmount")
        dk.docker(["volume", "rm", "v"])
    finally:
        dk.live_restore = False
        for cn in list(dk.containers):
            dk.docker(["rm", "-f", cn], check_rc=False)
            dk.containers.remove(cn)
        dk.stop()
        dk.start(first=False)


def test_socket_activation_before_dockerd(dk, sb):
    """Boot order: only the socket exists (as secretfs-docker-plugin.socket makes it) when
    dockerd starts and restarts a container with a restart policy on a secretfs volume; the
    connection starts the plugin, which serves the socket systemd passed."""
    if not os.path.exists(SOCKET_ACTIVATE):
        print("(skipped: %s missing)" % SOCKET_ACTIVATE)
        return
    value = one_secret(sb)
    sb.start_plugin()
    dk.docker(["volume", "create", "-d", sb.driver, "-o", "secrets=A", "boot"])
    c = dk.start_container("sfs-boot-%d" % os.getpid(), ["--restart", "always",
                                                          "-v", "boot:/run/secrets:ro"])
    dk.stop()   # the machine goes down: dockerd stops the container, which Unmounts
    sb.stop_plugin()
    check(not os.path.exists(sb.sock), "the plugin removed its own socket")
    logf = open(sb.log, "ab")
    act = subprocess.Popen(
        [SOCKET_ACTIVATE, "-l", sb.sock, harness.SECRETFS, "docker-plugin", "--config",
         sb.config, "--state", sb.state, "--volumes", sb.vols, "--socket", sb.sock],
        stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, env=sb.env)
    logf.close()
    sb.proc = act  # stopped (SIGTERM) and checked by the sandbox
    harness.wait_for(lambda: os.path.exists(sb.sock), "systemd-socket-activate to listen")
    dk.start(first=False)  # restarts the container: Mount goes through the activated socket
    harness.wait_for(lambda: dk.exec(c, ["cat", "/run/secrets/A"], check_rc=False).stdout ==
                     value, "the restarted container to read its secret", timeout=60)
    check("socket from systemd" in sb.log_text(), "the plugin serves the socket it was passed")
    check(act.poll() is None, "the plugin keeps running")
    with open("/proc/%d/environ" % act.pid, "rb") as f:
        check(b"LISTEN_FDS" in f.read(), "it was started with LISTEN_FDS")
    mnt_pid = sb.daemon_pid(sb.volume_dir("boot"))
    with open("/proc/%d/environ" % mnt_pid, "rb") as f:
        check(b"LISTEN_FDS" not in f.read(), "its mount daemons do not inherit LISTEN_FDS")
    dk.docker(["rm", "-f", c])
    dk.containers.remove(c)
    dk.docker(["volume", "rm", "boot"])
    sb.stop_plugin()
    check(os.path.exists(sb.sock), "the socket file, systemd's, stays after the plugin stops")


def test_plugin_down(dk, sb):
    """What users see when the plugin is down: dockerd retries, then an error naming the
    driver (documented in the README)."""
    sb.start_plugin()
    dk.docker(["volume", "create", "-d", sb.driver, "down"])
    sb.stop_plugin()
    t0 = time.monotonic()
    p = dk.run(["-v", "down:/run/secrets:ro", IMAGE, "true"], check_rc=False, timeout=120)
    took = time.monotonic() - t0
    err = p.stderr.decode(errors="replace")
    check(p.returncode != 0 and sb.driver in err,
          "docker run fails naming the driver: %s" % err[-300:])
    print("(plugin down: docker run failed after %.0f s: %s)" % (took, err.strip()[-160:]))
    sb.start_plugin()
    dk.docker(["volume", "rm", "down"])


if __name__ == "__main__":
    run_module([test_plugin_restart_while_container_runs, test_dockerd_killed,
                test_live_restore, test_socket_activation_before_dockerd, test_plugin_down])
