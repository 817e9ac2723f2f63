/* store/store.h — where a secret set lives at rest, behind one interface.
 *
 * The only store header fs/, docker/ and cli/ include.  A *location* names a store: a plain
 * path is the file backend (one sealed file, store/file.c); a URL selects another backend by
 * its scheme (`etcd://HOST:PORT[,HOST:PORT...]/PREFIX`, store/etcd.c).  Every backend hands
 * out whole, authenticated sets with a revision, writes a whole new set atomically (a writer
 * lock or a compare-and-swap, retried), and may tell its owner when the set changes.  Callers
 * never learn which backend they talk to beyond sfs_store_kind() and the status lines.
 *
 * Threading: a store handle is used by one thread at a time, except that a backend's own
 * watch machinery (started by sfs_store_watch) may run threads of its own; everything it
 * shares with the caller is behind the backend's lock.
 */
#ifndef SFS_STORE_STORE_H
#define SFS_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/key.h"
#include "secrets/set.h"
#include "util/err.h"

/* What does not fit in a location.  Every pointer is borrowed: the caller keeps the strings
 * alive until sfs_store_close.  Zero means the default. */
struct sfs_store_options {
    /* file backend */
    bool watch;                    /* sfs_store_watch follows replacements of the file */
    unsigned lock_timeout_ms;      /* wait this long for the writer lock (default 30000) */
    /* etcd backend ([etcd] in the config) */
    const char *ca_file;           /* TLS: CA bundle for https:// endpoints */
    const char *cert_file;         /* TLS client certificate and key */
    const char *key_file;
    const char *user;              /* etcd auth */
    const char *password_file;     /* the password; checked like a key file */
    unsigned dial_timeout_ms;      /* connecting to a member (default 5000) */
    unsigned request_timeout_ms;   /* one request (default 10000) */
    /* A daemon's sealed local copy of the last good set (file-store format, same key),
     * served when the backend cannot be reached at start; NULL: none.  Ignored by the file
     * backend (the store is already local). */
    const char *cache_path;
};

typedef struct sfs_store sfs_store;

/* Opens the store at `location` with `o` (NULL: all defaults).  Nothing is read or
 * contacted yet beyond checking the location's form and the files the options name.
 * Returns 0 with *out set (free with sfs_store_close), or -EINVAL for a location that is
 * malformed or names an unknown scheme ("ftp://...: unknown store scheme 'ftp'; a store is
 * a path or etcd://HOST:PORT/PREFIX"), or -errno; err says why. */
int sfs_store_open(const char *location, const struct sfs_store_options *o, sfs_store **out,
                   struct sfs_err *err) __attribute__((warn_unused_result));

/* Whether `location` is a file path (no URL scheme): the CLI makes such a location absolute
 * before the daemon changes to /. */
bool sfs_store_is_path(const char *location);

/* Stops any watch and frees the handle.  NULL is a no-op. */
void sfs_store_close(sfs_store *s);

/* "file" or "etcd". */
const char *sfs_store_kind(const sfs_store *s);

/* The location as given, for messages (never holds a credential). */
const char *sfs_store_location(const sfs_store *s);

/* sfs_store_load flags. */
enum {
    SFS_LOAD_FRESH = 1,  /* ask the backend itself, not what a running watch has mirrored */
};

/* Reads the whole current set and decrypts it under `key`.  On 0, *out is a new set in
 * secure memory (caller frees) and *revision (if not NULL) the backend's revision of it
 * (etcd: the cluster revision it was read at; file: 0).  With a watch running, the etcd
 * backend answers from its mirror of the ciphertext (no network) unless SFS_LOAD_FRESH.
 * Returns -ENOENT when there is no store at the location (err says how to create one),
 * -EBADMSG / -EKEYREJECTED / -EPROTONOSUPPORT as the formats define (a tampered or moved blob
 * is -EBADMSG), -ETIMEDOUT / -ECONNREFUSED / -EHOSTUNREACH when a backend cannot be reached,
 * or -errno.  Never partial data. */
int sfs_store_load(sfs_store *s, const sfs_key *key, unsigned flags, sfs_set **out,
                   uint64_t *revision, struct sfs_err *err) __attribute__((warn_unused_result));

/* An edit of the current set, for sfs_store_update: changes `set` in place and returns 0
 * (write it), SFS_STORE_UNCHANGED (write nothing), or -errno with err set (abort, write
 * nothing).  It may be called more than once (a compare-and-swap that lost a race calls it
 * again on the newer set), so it must not print or keep anything until the update returns. */
typedef int (*sfs_store_edit_fn)(sfs_set *set, void *ctx, struct sfs_err *err);
#define SFS_STORE_UNCHANGED 1

/* Read-modify-write, atomic against every other writer: loads the current set (an empty
 * one if there is no store yet), applies `edit`, and replaces the store with the result,
 * sealed under `key`.  The file backend holds its writer lock for the whole step (waiting at
 * most lock_timeout_ms, saying after a second who waits for what); etcd compares the
 * revision it read and retries the edit on a conflict.  A failure leaves the store as it was
 * and err says so.  Returns 0, SFS_STORE_UNCHANGED, or -errno. */
int sfs_store_update(sfs_store *s, const sfs_key *key, sfs_store_edit_fn edit, void *ctx,
                     struct sfs_err *err);

/* Replaces the whole set with a copy of `set`, atomically (sfs_store_update with an edit
 * that copies).  Returns 0 or -errno. */
int sfs_store_replace(sfs_store *s, const sfs_key *key, const sfs_set *set,
                      struct sfs_err *err);

/* ---- change notification (the daemon) ---- */

/* Starts following changes to the store, after the first successful load (it follows from
 * the revision that load returned).  The file backend watches the store's directory with
 * inotify when the options ask for it (else nothing happens); etcd runs a watch stream with
 * reconnection in a thread of its own.  Returns 0 or -errno. */
int sfs_store_watch(sfs_store *s, struct sfs_err *err);

/* A descriptor that turns readable when something may have changed (poll it for POLLIN),
 * or -1 when the store is not being watched. */
int sfs_store_watch_fd(const sfs_store *s);

/* Call when the watch descriptor was readable or the timeout it last asked for ran out.
 * Returns true when the store changed and the change is complete: load it now.  Otherwise
 * sets *timeout_ms to how long to wait before calling again (-1: until the descriptor turns
 * readable).  Drains the descriptor. */
bool sfs_store_watch_due(sfs_store *s, int *timeout_ms);

/* Appends the backend's `.status` lines ("backend=file\n", or "backend=etcd\nrevision=N\n
 * connection=connected\n"...) to buf; returns the length written (cut to cap - 1,
 * NUL-terminated).  Thread-safe against the watch; never contains a value. */
size_t sfs_store_status(const sfs_store *s, char *buf, size_t cap);

/* ---- the sealed image (the file store's format, also etcd's local cache) ---- */

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
 * secure memory and wiped.  Returns 0, -ENOMEM, -EFBIG (more than 64 MiB of plaintext) or
 * -EINVAL (a name the format cannot hold: empty or over 255 bytes). */
int sfs_store_encode(const sfs_set *set, const sfs_key *key, unsigned char **out,
                     size_t *out_len, struct sfs_err *err);

/* Writes `set` as a sealed image to `path` atomically (temporary file in the same
 * directory, fsync, rename, directory fsync), mode 0600 for a new file.  The etcd backend's
 * local cache and `secretfs copy` to a file use it.  Returns 0 or -errno. */
int sfs_store_write_file(const char *path, const sfs_key *key, const sfs_set *set,
                         struct sfs_err *err);

/* Reads the sealed image at `path` (see sfs_store_decode).  -ENOENT if missing. */
int sfs_store_read_file(const char *path, const sfs_key *key, sfs_set **out,
                        struct sfs_err *err) __attribute__((warn_unused_result));

#endif
