/* tests/unit/test_view.c — the .env and .env.json views.
 *
 * Exact output for small sets, the snprintf contract, the UTF-8 rule against an independent
 * decoder, and the hostile-values table (tests/data/hostile-values.tsv) sourced by every
 * installed shell (bash, dash, zsh, busybox sh) and decoded by Python's json module, compared
 * byte for byte.  Values are never put in argv and never printed: failures name the entry.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"
#include "secrets/names.h"
#include "secrets/set.h"
#include "secrets/view.h"

#define HEADER "# secretfs env view: source this file from a shell ( . PATH/.env )\n"

extern char **environ;

typedef struct hostile {
    char *name;
    unsigned char *value;
    size_t len;
} hostile;

typedef size_t (*render_fn)(const sfs_set *, char *, size_t);

/* Renders into a malloc'd buffer with one spare NUL (for strstr in checks). */
static char *render(render_fn fn, const sfs_set *set, size_t *len_out)
{
    size_t len = fn(set, NULL, 0);
    char *buf = malloc(len + 1);
    size_t again;

    if (!buf)
        abort();
    again = fn(set, buf, len);
    CHECK(again == len);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

static bool render_equals(render_fn fn, const sfs_set *set, const char *want, size_t want_len)
{
    size_t len;
    char *got = render(fn, set, &len);
    bool ok = len == want_len && memcmp(got, want, len) == 0;

    if (!ok)
        fprintf(stderr, "render mismatch: got %zu bytes:\n%s\n--- want %zu bytes:\n%.*s\n---\n",
                len, got, want_len, (int)want_len, want);
    free(got);
    return ok;
}

#define RENDER_IS(fn, set, lit) CHECK(render_equals((fn), (set), (lit), sizeof(lit) - 1))

static void put(sfs_set *set, const char *name, const void *value, size_t len)
{
    CHECK(sfs_set_put(set, name, value, len, 0, 0) == 0);
}

static void put_str(sfs_set *set, const char *name, const char *value)
{
    put(set, name, value, strlen(value));
}

static void test_empty(void)
{
    sfs_set *set = sfs_set_new(0);

    RENDER_IS(sfs_view_env, set, HEADER);
    RENDER_IS(sfs_view_json, set, "{}\n");
    sfs_set_free(set);
}

static void test_env_exact(void)
{
    sfs_set *set = sfs_set_new(0);

    put_str(set, "A", "plain");
    put_str(set, "B_1", "it's");
    put_str(set, "C", "''");
    put_str(set, "D", "");
    put_str(set, "E", "$x `y` \"z\" \\ \n#");
    put(set, "F", "a\0b", 3);
    put_str(set, "1ST", "x");
    put_str(set, "a.b", "x");
    put_str(set, "with-dash", "x");
    put_str(set, "_u", "'");
    RENDER_IS(sfs_view_env, set,
              HEADER
              "# skipped 1ST: not a shell identifier\n"
              "export A='plain'\n"
              "export B_1='it'\\''s'\n"
              "export C=''\\'''\\'''\n"
              "export D=''\n"
              "export E='$x `y` \"z\" \\ \n#'\n"
              "# skipped F: value contains a NUL byte\n"
              "export _u=''\\'''\n"
              "# skipped a.b: not a shell identifier\n"
              "# skipped with-dash: not a shell identifier\n");
    sfs_set_free(set);
}

/* Names that break the storable-name rule never reach the view, but if one did, it must not
 * end the comment line (a newline in a name would be a command). */
static void test_env_unsafe_names(void)
{
    sfs_set *set = sfs_set_new(0);

    put_str(set, "", "x");
    put_str(set, "X\nrm -rf ~", "x");
    put_str(set, "a b", "x");
    RENDER_IS(sfs_view_env, set,
              HEADER
              "# skipped an entry whose name has characters outside A-Z a-z 0-9 . _ -: "
              "not a shell identifier\n"
              "# skipped an entry whose name has characters outside A-Z a-z 0-9 . _ -: "
              "not a shell identifier\n"
              "# skipped an entry whose name has characters outside A-Z a-z 0-9 . _ -: "
              "not a shell identifier\n");
    sfs_set_free(set);
}

static void test_json_exact(void)
{
    sfs_set *set = sfs_set_new(0);
    static const unsigned char ctl[] = {0x01, 0x1f, 0x7f, 0x20, 0x7e};

    put_str(set, "A", "plain");
    put_str(set, "B", "\"\\/\b\f\n\r\t");
    put(set, "C", ctl, sizeof ctl);
    put_str(set, "D", "\xe2\x80\xa8|\xe2\x80\xa9|\xe2\x80\xaa");
    put_str(set, "E", "h\xc3\xa9 \xf0\x9f\x94\x90 \xf4\x8f\xbf\xbf \xef\xbf\xbf");
    put_str(set, "F", "\xc0\xaf");
    put_str(set, "G", "\xed\xa0\x80");
    put_str(set, "H", "\xf4\x90\x80\x80");
    put_str(set, "I", "ok\xe2\x82");
    put(set, "J", "a\0b", 3);
    put_str(set, "K", "");
    put_str(set, "a.b-c", "x");
    RENDER_IS(sfs_view_json, set,
              "{\n"
              "  \"A\": \"plain\",\n"
              "  \"B\": \"\\\"\\\\/\\b\\f\\n\\r\\t\",\n"
              "  \"C\": \"\\u0001\\u001f\\u007f ~\",\n"
              "  \"D\": \"\\u2028|\\u2029|\xe2\x80\xaa\",\n"
              "  \"E\": \"h\xc3\xa9 \xf0\x9f\x94\x90 \xf4\x8f\xbf\xbf \xef\xbf\xbf\",\n"
              "  \"J\": \"a\\u0000b\",\n"
              "  \"K\": \"\",\n"
              "  \"a.b-c\": \"x\"\n"
              "}\n");
    sfs_set_free(set);

    set = sfs_set_new(0);
    put_str(set, "ONLY_BAD", "\xff");
    RENDER_IS(sfs_view_json, set, "{}\n");
    sfs_set_free(set);
}

/* Every cap from 0 to the full length: returns the full length, writes exactly the first
 * `cap` bytes, touches nothing beyond. */
static void check_cap_contract(render_fn fn, const sfs_set *set)
{
    size_t full_len, cap, i;
    char *full = render(fn, set, &full_len);
    char *buf = malloc(full_len + 16);
    int bad = 0;

    if (!buf)
        abort();
    CHECK(fn(set, NULL, 0) == full_len);
    for (cap = 0; cap <= full_len + 1; cap++) {
        memset(buf, 0xA5, full_len + 16);
        if (fn(set, buf, cap) != full_len)
            bad++;
        for (i = 0; i < full_len + 16; i++) {
            unsigned char want = i < cap && i < full_len ? (unsigned char)full[i] : 0xA5;
            if ((unsigned char)buf[i] != want) {
                bad++;
                break;
            }
        }
    }
    CHECK_MSG(bad == 0, "%d caps broke the snprintf contract", bad);
    free(buf);
    free(full);
}

static void test_cap_contract(void)
{
    sfs_set *set = sfs_set_new(0);

    put_str(set, "A", "it's");
    put_str(set, "B", "\"\n\xe2\x80\xa8\x01");
    put_str(set, "C", "\xff");
    put_str(set, "bad-name", "x");
    put(set, "Z", "\0", 1);
    check_cap_contract(sfs_view_env, set);
    check_cap_contract(sfs_view_json, set);
    sfs_set_free(set);
}

/* Independent reference: decode code points arithmetically, then reject overlongs,
 * surrogates and anything above U+10FFFF. */
static bool ref_utf8_valid(const unsigned char *p, size_t len)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0, n, k;
    uint32_t cp;

    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            n = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i < n)
            return false;
        for (k = 1; k < n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min_cp[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        i += n;
    }
    return true;
}

static int utf8_mismatches;
static sfs_set *utf8_set;
static unsigned utf8_uses;

static void utf8_case(const unsigned char *v, size_t len)
{
    char out[64];
    size_t n;
    bool shown;

    if (!utf8_set || utf8_uses++ == 4096) {
        sfs_set_free(utf8_set);
        utf8_set = sfs_set_new(0);
        utf8_uses = 0;
    }
    if (sfs_set_put(utf8_set, "v", v, len, 0, 0) != 0)
        abort();
    n = sfs_view_json(utf8_set, out, sizeof out);
    shown = !(n == 3 && memcmp(out, "{}\n", 3) == 0);
    if (shown != ref_utf8_valid(v, len)) {
        if (utf8_mismatches++ < 10) {
            size_t i;
            fprintf(stderr, "UTF-8 rule differs from reference for bytes");
            for (i = 0; i < len; i++)
                fprintf(stderr, " %02x", v[i]);
            fprintf(stderr, " (view %s it)\n", shown ? "kept" : "dropped");
        }
    }
}

static void test_utf8_rule(void)
{
    static const unsigned char tail3[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0};
    static const unsigned char tail4[] = {0x7f, 0x80, 0xbf, 0xc0};
    unsigned a, b, c, d;
    unsigned char v[4];

    for (a = 0; a < 256; a++) {
        v[0] = (unsigned char)a;
        utf8_case(v, 1);
        for (b = 0; b < 256; b++) {
            v[1] = (unsigned char)b;
            utf8_case(v, 2);
        }
    }
    for (a = 0x80; a < 256; a++)
        for (b = 0; b < 256; b++)
            for (c = 0; c < sizeof tail3; c++) {
                v[0] = (unsigned char)a;
                v[1] = (unsigned char)b;
                v[2] = tail3[c];
                utf8_case(v, 3);
            }
    for (a = 0xF0; a < 0xF8; a++)
        for (b = 0; b < 256; b++)
            for (c = 0; c < sizeof tail4; c++)
                for (d = 0; d < sizeof tail4; d++) {
                    v[0] = (unsigned char)a;
                    v[1] = (unsigned char)b;
                    v[2] = tail4[c];
                    v[3] = tail4[d];
                    utf8_case(v, 4);
                }
    sfs_set_free(utf8_set);
    utf8_set = NULL;
    CHECK_MSG(utf8_mismatches == 0, "%d byte strings judged differently", utf8_mismatches);
}

/* ---- the hostile-values table ---- */

static int b64_digit(int ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* Strict padded base64; returns a malloc'd buffer or NULL. */
static unsigned char *b64_decode(const char *s, size_t n, size_t *out_len)
{
    unsigned char *out;
    size_t i, o = 0;

    if (n % 4)
        return NULL;
    out = malloc(n / 4 * 3 + 1);
    if (!out)
        abort();
    for (i = 0; i < n; i += 4) {
        int d[4], k, pad = 0;
        for (k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                d[k] = 0;
                pad++;
            } else if (pad || (d[k] = b64_digit((unsigned char)s[i + k])) < 0) {
                free(out);
                return NULL;
            }
        }
        out[o++] = (unsigned char)(d[0] << 2 | d[1] >> 4);
        if (pad < 2)
            out[o++] = (unsigned char)((d[1] & 0xF) << 4 | d[2] >> 2);
        if (pad < 1)
            out[o++] = (unsigned char)((d[2] & 0x3) << 6 | d[3]);
    }
    *out_len = o;
    return out;
}

/* snprintf for paths: a truncated path is a bug in the test, not a result. */
__attribute__((format(printf, 3, 4))) static void pathf(char *buf, size_t cap,
                                                         const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= cap)
        abort();
}

static char table_path[PATH_MAX];

static size_t load_table(hostile **out)
{
    const char *src = getenv("SFS_TEST_SRC");
    FILE *f;
    char *line = NULL;
    size_t cap = 0, n = 0, lineno = 0;
    ssize_t len;
    hostile *t = NULL;
    char rel[PATH_MAX];

    pathf(rel, sizeof rel, "%s/data/hostile-values.tsv", src ? src : "tests");
    if (!realpath(rel, table_path))
        pathf(table_path, sizeof table_path, "%s", rel);
    f = fopen(table_path, "r");
    CHECK_MSG(f != NULL, "%s: %s", table_path, strerror(errno));
    if (!f)
        return 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        char *tab;
        lineno++;
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        tab = strchr(line, '\t');
        CHECK_MSG(tab != NULL, "%s:%zu: no tab", table_path, lineno);
        if (!tab)
            continue;
        *tab = '\0';
        t = realloc(t, (n + 1) * sizeof *t);
        if (!t)
            abort();
        t[n].name = strdup(line);
        t[n].value = b64_decode(tab + 1, (size_t)(len - (tab + 1 - line)), &t[n].len);
        CHECK_MSG(t[n].value != NULL, "%s:%zu: bad base64", table_path, lineno);
        CHECK_MSG(sfs_name_is_shell_ident(line) && strncmp(line, "H_", 2) == 0,
                  "%s:%zu: name is not an H_ shell identifier", table_path, lineno);
        if (!t[n].value) {
            free(t[n].name);
            continue;
        }
        CHECK_MSG(memchr(t[n].value, '\0', t[n].len) == NULL, "%s has a NUL byte", t[n].name);
        n++;
    }
    free(line);
    fclose(f);
    *out = t;
    return n;
}

static void free_table(hostile *t, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(t[i].name);
        free(t[i].value);
    }
    free(t);
}

/* Reads a whole file; NULL (errno set) if it cannot be opened. */
static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0, r;

    if (!f)
        return NULL;
    do {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
    } while (r > 0);
    fclose(f);
    *len = n;
    return buf;
}

static bool path_exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* Runs argv with envp in `cwd`, stdin from /dev/null, stdout+stderr to `log`.  Returns the
 * wait status, or -1. */
static int run(char *const argv[], char *const envp[], const char *cwd, const char *log)
{
    pid_t pid = fork();
    int status;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || chdir(cwd) != 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
            dup2(out, 2) < 0)
            _exit(126);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

static void check_log_empty(const char *what, const char *log)
{
    struct stat st;

    CHECK_MSG(stat(log, &st) == 0 && st.st_size == 0,
              "%s wrote %lld bytes to stdout/stderr (not shown: may hold values)", what,
              stat(log, &st) == 0 ? (long long)st.st_size : -1LL);
}

static void compare_file(const char *what, const char *dir, const hostile *h)
{
    char path[4096];
    size_t len = 0, i;
    unsigned char *got;

    pathf(path, sizeof path, "%s/%s", dir, h->name);
    got = read_file(path, &len);
    CHECK_MSG(got != NULL, "%s: %s not set", what, h->name);
    if (!got)
        return;
    for (i = 0; i < len && i < h->len && got[i] == h->value[i]; i++)
        ;
    CHECK_MSG(len == h->len && i == len, "%s: %s differs (got %zu bytes, want %zu, first "
              "difference at offset %zu)", what, h->name, len, h->len, i);
    free(got);
}

/* Parses an `env -0` dump and checks every table entry is exported exactly once, exactly. */
static void compare_env_dump(const char *what, const char *path, const hostile *t, size_t n)
{
    size_t len = 0, i;
    unsigned char *dump = read_file(path, &len);

    CHECK_MSG(dump != NULL, "%s: no environment dump", what);
    if (!dump)
        return;
    for (i = 0; i < n; i++) {
        size_t nl = strlen(t[i].name), off = 0, hits = 0, good = 0;
        while (off < len) {
            unsigned char *end = memchr(dump + off, '\0', len - off);
            size_t elen = end ? (size_t)(end - (dump + off)) : len - off;
            if (elen > nl && memcmp(dump + off, t[i].name, nl) == 0 && dump[off + nl] == '=') {
                hits++;
                good += elen - nl - 1 == t[i].len &&
                        memcmp(dump + off + nl + 1, t[i].value, t[i].len) == 0;
            } else if (elen == nl && memcmp(dump + off, t[i].name, nl) == 0) {
                hits++;
            }
            off += elen + 1;
        }
        CHECK_MSG(hits == 1 && good == 1, "%s: %s exported %zu times, %zu exact", what,
                  t[i].name, hits, good);
    }
    free(dump);
}

/* The POSIX script every shell runs: source, then write each variable byte-exactly. */
static char *dump_script(const hostile *t, size_t n)
{
    size_t cap = 256, len, i;
    char *s;

    for (i = 0; i < n; i++)
        cap += 64 + 3 * strlen(t[i].name);
    s = malloc(cap);
    if (!s)
        abort();
    len = (size_t)snprintf(s, cap, ". \"$1\" || exit 90\ncd \"$2\" || exit 91\n");
    for (i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len,
                                "if [ \"${%s+set}\" = set ]; then printf '%%s' \"$%s\" >%s; fi\n",
                                t[i].name, t[i].name, t[i].name);
    snprintf(s + len, cap - len, "exec /usr/bin/env -0 >\"$3\"\n");
    return s;
}

typedef struct shell {
    const char *label;
    const char *path;
    const char *args[3]; /* extra arguments before the script, NULL-terminated */
} shell;

/* zsh runs in its default mode, with RC_QUOTES ('' inside quotes is a quote, a common
 * interactive setting), and emulating sh. */
static const shell shells[] = {
    {"bash", "/bin/bash", {NULL}},
    {"bash-posix", "/bin/bash", {"--posix", NULL}},
    {"dash", "/bin/dash", {NULL}},
    {"zsh", "/usr/bin/zsh", {NULL}},
    {"zsh-rcquotes", "/usr/bin/zsh", {"-o", "rcquotes", NULL}},
    {"zsh-emulate-sh", "/usr/bin/zsh", {"--emulate", "sh", NULL}},
    {"busybox-sh", "/bin/busybox", {"sh", NULL}},
};

static void test_shells(const char *tmp, const hostile *t, size_t n, const char *env_path)
{
    static const char *locales[] = {"C.UTF-8", "C"};
    char script[4096], log[4096], dump[4096], out[4096], what[128], lc[64];
    char ran[512] = "";
    char *text = dump_script(t, n);
    size_t s, l, i;
    int shells_run = 0;

    pathf(script, sizeof script, "%s/dump.sh", tmp);
    write_file(script, text, strlen(text), 0600);
    free(text);
    for (s = 0; s < sizeof shells / sizeof shells[0]; s++) {
        const shell *sh = &shells[s];
        if (access(sh->path, X_OK) != 0)
            continue;
        shells_run++;
        strcat(ran, " ");
        strcat(ran, sh->label);
        for (l = 0; l < sizeof locales / sizeof locales[0]; l++) {
            char *envp[] = {"PATH=/usr/bin:/bin", "HOME=/nonexistent-sfs-home", lc, NULL};
            char *argv[8];
            int a = 0, st, k;

            snprintf(lc, sizeof lc, "LC_ALL=%s", locales[l]);
            snprintf(what, sizeof what, "%s (LC_ALL=%s)", sh->label, locales[l]);
            pathf(out, sizeof out, "%s/out-%zu-%zu", tmp, s, l);
            pathf(log, sizeof log, "%s/log-%zu-%zu", tmp, s, l);
            pathf(dump, sizeof dump, "%s/env-%zu-%zu", tmp, s, l);
            CHECK(mkdir(out, 0700) == 0);
            argv[a++] = (char *)sh->path;
            for (k = 0; sh->args[k]; k++)
                argv[a++] = (char *)sh->args[k];
            argv[a++] = script;
            argv[a++] = (char *)env_path;
            argv[a++] = out;
            argv[a++] = dump;
            argv[a] = NULL;
            st = run(argv, envp, out, log);
            CHECK_MSG(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "%s: exit status 0x%x", what, (unsigned)st);
            check_log_empty(what, log);
            for (i = 0; i < n; i++)
                compare_file(what, out, &t[i]);
            compare_env_dump(what, dump, t, n);
            pathf(log, sizeof log, "%s/pwned", out);
            CHECK_MSG(!path_exists(log), "%s: a value ran a command", what);
        }
    }
    printf("view: shells run:%s\n", shells_run ? ran : " none");
    CHECK_MSG(shells_run > 0, "no shell found to source the .env view");
}

static const char json_decoder[] =
    "import base64, json, os, sys\n"
    "def pairs(kv):\n"
    "    keys = [k for k, _ in kv]\n"
    "    if len(set(keys)) != len(keys) or keys != sorted(keys): sys.exit(3)\n"
    "    return dict(kv)\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "if not raw.endswith(b'}\\n'): sys.exit(4)\n"
    "obj = json.loads(raw.decode('utf-8'), object_pairs_hook=pairs)\n"
    "for k, v in obj.items():\n"
    "    if not isinstance(v, str) or '/' in k or k.startswith('.'): sys.exit(5)\n"
    "    with open(os.path.join(sys.argv[3], k), 'wb') as f: f.write(v.encode('utf-8'))\n"
    "for line in open(sys.argv[2], 'rb'):\n"
    "    if line.startswith(b'#') or not line.strip(): continue\n"
    "    name, b64 = line.rstrip(b'\\n').split(b'\\t')\n"
    "    try: base64.b64decode(b64, validate=True).decode('utf-8')\n"
    "    except UnicodeDecodeError: continue\n"
    "    open(os.path.join(sys.argv[3], name.decode() + '.utf8'), 'wb').close()\n";

static void test_json_python(const char *tmp, const hostile *t, size_t n, const char *json_path,
                             const unsigned char *json, size_t json_len)
{
    char out[4096], log[4096], path[4096];
    size_t i, kept = 0, dropped = 0, raw = 0;
    int st;

    for (i = 0; i < json_len; i++)
        raw += (json[i] < 0x20 && json[i] != '\n') || json[i] == 0x7f ||
               (i + 2 < json_len && json[i] == 0xE2 && json[i + 1] == 0x80 &&
                (json[i + 2] == 0xA8 || json[i + 2] == 0xA9));
    CHECK_MSG(raw == 0, "%zu raw control bytes, DEL or U+2028/9 in .env.json", raw);
    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("view: /usr/bin/python3 not found, .env.json decoding not run\n");
        return;
    }
    pathf(out, sizeof out, "%s/json", tmp);
    pathf(log, sizeof log, "%s/json.log", tmp);
    CHECK(mkdir(out, 0700) == 0);
    {
        char *envp[] = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1",
                        NULL};
        char *argv[] = {"/usr/bin/python3", "-I", "-c", (char *)json_decoder,
                        (char *)json_path, table_path, out, NULL};
        st = run(argv, envp, tmp, log);
    }
    CHECK_MSG(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "python could not decode .env.json: exit status 0x%x", (unsigned)st);
    check_log_empty("python json decoder", log);
    for (i = 0; i < n; i++) {
        bool utf8, present;
        pathf(path, sizeof path, "%s/%s.utf8", out, t[i].name);
        utf8 = path_exists(path);
        pathf(path, sizeof path, "%s/%s", out, t[i].name);
        present = path_exists(path);
        CHECK_MSG(utf8 == present, "%s: in .env.json: %d, valid UTF-8 per Python: %d",
                  t[i].name, present, utf8);
        if (present) {
            compare_file(".env.json via python", out, &t[i]);
            kept++;
        } else {
            dropped++;
        }
    }
    printf("view: .env.json decoded by python: %zu values exact, %zu left out (not UTF-8)\n",
           kept, dropped);
    CHECK(dropped >= 5 && kept >= 25);
}

static void test_hostile(void)
{
    hostile *t = NULL;
    size_t n = load_table(&t), i, env_len, json_len;
    sfs_set *set = sfs_set_new(0);
    char tmp[] = "/tmp/sfs-test-view-XXXXXX";
    char env_path[4096], json_path[4096];
    char *env, *json;

    CHECK_MSG(n >= 25, "only %zu hostile values", n);
    for (i = 0; i < n; i++)
        put(set, t[i].name, t[i].value, t[i].len);
    CHECK(sfs_set_count(set) == n);
    env = render(sfs_view_env, set, &env_len);
    json = render(sfs_view_json, set, &json_len);
    CHECK(strncmp(env, HEADER, strlen(HEADER)) == 0);
    CHECK(strstr(env, "# skipped") == NULL);
    if (!mkdtemp(tmp)) {
        CHECK_MSG(0, "mkdtemp: %s", strerror(errno));
        goto out;
    }
    pathf(env_path, sizeof env_path, "%s/.env", tmp);
    pathf(json_path, sizeof json_path, "%s/.env.json", tmp);
    write_file(env_path, env, env_len, 0600);
    write_file(json_path, json, json_len, 0600);
    test_shells(tmp, t, n, env_path);
    test_json_python(tmp, t, n, json_path, (const unsigned char *)json, json_len);
    rm_rf(tmp);
out:
    free(env);
    free(json);
    sfs_set_free(set);
    free_table(t, n);
}

int main(void)
{
    umask(077);
    test_empty();
    test_env_exact();
    test_env_unsafe_names();
    test_json_exact();
    test_cap_contract();
    test_utf8_rule();
    test_hostile();
    return check_result();
}
