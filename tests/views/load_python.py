"""Reads a view with Debian's python-dotenv, as an agent would, and writes what it got.

usage: /usr/bin/python3 load_python.py VIEW OUT.json
OUT.json: {"values": {name: base64}, "environ": {name: base64}, "warnings": N}: values from
dotenv_values(VIEW) and the variables load_dotenv(VIEW) added to os.environ, both with
default arguments.  Prints nothing (values must never reach output)."""
import base64
import json
import logging
import os
import sys

from dotenv import dotenv_values, load_dotenv


class Count(logging.Handler):
    n = 0

    def emit(self, record):
        Count.n += 1


def b64(s):
    return base64.b64encode(s.encode("utf-8", "surrogateescape")).decode()


def main():
    view, out = sys.argv[1], sys.argv[2]
    logging.getLogger("dotenv").addHandler(Count())
    logging.getLogger("dotenv").propagate = False
    values = {k: b64(v) for k, v in dotenv_values(view).items() if v is not None}
    before = set(os.environ)
    load_dotenv(view)
    environ = {k: b64(os.environ[k]) for k in os.environ if k not in before}
    with open(out, "w") as f:
        json.dump({"values": values, "environ": environ, "warnings": Count.n}, f)


main()
