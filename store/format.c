/* store/format.c — the sealed image: the file store's at-rest format (README "Store file"). */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/aead.h"
#include "crypto/secmem.h"

#include "secrets/names.h"

/* Byte layout (the README's "Store file (version 1)" is the specification; keep the two in
 * step). */
#define MAGIC "SFSSTORE"
#define MAGIC_LEN 8
#define OFF_VERSION 8
#define OFF_FLAGS 10
#define OFF_KEY_ID 12
#define KEY_ID_LEN SFS_KEY_ID_BYTES
#define OFF_TOTAL 20
#define OFF_NONCE 28
#define NONCE_LEN SFS_AEAD_NONCE_BYTES
#define OFF_CHECKSUM 52
#define CHECKSUM_LEN 16
#define HEADER_LEN 68
#define TAG_LEN SFS_AEAD_TAG_BYTES
#define MIN_LEN (HEADER_LEN + TAG_LEN)

#define MAX_PLAINTEXT ((size_t)64 << 20)
#define MAX_FILE (MIN_LEN + MAX_PLAINTEXT)

/* Smallest encoded entry: u16 name_len, 1 name byte, u32 value_len, i64, i64. */
#define ENTRY_MIN 23

_Static_assert(OFF_NONCE + NONCE_LEN == OFF_CHECKSUM, "header layout");
_Static_assert(OFF_CHECKSUM + CHECKSUM_LEN == HEADER_LEN, "header layout");

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void header_checksum(const unsigned char *header, unsigned char sum[CHECKSUM_LEN])
{
    sfs_hash(sum, CHECKSUM_LEN, header, OFF_CHECKSUM, NULL, 0);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Sets *out to the plaintext size of `set`.  Returns 0, or -EFBIG / -EINVAL with err set
 * when the set cannot be stored. */
static int plaintext_size(const sfs_set *set, size_t *out, struct sfs_err *err)
{
    size_t n = sfs_set_count(set), total = 4;
    const char *prev = NULL;

    if (n > UINT32_MAX)
        return sfs_err_set(err, -EFBIG, "%zu secrets are more than a store holds", n);
    for (size_t i = 0; i < n; i++) {
        const sfs_entry *e = sfs_set_at(set, i);
        size_t name_len = strlen(e->name);

        if (name_len == 0 || name_len > SFS_NAME_MAX)
            return sfs_err_set(err, -EINVAL, "secret #%zu has a %zu-byte name; a stored name "
                               "is 1-%d bytes", i + 1, name_len, SFS_NAME_MAX);
        if (prev && strcmp(prev, e->name) >= 0)
            return sfs_err_set(err, -EINVAL, "secret #%zu is out of order in the set "
                               "(internal error)", i + 1);
        prev = e->name;
        total += 2 + name_len + 4 + 16;
        if (e->len > MAX_PLAINTEXT || total + e->len > MAX_PLAINTEXT)
            return sfs_err_set(err, -EFBIG, "the secrets take more than the %zu MiB a store "
                               "holds", MAX_PLAINTEXT >> 20);
        total += e->len;
    }
    *out = total;
    return 0;
}

int sfs_store_encode(const sfs_set *set, const sfs_key *key, unsigned char **out,
                     size_t *out_len, struct sfs_err *err)
{
    unsigned char *plain = NULL, *image = NULL, *p;
    size_t plain_len = 0, image_len, n = sfs_set_count(set);
    sfs_arena *scratch = NULL;
    int rc;

    rc = plaintext_size(set, &plain_len, err);
    if (rc < 0)
        return rc;
    image_len = HEADER_LEN + plain_len + TAG_LEN;
    scratch = sfs_arena_new(plain_len);
    plain = scratch ? sfs_arena_alloc(scratch, plain_len ? plain_len : 1) : NULL;
    image = malloc(image_len);
    if (!plain || !image) {
        rc = sfs_err_set(err, -ENOMEM, "out of memory encoding %zu bytes of secrets",
                         plain_len);
        goto out_free;
    }

    p = plain;
    put_u32(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        const sfs_entry *e = sfs_set_at(set, i);
        size_t name_len = strlen(e->name);

        put_u16(p, (uint16_t)name_len);
        memcpy(p + 2, e->name, name_len);
        p += 2 + name_len;
        put_u32(p, e->len);
        if (e->len)
            memcpy(p + 4, e->value, e->len);
        p += 4 + e->len;
        put_u64(p, (uint64_t)e->created);
        put_u64(p + 8, (uint64_t)e->updated);
        p += 16;
    }

    memcpy(image, MAGIC, MAGIC_LEN);
    put_u16(image + OFF_VERSION, SFS_STORE_VERSION);
    put_u16(image + OFF_FLAGS, 0);
    sfs_key_id(key, image + OFF_KEY_ID);
    put_u64(image + OFF_TOTAL, image_len);
    sfs_random_bytes(image + OFF_NONCE, NONCE_LEN);
    header_checksum(image, image + OFF_CHECKSUM);
    sfs_aead_seal(key, image + OFF_NONCE, image, HEADER_LEN, plain, plain_len,
                  image + HEADER_LEN);

    *out = image;
    *out_len = image_len;
    image = NULL;
    rc = 0;

out_free:
    free(image);
    sfs_arena_free(scratch);
    return rc;
}

/* Checks the framing of every entry and sums the arena space the set will need, so the
 * decoder can presize the set and then insert without re-checking. */
__attribute__((warn_unused_result))
static int plaintext_check(const unsigned char *p, size_t len, size_t *arena_bytes,
                           struct sfs_err *err)
{
    const unsigned char *end = p + len, *prev = NULL;
    size_t prev_len = 0, need = 0;
    uint32_t count;

    if (len < 4)
        return sfs_err_set(err, -EBADMSG, "store contents are malformed: no entry count");
    count = get_u32(p);
    p += 4;
    if (count > (size_t)(end - p) / ENTRY_MIN)
        return sfs_err_set(err, -EBADMSG, "store contents are malformed: %" PRIu32 " entries "
                           "cannot fit in %zu bytes", count, len);
    for (uint32_t i = 1; i <= count; i++) {
        size_t name_len, value_len;
        const unsigned char *name;
        int order;

        if (end - p < 2)
            goto out_short;
        name_len = get_u16(p);
        name = p + 2;
        if (name_len == 0 || name_len > SFS_NAME_MAX)
            return sfs_err_set(err, -EBADMSG, "store contents are malformed: entry %" PRIu32
                               " has a %zu-byte name (allowed: 1-%d)", i, name_len,
                               SFS_NAME_MAX);
        if ((size_t)(end - name) < name_len + 4)
            goto out_short;
        if (memchr(name, '\0', name_len))
            return sfs_err_set(err, -EBADMSG, "store contents are malformed: entry %" PRIu32
                               " has a NUL byte in its name", i);
        if (prev) {
            order = memcmp(prev, name, prev_len < name_len ? prev_len : name_len);
            if (order > 0 || (order == 0 && prev_len >= name_len))
                return sfs_err_set(err, -EBADMSG, "store contents are malformed: entry %"
                                   PRIu32 " is out of order or a duplicate", i);
        }
        prev = name;
        prev_len = name_len;
        p = name + name_len;
        value_len = get_u32(p);
        p += 4;
        if ((size_t)(end - p) < value_len || (size_t)(end - p) - value_len < 16)
            goto out_short;
        p += value_len + 16;
        need += (name_len + 1 + 15) / 16 * 16 + (value_len + 15) / 16 * 16;
    }
    if (p != end)
        return sfs_err_set(err, -EBADMSG, "store contents are malformed: %zu unexpected bytes "
                           "after the last entry", (size_t)(end - p));
    *arena_bytes = need;
    return 0;

out_short:
    return sfs_err_set(err, -EBADMSG, "store contents are malformed: an entry runs past the "
                       "end of the data");
}

static int plaintext_decode(const unsigned char *p, size_t len, sfs_set **out,
                            struct sfs_err *err)
{
    char name[SFS_NAME_MAX + 1];
    size_t arena_bytes = 0;
    uint32_t count;
    sfs_set *set;
    int rc;

    rc = plaintext_check(p, len, &arena_bytes, err);
    if (rc < 0)
        return rc;
    set = sfs_set_new(arena_bytes);
    if (!set)
        return sfs_err_set(err, -ENOMEM, "out of secure memory for %zu bytes of secrets",
                           arena_bytes);
    count = get_u32(p);
    p += 4;
    for (uint32_t i = 0; i < count; i++) {
        size_t name_len = get_u16(p), value_len;
        const unsigned char *value;

        memcpy(name, p + 2, name_len);
        name[name_len] = '\0';
        p += 2 + name_len;
        value_len = get_u32(p);
        value = p + 4;
        p = value + value_len;
        rc = sfs_set_put(set, name, value, value_len, (int64_t)get_u64(p),
                         (int64_t)get_u64(p + 8));
        p += 16;
        if (rc < 0) {
            sfs_err_set(err, rc, "out of secure memory decoding the store");
            goto out_free;
        }
    }
    *out = set;
    set = NULL;

out_free:
    sfs_set_free(set);
    sfs_wipe(name, sizeof name);
    return rc;
}

/* Everything that can be checked without the key, in an order that makes any truncation
 * report "truncated", and a version change report the version before any checksum. */
__attribute__((warn_unused_result))
static int header_check(const unsigned char *b, size_t len, struct sfs_err *err)
{
    unsigned char sum[CHECKSUM_LEN];
    uint64_t total;
    uint16_t version, flags;

    if (memcmp(b, MAGIC, len < MAGIC_LEN ? len : MAGIC_LEN) != 0)
        return sfs_err_set(err, -EBADMSG, "not a secretfs store (bad magic); check the store "
                           "path");
    if (len < OFF_FLAGS)
        goto out_short;
    version = get_u16(b + OFF_VERSION);
    if (version != SFS_STORE_VERSION)
        return sfs_err_set(err, -EPROTONOSUPPORT, "store format version %u; this secretfs "
                           "reads version %d; upgrade secretfs", version, SFS_STORE_VERSION);
    if (len < HEADER_LEN)
        goto out_short;
    header_checksum(b, sum);
    if (!sfs_equal_ct(sum, b + OFF_CHECKSUM, CHECKSUM_LEN))
        return sfs_err_set(err, -EBADMSG, "store header is corrupted (checksum mismatch); "
                           "restore the store from a backup");
    flags = get_u16(b + OFF_FLAGS);
    if (flags != 0)
        return sfs_err_set(err, -EPROTONOSUPPORT, "store uses format flags 0x%04x that this "
                           "secretfs does not know; upgrade secretfs", flags);
    total = get_u64(b + OFF_TOTAL);
    if (total < MIN_LEN || total > MAX_FILE)
        return sfs_err_set(err, -EBADMSG, "store header is corrupted (it declares %" PRIu64
                           " bytes, outside %d-%zu); restore the store from a backup",
                           total, MIN_LEN, MAX_FILE);
    if (len < total)
        return sfs_err_set(err, -EBADMSG, "store is truncated: expected %" PRIu64 " bytes, "
                           "found %zu; restore the store from a backup", total, len);
    if (len > total)
        return sfs_err_set(err, -EBADMSG, "store has %zu bytes of trailing data after the %"
                           PRIu64 " bytes its header declares; restore the store from a "
                           "backup", len - (size_t)total, total);
    return 0;

out_short:
    return sfs_err_set(err, -EBADMSG, "store is truncated: found %zu bytes, but a store is at "
                       "least %d; restore the store from a backup", len, MIN_LEN);
}

int sfs_store_decode(const void *buf, size_t len, const sfs_key *key, sfs_set **out,
                     struct sfs_err *err)
{
    const unsigned char *b = buf;
    unsigned char id[KEY_ID_LEN];
    unsigned char *plain = NULL;
    sfs_arena *scratch = NULL;
    size_t plain_len;
    int rc;

    *out = NULL;
    rc = header_check(b, len, err);
    if (rc < 0)
        return rc;
    sfs_key_id(key, id);
    if (memcmp(id, b + OFF_KEY_ID, KEY_ID_LEN) != 0) {
        char want[2 * KEY_ID_LEN + 1], have[2 * KEY_ID_LEN + 1];
        hex(b + OFF_KEY_ID, KEY_ID_LEN, want);
        hex(id, KEY_ID_LEN, have);
        return sfs_err_set(err, -EKEYREJECTED, "store was sealed with a different key (key id "
                           "%s; this key's id is %s); check --key-file", want, have);
    }
    plain_len = len - MIN_LEN;
    scratch = sfs_arena_new(plain_len);
    plain = scratch ? sfs_arena_alloc(scratch, plain_len ? plain_len : 1) : NULL;
    if (!plain) {
        sfs_arena_free(scratch);
        return sfs_err_set(err, -ENOMEM, "out of secure memory for %zu bytes of secrets",
                           plain_len);
    }
    if (sfs_aead_open(key, b + OFF_NONCE, b, HEADER_LEN, b + HEADER_LEN, len - HEADER_LEN,
                      plain) != 0) {
        rc = sfs_err_set(err, -EBADMSG, "store contents fail authentication: the store is "
                         "corrupted or was tampered with; restore it from a backup");
        goto out_free;
    }
    rc = plaintext_decode(plain, plain_len, out, err);

out_free:
    sfs_arena_free(scratch);
    return rc;
}
