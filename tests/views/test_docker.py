#!/usr/bin/python3
""".env.docker read by the docker CLI's own env-file parser from a real mount.

`docker run --env-file` parses the file in the CLI and sends the variables to the engine in
the create request.  No engine is started here: the CLI talks to a stand-in API endpoint on a
unix socket (DOCKER_HOST) that records the create request's Env and refuses it, so what is
checked is exactly what the CLI would hand to dockerd.  That the engine passes Env through
to the container unchanged is left to the Docker engine tests.  Every docker CLI found
(Debian's /usr/bin/docker, a newer one on PATH) is checked."""
import http.server
import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading

from viewlib import (SKIP, Sandbox, ViewMount, check, compare, expected_left_out, need_fuse,
                     no_values_in, read_bytes, run_all)


class Engine(http.server.BaseHTTPRequestHandler):
    """Answers pings; records a container create request's Env, then refuses it."""
    created = []

    def log_message(self, *args):
        pass

    def _reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("API-Version", "1.41")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self._reply(200, b"OK")

    def do_GET(self):
        self._reply(200, b"OK")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "/containers/create" in self.path:
            Engine.created.append(json.loads(body))
        self._reply(500, b'{"message":"stand-in engine: not creating containers"}')


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def docker_clis():
    found = []
    for path in ("/usr/bin/docker", shutil.which("docker")):
        if path and os.path.exists(path) and os.path.realpath(path) not in found:
            found.append(os.path.realpath(path))
    return found


def env_of(create):
    out = {}
    for kv in create.get("Env") or []:
        name, _, value = kv.partition("=")
        out[name] = value.encode("utf-8")
    return out


def test_docker_env_file():
    clis = docker_clis()
    if not clis:
        print("SKIP: no docker CLI (Debian's docker.io) installed")
        sys.exit(SKIP)
    with Sandbox() as sb:
        vm = ViewMount(sb)
        view = vm.path(".env.docker")
        text = read_bytes(view)
        check(os.stat(view).st_size == len(text), ".env.docker: st_size is not its length")
        sock = os.path.join(sb.dir, "engine.sock")
        server = Server(sock, Engine)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            for cli in clis:
                Engine.created.clear()
                env = {"PATH": "/usr/bin:/bin", "HOME": sb.dir, "DOCKER_HOST": "unix://" + sock,
                       "DOCKER_CONFIG": os.path.join(sb.dir, "docker-config")}
                p = subprocess.run([cli, "run", "--rm", "--env-file", view, "busybox", "true"],
                                   capture_output=True, env=env, timeout=60)
                no_values_in(cli, p.stdout + p.stderr, vm.served)
                version = subprocess.run([cli, "--version"], capture_output=True, env=env,
                                         timeout=30).stdout.decode().strip()
                print(version)
                check(len(Engine.created) == 1, "%s sent %d create requests (exit %d), want 1"
                      % (cli, len(Engine.created), p.returncode))
                got = {n: v for n, v in env_of(Engine.created[0]).items()}
                compare("%s --env-file" % cli, vm.served, got, text,
                        expected_left_out("docker", vm.served))
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    need_fuse()
    run_all(test_docker_env_file)
