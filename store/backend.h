/* store/backend.h — what a backend implements.  Internal to store/.
 *
 * store/store.c parses the location, picks the backend by scheme and forwards every call of
 * store/store.h to it; a new backend is a new file with one `const struct sfs_store_backend`
 * and one row in store.c's table, not a branch anywhere else.
 */
#ifndef SFS_STORE_BACKEND_H
#define SFS_STORE_BACKEND_H

#include "store/store.h"

struct sfs_store {
    const struct sfs_store_backend *be;
    char *location;                   /* as given */
    struct sfs_store_options opts;    /* copied; strings borrowed from the caller */
    void *priv;                       /* the backend's own state */
};

struct sfs_store_backend {
    const char *kind;                 /* "file", "etcd" */
    const char *scheme;               /* "etcd://", or NULL for a plain path */
    /* Parses `rest` (the location without the scheme) into s->priv.  No I/O beyond the
     * files the options name.  Returns 0 or -errno with err set. */
    int (*open)(sfs_store *s, const char *rest, struct sfs_err *err);
    void (*close)(sfs_store *s);      /* frees s->priv; stops the watch first */
    int (*load)(sfs_store *s, const sfs_key *key, unsigned flags, sfs_set **out,
                uint64_t *revision, struct sfs_err *err);
    int (*update)(sfs_store *s, const sfs_key *key, sfs_store_edit_fn edit, void *ctx,
                  struct sfs_err *err);
    /* Optional: load that also reports the set version (NULL: store.c calls `load` and
     * reports has_version false).  On 0 fills every field of *meta. */
    int (*load_meta)(sfs_store *s, const sfs_key *ring, unsigned flags, sfs_set **out,
                     struct sfs_store_meta *meta, struct sfs_err *err);
    /* Optional: sfs_store_key_ids (NULL: -ENOTSUP, and `rekey --finish` refuses).  Every
     * open looks its key up by the id in the sealed data (sfs_key_by_id), never trying. */
    int (*key_ids)(sfs_store *s, unsigned char (*ids)[SFS_KEY_ID_BYTES], size_t cap,
                   size_t *n, struct sfs_err *err);
    /* Optional (NULL: the store cannot be watched; sfs_store_watch then succeeds and the
     * fd is -1). */
    int (*watch)(sfs_store *s, struct sfs_err *err);
    int (*watch_fd)(const sfs_store *s);
    bool (*watch_due)(sfs_store *s, int *timeout_ms);
    /* Backend lines for .status after "backend=KIND\n" (which store.c writes). */
    size_t (*status)(const sfs_store *s, char *buf, size_t cap);
};

extern const struct sfs_store_backend sfs_file_backend;
extern const struct sfs_store_backend sfs_etcd_backend;

#endif
