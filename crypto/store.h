/* crypto/store.h — the encrypted store file: the only code that knows the at-rest format.
 *
 * One file, a versioned header authenticated as associated data, and the whole secret set
 * (names, values, created/updated) sealed with XChaCha20-Poly1305 under the master key.
 * The byte-level format is specified in crypto/FORMAT.md (copied into the README, "Store
 * format").  Decoding is
 * all-or-nothing: any truncation, bit flip, wrong key or unknown version is a distinct
 * error and never yields partial data.
 */
#ifndef SFS_CRYPTO_STORE_H
#define SFS_CRYPTO_STORE_H

#include <stddef.h>

#include "crypto/key.h"
#include "secrets/set.h"
#include "util/err.h"

#define SFS_STORE_VERSION 1

/* Decodes an in-memory store image; `buf` is only read.  Returns 0 with *out a new set
 * (caller frees with sfs_set_free), or a negative errno with *out NULL and err saying which
 * failure it was (messages are not prefixed with a file name and never quote a value):
 *   -EBADMSG  truncated, trailing data, bad magic, header corrupted, contents fail
 *             authentication, or malformed plaintext
 *   -EPROTONOSUPPORT  a version this build does not read
 *   -EKEYREJECTED     sealed with a different key */
int sfs_store_decode(const void *buf, size_t len, const sfs_key *key, sfs_set **out,
                     struct sfs_err *err) __attribute__((warn_unused_result));

/* Encodes `set` under `key` with a fresh random nonce.  On 0, *out is a malloc'd image of
 * *out_len bytes (ciphertext only; caller frees with free()).  The plaintext is built in
 * sodium_malloc memory and wiped.  Returns 0, -ENOMEM, -EFBIG (more than 64 MiB of
 * plaintext) or -EINVAL (a name the format cannot hold: empty or over 255 bytes). */
int sfs_store_encode(const sfs_set *set, const sfs_key *key, unsigned char **out,
                     size_t *out_len, struct sfs_err *err);

/* Reads and decodes the store at `path` (symlinks are followed: operators may link it).
 * -ENOENT if it does not exist (callers decide whether that means "empty store"), -EISDIR,
 * -EFBIG (larger than any store), I/O errors, or errors as sfs_store_decode; every message
 * is prefixed with path. */
int sfs_store_read(const char *path, const sfs_key *key, sfs_set **out, struct sfs_err *err)
    __attribute__((warn_unused_result));

/* Atomically replaces the store at `path` with `set`: temp file "PATH.tmp.XXXXXX" in the
 * same directory (mode 0600), write, fsync, rename, fsync the directory.  The previous store
 * is intact, and the temp file removed, on any failure before the rename, and err then ends
 * with what to do and "the store is unchanged" (only a failed directory fsync after the
 * rename returns an error with the new store in place, and err says so).  Returns 0 or
 * -errno as sfs_store_encode or the failing system call; err is prefixed with a path.
 * Callers that read-modify-write hold sfs_store_lock around read and write. */
int sfs_store_write(const char *path, const sfs_key *key, const sfs_set *set,
                    struct sfs_err *err);

/* Takes the exclusive writer lock for `path` (flock on "PATH.lock", created 0600, never
 * through a symlink), blocking; retries on EINTR.  Returns 0 with *fd set, or -errno with
 * *fd = -1.  The lock file is left in place.  Release with sfs_store_unlock. */
int sfs_store_lock(const char *path, int *fd, struct sfs_err *err);

/* Releases a lock from sfs_store_lock (closes fd).  A negative fd is a no-op. */
void sfs_store_unlock(int fd);

#endif
