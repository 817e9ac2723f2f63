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
    CHECK(st.st_size == 61);

    fd = open(p, O_RDONLY);
    n = read(fd, content, sizeof content - 1);
    close(fd);
    CHECK(n == 61);
    content[n > 0 ? n : 0] = '\0';
    CHECK(strncmp(content, "secretfs-key-v1:", 16) == 0);
    CHECK(content[60] == '\n');
    CHECK(strchr(content + 16, '\n') == content + 60);

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
    expect_refused(path_in("prefix.key"), "does not start with \"secretfs-key-v1:\"", __LINE__);
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
    rc = check_result();
    rm_rf(test_dir);
    return rc;
}
