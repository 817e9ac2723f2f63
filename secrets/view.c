#include "secrets/view.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "secrets/names.h"

#define ENV_HEADER "# secretfs env view: source this file from a shell ( . PATH/.env )\n"

/* A bounded writer: copies what fits in [out, out+cap) and counts everything. */
typedef struct sink {
    char *out;
    size_t cap;
    size_t len;
} sink;

static void put(sink *s, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (s->len < s->cap) {
        size_t room = s->cap - s->len;
        memcpy(s->out + s->len, p, n < room ? n : room);
    }
    s->len = n > SIZE_MAX - s->len ? SIZE_MAX : s->len + n;
}

static void put_str(sink *s, const char *str)
{
    put(s, str, strlen(str));
}

#define PUT_LIT(s, lit) put((s), (lit), sizeof(lit) - 1)

static bool comment_safe_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* A name that may be echoed into a comment line without ending it or being misread. */
static bool comment_safe_name(const char *name)
{
    size_t i;

    if (!name[0])
        return false;
    for (i = 0; name[i]; i++)
        if (!comment_safe_char((unsigned char)name[i]))
            return false;
    return true;
}

static void env_skip(sink *s, const char *name, const char *reason)
{
    if (comment_safe_name(name)) {
        put_str(s, "# skipped ");
        put_str(s, name);
        put_str(s, ": ");
    } else {
        put_str(s, "# skipped an entry whose name has characters outside A-Z a-z 0-9 . _ -: ");
    }
    put_str(s, reason);
    put_str(s, "\n");
}

/* One dialect's line for entry `e`: writes it to `s` and returns NULL, or writes nothing
 * and returns why the entry is left out (a reason without a newline or a value). */
typedef const char *(*line_fn)(sink *s, const sfs_entry *e);

/* The shape every env-style view shares: a header comment, then per entry (in name order)
 * either its line or a comment naming it and the reason it is left out. */
static size_t render_lines(const sfs_set *set, const char *header, line_fn line, char *out,
                           size_t cap)
{
    sink s = {out, cap, 0};
    size_t i, n = sfs_set_count(set);

    put_str(&s, header);
    for (i = 0; i < n; i++) {
        const sfs_entry *e = sfs_set_at(set, i);
        const char *why = line(&s, e);

        if (why)
            env_skip(&s, e->name, why);
    }
    return s.len;
}

static bool value_has(const sfs_entry *e, unsigned char c)
{
    return e->len && memchr(e->value, c, e->len);
}

static bool value_ends_with(const sfs_entry *e, unsigned char c)
{
    return e->len && e->value[e->len - 1] == c;
}

/* Single quotes keep every byte literal in every POSIX shell (and zsh without RC_QUOTES);
 * only ' itself must leave the quotes: close, escaped quote, reopen. */
static void env_quoted(sink *s, const unsigned char *v, size_t len)
{
    const unsigned char *end = v + len, *q;

    PUT_LIT(s, "'");
    while ((q = memchr(v, '\'', (size_t)(end - v)))) {
        put(s, v, (size_t)(q - v));
        PUT_LIT(s, "'\\''");
        v = q + 1;
    }
    put(s, v, (size_t)(end - v));
    PUT_LIT(s, "'");
}

static const char *env_line(sink *s, const sfs_entry *e)
{
    if (!sfs_name_is_shell_ident(e->name))
        return "not a shell identifier";
    if (value_has(e, '\0'))
        return "value contains a NUL byte";
    PUT_LIT(s, "export ");
    put_str(s, e->name);
    PUT_LIT(s, "=");
    env_quoted(s, e->value, e->len);
    PUT_LIT(s, "\n");
    return NULL;
}

/* Renders the .env view of `set` (owned by the caller, not modified; no lock needed since a
 * published set is immutable) into out[0..cap).  Writes at most `cap` bytes, never a NUL
 * terminator, and returns the full length (render again with a buffer that large). */
size_t sfs_view_env(const sfs_set *set, char *out, size_t cap)
{
    return render_lines(set, ENV_HEADER, env_line, out, cap);
}

/* Length of the well-formed UTF-8 sequence at p[0..len) (RFC 3629, Unicode table 3-7: no
 * overlongs, no surrogates D800-DFFF, nothing above U+10FFFF), or 0 if it is ill-formed. */
static size_t utf8_seq(const unsigned char *p, size_t len)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t need, k;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (len < need || p[1] < lo || p[1] > hi)
        return 0;
    for (k = 2; k < need; k++)
        if (p[k] < 0x80 || p[k] > 0xBF)
            return 0;
    return need;
}

/* Word-at-a-time tests (Hacker's Delight 6-1), exact for words whose bytes are all below
 * 0x80: any byte zero / below n (n <= 0x80) / equal to b.  A view is rendered twice (measure,
 * then write) over every secret's bytes, and values are mostly plain ASCII: this makes the
 * first stat or read of .env.json after a reload about three times cheaper. */
#define ONES (~(uint64_t)0 / 255)
#define HIGHS (ONES * 0x80)
#define HAS_ZERO(x) (((x) - ONES) & ~(x) & HIGHS)
#define HAS_LESS(x, n) (((x) - ONES * (n)) & ~(x) & HIGHS)
#define HAS_BYTE(x, b) HAS_ZERO((x) ^ (ONES * (b)))

static uint64_t load64(const unsigned char *p)
{
    uint64_t w;

    memcpy(&w, p, sizeof w);
    return w;
}

/* Length of the leading run of ASCII bytes in p[0..len). */
static size_t ascii_run(const unsigned char *p, size_t len)
{
    size_t i = 0;

    while (len - i >= 8 && !(load64(p + i) & HIGHS))
        i += 8;
    while (i < len && p[i] < 0x80)
        i++;
    return i;
}

/* Whether byte c goes into a JSON string as itself (see json_string). */
static bool json_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
}

/* Length of the leading run of bytes in p[0..len) that json_string copies as they are. */
static size_t json_plain_run(const unsigned char *p, size_t len)
{
    size_t i = 0;

    for (; len - i >= 8; i += 8) {
        uint64_t w = load64(p + i);
        if ((w & HIGHS) || HAS_LESS(w, 0x20) || HAS_BYTE(w, '"') || HAS_BYTE(w, '\\') ||
            HAS_BYTE(w, 0x7F))
            break;
    }
    while (i < len && json_plain(p[i]))
        i++;
    return i;
}

static bool utf8_valid(const unsigned char *p, size_t len)
{
    size_t i = 0, n;

    while (i < len) {
        i += ascii_run(p + i, len - i);
        if (i == len)
            break;
        n = utf8_seq(p + i, len - i);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

static void json_u_escape(sink *s, unsigned cp)
{
    static const char hex[] = "0123456789abcdef";
    char buf[6] = {'\\', 'u', hex[(cp >> 12) & 0xF], hex[(cp >> 8) & 0xF],
                   hex[(cp >> 4) & 0xF], hex[cp & 0xF]};

    put(s, buf, sizeof buf);
}

/* Writes a JSON string literal for valid UTF-8 `v`, whose first `plain` bytes the caller
 * knows need no escape (json_plain_run).  Escapes what RFC 8259 requires plus DEL, U+2028
 * and U+2029 (line terminators in JavaScript source before ES2019). */
static void json_string(sink *s, const unsigned char *v, size_t len, size_t plain)
{
    size_t start = 0, i = plain, n;

    PUT_LIT(s, "\"");
    while (i < len) {
        unsigned char c;
        const char *esc = NULL;
        unsigned cp;

        i += json_plain_run(v + i, len - i);
        if (i == len)
            break;
        c = v[i];
        cp = c;
        n = utf8_seq(v + i, len - i);
        if (n == 3 && c == 0xE2 && v[i + 1] == 0x80 && (v[i + 2] == 0xA8 || v[i + 2] == 0xA9))
            cp = v[i + 2] == 0xA8 ? 0x2028 : 0x2029;
        else if (n != 1 || (c >= 0x20 && c != '"' && c != '\\' && c != 0x7F)) {
            i += n ? n : 1;
            continue;
        }
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: break;
        }
        put(s, v + start, i - start);
        if (esc)
            put_str(s, esc);
        else
            json_u_escape(s, cp);
        i += n;
        start = i;
    }
    put(s, v + start, len - start);
    PUT_LIT(s, "\"");
}

/* Renders the .env.json view of `set` into out[0..cap), same contract as sfs_view_env:
 * at most `cap` bytes, no NUL terminator, returns the full length.  Entries whose value
 * (or name) is not well-formed UTF-8 are left out. */
size_t sfs_view_json(const sfs_set *set, char *out, size_t cap)
{
    sink s = {out, cap, 0};
    size_t i, n = sfs_set_count(set), shown = 0;

    PUT_LIT(&s, "{");
    for (i = 0; i < n; i++) {
        const sfs_entry *e = sfs_set_at(set, i);
        const unsigned char *name = (const unsigned char *)e->name;
        size_t name_len = strlen(e->name);
        size_t name_plain = json_plain_run(name, name_len);
        size_t value_plain = json_plain_run(e->value, e->len);

        /* plain bytes are ASCII: only what follows them needs checking */
        if (!utf8_valid(e->value + value_plain, e->len - value_plain) ||
            !utf8_valid(name + name_plain, name_len - name_plain))
            continue;
        if (shown)
            PUT_LIT(&s, ",\n  ");
        else
            PUT_LIT(&s, "\n  ");
        json_string(&s, name, name_len, name_plain);
        PUT_LIT(&s, ": ");
        json_string(&s, e->value, e->len, value_plain);
        shown++;
    }
    put_str(&s, shown ? "\n}\n" : "}\n");
    return s.len;
}

/* ---- views for the consumers' own dotenv loaders (README "Views for dotenv loaders") ----
 *
 * Each dialect's rules come from its loader's source (versions in the README).  An entry
 * goes in only in a form its loader reads back as exactly the secret's bytes; otherwise a
 * comment names it and says why.  A value that ends with a backslash cannot be quoted in
 * any of python-dotenv, npm dotenv or godotenv (`\"` never closes their quotes), so it is
 * written unquoted when it is one plain word. */

#define PYTHON_HEADER \
    "# secretfs view for python-dotenv: load_dotenv(\"/run/secrets/.env.python\")\n"
#define NODE_HEADER \
    "# secretfs view for npm dotenv: dotenv.config({ path: \"/run/secrets/.env.node\" })\n"
#define GO_HEADER "# secretfs view for godotenv: godotenv.Load(\"/run/secrets/.env.go\")\n"
#define DOCKER_HEADER "# secretfs view for docker run --env-file /run/secrets/.env.docker\n"

/* The longest line docker's env-file reader accepts (bufio.Scanner's 64 KiB token limit,
 * newline included). */
#define DOCKER_MAX_LINE 65535

#define WHY_NUL "value contains a NUL byte"
#define WHY_UTF8 "value is not valid UTF-8"
#define WHY_BACKSLASH "value ends with a backslash and is not one word of printable ASCII"

/* Writes v[0..len), replacing each byte that has an entry in `esc` by that string. */
static void put_escaped(sink *s, const unsigned char *v, size_t len,
                        const char *const esc[256])
{
    size_t start = 0, i;

    for (i = 0; i < len; i++) {
        if (!esc[v[i]])
            continue;
        put(s, v + start, i - start);
        put_str(s, esc[v[i]]);
        start = i + 1;
    }
    put(s, v + start, len - start);
}

/* `NAME=` + v[0..len) wrapped in `quote` (no quote: written bare) + newline. */
static void put_line(sink *s, const sfs_entry *e, const char *quote, const char *const esc[256])
{
    static const char *const none[256];

    put_str(s, e->name);
    PUT_LIT(s, "=");
    put_str(s, quote);
    put_escaped(s, e->value, e->len, esc ? esc : none);
    put_str(s, quote);
    PUT_LIT(s, "\n");
}

static bool value_utf8(const sfs_entry *e)
{
    return utf8_valid(e->value, e->len);
}

/* One word of printable ASCII (no space), not starting with a quote, with none of the
 * bytes in `forbidden`: what every loader here reads unquoted as itself. */
static bool plain_word(const sfs_entry *e, const char *forbidden)
{
    size_t i;

    if (!e->len || e->value[0] == '\'' || e->value[0] == '"' || e->value[0] == '`')
        return false;
    for (i = 0; i < e->len; i++)
        if (e->value[i] <= 0x20 || e->value[i] >= 0x7F || strchr(forbidden, e->value[i]))
            return false;
    return true;
}

/* Whether python-dotenv's interpolation (variables.py: `${NAME}` or `${NAME:-default}`, a
 * NAME without } or :) finds a variable anywhere in v[0..len). */
static bool python_expands(const unsigned char *v, size_t len)
{
    size_t i, j;

    for (i = 0; i + 1 < len; i++) {
        if (v[i] != '$' || v[i + 1] != '{')
            continue;
        for (j = i + 2; j < len && v[j] != '}' && v[j] != ':'; j++)
            ;
        if (j < len && v[j] == '}')
            return true;
        if (j + 1 < len && v[j + 1] == '-' && memchr(v + j + 2, '}', len - j - 2))
            return true;
    }
    return false;
}

static const char *const python_esc[256] = {
    ['\\'] = "\\\\", ['"'] = "\\\"", ['\n'] = "\\n", ['\r'] = "\\r",
};

/* python-dotenv 0.21 (parser.py): a double-quoted value decodes \\ \" \n \r (among
 * others) and keeps every other byte; the file is read as UTF-8 text with universal
 * newlines, so CR is written as \r; every value is then interpolated. */
static const char *python_line(sink *s, const sfs_entry *e)
{
    if (!comment_safe_name(e->name))
        return "name has characters outside A-Z a-z 0-9 . _ -";
    if (value_has(e, '\0'))
        return WHY_NUL;
    if (!value_utf8(e))
        return WHY_UTF8 " (python-dotenv decodes the whole file as UTF-8)";
    if (python_expands(e->value, e->len))
        return "value holds ${...}, which python-dotenv expands";
    if (!value_ends_with(e, '\\'))
        put_line(s, e, "\"", python_esc);
    else if (plain_word(e, ""))
        put_line(s, e, "", NULL);
    else
        return WHY_BACKSLASH " (python-dotenv)";
    return NULL;
}

/* Renders the .env.python view of `set` into out[0..cap); the contract of sfs_view_env. */
size_t sfs_view_python(const sfs_set *set, char *out, size_t cap)
{
    return render_lines(set, PYTHON_HEADER, python_line, out, cap);
}

static const char *const node_esc[256] = {['\r'] = "\\r"};

/* Whether v holds a backslash followed by n or r (npm dotenv turns both into line breaks
 * in a double-quoted value, and has no escape for the backslash). */
static bool has_backslash_nr(const unsigned char *v, size_t len)
{
    size_t i;

    for (i = 0; i + 1 < len; i++)
        if (v[i] == '\\' && (v[i + 1] == 'n' || v[i + 1] == 'r'))
            return true;
    return false;
}

/* npm dotenv (lib/main.js parse): '...' and `...` are literal and may span lines; "..."
 * is literal except \n and \r; the file is read as UTF-8 and CR LF / CR become LF first,
 * so a CR survives only as \r in double quotes.  No expansion. */
static const char *node_line(sink *s, const sfs_entry *e)
{
    bool cr = value_has(e, '\r');

    if (!comment_safe_name(e->name))
        return "name has characters outside A-Z a-z 0-9 . _ -";
    if (value_has(e, '\0'))
        return WHY_NUL;
    if (!value_utf8(e))
        return WHY_UTF8 " (npm dotenv decodes the file as UTF-8)";
    if (value_ends_with(e, '\\')) {
        if (!plain_word(e, "#"))
            return WHY_BACKSLASH " (npm dotenv)";
        put_line(s, e, "", NULL);
    } else if (!cr && !value_has(e, '\'')) {
        put_line(s, e, "'", NULL);
    } else if (!cr && !value_has(e, '`')) {
        put_line(s, e, "`", NULL);
    } else if (!value_has(e, '"') && !has_backslash_nr(e->value, e->len)) {
        put_line(s, e, "\"", node_esc);
    } else {
        return cr ? "value has a carriage return and a \" or a \\n or \\r, which npm dotenv "
                    "cannot carry"
                  : "value holds all three quote characters ' \" `, which npm dotenv cannot carry";
    }
    return NULL;
}

/* Renders the .env.node view of `set` into out[0..cap); the contract of sfs_view_env. */
size_t sfs_view_node(const sfs_set *set, char *out, size_t cap)
{
    return render_lines(set, NODE_HEADER, node_line, out, cap);
}

/* godotenv accepts names of letters, digits, _ and . (parser.go locateKeyName). */
static bool go_name(const char *name)
{
    return comment_safe_name(name) && !strchr(name, '-');
}

static bool has_crlf(const unsigned char *v, size_t len)
{
    const unsigned char *cr = len ? memchr(v, '\r', len) : NULL;

    for (; cr; cr = memchr(cr + 1, '\r', (size_t)(v + len - cr - 1)))
        if (cr + 1 < v + len && cr[1] == '\n')
            return true;
    return false;
}

static const char *const go_esc[256] = {
    ['\\'] = "\\\\", ['"'] = "\\\"", ['$'] = "\\$", ['\n'] = "\\n", ['\r'] = "\\r",
};

/* godotenv 1.5.1 (parser.go): "..." turns \n \r into line breaks, drops the backslash of
 * any other escape and expands $NAME unless written \$; it trims every " at the end of the
 * value, so a value ending in " goes in '...' (literal, but CR LF becomes LF). */
static const char *go_line(sink *s, const sfs_entry *e)
{
    if (!go_name(e->name))
        return "name has a -, which godotenv does not accept";
    if (value_has(e, '\0'))
        return WHY_NUL;
    if (value_ends_with(e, '\\')) {
        if (!plain_word(e, "$"))
            return WHY_BACKSLASH " (godotenv)";
        put_line(s, e, "", NULL);
    } else if (!value_ends_with(e, '"')) {
        put_line(s, e, "\"", go_esc);
    } else if (!value_has(e, '\'') && !has_crlf(e->value, e->len)) {
        put_line(s, e, "'", NULL);
    } else {
        return "value ends with \" and holds a ' or a CR LF, which godotenv cannot carry";
    }
    return NULL;
}

/* Renders the .env.go view of `set` into out[0..cap); the contract of sfs_view_env. */
size_t sfs_view_go(const sfs_set *set, char *out, size_t cap)
{
    return render_lines(set, GO_HEADER, go_line, out, cap);
}

/* docker's env-file reader (opts/file.go parseKeyValueFile): one line per variable, the
 * value is the rest of the line as is; lines are read with bufio.Scanner (a final CR is
 * dropped, 64 KiB at most) and the file must be valid UTF-8. */
static const char *docker_line(sink *s, const sfs_entry *e)
{
    if (!comment_safe_name(e->name))
        return "name has characters outside A-Z a-z 0-9 . _ -";
    if (value_has(e, '\0'))
        return WHY_NUL;
    if (value_has(e, '\n'))
        return "value contains a newline, which docker --env-file cannot carry";
    if (value_ends_with(e, '\r'))
        return "value ends with a carriage return, which docker --env-file drops";
    if (!value_utf8(e))
        return WHY_UTF8 " (docker refuses the whole file)";
    if (strlen(e->name) + 1 + e->len > DOCKER_MAX_LINE)
        return "line longer than docker --env-file reads (64 KiB)";
    put_line(s, e, "", NULL);
    return NULL;
}

/* Renders the .env.docker view of `set` into out[0..cap); the contract of sfs_view_env. */
size_t sfs_view_docker(const sfs_set *set, char *out, size_t cap)
{
    return render_lines(set, DOCKER_HEADER, docker_line, out, cap);
}
