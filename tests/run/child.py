"""The program the `secretfs run` tests start.  Records what it sees; prints nothing.

usage: child.py DIR [--ignore-term] [--exit N] [--kill-self SIG] [--grandchild]
                   [--stubborn-grandchild]

DIR/env.PID          its environment, NAME=VALUE entries separated by NUL bytes
DIR/started          "PID MONOTONIC_TIME" per start (written after env.PID)
DIR/signals.PID      "SIGNAME MONOTONIC_TIME" per TERM/INT/HUP/USR1 received
DIR/grandchild.PID   pid of a `sleep` it started in its process group (--grandchild; with
                     --stubborn-grandchild that sleep ignores SIGTERM)

TERM and INT are recorded, then kill it with their default action (unless --ignore-term,
which records TERM and keeps running); HUP and USR1 are only recorded.
"""
import os
import signal
import subprocess
import sys
import time

out, opts = sys.argv[1], sys.argv[2:]
pid = os.getpid()


def put(name, data, mode="wb"):
    tmp = os.path.join(out, ".%s.tmp" % name)
    with open(tmp, mode) as f:
        f.write(data)
    os.rename(tmp, os.path.join(out, name))


def record(sig, _frame):
    with open(os.path.join(out, "signals.%d" % pid), "a") as f:
        f.write("%s %f\n" % (signal.Signals(sig).name, time.monotonic()))
    if sig in (signal.SIGTERM, signal.SIGINT) and not (sig == signal.SIGTERM and
                                                        "--ignore-term" in opts):
        signal.signal(sig, signal.SIG_DFL)
        os.kill(pid, sig)


for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
    signal.signal(s, record)
put("env.%d" % pid, b"".join(k + b"=" + v + b"\0" for k, v in os.environb.items()))
if "--grandchild" in opts or "--stubborn-grandchild" in opts:
    argv = ["sleep", "1000"]
    if "--stubborn-grandchild" in opts:  # a `sleep` that ignores SIGTERM
        argv = ["sh", "-c", "trap '' TERM; exec sleep 1000"]
    g = subprocess.Popen(argv)
    put("grandchild.%d" % pid, str(g.pid), "w")
with open(os.path.join(out, "started"), "a") as f:
    f.write("%d %f\n" % (pid, time.monotonic()))
if "--exit" in opts:
    sys.exit(int(opts[opts.index("--exit") + 1]))
if "--kill-self" in opts:
    sig = int(opts[opts.index("--kill-self") + 1])
    if sig != signal.SIGKILL:
        signal.signal(sig, signal.SIG_DFL)
    os.kill(pid, sig)
while True:
    time.sleep(1)
