#!/usr/bin/python3
""".env.go read by godotenv (Debian's golang-github-joho-godotenv-dev, built offline with
golang-go) from a real mount: Read and Load give every hostile value byte for byte, or the
view names it in a skip comment for the documented reason.  Then `secretfs update-secrets
--secrets-file .env.go` into another store gives the same set (platform names excepted: the
CLI never stores them), without a warning."""
import json
import os
import shutil
import subprocess

from viewlib import (HERE, PLATFORM, Sandbox, ViewMount, check, compare, expected_left_out,
                     need_fuse, read_bytes, read_result, run_all, run_loader)

WORK = os.path.join(os.environ.get("SFS_VIEWS_WORK", HERE), "go")
GOPATH = "/usr/share/gocode"


def build_loader():
    check(shutil.which("go"), "golang-go is not installed (scripts/install-deps.sh)")
    check(os.path.isdir(os.path.join(GOPATH, "src/github.com/joho/godotenv")),
          "golang-github-joho-godotenv-dev is not installed (scripts/install-deps.sh)")
    os.makedirs(WORK, exist_ok=True)
    exe = os.path.join(WORK, "load_go")
    env = {"PATH": "/usr/bin:/bin", "HOME": WORK, "GOPATH": GOPATH, "GO111MODULE": "off",
           "GOFLAGS": "", "GOPROXY": "off", "GOCACHE": os.path.join(WORK, "cache"),
           "CGO_ENABLED": "0"}
    p = subprocess.run(["go", "build", "-o", exe, "."], cwd=os.path.join(HERE, "load_go"),
                       env=env, capture_output=True, timeout=240)
    check(p.returncode == 0, "go build of the godotenv loader failed: %s" % (
        p.stderr.decode(errors="replace")[-1000:]))
    return exe


def test_godotenv_and_import():
    exe = build_loader()
    with Sandbox() as sb:
        vm = ViewMount(sb)
        view = vm.path(".env.go")
        text = read_bytes(view)
        check(os.stat(view).st_size == len(text), ".env.go: st_size is not its length")
        out = os.path.join(sb.dir, "go.json")
        run_loader("godotenv", [exe, view, out], vm.served, sb.dir)
        res = read_result(out)
        want = expected_left_out("go", vm.served)
        compare("godotenv.Read", vm.served, res["read"], text, want)
        compare("godotenv.Load", vm.served, res["env"], text, want)

        other = dict(sb.env, SECRETFS_STORE=os.path.join(sb.dir, "other.store"))
        p = sb.run(["update-secrets", "--secrets-file", view, "--ignore-empty-secrets"],
                   env=other, check_rc=False)
        stored = {n: v for n, v in vm.values.items() if n not in want}
        check(p.returncode == 0, "update-secrets --secrets-file .env.go exited %d" % p.returncode)
        imported = {e["name"]: sb.run(["get", e["name"]], env=other).stdout
                    for e in json.loads(sb.run(["list", "--json"], env=other).stdout)}
        compare("update-secrets --secrets-file .env.go", stored, imported, text, want)
        noise = [l for l in p.stderr.decode(errors="replace").splitlines()
                 if not any(n in l for n in PLATFORM)]
        check(not noise, "update-secrets printed %d lines of warnings importing .env.go"
              " (not shown)" % len(noise))


if __name__ == "__main__":
    need_fuse()
    run_all(test_godotenv_and_import)
