/* fs/serve.h — the daemon's shared state and the FUSE low-level operations.  Internal to fs/.
 *
 * Locks: `lock` guards `current` and `status`; it is held only to copy a pointer or a few
 * fields, never across a reply or a kernel notification.
 */
#ifndef SFS_FS_SERVE_H
#define SFS_FS_SERVE_H

#include <pthread.h>
#include <stdbool.h>

#include <fuse_lowlevel.h>

#include "fs/daemon.h"
#include "fs/snapshot.h"

struct reload_status {
    uint64_t generation;
    int64_t loaded_at;
    int64_t changed_at;   /* mtime of .status: the last reload attempt */
    size_t secrets;
    size_t platform;
    uint64_t reloads;      /* reload attempts finished since the mount, ok or not */
    uint64_t started;      /* reload attempts begun: `secretfs reload` waits for the first
                            * one that began after it wrote the store to finish */
    char last_reload[SFS_ERR_MAX + 16]; /* "ok" or "error: ..." (never a value) */
    char missing[512];     /* --only names the served generation lacks, comma separated */
};

struct daemon {
    const struct sfs_mount_opts *opts;
    struct fuse_session *se;
    pthread_mutex_t lock;
    struct snapshot *current;
    struct reload_status status;
    bool no_open;          /* kernel answers opens itself (cache=kernel and capable) */
    bool no_opendir;
    double timeout;        /* entry/attr timeout in seconds */
};

extern const struct fuse_lowlevel_ops sfs_fuse_ops;

/* Takes a request-scoped reference to the current snapshot. */
struct snapshot *sfs_snap_acquire(struct daemon *d);
/* Drops it. */
void sfs_snap_release(struct snapshot *s);

/* Renders .status from `st` into buf; returns the length written (cut to cap - 1). */
size_t sfs_status_render(const struct reload_status *st, const struct sfs_mount_opts *o,
                         char *buf, size_t cap);

#endif
