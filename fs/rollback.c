/* fs/rollback.c — the served-version state file (fs/rollback.h). */
#include "fs/rollback.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "util/fileio.h"

#define STATE_MAGIC "secretfs-served-v1\n"

char *sfs_rollback_path(const char *state_dir, const char *location)
{
    unsigned char h[16];
    char *out;
    size_t len = strlen(state_dir) + sizeof "/served-" + 2 * sizeof h;

    sfs_hash(h, sizeof h, location, strlen(location), NULL, 0);
    out = malloc(len);
    if (!out)
        return NULL;
    len = (size_t)snprintf(out, len, "%s/served-", state_dir);
    for (size_t i = 0; i < sizeof h; i++)
        len += (size_t)sprintf(out + len, "%02x", h[i]);
    return out;
}

int sfs_rollback_read(const char *path, uint64_t *version, struct sfs_err *err)
{
    char buf[4096 + 1], *v, *end;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);

    *version = 0;
    if (fd < 0)
        return errno == ENOENT ? -ENOENT
                               : sfs_err_set(err, -errno, "%s: cannot read the served store "
                                             "version: %s", path, strerror(errno));
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return sfs_err_set(err, -errno, "%s: cannot read: %s", path, strerror(errno));
    buf[n] = '\0';
    v = strncmp(buf, STATE_MAGIC, sizeof STATE_MAGIC - 1) == 0
            ? strstr(buf, "\nversion=") : NULL;
    if (!v)
        return sfs_err_set(err, -EBADMSG, "%s: not a secretfs state file; remove it (the next "
                           "start records the store's version again)", path);
    errno = 0;
    *version = strtoull(v + 9, &end, 10);
    if (errno || end == v + 9 || *end != '\n')
        return sfs_err_set(err, -EBADMSG, "%s: malformed version line; remove the file (the "
                           "next start records the store's version again)", path);
    return 0;
}

int sfs_rollback_write(const char *path, const char *location, uint64_t version,
                       struct sfs_err *err)
{
    char buf[4096 + 64], *tmp;
    size_t plen = strlen(path);
    int fd, len, rc;

    len = snprintf(buf, sizeof buf, STATE_MAGIC "version=%" PRIu64 "\nstore=%.4000s\n", version,
                   location);
    rc = sfs_mkdir_parents(path, err);
    if (rc < 0)
        return rc;
    tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    if (!tmp)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = sfs_err_set(err, -errno, "%s: cannot create: %s", tmp, strerror(errno));
        goto out_free;
    }
    rc = sfs_write_private(fd, buf, (size_t)len, tmp, err);
    if (close(fd) < 0 && rc == 0)
        rc = sfs_err_set(err, -errno, "%s: cannot close: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) < 0)
        rc = sfs_err_set(err, -errno, "%s: cannot replace: %s", path, strerror(errno));
    if (rc < 0)
        unlink(tmp);
    else
        (void)sfs_fsync_parent_dir(path);
out_free:
    free(tmp);
    return rc;
}
