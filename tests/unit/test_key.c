/* tests/unit/test_key.c — key files: generate, load, and every way loading refuses. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "crypto/aead.h"
#include "testutil.h"
#include "crypto/key.h"
#include "crypto/secmem.h"

/* Expects loading `path` to fail with a message naming the file and containing `want`. */
static void expect_refused(const char *path, const char *want, int line)
{
    struct sfs_err err = {{0}};
    sfs_key *key = sfs_key_load(path, &err);

    CHECK_MSG(key == NULL, "line %d: %s loaded", line, path);
    sfs_key_free(key);
    CHECK_MSG(strstr(err.msg, path) != NULL, "line %d: \"%s\" lacks the path", line, err.msg);
    CHECK_MSG(strstr(err.msg, want) != NULL, "line %d: \"%s\" lacks \"%s\"", line, err.msg,
              want);
}

static void test_generate_load(void)
{
    struct sfs_err err = {{0}};
    char p[256];
    unsigned char first[SFS_KEY_BYTES];
    char content[128];
    struct stat st;
    sfs_key *a, *b;
    ssize_t n;
    int fd;

    snprintf(p, sizeof p, "%s/master.key", test_dir);
    umask(0);
    CHECK_MSG(sfs_key_generate(p, &err) == 0, "%s", err.msg);
    umask(022);
    CHECK(stat(p, &st) == 0);
    CHECK_MSG((st.st_mode & 07777) == 0600, "mode %04o", (unsigned)(st.st_mode & 07777));
    CHECK(S_ISREG(st.st_mode));
    CHECK(st.st_size == 65);

    fd = open(p, O_RDONLY);
    n = read(fd, content, sizeof content - 1);
    close(fd);
    CHECK(n == 65);
    content[n > 0 ? n : 0] = '\0';
    CHECK(strncmp(content, "secretfs-key-v2\nkey:", 20) == 0);
    CHECK(content[64] == '\n');
    CHECK(strchr(content + 16, '\n') == content + 64);

    a = sfs_key_load(p, &err);
    CHECK_MSG(a != NULL, "%s", err.msg);
    b = sfs_key_load(p, &err);
    CHECK(b != NULL);
    if (a && b) {
        CHECK(memcmp(sfs_key_bytes(a), sfs_key_bytes(b), SFS_KEY_BYTES) == 0);
        memcpy(first, sfs_key_bytes(a), SFS_KEY_BYTES);
    }
    sfs_key_free(a);
    sfs_key_free(b);

    /* a second key is different */
    CHECK(sfs_key_generate(path_in("second.key"), &err) == 0);
    a = sfs_key_load(path_in("second.key"), &err);
    CHECK(a != NULL);
    if (a)
        CHECK(memcmp(sfs_key_bytes(a), first, SFS_KEY_BYTES) != 0);
    sfs_key_free(a);
    sfs_key_free(NULL);
}

static void test_generate_refuses(void)
{
    struct sfs_err err = {{0}};
    char p[256], link[256];
    struct stat st;

    snprintf(p, sizeof p, "%s/exists.key", test_dir);
    snprintf(link, sizeof link, "%s/dangling.key", test_dir);
    write_file(p, "precious\n", 9, 0600);
    CHECK(sfs_key_generate(p, &err) == -EEXIST);
    CHECK_STR_CONTAINS(err.msg, p);
    CHECK_STR_CONTAINS(err.msg, "already exists");
    CHECK_STR_CONTAINS(err.msg, "refusing to overwrite");
    CHECK(stat(p, &st) == 0 && st.st_size == 9);

    /* a dangling symlink is never followed to create its target */
    CHECK(symlink(path_in("target.key"), link) == 0);
    CHECK(sfs_key_generate(link, &err) == -EEXIST);
    CHECK(access(path_in("target.key"), F_OK) != 0);

    CHECK(sfs_key_generate(path_in("no/such/dir.key"), &err) == -ENOENT);
    CHECK_STR_CONTAINS(err.msg, "no/such/dir.key");
}

static void test_from_bytes(void)
{
    unsigned char raw[SFS_KEY_BYTES];
    sfs_key *key;

    for (int i = 0; i < SFS_KEY_BYTES; i++)
        raw[i] = (unsigned char)(i * 7);
    key = sfs_key_from_bytes(raw);
    CHECK(key != NULL);
    CHECK(key && memcmp(sfs_key_bytes(key), raw, SFS_KEY_BYTES) == 0);
    sfs_key_free(key);
}

static void test_load_refuses(void)
{
    static const struct {
        mode_t mode;
        const char *phrase;
    } modes[] = {
        {0640, "mode 0640 is readable by group; chmod 600 it"},
        {0604, "mode 0604 is readable by others; chmod 600 it"},
        {0620, "mode 0620 is writable by group; chmod 600 it"},
        {0602, "mode 0602 is writable by others; chmod 600 it"},
        {0644, "mode 0644 is readable by group and others; chmod 600 it"},
        {0666, "mode 0666 is readable and writable by group and others; chmod 600 it"},
        {0642, "mode 0642 is readable by group and writable by others; chmod 600 it"},
        {0610, "mode 0610 gives group access; chmod 600 it"},
    };
    /* a valid key line, reused with damage below */
    const char good[] = "secretfs-key-v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
    struct sfs_err err = {{0}};
    char buf[128];
    sfs_key *key;

    CHECK(sizeof good - 1 == 61);
    write_file(path_in("good.key"), good, 61, 0600);
    key = sfs_key_load(path_in("good.key"), &err);
    CHECK_MSG(key != NULL, "%s", err.msg);
    if (key)
        for (int i = 0; i < SFS_KEY_BYTES; i++)
            CHECK(sfs_key_bytes(key)[i] == i);
    sfs_key_free(key);
    write_file(path_in("owner-only.key"), good, 61, 0400);
    key = sfs_key_load(path_in("owner-only.key"), &err);
    CHECK_MSG(key != NULL, "0400: %s", err.msg);
    sfs_key_free(key);

    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        const char *p = path_in("mode.key");

        write_file(p, good, 61, modes[i].mode);
        expect_refused(p, modes[i].phrase, __LINE__);
    }

    CHECK(symlink(path_in("good.key"), path_in("link.key")) == 0);
    expect_refused(path_in("link.key"), "is a symlink; point --key-file at the real file",
                   __LINE__);

    CHECK(mkdir(path_in("dir.key"), 0700) == 0);
    expect_refused(path_in("dir.key"), "is a directory, not a key file", __LINE__);

    expect_refused(path_in("missing.key"), "no such key file", __LINE__);

    write_file(path_in("short.key"), good, 60, 0600);
    expect_refused(path_in("short.key"), "is 60 bytes, but a secretfs key file is exactly 61",
                   __LINE__);
    write_file(path_in("empty.key"), "", 0, 0600);
    expect_refused(path_in("empty.key"), "is 0 bytes", __LINE__);
    snprintf(buf, sizeof buf, "%s\n", good);
    write_file(path_in("long.key"), buf, 62, 0600);
    expect_refused(path_in("long.key"), "is 62 bytes", __LINE__);
    expect_refused(path_in("long.key"), "restore the key file from your backup", __LINE__);

    memcpy(buf, good, 61);
    buf[8] = '_';
    write_file(path_in("prefix.key"), buf, 61, 0600);
    expect_refused(path_in("prefix.key"), "does not start with \"secretfs-key-v2\" (or the "
                   "older \"secretfs-key-v1:\")", __LINE__);
    memcpy(buf, "secretfs-key-v2:", 16);
    buf[8] = '-';
    write_file(path_in("v2.key"), buf, 61, 0600);
    expect_refused(path_in("v2.key"), "not a secretfs key file", __LINE__);

    memcpy(buf, good, 61);
    buf[30] = '!';
    write_file(path_in("b64.key"), buf, 61, 0600);
    expect_refused(path_in("b64.key"), "not valid base64", __LINE__);
    memcpy(buf, good, 61);
    buf[20] = '=';
    write_file(path_in("b64pad.key"), buf, 61, 0600);
    expect_refused(path_in("b64pad.key"), "not valid base64", __LINE__);
    memcpy(buf, good, 61);
    buf[59] = 'A';
    write_file(path_in("b64nopad.key"), buf, 61, 0600);
    expect_refused(path_in("b64nopad.key"), "decodes to 33 bytes, not 32", __LINE__);
    memcpy(buf, good, 61);
    buf[57] = 'A';
    buf[58] = '=';
    write_file(path_in("b64short.key"), buf, 61, 0600);
    expect_refused(path_in("b64short.key"), "decodes to 31 bytes, not 32", __LINE__);

    memcpy(buf, good, 61);
    buf[60] = ' ';
    write_file(path_in("nonl.key"), buf, 61, 0600);
    expect_refused(path_in("nonl.key"), "not followed by a newline", __LINE__);
    memcpy(buf, good, 61);
    buf[59] = '\r';
    write_file(path_in("crlf.key"), buf, 61, 0600);
    expect_refused(path_in("crlf.key"), "not valid base64", __LINE__);

    /* messages never echo the key material */
    memcpy(buf, good, 61);
    buf[30] = '!';
    write_file(path_in("b64.key"), buf, 61, 0600);
    key = sfs_key_load(path_in("b64.key"), &err);
    CHECK(key == NULL);
    CHECK(strstr(err.msg, "AAECAwQF") == NULL);
}

/* ---- rings, v2 files, passphrases ---- */

static const char *const b64_keys[] = {
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", /* bytes 0..31 */
    "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", /* 32 x 0x01 */
    "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=", /* 32 x 0x02 */
};

/* A v2 file of the first `n` keys above. */
static size_t v2_file(char *buf, size_t n)
{
    size_t len = (size_t)sprintf(buf, "secretfs-key-v2\n");

    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(buf + len, "key:%s\n", b64_keys[i]);
    return len;
}

static void test_ring(void)
{
    struct sfs_err err = {{0}};
    unsigned char id[SFS_KEY_ID_BYTES], id0[SFS_KEY_ID_BYTES];
    char buf[1024];
    size_t len = v2_file(buf, 3);
    sfs_key *ring, *grown, *promoted, *only, *back = NULL;

    write_file(path_in("ring.key"), buf, len, 0600);
    ring = sfs_key_load(path_in("ring.key"), &err);
    CHECK_MSG(ring != NULL, "%s", err.msg);
    if (!ring)
        return;
    CHECK(sfs_key_count(ring) == 3);
    CHECK(sfs_key_bytes(ring)[5] == 5);                      /* the first is the primary */
    CHECK(sfs_key_bytes(sfs_key_at(ring, 2))[0] == 2);
    CHECK(sfs_key_at(ring, 3) == NULL);
    CHECK(sfs_key_count(sfs_key_at(ring, 1)) == 1);
    sfs_key_id(ring, id0);
    for (size_t i = 0; i < 3; i++) {
        sfs_key_id(sfs_key_at(ring, i), id);
        CHECK(sfs_key_by_id(ring, id) == sfs_key_at(ring, i));
    }
    memset(id, 0xee, sizeof id);
    CHECK(sfs_key_by_id(ring, id) == NULL);
    CHECK(!sfs_key_protected(ring));

    grown = sfs_key_ring_insert(ring, 1);                    /* staged behind the primary */
    CHECK(grown && sfs_key_count(grown) == 4);
    promoted = grown ? sfs_key_ring_promote(grown) : NULL;
    CHECK(promoted && sfs_key_bytes(sfs_key_at(promoted, 1))[5] == 5);
    CHECK(promoted && memcmp(sfs_key_bytes(promoted), sfs_key_bytes(sfs_key_at(grown, 1)),
                             SFS_KEY_BYTES) == 0);
    only = promoted ? sfs_key_ring_primary_only(promoted) : NULL;
    CHECK(only && sfs_key_count(only) == 1);
    CHECK(sfs_key_ring_promote(only) == NULL);

    /* save and load back: same keys, same order, mode 0600 */
    CHECK_MSG(promoted && sfs_key_save(path_in("ring.key"), promoted, NULL, &err) == 0, "%s",
              err.msg);
    CHECK_MSG(sfs_key_load_with(path_in("ring.key"), NULL, 0, &back, &err) == 0, "%s", err.msg);
    CHECK(back && promoted && sfs_key_count(back) == 4);
    for (size_t i = 0; back && promoted && i < 4; i++)
        CHECK(memcmp(sfs_key_bytes(sfs_key_at(back, i)), sfs_key_bytes(sfs_key_at(promoted, i)),
                     SFS_KEY_BYTES) == 0);
    sfs_key_free(back);
    sfs_key_free(only);
    sfs_key_free(promoted);
    sfs_key_free(grown);
    sfs_key_free(ring);

    /* a full ring does not grow */
    len = (size_t)sprintf(buf, "secretfs-key-v2\n");
    for (int i = 0; i < SFS_KEYRING_MAX; i++) {
        char line[64], raw[SFS_KEY_BYTES];
        memset(raw, 0x40 + i, sizeof raw);
        CHECK(sfs_base64_encode(line, sizeof line, raw, sizeof raw) == 0);
        len += (size_t)sprintf(buf + len, "key:%s\n", line);
    }
    write_file(path_in("full.key"), buf, len, 0600);
    ring = sfs_key_load(path_in("full.key"), &err);
    CHECK_MSG(ring && sfs_key_count(ring) == SFS_KEYRING_MAX, "%s", err.msg);
    CHECK(ring && sfs_key_ring_insert(ring, 0) == NULL);
    sfs_key_free(ring);
}

static void test_v2_refuses(void)
{
    char good[512], buf[5000];
    size_t len = v2_file(good, 2);

    /* every truncation and every single-byte flip is refused, never a different ring */
    for (size_t cut = 0; cut < len; cut++) {
        write_file(path_in("cut.key"), good, cut, 0600);
        if (cut == 65) {
            /* at a line boundary: a ring of the first key (a store sealed under the lost
             * one is then refused by key id) */
            struct sfs_err err = {{0}};
            sfs_key *k = sfs_key_load(path_in("cut.key"), &err);
            CHECK(k && sfs_key_count(k) == 1);
            sfs_key_free(k);
            continue;
        }
        expect_refused(path_in("cut.key"), "cut.key", __LINE__);
    }
    for (size_t i = 0; i < len; i++) {
        struct sfs_err err = {{0}};
        sfs_key *k;

        memcpy(buf, good, len);
        buf[i] ^= 0x01;
        write_file(path_in("flip.key"), buf, len, 0600);
        k = sfs_key_load(path_in("flip.key"), &err);
        /* a flipped base64 digit may still decode to 32 bytes: then it is another key, which
         * the store refuses by key id; everything else is refused here */
        if (k) {
            bool in_key = (i >= 20 && i < 63) || (i >= 69 && i < 112);
            CHECK_MSG(in_key, "flip at %zu loaded", i);
        }
        sfs_key_free(k);
    }
    memcpy(buf, good, len);
    memcpy(buf + len, "\n", 1);
    write_file(path_in("blank.key"), buf, len + 1, 0600);
    expect_refused(path_in("blank.key"), ":4: expected \"key:\"", __LINE__);
    len = (size_t)sprintf(buf, "secretfs-key-v2\nkey:%s\nkey:%s\n", b64_keys[1], b64_keys[1]);
    write_file(path_in("dup.key"), buf, len, 0600);
    expect_refused(path_in("dup.key"), ":3: repeats the key on line 2", __LINE__);
    write_file(path_in("nokey.key"), "secretfs-key-v2\n", 16, 0600);
    expect_refused(path_in("nokey.key"), "holds no key", __LINE__);
    write_file(path_in("v3.key"), "secretfs-key-v3\nwhatever\n", 25, 0600);
    expect_refused(path_in("v3.key"), "format v3; this secretfs reads v1 and v2; upgrade",
                   __LINE__);
    memset(buf, 'k', 5000);
    write_file(path_in("huge.key"), buf, 5000, 0600);
    expect_refused(path_in("huge.key"), "more than a secretfs key file", __LINE__);
    if (geteuid() == 0) {
        write_file(path_in("theirs.key"), good, v2_file(good, 1), 0600);
        CHECK(chown(path_in("theirs.key"), 1, 1) == 0);
        /* as OpenSSH's StrictModes, root included: a key another user owns is refused
         * (its owner could replace it), naming the chown that fixes it */
        expect_refused(path_in("theirs.key"), "is owned by uid 1", __LINE__);
    }
}

struct asker {
    const char *pass;
    int calls;
};

static int ask(void *ctx, const char *path, bool confirm, char *buf, size_t cap, size_t *len,
               struct sfs_err *err)
{
    struct asker *a = ctx;

    (void)path;
    (void)confirm;
    (void)err;
    a->calls++;
    *len = strlen(a->pass);
    CHECK(*len <= cap);
    memcpy(buf, a->pass, *len);
    return 0;
}

static size_t file_bytes(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, cap) : -1;

    if (fd >= 0)
        close(fd);
    return n > 0 ? (size_t)n : 0;
}

static void test_passphrase(void)
{
    struct asker right = {"correct horse battery staple", 0}, wrong = {"Tr0ub4dor&3", 0};
    sfs_key_unlock *u = sfs_key_unlock_new(ask, &right), *w = sfs_key_unlock_new(ask, &wrong);
    struct sfs_err err = {{0}};
    sfs_key *a = NULL, *b = NULL, *grown = NULL;
    const char *p = path_in("pass.key");
    char content[1024], again[1024];
    size_t len;

    CHECK_MSG(sfs_key_generate_with(p, u, SFS_KDF_INTERACTIVE, &err) == 0, "%s", err.msg);
    CHECK(right.calls == 1);
    CHECK(sfs_key_file_protected(p));
    len = file_bytes(p, content, sizeof content);
    CHECK(strncmp(content, "secretfs-key-v2\nargon2id:2:67108864:", 36) == 0);
    CHECK(memmem(content, len, right.pass, strlen(right.pass)) == NULL);

    /* the same unlock object does not ask again (the daemon's reloads) */
    CHECK_MSG(sfs_key_load_with(p, u, 0, &a, &err) == 0, "%s", err.msg);
    CHECK(right.calls == 1 && a && sfs_key_protected(a) && sfs_key_count(a) == 1);

    /* a wrong passphrase: its own message, not a wrong key's */
    CHECK(sfs_key_load_with(p, w, 0, &b, &err) == -EBADMSG && b == NULL);
    CHECK_STR_CONTAINS(err.msg, p);
    CHECK_STR_CONTAINS(err.msg, "wrong passphrase");
    CHECK(strstr(err.msg, "different key") == NULL);
    /* no way to ask */
    CHECK(sfs_key_load_with(p, NULL, 0, &b, &err) == -ENOKEY);
    CHECK_STR_CONTAINS(err.msg, "--passphrase-file");
    CHECK(sfs_key_load(p, &err) == NULL);

    /* rekey keeps the protection, the salt and the cost: the cached key still opens it */
    grown = a ? sfs_key_ring_insert(a, 0) : NULL;
    CHECK_MSG(grown && sfs_key_save(p, grown, u, &err) == 0, "%s", err.msg);
    CHECK(file_bytes(p, again, sizeof again) > 0 && memcmp(again, content, 60) == 0);
    CHECK_MSG(sfs_key_load_with(p, u, 0, &b, &err) == 0, "%s", err.msg);
    CHECK(right.calls == 1 && b && sfs_key_count(b) == 2 && sfs_key_protected(b));
    CHECK(b && a && memcmp(sfs_key_bytes(sfs_key_at(b, 1)), sfs_key_bytes(a),
                           SFS_KEY_BYTES) == 0);
    sfs_key_free(b);
    b = NULL;
    /* a fresh unlock object asks once */
    sfs_key_unlock_free(u);
    right.calls = 0;
    u = sfs_key_unlock_new(ask, &right);
    CHECK(sfs_key_load_with(p, u, 0, &b, &err) == 0 && right.calls == 1);
    sfs_key_free(b);
    b = NULL;

    /* flips anywhere in the protected file are refused */
    len = file_bytes(p, content, sizeof content);
    for (size_t i = 16; i < len; i += i < len - 80 ? 11 : 23) {
        memcpy(again, content, len);
        again[i] ^= 0x04;
        write_file(path_in("pflip.key"), again, len, 0600);
        CHECK_MSG(sfs_key_load_with(path_in("pflip.key"), u, 0, &b, &err) < 0,
                  "flip at %zu loaded", i);
        sfs_key_free(b);
        b = NULL;
    }
    CHECK(sfs_key_generate_with(p, u, SFS_KDF_INTERACTIVE, &err) == -EEXIST);
    sfs_key_free(grown);
    sfs_key_free(a);
    sfs_key_unlock_free(u);
    sfs_key_unlock_free(w);
}

int main(void)
{
    int rc;

    if (sfs_crypto_init() < 0)
        return 1;
    if (!test_dir_make("key"))
        return 1;
    test_generate_load();
    test_generate_refuses();
    test_from_bytes();
    test_load_refuses();
    test_ring();
    test_v2_refuses();
    test_passphrase();
    rc = check_result();
    rm_rf(test_dir);
    return rc;
}
