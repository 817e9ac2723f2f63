/* crypto/aead.c — AEAD, key ids, BLAKE2b, random bytes and base64 over libsodium. */
#include "crypto/aead.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#define KEY_ID_PERSONAL "secretfs-keyid-1"

_Static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == SFS_AEAD_NONCE_BYTES, "nonce");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == SFS_AEAD_TAG_BYTES, "tag");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == SFS_KEY_BYTES, "key size");
_Static_assert(crypto_kdf_KEYBYTES == SFS_KEY_BYTES, "kdf key size");

void sfs_aead_seal(const sfs_key *key, const unsigned char nonce[SFS_AEAD_NONCE_BYTES],
                   const void *ad, size_t ad_len, const void *plain, size_t len,
                   unsigned char *out)
{
    (void)crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, plain, len, ad, ad_len, NULL,
                                                     nonce, sfs_key_bytes(key));
}

int sfs_aead_open(const sfs_key *key, const unsigned char nonce[SFS_AEAD_NONCE_BYTES],
                  const void *ad, size_t ad_len, const unsigned char *sealed, size_t len,
                  unsigned char *plain)
{
    if (len < SFS_AEAD_TAG_BYTES)
        return -EBADMSG;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, sealed, len, ad, ad_len,
                                                   nonce, sfs_key_bytes(key)) != 0)
        return -EBADMSG;
    return 0;
}

void sfs_key_id(const sfs_key *key, unsigned char id[SFS_KEY_ID_BYTES])
{
    (void)crypto_generichash_blake2b_salt_personal(id, SFS_KEY_ID_BYTES, sfs_key_bytes(key),
                                                   SFS_KEY_BYTES, NULL, 0, NULL,
                                                   (const unsigned char *)KEY_ID_PERSONAL);
}

void sfs_hash(unsigned char *out, size_t out_len, const void *in, size_t len,
              const void *key, size_t key_len)
{
    (void)crypto_generichash(out, out_len, in, len, key, key_len);
}

void sfs_key_derive(const sfs_key *key, const char context[8], unsigned char *out,
                    size_t out_len)
{
    (void)crypto_kdf_derive_from_key(out, out_len, 1, context, sfs_key_bytes(key));
}

void sfs_fingerprint_key(const sfs_key *key, unsigned char out[SFS_FINGERPRINT_KEY_BYTES])
{
    sfs_key_derive(key, "auditfp1", out, SFS_FINGERPRINT_KEY_BYTES);
}

void sfs_fingerprint(const unsigned char fkey[SFS_FINGERPRINT_KEY_BYTES], const void *value,
                     size_t len, char hex[SFS_FINGERPRINT_HEX + 1])
{
    unsigned char h[SFS_FINGERPRINT_HEX / 2];

    (void)crypto_generichash(h, sizeof h, value, len, fkey, SFS_FINGERPRINT_KEY_BYTES);
    (void)sodium_bin2hex(hex, SFS_FINGERPRINT_HEX + 1, h, sizeof h);
}

void sfs_random_bytes(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

size_t sfs_base64_len(size_t len)
{
    return sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
}

int sfs_base64_encode(char *out, size_t cap, const void *in, size_t len)
{
    if (cap < sfs_base64_len(len))
        return -ENOSPC;
    (void)sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

int sfs_base64_decode(void *out, size_t cap, size_t *out_len, const char *in, size_t len)
{
    const char *end = NULL;

    if (len / 4 * 3 > cap + 2)
        return -ENOSPC;
    if (sodium_base642bin(out, cap, in, len, NULL, out_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return errno == ERANGE ? -ENOSPC : -EBADMSG;
    if (end != in + len)
        return -EBADMSG;
    return 0;
}
