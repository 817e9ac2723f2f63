/* docker/http.c — the plugin's HTTP server: libmicrohttpd on a unix socket we bind. */
#include "docker/http.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"

#define REPLY_TYPE "application/vnd.docker.plugins.v1+json"
#define CONNECTION_LIMIT 64
#define IDLE_TIMEOUT_S 300 /* idle keep-alive connections are closed after this */

struct sfs_http {
    struct MHD_Daemon *mhd;
    int fd;
    bool activated;        /* fd came from systemd: its socket file is not ours */
    char *path;
    dev_t dev;
    ino_t ino;
    sfs_http_handler *handler;
    void *ctx;
};

struct request {
    char *body;
    size_t len, cap;
};

static const char err_method[] = "{\"Err\":\"only POST is served here\"}";
static const char err_large[] = "{\"Err\":\"request body too large\"}";
static const char err_memory[] = "{\"Err\":\"out of memory\"}";

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                             bool owned)
{
    struct MHD_Response *resp;
    enum MHD_Result ok;

    resp = MHD_create_response_from_buffer(len, body, owned ? MHD_RESPMEM_MUST_FREE
                                                            : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, REPLY_TYPE) != MHD_YES) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    ok = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result queue_const(struct MHD_Connection *c, unsigned status, const char *body)
{
    return queue(c, status, (char *)body, strlen(body), false);
}

static bool declared_too_large(struct MHD_Connection *c)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end;
    unsigned long long n;

    if (!cl)
        return false;
    errno = 0;
    n = strtoull(cl, &end, 10);
    return errno == ERANGE || (end != cl && n > SFS_DOCKER_MAX_BODY);
}

static int append(struct request *rq, const char *data, size_t size)
{
    if (size > SFS_DOCKER_MAX_BODY - rq->len)
        return -EFBIG;
    if (rq->len + size > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 1024;
        char *grown;

        while (cap < rq->len + size)
            cap *= 2;
        grown = realloc(rq->body, cap);
        if (!grown)
            return -ENOMEM;
        rq->body = grown;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, size);
    rq->len += size;
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct sfs_http *h = cls;
    struct request *rq = *con_cls;
    struct sfs_docker_reply reply = {0};

    (void)version;
    if (!rq) {
        if (declared_too_large(c))
            return queue_const(c, MHD_HTTP_CONTENT_TOO_LARGE, err_large);
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_size) {
        /* a chunked body past the limit ends the connection */
        if (append(rq, upload_data, *upload_size) < 0)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    /* other methods are answered only now, once their body is read: the connection stays
     * usable */
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return queue_const(c, MHD_HTTP_METHOD_NOT_ALLOWED, err_method);
    h->handler(h->ctx, url, rq->body ? rq->body : "", rq->len, &reply);
    if (!reply.body)
        return queue_const(c, MHD_HTTP_INTERNAL_SERVER_ERROR, err_memory);
    return queue(c, (unsigned)reply.status, reply.body, reply.len, true);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    struct request *rq = *con_cls;

    (void)cls;
    (void)c;
    (void)why;
    if (rq) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    sfs_warn("http: %s", line);
}

/* Binds and listens on `path`; the socket never exists with more than `mode`. */
static int listen_unix(const char *path, mode_t mode, int *out, struct stat *st,
                       struct sfs_err *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct stat old;
    mode_t saved;
    int fd, probe, rc;

    if (strlen(path) >= sizeof addr.sun_path)
        return sfs_err_set(err, -ENAMETOOLONG, "%s: longer than the %zu bytes a unix socket "
                           "path may have", path, sizeof addr.sun_path - 1);
    memcpy(addr.sun_path, path, strlen(path) + 1);
    if (lstat(path, &old) == 0) {
        if (!S_ISSOCK(old.st_mode))
            return sfs_err_set(err, -EEXIST, "%s: exists and is not a socket; remove it or "
                               "choose another --socket", path);
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof addr) == 0) {
            close(probe);
            return sfs_err_set(err, -EADDRINUSE, "%s: another process is serving this "
                               "socket; stop it first", path);
        }
        if (probe >= 0)
            close(probe);
        if (unlink(path) < 0 && errno != ENOENT)
            return sfs_err_set(err, -errno, "%s: cannot remove the old socket: %s", path,
                               strerror(errno));
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sfs_err_set(err, -errno, "socket: %s", strerror(errno));
    saved = umask((mode_t)(~mode & 0777));
    rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    umask(saved);
    if (rc < 0) {
        rc = sfs_err_set(err, -errno, "%s: cannot bind: %s", path, strerror(errno));
        goto out_close;
    }
    if (chmod(path, mode) < 0 || lstat(path, st) < 0) {
        rc = sfs_err_set(err, -errno, "%s: %s", path, strerror(errno));
        goto out_unlink;
    }
    if (listen(fd, 64) < 0) {
        rc = sfs_err_set(err, -errno, "%s: cannot listen: %s", path, strerror(errno));
        goto out_unlink;
    }
    *out = fd;
    return 0;
out_unlink:
    unlink(path);
out_close:
    close(fd);
    return rc;
}

int sfs_http_start(const char *path, int listen_fd, mode_t mode, sfs_http_handler *handler,
                   void *ctx, struct sfs_http **out, struct sfs_err *err)
{
    struct sfs_http *h = calloc(1, sizeof *h);
    struct stat st;
    int rc;

    *out = NULL;
    if (!h || !(h->path = strdup(path))) {
        free(h);
        return sfs_err_set(err, -ENOMEM, "out of memory");
    }
    h->handler = handler;
    h->ctx = ctx;
    if (listen_fd >= 0) {
        h->fd = listen_fd;
        h->activated = true;
    } else {
        rc = listen_unix(path, mode, &h->fd, &st, err);
        if (rc < 0)
            goto out_free;
        h->dev = st.st_dev;
        h->ino = st.st_ino;
    }
    h->mhd = MHD_start_daemon(
        MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG |
            MHD_USE_ITC,
        0, NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)h->fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
        MHD_OPTION_END);
    if (!h->mhd) {
        rc = sfs_err_set(err, -EIO, "%s: libmicrohttpd could not start serving", path);
        if (!h->activated)
            unlink(path);
        close(h->fd);
        goto out_free;
    }
    *out = h;
    return 0;
out_free:
    free(h->path);
    free(h);
    return rc;
}

void sfs_http_stop(struct sfs_http *h)
{
    struct stat st;

    if (!h)
        return;
    MHD_stop_daemon(h->mhd); /* closes the listening socket too */
    if (!h->activated && lstat(h->path, &st) == 0 && st.st_dev == h->dev &&
        st.st_ino == h->ino)
        unlink(h->path);
    free(h->path);
    free(h);
}
