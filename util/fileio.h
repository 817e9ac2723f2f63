/* util/fileio.h — private files written durably.  Used by crypto/ (key files) and store/ (stores). */
#ifndef SFS_UTIL_FILEIO_H
#define SFS_UTIL_FILEIO_H

#include <stddef.h>

#include "util/err.h"

/* fsyncs the directory that holds `path`, so a create or rename in it is durable.
 * Returns 0 or -errno (EINVAL from filesystems that cannot fsync directories is ignored). */
int sfs_fsync_parent_dir(const char *path);

/* Makes `fd` mode 0600, writes all `len` bytes and fsyncs them: the steps every private
 * file we create takes before it is renamed or reported.  On failure err says which step
 * failed on `shown` (a path).  Returns 0 or -errno. */
int sfs_write_private(int fd, const void *buf, size_t len, const char *shown,
                      struct sfs_err *err);

/* Where writes to the store at `path` must go: the symlink's target when `path` is a
 * symlink (so an operator's link keeps pointing at the live store), else `path` itself.
 * Returns a malloc'd string, or NULL with errno set. */
char *sfs_store_target(const char *path);

/* Creates the missing directories above `path` (mode 0700), as mkdir -p of its dirname.
 * Returns 0 or -errno with err naming the directory. */
int sfs_mkdir_parents(const char *path, struct sfs_err *err);

#endif
