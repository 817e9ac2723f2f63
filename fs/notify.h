/* fs/notify.h — the generation file: how `secretfs run` (or anyone) learns of a reload
 * without polling the daemon.  Internal to fs/.
 *
 * The daemon keeps one small file per mount outside the mount, in a directory of its own
 * under /run/secretfs (else $XDG_RUNTIME_DIR/secretfs) named after the mountpoint:
 *
 *     /run/secretfs/<mountpoint as systemd-escape --path>/generation   mode 0644, dirs 0755
 *     pid=1234
 *     generation=7
 *     seq=14
 *
 * It never holds a value, only numbers.  Every write replaces it atomically (temporary file
 * + rename), so a reader watching the directory with inotify wakes only when this mount
 * changes and always reads a whole file.  `seq` works like a seqlock: it turns odd when a reload
 * starts and even again when the reload ends, successful or not, after .status shows the
 * outcome and the kernel caches have been invalidated.  A reader that sees the same even
 * `seq` before and after reading the mount has read one generation.  .status names the file
 * in its `notify=` line.
 *
 * Threading: the sfs_notify_* writers are called only by the thread that reloads (startup,
 * then the control thread) and by the exit path after that thread has stopped.  The path
 * returned by sfs_notify_path is set before the FUSE session starts and cleared after it ends,
 * so request handlers may read it without a lock.
 */
#ifndef SFS_FS_NOTIFY_H
#define SFS_FS_NOTIFY_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* Chooses the directory and file for `mountpoint` and writes the file (generation 0, seq 1:
 * "loading").  Returns 0, or -errno when no directory is usable: then the other calls do
 * nothing, sfs_notify_path returns NULL and readers fall back to polling .status.  Logs why. */
int sfs_notify_open(const char *mountpoint);

/* A reload starts: seq turns odd.  Write failures are logged once, never fatal. */
void sfs_notify_reloading(void);

/* A reload ended (ok or not) and `generation` is what the mount now serves: seq turns even. */
void sfs_notify_generation(uint64_t generation);

/* Removes the file and its directory (only if the file is still this process's) and
 * forgets them. */
void sfs_notify_close(void);

/* Where a daemon serving `real` (a mountpoint's realpath) keeps its generation file, in the
 * order sfs_notify_open tries them (with this process's XDG_RUNTIME_DIR): fills up to `max`
 * paths and returns how many.  For readers that cannot learn the path from .status. */
size_t sfs_notify_candidates(const char *real, char out[][PATH_MAX + 16], size_t max);

/* The file's path, or NULL when there is none. */
const char *sfs_notify_path(void);

#endif
