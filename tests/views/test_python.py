#!/usr/bin/python3
""".env.python read by Debian's python-dotenv (/usr/bin/python3, dotenv_values and
load_dotenv with default arguments) from a real mount: every hostile value byte for byte,
or named in a skip comment for the documented reason; no parse warnings."""
import os
import subprocess

from viewlib import (HERE, Sandbox, ViewMount, check, compare, expected_left_out, need_fuse,
                     read_bytes, read_result, run_all, run_loader)


def test_python_dotenv():
    p = subprocess.run(["/usr/bin/python3", "-c", "import dotenv"], capture_output=True)
    check(p.returncode == 0, "python3-dotenv is not installed (scripts/install-deps.sh)")
    with Sandbox() as sb:
        vm = ViewMount(sb)
        view = vm.path(".env.python")
        text = read_bytes(view)
        check(os.stat(view).st_size == len(text), ".env.python: st_size is not its length")
        out = os.path.join(sb.dir, "python.json")
        run_loader("python-dotenv", ["/usr/bin/python3", "-I",
                                     os.path.join(HERE, "load_python.py"), view, out],
                   vm.served, sb.dir)
        res = read_result(out)
        check(res["warnings"] == 0, "python-dotenv logged %d parse warnings" % res["warnings"])
        want = expected_left_out("python", vm.served)
        compare("dotenv_values", vm.served, res["values"], text, want)
        compare("load_dotenv", vm.served, res["environ"], text, want)
        check(not os.path.exists(os.path.join(sb.dir, "pwned")), "something ran a value")


if __name__ == "__main__":
    need_fuse()
    run_all(test_python_dotenv)
