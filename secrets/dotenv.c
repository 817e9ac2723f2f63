/* secrets/dotenv.c — godotenv 1.5.1's Parse (parser.go), ported step by step.
 *
 * The port keeps godotenv's scanning order: CRLF pairs become LF up front; a statement
 * starts at the next non-space rune that is not a '#' comment; the key runs to the first
 * '=' or ':' (after an optional "export " prefix); the value is single-quoted, double-quoted
 * (escapes, then $NAME expansion) or unquoted (to the end of the line, minus a " #"
 * comment, trimmed, then $NAME expansion).  Where godotenv decodes UTF-8 (Go's
 * utf8.DecodeRune: an invalid byte is one U+FFFD) or looks at raw bytes, so does this file.
 *
 * Plaintext lives only in the caller's buffer, in scratch buffers carved from secure
 * arenas (wiped when released), and in the resulting set.
 */
#include "secrets/dotenv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secmem.h"

/* Variable expansion may make the values larger than the file, but not by more than this. */
#define GROWTH_MAX ((size_t)64 << 20)
#define GROWTH_MAX_MIB 64
#define SHOWN_MAX 96
#define NOTE_MAX 1024
#define NOTES_PER_STATEMENT 16
#define RUNE_ERROR 0xFFFDu

/* A growable buffer in secure memory; each growth moves to a fresh arena and frees
 * (wipes) the old one. */
struct sbuf {
    sfs_arena *arena;
    unsigned char *p;
    size_t len;
    size_t cap;
};

struct note {
    size_t line;
    char *msg;
};

struct parser {
    const unsigned char *s;     /* the input with CRLF pairs made LF (in `text`) */
    size_t n;
    const char *fname;
    sfs_set *set;
    sfs_dotenv_warn_fn warn;
    void *warn_ctx;
    struct sfs_err *err;

    struct sbuf text;           /* the normalized input */
    struct sbuf esc;            /* a double-quoted value after escapes, or a sanitized line */
    struct sbuf out;            /* the value after expansion */

    size_t *breaks;             /* esc indices where a new source line begins */
    size_t nbreaks, cap_breaks;
    size_t esc_base_line;

    struct note *notes;         /* this statement's warnings, flushed in line order */
    size_t nnotes, cap_notes;
    size_t notes_dropped, notes_last_line;

    size_t cur_pos, cur_line;   /* line cursor: cur_line is the line of cur_pos */
    size_t col_pos, col;        /* column cursor: col is the column of col_pos (if > 0) */
    size_t stored, budget;      /* value bytes stored so far, and the most allowed */
    size_t quote_end_line;      /* line where the last quoted value closed, 0 if none */

    char *key;                  /* the current statement's key, NUL-terminated */
    size_t key_cap;
    size_t key_line;
    char shown[SHOWN_MAX];      /* the key as it appears in messages */
};

/* ---- scratch memory ---- */

static int sbuf_reserve(struct sbuf *b, size_t extra)
{
    size_t cap = b->cap ? b->cap : 256;
    sfs_arena *arena = NULL;
    unsigned char *p;
    int rc = 0;

    if (extra > SIZE_MAX / 4 - b->len) {
        rc = -ENOMEM;
        goto out;
    }
    if (b->len + extra <= b->cap)
        goto out;
    while (cap < b->len + extra)
        cap *= 2;
    arena = sfs_arena_new(cap);
    p = arena ? sfs_arena_alloc(arena, cap) : NULL;
    if (!p) {
        rc = -ENOMEM;
        goto out_free;
    }
    if (b->len)
        memcpy(p, b->p, b->len);
    sfs_arena_free(b->arena);
    b->arena = arena;
    b->p = p;
    b->cap = cap;
    arena = NULL;
out_free:
    sfs_arena_free(arena);
out:
    return rc;
}

static int sbuf_put(struct sbuf *b, const void *data, size_t len)
{
    int rc = sbuf_reserve(b, len);

    if (rc == 0 && len) {
        memcpy(b->p + b->len, data, len);
        b->len += len;
    }
    return rc;
}

static int sbuf_putc(struct sbuf *b, unsigned char c)
{
    return sbuf_put(b, &c, 1);
}

static void sbuf_clear(struct sbuf *b)
{
    sfs_wipe(b->p, b->len);
    b->len = 0;
}

static void sbuf_release(struct sbuf *b)
{
    sfs_arena_free(b->arena);
    memset(b, 0, sizeof *b);
}

/* ---- Go's view of bytes and runes ---- */

/* Decodes the rune at s[i] exactly as Go's utf8.DecodeRune: an invalid or truncated
 * sequence is U+FFFD of width 1.  Returns the width; *r gets the rune. */
static size_t decode_rune(const unsigned char *s, size_t n, size_t i, uint32_t *r)
{
    unsigned char c = s[i], lo = 0x80, hi = 0xBF;
    size_t w = 0, k;
    uint32_t v = c;

    if (c < 0x80) {
        w = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        w = 2;
        v = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        w = 3;
        v = c & 0x0Fu;
        lo = c == 0xE0 ? 0xA0 : lo;
        hi = c == 0xED ? 0x9F : hi;
    } else if (c >= 0xF0 && c <= 0xF4) {
        w = 4;
        v = c & 0x07u;
        lo = c == 0xF0 ? 0x90 : lo;
        hi = c == 0xF4 ? 0x8F : hi;
    }
    if (w > 1) {
        if (n - i < w || s[i + 1] < lo || s[i + 1] > hi)
            w = 0;
        for (k = 1; w && k < w; k++) {
            if (k > 1 && (s[i + k] < 0x80 || s[i + k] > 0xBF))
                w = 0;
            v = (v << 6) | (s[i + k] & 0x3Fu);
        }
    }
    if (w == 0) {
        w = 1;
        v = RUNE_ERROR;
    }
    *r = v;
    return w;
}

/* Go's unicode.IsSpace. */
static bool is_unicode_space(uint32_t r)
{
    return (r >= 0x09 && r <= 0x0D) || r == 0x20 || r == 0x85 || r == 0xA0 || r == 0x1680 ||
           (r >= 0x2000 && r <= 0x200A) || r == 0x2028 || r == 0x2029 || r == 0x202F ||
           r == 0x205F || r == 0x3000;
}

/* godotenv's isSpace: a space that is not a line break. */
static bool is_dotenv_space(uint32_t r)
{
    return r == '\t' || r == '\v' || r == '\f' || r == '\r' || r == ' ' || r == 0x85 ||
           r == 0xA0;
}

/* What godotenv lets through in a key, byte by byte: unicode.IsLetter or IsNumber of the
 * byte taken as a Latin-1 rune, '.', or '_'. */
static bool is_key_byte(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == 0xAA || c == 0xB2 || c == 0xB3 || c == 0xB5 ||
           c == 0xB9 || c == 0xBA || (c >= 0xBC && c <= 0xBE) ||
           (c >= 0xC0 && c != 0xD7 && c != 0xF7);
}

static bool is_name_byte(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The end of s[start, end) after Go's strings.TrimRightFunc(unicode.IsSpace). */
static size_t trim_right_unicode_space(const unsigned char *s, size_t start, size_t end)
{
    bool more = true;

    while (more && end > start) {
        size_t b = end - 1, lim = end - start > 4 ? end - 4 : start, w;
        uint32_t r = s[b];

        if (r >= 0x80) {
            while (b > lim && (s[b] & 0xC0) == 0x80)
                b--;
            w = decode_rune(s, end, b, &r);
            if (b + w != end) {
                r = RUNE_ERROR;
                w = 1;
            }
        } else {
            w = 1;
        }
        more = is_unicode_space(r);
        if (more)
            end -= w;
    }
    return end;
}

/* The start of s[pos, n) after Go's bytes.TrimLeftFunc(isSpace). */
static size_t trim_left_dotenv_space(const unsigned char *s, size_t n, size_t pos)
{
    uint32_t r;
    size_t w;

    while (pos < n && (w = decode_rune(s, n, pos, &r), is_dotenv_space(r)))
        pos += w;
    return pos;
}

/* ---- positions and messages ---- */

/* The 1-based line of pos.  A cursor makes the mostly forward walk linear overall. */
static size_t line_at(struct parser *p, size_t pos)
{
    const unsigned char *nl;
    size_t k = pos;

    while (k < p->cur_pos && (nl = memchr(p->s + k, '\n', p->cur_pos - k)) != NULL) {
        k = (size_t)(nl - p->s) + 1;
        p->cur_line--;
    }
    if (pos < p->cur_pos)
        p->cur_pos = pos;
    while (p->cur_pos < pos &&
           (nl = memchr(p->s + p->cur_pos, '\n', pos - p->cur_pos)) != NULL) {
        p->cur_pos = (size_t)(nl - p->s) + 1;
        p->cur_line++;
    }
    p->cur_pos = pos;
    return p->cur_line;
}

/* 1-based column of pos in characters (UTF-8 code points; an invalid byte counts as one).
 * Continues from the previous answer when pos lies further on in the same line. */
static size_t col_at(struct parser *p, size_t pos)
{
    size_t start = pos, col = 1, w;
    uint32_t r;

    if (p->col_pos && p->col_pos <= pos && !memchr(p->s + p->col_pos, '\n', pos - p->col_pos)) {
        start = p->col_pos;
        col = p->col;
    } else {
        while (start > 0 && p->s[start - 1] != '\n')
            start--;
    }
    while (start < pos && start + (w = decode_rune(p->s, p->n, start, &r)) <= pos) {
        start += w;
        col++;
    }
    p->col_pos = start;
    p->col = col;
    return col;
}

/* Fills err with "FNAME:LINE:COL: what" and returns -EINVAL. */
__attribute__((format(printf, 3, 4)))
static int fail_at(struct parser *p, size_t pos, const char *fmt, ...)
{
    char what[SFS_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return sfs_err_set(p->err, -EINVAL, "%s:%zu:%zu: %s", p->fname, line_at(p, pos),
                       col_at(p, pos), what);
}

/* A name as it may appear in a message: printable ASCII as is, other bytes as \xHH,
 * long names shortened. */
static void show_name(char *dst, size_t cap, const unsigned char *name, size_t len)
{
    size_t o = 0, i;

    for (i = 0; i < len && o + 8 < cap; i++) {
        unsigned char c = name[i];
        if (c > 0x20 && c < 0x7F)
            dst[o++] = (char)c;
        else
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02X", c);
    }
    if (i < len)
        o += (size_t)snprintf(dst + o, cap - o, "...");
    dst[o] = '\0';
    if (len == 0)
        snprintf(dst, cap, "(empty name)");
}

/* Queues "FNAME:LINE: KEY: what" for the current statement. */
__attribute__((format(printf, 3, 4)))
static int note(struct parser *p, size_t line, const char *fmt, ...)
{
    char msg[NOTE_MAX];
    size_t off;
    va_list ap;
    int rc = 0;

    if (!p->warn)
        goto out;
    if (line > p->notes_last_line)
        p->notes_last_line = line;
    if (p->nnotes == NOTES_PER_STATEMENT) {
        p->notes_dropped++;
        goto out;
    }
    if (p->nnotes == p->cap_notes) {
        size_t cap = p->cap_notes ? p->cap_notes * 2 : 8;
        struct note *v = realloc(p->notes, cap * sizeof *v);
        if (!v) {
            rc = -ENOMEM;
            goto out;
        }
        p->notes = v;
        p->cap_notes = cap;
    }
    off = (size_t)snprintf(msg, sizeof msg, "%s:%zu: %s: ", p->fname, line, p->shown);
    if (off < sizeof msg) {
        va_start(ap, fmt);
        vsnprintf(msg + off, sizeof msg - off, fmt, ap);
        va_end(ap);
    }
    p->notes[p->nnotes].line = line;
    p->notes[p->nnotes].msg = strdup(msg);
    if (!p->notes[p->nnotes].msg) {
        rc = -ENOMEM;
        goto out;
    }
    p->nnotes++;
out:
    return rc;
}

/* Hands the queued warnings to the callback in line order (stable) and forgets them. */
static void flush_notes(struct parser *p)
{
    size_t i, j;

    for (i = 1; i < p->nnotes; i++) {
        struct note t = p->notes[i];
        for (j = i; j > 0 && p->notes[j - 1].line > t.line; j--)
            p->notes[j] = p->notes[j - 1];
        p->notes[j] = t;
    }
    for (i = 0; i < p->nnotes; i++) {
        p->warn(p->warn_ctx, p->notes[i].msg);
        free(p->notes[i].msg);
    }
    if (p->notes_dropped) {
        char msg[NOTE_MAX];
        snprintf(msg, sizeof msg, "%s:%zu: %s: %zu more warnings about this value not shown",
                 p->fname, p->notes_last_line, p->shown, p->notes_dropped);
        p->warn(p->warn_ctx, msg);
    }
    p->nnotes = 0;
    p->notes_dropped = 0;
    p->notes_last_line = 0;
}

/* ---- the parser ---- */

/* godotenv's getStatementStart: the next non-space rune that does not begin a comment
 * line, or n. */
static size_t statement_start(const struct parser *p, size_t pos)
{
    const unsigned char *nl;
    uint32_t r;
    size_t w;

    for (;;) {
        while (pos < p->n && (w = decode_rune(p->s, p->n, pos, &r), is_unicode_space(r)))
            pos += w;
        if (pos >= p->n || p->s[pos] != '#')
            break;
        nl = memchr(p->s + pos, '\n', p->n - pos);
        pos = nl ? (size_t)(nl - p->s) : p->n;
    }
    return pos;
}

static int set_key(struct parser *p, size_t start, size_t end)
{
    size_t len = end - start;
    int rc = 0;

    if (len + 1 > p->key_cap) {
        char *k = realloc(p->key, len + 1);
        if (!k) {
            rc = -ENOMEM;
            goto out;
        }
        p->key = k;
        p->key_cap = len + 1;
    }
    memcpy(p->key, p->s + start, len);
    p->key[len] = '\0';
    show_name(p->shown, sizeof p->shown, p->s + start, len);
out:
    return rc;
}

static int key_error(struct parser *p, size_t stmt, size_t kstart, size_t bad)
{
    const char *hint = "";
    int rc;

    if (p->quote_end_line && line_at(p, stmt) == p->quote_end_line)
        hint = "; text after a closing quote is read as the next KEY=value";
    if (bad == kstart + 1 && p->n - kstart >= 3 &&
        memcmp(p->s + kstart, "\xEF\xBB\xBF", 3) == 0)
        rc = fail_at(p, kstart, "byte order mark (U+FEFF) before the name; save the file "
                                "as UTF-8 without a BOM");
    else if (bad >= p->n)
        rc = fail_at(p, bad, "expected a name after 'export'");
    else if (p->s[bad] == '\n')
        rc = fail_at(p, bad, "the line ends without '=' after the name (expected "
                             "KEY=value)%s", hint);
    else if (p->s[bad] == '"' || p->s[bad] == '\'')
        rc = fail_at(p, bad, "unexpected quote in a name (expected KEY=value)%s", hint);
    else
        rc = fail_at(p, bad, "character not allowed in a name (allowed: letters, digits, "
                             "'_' and '.'; expected KEY=value)%s", hint);
    return rc;
}

/* godotenv's locateKeyName: sets the key and returns where the value search starts in
 * *vstart. */
static int locate_key(struct parser *p, size_t stmt, size_t *vstart)
{
    size_t kstart = stmt, i, kend, w;
    bool found = false;
    uint32_t r;
    int rc;

    if (p->n - kstart >= 6 && memcmp(p->s + kstart, "export", 6) == 0 && kstart + 6 < p->n &&
        (decode_rune(p->s, p->n, kstart + 6, &r), is_dotenv_space(r))) {
        kstart += 6;
        while (kstart < p->n && (w = decode_rune(p->s, p->n, kstart, &r), is_dotenv_space(r)))
            kstart += w;
    }
    if (kstart >= p->n) {
        rc = key_error(p, stmt, kstart, kstart);
        goto out;
    }
    for (i = kstart; i < p->n; i++) {
        unsigned char c = p->s[i];
        if (is_dotenv_space(c) || c == '_' || is_key_byte(c))
            continue;
        if (c == '=' || c == ':') {
            found = true;
            break;
        }
        rc = key_error(p, stmt, kstart, i);
        goto out;
    }
    if (found) {
        kend = trim_right_unicode_space(p->s, kstart, i);
        *vstart = trim_left_dotenv_space(p->s, p->n, i + 1);
    } else {
        kend = kstart;
        *vstart = trim_left_dotenv_space(p->s, p->n, kstart);
    }
    rc = set_key(p, kstart, kend);
out:
    return rc;
}

static size_t esc_line(const struct parser *p, size_t e)
{
    size_t lo = 0, hi = p->nbreaks;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->breaks[mid] <= e)
            lo = mid + 1;
        else
            hi = mid;
    }
    return p->esc_base_line + lo;
}

/* What the current value may still take: values may total the file's size plus
 * GROWTH_MAX, so self-referencing expansions (A=$A$A, repeated) cannot exhaust memory. */
static size_t room(const struct parser *p)
{
    return p->budget > p->stored ? p->budget - p->stored : 0;
}

static int too_large(struct parser *p, size_t vpos)
{
    return fail_at(p, vpos, "%s: the values would total more than %d MiB beyond the file's "
                            "size (through variable expansion); secretfs refuses this",
                   p->shown, GROWTH_MAX_MIB);
}

static int out_put(struct parser *p, size_t vpos, const void *data, size_t len)
{
    int rc = 0;

    if (p->out.len > room(p) || len > room(p) - p->out.len)
        rc = too_large(p, vpos);
    else
        rc = sbuf_put(&p->out, data, len);
    return rc;
}

/* godotenv's expandVariables over e[0, len) into p->out.  `line` is the line of the
 * whole text, or 0 to take lines from the escape map.  vpos is the value's position
 * (for the size error). */
static int expand(struct parser *p, const unsigned char *e, size_t len, size_t line,
                  size_t vpos)
{
    size_t i = 0, j, m, name, name_end, nref = 0;
    int rc = 0;

    while (rc == 0 && i < len) {
        bool escaped = false, paren = false;
        const sfs_entry *ent = NULL;
        size_t at;

        for (j = i; j < len; j++) {
            if (e[j] == '$')
                break;
            if (e[j] == '\\' && j + 1 < len && e[j + 1] == '$') {
                escaped = true;
                break;
            }
        }
        rc = out_put(p, vpos, e + i, j - i);
        if (rc || j >= len)
            break;
        m = j + 1 + escaped;
        if (m < len && e[m] == '(') {
            paren = true;
            m++;
        }
        if (m < len && e[m] == '{')
            m++;
        name = m;
        while (m < len && is_name_byte(e[m]))
            m++;
        name_end = m;
        if (m < len && e[m] == '}')
            m++;
        at = line ? line : esc_line(p, j);
        if (escaped) {
            rc = out_put(p, vpos, e + j + 1, m - j - 1);
        } else if (name_end > name) {
            char *nm = strndup((const char *)e + name, name_end - name);

            if (!nm) {
                rc = -ENOMEM;
                break;
            }
            ent = sfs_set_get(p->set, nm);
            free(nm);
            /* The referenced name is part of the value (think "pa$WORD"), so messages
             * count references instead of quoting them. */
            nref++;
            if (paren)
                rc = note(p, at, "reference #%zu, a $( , is read as a plain $NAME (godotenv "
                                 "does no command substitution)%s", nref,
                          ent ? "" : " and expands to nothing: no such name is defined "
                                     "earlier in the file");
            else if (!ent)
                rc = note(p, at, "reference #%zu ($NAME) expands to nothing: no such name is "
                                 "defined earlier in the file (write \\$ for a literal $)",
                          nref);
            if (rc == 0 && ent)
                rc = out_put(p, vpos, ent->value, ent->len);
        } else {
            if (paren)
                rc = note(p, at, "$( is kept as written (godotenv does no command "
                                 "substitution)");
            if (rc == 0)
                rc = out_put(p, vpos, e + j, m - j);
        }
        i = m;
    }
    return rc;
}

static int add_break(struct parser *p)
{
    int rc = 0;

    if (p->nbreaks == p->cap_breaks) {
        size_t cap = p->cap_breaks ? p->cap_breaks * 2 : 16;
        size_t *v = realloc(p->breaks, cap * sizeof *v);
        if (!v) {
            rc = -ENOMEM;
            goto out;
        }
        p->breaks = v;
        p->cap_breaks = cap;
    }
    p->breaks[p->nbreaks++] = p->esc.len;
out:
    return rc;
}

/* godotenv's expandEscapes over s[start, end) into p->esc: \n and \r become LF and CR,
 * \$ stays as it is (expansion reads it), and any other backslash is dropped before the
 * character it precedes.  Records where source lines begin. */
static int unescape(struct parser *p, size_t start, size_t end)
{
    size_t k = start, unknown = 0, first = 0;
    int rc = 0;

    p->nbreaks = 0;
    p->esc_base_line = line_at(p, start);
    while (rc == 0 && k < end) {
        unsigned char c = p->s[k], d;

        if (c != '\\' || k + 1 >= end) {
            rc = sbuf_putc(&p->esc, c);
            if (rc == 0 && c == '\n')
                rc = add_break(p);
            k++;
            continue;
        }
        d = p->s[k + 1];
        if (d == 'n')
            rc = sbuf_putc(&p->esc, '\n');
        else if (d == 'r')
            rc = sbuf_putc(&p->esc, '\r');
        else if (d == '$')
            rc = sbuf_put(&p->esc, "\\$", 2);
        else
            rc = sbuf_putc(&p->esc, d);
        if (rc == 0 && d == '\n')
            rc = add_break(p);
        if (d != 'n' && d != 'r' && d != '$' && d != '\\' && d != '"' && d != '\'' &&
            unknown++ == 0)
            first = k;
        k += 2;
    }
    if (rc == 0 && unknown)
        rc = note(p, line_at(p, first), "unknown escape at column %zu in double quotes: "
                                        "godotenv drops the backslash and keeps the next "
                                        "character (only \\n and \\r are translated)%s",
                  col_at(p, first),
                  unknown > 1 ? "; more such escapes follow in this value" : "");
    return rc;
}

/* godotenv's unquoted branch: the rest of the line, sanitized to valid UTF-8, minus a
 * trailing " #" comment (the last one on the line), trimmed, expanded. */
static int unquoted_value(struct parser *p, size_t vstart, size_t *next)
{
    size_t eol = vstart, k, w, a, b;
    const unsigned char *L;
    uint32_t r;
    int rc = 0;

    while (eol < p->n && p->s[eol] != '\n' && p->s[eol] != '\r')
        eol++;
    *next = eol;
    for (k = vstart; rc == 0 && k < eol; k += w) {
        w = decode_rune(p->s, p->n, k, &r);
        rc = r == RUNE_ERROR && w == 1 ? sbuf_put(&p->esc, "\xEF\xBF\xBD", 3)
                                       : sbuf_put(&p->esc, p->s + k, w);
    }
    if (rc)
        goto out;
    L = p->esc.p;
    b = p->esc.len;
    for (k = b; k-- > 1;) {
        if (L[k] == '#' &&
            (L[k - 1] == ' ' || L[k - 1] == '\t' || L[k - 1] == '\v' || L[k - 1] == '\f' ||
             (k >= 2 && L[k - 2] == 0xC2 && (L[k - 1] == 0x85 || L[k - 1] == 0xA0)))) {
            b = k;
            break;
        }
    }
    a = 0;
    while (a < b) {
        if (L[a] == ' ' || L[a] == '\t' || L[a] == '\v' || L[a] == '\f')
            a++;
        else if (a + 1 < b && L[a] == 0xC2 && (L[a + 1] == 0x85 || L[a + 1] == 0xA0))
            a += 2;
        else
            break;
    }
    while (b > a) {
        if (L[b - 1] == ' ' || L[b - 1] == '\t' || L[b - 1] == '\v' || L[b - 1] == '\f')
            b--;
        else if (b - a >= 2 && L[b - 2] == 0xC2 && (L[b - 1] == 0x85 || L[b - 1] == 0xA0))
            b -= 2;
        else
            break;
    }
    p->quote_end_line = 0;
    if (b > a)
        rc = expand(p, L + a, b - a, line_at(p, vstart), vstart);
out:
    return rc;
}

/* godotenv's quoted branch.  The value ends at the first matching quote not preceded by
 * a backslash; quote characters are trimmed from both ends of what lies between. */
static int quoted_value(struct parser *p, size_t vstart, const unsigned char **val,
                        size_t *vlen, size_t *next)
{
    unsigned char q = p->s[vstart];
    const char *kind = q == '"' ? "double" : "single";
    size_t i, cstart = vstart, cend, skipped = 0, even_skipped = 0;
    bool any_skipped = false, any_even = false;
    int rc = 0;

    for (i = vstart + 1; i < p->n; i++) {
        if (p->s[i] != q)
            continue;
        if (p->s[i - 1] == '\\') {
            size_t run = 1;
            while (i - run > vstart && p->s[i - run - 1] == '\\')
                run++;
            if (!any_skipped)
                skipped = i;
            any_skipped = true;
            if (run % 2 == 0 && !any_even) {
                even_skipped = i;
                any_even = true;
            }
            continue;
        }
        break;
    }
    if (i >= p->n) {
        if (any_skipped)
            rc = fail_at(p, vstart, "unterminated %s quote (the %c on line %zu, column %zu, "
                                    "follows a backslash, so it does not end the value)",
                         kind, q, line_at(p, skipped), col_at(p, skipped));
        else
            rc = fail_at(p, vstart, "unterminated %s quote (no closing %c before the end "
                                    "of the file)", kind, q);
        goto out;
    }
    *next = i + 1;
    p->quote_end_line = line_at(p, i);
    cend = i;
    while (cend > cstart && p->s[cend - 1] == q)
        cend--;
    while (cstart < cend && p->s[cstart] == q)
        cstart++;
    if (i - 1 > vstart && p->s[i - 1] == q)
        rc = note(p, p->quote_end_line, "the escaped quote right before the closing quote is "
                                        "dropped and its backslash kept (a godotenv quirk); "
                                        "use %s quotes for a value that ends in %c",
                  q == '"' ? "single" : "double", q);
    if (rc == 0 && q == '"' && any_even)
        rc = note(p, line_at(p, even_skipped), "the \" at column %zu follows \\\\ and does "
                                               "not end the value: godotenv reads it as "
                                               "escaped, so the value runs on to line %zu",
                  col_at(p, even_skipped), p->quote_end_line);
    if (rc)
        goto out;
    if (q == '\'') {
        *val = p->s + cstart;
        *vlen = cend - cstart;
        goto out;
    }
    rc = unescape(p, cstart, cend);
    if (rc == 0)
        rc = expand(p, p->esc.p, p->esc.len, 0, vstart);
    if (rc == 0) {
        *val = p->out.p;
        *vlen = p->out.len;
    }
out:
    return rc;
}

/* One KEY=value statement starting at *pos (a non-space, non-comment rune). */
static int statement(struct parser *p, size_t *pos)
{
    size_t stmt = *pos, vstart = 0, vlen = 0, next = p->n;
    const unsigned char *val = (const unsigned char *)"";
    const sfs_entry *prev;
    int rc;

    rc = locate_key(p, stmt, &vstart);
    if (rc)
        goto out;
    p->key_line = line_at(p, stmt);
    prev = sfs_set_get(p->set, p->key);
    if (prev)
        rc = note(p, p->key_line, "set again (it was set on line %u); the value from line "
                                  "%zu wins", (unsigned)prev->line, p->key_line);
    if (rc)
        goto out;
    if (vstart < p->n && (p->s[vstart] == '"' || p->s[vstart] == '\'')) {
        rc = quoted_value(p, vstart, &val, &vlen, &next);
    } else {
        rc = unquoted_value(p, vstart, &next);
        val = p->out.p;
        vlen = p->out.len;
    }
    if (rc == 0 && vlen > room(p))
        rc = too_large(p, vstart);
    if (rc)
        goto out_wipe;
    rc = sfs_set_put_line(p->set, p->key, val ? val : (const unsigned char *)"", vlen, 0, 0,
                          p->key_line > UINT32_MAX ? UINT32_MAX : (uint32_t)p->key_line);
    if (rc == -EFBIG)
        rc = fail_at(p, vstart, "%s: value too large", p->shown);
    if (rc)
        goto out_wipe;
    p->stored += vlen;
    *pos = next;
out_wipe:
    sbuf_clear(&p->esc);
    sbuf_clear(&p->out);
out:
    flush_notes(p);
    return rc;
}

static int normalize(struct parser *p, const char *buf, size_t len)
{
    const unsigned char *in = (const unsigned char *)buf;
    size_t i, o = 0;
    int rc = sbuf_reserve(&p->text, len + 1);

    if (rc)
        goto out;
    for (i = 0; i < len; i++) {
        if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
            continue;
        p->text.p[o++] = in[i];
    }
    p->text.len = o;
    p->s = p->text.p;
    p->n = o;
out:
    return rc;
}

int sfs_dotenv_parse(const char *buf, size_t len, const char *fname, sfs_set **out,
                     sfs_dotenv_warn_fn warn, void *warn_ctx, struct sfs_err *err)
{
    struct parser p;
    size_t pos = 0;
    int rc;

    memset(&p, 0, sizeof p);
    p.fname = fname ? fname : "(dotenv)";
    p.warn = warn;
    p.warn_ctx = warn_ctx;
    p.err = err;
    p.cur_line = 1;
    if (!out || (!buf && len)) {
        rc = sfs_err_set(err, -EINVAL, "%s: nothing to parse", p.fname);
        goto out;
    }
    *out = NULL;
    p.budget = len > SIZE_MAX - GROWTH_MAX ? SIZE_MAX : len + GROWTH_MAX;
    p.set = sfs_set_new(len);
    rc = p.set ? normalize(&p, buf, len) : -ENOMEM;
    while (rc == 0) {
        pos = statement_start(&p, pos);
        if (pos >= p.n)
            break;
        rc = statement(&p, &pos);
    }
    if (rc == -ENOMEM)
        sfs_err_set(err, rc, "%s: out of memory while parsing", p.fname);
    if (rc == 0) {
        *out = p.set;
        p.set = NULL;
    }
    sfs_set_free(p.set);
    sbuf_release(&p.text);
    sbuf_release(&p.esc);
    sbuf_release(&p.out);
    free(p.breaks);
    free(p.notes);
    free(p.key);
out:
    return rc;
}
