#!/usr/bin/env python3
"""Completions, driven through the real shells: bash with bash-completion loading
completions/secretfs.bash on demand (as from /usr/share/bash-completion/completions), and
zsh's compinit on a pseudo-terminal finding _secretfs in $fpath.  Commands and flags must
match --help, secret names must be the store's (never a value), reload must offer the
mountpoints being served."""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "mount"))
from harness import SKIP, CliSandbox, canary, check, run_all, unmount  # noqa: E402
import helpdoc  # noqa: E402

SECRETFS = os.environ["SECRETFS_BIN"]
COMPLETIONS = os.path.join(os.environ["SFS_SOURCE_ROOT"], "completions")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"

BASH_DRIVER = r'''
source "$BASH_COMPLETION" || exit 3
complete -r secretfs 2>/dev/null
_completion_loader secretfs
spec=$(complete -p secretfs) || { echo "no completion loaded for secretfs"; exit 4; }
fn=${spec#*-F }; fn=${fn%% *}
for line in "$@"; do
    COMP_LINE=$line COMP_POINT=${#line}
    read -ra COMP_WORDS <<<"$line"
    [[ $line == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    "$fn" secretfs "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf '%s\n' "${COMPREPLY[@]}"
    echo --
done
'''


def split_answers(out, lines):
    answers, cur = [], []
    for l in out.splitlines():
        if l == "--":
            answers.append(sorted(set(x for x in cur if x)))
            cur = []
        else:
            cur.append(l)
    check(len(answers) == len(lines), "expected %d answers, got %r" % (len(lines), out[-2000:]))
    return dict(zip(lines, answers))


def env_for(sb, bindir):
    env = dict(sb.env)
    env["PATH"] = bindir + ":" + env["PATH"]
    env["SECRETFS_STORE"], env["SECRETFS_KEY_FILE"] = sb.store, sb.key
    return env


def bash_complete(sb, bindir, lines):
    data = tempfile.mkdtemp(dir=sb.dir)
    os.makedirs(os.path.join(data, "bash-completion", "completions"))
    os.symlink(os.path.join(COMPLETIONS, "secretfs.bash"),
               os.path.join(data, "bash-completion", "completions", "secretfs"))
    env = env_for(sb, bindir)
    env.update(BASH_COMPLETION=BASH_COMPLETION, XDG_DATA_DIRS=data, HOME=sb.dir)
    p = subprocess.run(["bash", "--norc", "-c", BASH_DRIVER, "bash"] + lines, env=env,
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "bash driver exited %d: %s" % (p.returncode, p.stdout + p.stderr))
    return split_answers(p.stdout, lines), p.stdout + p.stderr


def zsh_complete(sb, bindir, lines):
    env = env_for(sb, bindir)
    env["HOME"] = sb.dir
    p = subprocess.run(["zsh", "-f", os.path.join(HERE, "zsh-complete.zsh"), COMPLETIONS] +
                       lines, env=env, capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "zsh driver exited %d: %s" % (p.returncode, p.stdout + p.stderr))
    return split_answers(p.stdout, lines), p.stdout + p.stderr


def scenario(complete):
    with CliSandbox() as sb:
        bindir = tempfile.mkdtemp(dir=sb.dir)
        os.symlink(SECRETFS, os.path.join(bindir, "secretfs"))
        values = {"DB_PASSWORD": canary("db"), "API_TOKEN": canary("api")}
        sb.set_secrets(values)
        other_store = os.path.join(sb.dir, "other.store")
        sb.run(["set", "OTHER_ONLY", "--store", other_store], input=canary("o"))
        mnt = None
        if os.geteuid() == 0 and os.path.exists("/dev/fuse"):
            mnt, _ = sb.mount()
        h = helpdoc.from_help(SECRETFS)
        lines = ["secretfs ", "secretfs re", "secretfs mount --", "secretfs run --re",
                 "secretfs get ", "secretfs get D", "secretfs rm API_TOKEN ",
                 "secretfs set DB_PASSWORD ", "secretfs get --store %s " % other_store,
                 "secretfs reload "]
        try:
            got, raw = complete(sb, bindir, lines)
        finally:
            if mnt:
                unmount(mnt)
        cmds = set(got["secretfs "]) - {"--help", "--version"}
        check(cmds == set(h["commands"]), "commands: %s, --help lists %s"
              % (sorted(cmds), h["commands"]))
        want_re = sorted(c for c in h["commands"] if c.startswith("re"))
        check(got["secretfs re"] == want_re, "'re': %s, want %s" % (got["secretfs re"], want_re))
        want = sorted(f for f in h["flags"]["mount"] if f.startswith("--"))
        check(got["secretfs mount --"] == want, "mount --: %s, want %s"
              % (got["secretfs mount --"], want))
        check(got["secretfs run --re"] == ["--restart-on-change"], "run --re: %s"
              % got["secretfs run --re"])
        check(got["secretfs get "] == ["API_TOKEN", "DB_PASSWORD"], "get: %s"
              % got["secretfs get "])
        check(got["secretfs get D"] == ["DB_PASSWORD"], "get D: %s" % got["secretfs get D"])
        check(got["secretfs rm API_TOKEN "] == ["API_TOKEN", "DB_PASSWORD"], "rm: %s"
              % got["secretfs rm API_TOKEN "])
        check(got["secretfs set DB_PASSWORD "] == [], "set after NAME offered %s"
              % got["secretfs set DB_PASSWORD "])
        check(got["secretfs get --store %s " % other_store] == ["OTHER_ONLY"],
              "--store on the line is not used: %s" % got["secretfs get --store %s " % other_store])
        if mnt:
            check(mnt in got["secretfs reload "], "reload offers %s, not the mount %s"
                  % (got["secretfs reload "], mnt))
        else:
            print("note: not root: reload's mountpoints not checked")
        for v in values.values():
            check(v.decode() not in raw, "a secret value reached the completion output")


def test_bash():
    if not os.path.exists(BASH_COMPLETION):
        print("SKIP: bash-completion is not installed")
        sys.exit(SKIP)
    scenario(bash_complete)


def test_zsh():
    if not shutil.which("zsh"):
        print("SKIP: zsh is not installed")
        sys.exit(SKIP)
    scenario(zsh_complete)


if __name__ == "__main__":
    run_all(test_bash, test_zsh)
