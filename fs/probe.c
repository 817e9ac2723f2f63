/* fs/probe.c — what the FUSE stack here speaks, for `secretfs --version`. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "fs/daemon.h"

static char probe_log[SFS_ERR_MAX];

static void probe_log_func(enum fuse_log_level level, const char *fmt, va_list ap)
{
    (void)level;
    vsnprintf(probe_log, sizeof probe_log, fmt, ap);
    probe_log[strcspn(probe_log, "\n")] = '\0';
}

struct probe {
    unsigned major, minor;
    bool seen;
};

static void probe_init(void *userdata, struct fuse_conn_info *conn)
{
    struct probe *p = userdata;

    p->major = conn->proto_major;
    p->minor = conn->proto_minor;
    p->seen = true;
}

const char *sfs_fuse_version(void)
{
    return fuse_pkgversion();
}

int sfs_fuse_probe_proto(unsigned *major, unsigned *minor, struct sfs_err *err)
{
    const struct fuse_lowlevel_ops ops = {.init = probe_init};
    char *argv[] = {"secretfs-probe", "-o", "ro,fsname=secretfs-probe,subtype=probe", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    char dir[] = "/tmp/secretfs-probe.XXXXXX";
    struct fuse_buf buf = {.mem = NULL};
    struct fuse_session *se;
    struct probe p = {0};
    int rc = 0;

    if (!mkdtemp(dir))
        return sfs_err_set(err, -errno, "cannot create a probe mountpoint in /tmp: %s",
                           strerror(errno));
    probe_log[0] = '\0';
    fuse_set_log_func(probe_log_func);
    se = fuse_session_new(&args, &ops, sizeof ops, &p);
    fuse_opt_free_args(&args); /* parsing may have copied them; the session keeps its own */
    if (!se) {
        rc = sfs_err_set(err, -EIO, "libfuse refused a probe session");
        goto out_rmdir;
    }
    if (fuse_session_mount(se, dir) != 0) {
        rc = sfs_err_set(err, -EPERM, "a probe mount failed (%s); it needs /dev/fuse and "
                         "root or fusermount3", probe_log[0] ? probe_log : "no reason given");
        goto out_destroy;
    }
    rc = fuse_session_receive_buf(se, &buf);
    if (rc > 0) {
        fuse_session_process_buf(se, &buf);
        rc = 0;
    }
    if (!p.seen && rc == 0)
        rc = -EPROTO;
    if (rc < 0)
        sfs_err_set(err, rc, "the kernel sent no FUSE INIT to a probe mount: %s",
                    strerror(-rc));
    *major = p.major;
    *minor = p.minor;
    free(buf.mem);
    fuse_session_unmount(se);
out_destroy:
    fuse_session_destroy(se);
out_rmdir:
    fuse_set_log_func(NULL);
    rmdir(dir);
    return rc;
}
