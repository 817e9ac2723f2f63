"""The plugin protocol as dockerd speaks it: the request sequences of `docker run -v`,
`docker volume create/inspect/ls/rm`, and the edge cases (Get before Create, one ID mounting
twice, an unknown ID, Remove while mounted, malformed bodies, unknown endpoints)."""
import json
import os
import signal
import socket
import threading
import time

from dockerlib import (PluginSandbox, check, fails, harness, mount_id, mounted_fs, ok,
                       wait_gone)

VALUES = {"DB_PASSWORD": b"pw", "API_TOKEN": b"tok", "OTHER": b"o"}


def sandbox():
    sb = PluginSandbox()
    sb.set_secrets(VALUES)
    sb.start_plugin()
    return sb


def test_docker_run_sequence():
    """docker run -v NAME:/p --volume-driver secretfs: Activate, Get (not there yet), Create
    with Opts null, Capabilities, Mount with a 64-hex ID, Path, then Unmount at exit."""
    with sandbox() as sb:
        e = sb.engine()
        r = e.activate()
        check(r.status == 200 and r.json == {"Implements": ["VolumeDriver"]}, "Activate: %r" % r)
        fails(e.get("app-secrets"), "Get before Create", "no such volume")
        ok(e.create("app-secrets", None), "Create with Opts null")
        r = e.capabilities()
        check(r.status == 200 and r.json["Capabilities"] == {"Scope": "local"},
              "Capabilities: %r" % r)
        r = ok(e.get("app-secrets"), "Get after Create")
        check(r.json["Volume"]["Name"] == "app-secrets", "Get names the volume")
        check("Mountpoint" not in r.json["Volume"], "an unmounted volume has no Mountpoint")
        check(ok(e.path("app-secrets"), "Path before Mount").json["Mountpoint"] == "",
              "Path of an unmounted volume is empty")
        mid = mount_id()
        r = ok(e.mount("app-secrets", mid), "Mount")
        mnt = r.json["Mountpoint"]
        check(mnt == sb.volume_dir("app-secrets"), "Mountpoint is VOLUMES/NAME: %s" % mnt)
        check(mounted_fs(mnt) == "fuse.secretfs", "a secretfs mount at the mountpoint")
        check(sorted(os.listdir(mnt)) == harness.expected_listing(VALUES),
              "Opts null serves every secret: %s" % sorted(os.listdir(mnt)))
        for name, value in VALUES.items():
            check(harness.read_bytes(os.path.join(mnt, name)) == value, "%s readable" % name)
        check(ok(e.path("app-secrets"), "Path").json["Mountpoint"] == mnt, "Path = Mountpoint")
        r = ok(e.get("app-secrets"), "Get while mounted")
        check(r.json["Volume"]["Mountpoint"] == mnt, "Get gives the Mountpoint")
        check(r.json["Volume"]["Status"]["references"] == 1, "one reference")
        pid = sb.daemon_pid(mnt)
        ok(e.unmount("app-secrets", mid), "Unmount")
        check(mounted_fs(mnt) is None, "unmounted after the last Unmount")
        wait_gone(pid, "the volume's daemon to exit")
        check(b"busy; detaching" not in sb.log_bytes(),
              "an unused volume was unmounted outright, not detached lazily")
        check(e.kept_alive(), "the whole sequence ran over one kept-alive connection")
        # `docker run --rm` then removes an anonymous-style volume it created
        ok(e.remove("app-secrets"), "Remove")
        check(not os.path.exists(mnt), "Remove deletes the mountpoint directory")


def test_volume_commands():
    """docker volume create -o ..., inspect, ls, rm."""
    with sandbox() as sb:
        e = sb.engine()
        e.activate()
        # docker volume create -d secretfs -o secrets=DB_PASSWORD,API_TOKEN -o uid=1000 ...
        fails(e.get("db-secrets"), "Get before Create")
        opts = {"secrets": "DB_PASSWORD,API_TOKEN", "uid": "1000", "gid": "1001",
                "mode": "0440", "cache": "none"}
        ok(e.create("db-secrets", opts), "Create with options")
        e.capabilities()
        ok(e.create("plain", {}), "Create with empty Opts")
        # docker volume inspect
        v = ok(e.get("db-secrets"), "inspect").json["Volume"]
        st = v["Status"]
        check(st["secrets"] == "DB_PASSWORD,API_TOKEN" and st["owner"] == "1000:1001" and
              st["mode"] == "0440" and st["cache"] == "none" and st["mounted"] is False and
              st["references"] == 0, "Status shows the definition: %r" % st)
        check(v["CreatedAt"].endswith("Z") and "T" in v["CreatedAt"], "CreatedAt is RFC 3339")
        # docker volume ls
        names = [x["Name"] for x in ok(e.list(), "List").json["Volumes"]]
        check(names == ["db-secrets", "plain"], "List: %s" % names)
        # the same create again is fine (Docker may repeat it); other options are not
        ok(e.create("db-secrets", opts), "Create again with the same options")
        fails(e.create("db-secrets", {"secrets": "OTHER"}), "Create again, other options",
              "already exists")
        # docker volume rm
        e.get("db-secrets")
        ok(e.remove("db-secrets"), "Remove")
        fails(e.get("db-secrets"), "Get after Remove", "no such volume")
        fails(e.remove("db-secrets"), "Remove twice", "no such volume")
        names = [x["Name"] for x in ok(e.list(), "List").json["Volumes"]]
        check(names == ["plain"], "List after rm: %s" % names)
        with open(os.path.join(sb.state, "volumes.json")) as f:
            check("db-secrets" not in f.read(), "the state file forgot the removed volume")
        check(e.kept_alive(), "one kept-alive connection")


def test_mount_references():
    """One ID mounting twice needs two Unmounts; Unmount of an unknown ID succeeds; Remove
    of a volume a container holds (a bind of it, as dockerd makes) fails; two IDs share one
    mount."""
    with sandbox() as sb:
        e = sb.engine()
        ok(e.create("v", {"secrets": "OTHER"}), "Create")
        a, b = mount_id(), mount_id()
        mnt = ok(e.mount("v", a), "Mount a").json["Mountpoint"]
        pid = sb.daemon_pid(mnt)
        check(ok(e.mount("v", a), "Mount a again").json["Mountpoint"] == mnt, "same mountpoint")
        check(sb.daemon_pid(mnt) == pid, "a second Mount reuses the mount")
        ok(e.mount("v", b), "Mount b")
        check(e.get("v").json["Volume"]["Status"]["references"] == 3, "three references")
        ok(e.unmount("v", mount_id()), "Unmount of an unknown ID")
        ctr = sb.bind("v")
        fails(e.remove("v"), "Remove while a container holds it", "in use")
        sb.unbind(ctr)
        ok(e.unmount("v", a), "Unmount a (1 of 2)")
        ok(e.unmount("v", b), "Unmount b")
        check(mounted_fs(mnt) == "fuse.secretfs", "still mounted while a holds one reference")
        check(harness.read_bytes(os.path.join(mnt, "OTHER")) == b"o", "still serving")
        ok(e.unmount("v", a), "Unmount a (2 of 2)")
        check(mounted_fs(mnt) is None, "unmounted at zero references")
        wait_gone(pid, "the daemon to exit")
        ok(e.unmount("v", a), "Unmount once more: an ID that holds nothing")
        with open(os.path.join(sb.state, "volumes.json")) as f:
            state = f.read()
        check(a not in state and b not in state, "released IDs leave the state file")
        fails(e.mount("nope", a), "Mount of an unknown volume", "no such volume")
        fails(e.unmount("nope", a), "Unmount of an unknown volume", "no such volume")
        ok(e.remove("v"), "Remove once unmounted")


def test_remove_drops_stale_references():
    """References that remain at Remove while no container holds the mount were left by
    an engine that died without Unmount (dockerd sends Remove only once its own in-use
    check passed): the volume is unmounted and removed, and the log says so."""
    with sandbox() as sb:
        e = sb.engine()
        ok(e.create("v", {"secrets": "OTHER"}), "Create")
        mnt = ok(e.mount("v", mount_id()), "Mount").json["Mountpoint"]
        pid = sb.daemon_pid(mnt)
        ok(e.remove("v"), "Remove with a reference no container holds")
        check(mounted_fs(mnt) is None and not os.path.exists(mnt), "unmounted and removed")
        wait_gone(pid, "the daemon to exit")
        check("1 stale reference" in sb.log_text(), "the log names the stale reference")
        fails(e.get("v"), "Get after Remove", "no such volume")


def test_bad_requests():
    """Malformed bodies, unknown endpoints, other methods: an error reply, never a crash."""
    with sandbox() as sb:
        e = sb.engine()
        fails(e.raw("/VolumeDriver.Create", b'{"Name": "x", '), "truncated JSON",
              "malformed JSON", status=400)
        fails(e.raw("/VolumeDriver.Create", b"\xff\xfe"), "not UTF-8", status=400)
        fails(e.raw("/VolumeDriver.Get", b'["Name"]'), "an array", "JSON object", status=400)
        fails(e.raw("/VolumeDriver.Get", b'{"Name": 7}'), "a number as Name", "Name",
              status=400)
        fails(e.raw("/VolumeDriver.Get", b'{"Name":"a","Name":"b"}'), "duplicate keys",
              status=400)
        fails(e.raw("/VolumeDriver.Mount", b""), "Mount without a body", status=400)
        fails(e.raw("/VolumeDriver.Create", b'{"Name":"x","Opts":["a"]}'), "Opts an array",
              "Opts")
        fails(e.raw("/VolumeDriver.Create", b'{"Name":"x","Opts":{"uid":7}}'),
              "a number as an option value", "uid")
        fails(e.raw("/VolumeDriver.Mount", b'{"Name":"x","ID":7}'), "a number as ID",
              status=400)
        fails(e.raw("/VolumeDriver.Frobnicate", b"{}\n"), "unknown endpoint",
              "unknown endpoint", status=404)
        fails(e.raw("/", b""), "the root", status=404)
        fails(e.raw("/VolumeDriver.List", b"{}", method="GET"), "GET", status=405)
        fails(e.raw("/VolumeDriver.List", b"nul\x00l"), "a NUL byte", status=400)
        deep = b"[" * 100000 + b"]" * 100000
        fails(e.raw("/VolumeDriver.Get", deep), "deeply nested JSON", status=400)
        ok(e.raw("/VolumeDriver.List", b""), "List with an empty body")
        ok(e.raw("/VolumeDriver.List", b" {}\r\n"), "List with whitespace around {}")
        for name in ("", ".", "..", "../etc", "a/b", "-x", ".hidden", "a b", "x" * 256,
                     "caf\u00e9"):
            fails(e.create(name, None), "Create %r" % name[:20], "invalid volume name")
            check(not os.path.exists(os.path.join(sb.vols, name)) or name in ("", ".", ".."),
                  "nothing created for an invalid name")
        ok(e.create("a" * 255, None), "a 255-character name")
        ok(e.create("x", None), "single character")
        ok(e.create("A-b_c.9", None), "all allowed characters")
        fails(e.mount("x", "a b"), "an ID with a space", "invalid mount ID")
        fails(e.mount("x", "f" * 257), "an ID of 257 characters", "invalid mount ID")
        # a body over the limit is refused before it is read
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(sb.sock)
        s.sendall(b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n"
                  b"\r\n")
        head = s.recv(4096)
        s.close()
        check(head.startswith(b"HTTP/1.1 413"), "an oversized body gets 413: %r" % head[:40])
        check(sb.proc.poll() is None, "the plugin survived")
        ok(sb.engine().list(), "and still answers")


def test_hosts_and_connections():
    """Any Host (a socket path, as older engines sent, or none at all); HTTP/1.0; many
    connections at once while a mount is in progress."""
    with sandbox() as sb:
        for host in ("plugin.moby.localhost", sb.sock, "d", "", None):
            e = sb.engine(host=host)
            ok(e.list(), "List with Host %r" % (host,))
            ok(e.list(), "again on the same connection")
            check(e.kept_alive(), "kept alive with Host %r" % (host,))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(sb.sock)
        s.sendall(b"POST /Plugin.Activate HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        check(data.startswith(b"HTTP/1.") and b"VolumeDriver" in data, "HTTP/1.0 works")
        e = sb.engine()
        ok(e.create("busy", None), "Create")
        errors = []

        def poll_list():
            try:
                c = sb.engine()
                for _ in range(20):
                    if c.list().status != 200:
                        errors.append("status")
            except Exception as ex:  # noqa: BLE001
                errors.append(type(ex).__name__)

        threads = [threading.Thread(target=poll_list) for _ in range(8)]
        for t in threads:
            t.start()
        mid = mount_id()
        ok(e.mount("busy", mid), "Mount while other clients poll")
        for t in threads:
            t.join(120)
        check(not errors, "concurrent clients failed: %s" % errors)
        ok(e.unmount("busy", mid), "Unmount")


def test_socket_and_state_files():
    """Socket 0600, state directory 0700, state file 0600 and valid JSON, no temp files."""
    with sandbox() as sb:
        e = sb.engine()
        ok(e.create("v", {"secrets": "DB_PASSWORD"}), "Create")
        mid = mount_id()
        ok(e.mount("v", mid), "Mount")
        check(os.stat(sb.sock).st_mode & 0o777 == 0o600, "socket mode 0600")
        check(os.stat(sb.state).st_mode & 0o777 == 0o700, "state dir 0700")
        check(os.stat(sb.vols).st_mode & 0o777 == 0o700, "volumes dir 0700")
        path = os.path.join(sb.state, "volumes.json")
        check(os.stat(path).st_mode & 0o777 == 0o600, "state file 0600")
        with open(path) as f:
            state = json.load(f)
        check(state["version"] == 1 and state["volumes"][0]["mounts"] == {mid: 1},
              "the state file holds the reference: %r" % state["volumes"][0]["mounts"])
        check(sorted(os.listdir(sb.state)) == ["lock", "volumes.json"],
              "no temporary files: %s" % os.listdir(sb.state))
        ok(e.unmount("v", mid), "Unmount")
        # an idle kept-alive connection and a half-sent request do not hold up a stop
        half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        half.connect(sb.sock)
        half.sendall(b"POST /VolumeDriver.List HTTP/1.1\r\nContent-Length: 10\r\n\r\n{")
        proc, sb.proc = sb.proc, None
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        check(proc.wait(timeout=60) == 0, "SIGTERM: exit 0")
        check(time.monotonic() - start < 10, "the stop waited for idle connections")
        half.close()
        e.close()
        check(not os.path.exists(sb.sock), "the socket is removed on exit")


if __name__ == "__main__":
    harness.need_fuse()
    harness.run_all(test_docker_run_sequence, test_volume_commands, test_mount_references, test_remove_drops_stale_references,
                    test_bad_requests, test_hosts_and_connections, test_socket_and_state_files)
