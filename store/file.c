/* store/file.c — the file backend: one sealed image per store (store/format.c), replaced
 * atomically under an flock writer lock, watched with inotify. */
#include "store/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fileio.h"
#include "util/log.h"

#define MAX_FILE ((size_t)(64 << 20) + 68 + 16 + 8)

/* Reads the whole file at `path` (a regular file, at most MAX_FILE bytes) into a malloc'd
 * buffer (*out, *len; caller frees).  Returns 0 or -errno with err naming the file. */
static int read_image(const char *path, unsigned char **out, size_t *len,
                      struct sfs_err *err)
{
    unsigned char *buf = NULL;
    size_t got = 0, cap;
    struct stat st;
    int fd, rc = 0;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        if (rc == -ENOENT)
            return sfs_err_set(err, rc, "%s: no such store", path);
        return sfs_err_set(err, rc, "%s: cannot open store: %s", path, strerror(-rc));
    }
    if (fstat(fd, &st) < 0) {
        rc = sfs_err_set(err, -errno, "%s: cannot stat store: %s", path, strerror(errno));
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = sfs_err_set(err, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL,
                         "%s: is %s, not a store; check the store path", path,
                         S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
        goto out_close;
    }
    if ((uint64_t)st.st_size > MAX_FILE) {
        rc = sfs_err_set(err, -EFBIG, "%s: is %lld bytes, more than a store may be (%zu MiB of "
                         "secrets); check the store path", path, (long long)st.st_size,
                         (size_t)64);
        goto out_close;
    }
    /* one spare byte, so a file that grew since fstat shows up as trailing data */
    cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (!buf) {
        rc = sfs_err_set(err, -ENOMEM, "%s: out of memory reading the store", path);
        goto out_close;
    }
    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = sfs_err_set(err, -errno, "%s: cannot read store: %s", path, strerror(errno));
            free(buf);
            goto out_close;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    *out = buf;
    *len = got;
out_close:
    close(fd);
    return rc;
}

int sfs_store_read_file_versioned(const char *path, const sfs_key *ring, sfs_set **out,
                                  uint64_t *version, struct sfs_err *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    rc = read_image(path, &buf, &len, err);
    if (rc < 0)
        return rc;
    rc = sfs_store_decode_versioned(buf, len, ring, out, version, err);
    if (rc < 0)
        sfs_err_prefix(err, "%s", path);
    free(buf);
    return rc;
}

int sfs_store_read_file(const char *path, const sfs_key *key, sfs_set **out,
                        struct sfs_err *err)
{
    return sfs_store_read_file_versioned(path, key, out, NULL, err);
}

/* StrictModes for the directory that holds the store file `target` (a resolved path): it
 * must be owned by the user running secretfs or root and writable by no one else, since
 * whoever may write it can swap in another store, roll it back, or own the lock file.  A
 * directory that does not exist yet passes (an update creates it 0700).  Returns 0 or
 * -EPERM/-errno with err saying what to fix. */
static int check_store_dir(const char *target, struct sfs_err *err)
{
    char *copy = strdup(target);
    const char *dir;
    struct stat st;
    int rc = 0;

    if (!copy)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    dir = dirname(copy);
    if (stat(dir, &st) < 0) {
        if (errno != ENOENT)
            rc = sfs_err_set(err, -errno, "%s: the store's directory %s: %s", target, dir,
                             strerror(errno));
    } else if (st.st_uid != geteuid() && st.st_uid != 0) {
        rc = sfs_err_set(err, -EPERM, "%s: the store's directory %s is owned by uid %u, not "
                         "by the user running secretfs (uid %u) or root, who could replace "
                         "the store; chown %u %s or keep the store elsewhere", target, dir,
                         (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)geteuid(), dir);
    } else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        rc = sfs_err_set(err, -EPERM, "%s: the store's directory %s is mode %04o, writable by "
                         "%s, who could replace the store; chmod go-w %s", target, dir,
                         (unsigned)(st.st_mode & 07777),
                         (st.st_mode & S_IWGRP) && (st.st_mode & S_IWOTH) ? "group and others"
                         : (st.st_mode & S_IWGRP) ? "its group" : "others", dir);
    }
    free(copy);
    return rc;
}

/* Checks the directory of the store `link_path` resolves to (see check_store_dir). */
static int check_store_location(const char *link_path, struct sfs_err *err)
{
    char *target = sfs_store_target(link_path);
    int rc;

    if (!target)
        return errno == ENOENT ? 0 : sfs_err_set(err, -errno, "%s: cannot resolve the "
                                                 "symlink: %s", link_path, strerror(errno));
    rc = check_store_dir(target, err);
    free(target);
    return rc;
}

/* Gives the new store file `fd` the owner, group and mode of the store it replaces (`old`),
 * so a rewrite by root leaves a service's store readable by the service.  Returns 0 or
 * -errno with err set. */
static int keep_owner_and_mode(int fd, const struct stat *old, const char *path,
                               struct sfs_err *err)
{
    if (fchown(fd, old->st_uid, old->st_gid) < 0)
        return sfs_err_set(err, -errno, "%s: cannot give the new store the owner of the old "
                           "one (uid %u, gid %u): %s; run as root or as the store's owner",
                           path, (unsigned)old->st_uid, (unsigned)old->st_gid,
                           strerror(errno));
    if (fchmod(fd, old->st_mode & 0777) < 0)
        return sfs_err_set(err, -errno, "%s: cannot give the new store the old one's mode "
                           "%04o: %s", path, (unsigned)(old->st_mode & 0777), strerror(errno));
    return 0;
}

/* What to do about a failed write to the store's directory: "; advice", or "". */
static const char *write_advice(int rc)
{
    switch (-rc) {
    case ENOSPC:
    case EDQUOT:
        return "; free space on the store's filesystem and retry";
    case EFBIG:
        return "; raise the file size limit (ulimit -f) and retry";
    case EROFS:
        return "; the store's filesystem is read-only: remount it read-write or choose "
               "another --store";
    case EACCES:
    case EPERM:
        return "; run as a user who may write the store's directory (or fix its "
               "permissions)";
    case EIO:
        return "; check the disk (dmesg) and retry";
    default:
        return "";
    }
}

/* Ends the message of a failure that left the store as it was: what to do, then that. */
static int say_unchanged(struct sfs_err *err, int rc, bool advise)
{
    size_t n;

    if (!err)
        return rc;
    n = strlen(err->msg);
    snprintf(err->msg + n, sizeof err->msg - n, "%s; the store is unchanged",
             advise ? write_advice(rc) : "");
    return rc;
}

int sfs_store_write_file(const char *link_path, const sfs_key *key, const sfs_set *set,
                         struct sfs_err *err)
{
    return sfs_store_write_file_versioned(link_path, key, set, 0, err);
}

int sfs_store_write_file_versioned(const char *link_path, const sfs_key *key,
                                   const sfs_set *set, uint64_t version, struct sfs_err *err)
{
    static const char suffix[] = ".tmp.XXXXXX";
    unsigned char *image = NULL;
    size_t image_len = 0;
    char *tmp = NULL, *path;
    struct stat old;
    int fd = -1, rc;

    path = sfs_store_target(link_path);
    if (!path)
        return sfs_err_set(err, -errno, "%s: cannot resolve the symlink: %s", link_path,
                           strerror(errno));
    rc = sfs_store_encode_versioned(set, key, version, &image, &image_len, err);
    if (rc < 0) {
        sfs_err_prefix(err, "%s", path);
        say_unchanged(err, rc, false);
        goto out_free;
    }
    tmp = malloc(strlen(path) + sizeof suffix);
    if (!tmp) {
        rc = say_unchanged(err, sfs_err_set(err, -ENOMEM, "%s: out of memory", path), false);
        goto out_free;
    }
    strcpy(tmp, path);
    strcat(tmp, suffix);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        sfs_err_set(err, rc, "%s: cannot create a temporary file next to the store: %s", path,
                    strerror(-rc));
        say_unchanged(err, rc, true);
        goto out_free;
    }
    rc = sfs_write_private(fd, image, image_len, tmp, err);
    if (rc == 0 && stat(path, &old) == 0 && S_ISREG(old.st_mode))
        rc = keep_owner_and_mode(fd, &old, path, err);
    if (rc < 0)
        goto out_unlink;
    rc = close(fd) < 0 ? -errno : 0;
    fd = -1;
    if (rc < 0) {
        sfs_err_set(err, rc, "%s: cannot close: %s", tmp, strerror(-rc));
        goto out_unlink;
    }
    if (rename(tmp, path) < 0) {
        rc = -errno;
        sfs_err_set(err, rc, "%s: cannot replace the store: %s", path, strerror(-rc));
        goto out_unlink;
    }
    rc = sfs_fsync_parent_dir(path);
    if (rc < 0)
        sfs_err_set(err, rc, "%s: the store was replaced (it holds the new secrets), but "
                    "fsync of its directory failed: %s; a crash may bring back the previous "
                    "store: check the disk (dmesg) and write the change again", path,
                    strerror(-rc));
    goto out_free;

out_unlink:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    say_unchanged(err, rc, true);
out_free:
    free(tmp);
    free(image);
    free(path);
    return rc;
}

/* Waits for the exclusive flock on `lfd`, at most `timeout_ms`, saying once after a second
 * that it waits.  Returns 0, -ETIMEDOUT, or -errno. */
static int lock_wait(int lfd, const char *lock_path, unsigned timeout_ms)
{
    struct timespec nap = {0, 50 * 1000 * 1000};
    unsigned waited = 0;
    bool said = false;

    while (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return -errno;
        if (waited >= timeout_ms)
            return -ETIMEDOUT;
        if (waited >= 1000 && !said) {
            sfs_warn("pid %ld is waiting for %s: another process holds the store's lock "
                     "(find it with 'fuser %s'); giving up after %.1f s (--lock-timeout)",
                     (long)getpid(), lock_path, lock_path, timeout_ms / 1000.0);
            said = true;
        }
        nanosleep(&nap, NULL);
        waited += 50;
    }
    return 0;
}

/* Takes the exclusive writer lock for `link_path` (flock on "TARGET.lock", created 0600,
 * never through a symlink).  Returns 0 with *fd set, or -errno with *fd = -1 and err set. */
static int store_lock(const char *link_path, unsigned timeout_ms, int *fd, struct sfs_err *err)
{
    static const char suffix[] = ".lock";
    char *lock_path = NULL, *path;
    int lfd, rc = 0;

    *fd = -1;
    path = sfs_store_target(link_path);
    if (!path)
        return sfs_err_set(err, -errno, "%s: cannot resolve the symlink: %s", link_path,
                           strerror(errno));
    lock_path = malloc(strlen(path) + sizeof suffix);
    if (!lock_path) {
        free(path);
        return sfs_err_set(err, -ENOMEM, "%s: out of memory", link_path);
    }
    strcpy(lock_path, path);
    strcat(lock_path, suffix);
    lfd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
    if (lfd < 0) {
        rc = -errno;
        sfs_err_set(err, rc, "%s: cannot open lock file: %s%s", lock_path, strerror(-rc),
                    write_advice(rc));
        goto out_free;
    }
    rc = lock_wait(lfd, lock_path, timeout_ms);
    if (rc < 0) {
        if (rc == -ETIMEDOUT)
            sfs_err_set(err, rc, "%s: another process has held the store's lock for %.1f s; "
                        "find it with 'fuser %s' or retry with a longer --lock-timeout (or "
                        "[store] lock_timeout)",
                        lock_path, timeout_ms / 1000.0, lock_path);
        else
            sfs_err_set(err, rc, "%s: cannot lock: %s", lock_path, strerror(-rc));
        close(lfd);
        goto out_free;
    }
    *fd = lfd;

out_free:
    free(lock_path);
    free(path);
    return rc;
}

/* ---- the backend ---- */

struct file_store {
    int ifd;          /* inotify on the store's directory, or -1 */
    char *base;       /* the store's file name inside it */
    bool pending;     /* a change was seen; waiting for the writer to go quiet */
    struct timespec last_hit;
};

#define WATCH_DEBOUNCE_MS 200
#define DEFAULT_LOCK_TIMEOUT_MS 30000

static int file_open(sfs_store *s, const char *rest, struct sfs_err *err)
{
    struct file_store *f = calloc(1, sizeof *f);

    (void)rest;
    if (!f)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    f->ifd = -1;
    s->priv = f;
    return 0;
}

static void file_close(sfs_store *s)
{
    struct file_store *f = s->priv;

    if (f->ifd >= 0)
        close(f->ifd);
    free(f->base);
    free(f);
}

static int file_load_meta(sfs_store *s, const sfs_key *ring, unsigned flags, sfs_set **out,
                          struct sfs_store_meta *meta, struct sfs_err *err)
{
    int rc = check_store_location(s->location, err);

    (void)flags;
    meta->revision = 0;
    meta->has_version = true;   /* a version-1 store is version 0: older than any write */
    *out = NULL;
    if (rc < 0)
        return rc;
    rc = sfs_store_read_file_versioned(s->location, ring, out, &meta->version, err);
    if (rc == -ENOENT)
        sfs_err_set(err, rc, "%s: no store there; create it with 'secretfs update-secrets'",
                    s->location);
    return rc;
}

static int file_load(sfs_store *s, const sfs_key *key, unsigned flags, sfs_set **out,
                     uint64_t *revision, struct sfs_err *err)
{
    struct sfs_store_meta meta = {0};
    int rc = file_load_meta(s, key, flags, out, &meta, err);

    *revision = meta.revision;
    return rc;
}

static int file_key_ids(sfs_store *s, unsigned char (*ids)[SFS_KEY_ID_BYTES], size_t cap,
                        size_t *n, struct sfs_err *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = read_image(s->location, &buf, &len, err);

    *n = 0;
    if (rc < 0)
        return rc;
    if (cap == 0)
        rc = -ENOSPC;
    else
        rc = sfs_store_image_key_id(buf, len, ids[0], err);
    if (rc == 0)
        *n = 1;
    else if (rc != -ENOSPC)
        sfs_err_prefix(err, "%s", s->location);
    free(buf);
    return rc;
}

/* A write's set version: above the one it replaces, and at least the wall clock in
 * microseconds, so a store built aside later (and renamed into place) is still newer. */
static uint64_t next_version(uint64_t prev)
{
    struct timespec now;
    uint64_t us = 0;

    if (clock_gettime(CLOCK_REALTIME, &now) == 0 && now.tv_sec > 0)
        us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
    return us > prev ? us : prev + 1;
}

static int file_update(sfs_store *s, const sfs_key *key, sfs_store_edit_fn edit, void *ctx,
                       struct sfs_err *err)
{
    unsigned timeout = s->opts.lock_timeout_ms ? s->opts.lock_timeout_ms
                                               : DEFAULT_LOCK_TIMEOUT_MS;
    sfs_set *set = NULL;
    uint64_t version = 0;
    int lock_fd = -1, rc;

    rc = check_store_location(s->location, err);
    if (rc == 0)
        rc = sfs_mkdir_parents(s->location, err);
    if (rc == 0)
        rc = store_lock(s->location, timeout, &lock_fd, err);
    if (rc < 0)
        return rc;
    rc = sfs_store_read_file_versioned(s->location, key, &set, &version, err);
    if (rc == -ENOENT) {
        set = sfs_set_new(0);
        rc = set ? 0 : sfs_err_set(err, -ENOMEM, "out of memory");
    }
    if (rc < 0)
        goto out;
    rc = edit(set, ctx, err);
    if (rc == 0)
        rc = sfs_store_write_file_versioned(s->location, key, set, next_version(version), err);
out:
    sfs_set_free(set);
    close(lock_fd);
    return rc;
}

static int file_watch(sfs_store *s, struct sfs_err *err)
{
    struct file_store *f = s->priv;
    char *copy, *slash;
    const char *dir = ".";

    (void)err;
    if (!s->opts.watch || f->ifd >= 0)
        return 0;
    copy = strdup(s->location);
    if (!copy)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    slash = strrchr(copy, '/');
    if (slash) {
        *slash = '\0';
        dir = slash == copy ? "/" : copy;
    }
    f->base = strdup(slash ? slash + 1 : copy);
    f->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (f->ifd >= 0 &&
        inotify_add_watch(f->ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
        sfs_warn("cannot watch %s for store changes: %s", dir, strerror(errno));
        close(f->ifd);
        f->ifd = -1;
    }
    free(copy);
    return 0;
}

static int file_watch_fd(const sfs_store *s)
{
    const struct file_store *f = s->priv;

    return f->ifd;
}

/* True if the pending inotify batch names the store's file. */
static bool drain_inotify(int fd, const char *base)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool hit = false;
    ssize_t n;

    while ((n = read(fd, buf, sizeof buf)) > 0) {
        char *p = buf;
        while (p < buf + n) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->len && strcmp(ev->name, base) == 0)
                hit = true;
            p += sizeof *ev + ev->len;
        }
    }
    return hit;
}

static long ms_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* A change is due once the store's name has been quiet for the debounce interval. */
static bool file_watch_due(sfs_store *s, int *timeout_ms)
{
    struct file_store *f = s->priv;
    long quiet;

    if (f->ifd >= 0 && drain_inotify(f->ifd, f->base)) {
        f->pending = true;
        clock_gettime(CLOCK_MONOTONIC, &f->last_hit);
    }
    if (!f->pending) {
        *timeout_ms = -1;
        return false;
    }
    quiet = ms_since(&f->last_hit);
    if (quiet < WATCH_DEBOUNCE_MS) {
        *timeout_ms = (int)(WATCH_DEBOUNCE_MS - quiet);
        return false;
    }
    f->pending = false;
    return true;
}

const struct sfs_store_backend sfs_file_backend = {
    .kind = "file",
    .scheme = NULL,
    .open = file_open,
    .close = file_close,
    .load = file_load,
    .update = file_update,
    .load_meta = file_load_meta,
    .key_ids = file_key_ids,
    .watch = file_watch,
    .watch_fd = file_watch_fd,
    .watch_due = file_watch_due,
    .status = NULL,
};
