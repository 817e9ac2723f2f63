/* fs/daemon.c — process lifecycle: checks, fork-then-load, mount, signals, reload, unmount. */
#include "fs/daemon.h"

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "crypto/key.h"
#include "crypto/secmem.h"
#include "crypto/store.h"
#include "fs/notify.h"
#include "fs/serve.h"
#include "secrets/dotenv.h"
#include "secrets/names.h"
#include "util/log.h"

#define LONG_TIMEOUT (24.0 * 3600.0)
#define WATCH_DEBOUNCE_MS 200
#define SFS_PLATFORM_FILE_MAX (4u << 20)

struct runtime {
    struct daemon d;
    struct inode_table *inodes;
    sfs_set *env_platform;   /* platform entries from the environment, read once */
    int ready_fd;            /* pipe to the waiting parent, -1 once reported */
    int stop_fd;             /* eventfd: tells the control thread to finish */
    pthread_t control;
    bool control_started;
};

/* ---- process hygiene ---- */

static int harden_process(struct sfs_err *err)
{
    struct rlimit no_core = {0, 0};

    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return sfs_err_set(err, -errno, "cannot disable core dumps (PR_SET_DUMPABLE): %s",
                           strerror(errno));
    if (setrlimit(RLIMIT_CORE, &no_core) < 0)
        return sfs_err_set(err, -errno, "cannot set RLIMIT_CORE to 0: %s", strerror(errno));
    sfs_secmem_require_lock(true);
    /* Memory that does not depend on load: FUSE workers share two malloc arenas, where
     * glibc would add one (about 1 MB resident) each time workers contend, up to 8 per core.
     * Secrets never live in malloc memory (crypto/secmem.h). */
    (void)mallopt(M_ARENA_MAX, 2);
    return 0;
}

/* ---- loading one generation ---- */

static sfs_set *read_env_platform(const struct sfs_mount_opts *o)
{
    sfs_set *set = sfs_set_new(0);
    size_t i;

    if (!set)
        return NULL;
    for (i = 0; i < o->n_platform_env; i++) {
        const char *name = o->platform_env[i];
        const char *value = getenv(name);
        if (!value) {
            sfs_info("platform variable %s is not set; it is not served", name);
            continue;
        }
        if (sfs_set_put(set, name, value, strlen(value), 0, 0) < 0) {
            sfs_set_free(set);
            return NULL;
        }
    }
    return set;
}

static void log_platform_warning(void *ctx, const char *msg)
{
    (void)ctx;
    sfs_warn("%s", msg);
}

/* Reads the platform file into `platform` (its entries win over the environment's). */
static int read_platform_file(const struct sfs_mount_opts *o, sfs_set *platform,
                              struct sfs_err *err)
{
    sfs_set *parsed = NULL;
    sfs_arena *scratch = NULL;
    unsigned char *buf;
    size_t len = 0, i;
    int fd, rc = 0;

    fd = open(o->platform_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = sfs_err_set(err, -errno, "platform file: %s: %s", o->platform_file,
                         strerror(errno));
        goto out;
    }
    rc = sfs_arena_read_fd(fd, SFS_PLATFORM_FILE_MAX, &scratch, &buf, &len);
    if (rc < 0) {
        sfs_err_set(err, rc, "platform file: %s: %s", o->platform_file,
                    rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
        goto out;
    }
    rc = sfs_dotenv_parse((const char *)buf, len, o->platform_file, &parsed,
                          log_platform_warning, NULL, err);
    if (rc < 0) {
        sfs_err_prefix(err, "platform file");
        goto out;
    }
    for (i = 0; i < sfs_set_count(parsed); i++) {
        const sfs_entry *e = sfs_set_at(parsed, i);
        const char *why;
        if (!sfs_name_valid(e->name, &why) || !sfs_name_reserved(e->name, o->reserved_prefix)) {
            rc = sfs_err_set(err, -EINVAL,
                             "platform file: %s:%u: %s is not a platform name (platform names "
                             "start with %s)", o->platform_file, e->line, e->name,
                             o->reserved_prefix);
            goto out;
        }
        rc = sfs_set_put(platform, e->name, e->value, e->len, 0, 0);
        if (rc < 0) {
            sfs_err_set(err, rc, "out of memory");
            goto out;
        }
    }
out:
    if (fd >= 0)
        close(fd);
    sfs_set_free(parsed);
    sfs_arena_free(scratch);
    return rc;
}

/* Loads key, store and platform entries.  Nothing is kept on failure. */
static int load_sets(struct runtime *rt, sfs_set **store, sfs_set **platform,
                     struct sfs_err *err)
{
    const struct sfs_mount_opts *o = rt->d.opts;
    sfs_key *key;
    int rc;

    *store = *platform = NULL;
    key = sfs_key_load(o->key_file, err);
    if (!key)
        return -EINVAL;
    rc = sfs_store_read(o->store_path, key, store, err);
    sfs_key_free(key);
    if (rc == -ENOENT)
        sfs_err_set(err, rc, "%s: no store there; create it with 'secretfs update-secrets'",
                    o->store_path);
    if (rc < 0)
        return rc;
    *platform = sfs_set_clone(rt->env_platform);
    if (!*platform) {
        rc = sfs_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    if (o->platform_file) {
        rc = read_platform_file(o, *platform, err);
        if (rc < 0)
            goto fail;
    }
    if (!sfs_set_locked(*store) || !sfs_set_locked(*platform)) {
        rc = sfs_err_set(err, -ENOMEM, "cannot lock secret memory; raise RLIMIT_MEMLOCK "
                         "(LimitMEMLOCK= in the unit) or run as root");
        goto fail;
    }
    return 0;
fail:
    sfs_set_free(*store);
    sfs_set_free(*platform);
    *store = *platform = NULL;
    return rc;
}

/* The --only names `s` does not serve, comma separated into buf (cut with "..."). */
static void list_missing(const struct sfs_mount_opts *o, const struct snapshot *s, char *buf,
                         size_t size)
{
    size_t i, len = 0;

    buf[0] = '\0';
    for (i = 0; i < o->n_only && len + 4 < size; i++) {
        int n;

        if (sfs_snap_find(s, o->only[i]))
            continue;
        n = snprintf(buf + len, size - len, "%s%s", len ? "," : "", o->only[i]);
        if (n < 0 || (size_t)n >= size - len) {
            snprintf(buf + (len < size - 4 ? len : size - 4), 4, "...");
            break;
        }
        len += (size_t)n;
    }
}

static void set_status(struct daemon *d, const struct snapshot *s, const char *last,
                       bool count_attempt)
{
    pthread_mutex_lock(&d->lock);
    if (s) {
        list_missing(d->opts, s, d->status.missing, sizeof d->status.missing);
        d->status.generation = s->generation;
        d->status.loaded_at = s->loaded_at;
        d->status.secrets = s->n_secrets;
        d->status.platform = s->n_platform;
    }
    d->status.changed_at = (int64_t)time(NULL);
    if (count_attempt)
        d->status.reloads++;
    snprintf(d->status.last_reload, sizeof d->status.last_reload, "%s", last);
    pthread_mutex_unlock(&d->lock);
}

/* ---- cache coherence ---- */

static void notify_result(const char *what, const char *name, int rc)
{
    if (rc < 0 && rc != -ENOENT)
        sfs_warn("kernel cache notification (%s %s) failed: %s", what, name, strerror(-rc));
}

/* Tells the kernel exactly what changed between two generations.  Called from the reload
 * thread with no lock held, after every request that used `old` has finished. */
static void invalidate_changes(struct daemon *d, const struct snapshot *old,
                               const struct snapshot *new)
{
    struct fuse_session *se = d->se;
    size_t i = 0, j = 0;
    bool listing_changed = old->dir_mode != new->dir_mode;

    while (i < old->n || j < new->n) {
        const struct snap_entry *a = i < old->n ? &old->entries[i] : NULL;
        const struct snap_entry *b = j < new->n ? &new->entries[j] : NULL;
        int c = !a ? 1 : !b ? -1 : strcmp(a->name, b->name);
        if (c < 0) {
            notify_result("delete", a->name,
                          fuse_lowlevel_notify_delete(se, SFS_INO_ROOT, a->ino, a->name,
                                                      strlen(a->name)));
            listing_changed = true;
            i++;
        } else if (c > 0) {
            notify_result("entry", b->name,
                          fuse_lowlevel_notify_inval_entry(se, SFS_INO_ROOT, b->name,
                                                           strlen(b->name)));
            listing_changed = true;
            j++;
        } else {
            if (sfs_snap_entry_changed(a, b))
                notify_result("inode", b->name,
                              fuse_lowlevel_notify_inval_inode(se, b->ino, 0, 0));
            i++;
            j++;
        }
    }
    if (listing_changed)
        notify_result("inode", "/", fuse_lowlevel_notify_inval_inode(se, SFS_INO_ROOT, 0, 0));
}

static void wait_for_requests(const struct snapshot *s)
{
    struct timespec nap = {0, 20000};

    while (atomic_load(&s->inflight) > 0)
        nanosleep(&nap, NULL);
}

/* Validate, then swap: builds the next generation off the request path and publishes it.
 * On failure the current one keeps serving and .status says why.  Returns 0 or -errno. */
static int reload(struct runtime *rt)
{
    struct daemon *d = &rt->d;
    struct sfs_err err;
    sfs_set *store, *platform;
    struct snapshot *next, *old;
    char line[sizeof d->status.last_reload];
    struct timespec mono;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &mono);
    if (d->current)
        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)mono.tv_sec * 1000000ull +
                   (unsigned long long)mono.tv_nsec / 1000ull);
    if (d->current) {
        pthread_mutex_lock(&d->lock);
        d->status.started++;
        pthread_mutex_unlock(&d->lock);
    }
    sfs_notify_reloading();
    rc = load_sets(rt, &store, &platform, &err);
    if (rc == 0) {
        next = sfs_snap_build(d->opts, rt->inodes, store, platform,
                              d->status.generation + 1);
        if (!next)
            rc = sfs_err_set(&err, -ENOMEM, "out of memory building the new generation");
    }
    if (rc < 0) {
        if (d->current)
            sfs_error("reload failed, still serving generation %llu: %s",
                      (unsigned long long)d->status.generation, err.msg);
        snprintf(line, sizeof line, "error: %s", err.msg);
        set_status(d, NULL, line, d->current != NULL);
        if (d->se)
            notify_result("inode", ".status",
                          fuse_lowlevel_notify_inval_inode(d->se, SFS_INO_STATUS, 0, 0));
        if (d->current)
            sd_notify(0, "READY=1\nSTATUS=last reload failed; serving the previous secrets");
        sfs_notify_generation(d->status.generation);
        return rc;
    }
    pthread_mutex_lock(&d->lock);
    old = d->current;
    d->current = next;
    pthread_mutex_unlock(&d->lock);
    if (old) {
        wait_for_requests(old);
        if (!d->opts->no_invalidate)
            invalidate_changes(d, old, next);
        sfs_snap_unref(old);
    }
    set_status(d, next, "ok", old != NULL);
    /* .status is how `secretfs reload` learns the result: invalidated even when the
     * debug option turns off the notifications for what the mount serves */
    if (old)
        notify_result("inode", ".status",
                      fuse_lowlevel_notify_inval_inode(d->se, SFS_INO_STATUS, 0, 0));
    sfs_notify_generation(next->generation);
    if (old)
        sfs_info("reloaded: generation %llu, %zu secrets, %zu platform entries",
                 (unsigned long long)next->generation, next->n_secrets, next->n_platform);
    /* the first READY=1 waits until the files are visible (ready_thread) */
    if (old)
        sd_notifyf(0, "READY=1\nSTATUS=serving generation %llu",
                   (unsigned long long)next->generation);
    return 0;
}

/* ---- the control thread: SIGHUP, store watch, stop ---- */

static int watch_store(const char *store_path, char **base_out)
{
    char *copy = strdup(store_path), *slash;
    const char *dir = ".";
    int fd;

    if (!copy)
        return -1;
    slash = strrchr(copy, '/');
    if (slash) {
        *slash = '\0';
        dir = slash == copy ? "/" : copy;
        *base_out = strdup(slash + 1);
    } else {
        *base_out = strdup(copy);
    }
    fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd >= 0 && inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
        sfs_warn("cannot watch %s for store changes: %s", dir, strerror(errno));
        close(fd);
        fd = -1;
    }
    free(copy);
    return fd;
}

/* True if the inotify batch on `fd` names `base`. */
static bool drain_inotify(int fd, const char *base)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool hit = false;
    ssize_t n;

    while ((n = read(fd, buf, sizeof buf)) > 0) {
        char *p = buf;
        while (p < buf + n) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->len && strcmp(ev->name, base) == 0)
                hit = true;
            p += sizeof *ev + ev->len;
        }
    }
    return hit;
}

static void *control_thread(void *arg)
{
    struct runtime *rt = arg;
    sigset_t set;
    int sfd, wfd = -1;
    char *base = NULL;
    bool pending_watch = false;

    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (rt->d.opts->watch)
        wfd = watch_store(rt->d.opts->store_path, &base);
    for (;;) {
        struct pollfd p[3] = {{rt->stop_fd, POLLIN, 0}, {sfd, POLLIN, 0}, {wfd, POLLIN, 0}};
        int n = poll(p, 3, pending_watch ? WATCH_DEBOUNCE_MS : -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (p[0].revents)
            break;
        if (p[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si)
                ;
            sfs_info("SIGHUP: reloading");
            (void)reload(rt);
        }
        if (p[2].revents & POLLIN) {
            if (drain_inotify(wfd, base))
                pending_watch = true; /* wait for the writer to go quiet */
            continue;
        }
        if (n == 0 && pending_watch) {
            pending_watch = false;
            sfs_info("store file changed: reloading");
            (void)reload(rt);
        }
    }
    if (sfd >= 0)
        close(sfd);
    if (wfd >= 0)
        close(wfd);
    free(base);
    return NULL;
}

/* ---- mounting ---- */

/* Whether something is mounted exactly at `path` (a realpath). */
static bool is_mountpoint(const char *path, char *fstype, size_t fstype_len)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    bool found = false;

    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f)) {
        char mnt[PATH_MAX], type[128], *dash;
        char *r, *w;
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
            continue;
        for (r = w = mnt; *r; r++, w++) { /* undo mountinfo's octal escapes */
            if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] && r[3]) {
                *w = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
                r += 3;
            } else {
                *w = *r;
            }
        }
        *w = '\0';
        if (strcmp(mnt, path) != 0)
            continue;
        dash = strstr(line, " - ");
        if (dash && sscanf(dash + 3, "%127s", type) == 1)
            snprintf(fstype, fstype_len, "%s", type);
        else
            snprintf(fstype, fstype_len, "unknown");
        found = true;
    }
    fclose(f);
    return found;
}

static int precheck(const struct sfs_mount_opts *o, struct sfs_err *err)
{
    char real[PATH_MAX], fstype[128];
    struct stat st;
    int fd;

    /* without root, the setuid fusermount3 opens /dev/fuse for us: it need only exist */
    fd = geteuid() == 0 ? open("/dev/fuse", O_RDWR | O_CLOEXEC) : stat("/dev/fuse", &st);
    if (fd < 0)
        return sfs_err_set(err, -errno,
                           "cannot open /dev/fuse: %s; load the module (modprobe fuse) or, in "
                           "a container, add --device /dev/fuse", strerror(errno));
    if (geteuid() == 0)
        close(fd);
    if (stat(o->mountpoint, &st) < 0) {
        if (errno == ENOTCONN)
            return sfs_err_set(err, -ENOTCONN,
                               "%s: a dead secretfs mount is still there (its daemon died); "
                               "run 'fusermount3 -u %s' and mount again",
                               o->mountpoint, o->mountpoint);
        if (errno != ENOENT || !o->create_mountpoint)
            return sfs_err_set(err, -errno, "mountpoint %s: %s%s", o->mountpoint,
                               strerror(errno),
                               errno == ENOENT ? "; create it (mkdir -p) or choose another" : "");
        if (mkdir(o->mountpoint, 0755) < 0 && errno != EEXIST)
            return sfs_err_set(err, -errno, "cannot create mountpoint %s: %s", o->mountpoint,
                               strerror(errno));
        if (stat(o->mountpoint, &st) < 0)
            return sfs_err_set(err, -errno, "mountpoint %s: %s", o->mountpoint,
                               strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return sfs_err_set(err, -ENOTDIR, "mountpoint %s is not a directory", o->mountpoint);
    if (!realpath(o->mountpoint, real))
        return sfs_err_set(err, -errno, "mountpoint %s: %s", o->mountpoint, strerror(errno));
    if (is_mountpoint(real, fstype, sizeof fstype))
        return sfs_err_set(err, -EBUSY,
                           "%s is already a mountpoint (%s); unmount it first (fusermount3 -u "
                           "%s) or choose another", o->mountpoint, fstype, o->mountpoint);
    return 0;
}

static int make_session(struct runtime *rt, struct sfs_err *err)
{
    const struct sfs_mount_opts *o = rt->d.opts;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    char opts[256];
    int rc = 0;

    snprintf(opts, sizeof opts, "ro,default_permissions,fsname=secretfs,subtype=secretfs%s",
             o->allow_other ? ",allow_other" : "");
    if (fuse_opt_add_arg(&args, "secretfs") || fuse_opt_add_arg(&args, "-o") ||
        fuse_opt_add_arg(&args, opts) || (o->debug && fuse_opt_add_arg(&args, "-odebug"))) {
        rc = sfs_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    rt->d.se = fuse_session_new(&args, &sfs_fuse_ops, sizeof sfs_fuse_ops, &rt->d);
    if (!rt->d.se) {
        rc = sfs_err_set(err, -EINVAL, "cannot create the FUSE session (see messages above)");
        goto out;
    }
    if (fuse_session_mount(rt->d.se, o->mountpoint) != 0) {
        rc = sfs_err_set(err, -EPERM,
                         "cannot mount on %s (see the message above); mounting needs root, or "
                         "fusermount3 and 'user_allow_other' in /etc/fuse.conf for "
                         "allow_other", o->mountpoint);
        fuse_session_destroy(rt->d.se);
        rt->d.se = NULL;
    }
out:
    fuse_opt_free_args(&args);
    return rc;
}

/* Tells the waiting parent: "ok\n" or the error message. */
static void report(struct runtime *rt, const char *msg)
{
    size_t len = strlen(msg), off = 0;

    if (rt->ready_fd < 0)
        return;
    while (off < len) {
        ssize_t n = write(rt->ready_fd, msg + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(rt->ready_fd);
    rt->ready_fd = -1;
}

static void detach_stdio(void)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

    if (fd < 0)
        return;
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    if (fd > STDERR_FILENO)
        close(fd);
}

struct ready_arg {
    struct runtime *rt;
    char path[PATH_MAX];
};

/* Runs beside the FUSE loop: once the mount answers, the files are visible. */
static void *ready_thread(void *arg)
{
    struct ready_arg *ra = arg;
    struct runtime *rt = ra->rt;
    struct stat st;

    if (stat(ra->path, &st) == 0) {
        sfs_info("serving %zu secrets and %zu platform entries on %s (cache=%s)",
                 rt->d.status.secrets, rt->d.status.platform, rt->d.opts->mountpoint,
                 rt->d.opts->cache == SFS_CACHE_NONE ? "none" : "kernel");
        if (rt->ready_fd >= 0) {
            report(rt, "ok\n");
            detach_stdio();
            sfs_log_init("secretfs", true);
        }
        sd_notifyf(0, "READY=1\nSTATUS=serving generation %llu",
                   (unsigned long long)rt->d.status.generation);
    } else {
        char msg[512];
        snprintf(msg, sizeof msg, "the mount does not answer: %s", strerror(errno));
        report(rt, msg);
        fuse_session_exit(rt->d.se);
    }
    free(ra);
    return NULL;
}

static int serve(const struct sfs_mount_opts *o, int ready_fd, struct sfs_err *err)
{
    struct runtime rt = {.ready_fd = ready_fd, .stop_fd = -1};
    struct fuse_loop_config *loop_cfg = NULL;
    struct ready_arg *ra;
    pthread_t ready;
    sigset_t block;
    int rc;

    rt.d.opts = o;
    rt.d.timeout = LONG_TIMEOUT;
    pthread_mutex_init(&rt.d.lock, NULL);
    /* from here on SIGHUP means "reload": blocked in every thread we start, it waits in
     * the control thread's signalfd, and one that arrives during startup is not lost */
    sigemptyset(&block);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    rc = harden_process(err);
    if (rc < 0)
        goto out;
    rt.inodes = sfs_inodes_new();
    rt.env_platform = read_env_platform(o);
    rt.stop_fd = eventfd(0, EFD_CLOEXEC);
    if (!rt.inodes || !rt.env_platform || rt.stop_fd < 0) {
        rc = sfs_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    (void)sfs_notify_open(o->mountpoint);
    rc = reload(&rt);
    if (rc < 0) {
        sfs_err_set(err, rc, "%s", rt.d.status.last_reload + strlen("error: "));
        goto out;
    }
    rc = make_session(&rt, err);
    if (rc < 0)
        goto out;

    /* TERM/INT end the loop (SIGHUP stays blocked for the control thread's signalfd) */
    if (fuse_set_signal_handlers(rt.d.se) != 0) {
        rc = sfs_err_set(err, -EIO, "cannot install signal handlers");
        goto out_unmount;
    }
    if (pthread_create(&rt.control, NULL, control_thread, &rt) != 0) {
        rc = sfs_err_set(err, -EAGAIN, "cannot start the control thread");
        goto out_signals;
    }
    rt.control_started = true;
    ra = calloc(1, sizeof *ra);
    if (ra)
        ra->rt = &rt;
    if (!ra || !realpath(o->mountpoint, ra->path) ||
        pthread_create(&ready, NULL, ready_thread, ra) != 0) {
        free(ra);
        rc = sfs_err_set(err, -EAGAIN, "cannot start the readiness check");
        goto out_signals;
    }
    pthread_detach(ready);
    loop_cfg = fuse_loop_cfg_create();
    if (!loop_cfg) {
        rc = sfs_err_set(err, -ENOMEM, "out of memory");
        goto out_signals;
    }
    fuse_loop_cfg_set_max_threads(loop_cfg, 16);
    fuse_loop_cfg_set_idle_threads(loop_cfg, 4);
    rc = fuse_session_loop_mt(rt.d.se, loop_cfg);
    if (rc < 0)
        sfs_error("FUSE loop ended: %s", strerror(-rc));
    else if (rc > 0)
        sfs_info("stopping on signal %d", rc);
    rc = 0;
    fuse_loop_cfg_destroy(loop_cfg);
out_signals:
    if (rt.control_started) {
        uint64_t one = 1;
        if (write(rt.stop_fd, &one, sizeof one) < 0)
            sfs_warn("cannot stop the control thread: %s", strerror(errno));
        pthread_join(rt.control, NULL);
    }
    fuse_remove_signal_handlers(rt.d.se);
out_unmount:
    fuse_session_unmount(rt.d.se);
    fuse_session_destroy(rt.d.se);
    sfs_info("unmounted %s", o->mountpoint);
    sd_notify(0, "STOPPING=1");
out:
    sfs_notify_close();
    if (rt.ready_fd >= 0 && rc < 0)
        report(&rt, err->msg);
    if (rt.stop_fd >= 0)
        close(rt.stop_fd);
    if (rt.d.current)
        sfs_snap_unref(rt.d.current);
    sfs_set_free(rt.env_platform);
    sfs_inodes_free(rt.inodes);
    pthread_mutex_destroy(&rt.d.lock);
    return rc;
}

/* ---- starting: foreground, or fork first and let the child load, lock and mount ---- */

int sfs_daemon_run(const struct sfs_mount_opts *opts, bool *is_daemon, struct sfs_err *err)
{
    char msg[SFS_ERR_MAX];
    size_t len = 0;
    int fds[2], status;
    pid_t pid;
    int rc;

    *is_daemon = false;
    rc = precheck(opts, err);
    if (rc < 0)
        return rc;
    if (opts->foreground)
        return serve(opts, -1, err);
    if (pipe2(fds, O_CLOEXEC) < 0)
        return sfs_err_set(err, -errno, "pipe: %s", strerror(errno));
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return sfs_err_set(err, -errno, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fds[0]);
        *is_daemon = true;
        setsid();
        if (chdir("/") < 0)
            sfs_warn("chdir /: %s", strerror(errno));
        return serve(opts, fds[1], err);
    }
    close(fds[1]);
    for (;;) {
        ssize_t n = read(fds[0], msg + len, sizeof msg - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof msg - 1)
            break;
    }
    close(fds[0]);
    msg[len] = '\0';
    if (strcmp(msg, "ok\n") == 0)
        return 0;
    if (len)
        return sfs_err_set(err, -EIO, "%s", msg);
    if (waitpid(pid, &status, 0) == pid && WIFSIGNALED(status))
        return sfs_err_set(err, -EIO, "the daemon was killed by signal %d before mounting",
                           WTERMSIG(status));
    return sfs_err_set(err, -EIO, "the daemon exited before mounting");
}
