/* cli/run_supervise.c — `secretfs run`'s supervisor: starts COMMAND, and restarts or
 * signals it when the mount serves a new generation.
 *
 * The parent never reads a value: it forks, the child reads one snapshot (cli/run_env.c),
 * reports the generation it read through a pipe and waits for the go-ahead, then execs.
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

#include "cli/run.h"
#include "crypto/secmem.h"
#include "secrets/names.h"

extern char **environ;
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
    if (!cli_run_write_all(p->go_fd, "g"))
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
    rc = cli_run_read_key(r->o->mount, &k);
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
    if (!cli_run_key_stable(&k) || cli_run_key_same(&k, r->cur.daemon_pid, r->cur.generation))
        return;
    if (r->failed_valid && cli_run_key_same(&k, r->failed_pid, r->failed_gen))
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
    if (cli_run_read_snapshot(r->cli, r->o, &b, &key) < 0)
        _exit(EXIT_FAIL);
    envp = cli_run_build_envp(&b);
    if (!envp) {
        cli_error(r->cli, "out of memory");
        cli_run_env_reset(&b);
        _exit(EXIT_FAIL);
    }
    snprintf(line, sizeof line, "ready %ld %llu\n", key.pid, key.generation);
    do
        n = cli_run_write_all(status_fd, line) ? read(go_fd, &go, 1) : -1;
    while (n < 0 && errno == EINTR);
    if (n != 1) { /* the supervisor is gone or gave up */
        cli_run_env_reset(&b);
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
    cli_run_env_reset(&b);
    snprintf(line, sizeof line, "exec %d\n", e);
    (void)cli_run_write_all(status_fd, line);
    _exit(e == ENOENT ? 127 : 126);
}

/* ---- options ---- */

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

int cli_run_supervise(struct cli *cli, const struct run_opts *o, const struct gen_key *first)
{
    struct runner r = {.cli = cli, .o = o, .sfd = -1, .ifd = -1};
    int rc;

    r.cur = r.next = (struct proc){.status_fd = -1, .go_fd = -1};
    r.watching = o->restart || o->signal;
    rc = setup_signals(&r);
    if (rc < 0) {
        cli_error(cli, "cannot set up signal handling: %s", strerror(-rc));
        return EXIT_FAIL;
    }
    r.tty = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
    setup_watch(&r, first); /* before the first read, so no change is missed */
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
    return rc;
}
