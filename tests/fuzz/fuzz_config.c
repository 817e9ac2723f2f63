/* tests/fuzz/fuzz_config.c — fuzzes sfs_config_load (cli/config.h).
 *
 * The input is written to a memfd and loaded through its /proc/self/fd path.  Checks:
 *   - rc is 0, -EINVAL or -EFBIG; an error names the file first;
 *   - on success: cfg->path is the file; no string holds a line break, starts or ends with
 *     a space, or still holds a " ;comment" (inih strips those); cache is NULL, "kernel"
 *     or "none"; modes are at most 0777 and only set with has_mode; sizes are non-zero;
 *     allow_other is -1, 0 or 1; [secret:NAME] names are storable and unique;
 *   - an independent reading of the grammar (below, `judge`) says what the loader must
 *     refuse: NUL bytes, long lines, indented lines, lines that are neither [section] nor
 *     key = value, unknown sections or keys, keys outside a section, repeated keys; for
 *     what it accepts, each string setting must be exactly the value that reading found.
 *     Files with control characters other than tab and CRLF are only judged by the
 *     invariants above.
 * Each refusal has a class name (section-junk, empty-section, empty-path, control-char,
 * long-section, ...) that the failure message gives; crashes/config/ keeps one reproducer
 * per class that cli/config.c once accepted.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli/config.h"
#include "secrets/names.h"

#include "fuzz.h"

#define MAX_LINE 196
#define MAX_KEYS 64
#define VALUE_MAX 256
#define INIH_MAX_SECTION 50 /* inih r55's MAX_SECTION, counting the NUL */

static int memfd = -1;
static char path[64];

/* ---- the reference reading ---- */

enum verdict { ACCEPTABLE, MUST_REFUSE, SKIP };

struct setting {
    char section[VALUE_MAX];
    char name[VALUE_MAX];
    char value[VALUE_MAX];
};

struct judgement {
    enum verdict verdict;
    const char *klass;   /* for MUST_REFUSE: NULL (always fatal) or a tolerable class */
    int line;
    struct setting set[MAX_KEYS];
    size_t n;
    bool complete;       /* set[] holds every setting of the file */
};

static bool ini_space(unsigned char c)
{
    return isspace(c) != 0;
}

static void copy_trimmed(char *dst, const char *s, size_t n)
{
    while (n && ini_space((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && ini_space((unsigned char)s[n - 1]))
        n--;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Where inih's find_chars_or_comment stops: one of `chars`, a ';' right after a space,
 * or the end. */
static size_t stop_at(const char *s, size_t n, const char *chars)
{
    bool was_space = false;
    size_t i;

    for (i = 0; i < n; i++) {
        if (chars && strchr(chars, s[i]))
            break;
        if (was_space && s[i] == ';')
            break;
        was_space = ini_space((unsigned char)s[i]);
    }
    return i;
}

static bool known_section(const char *s)
{
    return strcmp(s, "store") == 0 || strcmp(s, "mount") == 0 ||
           strcmp(s, "platform") == 0 ||
           (strncmp(s, "secret:", 7) == 0 && sfs_name_valid(s + 7, NULL));
}

static bool known_key(const char *section, const char *name)
{
    static const char *store[] = {"path", "key_file", "max_secret_size", "max_store_size",
                                  "watch", NULL};
    static const char *mount[] = {"mountpoint", "cache", "only", "allow_other", "uid", "gid",
                                  "mode", NULL};
    static const char *platform[] = {"env", "file", "reserved_prefix", NULL};
    static const char *secret[] = {"uid", "gid", "mode", NULL};
    const char **keys = strcmp(section, "store") == 0 ? store
                        : strcmp(section, "mount") == 0 ? mount
                        : strcmp(section, "platform") == 0 ? platform
                        : secret;

    for (; *keys; keys++)
        if (strcmp(*keys, name) == 0)
            return true;
    return false;
}

static bool is_path_key(const char *section, const char *name)
{
    return (strcmp(section, "store") == 0 &&
            (strcmp(name, "path") == 0 || strcmp(name, "key_file") == 0)) ||
           (strcmp(section, "mount") == 0 && strcmp(name, "mountpoint") == 0) ||
           (strcmp(section, "platform") == 0 && strcmp(name, "file") == 0);
}

static void refuse(struct judgement *j, int line, const char *klass)
{
    /* the first fatal reason wins over tolerable ones */
    if (j->verdict == MUST_REFUSE && (j->klass == NULL || klass != NULL))
        return;
    j->verdict = MUST_REFUSE;
    j->klass = klass;
    j->line = line;
}

static void judge(const char *buf, size_t len, struct judgement *j)
{
    char section[VALUE_MAX] = "";
    size_t start = 0, i;
    int line = 0;

    j->verdict = ACCEPTABLE;
    j->klass = NULL;
    j->n = 0;
    j->complete = false;
    if (memchr(buf, '\0', len)) {
        refuse(j, 0, NULL);
        return;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && !(c == '\r' && i + 1 < len &&
                                                     buf[i + 1] == '\n')) || c == 0x7F) {
            j->verdict = SKIP;
            return;
        }
    }
    while (start <= len) {
        const char *l = buf + start, *nl = memchr(l, '\n', len - start);
        size_t n = nl ? (size_t)(nl - l) : len - start, k, ws = 0;
        char trimmed[VALUE_MAX];

        line++;
        start += n + 1;
        if (n && l[n - 1] == '\r')
            n--;
        if (n > MAX_LINE) {
            refuse(j, line, NULL);
            return;
        }
        if (line == 1 && n >= 3 && memcmp(l, "\xEF\xBB\xBF", 3) == 0) {
            l += 3;
            n -= 3;
            if (n && ini_space((unsigned char)l[0])) {
                j->verdict = SKIP;
                return;
            }
        }
        while (ws < n && (l[ws] == ' ' || l[ws] == '\t'))
            ws++;
        if (ws == n || l[ws] == ';' || l[ws] == '#')
            continue;
        if (ws > 0) {
            refuse(j, line, NULL);
            return;
        }
        copy_trimmed(trimmed, l, n);
        if (trimmed[0] == '[') {
            size_t tl = strlen(trimmed);
            k = 1 + stop_at(trimmed + 1, tl - 1, "]");
            if (k >= tl || trimmed[k] != ']') {
                refuse(j, line, NULL);
                return;
            }
            memcpy(section, trimmed + 1, k - 1);
            section[k - 1] = '\0';
            if (k - 1 >= INIH_MAX_SECTION) {
                /* inih cuts it to 49 bytes: what follows is read into another section */
                refuse(j, line, "long-section");
                return;
            }
            for (k++; trimmed[k] && ini_space((unsigned char)trimmed[k]); k++)
                ;
            if (trimmed[k] != '\0' && trimmed[k] != ';' && trimmed[k] != '#')
                refuse(j, line, "section-junk");
            if (!known_section(section))
                refuse(j, line, "empty-section"); /* fatal below if it has keys */
            continue;
        }
        k = stop_at(trimmed, strlen(trimmed), "=:");
        if (trimmed[k] != '=' && trimmed[k] != ':') {
            refuse(j, line, NULL);
            return;
        }
        {
            struct setting *s = &j->set[j->n];
            const char *v = trimmed + k + 1;
            size_t vn;

            if (j->n == MAX_KEYS || !known_section(section)) {
                refuse(j, line, NULL);
                return;
            }
            copy_trimmed(s->name, trimmed, k);
            vn = stop_at(v, strlen(v), NULL); /* inih cuts the comment, then trims */
            copy_trimmed(s->value, v, vn);
            strcpy(s->section, section);
            if (!known_key(section, s->name)) {
                refuse(j, line, NULL);
                return;
            }
            for (size_t m = 0; m < j->n; m++) {
                if (strcmp(j->set[m].section, section) == 0 &&
                    strcmp(j->set[m].name, s->name) == 0) {
                    refuse(j, line, NULL);
                    return;
                }
            }
            if (s->value[0] == '\0' && is_path_key(section, s->name))
                refuse(j, line, "empty-path");
            j->n++;
        }
    }
    j->complete = true;
}

/* ---- checks on what the loader returned ---- */

static void violation(const char *klass, const char *what, int line)
{
    FUZZ_CHECK(false, "accepted what it must refuse (%s, line %d): %s",
               klass ? klass : "fatal", line, what);
}

static void check_string(const char *what, const char *s)
{
    size_t n;

    if (!s)
        return;
    n = strlen(s);
    FUZZ_CHECK(!strchr(s, '\n'), "%s holds a line break", what);
    if (n) {
        FUZZ_CHECK(!ini_space((unsigned char)s[0]) && !ini_space((unsigned char)s[n - 1]),
                   "%s starts or ends with a space: '%s'", what, s);
    }
    for (size_t i = 1; i < n; i++)
        FUZZ_CHECK(!(s[i] == ';' && ini_space((unsigned char)s[i - 1])),
                   "%s holds an inline comment: '%s'", what, s);
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7F) {
            violation("control-char", what, 0);
            break;
        }
    }
}

static const char *setting(const struct judgement *j, const char *section, const char *name)
{
    for (size_t i = 0; i < j->n; i++)
        if (strcmp(j->set[i].section, section) == 0 && strcmp(j->set[i].name, name) == 0)
            return j->set[i].value;
    return NULL;
}

static void expect_same(const struct judgement *j, const char *section, const char *name,
                        const char *got)
{
    const char *want = setting(j, section, name);

    FUZZ_CHECK((want == NULL) == (got == NULL) && (!want || strcmp(want, got) == 0),
               "[%s] %s: loaded '%s', the file says '%s'", section, name, got ? got : "(unset)",
               want ? want : "(unset)");
}

static void check_loaded(const struct sfs_config *cfg, const struct judgement *j)
{
    FUZZ_CHECK(cfg->path && strcmp(cfg->path, path) == 0, "cfg->path is not the file");
    check_string("store.path", cfg->store_path);
    check_string("store.key_file", cfg->key_file);
    check_string("mount.mountpoint", cfg->mountpoint);
    check_string("mount.cache", cfg->cache);
    check_string("mount.only", cfg->only);
    check_string("platform.env", cfg->platform_env);
    check_string("platform.file", cfg->platform_file);
    check_string("platform.reserved_prefix", cfg->reserved_prefix);
    FUZZ_CHECK(!cfg->cache || strcmp(cfg->cache, "kernel") == 0 ||
               strcmp(cfg->cache, "none") == 0, "cache '%s'", cfg->cache);
    FUZZ_CHECK(cfg->mode <= 0777 && (cfg->has_mode || cfg->mode == 0), "mount mode %o",
               (unsigned)cfg->mode);
    FUZZ_CHECK(cfg->max_secret_size > 0 && cfg->max_store_size > 0, "a zero size");
    FUZZ_CHECK(cfg->allow_other >= -1 && cfg->allow_other <= 1, "allow_other %d",
               cfg->allow_other);
    FUZZ_CHECK(cfg->n_secrets == 0 || cfg->secrets != NULL, "secrets array missing");
    for (size_t i = 0; i < cfg->n_secrets; i++) {
        const struct sfs_config_secret *s = &cfg->secrets[i];
        FUZZ_CHECK(s->name && sfs_name_valid(s->name, NULL), "secret #%zu name", i);
        FUZZ_CHECK(s->mode <= 0777 && (s->has_mode || s->mode == 0), "secret mode %o",
                   (unsigned)s->mode);
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(cfg->secrets[k].name, s->name) != 0, "secret %s twice",
                       s->name);
        FUZZ_CHECK(sfs_config_secret(cfg, s->name) == s, "lookup of %s", s->name);
    }

    if (j->verdict == SKIP)
        return;
    if (j->verdict == MUST_REFUSE)
        violation(j->klass, "the loader accepted it", j->line);
    if (!j->complete)
        return;
    expect_same(j, "store", "path", cfg->store_path);
    expect_same(j, "store", "key_file", cfg->key_file);
    expect_same(j, "mount", "mountpoint", cfg->mountpoint);
    expect_same(j, "mount", "cache", cfg->cache);
    expect_same(j, "mount", "only", cfg->only);
    expect_same(j, "platform", "env", cfg->platform_env);
    expect_same(j, "platform", "file", cfg->platform_file);
    expect_same(j, "platform", "reserved_prefix", cfg->reserved_prefix);
    FUZZ_CHECK(cfg->has_mode == (setting(j, "mount", "mode") != NULL), "mount has_mode");
    FUZZ_CHECK(cfg->has_uid == (setting(j, "mount", "uid") != NULL), "mount has_uid");
    FUZZ_CHECK(cfg->has_gid == (setting(j, "mount", "gid") != NULL), "mount has_gid");
}

static void check_error(int rc, const struct sfs_err *err)
{
    size_t n = strlen(path);

    FUZZ_CHECK(rc == -EINVAL || rc == -EFBIG, "rc %d (%s)", rc, err->msg);
    FUZZ_CHECK(strncmp(err->msg, path, n) == 0 && err->msg[n] == ':',
               "error does not start with the file: %s", err->msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct judgement j;
    struct sfs_config cfg;
    struct sfs_err err;
    int rc;

    if (memfd < 0) {
        memfd = memfd_create("fuzz.ini", MFD_CLOEXEC);
        FUZZ_CHECK(memfd >= 0, "memfd_create failed");
        snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    }
    FUZZ_CHECK(ftruncate(memfd, 0) == 0, "ftruncate failed");
    FUZZ_CHECK(pwrite(memfd, data, size, 0) == (ssize_t)size, "pwrite failed");
    memset(&err, 0, sizeof err);

    judge((const char *)data, size, &j);
    rc = sfs_config_load(path, true, &cfg, &err);
    if (rc == 0)
        check_loaded(&cfg, &j);
    else
        check_error(rc, &err);
    sfs_config_free(&cfg);
    return 0;
}
