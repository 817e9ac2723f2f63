#!/usr/bin/python3
"""Keeps the architecture true: the folder include graph is acyclic and follows the module
order, no product function is longer than the limit, and only fs/status.c renders or parses
the daemon's .status (DESIGN.md, README "Layout").

Usage: scripts/check-layout.py [SOURCE_ROOT]   exit 0 ok, 1 with one line per problem
       scripts/check-layout.py --self-test [SOURCE_ROOT]   first the checks against synthetic
                                                    sources, then SOURCE_ROOT if given"""
import os
import re
import sys
import tempfile

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
# A definition's first line: an optional return type, then the name and "(" (the type may
# be on the line before).  Keywords and attributes at the start of a line are not names.
FUNC_START = re.compile(r"^(?!(?:typedef|extern|return|else|if|for|while|do|switch|"
                        r"__attribute__)\b)(?:[A-Za-z_][\w \t\*]*?\b)?([A-Za-z_]\w*)\s*\(")
# A line that is only a return type ("static int" above "name(...)").
RETURN_TYPE_LINE = re.compile(r"^(?!(?:typedef|extern|return|else)\b)"
                              r"[A-Za-z_][\w \t\*]*$")
# Comments, string and character literals: their braces and semicolons are not code.
NOT_CODE = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)


def sources(root, module):
    """The module's .c and .h files, in its subfolders too."""
    for d, dirs, names in os.walk(os.path.join(root, module)):
        dirs.sort()
        for name in sorted(names):
            if name.endswith((".c", ".h")):
                yield os.path.join(d, name)


def blank_non_code(text):
    """`text` with comments and literals blanked out, line breaks kept."""
    return NOT_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def check_includes(root, problems):
    for m in MODULES:
        for path in sources(root, m):
            text = open(path, encoding="utf-8", errors="replace").read()
            for inc in INCLUDE.findall(text):
                inc = re.sub(r"^(?:\.\.?/)+", "", inc)  # "../store/x.h" is store/'s
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
    lines = blank_non_code(text).split("\n")
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
                first = i - 1 if i > 0 and RETURN_TYPE_LINE.match(lines[i - 1]) else i
                yield m.group(1), first + 1, k - first + 1
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


def check_tree(root):
    problems = []
    check_includes(root, problems)
    check_functions(root, problems)
    check_status_owner(root, problems)
    return problems


def body(n, first="    int x = 0;"):
    """A function body of exactly n lines, braces included."""
    return "{\n" + first + "\n" + "    x++;\n" * (n - 4) + "    return x;\n}\n"


# Synthetic sources: path -> text.  Each problem the checks must find is in SELF_TEST_WANT,
# as (path, words the line must contain); everything else must pass.
SELF_TEST_TREE = {
    # a cycle: secrets/ includes crypto/ (allowed), crypto/ includes secrets/ (not)
    "crypto/aead.c": '#include "crypto/aead.h"\n#include "secrets/set.h"\n#include <sodium.h>\n',
    "secrets/set.c": '#include "crypto/secmem.h"\n#include "../cli/config.h"\n',
    # a dependency's header outside its owner, in a subfolder
    "fs/sub/sneaky.c": '#include <sodium.h>\n',
    # 81 lines with a multi-line signature, the return type on the line before
    "store/long.c": ("static int\nlong_one(int a,\n         int b)\n" + body(78) +
                     "\nint exactly_80(void)\n" + body(79) +
                     # braces and ';' in literals and comments; an attribute on its own line
                     "\nstatic int braces_in_literals(const char *s) /* { */\n"
                     + body(6, "    int x = s[0] == '{' || strcmp(s, \"{{;\") == 0; // {") +
                     "\n__attribute__((warn_unused_result))\nint forward_long(void)\n" +
                     body(81)),
    # .status keys spelled out outside fs/status.c
    "cli/run.c": 'static const char *k = "last_reload=";\n',
    "fs/status.c": 'static const char *k = "last_reload=";\n',
}
SELF_TEST_WANT = [
    ("crypto/aead.c", ["secrets/set.h", "above"]),
    ("secrets/set.c", ["cli/config.h", "above"]),
    ("fs/sub/sneaky.c", ["sodium.h", "only crypto/"]),
    ("store/long.c:1:", ["long_one()", "81 lines"]),
    ("store/long.c", ["forward_long()", "82 lines"]),
    ("cli/run.c", [".status keys"]),
]


def self_test():
    with tempfile.TemporaryDirectory() as root:
        for m in MODULES:
            os.makedirs(os.path.join(root, m), exist_ok=True)
        for path, text in SELF_TEST_TREE.items():
            os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as f:
                f.write(text)
        got = [p[len(root) + 1:] for p in check_tree(root)]
    failures = []
    for where, words in SELF_TEST_WANT:
        hits = [p for p in got if p.startswith(where) and all(w in p for w in words)]
        if len(hits) != 1:
            failures.append("want one problem at %s saying %s, got %d" % (where, words, len(hits)))
        for h in hits:
            got.remove(h)
    failures += ["unexpected problem: " + p for p in got]
    for f in failures:
        print("check-layout self-test: " + f)
    print("check-layout self-test: %s" % ("FAILED" if failures else "ok"))
    return 1 if failures else 0


def main():
    args = sys.argv[1:]
    if args[:1] == ["--self-test"]:
        if self_test() != 0:
            return 1
        if len(args) == 1:
            return 0
        args = args[1:]
    root = args[0] if args else os.path.join(os.path.dirname(__file__), "..")
    problems = check_tree(root)
    for p in problems:
        print(p)
    print("check-layout: %d problem(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
