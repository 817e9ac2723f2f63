#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *log_ident = "secretfs";
static bool log_syslog;
static bool log_debug;

void sfs_log_init(const char *ident, bool to_syslog)
{
    log_ident = ident;
    log_syslog = to_syslog;
    if (to_syslog)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void sfs_log_set_debug(bool on)
{
    log_debug = on;
}

static const char *level_word(int level)
{
    switch (level) {
    case LOG_ERR: return "error";
    case LOG_WARNING: return "warning";
    case LOG_DEBUG: return "debug";
    default: return NULL;
    }
}

void sfs_log(int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    const char *word;

    if (level == LOG_DEBUG && !log_debug)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (log_syslog) {
        syslog(level, "%s", line);
        return;
    }
    word = level_word(level);
    if (word)
        fprintf(stderr, "%s: %s: %s\n", log_ident, word, line);
    else
        fprintf(stderr, "%s: %s\n", log_ident, line);
}
