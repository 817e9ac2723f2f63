/* store/store.c — locations, backend choice, and the calls every backend shares. */
#include "store/backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Backends chosen by a URL scheme; a plain path is the file backend. */
static const struct sfs_store_backend *const backends[] = {
    &sfs_etcd_backend,
};

/* The backend for `location` and where its scheme-specific part starts, or NULL for a URL
 * of a scheme no backend knows. */
static const struct sfs_store_backend *pick(const char *location, const char **rest)
{
    const char *colon = strstr(location, "://");
    size_t i;

    for (i = 0; i < sizeof backends / sizeof backends[0] && backends[i]; i++) {
        size_t n = strlen(backends[i]->scheme);
        if (strncmp(location, backends[i]->scheme, n) == 0) {
            *rest = location + n;
            return backends[i];
        }
    }
    *rest = location;
    return colon && !memchr(location, '/', (size_t)(colon - location)) ? NULL
                                                                          : &sfs_file_backend;
}

bool sfs_store_is_path(const char *location)
{
    const char *rest;

    return pick(location, &rest) == &sfs_file_backend;
}

int sfs_store_open(const char *location, const struct sfs_store_options *o, sfs_store **out,
                   struct sfs_err *err)
{
    const struct sfs_store_backend *be;
    const char *rest;
    sfs_store *s;
    int rc;

    *out = NULL;
    if (!location || !*location)
        return sfs_err_set(err, -EINVAL, "the store location is empty; give a path or "
                           "etcd://HOST:PORT/PREFIX");
    be = pick(location, &rest);
    if (!be)
        return sfs_err_set(err, -EINVAL, "%s: unknown store scheme '%.*s'; a store is a path "
                           "or etcd://HOST:PORT[,HOST:PORT...]/PREFIX", location,
                           (int)(strstr(location, "://") - location), location);
    s = calloc(1, sizeof *s);
    if (!s || !(s->location = strdup(location))) {
        free(s);
        return sfs_err_set(err, -ENOMEM, "out of memory");
    }
    s->be = be;
    if (o)
        s->opts = *o;
    rc = be->open(s, rest, err);
    if (rc < 0) {
        free(s->location);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void sfs_store_close(sfs_store *s)
{
    if (!s)
        return;
    s->be->close(s);
    free(s->location);
    free(s);
}

const char *sfs_store_kind(const sfs_store *s)
{
    return s->be->kind;
}

const char *sfs_store_location(const sfs_store *s)
{
    return s->location;
}

int sfs_store_load(sfs_store *s, const sfs_key *key, unsigned flags, sfs_set **out,
                   uint64_t *revision, struct sfs_err *err)
{
    uint64_t rev = 0;
    int rc;

    *out = NULL;
    rc = s->be->load(s, key, flags, out, &rev, err);
    if (rc == 0 && revision)
        *revision = rev;
    return rc;
}

int sfs_store_load_meta(sfs_store *s, const sfs_key *ring, unsigned flags, sfs_set **out,
                        struct sfs_store_meta *meta, struct sfs_err *err)
{
    int rc;

    *out = NULL;
    memset(meta, 0, sizeof *meta);
    if (s->be->load_meta)
        rc = s->be->load_meta(s, ring, flags, out, meta, err);
    else
        rc = s->be->load(s, ring, flags, out, &meta->revision, err);
    if (rc < 0)
        memset(meta, 0, sizeof *meta);
    return rc;
}

int sfs_store_key_ids(sfs_store *s, unsigned char (*ids)[SFS_KEY_ID_BYTES], size_t cap,
                      size_t *n, struct sfs_err *err)
{
    *n = 0;
    if (!s->be->key_ids)
        return sfs_err_set(err, -ENOTSUP, "%s: the %s backend cannot list the keys its data "
                           "is sealed with yet", s->location, s->be->kind);
    return s->be->key_ids(s, ids, cap, n, err);
}

int sfs_store_update(sfs_store *s, const sfs_key *key, sfs_store_edit_fn edit, void *ctx,
                     struct sfs_err *err)
{
    return s->be->update(s, key, edit, ctx, err);
}

static bool keep_none(const sfs_entry *e, void *ctx)
{
    (void)e;
    (void)ctx;
    return false;
}

static int copy_into(sfs_set *set, void *ctx, struct sfs_err *err)
{
    const sfs_set *src = ctx;
    size_t i;

    (void)sfs_set_filter(set, keep_none, NULL);
    for (i = 0; i < sfs_set_count(src); i++) {
        const sfs_entry *e = sfs_set_at(src, i);
        if (sfs_set_put(set, e->name, e->value, e->len, e->created, e->updated) < 0)
            return sfs_err_set(err, -ENOMEM, "out of secure memory copying the set");
    }
    return 0;
}

int sfs_store_replace(sfs_store *s, const sfs_key *key, const sfs_set *set,
                      struct sfs_err *err)
{
    int rc = sfs_store_update(s, key, copy_into, (void *)set, err);

    return rc == SFS_STORE_UNCHANGED ? 0 : rc;
}

int sfs_store_watch(sfs_store *s, struct sfs_err *err)
{
    return s->be->watch ? s->be->watch(s, err) : 0;
}

int sfs_store_watch_fd(const sfs_store *s)
{
    return s->be->watch_fd ? s->be->watch_fd(s) : -1;
}

bool sfs_store_watch_due(sfs_store *s, int *timeout_ms)
{
    *timeout_ms = -1;
    return s->be->watch_due ? s->be->watch_due(s, timeout_ms) : false;
}

size_t sfs_store_status(const sfs_store *s, char *buf, size_t cap)
{
    int n;

    if (cap == 0)
        return 0;
    n = snprintf(buf, cap, "backend=%s\n", s->be->kind);
    if (n < 0)
        n = 0;
    if ((size_t)n >= cap)
        return cap - 1;
    return (size_t)n + (s->be->status ? s->be->status(s, buf + n, cap - (size_t)n) : 0);
}
