"""A reader process for the audit tests: it opens a file, reads it, says so and stays until
told to finish, so a test can check the record that names it while it lives."""
import os
import subprocess

from core import check

READER = ("import os,sys\n"
          "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
          "n = len(os.read(fd, 1 << 20))\n"
          "os.close(fd)\n"
          "sys.stdout.write('read %d\\n' % n); sys.stdout.flush()\n"
          "sys.stdin.readline()\n")


def start_reader(path, user=None, cgroup=None):
    """A reader process that opens `path`, reads it and waits for a line on stdin."""
    def enter():
        if cgroup:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write("0")
    argv = ["/usr/bin/python3", "-c", READER, path]
    if user:
        argv = ["setpriv", "--reuid=%d" % user[0], "--regid=%d" % user[1], "--clear-groups",
                "--"] + argv
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         preexec_fn=enter)
    line = p.stdout.readline().decode()
    check(line.startswith("read "), "the reader could not read %s" % os.path.basename(path))
    return p


def finish(p, timeout=10):
    """Lets the reader exit and reaps it."""
    p.stdin.close()
    p.wait(timeout=timeout)
