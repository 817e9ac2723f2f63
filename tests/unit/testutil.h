/* tests/unit/testutil.h — the file helpers the unit tests share: a private scratch
 * directory, paths in it, writing a file whole, and removing a tree.  Everything is static:
 * each test executable has its own copy. */
#ifndef SFS_TEST_UTIL_H
#define SFS_TEST_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

/* The test's scratch directory, made by test_dir_make. */
static char test_dir[64];

/* Makes a fresh /tmp/sfs-test-TAG.XXXXXX as test_dir; false (and says why) on failure. */
static inline bool test_dir_make(const char *tag)
{
    snprintf(test_dir, sizeof test_dir, "/tmp/sfs-test-%s.XXXXXX", tag);
    if (!mkdtemp(test_dir)) {
        perror("mkdtemp");
        return false;
    }
    return true;
}

/* "TEST_DIR/name" in one of four rotating buffers: valid until the fourth call after. */
static inline const char *path_in(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, sizeof buf[0], "%s/%s", test_dir, name);
    return p;
}

/* Writes buf[0..len) as the whole of `path` (created or truncated) and gives it `mode`.
 * A failure is a failed CHECK naming the path; returns whether it all worked. */
static inline bool write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const char *c = buf;
    bool ok = fd >= 0;

    while (ok && len) {
        ssize_t w = write(fd, c, len);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        if (ok) {
            c += w;
            len -= (size_t)w;
        }
    }
    if (ok && fchmod(fd, mode) != 0)
        ok = false;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    CHECK_MSG(ok, "writing %s: %s", path, strerror(errno));
    return ok;
}

/* Removes `d` and everything under it, making directories writable first (tests take
 * permissions away to provoke errors). */
static inline void rm_rf(const char *d)
{
    DIR *dp = opendir(d);
    struct dirent *de;
    char p[4096];

    if (!dp)
        return;
    while ((de = readdir(dp))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", d, de->d_name) >= sizeof p)
            continue;
        if (de->d_type == DT_DIR) {
            chmod(p, 0700);
            rm_rf(p);
        } else {
            unlink(p);
        }
    }
    closedir(dp);
    rmdir(d);
}

#endif
