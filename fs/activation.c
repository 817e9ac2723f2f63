/* fs/activation.c — socket activation: the listening socket systemd hands a service.
 *
 * fs/ owns libsystemd (sd_notify for the daemon); the Docker plugin takes its socket from
 * here (through cli/), so libsystemd stays in one module.
 */
#include "fs/daemon.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

int sfs_systemd_listen_fd(int *fd, struct sfs_err *err)
{
    int n = sd_listen_fds(1); /* 1: unset LISTEN_FDS/LISTEN_PID, children must not see them */

    *fd = -1;
    if (n < 0)
        return sfs_err_set(err, n, "LISTEN_FDS: %s", strerror(-n));
    if (n == 0)
        return 0;
    if (n > 1)
        return sfs_err_set(err, -EINVAL, "systemd passed %d sockets; the socket unit must "
                           "have exactly one ListenStream=", n);
    if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0)
        return sfs_err_set(err, -ENOTSOCK, "the socket systemd passed is not a listening "
                           "unix stream socket; use ListenStream=/run/docker/plugins/NAME.sock");
    *fd = SD_LISTEN_FDS_START;
    return 0;
}
