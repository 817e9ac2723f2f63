/* cli/cmd_run.c — `secretfs run`: start a program with the mount's secrets in its
 * environment, and restart or signal it when the mount serves a new generation.
 *
 * Who holds plaintext: only the child, between reading the mount and execve.  The parent
 * (the supervisor) never reads a value: it forks, the child reads one consistent snapshot of
 * the mount into a secure arena (locked, not dumpable, not inherited by fork), builds envp
 * there, reports the generation it read through a pipe and waits for the go-ahead, then
 * execs.  execve replaces the whole address space, so no copy outlives it except the
 * program's own environment.  Values travel only through envp: never argv, never a message.
 *
 * Change detection: the daemon rewrites a generation file (fs/notify.h; .status names it in
 * `notify=`) after every reload; the parent watches its directory with inotify and, on an
 * event, re-reads .status.  Without that file it reads .status once a second.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "crypto/secmem.h"
#include "fs/status.h"
#include "secrets/names.h"

extern char **environ;

static const char run_help[] =
    "usage: secretfs run [--mount DIR] [--only NAME[,NAME...]] [--restart-on-change]\n"
    "                    [--signal SIG] [--grace SECONDS] [--config F] -- COMMAND [ARGS...]\n"
    "\n"
    "Run COMMAND with the mount's secrets and platform entries added to its environment,\n"
    "all read from one generation.  A secret overrides an inherited variable of the same\n"
    "name; platform entries (LIVEKIT_*) cannot be shadowed by secrets.  Names that are not\n"
    "environment variable names, unreadable files and values holding a NUL byte are skipped\n"
    "with a warning naming them.  Values reach COMMAND only through its environment.\n"
    "\n"
    "  --mount DIR          the mount to read (default: [mount] mountpoint, then\n"
    "                       " SFS_DEFAULT_MOUNTPOINT ")\n"
    "  --only NAMES         add only these names (comma separated)\n"
    "  --restart-on-change  when the mount serves a new generation: send SIGTERM (or\n"
    "                       --signal) to COMMAND's process group, wait --grace seconds,\n"
    "                       SIGKILL it if still running, start it again with the new values\n"
    "  --signal SIG         the signal for --restart-on-change; alone: only send SIG to the\n"
    "                       running COMMAND on a change (HUP, USR1, TERM, ... or a number)\n"
    "  --grace SECONDS      how long a restarted COMMAND may take to exit (default 10)\n"
    "\n"
    "COMMAND runs in its own process group; SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and\n"
    "SIGUSR2 sent to secretfs run are forwarded to that group.\n"
    "\n"
    "Exit status: COMMAND's exit status, or 128+N if it was killed by signal N; 1 if the\n"
    "mount cannot be read before COMMAND starts; 2 usage error; 126 if COMMAND cannot be\n"
    "executed, 127 if it is not found.\n";

enum { OPT_MOUNT = OPT_FIRST_COMMAND_OPTION + 40, OPT_RUN_ONLY, OPT_RESTART, OPT_SIGNAL,
       OPT_GRACE };

#define ENV_VAR_MAX (32 * 4096) /* MAX_ARG_STRLEN: the kernel's limit for one "NAME=value" */
#define SNAPSHOT_TRIES 500
#define UNSTABLE_NAP_NS (20 * 1000 * 1000)
#define POLL_INTERVAL_MS 1000
#define DRAIN_POLL_MS 50

struct run_opts {
    const char *mount;
    char *only_text;
    const char **only;
    size_t n_only;
    bool restart;
    int signal;          /* --signal, 0 if not given */
    double grace;
    char **argv;         /* COMMAND ARGS..., NULL-terminated */
};

/* What identifies one generation of one daemon, as .status and the generation file say. */
struct gen_key {
    long pid;                       /* the daemon's */
    unsigned long long generation;
    char notify[PATH_MAX];          /* generation file named by .status, "" if none */
    bool has_seq;                   /* the generation file was read and is that daemon's */
    unsigned long long seq, file_generation;
};

/* ---- reading .status and the generation file (fs/status.h; no values in either) ---- */

/* Reads `mount`/.status and the generation file it names.  Returns 0 or -errno (-EBADMSG:
 * not a secretfs .status). */
static int read_key(const char *mount, struct gen_key *key)
{
    struct sfs_status st;
    struct sfs_genfile g;
    int rc;

    memset(key, 0, sizeof *key);
    rc = sfs_status_read(mount, &st);
    if (rc < 0)
        return rc;
    key->pid = st.pid;
    key->generation = st.generation;
    snprintf(key->notify, sizeof key->notify, "%s", st.notify);
    if (key->notify[0] && sfs_genfile_read(key->notify, &g) == 0 && g.pid == key->pid) {
        key->has_seq = true;
        key->seq = g.seq;
        key->file_generation = g.generation;
    }
    return 0;
}

/* No reload is running, and .status already shows its outcome. */
static bool key_stable(const struct gen_key *k)
{
    return !k->has_seq || (k->seq % 2 == 0 && k->file_generation == k->generation);
}

static bool key_same_generation(const struct gen_key *a, long pid, unsigned long long gen)
{
    return a->pid == pid && a->generation == gen;
}

/* ---- the child: read one snapshot, build envp, exec ---- */

struct var {
    char *kv;        /* "NAME=value", NUL-terminated, in the arena */
    size_t name_len;
};

struct env_build {
    sfs_arena *arena;
    struct var *vars;
    size_t n, cap;
    char **skipped;  /* "NAME: why" lines, printed once the snapshot is final */
    size_t n_skipped;
};

static void env_build_reset(struct env_build *b)
{
    size_t i;

    sfs_arena_free(b->arena); /* wipes every value */
    b->arena = NULL;
    free(b->vars);
    b->vars = NULL;
    b->n = b->cap = 0;
    for (i = 0; i < b->n_skipped; i++)
        free(b->skipped[i]);
    free(b->skipped);
    b->skipped = NULL;
    b->n_skipped = 0;
}

static int note_skip(struct env_build *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int note_skip(struct env_build *b, const char *fmt, ...)
{
    char **grown = realloc(b->skipped, (b->n_skipped + 1) * sizeof *grown);
    va_list ap;
    int n;

    if (!grown)
        return -ENOMEM;
    b->skipped = grown;
    va_start(ap, fmt);
    n = vasprintf(&b->skipped[b->n_skipped], fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    b->n_skipped++;
    return 0;
}

/* Reads one file of the mount into the arena as "NAME=value".  Returns 0 (added or skipped
 * with a note), -EAGAIN if it changed while read, or -errno for a broken mount. */
static int add_file(struct env_build *b, const char *mount, const char *name, bool named)
{
    size_t name_len = strlen(name), got = 0;
    char path[PATH_MAX];
    struct stat st;
    char *kv = NULL;
    int fd, rc = 0;

    if (!sfs_name_is_shell_ident(name))
        return note_skip(b, "'%s' is not a valid environment variable name; skipped", name);
    if ((size_t)snprintf(path, sizeof path, "%s/%s", mount, name) >= sizeof path)
        return note_skip(b, "%s: the path is too long; skipped", name);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT && named)
            return note_skip(b, "--only %s: not in %s; not set", name, mount);
        if (errno == ENOENT)
            return -EAGAIN; /* listed a moment ago: a reload is removing it */
        if (errno == EACCES || errno == EPERM)
            return note_skip(b, "%s: %s; skipped", path, strerror(errno));
        return -errno;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = note_skip(b, "%s: not a regular file; skipped", path);
        goto out;
    }
    if (name_len + 2 + (size_t)st.st_size > ENV_VAR_MAX) {
        rc = note_skip(b, "%s: its value is %lld bytes, over the kernel's 128 KiB limit for "
                       "one environment variable; skipped", name, (long long)st.st_size);
        goto out;
    }
    kv = sfs_arena_alloc(b->arena, name_len + 1 + (size_t)st.st_size + 2);
    if (!kv) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(kv, name, name_len);
    kv[name_len] = '=';
    for (;;) { /* one byte more than st_size tells a file that grew */
        ssize_t n = read(fd, kv + name_len + 1 + got, (size_t)st.st_size + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0 || (got += (size_t)n) > (size_t)st.st_size)
            break;
    }
    if (got != (size_t)st.st_size) {
        rc = -EAGAIN;
        goto out;
    }
    kv[name_len + 1 + got] = '\0';
    if (memchr(kv + name_len + 1, '\0', got)) {
        rc = note_skip(b, "%s: its value contains a NUL byte, which an environment variable "
                       "cannot hold; skipped", name);
        goto out;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        struct var *grown = realloc(b->vars, cap * sizeof *grown);
        if (!grown) {
            rc = -ENOMEM;
            goto out;
        }
        b->vars = grown;
        b->cap = cap;
    }
    b->vars[b->n++] = (struct var){kv, name_len};
out:
    close(fd);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the mount's secret and platform names (not the dot views), sorted. */
static int list_names(const char *mount, char ***out, size_t *n_out)
{
    DIR *dir = opendir(mount);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0;
    int rc = 0;

    if (!dir)
        return -errno;
    errno = 0;
    while ((de = readdir(dir)) != NULL) {
        char **grown;
        if (de->d_name[0] == '.')
            continue;
        grown = realloc(names, (n + 1) * sizeof *grown);
        if (!grown || !(grown[n] = strdup(de->d_name))) {
            names = grown ? grown : names;
            rc = -ENOMEM;
            break;
        }
        names = grown;
        n++;
    }
    if (!de && errno)
        rc = -errno;
    closedir(dir);
    if (rc == 0)
        qsort(names, n, sizeof *names, cmp_str);
    *out = names;
    *n_out = n;
    return rc;
}

/* One attempt at reading every name into a fresh arena. */
static int read_entries(const struct run_opts *o, struct env_build *b)
{
    char **names = NULL;
    size_t n = 0, i;
    int rc;

    b->arena = sfs_arena_new(0);
    if (!b->arena)
        return -ENOMEM;
    if (o->only) {
        for (i = 0; i < o->n_only; i++)
            if ((rc = add_file(b, o->mount, o->only[i], true)) < 0)
                return rc;
        return 0;
    }
    rc = list_names(o->mount, &names, &n);
    for (i = 0; rc == 0 && i < n; i++)
        rc = add_file(b, o->mount, names[i], false);
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Reads one generation of the mount: the generation file (or .status) says the same, with
 * no reload running, before and after every file was read.  On 0, *key is that generation. */
static int read_snapshot(struct cli *cli, const struct run_opts *o, struct env_build *b,
                         struct gen_key *key)
{
    struct timespec nap = {0, UNSTABLE_NAP_NS};
    struct gen_key after;
    int tries, rc = -EAGAIN;

    for (tries = 0; tries < SNAPSHOT_TRIES && rc == -EAGAIN; tries++) {
        env_build_reset(b);
        rc = read_key(o->mount, key);
        if (rc == 0 && !key_stable(key)) {
            rc = -EAGAIN;
            nanosleep(&nap, NULL);
            continue;
        }
        if (rc == 0)
            rc = read_entries(o, b);
        if (rc == 0)
            rc = read_key(o->mount, &after);
        if (rc == 0 && (!key_same_generation(&after, key->pid, key->generation) ||
                        after.has_seq != key->has_seq || after.seq != key->seq))
            rc = -EAGAIN;
    }
    if (rc == -EAGAIN)
        cli_error(cli, "%s kept changing while its secrets were read; try again", o->mount);
    else if (rc == -EBADMSG)
        cli_error(cli, "%s/.status has no pid: is a secretfs daemon serving %s? (choose the "
                  "mount with --mount)", o->mount, o->mount);
    else if (rc < 0)
        cli_error(cli, "%s: %s; is a secretfs daemon serving it? (choose the mount with "
                  "--mount)", o->mount, strerror(-rc));
    if (rc < 0)
        env_build_reset(b);
    return rc;
}

static bool env_name_is(const char *entry, const struct var *v)
{
    return strncmp(entry, v->kv, v->name_len + 1) == 0; /* NAME= with the '=' */
}

/* envp: the inherited environment minus the names the mount sets, then the mount's. */
static char **build_envp(const struct env_build *b)
{
    size_t n_env = 0, k = 0, i, j;
    char **envp;

    while (environ[n_env])
        n_env++;
    envp = calloc(n_env + b->n + 1, sizeof *envp);
    if (!envp)
        return NULL;
    for (i = 0; i < n_env; i++) {
        for (j = 0; j < b->n && !env_name_is(environ[i], &b->vars[j]); j++)
            ;
        if (j == b->n)
            envp[k++] = environ[i];
    }
    for (j = 0; j < b->n; j++)
        envp[k++] = b->vars[j].kv;
    return envp;
}

static bool write_all(int fd, const char *s)
{
    size_t len = strlen(s), off = 0;

    while (off < len) {
        ssize_t n = write(fd, s + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        off += (size_t)n;
    }
    return true;
}

struct runner;
static void child_main(struct runner *r, int status_fd, int go_fd) __attribute__((noreturn));

/* ---- the parent: supervise ---- */

enum phase { P_NONE, P_PREPARING, P_READY, P_LAUNCHING, P_RUNNING };

struct proc {
    pid_t pid;             /* also its process group id */
    enum phase phase;
    int status_fd;         /* the child's reports: "ready PID GEN", "exec ERRNO"; -1 at EOF */
    int go_fd;             /* one byte releases the child to exec; -1 once used */
    char line[128];
    size_t line_len;
    long daemon_pid;       /* the generation it read */
    unsigned long long generation;
    int exec_errno;
    bool dead;             /* reaped: its last reports are read, not acted on */
};

struct runner {
    struct cli *cli;
    const struct run_opts *o;
    sigset_t orig_mask;
    int sfd;               /* signalfd */
    int ifd;               /* inotify on the generation file's directory, or -1 */
    char watch_name[NAME_MAX + 1];
    bool watching;         /* restart or signal on change */
    bool poll_status;      /* no generation file: read .status every second */
    bool tty;              /* hand the terminal to COMMAND */
    struct proc cur;       /* the running COMMAND */
    struct proc next;      /* a child being prepared or launched */
    bool stopping;         /* the old program's group was signalled for a restart */
    pid_t old_pgid;        /* that group: it has until kill_at to be gone */
    int old_status;        /* its leader's wait status, once reaped */
    bool kill_sent;
    struct timespec kill_at;
    bool recheck;          /* something may have changed: compare generations */
    bool failed_valid;     /* the generation a restart could not read (not retried) */
    long failed_pid;
    unsigned long long failed_gen;
    bool status_warned;
    bool done;
    int exit_code;
};

static void info(const struct runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void info(const struct runner *r, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s %s: ", r->cli->prog, r->cli->command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void proc_close(struct proc *p)
{
    if (p->status_fd >= 0)
        close(p->status_fd);
    if (p->go_fd >= 0)
        close(p->go_fd);
    *p = (struct proc){.status_fd = -1, .go_fd = -1};
}

static int exit_code_of(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return EXIT_FAIL;
}

static void finish(struct runner *r, int code)
{
    if (!r->done) {
        r->done = true;
        r->exit_code = code;
    }
}

static int spawn(struct runner *r)
{
    int st[2], go[2];
    pid_t pid;

    if (pipe2(st, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(go, O_CLOEXEC) < 0) {
        close(st[0]);
        close(st[1]);
        return -errno;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        int e = errno;
        close(st[0]);
        close(st[1]);
        close(go[0]);
        close(go[1]);
        return -e;
    }
    if (pid == 0) {
        close(st[0]);
        close(go[1]);
        child_main(r, st[1], go[0]);
    }
    close(st[1]);
    close(go[0]);
    (void)fcntl(st[0], F_SETFL, O_NONBLOCK);
    (void)setpgid(pid, pid); /* the child does it too: whoever runs first */
    r->next = (struct proc){.pid = pid, .phase = P_PREPARING, .status_fd = st[0],
                            .go_fd = go[1]};
    return 0;
}

static void signal_group(pid_t pgid, int sig)
{
    if (pgid > 0)
        (void)kill(-pgid, sig);
}

static void release(struct proc *p)
{
    if (!write_all(p->go_fd, "g"))
        signal_group(p->pid, SIGKILL); /* it will report nothing: reaped as a failure */
    close(p->go_fd);
    p->go_fd = -1;
    p->phase = P_LAUNCHING;
}

static void now_plus(struct timespec *t, double seconds)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += (time_t)seconds;
    t->tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static int ms_until(const struct timespec *t)
{
    struct timespec now;
    long long ms;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (long long)(t->tv_sec - now.tv_sec) * 1000 + (t->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : ms > 1000000 ? 1000000 : (int)ms + 1;
}

/* The new child has read its generation: start it now, or first stop the running one. */
static void on_ready(struct runner *r)
{
    int sig = r->o->signal ? r->o->signal : SIGTERM;

    if (!r->cur.pid) {
        release(&r->next);
        return;
    }
    info(r, "%s now serves generation %llu; restarting the program (SIG%s, then SIGKILL "
         "after %g s)", r->o->mount, r->next.generation, sigabbrev_np(sig), r->o->grace);
    signal_group(r->cur.pid, sig);
    r->stopping = true;
    r->old_pgid = r->cur.pid;
    r->kill_sent = false;
    now_plus(&r->kill_at, r->o->grace);
}

/* Reads what the child reported; EOF after the go-ahead without "exec" means it runs. */
static void read_reports(struct runner *r)
{
    struct proc *p = &r->next;

    while (p->status_fd >= 0) {
        ssize_t n = read(p->status_fd, p->line + p->line_len, sizeof p->line - 1 - p->line_len);
        char *nl;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close(p->status_fd);
            p->status_fd = -1;
            if (p->phase == P_LAUNCHING && !p->exec_errno) {
                if (r->tty)
                    (void)tcsetpgrp(STDIN_FILENO, p->pid); /* the child did it too */
                r->cur = *p;
                r->cur.phase = P_RUNNING;
                r->next = (struct proc){.status_fd = -1, .go_fd = -1};
                r->recheck = true;
            }
            return;
        }
        p->line_len += (size_t)n;
        p->line[p->line_len] = '\0';
        while ((nl = strchr(p->line, '\n')) != NULL) {
            *nl = '\0';
            if (sscanf(p->line, "ready %ld %llu", &p->daemon_pid, &p->generation) == 2) {
                if (p->phase == P_PREPARING && !p->dead) {
                    p->phase = P_READY;
                    on_ready(r);
                }
            } else {
                (void)sscanf(p->line, "exec %d", &p->exec_errno); /* acted on when reaped */
            }
            p->line_len -= (size_t)(nl + 1 - p->line);
            memmove(p->line, nl + 1, p->line_len + 1);
        }
        if (p->line_len == sizeof p->line - 1)
            p->line_len = 0; /* never a line this long: drop it */
    }
}

static void reclaim_tty(struct runner *r)
{
    if (r->tty)
        (void)tcsetpgrp(STDIN_FILENO, getpgrp());
}

static void on_cur_exit(struct runner *r, int wstatus)
{
    proc_close(&r->cur);
    reclaim_tty(r);
    if (r->stopping)
        r->old_status = wstatus; /* the restart goes on once its whole group is gone */
    else
        finish(r, exit_code_of(wstatus));
}

/* During a restart: SIGKILL the old group when the grace period ends; once the leader is
 * reaped and no process of the group is left, start the new program. */
static void advance_restart(struct runner *r)
{
    if (!r->stopping)
        return;
    if (!r->kill_sent && ms_until(&r->kill_at) == 0) {
        info(r, "the program did not exit within %g s; sending SIGKILL", r->o->grace);
        signal_group(r->old_pgid, SIGKILL);
        r->kill_sent = true;
        now_plus(&r->kill_at, 2.0); /* for the dying to be reaped by whoever is their parent */
    }
    if (r->cur.pid)
        return;
    if (kill(-r->old_pgid, 0) == 0 && !(r->kill_sent && ms_until(&r->kill_at) == 0))
        return;
    r->stopping = false;
    if (r->next.pid && r->next.phase == P_READY)
        release(&r->next);
    else if (!r->next.pid)
        finish(r, exit_code_of(r->old_status)); /* the restart was cancelled by a signal */
}

static void on_next_exit(struct runner *r, int wstatus)
{
    struct proc *p = &r->next;

    p->dead = true;
    if (p->status_fd >= 0)
        read_reports(r); /* the writer is gone: this reaches EOF */
    if (r->cur.pid == p->pid || !p->pid) { /* it ran (promoted above) and already exited */
        on_cur_exit(r, wstatus);
        return;
    }
    if (p->exec_errno) {
        cli_error(r->cli, "cannot run %s: %s", r->o->argv[0], strerror(p->exec_errno));
        finish(r, p->exec_errno == ENOENT ? 127 : 126);
        proc_close(p);
        return;
    }
    if (p->phase == P_LAUNCHING) { /* released, then died before exec */
        proc_close(p);
        finish(r, exit_code_of(wstatus));
        return;
    }
    /* it could not read the mount (it said why) */
    if (!r->cur.pid) {
        proc_close(p);
        finish(r, EXIT_FAIL);
        return;
    }
    r->failed_valid = true;
    cli_warn(r->cli, "the program keeps running with generation %llu", r->cur.generation);
    proc_close(p);
}

static void reap(struct runner *r)
{
    int wstatus;
    pid_t pid;

    while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
        if (WIFSTOPPED(wstatus) || WIFCONTINUED(wstatus))
            continue;
        if (pid == r->cur.pid)
            on_cur_exit(r, wstatus);
        else if (pid == r->next.pid)
            on_next_exit(r, wstatus);
    }
}

static void cancel_next(struct runner *r)
{
    if (!r->next.pid)
        return;
    signal_group(r->next.pid, SIGKILL);
    while (waitpid(r->next.pid, NULL, 0) < 0 && errno == EINTR)
        ;
    proc_close(&r->next);
}

static bool terminating(int sig)
{
    return sig == SIGTERM || sig == SIGINT || sig == SIGQUIT || sig == SIGHUP;
}

static void on_signal(struct runner *r, int sig)
{
    if (sig == SIGCHLD) {
        reap(r);
        return;
    }
    if (r->cur.pid || r->stopping) {
        signal_group(r->stopping ? r->old_pgid : r->cur.pid, sig);
        if (r->stopping && sig != SIGHUP && terminating(sig))
            cancel_next(r); /* exit with the old program's status instead of restarting */
        return;
    }
    if (r->next.pid && r->next.phase == P_LAUNCHING) {
        signal_group(r->next.pid, sig); /* delivered right before or after its exec */
        return;
    }
    if (terminating(sig)) {
        cancel_next(r);
        finish(r, 128 + sig);
    }
}

/* True if an inotify batch names the generation file (or the watch broke). */
static bool drain_watch(struct runner *r)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool hit = false;
    ssize_t n;

    while ((n = read(r->ifd, buf, sizeof buf)) > 0) {
        char *p = buf;
        while (p < buf + n) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if ((ev->len && strcmp(ev->name, r->watch_name) == 0) ||
                (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED)))
                hit = true;
            if (ev->mask & IN_IGNORED) { /* the directory is gone: poll from now on */
                close(r->ifd);
                r->ifd = -1;
                r->poll_status = true;
                return true;
            }
            p += sizeof *ev + ev->len;
        }
    }
    return hit;
}

/* Watches the generation file's directory, or falls back to polling .status. */
static void setup_watch(struct runner *r, const struct gen_key *k)
{
    char dir[PATH_MAX], *slash;

    if (r->ifd >= 0)
        close(r->ifd);
    r->ifd = -1;
    r->poll_status = true;
    if (!r->watching || !k->notify[0] || !k->has_seq)
        return;
    snprintf(dir, sizeof dir, "%s", k->notify);
    slash = strrchr(dir, '/');
    if (!slash || strlen(slash + 1) >= sizeof r->watch_name)
        return;
    snprintf(r->watch_name, sizeof r->watch_name, "%s", slash + 1);
    *slash = slash == dir ? '/' : '\0';
    if (slash == dir)
        dir[1] = '\0';
    r->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (r->ifd < 0)
        return;
    if (inotify_add_watch(r->ifd, dir, IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE) <
        0) {
        close(r->ifd);
        r->ifd = -1;
        return;
    }
    r->poll_status = false;
}

/* Compares the mount's generation with the running program's; restarts or signals it. */
static void check_generation(struct runner *r)
{
    struct gen_key k;
    int rc;

    r->recheck = false;
    if (!r->watching || !r->cur.pid || r->next.pid || r->stopping)
        return;
    rc = read_key(r->o->mount, &k);
    if (rc < 0) {
        if (!r->status_warned)
            cli_warn(r->cli, "%s/.status: %s; the program keeps running with generation %llu",
                     r->o->mount, strerror(rc == -EBADMSG ? EBADMSG : -rc),
                     r->cur.generation);
        r->status_warned = true;
        return;
    }
    r->status_warned = false;
    if (r->poll_status && k.has_seq)
        setup_watch(r, &k); /* a (re)mounted daemon with a generation file: stop polling */
    if (!key_stable(&k) || key_same_generation(&k, r->cur.daemon_pid, r->cur.generation))
        return;
    if (r->failed_valid && key_same_generation(&k, r->failed_pid, r->failed_gen))
        return;
    if (!r->o->restart) {
        info(r, "%s now serves generation %llu; sending SIG%s to the program",
             r->o->mount, k.generation, sigabbrev_np(r->o->signal));
        signal_group(r->cur.pid, r->o->signal);
        r->cur.daemon_pid = k.pid;
        r->cur.generation = k.generation;
        return;
    }
    r->failed_pid = k.pid;
    r->failed_gen = k.generation;
    r->failed_valid = false;
    rc = spawn(r);
    if (rc < 0)
        cli_warn(r->cli, "cannot start the new program: %s; the old one keeps running",
                 strerror(-rc));
}

static int supervise(struct runner *r)
{
    while (!r->done) {
        struct pollfd p[3] = {{r->sfd, POLLIN, 0}, {r->ifd, POLLIN, 0},
                              {r->next.status_fd, POLLIN, 0}};
        int timeout = r->watching && r->poll_status ? POLL_INTERVAL_MS : -1, n;

        if (r->stopping) {
            int ms = r->cur.pid && !r->kill_sent ? ms_until(&r->kill_at) : DRAIN_POLL_MS;
            timeout = timeout < 0 || ms < timeout ? ms : timeout;
        }
        n = poll(p, 3, timeout);
        if (n < 0 && errno != EINTR) {
            cli_error(r->cli, "poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && (p[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(r->sfd, &si, sizeof si) == sizeof si)
                on_signal(r, (int)si.ssi_signo);
        }
        if (n > 0 && p[1].revents && r->ifd >= 0 && drain_watch(r))
            r->recheck = true;
        if (n > 0 && p[2].revents && r->next.status_fd >= 0)
            read_reports(r);
        advance_restart(r);
        if (n == 0 && r->poll_status)
            r->recheck = true;
        if (r->recheck && !r->done)
            check_generation(r);
    }
    cancel_next(r);
    return r->done ? r->exit_code : EXIT_FAIL;
}

/* ---- the child's side ---- */

static void child_main(struct runner *r, int status_fd, int go_fd)
{
    struct env_build b = {0};
    struct gen_key key;
    char **envp = NULL, line[96], go;
    ssize_t n;
    int e;

    (void)setpgid(0, 0);
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* no /proc/PID/environ or mem while it waits */
    if (r->sfd >= 0)
        close(r->sfd);
    if (r->ifd >= 0)
        close(r->ifd);
    if (read_snapshot(r->cli, r->o, &b, &key) < 0)
        _exit(EXIT_FAIL);
    envp = build_envp(&b);
    if (!envp) {
        cli_error(r->cli, "out of memory");
        env_build_reset(&b);
        _exit(EXIT_FAIL);
    }
    snprintf(line, sizeof line, "ready %ld %llu\n", key.pid, key.generation);
    do
        n = write_all(status_fd, line) ? read(go_fd, &go, 1) : -1;
    while (n < 0 && errno == EINTR);
    if (n != 1) { /* the supervisor is gone or gave up */
        env_build_reset(&b);
        _exit(EXIT_FAIL);
    }
    for (size_t i = 0; i < b.n_skipped; i++)
        cli_warn(r->cli, "%s", b.skipped[i]);
    fflush(stderr);
    if (r->tty)
        (void)tcsetpgrp(STDIN_FILENO, getpid()); /* SIGTTOU is still blocked here */
    sigprocmask(SIG_SETMASK, &r->orig_mask, NULL);
    execvpe(r->o->argv[0], r->o->argv, envp);
    e = errno;
    env_build_reset(&b);
    snprintf(line, sizeof line, "exec %d\n", e);
    (void)write_all(status_fd, line);
    _exit(e == ENOENT ? 127 : 126);
}

/* ---- options ---- */

static int parse_signal(const char *s)
{
    static const struct { const char *name; int sig; } names[] = {
        {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"ALRM", SIGALRM}, {"WINCH", SIGWINCH},
        {"CONT", SIGCONT}, {"KILL", SIGKILL},
    };
    char *end;
    size_t i;
    long n;

    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0)
            return names[i].sig;
    n = strtol(s, &end, 10);
    return *s && !*end && n > 0 && n < NSIG && n != SIGSTOP ? (int)n : -1;
}

static int parse_only(struct cli *cli, struct run_opts *o, const char *arg)
{
    char *save = NULL, *tok;
    size_t i;

    free(o->only_text);
    free(o->only);
    o->only = NULL;
    o->n_only = 0;
    o->only_text = strdup(arg);
    if (!o->only_text)
        return -ENOMEM;
    for (tok = strtok_r(o->only_text, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        const char **grown;
        if (!sfs_name_is_shell_ident(tok) || strlen(tok) > SFS_NAME_MAX) {
            cli_error(cli, "--only: '%s' is not a valid environment variable name", tok);
            return -EINVAL;
        }
        for (i = 0; i < o->n_only && strcmp(o->only[i], tok) != 0; i++)
            ;
        if (i < o->n_only)
            continue; /* named twice */
        grown = realloc(o->only, (o->n_only + 1) * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        o->only = grown;
        o->only[o->n_only++] = tok;
    }
    if (!o->n_only) {
        cli_error(cli, "--only needs at least one name");
        return -EINVAL;
    }
    return 0;
}

static int parse_args(struct cli *cli, struct run_opts *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"mount", required_argument, NULL, OPT_MOUNT},
        {"only", required_argument, NULL, OPT_RUN_ONLY},
        {"restart-on-change", no_argument, NULL, OPT_RESTART},
        {"signal", required_argument, NULL, OPT_SIGNAL},
        {"grace", required_argument, NULL, OPT_GRACE},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int opt;

    optind = 1;
    opterr = 1;
    /* '+': stop at COMMAND, so its own options stay its own */
    while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            return cli_usage(cli, run_help, true);
        case OPT_MOUNT:
            o->mount = optarg;
            break;
        case OPT_RUN_ONLY:
            if (parse_only(cli, o, optarg) < 0)
                return EXIT_USAGE;
            break;
        case OPT_RESTART:
            o->restart = true;
            break;
        case OPT_SIGNAL:
            o->signal = parse_signal(optarg);
            if (o->signal < 0) {
                cli_error(cli, "--signal %s: not a signal (use a name such as HUP or TERM, "
                          "or a number)", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_GRACE:
            o->grace = strtod(optarg, &end);
            if (*end || !(o->grace >= 0 && o->grace <= 86400)) {
                cli_error(cli, "--grace %s: give seconds between 0 and 86400", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_CONFIG:
            cli->flag_config = optarg;
            break;
        default:
            return cli_usage(cli, run_help, false);
        }
    }
    if (optind >= argc) {
        cli_error(cli, "no COMMAND given (secretfs run [OPTIONS] -- COMMAND [ARGS...])");
        return cli_usage(cli, run_help, false);
    }
    o->argv = argv + optind;
    return -1;
}

static int setup_signals(struct runner *r)
{
    static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                                    SIGCHLD};
    sigset_t set;
    size_t i;

    signal(SIGCHLD, SIG_DFL); /* an inherited SIG_IGN would reap our children for us */
    sigemptyset(&set);
    for (i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaddset(&set, forwarded[i]);
    r->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (r->sfd < 0)
        return -errno;
    sigaddset(&set, SIGTTOU); /* lets us take the terminal back from COMMAND */
    return sigprocmask(SIG_BLOCK, &set, &r->orig_mask) < 0 ? -errno : 0;
}

/* `secretfs run [OPTIONS] -- COMMAND [ARGS...]` (argv[0] is "run").  Reads no value itself:
 * each start of COMMAND forks a child that reads the mount and execs.  Returns COMMAND's exit
 * status (128+N for signal N), or EXIT_FAIL / EXIT_USAGE / 126 / 127 as the help says. */
int cmd_run(struct cli *cli, int argc, char **argv)
{
    struct run_opts o = {.grace = 10.0};
    struct runner r = {.cli = cli, .o = &o, .sfd = -1, .ifd = -1};
    struct gen_key key;
    int rc;

    r.cur = r.next = (struct proc){.status_fd = -1, .go_fd = -1};
    rc = parse_args(cli, &o, argc, argv);
    if (rc >= 0)
        goto out;
    if (!o.mount) {
        if (cli_load_config(cli) != EXIT_OK) {
            rc = EXIT_FAIL;
            goto out;
        }
        o.mount = cli_default_mountpoint(cli);
    }
    r.watching = o.restart || o.signal;
    rc = read_key(o.mount, &key);
    if (rc < 0) {
        cli_error(cli, "%s/.status: %s; is a secretfs daemon serving %s? (choose the mount "
                  "with --mount)", o.mount, strerror(rc == -EBADMSG ? EBADMSG : -rc), o.mount);
        rc = EXIT_FAIL;
        goto out;
    }
    rc = setup_signals(&r);
    if (rc < 0) {
        cli_error(cli, "cannot set up signal handling: %s", strerror(-rc));
        rc = EXIT_FAIL;
        goto out;
    }
    r.tty = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
    setup_watch(&r, &key); /* before the first read, so no change is missed */
    rc = spawn(&r);
    if (rc < 0) {
        cli_error(cli, "fork: %s", strerror(-rc));
        rc = EXIT_FAIL;
        goto out_signals;
    }
    rc = supervise(&r);
    reclaim_tty(&r);
out_signals:
    close(r.sfd);
    if (r.ifd >= 0)
        close(r.ifd);
    sigprocmask(SIG_SETMASK, &r.orig_mask, NULL);
out:
    free(o.only_text);
    free(o.only);
    return rc;
}
