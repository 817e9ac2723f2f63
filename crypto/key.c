/* crypto/key.c — key rings, key files (v1 read, v2 read and write), passphrase unlocking. */
#include "crypto/key.h"
#include "crypto/aead.h"
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define V1_PREFIX "secretfs-key-v1:"
#define V1_PREFIX_LEN (sizeof V1_PREFIX - 1)
#define V2_HEADER "secretfs-key-v2\n"
#define V2_HEADER_LEN (sizeof V2_HEADER - 1)
#define VERSION_STEM "secretfs-key-v"
#define KEY_TAG "key:"
#define WRAP_TAG "argon2id:"
#define KEY_B64_LEN 44
#define V1_LINE_LEN (V1_PREFIX_LEN + KEY_B64_LEN + 1)
#define SALT_BYTES crypto_pwhash_SALTBYTES
#define RAW_MAX (SFS_KEYRING_MAX * SFS_KEY_BYTES)
#define FILE_MAX 4096

_Static_assert(SALT_BYTES == 16, "salt size");

struct kdf {
    unsigned long long ops;      /* 0: the file is not passphrase-protected */
    size_t mem;
    unsigned char salt[SALT_BYTES];
};

/* A ring is an array of these in one guarded allocation; [0] is the primary and the ring. */
struct sfs_key {
    unsigned char bytes[SFS_KEY_BYTES];
    unsigned char id[SFS_KEY_ID_BYTES];
    uint32_t n;                  /* keys from here on: the whole ring at [0], 1 elsewhere */
    struct kdf kdf;              /* [0]: how the file it came from was protected */
};

struct sfs_key_unlock {
    sfs_passphrase_fn ask;
    void *ctx;
    bool have_kek;
    struct kdf kdf;              /* what `kek` was derived with */
    unsigned char kek[SFS_KEY_BYTES];
};

/* ---- rings ---- */

/* A writable ring of `n` zeroed keys; seal it with ring_seal once filled. */
static sfs_key *ring_alloc(size_t n)
{
    sfs_key *ring;

    if (n == 0 || n > SFS_KEYRING_MAX)
        return NULL;
    ring = sodium_allocarray(n, sizeof *ring);
    if (!ring)
        return NULL;
    sodium_memzero(ring, n * sizeof *ring);
    for (size_t i = 0; i < n; i++)
        ring[i].n = 1;
    ring[0].n = (uint32_t)n;
    return ring;
}

/* Computes the ids and makes the ring read-only. */
static void ring_seal(sfs_key *ring)
{
    for (uint32_t i = 0; i < ring[0].n; i++)
        sfs_key_id(&ring[i], ring[i].id);
    (void)sodium_mprotect_readonly(ring);
}

sfs_key *sfs_key_from_bytes(const unsigned char bytes[SFS_KEY_BYTES])
{
    sfs_key *ring = ring_alloc(1);

    if (!ring)
        return NULL;
    memcpy(ring->bytes, bytes, SFS_KEY_BYTES);
    ring_seal(ring);
    return ring;
}

void sfs_key_free(sfs_key *key)
{
    if (key)
        sodium_free(key);
}

const unsigned char *sfs_key_bytes(const sfs_key *key)
{
    return key->bytes;
}

size_t sfs_key_count(const sfs_key *ring)
{
    return ring->n;
}

const sfs_key *sfs_key_at(const sfs_key *ring, size_t i)
{
    return i < ring->n ? &ring[i] : NULL;
}

const sfs_key *sfs_key_by_id(const sfs_key *ring, const unsigned char id[SFS_KEY_ID_BYTES])
{
    for (uint32_t i = 0; i < ring->n; i++)
        if (memcmp(ring[i].id, id, SFS_KEY_ID_BYTES) == 0)
            return &ring[i];
    return NULL;
}

bool sfs_key_protected(const sfs_key *ring)
{
    return ring->kdf.ops != 0;
}

/* A copy of `ring`'s keys with `src_index[i]` at position i (SIZE_MAX: a new random key). */
static sfs_key *ring_remap(const sfs_key *ring, const size_t *src_index, size_t n)
{
    sfs_key *out = ring_alloc(n);

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (src_index[i] == SIZE_MAX)
            randombytes_buf(out[i].bytes, SFS_KEY_BYTES);
        else
            memcpy(out[i].bytes, ring[src_index[i]].bytes, SFS_KEY_BYTES);
    }
    out[0].kdf = ring->kdf;
    ring_seal(out);
    return out;
}

sfs_key *sfs_key_ring_insert(const sfs_key *ring, size_t pos)
{
    size_t map[SFS_KEYRING_MAX], n = ring->n + 1;

    if (n > SFS_KEYRING_MAX || pos >= n)
        return NULL;
    for (size_t i = 0, j = 0; i < n; i++)
        map[i] = i == pos ? SIZE_MAX : j++;
    return ring_remap(ring, map, n);
}

sfs_key *sfs_key_ring_promote(const sfs_key *ring)
{
    size_t map[SFS_KEYRING_MAX];

    if (ring->n < 2)
        return NULL;
    for (size_t i = 0; i < ring->n; i++)
        map[i] = i;
    map[0] = 1;
    map[1] = 0;
    return ring_remap(ring, map, ring->n);
}

sfs_key *sfs_key_ring_primary_only(const sfs_key *ring)
{
    size_t map[1] = {0};

    return ring_remap(ring, map, 1);
}

/* ---- unlocking ---- */

sfs_key_unlock *sfs_key_unlock_new(sfs_passphrase_fn fn, void *ctx)
{
    sfs_key_unlock *u = sodium_malloc(sizeof *u);

    if (!u)
        return NULL;
    sodium_memzero(u, sizeof *u);
    u->ask = fn;
    u->ctx = ctx;
    return u;
}

void sfs_key_unlock_free(sfs_key_unlock *u)
{
    if (u)
        sodium_free(u);
}

static bool same_kdf(const struct kdf *a, const struct kdf *b)
{
    return a->ops == b->ops && a->mem == b->mem && sodium_memcmp(a->salt, b->salt,
                                                                  SALT_BYTES) == 0;
}

/* Makes u->kek the key `kdf` derives from the passphrase, asking for it unless u already
 * holds that key.  Returns 0, -ENOKEY (nothing to ask), -ENOMEM, or the asker's -errno. */
static int unlock_kek(sfs_key_unlock *u, const struct kdf *kdf, const char *path, bool confirm,
                      struct sfs_err *err)
{
    char *pass;
    size_t len = 0;
    int rc;

    if (u && u->have_kek && same_kdf(&u->kdf, kdf))
        return 0;
    if (!u || !u->ask)
        return sfs_err_set(err, -ENOKEY, "%s: the key file is protected by a passphrase; give "
                           "it with --passphrase-file FILE or SECRETFS_PASSPHRASE_FD, or run "
                           "on a terminal", path);
    pass = sodium_malloc(SFS_PASSPHRASE_MAX);
    if (!pass)
        return sfs_err_set(err, -ENOMEM, "%s: out of secure memory for the passphrase", path);
    rc = u->ask(u->ctx, path, confirm, pass, SFS_PASSPHRASE_MAX, &len, err);
    if (rc < 0)
        goto out_free;
    u->have_kek = false;
    if (crypto_pwhash(u->kek, sizeof u->kek, pass, len, kdf->salt, kdf->ops, kdf->mem,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        rc = sfs_err_set(err, -ENOMEM, "%s: not enough memory for Argon2id (%zu MiB); free "
                         "memory or raise the process's limits", path, kdf->mem >> 20);
        goto out_free;
    }
    u->kdf = *kdf;
    u->have_kek = true;
out_free:
    sodium_free(pass);
    return rc;
}

/* ---- reading ---- */

static const char *who(mode_t mode, mode_t group_bit, mode_t other_bit)
{
    bool g = mode & group_bit, o = mode & other_bit;

    if (g && o)
        return "group and others";
    if (g)
        return "group";
    if (o)
        return "others";
    return NULL;
}

static int mode_error(const char *path, mode_t mode, struct sfs_err *err)
{
    const char *r = who(mode, S_IRGRP, S_IROTH);
    const char *w = who(mode, S_IWGRP, S_IWOTH);
    const char *x = who(mode, S_IXGRP, S_IXOTH);
    char what[96];

    if (r && w && strcmp(r, w) == 0)
        snprintf(what, sizeof what, "is readable and writable by %s", r);
    else if (r && w)
        snprintf(what, sizeof what, "is readable by %s and writable by %s", r, w);
    else if (r)
        snprintf(what, sizeof what, "is readable by %s", r);
    else if (w)
        snprintf(what, sizeof what, "is writable by %s", w);
    else
        snprintf(what, sizeof what, "gives %s access", x ? x : "others");
    return sfs_err_set(err, -EPERM, "%s: mode %04o %s; chmod 600 it", path,
                       (unsigned)(mode & 07777), what);
}

/* Checks the opened file's type, owner and mode; returns 0 or -errno with err set. */
static int check_stat(int fd, const char *path, unsigned flags, off_t *size,
                      struct sfs_err *err)
{
    mode_t refused = flags & SFS_KEY_CREDENTIAL ? (S_IWGRP | S_IXGRP | S_IRWXO)
                                                : (S_IRWXG | S_IRWXO);
    struct stat st;

    if (fstat(fd, &st) < 0)
        return sfs_err_set(err, -errno, "%s: cannot stat key file: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return sfs_err_set(err, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL,
                           "%s: is %s, not a key file; point --key-file at the key file", path,
                           S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
    /* as OpenSSH's StrictModes, root included: a key someone else owns is theirs to swap */
    if (st.st_uid != geteuid() && st.st_uid != 0)
        return sfs_err_set(err, -EPERM, "%s: is owned by uid %u, not by the user running "
                           "secretfs (uid %u) or root, and its owner could replace the key; "
                           "chown %u %s (or use a key of your own)", path,
                           (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)geteuid(),
                           path);
    if (st.st_mode & refused)
        return mode_error(path, st.st_mode & (refused | S_IRWXU), err);
    *size = st.st_size;
    return 0;
}

/* Opens and checks `path`; returns the descriptor or -errno with err set. */
static int open_checked(const char *path, unsigned flags, off_t *size, struct sfs_err *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    int rc;

    if (fd < 0) {
        rc = -errno;
        if (rc == -ELOOP)
            return sfs_err_set(err, rc, "%s: is a symlink; point --key-file at the real file",
                               path);
        if (rc == -ENOENT)
            return sfs_err_set(err, rc, "%s: no such key file; check --key-file "
                               "(or create a key with `secretfs keygen`)", path);
        return sfs_err_set(err, rc, "%s: cannot open key file: %s", path, strerror(-rc));
    }
    rc = check_stat(fd, path, flags, size, err);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Reads up to `cap` bytes; returns the count or -errno. */
static ssize_t read_up_to(int fd, char *buf, size_t cap)
{
    size_t got = 0;

    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Decodes exactly `len` base64 characters into exactly `want` bytes at `out`. */
static int b64_exact(const char *in, size_t len, unsigned char *out, size_t want,
                     size_t *got)
{
    unsigned char tmp[RAW_MAX + SFS_AEAD_TAG_BYTES + 8];
    const char *end = NULL;
    size_t n = 0;
    int rc = 0;

    if (sodium_base642bin(tmp, sizeof tmp, in, len, NULL, &n, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 || end != in + len)
        rc = -EBADMSG;
    else if (want && n != want)
        rc = -ERANGE;
    else
        memcpy(out, tmp, n);
    if (got)
        *got = n;
    sodium_memzero(tmp, sizeof tmp);
    return rc;
}

/* Parses a v1 file (`len` bytes starting with V1_PREFIX) into raw[0..31]. */
static int parse_v1(const char *path, const char *buf, size_t len, unsigned char *raw,
                    struct sfs_err *err)
{
    size_t got = 0;
    int rc;

    if (len != V1_LINE_LEN)
        return sfs_err_set(err, -EINVAL, "%s: is %zu bytes, but a secretfs key file is exactly "
                           "%zu (\"" V1_PREFIX "\", %d base64 characters, a newline); "
                           "restore the key file from your backup",
                           path, len, V1_LINE_LEN, KEY_B64_LEN);
    if (buf[V1_LINE_LEN - 1] != '\n')
        return sfs_err_set(err, -EINVAL, "%s: the %d base64 characters are not followed by a "
                           "newline; restore the key file from your backup", path, KEY_B64_LEN);
    rc = b64_exact(buf + V1_PREFIX_LEN, KEY_B64_LEN, raw, SFS_KEY_BYTES, &got);
    if (rc == -EBADMSG)
        return sfs_err_set(err, -EINVAL, "%s: the key is not valid base64 (A-Z a-z 0-9 + / "
                           "with = padding); restore the key file from your backup", path);
    if (rc < 0)
        return sfs_err_set(err, -EINVAL, "%s: the key decodes to %zu bytes, not %d; restore "
                           "the key file from your backup", path, got, SFS_KEY_BYTES);
    return 0;
}

/* Parses the "key:" lines of a v2 body into raw; sets *n. */
static int parse_v2_keys(const char *path, const char *p, const char *end, unsigned char *raw,
                         size_t *n, struct sfs_err *err)
{
    const size_t line_len = sizeof KEY_TAG - 1 + KEY_B64_LEN + 1;
    size_t line = 2, got = 0;
    int rc;

    for (*n = 0; p < end; p += line_len, line++) {
        if ((size_t)(end - p) < line_len || memcmp(p, KEY_TAG, sizeof KEY_TAG - 1) != 0 ||
            p[line_len - 1] != '\n')
            return sfs_err_set(err, -EINVAL, "%s:%zu: expected \"key:\", %d base64 "
                               "characters and a newline; restore the key file from your "
                               "backup", path, line, KEY_B64_LEN);
        if (*n == SFS_KEYRING_MAX)
            return sfs_err_set(err, -EINVAL, "%s:%zu: more than %d keys; finish the rotation "
                               "with `secretfs rekey --finish`", path, line, SFS_KEYRING_MAX);
        rc = b64_exact(p + sizeof KEY_TAG - 1, KEY_B64_LEN, raw + *n * SFS_KEY_BYTES,
                       SFS_KEY_BYTES, &got);
        if (rc < 0)
            return sfs_err_set(err, -EINVAL, "%s:%zu: the key is not %s; restore the key file "
                               "from your backup", path, line,
                               rc == -EBADMSG ? "valid base64" : "32 bytes");
        for (size_t j = 0; j < *n; j++)
            if (sodium_memcmp(raw + j * SFS_KEY_BYTES, raw + *n * SFS_KEY_BYTES,
                              SFS_KEY_BYTES) == 0)
                return sfs_err_set(err, -EINVAL, "%s:%zu: repeats the key on line %zu; "
                                   "remove one", path, line, j + 2);
        (*n)++;
    }
    if (*n == 0)
        return sfs_err_set(err, -EINVAL, "%s: holds no key; restore the key file from your "
                           "backup", path);
    return 0;
}

/* Splits "OPS:MEM:SALT:NONCE:SEALED\n" (after WRAP_TAG) into its fields.  *sealed points at
 * SEALED, whose length is *sealed_len (the newline excluded). */
static int parse_wrap_fields(const char *p, const char *end, struct kdf *kdf,
                             unsigned char nonce[SFS_AEAD_NONCE_BYTES], const char **sealed,
                             size_t *sealed_len)
{
    const char *f[5];
    char num[2][24];
    size_t k = 0;

    if (end == p || end[-1] != '\n' || memchr(p, '\n', (size_t)(end - p)) != end - 1)
        return -EINVAL;
    f[k++] = p;
    for (const char *q = p; q < end - 1 && k < 5; q++)
        if (*q == ':')
            f[k++] = q + 1;
    if (k != 5 || memchr(f[4], ':', (size_t)(end - 1 - f[4])))
        return -EINVAL;
    for (int i = 0; i < 2; i++) {
        size_t n = (size_t)(f[i + 1] - 1 - f[i]);
        if (n == 0 || n >= sizeof num[i] || strspn(f[i], "0123456789") < n)
            return -EINVAL;
        memcpy(num[i], f[i], n);
        num[i][n] = '\0';
    }
    kdf->ops = strtoull(num[0], NULL, 10);
    kdf->mem = (size_t)strtoull(num[1], NULL, 10);
    if (kdf->ops < crypto_pwhash_OPSLIMIT_MIN || kdf->ops > 64 ||
        kdf->mem < crypto_pwhash_MEMLIMIT_MIN || kdf->mem > ((size_t)4 << 30))
        return -ERANGE;
    if (b64_exact(f[2], (size_t)(f[3] - 1 - f[2]), kdf->salt, SALT_BYTES, NULL) < 0 ||
        b64_exact(f[3], (size_t)(f[4] - 1 - f[3]), nonce, SFS_AEAD_NONCE_BYTES, NULL) < 0)
        return -EINVAL;
    *sealed = f[4];
    *sealed_len = (size_t)(end - 1 - f[4]);
    return 0;
}

/* Opens the protected line of a v2 file into raw; sets *n and *kdf. */
static int parse_v2_wrapped(const char *path, const char *buf, const char *end,
                            sfs_key_unlock *u, unsigned char *raw, size_t *n, struct kdf *kdf,
                            struct sfs_err *err)
{
    const char *p = buf + V2_HEADER_LEN + sizeof WRAP_TAG - 1, *sealed = NULL;
    unsigned char nonce[SFS_AEAD_NONCE_BYTES], box[RAW_MAX + SFS_AEAD_TAG_BYTES];
    size_t sealed_len = 0, box_len = 0;
    int rc = parse_wrap_fields(p, end, kdf, nonce, &sealed, &sealed_len);

    if (rc == -ERANGE)
        return sfs_err_set(err, -EINVAL, "%s:2: Argon2id parameters out of range (passes "
                           "1-64, memory 8 KiB-4 GiB); restore the key file from your backup",
                           path);
    if (rc < 0 || b64_exact(sealed, sealed_len, box, 0, &box_len) < 0 ||
        box_len < SFS_AEAD_TAG_BYTES + SFS_KEY_BYTES ||
        (box_len - SFS_AEAD_TAG_BYTES) % SFS_KEY_BYTES != 0)
        return sfs_err_set(err, -EINVAL, "%s:2: expected \"argon2id:PASSES:MEMORY:SALT:NONCE:"
                           "KEYS\"; restore the key file from your backup", path);
    rc = unlock_kek(u, kdf, path, false, err);
    if (rc < 0)
        return rc;
    *n = (box_len - SFS_AEAD_TAG_BYTES) / SFS_KEY_BYTES;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(raw, NULL, NULL, box, box_len,
                                                   (const unsigned char *)buf,
                                                   (size_t)(sealed - buf), nonce,
                                                   u->kek) != 0) {
        u->have_kek = false;
        return sfs_err_set(err, -EBADMSG, "%s: wrong passphrase: it does not unlock this key "
                           "file (or the file was altered); try again with the right "
                           "passphrase", path);
    }
    return 0;
}

/* Parses `len` bytes of a key file into raw keys (*n of them) and its protection. */
static int parse_file(const char *path, const char *buf, size_t len, sfs_key_unlock *u,
                      unsigned char *raw, size_t *n, struct kdf *kdf, struct sfs_err *err)
{
    const char *end = buf + len;

    *n = 0;
    if (len >= V1_PREFIX_LEN && memcmp(buf, V1_PREFIX, V1_PREFIX_LEN) == 0) {
        *n = 1;
        return parse_v1(path, buf, len, raw, err);
    }
    if (len >= V2_HEADER_LEN && memcmp(buf, V2_HEADER, V2_HEADER_LEN) == 0) {
        if ((size_t)(end - buf) > V2_HEADER_LEN + sizeof WRAP_TAG - 1 &&
            memcmp(buf + V2_HEADER_LEN, WRAP_TAG, sizeof WRAP_TAG - 1) == 0)
            return parse_v2_wrapped(path, buf, end, u, raw, n, kdf, err);
        return parse_v2_keys(path, buf + V2_HEADER_LEN, end, raw, n, err);
    }
    if (len == 0)
        return sfs_err_set(err, -EINVAL, "%s: is 0 bytes, not a secretfs key file; restore the "
                           "key file from your backup", path);
    if (len > sizeof VERSION_STEM && memcmp(buf, VERSION_STEM, sizeof VERSION_STEM - 1) == 0 &&
        buf[sizeof VERSION_STEM - 1] >= '3' && buf[sizeof VERSION_STEM - 1] <= '9')
        return sfs_err_set(err, -EPROTONOSUPPORT, "%s: key file format v%c; this secretfs "
                           "reads v1 and v2; upgrade secretfs", path,
                           buf[sizeof VERSION_STEM - 1]);
    return sfs_err_set(err, -EINVAL, "%s: does not start with \"secretfs-key-v2\" (or the "
                       "older \"" V1_PREFIX "\"), so it is not a secretfs key file; check "
                       "--key-file or restore the key from your backup", path);
}

/* Reads the checked file into buf (FILE_MAX + 1 bytes); returns its length or -errno. */
static ssize_t read_key_file(const char *path, unsigned flags, char *buf, struct sfs_err *err)
{
    off_t size = 0;
    ssize_t n;
    int fd = open_checked(path, flags, &size, err);

    if (fd < 0)
        return fd;
    if (size > FILE_MAX) {
        close(fd);
        return sfs_err_set(err, -EINVAL, "%s: is %lld bytes, more than a secretfs key file "
                           "(at most %d); check --key-file", path, (long long)size, FILE_MAX);
    }
    n = read_up_to(fd, buf, FILE_MAX + 1);
    close(fd);
    if (n < 0)
        return sfs_err_set(err, (int)n, "%s: cannot read key file: %s", path,
                           strerror((int)-n));
    if (n != (ssize_t)size)
        return sfs_err_set(err, -EAGAIN, "%s: changed size while being read; try again", path);
    return n;
}

int sfs_key_load_with(const char *path, sfs_key_unlock *u, unsigned flags, sfs_key **out,
                      struct sfs_err *err)
{
    char *buf = sodium_malloc(FILE_MAX + 1);
    unsigned char *raw = sodium_malloc(RAW_MAX);
    struct kdf kdf = {0};
    size_t n = 0;
    ssize_t len;
    int rc;

    *out = NULL;
    if (!buf || !raw) {
        rc = sfs_err_set(err, -ENOMEM, "%s: out of secure memory for the key", path);
        goto out_free;
    }
    len = read_key_file(path, flags, buf, err);
    rc = len < 0 ? (int)len : parse_file(path, buf, (size_t)len, u, raw, &n, &kdf, err);
    if (rc < 0)
        goto out_free;
    *out = ring_alloc(n);
    if (!*out) {
        rc = sfs_err_set(err, -ENOMEM, "%s: out of secure memory for the key", path);
        goto out_free;
    }
    for (size_t i = 0; i < n; i++)
        memcpy((*out)[i].bytes, raw + i * SFS_KEY_BYTES, SFS_KEY_BYTES);
    (*out)[0].kdf = kdf;
    ring_seal(*out);
out_free:
    if (buf)
        sodium_free(buf);
    if (raw)
        sodium_free(raw);
    return rc;
}

sfs_key *sfs_key_load(const char *path, struct sfs_err *err)
{
    sfs_key *ring = NULL;

    if (sfs_key_load_with(path, NULL, 0, &ring, err) < 0)
        return NULL;
    return ring;
}

bool sfs_key_file_protected(const char *path)
{
    char head[V2_HEADER_LEN + sizeof WRAP_TAG - 1];
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    ssize_t n;

    if (fd < 0)
        return false;
    n = read_up_to(fd, head, sizeof head);
    close(fd);
    return n == (ssize_t)sizeof head && memcmp(head, V2_HEADER, V2_HEADER_LEN) == 0 &&
           memcmp(head + V2_HEADER_LEN, WRAP_TAG, sizeof WRAP_TAG - 1) == 0;
}

/* ---- writing ---- */

/* Renders `ring` as a v2 file into buf (FILE_MAX bytes); the protected form seals under
 * u's key, which must have been derived with ring's kdf.  Returns the length or -errno. */
static ssize_t render(const sfs_key *ring, const sfs_key_unlock *u, char *buf)
{
    unsigned char raw[RAW_MAX], nonce[SFS_AEAD_NONCE_BYTES], box[RAW_MAX + SFS_AEAD_TAG_BYTES];
    char salt64[32], nonce64[48];
    size_t len = V2_HEADER_LEN, n = ring->n;
    int w;

    memcpy(buf, V2_HEADER, V2_HEADER_LEN);
    if (!sfs_key_protected(ring)) {
        for (size_t i = 0; i < n; i++) {
            memcpy(buf + len, KEY_TAG, sizeof KEY_TAG - 1);
            len += sizeof KEY_TAG - 1;
            (void)sodium_bin2base64(buf + len, KEY_B64_LEN + 1, ring[i].bytes, SFS_KEY_BYTES,
                                    sodium_base64_VARIANT_ORIGINAL);
            len += KEY_B64_LEN;
            buf[len++] = '\n';
        }
        return (ssize_t)len;
    }
    if (!u || !u->have_kek || !same_kdf(&u->kdf, &ring->kdf))
        return -ENOKEY;
    randombytes_buf(nonce, sizeof nonce);
    sodium_bin2base64(salt64, sizeof salt64, ring->kdf.salt, SALT_BYTES,
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(nonce64, sizeof nonce64, nonce, sizeof nonce,
                      sodium_base64_VARIANT_ORIGINAL);
    w = snprintf(buf + len, FILE_MAX - len, WRAP_TAG "%llu:%zu:%s:%s:", ring->kdf.ops,
                 ring->kdf.mem, salt64, nonce64);
    len += (size_t)w;
    for (size_t i = 0; i < n; i++)
        memcpy(raw + i * SFS_KEY_BYTES, ring[i].bytes, SFS_KEY_BYTES);
    (void)crypto_aead_xchacha20poly1305_ietf_encrypt(box, NULL, raw, n * SFS_KEY_BYTES,
                                                     (const unsigned char *)buf, len, NULL,
                                                     nonce, u->kek);
    sodium_bin2base64(buf + len, FILE_MAX - len, box, n * SFS_KEY_BYTES + SFS_AEAD_TAG_BYTES,
                      sodium_base64_VARIANT_ORIGINAL);
    len += strlen(buf + len);
    buf[len++] = '\n';
    sodium_memzero(raw, sizeof raw);
    return (ssize_t)len;
}

/* Writes `len` bytes to the new file `path` (O_EXCL), fsyncs it and its directory; removes
 * it on failure. */
static int create_file(const char *path, const char *buf, size_t len, struct sfs_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    int rc;

    if (fd < 0) {
        rc = -errno;
        if (rc == -EEXIST)
            return sfs_err_set(err, rc, "%s: already exists; refusing to overwrite a key file "
                               "(move it away first if you really mean to replace it)", path);
        return sfs_err_set(err, rc, "%s: cannot create key file: %s", path, strerror(-rc));
    }
    rc = sfs_write_private(fd, buf, len, path, err);
    if (close(fd) < 0 && rc == 0)
        rc = sfs_err_set(err, -errno, "%s: cannot close key file: %s", path, strerror(errno));
    if (rc == 0) {
        rc = sfs_fsync_parent_dir(path);
        if (rc < 0)
            sfs_err_set(err, rc, "%s: cannot fsync the directory holding the key file: %s",
                        path, strerror(-rc));
    }
    if (rc < 0)
        unlink(path);
    return rc;
}

/* The refusal create_file would give, before a passphrase is asked for nothing. */
static int refuse_existing(const char *path, struct sfs_err *err)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return 0;
    return sfs_err_set(err, -EEXIST, "%s: already exists; refusing to overwrite a key file "
                       "(move it away first if you really mean to replace it)", path);
}

static const size_t kdf_ops[] = {crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                 crypto_pwhash_OPSLIMIT_MODERATE,
                                 crypto_pwhash_OPSLIMIT_SENSITIVE};
static const size_t kdf_mem[] = {crypto_pwhash_MEMLIMIT_INTERACTIVE,
                                 crypto_pwhash_MEMLIMIT_MODERATE,
                                 crypto_pwhash_MEMLIMIT_SENSITIVE};

int sfs_key_generate_with(const char *path, sfs_key_unlock *u, enum sfs_kdf_level level,
                          struct sfs_err *err)
{
    unsigned char raw[SFS_KEY_BYTES];
    char *buf = sodium_malloc(FILE_MAX);
    sfs_key *ring = NULL;
    ssize_t len;
    int rc;

    randombytes_buf(raw, sizeof raw);
    ring = ring_alloc(1);
    if (!buf || !ring) {
        rc = sfs_err_set(err, -ENOMEM, "%s: out of secure memory for the key", path);
        goto out_free;
    }
    memcpy(ring->bytes, raw, SFS_KEY_BYTES);
    if (u) {
        ring->kdf.ops = kdf_ops[level];
        ring->kdf.mem = kdf_mem[level];
        randombytes_buf(ring->kdf.salt, SALT_BYTES);
        rc = refuse_existing(path, err);
        if (rc == 0)
            rc = unlock_kek(u, &ring->kdf, path, true, err);
        if (rc < 0)
            goto out_free;
    }
    len = render(ring, u, buf);
    rc = len < 0 ? sfs_err_set(err, (int)len, "%s: cannot seal the key", path)
                 : create_file(path, buf, (size_t)len, err);
out_free:
    sodium_memzero(raw, sizeof raw);
    if (buf)
        sodium_free(buf);
    sfs_key_free(ring);
    return rc;
}

int sfs_key_generate(const char *path, struct sfs_err *err)
{
    return sfs_key_generate_with(path, NULL, SFS_KDF_MODERATE, err);
}

/* Writes buf to a new temporary file beside `path` and renames it over `path`. */
static int replace_file(const char *path, const char *buf, size_t len, struct sfs_err *err)
{
    static const char suffix[] = ".tmp.XXXXXX";
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof suffix);
    int fd, rc;

    if (!tmp)
        return sfs_err_set(err, -ENOMEM, "%s: out of memory; the key file is unchanged", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, suffix, sizeof suffix);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = sfs_err_set(err, -errno, "%s: cannot create a temporary file beside the key file: "
                         "%s; the key file is unchanged", path, strerror(errno));
        goto out_free;
    }
    rc = sfs_write_private(fd, buf, len, tmp, err);
    if (close(fd) < 0 && rc == 0)
        rc = sfs_err_set(err, -errno, "%s: cannot close: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) < 0)
        rc = sfs_err_set(err, -errno, "%s: cannot replace the key file: %s", path,
                         strerror(errno));
    if (rc < 0) {
        size_t n = err ? strlen(err->msg) : 0;
        unlink(tmp);
        if (err)
            snprintf(err->msg + n, sizeof err->msg - n, "; the key file is unchanged");
        goto out_free;
    }
    rc = sfs_fsync_parent_dir(path);
    if (rc < 0)
        sfs_err_set(err, rc, "%s: the key file was replaced, but fsync of its directory failed: "
                    "%s; check the disk (dmesg) before relying on it", path, strerror(-rc));
out_free:
    free(tmp);
    return rc;
}

int sfs_key_save(const char *path, const sfs_key *ring, sfs_key_unlock *u,
                 struct sfs_err *err)
{
    char *buf = sodium_malloc(FILE_MAX);
    ssize_t len;
    int rc;

    if (!buf)
        return sfs_err_set(err, -ENOMEM, "%s: out of secure memory; the key file is unchanged",
                           path);
    len = render(ring, u, buf);
    if (len < 0)
        rc = sfs_err_set(err, (int)len, "%s: the passphrase that protects the key file is not "
                         "unlocked; the key file is unchanged", path);
    else
        rc = replace_file(path, buf, (size_t)len, err);
    sodium_free(buf);
    return rc;
}
