/* util/log.h — daemon and CLI logging.
 *
 * Messages go to stderr (foreground, CLI) or syslog (detached daemon).  Callers must never
 * pass a secret value; tests plant canary values and grep the logs for them.
 */
#ifndef SFS_UTIL_LOG_H
#define SFS_UTIL_LOG_H

#include <stdbool.h>
#include <syslog.h>

/* Chooses the destination.  Not thread-safe: call once before starting threads. */
void sfs_log_init(const char *ident, bool to_syslog);
void sfs_log_set_debug(bool on);

/* level is a syslog priority (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG). */
void sfs_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sfs_error(...) sfs_log(LOG_ERR, __VA_ARGS__)
#define sfs_warn(...)  sfs_log(LOG_WARNING, __VA_ARGS__)
#define sfs_info(...)  sfs_log(LOG_INFO, __VA_ARGS__)
#define sfs_debug(...) sfs_log(LOG_DEBUG, __VA_ARGS__)

#endif
