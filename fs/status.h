/* fs/status.h — what a running daemon says about itself, in two small files: the `.status`
 * view at the mount root, and the generation file outside the mount (fs/notify.h).
 *
 * The one owner of both formats: the daemon renders them here, and `secretfs reload`,
 * `secretfs run` and the Docker plugin parse them here.  Neither ever holds a value.
 *
 * .status, one key=value per line, in this order (readers ignore keys they do not know):
 *     generation=N        loaded_at=UNIX      secrets=N           platform=N
 *     pid=PID             cache=kernel|none   reloads=N           reloads_started=N
 *     last_reload=ok | error: WHY
 *     store_version=N     (the store's set version the generation came from; absent when
 *                         the store has none: a version-1 file)
 *     missing=NAME,...    (--only names the generation lacks; absent when none)
 *     notify=PATH         (the generation file; absent when there is none)
 *     audit=PATH|journal  audit_dropped=N    (only with audit=)
 *     backend=file|etcd   and the backend's own lines (etcd: revision=, connection=, ...)
 *
 * A mount made with -o status=container (the Docker plugin's volumes) is read inside
 * containers, where the daemon's pid and host paths mean nothing: its .status has no pid= and
 * no notify= line, says audit=on instead of the log's path, and has `view=container` after
 * platform=.  The host finds that daemon through its generation file
 * (sfs_status_read_verified does).
 *
 * The generation file:  pid=PID  generation=N  seq=N  (seq is odd while a reload runs).
 */
#ifndef SFS_FS_STATUS_H
#define SFS_FS_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define SFS_STATUS_MAX 4096

struct sfs_status {
    uint64_t generation;
    uint64_t store_version;    /* the set version the generation came from; 0: none known */
    int64_t loaded_at;
    size_t secrets, platform;
    long pid;                  /* 0 in a container view */
    bool container_view;       /* view=container: the host-only lines are left out */
    bool cache_none;
    uint64_t reloads;          /* reload attempts finished, ok or not */
    uint64_t started;          /* reload attempts begun */
    char last_reload[SFS_ERR_MAX + 16]; /* "ok" or "error: ..." */
    char missing[512];         /* --only names the served generation lacks, comma separated */
    char notify[256];          /* generation file, "" if none */
    char audit[256];           /* audit=: "journal" or the log's path (cut to fit), or "" */
    uint64_t audit_dropped;    /* audit records that could not be written */
    char backend[1024];        /* the store's lines, verbatim ("backend=...\n..."), or "" */
};

/* Renders `st` as .status text into buf; returns the length (cut to cap - 1, NUL-ended). */
size_t sfs_status_render(const struct sfs_status *st, char *buf, size_t cap);

/* Parses .status text (`len` bytes; need not be NUL-terminated).  Returns 0, or -EBADMSG
 * when it has neither a positive pid= line nor view=container (not a secretfs .status).
 * Unknown keys are kept in `backend` when they follow a backend= line, else ignored. */
int sfs_status_parse(const char *text, size_t len, struct sfs_status *out)
    __attribute__((warn_unused_result));

/* Reads and parses MOUNTPOINT/.status (opened O_NONBLOCK|O_NOFOLLOW; at most
 * SFS_STATUS_MAX bytes).  Returns 0, -errno of open/read, or -EBADMSG as above. */
int sfs_status_read(const char *mountpoint, struct sfs_status *out)
    __attribute__((warn_unused_result));

/* Like sfs_status_read, and first checks that `mountpoint` is the root of a live
 * fuse.secretfs mount (/proc/self/mountinfo) and then that the pid its .status names runs as
 * the user who made that mount and, where the caller may look, holds /dev/fuse open: a
 * .status in a directory someone else controls never makes the caller signal an arbitrary
 * process.  For a container view, the pid and notify path come from the mount's generation
 * file (fs/notify.h), which must belong to the mount's user.  Returns 0, or -errno with err
 * saying what is wrong and what to do. */
int sfs_status_read_verified(const char *mountpoint, struct sfs_status *out,
                             struct sfs_err *err) __attribute__((warn_unused_result));

/* One line of /proc/self/mountinfo. */
struct sfs_mountinfo {
    char fstype[128];          /* "fuse.secretfs", "tmpfs", ... */
    long user_id;              /* FUSE's user_id= option (the mounter), -1 if none */
    unsigned dev_major, dev_minor;
};

/* Finds what is mounted exactly at `real` (a realpath; the topmost mount there).  Returns
 * true with *out filled, false when nothing is. */
bool sfs_mountinfo_find(const char *real, struct sfs_mountinfo *out);

/* The value of `key` among the backend lines of `st` (e.g. "revision"), copied into out;
 * returns false when absent. */
bool sfs_status_backend_field(const struct sfs_status *st, const char *key, char *out,
                              size_t cap);

struct sfs_genfile {
    long pid;
    uint64_t generation;
    uint64_t seq;
};

/* Renders the generation file; returns the length (cut to cap - 1). */
size_t sfs_genfile_render(const struct sfs_genfile *g, char *buf, size_t cap);

/* Parses a generation file.  Returns 0, or -EBADMSG without pid= and seq= lines. */
int sfs_genfile_parse(const char *text, size_t len, struct sfs_genfile *out)
    __attribute__((warn_unused_result));

/* Reads and parses the generation file at `path`.  Returns 0, -errno or -EBADMSG. */
int sfs_genfile_read(const char *path, struct sfs_genfile *out)
    __attribute__((warn_unused_result));

#endif
