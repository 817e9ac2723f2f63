/* tests/unit/test_dotenv.c — secrets/dotenv.c against godotenv 1.5.1.
 *
 * 1. Every conformance vector in $SFS_TESTDATA/dotenv (NAME.env with NAME.env.json, see
 *    its README.md): same keys and value bytes, or a rejection "NAME.env:LINE:COL: ...".
 * 2. Our own cases: each warning (line, key, stored value), each error (exact line and
 *    column), a few godotenv quirks, and a canary that must never reach a message.
 * Value bytes are never printed; on a mismatch only names are.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crypto/secmem.h"
#include "secrets/dotenv.h"

#define CANARY "c4n4ry-s3cr3t-7f3e"

/* ---- collecting warnings ---- */

struct warnings {
    char *msg[64];
    size_t n;
};

static void collect(void *ctx, const char *msg)
{
    struct warnings *w = ctx;

    if (w->n < sizeof w->msg / sizeof w->msg[0])
        w->msg[w->n++] = strdup(msg);
}

static void warnings_free(struct warnings *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->msg[i]);
    w->n = 0;
}

/* One parse of an in-memory text named "t.env". */
struct run {
    int rc;
    sfs_set *set;
    struct sfs_err err;
    struct warnings w;
};

static void run_text(struct run *r, const char *text, size_t len)
{
    memset(r, 0, sizeof *r);
    r->rc = sfs_dotenv_parse(text, len, "t.env", &r->set, collect, &r->w, &r->err);
}

static void run_str(struct run *r, const char *text)
{
    run_text(r, text, strlen(text));
}

static void run_free(struct run *r)
{
    sfs_set_free(r->set);
    warnings_free(&r->w);
}

static bool value_is(const sfs_set *set, const char *name, const void *want, size_t len)
{
    const sfs_entry *e = set ? sfs_set_get(set, name) : NULL;

    return e && e->len == len && memcmp(e->value, want, len) == 0;
}

#define CHECK_VALUE(set, name, lit) \
    CHECK_MSG(value_is((set), (name), (lit), sizeof(lit) - 1), "value of %s", (name))

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- the vectors: a reader for exactly their JSON, and base64 ---- */

struct expect {
    bool ok;
    size_t n;
    char *key[256];
    unsigned char *val[256];
    size_t len[256];
};

static void expect_free(struct expect *x)
{
    for (size_t i = 0; i < x->n; i++) {
        free(x->key[i]);
        free(x->val[i]);
    }
    x->n = 0;
}

static void skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r')
        (*p)++;
}

static bool eat(const char **p, char c)
{
    skip_ws(p);
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool read_u4(const char **p, unsigned *u)
{
    *u = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((*p)[i]);
        if (h < 0)
            return false;
        *u = *u * 16 + (unsigned)h;
    }
    *p += 4;
    return true;
}

/* A JSON string (escapes, \uXXXX with surrogate pairs) as a new NUL-terminated string. */
static char *read_string(const char **p)
{
    size_t cap = strlen(*p) + 1, o = 0;
    char *s;

    if (!eat(p, '"'))
        return NULL;
    s = malloc(cap);
    if (!s)
        return NULL;
    while (**p && **p != '"') {
        char c = *(*p)++;
        unsigned u, lo;

        if (c != '\\') {
            s[o++] = c;
            continue;
        }
        c = *(*p)++;
        switch (c) {
        case 'n': s[o++] = '\n'; break;
        case 'r': s[o++] = '\r'; break;
        case 't': s[o++] = '\t'; break;
        case 'b': s[o++] = '\b'; break;
        case 'f': s[o++] = '\f'; break;
        case 'u':
            if (!read_u4(p, &u))
                goto bad;
            if (u >= 0xD800 && u < 0xDC00 && (*p)[0] == '\\' && (*p)[1] == 'u') {
                *p += 2;
                if (!read_u4(p, &lo))
                    goto bad;
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (u < 0x80) {
                s[o++] = (char)u;
            } else if (u < 0x800) {
                s[o++] = (char)(0xC0 | u >> 6);
                s[o++] = (char)(0x80 | (u & 0x3F));
            } else if (u < 0x10000) {
                s[o++] = (char)(0xE0 | u >> 12);
                s[o++] = (char)(0x80 | (u >> 6 & 0x3F));
                s[o++] = (char)(0x80 | (u & 0x3F));
            } else {
                s[o++] = (char)(0xF0 | u >> 18);
                s[o++] = (char)(0x80 | (u >> 12 & 0x3F));
                s[o++] = (char)(0x80 | (u >> 6 & 0x3F));
                s[o++] = (char)(0x80 | (u & 0x3F));
            }
            break;
        default: s[o++] = c; break;
        }
    }
    if (**p != '"')
        goto bad;
    (*p)++;
    s[o] = '\0';
    return s;
bad:
    free(s);
    return NULL;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard base64 with padding; returns a new buffer and its length, or NULL. */
static unsigned char *b64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s), o = 0;
    unsigned char *out = malloc(n / 4 * 3 + 1);
    uint32_t acc = 0;
    int bits = 0;

    if (!out || n % 4) {
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        int v;
        if (s[i] == '=') {
            if (i < n - 2 || (i == n - 2 && s[n - 1] != '='))
                goto bad;
            break;
        }
        v = b64val(s[i]);
        if (v < 0)
            goto bad;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *len = o;
    return out;
bad:
    free(out);
    return NULL;
}

/* {"ok": false} or {"ok": true, "values_b64": {"K": "b64", ...}}, members in any order. */
static bool read_expect(const char *json, struct expect *x)
{
    const char *p = json;
    bool have_ok = false, have_values = false;

    memset(x, 0, sizeof *x);
    if (!eat(&p, '{'))
        return false;
    do {
        char *member = read_string(&p);
        bool good = member && eat(&p, ':');

        skip_ws(&p);
        if (good && strcmp(member, "ok") == 0) {
            have_ok = true;
            if (strncmp(p, "true", 4) == 0) {
                x->ok = true;
                p += 4;
            } else if (strncmp(p, "false", 5) == 0) {
                p += 5;
            } else {
                good = false;
            }
        } else if (good && strcmp(member, "values_b64") == 0 && eat(&p, '{')) {
            have_values = true;
            skip_ws(&p);
            if (*p == '}') {
                p++;
            } else {
                do {
                    char *k = read_string(&p), *v = NULL;
                    if (k && eat(&p, ':'))
                        v = read_string(&p);
                    if (!k || !v || x->n == 256) {
                        free(k);
                        free(v);
                        good = false;
                        break;
                    }
                    x->key[x->n] = k;
                    x->val[x->n] = b64_decode(v, &x->len[x->n]);
                    free(v);
                    if (!x->val[x->n]) {
                        free(k);
                        good = false;
                        break;
                    }
                    x->n++;
                } while (eat(&p, ','));
                good = good && eat(&p, '}');
            }
        } else {
            good = false;
        }
        free(member);
        if (!good)
            return false;
    } while (eat(&p, ','));
    return eat(&p, '}') && have_ok && (have_values == x->ok);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf) {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

/* "NAME.env:LINE:COL: something" */
static bool is_located_error(const char *msg, const char *fname)
{
    const char *p = msg + strlen(fname);
    int digits;

    if (!starts_with(msg, fname) || *p++ != ':')
        return false;
    for (int part = 0; part < 2; part++) {
        for (digits = 0; *p >= '0' && *p <= '9'; p++)
            digits++;
        if (digits == 0 || *p++ != ':')
            return false;
    }
    return *p == ' ' && p[1] != '\0';
}

/* "NAME.env:LINE: something" */
static bool is_located_warning(const char *msg, const char *fname)
{
    const char *p = msg + strlen(fname);
    int digits;

    if (!starts_with(msg, fname) || *p++ != ':')
        return false;
    for (digits = 0; *p >= '0' && *p <= '9'; p++)
        digits++;
    return digits > 0 && p[0] == ':' && p[1] == ' ';
}

static void check_vector(const char *dir, const char *name)
{
    char path[4096], jpath[4200];
    size_t len = 0, jlen = 0;
    char *text, *json;
    struct expect x;
    struct warnings w = {0};
    struct sfs_err err = {{0}};
    sfs_set *set = NULL;
    int rc;

    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(jpath, sizeof jpath, "%s.json", path) >= (int)sizeof jpath) {
        CHECK_MSG(false, "%s: path too long", name);
        return;
    }
    text = read_file(path, &len);
    json = read_file(jpath, &jlen);
    CHECK_MSG(text && json, "%s: cannot read the vector or its .json", name);
    if (!text || !json)
        goto out;
    CHECK_MSG(read_expect(json, &x), "%s.json: not in the expected format", name);
    rc = sfs_dotenv_parse(text, len, name, &set, collect, &w, &err);
    if (!x.ok) {
        CHECK_MSG(rc == -EINVAL && set == NULL, "%s: godotenv rejects it, parse returned %d",
                  name, rc);
        CHECK_MSG(is_located_error(err.msg, name), "%s: error not NAME.env:LINE:COL: \"%s\"",
                  name, err.msg);
    } else {
        CHECK_MSG(rc == 0 && set != NULL, "%s: godotenv accepts it, parse returned %d (%s)",
                  name, rc, err.msg);
        if (set) {
            CHECK_MSG(sfs_set_count(set) == x.n, "%s: %zu keys, godotenv has %zu", name,
                      sfs_set_count(set), x.n);
            for (size_t i = 0; i < x.n; i++) {
                const sfs_entry *e = sfs_set_get(set, x.key[i]);
                CHECK_MSG(e != NULL, "%s: key \"%s\" missing", name, x.key[i]);
                if (e)
                    CHECK_MSG(e->len == x.len[i] && memcmp(e->value, x.val[i], e->len) == 0,
                              "%s: value of \"%s\" differs from godotenv's", name, x.key[i]);
            }
        }
    }
    for (size_t i = 0; i < w.n; i++)
        CHECK_MSG(is_located_warning(w.msg[i], name), "%s: warning not NAME.env:LINE: \"%s\"",
                  name, w.msg[i]);
    expect_free(&x);
out:
    sfs_set_free(set);
    warnings_free(&w);
    free(text);
    free(json);
}

static void test_vectors(void)
{
    const char *root = getenv("SFS_TESTDATA");
    char dir[4096];
    DIR *d;
    struct dirent *de;
    int found = 0;

    CHECK_MSG(root != NULL, "SFS_TESTDATA is not set");
    if (!root)
        return;
    snprintf(dir, sizeof dir, "%s/dotenv", root);
    d = opendir(dir);
    CHECK_MSG(d != NULL, "cannot open %s", dir);
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n > 4 && strcmp(de->d_name + n - 4, ".env") == 0) {
            check_vector(dir, de->d_name);
            found++;
        }
    }
    closedir(d);
    CHECK_MSG(found > 0, "no NAME.env vectors in %s", dir);
    printf("dotenv vectors: %d\n", found);
}

/* ---- warnings ---- */

/* Exactly one warning, starting with `prefix` and containing `needle`. */
/* One row per input: what parsing it gives and the warnings it raises, in order.  A
 * warning's line is in its prefix ("t.env:LINE: NAME: "); a column, where the message has
 * one, is in its text. */
struct warn_case {
    const char *what;
    const char *text;
    int rc;                  /* 0, or -EINVAL with the error starting with err_prefix */
    const char *err_prefix;
    const char *name;        /* an entry to check (NULL: none) ... */
    const char *value;       /* ... its value ... */
    uint32_t line;           /* ... and its source line (0: not checked) */
    size_t n;                /* how many warnings */
    struct {
        const char *prefix;  /* the warning starts with this ... */
        const char *needle;  /* ... and then contains this */
    } w[3];                  /* the first warnings (NULL prefix: not checked) */
    const char *last;        /* the last warning contains this (NULL: not checked) */
    const char *never;       /* no warning contains this: part of a value (NULL: none) */
};

static const struct warn_case warn_cases[] = {
    {"undefined variable: expands to nothing; its name is part of the value, never quoted",
     "A=1\nB=x${NOPE}y\n", 0, NULL, "B", "xy", 0, 1,
     {{"t.env:2: B: ", "reference #1 ($NAME) expands to nothing"}}, NULL, "NOPE"},
    {"undefined variable inside a multi-line value: the line it is on",
     "B=\"line1\nline2 $NOPE\nline3\"\n", 0, NULL, "B", "line1\nline2 \nline3", 0, 1,
     {{"t.env:2: B: ", "reference #1 ($NAME)"}}, NULL, "NOPE"},
    {"references are counted, never named",
     "P=pa$SSWORD$X\n", 0, NULL, "P", "pa", 0, 2,
     {{"t.env:1: P: ", "reference #1"}, {"t.env:1: P: ", "reference #2"}}, NULL, "SSWORD"},
    {"a later definition does not count; neither does the environment",
     "B=${LATER}${SFS_TEST_DOTENV_FROM_ENV}\nLATER=x\n", 0, NULL, "B", "", 0, 2,
     {{"t.env:1: B: ", "reference #1"}, {"t.env:1: B: ", "reference #2"}}, NULL, "from-env"},
    {"a defined empty variable is not warned about; an escaped one is not expanded",
     "E=\nB=\"$E\\$NOPE\"\n", 0, NULL, "B", "$NOPE", 0, 0, {{0}}, NULL, NULL},
    {"$( unquoted: read as $NAME",
     "U=me\nB=$(U)\n", 0, NULL, "B", "me)", 0, 1,
     {{"t.env:2: B: ", "reference #1, a $( , is read as a plain $NAME"}}, NULL, NULL},
    {"$( in double quotes: kept as written",
     "\nB=\"$(whoami)\"\n", 0, NULL, "B", "$(whoami)", 0, 1,
     {{"t.env:2: B: ", "$( is kept as written"}}, NULL, "whoami"},
    {"$( of a name not defined earlier",
     "B=$(NOPE)\n", 0, NULL, "B", ")", 0, 1,
     {{"t.env:1: B: ", "no such name is defined earlier"}}, NULL, "NOPE"},
    {"an escaped double quote right before the closing one is lost, its backslash kept",
     "A=1\nQ=\"say \\\"hi\\\"\"\n", 0, NULL, "Q", "say \"hi\\", 0, 1,
     {{"t.env:2: Q: ", "escaped quote right before the closing quote"}}, NULL, NULL},
    {"the same in single quotes",
     "S='it\\''\n", 0, NULL, "S", "it\\", 0, 1,
     {{"t.env:1: S: ", "escaped quote right before the closing quote"}}, NULL, NULL},
    {"an unknown escape: the backslash goes, the letter stays; the backslash's column",
     "\n\nT=\"a\\tb\\qc\"\n", 0, NULL, "T", "atbqc", 0, 1,
     {{"t.env:3: T: ", "unknown escape at column 5"}}, NULL, NULL},
    {"known escapes are not warned about",
     "K=\"\\n\\r\\\\\\\"x\\'\\$\"\n", 0, NULL, "K", "\n\r\\\"x'$", 0, 0, {{0}}, NULL, NULL},
    {"a duplicate key: the last wins, both lines named",
     "A=first\n# c\nA=second\n", 0, NULL, "A", "second", 3, 1,
     {{"t.env:3: A: ", "line 1"}}, NULL, "first"},
    {"\\\\\" in double quotes does not close the value",
     "P=\"a\\\\\" b\"\n", 0, NULL, "P", "a\\\" b", 0, 1,
     {{"t.env:1: P: ", "does not end the value"}}, NULL, NULL},
    {"several warnings of one value arrive in line order",
     "M=\"x\n\\q\n$NOPE\n$(id)\"\n", 0, NULL, NULL, NULL, 0, 3,
     {{"t.env:2: M: ", ""}, {"t.env:3: M: ", ""}, {"t.env:4: M: ", ""}}, NULL, NULL},
    {"lines and columns stay right after many multi-line values, backwards and forwards",
     "A=\"x\ny\"\nB=\"1\n2\\q\"\nC=\"z\" D=\"w\\q\"\nE=\"open\n", -EINVAL, "t.env:6:3: ",
     NULL, NULL, 0, 2,
     {{"t.env:4: B: unknown escape at column 2", ""},
      {"t.env:5: D: unknown escape at column 11", ""}}, NULL, NULL},
    {"no warnings for ordinary files",
     "A=1\nexport B='x $Y'\nC=\"${A}-2\" # note\n", 0, NULL, "C", "1-2", 0, 0, {{0}}, NULL,
     NULL},
};

static void check_warn_case(const struct warn_case *c)
{
    struct run r;
    size_t i;

    run_str(&r, c->text);
    CHECK_MSG(r.rc == c->rc, "%s: rc %d", c->what, r.rc);
    if (c->err_prefix)
        CHECK_MSG(starts_with(r.err.msg, c->err_prefix), "%s: error \"%s\"", c->what,
                  r.err.msg);
    if (c->name) {
        const sfs_entry *e = r.set ? sfs_set_get(r.set, c->name) : NULL;
        CHECK_MSG(value_is(r.set, c->name, c->value, strlen(c->value)), "%s: value of %s",
                  c->what, c->name);
        if (c->line)
            CHECK_MSG(e && e->line == c->line, "%s: %s's line", c->what, c->name);
    }
    CHECK_MSG(r.w.n == c->n, "%s: %zu warnings, want %zu", c->what, r.w.n, c->n);
    for (i = 0; i < r.w.n && i < c->n && i < 3 && c->w[i].prefix; i++) {
        const char *m = r.w.msg[i];
        CHECK_MSG(starts_with(m, c->w[i].prefix) &&
                  strstr(m + strlen(c->w[i].prefix), c->w[i].needle),
                  "%s: warning %zu \"%s\", want \"%s...%s\"", c->what, i, m, c->w[i].prefix,
                  c->w[i].needle);
    }
    if (c->last && r.w.n)
        CHECK_MSG(strstr(r.w.msg[r.w.n - 1], c->last), "%s: last warning \"%s\"", c->what,
                  r.w.msg[r.w.n - 1]);
    for (i = 0; c->never && i < r.w.n; i++)
        CHECK_MSG(!strstr(r.w.msg[i], c->never), "%s: warning \"%s\" quotes the value",
                  c->what, r.w.msg[i]);
    run_free(&r);
}

static void test_warnings(void)
{
    char many[300] = "X=\"";
    struct warn_case capped = {
        "at most 16 warnings per statement, then one line saying how many more", many, 0,
        NULL, NULL, NULL, 0, 17, {{"t.env:1: X: ", "reference #1"}}, "24 more warnings",
        NULL,
    };
    size_t i;

    setenv("SFS_TEST_DOTENV_FROM_ENV", "from-env", 1);
    for (i = 0; i < sizeof warn_cases / sizeof warn_cases[0]; i++)
        check_warn_case(&warn_cases[i]);
    for (i = 0; i < 40; i++)
        strcat(many, "$NOPE");
    strcat(many, "\"\n");
    check_warn_case(&capped);

    /* and none without a callback */
    {
        sfs_set *set = NULL;
        struct sfs_err err;
        CHECK(sfs_dotenv_parse("A=$X\nA=2\n", 9, "t.env", &set, NULL, NULL, &err) == 0);
        CHECK_VALUE(set, "A", "2");
        sfs_set_free(set);
    }
}

/* ---- errors ---- */

static void check_error(const char *text, size_t len, const char *want_prefix,
                        const char *needle)
{
    struct run r;

    run_text(&r, text, len);
    CHECK_MSG(r.rc == -EINVAL && r.set == NULL, "expected rejection for %s", want_prefix);
    CHECK_MSG(starts_with(r.err.msg, want_prefix), "\"%s\" does not start with \"%s\"",
              r.err.msg, want_prefix);
    CHECK_STR_CONTAINS(r.err.msg, needle);
    run_free(&r);
}

#define CHECK_ERROR(lit, prefix, needle) check_error((lit), sizeof(lit) - 1, (prefix), (needle))

static void test_errors(void)
{
    CHECK_ERROR("A=1\nB = \"open\nC=2\n", "t.env:2:5: ", "unterminated double quote");
    CHECK_ERROR("A=1\n\n  B='open\n", "t.env:3:5: ", "unterminated single quote");
    CHECK_ERROR("A=\"C:\\\\\"\n", "t.env:1:3: ", "line 1, column 8");
    CHECK_ERROR("A=1\nMY-KEY=2\n", "t.env:2:3: ", "not allowed in a name");
    CHECK_ERROR("A=1\nFOO\nB=2\n", "t.env:2:4: ", "without '='");
    CHECK_ERROR("A=\"x\" junk\n", "t.env:1:11: ", "text after a closing quote");
    CHECK_ERROR("A=\"\"x\"\"\n", "t.env:1:6: ", "unexpected quote");
    CHECK_ERROR("\xEF\xBB\xBF" "A=1\n", "t.env:1:1: ", "byte order mark");
    CHECK_ERROR("A=1\nexport ", "t.env:2:8: ", "after 'export'");
    CHECK_ERROR("A=1\r\nB=\"x\r\nC=1\r\n", "t.env:2:3: ", "unterminated double quote");
    CHECK_ERROR("K\xC3\xA9Y=1\n", "t.env:1:2: ", "not allowed");
    CHECK_ERROR("---\nA=1\n", "t.env:1:1: ", "not allowed");
    CHECK_ERROR("A=1\n\t\xC3\xBC \xE2\x82\xAC=2\n", "t.env:2:4: ", "not allowed");
}

static void test_too_large(void)
{
    /* A=$A$A doubling: refused before memory runs out */
    size_t base = 1 << 20, cap = base + 64 * 16;
    char *text = malloc(cap);
    struct run r;
    size_t o;

    CHECK(text != NULL);
    if (!text)
        return;
    memcpy(text, "A=", 2);
    memset(text + 2, 'x', base - 3);
    text[base - 1] = '\n';
    o = base;
    for (int i = 0; i < 64; i++) {
        memcpy(text + o, "A=$A$A\n", 7);
        o += 7;
    }
    run_text(&r, text, o);
    CHECK(r.rc == -EINVAL && r.set == NULL);
    CHECK_STR_CONTAINS(r.err.msg, "MiB");
    CHECK(starts_with(r.err.msg, "t.env:"));
    run_free(&r);
    free(text);
}

/* ---- godotenv's quirks, checked against godotenv 1.5.1 ---- */

static void test_quirks(void)
{
    struct run r;

    /* the comment starts at the LAST " #"; "= #" is a value; a key may hold spaces */
    run_str(&r, "A=a #b #c\nB= #x\nMY KEY = v\n");
    CHECK(r.rc == 0);
    CHECK_VALUE(r.set, "A", "a #b");
    CHECK_VALUE(r.set, "B", "#x");
    CHECK_VALUE(r.set, "MY KEY", "v");
    run_free(&r);

    /* ${A is $A; $A} eats the brace; lowercase names never expand; \$ and \\$ are literal */
    run_str(&r, "A=v\nB=${A-$A}-$a-\\$A-\\\\$A\nC=\"\\\\$A\"\n");
    CHECK(r.rc == 0);
    CHECK_VALUE(r.set, "B", "v-v-$a-$A-\\$A");
    CHECK_VALUE(r.set, "C", "$A");
    run_free(&r);

    /* a name is greedy over [A-Z0-9_] */
    run_str(&r, "A=v\nB=$A_x.$A.\n");
    CHECK(r.rc == 0);
    CHECK_VALUE(r.set, "B", "x.v.");
    CHECK(r.w.n == 1);
    run_free(&r);

    /* text after a closing quote may start another assignment */
    run_str(&r, "A='x' B=y\n");
    CHECK(r.rc == 0);
    CHECK_VALUE(r.set, "A", "x");
    CHECK_VALUE(r.set, "B", "y");
    run_free(&r);

    /* a lone CR ends an unquoted value; CRLF inside quotes becomes LF */
    run_str(&r, "A=1\rB=\"x\r\ny\"\r\n");
    CHECK(r.rc == 0);
    CHECK_VALUE(r.set, "A", "1");
    CHECK_VALUE(r.set, "B", "x\ny");
    run_free(&r);

    /* a last line without '=' is a value for the empty name */
    run_str(&r, "A=1\nTRAILING");
    CHECK(r.rc == 0);
    CHECK_VALUE(r.set, "", "TRAILING");
    run_free(&r);

    /* invalid UTF-8 becomes U+FFFD unquoted, stays as is quoted */
    run_text(&r, "A=x\xFFy\nB=\"x\xFFy\"\n", 14);
    CHECK(r.rc == 0);
    CHECK_VALUE(r.set, "A", "x\xEF\xBF\xBDy");
    CHECK_VALUE(r.set, "B", "x\xFFy");
    run_free(&r);

    /* NBSP (U+00A0) is trimmed like a space; "export" needs a space after it */
    run_str(&r, "A=\xC2\xA0v\xC2\xA0\nexport\xC2\xA0" "B=1\nexportC=2\n");
    CHECK(r.rc == 0);
    CHECK_VALUE(r.set, "A", "v");
    CHECK_VALUE(r.set, "B", "1");
    CHECK_VALUE(r.set, "exportC", "2");
    run_free(&r);

    /* YAML-style KEY: value; a value may hold '=' and ':' */
    run_str(&r, "A: b=c:d\n");
    CHECK(r.rc == 0);
    CHECK_VALUE(r.set, "A", "b=c:d");
    run_free(&r);

    /* entry lines are the key's line; the set is new and owned by the caller */
    run_str(&r, "\n\nA=\"x\ny\"\nB=2\n");
    CHECK(r.rc == 0);
    CHECK(r.set && sfs_set_get(r.set, "A") && sfs_set_get(r.set, "A")->line == 3);
    CHECK(r.set && sfs_set_get(r.set, "B") && sfs_set_get(r.set, "B")->line == 5);
    run_free(&r);
}

/* ---- no message ever carries a value ---- */

static void test_canary(void)
{
    static const char *const texts[] = {
        "A=\"" CANARY " $NOPE $(id) $(X) \\t " CANARY " \\\"\"\nA='" CANARY "'\n",
        "A=" CANARY "$NOPE\\q\nB=\"" CANARY "\\\\\" " CANARY "\"\n",
        "A=\"" CANARY "\n",
        "A='" CANARY "\\'\n",
        "A=\"" CANARY "\" " CANARY "\n",
        "A=\"" CANARY "\" junk-" CANARY "=1\n",
        "A=\"" CANARY "\\\\\"\nB=\"" CANARY "\"\n",
        "A=1\n" CANARY "\n",
        "PASS=" CANARY "\nX=$PASS$PASS$PASS\nX=\"${X}\"\n" CANARY "=",
    };
    size_t i, j, seen = 0;

    for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct run r;

        run_str(&r, texts[i]);
        if (r.rc) {
            seen++;
            CHECK_MSG(strstr(r.err.msg, CANARY) == NULL && strstr(r.err.msg, "c4n4ry") == NULL,
                      "canary case %zu: the error message carries a value", i);
        }
        for (j = 0; j < r.w.n; j++, seen++)
            CHECK_MSG(strstr(r.w.msg[j], "c4n4ry") == NULL,
                      "canary case %zu: a warning carries a value", i);
        run_free(&r);
    }
    CHECK(seen >= 10);
}

static void test_api(void)
{
    sfs_set *set = (sfs_set *)&set;
    struct sfs_err err;

    CHECK(sfs_dotenv_parse("", 0, "t.env", &set, NULL, NULL, &err) == 0);
    CHECK(set && sfs_set_count(set) == 0);
    sfs_set_free(set);
    set = (sfs_set *)&set;
    CHECK(sfs_dotenv_parse("A=\"", 3, "t.env", &set, NULL, NULL, &err) == -EINVAL);
    CHECK(set == NULL);
    CHECK(sfs_dotenv_parse("A=1", 3, "t.env", NULL, NULL, NULL, &err) == -EINVAL);
    CHECK(sfs_dotenv_parse("A=\"", 3, "t.env", &set, NULL, NULL, NULL) == -EINVAL);
}

int main(void)
{
    if (sfs_crypto_init() != 0) {
        fprintf(stderr, "sfs_crypto_init failed\n");
        return 1;
    }
    test_vectors();
    test_warnings();
    test_errors();
    test_too_large();
    test_quirks();
    test_canary();
    test_api();
    return check_result();
}
