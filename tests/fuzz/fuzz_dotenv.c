/* tests/fuzz/fuzz_dotenv.c — fuzzes sfs_dotenv_parse (secrets/dotenv.h).
 *
 * Beyond memory errors, checks what would show a parser accepting what it should refuse,
 * or leaking what it parsed:
 *   - every '@' in the input is replaced by a canary secret ("@c4n4ry^Secr3t~") first;
 *     '@', '^' and '~' can never be part of a key, so no warning or error may contain
 *     them: a message that does quotes input text (a value) instead of naming it;
 *   - messages are one line each;
 *   - rc is 0 or -EINVAL; on -EINVAL *out is NULL and the error is "fuzz.env:LINE:COL: ..."
 *     with LINE and COL inside the file; warnings are "fuzz.env:LINE: ..." with LINE
 *     inside the file and never decreasing;
 *   - on success every key holds only what godotenv lets into a key (letters, digits, '_',
 *     '.', non-ASCII bytes, and inner spaces), so never NUL, LF, '=', ':', '#', a quote or
 *     '$'; has no space at either end; entries are sorted and unique; every entry's line
 *     is inside the file; the values total at most the file size plus 64 MiB;
 *   - parsing again without a warning callback gives the same result, error and set.
 * Name policy (empty names, names with spaces) is not checked: dotenv.h leaves it to the
 * caller, as godotenv returns such names.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secmem.h"
#include "secrets/dotenv.h"

#include "fuzz.h"

#define FNAME "fuzz.env"
#define CANARY "@c4n4ry^Secr3t~"
#define MAX_WARNINGS 100000

struct warnings {
    char **msg;
    size_t n, cap;
};

static void collect(void *ctx, const char *msg)
{
    struct warnings *w = ctx;

    FUZZ_CHECK(msg != NULL, "a NULL warning");
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        char **grown;
        FUZZ_CHECK(cap <= MAX_WARNINGS, "more than %d warnings", MAX_WARNINGS);
        grown = realloc(w->msg, cap * sizeof *grown);
        FUZZ_CHECK(grown != NULL, "out of memory");
        w->msg = grown;
        w->cap = cap;
    }
    w->msg[w->n] = strdup(msg);
    FUZZ_CHECK(w->msg[w->n] != NULL, "out of memory");
    w->n++;
}

static void warnings_free(struct warnings *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->msg[i]);
    free(w->msg);
}

/* The input with each '@' made the canary and CRLF pairs made LF (how the parser counts
 * lines and columns); *raw_len is the length before CRLF folding. */
static char *prepare(const uint8_t *data, size_t size, size_t *raw_len, char **norm,
                     size_t *norm_len)
{
    size_t n = 0, i, o = 0;
    char *raw, *nrm;

    for (i = 0; i < size; i++)
        n += data[i] == '@' ? sizeof CANARY - 1 : 1;
    raw = malloc(n ? n : 1);
    nrm = malloc(n ? n : 1);
    FUZZ_CHECK(raw && nrm, "out of memory");
    for (i = 0; i < size; i++) {
        if (data[i] == '@') {
            memcpy(raw + o, CANARY, sizeof CANARY - 1);
            o += sizeof CANARY - 1;
        } else {
            raw[o++] = (char)data[i];
        }
    }
    for (i = 0, o = 0; i < n; i++)
        if (!(raw[i] == '\r' && i + 1 < n && raw[i + 1] == '\n'))
            nrm[o++] = raw[i];
    *raw_len = n;
    *norm = nrm;
    *norm_len = o;
    return raw;
}

static size_t count_lines(const char *s, size_t n)
{
    size_t lines = 1;

    for (size_t i = 0; i < n; i++)
        lines += s[i] == '\n';
    return lines;
}

/* Bytes in 1-based line `line` of s (an upper bound on its characters). */
static size_t line_bytes(const char *s, size_t n, size_t line)
{
    size_t i = 0, cur = 1, len = 0;

    while (i < n && cur < line)
        cur += s[i++] == '\n';
    while (i < n && s[i] != '\n') {
        i++;
        len++;
    }
    return len;
}

static void check_no_canary(const char *msg)
{
    FUZZ_CHECK(!strpbrk(msg, "@^~"), "a message quotes input text: %s", msg);
    FUZZ_CHECK(!strchr(msg, '\n'), "a message is more than one line: %s", msg);
}

static bool key_byte_ok(unsigned char c)
{
    if (c >= 0x80)
        return true;
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == ' ' || c == '\t' || c == '\v' || c == '\f' ||
           c == '\r';
}

static bool ascii_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n';
}

static void check_set(const sfs_set *set, size_t lines, size_t raw_len)
{
    size_t n = sfs_set_count(set), total = 0;
    const char *prev = NULL;

    for (size_t i = 0; i < n; i++) {
        const sfs_entry *e = sfs_set_at(set, i);
        size_t len = strlen(e->name);

        for (size_t k = 0; k < len; k++)
            FUZZ_CHECK(key_byte_ok((unsigned char)e->name[k]),
                       "key #%zu holds byte 0x%02x at %zu", i, (unsigned char)e->name[k], k);
        if (len) {
            FUZZ_CHECK(!ascii_space((unsigned char)e->name[0]) &&
                       !ascii_space((unsigned char)e->name[len - 1]),
                       "key #%zu has a space at one end", i);
        }
        FUZZ_CHECK(!prev || strcmp(prev, e->name) < 0, "entries out of order or repeated");
        FUZZ_CHECK(e->line >= 1 && e->line <= lines, "entry line %u outside 1..%zu",
                   (unsigned)e->line, lines);
        FUZZ_CHECK(e->len == 0 || e->value != NULL, "NULL value");
        FUZZ_CHECK(e->created == 0 && e->updated == 0, "parsed entry has timestamps");
        total += e->len;
        prev = e->name;
    }
    FUZZ_CHECK(total <= raw_len + ((size_t)64 << 20), "values total %zu bytes", total);
}

static void check_error(const char *msg, const char *norm, size_t norm_len, size_t lines)
{
    size_t line = 0, col = 0;
    int used = 0;

    check_no_canary(msg);
    FUZZ_CHECK(sscanf(msg, FNAME ":%zu:%zu: %n", &line, &col, &used) == 2 && used > 0,
               "error not \"" FNAME ":LINE:COL: ...\": %s", msg);
    FUZZ_CHECK(line >= 1 && line <= lines, "error line outside 1..%zu: %s", lines, msg);
    FUZZ_CHECK(col >= 1 && col <= line_bytes(norm, norm_len, line) + 1,
               "error column outside line %zu (%zu bytes): %s", line,
               line_bytes(norm, norm_len, line), msg);
    FUZZ_CHECK(msg[used] != '\0', "empty error text: %s", msg);
}

static void check_warnings(const struct warnings *w, size_t lines)
{
    size_t prev = 0;

    for (size_t i = 0; i < w->n; i++) {
        size_t line = 0;
        int used = 0;

        check_no_canary(w->msg[i]);
        FUZZ_CHECK(sscanf(w->msg[i], FNAME ":%zu: %n", &line, &used) == 1 && used > 0,
                   "warning not \"" FNAME ":LINE: ...\": %s", w->msg[i]);
        FUZZ_CHECK(line >= 1 && line <= lines, "warning line outside 1..%zu: %s", lines,
                   w->msg[i]);
        FUZZ_CHECK(line >= prev, "warnings out of line order: %s", w->msg[i]);
        prev = line;
    }
}

static bool same_sets(const sfs_set *a, const sfs_set *b)
{
    if (!sfs_set_equal(a, b) || sfs_set_count(a) != sfs_set_count(b))
        return false;
    for (size_t i = 0; i < sfs_set_count(a); i++)
        if (sfs_set_at(a, i)->line != sfs_set_at(b, i)->line)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    struct warnings w = {0};
    struct sfs_err err1, err2;
    sfs_set *set1 = NULL, *set2 = NULL;
    size_t raw_len, norm_len, lines;
    char *raw, *norm;
    int rc1, rc2;

    if (!ready) {
        FUZZ_CHECK(sfs_crypto_init() == 0, "sfs_crypto_init failed");
        ready = true;
    }
    raw = prepare(data, size, &raw_len, &norm, &norm_len);
    lines = count_lines(norm, norm_len);
    memset(&err1, 0, sizeof err1);
    memset(&err2, 0, sizeof err2);

    rc1 = sfs_dotenv_parse(raw, raw_len, FNAME, &set1, collect, &w, &err1);
    FUZZ_CHECK(rc1 == 0 || rc1 == -EINVAL, "rc %d (%s)", rc1, err1.msg);
    check_warnings(&w, lines);
    if (rc1 == 0) {
        FUZZ_CHECK(set1 != NULL, "success without a set");
        check_set(set1, lines, raw_len);
    } else {
        FUZZ_CHECK(set1 == NULL, "a set on failure");
        check_error(err1.msg, norm, norm_len, lines);
    }

    rc2 = sfs_dotenv_parse(raw, raw_len, FNAME, &set2, NULL, NULL, &err2);
    FUZZ_CHECK(rc2 == rc1, "second parse gave %d, first %d", rc2, rc1);
    if (rc1 == 0)
        FUZZ_CHECK(same_sets(set1, set2), "second parse gave a different set");
    else
        FUZZ_CHECK(strcmp(err1.msg, err2.msg) == 0, "errors differ: '%s' / '%s'", err1.msg,
                   err2.msg);

    sfs_set_free(set1);
    sfs_set_free(set2);
    warnings_free(&w);
    free(raw);
    free(norm);
    return 0;
}
