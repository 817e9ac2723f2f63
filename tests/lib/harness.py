"""Everything the tests share, by topic; import from here or from the topic module.

  core        the runner (run_all), check, TestFailure, skips, waits, canaries, hostile values
  mounts      mounts, daemons, Sandbox (cleans up mounts, pids and files even on failure)
  users       a real unprivileged user and running things as it
  clisandbox  CliSandbox: runs the CLI and fails the test when a canary leaks
  reloadlib, faultlib, runlib, etcd_cluster (when present): the suites' own helpers
"""
from core import *  # noqa: F401,F403
from core import _CANARIES  # noqa: F401
from mounts import *  # noqa: F401,F403
from users import *  # noqa: F401,F403
from clisandbox import *  # noqa: F401,F403
