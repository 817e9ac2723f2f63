/* store/etcd_blob.c — the etcd backend's blob format, version 1.
 *
 *   "SFSE" | u8 version (1) | u8 kind (1 commit, 2 value) | 8-byte key id | 24-byte nonce |
 *   ciphertext + 16-byte tag
 *
 * Associated data: the 38 header bytes, then the etcd key the blob is stored under.  A value's
 * name is bound too: its etcd key ends in the keyed hash of the name, checked after opening.
 * Commit plaintext: u64 set_version | 16 hex GEN | u32 count | 32-byte digest.
 * Value plaintext:  u16 name_len | name | i64 created | i64 updated | value bytes.
 * Integers are little-endian.
 */
#include "store/etcd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secmem.h"

#define MAGIC "SFSE"
#define COMMIT_PLAIN (8 + SFS_ETCD_GEN_HEX + 4 + SFS_ETCD_DIGEST_BYTES)
#define VALUE_FIXED (2 + 8 + 8)

struct sfs_etcd_names {
    sfs_arena *arena;
    unsigned char *subkey;   /* 32 bytes in the arena */
};

sfs_etcd_names *sfs_etcd_names_new(const sfs_key *key)
{
    sfs_etcd_names *n = calloc(1, sizeof *n);

    if (!n)
        return NULL;
    n->arena = sfs_arena_new(64);
    n->subkey = n->arena ? sfs_arena_alloc(n->arena, 32) : NULL;
    if (!n->subkey) {
        sfs_arena_free(n->arena);
        free(n);
        return NULL;
    }
    sfs_key_derive(key, "etcdname", n->subkey, 32);
    return n;
}

void sfs_etcd_names_free(sfs_etcd_names *n)
{
    if (!n)
        return;
    sfs_arena_free(n->arena);
    free(n);
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void sfs_etcd_name_id(const sfs_etcd_names *n, const char *name, char out[SFS_ETCD_ID_HEX + 1])
{
    unsigned char id[SFS_ETCD_ID_HEX / 2];

    sfs_hash(id, sizeof id, name, strlen(name), n->subkey, 32);
    hex(id, sizeof id, out);
}

static void put_le(unsigned char *p, uint64_t v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Header + seal into a new malloc'd blob.  AD = header || ekey. */
static int seal(const sfs_key *key, unsigned kind, const char *ekey, size_t klen,
                const unsigned char *plain, size_t plen, unsigned char **out, size_t *out_len,
                struct sfs_err *err)
{
    size_t total = SFS_ETCD_HEADER_BYTES + plen + SFS_AEAD_TAG_BYTES;
    unsigned char *blob = malloc(total), *ad;
    int rc = 0;

    ad = malloc(SFS_ETCD_HEADER_BYTES + klen);
    if (!blob || !ad) {
        rc = sfs_err_set(err, -ENOMEM, "out of memory sealing an etcd blob");
        free(blob);
        goto out;
    }
    memcpy(blob, MAGIC, 4);
    blob[4] = SFS_ETCD_BLOB_VERSION;
    blob[5] = (unsigned char)kind;
    sfs_key_id(key, blob + 6);
    sfs_random_bytes(blob + 6 + SFS_KEY_ID_BYTES, SFS_AEAD_NONCE_BYTES);
    memcpy(ad, blob, SFS_ETCD_HEADER_BYTES);
    memcpy(ad + SFS_ETCD_HEADER_BYTES, ekey, klen);
    sfs_aead_seal(key, blob + 6 + SFS_KEY_ID_BYTES, ad, SFS_ETCD_HEADER_BYTES + klen, plain,
                  plen, blob + SFS_ETCD_HEADER_BYTES);
    *out = blob;
    *out_len = total;
out:
    free(ad);
    return rc;
}

/* Checks magic, version and kind of a blob stored under `ekey`, and picks the key of the
 * ring `ring` whose id the header names into *key (never trial decryption). */
static int check_header(const sfs_key *ring, const sfs_key **key, unsigned kind,
                        const char *ekey, size_t klen, const unsigned char *blob, size_t len,
                        struct sfs_err *err)
{
    unsigned char id[SFS_KEY_ID_BYTES];
    char want[2 * SFS_KEY_ID_BYTES + 1], got[2 * SFS_KEY_ID_BYTES + 1];

    if (len < SFS_ETCD_HEADER_BYTES + SFS_AEAD_TAG_BYTES || memcmp(blob, MAGIC, 4) != 0)
        return sfs_err_set(err, -EBADMSG, "%.*s: not a secretfs etcd blob (truncated or bad "
                           "magic)", (int)klen, ekey);
    if (blob[4] != SFS_ETCD_BLOB_VERSION)
        return sfs_err_set(err, -EPROTONOSUPPORT, "%.*s: blob format version %u; this "
                           "secretfs reads version %d; upgrade secretfs", (int)klen, ekey,
                           blob[4], SFS_ETCD_BLOB_VERSION);
    if (blob[5] != kind)
        return sfs_err_set(err, -EBADMSG, "%.*s: holds a blob of kind %u where kind %u "
                           "belongs", (int)klen, ekey, blob[5], kind);
    *key = sfs_key_by_id(ring, blob + 6);
    if (!*key) {
        sfs_key_id(ring, id);
        hex(blob + 6, SFS_KEY_ID_BYTES, got);
        hex(id, SFS_KEY_ID_BYTES, want);
        return sfs_err_set(err, -EKEYREJECTED, "%.*s: sealed with key id %s, which no key "
                           "of the key file has (its first key's id is %s); use the key this "
                           "store was written with", (int)klen, ekey, got, want);
    }
    return 0;
}

/* Checks the header and opens the blob into `plain` (len - overhead bytes). */
static int unseal(const sfs_key *ring, const sfs_key **sealer, unsigned kind, const char *ekey,
                  size_t klen, const unsigned char *blob, size_t len, unsigned char *plain,
                  struct sfs_err *err)
{
    const sfs_key *key = NULL;
    unsigned char *ad;
    int rc = check_header(ring, &key, kind, ekey, klen, blob, len, err);

    if (sealer)
        *sealer = key;
    if (rc < 0)
        return rc;
    ad = malloc(SFS_ETCD_HEADER_BYTES + klen);
    if (!ad)
        return sfs_err_set(err, -ENOMEM, "out of memory opening an etcd blob");
    memcpy(ad, blob, SFS_ETCD_HEADER_BYTES);
    memcpy(ad + SFS_ETCD_HEADER_BYTES, ekey, klen);
    rc = sfs_aead_open(key, blob + 6 + SFS_KEY_ID_BYTES, ad, SFS_ETCD_HEADER_BYTES + klen,
                       blob + SFS_ETCD_HEADER_BYTES, len - SFS_ETCD_HEADER_BYTES, plain);
    if (rc < 0)
        sfs_err_set(err, rc, "%.*s: fails authentication (tampered with, or moved from "
                    "another key)", (int)klen, ekey);
    free(ad);
    return rc;
}

int sfs_etcd_seal_value(const sfs_key *key, const char *ekey, size_t klen, const sfs_entry *e,
                        unsigned char *scratch, unsigned char **out, size_t *out_len,
                        struct sfs_err *err)
{
    size_t nlen = strlen(e->name), plen;
    int rc;

    if (nlen == 0 || nlen > SFS_ETCD_MAX_NAME)
        return sfs_err_set(err, -EINVAL, "a secret name of %zu bytes does not fit the etcd "
                           "store (1 to %d bytes)", nlen, SFS_ETCD_MAX_NAME);
    if (e->len > SFS_ETCD_MAX_VALUE)
        return sfs_err_set(err, -EFBIG, "%s: a value of %u bytes is over the etcd store's "
                           "limit of 1 MiB; keep large files out of the secret set", e->name,
                           e->len);
    put_le(scratch, nlen, 2);
    memcpy(scratch + 2, e->name, nlen);
    put_le(scratch + 2 + nlen, (uint64_t)e->created, 8);
    put_le(scratch + 10 + nlen, (uint64_t)e->updated, 8);
    memcpy(scratch + VALUE_FIXED + nlen, e->value, e->len);
    plen = VALUE_FIXED + nlen + e->len;
    rc = seal(key, SFS_ETCD_KIND_VALUE, ekey, klen, scratch, plen, out, out_len, err);
    sfs_wipe(scratch, plen);
    return rc;
}

/* Whether `ekey` ends in "/" + the id of `name`. */
static bool name_matches_key(const sfs_etcd_names *n, const char *name, const char *ekey,
                             size_t klen)
{
    char id[SFS_ETCD_ID_HEX + 1];

    if (klen < SFS_ETCD_ID_HEX + 1 || ekey[klen - SFS_ETCD_ID_HEX - 1] != '/')
        return false;
    sfs_etcd_name_id(n, name, id);
    return memcmp(ekey + klen - SFS_ETCD_ID_HEX, id, SFS_ETCD_ID_HEX) == 0;
}

/* Whether `name` is the one the key `ekey` was named for.  The name's id is keyed by the key
 * that sealed the blob: during a rotation that is not always the ring's first key. */
static bool name_belongs(const sfs_key *ring, const sfs_key *sealer, const sfs_etcd_names *n,
                         const char *name, const char *ekey, size_t klen)
{
    unsigned char first[SFS_KEY_ID_BYTES], used[SFS_KEY_ID_BYTES];
    sfs_etcd_names *other;
    bool ok;

    sfs_key_id(ring, first);
    sfs_key_id(sealer, used);
    if (memcmp(first, used, sizeof first) == 0)
        return name_matches_key(n, name, ekey, klen);
    other = sfs_etcd_names_new(sealer);
    ok = other && name_matches_key(other, name, ekey, klen);
    sfs_etcd_names_free(other);
    return ok;
}

int sfs_etcd_open_value(const sfs_key *key, const sfs_etcd_names *n, const char *ekey,
                        size_t klen, const unsigned char *blob, size_t len,
                        unsigned char *scratch, sfs_set *set, struct sfs_err *err)
{
    size_t plen, nlen;
    char name[SFS_ETCD_MAX_NAME + 1];
    const sfs_key *sealer = NULL;
    int rc;

    if (len > SFS_ETCD_HEADER_BYTES + SFS_AEAD_TAG_BYTES + VALUE_FIXED + SFS_ETCD_MAX_NAME +
                  SFS_ETCD_MAX_VALUE)
        return sfs_err_set(err, -EBADMSG, "%.*s: a value blob of %zu bytes is over the "
                           "format's limit", (int)klen, ekey, len);
    rc = unseal(key, &sealer, SFS_ETCD_KIND_VALUE, ekey, klen, blob, len, scratch, err);
    if (rc < 0)
        return rc;
    plen = len - SFS_ETCD_HEADER_BYTES - SFS_AEAD_TAG_BYTES;
    nlen = plen >= 2 ? (size_t)get_le(scratch, 2) : 0;
    if (plen < VALUE_FIXED || nlen == 0 || nlen > SFS_ETCD_MAX_NAME ||
        nlen > plen - VALUE_FIXED) {
        rc = sfs_err_set(err, -EBADMSG, "%.*s: malformed value record", (int)klen, ekey);
        goto out_wipe;
    }
    memcpy(name, scratch + 2, nlen);
    name[nlen] = '\0';
    if (strlen(name) != nlen || !name_belongs(key, sealer, n, name, ekey, klen)) {
        rc = sfs_err_set(err, -EBADMSG, "%.*s: the name sealed inside does not belong to this "
                         "key (renamed or moved)", (int)klen, ekey);
        goto out_wipe;
    }
    rc = sfs_set_append(set, name, scratch + VALUE_FIXED + nlen, plen - VALUE_FIXED - nlen,
                        (int64_t)get_le(scratch + 2 + nlen, 8),
                        (int64_t)get_le(scratch + 10 + nlen, 8));
    if (rc < 0)
        sfs_err_set(err, rc, "out of secure memory loading the secret set");
out_wipe:
    sfs_wipe(name, sizeof name);
    sfs_wipe(scratch, plen);
    return rc;
}

int sfs_etcd_seal_commit(const sfs_key *key, const char *ekey, size_t klen,
                         const struct sfs_etcd_commit *c, unsigned char **out, size_t *out_len,
                         struct sfs_err *err)
{
    unsigned char plain[COMMIT_PLAIN];

    put_le(plain, c->set_version, 8);
    memcpy(plain + 8, c->gen, SFS_ETCD_GEN_HEX);
    put_le(plain + 8 + SFS_ETCD_GEN_HEX, c->count, 4);
    memcpy(plain + 12 + SFS_ETCD_GEN_HEX, c->digest, SFS_ETCD_DIGEST_BYTES);
    return seal(key, SFS_ETCD_KIND_COMMIT, ekey, klen, plain, sizeof plain, out, out_len, err);
}

static bool is_gen(const unsigned char *p)
{
    size_t i;

    for (i = 0; i < SFS_ETCD_GEN_HEX; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

int sfs_etcd_open_commit(const sfs_key *key, const char *ekey, size_t klen,
                         const unsigned char *blob, size_t len, struct sfs_etcd_commit *c,
                         struct sfs_err *err)
{
    unsigned char plain[COMMIT_PLAIN];
    const sfs_key *sealer = NULL;
    int rc;

    rc = check_header(key, &sealer, SFS_ETCD_KIND_COMMIT, ekey, klen, blob, len, err);
    if (rc < 0)
        return rc;
    if (len != SFS_ETCD_HEADER_BYTES + COMMIT_PLAIN + SFS_AEAD_TAG_BYTES)
        return sfs_err_set(err, -EBADMSG, "%.*s: a commit record of %zu bytes (version 1 "
                           "has %d)", (int)klen, ekey, len,
                           SFS_ETCD_HEADER_BYTES + COMMIT_PLAIN + SFS_AEAD_TAG_BYTES);
    rc = unseal(key, NULL, SFS_ETCD_KIND_COMMIT, ekey, klen, blob, len, plain, err);
    if (rc < 0)
        return rc;
    if (!is_gen(plain + 8))
        return sfs_err_set(err, -EBADMSG, "%.*s: malformed commit record", (int)klen, ekey);
    c->set_version = get_le(plain, 8);
    memcpy(c->gen, plain + 8, SFS_ETCD_GEN_HEX);
    c->gen[SFS_ETCD_GEN_HEX] = '\0';
    c->count = (uint32_t)get_le(plain + 8 + SFS_ETCD_GEN_HEX, 4);
    memcpy(c->digest, plain + 12 + SFS_ETCD_GEN_HEX, SFS_ETCD_DIGEST_BYTES);
    return 0;
}

static int cmp_keyhash(const void *a, const void *b)
{
    const struct sfs_etcd_keyhash *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);

    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

int sfs_etcd_digest(struct sfs_etcd_keyhash *kh, size_t n,
                    unsigned char out[SFS_ETCD_DIGEST_BYTES])
{
    size_t i, len = 0, off = 0;
    unsigned char *buf;

    qsort(kh, n, sizeof *kh, cmp_keyhash);
    for (i = 0; i < n; i++)
        len += 2 + kh[i].klen + SFS_ETCD_DIGEST_BYTES;
    buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        put_le(buf + off, kh[i].klen, 2);
        memcpy(buf + off + 2, kh[i].key, kh[i].klen);
        memcpy(buf + off + 2 + kh[i].klen, kh[i].hash, SFS_ETCD_DIGEST_BYTES);
        off += 2 + kh[i].klen + SFS_ETCD_DIGEST_BYTES;
    }
    sfs_hash(out, SFS_ETCD_DIGEST_BYTES, buf, len, NULL, 0);
    free(buf);
    return 0;
}

void sfs_etcd_blob_hash(const unsigned char *blob, size_t len,
                        unsigned char out[SFS_ETCD_DIGEST_BYTES])
{
    sfs_hash(out, SFS_ETCD_DIGEST_BYTES, blob, len, NULL, 0);
}

const unsigned char *sfs_etcd_kv_hash(struct sfs_etcd_kv *kv)
{
    if (!kv->hashed) {
        sfs_etcd_blob_hash(kv->val, kv->vlen, kv->hash);
        kv->hashed = true;
    }
    return kv->hash;
}
