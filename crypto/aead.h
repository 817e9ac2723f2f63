/* crypto/aead.h — sealing bytes under the master key, and the hashes and encodings around it.
 *
 * The primitives every at-rest format (store/) is built from, so that only crypto/ includes
 * sodium.h: XChaCha20-Poly1305 (IETF) with associated data, a key's public id, keyed and
 * unkeyed BLAKE2b, random bytes and standard base64.  All of them need sfs_crypto_init()
 * (crypto/secmem.h) to have run.  None of them allocates; buffers are the caller's.
 */
#ifndef SFS_CRYPTO_AEAD_H
#define SFS_CRYPTO_AEAD_H

#include <stdbool.h>
#include <stddef.h>

#include "crypto/key.h"

#define SFS_AEAD_NONCE_BYTES 24
#define SFS_AEAD_TAG_BYTES 16
#define SFS_KEY_ID_BYTES 8

/* Seals `len` bytes of `plain` with `nonce` and associated data `ad` (may be NULL when
 * ad_len is 0) into `out`, which holds len + SFS_AEAD_TAG_BYTES bytes (ciphertext, then the
 * tag).  `out` may equal `plain`.  A nonce must never be reused with the same key: take it
 * from sfs_random_bytes. */
void sfs_aead_seal(const sfs_key *key, const unsigned char nonce[SFS_AEAD_NONCE_BYTES],
                   const void *ad, size_t ad_len, const void *plain, size_t len,
                   unsigned char *out);

/* Opens `len` bytes of `sealed` (ciphertext then tag; len >= SFS_AEAD_TAG_BYTES) into
 * `plain` (len - SFS_AEAD_TAG_BYTES bytes; put it in secure memory).  Returns 0, or -EBADMSG
 * when the bytes, the nonce, the associated data or the key do not match what was sealed;
 * `plain` then holds nothing of use. */
int sfs_aead_open(const sfs_key *key, const unsigned char nonce[SFS_AEAD_NONCE_BYTES],
                  const void *ad, size_t ad_len, const unsigned char *sealed, size_t len,
                  unsigned char *plain) __attribute__((warn_unused_result));

/* The key's public id: 8 bytes of BLAKE2b (personalised "secretfs-keyid-1") of the key.
 * Stored beside ciphertext so a wrong key is named as such, never tried. */
void sfs_key_id(const sfs_key *key, unsigned char id[SFS_KEY_ID_BYTES]);

/* BLAKE2b of `in` into `out_len` bytes (16..64), keyed when key_len > 0 (16..64 bytes). */
void sfs_hash(unsigned char *out, size_t out_len, const void *in, size_t len,
              const void *key, size_t key_len);

/* A subkey of the master key for one purpose (`context`: exactly 8 characters, e.g.
 * "etcdname"), `out_len` bytes (16..64).  Put `out` in secure memory and wipe it. */
void sfs_key_derive(const sfs_key *key, const char context[8], unsigned char *out,
                    size_t out_len);

/* Fingerprints of served values, for the access audit (fs/audit.c) and `secretfs audit
 * --fingerprint`: keyed BLAKE2b, 16 bytes, as 32 lowercase hex digits, under a subkey of
 * the master key (context "auditfp1").  Hosts that share the key agree on a value's
 * fingerprint; without the key a fingerprint cannot be used to test guesses of the value.
 * sfs_fingerprint_key derives the subkey into `out` (put it in secure memory, wipe it);
 * sfs_fingerprint hashes `len` bytes of `value` under it into `hex` (NUL-terminated). */
#define SFS_FINGERPRINT_KEY_BYTES 32
#define SFS_FINGERPRINT_HEX 32
void sfs_fingerprint_key(const sfs_key *key, unsigned char out[SFS_FINGERPRINT_KEY_BYTES]);
void sfs_fingerprint(const unsigned char fkey[SFS_FINGERPRINT_KEY_BYTES], const void *value,
                     size_t len, char hex[SFS_FINGERPRINT_HEX + 1]);

/* Fills `buf` with `n` random bytes from the kernel's CSPRNG. */
void sfs_random_bytes(void *buf, size_t n);

/* Standard base64 (with padding) of `len` bytes into `out`, NUL-terminated; `cap` must be at
 * least sfs_base64_len(len).  Returns 0 or -ENOSPC. */
size_t sfs_base64_len(size_t len);
int sfs_base64_encode(char *out, size_t cap, const void *in, size_t len);

/* Decodes standard base64 (padding required, no whitespace) into `out` (cap bytes); on 0,
 * *out_len is the decoded size.  Returns -EBADMSG for anything that is not exactly base64,
 * -ENOSPC when it does not fit. */
int sfs_base64_decode(void *out, size_t cap, size_t *out_len, const char *in, size_t len)
    __attribute__((warn_unused_result));

/* Constant-time equality of two equal-length buffers (also in secmem.h as sfs_equal_ct). */

#endif
