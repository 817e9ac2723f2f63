/* fs/status.c — rendering and parsing .status and the generation file (fs/status.h). */
#include "fs/status.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t sfs_status_render(const struct sfs_status *st, char *buf, size_t cap)
{
    char dropped[32] = "", who[32], version[48] = "";
    int n;

    if (st->store_version)
        snprintf(version, sizeof version, "store_version=%" PRIu64 "\n", st->store_version);
    if (st->audit[0])
        snprintf(dropped, sizeof dropped, "%" PRIu64 "\n", st->audit_dropped);
    if (st->container_view)
        snprintf(who, sizeof who, "view=container");
    else
        snprintf(who, sizeof who, "pid=%ld", st->pid);
    n = snprintf(buf, cap,
                 "generation=%" PRIu64 "\n"
                 "loaded_at=%" PRId64 "\n"
                 "secrets=%zu\n"
                 "platform=%zu\n"
                 "%s\n"
                 "cache=%s\n"
                 "reloads=%" PRIu64 "\n"
                 "reloads_started=%" PRIu64 "\n"
                 "last_reload=%s\n"
                 "%s"
                 "%s%s%s"
                 "%s%s%s%s%s%s%s%s",
                 st->generation, st->loaded_at, st->secrets, st->platform, who,
                 st->cache_none ? "none" : "kernel", st->reloads, st->started,
                 st->last_reload, version, st->missing[0] ? "missing=" : "", st->missing,
                 st->missing[0] ? "\n" : "", st->notify[0] ? "notify=" : "", st->notify,
                 st->notify[0] ? "\n" : "", st->audit[0] ? "audit=" : "", st->audit,
                 st->audit[0] ? "\naudit_dropped=" : "", dropped, st->backend);
    if (n < 0 || cap == 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1; /* cut, never past the buffer */
}

/* Calls fn(key, value, ctx) for each "key=value" line of the `len` bytes at text. */
static void each_line(const char *text, size_t len,
                      void (*fn)(const char *k, size_t klen, const char *v, size_t vlen,
                                 void *ctx),
                      void *ctx)
{
    const char *p = text, *end = text + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *eq = memchr(p, '=', (size_t)(eol - p));
        if (eq)
            fn(p, (size_t)(eq - p), eq + 1, (size_t)(eol - eq - 1), ctx);
        p = eol + 1;
    }
}

static bool key_is(const char *k, size_t klen, const char *want)
{
    return klen == strlen(want) && memcmp(k, want, klen) == 0;
}

static uint64_t to_u64(const char *v, size_t vlen)
{
    char num[32];

    snprintf(num, sizeof num, "%.*s", (int)(vlen < 31 ? vlen : 31), v);
    return strtoull(num, NULL, 10);
}

static void copy_value(char *out, size_t cap, const char *v, size_t vlen)
{
    snprintf(out, cap, "%.*s", (int)(vlen < cap ? vlen : cap - 1), v);
}

static void append_line(char *out, size_t cap, const char *k, size_t klen, const char *v,
                        size_t vlen)
{
    size_t used = strlen(out);

    if (used + klen + vlen + 3 <= cap)
        snprintf(out + used, cap - used, "%.*s=%.*s\n", (int)klen, k, (int)vlen, v);
}

static void status_field(const char *k, size_t klen, const char *v, size_t vlen, void *ctx)
{
    struct sfs_status *st = ctx;

    if (st->backend[0] || key_is(k, klen, "backend"))
        append_line(st->backend, sizeof st->backend, k, klen, v, vlen);
    else if (key_is(k, klen, "generation"))
        st->generation = to_u64(v, vlen);
    else if (key_is(k, klen, "loaded_at"))
        st->loaded_at = (int64_t)to_u64(v, vlen);
    else if (key_is(k, klen, "secrets"))
        st->secrets = (size_t)to_u64(v, vlen);
    else if (key_is(k, klen, "platform"))
        st->platform = (size_t)to_u64(v, vlen);
    else if (key_is(k, klen, "pid"))
        st->pid = (long)to_u64(v, vlen);
    else if (key_is(k, klen, "view"))
        st->container_view = vlen == 9 && memcmp(v, "container", 9) == 0;
    else if (key_is(k, klen, "cache"))
        st->cache_none = vlen == 4 && memcmp(v, "none", 4) == 0;
    else if (key_is(k, klen, "reloads"))
        st->reloads = to_u64(v, vlen);
    else if (key_is(k, klen, "reloads_started"))
        st->started = to_u64(v, vlen);
    else if (key_is(k, klen, "store_version"))
        st->store_version = to_u64(v, vlen);
    else if (key_is(k, klen, "last_reload"))
        copy_value(st->last_reload, sizeof st->last_reload, v, vlen);
    else if (key_is(k, klen, "missing"))
        copy_value(st->missing, sizeof st->missing, v, vlen);
    else if (key_is(k, klen, "notify"))
        copy_value(st->notify, sizeof st->notify, v, vlen);
    else if (key_is(k, klen, "audit"))
        copy_value(st->audit, sizeof st->audit, v, vlen);
    else if (key_is(k, klen, "audit_dropped"))
        st->audit_dropped = to_u64(v, vlen);
}

int sfs_status_parse(const char *text, size_t len, struct sfs_status *out)
{
    memset(out, 0, sizeof *out);
    each_line(text, len, status_field, out);
    if (out->container_view)
        out->pid = 0; /* a pid= beside view=container is not the host's */
    return out->pid > 0 || out->container_view ? 0 : -EBADMSG;
}

/* Reads at most cap - 1 bytes of `path` without blocking on a FIFO or following a
 * symlink; returns the length or -errno. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);

    if (fd < 0)
        return -errno;
    while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        len += (size_t)n;
    }
    if (n < 0)
        n = -errno;
    close(fd);
    return n < 0 ? n : (ssize_t)len;
}

int sfs_status_read(const char *mountpoint, struct sfs_status *out)
{
    char path[4096 + 16], buf[SFS_STATUS_MAX];
    ssize_t n;

    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "%s/.status", mountpoint);
    n = read_small(path, buf, sizeof buf);
    if (n < 0)
        return (int)n;
    return sfs_status_parse(buf, (size_t)n, out);
}

bool sfs_status_backend_field(const struct sfs_status *st, const char *key, char *out,
                              size_t cap)
{
    size_t klen = strlen(key);
    const char *p = st->backend;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t linelen = nl ? (size_t)(nl - p) : strlen(p);
        if (linelen > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
            copy_value(out, cap, p + klen + 1, linelen - klen - 1);
            return true;
        }
        p += linelen + (nl ? 1 : 0);
    }
    return false;
}

size_t sfs_genfile_render(const struct sfs_genfile *g, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "pid=%ld\ngeneration=%" PRIu64 "\nseq=%" PRIu64 "\n", g->pid,
                     g->generation, g->seq);

    if (n < 0 || cap == 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

struct genfile_parse {
    struct sfs_genfile *g;
    bool has_seq;
};

static void genfile_field(const char *k, size_t klen, const char *v, size_t vlen, void *ctx)
{
    struct genfile_parse *gp = ctx;

    if (key_is(k, klen, "pid"))
        gp->g->pid = (long)to_u64(v, vlen);
    else if (key_is(k, klen, "generation"))
        gp->g->generation = to_u64(v, vlen);
    else if (key_is(k, klen, "seq")) {
        gp->g->seq = to_u64(v, vlen);
        gp->has_seq = true;
    }
}

int sfs_genfile_parse(const char *text, size_t len, struct sfs_genfile *out)
{
    struct genfile_parse gp = {out, false};

    memset(out, 0, sizeof *out);
    each_line(text, len, genfile_field, &gp);
    return out->pid > 0 && gp.has_seq ? 0 : -EBADMSG;
}

int sfs_genfile_read(const char *path, struct sfs_genfile *out)
{
    char buf[256];
    ssize_t n = read_small(path, buf, sizeof buf);

    memset(out, 0, sizeof *out);
    if (n < 0)
        return (int)n;
    return sfs_genfile_parse(buf, (size_t)n, out);
}
