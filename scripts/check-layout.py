#!/usr/bin/python3
"""Keeps the architecture true: the folder include graph is acyclic and follows the module
order, no product function is longer than the limit, and only fs/status.c renders or parses
the daemon's .status (DESIGN.md, README "Layout").

Usage: scripts/check-layout.py [SOURCE_ROOT]   exit 0 ok, 1 with one line per problem."""
import os
import re
import sys

MODULES = ["util", "crypto", "secrets", "store", "fs", "docker", "cli"]
# Who may include whom (besides itself): each module only what lies below it.
ALLOWED = {
    "util": set(),
    "crypto": {"util"},
    "secrets": {"util", "crypto"},
    "store": {"util", "crypto", "secrets"},
    "fs": {"util", "crypto", "secrets", "store"},
    "docker": {"util", "crypto", "secrets", "store", "fs"},
    "cli": {"util", "crypto", "secrets", "store", "fs", "docker"},
}
# A dependency's header may be included by its one owner only.
OWNED_HEADERS = {
    "sodium.h": "crypto", "fuse_lowlevel.h": "fs", "ini.h": "cli", "curl/curl.h": "store",
    "microhttpd.h": "docker",
}
MAX_LINES = 80
INCLUDE = re.compile(r'^\s*#\s*include\s+[<"]([^>"]+)[>"]', re.M)
FUNC_START = re.compile(r"^(?!typedef|extern|return|else|if|for|while)[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)\s*\(")


def sources(root, module):
    d = os.path.join(root, module)
    for name in sorted(os.listdir(d)):
        if name.endswith((".c", ".h")):
            yield os.path.join(d, name)


def check_includes(root, problems):
    for m in MODULES:
        for path in sources(root, m):
            text = open(path, encoding="utf-8", errors="replace").read()
            for inc in INCLUDE.findall(text):
                top = inc.split("/")[0]
                if top in MODULES and top != m and top not in ALLOWED[m]:
                    problems.append("%s: includes %s, but %s/ is above %s/ (DESIGN.md: "
                                    "dependencies run one way)" % (path, inc, top, m))
                owner = OWNED_HEADERS.get(inc)
                if owner and owner != m:
                    problems.append("%s: includes %s, which only %s/ may include" % (
                        path, inc, owner))


def functions(text):
    """Yields (name, first line, length in lines) of each function definition."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = FUNC_START.match(line)
        if m and "=" not in line.split("(")[0]:
            # the body opens on this line or a following one (multi-line parameter lists)
            j = i
            while j < len(lines) and "{" not in lines[j] and ";" not in lines[j]:
                j += 1
            if j < len(lines) and "{" in lines[j] and ";" not in lines[j].split("{")[0]:
                depth, k = 0, j
                while k < len(lines):
                    depth += lines[k].count("{") - lines[k].count("}")
                    if depth == 0 and k >= j:
                        break
                    k += 1
                yield m.group(1), i + 1, k - i + 1
                i = k + 1
                continue
        i += 1


def check_functions(root, problems):
    for m in MODULES:
        for path in sources(root, m):
            if not path.endswith(".c"):
                continue
            text = open(path, encoding="utf-8", errors="replace").read()
            for name, first, length in functions(text):
                if length > MAX_LINES:
                    problems.append("%s:%d: %s() is %d lines; split it (limit %d)" % (
                        path, first, name, length, MAX_LINES))


def check_status_owner(root, problems):
    needle = re.compile(r'"(?:reloads_started|last_reload)=')
    for m in MODULES:
        for path in sources(root, m):
            if path.endswith(os.path.join("fs", "status.c")):
                continue
            text = open(path, encoding="utf-8", errors="replace").read()
            if needle.search(text):
                problems.append("%s: spells out .status keys; render and parse .status only "
                                "in fs/status.c (fs/status.h)" % path)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    problems = []
    check_includes(root, problems)
    check_functions(root, problems)
    check_status_owner(root, problems)
    for p in problems:
        print(p)
    print("check-layout: %d problem(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
