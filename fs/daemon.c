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
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "crypto/key.h"
#include "crypto/secmem.h"
#include "fs/notify.h"
#include "fs/rollback.h"
#include "fs/serve.h"
#include "fs/status.h"
#include "secrets/dotenv.h"
#include "secrets/names.h"
#include "util/log.h"
#include "util/process.h"

#define LONG_TIMEOUT (24.0 * 3600.0)
#define SFS_PLATFORM_FILE_MAX (4u << 20)
#define STOP_WAIT_S 2 /* how long SIGTERM waits for a reload under way */

struct runtime {
    struct daemon d;
    sfs_store *store;
    struct inode_table *inodes;
    sfs_set *env_platform;   /* platform entries from the environment, read once */
    int ready_fd;            /* pipe to the waiting parent, -1 once reported */
    int stop_fd;             /* eventfd: tells the control thread to finish */
    pthread_t control;
    bool control_started;
    pthread_t ready;         /* the readiness check: joined before the session is freed */
    bool ready_started;
    sfs_key_unlock *unlock;  /* the passphrase-derived key, asked for once (secure memory) */
    uint64_t served_version; /* the store version the current generation came from */
    uint64_t loaded_version; /* of the set build_next loaded last */
    char *state_path;        /* fs/rollback.h, or NULL */
    uint64_t recorded;       /* what state_path holds */
    bool abandoned;          /* the control thread outlived shutdown: it owns all of this */
};

/* ---- process hygiene ---- */

static int harden_process(struct sfs_err *err)
{
    int rc = sfs_process_private(err);

    if (rc < 0)
        return rc;
    sfs_secmem_require_lock(true);
    /* Memory that does not depend on load: FUSE workers share two malloc arenas, where
     * glibc would add one (about 1 MB resident) each time workers contend, up to 8 per core.
     * Secrets never live in malloc memory (crypto/secmem.h). */
    (void)mallopt(M_ARENA_MAX, 2);
    /* A fixed threshold (glibc raises it after every large free otherwise): a generation's
     * entry and inode arrays are mmapped and go back to the system when it is freed, so
     * reloads of fresh names do not leave the heap fragmented and growing. */
    (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
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
    struct stat st;
    size_t len = 0, i;
    int fd, rc = 0;

    /* never blocks: a FIFO or a device opens at once, and is refused */
    fd = open(o->platform_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = sfs_err_set(err, -errno, "platform file: %s: %s", o->platform_file,
                         strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = sfs_err_set(err, -EINVAL, "platform file: %s: is not a regular file (a FIFO, "
                         "device or directory); point [platform] file at a regular file",
                         o->platform_file);
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

/* Loads the key ring and the store under it.  A store naming a key the ring lacks makes it
 * read the key file once more: `secretfs rekey` writes the key file before it reseals. */
static int load_store(struct runtime *rt, unsigned flags, sfs_set **store, uint64_t *version,
                      struct sfs_err *err)
{
    const struct sfs_mount_opts *o = rt->d.opts;
    unsigned kflags = o->key_is_credential ? SFS_KEY_CREDENTIAL : 0;
    struct sfs_store_meta meta;
    sfs_key *key = NULL;
    int rc, tries;

    for (tries = 0; tries < 2; tries++) {
        rc = sfs_key_load_with(o->key_file, rt->unlock, kflags, &key, err);
        if (rc < 0)
            return rc;
        rc = sfs_store_load_meta(rt->store, key, flags, store, &meta, err);
        if (rc == 0)
            sfs_audit_set_key(rt->d.audit, key, rt->d.status.generation + 1);
        sfs_key_free(key);
        if (rc != -EKEYREJECTED)
            break;
    }
    *version = meta.version;
    return rc;
}

/* Refuses a set older than what this daemon serves, or (at start) than what this host has
 * recorded, unless allow_rollback.  Returns 0 or -ESTALE with err set. */
static int check_rollback(struct runtime *rt, bool first, uint64_t version,
                          struct sfs_err *err)
{
    const struct sfs_mount_opts *o = rt->d.opts;

    if (o->rollback_allowed)
        return 0;
    if (!first && version < rt->served_version)
        return sfs_err_set(err, -ESTALE, "store version %llu is older than the served version "
                           "%llu (rollback?)", (unsigned long long)version,
                           (unsigned long long)rt->served_version);
    if (first && version < rt->recorded && !o->allow_rollback)
        return sfs_err_set(err, -ESTALE, "store version %llu is older than version %llu, which "
                           "this host served before (%s): rollback? If you restored the store "
                           "from a backup on purpose, mount once with --allow-rollback",
                           (unsigned long long)version, (unsigned long long)rt->recorded,
                           rt->state_path);
    return 0;
}

/* Remembers that `version` is served, across restarts when it is the highest yet. */
static void record_served(struct runtime *rt, bool first, uint64_t version)
{
    struct sfs_err err;

    rt->served_version = version;
    if (!rt->state_path || (version <= rt->recorded && !(first && version != rt->recorded)))
        return;
    if (sfs_rollback_write(rt->state_path, rt->d.opts->store, version, &err) < 0)
        sfs_warn("cannot record the served store version: %s", err.msg);
    else
        rt->recorded = version;
}

/* Loads key, store and platform entries (`flags`: sfs_store_load's).  Nothing is kept on
 * failure. */
static int load_sets(struct runtime *rt, unsigned flags, bool first, sfs_set **store,
                     sfs_set **platform, struct sfs_err *err)
{
    const struct sfs_mount_opts *o = rt->d.opts;
    uint64_t version = 0;
    int rc;

    *store = *platform = NULL;
    rc = load_store(rt, flags, store, &version, err);
    if (rc == 0)
        rc = check_rollback(rt, first, version, err);
    if (rc < 0)
        goto fail;
    rt->loaded_version = version;
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

/* Records the outcome of a load in .status: the generation `s` (NULL: unchanged) and
 * `last` ("ok" or "error: ..."); `count_attempt` for reloads (not the first load). */
static void set_status(struct daemon *d, const struct snapshot *s, const char *last,
                       bool count_attempt)
{
    pthread_mutex_lock(&d->lock);
    if (s) {
        list_missing(d->opts, s, d->status.missing, sizeof d->status.missing);
        d->status.generation = s->generation;
        d->status.store_version = s->store_version;
        d->status.loaded_at = s->loaded_at;
        d->status.secrets = s->n_secrets;
        d->status.platform = s->n_platform;
    }
    d->changed_at = (int64_t)time(NULL);
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

/* Loads the sets and builds the next generation off to the side.  Returns 0 with *next,
 * or -errno with err saying why (nothing changes). */
static int build_next(struct runtime *rt, unsigned flags, bool first, struct snapshot **next,
                      struct sfs_err *err)
{
    struct daemon *d = &rt->d;
    sfs_set *store, *platform;
    int rc = load_sets(rt, flags, first, &store, &platform, err);

    *next = NULL;
    if (rc < 0)
        return rc;
    *next = sfs_snap_build(d->opts, rt->inodes, store, platform, d->status.generation + 1);
    if (!*next)
        return sfs_err_set(err, -ENOMEM, "out of memory building the new generation");
    (*next)->store_version = rt->loaded_version;
    return 0;
}

/* Finds what this host served before (fs/rollback.h).  A state directory given explicitly
 * must work; the default one is best effort (a warning). */
static int open_state(struct runtime *rt, struct sfs_err *err)
{
    const struct sfs_mount_opts *o = rt->d.opts;
    int rc;

    if (!o->state_dir)
        return 0;
    rt->state_path = sfs_rollback_path(o->state_dir, o->store);
    if (!rt->state_path)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    rc = sfs_rollback_read(rt->state_path, &rt->recorded, err);
    if (rc == 0 || rc == -ENOENT)
        return 0;
    if (o->state_dir_required)
        return rc;
    sfs_warn("%s; rollback across restarts is not checked", err->msg);
    free(rt->state_path);
    rt->state_path = NULL;
    return 0;
}

/* The first load, before mounting: nothing serves yet, so a failure is the caller's to
 * report (the mount does not happen).  Returns 0 or -errno with err set. */
static int load_first(struct runtime *rt, struct sfs_err *err)
{
    struct snapshot *first;
    int rc = open_state(rt, err);

    if (rc == 0)
        rc = build_next(rt, SFS_LOAD_FRESH, true, &first, err);
    if (rc < 0)
        return rc;
    record_served(rt, true, rt->loaded_version);
    rt->d.current = first;
    set_status(&rt->d, first, "ok", false);
    sfs_audit_mounted(rt->d.audit, first);
    sfs_notify_generation(first->generation);
    return 0;
}

static void invalidate_status(struct daemon *d)
{
    notify_result("inode", ".status",
                  fuse_lowlevel_notify_inval_inode(d->se, SFS_INO_STATUS, 0, 0));
}

/* A reload that failed: the current generation keeps serving; .status, the log, systemd and
 * the generation file say so. */
static void reload_failed(struct daemon *d, const struct sfs_err *err)
{
    char line[sizeof d->status.last_reload];

    sfs_error("reload failed, still serving generation %llu: %s",
              (unsigned long long)d->status.generation, err->msg);
    snprintf(line, sizeof line, "error: %s", err->msg);
    set_status(d, NULL, line, true);
    sfs_audit_refused(d->audit, d->status.generation, err->msg);
    invalidate_status(d);
    sd_notify(0, "READY=1\nSTATUS=last reload failed; serving the previous secrets");
    sfs_notify_generation(d->status.generation);
}

/* Swaps in `next`, waits for the requests that use the old generation, tells the kernel
 * exactly what changed, and reports the new generation everywhere. */
static void publish(struct daemon *d, struct snapshot *next)
{
    struct snapshot *old;

    pthread_mutex_lock(&d->lock);
    old = d->current;
    d->current = next;
    pthread_mutex_unlock(&d->lock);
    sfs_snap_wait_idle(old);
    if (!d->opts->no_invalidate)
        invalidate_changes(d, old, next);
    sfs_audit_reloaded(d->audit, old, next);
    sfs_snap_unref(old);
    set_status(d, next, "ok", true);
    /* .status is how `secretfs reload` learns the result: invalidated even when the
     * debug option turns off the notifications for what the mount serves */
    invalidate_status(d);
    sfs_notify_generation(next->generation);
    sfs_info("reloaded: generation %llu, %zu secrets, %zu platform entries",
             (unsigned long long)next->generation, next->n_secrets, next->n_platform);
    sd_notifyf(0, "READY=1\nSTATUS=serving generation %llu",
               (unsigned long long)next->generation);
}

/* Validate, then swap: builds the next generation off the request path and publishes it.
 * On failure the current one keeps serving and .status says why.  Returns 0 or -errno. */
static int reload(struct runtime *rt, unsigned flags)
{
    struct daemon *d = &rt->d;
    struct sfs_err err;
    struct snapshot *next;
    struct timespec mono;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &mono);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)mono.tv_sec * 1000000ull +
                   (unsigned long long)mono.tv_nsec / 1000ull);
    pthread_mutex_lock(&d->lock);
    d->status.started++;
    pthread_mutex_unlock(&d->lock);
    /* before the store is read: a `secretfs reload` that finds the old count in the
     * kernel's cached page read it before this reload began loading */
    invalidate_status(d);
    sfs_notify_reloading();
    rc = build_next(rt, flags, false, &next, &err);
    if (rc < 0) {
        reload_failed(d, &err);
    } else {
        record_served(rt, false, rt->loaded_version);
        publish(d, next);
    }
    return rc;
}

/* ---- the control thread: SIGHUP, SIGUSR1, store watch, stop ---- */

/* Reads the pending signals: a SIGHUP reloads once, a SIGUSR1 reopens the audit log. */
static void handle_signals(struct runtime *rt, int sfd)
{
    struct signalfd_siginfo si;
    bool hup = false, usr1 = false;

    while (read(sfd, &si, sizeof si) == sizeof si) {
        hup |= si.ssi_signo == SIGHUP;
        usr1 |= si.ssi_signo == SIGUSR1;
    }
    if (usr1 && rt->d.audit)
        sfs_audit_reopen(rt->d.audit);
    else if (usr1)
        sfs_info("SIGUSR1: no audit log to reopen (mount with audit=PATH)");
    if (hup) {
        sfs_info("SIGHUP: reloading");
        (void)reload(rt, SFS_LOAD_FRESH);
    }
}

static void *control_thread(void *arg)
{
    struct runtime *rt = arg;
    sigset_t set;
    int sfd, wfd = sfs_store_watch_fd(rt->store), timeout = -1;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* TERM and INT are for the FUSE loop: never this thread, which may be in a reload */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    for (;;) {
        struct pollfd p[3] = {{rt->stop_fd, POLLIN, 0}, {sfd, POLLIN, 0}, {wfd, POLLIN, 0}};
        int n = poll(p, 3, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (p[0].revents)
            break;
        if (p[1].revents & POLLIN)
            handle_signals(rt, sfd);
        if ((p[2].revents & POLLIN) || (n == 0 && timeout >= 0)) {
            /* the store's connection state may have changed, whatever else did */
            invalidate_status(&rt->d);
            if (sfs_store_watch_due(rt->store, &timeout)) {
                sfs_info("%s changed: reloading", sfs_store_location(rt->store));
                (void)reload(rt, 0);
                timeout = 0; /* ask again at once: a change may have come in meanwhile */
            }
        }
    }
    if (sfd >= 0)
        close(sfd);
    return NULL;
}

/* ---- mounting ---- */

/* With a mountpoint descriptor, the path must still name the directory it was opened on:
 * a name swapped since (a symlink, another directory) is refused, never mounted over. */
static int same_dir_as_fd(const struct sfs_mount_opts *o, const struct stat *path_st,
                          struct sfs_err *err)
{
    struct stat fd_st;

    if (o->mountpoint_fd <= 0)
        return 0;
    if (fstat(o->mountpoint_fd, &fd_st) < 0)
        return sfs_err_set(err, -errno, "--mountpoint-fd %d: %s", o->mountpoint_fd,
                           strerror(errno));
    if (!S_ISDIR(fd_st.st_mode))
        return sfs_err_set(err, -ENOTDIR, "--mountpoint-fd %d is not a directory",
                           o->mountpoint_fd);
    if (fd_st.st_dev != path_st->st_dev || fd_st.st_ino != path_st->st_ino)
        return sfs_err_set(err, -EXDEV, "mountpoint %s is no longer the directory "
                           "--mountpoint-fd %d was opened on (renamed or replaced); nothing "
                           "was mounted", o->mountpoint, o->mountpoint_fd);
    return 0;
}

static int precheck(const struct sfs_mount_opts *o, struct sfs_err *err)
{
    struct sfs_mountinfo mi;
    char real[PATH_MAX];
    struct statfs sf;
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
    fd = same_dir_as_fd(o, &st, err);
    if (fd < 0)
        return fd;
    if (!realpath(o->mountpoint, real))
        return sfs_err_set(err, -errno, "mountpoint %s: %s", o->mountpoint, strerror(errno));
    if (!sfs_mountinfo_find(real, &mi))
        return 0;
    /* a FUSE mount whose daemon died still answers stat from cached attributes: statfs
     * always asks the daemon */
    if (strncmp(mi.fstype, "fuse", 4) == 0 && statfs(real, &sf) < 0 && errno == ENOTCONN)
        return sfs_err_set(err, -ENOTCONN,
                           "%s: a dead %s mount is still there (its daemon died); run "
                           "'fusermount3 -u %s' and mount again", o->mountpoint, mi.fstype,
                           o->mountpoint);
    return sfs_err_set(err, -EBUSY,
                       "%s is already a mountpoint (%s); unmount it first (fusermount3 -u "
                       "%s) or choose another", o->mountpoint, mi.fstype, o->mountpoint);
}

static int make_session(struct runtime *rt, struct sfs_err *err)
{
    const struct sfs_mount_opts *o = rt->d.opts;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    char opts[256], target[PATH_MAX];
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
    /* through the descriptor, the kernel mounts on the directory it names whatever has
     * happened to the path since; libfuse unmounts through the same name at exit, so the
     * descriptor stays open for the daemon's life */
    if (o->mountpoint_fd > 0)
        snprintf(target, sizeof target, "/proc/self/fd/%d", o->mountpoint_fd);
    else
        snprintf(target, sizeof target, "%s", o->mountpoint);
    if (fuse_session_mount(rt->d.se, target) != 0) {
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

/* Everything the daemon needs before mounting: hardening, the store handle, the first
 * generation (loaded, locked and built before anything is visible).  Returns 0 or -errno. */
static int prepare(struct runtime *rt, struct sfs_err *err)
{
    const struct sfs_mount_opts *o = rt->d.opts;
    int rc = harden_process(err);

    if (rc < 0)
        return rc;
    rt->inodes = sfs_inodes_new();
    rt->d.inodes = rt->inodes;
    rt->env_platform = read_env_platform(o);
    rt->stop_fd = eventfd(0, EFD_CLOEXEC);
    rt->unlock = sfs_key_unlock_new(o->passphrase_fn, o->passphrase_ctx);
    if (!rt->inodes || !rt->env_platform || rt->stop_fd < 0 || !rt->unlock)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    rc = sfs_store_open(o->store, &o->store_opts, &rt->store, err);
    if (rc < 0)
        return rc;
    rt->d.store = rt->store;
    if (o->audit) {
        rc = sfs_audit_open(o->audit, o->mountpoint, &rt->d.audit, err);
        if (rc < 0)
            return rc;
    }
    (void)sfs_notify_open(o->mountpoint);
    rc = load_first(rt, err);
    if (rc == 0)
        rc = sfs_store_watch(rt->store, err);
    return rc;
}

/* Starts the control thread and the readiness check beside the FUSE loop. */
static int start_threads(struct runtime *rt, struct sfs_err *err)
{
    struct ready_arg *ra;

    if (pthread_create(&rt->control, NULL, control_thread, rt) != 0)
        return sfs_err_set(err, -EAGAIN, "cannot start the control thread");
    rt->control_started = true;
    ra = calloc(1, sizeof *ra);
    if (ra)
        ra->rt = rt;
    if (!ra || !realpath(rt->d.opts->mountpoint, ra->path) ||
        pthread_create(&rt->ready, NULL, ready_thread, ra) != 0) {
        free(ra);
        return sfs_err_set(err, -EAGAIN, "cannot start the readiness check");
    }
    rt->ready_started = true;
    return 0;
}

/* Stops the control thread, waiting at most STOP_WAIT_S for a reload under way (its store,
 * key or platform file may sit on a file system that does not answer).  Returns false when
 * the thread is still running: then it owns the runtime, which must not be freed (the
 * process exits soon and takes the thread with it). */
static bool stop_control(struct runtime *rt)
{
    struct timespec deadline;
    uint64_t one = 1;
    int rc;

    if (!rt->control_started)
        return true;
    if (write(rt->stop_fd, &one, sizeof one) < 0)
        sfs_warn("cannot stop the control thread: %s", strerror(errno));
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += STOP_WAIT_S;
    do
        rc = pthread_timedjoin_np(rt->control, NULL, &deadline);
    while (rc == EINTR);
    if (rc != 0) {
        sfs_warn("a reload has not finished after %d s (its store, key or platform file does "
                 "not answer); unmounting without waiting for it", STOP_WAIT_S);
        return false;
    }
    rt->control_started = false;
    return true;
}

/* Mounts, serves until SIGTERM/SIGINT or an unmount, and unmounts.  Returns 0 or -errno. */
static int serve_mount(struct runtime *rt, struct sfs_err *err)
{
    struct fuse_loop_config *loop_cfg = NULL;
    int rc = make_session(rt, err);

    if (rc < 0)
        return rc;
    /* TERM/INT end the loop (SIGHUP stays blocked for the control thread's signalfd) */
    if (fuse_set_signal_handlers(rt->d.se) != 0) {
        rc = sfs_err_set(err, -EIO, "cannot install signal handlers");
        goto out_unmount;
    }
    rc = start_threads(rt, err);
    loop_cfg = rc == 0 ? fuse_loop_cfg_create() : NULL;
    if (rc == 0 && !loop_cfg)
        rc = sfs_err_set(err, -ENOMEM, "out of memory");
    if (rc < 0)
        goto out_signals;
    fuse_loop_cfg_set_max_threads(loop_cfg, 16);
    fuse_loop_cfg_set_idle_threads(loop_cfg, 4);
    rc = fuse_session_loop_mt(rt->d.se, loop_cfg);
    if (rc < 0)
        sfs_error("FUSE loop ended: %s", strerror(-rc));
    else if (rc > 0)
        sfs_info("stopping on signal %d", rc);
    rc = 0;
    fuse_loop_cfg_destroy(loop_cfg);
out_signals:
    rt->abandoned = !stop_control(rt);
    fuse_remove_signal_handlers(rt->d.se);
out_unmount:
    fuse_session_unmount(rt->d.se);
    /* a stop can come before the readiness check's stat returned (it fails once the
     * unmount closed the session's fd); it uses the session and rt, so wait for it */
    if (rt->ready_started)
        pthread_join(rt->ready, NULL);
    rt->ready_started = false;
    if (!rt->abandoned) { /* else the stuck reload may still notify through it */
        fuse_session_destroy(rt->d.se);
        rt->d.se = NULL;
    }
    sfs_info("unmounted %s", rt->d.opts->mountpoint);
    sd_notify(0, "STOPPING=1");
    return rc;
}

/* The daemon proper, in the process that serves: prepare, mount and serve, then free
 * everything (every generation, also those still pinned by handles). */
static int run_daemon(const struct sfs_mount_opts *o, int ready_fd, struct sfs_err *err)
{
    struct runtime *rt = calloc(1, sizeof *rt);
    sigset_t block;
    int rc;

    if (!rt)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    rt->ready_fd = ready_fd;
    rt->stop_fd = -1;
    rt->d.opts = o;
    rt->d.timeout = LONG_TIMEOUT;
    pthread_mutex_init(&rt->d.lock, NULL);
    /* from here on SIGHUP means "reload" and SIGUSR1 "reopen the audit log": blocked in
     * every thread we start, they wait in the control thread's signalfd, and one that
     * arrives during startup is not lost */
    sigemptyset(&block);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    rc = prepare(rt, err);
    if (rc == 0)
        rc = serve_mount(rt, err);
    if (rt->ready_fd >= 0 && rc < 0)
        report(rt, err->msg);
    if (rt->abandoned) /* a stuck reload still uses rt, opts and the generation file */
        return rc < 0 ? rc : sfs_err_set(err, -EINPROGRESS, "unmounted with a reload still "
                                         "waiting for its files; exiting without it");
    sfs_notify_close();
    if (rt->stop_fd >= 0)
        close(rt->stop_fd);
    rt->d.store = NULL;
    sfs_audit_close(rt->d.audit); /* every handler is done: what is queued gets written */
    rt->d.audit = NULL;
    sfs_store_close(rt->store);
    if (rt->d.current)
        sfs_snap_unref(rt->d.current);
    sfs_set_free(rt->env_platform);
    sfs_inodes_free(rt->inodes);
    sfs_key_unlock_free(rt->unlock);
    free(rt->state_path);
    pthread_mutex_destroy(&rt->d.lock);
    free(rt);
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
        return run_daemon(opts, -1, err);
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
        return run_daemon(opts, fds[1], err);
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
