/* tests/etcd/test_etcd.c — the etcd backend against a real cluster, through store/store.h.
 *
 * Run by run_etcd.py, which starts the cluster and passes:
 *   argv[1]            the scenario (roundtrip, big, atomic, race, tamper, compact,
 *                      killwatch (then quorum lost and back), auth)
 *   SFS_ETCD_EP        "HOST:PORT,HOST:PORT,..." of the members
 *   SFS_ETCD_PREFIX    a prefix of this run ("/sfs-test-XXXX/")
 *   SFS_CANARY         a token every value carries (the driver greps the data dirs for it)
 *   SFS_ETCD_RO_PW / SFS_ETCD_RW_PW   password files (auth)
 * A scenario that needs the cluster changed prints "STEP what" and waits for a line on stdin.
 * Values never reach the output: checks print names and sizes only.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../unit/check.h"
#include "crypto/secmem.h"
#include "store/etcd.h"
#include "store/store.h"

static const char *endpoints, *prefix, *canary;
static sfs_key *key, *other_key;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void step(const char *what)
{
    char line[64];

    printf("STEP %s\n", what);
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        exit(2);
}

/* A store handle on etcd://EPS/PREFIX with options `o` (NULL: defaults); exits on failure. */
static sfs_store *open_at(const char *eps, const struct sfs_store_options *o)
{
    char loc[1024];
    struct sfs_err err;
    sfs_store *s = NULL;

    snprintf(loc, sizeof loc, "etcd://%s%s", eps, prefix);
    if (sfs_store_open(loc, o, &s, &err) < 0) {
        fprintf(stderr, "open %s: %s\n", loc, err.msg);
        exit(1);
    }
    return s;
}

static sfs_store *open_all(void)
{
    return open_at(endpoints, NULL);
}

/* The i-th endpoint of SFS_ETCD_EP. */
static const char *member(size_t i, char *buf, size_t cap)
{
    const char *p = endpoints;

    while (i-- && p)
        p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
    snprintf(buf, cap, "%.*s", p ? (int)strcspn(p, ",") : 0, p ? p : "");
    return buf;
}

static int load(sfs_store *s, unsigned flags, sfs_set **out, struct sfs_err *err)
{
    return sfs_store_load(s, key, flags, out, NULL, err);
}

struct puts {
    size_t n;
    char **names;
    unsigned char **values;
    size_t *lens;
};

static int edit_put(sfs_set *set, void *ctx, struct sfs_err *err)
{
    struct puts *p = ctx;
    size_t i;

    for (i = 0; i < p->n; i++)
        if (sfs_set_put(set, p->names[i], p->values[i], p->lens[i], 0, 1) < 0)
            return sfs_err_set(err, -ENOMEM, "put");
    return 0;
}

static void puts_free(struct puts *p)
{
    size_t i;

    for (i = 0; i < p->n; i++) {
        free(p->names[i]);
        free(p->values[i]);
    }
    free(p->names);
    free(p->values);
    free(p->lens);
}

/* n secrets NAME_i = "<canary>-<tag>-i" */
static struct puts make_puts(const char *name, const char *tag, size_t n)
{
    struct puts p = { n, calloc(n, sizeof(char *)), calloc(n, sizeof(char *)),
                      calloc(n, sizeof(size_t)) };
    size_t i;

    for (i = 0; i < n; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s_%zu", name, i);
        p.names[i] = strdup(buf);
        p.lens[i] = (size_t)snprintf(buf, sizeof buf, "%s-%s-%zu", canary, tag, i);
        p.values[i] = (unsigned char *)strdup(buf);
    }
    return p;
}

static int put_all(sfs_store *s, struct puts *p, struct sfs_err *err)
{
    int rc = sfs_store_update(s, key, edit_put, p, err);

    return rc == SFS_STORE_UNCHANGED ? 0 : rc;
}

/* Whether `set` holds `p`'s values. */
static bool holds(const sfs_set *set, const struct puts *p)
{
    size_t i;

    for (i = 0; i < p->n; i++) {
        const sfs_entry *e = sfs_set_get(set, p->names[i]);
        if (!e || e->len != p->lens[i] || memcmp(e->value, p->values[i], e->len) != 0)
            return false;
    }
    return true;
}

/* Polls the watch until it says "load now", at most `ms`. */
static bool wait_due(sfs_store *s, int ms)
{
    double end = now_s() + ms / 1000.0;
    int t;

    while (now_s() < end) {
        struct pollfd p = { sfs_store_watch_fd(s), POLLIN, 0 };
        (void)poll(&p, 1, 50);
        if (sfs_store_watch_due(s, &t))
            return true;
    }
    return false;
}

static long long status_num(sfs_store *s, const char *field)
{
    char buf[2048], *p;
    size_t n = strlen(field);

    sfs_store_status(s, buf, sizeof buf);
    for (p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, field, n) == 0 && p[n] == '=')
            return atoll(p + n + 1);
    return -1;
}

static void status_line(sfs_store *s, const char *field, char *out, size_t cap)
{
    char buf[2048], *p;
    size_t n = strlen(field);

    out[0] = '\0';
    sfs_store_status(s, buf, sizeof buf);
    for (p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, field, n) == 0 && p[n] == '=')
            snprintf(out, cap, "%.*s", (int)strcspn(p + n + 1, "\n"), p + n + 1);
}

/* ---- round trip ---- */

static int t_roundtrip(void)
{
    sfs_store *w = open_all(), *r = open_all();
    sfs_set *set = sfs_set_new(0), *got = NULL;
    unsigned char all[256], *big = malloc(SFS_ETCD_MAX_VALUE), *huge;
    struct sfs_err err;
    char name[128];
    size_t i;
    int rc;

    CHECK(load(r, SFS_LOAD_FRESH, &got, &err) == -ENOENT);
    CHECK_STR_CONTAINS(err.msg, "no secret set");
    for (i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    sfs_random_bytes(big, SFS_ETCD_MAX_VALUE);
    memcpy(big, canary, strlen(canary));
    CHECK(sfs_set_put(set, "ALL_BYTES", all, sizeof all, 1, 2) == 0);
    CHECK(sfs_set_put(set, "ONE_MIB", big, SFS_ETCD_MAX_VALUE, 1, 2) == 0);
    CHECK(sfs_set_put(set, "EMPTY", "", 0, 1, 2) == 0);
    snprintf(name, sizeof name, "CANARY_NAME_%s", canary);
    CHECK(sfs_set_put(set, name, canary, strlen(canary), 3, 4) == 0);
    rc = sfs_store_replace(w, key, set, &err);
    CHECK_MSG(rc == 0, "replace: %s", err.msg);
    rc = load(r, SFS_LOAD_FRESH, &got, &err);
    CHECK_MSG(rc == 0 && sfs_set_equal(got, set), "load: %d %s", rc, err.msg);
    CHECK(got && sfs_set_get(got, name) && sfs_set_get(got, name)->created == 3 &&
          sfs_set_get(got, name)->updated == 4);
    sfs_set_free(got);
    /* the 1 MiB value changed alone: one txn of ~1.4 MB; three of them: a staged generation */
    big[100] ^= 1;
    CHECK(sfs_set_put(set, "ONE_MIB", big, SFS_ETCD_MAX_VALUE, 1, 3) == 0);
    rc = sfs_store_replace(w, key, set, &err);
    CHECK_MSG(rc == 0, "replace of the 1 MiB value: %s", err.msg);
    CHECK(sfs_set_put(set, "ONE_MIB_2", big, SFS_ETCD_MAX_VALUE, 1, 3) == 0);
    CHECK(sfs_set_put(set, "ONE_MIB_3", big, SFS_ETCD_MAX_VALUE, 1, 3) == 0);
    rc = sfs_store_replace(w, key, set, &err);
    CHECK_MSG(rc == 0, "replace with three 1 MiB values: %s", err.msg);
    rc = load(r, SFS_LOAD_FRESH, &got, &err);
    CHECK_MSG(rc == 0 && sfs_set_equal(got, set), "load: %d %s", rc, err.msg);
    sfs_set_free(got);
    /* over 1 MiB: refused before anything is sent */
    huge = calloc(1, SFS_ETCD_MAX_VALUE + 1);
    CHECK(sfs_set_put(set, "TOO_BIG", huge, SFS_ETCD_MAX_VALUE + 1, 1, 3) == 0);
    rc = sfs_store_replace(w, key, set, &err);
    CHECK_MSG(rc == -EFBIG, "a value over 1 MiB: %d %s", rc, err.msg);
    free(huge);
    rc = sfs_store_load(r, other_key, SFS_LOAD_FRESH, &got, NULL, &err);
    CHECK_MSG(rc == -EKEYREJECTED && !got, "another key: %d", rc);
    CHECK_STR_CONTAINS(err.msg, "key id");
    sfs_set_free(set);
    free(big);
    sfs_store_close(w);
    sfs_store_close(r);
    return 0;
}

/* ---- 10,000 secrets ---- */

static int t_big(void)
{
    sfs_store *w = open_all(), *d = open_all();
    struct puts p = make_puts("BIG", "v1", 10000), one = make_puts("BIG", "v2", 1);
    struct sfs_err err;
    sfs_set *got = NULL;
    double t0, t1;
    long long before, after;
    int rc;

    t0 = now_s();
    rc = put_all(w, &p, &err);
    t1 = now_s();
    CHECK_MSG(rc == 0, "import: %s", err.msg);
    printf("MEASURE import of 10000 secrets: %.0f ms\n", (t1 - t0) * 1e3);
    t0 = now_s();
    rc = load(d, SFS_LOAD_FRESH, &got, &err);
    t1 = now_s();
    CHECK_MSG(rc == 0 && sfs_set_count(got) == 10000 && holds(got, &p), "load: %s", err.msg);
    printf("MEASURE fresh load of 10000 secrets: %.0f ms\n", (t1 - t0) * 1e3);
    sfs_set_free(got);
    CHECK(sfs_store_watch(d, &err) == 0);
    usleep(300000);
    (void)wait_due(d, 100);
    before = status_num(d, "watch_received_bytes");
    t0 = now_s();
    rc = put_all(w, &one, &err);
    t1 = now_s();
    CHECK_MSG(rc == 0, "one change: %s", err.msg);
    CHECK(wait_due(d, 5000));
    printf("MEASURE one-secret update in 10000: write %.1f ms, update returned to watch due "
           "%.1f ms\n", (t1 - t0) * 1e3, (now_s() - t1) * 1e3);
    after = status_num(d, "watch_received_bytes");
    printf("MEASURE bytes the watch fetched for that one change: %lld\n", after - before);
    CHECK(after - before < 4096);
    t0 = now_s();
    rc = load(d, 0, &got, &err);
    CHECK_MSG(rc == 0 && sfs_set_count(got) == 10000 && holds(got, &one), "mirror: %s",
              err.msg);
    printf("MEASURE load of 10000 secrets from the mirror: %.0f ms\n", (now_s() - t0) * 1e3);
    sfs_set_free(got);
    puts_free(&p);
    puts_free(&one);
    sfs_store_close(w);
    sfs_store_close(d);
    return 0;
}

/* ---- atomicity: a 100-secret update is seen all or none ---- */

static bool uniform(const sfs_set *set, size_t n, int *version)
{
    size_t i;
    int v = -1;

    for (i = 0; i < n; i++) {
        char name[32];
        const sfs_entry *e;
        const char *hash;
        snprintf(name, sizeof name, "ATOM_%zu", i);
        e = sfs_set_get(set, name);
        hash = e ? memchr(e->value, '#', e->len) : NULL;
        if (!hash)
            return false;
        if (v < 0)
            v = atoi(hash + 1);
        else if (v != atoi(hash + 1))
            return false;
    }
    *version = v;
    return true;
}

static int t_atomic(void)
{
    sfs_store *w = open_all(), *d = open_all();
    struct sfs_err err;
    sfs_set *got = NULL;
    int round, v, last = -1, seen = 0, bad = 0;

    for (round = 0; round < 12; round++) {
        char tag[32];
        struct puts p;
        snprintf(tag, sizeof tag, "x#%d", round);
        p = make_puts("ATOM", tag, 100);
        CHECK_MSG(put_all(w, &p, &err) == 0, "update %d: %s", round, err.msg);
        puts_free(&p);
        if (round == 0) {
            CHECK(load(d, SFS_LOAD_FRESH, &got, &err) == 0);
            sfs_set_free(got);
            CHECK(sfs_store_watch(d, &err) == 0);
            continue;
        }
        while (wait_due(d, round == 11 ? 3000 : 30)) {
            CHECK(load(d, 0, &got, &err) == 0);
            if (!got || !uniform(got, 100, &v))
                bad++;
            else if (v > last)
                last = v, seen++;
            sfs_set_free(got);
        }
    }
    printf("MEASURE atomic: %d loads after 100-secret updates, %d mixed\n", seen, bad);
    CHECK(bad == 0);
    CHECK(last == 11);
    sfs_store_close(w);
    sfs_store_close(d);
    return 0;
}

/* ---- two writers racing ---- */

struct racer {
    const char *eps;
    int id, n;
    int failures;
};

static int edit_incr(sfs_set *set, void *ctx, struct sfs_err *err)
{
    struct racer *r = ctx;
    const sfs_entry *c = sfs_set_get(set, "COUNTER");
    char buf[32], name[32];
    long n = 0;

    if (c && c->len < sizeof buf) {
        memcpy(buf, c->value, c->len);
        buf[c->len] = '\0';
        n = atol(buf);
    }
    snprintf(buf, sizeof buf, "%ld", n + 1);
    snprintf(name, sizeof name, "RACER_%d_%d", r->id, r->n);
    if (sfs_set_put(set, "COUNTER", buf, strlen(buf), 0, 1) < 0 ||
        sfs_set_put(set, name, canary, strlen(canary), 0, 1) < 0)
        return sfs_err_set(err, -ENOMEM, "put");
    return 0;
}

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    sfs_store *s = open_at(r->eps, NULL);
    struct sfs_err err;

    for (r->n = 0; r->n < 25; r->n++)
        if (sfs_store_update(s, key, edit_incr, r, &err) != 0) {
            fprintf(stderr, "racer %d: %s\n", r->id, err.msg);
            r->failures++;
        }
    sfs_store_close(s);
    return NULL;
}

static int t_race(void)
{
    char a[128], b[128];
    struct racer r[2] = { { member(0, a, sizeof a), 0, 0, 0 },
                          { member(1, b, sizeof b), 1, 0, 0 } };
    pthread_t t[2];
    sfs_store *s = open_all();
    struct sfs_err err;
    sfs_set *got = NULL;
    const sfs_entry *c;
    int i, k;

    if (!*b)
        r[1].eps = a;
    for (i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, racer_main, &r[i]);
    for (i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK(r[0].failures == 0 && r[1].failures == 0);
    CHECK(load(s, SFS_LOAD_FRESH, &got, &err) == 0);
    c = got ? sfs_set_get(got, "COUNTER") : NULL;
    CHECK_MSG(c && c->len == 2 && memcmp(c->value, "50", 2) == 0, "counter after 2x25");
    for (i = 0; got && i < 2; i++)
        for (k = 0; k < 25; k++) {
            char name[32];
            snprintf(name, sizeof name, "RACER_%d_%d", i, k);
            CHECK_MSG(sfs_set_get(got, name), "%s lost", name);
        }
    sfs_set_free(got);
    sfs_store_close(s);
    return 0;
}

/* ---- tampering ---- */

static struct sfs_etcd_cfg raw_cfg;
static int64_t raw_rev;   /* the revision of the last raw_put */

static sfs_etcd_conn *raw_conn(void)
{
    char buf[128];
    size_t i;

    for (i = 0; i < SFS_ETCD_MAX_ENDPOINTS && *member(i, buf, sizeof buf); i++)
        raw_cfg.endpoints[raw_cfg.n_endpoints++] = strdup(buf);
    raw_cfg.dial_ms = 2000;
    raw_cfg.request_ms = 10000;
    return sfs_etcd_conn_new(&raw_cfg);
}

static void raw_free(sfs_etcd_conn *c)
{
    size_t i;

    sfs_etcd_conn_free(c);
    for (i = 0; i < raw_cfg.n_endpoints; i++)
        free(raw_cfg.endpoints[i]);
    memset(&raw_cfg, 0, sizeof raw_cfg);
}

/* Puts `val` (kv->vlen bytes) under kv->key, behind secretfs's back. */
static int raw_put(sfs_etcd_conn *c, const struct sfs_etcd_kv *kv, const unsigned char *val)
{
    json_t *txn = json_pack("{s:[o]}", "success",
                            sfs_etcd_put_op(kv->key, kv->klen, val, kv->vlen));
    struct sfs_err err;
    bool ok;
    int rc = sfs_etcd_txn(c, txn, &ok, &raw_rev, &err);

    json_decref(txn);
    return rc;
}

/* Loads through a fresh handle and through a watching one; both must refuse with `want`. */
static void expect_refused(sfs_store *fresh, sfs_store *watching, int want, const char *what)
{
    struct sfs_err err;
    sfs_set *got = NULL;
    int rc = load(fresh, SFS_LOAD_FRESH, &got, &err);

    CHECK_MSG(rc == want && !got, "%s: fresh load gave %d (want %d)", what, rc, want);
    sfs_set_free(got);
    {
        /* the mirror may lag the raw put a little: until it has caught up, a load may show
         * the state before (the previous tampering, or the good set at an older revision) */
        double t0 = now_s();
        uint64_t rev = 0;
        do {
            got = NULL;
            (void)wait_due(watching, 20);
            rc = sfs_store_load(watching, key, 0, &got, &rev, &err);
            sfs_set_free(got);
        } while (rc != want && !(rc == 0 && rev >= (uint64_t)raw_rev) && now_s() - t0 < 10);
        CHECK_MSG(rc == want, "%s: mirror load gave %d at revision %llu (want %d)", what, rc,
                  (unsigned long long)rev, want);
    }
}

static void expect_ok(sfs_store *s, const struct puts *p)
{
    struct sfs_err err;
    sfs_set *got = NULL;
    int rc = load(s, SFS_LOAD_FRESH, &got, &err);

    CHECK_MSG(rc == 0 && holds(got, p), "restored: %d %s", rc, err.msg);
    sfs_set_free(got);
}

static void flip_each(sfs_etcd_conn *c, const struct sfs_etcd_kvs *l, sfs_store *s,
                      sfs_store *d, const struct puts *p)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        unsigned char *v = malloc(l->v[i].vlen);
        size_t at = SFS_ETCD_HEADER_BYTES +
                    (size_t)rand() % (l->v[i].vlen - SFS_ETCD_HEADER_BYTES);
        memcpy(v, l->v[i].val, l->v[i].vlen);
        v[at] ^= 0x20;
        CHECK(raw_put(c, &l->v[i], v) == 0);
        expect_refused(s, d, -EBADMSG, "one byte flipped");
        CHECK(raw_put(c, &l->v[i], l->v[i].val) == 0);
        free(v);
    }
    expect_ok(s, p);
}

static void header_flips(sfs_etcd_conn *c, const struct sfs_etcd_kv *commit, sfs_store *s,
                         sfs_store *d)
{
    static const struct { size_t at; int want; const char *what; } flips[] = {
        { 0, -EBADMSG, "magic" }, { 4, -EPROTONOSUPPORT, "version" },
        { 5, -EBADMSG, "kind" }, { 6, -EKEYREJECTED, "key id" }, { 20, -EBADMSG, "nonce" },
    };
    unsigned char *v = malloc(commit->vlen);
    size_t i;

    for (i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(v, commit->val, commit->vlen);
        v[flips[i].at] ^= 0x01;
        CHECK(raw_put(c, commit, v) == 0);
        expect_refused(s, d, flips[i].want, flips[i].what);
    }
    CHECK(raw_put(c, commit, commit->val) == 0);
    free(v);
}

static bool is_commit(const struct sfs_etcd_kv *kv)
{
    return kv->klen >= 6 && memcmp(kv->key + kv->klen - 6, "commit", 6) == 0;
}

/* Every value copied onto the next value's key, one at a time. */
static void copy_each(sfs_etcd_conn *c, const struct sfs_etcd_kvs *l, sfs_store *s,
                      sfs_store *d)
{
    size_t i, j;

    for (i = 0; i < l->n; i++) {
        struct sfs_etcd_kv dst;
        for (j = (i + 1) % l->n; is_commit(&l->v[j]); j = (j + 1) % l->n)
            ;
        if (is_commit(&l->v[i]) || i == j)
            continue;
        dst = l->v[j];
        dst.vlen = l->v[i].vlen;
        CHECK(raw_put(c, &dst, l->v[i].val) == 0);
        expect_refused(s, d, -EBADMSG, "a value copied onto another key");
        CHECK(raw_put(c, &l->v[j], l->v[j].val) == 0);
    }
}

/* Restores the older commit record, then each older value under the newer commit. */
static void replays(sfs_etcd_conn *c, const struct sfs_etcd_kvs *old,
                    const struct sfs_etcd_kvs *cur, sfs_store *s, sfs_store *d)
{
    size_t i;

    for (i = 0; i < old->n; i++)
        if (is_commit(&old->v[i]))
            CHECK(raw_put(c, &old->v[i], old->v[i].val) == 0);
    expect_refused(s, d, -EBADMSG, "an older commit record restored");
    for (i = 0; i < cur->n; i++)
        if (is_commit(&cur->v[i]))
            CHECK(raw_put(c, &cur->v[i], cur->v[i].val) == 0);
    for (i = 0; i < old->n && i < cur->n; i++)
        if (!is_commit(&old->v[i]) && old->v[i].klen == cur->v[i].klen &&
            memcmp(old->v[i].key, cur->v[i].key, old->v[i].klen) == 0 &&
            (old->v[i].vlen != cur->v[i].vlen ||
             memcmp(old->v[i].val, cur->v[i].val, old->v[i].vlen) != 0)) {
            CHECK(raw_put(c, &old->v[i], old->v[i].val) == 0);
            expect_refused(s, d, -EBADMSG, "an older value replayed");
            CHECK(raw_put(c, &cur->v[i], cur->v[i].val) == 0);
        }
}

static int t_tamper(void)
{
    sfs_store *w = open_all(), *s = open_all(), *d = open_all();
    struct puts p = make_puts("TAMPER", "v1", 6), p2 = make_puts("TAMPER", "v2", 1);
    sfs_etcd_conn *c = raw_conn();
    struct sfs_etcd_kvs l, l2;
    struct sfs_err err;
    sfs_set *got = NULL;
    size_t i;

    CHECK(put_all(w, &p, &err) == 0);
    CHECK(load(d, SFS_LOAD_FRESH, &got, &err) == 0);
    sfs_set_free(got);
    CHECK(sfs_store_watch(d, &err) == 0);
    CHECK(sfs_etcd_range_prefix(c, prefix, &l, &err) == 0);
    CHECK_MSG(l.n == 7, "%zu keys under the prefix", l.n);
    printf("MEASURE tamper: %zu keys flipped one at a time, then each value copied\n", l.n);
    flip_each(c, &l, s, d, &p);
    copy_each(c, &l, s, d);
    for (i = 0; i < l.n; i++)
        if (is_commit(&l.v[i]))
            header_flips(c, &l.v[i], s, d);
    expect_ok(s, &p);
    CHECK(put_all(w, &p2, &err) == 0);
    CHECK(sfs_etcd_range_prefix(c, prefix, &l2, &err) == 0);
    replays(c, &l, &l2, s, d);
    expect_ok(s, &p2);
    sfs_etcd_kvs_clear(&l);
    sfs_etcd_kvs_clear(&l2);
    raw_free(c);
    puts_free(&p);
    puts_free(&p2);
    sfs_store_close(w);
    sfs_store_close(s);
    sfs_store_close(d);
    return 0;
}

/* ---- compaction past the watcher ---- */

static int t_compact(void)
{
    sfs_store *w = open_all(), *d = open_all();
    struct puts p = make_puts("COMPACT", "v1", 5), last = make_puts("COMPACT", "v9", 5);
    struct sfs_err err;
    sfs_set *got = NULL;
    int i;

    CHECK(put_all(w, &p, &err) == 0);
    CHECK(load(d, SFS_LOAD_FRESH, &got, &err) == 0);
    sfs_set_free(got);
    for (i = 2; i <= 9; i++) {
        char tag[8];
        struct puts q;
        snprintf(tag, sizeof tag, "v%d", i);
        q = make_puts("COMPACT", tag, 5);
        CHECK(put_all(w, &q, &err) == 0);
        puts_free(&q);
    }
    step("compact");
    CHECK(sfs_store_watch(d, &err) == 0);   /* from the revision loaded + 1: compacted */
    CHECK(wait_due(d, 5000));
    got = NULL;
    CHECK(load(d, 0, &got, &err) == 0 && holds(got, &last));
    sfs_set_free(got);
    {
        /* a change is due until a load reads it, however often watch_due is asked */
        int t;
        CHECK(put_all(w, &p, &err) == 0);
        usleep(300000);
        (void)sfs_store_watch_due(d, &t);
        CHECK(sfs_store_watch_due(d, &t) && t == 0);
        got = NULL;
        CHECK(load(d, 0, &got, &err) == 0 && holds(got, &p));
        sfs_set_free(got);
        CHECK(!sfs_store_watch_due(d, &t) && t == -1);
    }
    puts_free(&p);
    puts_free(&last);
    sfs_store_close(w);
    sfs_store_close(d);
    return 0;
}

/* ---- a member killed mid-watch; then quorum lost and back ---- */

/* Waits (at most 15 s) until a load from `d`'s mirror has `name`. */
static bool catches_up(sfs_store *d, const char *name)
{
    double t0 = now_s();
    struct sfs_err err;
    sfs_set *got = NULL;
    bool ok = false;

    while (!ok && now_s() - t0 < 15) {
        if (!wait_due(d, 500))
            continue;
        if (load(d, 0, &got, &err) == 0)
            ok = sfs_set_get(got, name) != NULL;
        sfs_set_free(got);
        got = NULL;
    }
    return ok;
}

static void quorum(sfs_store *d, const char *m0)
{
    struct sfs_store_options o = { .request_timeout_ms = 3000, .dial_timeout_ms = 500 };
    sfs_store *q = open_at(endpoints, &o);
    struct puts x = make_puts("QUORUM", "lost", 1);
    struct sfs_err err;
    sfs_set *got = NULL;
    char conn[512];
    double t0, took;
    int rc;

    step("kill 1");
    t0 = now_s();
    rc = put_all(q, &x, &err);
    took = now_s() - t0;
    CHECK_MSG(rc < 0 && took < 4.5, "write without quorum: %d after %.1f s", rc, took);
    CHECK_STR_CONTAINS(err.msg, "no member answered within 3000 ms");
    CHECK_STR_CONTAINS(err.msg, m0);
    printf("MEASURE a write without quorum failed after %.1f s: %s\n", took, err.msg);
    (void)wait_due(d, 4000);
    status_line(d, "connection", conn, sizeof conn);
    CHECK_MSG(strncmp(conn, "retrying since ", 15) == 0, "connection=%s", conn);
    CHECK(load(d, 0, &got, &err) == 0 && sfs_set_get(got, "KILL_NEW_4_0"));
    sfs_set_free(got);
    step("restart 0 1");
    rc = put_all(q, &x, &err);
    CHECK_MSG(rc == 0, "write after quorum is back: %s", err.msg);
    CHECK_MSG(catches_up(d, "QUORUM_0"), "no catch-up after quorum returned");
    status_line(d, "connection", conn, sizeof conn);
    CHECK_MSG(strcmp(conn, "connected") == 0, "connection=%s", conn);
    puts_free(&x);
    sfs_store_close(q);
}

static int t_killwatch(void)
{
    char m0[128], ep[128];
    /* a writer through the members that stay; a busy machine may take long to elect */
    struct sfs_store_options slow = { .request_timeout_ms = 30000 };
    sfs_store *w = open_at(strchr(endpoints, ',') + 1, &slow), *d = open_all();
    struct puts p = make_puts("KILL", "v0", 3);
    struct sfs_err err;
    sfs_set *got = NULL;
    double t0;
    int i;

    CHECK(put_all(w, &p, &err) == 0);
    CHECK(load(d, SFS_LOAD_FRESH, &got, &err) == 0);
    sfs_set_free(got);
    CHECK(sfs_store_watch(d, &err) == 0);
    usleep(500000);
    status_line(d, "endpoint", ep, sizeof ep);
    CHECK_MSG(strcmp(ep, member(0, m0, sizeof m0)) == 0, "watching %s", ep);
    step("kill 0");
    for (i = 0; i < 5; i++) {
        char name[32];
        struct puts q;
        snprintf(name, sizeof name, "KILL_NEW_%d", i);
        q = make_puts(name, "during-outage", 1);
        CHECK_MSG(put_all(w, &q, &err) == 0, "write with member 0 dead: %s", err.msg);
        puts_free(&q);
    }
    t0 = now_s();
    CHECK_MSG(catches_up(d, "KILL_NEW_4_0"), "the watcher did not catch up after its member "
              "died");
    printf("MEASURE watcher caught up %.0f ms after the last write\n", (now_s() - t0) * 1e3);
    CHECK(load(d, 0, &got, &err) == 0);
    for (i = 0; got && i < 5; i++) {
        char name[32];
        snprintf(name, sizeof name, "KILL_NEW_%d_0", i);
        CHECK_MSG(sfs_set_get(got, name), "%s lost", name);
    }
    sfs_set_free(got);
    status_line(d, "endpoint", ep, sizeof ep);
    CHECK_MSG(strcmp(ep, m0) != 0, "still on %s", ep);
    status_line(d, "connection", ep, sizeof ep);
    CHECK_MSG(strcmp(ep, "connected") == 0, "connection=%s", ep);
    quorum(d, m0);
    puts_free(&p);
    sfs_store_close(w);
    sfs_store_close(d);
    return 0;
}

/* ---- auth: a read-only daemon user and a read-write admin ---- */

static int t_auth(void)
{
    struct sfs_store_options ro = { .user = "sfsro", .password_file = getenv("SFS_ETCD_RO_PW") };
    struct sfs_store_options rw = { .user = "sfsrw", .password_file = getenv("SFS_ETCD_RW_PW") };
    sfs_store *a = open_at(endpoints, &rw), *d = open_at(endpoints, &ro), *none = open_all();
    struct puts p = make_puts("AUTH", "v1", 3), p2 = make_puts("AUTH", "v2", 3);
    struct sfs_err err;
    sfs_set *got = NULL;
    int rc;

    rc = put_all(a, &p, &err);
    CHECK_MSG(rc == 0, "admin write: %s", err.msg);
    rc = load(d, SFS_LOAD_FRESH, &got, &err);
    CHECK_MSG(rc == 0 && holds(got, &p), "read-only load: %d %s", rc, err.msg);
    sfs_set_free(got);
    rc = put_all(d, &p2, &err);
    CHECK_MSG(rc == -EACCES, "read-only write: %d %s", rc, err.msg);
    CHECK_STR_CONTAINS(err.msg, "permission denied");
    CHECK_STR_CONTAINS(err.msg, "sfsro");
    printf("MEASURE a read-only user's write: %s\n", err.msg);
    got = NULL;
    rc = load(none, SFS_LOAD_FRESH, &got, &err);
    CHECK_MSG(rc == -EACCES, "no user: %d %s", rc, err.msg);
    CHECK_STR_CONTAINS(err.msg, "password_file");
    printf("MEASURE no user against an auth cluster: %s\n", err.msg);
    CHECK(sfs_store_watch(d, &err) == 0);
    sleep(3);   /* past --auth-token-ttl 2: both tokens are gone */
    rc = put_all(a, &p2, &err);
    CHECK_MSG(rc == 0, "admin write after token expiry: %s", err.msg);
    CHECK(wait_due(d, 5000));
    got = NULL;
    rc = load(d, 0, &got, &err);
    CHECK_MSG(rc == 0 && holds(got, &p2), "watch after token expiry: %d %s", rc, err.msg);
    sfs_set_free(got);
    sleep(3);
    got = NULL;
    rc = load(d, SFS_LOAD_FRESH, &got, &err);
    CHECK_MSG(rc == 0 && holds(got, &p2), "fresh load after token expiry: %d %s", rc, err.msg);
    sfs_set_free(got);
    puts_free(&p);
    puts_free(&p2);
    sfs_store_close(a);
    sfs_store_close(d);
    sfs_store_close(none);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct { const char *name; int (*fn)(void); } scen[] = {
        { "roundtrip", t_roundtrip }, { "big", t_big }, { "atomic", t_atomic },
        { "race", t_race }, { "tamper", t_tamper }, { "compact", t_compact },
        { "killwatch", t_killwatch }, { "auth", t_auth },
    };
    unsigned char k1[SFS_KEY_BYTES], k2[SFS_KEY_BYTES];
    size_t i;
    bool known = false;

    endpoints = getenv("SFS_ETCD_EP");
    prefix = getenv("SFS_ETCD_PREFIX");
    canary = getenv("SFS_CANARY");
    if (argc != 2 || !endpoints || !prefix || !canary) {
        fprintf(stderr, "run by tests/etcd/run_etcd.py\n");
        return 2;
    }
    if (sfs_crypto_init() < 0)
        return 1;
    memset(k1, 7, sizeof k1);
    memset(k2, 8, sizeof k2);
    key = sfs_key_from_bytes(k1);
    other_key = sfs_key_from_bytes(k2);
    srand((unsigned)getpid());
    for (i = 0; i < sizeof scen / sizeof scen[0]; i++)
        if (strcmp(argv[1], scen[i].name) == 0) {
            known = true;
            (void)scen[i].fn();
        }
    CHECK_MSG(known, "unknown scenario %s", argv[1]);
    sfs_key_free(key);
    sfs_key_free(other_key);
    return check_result();
}
