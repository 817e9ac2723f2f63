/* fs/serve.c — FUSE low-level handlers.  Each one decodes, asks the snapshot, replies once. */
#include "fs/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/notify.h"
#include "util/log.h"

static struct daemon *daemon_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

struct snapshot *sfs_snap_acquire(struct daemon *d)
{
    struct snapshot *s;

    pthread_mutex_lock(&d->lock);
    s = d->current;
    sfs_snap_hold(s);
    pthread_mutex_unlock(&d->lock);
    return s;
}

/* The snapshot a request on handle `fi` reads: the one the handle pinned at open
 * (cache=none), else the current one.  Release it with sfs_snap_release. */
static struct snapshot *snap_for(struct daemon *d, const struct fuse_file_info *fi)
{
    struct snapshot *s;

    if (fi && fi->fh) {
        s = (struct snapshot *)(uintptr_t)fi->fh;
        sfs_snap_hold(s);
        return s;
    }
    return sfs_snap_acquire(d);
}

size_t sfs_status_text(struct daemon *d, char *buf, size_t cap, int64_t *mtime)
{
    struct sfs_status st;
    const char *notify = sfs_notify_path();

    pthread_mutex_lock(&d->lock);
    st = d->status;
    if (mtime)
        *mtime = d->changed_at;
    pthread_mutex_unlock(&d->lock);
    /* a container sees neither the host's pids nor its paths (fs/status.h) */
    st.container_view = d->opts->status_for_container;
    st.pid = st.container_view ? 0 : (long)getpid();
    st.cache_none = d->opts->cache == SFS_CACHE_NONE;
    snprintf(st.notify, sizeof st.notify, "%s", notify && !st.container_view ? notify : "");
    if (d->store)
        (void)sfs_store_status(d->store, st.backend, sizeof st.backend);
    if (d->audit) {
        snprintf(st.audit, sizeof st.audit, "%s",
                 st.container_view ? "on" : sfs_audit_dest(d->audit));
        st.audit_dropped = sfs_audit_dropped(d->audit);
    }
    return sfs_status_render(&st, buf, cap);
}

static void fill_attr(struct daemon *d, struct snapshot *s, const struct snap_entry *e,
                      struct stat *st)
{
    sfs_snap_attr(s, e, st);
    if (e && e->kind == SNAP_STATUS) {
        char buf[SFS_STATUS_MAX];
        int64_t mtime;
        st->st_size = (off_t)sfs_status_text(d, buf, sizeof buf, &mtime);
        st->st_mtim.tv_sec = mtime;
        st->st_ctim = st->st_atim = st->st_mtim;
        st->st_blocks = (st->st_size + 511) / 512;
    }
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    struct daemon *d = userdata;

    if (d->opts->cache == SFS_CACHE_KERNEL) {
        d->no_open = conn->capable & FUSE_CAP_NO_OPEN_SUPPORT;
        d->no_opendir = conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT;
    }
    /* we invalidate exactly what changed; no need for mtime-driven guessing */
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
    if (!d->no_open && d->opts->cache == SFS_CACHE_KERNEL)
        sfs_warn("kernel lacks FUSE_CAP_NO_OPEN_SUPPORT: every open reaches the daemon");
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct daemon *d = daemon_of(req);
    struct snapshot *s;
    const struct snap_entry *e;
    struct fuse_entry_param ep;

    if (parent != SFS_INO_ROOT) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    memset(&ep, 0, sizeof ep);
    s = sfs_snap_acquire(d);
    e = sfs_snap_find(s, name);
    ep.entry_timeout = d->timeout;
    if (e) {
        ep.ino = e->ino;
        ep.generation = e->gen;
        ep.attr_timeout = e->kind == SNAP_STATUS ? 0 : d->timeout;
        fill_attr(d, s, e, &ep.attr);
    }
    /* a miss replies ino 0: the kernel caches the negative entry until a reload adds it;
     * a hit is counted before the kernel can forget it */
    sfs_inodes_looked_up(d->inodes, ep.ino);
    if (fuse_reply_entry(req, &ep) != 0)
        sfs_inodes_forget(d->inodes, ep.ino, 1);
    sfs_snap_release(s);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    sfs_inodes_forget(daemon_of(req)->inodes, ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    size_t i;

    for (i = 0; i < count; i++)
        sfs_inodes_forget(daemon_of(req)->inodes, forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct daemon *d = daemon_of(req);
    struct snapshot *s = sfs_snap_acquire(d);
    const struct snap_entry *e = ino == SFS_INO_ROOT ? NULL : sfs_snap_by_ino(s, ino);
    struct stat st;

    (void)fi;
    if (ino != SFS_INO_ROOT && !e) {
        fuse_reply_err(req, ENOENT);
    } else {
        fill_attr(d, s, e, &st);
        fuse_reply_attr(req, &st, e && e->kind == SNAP_STATUS ? 0 : d->timeout);
    }
    sfs_snap_release(s);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct daemon *d = daemon_of(req);
    const struct snap_entry *e;
    struct snapshot *s;

    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (d->no_open) {
        fuse_reply_err(req, ENOSYS); /* the kernel opens by itself from now on */
        return;
    }
    s = sfs_snap_acquire(d);
    e = sfs_snap_by_ino(s, ino);
    if (!e) {
        sfs_snap_release(s);
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (d->audit) {
        const struct fuse_ctx *ctx = fuse_req_ctx(req);
        struct sfs_audit_caller who = {ctx->pid, ctx->uid, ctx->gid};
        sfs_audit_open_entry(d->audit, &who, s, e);
    }
    if (d->opts->cache == SFS_CACHE_NONE || ino == SFS_INO_STATUS) {
        fi->direct_io = 1;
        fi->keep_cache = 0;
    } else {
        fi->keep_cache = 1;
    }
    if (d->opts->cache == SFS_CACHE_NONE) {
        /* the handle keeps this generation alive: one open reads one version */
        sfs_snap_pin(s);
        fi->fh = (uint64_t)(uintptr_t)s;
    } else {
        sfs_snap_release(s);
        fi->fh = 0;
    }
    if (fuse_reply_open(req, fi) == -ENOENT && fi->fh)
        sfs_snap_unref(s); /* the opener was interrupted; no release will come */
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct daemon *d = daemon_of(req);
    struct snapshot *s = snap_for(d, fi);
    const struct snap_entry *e = sfs_snap_by_ino(s, ino);
    const unsigned char *data = NULL;
    char status[SFS_STATUS_MAX];
    size_t len = 0, start, n;

    if (e && e->kind == SNAP_STATUS) {
        len = sfs_status_text(d, status, sizeof status, NULL);
        data = (const unsigned char *)status;
    } else if (e) {
        data = e->kind == SNAP_VIEW ? sfs_snap_view_data(s, e) : e->data;
        len = sfs_snap_size(s, e);
    }
    n = sfs_read_slice(len, off, size, &start);
    if (!e)
        fuse_reply_err(req, ENOENT);
    else if (!data && len)
        fuse_reply_err(req, ENOMEM);
    else
        fuse_reply_buf(req, n ? (const char *)data + start : NULL, n);
    sfs_snap_release(s);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    if (fi->fh)
        sfs_snap_unref((struct snapshot *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct daemon *d = daemon_of(req);

    if (ino != SFS_INO_ROOT) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if (d->no_opendir) {
        fuse_reply_err(req, ENOSYS);
        return;
    }
    if (d->opts->cache == SFS_CACHE_NONE) {
        struct snapshot *s = sfs_snap_acquire(d);
        sfs_snap_pin(s);
        fi->fh = (uint64_t)(uintptr_t)s;
    } else {
        fi->fh = 0;
        fi->cache_readdir = 1;
        fi->keep_cache = 1;
    }
    if (fuse_reply_open(req, fi) == -ENOENT && fi->fh)
        sfs_snap_unref((struct snapshot *)(uintptr_t)fi->fh);
}

struct dir_fill {
    fuse_req_t req;
    char *buf;
    size_t size, used;
};

static bool add_dirent(const char *name, uint64_t ino, bool is_dir, off_t next, void *ctx)
{
    struct dir_fill *f = ctx;
    struct stat st = {.st_ino = ino, .st_mode = is_dir ? S_IFDIR : S_IFREG};
    size_t want = fuse_add_direntry(f->req, f->buf + f->used, f->size - f->used, name, &st,
                                    next);

    if (want > f->size - f->used)
        return false;
    f->used += want;
    return true;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    struct daemon *d = daemon_of(req);
    struct dir_fill f = {req, NULL, size, 0};
    struct snapshot *s;

    if (ino != SFS_INO_ROOT) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    f.buf = malloc(size);
    if (!f.buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    s = snap_for(d, fi);
    sfs_snap_readdir(s, off, add_dirent, &f);
    fuse_reply_buf(req, f.buf, f.used);
    sfs_snap_release(s);
    free(f.buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    op_release(req, ino, fi);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct daemon *d = daemon_of(req);
    struct snapshot *s = sfs_snap_acquire(d);
    struct statvfs sv;

    (void)ino;
    memset(&sv, 0, sizeof sv);
    sv.f_bsize = sv.f_frsize = 4096;
    sv.f_blocks = (sfs_set_value_bytes(s->store) + 4095) / 4096;
    sv.f_files = s->n + 1;
    sv.f_namemax = 255;
    sv.f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV;
    sfs_snap_release(s);
    fuse_reply_statfs(req, &sv);
}

/* ---- everything that would write: EROFS, whatever the mount options ---- */

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    (void)ino, (void)attr, (void)to_set, (void)fi;
    fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev)
{
    (void)parent, (void)name, (void)mode, (void)rdev;
    fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)parent, (void)name, (void)mode;
    fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    (void)parent, (void)name;
    fuse_reply_err(req, EROFS);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    (void)link, (void)parent, (void)name;
    fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    (void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
    fuse_reply_err(req, EROFS);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    (void)ino, (void)newparent, (void)newname;
    fuse_reply_err(req, EROFS);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino, (void)buf, (void)size, (void)off, (void)fi;
    fuse_reply_err(req, EROFS);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    (void)ino, (void)name, (void)value, (void)size, (void)flags;
    fuse_reply_err(req, EROFS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    (void)ino, (void)name;
    fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    (void)parent, (void)name, (void)mode, (void)fi;
    fuse_reply_err(req, EROFS);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi)
{
    (void)ino, (void)mode, (void)offset, (void)length, (void)fi;
    fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops sfs_fuse_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .open = op_open,
    .read = op_read,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .write = op_write,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
    .create = op_create,
    .fallocate = op_fallocate,
};
