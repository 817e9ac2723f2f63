/* util/process.h — process hygiene for anything that holds key material. */
#ifndef SFS_UTIL_PROCESS_H
#define SFS_UTIL_PROCESS_H

#include "util/err.h"

/* No core dumps (RLIMIT_CORE 0) and not dumpable (PR_SET_DUMPABLE 0: no ptrace or
 * /proc/PID/mem for the user's other processes unless they are root).  Returns 0 or -errno
 * with err naming the call that failed. */
int sfs_process_private(struct sfs_err *err) __attribute__((warn_unused_result));

#endif
