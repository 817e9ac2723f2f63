/* secrets/set.h — the secret set: the in-memory model every other part works on.
 *
 * A set is a sorted (strcmp on name) array of entries.  Names and values live in the set's
 * secure arena (crypto/secmem.h) and are wiped when the set is freed.  A set does not enforce
 * name rules (see secrets/names.h): parsers produce sets with whatever names the input had,
 * and callers apply policy.  Not thread-safe; a set published in a daemon snapshot is
 * never modified again.
 */
#ifndef SFS_SECRETS_SET_H
#define SFS_SECRETS_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sfs_entry {
    const char *name;            /* NUL-terminated, in the set's arena */
    const unsigned char *value;  /* `len` bytes in the set's arena (not NUL-terminated) */
    uint32_t len;
    uint32_t line;               /* source line for parsed input, else 0 */
    int64_t created;             /* unix seconds */
    int64_t updated;
} sfs_entry;

typedef struct sfs_set sfs_set;

/* `value_bytes_hint` presizes the arena (0 if unknown).  Returns NULL on ENOMEM. */
sfs_set *sfs_set_new(size_t value_bytes_hint);

/* Wipes and frees.  NULL is a no-op. */
void sfs_set_free(sfs_set *set);

/* Inserts or replaces `name` with a copy of `value`.  On replace, `created` of the existing
 * entry is kept only if `created` is 0.  Returns 0, -ENOMEM, or -EFBIG if len > UINT32_MAX. */
int sfs_set_put(sfs_set *set, const char *name, const void *value, size_t len,
                int64_t created, int64_t updated);

/* Same, with an explicit source line (parsers). */
int sfs_set_put_line(sfs_set *set, const char *name, const void *value, size_t len,
                     int64_t created, int64_t updated, uint32_t line);

/* Bulk loading, for decoders whose input is not in name order (the etcd store's keys are
 * name hashes): appends a copy without looking for `name`, in O(1) where sfs_set_put would
 * move the entries after it.  Until sfs_set_sort, only more appends, sfs_set_count and
 * sfs_set_free may follow.  Returns 0, -ENOMEM or -EFBIG as sfs_set_put. */
int sfs_set_append(sfs_set *set, const char *name, const void *value, size_t len,
                   int64_t created, int64_t updated);

/* Restores name order after appends, in O(n log n).  Returns 0, or -EEXIST when two entries
 * carry the same name: the set is then not a valid set, and the caller frees it. */
int sfs_set_sort(sfs_set *set) __attribute__((warn_unused_result));

/* Returns the entry or NULL.  The pointer is valid until the set is next modified. */
const sfs_entry *sfs_set_get(const sfs_set *set, const char *name);

/* Removes `name`; returns 0 or -ENOENT.  Its value bytes are wiped. */
int sfs_set_remove(sfs_set *set, const char *name);

/* Removes, in one pass, every entry for which keep(entry, ctx) is false (their value bytes
 * are wiped); the others keep their order.  Returns how many were removed. */
size_t sfs_set_filter(sfs_set *set, bool (*keep)(const sfs_entry *e, void *ctx), void *ctx);

size_t sfs_set_count(const sfs_set *set);

/* i-th entry in name order, i < count. */
const sfs_entry *sfs_set_at(const sfs_set *set, size_t i);

/* Sum of value lengths. */
size_t sfs_set_value_bytes(const sfs_set *set);

/* Deep copy (new arena).  Returns NULL on ENOMEM. */
sfs_set *sfs_set_clone(const sfs_set *set);

/* True when both sets hold the same names with the same value bytes. */
bool sfs_set_equal(const sfs_set *a, const sfs_set *b);

/* Whether every byte of the set is in locked memory. */
bool sfs_set_locked(const sfs_set *set);

#endif
