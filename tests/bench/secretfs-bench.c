/* tests/bench/secretfs-bench.c — the secretfs benchmark (issue 5).
 *
 * Builds stores with the crypto/ and secrets/ libraries, mounts them with the real `secretfs`
 * binary, copies what a mount serves onto a tmpfs it mounts itself, and runs every workload
 * on both, interleaved, for several rounds; it prints the medians against the targets as a
 * table (or JSON with --json).  A benchmark, not a test: the exit status says whether every
 * workload was measured (0), not whether targets were met.  1: a workload could not be
 * measured; 2: usage; 77: no root or no /dev/fuse.
 *
 * Everything it creates lives in one temporary directory; every mount (FUSE and tmpfs) is
 * undone and the directory removed on exit, on failure and on SIGINT/SIGTERM.  The daemons
 * it starts become its children (PR_SET_CHILD_SUBREAPER), so it reaps each one after its
 * unmount.  Values are random test data and are never printed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crypto/key.h"
#include "crypto/secmem.h"
#include "store/store.h"
#include "secrets/set.h"

#ifndef SFS_BENCH_SECRETFS
#define SFS_BENCH_SECRETFS "secretfs"
#endif
/* The fleet rows (issue 14) come from a companion that runs an etcd cluster: fleet-bench.py */
#ifndef SFS_BENCH_FLEET
#define SFS_BENCH_FLEET "fleet-bench.py"
#endif

#define EXIT_SKIP 77
#define VALUE_LEN 64
#define N_SMALL 1000      /* workloads 1-6 and 10 */
#define N_RELOAD 10000    /* workload 7 */
#define N_BIG 100000      /* workloads 8 and 9 */
#define MAX_ROUNDS 64
#define IO_BUF (256u * 1024u)

extern char **environ;

/* ---- options and global state (the cleanup paths read it from a signal handler) ---- */

static struct {
    const char *secretfs;
    bool json;
    bool quick;
    bool fleet;        /* run the fleet rows (11-13) too */
    int rounds;        /* micro workloads (1-5, 10) */
    int heavy_rounds;  /* workloads 6-9 */
    double batch_s;    /* target duration of one timed batch */
} opt;

enum { MNT_TMPFS, MNT_TMPFS6, MNT_KERNEL, MNT_NONE, MNT_FIRST, MNT_RELOAD, MNT_BIG, MNT_BASE,
       MNT_COUNT };

struct mount_slot {
    char path[PATH_MAX];
    volatile sig_atomic_t active;  /* set before mounting, cleared after the unmount */
    volatile pid_t daemon;         /* its secretfs daemon, 0 for tmpfs */
};

static char workdir[PATH_MAX];
static struct mount_slot mounts[MNT_COUNT];
static volatile pid_t spawned;     /* a `secretfs` command running right now */
static char **child_env;
static char key_path[PATH_MAX];
static char log_path[PATH_MAX];   /* what secretfs commands print (never a value) */

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("secretfs-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* "DIR/NAME" in buf; our paths are short (under /tmp), so a longer one is a bug. */
static const char *path_join(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);

    if (n < 0 || (size_t)n >= cap)
        abort();
    return buf;
}

/* ---- cleanup: only async-signal-safe calls, so the signal handler can share it ---- */

static void cleanup_all(void)
{
    static volatile sig_atomic_t done;
    int i;

    if (done)
        return;
    done = 1;
    if (spawned > 0)
        kill(spawned, SIGTERM);
    for (i = 0; i < MNT_COUNT; i++) {
        if (!mounts[i].active)
            continue;
        if (umount2(mounts[i].path, 0) < 0)
            (void)umount2(mounts[i].path, MNT_DETACH);
        if (mounts[i].daemon > 0)
            kill(mounts[i].daemon, SIGTERM); /* unmounted: it is leaving anyway */
        mounts[i].active = 0;
    }
    if (workdir[0]) {
        pid_t pid = fork();
        if (pid == 0) {
            char *const argv[] = {"rm", "-rf", "--one-file-system", workdir, NULL};
            execve("/bin/rm", argv, (char *[]){NULL});
            _exit(127);
        }
        if (pid > 0)
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        workdir[0] = '\0';
    }
}

static void on_signal(int sig)
{
    cleanup_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double s[MAX_ROUNDS];

    if (n <= 0)
        return NAN;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double vmin(const double *v, int n)
{
    double m = INFINITY;

    for (int i = 0; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return n ? m : NAN;
}

static double vmax(const double *v, int n)
{
    double m = -INFINITY;

    for (int i = 0; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return n ? m : NAN;
}

/* ---- results ---- */

enum verdict { V_NO, V_YES, V_REPORT, V_ERROR };

struct result {
    int id;
    const char *name;
    const char *unit;         /* of the secretfs and reference columns */
    const char *ref_label;    /* what the reference column holds */
    double sfs[MAX_ROUNDS], ref[MAX_ROUNDS];
    int n_sfs, n_ref;
    double sfs_med, ref_med, ratio;
    const char *target;
    enum verdict met;
    char detail[512];         /* one line: what else was seen (never a value) */
};

static struct result results[10];

static void add_sample(double *v, int *n, double x)
{
    if (*n < MAX_ROUNDS)
        v[(*n)++] = x;
}

static void fail_result(struct result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail_result(struct result *r, const char *fmt, ...)
{
    va_list ap;

    r->met = V_ERROR;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    progress("workload %d: %s", r->id, r->detail);
}

/* ---- spawning `secretfs` ---- */

/* The environment for secretfs commands: ours without SECRETFS_* and LIVEKIT_* (the host's
 * config and platform must not change what is measured), plus our config and key, and the
 * three platform variables a deployment has (placeholders, so the daemon serves and merges
 * platform entries as it does in production). */
static int build_child_env(const char *config)
{
    static char *const platform[] = {"LIVEKIT_URL=wss://bench.invalid",
                                     "LIVEKIT_API_KEY=bench-placeholder-key",
                                     "LIVEKIT_API_SECRET=bench-placeholder-not-a-secret"};
    size_t n = 0, k = 0;
    char **e;

    while (environ[n])
        n++;
    child_env = calloc(n + 6, sizeof *child_env);
    if (!child_env)
        return -ENOMEM;
    for (e = environ; *e; e++)
        if (strncmp(*e, "SECRETFS_", 9) != 0 && strncmp(*e, "LIVEKIT_", 8) != 0)
            child_env[k++] = *e;
    for (size_t i = 0; i < sizeof platform / sizeof platform[0]; i++)
        child_env[k++] = platform[i];
    if (asprintf(&child_env[k++], "SECRETFS_CONFIG=%s", config) < 0 ||
        asprintf(&child_env[k++], "SECRETFS_KEY_FILE=%s", key_path) < 0)
        return -ENOMEM;
    return 0;
}

/* Runs secretfs with `args` (NULL-terminated, without argv[0]); what it prints goes to
 * log_path.  Returns its exit status, or -errno if it could not run. */
static int run_secretfs(const char *const *args)
{
    const char *argv[16];
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status, rc, i = 0;

    argv[i++] = opt.secretfs;
    while (*args && i < 15)
        argv[i++] = *args++;
    argv[i] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path,
                                     O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    rc = posix_spawn(&pid, opt.secretfs, &fa, NULL, (char *const *)argv, child_env);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -rc;
    spawned = pid;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    spawned = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- mounts ---- */

/* Copies the last lines secretfs printed to stderr. */
static void show_log(void)
{
    char buf[4096];
    int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    off_t end = fd >= 0 ? lseek(fd, 0, SEEK_END) : 0;
    ssize_t n;

    if (fd < 0)
        return;
    (void)lseek(fd, end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0, SEEK_SET);
    while ((n = read(fd, buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)n, stderr);
    close(fd);
}

struct status {
    unsigned long long generation;
    long pid;
    bool ok;
    char notify[PATH_MAX];  /* the generation file the daemon rewrites after each reload */
};

/* Reads MNT/.status the way `secretfs reload` does.  Returns 0 or -errno. */
static int read_status(const char *mnt, struct status *st)
{
    char path[PATH_MAX], buf[4096], *line, *save = NULL;
    ssize_t n;
    int fd;

    memset(st, 0, sizeof *st);
    fd = open(path_join(path, sizeof path, mnt, ".status"), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "generation=", 11) == 0)
            st->generation = strtoull(line + 11, NULL, 10);
        else if (strncmp(line, "pid=", 4) == 0)
            st->pid = strtol(line + 4, NULL, 10);
        else if (strcmp(line, "last_reload=ok") == 0)
            st->ok = true;
        else if (strncmp(line, "notify=", 7) == 0)
            snprintf(st->notify, sizeof st->notify, "%s", line + 7);
    }
    return st->pid > 0 ? 0 : -EPROTO;
}

/* Mounts `store` on slot `m` with `secretfs mount -o cache=CACHE`; *secs (optional) is the
 * time until the command returned (it returns once the files are visible) and `probe`, a
 * file it then stats, answered.  Returns 0 or -errno. */
static int sfs_mount(int m, const char *store, const char *cache, const char *probe,
                     double *secs)
{
    char o[64], path[PATH_MAX];
    const char *args[] = {"mount", "--store", store, "-o", o, mounts[m].path, NULL};
    struct status st;
    struct stat sb;
    double t0;
    int rc;

    snprintf(o, sizeof o, "cache=%s", cache);
    mounts[m].active = 1;
    t0 = now_s();
    rc = run_secretfs(args);
    if (rc == 0 && probe && stat(path_join(path, sizeof path, mounts[m].path, probe), &sb) < 0)
        rc = -errno;
    if (secs)
        *secs = now_s() - t0;
    if (rc != 0) {
        progress("secretfs mount %s (%s) failed (%d); it said:", mounts[m].path, cache, rc);
        show_log();
        return rc < 0 ? rc : -EIO;
    }
    rc = read_status(mounts[m].path, &st);
    if (rc < 0)
        return rc;
    mounts[m].daemon = (pid_t)st.pid;
    return 0;
}

/* Unmounts slot `m` and, for a secretfs mount, reaps its daemon (at most 10 s). */
static void bench_unmount(int m)
{
    pid_t pid = mounts[m].daemon;
    double deadline = now_s() + 10;

    if (!mounts[m].active)
        return;
    if (umount2(mounts[m].path, 0) < 0 && errno != EINVAL)
        (void)umount2(mounts[m].path, MNT_DETACH);
    mounts[m].active = 0;
    mounts[m].daemon = 0;
    if (pid <= 0)
        return;
    while (now_s() < deadline) {
        pid_t w = waitpid(pid, NULL, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD && kill(pid, 0) < 0))
            return;
        nap_us(1000);
    }
    progress("daemon %ld did not exit after its unmount; killing it", (long)pid);
    kill(pid, SIGKILL);
    (void)waitpid(pid, NULL, 0);
}

static int tmpfs_mount(int m)
{
    mounts[m].active = 1;
    if (mount("tmpfs", mounts[m].path, "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=0755") < 0) {
        int rc = -errno;
        mounts[m].active = 0;
        progress("mount -t tmpfs %s: %s", mounts[m].path, strerror(-rc));
        return rc;
    }
    return 0;
}

/* ---- stores ---- */

static uint64_t value_seed;  /* per run: every store holds the same value for the same name */

/* VALUE_LEN random-looking alphanumeric bytes for secret `i` (xorshift64*, seeded per run:
 * the values are test data, never printed). */
static void secret_value(unsigned char *v, long i)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t x = value_seed ^ ((uint64_t)i * 0x9E3779B97F4A7C15ull);

    for (size_t k = 0; k < VALUE_LEN; k++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v[k] = (unsigned char)alphabet[((x * 0x2545F4914F6CDD1Dull) >> 32) % (sizeof alphabet - 1)];
    }
}

static void secret_name(char *buf, size_t cap, long i)
{
    snprintf(buf, cap, "SECRET_%06ld", i);
}

/* Writes a store of `count` secrets of VALUE_LEN bytes, all updated at `t`.  A `variant`
 * > 0 is the same store with secret 0 changed (new bytes, updated a second later), as
 * `secretfs set` would leave it.  Returns 0 or -errno. */
static int make_store(const sfs_key *key, const char *path, long count, int variant,
                      int64_t t)
{
    unsigned char value[VALUE_LEN];
    char name[32];
    struct sfs_err err;
    sfs_set *set = sfs_set_new((size_t)count * (VALUE_LEN + 32));
    int rc = 0;

    if (!set)
        return -ENOMEM;
    for (long i = 0; i < count && rc == 0; i++) {
        secret_name(name, sizeof name, i);
        secret_value(value, i);
        if (i == 0 && variant)
            value[0] = (unsigned char)('a' + variant);
        rc = sfs_set_put(set, name, value, sizeof value, t, t + (i == 0 ? variant : 0));
    }
    sfs_wipe(value, sizeof value);
    if (rc == 0) {
        rc = sfs_store_write_file(path, key, set, &err);
        if (rc < 0)
            progress("%s", err.msg);
    }
    sfs_set_free(set);
    return rc;
}

/* Copies every file `src` serves into `dst` (same names, bytes and modes). */
static int copy_tree(const char *src, const char *dst, long *files)
{
    char sp[PATH_MAX], dp[PATH_MAX];
    unsigned char *buf = malloc(IO_BUF);
    struct dirent *de;
    DIR *d = opendir(src);
    int rc = 0;

    *files = 0;
    if (!d || !buf) {
        rc = d ? -ENOMEM : -errno;
        goto out;
    }
    while (rc == 0 && (de = readdir(d))) {
        int in, outfd;
        ssize_t n;
        if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
            continue;
        in = open(path_join(sp, sizeof sp, src, de->d_name), O_RDONLY | O_CLOEXEC);
        if (in < 0) {
            rc = -errno;
            break;
        }
        outfd = open(path_join(dp, sizeof dp, dst, de->d_name),
                     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0400);
        if (outfd < 0)
            rc = -errno;
        while (rc == 0 && (n = read(in, buf, IO_BUF)) > 0)
            if (write(outfd, buf, (size_t)n) != n)
                rc = -EIO;
        if (outfd >= 0)
            close(outfd);
        close(in);
        (*files)++;
    }
out:
    if (d)
        closedir(d);
    if (buf)
        sfs_wipe(buf, IO_BUF);
    free(buf);
    return rc;
}

/* ---- the micro workloads ---- */

enum op_kind { OP_ORC, OP_STAT, OP_LIST, OP_READALL, OP_SPIN };

struct op {
    enum op_kind kind;
    char path[PATH_MAX];
    size_t expect;  /* bytes read (ORC, READALL) or entries listed (LIST) */
};

/* One iteration of `op` with the scratch buffer `buf` (IO_BUF bytes).  Returns 0, or -errno
 * (-EIO: not what was expected). */
static int op_once(const struct op *op, long i, unsigned char *buf)
{
    struct stat st;
    ssize_t r = 0;
    size_t count = 0;
    int fd;
    DIR *d;

    switch (op->kind) {
    case OP_ORC:
        fd = open(op->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        r = read(fd, buf, 4096);
        close(fd);
        return r == (ssize_t)op->expect ? 0 : r < 0 ? -errno : -EIO;
    case OP_STAT:
        return stat(op->path, &st) < 0 ? -errno : 0;
    case OP_LIST:
        d = opendir(op->path);
        if (!d)
            return -errno;
        while (readdir(d))
            count++;
        closedir(d);
        return count == op->expect ? 0 : -EIO;
    case OP_READALL:
        fd = open(op->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        while ((r = read(fd, buf, IO_BUF)) > 0)
            count += (size_t)r;
        close(fd);
        return r < 0 ? -errno : count == op->expect ? 0 : -EIO;
    case OP_SPIN: { /* no system call: what the machine gives two threads of ours */
        volatile uint64_t x = 0;
        for (int k = 0; k < 1000; k++)
            x += (uint64_t)k * (uint64_t)i;
        return 0;
    }
    }
    return -EINVAL;
}

/* Runs `n` iterations of `op`.  Returns 0, or -errno (-EIO: not what was expected). */
static int op_run(const struct op *op, long n)
{
    unsigned char *buf = malloc(IO_BUF);
    int rc = 0;

    if (!buf)
        return -ENOMEM;
    for (long i = 0; i < n && rc == 0; i++)
        rc = op_once(op, i, buf);
    free(buf);
    return rc;
}

/* Seconds per iteration of `n` iterations, or a negative errno. */
static double op_time(const struct op *op, long n)
{
    double t0 = now_s();
    int rc = op_run(op, n);

    return rc < 0 ? (double)rc : (now_s() - t0) / (double)n;
}

/* Iterations that take about opt.batch_s, after a warm-up. */
static long calibrate(const struct op *op)
{
    double per;
    long n;

    if (op_run(op, 8) < 0)
        return -1;
    per = op_time(op, 32);
    if (per <= 0)
        return -1;
    n = (long)(opt.batch_s / per);
    return n < 16 ? 16 : n > 2000000 ? 2000000 : n;
}

struct micro {
    int id;
    struct op sfs, ref;
    long n_sfs, n_ref;
};

/* ---- workload 10: threads ---- */

struct thr {
    const struct op *op;
    long n;
    pthread_barrier_t *bar;
    int rc;
};

static void *thr_main(void *arg)
{
    struct thr *t = arg;

    pthread_barrier_wait(t->bar);
    t->rc = op_run(t->op, t->n);
    return NULL;
}

/* Operations per second of `nthreads` threads, thread i running ops[i] `n` times. */
static double run_threads(const struct op *ops, int nthreads, long n)
{
    pthread_t tid[2];
    struct thr t[2];
    pthread_barrier_t bar;
    double t0, el;
    int i, rc = 0;

    pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
    for (i = 0; i < nthreads; i++) {
        t[i] = (struct thr){.op = &ops[i], .n = n, .bar = &bar};
        if (pthread_create(&tid[i], NULL, thr_main, &t[i]) != 0)
            abort(); /* two threads; nothing to recover */
    }
    pthread_barrier_wait(&bar);
    t0 = now_s();
    for (i = 0; i < nthreads; i++) {
        pthread_join(tid[i], NULL);
        if (t[i].rc < 0)
            rc = t[i].rc;
    }
    el = now_s() - t0;
    pthread_barrier_destroy(&bar);
    return rc < 0 ? (double)rc : (double)n * nthreads / el;
}

/* CPU time (seconds) all threads of `pid` have used so far, from their schedstat; -1 if
 * unreadable. */
static double cpu_time(pid_t pid)
{
    char path[64];
    struct dirent *de;
    double total = 0;
    DIR *d;

    snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
    d = opendir(path);
    if (!d)
        return -1;
    while ((de = readdir(d))) {
        char stat_path[PATH_MAX];
        unsigned long long ns;
        FILE *f;
        if (de->d_name[0] == '.')
            continue;
        path_join(stat_path, sizeof stat_path, path, de->d_name);
        strncat(stat_path, "/schedstat", sizeof stat_path - strlen(stat_path) - 1);
        f = fopen(stat_path, "re");
        if (f && fscanf(f, "%llu", &ns) == 1)
            total += (double)ns / 1e9;
        if (f)
            fclose(f);
    }
    closedir(d);
    return total;
}

/* ---- memory of a daemon ---- */

struct mem {
    long rss, pss, anon, locked; /* kB, from smaps_rollup */
};

static int read_mem(pid_t pid, struct mem *m)
{
    char path[64], line[256];
    FILE *f;

    memset(m, 0, sizeof *m);
    snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", (long)pid);
    f = fopen(path, "re");
    if (!f)
        return -errno;
    while (fgets(line, sizeof line, f)) {
        long v;
        if (sscanf(line, "Rss: %ld", &v) == 1)
            m->rss = v;
        else if (sscanf(line, "Pss: %ld", &v) == 1)
            m->pss = v;
        else if (sscanf(line, "Anonymous: %ld", &v) == 1)
            m->anon = v;
        else if (sscanf(line, "Locked: %ld", &v) == 1)
            m->locked = v;
    }
    fclose(f);
    return m->rss ? 0 : -EPROTO;
}

/* ---- the run ---- */

struct paths {
    char config[PATH_MAX];
    char store_small[PATH_MAX], store_reload[2][PATH_MAX], store_big[PATH_MAX],
        store_empty[PATH_MAX], store_live[PATH_MAX];
};

static int setup(struct paths *p)
{
    static const char *const mount_names[MNT_COUNT] = {
        "tmpfs", "tmpfs-first", "kernel", "none", "first", "reload", "big", "base"};
    struct sfs_err err;
    sfs_key *key = NULL;
    int64_t t;
    int rc, fd;

    if (!mkdtemp(strcpy(workdir, "/tmp/secretfs-bench-XXXXXX"))) {
        workdir[0] = '\0';
        return -errno;
    }
    chmod(workdir, 0755);
    for (int i = 0; i < MNT_COUNT; i++) {
        path_join(mounts[i].path, sizeof mounts[i].path, workdir, mount_names[i]);
        if (mkdir(mounts[i].path, 0755) < 0)
            return -errno;
    }
    path_join(key_path, sizeof key_path, workdir, "master.key");
    path_join(log_path, sizeof log_path, workdir, "secretfs.log");
    path_join(p->config, sizeof p->config, workdir, "secretfs.ini");
    path_join(p->store_small, sizeof p->store_small, workdir, "small.store");
    path_join(p->store_reload[0], sizeof p->store_reload[0], workdir, "reload-a.store");
    path_join(p->store_reload[1], sizeof p->store_reload[1], workdir, "reload-b.store");
    path_join(p->store_live, sizeof p->store_live, workdir, "reload.store");
    path_join(p->store_big, sizeof p->store_big, workdir, "big.store");
    path_join(p->store_empty, sizeof p->store_empty, workdir, "empty.store");
    fd = open(p->config, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    close(fd);
    if (build_child_env(p->config) < 0)
        return -ENOMEM;
    if (sfs_key_generate(key_path, &err) < 0 || !(key = sfs_key_load(key_path, &err))) {
        progress("%s", err.msg);
        return -EIO;
    }
    if (getrandom(&value_seed, sizeof value_seed, 0) != (ssize_t)sizeof value_seed)
        value_seed = (uint64_t)now_s() * 2654435761u;
    value_seed |= 1;
    t = (int64_t)time(NULL) - 60;
    rc = make_store(key, p->store_small, N_SMALL, 0, t);
    if (rc == 0)
        rc = make_store(key, p->store_reload[0], N_RELOAD, 0, t);
    if (rc == 0)
        rc = make_store(key, p->store_reload[1], N_RELOAD, 1, t);
    if (rc == 0)
        rc = make_store(key, p->store_live, N_RELOAD, 0, t);
    if (rc == 0)
        rc = make_store(key, p->store_big, N_BIG, 0, t);
    if (rc == 0)
        rc = make_store(key, p->store_empty, 0, 0, t);
    sfs_key_free(key);
    return rc;
}

/* Copies `src` over `dst` the way writers replace a store: temp file, rename. */
static int replace_file(const char *src, const char *dst)
{
    char tmp[PATH_MAX + 8];
    unsigned char *buf = malloc(IO_BUF);
    int in = open(src, O_RDONLY | O_CLOEXEC), out, rc = 0;
    ssize_t n;

    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (in < 0 || out < 0 || !buf)
        rc = -EIO;
    while (rc == 0 && (n = read(in, buf, IO_BUF)) > 0)
        if (write(out, buf, (size_t)n) != n)
            rc = -EIO;
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    free(buf);
    if (rc == 0 && rename(tmp, dst) < 0)
        rc = -errno;
    return rc;
}

static void finish_ratio(struct result *r, const char *target, double limit, bool higher_better)
{
    r->sfs_med = median(r->sfs, r->n_sfs);
    r->ref_med = median(r->ref, r->n_ref);
    r->ratio = r->n_ref ? r->sfs_med / r->ref_med : NAN;
    r->target = target;
    if (r->met == V_ERROR)
        return;
    if (limit <= 0)
        r->met = V_REPORT;
    else
        r->met = (higher_better ? r->sfs_med >= limit : r->ratio <= limit) ? V_YES : V_NO;
}

/* Workloads 1-5 and 10 on the 1,000-secret mounts and their tmpfs copy. */
static void run_micro(void)
{
    static const char *const names[] = {
        "warm open+read+close 64 B, cache=kernel",
        "warm open+read+close 64 B, cache=none",
        "stat of a secret",
        "list a directory of 1,000 secrets",
        "read .env of 1,000 secrets",
    };
    static const double limits[] = {1.3, 12, 1.5, 2, 1.3};
    static const char *const targets[] = {"<= 1.3x tmpfs", "<= 12x tmpfs", "<= 1.5x tmpfs",
                                          "<= 2x tmpfs", "<= 1.3x tmpfs"};
    const char *tmp = mounts[MNT_TMPFS].path, *kern = mounts[MNT_KERNEL].path,
               *none = mounts[MNT_NONE].path;
    struct micro w[5];
    struct op thr_ops[3][2]; /* [tmpfs, secretfs, CPU only][thread] */
    struct result *r10 = &results[9];
    double thr1[3][MAX_ROUNDS], thr2[3][MAX_ROUNDS], spin[MAX_ROUNDS];
    long files, n_thr = 0, n_spin = 0;
    int n_spun = 0;
    double cpu0, cpu1, none0, none1;
    struct stat st;
    char name[32], buf[PATH_MAX];
    int i, round;

    memset(w, 0, sizeof w);
    secret_name(name, sizeof name, N_SMALL / 2);
    for (i = 0; i < 5; i++) {
        struct result *r = &results[i];
        r->id = i + 1;
        r->name = names[i];
        r->unit = "us";
        r->ref_label = "tmpfs";
        w[i].id = i + 1;
    }
    if (copy_tree(kern, tmp, &files) < 0 || stat(path_join(buf, sizeof buf, tmp, ".env"), &st) < 0) {
        for (i = 0; i < 5; i++)
            fail_result(&results[i], "could not copy the mount onto tmpfs");
        fail_result(r10, "could not copy the mount onto tmpfs");
        return;
    }
    w[0].sfs = (struct op){OP_ORC, "", VALUE_LEN};
    path_join(w[0].sfs.path, PATH_MAX, kern, name);
    w[1].sfs = (struct op){OP_ORC, "", VALUE_LEN};
    path_join(w[1].sfs.path, PATH_MAX, none, name);
    w[2].sfs = (struct op){OP_STAT, "", 0};
    path_join(w[2].sfs.path, PATH_MAX, kern, name);
    w[3].sfs = (struct op){OP_LIST, "", (size_t)files + 2};
    snprintf(w[3].sfs.path, PATH_MAX, "%s", kern);
    w[4].sfs = (struct op){OP_READALL, "", (size_t)st.st_size};
    path_join(w[4].sfs.path, PATH_MAX, kern, ".env");
    for (i = 0; i < 5; i++) {
        w[i].ref = w[i].sfs;
        snprintf(w[i].ref.path, PATH_MAX, "%s%s", tmp, w[i].sfs.path + strlen(i == 1 ? none : kern));
    }
    for (i = 0; i < 2; i++) {
        secret_name(name, sizeof name, 100 + 100 * i);
        thr_ops[0][i] = (struct op){OP_ORC, "", VALUE_LEN};
        path_join(thr_ops[0][i].path, PATH_MAX, tmp, name);
        thr_ops[1][i] = (struct op){OP_ORC, "", VALUE_LEN};
        path_join(thr_ops[1][i].path, PATH_MAX, kern, name);
        thr_ops[2][i] = (struct op){OP_SPIN, "", 0};
    }

    for (i = 0; i < 5; i++) {
        w[i].n_sfs = calibrate(&w[i].sfs);
        w[i].n_ref = calibrate(&w[i].ref);
        if (w[i].n_sfs < 0 || w[i].n_ref < 0)
            fail_result(&results[i], "the operation failed on %s",
                        w[i].n_sfs < 0 ? "secretfs" : "tmpfs");
    }
    {
        long a = calibrate(&thr_ops[0][0]), b = calibrate(&thr_ops[1][0]);
        long c = calibrate(&thr_ops[0][1]), d = calibrate(&thr_ops[1][1]);
        if (a < 0 || b < 0 || c < 0 || d < 0)
            fail_result(r10, "open+read+close failed");
        else
            n_thr = (a < b ? a : b) * 2; /* about 2 batches of the slower side per thread */
        n_spin = calibrate(&thr_ops[2][0]);
    }

    progress("workloads 1-5 and 10: %d interleaved rounds", opt.rounds);
    cpu0 = cpu_time(mounts[MNT_KERNEL].daemon);
    none0 = cpu_time(mounts[MNT_NONE].daemon);
    for (round = 0; round < opt.rounds; round++) {
        for (i = 0; i < 5; i++) {
            struct result *r = &results[i];
            if (r->met == V_ERROR)
                continue;
            for (int k = 0; k < 2; k++) {
                bool sfs_side = (k + round + i) % 2 == 0;
                double per = sfs_side ? op_time(&w[i].sfs, w[i].n_sfs)
                                      : op_time(&w[i].ref, w[i].n_ref);
                if (per < 0) {
                    fail_result(r, "round %d: %s failed: %s", round + 1,
                                sfs_side ? "secretfs" : "tmpfs", strerror((int)-per));
                    break;
                }
                if (sfs_side)
                    add_sample(r->sfs, &r->n_sfs, per * 1e6);
                else
                    add_sample(r->ref, &r->n_ref, per * 1e6);
            }
        }
        if (r10->met != V_ERROR) {
            for (int k = 0; k < 2; k++) {
                int side = (k + round) % 2; /* 0 tmpfs, 1 secretfs */
                double one = run_threads(thr_ops[side], 1, n_thr);
                double two = run_threads(thr_ops[side], 2, n_thr);
                if (one < 0 || two < 0) {
                    fail_result(r10, "round %d: a thread's open+read+close failed", round + 1);
                    break;
                }
                thr1[side][round] = one;
                thr2[side][round] = two;
                if (side)
                    add_sample(r10->sfs, &r10->n_sfs, two / one);
                else
                    add_sample(r10->ref, &r10->n_ref, two / one);
            }
            if (r10->met != V_ERROR && n_spin > 0) {
                double one = run_threads(thr_ops[2], 1, n_spin);
                double two = run_threads(thr_ops[2], 2, n_spin);
                add_sample(spin, &n_spun, two / one);
            }
        }
    }
    cpu1 = cpu_time(mounts[MNT_KERNEL].daemon);
    none1 = cpu_time(mounts[MNT_NONE].daemon);
    for (i = 0; i < 5; i++) {
        struct result *r = &results[i];
        finish_ratio(r, targets[i], limits[i], false);
        snprintf(r->detail + strlen(r->detail), sizeof r->detail - strlen(r->detail),
                 "%s%d rounds of %ld (secretfs) and %ld (tmpfs) iterations; secretfs "
                 "%.2f-%.2f us, tmpfs %.2f-%.2f us", r->detail[0] ? "; " : "", r->n_sfs,
                 w[i].n_sfs, w[i].n_ref, vmin(r->sfs, r->n_sfs), vmax(r->sfs, r->n_sfs),
                 vmin(r->ref, r->n_ref), vmax(r->ref, r->n_ref));
        if (i == 0 && cpu0 >= 0 && cpu1 >= 0)
            snprintf(r->detail + strlen(r->detail), sizeof r->detail - strlen(r->detail),
                     "; CPU time of the cache=kernel daemon during all rounds of 1, 3, 4, 5 "
                     "and 10: %.1f ms", (cpu1 - cpu0) * 1e3);
        if (i == 1 && none0 >= 0 && none1 >= 0 && r->n_sfs)
            snprintf(r->detail + strlen(r->detail), sizeof r->detail - strlen(r->detail),
                     "; CPU time of the cache=none daemon per open+read+close: %.1f us",
                     (none1 - none0) * 1e6 / ((double)r->n_sfs * (double)w[i].n_sfs));
    }
    r10->id = 10;
    r10->name = "open+read+close, 2 threads vs 1 (cache=kernel)";
    r10->unit = "x";
    r10->ref_label = "tmpfs";
    finish_ratio(r10, ">= 1.6x", 1.6, true);
    r10->ratio = NAN;
    if (r10->met != V_ERROR) {
        int n = r10->n_sfs;
        snprintf(r10->detail, sizeof r10->detail,
                 "%d rounds of %ld iterations per thread; median ops/s: secretfs %.0f (1 "
                 "thread) %.0f (2), tmpfs %.0f (1) %.0f (2); the machine: 2 threads of a "
                 "CPU-only loop run %.2fx as fast as 1", n, n_thr, median(thr1[1], n),
                 median(thr2[1], n), median(thr1[0], n), median(thr2[0], n),
                 median(spin, n_spun));
    }
}

/* Workload 6: a fresh mount per round, then the first open+read+close of one secret. */
static void run_first_read(const struct paths *p)
{
    struct result *r = &results[5];
    struct op sfs_op = {OP_ORC, "", VALUE_LEN}, tmp_op = {OP_ORC, "", VALUE_LEN};
    char name[32];

    r->id = 6;
    r->name = "first read of a secret right after mount";
    r->unit = "us";
    r->ref_label = "tmpfs";
    secret_name(name, sizeof name, 7);
    path_join(sfs_op.path, PATH_MAX, mounts[MNT_FIRST].path, name);
    path_join(tmp_op.path, PATH_MAX, mounts[MNT_TMPFS6].path, name);
    progress("workload 6: %d fresh mounts", opt.heavy_rounds);
    for (int round = 0; round < opt.heavy_rounds && r->met != V_ERROR; round++) {
        unsigned char value[VALUE_LEN];
        double per;
        int fd;

        if (sfs_mount(MNT_FIRST, p->store_small, "kernel", NULL, NULL) < 0) {
            fail_result(r, "round %d: mount failed", round + 1);
            break;
        }
        per = op_time(&sfs_op, 1);
        bench_unmount(MNT_FIRST);
        if (per < 0) {
            fail_result(r, "round %d: the first read failed: %s", round + 1, strerror((int)-per));
            break;
        }
        add_sample(r->sfs, &r->n_sfs, per * 1e6);

        /* tmpfs: a fresh mount, the file written, then its first read */
        if (tmpfs_mount(MNT_TMPFS6) < 0) {
            fail_result(r, "round %d: tmpfs mount failed", round + 1);
            break;
        }
        secret_value(value, 7);
        fd = open(tmp_op.path, O_WRONLY | O_CREAT | O_CLOEXEC, 0400);
        if (fd < 0 || write(fd, value, sizeof value) != (ssize_t)sizeof value) {
            fail_result(r, "round %d: cannot write on tmpfs", round + 1);
            if (fd >= 0)
                close(fd);
            bench_unmount(MNT_TMPFS6);
            break;
        }
        close(fd);
        per = op_time(&tmp_op, 1);
        bench_unmount(MNT_TMPFS6);
        if (per >= 0)
            add_sample(r->ref, &r->n_ref, per * 1e6);
    }
    finish_ratio(r, "report", 0, false);
    if (r->met != V_ERROR)
        snprintf(r->detail, sizeof r->detail,
                 "%d fresh mounts (cache=kernel, 1,000 secrets); secretfs %.1f-%.1f us; tmpfs: "
                 "a fresh tmpfs, file just written", r->n_sfs, vmin(r->sfs, r->n_sfs),
                 vmax(r->sfs, r->n_sfs));
}

/* An inotify descriptor watching the directory of the daemon's generation file (README:
 * rewritten once a reload's outcome shows in .status), or -1 to poll .status instead. */
static int watch_generation(const char *notify)
{
    char dir[PATH_MAX], *slash;
    int fd;

    snprintf(dir, sizeof dir, "%s", notify);
    slash = strrchr(dir, '/');
    if (!notify[0] || !slash)
        return -1;
    *slash = '\0';
    fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd >= 0 && inotify_add_watch(fd, dir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Sends SIGHUP and waits until .status shows a generation after `gen`; returns the seconds
 * that took, or -1 (rejected, or nothing after 10 s).  With a generation file it sleeps in
 * poll() until the daemon rewrites it, so waiting costs the daemon no CPU; otherwise it
 * reads .status every 0.1 ms. */
static double timed_reload(const char *mnt, pid_t pid, int ifd, unsigned long long gen)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    struct status st;
    double t0;

    while (ifd >= 0 && read(ifd, buf, sizeof buf) > 0)
        ;
    t0 = now_s();
    if (kill(pid, SIGHUP) < 0)
        return -1;
    for (;;) {
        if (ifd >= 0) {
            struct pollfd pfd = {ifd, POLLIN, 0};
            if (poll(&pfd, 1, 100) > 0)
                while (read(ifd, buf, sizeof buf) > 0)
                    ;
        } else {
            nap_us(100);
        }
        if (read_status(mnt, &st) == 0 && st.generation > gen)
            return st.ok ? now_s() - t0 : -1;
        if (now_s() - t0 > 10)
            return -1;
    }
}

/* Workload 7: SIGHUP to the new generation in .status, against decrypting and parsing the
 * same store in-process (the floor). */
static void run_reload(const struct paths *p)
{
    struct result *r = &results[6];
    const char *mnt = mounts[MNT_RELOAD].path;
    int rounds = opt.heavy_rounds * 2 + 1, ifd = -1;
    struct status st;

    r->id = 7;
    r->name = "reload 10,000 secrets, signal to new generation";
    r->unit = "ms";
    r->ref_label = "floor";
    if (sfs_mount(MNT_RELOAD, p->store_live, "kernel", "SECRET_000000", NULL) < 0 ||
        read_status(mnt, &st) < 0) {
        fail_result(r, "mount failed");
        goto out;
    }
    ifd = watch_generation(st.notify);
    progress("workload 7: %d reloads of %d secrets", rounds, N_RELOAD);
    for (int round = 0; round < rounds && r->met != V_ERROR; round++) {
        for (int k = 0; k < 2; k++) {
            double t0, el;

            if ((k + round) % 2 == 0) {
                /* a changed store: secret 0 differs between the two versions */
                if (replace_file(p->store_reload[round % 2], p->store_live) < 0 ||
                    read_status(mnt, &st) < 0) {
                    fail_result(r, "round %d: cannot replace the store or read .status",
                                round + 1);
                    break;
                }
                el = timed_reload(mnt, mounts[MNT_RELOAD].daemon, ifd, st.generation);
                if (el < 0) {
                    fail_result(r, "round %d: no new generation, or the reload was rejected",
                                round + 1);
                    break;
                }
                add_sample(r->sfs, &r->n_sfs, el * 1e3);
            } else {
                struct sfs_err err;
                sfs_set *set = NULL;
                sfs_key *key;
                int rc;

                t0 = now_s();
                key = sfs_key_load(key_path, &err);
                rc = key ? sfs_store_read_file(p->store_live, key, &set, &err) : -EIO;
                el = now_s() - t0;
                sfs_set_free(set);
                sfs_key_free(key);
                if (rc < 0) {
                    fail_result(r, "floor: %s", err.msg);
                    break;
                }
                add_sample(r->ref, &r->n_ref, el * 1e3);
            }
        }
    }
out:
    if (ifd >= 0)
        close(ifd);
    bench_unmount(MNT_RELOAD);
    finish_ratio(r, "<= 3x floor and < 50 ms", 3, false);
    if (r->met == V_YES && r->sfs_med >= 50)
        r->met = V_NO;
    if (r->met != V_ERROR)
        snprintf(r->detail, sizeof r->detail,
                 "%d reloads (cache=kernel, one secret changed each time), %.1f-%.1f ms; floor "
                 "= key load + read + decrypt + parse in-process, %.1f-%.1f ms; waits %s",
                 r->n_sfs, vmin(r->sfs, r->n_sfs), vmax(r->sfs, r->n_sfs),
                 vmin(r->ref, r->n_ref), vmax(r->ref, r->n_ref),
                 ifd >= 0 ? "on the generation file (inotify), then reads .status"
                          : "by reading .status every 0.1 ms");
}

/* Workloads 8 and 9: mounting 100,000 secrets, and what the daemon holds per secret. */
static void run_big(const struct paths *p)
{
    struct result *r8 = &results[7], *r9 = &results[8];
    double anon[MAX_ROUNDS], locked[MAX_ROUNDS], pss[MAX_ROUNDS], views[MAX_ROUNDS];
    int n_mem = 0, n_views = 0;
    struct mem base, m;

    r8->id = 8;
    r8->name = "mount 100,000 secrets until files are visible";
    r8->unit = "ms";
    r8->ref_label = "-";
    r9->id = 9;
    r9->name = "daemon memory per secret (100,000 x 64 B)";
    r9->unit = "B";
    r9->ref_label = "-";
    if (sfs_mount(MNT_BASE, p->store_empty, "kernel", ".status", NULL) < 0 ||
        read_mem(mounts[MNT_BASE].daemon, &base) < 0) {
        fail_result(r9, "the baseline (empty store) daemon did not mount or has no smaps");
        bench_unmount(MNT_BASE);
    }
    progress("workloads 8 and 9: %d mounts of %d secrets", opt.heavy_rounds, N_BIG);
    for (int round = 0; round < opt.heavy_rounds; round++) {
        char path[PATH_MAX];
        double secs;
        int fd;

        if (sfs_mount(MNT_BIG, p->store_big, "kernel", "SECRET_050000", &secs) < 0) {
            fail_result(r8, "round %d: mount failed", round + 1);
            if (r9->met != V_ERROR)
                fail_result(r9, "no mount to measure");
            bench_unmount(MNT_BIG);
            break;
        }
        add_sample(r8->sfs, &r8->n_sfs, secs * 1e3);
        if (r9->met != V_ERROR && read_mem(mounts[MNT_BIG].daemon, &m) == 0) {
            double extra = (double)N_BIG * VALUE_LEN;
            add_sample(r9->sfs, &r9->n_sfs,
                       ((double)(m.rss - base.rss) * 1024 - extra) / N_BIG);
            anon[n_mem] = ((double)(m.anon - base.anon) * 1024 - extra) / N_BIG;
            locked[n_mem] = (double)(m.locked - base.locked) * 1024 / N_BIG;
            pss[n_mem++] = ((double)(m.pss - base.pss) * 1024 - extra) / N_BIG;
            /* the views are rendered on first read and kept with the generation */
            fd = open(path_join(path, sizeof path, mounts[MNT_BIG].path, ".env"),
                      O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                char buf[4096];
                while (read(fd, buf, sizeof buf) > 0)
                    ;
                close(fd);
                if (read_mem(mounts[MNT_BIG].daemon, &m) == 0)
                    views[n_views++] = ((double)(m.rss - base.rss) * 1024 - extra) / N_BIG;
            }
        }
        bench_unmount(MNT_BIG);
    }
    bench_unmount(MNT_BASE);
    finish_ratio(r8, "<= 1 s", 0, false);
    r8->ratio = NAN;
    if (r8->met != V_ERROR) {
        r8->met = r8->sfs_med <= 1000 ? V_YES : V_NO;
        snprintf(r8->detail, sizeof r8->detail,
                 "%d mounts: `secretfs mount` (fork, decrypt, lock, mount, wait until visible) "
                 "plus one stat, %.0f-%.0f ms", r8->n_sfs, vmin(r8->sfs, r8->n_sfs),
                 vmax(r8->sfs, r8->n_sfs));
    }
    finish_ratio(r9, "<= 200 B beyond the value", 0, false);
    r9->ratio = NAN;
    if (r9->met != V_ERROR) {
        r9->met = r9->sfs_med <= 200 ? V_YES : V_NO;
        snprintf(r9->detail, sizeof r9->detail,
                 "(Rss(100,000) - Rss(empty store) - 6,400,000 value bytes) / 100,000, "
                 "baseline Rss %ld kB; locked pages count. Same from Pss: %.0f B, anonymous "
                 "only: %.0f B; locked: %.0f B per secret; after reading .env once: %.0f B",
                 base.rss, median(pss, n_mem), median(anon, n_mem), median(locked, n_mem),
                 median(views, n_views));
    }
}

/* ---- output ---- */

static const char *verdict_text(enum verdict v)
{
    return v == V_YES ? "yes" : v == V_NO ? "NO" : v == V_REPORT ? "report" : "ERROR";
}

static void fmt_value(char *buf, size_t cap, double v, const char *unit, const char *label)
{
    if (isnan(v))
        snprintf(buf, cap, "-");
    else if (strcmp(unit, "x") == 0)
        snprintf(buf, cap, "%.2fx", v);
    else if (strcmp(unit, "B") == 0)
        snprintf(buf, cap, "%.0f B", v);
    else if (v >= 100)
        snprintf(buf, cap, "%.0f %s%s%s", v, unit, label ? " " : "", label ? label : "");
    else if (v >= 10)
        snprintf(buf, cap, "%.1f %s%s%s", v, unit, label ? " " : "", label ? label : "");
    else
        snprintf(buf, cap, "%.2f %s%s%s", v, unit, label ? " " : "", label ? label : "");
}

static void cpu_model(char *buf, size_t cap)
{
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "re");

    snprintf(buf, cap, "unknown");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            snprintf(buf, cap, "%s", colon + 2);
            buf[strcspn(buf, "\n")] = '\0';
            break;
        }
    }
    if (f)
        fclose(f);
}

static void loadavg(char *buf, size_t cap)
{
    FILE *f = fopen("/proc/loadavg", "re");

    snprintf(buf, cap, "?");
    if (f && fgets(buf, (int)cap, f)) {
        char *sp = buf;
        for (int i = 0; i < 3 && sp; i++)
            sp = strchr(sp + 1, ' ');
        if (sp)
            *sp = '\0';
    }
    if (f)
        fclose(f);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void json_num(double v)
{
    if (isnan(v) || isinf(v))
        printf("null");
    else
        printf("%.6g", v);
}

/* ---- fleet rows (11-13): tests/bench/fleet-bench.py, same run ---- */

static FILE *fleet_out;   /* what the companion printed (its table, or JSON with --json) */
static int fleet_rc = -1; /* its exit status: 0 measured, 77 skipped (no etcd), else error */

/* Runs the companion (a 3-member etcd cluster, three daemons; it cleans up after itself)
 * with its stdout captured for print_results and its progress on our stderr. */
static void run_fleet(void)
{
    const char *argv[8];
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int i = 0, status;

    fleet_out = tmpfile();
    if (!fleet_out)
        return;
    argv[i++] = "/usr/bin/python3";
    argv[i++] = SFS_BENCH_FLEET;
    argv[i++] = "--secretfs";
    argv[i++] = opt.secretfs;
    if (opt.quick)
        argv[i++] = "--quick";
    if (opt.json)
        argv[i++] = "--json";
    argv[i] = NULL;
    progress("fleet rows: %s", SFS_BENCH_FLEET);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fileno(fleet_out), STDOUT_FILENO);
    if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) == 0) {
        spawned = pid;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        spawned = 0;
        fleet_rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    posix_spawn_file_actions_destroy(&fa);
    rewind(fleet_out);
}

static void print_fleet(void)
{
    char buf[4096];
    size_t n;

    if (!opt.fleet)
        return;
    if (opt.json)
        printf(",\n  \"fleet_exit\": %d,\n  \"fleet\": ", fleet_rc);
    else
        printf("\n");
    if (!fleet_out || fleet_rc < 0) {
        printf(opt.json ? "null" : "fleet rows: %s could not be run\n", SFS_BENCH_FLEET);
        return;
    }
    if (opt.json && fleet_rc != 0 && fleet_rc != 1) {
        printf("null");
        return;
    }
    while ((n = fread(buf, 1, sizeof buf, fleet_out)) > 0)
        fwrite(buf, 1, n, stdout);
}

static void print_results(const char *load_start, double elapsed)
{
    char cpu[256], load_end[64];
    struct utsname u;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    cpu_model(cpu, sizeof cpu);
    loadavg(load_end, sizeof load_end);
    uname(&u);
    if (opt.json) {
        printf("{\n  \"machine\": {\"cpu\": ");
        json_str(cpu);
        printf(", \"cores\": %ld, \"kernel\": ", cores);
        json_str(u.release);
        printf(", \"loadavg_start\": ");
        json_str(load_start);
        printf(", \"loadavg_end\": ");
        json_str(load_end);
        printf("},\n  \"quick\": %s, \"rounds\": %d, \"heavy_rounds\": %d, \"elapsed_s\": %.1f,\n"
               "  \"workloads\": [\n", opt.quick ? "true" : "false", opt.rounds,
               opt.heavy_rounds, elapsed);
        for (int i = 0; i < 10; i++) {
            const struct result *r = &results[i];
            printf("    {\"id\": %d, \"name\": ", r->id);
            json_str(r->name);
            printf(", \"unit\": ");
            json_str(r->unit);
            printf(", \"secretfs\": ");
            json_num(r->sfs_med);
            printf(", \"reference\": ");
            json_str(r->ref_label);
            printf(", \"reference_value\": ");
            json_num(r->ref_med);
            printf(", \"ratio\": ");
            json_num(r->ratio);
            printf(", \"target\": ");
            json_str(r->target ? r->target : "");
            printf(", \"met\": %s, \"samples\": %d, \"detail\": ",
                   r->met == V_YES ? "true" : r->met == V_NO ? "false" : "null", r->n_sfs);
            json_str(r->detail);
            printf("}%s\n", i < 9 ? "," : "");
        }
        printf("  ]");
        print_fleet();
        printf("\n}\n");
        return;
    }
    printf("%-3s %-48s %12s %16s %7s  %-26s %s\n", "#", "workload", "secretfs", "tmpfs (ref)",
           "ratio", "target", "met");
    for (int i = 0; i < 10; i++) {
        const struct result *r = &results[i];
        char a[32], b[48], c[16];
        fmt_value(a, sizeof a, r->sfs_med, r->unit, NULL);
        fmt_value(b, sizeof b, r->ref_med, r->unit,
                  strcmp(r->ref_label, "floor") == 0 ? "floor" : NULL);
        if (isnan(r->ratio))
            snprintf(c, sizeof c, "-");
        else
            snprintf(c, sizeof c, "%.2fx", r->ratio);
        printf("%-3d %-48s %12s %16s %7s  %-26s %s\n", r->id, r->name, a, b, c,
               r->target ? r->target : "", verdict_text(r->met));
    }
    printf("\nmedians of interleaved rounds; ratio = secretfs / tmpfs (#7: / the floor)\n");
    for (int i = 0; i < 10; i++)
        printf("%2d: %s\n", results[i].id, results[i].detail);
    print_fleet();
    printf("\nmachine: %s, %ld cores, Linux %s; load average %s at start, %s at end; "
           "%.1f s%s\n", cpu, cores, u.release, load_start, load_end, elapsed,
           opt.quick ? " (--quick: fewer rounds, numbers are rough)" : "");
}

/* ---- main ---- */

static const char usage_text[] =
    "usage: secretfs-bench [--secretfs PATH] [--json] [--quick] [--rounds N] [--no-fleet]\n"
    "\n"
    "Mounts secretfs and a tmpfs holding the same files and runs the workloads of issue 5\n"
    "on both, interleaved; prints medians against the targets.  Needs root and /dev/fuse.\n"
    "\n"
    "  --secretfs PATH  the secretfs binary (default: the one meson built,\n"
    "                   " SFS_BENCH_SECRETFS ")\n"
    "  --json           print the results as JSON (progress still goes to stderr)\n"
    "  --quick          few rounds: checks that everything runs (numbers are rough)\n"
    "  --rounds N       rounds of workloads 1-5 and 10 (default 21)\n"
    "  --no-fleet       skip the fleet rows 11-13 (an etcd cluster: " SFS_BENCH_FLEET ")\n"
    "\n"
    "Exit status: 0 every workload was measured (whether or not targets were met),\n"
    "1 a workload could not be measured, 2 usage, 77 no root or no /dev/fuse.\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"secretfs", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
        {"quick", no_argument, NULL, 'q'},          {"rounds", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},           {"no-fleet", no_argument, NULL, 'F'},
        {NULL, 0, NULL, 0}};
    struct sigaction sa;
    struct paths paths;
    char load_start[64];
    double t_start = now_s();
    int c, rc, status = 0;

    opt.secretfs = SFS_BENCH_SECRETFS;
    opt.rounds = 21;
    opt.fleet = true;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            opt.secretfs = optarg;
            break;
        case 'j':
            opt.json = true;
            break;
        case 'q':
            opt.quick = true;
            break;
        case 'r':
            opt.rounds = atoi(optarg);
            if (opt.rounds < 1 || opt.rounds > MAX_ROUNDS) {
                fprintf(stderr, "secretfs-bench: --rounds takes 1-%d\n", MAX_ROUNDS);
                return 2;
            }
            break;
        case 'F':
            opt.fleet = false;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (opt.quick) {
        opt.rounds = opt.rounds == 21 ? 3 : opt.rounds;
        opt.heavy_rounds = 2;
        opt.batch_s = 0.005;
    } else {
        opt.heavy_rounds = 7;
        opt.batch_s = 0.03;
    }
    if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) < 0) {
        printf("SKIP: secretfs-bench needs root and /dev/fuse\n");
        return EXIT_SKIP;
    }
    if (access(opt.secretfs, X_OK) < 0) {
        fprintf(stderr, "secretfs-bench: %s: %s; pass --secretfs PATH\n", opt.secretfs,
                strerror(errno));
        return 2;
    }
    if (sfs_crypto_init() < 0) {
        fprintf(stderr, "secretfs-bench: cannot initialize libsodium\n");
        return 1;
    }
    loadavg(load_start, sizeof load_start);
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    atexit(cleanup_all);

    progress("setting up stores of %d, %d and %d secrets in /tmp", N_SMALL, N_RELOAD, N_BIG);
    rc = setup(&paths);
    if (rc == 0)
        rc = tmpfs_mount(MNT_TMPFS);
    if (rc == 0)
        rc = sfs_mount(MNT_KERNEL, paths.store_small, "kernel", ".env", NULL);
    if (rc == 0)
        rc = sfs_mount(MNT_NONE, paths.store_small, "none", ".env", NULL);
    if (rc < 0) {
        fprintf(stderr, "secretfs-bench: setup failed: %s\n", strerror(-rc));
        return 1;
    }
    run_micro();
    bench_unmount(MNT_NONE);
    bench_unmount(MNT_KERNEL);
    bench_unmount(MNT_TMPFS);
    run_first_read(&paths);
    run_reload(&paths);
    run_big(&paths);
    cleanup_all();
    if (opt.fleet)
        run_fleet();

    print_results(load_start, now_s() - t_start);
    for (int i = 0; i < 10; i++)
        if (results[i].met == V_ERROR)
            status = 1;
    if (opt.fleet && fleet_rc != 0 && fleet_rc != EXIT_SKIP)
        status = 1;
    return status;
}
