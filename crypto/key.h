/* crypto/key.h — master key files.
 *
 * Format (documented in the README): one line, "secretfs-key-v1:" followed by the 32-byte key
 * in standard base64 (44 characters), then "\n".  Loading refuses symlinks, files that group
 * or others may read or write, and anything not exactly in that format.
 */
#ifndef SFS_CRYPTO_KEY_H
#define SFS_CRYPTO_KEY_H

#include "util/err.h"

#define SFS_KEY_BYTES 32

typedef struct sfs_key sfs_key;

/* All functions need sfs_crypto_init() (crypto/secmem.h) to have run. */

/* Creates `path` (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600 whatever the umask) holding a new
 * random key, fsyncs it and its directory.  Returns 0, -EEXIST (never overwrites, nor
 * follows a symlink), or -errno; err says why.  On failure after creating the file it is
 * removed.  The key bytes are wiped from every buffer before returning. */
int sfs_key_generate(const char *path, struct sfs_err *err);

/* Loads and checks a key file (O_NOFOLLOW; a regular file; no group/other mode bits; exactly
 * the format above).  Returns the key (in guarded, read-only sodium memory; caller frees
 * with sfs_key_free) or NULL with err naming the file and the fix (e.g. "master.key: mode
 * 0644 is readable by group and others; chmod 600 it").  Messages never quote the file. */
sfs_key *sfs_key_load(const char *path, struct sfs_err *err);

/* Wipes and frees.  NULL is a no-op. */
void sfs_key_free(sfs_key *key);

/* The raw bytes (read-only, valid until sfs_key_free), for the store module only. */
const unsigned char *sfs_key_bytes(const sfs_key *key);

/* Builds a key from raw bytes (tests, fuzzing).  Returns NULL on ENOMEM. */
sfs_key *sfs_key_from_bytes(const unsigned char bytes[SFS_KEY_BYTES]);

#endif
