/* tests/etcd/test_etcd_blob.c — the etcd blob format (store/etcd_blob.c) without a cluster:
 * round trips, and every way a blob can be wrong is refused with the right error. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/check.h"
#include "crypto/secmem.h"
#include "store/etcd.h"

#define KEY_A "/p/g/0123456789abcdef/"

static sfs_key *key, *other;
static unsigned char *scratch;

static char *value_key(const sfs_etcd_names *n, const char *name)
{
    static char buf[128];
    char id[SFS_ETCD_ID_HEX + 1];

    sfs_etcd_name_id(n, name, id);
    snprintf(buf, sizeof buf, KEY_A "%s", id);
    return buf;
}

static void test_value(void)
{
    sfs_etcd_names *n = sfs_etcd_names_new(key);
    sfs_set *set = sfs_set_new(0), *got = sfs_set_new(0);
    unsigned char *blob = NULL, all[256];
    struct sfs_err err;
    const sfs_entry *e;
    char k[128], k2[128];
    size_t len, i;

    for (i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    CHECK(sfs_set_put(set, "NAME", all, sizeof all, 5, 6) == 0);
    CHECK(sfs_set_put(set, "OTHER", "x", 1, 5, 6) == 0);
    snprintf(k, sizeof k, "%s", value_key(n, "NAME"));
    snprintf(k2, sizeof k2, "%s", value_key(n, "OTHER"));
    CHECK(strlen(k) == strlen(KEY_A) + SFS_ETCD_ID_HEX && !strstr(k, "NAME"));
    CHECK(sfs_etcd_seal_value(key, k, strlen(k), sfs_set_get(set, "NAME"), scratch, &blob,
                              &len, &err) == 0);
    CHECK(sfs_etcd_open_value(key, n, k, strlen(k), blob, len, scratch, got, &err) == 0);
    CHECK(sfs_set_sort(got) == 0);
    e = sfs_set_get(got, "NAME");
    CHECK(e && e->len == 256 && memcmp(e->value, all, 256) == 0 && e->created == 5 &&
          e->updated == 6);
    /* moved to another key (the other name's, or another generation's) */
    CHECK(sfs_etcd_open_value(key, n, k2, strlen(k2), blob, len, scratch, got, &err) ==
          -EBADMSG);
    k[4] ^= 1;
    CHECK(sfs_etcd_open_value(key, n, k, strlen(k), blob, len, scratch, got, &err) ==
          -EBADMSG);
    k[4] ^= 1;
    for (i = 0; i < len; i++) {
        int want = i == 4 ? -EPROTONOSUPPORT : i >= 6 && i < 14 ? -EKEYREJECTED : -EBADMSG;
        blob[i] ^= 0x10;
        CHECK_MSG(sfs_etcd_open_value(key, n, k, strlen(k), blob, len, scratch, got, &err) ==
                  want, "byte %zu flipped", i);
        blob[i] ^= 0x10;
    }
    for (i = 0; i < len; i++)
        CHECK_MSG(sfs_etcd_open_value(key, n, k, strlen(k), blob, i, scratch, got, &err) < 0,
                  "truncated to %zu", i);
    CHECK(sfs_etcd_open_value(other, n, k, strlen(k), blob, len, scratch, got, &err) ==
          -EKEYREJECTED);
    CHECK_STR_CONTAINS(err.msg, "key id");
    free(blob);
    CHECK(sfs_etcd_seal_value(key, k, strlen(k), &(sfs_entry){ .name = "", .value = all },
                              scratch, &blob, &len, &err) == -EINVAL);
    CHECK(sfs_etcd_seal_value(key, k, strlen(k), &(sfs_entry){ .name = "N", .value = all,
                              .len = SFS_ETCD_MAX_VALUE + 1 }, scratch, &blob, &len, &err) ==
          -EFBIG);
    sfs_set_free(set);
    sfs_set_free(got);
    sfs_etcd_names_free(n);
}

static void test_commit(void)
{
    struct sfs_etcd_commit c = { .set_version = 42, .gen = "0123456789abcdef", .count = 7 },
                           back;
    struct sfs_etcd_keyhash kh[2] = { { "/p/b", 4, { 1 } }, { "/p/a", 4, { 2 } } };
    unsigned char *blob = NULL, d1[32], d2[32];
    struct sfs_err err;
    size_t len;

    CHECK(sfs_etcd_digest(kh, 2, d1) == 0);
    CHECK(strcmp(kh[0].key, "/p/a") == 0);   /* sorted */
    kh[1].hash[0] ^= 1;
    CHECK(sfs_etcd_digest(kh, 2, d2) == 0 && memcmp(d1, d2, 32) != 0);
    memcpy(c.digest, d1, 32);
    CHECK(sfs_etcd_seal_commit(key, "/p/commit", 9, &c, &blob, &len, &err) == 0);
    CHECK(sfs_etcd_open_commit(key, "/p/commit", 9, blob, len, &back, &err) == 0);
    CHECK(back.set_version == 42 && back.count == 7 && strcmp(back.gen, c.gen) == 0 &&
          memcmp(back.digest, d1, 32) == 0);
    CHECK(sfs_etcd_open_commit(key, "/q/commit", 9, blob, len, &back, &err) == -EBADMSG);
    blob[5] = SFS_ETCD_KIND_VALUE;
    CHECK(sfs_etcd_open_commit(key, "/p/commit", 9, blob, len, &back, &err) == -EBADMSG);
    blob[5] = SFS_ETCD_KIND_COMMIT;
    blob[4] = 2;
    CHECK(sfs_etcd_open_commit(key, "/p/commit", 9, blob, len, &back, &err) ==
          -EPROTONOSUPPORT);
    CHECK_STR_CONTAINS(err.msg, "upgrade secretfs");
    blob[4] = 1;
    CHECK(sfs_etcd_open_commit(key, "/p/commit", 9, blob, len - 1, &back, &err) == -EBADMSG);
    free(blob);
}

/* The decode memo: an entry is handed back only for the same key, the same blob bytes and
 * the same key ring; anything else is decoded again. */
static void test_memo(void)
{
    sfs_etcd_memo *m = sfs_etcd_memo_new();
    sfs_set *set = sfs_set_new(0);
    struct sfs_etcd_kv kvs[2];
    const char *names[2] = {"ALPHA", "BETA"};
    unsigned char blob_a[] = "sealed-a", blob_b[] = "sealed-b", changed[] = "sealed-B";
    const sfs_entry *e;

    CHECK(m && set);
    if (!m || !set)
        return;
    CHECK(sfs_set_put(set, "ALPHA", "1", 1, 1, 2) == 0);
    CHECK(sfs_set_put(set, "BETA", "22", 2, 3, 4) == 0);
    memset(kvs, 0, sizeof kvs);
    kvs[0] = (struct sfs_etcd_kv){.key = KEY_A "aa", .klen = strlen(KEY_A "aa"),
                                  .val = blob_a, .vlen = sizeof blob_a};
    kvs[1] = (struct sfs_etcd_kv){.key = KEY_A "bb", .klen = strlen(KEY_A "bb"),
                                  .val = blob_b, .vlen = sizeof blob_b};
    sfs_etcd_memo_begin(m, key);
    CHECK(sfs_etcd_memo_find(m, &kvs[0]) == NULL); /* empty */
    sfs_etcd_memo_keep(m, kvs, 2, names, set);
    sfs_set_free(set);                             /* the memo keeps its own copy */
    sfs_etcd_memo_begin(m, key);
    e = sfs_etcd_memo_find(m, &kvs[1]);
    CHECK(e && strcmp(e->name, "BETA") == 0 && e->len == 2 && memcmp(e->value, "22", 2) == 0 &&
          e->created == 3 && e->updated == 4);
    /* the same key with other bytes, and other bytes' key: not known */
    struct sfs_etcd_kv c = {.key = KEY_A "bb", .klen = strlen(KEY_A "bb"), .val = changed,
                            .vlen = sizeof changed};
    CHECK(sfs_etcd_memo_find(m, &c) == NULL);
    struct sfs_etcd_kv moved = {.key = KEY_A "cc", .klen = strlen(KEY_A "cc"), .val = blob_b,
                                .vlen = sizeof blob_b};
    CHECK(sfs_etcd_memo_find(m, &moved) == NULL);
    /* another key ring: the memo is dropped */
    sfs_etcd_memo_begin(m, other);
    CHECK(sfs_etcd_memo_find(m, &kvs[0]) == NULL && sfs_etcd_memo_find(m, &kvs[1]) == NULL);
    CHECK(sfs_etcd_memo_find(NULL, &kvs[0]) == NULL); /* a one-shot backend has none */
    sfs_etcd_memo_free(m);
}

int main(void)
{
    unsigned char a[SFS_KEY_BYTES], b[SFS_KEY_BYTES];
    sfs_arena *arena;

    if (sfs_crypto_init() < 0)
        return 1;
    memset(a, 1, sizeof a);
    memset(b, 2, sizeof b);
    key = sfs_key_from_bytes(a);
    other = sfs_key_from_bytes(b);
    arena = sfs_arena_new(SFS_ETCD_MAX_VALUE + 1024);
    scratch = sfs_arena_alloc(arena, SFS_ETCD_MAX_VALUE + 512);
    test_value();
    test_commit();
    test_memo();
    sfs_arena_free(arena);
    sfs_key_free(key);
    sfs_key_free(other);
    return check_result();
}
