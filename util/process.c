/* util/process.c — process hygiene (util/process.h). */
#include "util/process.h"

#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

int sfs_process_private(struct sfs_err *err)
{
    struct rlimit no_core = {0, 0};

    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return sfs_err_set(err, -errno, "cannot disable core dumps (PR_SET_DUMPABLE): %s",
                           strerror(errno));
    if (setrlimit(RLIMIT_CORE, &no_core) < 0)
        return sfs_err_set(err, -errno, "cannot set RLIMIT_CORE to 0: %s", strerror(errno));
    return 0;
}
