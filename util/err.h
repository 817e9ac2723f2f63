/* util/err.h — the one way an error message travels back to the caller.
 *
 * Functions that can fail for a reason a user must read take a `struct sfs_err *`
 * and fill it with a complete sentence that names the file (and line, for parsers)
 * and says what to do.  Messages never contain secret values.
 */
#ifndef SFS_UTIL_ERR_H
#define SFS_UTIL_ERR_H

#include <stddef.h>

#define SFS_ERR_MAX 512

struct sfs_err {
    char msg[SFS_ERR_MAX];
};

/* Formats `fmt` into err->msg (truncating safely).  err may be NULL.
 * Returns `rc` so callers can write `return sfs_err_set(err, -EINVAL, "...")`. */
int sfs_err_set(struct sfs_err *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (e.g. the file name). */
void sfs_err_prefix(struct sfs_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
