#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sfs_fsync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int fd, rc = 0;

    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return -ENOMEM;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto out_free;
    }
    if (fsync(fd) < 0 && errno != EINVAL)
        rc = -errno;
    close(fd);
out_free:
    free(dir);
    return rc;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int sfs_write_private(int fd, const void *buf, size_t len, const char *shown,
                      struct sfs_err *err)
{
    int rc;

    if (fchmod(fd, 0600) < 0)
        return sfs_err_set(err, -errno, "%s: cannot set mode 0600: %s", shown, strerror(errno));
    rc = write_all(fd, buf, len);
    if (rc < 0)
        return sfs_err_set(err, rc, "%s: cannot write: %s", shown, strerror(-rc));
    if (fsync(fd) < 0)
        return sfs_err_set(err, -errno, "%s: cannot fsync: %s", shown, strerror(errno));
    return 0;
}

char *sfs_store_target(const char *path)
{
    struct stat st;

    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return realpath(path, NULL);
    return strdup(path);
}

int sfs_mkdir_parents(const char *path, struct sfs_err *err)
{
    char *copy = strdup(path), *dir;
    int rc = 0;

    if (!copy)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    dir = dirname(copy);
    if (access(dir, F_OK) < 0 && errno == ENOENT) {
        char *p;
        for (p = dir + 1; *p; p++) {
            if (*p != '/')
                continue;
            *p = '\0';
            if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                rc = sfs_err_set(err, -errno, "%s: cannot create directory: %s", dir,
                                 strerror(errno));
                goto out;
            }
            *p = '/';
        }
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            rc = sfs_err_set(err, -errno, "%s: cannot create directory: %s", dir,
                             strerror(errno));
    }
out:
    free(copy);
    return rc;
}
