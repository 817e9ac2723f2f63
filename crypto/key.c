#include "crypto/key.h"
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define KEY_PREFIX "secretfs-key-v1:"
#define KEY_PREFIX_LEN (sizeof KEY_PREFIX - 1)
#define KEY_B64_LEN 44
#define KEY_LINE_LEN (KEY_PREFIX_LEN + KEY_B64_LEN + 1)

struct sfs_key {
    unsigned char bytes[SFS_KEY_BYTES];
};

static sfs_key *key_alloc(void)
{
    sfs_key *key = sodium_malloc(sizeof *key);

    if (key)
        sodium_memzero(key, sizeof *key);
    return key;
}

static void key_seal(sfs_key *key)
{
    (void)sodium_mprotect_readonly(key);
}

sfs_key *sfs_key_from_bytes(const unsigned char bytes[SFS_KEY_BYTES])
{
    sfs_key *key = key_alloc();

    if (!key)
        return NULL;
    memcpy(key->bytes, bytes, SFS_KEY_BYTES);
    key_seal(key);
    return key;
}

void sfs_key_free(sfs_key *key)
{
    if (key)
        sodium_free(key);
}

const unsigned char *sfs_key_bytes(const sfs_key *key)
{
    return key->bytes;
}

/* fsyncs the directory holding `path`, so a new directory entry survives a crash.
 * Filesystems that cannot fsync a directory (EINVAL) count as success. */

int sfs_key_generate(const char *path, struct sfs_err *err)
{
    unsigned char raw[SFS_KEY_BYTES];
    char line[KEY_LINE_LEN + 1];
    int fd, rc;

    randombytes_buf(raw, sizeof raw);
    memcpy(line, KEY_PREFIX, KEY_PREFIX_LEN);
    sodium_bin2base64(line + KEY_PREFIX_LEN, KEY_B64_LEN + 1, raw, sizeof raw,
                      sodium_base64_VARIANT_ORIGINAL);
    line[KEY_LINE_LEN - 1] = '\n';
    line[KEY_LINE_LEN] = '\0';

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        rc = -errno;
        if (rc == -EEXIST)
            sfs_err_set(err, rc, "%s: already exists; refusing to overwrite a key file "
                        "(move it away first if you really mean to replace it)", path);
        else
            sfs_err_set(err, rc, "%s: cannot create key file: %s", path, strerror(-rc));
        goto out_wipe;
    }
    rc = sfs_write_private(fd, line, KEY_LINE_LEN, path, err);
    if (rc < 0)
        goto out_unlink;
    if (close(fd) < 0) {
        fd = -1;
        rc = -errno;
        sfs_err_set(err, rc, "%s: cannot close key file: %s", path, strerror(-rc));
        goto out_unlink;
    }
    fd = -1;
    rc = sfs_fsync_parent_dir(path);
    if (rc < 0) {
        sfs_err_set(err, rc, "%s: cannot fsync the directory holding the key file: %s",
                    path, strerror(-rc));
        goto out_unlink;
    }
    goto out_wipe;

out_unlink:
    if (fd >= 0)
        close(fd);
    unlink(path);
out_wipe:
    sodium_memzero(raw, sizeof raw);
    sodium_memzero(line, sizeof line);
    return rc;
}

/* "group", "others" or "group and others", for the classes whose bits in `mode` match
 * `group_bit`/`other_bit`; NULL when neither. */
static const char *who(mode_t mode, mode_t group_bit, mode_t other_bit)
{
    bool g = mode & group_bit, o = mode & other_bit;

    if (g && o)
        return "group and others";
    if (g)
        return "group";
    if (o)
        return "others";
    return NULL;
}

static int mode_error(const char *path, mode_t mode, struct sfs_err *err)
{
    const char *r = who(mode, S_IRGRP, S_IROTH);
    const char *w = who(mode, S_IWGRP, S_IWOTH);
    const char *x = who(mode, S_IXGRP, S_IXOTH);
    char what[96];

    if (r && w && strcmp(r, w) == 0)
        snprintf(what, sizeof what, "is readable and writable by %s", r);
    else if (r && w)
        snprintf(what, sizeof what, "is readable by %s and writable by %s", r, w);
    else if (r)
        snprintf(what, sizeof what, "is readable by %s", r);
    else if (w)
        snprintf(what, sizeof what, "is writable by %s", w);
    else
        snprintf(what, sizeof what, "gives %s access", x ? x : "others");
    return sfs_err_set(err, -EPERM, "%s: mode %04o %s; chmod 600 it", path,
                       (unsigned)(mode & 07777), what);
}

static int open_checked(const char *path, struct sfs_err *err)
{
    struct stat st;
    int fd, rc;

    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        if (rc == -ELOOP)
            return sfs_err_set(err, rc, "%s: is a symlink; point --key-file at the real file",
                               path);
        if (rc == -ENOENT)
            return sfs_err_set(err, rc, "%s: no such key file; check --key-file "
                               "(or create a key with `secretfs keygen`)", path);
        return sfs_err_set(err, rc, "%s: cannot open key file: %s", path, strerror(-rc));
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        sfs_err_set(err, rc, "%s: cannot stat key file: %s", path, strerror(-rc));
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        sfs_err_set(err, rc, "%s: is %s, not a key file; point --key-file at the key file",
                    path, S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
        goto out_close;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        rc = mode_error(path, st.st_mode, err);
        goto out_close;
    }
    /* as OpenSSH's StrictModes: a key someone else owns is someone else's to swap */
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        rc = sfs_err_set(err, -EPERM, "%s: owned by uid %u, not by the user running secretfs "
                         "(uid %u) or root; chown %u %s (or use a key of your own)", path,
                         (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)geteuid(), path);
        goto out_close;
    }
    if (st.st_size != (off_t)KEY_LINE_LEN) {
        rc = sfs_err_set(err, -EINVAL, "%s: is %lld bytes, but a secretfs key file is exactly "
                         "%zu (\"" KEY_PREFIX "\", %d base64 characters, a newline); "
                         "restore the key file from your backup",
                         path, (long long)st.st_size, KEY_LINE_LEN, KEY_B64_LEN);
        goto out_close;
    }
    return fd;

out_close:
    close(fd);
    return rc;
}

/* Reads up to `cap` bytes; returns the count or -errno. */
static ssize_t read_up_to(int fd, char *buf, size_t cap)
{
    size_t got = 0;

    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

sfs_key *sfs_key_load(const char *path, struct sfs_err *err)
{
    char line[KEY_LINE_LEN + 1];
    unsigned char raw[SFS_KEY_BYTES + 8];
    const char *b64_end = NULL;
    size_t raw_len = 0;
    sfs_key *key = NULL;
    ssize_t n;
    int fd;

    fd = open_checked(path, err);
    if (fd < 0)
        return NULL;
    n = read_up_to(fd, line, sizeof line);
    if (n < 0) {
        sfs_err_set(err, (int)n, "%s: cannot read key file: %s", path, strerror((int)-n));
        goto out_wipe;
    }
    if ((size_t)n != KEY_LINE_LEN) {
        sfs_err_set(err, -EINVAL, "%s: changed size while being read; try again", path);
        goto out_wipe;
    }
    if (memcmp(line, KEY_PREFIX, KEY_PREFIX_LEN) != 0) {
        sfs_err_set(err, -EINVAL, "%s: does not start with \"" KEY_PREFIX "\", so it is not a "
                    "secretfs key file; check --key-file or restore the key from your backup",
                    path);
        goto out_wipe;
    }
    if (line[KEY_LINE_LEN - 1] != '\n') {
        sfs_err_set(err, -EINVAL, "%s: the %d base64 characters are not followed by a newline; "
                    "restore the key file from your backup", path, KEY_B64_LEN);
        goto out_wipe;
    }
    if (sodium_base642bin(raw, sizeof raw, line + KEY_PREFIX_LEN, KEY_B64_LEN, NULL, &raw_len,
                          &b64_end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        b64_end != line + KEY_PREFIX_LEN + KEY_B64_LEN) {
        sfs_err_set(err, -EINVAL, "%s: the key is not valid base64 (A-Z a-z 0-9 + / with = "
                    "padding); restore the key file from your backup", path);
        goto out_wipe;
    }
    if (raw_len != SFS_KEY_BYTES) {
        sfs_err_set(err, -EINVAL, "%s: the key decodes to %zu bytes, not %d; restore the key "
                    "file from your backup", path, raw_len, SFS_KEY_BYTES);
        goto out_wipe;
    }
    key = sfs_key_from_bytes(raw);
    if (!key)
        sfs_err_set(err, -ENOMEM, "%s: out of secure memory for the key", path);

out_wipe:
    sodium_memzero(line, sizeof line);
    sodium_memzero(raw, sizeof raw);
    close(fd);
    return key;
}
