"""docker-plugin --audit under a real dockerd: a container that reads a secret from its
volume leaves a record that names the secret, the container's process (its pid on the host
and its uid, as the kernel gives them for the read) and its cgroup, never the value; and
docker volume inspect shows where the records go."""
import json
import os

from enginelib import IMAGE, check, harness, run_module
from dockerlib import wait_audit_record


def test_container_read_is_recorded(dk, sb):
    value = harness.canary("db")
    sb.set_secrets({"DB_PASSWORD": value, "OTHER": harness.canary("o")})
    uid, gid = harness.ensure_test_user()
    audit = os.path.join(sb.dir, "audit")
    sb.start_plugin(extra=["--audit", audit])
    dk.docker(["volume", "create", "-d", sb.driver, "-o", "secrets=DB_PASSWORD", "-o",
               "uid=%d" % uid, "db"])
    log = os.path.join(audit, "db.log")
    st = dk.inspect_volume("db")["Status"]
    check(st.get("audit") == log and st.get("cache") == "none",
          "docker volume inspect shows the volume's log and cache=none: %s" % st)
    # the shell itself opens the file (`read` is a builtin): the container's main process
    name = dk.start_container("audited-reader", [
        "--user", "%d:%d" % (uid, gid), "-v", "db:/run/secrets:ro"],
        cmd=("sh", "-c", "read -r v < /run/secrets/DB_PASSWORD; sleep 600"))
    info = json.loads(dk.out(["inspect", name]))[0]
    pid, cid = info["State"]["Pid"], info["Id"]
    rec = wait_audit_record(log, "the container's read", event="open", name="DB_PASSWORD")
    check(rec["pid"] == pid and rec["uid"] == uid and rec["gid"] == gid,
          "the record names the container's process: pid %s uid %s gid %s (want %d %d %d)" % (
              rec["pid"], rec["uid"], rec["gid"], pid, uid, gid))
    cgroups = json.dumps([rec.get("cgroup"), rec.get("cgroup_v1")])
    check(cid in cgroups, "the record's cgroup names the container: %s" % cgroups[:300])
    check(rec["mount"] == sb.volume_dir("db"), "the record names the volume's mount")
    with open(log, "rb") as f:
        check(harness.leaks(f.read()) == 0, "no value in the audit log")
    p = dk.exec(name, ["cat", "/run/secrets/.status"])
    check(b"audit=on" in p.stdout and b"cache=none" in p.stdout and
          audit.encode() not in p.stdout,
          "the container's .status says audit=on, without the host's path")
    print("record: pid %d uid %d exe %s cgroup %s" % (rec["pid"], rec["uid"], rec.get("exe"),
                                                      rec.get("cgroup")))


if __name__ == "__main__":
    run_module([test_container_read_is_recorded])
