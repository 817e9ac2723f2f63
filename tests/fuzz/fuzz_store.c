/* tests/fuzz/fuzz_store.c — fuzzes sfs_store_decode (store/store.h) under a fixed key.
 *
 * The first input byte picks a mode (byte % 3); the rest is the payload.
 *   0  decode the payload as a store image.  Failure must be one of the documented errors
 *      with *out NULL; success must hold only storable entries and survive a round trip
 *      (re-encode, decode: the same entries, timestamps and image size).
 *   1  tamper: the payload's first 8 bytes say how to damage a store, the rest is turned
 *      into a set (NUL-separated NAME=VALUE items) and encoded with sfs_store_encode.  The
 *      image must decode to the same set, must be refused under another key, and once
 *      damaged (a byte or two changed, truncated, extended) must be refused: a modified
 *      valid store is never accepted.
 *   2  plaintext: the payload is sealed as the contents of a version-1 store by an
 *      encoder written here from the format (this file includes sodium.h for that alone,
 *      like tests/unit/test_store.c), so the parser behind the AEAD is reached.  It must
 *      accept exactly the plaintexts a reference reading of the format accepts, and yield
 *      exactly the entries that reading finds.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/key.h"
#include "crypto/secmem.h"
#include "store/store.h"
#include "secrets/set.h"

#include "fuzz.h"

#define HDR 68
#define TAG 16
#define NAME_MAX_BYTES 255

static sfs_key *key, *other_key;

static void init(void)
{
    unsigned char raw[SFS_KEY_BYTES];

    FUZZ_CHECK(sfs_crypto_init() == 0, "sfs_crypto_init failed");
    for (int i = 0; i < SFS_KEY_BYTES; i++)
        raw[i] = (unsigned char)(0xA5 ^ (i * 7));
    key = sfs_key_from_bytes(raw);
    raw[0] ^= 1;
    other_key = sfs_key_from_bytes(raw);
    FUZZ_CHECK(key && other_key, "out of memory");
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;

    while (n-- > 0)
        v = (v << 8) | p[n];
    return v;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static bool documented_error(int rc)
{
    return rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EKEYREJECTED;
}

static void check_failure(int rc, const sfs_set *set, const struct sfs_err *err)
{
    FUZZ_CHECK(documented_error(rc), "undocumented rc %d (%s)", rc, err->msg);
    FUZZ_CHECK(set == NULL, "a set on failure");
    FUZZ_CHECK(err->msg[0] != '\0', "failure without a message");
}

/* Same names, values and timestamps. */
static bool same_entries(const sfs_set *a, const sfs_set *b)
{
    size_t n = sfs_set_count(a);

    if (n != sfs_set_count(b) || !sfs_set_equal(a, b))
        return false;
    for (size_t i = 0; i < n; i++) {
        const sfs_entry *x = sfs_set_at(a, i), *y = sfs_set_at(b, i);
        if (strcmp(x->name, y->name) != 0 || x->len != y->len ||
            (x->len && memcmp(x->value, y->value, x->len) != 0) ||
            x->created != y->created || x->updated != y->updated)
            return false;
    }
    return true;
}

static void check_storable(const sfs_set *set)
{
    const char *prev = NULL;

    for (size_t i = 0; i < sfs_set_count(set); i++) {
        const sfs_entry *e = sfs_set_at(set, i);
        size_t len = strlen(e->name);

        FUZZ_CHECK(len >= 1 && len <= NAME_MAX_BYTES, "entry %zu: %zu-byte name", i, len);
        FUZZ_CHECK(!prev || strcmp(prev, e->name) < 0, "entries out of order");
        prev = e->name;
    }
}

/* Encodes `set`, decodes the image, and checks the result equals `set`; returns the
 * image (caller frees). */
static unsigned char *round_trip(const sfs_set *set, size_t *len)
{
    struct sfs_err err = {{0}};
    unsigned char *img = NULL;
    sfs_set *back = NULL;
    int rc;

    rc = sfs_store_encode(set, key, &img, len, &err);
    FUZZ_CHECK(rc == 0, "encode failed: %d (%s)", rc, err.msg);
    rc = sfs_store_decode(img, *len, key, &back, &err);
    FUZZ_CHECK(rc == 0, "a freshly encoded store does not decode: %d (%s)", rc, err.msg);
    FUZZ_CHECK(same_entries(set, back), "round trip changed the entries");
    sfs_set_free(back);
    return img;
}

static void mode_raw(const uint8_t *p, size_t n)
{
    struct sfs_err err = {{0}};
    unsigned char *img;
    sfs_set *set = NULL;
    size_t len;
    int rc;

    rc = sfs_store_decode(p, n, key, &set, &err);
    if (rc != 0) {
        check_failure(rc, set, &err);
        return;
    }
    FUZZ_CHECK(set != NULL, "success without a set");
    check_storable(set);
    img = round_trip(set, &len);
    FUZZ_CHECK(len == n, "re-encoded image is %zu bytes, the input %zu", len, n);
    free(img);
    sfs_set_free(set);
}

/* A set from NUL-separated NAME=VALUE items (names cut to 255 bytes; empty names skipped). */
static sfs_set *set_from(const uint8_t *p, size_t n, int64_t created, int64_t updated)
{
    sfs_set *set = sfs_set_new(n);
    size_t i = 0;

    FUZZ_CHECK(set != NULL, "out of memory");
    while (i < n) {
        const uint8_t *item = p + i, *end = memchr(item, '\0', n - i), *eq;
        size_t item_len = end ? (size_t)(end - item) : n - i, name_len;
        char name[NAME_MAX_BYTES + 1];

        eq = memchr(item, '=', item_len);
        name_len = eq ? (size_t)(eq - item) : item_len;
        if (name_len > NAME_MAX_BYTES)
            name_len = NAME_MAX_BYTES;
        if (name_len > 0) {
            const uint8_t *val = eq ? eq + 1 : item + item_len;
            memcpy(name, item, name_len);
            name[name_len] = '\0';
            FUZZ_CHECK(sfs_set_put(set, name, val, (size_t)(item + item_len - val), created,
                                   updated) == 0, "sfs_set_put failed");
        }
        i += item_len + 1;
    }
    return set;
}

static void mode_tamper(const uint8_t *p, size_t n)
{
    uint8_t ctl[8] = {0};
    struct sfs_err err = {{0}};
    unsigned char *img, *bad;
    sfs_set *set, *out = NULL;
    size_t len, bad_len, pos, pos2;
    unsigned char x, x2;
    int rc;

    memcpy(ctl, p, n < 8 ? n : 8);
    p += n < 8 ? n : 8;
    n -= n < 8 ? n : 8;
    set = set_from(p, n, (int64_t)le(ctl, 4) - 0x80000000LL, (int64_t)le(ctl + 2, 4));
    img = round_trip(set, &len);

    rc = sfs_store_decode(img, len, other_key, &out, &err);
    FUZZ_CHECK(rc == -EKEYREJECTED && out == NULL, "another key: rc %d (%s)", rc, err.msg);

    bad = malloc(len + 16);
    FUZZ_CHECK(bad != NULL, "out of memory");
    memcpy(bad, img, len);
    bad_len = len;
    pos = (size_t)le(ctl + 1, 4) % len;
    pos2 = (size_t)le(ctl + 5, 2) % len;
    x = ctl[5] ? ctl[5] : 0x80;
    x2 = ctl[6] ? ctl[6] : 0x01;
    switch (ctl[0] % 4) {
    case 0:
        bad[pos] ^= x;
        break;
    case 1:
        bad_len = pos;
        break;
    case 2:
        for (int i = 0; i <= ctl[7] % 16; i++)
            bad[bad_len++] = ctl[(i + 1) % 8];
        break;
    default:
        bad[pos] ^= x;
        bad[pos2] ^= pos2 == pos && x2 == x ? (unsigned char)(x2 ^ 0x40) : x2;
        break;
    }
    FUZZ_CHECK(bad_len != len || memcmp(bad, img, len) != 0, "harness made no change");
    rc = sfs_store_decode(bad, bad_len, key, &out, &err);
    FUZZ_CHECK(rc != 0, "a modified store was accepted (mutation %u at %zu/%zu)",
               ctl[0] % 4, pos, pos2);
    check_failure(rc, out, &err);
    free(bad);
    free(img);
    sfs_set_free(set);
}

/* Seals `plain` as a version-1 store image (as tests/unit/test_store.c's spec_seal). */
static unsigned char *seal(const uint8_t *plain, size_t plain_len, size_t *len)
{
    size_t total = HDR + plain_len + TAG;
    unsigned char *img = malloc(total);

    FUZZ_CHECK(img != NULL, "out of memory");
    memcpy(img, "SFSSTORE", 8);
    put_le(img + 8, 1, 2);
    put_le(img + 10, 0, 2);
    crypto_generichash_blake2b_salt_personal(img + 12, 8, sfs_key_bytes(key), SFS_KEY_BYTES,
                                             NULL, 0, NULL,
                                             (const unsigned char *)"secretfs-keyid-1");
    put_le(img + 20, total, 8);
    memset(img + 28, 0x5A, 24);
    crypto_generichash(img + 52, 16, img, 52, NULL, 0);
    crypto_aead_xchacha20poly1305_ietf_encrypt(img + HDR, NULL, plain, plain_len, img, HDR,
                                               NULL, img + 28, sfs_key_bytes(key));
    *len = total;
    return img;
}

/* The format read independently: returns whether `p` is a well-formed plaintext and, if
 * `check` is given, that its entries are exactly check's, in order. */
static bool reference_read(const uint8_t *p, size_t n, const sfs_set *check)
{
    const uint8_t *prev = NULL;
    size_t at = 4, prev_len = 0;
    uint64_t count;

    if (n < 4)
        return false;
    count = le(p, 4);
    if (check && count != sfs_set_count(check))
        return false;
    for (uint64_t i = 0; i < count; i++) {
        size_t name_len, value_len;
        const uint8_t *name;

        if (n - at < 2)
            return false;
        name_len = (size_t)le(p + at, 2);
        name = p + at + 2;
        if (name_len < 1 || name_len > NAME_MAX_BYTES || n - at - 2 < name_len ||
            memchr(name, '\0', name_len))
            return false;
        if (prev) {
            int c = memcmp(prev, name, prev_len < name_len ? prev_len : name_len);
            if (c > 0 || (c == 0 && prev_len >= name_len))
                return false;
        }
        at += 2 + name_len;
        if (n - at < 4)
            return false;
        value_len = (size_t)le(p + at, 4);
        at += 4;
        if (n - at < value_len || n - at - value_len < 16)
            return false;
        if (check) {
            const sfs_entry *e = sfs_set_at(check, (size_t)i);
            if (strlen(e->name) != name_len || memcmp(e->name, name, name_len) != 0 ||
                e->len != value_len || (value_len && memcmp(e->value, p + at, value_len)) ||
                e->created != (int64_t)le(p + at + value_len, 8) ||
                e->updated != (int64_t)le(p + at + value_len + 8, 8))
                return false;
        }
        at += value_len + 16;
        prev = name;
        prev_len = name_len;
    }
    return at == n;
}

static void mode_plaintext(const uint8_t *p, size_t n)
{
    struct sfs_err err = {{0}};
    unsigned char *img, *again;
    sfs_set *set = NULL;
    size_t len, again_len;
    bool valid = reference_read(p, n, NULL);
    int rc;

    img = seal(p, n, &len);
    rc = sfs_store_decode(img, len, key, &set, &err);
    if (valid) {
        FUZZ_CHECK(rc == 0, "a well-formed plaintext was refused: %d (%s)", rc, err.msg);
        FUZZ_CHECK(reference_read(p, n, set), "decoded entries differ from the plaintext");
        check_storable(set);
        again = round_trip(set, &again_len);
        FUZZ_CHECK(again_len == len, "re-encoded image is %zu bytes, the input %zu",
                   again_len, len);
        free(again);
    } else {
        FUZZ_CHECK(rc == -EBADMSG, "a malformed plaintext gave %d (%s)", rc, err.msg);
        check_failure(rc, set, &err);
        FUZZ_CHECK(strstr(err.msg, "malformed") != NULL, "unexpected error: %s", err.msg);
    }
    sfs_set_free(set);
    free(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;

    if (!ready) {
        init();
        ready = true;
    }
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        mode_raw(data + 1, size - 1);
        break;
    case 1:
        mode_tamper(data + 1, size - 1);
        break;
    default:
        mode_plaintext(data + 1, size - 1);
        break;
    }
    return 0;
}

#ifdef FUZZ_STORE_MAKE_SEEDS
/* Writes the seed corpus (see tests/fuzz/README.md):
 *   cc -DFUZZ_STORE_MAKE_SEEDS -D_GNU_SOURCE -I. tests/fuzz/fuzz_store.c \
 *      build/{secrets,crypto,util}/libsfs-*.a -lsodium -o make_store_seeds
 *   ./make_store_seeds tests/fuzz/corpus/store */
static const char *seed_dir;

static void write_seed(const char *name, uint8_t mode, const void *p, size_t n)
{
    char file[4096];
    FILE *f;

    snprintf(file, sizeof file, "%s/%s", seed_dir, name);
    f = fopen(file, "wb");
    FUZZ_CHECK(f && fputc(mode, f) != EOF && fwrite(p, 1, n, f) == n && fclose(f) == 0,
               "cannot write %s", file);
}

struct pt {
    uint8_t b[2048];
    size_t n;
};

static void pt_entry(struct pt *p, const char *name, const char *value, uint64_t created,
                     uint64_t updated)
{
    size_t nl = strlen(name), vl = strlen(value);

    put_le(p->b + p->n, nl, 2);
    memcpy(p->b + p->n + 2, name, nl);
    p->n += 2 + nl;
    put_le(p->b + p->n, vl, 4);
    memcpy(p->b + p->n + 4, value, vl);
    p->n += 4 + vl;
    put_le(p->b + p->n, created, 8);
    put_le(p->b + p->n + 8, updated, 8);
    p->n += 16;
}

static void seed_image(const char *name, const char *items, size_t items_len)
{
    unsigned char *img;
    sfs_set *set = set_from((const uint8_t *)items, items_len, 1700000000, 1700000100);
    size_t len;

    img = round_trip(set, &len);
    write_seed(name, 0, img, len);
    free(img);
    sfs_set_free(set);
}

int main(int argc, char **argv)
{
    static const char items[] = "API_KEY=sk-123\0DB_URL=postgres://u:p@h/db\0EMPTY=\0"
                                "pem=-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n";
    char long_name[300];
    struct pt p;

    FUZZ_CHECK(argc == 2, "usage: %s DIR", argv[0]);
    seed_dir = argv[1];
    init();

    seed_image("image-empty", "", 0);
    seed_image("image-one", "TOKEN=abc", 9);
    seed_image("image-four", items, sizeof items - 1);
    memset(long_name, 'N', 255);
    strcpy(long_name + 255, "=v");
    seed_image("image-255-byte-name", long_name, strlen(long_name));

    for (uint8_t kind = 0; kind < 4; kind++) {
        uint8_t buf[8 + sizeof items] = {kind, 3, 0, 0, 0, 0x10, 0x22, 5};
        char name[32];
        memcpy(buf + 8, items, sizeof items - 1);
        snprintf(name, sizeof name, "tamper-%u", kind);
        write_seed(name, 1, buf, 8 + sizeof items - 1);
    }

    p.n = 4;
    put_le(p.b, 0, 4);
    write_seed("plain-empty", 2, p.b, p.n);
    put_le(p.b, 2, 4);
    pt_entry(&p, "A", "1", 1, 2);
    pt_entry(&p, "B.b-c", "two\0", 0, 0);
    write_seed("plain-two", 2, p.b, p.n);
    write_seed("plain-trailing", 2, p.b, p.n + 1);
    write_seed("plain-truncated", 2, p.b, p.n - 3);
    p.n = 4;
    pt_entry(&p, "B", "1", 1, 2);
    pt_entry(&p, "A", "2", 1, 2);
    write_seed("plain-out-of-order", 2, p.b, p.n);
    p.n = 4;
    pt_entry(&p, "A", "1", 1, 2);
    pt_entry(&p, "A", "2", 1, 2);
    write_seed("plain-duplicate", 2, p.b, p.n);
    p.n = 4;
    put_le(p.b, 1, 4);
    pt_entry(&p, "A\001", "1", 1, 2);
    p.b[7] = 0; /* a NUL in the name */
    write_seed("plain-nul-in-name", 2, p.b, p.n);
    put_le(p.b, 0xFFFFFFFF, 4);
    write_seed("plain-huge-count", 2, p.b, p.n);
    sfs_key_free(key);
    sfs_key_free(other_key);
    return 0;
}
#endif
