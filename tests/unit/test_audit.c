/* tests/unit/test_audit.c — the access audit without a mount: records written by the
 * writer thread, fingerprints, /proc fields, the journal's fields through the sink seam,
 * time and UTF-8 formatting, refusals of unsafe log files, and failing writes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "crypto/aead.h"
#include "crypto/secmem.h"
#include "fs/audit.h"

static char dir[64];
static const char canary[] = "cnry-unit-audit-value-7f3a";

static sfs_key *test_key(unsigned char fill)
{
    unsigned char raw[32];

    memset(raw, fill, sizeof raw);
    return sfs_key_from_bytes(raw);
}

/* The lines of `path` as parsed JSON objects (at most cap). */
static size_t read_records(const char *path, json_t **recs, size_t cap)
{
    FILE *f = fopen(path, "r");
    char line[65536];
    size_t n = 0;

    if (!f)
        return 0;
    while (n < cap && fgets(line, sizeof line, f))
        recs[n++] = json_loads(line, 0, NULL);
    fclose(f);
    return n;
}

static const char *str(json_t *rec, const char *key)
{
    const char *s = json_string_value(json_object_get(rec, key));
    return s ? s : "";
}

static void test_time_and_utf8(void)
{
    struct timespec ts = {1795974955, 123456789};
    char buf[64];
    json_t *j;

    sfs_audit_time(&ts, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "2026-11-29T17:55:55.123456Z") == 0, "got %s", buf);
    j = sfs_audit_string("ok\xff\xc0\xaf\xed\xa0\x80\xe2\x82\xac", 11);
    CHECK(j && strcmp(json_string_value(j), "ok\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                             "\xef\xbf\xbd\xef\xbf\xbd\xe2\x82\xac") == 0);
    json_decref(j);
}

static void test_fingerprint(void)
{
    sfs_key *k1 = test_key(1), *k2 = test_key(2);
    unsigned char f1[SFS_FINGERPRINT_KEY_BYTES], f2[SFS_FINGERPRINT_KEY_BYTES];
    char a[SFS_FINGERPRINT_HEX + 1], b[SFS_FINGERPRINT_HEX + 1], c[SFS_FINGERPRINT_HEX + 1];

    sfs_fingerprint_key(k1, f1);
    sfs_fingerprint_key(k2, f2);
    sfs_fingerprint(f1, canary, strlen(canary), a);
    sfs_fingerprint(f1, canary, strlen(canary), b);
    sfs_fingerprint(f2, canary, strlen(canary), c);
    CHECK(strlen(a) == SFS_FINGERPRINT_HEX && strspn(a, "0123456789abcdef") == strlen(a));
    CHECK(strcmp(a, b) == 0);
    CHECK(strcmp(a, c) != 0); /* another key, another fingerprint */
    sfs_key_free(k1);
    sfs_key_free(k2);
}

static void test_file_records(void)
{
    char path[128], fp[SFS_FINGERPRINT_HEX + 1], buf[65536];
    unsigned char fk[SFS_FINGERPRINT_KEY_BYTES];
    struct sfs_audit_caller me = {getpid(), getuid(), getgid()};
    struct sfs_audit_caller nobody = {0, 65534, 65534};
    struct sfs_audit *a;
    struct sfs_err err;
    sfs_key *key = test_key(3), *key2 = test_key(4);
    json_t *recs[8] = {0};
    struct stat st;
    size_t n, i;
    int fd;

    snprintf(path, sizeof path, "%s/audit.log", dir);
    CHECK(sfs_audit_open(path, "/mnt/x", &a, &err) == 0);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600);
    sfs_audit_set_key(a, key, 1);
    sfs_audit_set_key(a, key2, 5); /* a key change at generation 5 */
    sfs_audit_note_open(a, &me, "DB_PASSWORD", 2, canary, strlen(canary));
    sfs_audit_note_open(a, &nobody, "API", 5, canary, strlen(canary));
    sfs_audit_refused(a, 5, "secrets.store: wrong key; use the key it was sealed with");
    sfs_audit_flush(a);
    CHECK(sfs_audit_dropped(a) == 0);
    sfs_audit_close(a);

    fd = open(path, O_RDONLY);
    n = fd >= 0 ? (size_t)read(fd, buf, sizeof buf - 1) : 0;
    buf[n] = '\0';
    if (fd >= 0)
        close(fd);
    CHECK_MSG(!memmem(buf, n, canary, strlen(canary)), "the value is in the audit log");
    n = read_records(path, recs, 8);
    CHECK(n == 3);
    for (i = 0; i < n; i++)
        CHECK(recs[i] != NULL);
    if (n == 3 && recs[0] && recs[1] && recs[2]) {
        sfs_fingerprint_key(key, fk);
        sfs_fingerprint(fk, canary, strlen(canary), fp);
        CHECK(strcmp(str(recs[0], "event"), "open") == 0);
        CHECK(strcmp(str(recs[0], "name"), "DB_PASSWORD") == 0);
        CHECK(strcmp(str(recs[0], "mount"), "/mnt/x") == 0);
        CHECK(strcmp(str(recs[0], "fingerprint"), fp) == 0);
        CHECK(json_integer_value(json_object_get(recs[0], "pid")) == getpid());
        CHECK(json_integer_value(json_object_get(recs[0], "generation")) == 2);
        CHECK(strcmp(str(recs[0], "process"), "running") == 0);
        CHECK(strlen(str(recs[0], "exe")) > 0);
        CHECK(json_array_size(json_object_get(recs[0], "cmdline")) >= 1);
        CHECK(strlen(str(recs[0], "cgroup")) > 0);
        CHECK(strlen(str(recs[0], "time")) == 27);
        sfs_fingerprint_key(key2, fk);
        sfs_fingerprint(fk, canary, strlen(canary), fp);
        CHECK(strcmp(str(recs[1], "fingerprint"), fp) == 0); /* generation 5: the new key */
        CHECK(strcmp(str(recs[1], "process"), "exited") == 0); /* pid 0: not ours to see */
        CHECK(strcmp(str(recs[2], "event"), "reload_refused") == 0);
        CHECK_STR_CONTAINS(str(recs[2], "error"), "wrong key");
    }
    for (i = 0; i < n; i++)
        json_decref(recs[i]);
    sfs_key_free(key);
    sfs_key_free(key2);
}

static void test_refuses_unsafe_files(void)
{
    char path[128], link[160];
    struct sfs_audit *a = NULL;
    struct sfs_err err;
    int fd;

    snprintf(path, sizeof path, "%s/open.log", dir);
    fd = open(path, O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0 && fchmod(fd, 0644) == 0);
    if (fd >= 0)
        close(fd);
    CHECK(sfs_audit_open(path, "/m", &a, &err) == -EPERM);
    CHECK_STR_CONTAINS(err.msg, "chmod 600");
    snprintf(link, sizeof link, "%s/link.log", dir);
    CHECK(symlink(path, link) == 0);
    CHECK(sfs_audit_open(link, "/m", &a, &err) == -ELOOP);
    CHECK_STR_CONTAINS(err.msg, "symlink");
    CHECK(sfs_audit_open("relative.log", "/m", &a, &err) == -EINVAL);
    CHECK(sfs_audit_open("/nonexistent-dir/audit.log", "/m", &a, &err) == -ENOENT);
    CHECK_STR_CONTAINS(err.msg, "/nonexistent-dir/audit.log");
    CHECK(a == NULL);
}

/* A write that fails (here: past RLIMIT_FSIZE, EFBIG, as a full disk fails with ENOSPC) is
 * counted and never waited for; writing resumes when it can. */
static void test_write_failure(void)
{
    struct sfs_audit_caller me = {getpid(), getuid(), getgid()};
    struct rlimit old, cut;
    char path[128];
    struct sfs_audit *a;
    struct sfs_err err;
    json_t *recs[8] = {0};
    struct stat st;
    size_t n, i;

    snprintf(path, sizeof path, "%s/full.log", dir);
    CHECK(sfs_audit_open(path, "/m", &a, &err) == 0);
    sfs_audit_note_open(a, &me, "A", 1, NULL, 0);
    sfs_audit_flush(a);
    CHECK(stat(path, &st) == 0 && st.st_size > 0);
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    cut = old;
    cut.rlim_cur = (rlim_t)st.st_size;
    CHECK(setrlimit(RLIMIT_FSIZE, &cut) == 0);
    for (i = 0; i < 50; i++)
        sfs_audit_note_open(a, &me, "B", 1, NULL, 0);
    sfs_audit_flush(a);
    CHECK_MSG(sfs_audit_dropped(a) == 50, "dropped %llu",
              (unsigned long long)sfs_audit_dropped(a));
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    sfs_audit_note_open(a, &me, "C", 1, NULL, 0);
    sfs_audit_flush(a);
    CHECK(sfs_audit_dropped(a) == 50);
    sfs_audit_close(a);
    n = read_records(path, recs, 8);
    CHECK(n == 2 && recs[0] && recs[1] && strcmp(str(recs[1], "name"), "C") == 0);
    for (i = 0; i < n; i++)
        json_decref(recs[i]);
}

struct captured {
    char fields[64][512];
    int n;
};

static int capture(const struct iovec *iov, int n, void *ctx)
{
    struct captured *c = ctx;
    int i;

    for (i = 0; i < n && c->n < 64; i++, c->n++)
        snprintf(c->fields[c->n], sizeof c->fields[0], "%.*s", (int)iov[i].iov_len,
                 (const char *)iov[i].iov_base);
    return 0;
}

static bool has_field(const struct captured *c, const char *want)
{
    int i;

    for (i = 0; i < c->n; i++)
        if (strcmp(c->fields[i], want) == 0)
            return true;
    return false;
}

static void test_journal_fields(void)
{
    struct sfs_audit_caller me = {getpid(), 1000, 1000};
    struct captured c = {.n = 0};
    struct sfs_audit *a;
    struct sfs_err err;
    sfs_key *key = test_key(5);
    char want[64];
    int i;

    CHECK(sfs_audit_open("journal", "/run/secrets", &a, &err) == 0);
    sfs_audit_set_sink(a, capture, &c);
    sfs_audit_set_key(a, key, 1);
    sfs_audit_note_open(a, &me, "DB_PASSWORD", 3, canary, strlen(canary));
    sfs_audit_flush(a);
    sfs_audit_close(a);
    CHECK(has_field(&c, "SECRETFS_NAME=DB_PASSWORD"));
    CHECK(has_field(&c, "SECRETFS_GENERATION=3"));
    CHECK(has_field(&c, "SECRETFS_EVENT=open"));
    CHECK(has_field(&c, "SECRETFS_UID=1000"));
    CHECK(has_field(&c, "SECRETFS_MOUNT=/run/secrets"));
    CHECK(has_field(&c, "PRIORITY=6"));
    snprintf(want, sizeof want, "SECRETFS_PID=%d", (int)getpid());
    CHECK(has_field(&c, want));
    snprintf(want, sizeof want, "OBJECT_PID=%d", (int)getpid());
    CHECK(has_field(&c, want));
    for (i = 0; i < c.n; i++) {
        CHECK_MSG(!strstr(c.fields[i], canary), "field %d holds the value", i);
        CHECK_MSG(strchr(c.fields[i], '=') && c.fields[i][0] != '_', "bad field %d", i);
    }
    CHECK(c.n > 10);
    sfs_key_free(key);
}

int main(void)
{
    char cmd[128];

    if (sfs_crypto_init() < 0)
        return 1;
    snprintf(dir, sizeof dir, "/tmp/sfs-test-audit.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    test_time_and_utf8();
    test_fingerprint();
    test_file_records();
    test_refuses_unsafe_files();
    test_write_failure();
    test_journal_fields();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return check_result();
}
