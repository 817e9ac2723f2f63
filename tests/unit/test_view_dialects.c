/* tests/unit/test_view_dialects.c — the views for dotenv loaders (.env.python, .env.node,
 * .env.go, .env.docker): each dialect's rules as a table of one secret and the exact line
 * its view writes for it (or the comment that leaves it out).  The real loaders read the
 * same views from a real mount in tests/views/.  The values here are not secrets. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "secrets/set.h"
#include "secrets/view.h"

typedef size_t (*render_fn)(const sfs_set *, char *, size_t);

struct rule {
    const char *name;
    const char *value;
    size_t len;
    const char *want; /* the whole line(s) after the header */
};

#define V(lit) (lit), sizeof(lit) - 1

#define BS_END_WHY "value ends with a backslash and is not one word of printable ASCII"

static const struct rule python_rules[] = {
    {"PLAIN", V("abc"), "PLAIN=\"abc\"\n"},
    {"EMPTY", V(""), "EMPTY=\"\"\n"},
    {"QUOTES", V("'\"`"), "QUOTES=\"'\\\"`\"\n"},
    {"BACKSLASHES", V("a\\b\\n\\\\c\\\""), "BACKSLASHES=\"a\\\\b\\\\n\\\\\\\\c\\\\\\\"\"\n"},
    {"LINES", V("\na\r\nb\rc\n"), "LINES=\"\\na\\r\\nb\\rc\\n\"\n"},
    {"SPACES", V(" \ta # b\t "), "SPACES=\" \ta # b\t \"\n"},
    {"DOLLARS", V("$HOME $(id) ${ ${a:b} $"), "DOLLARS=\"$HOME $(id) ${ ${a:b} $\"\n"},
    {"EXPANDS", V("x${HOME}y"), "# skipped EXPANDS: value holds ${...}, which python-dotenv "
                                "expands\n"},
    {"EXPANDS_DEFAULT", V("${A:-b}"), "# skipped EXPANDS_DEFAULT: value holds ${...}, which "
                                      "python-dotenv expands\n"},
    {"EXPANDS_EMPTY", V("${}"), "# skipped EXPANDS_EMPTY: value holds ${...}, which "
                                "python-dotenv expands\n"},
    {"UTF8", V("h\xc3\xa9"), "UTF8=\"h\xc3\xa9\"\n"},
    {"BAD_UTF8", V("a\xff"), "# skipped BAD_UTF8: value is not valid UTF-8 (python-dotenv "
                             "decodes the whole file as UTF-8)\n"},
    {"NUL", V("a\0b"), "# skipped NUL: value contains a NUL byte\n"},
    {"BS_END_WORD", V("C:\\dir\\"), "BS_END_WORD=C:\\dir\\\n"},
    {"BS_END_SPACE", V("a b\\"), "# skipped BS_END_SPACE: " BS_END_WHY " (python-dotenv)\n"},
    {"BS_END_QUOTE", V("'a\\"), "# skipped BS_END_QUOTE: " BS_END_WHY " (python-dotenv)\n"},
    {"with-dash.dot", V("x"), "with-dash.dot=\"x\"\n"},
};

static const struct rule node_rules[] = {
    {"PLAIN", V("abc"), "PLAIN='abc'\n"},
    {"EMPTY", V(""), "EMPTY=''\n"},
    {"LITERAL", V("a\\nb \"c\" `d` $X ${Y} # e\n\tf "),
     "LITERAL='a\\nb \"c\" `d` $X ${Y} # e\n\tf '\n"},
    {"SQUOTE", V("it's \"x\" \\n"), "SQUOTE=`it's \"x\" \\n`\n"},
    {"TWO_QUOTES", V("'`\n"), "TWO_QUOTES=\"'`\n\"\n"},
    {"CR", V("a\r\nb"), "CR=\"a\\r\nb\"\n"},
    {"CR_BACKSLASH", V("\\\r"), "CR_BACKSLASH=\"\\\\r\"\n"},
    {"CR_DQUOTE", V("\r\""), "# skipped CR_DQUOTE: value has a carriage return and a \" or a "
                             "\\n or \\r, which npm dotenv cannot carry\n"},
    {"CR_BSN", V("\r\\n"), "# skipped CR_BSN: value has a carriage return and a \" or a \\n "
                           "or \\r, which npm dotenv cannot carry\n"},
    {"ALL_QUOTES", V("'\"`"), "# skipped ALL_QUOTES: value holds all three quote characters "
                              "' \" `, which npm dotenv cannot carry\n"},
    {"BS_END_WORD", V("a\\b\\"), "BS_END_WORD=a\\b\\\n"},
    {"BS_END_HASH", V("a#\\"), "# skipped BS_END_HASH: " BS_END_WHY " (npm dotenv)\n"},
    {"BAD_UTF8", V("\xed\xa0\x80"), "# skipped BAD_UTF8: value is not valid UTF-8 (npm dotenv "
                                    "decodes the file as UTF-8)\n"},
    {"NUL", V("\0"), "# skipped NUL: value contains a NUL byte\n"},
    {"with-dash", V("x"), "with-dash='x'\n"},
};

static const struct rule go_rules[] = {
    {"PLAIN", V("abc"), "PLAIN=\"abc\"\n"},
    {"EMPTY", V(""), "EMPTY=\"\"\n"},
    {"ESCAPES", V("\\ \" $A ${B} $(c) \\$ \n \r \t"),
     "ESCAPES=\"\\\\ \\\" \\$A \\${B} \\$(c) \\\\\\$ \\n \\r \t\"\n"},
    {"QUOTE_START", V("\"x"), "QUOTE_START=\"\\\"x\"\n"},
    {"QUOTE_END", V("say \"hi\""), "QUOTE_END='say \"hi\"'\n"},
    {"QUOTE_END_CR", V("$a\rb\n\""), "QUOTE_END_CR='$a\rb\n\"'\n"},
    {"QUOTE_END_SQ", V("'\""), "# skipped QUOTE_END_SQ: value ends with \" and holds a ' or a "
                               "CR LF, which godotenv cannot carry\n"},
    {"QUOTE_END_CRLF", V("\r\n\""), "# skipped QUOTE_END_CRLF: value ends with \" and holds a ' "
                                    "or a CR LF, which godotenv cannot carry\n"},
    {"BS_END_WORD", V("a#b\\"), "BS_END_WORD=a#b\\\n"},
    {"BS_END_DOLLAR", V("$A\\"), "# skipped BS_END_DOLLAR: " BS_END_WHY " (godotenv)\n"},
    {"BAD_UTF8", V("\xff\xfe"), "BAD_UTF8=\"\xff\xfe\"\n"},
    {"NUL", V("a\0"), "# skipped NUL: value contains a NUL byte\n"},
    {"with-dash", V("x"), "# skipped with-dash: name has a -, which godotenv does not accept\n"},
    {"a.b_1", V("x"), "a.b_1=\"x\"\n"},
};

static const struct rule docker_rules[] = {
    {"PLAIN", V("abc"), "PLAIN=abc\n"},
    {"EMPTY", V(""), "EMPTY=\n"},
    {"RAW", V(" 'a' \"b\" `c` $D ${E} \\ # f\t\r= "), "RAW= 'a' \"b\" `c` $D ${E} \\ # f\t\r= \n"},
    {"NEWLINE", V("a\nb"), "# skipped NEWLINE: value contains a newline, which docker "
                           "--env-file cannot carry\n"},
    {"CR_END", V("a\r"), "# skipped CR_END: value ends with a carriage return, which docker "
                         "--env-file drops\n"},
    {"BAD_UTF8", V("\xc0\xaf"), "# skipped BAD_UTF8: value is not valid UTF-8 (docker refuses "
                                "the whole file)\n"},
    {"NUL", V("\0"), "# skipped NUL: value contains a NUL byte\n"},
    {"with-dash.dot", V("x"), "with-dash.dot=x\n"},
};

struct dialect {
    const char *what;
    render_fn fn;
    const char *header_start;
    const struct rule *rules;
    size_t n;
};

#define DIALECT(what, fn, header, rules) {what, fn, header, rules, sizeof rules / sizeof rules[0]}

static const struct dialect dialects[] = {
    DIALECT("python", sfs_view_python, "# secretfs view for python-dotenv", python_rules),
    DIALECT("node", sfs_view_node, "# secretfs view for npm dotenv", node_rules),
    DIALECT("go", sfs_view_go, "# secretfs view for godotenv", go_rules),
    DIALECT("docker", sfs_view_docker, "# secretfs view for docker run --env-file",
            docker_rules),
};

/* Renders `set` through `fn` into a malloc'd buffer (plus a NUL), checking the contract:
 * the measured length is the written one, and a short buffer gets a prefix of it. */
static char *render(render_fn fn, const sfs_set *set, size_t *len_out)
{
    size_t len = fn(set, NULL, 0), short_cap = len / 2;
    char *buf = malloc(len + 1), *part = malloc(short_cap + 1);

    if (!buf || !part)
        abort();
    CHECK(fn(set, buf, len) == len);
    CHECK(fn(set, part, short_cap) == len);
    CHECK(memcmp(part, buf, short_cap) == 0);
    buf[len] = '\0';
    free(part);
    *len_out = len;
    return buf;
}

/* Each rule alone in a set: the view is the header line, then exactly `want`. */
static void test_rules(const struct dialect *d)
{
    size_t i;

    for (i = 0; i < d->n; i++) {
        const struct rule *r = &d->rules[i];
        sfs_set *set = sfs_set_new(0);
        size_t len, want_len = strlen(r->want);
        char *out, *body;

        CHECK(sfs_set_put(set, r->name, r->value, r->len, 0, 0) == 0);
        out = render(d->fn, set, &len);
        body = memchr(out, '\n', len);
        CHECK_MSG(strncmp(out, d->header_start, strlen(d->header_start)) == 0,
                  "%s: header", d->what);
        CHECK_MSG(body && (size_t)(out + len - body - 1) == want_len &&
                      memcmp(body + 1, r->want, want_len) == 0,
                  "%s: rule %s renders differently", d->what, r->name);
        free(out);
        sfs_set_free(set);
    }
}

/* All rules in one set: one line per rule, in name order, nothing else. */
static void test_together(const struct dialect *d)
{
    sfs_set *set = sfs_set_new(0);
    size_t i, len, want_lines = 1, lines = 0; /* the header, then the rules' lines */
    char *out;

    for (i = 0; i < d->n; i++)
        CHECK(sfs_set_put(set, d->rules[i].name, d->rules[i].value, d->rules[i].len, 0, 0) == 0);
    out = render(d->fn, set, &len);
    for (i = 0; i < d->n; i++)
        CHECK_MSG(memmem(out, len, d->rules[i].want, strlen(d->rules[i].want)) != NULL,
                  "%s: %s missing from the whole view", d->what, d->rules[i].name);
    for (i = 0; i < d->n; i++)
        for (const char *p = d->rules[i].want; *p; p++)
            want_lines += *p == '\n';
    for (i = 0; i < len; i++)
        lines += out[i] == '\n';
    CHECK_MSG(lines == want_lines, "%s: the whole view has %zu lines, the rules %zu", d->what,
              lines, want_lines);
    free(out);
    sfs_set_free(set);
}

/* docker reads lines of at most 64 KiB (newline included): NAME=value of 65535 bytes goes
 * in, one byte more is left out. */
static void test_docker_line_limit(void)
{
    size_t max = 65535 - strlen("L=");
    char *value = malloc(max + 1), *out;
    sfs_set *set = sfs_set_new(0);
    size_t len;

    if (!value)
        abort();
    memset(value, 'x', max + 1);
    CHECK(sfs_set_put(set, "L", value, max, 0, 0) == 0);
    out = render(sfs_view_docker, set, &len);
    CHECK(memmem(out, len, "\nL=xxx", 6) != NULL && out[len - 1] == '\n');
    free(out);
    CHECK(sfs_set_put(set, "L", value, max + 1, 0, 0) == 0);
    out = render(sfs_view_docker, set, &len);
    CHECK_STR_CONTAINS(out, "# skipped L: line longer than docker --env-file reads (64 KiB)\n");
    free(out);
    free(value);
    sfs_set_free(set);
}

int main(void)
{
    size_t i;

    for (i = 0; i < sizeof dialects / sizeof dialects[0]; i++) {
        test_rules(&dialects[i]);
        test_together(&dialects[i]);
    }
    test_docker_line_limit();
    return check_result();
}
