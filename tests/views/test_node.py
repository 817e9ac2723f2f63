#!/usr/bin/python3
""".env.node read by npm's dotenv (installed from the registry into the build directory, the
version a user gets today) from a real mount: dotenv.parse (default parser and
{ fast: true }) and config({ path }) give every hostile value byte for byte, or the view
names it in a skip comment for the documented reason.  Skips (77) only if npm cannot reach
the registry."""
import os
import shutil
import subprocess
import sys

from viewlib import (HERE, SKIP, Sandbox, ViewMount, check, compare, expected_left_out,
                     need_fuse, read_bytes, read_result, run_all, run_loader)

WORK = os.path.join(os.environ.get("SFS_VIEWS_WORK", HERE), "npm-dotenv")


def install_dotenv():
    """npm install dotenv into WORK (once per build directory); exits 77 if offline."""
    if os.path.exists(os.path.join(WORK, "node_modules", "dotenv", "package.json")):
        return
    check(shutil.which("node") and shutil.which("npm"),
          "node and npm are not installed (scripts/install-deps.sh)")
    os.makedirs(WORK, exist_ok=True)
    p = subprocess.run(["npm", "install", "--prefix", WORK, "--no-save", "--no-package-lock",
                        "--no-audit", "--no-fund", "dotenv@latest"],
                       capture_output=True, timeout=180, cwd=WORK)
    if p.returncode != 0:
        text = (p.stdout + p.stderr).decode(errors="replace")
        if any(s in text for s in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT",
                                   "ENETUNREACH", "network")):
            print("SKIP: npm cannot reach the registry to install dotenv")
            sys.exit(SKIP)
        check(False, "npm install dotenv failed: %s" % text[-500:])


def test_npm_dotenv():
    install_dotenv()
    with Sandbox() as sb:
        vm = ViewMount(sb)
        view = vm.path(".env.node")
        text = read_bytes(view)
        check(os.stat(view).st_size == len(text), ".env.node: st_size is not its length")
        out = os.path.join(sb.dir, "node.json")
        run_loader("npm dotenv", ["node", os.path.join(HERE, "load_node.js"), WORK, view, out],
                   vm.served, sb.dir)
        res = read_result(out)
        print("npm dotenv %s" % res["version"])
        check(res["error"] is None, "dotenv.config returned an error (%s)" % res["error"])
        want = expected_left_out("node", vm.served)
        compare("dotenv.parse", vm.served, res["parse"], text, want)
        compare("dotenv.parse fast", vm.served, res["fast"], text, want)
        compare("dotenv.config", vm.served, res["env"], text, want)


if __name__ == "__main__":
    need_fuse()
    run_all(test_npm_dotenv)
