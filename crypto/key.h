/* crypto/key.h — master key files: a ring of keys, optionally sealed under a passphrase.
 *
 * Formats (the README's "Key file" is the specification):
 *   v1 (read only): one line, "secretfs-key-v1:" + the 32-byte key in standard base64 + "\n".
 *   v2: "secretfs-key-v2\n", then one "key:BASE64\n" line per key (1..SFS_KEYRING_MAX; the
 *       first is the primary), or a single passphrase-protected line
 *       "argon2id:OPS:MEMBYTES:SALT:NONCE:SEALED\n" whose SEALED is XChaCha20-Poly1305 of the
 *       raw keys (32 bytes each, primary first) under Argon2id(passphrase, SALT, OPS, MEMBYTES),
 *       with everything before SEALED as associated data.
 * Loading refuses symlinks, anything but a regular file, files owned by someone other than
 * the caller (or root), files that group or others may read or write, and anything not
 * exactly in one of those formats.
 *
 * The ring.  An `sfs_key *` is a ring of one or more keys.  Every function that takes a
 * `const sfs_key *` to seal or hash (sfs_aead_seal, sfs_aead_open, sfs_key_id,
 * sfs_key_derive, sfs_key_bytes) uses the ring's *primary* (first) key, so code written for
 * one key keeps working: it seals new data under the primary.  To open data sealed under an
 * older key, read the key id stored beside the ciphertext and look it up with
 * sfs_key_by_id: it returns that key as a one-key ring (never trial decryption).
 *
 * Thread safety: a loaded ring is read-only memory and may be shared by any number of
 * threads; an sfs_key_unlock is used by one thread at a time.
 */
#ifndef SFS_CRYPTO_KEY_H
#define SFS_CRYPTO_KEY_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

#define SFS_KEY_BYTES 32
#define SFS_KEY_ID_BYTES 8
#define SFS_KEYRING_MAX 16
#define SFS_PASSPHRASE_MAX 1024

typedef struct sfs_key sfs_key;

/* All functions need sfs_crypto_init() (crypto/secmem.h) to have run. */

/* ---- the ring ---- */

/* Loads and checks a key file (v1 or v2; see above).  Returns the ring (guarded, read-only
 * sodium memory; free with sfs_key_free) or NULL with err naming the file and the fix
 * (e.g. "master.key: mode 0644 is readable by group and others; chmod 600 it").  A
 * passphrase-protected file fails here with a message saying how to give the passphrase:
 * use sfs_key_load_with.  Messages never quote the file. */
sfs_key *sfs_key_load(const char *path, struct sfs_err *err);

/* Wipes and frees a ring returned by sfs_key_load*, sfs_key_from_bytes or sfs_key_ring_*.
 * NULL is a no-op.  Never call it on what sfs_key_by_id or sfs_key_at return. */
void sfs_key_free(sfs_key *key);

/* The primary key's raw bytes (read-only, valid until sfs_key_free), for crypto/ only. */
const unsigned char *sfs_key_bytes(const sfs_key *key);

/* A one-key ring from raw bytes (tests, fuzzing).  Returns NULL on ENOMEM. */
sfs_key *sfs_key_from_bytes(const unsigned char bytes[SFS_KEY_BYTES]);

/* How many keys the ring holds (>= 1).  For what sfs_key_by_id/sfs_key_at return: 1. */
size_t sfs_key_count(const sfs_key *ring);

/* Key `i` (0: the primary) as a one-key ring, borrowed from `ring` (valid until
 * sfs_key_free(ring)); NULL when i >= sfs_key_count(ring). */
const sfs_key *sfs_key_at(const sfs_key *ring, size_t i);

/* The key in `ring` whose id (sfs_key_id, crypto/aead.h) is `id`, as a one-key ring
 * borrowed from `ring` (valid until sfs_key_free(ring); seal and open with it directly), or
 * NULL when no key in the ring has that id.  This is how every at-rest format opens: the
 * blob's header carries the id of the key that sealed it. */
const sfs_key *sfs_key_by_id(const sfs_key *ring, const unsigned char id[SFS_KEY_ID_BYTES]);

/* Whether the ring was loaded from a passphrase-protected file (sfs_key_save then
 * protects it again under the same passphrase). */
bool sfs_key_protected(const sfs_key *ring);

/* New rings for `secretfs rekey`; `ring` is unchanged.  NULL on ENOMEM, or when the result
 * would have more than SFS_KEYRING_MAX keys (insert) or fewer than 2 keys to swap.
 *   insert: a new random key at position `pos` (0: the new primary; 1: staged behind it)
 *   promote: the first two keys swapped (the staged key becomes primary)
 *   primary_only: only the primary key, the old ones dropped */
sfs_key *sfs_key_ring_insert(const sfs_key *ring, size_t pos);
sfs_key *sfs_key_ring_promote(const sfs_key *ring);
sfs_key *sfs_key_ring_primary_only(const sfs_key *ring);

/* ---- passphrases ---- */

/* Asks for the passphrase of the key file `path` (confirm: a new one, ask twice).  Writes
 * at most `cap` bytes to `buf` (secure memory, wiped by the caller) and sets *len.  Returns
 * 0 or -errno with err saying why (no terminal, unreadable --passphrase-file, ...). */
typedef int (*sfs_passphrase_fn)(void *ctx, const char *path, bool confirm, char *buf,
                                 size_t cap, size_t *len, struct sfs_err *err);

/* Unlocks passphrase-protected key files and remembers, in secure memory, the key the
 * passphrase derives (never the passphrase), so that a daemon re-reading the file at every
 * reload asks only once: a file protected with the same passphrase, salt and Argon2id
 * parameters opens without asking again (sfs_key_save keeps the salt when it rewrites a
 * protected file).  `fn` may be NULL (nothing to ask: protected files are refused with how
 * to give a passphrase).  Returns NULL on ENOMEM. */
typedef struct sfs_key_unlock sfs_key_unlock;
sfs_key_unlock *sfs_key_unlock_new(sfs_passphrase_fn fn, void *ctx);
void sfs_key_unlock_free(sfs_key_unlock *u);

/* sfs_key_load, and protected files too, through `u` (may be NULL).  Returns 0 with *out set,
 * or: -EBADMSG "wrong passphrase" (a passphrase that does not unlock the file; or the file
 * was altered), -ENOKEY (protected, and no way to ask), -EPERM/-EINVAL/-ENOENT/... as
 * sfs_key_load says. */
int sfs_key_load_with(const char *path, sfs_key_unlock *u, unsigned flags, sfs_key **out,
                      struct sfs_err *err) __attribute__((warn_unused_result));

/* sfs_key_load_with flags. */
enum {
    /* `path` is a systemd credential ($CREDENTIALS_DIRECTORY, a read-only directory systemd
     * fills at service start): as well as mode 0400, accept the group read bit, which is
     * how `ls` shows the ACL entry systemd adds for a service's User= (the file stays owned
     * by root, unwritable, and never readable by others). */
    SFS_KEY_CREDENTIAL = 1,
};

/* Whether `path` looks like a passphrase-protected key file (no checks; false if unreadable). */
bool sfs_key_file_protected(const char *path);

/* ---- writing ---- */

/* Argon2id cost of a new passphrase-protected file (libsodium's OPSLIMIT/MEMLIMIT levels:
 * interactive 2 passes/64 MiB, moderate 3/256 MiB, sensitive 4/1 GiB). */
enum sfs_kdf_level { SFS_KDF_INTERACTIVE, SFS_KDF_MODERATE, SFS_KDF_SENSITIVE };

/* Creates `path` (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600 whatever the umask) holding a v2 file
 * with one new random key, fsyncs it and its directory.  With `u` non-NULL the file is
 * protected by a new passphrase asked through `u` (confirmed) at cost `level`.  Returns 0,
 * -EEXIST (never overwrites, nor follows a symlink), or -errno; err says why.  On failure
 * after creating the file it is removed.  Key bytes are wiped from every buffer. */
int sfs_key_generate(const char *path, struct sfs_err *err);
int sfs_key_generate_with(const char *path, sfs_key_unlock *u, enum sfs_kdf_level level,
                          struct sfs_err *err);

/* Atomically replaces the key file `path` with `ring` in v2 (temporary file in the same
 * directory, mode 0600, fsync, rename, directory fsync); a protected ring stays protected
 * under the passphrase `u` unlocked it with (same salt and cost, new nonce).  The old file
 * must pass sfs_key_load's checks (the caller loaded it).  Returns 0 or -errno with err
 * saying whether the old file is still in place. */
int sfs_key_save(const char *path, const sfs_key *ring, sfs_key_unlock *u,
                 struct sfs_err *err);

#endif
