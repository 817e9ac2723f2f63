/* fs/rollback.h — the highest store version a host has served, kept across restarts.
 *
 * One small file per store in the daemon's state directory ("served-" + a hash of the store's
 * location), written atomically after each generation whose version is higher than the one
 * recorded.  It is not secret and not authenticated: it defends against a store brought
 * back, not against someone who can also write the state directory (README, threat model).
 */
#ifndef SFS_FS_ROLLBACK_H
#define SFS_FS_ROLLBACK_H

#include <stdint.h>

#include "util/err.h"

/* The state file for `location` in `state_dir`: a malloc'd path (caller frees) or NULL. */
char *sfs_rollback_path(const char *state_dir, const char *location);

/* Reads the recorded version.  Returns 0, -ENOENT (nothing recorded yet), or -errno /
 * -EBADMSG (unreadable or malformed: err says which file and what to do). */
int sfs_rollback_read(const char *path, uint64_t *version, struct sfs_err *err)
    __attribute__((warn_unused_result));

/* Records `version` for `location` (creating the state directory, mode 0700, if missing):
 * temporary file, fsync, rename, directory fsync.  Returns 0 or -errno with err set. */
int sfs_rollback_write(const char *path, const char *location, uint64_t version,
                       struct sfs_err *err);

#endif
