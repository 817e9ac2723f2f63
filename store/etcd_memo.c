/* store/etcd_memo.c — the last decoded generation, so a reload decrypts only the blobs that
 * changed (store/etcd.h). */
#include <stdlib.h>
#include <string.h>

#include "store/etcd.h"

struct memo_ent {
    char *key;                  /* the value's etcd key (a name hash, not a secret) */
    size_t klen;
    unsigned char hash[SFS_ETCD_DIGEST_BYTES];
    const sfs_entry *entry;     /* in the memo's set */
};

struct sfs_etcd_memo {
    sfs_set *set;               /* a copy of what the last decode returned; never modified */
    struct memo_ent *v;         /* in key order */
    size_t n;
    unsigned char ring[SFS_ETCD_DIGEST_BYTES]; /* which key ring made it */
    unsigned char next_ring[SFS_ETCD_DIGEST_BYTES]; /* the current decode's */
};

sfs_etcd_memo *sfs_etcd_memo_new(void)
{
    return calloc(1, sizeof(sfs_etcd_memo));
}

static void memo_clear(sfs_etcd_memo *m)
{
    size_t i;

    for (i = 0; i < m->n; i++)
        free(m->v[i].key);
    free(m->v);
    sfs_set_free(m->set); /* wipes the values */
    m->v = NULL;
    m->n = 0;
    m->set = NULL;
}

void sfs_etcd_memo_free(sfs_etcd_memo *m)
{
    if (!m)
        return;
    memo_clear(m);
    free(m);
}

/* A digest of every key id in the ring, in order. */
static void ring_print(const sfs_key *ring, unsigned char out[SFS_ETCD_DIGEST_BYTES])
{
    unsigned char ids[16 * SFS_KEY_ID_BYTES];
    size_t i, n = sfs_key_count(ring);

    if (n > 16)
        n = 16; /* a ring holds at most 16 keys (crypto/key.h) */
    for (i = 0; i < n; i++)
        sfs_key_id(sfs_key_at(ring, i), ids + i * SFS_KEY_ID_BYTES);
    sfs_hash(out, SFS_ETCD_DIGEST_BYTES, ids, n * SFS_KEY_ID_BYTES, NULL, 0);
}

void sfs_etcd_memo_begin(sfs_etcd_memo *m, const sfs_key *ring)
{
    if (!m)
        return;
    ring_print(ring, m->next_ring);
    if (m->set && memcmp(m->ring, m->next_ring, sizeof m->ring) != 0)
        memo_clear(m);
}

static int cmp_key(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    return c ? c : (alen > blen) - (alen < blen);
}

const sfs_entry *sfs_etcd_memo_find(const sfs_etcd_memo *m, struct sfs_etcd_kv *kv)
{
    size_t lo = 0, hi = m ? m->n : 0;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_key(m->v[mid].key, m->v[mid].klen, kv->key, kv->klen);
        if (c == 0)
            return memcmp(m->v[mid].hash, sfs_etcd_kv_hash(kv), SFS_ETCD_DIGEST_BYTES) == 0
                       ? m->v[mid].entry : NULL;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void sfs_etcd_memo_keep(sfs_etcd_memo *m, struct sfs_etcd_kv *kvs, size_t n,
                        const char *const *names, const sfs_set *set)
{
    sfs_etcd_memo next = {0};
    size_t i;

    if (!m)
        return;
    next.set = sfs_set_clone(set);
    next.v = calloc(n ? n : 1, sizeof *next.v);
    for (i = 0; next.set && next.v && i < n; i++, next.n++) {
        struct memo_ent *me = &next.v[i];
        me->entry = sfs_set_get(next.set, names[i]);
        me->key = malloc(kvs[i].klen ? kvs[i].klen : 1);
        if (!me->entry || !me->key)
            break;
        memcpy(me->key, kvs[i].key, kvs[i].klen);
        me->klen = kvs[i].klen;
        memcpy(me->hash, sfs_etcd_kv_hash(&kvs[i]), sizeof me->hash);
    }
    memo_clear(m);
    if (!next.set || !next.v || next.n != n) {
        if (next.v && next.n < n)
            free(next.v[next.n].key); /* the one that broke off, if it got its copy */
        memo_clear(&next);
        return;
    }
    m->set = next.set;
    m->v = next.v;
    m->n = n;
    memcpy(m->ring, m->next_ring, sizeof m->ring);
}
