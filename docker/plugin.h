/* docker/plugin.h — the Docker volume plugin (`secretfs docker-plugin`).
 *
 * The only public header of docker/, in two layers:
 *
 *   - sfs_docker_api: the protocol as a pure request handler.  An endpoint and the body
 *     bytes go in; an HTTP status and a JSON reply come out.  The volume table lives inside;
 *     every side effect (mounting, unmounting, reloading, persisting the table, removing a
 *     volume's directory) goes through struct sfs_docker_ops, so unit tests and the fuzzer
 *     drive it without HTTP, mounts or files.  Not thread-safe: the caller serializes calls.
 *   - sfs_docker_plugin_run: the real plugin: a unix socket served by libmicrohttpd, volume
 *     definitions in a state directory, `secretfs mount` children for the mounts.
 *
 * The plugin only ever handles secret *names* and mount options; values stay in the store
 * and in the mount daemons.
 */
#ifndef SFS_DOCKER_PLUGIN_H
#define SFS_DOCKER_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

#define SFS_DOCKER_DEFAULT_SOCKET "/run/docker/plugins/secretfs.sock"
#define SFS_DOCKER_DEFAULT_STATE "/var/lib/secretfs/plugin"
#define SFS_DOCKER_DEFAULT_VOLUMES "/var/lib/secretfs/volumes"

/* Limits that keep the table (and the state file) bounded whatever clients send. */
#define SFS_DOCKER_MAX_VOLUMES 4096
#define SFS_DOCKER_MAX_IDS 1024       /* distinct mount IDs holding one volume */
#define SFS_DOCKER_MAX_ID_COUNT 1024  /* mounts of one volume by one ID */
#define SFS_DOCKER_MAX_ID_LEN 256
#define SFS_DOCKER_MAX_SECRETS 1024   /* names in one secrets= option */
#define SFS_DOCKER_MAX_BODY (1u << 20)

/* A volume as the side-effect callbacks see it.  Every pointer is owned by the table and
 * valid only during the callback. */
struct sfs_docker_volume {
    const char *name;        /* Docker's volume name: [A-Za-z0-9][A-Za-z0-9_.-]{0,254} */
    const char *mountpoint;  /* VOLUMES/NAME */
    const char *secrets;     /* the subset, comma separated, or NULL: every secret */
    uid_t uid;
    gid_t gid;
    mode_t mode;             /* permission bits, at most 0777 */
    bool cache_none;         /* cache=none, else cache=kernel */
};

/* What sfs_docker_ops.probe finds at a volume's mountpoint. */
enum sfs_docker_probe {
    SFS_DOCKER_NOT_MOUNTED,  /* nothing mounted there */
    SFS_DOCKER_LIVE,         /* a secretfs mount whose daemon answers */
    SFS_DOCKER_STALE,        /* a dead FUSE mount (ENOTCONN) or something else mounted there */
};

/* The side effects.  Each callback gets `ctx`; those returning int return 0 or -errno and
 * fill err with a one-line reason for the Docker reply (never a secret value).  Any may be
 * NULL: a NULL callback succeeds (probe: NOT_MOUNTED). */
struct sfs_docker_ops {
    void *ctx;
    /* Mounts the volume's subset at v->mountpoint; returns once the files are visible. */
    int (*mount)(void *ctx, const struct sfs_docker_volume *v, struct sfs_err *err);
    /* Unmounts v->mountpoint (a stale mount too) and waits for its daemon to exit. */
    int (*unmount)(void *ctx, const struct sfs_docker_volume *v, struct sfs_err *err);
    /* Makes the volume's daemon serve the store's current contents (`secretfs reload`). */
    int (*reload)(void *ctx, const struct sfs_docker_volume *v, struct sfs_err *err);
    enum sfs_docker_probe (*probe)(void *ctx, const struct sfs_docker_volume *v);
    /* Persists the whole table (JSON, see sfs_docker_api_load).  A change whose save fails
     * is rolled back and reported. */
    int (*save)(void *ctx, const char *json, size_t len, struct sfs_err *err);
    /* The volume was removed: forget its mountpoint directory.  Cannot fail. */
    void (*removed)(void *ctx, const struct sfs_docker_volume *v);
    /* The names the store holds (names only, never values), newline separated, into
     * *names (malloc'd, the caller frees it).  `fresh` (Create: the answer may refuse it):
     * a list kept from earlier will do only if the store is known not to have changed
     * since; else (Get, List: the Status's "missing") a list a few seconds old will do too.
     * NULL callback: every name is there. */
    int (*store_names)(void *ctx, bool fresh, char **names, struct sfs_err *err);
    /* Whether something other than v->mountpoint itself holds the volume's mount (a
     * container's bind of it, in any mount namespace): 1 held, 0 not (no container can
     * use it, so references left over are stale), -1 cannot tell.  NULL callback: -1.
     * Remove refuses only a volume known to be held (dockerd checked it is unused);
     * recovery drops references only of one known not to be. */
    int (*held)(void *ctx, const struct sfs_docker_volume *v);
};

typedef struct sfs_docker_api sfs_docker_api;

/* A reply: an HTTP status (200, or 4xx/5xx with an "Err") and a JSON object body,
 * malloc'd, owned by the caller (free with free()). */
struct sfs_docker_reply {
    int status;
    char *body;
    size_t len;
};

/* A handler with an empty table.  Volumes mount at VOLUMES_DIR/NAME; a volume created
 * without uid=/gid= belongs to default_uid/default_gid.  `ops` is copied.  NULL when out
 * of memory.  The caller frees it with sfs_docker_api_free, which never unmounts. */
sfs_docker_api *sfs_docker_api_new(const char *volumes_dir, const struct sfs_docker_ops *ops,
                                   uid_t default_uid, gid_t default_gid);
void sfs_docker_api_free(sfs_docker_api *api);

/* The plugin-wide audit (struct sfs_docker_plugin_opts.audit: "journal" or a directory),
 * for Get and List: every volume's Status then shows "audit" (journal, or the volume's log,
 * DIR/NAME.log) and "cache": "none".  Copied.  Returns 0 or -ENOMEM. */
int sfs_docker_api_set_audit(sfs_docker_api *api, const char *audit);

/* Replaces the table with the one in `json` (what ops.save was given):
 *   {"version":1,"volumes":[{"name":N,"secrets":"A,B"|null,"uid":U,"gid":G,"mode":"0440",
 *                            "cache":"kernel"|"none","created":T,"mounts":{"ID":COUNT,...}}]}
 * Every field is validated as a request's would be.  No volume is marked mounted:
 * sfs_docker_api_recover finds out.  On error (-EINVAL, -ENOMEM) the table is unchanged
 * and err says what is wrong. */
int sfs_docker_api_load(sfs_docker_api *api, const char *json, size_t len,
                        struct sfs_err *err);

/* The table as sfs_docker_api_load reads it; malloc'd, NUL-terminated, or NULL. */
char *sfs_docker_api_dump(const sfs_docker_api *api, size_t *len);

/* Handles one request: `endpoint` is the URL path ("/VolumeDriver.Mount"), body/len the
 * request body (may be empty).  Always fills *reply with a JSON object, unless memory runs
 * out (-ENOMEM, reply->body NULL).  Returns 0.  A reply with an error has status != 200
 * and a non-empty "Err"; such a request changed nothing, except an Unmount, whose
 * reference is dropped even if unmounting fails (Docker has already let go), and a Mount
 * that found the volume's mount dead (ops.probe): that one is unmounted before mounting
 * again. */
int sfs_docker_api_handle(sfs_docker_api *api, const char *endpoint, const void *body,
                          size_t len, struct sfs_docker_reply *reply);

/* After a (re)start, for each volume: references that no container can hold (ops.held is
 * false: Docker died without Unmount) are dropped as stale; mounts that Docker still
 * holds (references > 0) are adopted when live, else (stale or missing) unmounted and
 * mounted again; mounts nobody holds are unmounted.  A volume that cannot be mounted stays unmounted with its
 * references (a later Mount retries).  Logs each action; returns how many failed. */
int sfs_docker_api_recover(sfs_docker_api *api);

/* Reloads every mounted volume (SIGHUP) through ops.reload; logs each failure; returns
 * how many failed. */
int sfs_docker_api_reload_all(sfs_docker_api *api);

/* Counts, for tests: volumes, and volumes mounted. */
size_t sfs_docker_api_volumes(const sfs_docker_api *api);
size_t sfs_docker_api_mounted(const sfs_docker_api *api);

/* True for a name Docker may give a volume here: 1-255 bytes of [A-Za-z0-9_.-] starting
 * with a letter or digit (so never "", ".", ".." or anything with a '/'). */
bool sfs_docker_volume_name_valid(const char *name);

/* ---- the plugin process ---- */

struct sfs_docker_plugin_opts {
    const char *socket_path;  /* the unix socket Docker connects to */
    int listen_fd;            /* a listening socket from systemd (socket activation), or -1 */
    const char *state_dir;    /* volumes.json and the lock; created 0700 */
    const char *volumes_dir;  /* mountpoints; created 0700 */
    const char *exe;          /* the secretfs binary for mount/reload children */
    const char *config_path;  /* passed to every child as --config, or NULL */
    const char *store_path;   /* passed as --store, or NULL */
    const char *key_file;     /* passed as --key-file, or NULL */
    /* The key file's passphrase (secure memory, owned by the caller, valid while the plugin
     * runs), or NULL.  Each child that reads the key (mount, list) gets it through a pipe of
     * its own, named by SECRETFS_PASSPHRASE_FD: never argv, a file or a log. */
    const char *passphrase;
    size_t passphrase_len;
    /* The store's file (absolute) when the store is one, else NULL (etcd).  The names
     * `secretfs list` printed are kept while the file's identity (device, inode, size,
     * times) stays the same (writes replace it: a new inode); with no file, for a few
     * seconds for Get and List only. */
    const char *store_file;
    /* Every volume's mount records each open of a secret (secretfs mount -o audit=, which
     * implies cache=none): "journal", or a directory (created 0700 and trusted as the state
     * directory is) where each volume's daemon writes NAME.log.  NULL: no volume is audited
     * (-o noaudit: the config's [mount] audit is the host mount's, not the volumes'). */
    const char *audit;
};

/* Runs the plugin in the foreground, logging to stderr, until SIGTERM or SIGINT (which
 * leave the mounts serving: a restarted plugin adopts them).  SIGHUP reloads every mounted
 * volume.  Returns 0 after a clean stop, or -errno with err set when it cannot start
 * (socket in use, state directory locked by another plugin, unreadable state file). */
int sfs_docker_plugin_run(const struct sfs_docker_plugin_opts *o, struct sfs_err *err);

#endif
