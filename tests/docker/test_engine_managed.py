"""The managed plugin that examples/docker/config.json describes, proven under a real
dockerd without a registry: a root filesystem with secretfs and the libraries `ldd` lists,
`docker plugin create` from it, `docker plugin set` of the etc and state sources (the key,
config and store come from the host through them), `docker plugin enable`, a volume created
and read through it, then disable and rm."""
import json
import os
import shutil
import subprocess

from enginelib import IMAGE, check, harness, run_module

EXAMPLE = os.path.join(harness.SRC, "..", "examples", "docker", "config.json")


def copy_with_libs(binary, root, dst):
    os.makedirs(os.path.dirname(root + dst), exist_ok=True)
    shutil.copy2(binary, root + dst)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True)
    for line in ldd.stdout.splitlines():
        parts = line.split()
        lib = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if lib.startswith("/") and not os.path.exists(root + lib):
            os.makedirs(os.path.dirname(root + lib), exist_ok=True)
            shutil.copy2(os.path.realpath(lib), root + lib)


def test_managed_plugin(dk, sb):
    value = harness.canary("m")
    sb.set_secrets({"DB_PASSWORD": value, "OTHER": harness.canary("o")})
    name = "sfs-managed-%d:latest" % os.getpid()
    bundle = os.path.join(sb.dir, "bundle")
    root = os.path.join(bundle, "rootfs")
    for d in ("etc", "dev", "proc", "run/docker/plugins", "mnt/volumes", "var/lib/secretfs",
              "etc/secretfs", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    copy_with_libs(harness.SECRETFS, root, "/usr/bin/secretfs")
    shutil.copy(EXAMPLE, os.path.join(bundle, "config.json"))
    # the host side of the binds: /etc/secretfs and /var/lib/secretfs as the README says
    etc = os.path.join(sb.dir, "host-etc")
    state = os.path.join(sb.dir, "host-state")
    os.makedirs(etc, mode=0o700)
    os.makedirs(state, mode=0o700)
    shutil.copy2(sb.key, os.path.join(etc, "master.key"))
    shutil.copy2(sb.store, os.path.join(state, "secrets.store"))
    with open(os.path.join(etc, "secretfs.ini"), "w") as f:
        f.write("[store]\npath = /var/lib/secretfs/secrets.store\n"
                "key_file = /etc/secretfs/master.key\n")
    created = False
    try:
        dk.docker(["plugin", "create", name, bundle])
        created = True
        dk.docker(["plugin", "set", name, "etc.source=" + etc, "state.source=" + state])
        dk.docker(["plugin", "enable", name])
        dk.docker(["volume", "create", "-d", name, "-o", "secrets=DB_PASSWORD", "mv"])
        dk.fails(["volume", "create", "-d", name, "-o", "secrets=DB_PASSWRD", "typo"],
                 "DB_PASSWRD not in the store")
        p = dk.run(["-v", "mv:/run/secrets:ro", IMAGE, "sh", "-c",
                    "cat /run/secrets/DB_PASSWORD; ls /run/secrets"])
        check(p.stdout.startswith(value) and b"OTHER" not in p.stdout,
              "a container reads the subset through the managed plugin")
        check(os.path.exists(os.path.join(state, "plugin", "volumes.json")),
              "the plugin keeps its state in the state bind")
        dk.docker(["volume", "rm", "mv"])
    finally:
        if created:
            dk.docker(["volume", "rm", "-f", "mv"], check_rc=False)
            dk.docker(["plugin", "disable", "-f", name], check_rc=False)
            dk.docker(["plugin", "rm", "-f", name], check_rc=False)


if __name__ == "__main__":
    run_module([test_managed_plugin])
