/* store/etcd.c — the etcd backend: a secret set as sealed blobs under one prefix.
 *
 * Location: etcd://HOST:PORT[,HOST:PORT...]/PREFIX; an endpoint may say http:// or https://,
 * one without is https when [etcd] names a CA or client certificate.  Layout and blob
 * format: store/etcd.h, store/etcd_blob.c, the README.
 *
 * Reading: a consistent range of the prefix at one revision, then the commit record says
 * which generation is current, how many values it has and their digest; the set is that,
 * exactly, or an error.  Writing: read-edit-write, one compare-and-swap on the commit's
 * mod_revision, retried; a commit whose answer was lost is looked up in the commit key's
 * history before the edit runs again; after a write, abandoned staged generations are
 * reclaimed (etcd_gen.c).  Watching: a thread mirrors the prefix's ciphertext from a watch
 * stream (it never holds the key); the caller's load decrypts from the mirror.
 */
#include "store/etcd.h"
#include "store/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto/secmem.h"
#include "util/log.h"

#define MAX_TXN_OPS 100
#define TXN_BYTE_BUDGET (SFS_ETCD_MAX_REQUEST - 16384)
#define MAX_ATTEMPTS 10
#define SCRATCH_BYTES (SFS_ETCD_MAX_VALUE + 512)

struct etcd {
    struct sfs_etcd_cfg cfg;
    char *prefix;                 /* ends in '/' */
    char *commit_key;
    sfs_etcd_conn *conn;          /* the caller's thread */
    sfs_arena *secure;            /* password and decryption scratch */
    unsigned char *scratch;
    const char *cache_path;
    bool loaded_from_etcd;

    pthread_mutex_t lock;         /* protects the mirror, the two revisions below, `running`
                                   * and `stop` */
    pthread_cond_t wake;
    struct sfs_etcd_kvs mirror;   /* the prefix's ciphertext, in key order */
    sfs_etcd_memo *memo;          /* the last decode, for a watcher's reloads to decrypt
                                   * only what changed (the loading thread's); NULL: none */
    int64_t mirror_rev;           /* the revision the mirror reflects; 0: none yet */
    int64_t change_rev;           /* the newest complete change the mirror holds */
    int64_t tried_rev;            /* what the last load read (loaded or refused) */
    char named[SFS_ETCD_GEN_HEX + 1];   /* the generation of the set last loaded */

    /* What .status shows.  Its own lock, never held while decrypting: FUSE handlers render
     * .status and must not wait for a reload. */
    pthread_mutex_t slock;
    int64_t served_rev;
    bool connected, from_cache;
    time_t since;
    char reason[256];
    char endpoint[128];
    uint64_t watch_bytes;
    size_t unref_gens, unref_bytes;   /* what the mirror holds besides that generation */

    bool running;
    volatile bool stop;
    int efd;
    pthread_t thread;
    sfs_etcd_conn *wconn;         /* the watch thread's */
    bool watch_ok;                /* the watch thread's: the current stream was created */
    char wreason[256];            /* why the last stream ended (slock) */
};

static struct etcd *E(const sfs_store *s)
{
    return s->priv;
}

/* ---- location and options ---- */

/* One endpoint at *p: [http:// | https://]HOST:PORT, ending at ',' or '/'. */
static int parse_endpoint(struct etcd *e, const char *loc, const char **p, struct sfs_err *err)
{
    size_t n = e->cfg.n_endpoints, len;
    const char *colon;
    int tls = -1;

    if (strncmp(*p, "https://", 8) == 0)
        tls = 1, *p += 8;
    else if (strncmp(*p, "http://", 7) == 0)
        tls = 0, *p += 7;
    len = strcspn(*p, ",/");
    colon = memchr(*p, ':', len);
    if (!len || !colon || colon == *p || colon + 1 == *p + len ||
        strspn(colon + 1, "0123456789") < (size_t)(*p + len - colon - 1))
        return sfs_err_set(err, -EINVAL, "%s: endpoint '%.*s' is not HOST:PORT; write "
                           "etcd://HOST:PORT[,HOST:PORT...]/PREFIX", loc, (int)len, *p);
    if (n == SFS_ETCD_MAX_ENDPOINTS)
        return sfs_err_set(err, -EINVAL, "%s: more than %d endpoints", loc,
                           SFS_ETCD_MAX_ENDPOINTS);
    if (!(e->cfg.endpoints[n] = strndup(*p, len)))
        return sfs_err_set(err, -ENOMEM, "out of memory");
    e->cfg.tls_at[n] = tls < 0 ? e->cfg.tls : tls == 1;
    e->cfg.n_endpoints++;
    *p += len;
    return 0;
}

static int parse_location(struct etcd *e, const char *loc, const char *rest,
                          struct sfs_err *err)
{
    const char *p = rest, *slash;
    size_t plen;
    int rc = 0;

    if (strchr(rest, '@'))
        return sfs_err_set(err, -EINVAL, "%s: credentials do not belong in the location; put "
                           "user and password_file in the [etcd] section", loc);
    while (rc == 0 && (rc = parse_endpoint(e, loc, &p, err)) == 0 && *p == ',')
        p++;
    if (rc < 0)
        return rc;
    slash = p;
    if (*slash != '/' || !slash[1] || strspn(slash, "/") == strlen(slash))
        return sfs_err_set(err, -EINVAL, "%s: no prefix; write etcd://HOST:PORT/PREFIX, e.g. "
                           "etcd://127.0.0.1:2379/secretfs/prod/", loc);
    if (strlen(slash) > 512)
        return sfs_err_set(err, -EINVAL, "%s: the prefix is over 512 bytes", loc);
    plen = strlen(slash);
    e->prefix = malloc(plen + 2);
    e->commit_key = malloc(plen + 8);
    if (!e->prefix || !e->commit_key)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    snprintf(e->prefix, plen + 2, "%s%s", slash, slash[plen - 1] == '/' ? "" : "/");
    snprintf(e->commit_key, plen + 8, "%scommit", e->prefix);
    return 0;
}

/* Reads the password file with the key file's checks (no symlink, regular, mode 0600). */
static int read_password(struct etcd *e, const char *path, struct sfs_err *err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), rc = 0;
    ssize_t n;

    if (fd < 0)
        return sfs_err_set(err, -errno, "%s: cannot open the etcd password file: %s%s", path,
                           strerror(errno), errno == ELOOP ? " (a symlink; point "
                           "password_file at the real file)" : "");
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = sfs_err_set(err, -EINVAL, "%s: not a regular file; point [etcd] password_file at "
                         "the password file", path);
        goto out_close;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        rc = sfs_err_set(err, -EPERM, "%s: mode %04o lets group or others at the etcd "
                         "password; chmod 600 it", path, (unsigned)(st.st_mode & 07777));
        goto out_close;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        rc = sfs_err_set(err, -EPERM, "%s: owned by uid %u, not by this user or root; chown "
                         "it", path, (unsigned)st.st_uid);
        goto out_close;
    }
    e->cfg.password = sfs_arena_alloc(e->secure, 1024);
    n = e->cfg.password ? read(fd, e->cfg.password, 1023) : -1;
    if (n <= 0 || n == 1023) {
        rc = sfs_err_set(err, -EINVAL, "%s: %s; the etcd password file holds one line", path,
                         n == 1023 ? "over 1 KiB" : "empty or unreadable");
        goto out_close;
    }
    while (n > 0 && (e->cfg.password[n - 1] == '\n' || e->cfg.password[n - 1] == '\r'))
        e->cfg.password[--n] = '\0';
out_close:
    close(fd);
    return rc;
}

static void etcd_free(struct etcd *e)
{
    size_t i;

    for (i = 0; i < e->cfg.n_endpoints; i++)
        free(e->cfg.endpoints[i]);
    sfs_etcd_conn_free(e->conn);
    sfs_etcd_kvs_clear(&e->mirror);
    sfs_etcd_memo_free(e->memo);
    sfs_arena_free(e->secure);
    pthread_mutex_destroy(&e->lock);
    pthread_mutex_destroy(&e->slock);
    pthread_cond_destroy(&e->wake);
    free(e->prefix);
    free(e->commit_key);
    free(e);
}

static int etcd_open(sfs_store *s, const char *rest, struct sfs_err *err)
{
    const struct sfs_store_options *o = &s->opts;
    struct etcd *e = calloc(1, sizeof *e);
    int rc;

    if (!e)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    pthread_mutex_init(&e->lock, NULL);
    pthread_mutex_init(&e->slock, NULL);
    pthread_cond_init(&e->wake, NULL);
    e->efd = -1;
    e->cfg.tls = o->ca_file || o->cert_file;
    e->cfg.ca_file = o->ca_file;
    e->cfg.cert_file = o->cert_file;
    e->cfg.key_file = o->key_file;
    e->cfg.user = o->user;
    e->cfg.dial_ms = o->dial_timeout_ms ? o->dial_timeout_ms : 5000;
    e->cfg.request_ms = o->request_timeout_ms ? o->request_timeout_ms : 10000;
    e->cache_path = o->cache_path;
    rc = parse_location(e, s->location, rest, err);
    if (rc == 0 && !((e->secure = sfs_arena_new(SCRATCH_BYTES + 2048)) &&
                     (e->scratch = sfs_arena_alloc(e->secure, SCRATCH_BYTES))))
        rc = sfs_err_set(err, -ENOMEM, "out of secure memory");
    if (rc == 0 && o->user && !o->password_file)
        rc = sfs_err_set(err, -EINVAL, "%s: [etcd] user is set but password_file is not; "
                         "name the file holding the password", s->location);
    if (rc == 0 && o->password_file)
        rc = read_password(e, o->password_file, err);
    if (rc == 0 && !(e->conn = sfs_etcd_conn_new(&e->cfg)))
        rc = sfs_err_set(err, -ENOMEM, "cannot set up the etcd client (libcurl, or locked "
                         "memory for the auth token: see `ulimit -l`)");
    snprintf(e->endpoint, sizeof e->endpoint, "%s", e->cfg.endpoints[0] ? e->cfg.endpoints[0]
                                                                        : "");
    if (rc < 0) {
        etcd_free(e);
        return rc;
    }
    s->priv = e;
    return 0;
}

static void stop_watch(struct etcd *e);

static void etcd_close(sfs_store *s)
{
    struct etcd *e = E(s);

    stop_watch(e);
    etcd_free(e);
}

/* ---- connection state (for .status) ---- */

/* Records the outcome of talking to etcd.  Returns whether the state flipped.  slock held. */
static bool note_state(struct etcd *e, bool ok, const char *endpoint, const char *reason)
{
    bool flipped = ok != e->connected;

    if (ok) {
        e->from_cache = false;
        e->reason[0] = '\0';
    } else {
        if (e->connected || !e->since)
            e->since = time(NULL);
        snprintf(e->reason, sizeof e->reason, "%s", reason);
    }
    e->connected = ok;
    snprintf(e->endpoint, sizeof e->endpoint, "%s", endpoint);
    return flipped;
}

static void note(struct etcd *e, bool ok, const char *endpoint, const char *reason)
{
    pthread_mutex_lock(&e->slock);
    (void)note_state(e, ok, endpoint, reason);
    pthread_mutex_unlock(&e->slock);
}

static bool is_network(int rc)
{
    return rc == -ETIMEDOUT || rc == -ECONNREFUSED || rc == -EHOSTUNREACH || rc == -EIO ||
           rc == -EPIPE;
}

/* ---- assembling a set from a key-ordered list of blobs ---- */

/* Index of the first entry whose key is >= key (klen bytes). */
static size_t lower_bound(const struct sfs_etcd_kvs *l, const char *key, size_t klen)
{
    size_t lo = 0, hi = l->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2, n = l->v[mid].klen < klen ? l->v[mid].klen : klen;
        int c = memcmp(l->v[mid].key, key, n);
        if (c < 0 || (c == 0 && l->v[mid].klen < klen))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const struct sfs_etcd_kv *find(const struct sfs_etcd_kvs *l, const char *key)
{
    size_t klen = strlen(key), i = lower_bound(l, key, klen);

    return i < l->n && l->v[i].klen == klen && memcmp(l->v[i].key, key, klen) == 0 ? &l->v[i]
                                                                                   : NULL;
}

/* The value keys of generation `gen`: [*first, *first + *n) of the list. */
static void gen_range(const struct etcd *e, const struct sfs_etcd_kvs *l, const char *gen,
                      size_t *first, size_t *n)
{
    char p[600];
    size_t plen = (size_t)snprintf(p, sizeof p, "%sg/%s/", e->prefix, gen), i;

    *first = lower_bound(l, p, plen);
    for (i = *first; i < l->n && l->v[i].klen >= plen && memcmp(l->v[i].key, p, plen) == 0;)
        i++;
    *n = i - *first;
}

/* Checks count and digest of the generation a commit names against the list. */
static int check_gen(const struct etcd *e, struct sfs_etcd_kvs *l,
                     const struct sfs_etcd_commit *c, size_t *first, struct sfs_err *err)
{
    struct sfs_etcd_keyhash *kh;
    unsigned char digest[SFS_ETCD_DIGEST_BYTES];
    size_t n, i;
    int rc;

    gen_range(e, l, c->gen, first, &n);
    if (n != c->count)
        return sfs_err_set(err, -EBADMSG, "%s: generation %s holds %zu values but its commit "
                           "record says %u (deleted, added or stale blobs); refusing the set",
                           e->commit_key, c->gen, n, c->count);
    kh = calloc(n ? n : 1, sizeof *kh);
    if (!kh)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    for (i = 0; i < n; i++) {
        kh[i].key = l->v[*first + i].key;
        kh[i].klen = l->v[*first + i].klen;
        memcpy(kh[i].hash, sfs_etcd_kv_hash(&l->v[*first + i]), sizeof kh[i].hash);
    }
    rc = sfs_etcd_digest(kh, n, digest);
    if (rc == 0 && !sfs_equal_ct(digest, c->digest, sizeof digest))
        rc = sfs_err_set(err, -EBADMSG, "%s: the values of generation %s do not match the "
                         "commit record's digest (a blob was changed, copied or replayed); "
                         "refusing the set", e->commit_key, c->gen);
    else if (rc < 0)
        sfs_err_set(err, rc, "out of memory");
    free(kh);
    return rc;
}

/* Decodes the `n` values at l->v[first...] into `set` (appended, unsorted), each blob the
 * memo knows copied from it, the others opened; names[i] gets each one's name (in set). */
static int decode_values(struct etcd *e, const sfs_key *key, struct sfs_etcd_kvs *l,
                         size_t first, size_t n, sfs_set *set, const char **names,
                         struct sfs_err *err)
{
    sfs_etcd_names *ids = NULL;
    size_t i, reused = 0;
    int rc = 0;

    for (i = 0; i < n && rc == 0; i++) {
        struct sfs_etcd_kv *kv = &l->v[first + i];
        const sfs_entry *was = sfs_etcd_memo_find(e->memo, kv);
        if (was) {
            reused++;
            rc = sfs_set_append(set, was->name, was->value, was->len, was->created,
                                was->updated);
            if (rc < 0)
                rc = sfs_err_set(err, rc, "out of secure memory loading the secret set");
        } else {
            if (!ids && !(ids = sfs_etcd_names_new(key)))
                return sfs_err_set(err, -ENOMEM, "out of secure memory");
            rc = sfs_etcd_open_value(key, ids, kv->key, kv->klen, kv->val, kv->vlen,
                                     e->scratch, set, err);
        }
        if (rc == 0)
            names[i] = sfs_set_at(set, sfs_set_count(set) - 1)->name;
    }
    sfs_etcd_names_free(ids);
    if (rc == 0 && n > 0)
        sfs_debug("etcd: decoded %zu values, %zu of them unchanged since the last load", n,
                  reused);
    return rc;
}

/* Decodes the set a list holds.  On 0, *out is a new set and *c its commit record; with no
 * commit record at all, returns -ENOENT (and *c zeroed). */
static int decode_list(struct etcd *e, const sfs_key *key, struct sfs_etcd_kvs *l,
                       sfs_set **out, struct sfs_etcd_commit *c, struct sfs_err *err)
{
    const struct sfs_etcd_kv *ckv = find(l, e->commit_key);
    const char **names = NULL;
    sfs_set *set = NULL;
    size_t first;
    int rc;

    *out = NULL;
    memset(c, 0, sizeof *c);
    if (!ckv)
        return sfs_err_set(err, -ENOENT, "no secret set at %s (no %s); create one with "
                           "`secretfs update-secrets` or `secretfs copy`", e->prefix,
                           e->commit_key);
    rc = sfs_etcd_open_commit(key, ckv->key, ckv->klen, ckv->val, ckv->vlen, c, err);
    if (rc == 0)
        rc = check_gen(e, l, c, &first, err);
    if (rc < 0)
        return rc;
    names = calloc(c->count ? c->count : 1, sizeof *names);
    set = names ? sfs_set_new(0) : NULL;
    if (!set) {
        rc = sfs_err_set(err, -ENOMEM, "out of secure memory");
        goto out;
    }
    sfs_etcd_memo_begin(e->memo, key);
    rc = decode_values(e, key, l, first, c->count, set, names, err);
    /* the keys are name hashes: sorting once beats inserting each in name order */
    if (rc == 0 && sfs_set_sort(set) < 0)
        rc = sfs_err_set(err, -EBADMSG, "%s: two values of generation %s carry the same name",
                         e->commit_key, c->gen);
    if (rc == 0)
        sfs_etcd_memo_keep(e->memo, &l->v[first], c->count, names, set);
out:
    free(names);
    if (rc < 0)
        sfs_set_free(set);
    else
        *out = set;
    return rc;
}

/* ---- the mirror ---- */

/* Counts, for .status, the generations of `l` other than the one last loaded (staged ones a
 * writer has not committed, or abandoned).  `lock` held when `l` is the mirror. */
static void count_unreferenced(struct etcd *e, const struct sfs_etcd_kvs *l)
{
    size_t gens, bytes;

    sfs_etcd_unreferenced(e->prefix, l, e->named[0] ? e->named : NULL, &gens, &bytes);
    pthread_mutex_lock(&e->slock);
    e->unref_gens = gens;
    e->unref_bytes = bytes;
    pthread_mutex_unlock(&e->slock);
}

/* Makes `l` the mirror if it is at least as new (taking its entries), else drops it. */
static void install_mirror(struct etcd *e, struct sfs_etcd_kvs *l)
{
    pthread_mutex_lock(&e->lock);
    if (l->revision >= e->mirror_rev) {
        struct sfs_etcd_kvs old = e->mirror;
        e->mirror = *l;
        e->mirror_rev = l->revision;
        *l = old;
    }
    pthread_mutex_unlock(&e->lock);
    sfs_etcd_kvs_clear(l);
}

/* One decoded watch event. */
struct event {
    struct sfs_etcd_kv kv;
    bool del;
    size_t seq;
};

static int decode_event(json_t *ev, struct event *out)
{
    json_t *kv = json_object_get(ev, "kv");
    const char *type = json_string_value(json_object_get(ev, "type"));
    unsigned char *k;

    memset(out, 0, sizeof *out);
    out->del = type && strcmp(type, "DELETE") == 0;
    if (sfs_etcd_unb64(json_object_get(kv, "key"), &k, &out->kv.klen) < 0 || !k)
        return -EPROTO;
    out->kv.key = (char *)k;
    out->kv.mod_rev = sfs_etcd_int(kv, "mod_revision");
    if (!out->del && sfs_etcd_unb64(json_object_get(kv, "value"), &out->kv.val,
                                    &out->kv.vlen) < 0) {
        free(out->kv.key);
        return -EPROTO;
    }
    return 0;
}

/* Applies one event by binary search (a few events per response: the common case).  Takes
 * the event's bytes when it keeps them (zeroing ev->kv); else the caller frees them. */
static int apply_one(struct sfs_etcd_kvs *m, struct event *ev)
{
    size_t i = lower_bound(m, ev->kv.key, ev->kv.klen);
    bool found = i < m->n && m->v[i].klen == ev->kv.klen &&
                 memcmp(m->v[i].key, ev->kv.key, ev->kv.klen) == 0;

    if (found) {
        free(m->v[i].key);
        free(m->v[i].val);
        if (ev->del) {
            memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof m->v[0]);
            m->n--;
            return 0;
        }
    } else if (ev->del) {
        return 0;
    } else {
        if (sfs_etcd_kvs_reserve(m) < 0)
            return -ENOMEM;
        memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof m->v[0]);
        m->n++;
    }
    m->v[i] = ev->kv;
    memset(&ev->kv, 0, sizeof ev->kv);
    return 0;
}

static int cmp_event(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    size_t n = x->kv.klen < y->kv.klen ? x->kv.klen : y->kv.klen;
    int c = memcmp(x->kv.key, y->kv.key, n);

    if (c == 0)
        c = (x->kv.klen > y->kv.klen) - (x->kv.klen < y->kv.klen);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Applies many events at once: the mirror and the events sorted together, the last word on
 * each key kept (a large import or a generation's deletion arrives as thousands). */
static int apply_many(struct sfs_etcd_kvs *m, struct event *evs, size_t n)
{
    struct event *all = malloc((m->n + n) * sizeof *all);
    struct sfs_etcd_kv *v;
    size_t i, k = 0, total = m->n + n;

    if (!all)
        return -ENOMEM;
    v = malloc(total * sizeof *v);
    if (!v) {
        free(all);
        return -ENOMEM;
    }
    for (i = 0; i < m->n; i++)
        all[i] = (struct event){ m->v[i], false, 0 };
    for (i = 0; i < n; i++) {
        all[m->n + i] = evs[i];
        all[m->n + i].seq = i + 1;
        memset(&evs[i].kv, 0, sizeof evs[i].kv);
    }
    qsort(all, total, sizeof *all, cmp_event);
    for (i = 0; i < total; i++) {
        bool last = i + 1 == total || all[i].kv.klen != all[i + 1].kv.klen ||
                    memcmp(all[i].kv.key, all[i + 1].kv.key, all[i].kv.klen) != 0;
        if (last && !all[i].del) {
            v[k++] = all[i].kv;
        } else {
            free(all[i].kv.key);
            free(all[i].kv.val);
        }
    }
    free(m->v);
    free(all);
    m->v = v;
    m->n = k;
    m->cap = total;
    return 0;
}

/* Applies a watch response's events to the mirror; sets *commit_hit when the commit key is
 * among them.  Events at or below the mirror's revision are already in it.  Lock held. */
static int apply_events(struct etcd *e, json_t *events, bool *commit_hit)
{
    size_t n = json_array_size(events), i, k = 0, clen = strlen(e->commit_key);
    struct event *evs = calloc(n ? n : 1, sizeof *evs);
    int64_t top = e->mirror_rev;
    int rc = evs ? 0 : -ENOMEM;

    for (i = 0; i < n && rc == 0; i++) {
        rc = decode_event(json_array_get(events, i), &evs[k]);
        if (rc < 0 || evs[k].kv.mod_rev <= e->mirror_rev) {
            free(evs[k].kv.key);
            free(evs[k].kv.val);
            continue;
        }
        if (evs[k].kv.klen == clen && memcmp(evs[k].kv.key, e->commit_key, clen) == 0)
            *commit_hit = true;
        if (evs[k].kv.mod_rev > top)
            top = evs[k].kv.mod_rev;
        k++;
    }
    if (rc == 0 && k > 16)
        rc = apply_many(&e->mirror, evs, k);
    for (i = 0; i < k && rc == 0 && k <= 16; i++)
        rc = apply_one(&e->mirror, &evs[i]);
    for (i = 0; i < k; i++) {
        free(evs[i].kv.key);
        free(evs[i].kv.val);
    }
    free(evs);
    if (rc == 0)
        e->mirror_rev = top;
    return rc;
}

/* ---- load ---- */

static int load_fresh(struct etcd *e, const sfs_key *key, sfs_set **out, uint64_t *revision,
                      uint64_t *version, struct sfs_err *err)
{
    struct sfs_etcd_kvs l;
    struct sfs_etcd_commit c;
    int rc = sfs_etcd_range_prefix(e->conn, e->prefix, &l, err);

    if (rc < 0 && !is_network(rc))
        note(e, true, sfs_etcd_conn_endpoint(e->conn), "");
    else
        note(e, rc == 0, sfs_etcd_conn_endpoint(e->conn), err ? err->msg : "unreachable");
    if (rc < 0)
        return rc;
    rc = decode_list(e, key, &l, out, &c, err);
    *revision = (uint64_t)l.revision;
    *version = c.set_version;
    pthread_mutex_lock(&e->lock);
    if (l.revision > e->tried_rev)
        e->tried_rev = l.revision;
    if (rc == 0) {
        memcpy(e->named, c.gen, sizeof e->named);
        count_unreferenced(e, &l);
    }
    pthread_mutex_unlock(&e->lock);
    install_mirror(e, &l);
    return rc;
}

static int load_mirror(struct etcd *e, const sfs_key *key, sfs_set **out, uint64_t *revision,
                       uint64_t *version, struct sfs_err *err)
{
    struct sfs_etcd_commit c;
    int rc;

    pthread_mutex_lock(&e->lock);
    rc = decode_list(e, key, &e->mirror, out, &c, err);
    *revision = (uint64_t)e->mirror_rev;
    *version = c.set_version;
    e->tried_rev = e->mirror_rev;
    if (rc == 0) {
        memcpy(e->named, c.gen, sizeof e->named);
        count_unreferenced(e, &e->mirror);
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

/* The local sealed cache (the file store's format, same key). */
static void write_cache(struct etcd *e, const sfs_key *key, const sfs_set *set,
                        uint64_t version)
{
    struct sfs_err err;

    if (e->cache_path &&
        sfs_store_write_file_versioned(e->cache_path, key, set, version, &err) < 0)
        sfs_warn("etcd cache: %s (the daemon keeps serving; it just cannot start from the "
                 "cache after a reboot)", err.msg);
}

static int read_cache(struct etcd *e, const sfs_key *key, sfs_set **out, uint64_t *version,
                      struct sfs_err *err)
{
    return e->cache_path ? sfs_store_read_file_versioned(e->cache_path, key, out, version, err)
                         : -ENOENT;
}

/* Serves the cache when etcd cannot be reached at start.  Returns 0 or `rc`. */
static int fall_back_to_cache(struct etcd *e, const sfs_key *key, int rc, sfs_set **out,
                              uint64_t *version, struct sfs_err *err)
{
    struct sfs_err cerr;

    if (read_cache(e, key, out, version, &cerr) < 0)
        return rc;
    sfs_warn("%s; serving the local cache %s until etcd answers", err ? err->msg : "etcd "
             "unreachable", e->cache_path);
    pthread_mutex_lock(&e->slock);
    e->from_cache = true;
    pthread_mutex_unlock(&e->slock);
    return 0;
}

/* Loads the set (from the mirror while the watch runs, unless SFS_LOAD_FRESH), keeps the
 * local cache, and falls back to it when etcd cannot be reached at start.  The set version
 * is the commit record's (the cache keeps it too). */
static int etcd_load_meta(sfs_store *s, const sfs_key *key, unsigned flags, sfs_set **out,
                          struct sfs_store_meta *meta, struct sfs_err *err)
{
    struct etcd *e = E(s);
    uint64_t revision = 0, version = 0;
    bool mirror;
    int rc;

    pthread_mutex_lock(&e->lock);
    mirror = e->running && e->mirror_rev > 0 && !(flags & SFS_LOAD_FRESH);
    pthread_mutex_unlock(&e->lock);
    if (!e->loaded_from_etcd && e->cache_path && !mirror)
        sfs_etcd_conn_budget(e->conn, e->cfg.dial_ms);
    rc = mirror ? load_mirror(e, key, out, &revision, &version, err)
                : load_fresh(e, key, out, &revision, &version, err);
    sfs_etcd_conn_budget(e->conn, 0);
    if (rc == 0) {
        e->loaded_from_etcd = true;
        pthread_mutex_lock(&e->slock);
        e->served_rev = (int64_t)revision;
        pthread_mutex_unlock(&e->slock);
        write_cache(e, key, *out, version);
    } else if (is_network(rc) && !e->loaded_from_etcd && e->cache_path) {
        rc = fall_back_to_cache(e, key, rc, out, &version, err);
        revision = 0;
    }
    meta->revision = revision;
    meta->version = version;
    meta->has_version = rc == 0;
    return rc;
}

static int etcd_load(sfs_store *s, const sfs_key *key, unsigned flags, sfs_set **out,
                     uint64_t *revision, struct sfs_err *err)
{
    struct sfs_store_meta meta;
    int rc = etcd_load_meta(s, key, flags, out, &meta, err);

    *revision = meta.revision;
    return rc;
}

/* The key ids the set uses now: every blob of a generation is sealed by the key that sealed
 * its commit record (a write under another first key rewrites the whole set), so the
 * commit's key id is the one. */
static int etcd_key_ids(sfs_store *s, unsigned char (*ids)[SFS_KEY_ID_BYTES], size_t cap,
                        size_t *n, struct sfs_err *err)
{
    struct etcd *e = E(s);
    struct sfs_etcd_kvs l;
    const struct sfs_etcd_kv *kv;
    int rc = sfs_etcd_range_prefix(e->conn, e->commit_key, &l, err);

    *n = 0;
    if (rc < 0)
        return rc;
    kv = find(&l, e->commit_key);
    if (!kv)
        rc = -ENOENT;
    else if (kv->vlen < 6 + SFS_KEY_ID_BYTES)
        rc = sfs_err_set(err, -EBADMSG, "%s: not a secretfs etcd blob", e->commit_key);
    else if (cap > 0) {
        memcpy(ids[0], kv->val + 6, SFS_KEY_ID_BYTES);
        *n = 1;
    }
    sfs_etcd_kvs_clear(&l);
    return rc;
}

/* ---- the watch thread ---- */

enum { W_RESYNC = 1, W_BROKEN = 2 };

static void signal_fd(struct etcd *e)
{
    uint64_t one = 1;

    if (write(e->efd, &one, sizeof one) < 0) {
        /* The counter is already nonzero: the reader will wake anyway. */
    }
}

/* Handles one watch response (the watch thread). */
static int on_watch(json_t *r, bool is_error, void *ctx)
{
    struct etcd *e = ctx;
    const char *why = json_string_value(json_object_get(r, is_error ? "message"
                                                                    : "cancel_reason"));
    bool hit = false, flipped;
    int rc = 0;

    if (!is_error && sfs_etcd_int(r, "compact_revision") > 0)
        return W_RESYNC;
    if (is_error || json_is_true(json_object_get(r, "canceled"))) {
        pthread_mutex_lock(&e->slock);
        snprintf(e->wreason, sizeof e->wreason, "%s: watch %s: %s",
                 sfs_etcd_conn_endpoint(e->wconn), is_error ? "failed" : "canceled",
                 why ? why : "no reason given");
        pthread_mutex_unlock(&e->slock);
        return W_BROKEN;
    }
    e->watch_ok = true;
    pthread_mutex_lock(&e->slock);
    flipped = note_state(e, true, sfs_etcd_conn_endpoint(e->wconn), "");
    e->watch_bytes = sfs_etcd_conn_received(e->wconn);
    pthread_mutex_unlock(&e->slock);
    pthread_mutex_lock(&e->lock);
    if (json_array_size(json_object_get(r, "events")))
        rc = apply_events(e, json_object_get(r, "events"), &hit);
    else if (!json_is_true(json_object_get(r, "created")) &&
             sfs_etcd_int(json_object_get(r, "header"), "revision") > e->mirror_rev)
        e->mirror_rev = sfs_etcd_int(json_object_get(r, "header"), "revision");
    if (hit)
        e->change_rev = e->mirror_rev;   /* the reload counts what else the mirror holds */
    else if (rc == 0 && json_array_size(json_object_get(r, "events")))
        count_unreferenced(e, &e->mirror);   /* staged (or reclaimed) blobs only */
    pthread_mutex_unlock(&e->lock);
    if (hit || flipped)
        signal_fd(e);   /* a flip alone only wakes the owner to refresh its status */
    return rc < 0 ? W_BROKEN : 0;
}

/* A full read into the mirror (start without a mirror, or after compaction). */
static int resync(struct etcd *e, struct sfs_err *err)
{
    struct sfs_etcd_kvs l;
    int rc = sfs_etcd_range_prefix(e->wconn, e->prefix, &l, err);

    if (rc < 0)
        return rc;
    install_mirror(e, &l);
    pthread_mutex_lock(&e->lock);
    e->change_rev = e->mirror_rev;
    pthread_mutex_unlock(&e->lock);
    signal_fd(e);
    return 0;
}

/* Waits `ms` or until close. */
static void pause_ms(struct etcd *e, unsigned ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&e->lock);
    if (!e->stop)
        pthread_cond_timedwait(&e->wake, &e->lock, &ts);
    pthread_mutex_unlock(&e->lock);
}

static void broke(struct etcd *e, int rc, const struct sfs_err *err)
{
    bool flipped;

    pthread_mutex_lock(&e->slock);
    flipped = note_state(e, false, sfs_etcd_conn_endpoint(e->wconn),
                         rc == W_BROKEN ? e->wreason : err->msg);
    pthread_mutex_unlock(&e->slock);
    if (flipped)
        signal_fd(e);
}

static void *watch_main(void *arg)
{
    struct etcd *e = arg;
    unsigned backoff = 100;
    bool need_resync;
    int64_t from;
    sigset_t all;

    /* No signal is ever handled here: a signal frame would save this thread's registers,
     * which carry pieces of its auth token and requests, on its stack. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    pthread_mutex_lock(&e->lock);
    need_resync = e->mirror_rev == 0;
    pthread_mutex_unlock(&e->lock);
    while (!e->stop) {
        struct sfs_err err = { "" };
        int rc = need_resync ? resync(e, &err) : 0;
        if (rc == 0) {
            need_resync = false;
            pthread_mutex_lock(&e->lock);
            from = e->mirror_rev + 1;
            pthread_mutex_unlock(&e->lock);
            e->watch_ok = false;
            rc = sfs_etcd_watch(e->wconn, e->prefix, from, on_watch, e, &e->stop, &err);
        }
        if (e->stop)
            break;
        if (rc == W_RESYNC) {
            need_resync = true;
            continue;
        }
        broke(e, rc, &err);
        if (e->watch_ok)
            backoff = 100;   /* it had been streaming: retry soon */
        sfs_etcd_conn_next(e->wconn);
        pause_ms(e, backoff + (unsigned)(time(NULL) % 50));
        backoff = backoff < 2000 ? backoff * 2 : 2000;
    }
    return NULL;
}

static int etcd_watch(sfs_store *s, struct sfs_err *err)
{
    struct etcd *e = E(s);

    if (e->running)
        return 0;
    e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->efd < 0)
        return sfs_err_set(err, -errno, "eventfd: %s", strerror(errno));
    e->wconn = sfs_etcd_conn_new(&e->cfg);
    if (!e->wconn || pthread_create(&e->thread, NULL, watch_main, e) != 0) {
        sfs_etcd_conn_free(e->wconn);
        e->wconn = NULL;
        close(e->efd);
        e->efd = -1;
        return sfs_err_set(err, -ENOMEM, "cannot start the etcd watch thread");
    }
    pthread_mutex_lock(&e->lock);
    e->running = true;
    if (!e->memo)
        e->memo = sfs_etcd_memo_new(); /* a watcher reloads: keep what each load decoded */
    pthread_mutex_unlock(&e->lock);
    return 0;
}

static void stop_watch(struct etcd *e)
{
    if (!e->wconn)
        return;
    pthread_mutex_lock(&e->lock);
    e->stop = true;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
    sfs_etcd_watch_wakeup(e->wconn);
    pthread_join(e->thread, NULL);
    sfs_etcd_conn_free(e->wconn);
    e->wconn = NULL;
    e->running = false;
    close(e->efd);
    e->efd = -1;
}

static int etcd_watch_fd(const sfs_store *s)
{
    return E(s)->efd;
}

static bool etcd_watch_due(sfs_store *s, int *timeout_ms)
{
    struct etcd *e = E(s);
    uint64_t n;
    bool due;

    if (e->efd >= 0 && read(e->efd, &n, sizeof n) < 0) {
        /* EAGAIN: nothing pending. */
    }
    pthread_mutex_lock(&e->lock);
    due = e->change_rev > e->tried_rev;
    pthread_mutex_unlock(&e->lock);
    *timeout_ms = due ? 0 : -1;   /* due until a load reads it, even if this answer is lost */
    return due;
}

static size_t etcd_status(const sfs_store *s, char *buf, size_t cap)
{
    struct etcd *e = E(s);
    char when[32] = "";
    struct tm tm;
    int n, m = 0;

    pthread_mutex_lock(&e->slock);
    if (!e->connected && e->since && gmtime_r(&e->since, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (e->connected || !e->since)
        n = snprintf(buf, cap, "revision=%lld\nconnection=%s\nendpoint=%s\n"
                     "watch_received_bytes=%llu\n", (long long)e->served_rev,
                     e->connected ? "connected" : "not yet contacted", e->endpoint,
                     (unsigned long long)e->watch_bytes);
    else
        n = snprintf(buf, cap, "revision=%lld\nconnection=retrying since %s: %s%s\n"
                     "endpoint=%s\nwatch_received_bytes=%llu\n", (long long)e->served_rev,
                     when, e->reason, e->from_cache ? "; serving the local cache" : "",
                     e->endpoint, (unsigned long long)e->watch_bytes);
    if (n >= 0 && (size_t)n < cap)
        m = snprintf(buf + n, cap - (size_t)n, "unreferenced_generations=%zu\n"
                     "unreferenced_bytes=%zu\n", e->unref_gens, e->unref_bytes);
    pthread_mutex_unlock(&e->slock);
    if (n < 0 || m < 0)
        return 0;
    n += m;
    return (size_t)n >= cap ? cap - 1 : (size_t)n;
}

/* ---- update: read, edit, compare-and-swap ---- */

/* One value of the set to be committed: its key, its blob when it must be written (NULL:
 * already stored, unchanged) and the hash of its stored bytes. */
struct item {
    char *key;
    size_t klen;
    unsigned char *blob;
    size_t blen;
    unsigned char hash[SFS_ETCD_DIGEST_BYTES];
};

struct plan {
    char gen[SFS_ETCD_GEN_HEX + 1];
    struct item *items;
    size_t n;
    char **dels;              /* keys of the removed values (small change only) */
    size_t n_dels;
    size_t n_puts, put_bytes;
    unsigned char *commit;    /* the sealed commit record being written */
    size_t commit_len;
    time_t stage_start;       /* a staged generation: when staging began (its mark) */
    unsigned budget_s;        /* the seconds this writer gives itself to commit it */
    int64_t deadline_ms;      /* monotonic: staging start + budget */
};

static void plan_clear(struct plan *p)
{
    size_t i;

    for (i = 0; i < p->n; i++) {
        free(p->items[i].key);
        free(p->items[i].blob);
    }
    for (i = 0; i < p->n_dels; i++)
        free(p->dels[i]);
    free(p->items);
    free(p->dels);
    free(p->commit);
    memset(p, 0, sizeof *p);
}

static bool same_entry(const sfs_entry *a, const sfs_entry *b)
{
    return a->len == b->len && a->created == b->created && a->updated == b->updated &&
           sfs_equal_ct(a->value, b->value, a->len);
}

static char *value_key(const struct etcd *e, const sfs_etcd_names *names, const char *gen,
                       const char *name)
{
    char id[SFS_ETCD_ID_HEX + 1], *k;

    sfs_etcd_name_id(names, name, id);
    return asprintf(&k, "%sg/%s/%s", e->prefix, gen, id) < 0 ? NULL : k;
}

/* Whether writing `next` over `old` in place fits one txn (ops and bytes). */
static bool fits_one_txn(const sfs_set *old, const sfs_set *next)
{
    size_t i, ops = 1, bytes = 1024;

    for (i = 0; i < sfs_set_count(next); i++) {
        const sfs_entry *n = sfs_set_at(next, i), *o = sfs_set_get(old, n->name);
        if (!o || !same_entry(o, n)) {
            ops++;
            bytes += (n->len + 600) / 3 * 4 + 300;
        }
    }
    for (i = 0; i < sfs_set_count(old); i++)
        ops += !sfs_set_get(next, sfs_set_at(old, i)->name);
    return ops <= MAX_TXN_OPS && bytes <= TXN_BYTE_BUDGET;
}

/* Fills one item of the plan for entry `n`, reusing the stored blob when `reuse` has it. */
static int plan_item(struct etcd *e, const sfs_key *key, const sfs_etcd_names *names,
                     const struct sfs_etcd_kvs *l, const sfs_entry *o, const sfs_entry *n,
                     struct item *it, struct plan *p, struct sfs_err *err)
{
    const struct sfs_etcd_kv *kv;
    int rc;

    it->key = value_key(e, names, p->gen, n->name);
    if (!it->key)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    it->klen = strlen(it->key);
    kv = o && same_entry(o, n) ? find(l, it->key) : NULL;
    if (kv) {
        sfs_etcd_blob_hash(kv->val, kv->vlen, it->hash);
        return 0;
    }
    rc = sfs_etcd_seal_value(key, it->key, it->klen, n, e->scratch, &it->blob, &it->blen, err);
    if (rc < 0)
        return rc;
    sfs_etcd_blob_hash(it->blob, it->blen, it->hash);
    p->n_puts++;
    p->put_bytes += sfs_base64_len(it->blen) + sfs_base64_len(it->klen) + 64;
    return 0;
}

/* Plans the write of `next`.  In place (`old` given: the same generation, unchanged blobs
 * kept, removed ones deleted) or into the fresh generation already in p->gen. */
static int make_plan(struct etcd *e, const sfs_key *key, const struct sfs_etcd_kvs *l,
                     const sfs_set *old, const sfs_set *next, struct plan *p,
                     struct sfs_err *err)
{
    sfs_etcd_names *names = sfs_etcd_names_new(key);
    size_t i, n = sfs_set_count(next), no = old ? sfs_set_count(old) : 0;
    int rc = 0;

    p->items = calloc(n ? n : 1, sizeof *p->items);
    p->dels = calloc(no ? no : 1, sizeof *p->dels);
    if (!names || !p->items || !p->dels) {
        rc = sfs_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < n && rc == 0; i++, p->n++) {
        const sfs_entry *ne = sfs_set_at(next, i);
        rc = plan_item(e, key, names, l, old ? sfs_set_get(old, ne->name) : NULL, ne,
                       &p->items[i], p, err);
    }
    for (i = 0; i < no && rc == 0; i++) {
        const char *name = sfs_set_at(old, i)->name;
        if (sfs_set_get(next, name))
            continue;
        if (!(p->dels[p->n_dels] = value_key(e, names, p->gen, name)))
            rc = sfs_err_set(err, -ENOMEM, "out of memory");
        else
            p->n_dels++;
    }
out:
    sfs_etcd_names_free(names);
    return rc;
}

/* The commit record's put op for the plan. */
static json_t *commit_op(struct etcd *e, const sfs_key *key, struct plan *p,
                         uint64_t version, struct sfs_err *err)
{
    struct sfs_etcd_keyhash *kh = calloc(p->n ? p->n : 1, sizeof *kh);
    struct sfs_etcd_commit c = { .set_version = version, .count = (uint32_t)p->n };
    unsigned char *blob = NULL;
    size_t i, blen;
    json_t *op = NULL;

    if (!kh) {
        sfs_err_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(c.gen, p->gen, sizeof c.gen);
    for (i = 0; i < p->n; i++) {
        kh[i].key = p->items[i].key;
        kh[i].klen = p->items[i].klen;
        memcpy(kh[i].hash, p->items[i].hash, sizeof kh[i].hash);
    }
    if (sfs_etcd_digest(kh, p->n, c.digest) == 0 &&
        sfs_etcd_seal_commit(key, e->commit_key, strlen(e->commit_key), &c, &blob, &blen,
                             err) == 0)
        op = sfs_etcd_put_op(e->commit_key, strlen(e->commit_key), blob, blen);
    if (!op)
        sfs_err_set(err, -ENOMEM, "out of memory sealing the commit record");
    p->commit = blob;
    p->commit_len = blen;
    free(kh);
    return op;
}

/* {"compare":[the commit is as we read it], "success":[]} */
static json_t *guarded_txn(struct etcd *e, int64_t commit_mod_rev)
{
    json_t *cmp = sfs_etcd_cmp_mod(e->commit_key, commit_mod_rev);

    return cmp ? json_pack("{s:[o],s:[]}", "compare", cmp, "success") : NULL;
}

/* Appends the puts of items [from, to) to `ops`. */
static int add_puts(json_t *ops, const struct plan *p, size_t from, size_t to)
{
    size_t i;

    for (i = from; i < to; i++)
        if (p->items[i].blob &&
            json_array_append_new(ops, sfs_etcd_put_op(p->items[i].key, p->items[i].klen,
                                                       p->items[i].blob, p->items[i].blen)) < 0)
            return -ENOMEM;
    return 0;
}

/* Sends `txn`; maps "compare lost" to -EAGAIN.  *rev (if not NULL) gets the revision a
 * successful txn made, and then the txn goes out on new connections (sfs_etcd_txn_once):
 * a commit, whose every copy counts. */
static int send_txn(struct etcd *e, json_t *txn, int64_t *rev, struct sfs_err *err)
{
    bool ok = false;
    int64_t made = 0;
    int rc = !txn ? sfs_err_set(err, -ENOMEM, "out of memory building an etcd txn")
             : rev ? sfs_etcd_txn_once(e->conn, txn, &ok, &made, err)
                   : sfs_etcd_txn(e->conn, txn, &ok, NULL, err);

    if (rc == -EACCES)
        sfs_err_prefix(err, "cannot write %s", e->prefix);
    if (rc == 0 && ok && rev)
        *rev = made;
    return rc < 0 ? rc : ok ? 0 : -EAGAIN;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sets the staging budget of `p`: a full request_timeout for each batch, the commit and
 * the lookup of a lost commit answer.  Past it the writer gives up without committing, so
 * its mark's START + BUDGET is a promise: nothing of this writer lands after it. */
static void set_budget(const struct etcd *e, struct plan *p)
{
    uint64_t ms = (uint64_t)(p->n / (MAX_TXN_OPS - 1) + p->put_bytes / TXN_BYTE_BUDGET + 3) *
                  e->cfg.request_ms;

    p->stage_start = time(NULL);
    p->budget_s = (unsigned)((ms + 999) / 1000);
    p->deadline_ms = mono_ms() + (int64_t)ms;
}

/* 0 while one more call still fits the staging budget, else -ETIMEDOUT. */
static int within_budget(const struct etcd *e, const struct plan *p, struct sfs_err *err)
{
    if (mono_ms() + (int64_t)e->cfg.request_ms <= p->deadline_ms)
        return 0;
    return sfs_err_set(err, -ETIMEDOUT, "%s: staging generation %s took longer than the %u s "
                       "this writer gave itself; giving up without committing (it will be "
                       "reclaimed); try again, or raise [etcd] request_timeout", e->prefix,
                       p->gen, p->budget_s);
}

/* The end of the staging batch that starts at item i and has room for `ops` puts. */
static size_t batch_end(const struct plan *p, size_t i, size_t ops)
{
    size_t j = i, bytes = 1024;

    while (j < p->n && j - i < ops &&
           (j == i || bytes + sfs_base64_len(p->items[j].blen) + 400 <= TXN_BYTE_BUDGET))
        bytes += sfs_base64_len(p->items[j++].blen) + 400;
    return j;
}

/* The first ops of staging batch `first`: the generation's mark with the first batch, a
 * compare that it is still there with every later one (a reclaimed generation is never
 * written to again). */
static int stage_head(struct etcd *e, const struct plan *p, json_t *txn, bool first)
{
    char mark[600], val[SFS_ETCD_MARK_MAX];

    sfs_etcd_mark_key(e->prefix, p->gen, mark, sizeof mark);
    if (!first)
        return json_array_append_new(json_object_get(txn, "compare"),
                                     sfs_etcd_cmp_exists(mark));
    sfs_etcd_mark_value(p->stage_start, p->budget_s, val);
    return json_array_append_new(json_object_get(txn, "success"),
                                 sfs_etcd_put_op(mark, strlen(mark),
                                                 (const unsigned char *)val, strlen(val)));
}

/* Writes a fresh generation: its mark and first blobs in one txn, the other blobs in
 * batches that fit etcd's limits.  Returns 0 (and the commit still fits the budget),
 * -EAGAIN (the mark is gone, reclaimed: start over), -ETIMEDOUT or -errno. */
static int stage_gen(struct etcd *e, const struct plan *p, struct sfs_err *err)
{
    size_t i = 0;
    bool first = true;
    int rc = 0;

    while ((first || i < p->n) && rc == 0) {
        json_t *txn = json_pack("{s:[],s:[]}", "compare", "success");
        size_t j = batch_end(p, i, MAX_TXN_OPS - 1);
        rc = txn ? stage_head(e, p, txn, first) : -ENOMEM;
        if (rc == 0)
            rc = add_puts(json_object_get(txn, "success"), p, i, j);
        rc = rc < 0 ? sfs_err_set(err, -ENOMEM, "out of memory") : within_budget(e, p, err);
        if (rc == 0)
            rc = send_txn(e, txn, NULL, err);
        json_decref(txn);
        i = j;
        first = false;
    }
    return rc == 0 ? within_budget(e, p, err) : rc;
}

static void delete_gen(struct etcd *e, const char *gen)
{
    char p[600];
    struct sfs_err err;
    json_t *txn;

    sfs_etcd_mark_key(e->prefix, gen, p, sizeof p);   /* the mark, and the blobs after it */
    txn = json_pack("{s:[o]}", "success", sfs_etcd_delete_prefix_op(p));
    if (send_txn(e, txn, NULL, &err) < 0)
        sfs_warn("etcd: leaving the unreferenced generation %s behind: %s", p, err.msg);
    json_decref(txn);
}

static void new_gen(char out[SFS_ETCD_GEN_HEX + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char r[SFS_ETCD_GEN_HEX / 2];
    size_t i;

    sfs_random_bytes(r, sizeof r);
    for (i = 0; i < sizeof r; i++) {
        out[2 * i] = digits[r[i] >> 4];
        out[2 * i + 1] = digits[r[i] & 15];
    }
    out[SFS_ETCD_GEN_HEX] = '\0';
}

/* What the write starts from. */
struct current {
    struct sfs_etcd_kvs l;
    sfs_set *set;
    struct sfs_etcd_commit c;
    bool exists;
    int64_t commit_mod;
};

/* Whether the current commit record was sealed by `key`'s first key.  A value's etcd key is
 * keyed by the key that sealed it, so a set written under another key (a rotation: the key
 * file's first key changed) is rewritten whole, under the new first key, not in place. */
static bool sealed_by_first_key(const struct etcd *e, const struct current *cur,
                                const sfs_key *key)
{
    const struct sfs_etcd_kv *kv = find(&cur->l, e->commit_key);
    unsigned char id[SFS_KEY_ID_BYTES];

    sfs_key_id(key, id);
    return kv && kv->vlen >= 6 + SFS_KEY_ID_BYTES &&
           memcmp(kv->val + 6, id, SFS_KEY_ID_BYTES) == 0;
}

/* ---- lost answers ----
 *
 * A commit txn whose answer is lost (the connection reset after etcd applied it, or etcd
 * said "request timed out" and may apply it still) has an unknown outcome, and so does one
 * whose compare failed after the gateway client resent it: the compare may have failed
 * against its own first copy.  Every commit txn of one update that compared the same state
 * of the commit key (`base`) can land only as the first change of that key after the
 * revision the writer read it at, and at most one of them can: so that change's value
 * (each record is unique by its nonce) says which landed, if any. */

struct lost {
    int64_t base, read_rev;                 /* the commit's mod_revision (0: absent), and
                                             * the revision it was read at */
    char old_gen[SFS_ETCD_GEN_HEX + 1];     /* the generation `base` names ("": none) */
    size_t n;
    struct lost_txn {
        unsigned char *commit;              /* the sealed record it would have stored */
        size_t len;
        char gen[SFS_ETCD_GEN_HEX + 1];
        bool staged;                        /* gen is a fresh, staged generation */
    } t[MAX_ATTEMPTS];
};

static void lost_clear(struct lost *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        free(l->t[i].commit);
    memset(l, 0, sizeof *l);
}

/* The commit key as of revision `rev` (0: now): *mod its mod_revision (0: absent), *val its
 * value (malloc'd, NULL when absent).  -ESTALE when `rev` is compacted. */
static int commit_at(struct etcd *e, int64_t rev, int64_t *mod, unsigned char **val,
                     size_t *vlen, struct sfs_err *err)
{
    json_t *req = json_pack("{s:o}", "key", sfs_etcd_b64(e->commit_key,
                                                         strlen(e->commit_key)));
    json_t *resp = NULL, *kv;
    char r[24];
    int rc;

    *mod = 0;
    *val = NULL;
    *vlen = 0;
    snprintf(r, sizeof r, "%lld", (long long)rev);
    if (req && rev && json_object_set_new(req, "revision", json_string(r)) < 0)
        json_decref(req), req = NULL;
    rc = req ? sfs_etcd_call(e->conn, "/v3/kv/range", req, &resp, err)
             : sfs_err_set(err, -ENOMEM, "out of memory");
    kv = json_array_get(json_object_get(resp, "kvs"), 0);
    if (rc == 0 && kv) {
        *mod = sfs_etcd_int(kv, "mod_revision");
        if (sfs_etcd_unb64(json_object_get(kv, "value"), val, vlen) < 0)
            rc = sfs_err_set(err, -EPROTO, "%s: a range answer with a malformed value",
                             e->commit_key);
    }
    json_decref(resp);
    json_decref(req);
    return rc;
}

/* The first change of the commit key after l->read_rev: 1 with its value in *val and its
 * revision in *at, 0 when the key is still as read (it may change yet), or -errno (-ESTALE:
 * etcd compacted that history).  A binary search over revisions; m(rev), the key's
 * mod_revision as of rev, is l->base at lo and a change at hi. */
static int first_change(struct etcd *e, const struct lost *l, unsigned char **val,
                        size_t *vlen, int64_t *at, struct sfs_err *err)
{
    int64_t lo = l->read_rev, hi, m;
    unsigned char *v;
    size_t n;
    int rc = commit_at(e, 0, &hi, val, vlen, err);

    while (rc == 0 && hi != l->base && hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        rc = commit_at(e, mid, &m, &v, &n, err);
        if (rc == 0 && m == l->base) {
            lo = mid;
            free(v);
        } else if (rc == 0) {
            free(*val);
            *val = v, *vlen = n, hi = m;
        }
    }
    if (rc == 0 && hi == 0 && l->base)
        rc = sfs_err_set(err, -EIO, "%s was deleted meanwhile", e->commit_key);
    if (rc < 0 || hi == l->base) {
        free(*val);
        *val = NULL;
        return rc;
    }
    *at = hi;
    return 1;
}

/* What became of the lost commits: 1 (l->t[*which] landed, at revision *at), 0 (none did,
 * and none can any more), 2 (the commit key has not changed: one may still land), or -errno
 * when etcd cannot tell. */
static int resolve_lost(struct etcd *e, const struct lost *l, size_t *which, int64_t *at,
                        struct sfs_err *err)
{
    unsigned char *val = NULL;
    size_t vlen = 0, i;
    int rc = first_change(e, l, &val, &vlen, at, err);

    if (rc <= 0)
        return rc < 0 ? rc : 2;
    for (rc = 0, i = 0; i < l->n && rc == 0; i++)
        if (l->t[i].len == vlen && memcmp(l->t[i].commit, val, vlen) == 0) {
            *which = i;
            rc = 1;
        }
    free(val);
    return rc;
}

/* Remembers the commit txn of `p` over `cur`, whose outcome is unknown. */
static int note_lost(struct lost *l, const struct current *cur, const struct plan *p,
                     bool staged, struct sfs_err *err)
{
    struct lost_txn *t = &l->t[l->n];

    if (l->n == 0) {
        l->base = cur->commit_mod;
        l->read_rev = cur->l.revision;
        snprintf(l->old_gen, sizeof l->old_gen, "%s", cur->exists ? cur->c.gen : "");
    }
    if (l->n == MAX_ATTEMPTS || !(t->commit = malloc(p->commit_len ? p->commit_len : 1)))
        return sfs_err_set(err, -ENOMEM, "out of memory");
    memcpy(t->commit, p->commit, p->commit_len);
    t->len = p->commit_len;
    memcpy(t->gen, p->gen, sizeof t->gen);
    t->staged = staged;
    l->n++;
    return 0;
}

/* Deletes the staged generations of the lost commits but t[keep] (SIZE_MAX: all): none of
 * them is the set, and none can become it. */
static void drop_lost_gens(struct etcd *e, const struct lost *l, size_t keep)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        if (i != keep && l->t[i].staged)
            delete_gen(e, l->t[i].gen);
}

/* After a read that shows the commit key changed since the lost commits' base: whether
 * that change was one of them.  Returns 1 (it landed, at *at: the update is done), 0 (none
 * did: edit the set just read), or -errno (etcd cannot tell). */
static int settle_lost(struct etcd *e, struct lost *l, int64_t *at, struct sfs_err *err)
{
    size_t which = SIZE_MAX;
    int rc = resolve_lost(e, l, &which, at, err);

    if (rc == 2)
        rc = sfs_err_set(err, -EIO, "%s: etcd's members disagree about the commit record",
                         e->commit_key);
    if (rc < 0) {
        sfs_err_prefix(err, "cannot tell whether the commit whose answer was lost landed");
        return rc;
    }
    if (rc == 1)
        sfs_info("etcd: %s: the answer to this write's commit was lost; it had landed "
                 "(revision %lld)", e->prefix, (long long)*at);
    if (rc == 1 && l->t[which].staged && l->old_gen[0])
        delete_gen(e, l->old_gen);
    drop_lost_gens(e, l, rc == 1 ? which : SIZE_MAX);
    lost_clear(l);
    return rc;
}

/* Sends the commit txn.  0: committed (at *rev); -EAGAIN: it lost the compare, for sure;
 * -EINPROGRESS: its outcome is unknown (recorded in `l`; the next read resolves it). */
static int send_commit(struct etcd *e, json_t *txn, const struct current *cur,
                       const struct plan *p, bool staged, struct lost *l, int64_t *rev,
                       struct sfs_err *err)
{
    int rc = send_txn(e, txn, rev, err);

    if (rc == 0 || !sfs_etcd_conn_unsure(e->conn))
        return rc;
    return note_lost(l, cur, p, staged, err) < 0 ? -ENOMEM : -EINPROGRESS;
}

/* The commit txn of plan `p` over `cur`: the compare on the commit key (and, staged, that
 * the generation's mark is still there), the in-place puts and deletes (staged: the mark's
 * delete), the new commit record.  NULL on failure (err set). */
static json_t *commit_txn(struct etcd *e, const sfs_key *key, const struct current *cur,
                          struct plan *p, bool in_place, struct sfs_err *err)
{
    json_t *txn = guarded_txn(e, cur->commit_mod), *ops = json_object_get(txn, "success");
    json_t *op = NULL;
    size_t i;
    int rc = txn ? 0 : -ENOMEM;

    if (rc == 0 && in_place)
        rc = add_puts(ops, p, 0, p->n);
    if (rc == 0 && !in_place) {
        char mark[600];
        sfs_etcd_mark_key(e->prefix, p->gen, mark, sizeof mark);
        rc = json_array_append_new(json_object_get(txn, "compare"), sfs_etcd_cmp_exists(mark));
        if (rc == 0)
            rc = json_array_append_new(ops, json_pack("{s:{s:o}}", "request_delete_range",
                                                      "key", sfs_etcd_b64(mark, strlen(mark))));
    }
    for (i = 0; rc == 0 && i < p->n_dels; i++)
        rc = json_array_append_new(ops, json_pack("{s:{s:o}}", "request_delete_range",
                                                  "key", sfs_etcd_b64(p->dels[i],
                                                                      strlen(p->dels[i]))));
    if (rc < 0)
        sfs_err_set(err, -ENOMEM, "out of memory building the commit txn");
    else if (!(op = commit_op(e, key, p, cur->c.set_version + 1, err)) ||
             json_array_append_new(ops, op) < 0)
        rc = -ENOMEM;
    if (rc < 0) {
        json_decref(txn);
        txn = NULL;
    }
    return txn;
}

/* Commits `next` over `cur`: one txn in place, or a staged fresh generation.  Returns 0
 * (committed at *rev), SFS_STORE_UNCHANGED, -EAGAIN (another writer won: retry),
 * -EINPROGRESS (outcome unknown, in `lost`: retry after a read), or -errno. */
static int commit_set(struct etcd *e, const sfs_key *key, struct current *cur,
                      const sfs_set *next, struct lost *lost, int64_t *rev,
                      struct sfs_err *err)
{
    bool in_place = cur->exists && fits_one_txn(cur->set, next) &&
                    sealed_by_first_key(e, cur, key);
    struct plan p = { 0 };
    json_t *txn = NULL;
    bool staging = false;
    int rc;

    if (in_place)
        memcpy(p.gen, cur->c.gen, sizeof p.gen);
    else
        new_gen(p.gen);
    rc = make_plan(e, key, &cur->l, in_place ? cur->set : NULL, next, &p, err);
    if (rc == 0 && in_place && p.n_puts == 0 && p.n_dels == 0)
        rc = SFS_STORE_UNCHANGED;
    if (rc == 0 && !in_place) {
        staging = true;
        set_budget(e, &p);
        rc = stage_gen(e, &p, err);
    }
    if (rc == 0 && !(txn = commit_txn(e, key, cur, &p, in_place, err)))
        rc = -ENOMEM;
    if (rc == 0)
        rc = send_commit(e, txn, cur, &p, !in_place, lost, rev, err);
    /* a commit of unknown outcome keeps its generation until `lost` is resolved */
    if (staging && rc == 0 && cur->exists)
        delete_gen(e, cur->c.gen);
    else if (staging && rc < 0 && rc != -EINPROGRESS)
        delete_gen(e, p.gen);
    json_decref(txn);
    plan_clear(&p);
    return rc;
}

static void current_clear(struct current *cur)
{
    sfs_etcd_kvs_clear(&cur->l);
    sfs_set_free(cur->set);
    memset(cur, 0, sizeof *cur);
}

static int read_current(struct etcd *e, const sfs_key *key, struct current *cur,
                        struct sfs_err *err)
{
    const struct sfs_etcd_kv *ckv;
    int rc = sfs_etcd_range_prefix(e->conn, e->prefix, &cur->l, err);

    note(e, rc == 0 || !is_network(rc), sfs_etcd_conn_endpoint(e->conn),
         err ? err->msg : "unreachable");
    if (rc < 0)
        return rc;
    rc = decode_list(e, key, &cur->l, &cur->set, &cur->c, err);
    cur->exists = rc == 0;
    if (rc == -ENOENT && !find(&cur->l, e->commit_key)) {
        cur->set = sfs_set_new(0);
        rc = cur->set ? 0 : sfs_err_set(err, -ENOMEM, "out of secure memory");
    }
    ckv = find(&cur->l, e->commit_key);
    cur->commit_mod = ckv ? ckv->mod_rev : 0;
    return rc;
}

/* One attempt: `edit` on a copy of the set just read, then the commit. */
static int edit_and_commit(struct etcd *e, const sfs_key *key, struct current *cur,
                           sfs_store_edit_fn edit, void *ctx, struct lost *lost,
                           int64_t *rev, struct sfs_err *err)
{
    sfs_set *next = sfs_set_clone(cur->set);
    int rc = next ? edit(next, ctx, err) : sfs_err_set(err, -ENOMEM, "out of secure memory");

    if (rc == 0)
        rc = commit_set(e, key, cur, next, lost, rev, err);
    sfs_set_free(next);
    return rc;
}

/* The result of an update that ran out of attempts or whose commit outcome is unknown. */
static int update_failed(sfs_store *s, const struct lost *lost, int rc, struct sfs_err *err)
{
    if (rc == -EAGAIN)
        return sfs_err_set(err, -EBUSY, "%s: other writers changed the set %d times while "
                           "this update ran; try again", s->location, MAX_ATTEMPTS);
    if (rc == -EINPROGRESS)
        rc = sfs_err_set(err, -EIO, "%s: no member answered whether the commit landed",
                         s->location);
    if (lost->n)
        sfs_err_prefix(err, "the outcome of this write is unknown: the answer to its commit "
                       "was lost (check with `secretfs list`)");
    return rc;
}

static int etcd_update(sfs_store *s, const sfs_key *key, sfs_store_edit_fn edit, void *ctx,
                       struct sfs_err *err)
{
    struct etcd *e = E(s);
    struct current cur = { 0 };
    struct lost lost = { 0 };
    int64_t rev = 0;
    int rc = -EAGAIN, attempt;

    for (attempt = 0; attempt < MAX_ATTEMPTS && (rc == -EAGAIN || rc == -EINPROGRESS);
         attempt++) {
        if (attempt) {
            unsigned char r;
            sfs_random_bytes(&r, 1);
            pause_ms(e, 20u * (unsigned)attempt + r % 50u);
        }
        current_clear(&cur);
        rc = read_current(e, key, &cur, err);
        if (rc == 0 && lost.n && cur.commit_mod != lost.base &&
            (rc = settle_lost(e, &lost, &rev, err)) == 1) {
            rc = 0;   /* a commit of an earlier attempt was that change: done */
            rev = 0;  /* (reclaim against the commit just read) */
            break;
        }
        if (rc == 0)
            rc = edit_and_commit(e, key, &cur, edit, ctx, &lost, &rev, err);
    }
    if (rc == 0)
        drop_lost_gens(e, &lost, SIZE_MAX);   /* this update's own commit won over them */
    else if (rc < 0)
        rc = update_failed(s, &lost, rc, err);
    if (rc >= 0 && (rev || cur.commit_mod))
        sfs_etcd_reclaim(e->conn, e->prefix, e->commit_key, &cur.l,
                         cur.exists ? cur.c.gen : NULL, rev ? rev : cur.commit_mod,
                         time(NULL));
    lost_clear(&lost);
    current_clear(&cur);
    return rc;
}


const struct sfs_store_backend sfs_etcd_backend = {
    .kind = "etcd",
    .scheme = "etcd://",
    .open = etcd_open,
    .close = etcd_close,
    .load = etcd_load,
    .load_meta = etcd_load_meta,
    .key_ids = etcd_key_ids,
    .update = etcd_update,
    .watch = etcd_watch,
    .watch_fd = etcd_watch_fd,
    .watch_due = etcd_watch_due,
    .status = etcd_status,
};
