/* fs/daemon.h — the secretfs daemon: mount, serve, reload, unmount.
 *
 * fs/'s public header for running a daemon (fs/status.h is the other: reading what a
 * running daemon says).  The CLI fills a struct sfs_mount_opts (it owns every
 * string in it for the daemon's lifetime) and calls sfs_daemon_run.
 */
#ifndef SFS_FS_DAEMON_H
#define SFS_FS_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "store/store.h"
#include "util/err.h"

enum sfs_cache_mode {
    SFS_CACHE_KERNEL, /* opens and reads answered from the kernel's caches */
    SFS_CACHE_NONE,   /* every open reaches the daemon; direct_io; one snapshot per open */
};

/* A [secret:NAME] owner/mode override. */
struct sfs_secret_perm {
    const char *name;
    bool has_uid, has_gid, has_mode;
    uid_t uid;
    gid_t gid;
    mode_t mode;
};

struct sfs_mount_opts {
    const char *mountpoint;
    /* > 0: a directory descriptor a supervisor opened without following symlinks (the Docker
     * plugin): the mount goes onto exactly that directory, through /proc/self/fd/N, and is
     * refused if `mountpoint` no longer names it.  0: mount by path. */
    int mountpoint_fd;
    /* .status leaves out what is only true on the host (the pid, the generation file's and
     * the audit log's paths): for mounts that containers see (-o status=container) */
    bool status_for_container;
    bool create_mountpoint;        /* mkdir it (0755) if missing: only for the default */
    const char *store;             /* a store location (store/store.h): path or etcd://... */
    struct sfs_store_options store_opts; /* incl. `watch` for the file backend */
    const char *key_file;
    bool key_is_credential;        /* key_file is a systemd credential (crypto/key.h) */
    /* asks for a protected key file's passphrase (NULL: cannot ask); the daemon keeps the
     * key it derives in its own secure memory, so it asks once, at start */
    sfs_passphrase_fn passphrase_fn;
    void *passphrase_ctx;
    /* rollback: where the highest served store version is kept (NULL: not kept across
     * restarts); whether a failure to keep it stops the start; whether an older store than
     * the recorded version is accepted (once: it becomes the recorded version) */
    const char *state_dir;
    bool state_dir_required;
    bool allow_rollback;
    bool rollback_allowed;         /* never refuse an older store, also at reload */
    const char *reserved_prefix;   /* "LIVEKIT_" */
    const char *const *platform_env; /* variable names read from the environment */
    size_t n_platform_env;
    const char *platform_file;     /* dotenv file re-read on every reload, or NULL */
    const char *const *only;       /* serve only these names; NULL = all */
    size_t n_only;
    uid_t uid;                     /* default owner, group and mode of files */
    gid_t gid;
    mode_t mode;
    const struct sfs_secret_perm *perms;
    size_t n_perms;
    enum sfs_cache_mode cache;
    bool allow_other;
    bool foreground;               /* stay attached; log to stderr */
    bool debug;                    /* log FUSE traffic */
    bool no_invalidate;            /* debug only: skip kernel cache notifications on reload */
    const char *audit;             /* audit=: an absolute path or "journal" (fs/audit.h); the
                                    * caller sets cache=none with it; NULL: no audit */
};

/* Mounts and serves until SIGTERM/SIGINT or an external unmount.
 *
 * In the foreground, returns 0 after a clean unmount or -errno with err set.
 * Otherwise it forks: the child loads, locks and mounts; the parent waits until the files are
 * visible (returns 0 with *is_daemon false) or the child reports a failure (returns -errno
 * with err holding the child's message).  In the child the call returns only when the daemon
 * stops, with *is_daemon true.  Problems visible before mounting (no /dev/fuse, mountpoint
 * missing or already mounted, store or key errors) are reported this way, never only logged.
 * -EINPROGRESS after serving: unmounted, but a reload is still stuck in I/O (a store, key or
 * platform file that does not answer) and uses `opts`: the caller must exit at once (status
 * 0), freeing nothing. */
int sfs_daemon_run(const struct sfs_mount_opts *opts, bool *is_daemon, struct sfs_err *err);

/* libfuse's version at run time ("3.14.0"). */
const char *sfs_fuse_version(void);

/* Mounts an empty FUSE filesystem on a fresh directory in /tmp, reads the kernel's INIT
 * request, and unmounts it: *major.*minor is the protocol version the running kernel offers
 * (a real mount then uses the lower of it and libfuse's).  Returns 0, or -errno with err set
 * (no /dev/fuse, no permission to mount).  Needs root or fusermount3. */
int sfs_fuse_probe_proto(unsigned *major, unsigned *minor, struct sfs_err *err);

/* Socket activation: the one listening unix stream socket systemd passed this process
 * (LISTEN_FDS/LISTEN_PID, read with libsystemd's sd_listen_fds, then unset so children do
 * not inherit them).  Returns 0 with *fd the descriptor (the caller owns it) or -1 when
 * none was passed, or -errno with err set when what was passed is not one such socket. */
int sfs_systemd_listen_fd(int *fd, struct sfs_err *err);

#endif
