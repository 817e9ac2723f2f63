#include "fs/snapshot.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/names.h"
#include "secrets/view.h"
#include "util/log.h"

/* ---- inode table: name -> (inode number, generation) ----
 *
 * One record per name served; record i is inode SFS_INO_FIRST_SECRET + i.  `order` lists
 * the live records by name, so a build, which asks for its names in that same order, finds
 * each one by walking forward (one strcmp per name, no hashing, no random access), and the
 * names it adds are merged in once at its end.  Compact (16 bytes, the name once, 4 bytes
 * of order) because a daemon holds one per secret: README "Performance".
 *
 * A name is retired once no live generation holds it and the kernel has forgotten its inode
 * (the lookup count FUSE keeps, mirrored in `lookups`, is 0): its record goes to `free_recs`
 * for a later name, with a new generation number, so the table follows what is served, not
 * every name ever served.  Names of retired records are compacted away when they are most
 * of `names`. */
#define REC_RETIRED UINT32_MAX
#define VIEW_OWN_ARENA (64u * 1024u) /* views this large get memory of their own */

struct inode_rec {
    uint32_t name;     /* offset of the NUL-terminated name in `names`, or REC_RETIRED */
    uint32_t gen;      /* bumped when the name comes back, or the record serves a new one */
    uint64_t seen_in;  /* last snapshot generation that held the name */
};

struct snapshot_private {
    struct snapshot pub;
    pthread_mutex_t view_lock;  /* guards lazy rendering of the views */
    sfs_set *view_set;          /* what the views show, if not all of store */
    sfs_arena *view_mem[2];     /* .env and .env.json bytes, each sized exactly */
    struct inode_table *table;  /* whose `live` list holds it */
    struct snapshot_private *prev, *next;
};

struct inode_table {
    pthread_mutex_t live_lock;  /* guards `live`: snapshots are freed by request threads */
    struct snapshot_private *live; /* every snapshot built and not yet freed */
    pthread_mutex_t count_lock; /* guards `lookups` and the size of `recs` (handlers count) */
    uint32_t *lookups;          /* per record: the kernel's lookup count */
    size_t lookups_cap;
    struct inode_rec *recs;
    size_t n, recs_cap;         /* records in use or retired */
    uint32_t *order;            /* the live records, by name */
    size_t n_order, order_cap;
    uint32_t *added;            /* records the build under way added, in name order */
    size_t n_added, added_cap;
    uint32_t *free_recs;        /* retired records */
    size_t n_free, free_cap;
    char *names;
    size_t names_len, names_cap, names_dead, names_mark;
    size_t cursor;              /* the build's position in `order` */
};

struct inode_table *sfs_inodes_new(void)
{
    struct inode_table *t = calloc(1, sizeof *t);

    if (t) {
        pthread_mutex_init(&t->live_lock, NULL);
        pthread_mutex_init(&t->count_lock, NULL);
    }
    return t;
}

static void snap_free(struct snapshot_private *p);

void sfs_inodes_free(struct inode_table *t)
{
    size_t pinned = 0;

    if (!t)
        return;
    /* what is left was pinned by handles whose RELEASE never came (the session ended
     * first): wipe it all the same */
    while (t->live) {
        snap_free(t->live);
        pinned++;
    }
    if (pinned)
        sfs_debug("freed %zu generation(s) still held by open handles at unmount", pinned);
    pthread_mutex_destroy(&t->live_lock);
    pthread_mutex_destroy(&t->count_lock);
    free(t->lookups);
    free(t->recs);
    free(t->order);
    free(t->added);
    free(t->free_recs);
    free(t->names);
    free(t);
}

static const char *rec_name(const struct inode_table *t, uint32_t rec)
{
    return t->names + t->recs[rec].name;
}

/* Grows *p (of *cap elements of `size` bytes) to hold at least `need`. */
static int grow_array(void **p, size_t *cap, size_t need, size_t size)
{
    size_t c = *cap ? *cap : 64;
    void *q;

    while (c < need)
        c *= 2;
    if (c == *cap)
        return 0;
    q = realloc(*p, c * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* A record for a new name: a retired one (with a new generation) or a new one at the end.
 * Returns 0 with *rec, or -ENOMEM. */
static int rec_new(struct inode_table *t, uint32_t *rec)
{
    int rc = 0;

    if (grow_array((void **)&t->added, &t->added_cap, t->n_added + 1, sizeof *t->added) < 0)
        return -ENOMEM;
    if (t->n_free) {
        *rec = t->free_recs[--t->n_free];
        t->recs[*rec].gen++;
    } else {
        pthread_mutex_lock(&t->count_lock);
        /* the free list always has room for every record: retiring never fails */
        if (t->n >= UINT32_MAX - SFS_INO_FIRST_SECRET ||
            grow_array((void **)&t->recs, &t->recs_cap, t->n + 1, sizeof *t->recs) < 0 ||
            grow_array((void **)&t->lookups, &t->lookups_cap, t->n + 1, sizeof *t->lookups) < 0 ||
            grow_array((void **)&t->free_recs, &t->free_cap, t->n + 1, sizeof *t->free_recs) < 0)
            rc = -ENOMEM;
        if (rc == 0) {
            *rec = (uint32_t)t->n++;
            t->recs[*rec].gen = 1;
            t->lookups[*rec] = 0;
        }
        pthread_mutex_unlock(&t->count_lock);
    }
    if (rc == 0)
        t->added[t->n_added++] = *rec;
    return rc;
}

/* Assigns (or recalls) the inode number and generation of `name` for snapshot `generation`.
 * Within one build, call it in strictly increasing strcmp order of names, then call
 * inodes_end.  Returns 0, or -ENOMEM (also past 2^32 names or bytes of names). */
static int inode_of(struct inode_table *t, const char *name, uint64_t generation,
                    uint64_t *ino, uint64_t *gen)
{
    struct inode_rec *r;
    uint32_t rec;
    int c = 1;

    if (t->cursor == 0 && t->n_added == 0)
        t->names_mark = t->names_len;
    while (t->cursor < t->n_order && (c = strcmp(rec_name(t, t->order[t->cursor]), name)) < 0)
        t->cursor++;
    if (t->cursor < t->n_order && c == 0) {
        rec = t->order[t->cursor];
        if (t->recs[rec].seen_in + 1 < generation)
            t->recs[rec].gen++; /* it was absent in between: a new file for the kernel */
    } else {
        size_t len = strlen(name) + 1;
        if (t->names_len + len > UINT32_MAX - 1 ||
            grow_array((void **)&t->names, &t->names_cap, t->names_len + len, 1) < 0 ||
            rec_new(t, &rec) < 0)
            return -ENOMEM;
        memcpy(t->names + t->names_len, name, len);
        t->recs[rec].name = (uint32_t)t->names_len;
        t->names_len += len;
    }
    r = &t->recs[rec];
    r->seen_in = generation;
    *ino = SFS_INO_FIRST_SECRET + rec;
    *gen = r->gen;
    return 0;
}
/* The generation of the oldest snapshot not yet freed (UINT64_MAX: none). */
static uint64_t oldest_live(struct inode_table *t)
{
    uint64_t oldest = UINT64_MAX;
    struct snapshot_private *p;

    pthread_mutex_lock(&t->live_lock);
    for (p = t->live; p; p = p->next)
        if (((struct snapshot *)p)->generation < oldest)
            oldest = ((struct snapshot *)p)->generation;
    pthread_mutex_unlock(&t->live_lock);
    return oldest;
}

/* Rewrites `names` with only the live records' names, once the retired ones are most of it. */
static void compact_names(struct inode_table *t)
{
    char *fresh;
    size_t i, len = 0;

    if (t->names_dead < 65536 || t->names_dead < t->names_len / 2)
        return;
    fresh = malloc(t->names_len - t->names_dead);
    if (!fresh)
        return; /* keeps the old buffer: only memory */
    for (i = 0; i < t->n_order; i++) {
        struct inode_rec *r = &t->recs[t->order[i]];
        size_t n = strlen(t->names + r->name) + 1;
        memcpy(fresh + len, t->names + r->name, n);
        r->name = (uint32_t)len;
        len += n;
    }
    free(t->names);
    t->names = fresh;
    t->names_len = t->names_cap = len;
    t->names_dead = 0;
}

/* Retires the records that no live snapshot holds and the kernel has forgotten (see the
 * table's comment).  Called at the end of a build, in the building thread. */
static void retire_forgotten(struct inode_table *t)
{
    uint64_t oldest = oldest_live(t);
    size_t i, w = 0;

    pthread_mutex_lock(&t->count_lock);
    for (i = 0; i < t->n_order; i++) {
        uint32_t rec = t->order[i];
        struct inode_rec *r = &t->recs[rec];
        if (r->seen_in < oldest && t->lookups[rec] == 0) {
            t->names_dead += strlen(t->names + r->name) + 1;
            r->name = REC_RETIRED;
            t->free_recs[t->n_free++] = rec;
        } else {
            t->order[w++] = rec;
        }
    }
    pthread_mutex_unlock(&t->count_lock);
    t->n_order = w;
    compact_names(t);
}

/* Ends a build: keeps the names it added (merged into `order`) if `keep`, else forgets
 * them; a kept build then retires what is forgotten.  Returns 0, or -ENOMEM (then they
 * are forgotten: the build must fail). */
static int inodes_end(struct inode_table *t, bool keep)
{
    size_t i, j, w;
    int rc = 0;

    t->cursor = 0;
    if (keep && t->n_added &&
        grow_array((void **)&t->order, &t->order_cap, t->n_order + t->n_added,
                   sizeof *t->order) < 0) {
        rc = -ENOMEM;
        keep = false;
    }
    if (!keep) {
        for (i = 0; i < t->n_added; i++) { /* free again (rec_new made room) */
            t->recs[t->added[i]].name = REC_RETIRED;
            t->free_recs[t->n_free++] = t->added[i];
        }
        if (t->n_added)
            t->names_len = t->names_mark; /* added names are stored at the end */
        t->n_added = 0;
        return rc;
    }
    /* merge from the back: order[0..n_order) with the added records (in name order) */
    for (i = t->n_order, j = t->n_added, w = t->n_order + t->n_added; j > 0;) {
        if (i > 0 && strcmp(rec_name(t, t->order[i - 1]), rec_name(t, t->added[j - 1])) > 0)
            t->order[--w] = t->order[--i];
        else
            t->order[--w] = t->added[--j];
    }
    t->n_order += t->n_added;
    t->n_added = 0;
    retire_forgotten(t);
    return 0;
}

void sfs_inodes_looked_up(struct inode_table *t, uint64_t ino)
{
    if (ino < SFS_INO_FIRST_SECRET)
        return;
    pthread_mutex_lock(&t->count_lock);
    if (ino - SFS_INO_FIRST_SECRET < t->n)
        t->lookups[ino - SFS_INO_FIRST_SECRET]++;
    pthread_mutex_unlock(&t->count_lock);
}

void sfs_inodes_forget(struct inode_table *t, uint64_t ino, uint64_t nlookup)
{
    uint32_t *count;

    if (ino < SFS_INO_FIRST_SECRET)
        return;
    pthread_mutex_lock(&t->count_lock);
    if (ino - SFS_INO_FIRST_SECRET < t->n) {
        count = &t->lookups[ino - SFS_INO_FIRST_SECRET];
        *count = nlookup < *count ? *count - (uint32_t)nlookup : 0;
    }
    pthread_mutex_unlock(&t->count_lock);
}

/* ---- snapshots ---- */


/* Puts a new snapshot on its table's `live` list. */
static void snap_track(struct inode_table *t, struct snapshot_private *p)
{
    pthread_mutex_lock(&t->live_lock);
    p->table = t;
    p->next = t->live;
    if (t->live)
        t->live->prev = p;
    t->live = p;
    pthread_mutex_unlock(&t->live_lock);
}

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

/* Whether a store entry is served (saying so if it is a platform name: never served). */
static bool store_serves(const sfs_entry *e, void *ctx)
{
    const struct sfs_mount_opts *o = ctx;

    if (sfs_name_reserved(e->name, o->reserved_prefix)) {
        sfs_warn("store holds %s, a platform name; it is not served", e->name);
        return false;
    }
    return only_allows(o, e->name);
}

/* Makes `store` the set to serve, in place (no second copy of every value in locked
 * memory): drops what it may not serve, then adds the platform entries.  0 or -ENOMEM. */
static int serve_in_place(const struct sfs_mount_opts *o, sfs_set *store,
                          const sfs_set *platform)
{
    size_t i;

    (void)sfs_set_filter(store, store_serves, (void *)o);
    for (i = 0; i < sfs_set_count(platform); i++) {
        const sfs_entry *e = sfs_set_at(platform, i);
        if (only_allows(o, e->name) &&
            sfs_set_put(store, e->name, e->value, e->len, e->created, e->updated) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* The generated entries at the mount root, one row per view, in strcmp order of name (a
 * build merges them into the name-sorted secrets).  A view is rendered by `render` from the
 * set the views show (sfs_snap_view_data); .status has no renderer here: fs/serve.c renders
 * it on every read.  Inode numbers are fixed, below SFS_INO_FIRST_SECRET. */
struct view_def {
    const char *name;
    uint64_t ino;
    size_t (*render)(const sfs_set *set, char *out, size_t cap);
};

static const struct view_def view_defs[] = {
    {".env", SFS_INO_ENV, sfs_view_env},
    {".env.docker", SFS_INO_DOCKER, sfs_view_docker},
    {".env.go", SFS_INO_GO, sfs_view_go},
    {".env.json", SFS_INO_JSON, sfs_view_json},
    {".env.node", SFS_INO_NODE, sfs_view_node},
    {".env.python", SFS_INO_PYTHON, sfs_view_python},
    {".status", SFS_INO_STATUS, NULL},
};

#define N_VIEWS (sizeof view_defs / sizeof view_defs[0])
#define MAX_VIEW_INO SFS_INO_DOCKER
_Static_assert(MAX_VIEW_INO < SFS_INO_FIRST_SECRET, "view inodes collide with secrets'");

static const struct view_def *view_def_of(const struct snap_entry *e)
{
    size_t i;

    for (i = 0; i < N_VIEWS; i++)
        if (view_defs[i].ino == e->ino)
            return &view_defs[i];
    return NULL;
}

static void place_view(struct snap_entry *se, const struct view_def *v, int64_t now,
                       const struct sfs_mount_opts *o)
{
    uint8_t kind = v->render ? SNAP_VIEW : SNAP_STATUS;

    set_entry(se, v->name, NULL, 0, kind, now, o); /* sizes: sfs_snap_size */
    se->ino = v->ino;
    se->gen = 1;
    if (kind == SNAP_STATUS)
        se->mode = 0444; /* never holds a value */
}

static bool has_own_perms(const struct snap_entry *se, const struct sfs_mount_opts *o)
{
    return se->uid != o->uid || se->gid != o->gid || se->mode != o->mode;
}

/* Fills s->entries from the served set and view_defs, in name order, assigning inode
 * numbers from `t` (the caller ends its build).  Sets *max_ino and *custom_perms (some
 * entry has its own owner or mode).  0 or -ENOMEM. */
static int place_entries(struct snapshot *s, const struct sfs_mount_opts *o,
                         struct inode_table *t, int64_t now, uint64_t *max_ino,
                         bool *custom_perms)
{
    size_t i, j = 0, k = 0, n = sfs_set_count(s->store);

    *max_ino = MAX_VIEW_INO;
    *custom_perms = false;
    for (i = 0; i < n; i++) {
        const sfs_entry *e = sfs_set_at(s->store, i);
        bool platform_entry = sfs_name_reserved(e->name, o->reserved_prefix);
        struct snap_entry *se;

        while (j < N_VIEWS && strcmp(view_defs[j].name, e->name) < 0)
            place_view(&s->entries[k++], &view_defs[j++], now, o);
        se = &s->entries[k++];
        set_entry(se, e->name, e->value, e->len, platform_entry ? SNAP_PLATFORM : SNAP_SECRET,
                  platform_entry ? now : e->updated, o);
        if (inode_of(t, e->name, s->generation, &se->ino, &se->gen) < 0)
            return -ENOMEM;
        if (se->ino > *max_ino)
            *max_ino = se->ino;
        if (platform_entry)
            s->n_platform++;
        else
            s->n_secrets++;
        *custom_perms |= has_own_perms(se, o);
    }
    while (j < N_VIEWS)
        place_view(&s->entries[k++], &view_defs[j++], now, o);
    s->n = k;
    return 0;
}

/* Views never widen access: they show a copy of the set without the secrets that have
 * their own owner or mode.  0 or -ENOMEM. */
static int views_leave_out_custom(struct snapshot_private *p, const struct sfs_mount_opts *o)
{
    struct snapshot *s = &p->pub;
    size_t i;

    p->view_set = sfs_set_clone(s->store);
    if (!p->view_set)
        return -ENOMEM;
    for (i = 0; i < s->n; i++) {
        const struct snap_entry *se = &s->entries[i];
        if ((se->kind == SNAP_SECRET || se->kind == SNAP_PLATFORM) && has_own_perms(se, o))
            (void)sfs_set_remove(p->view_set, se->name);
    }
    return 0;
}

/* Builds the inode index and the directory's owner and mode.  0 or -ENOMEM. */
static int index_entries(struct snapshot *s, const struct sfs_mount_opts *o, uint64_t max_ino)
{
    size_t i;

    s->ino_cap = max_ino + 1;
    s->by_ino = calloc(s->ino_cap, sizeof *s->by_ino);
    if (!s->by_ino)
        return -ENOMEM;
    s->dir_uid = o->uid;
    s->dir_gid = o->gid;
    s->dir_mode = 0;
    for (i = 0; i < s->n; i++) {
        s->by_ino[s->entries[i].ino] = &s->entries[i];
        if (s->entries[i].kind != SNAP_STATUS)
            s->dir_mode |= dir_bits_for(&s->entries[i], o->uid, o->gid);
    }
    s->dir_mode |= 0500; /* the owner can always list */
    return 0;
}

static struct snapshot_private *snap_alloc(struct inode_table *t, uint64_t generation,
                                           int64_t now)
{
    struct snapshot_private *p = calloc(1, sizeof *p);

    if (!p)
        return NULL;
    pthread_mutex_init(&p->view_lock, NULL);
    snap_track(t, p);
    atomic_init(&p->pub.refs, 1);
    atomic_init(&p->pub.inflight, 0);
    p->pub.generation = generation;
    p->pub.loaded_at = now;
    return p;
}

struct snapshot *sfs_snap_build(const struct sfs_mount_opts *o, struct inode_table *t,
                                sfs_set *store, sfs_set *platform, uint64_t generation)
{
    int64_t now = (int64_t)time(NULL);
    struct snapshot_private *p = snap_alloc(t, generation, now);
    struct snapshot *s = p ? &p->pub : NULL;
    uint64_t max_ino;
    bool custom_perms;
    int rc;

    if (!p)
        goto fail;
    s->store = store;
    store = NULL;
    if (serve_in_place(o, s->store, platform) < 0)
        goto fail;
    sfs_set_free(platform);
    platform = NULL;
    s->views = sfs_arena_new(0);
    s->entries = calloc(sfs_set_count(s->store) + N_VIEWS, sizeof *s->entries);
    if (!s->views || !s->entries)
        goto fail;
    rc = place_entries(s, o, t, now, &max_ino, &custom_perms);
    if (inodes_end(t, rc == 0) < 0 || rc < 0)
        goto fail;
    if (custom_perms && views_leave_out_custom(p, o) < 0)
        goto fail;
    if (index_entries(s, o, max_ino) < 0)
        goto fail;
    return s;
fail:
    (void)inodes_end(t, false);
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

/* Renders view `e` into out[0..cap) (cap 0: only measures); returns its full length.
 * Called with the view lock held. */
static size_t view_render(struct snapshot_private *p, const struct snap_entry *e, char *out,
                          size_t cap)
{
    const sfs_set *vs = p->view_set ? p->view_set : p->pub.store;
    const struct view_def *v = view_def_of(e);

    return v && v->render ? v->render(vs, out, cap) : 0;
}

/* Measures view `e` if it has not been; called with the view lock held. */
static void view_measure(struct snapshot_private *p, struct snap_entry *e)
{
    if (!e->measured) {
        e->size = (uint32_t)view_render(p, e, NULL, 0);
        e->measured = true;
    }
}

uint32_t sfs_snap_size(struct snapshot *s, const struct snap_entry *e)
{
    struct snapshot_private *p = (struct snapshot_private *)s;
    uint32_t size;

    if (e->kind != SNAP_VIEW)
        return e->size;
    pthread_mutex_lock(&p->view_lock);
    view_measure(p, (struct snap_entry *)e);
    size = e->size;
    pthread_mutex_unlock(&p->view_lock);
    return size;
}

const unsigned char *sfs_snap_view_data(struct snapshot *s, const struct snap_entry *e)
{
    struct snapshot_private *p = (struct snapshot_private *)s;
    struct snap_entry *me = (struct snap_entry *)e;
    const unsigned char *data;

    pthread_mutex_lock(&p->view_lock);
    view_measure(p, me);
    if (!me->data) {
        /* a large view gets an arena of its own, of exactly its size (the shared one grows
         * by doubling: .env after a 220 MB .env.json would map 440 MB); small ones share */
        sfs_arena **mem = &p->view_mem[e->ino == SFS_INO_ENV ? 0 : 1];
        size_t len = (size_t)me->size + 1;
        sfs_arena *arena;
        char *buf;
        if (len >= VIEW_OWN_ARENA && !*mem)
            *mem = sfs_arena_new(len);
        arena = len >= VIEW_OWN_ARENA ? *mem : s->views;
        buf = arena ? sfs_arena_alloc(arena, len) : NULL;
        if (buf && view_render(p, me, buf, (size_t)me->size + 1) == me->size)
            me->data = (const unsigned char *)buf;
    }
    data = me->data;
    pthread_mutex_unlock(&p->view_lock);
    return data;
}

/* Takes `p` off its table's list, wipes and frees it. */
static void snap_free(struct snapshot_private *p)
{
    struct snapshot *s = &p->pub;
    struct inode_table *t = p->table;

    pthread_mutex_lock(&t->live_lock);
    if (p->prev)
        p->prev->next = p->next;
    else
        t->live = p->next;
    if (p->next)
        p->next->prev = p->prev;
    pthread_mutex_unlock(&t->live_lock);
    sfs_set_free(s->store);
    sfs_set_free(p->view_set);
    sfs_arena_free(s->views);
    sfs_arena_free(p->view_mem[0]);
    sfs_arena_free(p->view_mem[1]);
    free(s->entries);
    free(s->by_ino);
    pthread_mutex_destroy(&p->view_lock);
    free(p);
}

void sfs_snap_unref(struct snapshot *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        snap_free((struct snapshot_private *)s);
}

void sfs_snap_hold(struct snapshot *s)
{
    atomic_fetch_add(&s->refs, 1);
    atomic_fetch_add(&s->inflight, 1);
}

void sfs_snap_release(struct snapshot *s)
{
    atomic_fetch_sub(&s->inflight, 1);
    sfs_snap_unref(s);
}

void sfs_snap_pin(struct snapshot *s)
{
    atomic_fetch_sub(&s->inflight, 1);
}

void sfs_snap_wait_idle(const struct snapshot *s)
{
    struct timespec nap = {0, 20000};

    while (atomic_load(&s->inflight) > 0)
        nanosleep(&nap, NULL);
}

bool sfs_snap_entry_changed(const struct snap_entry *a, const struct snap_entry *b)
{
    if (a->kind == SNAP_VIEW || a->kind == SNAP_STATUS)
        return true; /* cheap to re-read; comparing would render both (and their sizes are
                      * not fields to read without the view lock) */
    if (a->size != b->size || a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
        a->mtime != b->mtime || a->gen != b->gen)
        return true;
    return a->size && memcmp(a->data, b->data, a->size) != 0;
}

void sfs_snap_attr(struct snapshot *s, const struct snap_entry *e, struct stat *st)
{
    memset(st, 0, sizeof *st);
    if (!e) {
        st->st_ino = SFS_INO_ROOT;
        st->st_mode = S_IFDIR | s->dir_mode;
        st->st_nlink = 2;
        st->st_uid = s->dir_uid;
        st->st_gid = s->dir_gid;
        st->st_mtim.tv_sec = s->loaded_at;
        st->st_ctim = st->st_atim = st->st_mtim;
        return;
    }
    st->st_ino = e->ino;
    st->st_mode = S_IFREG | e->mode;
    st->st_nlink = 1;
    st->st_uid = e->uid;
    st->st_gid = e->gid;
    st->st_size = sfs_snap_size(s, e);
    st->st_mtim.tv_sec = e->mtime;
    st->st_ctim = st->st_atim = st->st_mtim;
    st->st_blksize = 4096;
    st->st_blocks = (st->st_size + 511) / 512;
}

size_t sfs_read_slice(size_t len, off_t off, size_t size, size_t *start)
{
    *start = 0;
    if (off < 0 || (size_t)off >= len)
        return 0;
    *start = (size_t)off;
    return size < len - (size_t)off ? size : len - (size_t)off;
}

void sfs_snap_readdir(const struct snapshot *s, off_t off, sfs_dirent_fn emit, void *ctx)
{
    size_t i;

    for (i = off < 0 ? 0 : (size_t)off; i < s->n + 2; i++) {
        const char *name = i == 0 ? "." : i == 1 ? ".." : s->entries[i - 2].name;
        uint64_t ino = i < 2 ? SFS_INO_ROOT : s->entries[i - 2].ino;
        if (!emit(name, ino, i < 2, (off_t)(i + 1), ctx))
            break;
    }
}
