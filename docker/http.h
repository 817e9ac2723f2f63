/* docker/http.h — HTTP/1.1 on a unix socket, by libmicrohttpd.  Internal to docker/.
 *
 * The only code that includes microhttpd.h.  It knows nothing of Docker: each complete POST
 * goes to one handler with the URL path and the body, and the handler's reply (a JSON
 * object) goes back with Content-Type application/vnd.docker.plugins.v1+json.  Connections
 * are kept alive as HTTP/1.1 clients expect; each gets its own thread.
 */
#ifndef SFS_DOCKER_HTTP_H
#define SFS_DOCKER_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#include "docker/plugin.h"
#include "util/err.h"

/* Called from connection threads, concurrently: the handler serializes what needs it.
 * It fills *reply (body malloc'd; this layer frees it); a NULL body is sent as a 500. */
typedef void sfs_http_handler(void *ctx, const char *path, const void *body, size_t len,
                              struct sfs_docker_reply *reply);

struct sfs_http;

/* Creates the unix socket at `path` with permission bits `mode` (the socket file is never
 * more open than that, not even for a moment), refusing when another process answers
 * there; a dead socket file left behind is replaced.  Then serves it.  With listen_fd >= 0
 * (a listening socket systemd passed: socket activation) that socket is served instead,
 * and taken over (closed by sfs_http_stop); `path` only names it in messages, and its file
 * stays (systemd owns it).  Returns 0 with *out set, or -errno with err saying why. */
int sfs_http_start(const char *path, int listen_fd, mode_t mode, sfs_http_handler *handler,
                   void *ctx, struct sfs_http **out, struct sfs_err *err);

/* Stops serving (waits for requests in progress), closes the socket and removes its file
 * if it is still ours.  NULL is fine. */
void sfs_http_stop(struct sfs_http *h);

#endif
