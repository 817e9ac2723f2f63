#include "fs/snapshot.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/names.h"
#include "secrets/view.h"
#include "util/log.h"

/* ---- inode table: open addressing, name -> (ino, generation) ---- */

struct inode_slot {
    char *name;        /* NULL: empty slot */
    uint64_t ino;
    uint64_t gen;      /* bumped when the name comes back after being absent */
    uint64_t seen_in;  /* last snapshot generation that held the name */
};

struct inode_table {
    struct inode_slot *slots;
    size_t cap;        /* power of two */
    size_t used;
    uint64_t next_ino;
};

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ull;
    }
    return h;
}

struct inode_table *sfs_inodes_new(void)
{
    struct inode_table *t = calloc(1, sizeof *t);

    if (!t)
        return NULL;
    t->cap = 64;
    t->slots = calloc(t->cap, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NULL;
    }
    t->next_ino = SFS_INO_FIRST_SECRET;
    return t;
}

void sfs_inodes_free(struct inode_table *t)
{
    size_t i;

    if (!t)
        return;
    for (i = 0; i < t->cap; i++)
        free(t->slots[i].name);
    free(t->slots);
    free(t);
}

static struct inode_slot *slot_for(struct inode_slot *slots, size_t cap, const char *name)
{
    size_t i = hash_name(name) & (cap - 1);

    while (slots[i].name && strcmp(slots[i].name, name) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int inodes_grow(struct inode_table *t)
{
    size_t cap = t->cap * 2, i;
    struct inode_slot *slots = calloc(cap, sizeof *slots);

    if (!slots)
        return -ENOMEM;
    for (i = 0; i < t->cap; i++)
        if (t->slots[i].name)
            *slot_for(slots, cap, t->slots[i].name) = t->slots[i];
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* Assigns (or recalls) the inode of `name` for snapshot `generation`. */
static struct inode_slot *inode_of(struct inode_table *t, const char *name, uint64_t generation)
{
    struct inode_slot *s;

    if ((t->used + 1) * 4 > t->cap * 3 && inodes_grow(t) < 0)
        return NULL;
    s = slot_for(t->slots, t->cap, name);
    if (!s->name) {
        s->name = strdup(name);
        if (!s->name)
            return NULL;
        s->ino = t->next_ino++;
        s->gen = 1;
        t->used++;
    } else if (s->seen_in + 1 < generation) {
        s->gen++; /* it was absent in between: a new file for the kernel */
    }
    s->seen_in = generation;
    return s;
}

/* ---- snapshots ---- */

struct snapshot_private {
    struct snapshot pub;
    pthread_mutex_t view_lock;  /* guards lazy rendering of the views */
    sfs_set *view_set;          /* what the views show, if not all of store */
};

static bool only_allows(const struct sfs_mount_opts *o, const char *name)
{
    size_t i;

    if (!o->only)
        return true;
    for (i = 0; i < o->n_only; i++)
        if (strcmp(o->only[i], name) == 0)
            return true;
    return false;
}

static const struct sfs_secret_perm *perm_for(const struct sfs_mount_opts *o, const char *name)
{
    size_t i;

    for (i = 0; i < o->n_perms; i++)
        if (strcmp(o->perms[i].name, name) == 0)
            return &o->perms[i];
    return NULL;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct snap_entry *)a)->name, ((const struct snap_entry *)b)->name);
}

/* Directory bits that let each reader of a file reach it (see README "Ownership"). */
static uint32_t dir_bits_for(const struct snap_entry *e, uid_t dir_uid, gid_t dir_gid)
{
    uint32_t bits = 0;

    if (e->mode & 0400)
        bits |= e->uid == dir_uid ? 0500 : 0001;
    if (e->mode & 0040)
        bits |= e->gid == dir_gid ? 0050 : 0001;
    if (e->mode & 0004)
        bits |= 0005;
    return bits;
}

static void set_entry(struct snap_entry *e, const char *name, const unsigned char *data,
                      size_t size, uint8_t kind, int64_t mtime, const struct sfs_mount_opts *o)
{
    const struct sfs_secret_perm *p = kind == SNAP_VIEW ? NULL : perm_for(o, name);

    e->name = name;
    e->data = data;
    e->size = (uint32_t)size;
    e->kind = kind;
    e->mtime = mtime;
    e->uid = p && p->has_uid ? p->uid : o->uid;
    e->gid = p && p->has_gid ? p->gid : o->gid;
    e->mode = p && p->has_mode ? p->mode : o->mode;
}

/* Moves the entries to serve into one set: filtered store entries, then platform ones. */
static sfs_set *served_set(const struct sfs_mount_opts *o, const sfs_set *store,
                           const sfs_set *platform)
{
    sfs_set *s = sfs_set_new(sfs_set_value_bytes(store) + sfs_set_value_bytes(platform) +
                             (sfs_set_count(store) + sfs_set_count(platform)) * 48);
    size_t i;

    if (!s)
        return NULL;
    for (i = 0; i < sfs_set_count(store); i++) {
        const sfs_entry *e = sfs_set_at(store, i);
        if (sfs_name_reserved(e->name, o->reserved_prefix)) {
            sfs_warn("store holds %s, a platform name; it is not served", e->name);
            continue;
        }
        if (!only_allows(o, e->name))
            continue;
        if (sfs_set_put(s, e->name, e->value, e->len, e->created, e->updated) < 0)
            goto fail;
    }
    for (i = 0; i < sfs_set_count(platform); i++) {
        const sfs_entry *e = sfs_set_at(platform, i);
        if (!only_allows(o, e->name))
            continue;
        if (sfs_set_put(s, e->name, e->value, e->len, e->created, e->updated) < 0)
            goto fail;
    }
    return s;
fail:
    sfs_set_free(s);
    return NULL;
}

struct snapshot *sfs_snap_build(const struct sfs_mount_opts *o, struct inode_table *t,
                                sfs_set *store, sfs_set *platform, uint64_t generation)
{
    struct snapshot_private *p = calloc(1, sizeof *p);
    struct snapshot *s = p ? &p->pub : NULL;
    int64_t now = (int64_t)time(NULL);
    uint64_t max_ino = SFS_INO_STATUS;
    size_t i, k = 0, n;
    bool custom_perms = false;

    if (!p)
        goto fail;
    pthread_mutex_init(&p->view_lock, NULL);
    atomic_init(&s->refs, 1);
    atomic_init(&s->inflight, 0);
    s->generation = generation;
    s->loaded_at = now;
    s->store = served_set(o, store, platform);
    sfs_set_free(store);
    sfs_set_free(platform);
    store = platform = NULL;
    if (!s->store)
        goto fail;
    s->views = sfs_arena_new(0);
    n = sfs_set_count(s->store);
    s->entries = calloc(n + 3, sizeof *s->entries);
    if (!s->views || !s->entries)
        goto fail;

    for (i = 0; i < n; i++) {
        const sfs_entry *e = sfs_set_at(s->store, i);
        struct snap_entry *se = &s->entries[k++];
        struct inode_slot *slot = inode_of(t, e->name, generation);
        bool platform_entry = sfs_name_reserved(e->name, o->reserved_prefix);
        if (!slot)
            goto fail;
        set_entry(se, e->name, e->value, e->len, platform_entry ? SNAP_PLATFORM : SNAP_SECRET,
                  platform_entry ? now : e->updated, o);
        se->ino = slot->ino;
        se->gen = slot->gen;
        if (se->ino > max_ino)
            max_ino = se->ino;
        if (platform_entry)
            s->n_platform++;
        else
            s->n_secrets++;
        if (se->uid != o->uid || se->gid != o->gid || se->mode != o->mode)
            custom_perms = true;
    }

    /* Views never widen access: they leave out secrets that have their own owner or mode. */
    if (custom_perms) {
        p->view_set = sfs_set_clone(s->store);
        if (!p->view_set)
            goto fail;
        for (i = 0; i < n; i++) {
            const struct snap_entry *se = &s->entries[i];
            if (se->uid != o->uid || se->gid != o->gid || se->mode != o->mode)
                (void)sfs_set_remove(p->view_set, se->name);
        }
    }
    {
        const sfs_set *vs = p->view_set ? p->view_set : s->store;
        struct snap_entry *env = &s->entries[k++], *json = &s->entries[k++];
        struct snap_entry *status = &s->entries[k++];
        set_entry(env, ".env", NULL, sfs_view_env(vs, NULL, 0), SNAP_VIEW, now, o);
        set_entry(json, ".env.json", NULL, sfs_view_json(vs, NULL, 0), SNAP_VIEW, now, o);
        set_entry(status, ".status", NULL, 0, SNAP_STATUS, now, o);
        env->ino = SFS_INO_ENV;
        json->ino = SFS_INO_JSON;
        status->ino = SFS_INO_STATUS;
        status->mode = 0444; /* never holds a value */
        env->gen = json->gen = status->gen = 1;
    }
    s->n = k;
    qsort(s->entries, s->n, sizeof *s->entries, cmp_entry);

    s->ino_cap = max_ino + 1;
    s->by_ino = calloc(s->ino_cap, sizeof *s->by_ino);
    if (!s->by_ino)
        goto fail;
    s->dir_uid = o->uid;
    s->dir_gid = o->gid;
    s->dir_mode = 0;
    for (i = 0; i < s->n; i++) {
        s->by_ino[s->entries[i].ino] = &s->entries[i];
        if (s->entries[i].kind != SNAP_STATUS)
            s->dir_mode |= dir_bits_for(&s->entries[i], o->uid, o->gid);
    }
    s->dir_mode |= 0500; /* the owner can always list */
    return s;
fail:
    sfs_set_free(store);
    sfs_set_free(platform);
    if (s)
        sfs_snap_unref(s);
    return NULL;
}

const struct snap_entry *sfs_snap_find(const struct snapshot *s, const char *name)
{
    struct snap_entry key = {.name = name};

    return bsearch(&key, s->entries, s->n, sizeof *s->entries, cmp_entry);
}

const struct snap_entry *sfs_snap_by_ino(const struct snapshot *s, uint64_t ino)
{
    return ino < s->ino_cap ? s->by_ino[ino] : NULL;
}

const unsigned char *sfs_snap_view_data(struct snapshot *s, const struct snap_entry *e)
{
    struct snapshot_private *p = (struct snapshot_private *)s;
    struct snap_entry *me = (struct snap_entry *)e;
    const sfs_set *vs = p->view_set ? p->view_set : s->store;
    const unsigned char *data;

    pthread_mutex_lock(&p->view_lock);
    if (!me->data) {
        char *buf = sfs_arena_alloc(s->views, (size_t)me->size + 1);
        if (buf) {
            size_t len = me->ino == SFS_INO_ENV ? sfs_view_env(vs, buf, (size_t)me->size + 1)
                                                : sfs_view_json(vs, buf, (size_t)me->size + 1);
            if (len == me->size)
                me->data = (const unsigned char *)buf;
        }
    }
    data = me->data;
    pthread_mutex_unlock(&p->view_lock);
    return data;
}

void sfs_snap_unref(struct snapshot *s)
{
    struct snapshot_private *p = (struct snapshot_private *)s;

    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    sfs_set_free(s->store);
    sfs_set_free(p->view_set);
    sfs_arena_free(s->views);
    free(s->entries);
    free(s->by_ino);
    pthread_mutex_destroy(&p->view_lock);
    free(p);
}

bool sfs_snap_entry_changed(const struct snap_entry *a, const struct snap_entry *b)
{
    if (a->size != b->size || a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
        a->mtime != b->mtime || a->gen != b->gen)
        return true;
    if (a->kind == SNAP_VIEW || a->kind == SNAP_STATUS)
        return true; /* cheap to re-read; comparing would render both */
    return a->size && memcmp(a->data, b->data, a->size) != 0;
}
