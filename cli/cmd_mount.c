/* cli/cmd_mount.c — `secretfs mount`, the mount(8) helper form, and `secretfs reload`. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "fs/daemon.h"
#include "fs/status.h"
#include "secrets/names.h"

static const char mount_help[] =
    "usage: secretfs mount [--config F] [--store S] [--key-file K] [-f|--foreground]\n"
    "                      [-o OPT[,OPT...]] [--only NAME[,NAME...]]\n"
    "                      [--mountpoint-fd N] [MOUNTPOINT]\n"
    "\n"
    "Mount the store read-only at MOUNTPOINT (default: [mount] mountpoint, then\n"
    SFS_DEFAULT_MOUNTPOINT ", created if missing).  Returns once the files are visible;\n"
    "the daemon keeps running until SIGTERM/SIGINT or an unmount.  SIGHUP reloads.\n"
    "\n"
    "  -f, --foreground   stay in the foreground and log to stderr\n"
    "  --state-dir DIR    where the highest store version served is kept (default\n"
    "                     /var/lib/secretfs for root; env SECRETFS_STATE_DIR)\n"
    "  --allow-rollback   serve a store older than that version (a restore from backup)\n"
    "  --only NAMES       serve only these names (comma separated)\n"
    "  -o OPTIONS         cache=kernel|none, uid=U, gid=G, mode=0400, allow_other,\n"
    "                     noallow_other, watch, debug (log FUSE traffic), config=F,\n"
    "                     audit=PATH|journal (record every open; implies cache=none),\n"
    "                     noaudit (not even the config's [mount] audit);\n"
    "                     rollback=allow (swapping between prepared stores on purpose);\n"
    "                     status=container (.status without the pid and host paths, for\n"
    "                     mounts that containers read); usual mount flags (rw, nosuid,\n"
    "                     nodev, ...) are accepted\n"
    "  --mountpoint-fd N  mount onto the directory open as descriptor N (a supervisor\n"
    "                     opened it without following symlinks), which MOUNTPOINT must\n"
    "                     still name\n"
    "\n"
    "As a mount(8) helper: mount -t fuse.secretfs CONFIG MOUNTPOINT\n";

static const char reload_help[] =
    "usage: secretfs reload [--timeout SECONDS] [MOUNTPOINT]\n"
    "\n"
    "Ask the daemon serving MOUNTPOINT to reload the store and the platform file, and wait\n"
    "(default at most 10 s) until it reports the result.  Exits 0 when the new secrets are\n"
    "served, 1 with the daemon's reason when the new store was rejected (the old secrets\n"
    "keep serving).\n";

enum { OPT_ONLY = OPT_FIRST_COMMAND_OPTION + 20, OPT_TIMEOUT, OPT_STATE_DIR,
       OPT_ALLOW_ROLLBACK, OPT_MOUNTPOINT_FD };

struct mount_args {
    bool foreground;
    bool debug;
    bool no_invalidate;
    bool watch;
    bool allow_rollback;
    bool rollback_allowed;  /* -o rollback=allow: never refuse an older store */
    bool status_for_container; /* -o status=container */
    int mountpoint_fd;      /* --mountpoint-fd N, or 0 */
    const char *state_dir;
    int allow_other;      /* -1: from config or default */
    const char *cache;
    const char *only;
    const char *uid, *gid, *mode;
    const char *audit;    /* audit=PATH|journal, or NULL: [mount] audit */
    bool no_audit;        /* -o noaudit: not even [mount] audit */
    char *audit_abs;      /* an absolute copy of a relative audit path */
    char *mountpoint;
};

/* Options mount(8) and fstab pass that mean nothing to a read-only FUSE mount. */
static bool ignorable_mount_option(const char *o)
{
    static const char *const names[] = {
        "rw", "ro", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "atime", "noatime",
        "relatime", "norelatime", "strictatime", "nostrictatime", "diratime", "nodiratime",
        "lazytime", "nolazytime", "auto", "noauto", "user", "nouser", "users", "_netdev",
        "nofail", "defaults", "async", "sync", "default_permissions", "silent", "loud",
    };
    size_t i;

    if (strncmp(o, "x-", 2) == 0 || strncmp(o, "comment=", 8) == 0)
        return true;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(o, names[i]) == 0)
            return true;
    return false;
}

static int parse_o(struct cli *cli, struct mount_args *a, char *list)
{
    char *save = NULL, *o;

    for (o = strtok_r(list, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
        if (strncmp(o, "cache=", 6) == 0)
            a->cache = o + 6;
        else if (strncmp(o, "uid=", 4) == 0)
            a->uid = o + 4;
        else if (strncmp(o, "gid=", 4) == 0)
            a->gid = o + 4;
        else if (strncmp(o, "mode=", 5) == 0)
            a->mode = o + 5;
        else if (strncmp(o, "audit=", 6) == 0) {
            a->audit = o + 6;
            a->no_audit = false;
        } else if (strcmp(o, "noaudit") == 0) {
            a->audit = NULL;
            a->no_audit = true;
        } else if (strncmp(o, "config=", 7) == 0)
            cli->flag_config = o + 7;
        else if (strcmp(o, "allow_other") == 0)
            a->allow_other = 1;
        else if (strcmp(o, "noallow_other") == 0)
            a->allow_other = 0;
        else if (strcmp(o, "debug") == 0)
            a->debug = true;
        else if (strcmp(o, "watch") == 0)
            a->watch = true;
        else if (strcmp(o, "debug_no_invalidate") == 0)
            a->no_invalidate = true;
        else if (strcmp(o, "rollback=allow") == 0)
            a->rollback_allowed = true;
        else if (strcmp(o, "status=container") == 0 || strcmp(o, "status=host") == 0)
            a->status_for_container = strcmp(o, "status=container") == 0;
        else if (!ignorable_mount_option(o)) {
            cli_error(cli, "unknown mount option '%s'", o);
            return -EINVAL;
        }
    }
    return 0;
}

/* Splits a comma/space separated list into a NULL-free array of pointers into `text`. */
static int split_names(char *text, const char ***out, size_t *n)
{
    char *save = NULL, *tok;
    const char **v = NULL;

    *n = 0;
    for (tok = strtok_r(text, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        const char **grown = realloc(v, (*n + 1) * sizeof *grown);
        if (!grown) {
            free(v);
            return -ENOMEM;
        }
        v = grown;
        v[(*n)++] = tok;
    }
    *out = v;
    return 0;
}

struct mount_plan {
    struct sfs_mount_opts o;
    char *abs[10];             /* absolute copies of relative paths (the daemon runs in /) */
    char *etcd_cache;         /* the etcd backend's local sealed cache */
    char *only_text, *env_text;
    const char **only, **env;
    struct sfs_secret_perm *perms;
};

static void plan_free(struct mount_plan *p)
{
    size_t i;

    for (i = 0; i < sizeof p->abs / sizeof p->abs[0]; i++)
        free(p->abs[i]);
    free(p->etcd_cache);
    free(p->only_text);
    free(p->env_text);
    free(p->only);
    free(p->env);
    free(p->perms);
}

/* The daemon changes to / before it reads anything: make `path` absolute. */
static const char *absolute(struct mount_plan *p, size_t slot, const char *path)
{
    char cwd[4096];
    size_t len;

    if (!path || path[0] == '/' || !getcwd(cwd, sizeof cwd))
        return path;
    len = strlen(cwd) + strlen(path) + 2;
    p->abs[slot] = malloc(len);
    if (!p->abs[slot])
        return path;
    snprintf(p->abs[slot], len, "%s/%s", cwd, path);
    return p->abs[slot];
}

/* An etcd store's [etcd] options and local cache file, as absolute paths. */
static void plan_etcd(struct cli *cli, struct mount_plan *p)
{
    struct sfs_store_options *so = &p->o.store_opts;

    if (sfs_store_is_path(cli->store_path))
        return;
    cli_etcd_options(cli, so);
    so->ca_file = absolute(p, 5, so->ca_file);
    so->cert_file = absolute(p, 6, so->cert_file);
    so->key_file = absolute(p, 7, so->key_file);
    so->password_file = absolute(p, 8, so->password_file);
    p->etcd_cache = cli_etcd_cache_path(cli, cli->store_path);
    so->cache_path = absolute(p, 9, p->etcd_cache);
}

/* cache=: the flag, else [mount] cache, else kernel. */
static int plan_cache(struct cli *cli, const struct mount_args *a, struct sfs_mount_opts *o)
{
    const char *cache = a->cache ? a->cache : cli->cfg.cache;

    o->cache = SFS_CACHE_KERNEL;
    if (cache && strcmp(cache, "none") == 0) {
        o->cache = SFS_CACHE_NONE;
    } else if (cache && strcmp(cache, "kernel") != 0) {
        cli_error(cli, "cache=%s: use cache=kernel or cache=none", cache);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The [secret:NAME] owner and mode overrides, as the daemon takes them. */
static int plan_perms(const struct sfs_config *c, struct mount_plan *p)
{
    size_t i;

    p->perms = calloc(c->n_secrets + 1, sizeof *p->perms);
    if (!p->perms)
        return EXIT_FAIL;
    for (i = 0; i < c->n_secrets; i++) {
        p->perms[i] = (struct sfs_secret_perm){
            .name = c->secrets[i].name, .has_uid = c->secrets[i].has_uid,
            .has_gid = c->secrets[i].has_gid, .has_mode = c->secrets[i].has_mode,
            .uid = c->secrets[i].uid, .gid = c->secrets[i].gid, .mode = c->secrets[i].mode};
    }
    p->o.perms = p->perms;
    p->o.n_perms = c->n_secrets;
    return EXIT_OK;
}

static int build_plan(struct cli *cli, struct mount_args *a, struct mount_plan *p)
{
    struct sfs_config *c = &cli->cfg;
    struct sfs_mount_opts *o = &p->o;
    const char *only = a->only ? a->only : c->only, *why;
    size_t i;

    memset(p, 0, sizeof *p);
    o->mountpoint = a->mountpoint ? a->mountpoint : c->mountpoint ? c->mountpoint
                                                                 : SFS_DEFAULT_MOUNTPOINT;
    o->create_mountpoint = !a->mountpoint && !c->mountpoint;
    o->mountpoint = absolute(p, 0, o->mountpoint);
    o->store = sfs_store_is_path(cli->store_path) ? absolute(p, 1, cli->store_path)
                                                  : cli->store_path;
    o->key_file = absolute(p, 2, cli->key_file);
    o->key_is_credential = cli->key_is_credential;
    o->passphrase_fn = cli_passphrase_source(cli, &o->passphrase_ctx);
    o->state_dir = absolute(p, 4, cli_state_dir(cli, a->state_dir, &o->state_dir_required));
    o->allow_rollback = a->allow_rollback || a->rollback_allowed;
    o->rollback_allowed = a->rollback_allowed;
    o->reserved_prefix = c->reserved_prefix ? c->reserved_prefix : SFS_DEFAULT_RESERVED_PREFIX;
    o->platform_file = absolute(p, 3, c->platform_file);
    o->uid = c->has_uid ? c->uid : getuid();
    o->gid = c->has_gid ? c->gid : getgid();
    o->mode = c->has_mode ? c->mode : 0400;
    if ((a->uid && sfs_parse_uid(a->uid, &o->uid) < 0) ||
        (a->gid && sfs_parse_gid(a->gid, &o->gid) < 0) ||
        (a->mode && sfs_parse_mode(a->mode, &o->mode) < 0)) {
        cli_error(cli, "bad uid=, gid= or mode= option (uid and gid: a name or number; mode: "
                  "octal such as 0440)");
        return EXIT_USAGE;
    }
    if (plan_cache(cli, a, o) != EXIT_OK)
        return EXIT_USAGE;
    o->allow_other = a->allow_other >= 0 ? a->allow_other
                     : c->allow_other >= 0 ? c->allow_other
                                           : geteuid() == 0;
    o->foreground = a->foreground;
    o->debug = a->debug;
    o->no_invalidate = a->no_invalidate;
    o->status_for_container = a->status_for_container;
    o->mountpoint_fd = a->mountpoint_fd;
    o->store_opts.watch = a->watch || c->watch;
    o->store_opts.lock_timeout_ms = cli->lock_timeout_ms;
    plan_etcd(cli, p);

    p->env_text = strdup(c->platform_env ? c->platform_env : SFS_DEFAULT_PLATFORM_ENV);
    if (!p->env_text || split_names(p->env_text, &p->env, &o->n_platform_env) < 0)
        return EXIT_FAIL;
    o->platform_env = p->env;
    for (i = 0; i < o->n_platform_env; i++) {
        if (!sfs_name_valid(p->env[i], &why) || !sfs_name_reserved(p->env[i],
                                                                    o->reserved_prefix)) {
            cli_error(cli, "[platform] env names %s, which is not a platform name (they start "
                      "with %s)", p->env[i], o->reserved_prefix);
            return EXIT_FAIL;
        }
    }
    if (only) {
        p->only_text = strdup(only);
        if (!p->only_text || split_names(p->only_text, &p->only, &o->n_only) < 0)
            return EXIT_FAIL;
        o->only = p->only;
        for (i = 0; i < o->n_only; i++) {
            if (!sfs_name_valid(p->only[i], &why)) {
                cli_error(cli, "--only: the name '%s' %s", p->only[i], why);
                return EXIT_USAGE;
            }
        }
    }
    return plan_perms(c, p);
}

/* audit=PATH|journal (flag, else [mount] audit unless noaudit): every open must reach the
 * daemon, so it sets cache=none, and says so when that overrides an explicit cache=kernel. */
static int apply_audit(struct cli *cli, struct mount_args *a, struct sfs_mount_opts *o)
{
    const char *audit = a->audit ? a->audit : a->no_audit ? NULL : cli->cfg.audit;
    const char *cache = a->cache ? a->cache : cli->cfg.cache;
    char cwd[4096];

    if (!audit)
        return EXIT_OK;
    if (!*audit) {
        cli_error(cli, "audit= is empty; give a file path or 'journal'");
        return EXIT_USAGE;
    }
    if (strcmp(audit, "journal") != 0 && audit[0] != '/') {
        if (!getcwd(cwd, sizeof cwd) || asprintf(&a->audit_abs, "%s/%s", cwd, audit) < 0) {
            cli_error(cli, "audit=%s: cannot make the path absolute; give an absolute one",
                      audit);
            return EXIT_FAIL;
        }
        audit = a->audit_abs;
    }
    if (cache && strcmp(cache, "kernel") == 0)
        cli_warn(cli, "audit=%s overrides cache=kernel: every open must reach the daemon to "
                 "be recorded, so this mount uses cache=none", audit);
    o->audit = audit;
    o->cache = SFS_CACHE_NONE;
    return EXIT_OK;
}

static int run_mount(struct cli *cli, struct mount_args *a)
{
    struct mount_plan plan;
    struct sfs_err err;
    bool is_daemon = false;
    int rc;

    if (cli_load_config(cli) != EXIT_OK)
        return EXIT_FAIL;
    rc = build_plan(cli, a, &plan);
    if (rc == EXIT_OK)
        rc = apply_audit(cli, a, &plan.o);
    if (rc == EXIT_OK) {
        int r = sfs_daemon_run(&plan.o, &is_daemon, &err);
        /* the daemon's stuck reload still reads plan: free nothing, and run no exit
         * handlers (a leak checker's would wait for the stuck thread) */
        if (r == -EINPROGRESS && (is_daemon || plan.o.foreground))
            _exit(EXIT_OK);
        rc = r < 0 ? EXIT_FAIL : EXIT_OK;
        if (rc != EXIT_OK && !is_daemon)
            cli_error(cli, "%s", err.msg);
    }
    plan_free(&plan);
    free(a->audit_abs);
    return rc;
}

int cmd_mount(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"foreground", no_argument, NULL, 'f'},
        {"only", required_argument, NULL, OPT_ONLY},
        {"state-dir", required_argument, NULL, OPT_STATE_DIR},
        {"allow-rollback", no_argument, NULL, OPT_ALLOW_ROLLBACK},
        {"mountpoint-fd", required_argument, NULL, OPT_MOUNTPOINT_FD},
        {NULL, 0, NULL, 0},
    };
    struct mount_args a = {.allow_other = -1};
    char *end;
    long fd;
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "hfo:", opts, NULL)) != -1) {
        if (opt == 'h')
            return cli_usage(cli, mount_help, true);
        if (cli_common_option(cli, opt, optarg))
            continue;
        if (opt == 'f')
            a.foreground = true;
        else if (opt == OPT_ONLY)
            a.only = optarg;
        else if (opt == OPT_STATE_DIR)
            a.state_dir = optarg;
        else if (opt == OPT_ALLOW_ROLLBACK)
            a.allow_rollback = true;
        else if (opt == OPT_MOUNTPOINT_FD) {
            errno = 0;
            fd = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || fd < 3 || fd > INT_MAX) {
                cli_error(cli, "--mountpoint-fd %s: give an open descriptor number, 3 or more",
                          optarg);
                return EXIT_USAGE;
            }
            a.mountpoint_fd = (int)fd;
        } else if (opt == 'o') {
            if (parse_o(cli, &a, optarg) < 0)
                return cli_usage(cli, mount_help, false);
        } else
            return cli_usage(cli, mount_help, false);
    }
    if (argc - optind > 1)
        return cli_usage(cli, mount_help, false);
    a.mountpoint = optind < argc ? argv[optind] : NULL;
    return run_mount(cli, &a);
}

int cmd_mount_helper(struct cli *cli, int argc, char **argv)
{
    struct mount_args a = {.allow_other = -1};
    int i;

    /* mount.fuse3 runs: secretfs SOURCE MOUNTPOINT [-o OPTIONS] */
    cli->command = "mount";
    cli->flag_config = argv[1];
    a.mountpoint = argv[2];
    for (i = 3; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            if (parse_o(cli, &a, argv[++i]) < 0)
                return EXIT_USAGE;
        } else if (strncmp(argv[i], "-o", 2) == 0 && argv[i][2]) {
            if (parse_o(cli, &a, argv[i] + 2) < 0)
                return EXIT_USAGE;
        } else if (strcmp(argv[i], "-f") == 0) {
            a.foreground = true;
        } else {
            cli_error(cli, "unexpected argument '%s' (mount helper form: secretfs CONFIG "
                      "MOUNTPOINT -o OPTIONS)", argv[i]);
            return EXIT_USAGE;
        }
    }
    return run_mount(cli, &a);
}

/* ---- reload ---- */

/* How `reload` knows a reload began after it was called, whatever the kernel caches.  The
 * generation file (outside the mount, so no page cache) has a seq that turns odd when a
 * reload starts, before the store is read, and even when it ends: seeing S now, a reload
 * ending at S + 2 (S even) or S + 3 (S odd: one was already under way and may have read the
 * old store) began after this moment.  Without a generation file, the .status counts are the
 * fallback: the daemon invalidates .status when a reload begins, before it reads the store,
 * so a count read from a cached page was read before any reload it does not count. */
struct reload_mark {
    bool by_seq;
    uint64_t seq_target;     /* by_seq: wait for seq >= this */
    uint64_t started;        /* else: wait for reloads > this */
    char notify[256];        /* the generation file */
};

static void reload_mark_take(const struct sfs_status *st, struct reload_mark *m)
{
    struct sfs_genfile g;

    memset(m, 0, sizeof *m);
    m->started = st->started;
    if (st->notify[0] && sfs_genfile_read(st->notify, &g) == 0 && g.pid == st->pid) {
        m->by_seq = true;
        snprintf(m->notify, sizeof m->notify, "%s", st->notify);
        m->seq_target = g.seq + (g.seq % 2 ? 3 : 2);
    }
}

/* Whether the reload the mark waits for has ended; then *st is .status (its outcome). */
static bool reload_mark_done(const char *mountpoint, const struct reload_mark *m, long pid,
                             struct sfs_status *st)
{
    struct sfs_genfile g;

    if (m->by_seq) {
        if (sfs_genfile_read(m->notify, &g) < 0 || g.pid != pid || g.seq < m->seq_target)
            return false;
        /* .status was updated and invalidated before seq reached the target (a container
         * view names no pid: the generation file just did) */
        return sfs_status_read(mountpoint, st) == 0 && (st->pid == pid || st->container_view);
    }
    return sfs_status_read(mountpoint, st) == 0 && st->pid == pid && st->reloads > m->started;
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Prints the outcome in `after`; returns the exit code. */
static int reload_outcome(struct cli *cli, const char *mountpoint, const struct sfs_status *after)
{
    const char *why = after->last_reload;

    if (strcmp(why, "ok") == 0) {
        printf("%s: reloaded, generation %llu\n", mountpoint,
               (unsigned long long)after->generation);
        return EXIT_OK;
    }
    if (strncmp(why, "error: ", 7) == 0)
        why += 7;
    cli_error(cli, "reload failed; the daemon keeps serving generation %llu: %s",
              (unsigned long long)after->generation, why);
    return EXIT_FAIL;
}

/* The caller has already written the store.  Checks that `mountpoint` is a live secretfs
 * mount served by the pid its .status names (fs/status.h), marks the present moment (see
 * struct reload_mark), sends SIGHUP (SIGHUPs that arrive during a reload coalesce into one
 * more reload, which begins after the signal) and waits for a reload that began after the
 * mark to end. */
int cli_reload_mount(struct cli *cli, const char *mountpoint, double timeout)
{
    struct sfs_status before, after;
    struct timespec start, nap = {0, 10 * 1000 * 1000};
    struct reload_mark mark;
    struct sfs_err err;

    if (sfs_status_read_verified(mountpoint, &before, &err) < 0) {
        cli_error(cli, "%s", err.msg);
        return EXIT_FAIL;
    }
    reload_mark_take(&before, &mark);
    if (kill((pid_t)before.pid, SIGHUP) < 0) {
        cli_error(cli, "cannot signal the daemon (pid %ld): %s", before.pid, strerror(errno));
        return EXIT_FAIL;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!reload_mark_done(mountpoint, &mark, before.pid, &after)) {
        if (kill((pid_t)before.pid, 0) < 0 && errno == ESRCH) {
            cli_error(cli, "the daemon (pid %ld) exited before it reloaded %s", before.pid,
                      mountpoint);
            return EXIT_FAIL;
        }
        if (seconds_since(&start) > timeout) {
            cli_error(cli, "no answer from the daemon (pid %ld) within %.1f s", before.pid,
                      timeout);
            return EXIT_FAIL;
        }
        nanosleep(&nap, NULL);
    }
    return reload_outcome(cli, mountpoint, &after);
}

const char *cli_default_mountpoint(struct cli *cli)
{
    return cli->cfg.mountpoint ? cli->cfg.mountpoint : SFS_DEFAULT_MOUNTPOINT;
}

int cmd_reload(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    double timeout = 10.0;
    char *end;
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cli_usage(cli, reload_help, true);
        if (opt == OPT_CONFIG) {
            cli->flag_config = optarg;
        } else if (opt == OPT_TIMEOUT) {
            timeout = strtod(optarg, &end);
            if (*end || timeout <= 0)
                return cli_usage(cli, reload_help, false);
        } else {
            return cli_usage(cli, reload_help, false);
        }
    }
    if (argc - optind > 1)
        return cli_usage(cli, reload_help, false);
    if (cli_load_config(cli) != EXIT_OK)
        return EXIT_FAIL;
    return cli_reload_mount(cli, optind < argc ? argv[optind] : cli_default_mountpoint(cli),
                            timeout);
}
