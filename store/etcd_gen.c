/* store/etcd_gen.c — generations that are not the set: staging marks, and the reclaim of
 * those their writers abandoned (a crash between staging and commit, a lost compare whose
 * cleanup failed, an old set whose deletion failed).
 *
 * A writer that stages a generation puts its mark, PREFIX g/GEN, in the txn of the first
 * blobs: "START BUDGET", the wall-clock second staging began and the seconds the writer gives
 * itself to commit (it gives up, without committing, once they are spent).  Its later batches
 * and its commit compare that the mark is still there; the commit deletes it.  A writer that
 * has just committed deletes every other generation whose mark is older than START + BUDGET
 * + SFS_ETCD_RECLAIM_SLACK, mark and blobs in one txn that compares the commit key (so it
 * names none of them) and the mark (as read).  So a reclaim and a late commit exclude each
 * other through the mark whatever the clocks say; the age only decides when a generation
 * counts as abandoned.  A generation without a mark (left by an older secretfs, or an old set
 * whose deletion failed) gets one, dated now, and goes the same way later.
 */
#include "store/etcd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* One generation of a key list: its mark (or NULL), how many value blobs, their bytes. */
struct gen_group {
    char gen[SFS_ETCD_GEN_HEX + 1];
    const struct sfs_etcd_kv *mark;
    size_t values, bytes;
};

void sfs_etcd_mark_key(const char *prefix, const char *gen, char *out, size_t cap)
{
    snprintf(out, cap, "%sg/%s", prefix, gen);
}

void sfs_etcd_mark_value(time_t start, unsigned budget_s, char out[SFS_ETCD_MARK_MAX])
{
    snprintf(out, SFS_ETCD_MARK_MAX, "%lld %u", (long long)start, budget_s);
}

/* The generation a key belongs to (its 16 hex characters after PREFIX g/, followed by the
 * end of the key or '/'), or false for a key that is not one of ours. */
static bool gen_of(const char *prefix, size_t plen, const struct sfs_etcd_kv *kv, char *gen,
                   bool *is_mark)
{
    size_t glen = plen + 2 + SFS_ETCD_GEN_HEX, i;

    if (kv->klen < glen || memcmp(kv->key, prefix, plen) != 0 ||
        memcmp(kv->key + plen, "g/", 2) != 0 || (kv->klen > glen && kv->key[glen] != '/'))
        return false;
    for (i = 0; i < SFS_ETCD_GEN_HEX; i++) {
        char ch = kv->key[plen + 2 + i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
        gen[i] = ch;
    }
    gen[SFS_ETCD_GEN_HEX] = '\0';
    *is_mark = kv->klen == glen;
    return true;
}

/* The next generation of `l` from l->v[*i] (keys come in byte order, a mark just before its
 * blobs), advancing *i past it.  False when there is none. */
static bool next_gen(const char *prefix, const struct sfs_etcd_kvs *l, size_t *i,
                     struct gen_group *g)
{
    size_t plen = strlen(prefix);
    char gen[SFS_ETCD_GEN_HEX + 1];
    bool is_mark;

    memset(g, 0, sizeof *g);
    for (; *i < l->n; (*i)++) {
        const struct sfs_etcd_kv *kv = &l->v[*i];
        if (!gen_of(prefix, plen, kv, gen, &is_mark))
            continue;
        if (g->gen[0] && strcmp(gen, g->gen) != 0)
            break;
        memcpy(g->gen, gen, sizeof g->gen);
        if (is_mark)
            g->mark = kv;
        else
            g->values++, g->bytes += kv->vlen;
    }
    return g->gen[0] != '\0';
}

/* When the mark says the generation is abandoned (0 for a mark that is not one of ours). */
static time_t abandoned_at(const struct sfs_etcd_kv *mark, time_t *start)
{
    long long t = 0;
    unsigned budget = 0;
    char text[SFS_ETCD_MARK_MAX];

    snprintf(text, sizeof text, "%.*s", (int)(mark->vlen < sizeof text ? mark->vlen
                                                                       : sizeof text - 1),
             (const char *)mark->val);
    if (sscanf(text, "%lld %u", &t, &budget) != 2 || t <= 0)
        return *start = 0;
    *start = (time_t)t;
    return (time_t)t + (time_t)budget + SFS_ETCD_RECLAIM_SLACK;
}

/* Sends a txn that compares the commit key with `commit_rev`, plus `cmp` and `op` (taken).
 * Returns 1 (done), 0 (a compare failed: something changed, leave it) or -errno. */
static int guarded(sfs_etcd_conn *c, const char *commit_key, int64_t commit_rev, json_t *cmp,
                   json_t *op, struct sfs_err *err)
{
    json_t *txn = json_pack("{s:[o,o],s:[o]}", "compare",
                            sfs_etcd_cmp_mod(commit_key, commit_rev), cmp, "success", op);
    bool ok = false;
    int rc = txn ? sfs_etcd_txn_once(c, txn, &ok, NULL, err)
                 : sfs_err_set(err, -ENOMEM, "out of memory");

    json_decref(txn);
    return rc < 0 ? rc : ok;
}

static void when_text(time_t t, char *out, size_t cap)
{
    struct tm tm;

    if (!t || !gmtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, cap, "at an unknown time");
}

/* Deletes one abandoned generation (its mark and its blobs). */
static void drop_gen(sfs_etcd_conn *c, const char *prefix, const char *commit_key,
                     int64_t commit_rev, const struct gen_group *g, time_t start)
{
    char mark[600], when[32];
    struct sfs_err err = { "" };
    int rc;

    sfs_etcd_mark_key(prefix, g->gen, mark, sizeof mark);
    rc = guarded(c, commit_key, commit_rev, sfs_etcd_cmp_mod(mark, g->mark->mod_rev),
                 sfs_etcd_delete_prefix_op(mark), &err);
    when_text(start, when, sizeof when);
    if (rc == 1)
        sfs_info("etcd: %s: reclaimed generation %s (%zu values, %zu bytes), staged %s and "
                 "never committed", prefix, g->gen, g->values, g->bytes, when);
    else if (rc < 0)
        sfs_warn("etcd: %s: cannot reclaim the abandoned generation %s (%zu values, %zu "
                 "bytes): %s", prefix, g->gen, g->values, g->bytes, err.msg);
}

/* Marks a generation that has no mark, dated now. */
static void mark_gen(sfs_etcd_conn *c, const char *prefix, const char *commit_key,
                     int64_t commit_rev, const struct gen_group *g, time_t now)
{
    char mark[600], val[SFS_ETCD_MARK_MAX], when[32];
    struct sfs_err err = { "" };
    int rc;

    sfs_etcd_mark_key(prefix, g->gen, mark, sizeof mark);
    sfs_etcd_mark_value(now, 0, val);
    rc = guarded(c, commit_key, commit_rev, sfs_etcd_cmp_mod(mark, 0),
                 sfs_etcd_put_op(mark, strlen(mark), (const unsigned char *)val, strlen(val)),
                 &err);
    when_text(now + SFS_ETCD_RECLAIM_SLACK, when, sizeof when);
    if (rc == 1)
        sfs_info("etcd: %s: generation %s (%zu values, %zu bytes) is not the set and has no "
                 "staging mark; marked it, to be reclaimed after %s", prefix, g->gen,
                 g->values, g->bytes, when);
    else if (rc < 0)
        sfs_warn("etcd: %s: cannot mark the unreferenced generation %s: %s", prefix, g->gen,
                 err.msg);
}

void sfs_etcd_reclaim(sfs_etcd_conn *c, const char *prefix, const char *commit_key,
                      const struct sfs_etcd_kvs *l, const char *named, int64_t commit_rev,
                      time_t now)
{
    struct gen_group g;
    size_t i = 0, young = 0;
    time_t start;

    while (next_gen(prefix, l, &i, &g)) {
        if (named && strcmp(g.gen, named) == 0)
            continue;
        if (!g.mark)
            mark_gen(c, prefix, commit_key, commit_rev, &g, now);
        else if (abandoned_at(g.mark, &start) <= now)
            drop_gen(c, prefix, commit_key, commit_rev, &g, start);
        else
            young++;
    }
    if (young)
        sfs_debug("etcd: %s: %zu staged generation(s) not committed yet, left alone (a writer "
                  "may be at work)", prefix, young);
}

void sfs_etcd_unreferenced(const char *prefix, const struct sfs_etcd_kvs *l,
                           const char *named, size_t *gens, size_t *bytes)
{
    struct gen_group g;
    size_t i = 0;

    *gens = *bytes = 0;
    while (next_gen(prefix, l, &i, &g))
        if (!named || strcmp(g.gen, named) != 0)
            (*gens)++, *bytes += g.bytes + (g.mark ? g.mark->vlen : 0);
}
