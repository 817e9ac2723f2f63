"""Shared helpers for the real-loader tests of the dotenv views (.env.python, .env.node,
.env.go, .env.docker): the hostile values, one real mount holding them, and the comparison of
what a loader read with what the mount serves.

Each loader runs in its own process and writes what it read as JSON {name: base64(bytes)}
into a file; the comparison happens here and reports names and lengths, never values.
"""
import base64
import json
import os
import re
import sys


from harness import (CACHE_MODES, SKIP, Sandbox, TestFailure, check,  # noqa: E402,F401
                     hostile_values, need_fuse, read_bytes, run_all)

HERE = os.path.dirname(os.path.abspath(__file__))


def _backslash_before(chars):
    return "".join("\\" + c for c in chars).encode()


def issue_values():
    """The hostile values of issue 15 (names V_*), beyond tests/data/hostile-values.tsv."""
    printable = "".join(chr(c) for c in range(0x20, 0x7F))
    v = {
        "V_SQ": b"it's", "V_DQ": b'say "hi"', "V_BT": b"`id`",
        "V_SQ_DQ": b"'\"", "V_SQ_BT": b"'`", "V_DQ_BT": b'"`', "V_ALL_QUOTES": b"'\"`",
        "V_DQ_START": b'"quoted', "V_DQ_END": b'ends with "', "V_DQ_BOTH": b'"both"',
        "V_NAME": b"$HOME", "V_BRACES": b"${HOME}", "V_BRACES_DEFAULT": b"${NOPE:-dflt}",
        "V_CMD": b"$(echo pwned >pwned)", "V_DOLLAR_END": b"cost: 5$",
        "V_BS_LETTERS": _backslash_before("abfnrtvxuNZ0$\"'`#=: "),
        "V_BS_PRINTABLE": _backslash_before(printable),
        "V_BS_ALL": b"".join(b"\\" + bytes([c]) for c in range(1, 0x80)),
        "V_BS_END": b"C:\\dir\\", "V_BS_END_SPACE": b"two words\\", "V_BS_ONLY": b"\\",
        "V_BS_BEFORE_NL": b"a\\\nb", "V_BS_BEFORE_CR": b"a\\\rb",
        "V_HASH": b"a#b", "V_HASH_SPACE": b"a #b", "V_HASH_START": b"#start",
        "V_HASH_MANY": b"a # b #c", "V_HASH_TAB": b"a\t#b",
        "V_SPACES": b"  lead and trail  ", "V_TABS": b"\tlead and trail\t",
        "V_CRLF": b"one\r\ntwo\r\n", "V_CR": b"a\rb", "V_CR_END": b"cr at end\r",
        "V_CR_START": b"\rcr at start",
        "V_NL_START": b"\nstarts", "V_NL_END": b"ends\n", "V_NL_BOTH": b"\n\nboth\n\n",
        "V_EQ_COLON": b"a=b: c==d::", "V_COLON_START": b": x", "V_EQ_START": b"=x",
        "V_UTF8": "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \U0001F510".encode(),
        "V_NBSP_EDGES": "\u00a0nbsp\u00a0".encode(), "V_BOM": "\ufeffbom".encode(),
        "V_LS_PS": "a\u2028b\u2029c".encode(), "V_NEL": "a\u0085b".encode(),
        "V_BAD_UTF8": b"bad \xff\xfe utf8", "V_SURROGATE": b"\xed\xa0\x80",
        "V_EXPORT": b"export X=1", "V_LOOKS_LIKE_LINE": b"x\nFAKE=injected\n# c",
        "V_64K": (b"0123456789abcdef" * 4096),
        "V_TAIL_SPACE_HASH": b"x #",
    }
    assert len(v["V_64K"]) == 65536
    return v


# Names the store accepts but some loader does not, each with a value every loader carries.
ODD_NAMES = {"db.password": b"dotted", "api-key": b"dashed", "9LIVES": b"digit first",
             "HAS_NUL": b"a\x00b", "export": b"named export"}


def all_values():
    """Every value the tests store (name -> bytes), plus a fresh canary."""
    values = {k: v for k, v in hostile_values().items() if v}   # the store refuses empty ones
    values.update(issue_values())
    values.update(ODD_NAMES)
    values["CANARY"] = ("canary-%s" % os.urandom(12).hex()).encode()
    return values


# Platform entries, from the daemon's environment: the only way to serve an empty value.
PLATFORM = {"LIVEKIT_URL": b"wss://lk.example/'$(echo pwned >pwned)'\"`x`\\ #x",
            "LIVEKIT_API_SECRET": b""}


class ViewMount:
    """A sandbox store holding all_values(), mounted (cache=kernel) with PLATFORM."""

    def __init__(self, sb):
        self.sb = sb
        self.values = all_values()
        sb.set_secrets(self.values)
        env = dict(sb.env)
        for k in list(env):
            if k.startswith("LIVEKIT_"):
                del env[k]
        env.update({k: v.decode() for k, v in PLATFORM.items()})
        self.mnt, _ = sb.mount(opts=["-o", "cache=kernel"], env=env)
        self.served = dict(self.values)
        self.served.update(PLATFORM)

    def path(self, view):
        return os.path.join(self.mnt, view)


SKIPPED = re.compile(rb"^# skipped ([A-Za-z0-9._-]+): ", re.M)


def skipped_names(text):
    return set(m.decode() for m in SKIPPED.findall(text))


def read_result(path):
    """A loader's output file: its JSON object with every {name: base64} map decoded."""
    with open(path) as f:
        raw = json.load(f)
    return {k: ({n: base64.b64decode(b) for n, b in v.items()} if isinstance(v, dict) else v)
            for k, v in raw.items()}


def run_loader(what, argv, served, cwd, env=None, timeout=60):
    """Runs a loader program; fails if it exits non-zero or prints a served value."""
    import subprocess
    p = subprocess.run(argv, capture_output=True, cwd=cwd, timeout=timeout,
                       env=env or {"PATH": "/usr/bin:/bin"})
    no_values_in(what, p.stdout + p.stderr, served)
    check(p.returncode == 0, "%s exited %d (%d bytes of output, not shown)" % (
        what, p.returncode, len(p.stdout) + len(p.stderr)))
    return p


def compare(what, served, got, text, want_skipped):
    """Checks that loader output `got` (name -> bytes) holds exactly every served entry the
    view `text` does not name in a skip comment, byte for byte, nothing else; and that the
    view skips exactly `want_skipped`.  Failures name entries and lengths only."""
    skipped = skipped_names(text)
    check(skipped == set(want_skipped),
          "%s: the view leaves out %s; expected %s" % (
              what, sorted(skipped), sorted(want_skipped)))
    missing = sorted(n for n in served if n not in skipped and n not in got)
    check(not missing, "%s: the loader did not read %s" % (what, missing))
    wrong = ["%s (%d bytes, read %d)" % (n, len(served[n]), len(got[n]))
             for n in sorted(served) if n not in skipped and n in got and got[n] != served[n]]
    check(not wrong, "%s: the loader read different bytes for %s" % (what, wrong))
    extra = sorted(n for n in got if n not in served or n in skipped)
    check(not extra, "%s: the loader read entries the view leaves out or that do not exist: %s"
          % (what, extra))


def no_values_in(what, data, served):
    """Fails if a loader's own output (stdout/stderr) contains a served value."""
    leaked = sorted(n for n, v in served.items() if len(v) >= 6 and v in data)
    check(not leaked, "%s: the loader's output contains the value of %s" % (what, leaked))


def _utf8(v):
    try:
        v.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _plain_word(v, forbidden=b""):
    return (re.fullmatch(rb"[!-~]+", v) is not None and v[:1] not in (b"'", b'"', b"`")
            and not any(c in forbidden for c in v))


def _left_out_python(name, v):
    from dotenv.variables import _posix_variable   # the loader's own expansion rule
    return (b"\0" in v or not _utf8(v) or _posix_variable.search(v.decode()) is not None
            or (v.endswith(b"\\") and not _plain_word(v)))


def _left_out_node(name, v):
    if b"\0" in v or not _utf8(v):
        return True
    if v.endswith(b"\\"):
        return not _plain_word(v, b"#")
    cr = b"\r" in v
    literal_quote = not cr and (b"'" not in v or b"`" not in v)
    double_quote = b'"' not in v and b"\\n" not in v and b"\\r" not in v
    return not (literal_quote or double_quote)


def _left_out_go(name, v):
    if "-" in name or b"\0" in v:
        return True
    if v.endswith(b"\\"):
        return not _plain_word(v, b"$")
    return v.endswith(b'"') and (b"'" in v or b"\r\n" in v)


def _left_out_docker(name, v):
    return (b"\0" in v or b"\n" in v or v.endswith(b"\r") or not _utf8(v)
            or len(name) + 1 + len(v) > 65535)


LEFT_OUT = {"python": _left_out_python, "node": _left_out_node, "go": _left_out_go,
            "docker": _left_out_docker}


def expected_left_out(dialect, served):
    """The names README "Views for dotenv loaders" says `dialect`'s view leaves out."""
    return {n for n, v in served.items() if LEFT_OUT[dialect](n, v)}
