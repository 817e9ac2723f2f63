"""What `secretfs --help` / `secretfs COMMAND --help` and man/secretfs.1 each document:
commands, each command's flags, and exit codes per scope ("secretfs" for the whole tool,
or a command that lists its own).  Derived from the real outputs and the mdoc source, so a
command, flag or exit code added to one and not the other shows up as a difference."""
import re
import subprocess

FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
CODE = re.compile(r"(?<![\w+])(\d+(?:\+N)?)(?![\w])")


def run_help(binary, *args):
    p = subprocess.run([binary, *args, "--help"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError("%s %s --help exited %d" % (binary, " ".join(args), p.returncode))
    return p.stdout


def paragraphs(text):
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def help_codes(text):
    """Exit codes a help text lists: its 'Exit status:' paragraph, or an 'Exits N ...'
    sentence."""
    for para in paragraphs(text):
        flat = " ".join(para.split())
        m = re.search(r"Exit status:(.*)", flat) or re.search(r"\bExits (\d.*)", flat)
        if m:
            return set(CODE.findall(m.group(1)))
    return set()


def help_flags(text, common):
    """Flags in the usage lines and at the start of option lines."""
    lines = text.splitlines()
    flags = set()
    i = 0
    while i < len(lines) and lines[i].strip():  # the usage block
        flags.update(FLAG.findall(lines[i]))
        if "[store options]" in lines[i]:
            flags.update(common)
        i += 1
    for line in lines[i:]:
        words = line.split()
        if not words or not words[0].startswith("-") or not line.startswith(" "):
            continue
        for w in words:
            if w.startswith("-") or re.fullmatch(r"[A-Z][A-Z_.,\[\]=]*,?", w):
                flags.update(FLAG.findall(w))
            else:
                break
    return flags


def from_help(binary):
    main = run_help(binary)
    block = re.search(r"^Commands:\n((?:  .*\n)+)", main, re.M)
    commands = [l.split()[0] for l in block.group(1).splitlines() if l.startswith("  ") and
                not l.startswith("   ")]
    common_block = re.search(r"^Options every store command takes:\n((?:  .*\n)+)", main, re.M)
    common = set()
    for l in common_block.group(1).splitlines():
        m = re.match(r"  (--?[A-Za-z][\w-]*)", l)
        if m:
            common.add(m.group(1))
    flags, codes = {}, {"secretfs": help_codes(main)}
    for c in commands:
        text = run_help(binary, c)
        flags[c] = help_flags(text, common)
        own = help_codes(text)
        if own:
            codes[c] = own
    return {"commands": commands, "common": common, "flags": flags, "codes": codes}


def mdoc_lines(path):
    with open(path) as f:
        return [l.rstrip("\n") for l in f if not l.startswith('.\\"')]


def sections(lines):
    out, name = {}, None
    for l in lines:
        if l.startswith(".Sh "):
            name = l[4:].strip()
            out[name] = []
        elif name:
            out[name].append(l)
    return out


def mdoc_flags(line):
    toks = line.lstrip(".").split()
    return {"-" + toks[i + 1] for i, t in enumerate(toks[:-1])
            if t == "Fl" and re.fullmatch(r"-?[A-Za-z][\w-]*", toks[i + 1])}


def from_man(path):
    sec = sections(mdoc_lines(path))
    commands, flags, depth, cur = [], {}, 0, None
    for l in sec.get("COMMANDS", []):
        if l.startswith(".Bl"):
            depth += 1
        elif l.startswith(".El"):
            depth -= 1
        elif depth == 1 and l.startswith(".It Cm "):
            cur = l.split()[2]
            commands.append(cur)
            flags[cur] = set()
        if cur:
            if depth == 1 and l.startswith(".It ") and "Ar store-options" in l:
                flags[cur].add("store-options")
            flags[cur].update(mdoc_flags(l))
    common = set()
    desc = sec.get("DESCRIPTION", [])
    if ".Ss Store options" in desc:
        depth = 0
        for l in desc[desc.index(".Ss Store options"):]:
            if l.startswith(".Bl"):
                depth += 1
            elif l.startswith(".El"):
                break
            elif depth == 1 and l.startswith(".It "):
                common.update(mdoc_flags(l))
    for c in flags:
        if "store-options" in flags[c]:
            flags[c].discard("store-options")
            flags[c].update(common)
    codes, scope, depth = {}, "secretfs", 0
    for l in sec.get("EXIT STATUS", []):
        if l.startswith(".Bl"):
            depth += 1
        elif l.startswith(".El"):
            depth -= 1
        elif depth == 0 and l.startswith(".Cm "):
            scope = l.split()[1]
        elif depth == 1 and l.startswith(".It "):
            codes.setdefault(scope, set()).add(l.split()[1])
    codes = {k: {c for c in v if CODE.fullmatch(c)} for k, v in codes.items()}
    return {"commands": commands, "common": common, "flags": flags, "codes": codes}
