#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sfs_err_set(struct sfs_err *err, int rc, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return rc;
}

void sfs_err_prefix(struct sfs_err *err, const char *fmt, ...)
{
    char old[SFS_ERR_MAX];
    va_list ap;
    int n;

    if (!err)
        return;
    memcpy(old, err->msg, sizeof old);
    va_start(ap, fmt);
    n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n + 2 >= sizeof err->msg)
        return;
    err->msg[n] = ':';
    err->msg[n + 1] = ' ';
    memcpy(err->msg + n + 2, old, sizeof err->msg - (size_t)n - 2);
    err->msg[sizeof err->msg - 1] = '\0';
}
