/* fs/audit.h — the access audit: who opened which secret, when, and which value they got.
 * Internal to fs/ (the CLI reads the records with jansson; their format is in the README).
 *
 * One JSON object per line, appended to a file (or sent to the journal): an "open" record for
 * every open of a secret or a view that reaches the daemon, a "mount" record for the first
 * generation, a "reload" record for each new generation (names added, changed, removed) and
 * a "reload_refused" record for each rejected reload.  Never a value: an open record carries
 * a fingerprint (crypto/aead.h sfs_fingerprint) of the bytes served.
 *
 * Threads: request handlers and the reload thread only queue records (a bounded queue; a
 * full queue drops the record and counts it, never waits).  One writer thread owned by the
 * audit reads /proc for the caller's command line and cgroup and writes; a failed write is
 * dropped and counted too.  Every function here is thread-safe.
 */
#ifndef SFS_FS_AUDIT_H
#define SFS_FS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <jansson.h>

#include "crypto/key.h"
#include "fs/snapshot.h"
#include "util/err.h"

#define SFS_AUDIT_JOURNAL "journal"
#define SFS_AUDIT_QUEUE_MAX 4096

struct sfs_audit;

/* Who asked: fuse_req_ctx's pid (a thread id), uid and gid. */
struct sfs_audit_caller {
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

/* Sends one record's journal fields ("KEY=value", n of them); 0 or -errno. */
typedef int (*sfs_audit_sink_fn)(const struct iovec *fields, int n, void *ctx);

/* Starts auditing to `dest`: SFS_AUDIT_JOURNAL, or an absolute path opened O_APPEND, created
 * mode 0600; an existing file must be a regular file owned by the daemon's user without
 * group or other permission bits.  `mountpoint` is named in every record (the caller keeps
 * both strings alive).  Starts the writer thread.  Returns 0 with *out, or -errno with err
 * naming the file and the fix. */
int sfs_audit_open(const char *dest, const char *mountpoint, struct sfs_audit **out,
                   struct sfs_err *err);

/* Writes what is queued, stops the writer and frees everything (NULL is fine).  Only once
 * no handler can call in any more. */
void sfs_audit_close(struct sfs_audit *a);

/* Fingerprints of generations >= `generation` are made under `key`'s audit subkey (the
 * reload thread calls this with each key it loads a store with; the last 4 distinct keys
 * are kept, so records of a generation still open across a key change stay right). */
void sfs_audit_set_key(struct sfs_audit *a, const sfs_key *key, uint64_t generation);

/* An open reaching the daemon (request handlers): queues a record of `name` of `generation`
 * with the fingerprint of `len` bytes of `value` (NULL: none, e.g. .status), and the caller.
 * Reads only /proc/PID/exe here (no lock of the caller's memory); never blocks. */
void sfs_audit_note_open(struct sfs_audit *a, const struct sfs_audit_caller *c,
                         const char *name, uint64_t generation, const void *value, size_t len);

/* The same for entry `e` of `s`, as op_open sees it (`s` held by the caller); .status and
 * the directory are not recorded (they hold no value). */
void sfs_audit_open_entry(struct sfs_audit *a, const struct sfs_audit_caller *c,
                          struct snapshot *s, const struct snap_entry *e);

/* The first generation (a "mount" record), a new one replacing `old` (names added, changed
 * in bytes or owner/mode, removed), and a reload refused while `serving` (why: a message,
 * which never holds a value). */
void sfs_audit_mounted(struct sfs_audit *a, const struct snapshot *first);
void sfs_audit_reloaded(struct sfs_audit *a, const struct snapshot *old,
                        const struct snapshot *new);
void sfs_audit_refused(struct sfs_audit *a, uint64_t serving, const char *why);

/* SIGUSR1: the writer reopens the path (after logrotate moved it).  If that fails the old
 * file keeps being written and the log says why. */
void sfs_audit_reopen(struct sfs_audit *a);

/* What .status shows: the destination and the records dropped so far. */
const char *sfs_audit_dest(const struct sfs_audit *a);
uint64_t sfs_audit_dropped(const struct sfs_audit *a);

/* Waits until every record queued so far has been written or dropped (tests). */
void sfs_audit_flush(struct sfs_audit *a);

/* ---- pure parts, for the unit tests ---- */

/* RFC 3339 in UTC with microseconds ("2026-11-28T17:55:55.123456Z") into buf (>= 28). */
void sfs_audit_time(const struct timespec *ts, char *buf, size_t cap);

/* `len` bytes as a JSON string: invalid UTF-8 (RFC 3629) becomes U+FFFD. */
json_t *sfs_audit_string(const char *s, size_t len);

/* The journal fields of record `rec`: SECRETFS_<KEY>=value for each member (arrays joined
 * with spaces), OBJECT_PID= for an open, MESSAGE=, PRIORITY=, SYSLOG_IDENTIFIER= and
 * SECRETFS_RECORD= (the JSON line).  Returns how many (at most cap), each a malloc'd
 * "KEY=value" in fields[i] for the caller to free; -ENOMEM. */
int sfs_audit_journal_fields(json_t *rec, char **fields, size_t cap);

/* Replaces sd_journal_sendv for a journal audit (tests: see what would be sent). */
void sfs_audit_set_sink(struct sfs_audit *a, sfs_audit_sink_fn fn, void *ctx);

#endif
