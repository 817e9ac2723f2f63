/* fs/serve.h — the daemon's shared state and the FUSE low-level operations.  Internal to fs/.
 *
 * Locks: `lock` guards `current`, `status` and `changed_at`; it is held only to copy a
 * pointer or a few fields, never across a reply or a kernel notification.
 */
#ifndef SFS_FS_SERVE_H
#define SFS_FS_SERVE_H

#include <pthread.h>
#include <stdbool.h>

#include <fuse_lowlevel.h>

#include "fs/audit.h"
#include "fs/daemon.h"
#include "fs/snapshot.h"
#include "fs/status.h"
#include "store/store.h"

struct daemon {
    const struct sfs_mount_opts *opts;
    struct fuse_session *se;
    sfs_store *store;      /* its status lines appear in .status (thread-safe) */
    struct sfs_audit *audit; /* audit=: every open is recorded (thread-safe), or NULL */
    pthread_mutex_t lock;
    struct snapshot *current;
    struct inode_table *inodes; /* counts the kernel's lookups (its own lock) */
    struct sfs_status status; /* pid, cache, notify and backend are filled in when shown */
    int64_t changed_at;    /* mtime of .status: the last reload attempt */
    bool no_open;          /* kernel answers opens itself (cache=kernel and capable) */
    bool no_opendir;
    double timeout;        /* entry/attr timeout in seconds */
};

extern const struct fuse_lowlevel_ops sfs_fuse_ops;

/* Takes a request-scoped reference to the current snapshot (sfs_snap_release drops it). */
struct snapshot *sfs_snap_acquire(struct daemon *d);

/* Renders .status as a request would see it now; returns the length.  *mtime (if not
 * NULL) is the time of the last reload attempt. */
size_t sfs_status_text(struct daemon *d, char *buf, size_t cap, int64_t *mtime);

#endif
