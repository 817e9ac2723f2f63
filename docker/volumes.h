/* docker/volumes.h — the volume table: definitions, references per (volume, mount ID), and
 * the state file's JSON.  Internal to docker/; api.c is its only user.
 *
 * Pure data: no I/O, no locks (the caller serializes).  Every string is owned by the table.
 */
#ifndef SFS_DOCKER_VOLUMES_H
#define SFS_DOCKER_VOLUMES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "docker/plugin.h"
#include "util/err.h"

/* What a volume's options ask for. */
struct sfs_vol_def {
    char *secrets;    /* "A,B" (validated, duplicates dropped), or NULL: every secret */
    char *optional;   /* names of `secrets` the store may lack ("A"), or NULL: none */
    uid_t uid;
    gid_t gid;
    mode_t mode;
    bool cache_none;
};

struct sfs_vol_ref {
    char *id;         /* Docker's mount ID ("" from engines that send none) */
    unsigned count;   /* 1..SFS_DOCKER_MAX_ID_COUNT */
};

struct sfs_vol {
    struct sfs_docker_volume pub; /* what the ops see; its strings point at the fields below */
    char *name;
    char *mountpoint;
    struct sfs_vol_def def;
    char created[32];             /* RFC 3339, UTC */
    struct sfs_vol_ref *refs;
    size_t n_refs;
    bool mounted;                 /* runtime only: never persisted */
};

struct sfs_vol_table {
    struct sfs_vol **vols;        /* sorted by name (strcmp), unique */
    size_t n, cap;
};

/* Parses Docker's Opts (NULL, JSON null or an object of strings) into def, starting from
 * the defaults (every secret, default_uid/default_gid, 0400, cache=kernel).  An unknown
 * option or a bad value is -EINVAL with err naming the option and never quoting a value;
 * so is an optional= name that secrets= does not list.  On success def's strings are
 * malloc'd (the caller frees them with sfs_vol_def_clear, or hands them to sfs_vol_new). */
int sfs_vol_parse_opts(json_t *opts, uid_t default_uid, gid_t default_gid,
                       struct sfs_vol_def *def, struct sfs_err *err);

/* Frees def's strings and sets them NULL. */
void sfs_vol_def_clear(struct sfs_vol_def *def);

/* True when the comma separated `list` holds `name` exactly (list may be NULL). */
bool sfs_vol_list_has(const char *list, const char *name, size_t name_len);

bool sfs_vol_def_equal(const struct sfs_vol_def *a, const struct sfs_vol_def *b);

/* A new unmounted volume with no references; takes def's strings.  NULL (def's strings
 * freed) when out of memory or when VOLUMES_DIR/NAME is longer than PATH_MAX. */
struct sfs_vol *sfs_vol_new(const char *volumes_dir, const char *name, struct sfs_vol_def *def,
                            const char *created);
void sfs_vol_free(struct sfs_vol *v);

/* Lookup, insert (the name must be new; -ENOSPC past SFS_DOCKER_MAX_VOLUMES) and removal
 * (returns the volume, now owned by the caller, or NULL). */
struct sfs_vol *sfs_vol_find(const struct sfs_vol_table *t, const char *name);
int sfs_vol_insert(struct sfs_vol_table *t, struct sfs_vol *v);
struct sfs_vol *sfs_vol_take(struct sfs_vol_table *t, const char *name);
void sfs_vol_table_clear(struct sfs_vol_table *t);

/* References.  add: one more for `id` (-ENOSPC past the limits, -ENOMEM); drop: one less,
 * false when `id` holds none. */
unsigned long sfs_vol_total_refs(const struct sfs_vol *v);
int sfs_vol_ref_add(struct sfs_vol *v, const char *id);
bool sfs_vol_ref_drop(struct sfs_vol *v, const char *id);

/* True for a mount ID we keep: at most SFS_DOCKER_MAX_ID_LEN printable ASCII bytes
 * without spaces (Docker's are 64 hex digits). */
bool sfs_vol_id_valid(const char *id, size_t len);

/* The state file's JSON (see sfs_docker_api_load); NULL when out of memory. */
json_t *sfs_vol_table_to_json(const struct sfs_vol_table *t);
/* Builds a table from that JSON into *out (empty on entry).  -EINVAL with err naming the
 * volume and field, or -ENOMEM; on error *out is left empty. */
int sfs_vol_table_from_json(json_t *root, const char *volumes_dir, struct sfs_vol_table *out,
                            struct sfs_err *err);

/* Copies `s` for a message: printable ASCII kept, anything else '?', at most max bytes
 * (then "..."). */
void sfs_vol_printable(char *dst, size_t size, const char *s, size_t max);

#endif
