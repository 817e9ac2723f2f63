/* store/etcd.h — the etcd backend's parts, shared by store/etcd*.c only (and the backend's
 * C-level tests in tests/etcd/).  Nothing outside store/ includes it.
 *
 *   etcd_blob.c  the version-1 blob format: sealed commit records and sealed values
 *   etcd_http.c  the JSON-gateway client over libcurl: failover, auth, range, txn, watch
 *   etcd.c       the backend: location, load, update (read-edit-write), mirror, watch thread
 *   etcd_memo.c  the last decoded generation, so a reload decrypts only the blobs that changed
 *   etcd_gen.c   generations that are not the set: staging marks, reclaiming abandoned ones
 *
 * Key layout under PREFIX (always ending in '/'):
 *   PREFIX "commit"          the commit record (kind 1)
 *   PREFIX "g/" GEN "/" ID   one value (kind 2); GEN 16 hex chars, ID 32 hex chars
 *   PREFIX "g/" GEN          a staged generation's mark until its commit ("START BUDGET")
 */
#ifndef SFS_STORE_ETCD_H
#define SFS_STORE_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "crypto/aead.h"
#include "crypto/key.h"
#include "secrets/set.h"
#include "util/err.h"

/* ---- blobs (etcd_blob.c) ---- */

#define SFS_ETCD_BLOB_VERSION 1
#define SFS_ETCD_KIND_COMMIT 1
#define SFS_ETCD_KIND_VALUE 2
#define SFS_ETCD_HEADER_BYTES (4 + 1 + 1 + SFS_KEY_ID_BYTES + SFS_AEAD_NONCE_BYTES)
#define SFS_ETCD_GEN_HEX 16
#define SFS_ETCD_ID_HEX 32
#define SFS_ETCD_DIGEST_BYTES 32
#define SFS_ETCD_MAX_VALUE (1024 * 1024)
#define SFS_ETCD_MAX_NAME 255

/* What a commit record says. */
struct sfs_etcd_commit {
    uint64_t set_version;
    char gen[SFS_ETCD_GEN_HEX + 1];
    uint32_t count;
    unsigned char digest[SFS_ETCD_DIGEST_BYTES];
};

/* One value key of a generation and the BLAKE2b-256 of its stored bytes (digest input). */
struct sfs_etcd_keyhash {
    const char *key;          /* borrowed */
    size_t klen;
    unsigned char hash[SFS_ETCD_DIGEST_BYTES];
};

/* The per-key secrets a writer or reader needs: the name-id subkey.  Lives in secure memory
 * (sfs_etcd_names_new); free with sfs_etcd_names_free, which wipes it. */
typedef struct sfs_etcd_names sfs_etcd_names;
sfs_etcd_names *sfs_etcd_names_new(const sfs_key *key);
void sfs_etcd_names_free(sfs_etcd_names *n);

/* Writes the 32 hex characters (and a NUL) naming `name` in etcd: a keyed BLAKE2b-128 of the
 * name under the "etcdname" subkey, so names are not visible in etcd. */
void sfs_etcd_name_id(const sfs_etcd_names *n, const char *name, char out[SFS_ETCD_ID_HEX + 1]);

/* Seals a value for etcd key `ekey` (klen bytes).  On 0, *out is a malloc'd blob of *out_len
 * bytes (caller frees).  The plaintext is built in `scratch` (secure memory of at least
 * SFS_ETCD_MAX_VALUE + 512 bytes, wiped before returning).  Returns 0, -ENOMEM, -EFBIG (value
 * over 1 MiB) or -EINVAL (name empty or over 255 bytes) with err set. */
int sfs_etcd_seal_value(const sfs_key *key, const char *ekey, size_t klen, const sfs_entry *e,
                        unsigned char *scratch, unsigned char **out, size_t *out_len,
                        struct sfs_err *err);

/* Opens a value blob stored under `ekey` and appends it to `set` (sfs_set_append: the
 * caller calls sfs_set_sort once every value is in).  Checks that the name inside
 * hashes to the ID at the end of `ekey` (the name is bound to its key).  `scratch` as above.
 * Returns 0, -EBADMSG (tampered, moved, renamed, malformed), -EPROTONOSUPPORT, -EKEYREJECTED
 * (another key; err names both key ids) or -ENOMEM. */
int sfs_etcd_open_value(const sfs_key *key, const sfs_etcd_names *n, const char *ekey,
                        size_t klen, const unsigned char *blob, size_t len,
                        unsigned char *scratch, sfs_set *set, struct sfs_err *err)
    __attribute__((warn_unused_result));

/* Seals a commit record for etcd key `ekey`.  On 0, *out is malloc'd (caller frees). */
int sfs_etcd_seal_commit(const sfs_key *key, const char *ekey, size_t klen,
                         const struct sfs_etcd_commit *c, unsigned char **out, size_t *out_len,
                         struct sfs_err *err);

/* Opens a commit record stored under `ekey` into *c.  Errors as sfs_etcd_open_value. */
int sfs_etcd_open_commit(const sfs_key *key, const char *ekey, size_t klen,
                         const unsigned char *blob, size_t len, struct sfs_etcd_commit *c,
                         struct sfs_err *err) __attribute__((warn_unused_result));

/* The set digest: sorts `kh` (n entries) by key bytes, then BLAKE2b-256 over each
 * (u16 little-endian key length, key bytes, hash).  `kh` is reordered.  Returns 0 or
 * -ENOMEM. */
int sfs_etcd_digest(struct sfs_etcd_keyhash *kh, size_t n,
                    unsigned char out[SFS_ETCD_DIGEST_BYTES]) __attribute__((warn_unused_result));

/* BLAKE2b-256 of a stored blob (its digest input). */
void sfs_etcd_blob_hash(const unsigned char *blob, size_t len,
                        unsigned char out[SFS_ETCD_DIGEST_BYTES]);

struct sfs_etcd_kv; /* below, with the gateway client */

/* The blob hash of kv's value, computed once per kv (a mirror's entries live across
 * reloads: a value that did not change is not hashed again). */
const unsigned char *sfs_etcd_kv_hash(struct sfs_etcd_kv *kv);

/* ---- the decode memo (etcd_memo.c) ----
 *
 * What the last successful decode produced: a copy of the set (secure memory) and, per value
 * key, the hash of the blob it was decoded from.  A blob under the same key with the same
 * hash, opened under the same key ring, decodes to the same entry (the name, the value and
 * the times are all sealed inside it), so a reload after a one-secret change decrypts one
 * blob, not the whole set.  It costs a second copy of the set's bytes in locked memory.
 * Not thread-safe: only the thread that loads uses it (the watch thread never does).  A
 * NULL memo (a one-shot command's backend, which loads once) remembers nothing. */
typedef struct sfs_etcd_memo sfs_etcd_memo;

sfs_etcd_memo *sfs_etcd_memo_new(void);
void sfs_etcd_memo_free(sfs_etcd_memo *m);

/* Starts a decode under `ring`: a memo made under another ring (another key set, as after a
 * rotation) is dropped. */
void sfs_etcd_memo_begin(sfs_etcd_memo *m, const sfs_key *ring);

/* The entry the blob now under `kv` decoded to last time, or NULL (new, changed, or no
 * memo).  Valid until sfs_etcd_memo_keep or _free. */
const sfs_entry *sfs_etcd_memo_find(const sfs_etcd_memo *m, struct sfs_etcd_kv *kv);

/* Replaces the memo with a decode that just succeeded: `set` (sorted) came from the `n`
 * value kvs (in key order), kvs[i] carrying the name names[i].  On ENOMEM the memo is just
 * emptied (the next decode decrypts everything). */
void sfs_etcd_memo_keep(sfs_etcd_memo *m, struct sfs_etcd_kv *kvs, size_t n,
                        const char *const *names, const sfs_set *set);

/* ---- the gateway client (etcd_http.c) ---- */

#define SFS_ETCD_MAX_REQUEST 1572864   /* etcd's default --max-request-bytes (1.5 MiB) */
#define SFS_ETCD_MAX_ENDPOINTS 16

/* How to reach the cluster; shared read-only by every connection of one store. */
struct sfs_etcd_cfg {
    char *endpoints[SFS_ETCD_MAX_ENDPOINTS];   /* "HOST:PORT" */
    size_t n_endpoints;
    bool tls;                                  /* https for endpoints without a scheme */
    bool tls_at[SFS_ETCD_MAX_ENDPOINTS];       /* per endpoint ("https://HOST:PORT") */
    const char *ca_file, *cert_file, *key_file;   /* borrowed from the options */
    const char *user;
    char *password;          /* in secure memory (NULL without auth) */
    unsigned dial_ms, request_ms;
};

/* One connection: a curl handle, the endpoint it talks to, its auth token (with a user:
 * in a locked arena of its own, with the authenticate request and answer).  Used by one
 * thread at a time (the caller's, or the watch thread's own).  NULL from _new when out of
 * memory or, with a user, of locked memory. */
typedef struct sfs_etcd_conn sfs_etcd_conn;

sfs_etcd_conn *sfs_etcd_conn_new(const struct sfs_etcd_cfg *cfg);
void sfs_etcd_conn_free(sfs_etcd_conn *c);

/* The endpoint the connection talks to now ("HOST:PORT"). */
const char *sfs_etcd_conn_endpoint(const sfs_etcd_conn *c);

/* Bytes of response bodies received so far (requests and watch). */
uint64_t sfs_etcd_conn_received(const sfs_etcd_conn *c);

/* POSTs `req` (borrowed) to `path` ("/v3/kv/range") and parses the answer into *resp (caller
 * json_decref's).  Fails over round-robin to the other endpoints and authenticates (again)
 * when needed, all within request_ms.  Never sends more than SFS_ETCD_MAX_REQUEST bytes
 * (-EMSGSIZE).  Returns 0, -ETIMEDOUT / -ECONNREFUSED / -EHOSTUNREACH (no member answered;
 * err names the endpoints), -EACCES (permission denied or authentication failed), -ESTALE
 * (the revision asked for is compacted), -EPROTO (an answer that is not etcd's), -EIO. */
int sfs_etcd_call(sfs_etcd_conn *c, const char *path, json_t *req, json_t **resp,
                  struct sfs_err *err);

/* One key-value of a range answer (raw bytes, decoded from base64). */
struct sfs_etcd_kv {
    char *key;
    size_t klen;
    unsigned char *val;
    size_t vlen;
    int64_t mod_rev;
    bool hashed;                 /* `hash` holds BLAKE2b-256 of val (sfs_etcd_kv_hash) */
    unsigned char hash[SFS_ETCD_DIGEST_BYTES];
};

struct sfs_etcd_kvs {
    struct sfs_etcd_kv *v;
    size_t n, cap;
    int64_t revision;        /* the revision the whole list was read at */
};

void sfs_etcd_kvs_clear(struct sfs_etcd_kvs *l);

/* Makes room in `l` for one more entry (doubling, from 256).  Returns 0 or -ENOMEM. */
int sfs_etcd_kvs_reserve(struct sfs_etcd_kvs *l);

/* Reads every key under `prefix` at one revision (paged, pinned to the first page's
 * revision) into *out (empty it with sfs_etcd_kvs_clear).  Keys come in byte order.
 * Returns 0 or an error of sfs_etcd_call. */
int sfs_etcd_range_prefix(sfs_etcd_conn *c, const char *prefix, struct sfs_etcd_kvs *out,
                          struct sfs_err *err);

/* Request builders for sfs_etcd_call (new references; NULL on ENOMEM): a base64 string, a
 * txn put of one key, a txn delete of every key under a prefix. */
json_t *sfs_etcd_b64(const void *bytes, size_t len);
json_t *sfs_etcd_put_op(const char *key, size_t klen, const unsigned char *val, size_t vlen);
json_t *sfs_etcd_delete_prefix_op(const char *prefix);

/* Txn compares (new references; NULL on ENOMEM): `key`'s mod_revision is `mod` (0: the key
 * does not exist), and `key` exists. */
json_t *sfs_etcd_cmp_mod(const char *key, int64_t mod);
json_t *sfs_etcd_cmp_exists(const char *key);

/* Runs a txn (`txn` borrowed: compare/success arrays).  *succeeded tells whether the
 * compares held.  Returns 0 or an error of sfs_etcd_call. */
int sfs_etcd_txn(sfs_etcd_conn *c, json_t *txn, bool *succeeded, int64_t *revision,
                 struct sfs_err *err);

/* sfs_etcd_txn for a txn whose every copy counts (a commit): each attempt goes out on a new
 * connection, because libcurl resends a request by itself, without telling, when a
 * kept-alive connection dies before any answer came (Curl_retry_request), and a resent
 * compare can fail against its own first copy.  The resends the call makes itself are
 * reported by sfs_etcd_conn_unsure. */
int sfs_etcd_txn_once(sfs_etcd_conn *c, json_t *txn, bool *succeeded, int64_t *revision,
                      struct sfs_err *err);

/* Decodes a base64 JSON string into malloc'd bytes (*out, *len; a NUL is appended).
 * Returns 0, -EPROTO (not base64) or -ENOMEM. */
int sfs_etcd_unb64(const json_t *s, unsigned char **out, size_t *len);

/* Reads an int64 field etcd sends as a JSON string (or number); 0 when absent. */
int64_t sfs_etcd_int(const json_t *obj, const char *field);

/* The watch stream: called with each response object (`{"result":...}` already unwrapped,
 * or the error object with *is_error).  Returns 0 to go on, anything else to end the stream
 * (sfs_etcd_watch then returns that value). */
typedef int (*sfs_etcd_watch_fn)(json_t *result, bool is_error, void *ctx);

/* Holds one streaming POST /v3/watch on the connection's endpoint for keys under `prefix`
 * from `start_rev`, with progress_notify, until the stream ends, `fn` returns nonzero, or
 * *stop turns true (sfs_etcd_watch_wakeup makes that immediate).  Authenticates first when
 * the config has a user.  Returns fn's nonzero value, 0 when stopped, or -errno when the
 * stream broke (err says why); the caller moves to the next endpoint with
 * sfs_etcd_conn_next and resumes. */
int sfs_etcd_watch(sfs_etcd_conn *c, const char *prefix, int64_t start_rev,
                   sfs_etcd_watch_fn fn, void *ctx, const volatile bool *stop,
                   struct sfs_err *err);

/* Wakes a sfs_etcd_watch blocked in another thread so it sees *stop.  Thread-safe. */
void sfs_etcd_watch_wakeup(sfs_etcd_conn *c);

/* Whether the last sfs_etcd_call may have had its request applied by etcd in an attempt
 * whose answer was lost (a connection reset or timeout after the request went out, or an
 * answer such as "request timed out" that etcd may give after applying it), before the
 * call resent it or gave up.  A txn whose compare failed after such a resend may have
 * failed against its own first copy; a call that failed may have been applied. */
bool sfs_etcd_conn_unsure(const sfs_etcd_conn *c);

/* Makes every later call give up after `ms` instead of request_ms (0: request_ms again). */
void sfs_etcd_conn_budget(sfs_etcd_conn *c, unsigned ms);

/* Moves the connection to the next endpoint (round-robin). */
void sfs_etcd_conn_next(sfs_etcd_conn *c);

/* ---- generations that are not the set (etcd_gen.c) ---- */

#define SFS_ETCD_MARK_MAX 48
/* How long after a stager's own budget ran out its generation counts as abandoned: room for
 * clock skew between hosts.  Safety does not rest on it (the mark does). */
#define SFS_ETCD_RECLAIM_SLACK 3600

/* The key of generation `gen`'s mark, PREFIX "g/" GEN (a prefix of its blobs' keys too, so
 * a delete of everything starting with it drops mark and blobs at once). */
void sfs_etcd_mark_key(const char *prefix, const char *gen, char *out, size_t cap);

/* A mark's value: the wall-clock second staging began and the writer's budget in seconds. */
void sfs_etcd_mark_value(time_t start, unsigned budget_s, char out[SFS_ETCD_MARK_MAX]);

/* Reclaims the generations of `l` (a read of the prefix) other than `named` (the set's,
 * or NULL) whose mark says they are abandoned, and marks the ones without a mark.  Each
 * step is one txn that compares the commit key's mod_revision with `commit_rev` (the commit
 * this writer just made or read, naming `named`) and the mark as read; `now` is the wall
 * clock.  Logs what it reclaimed (generation, counts and bytes; never a name or a value);
 * failures are warnings, never errors of the caller's write. */
void sfs_etcd_reclaim(sfs_etcd_conn *c, const char *prefix, const char *commit_key,
                      const struct sfs_etcd_kvs *l, const char *named, int64_t commit_rev,
                      time_t now);

/* How many generations of `l` are not `named` (NULL: none is) and their bytes. */
void sfs_etcd_unreferenced(const char *prefix, const struct sfs_etcd_kvs *l,
                           const char *named, size_t *gens, size_t *bytes);

#endif
