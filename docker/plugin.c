/* docker/plugin.c — the plugin process: state directory, mount children, signals.
 *
 * One mutex (`lock`) serializes everything that touches the volume table or starts or
 * reaps a child: requests (from libmicrohttpd's connection threads), SIGHUP reloads and the
 * reaper (the main thread).  A mount takes the lock for as long as `secretfs mount` runs
 * (it returns once the files are visible), so requests are handled one at a time.
 *
 * The plugin is a child subreaper: the mount daemons (grandchildren, after `secretfs mount`
 * exits) stay its children, so it reaps them and sees when they are gone, as it must
 * anyway when it runs as PID 1 of a managed plugin's container.
 */
#include "docker/plugin.h"
#include "fs/status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "docker/http.h"
#include "util/log.h"
#include "util/process.h"

extern char **environ;

#define STATE_FILE "volumes.json"
#define LOCK_FILE "lock"
#define MOUNT_TIMEOUT_S 60.0
#define RELOAD_TIMEOUT "10"
#define RELOAD_CHILD_TIMEOUT_S 20.0
#define UNMOUNT_WAIT_S 10.0
#define CHILD_OUTPUT_MAX 8192
#define NAMES_TTL_S 5.0       /* names of a store that is no file, kept for Get and List */

struct plugin {
    const struct sfs_docker_plugin_opts *o;
    char *volumes_dir;        /* absolute, symlinks resolved: as /proc/self/mountinfo shows it */
    char *state_file;
    int lock_fd;
    int vols_fd;              /* volumes_dir, opened once: mountpoints are made relative to it */
    pthread_mutex_t lock;
    sfs_docker_api *api;
    char *audit;              /* "journal", the audit directory (realpath), or NULL */
    char *names;              /* the store's names as last listed (op_store_names), or NULL */
    struct stat names_of;     /* the store file then (o->store_file) */
    double names_at;          /* when (now_s) */
};

/* ---- small helpers ---- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* mkdir -p; the directories it creates get `mode`.  The last one must end up a directory. */
static int make_dirs(const char *path, mode_t mode, struct sfs_err *err)
{
    char *copy = strdup(path), *p, saved;
    struct stat st;
    int rc = 0;

    if (!copy)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    for (p = copy + 1; ; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        saved = *p;
        *p = '\0';
        if (mkdir(copy, mode) < 0 && errno != EEXIST) {
            rc = sfs_err_set(err, -errno, "%s: cannot create directory: %s", copy,
                             strerror(errno));
            goto out;
        }
        *p = saved;
        if (!saved)
            break;
    }
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        rc = sfs_err_set(err, -ENOTDIR, "%s: not a directory", path);
out:
    free(copy);
    return rc;
}

/* The directory of a socket: on a fresh boot /run/docker/plugins exists only once dockerd
 * has run, and the plugin may start first.  Created 0700 (only root, dockerd, connects). */
static int make_dirs_of(const char *path, struct sfs_err *err)
{
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    int rc = 0;

    if (!dir)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    if (slash && slash != dir) {
        *slash = '\0';
        rc = make_dirs(dir, 0700, err);
    }
    free(dir);
    return rc;
}

/* The StrictModes rule (as OpenSSH applies it): a directory the plugin trusts, and every
 * directory above it, belongs to root or to the plugin's user and is not writable by
 * group or others, else someone else could swap what the plugin reads or mounts on.  Above
 * it, a sticky directory owned by root (/tmp) is fine: others cannot rename what is not
 * theirs in it.  `real` is a realpath. */
static int check_trusted(const char *real, struct sfs_err *err)
{
    char *dir = strdup(real), *slash;
    bool top = true;
    struct stat st;
    int rc = 0;

    if (!dir)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    for (;;) {
        const char *shown = dir[0] ? dir : "/";

        if (stat(shown, &st) < 0) {
            rc = sfs_err_set(err, -errno, "%s: %s", shown, strerror(errno));
            break;
        }
        if (st.st_uid != 0 && st.st_uid != geteuid()) {
            rc = sfs_err_set(err, -EPERM, "%s: owned by uid %lu, neither root nor the plugin's "
                             "user (uid %lu), who could swap what the plugin trusts under %s; "
                             "chown it to root", shown, (unsigned long)st.st_uid,
                             (unsigned long)geteuid(), real);
            break;
        }
        if ((st.st_mode & 022) && (top || !(st.st_mode & S_ISVTX) || st.st_uid != 0)) {
            rc = sfs_err_set(err, -EPERM, "%s: writable by group or others (mode %04o), who "
                             "could swap what the plugin trusts under %s; chmod go-w it",
                             shown, (unsigned)(st.st_mode & 07777), real);
            break;
        }
        slash = strrchr(dir, '/');
        if (!slash || !dir[0])
            break;
        *slash = '\0';
        top = false;
    }
    free(dir);
    return rc;
}

/* A directory of ours: created 0700 if missing, then held to check_trusted (an existing
 * one keeps its mode).  One that others may look inside is reported. */
static int private_dir(const char *path, struct sfs_err *err)
{
    struct stat st;
    char *real;
    int rc = make_dirs(path, 0700, err);

    if (rc < 0)
        return rc;
    real = realpath(path, NULL);
    if (!real)
        return sfs_err_set(err, -errno, "%s: %s", path, strerror(errno));
    rc = check_trusted(real, err);
    if (rc == 0 && stat(real, &st) == 0 && (st.st_mode & 077))
        sfs_warn("%s: mode %04o lets others look inside; 0700 is enough for Docker", path,
                 (unsigned)(st.st_mode & 07777));
    free(real);
    return rc;
}

static char *path_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *s = malloc(len);

    if (s)
        snprintf(s, len, "%s/%s", dir, name);
    return s;
}

/* The pid of the daemon serving MOUNTPOINT (its volumes' .status is a container view: the
 * pid comes from the generation file), or 0 (stale mount, not secretfs, no daemon). */
static pid_t status_pid(const char *mountpoint)
{
    struct sfs_status st;
    struct sfs_err err;

    return sfs_status_read_verified(mountpoint, &st, &err) == 0 ? (pid_t)st.pid : 0;
}

/* True once `pid` has exited: reaped here if it is our child (the plugin is a subreaper),
 * else gone or a zombie of someone else. */
static bool pid_gone(pid_t pid)
{
    char path[64], buf[512], *paren;
    ssize_t n;
    int fd, status;
    pid_t r = waitpid(pid, &status, WNOHANG);

    if (r == pid)
        return true;
    if (r == 0)
        return false;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return true;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

static bool wait_gone(pid_t pid, double timeout)
{
    double deadline = now_s() + timeout;

    while (!pid_gone(pid)) {
        if (now_s() > deadline)
            return false;
        nap_ms(10);
    }
    return true;
}

/* Decodes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_mountinfo(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* Whether something is mounted at `path` in the mount table `mountinfo`; then the topmost
 * mount's type in fstype and its device ("major:minor") in dev (either may be NULL). */
static bool mounted_in(const char *mountinfo, const char *path, char *fstype, size_t size,
                       char *dev, size_t dev_size)
{
    FILE *f = fopen(mountinfo, "re");
    char *line = NULL;
    size_t cap = 0;
    bool found = false;

    if (!f)
        return false;
    while (getline(&line, &cap, f) > 0) {
        char *save = NULL, *field, *mnt = NULL, *type = NULL, *devno = NULL;
        int i;

        for (i = 0, field = strtok_r(line, " \n", &save); field;
             i++, field = strtok_r(NULL, " \n", &save)) {
            if (i == 2)
                devno = field;
            else if (i == 4)
                mnt = field;
            else if (mnt && strcmp(field, "-") == 0) {
                type = strtok_r(NULL, " \n", &save);
                break;
            }
        }
        if (!mnt || !type || !devno)
            continue;
        unescape_mountinfo(mnt);
        if (strcmp(mnt, path) == 0) {
            found = true;
            if (fstype)
                snprintf(fstype, size, "%s", type);
            if (dev)
                snprintf(dev, dev_size, "%s", devno);
        }
    }
    free(line);
    fclose(f);
    return found;
}

static bool mounted_at(const char *path, char *fstype, size_t size)
{
    return mounted_in("/proc/self/mountinfo", path, fstype, size, NULL, 0);
}

/* Whether the mount table `mountinfo` holds device `dev` anywhere but at `except`. */
static bool table_holds(const char *mountinfo, const char *dev, const char *except)
{
    FILE *f = fopen(mountinfo, "re");
    char *line = NULL;
    size_t cap = 0, dev_len = strlen(dev);
    bool held = false;

    if (!f)
        return false;
    while (!held && getline(&line, &cap, f) > 0) {
        char *p = line, *mnt;
        size_t i;

        for (i = 0; i < 2 && p; i++) /* mount ID, parent ID */
            p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL;
        if (!p || strncmp(p, dev, dev_len) != 0 || p[dev_len] != ' ')
            continue;
        mnt = strchr(p + dev_len + 1, ' '); /* past the root field */
        if (!mnt)
            continue;
        *strchrnul(++mnt, ' ') = '\0';
        unescape_mountinfo(mnt);
        held = !except || strcmp(mnt, except) != 0;
    }
    free(line);
    fclose(f);
    return held;
}

/* ---- children: `secretfs mount`, `secretfs reload`, fusermount3 ---- */

/* The last non-empty line of a child's output, without "secretfs CMD: error: ". */
static void last_line(char *out, char *dst, size_t size)
{
    char *end = out + strlen(out), *start, *tag;

    while (end > out && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        *--end = '\0';
    start = strrchr(out, '\n');
    start = start ? start + 1 : out;
    tag = strstr(start, ": error: ");
    if (tag)
        start = tag + strlen(": error: ");
    snprintf(dst, size, "%s", *start ? start : "(no message)");
}

/* What a child is handed besides argv (see spawn_child): a descriptor as CHILD_FD (the
 * directory `mount --mountpoint-fd` mounts on), and the key file's passphrase, through a
 * pipe of its own as PASS_FD, named by SECRETFS_PASSPHRASE_FD in its environment. */
#define CHILD_FD 3
#define CHILD_FD_ARG "3"
#define PASS_FD 4
#define PASS_FD_ARG "4"
#define PASS_ENV "SECRETFS_PASSPHRASE_FD"

struct child_io {
    int dir_fd;              /* handed as CHILD_FD, or -1 */
    const char *passphrase;  /* handed as PASS_FD, or NULL */
    size_t passphrase_len;
};

/* A copy of `fd` above the numbers a child is handed (close-on-exec), so that handing one
 * never overwrites another; -1 with errno set. */
static int above_child_fds(int fd)
{
    return fcntl(fd, F_DUPFD_CLOEXEC, PASS_FD + 1);
}

/* A pipe that holds the passphrase and then ends, as a reader of SECRETFS_PASSPHRASE_FD
 * wants it: returns the read end (close-on-exec, above the child numbers) or -errno.  The
 * passphrase goes in with "\r\n" after it, which the reader drops (one "\n", then one
 * "\r"), so the child reads exactly these bytes, whatever they end with.  One writev of
 * less than PIPE_BUF bytes: it never blocks, and the bytes leave the kernel once the child
 * has read them (a memfd would hold them as long as a mount's daemon keeps it open). */
static int passphrase_pipe(const char *pass, size_t len)
{
    struct iovec iov[2] = {{(void *)pass, len}, {"\r\n", 2}};
    int fds[2], rfd, rc = 0;
    ssize_t n;

    if (len > PIPE_BUF - 2)
        return -E2BIG;
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    n = writev(fds[1], iov, 2);
    if (n != (ssize_t)(len + 2))
        rc = n < 0 ? -errno : -EIO;
    close(fds[1]);
    rfd = rc == 0 ? above_child_fds(fds[0]) : -1;
    if (rc == 0 && rfd < 0)
        rc = -errno;
    close(fds[0]);
    return rc < 0 ? rc : rfd;
}

/* The plugin's environment for a child: without SECRETFS_PASSPHRASE_FD (the plugin's own,
 * read and closed at start: a child must not take that number for its passphrase), plus
 * SECRETFS_PASSPHRASE_FD=PASS_FD when `pass`.  The array is malloc'd (free it), the strings
 * are environ's; NULL when out of memory. */
static char **child_env(bool pass)
{
    static char pass_var[] = PASS_ENV "=" PASS_FD_ARG;
    size_t n = 0, i, len = strlen(PASS_ENV);
    char **env;

    while (environ[n])
        n++;
    env = malloc((n + 2) * sizeof *env);
    if (!env)
        return NULL;
    for (i = 0, n = 0; environ[i]; i++)
        if (strncmp(environ[i], PASS_ENV, len) != 0 || environ[i][len] != '=')
            env[n++] = environ[i];
    if (pass)
        env[n++] = pass_var;
    env[n] = NULL;
    return env;
}

/* Starts `path` (searched in PATH when it has no '/') with argv, in a session of its own
 * (no terminal to ask a passphrase on), with stdin /dev/null, stdout and stderr to mfd,
 * `dir_fd` (if >= 0) as CHILD_FD, `pass_fd` (if >= 0) as PASS_FD with its environment
 * variable, no other descriptors, default signal dispositions, an empty mask.  Both
 * descriptors must be above PASS_FD. */
static int spawn_child(const char *path, char *const argv[], int mfd, int dir_fd, int pass_fd,
                       pid_t *pid, char *msg, size_t size)
{
    static const int reset[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGCHLD, SIGUSR1,
                                SIGUSR2, SIGALRM};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    char **env = child_env(pass_fd >= 0);
    int rc, top = STDERR_FILENO;
    size_t i;

    if (!env) {
        snprintf(msg, size, "out of memory");
        return -ENOMEM;
    }
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (i = 0; i < sizeof reset / sizeof reset[0]; i++)
        sigaddset(&defaults, reset[i]);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, mfd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, mfd, STDERR_FILENO);
    if (dir_fd >= 0) {
        posix_spawn_file_actions_adddup2(&fa, dir_fd, CHILD_FD); /* clears FD_CLOEXEC */
        top = CHILD_FD;
    }
    if (pass_fd >= 0) {
        if (dir_fd < 0)
            posix_spawn_file_actions_addclose(&fa, CHILD_FD);
        posix_spawn_file_actions_adddup2(&fa, pass_fd, PASS_FD);
        top = PASS_FD;
    }
    posix_spawn_file_actions_addclosefrom_np(&fa, top + 1);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                    POSIX_SPAWN_SETSID);
    rc = posix_spawnp(pid, path, &fa, &attr, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(env);
    if (rc != 0)
        snprintf(msg, size, "cannot run %s: %s", path, strerror(rc));
    return -rc;
}

/* The descriptors of `io` as spawn_child takes them (above PASS_FD), into *dir_fd and
 * *pass_fd (-1 for none; the caller closes the others).  0 or -errno with msg set. */
static int child_fds(const struct child_io *io, int *dir_fd, int *pass_fd, char *msg,
                     size_t size)
{
    *dir_fd = *pass_fd = -1;
    if (!io)
        return 0;
    if (io->dir_fd >= 0 && (*dir_fd = above_child_fds(io->dir_fd)) < 0) {
        snprintf(msg, size, "fcntl: %s", strerror(errno));
        return -errno;
    }
    if (io->passphrase) {
        *pass_fd = passphrase_pipe(io->passphrase, io->passphrase_len);
        if (*pass_fd < 0) {
            snprintf(msg, size, "cannot hand the passphrase to the child: %s",
                     strerror(-*pass_fd));
            return *pass_fd;
        }
    }
    return 0;
}

/* Waits at most `timeout` seconds for the child (then SIGKILL). */
static int wait_child(pid_t pid, double timeout, char *const argv[], int *status, char *msg,
                      size_t size)
{
    double deadline = now_s() + timeout;

    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR) {
            snprintf(msg, size, "waitpid: %s", strerror(errno));
            return -errno;
        }
        if (now_s() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, status, 0);
            snprintf(msg, size, "%s %s did not finish within %.0f s", argv[0], argv[1],
                     timeout);
            return -ETIMEDOUT;
        }
        nap_ms(5);
    }
}

/* The whole of what the child wrote to mfd, malloc'd and NUL-terminated, or NULL. */
static char *child_output(int mfd)
{
    off_t end = lseek(mfd, 0, SEEK_END);
    char *buf = end >= 0 ? malloc((size_t)end + 1) : NULL;
    ssize_t n = buf ? pread(mfd, buf, (size_t)end, 0) : -1;

    if (n < 0 || n != end) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* Runs a child (see spawn_child) for at most `timeout` seconds, handed what `io` holds
 * (NULL: nothing).  Returns the exit status (0-255), -ETIMEDOUT, -EINTR when it was killed
 * by a signal, or another -errno; `msg` gets the last line of its output, and *output
 * (when not NULL) all of it, malloc'd (NULL on failure). */
static int run_child_output(const char *path, char *const argv[], double timeout,
                            const struct child_io *io, char **output, char *msg, size_t size)
{
    char out[CHILD_OUTPUT_MAX];
    int mfd, dir_fd = -1, pass_fd = -1, status = 0, rc;
    ssize_t n;
    pid_t pid;

    msg[0] = '\0';
    if (output)
        *output = NULL;
    mfd = memfd_create("secretfs-child", MFD_CLOEXEC);
    if (mfd < 0) {
        snprintf(msg, size, "memfd_create: %s", strerror(errno));
        return -errno;
    }
    rc = child_fds(io, &dir_fd, &pass_fd, msg, size);
    if (rc == 0)
        rc = spawn_child(path, argv, mfd, dir_fd, pass_fd, &pid, msg, size);
    if (dir_fd >= 0)
        close(dir_fd);
    if (pass_fd >= 0)
        close(pass_fd); /* the child has its copy; what it did not read goes when it exits */
    if (rc < 0)
        goto out_close;
    rc = wait_child(pid, timeout, argv, &status, msg, size);
    if (rc < 0)
        goto out_close;
    n = pread(mfd, out, sizeof out - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    last_line(out, msg, size);
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : -EINTR;
    if (output && rc == 0 && !(*output = child_output(mfd))) {
        snprintf(msg, size, "out of memory");
        rc = -ENOMEM;
    }
out_close:
    close(mfd);
    return rc;
}

static int run_child(const char *path, char *const argv[], double timeout, char *msg,
                     size_t size)
{
    return run_child_output(path, argv, timeout, NULL, NULL, msg, size);
}

/* What a child that reads the key file is handed: the passphrase, when there is one. */
static struct child_io key_reader_io(const struct plugin *p)
{
    return (struct child_io){-1, p->o->passphrase, p->o->passphrase_len};
}

/* argv for `secretfs CMD` with the plugin's --config/--store/--key-file first. */
static size_t base_argv(struct plugin *p, const char *cmd, char **argv)
{
    size_t n = 0;

    argv[n++] = "secretfs";
    argv[n++] = (char *)cmd;
    if (p->o->config_path) {
        argv[n++] = "--config";
        argv[n++] = (char *)p->o->config_path;
    }
    if (p->o->store_path && strcmp(cmd, "reload") != 0) {
        argv[n++] = "--store";
        argv[n++] = (char *)p->o->store_path;
    }
    if (p->o->key_file && strcmp(cmd, "reload") != 0) {
        argv[n++] = "--key-file";
        argv[n++] = (char *)p->o->key_file;
    }
    return n;
}

/* ---- the ops ---- */

/* Creates VOLUMES/NAME relative to the volumes directory's descriptor (mkdirat, then
 * openat with O_NOFOLLOW), so no name swapped above or at it can make the plugin create
 * or accept a mountpoint elsewhere; it must be a directory of the plugin's user.  Returns
 * its descriptor, through which the child mounts (--mountpoint-fd), or -errno. */
static int mountpoint_dir(struct plugin *p, const struct sfs_docker_volume *v,
                          struct sfs_err *err)
{
    struct stat st;
    int fd, rc;

    if (mkdirat(p->vols_fd, v->name, 0700) < 0 && errno != EEXIST)
        return sfs_err_set(err, -errno, "%s: cannot create the mountpoint: %s",
                           v->mountpoint, strerror(errno));
    fd = openat(p->vols_fd, v->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sfs_err_set(err, errno == ELOOP ? -ENOTDIR : -errno, "%s: %s", v->mountpoint,
                           errno == ELOOP || errno == ENOTDIR ? "not a directory (a symlink "
                           "or a file is there); remove it" : strerror(errno));
    if (fstat(fd, &st) < 0)
        rc = sfs_err_set(err, -errno, "%s: %s", v->mountpoint, strerror(errno));
    else if (st.st_uid != geteuid())
        rc = sfs_err_set(err, -EPERM, "%s: owned by uid %lu, not the plugin's user; remove it",
                         v->mountpoint, (unsigned long)st.st_uid);
    else
        return fd;
    close(fd);
    return rc;
}

/* The -o of a volume's mount.  Containers read its .status: no host pid or paths in it
 * (status=container, fs/status.h).  With the plugin's audit every open is recorded, which
 * needs cache=none; without it, noaudit, so that the config's [mount] audit (meant for the
 * host's own mount, like the rest of [mount]) never applies to a volume.  The audit
 * directory has no ',' (cmd_docker refuses one) and volume names have none. */
static void mount_opts(const struct plugin *p, const struct sfs_docker_volume *v, char *buf,
                       size_t size)
{
    bool journal = p->audit && strcmp(p->audit, "journal") == 0;

    snprintf(buf, size, "cache=%s,uid=%lu,gid=%lu,mode=%04o,allow_other,status=container,"
             "%s%s%s%s%s", v->cache_none || p->audit ? "none" : "kernel",
             (unsigned long)v->uid, (unsigned long)v->gid, (unsigned)v->mode,
             p->audit ? "audit=" : "noaudit", p->audit ? p->audit : "",
             p->audit && !journal ? "/" : "", p->audit && !journal ? v->name : "",
             p->audit && !journal ? ".log" : "");
}

static int op_mount(void *ctx, const struct sfs_docker_volume *v, struct sfs_err *err)
{
    struct plugin *p = ctx;
    char *argv[20], opts[PATH_MAX + 512], msg[SFS_ERR_MAX];
    struct child_io io = key_reader_io(p);
    size_t n;
    int rc, dirfd;

    dirfd = mountpoint_dir(p, v, err);
    if (dirfd < 0)
        return dirfd;
    mount_opts(p, v, opts, sizeof opts);
    n = base_argv(p, "mount", argv);
    argv[n++] = "--only";           /* '' serves every name, whatever [mount] only says */
    argv[n++] = (char *)(v->secrets ? v->secrets : "");
    argv[n++] = "-o";
    argv[n++] = opts;
    argv[n++] = "--mountpoint-fd";  /* the mount lands on the directory just checked */
    argv[n++] = CHILD_FD_ARG;
    argv[n++] = (char *)v->mountpoint;
    argv[n] = NULL;
    io.dir_fd = dirfd;
    rc = run_child_output(p->o->exe, argv, MOUNT_TIMEOUT_S, &io, NULL, msg, sizeof msg);
    close(dirfd);
    if (rc != 0)
        return sfs_err_set(err, rc < 0 ? rc : -EIO, "%s", msg);
    sfs_info("volume %s: mounted at %s (secrets: %s; owner %lu:%lu, mode %04o, cache=%s%s%s)",
             v->name, v->mountpoint, v->secrets ? v->secrets : "all", (unsigned long)v->uid,
             (unsigned long)v->gid, (unsigned)v->mode,
             v->cache_none || p->audit ? "none" : "kernel", p->audit ? ", audit=" : "",
             p->audit ? strstr(opts, ",audit=") + 7 : "");
    return 0;
}

static int fusermount_u(const char *mountpoint, bool lazy, struct sfs_err *err)
{
    char *argv[5], msg[SFS_ERR_MAX];
    size_t n = 0;
    int rc;

    argv[n++] = "fusermount3";
    argv[n++] = "-u";
    if (lazy)
        argv[n++] = "-z";
    argv[n++] = (char *)mountpoint;
    argv[n] = NULL;
    rc = run_child("fusermount3", argv, UNMOUNT_WAIT_S, msg, sizeof msg);
    if (rc != 0)
        return sfs_err_set(err, rc < 0 ? rc : -EIO, "fusermount3 -u: %s", msg);
    return 0;
}

/* umount2 on VOLUMES/NAME through the volumes directory's descriptor, as the mount was
 * made: /proc/self/fd/VOLS/NAME with UMOUNT_NOFOLLOW, so a name swapped since (a symlink)
 * cannot point the unmount elsewhere.  (A descriptor of the mount's own root would hold the
 * mount busy: the unmount would always have to detach.)  -1 with errno set, as umount2. */
static int umount_volume(struct plugin *p, const struct sfs_docker_volume *v, int flags)
{
    char target[64 + NAME_MAX];

    if ((size_t)snprintf(target, sizeof target, "/proc/self/fd/%d/%s", p->vols_fd, v->name) >=
        sizeof target) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return umount2(target, flags | UMOUNT_NOFOLLOW);
}

static int op_unmount(void *ctx, const struct sfs_docker_volume *v, struct sfs_err *err)
{
    struct plugin *p = ctx;
    pid_t pid = status_pid(v->mountpoint);
    int rc = 0;

    if (umount_volume(p, v, 0) < 0) {
        if (errno == EINVAL || errno == ENOENT || errno == ELOOP) {
            rc = 0; /* nothing mounted there (or a symlink the plugin never made) */
        } else if (errno == EBUSY) {
            sfs_warn("volume %s: %s is busy; detaching it (its daemon exits once the last "
                     "user lets go)", v->name, v->mountpoint);
            if (umount_volume(p, v, MNT_DETACH) < 0)
                rc = sfs_err_set(err, -errno, "%s: %s", v->mountpoint, strerror(errno));
            pid = 0;
        } else if (errno == EPERM) {
            rc = fusermount_u(v->mountpoint, false, err);
            if (rc < 0) {
                rc = fusermount_u(v->mountpoint, true, err);
                pid = 0;
            }
        } else {
            rc = sfs_err_set(err, -errno, "%s: %s", v->mountpoint, strerror(errno));
        }
    }
    if (rc < 0)
        return rc;
    if (pid > 0 && !wait_gone(pid, UNMOUNT_WAIT_S))
        sfs_warn("volume %s: its daemon (pid %ld) is still running %.0f s after the unmount",
                 v->name, (long)pid, UNMOUNT_WAIT_S);
    sfs_info("volume %s: unmounted %s", v->name, v->mountpoint);
    return 0;
}

static int op_reload(void *ctx, const struct sfs_docker_volume *v, struct sfs_err *err)
{
    struct plugin *p = ctx;
    char *argv[12], msg[SFS_ERR_MAX];
    size_t n = base_argv(p, "reload", argv);
    int rc;

    argv[n++] = "--timeout";
    argv[n++] = RELOAD_TIMEOUT;
    argv[n++] = (char *)v->mountpoint;
    argv[n] = NULL;
    rc = run_child(p->o->exe, argv, RELOAD_CHILD_TIMEOUT_S, msg, sizeof msg);
    if (rc != 0)
        return sfs_err_set(err, rc < 0 ? rc : -EIO, "%s", msg);
    sfs_info("volume %s: %s", v->name, msg);
    return 0;
}

/* A live mount kept (adopted at start, or found at a Mount) serves as it was mounted: one
 * made before the plugin's audit setting changed says so, until it is mounted again. */
static enum sfs_docker_probe op_probe(void *ctx, const struct sfs_docker_volume *v)
{
    struct plugin *p = ctx;
    struct sfs_status status;
    struct sfs_err err;
    char fstype[64];
    struct stat st;

    if (!mounted_at(v->mountpoint, fstype, sizeof fstype))
        return SFS_DOCKER_NOT_MOUNTED;
    if (strcmp(fstype, "fuse.secretfs") != 0 || stat(v->mountpoint, &st) < 0 ||
        sfs_status_read_verified(v->mountpoint, &status, &err) < 0 || status.pid <= 0 ||
        pid_gone((pid_t)status.pid))
        return SFS_DOCKER_STALE;
    if (!status.audit[0] != !p->audit)
        sfs_warn("volume %s: its mount is %s audited (it was mounted before the plugin's "
                 "--audit changed); it follows the setting once mounted again, when no "
                 "container uses it", v->name, status.audit[0] ? "still" : "not");
    return SFS_DOCKER_LIVE;
}

/* Writes the table: a temporary file in the state directory, fsync, rename, fsync the
 * directory.  A crash leaves the old file or the new one, never a mix. */
static int op_save(void *ctx, const char *json, size_t len, struct sfs_err *err)
{
    struct plugin *p = ctx;
    char tmp[PATH_MAX];
    size_t off = 0;
    int fd, dfd, rc = 0;

    snprintf(tmp, sizeof tmp, "%s.tmp", p->state_file);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sfs_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
    while (off < len) {
        ssize_t n = write(fd, json + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = sfs_err_set(err, -errno, "%s: cannot write: %s", tmp, strerror(errno));
            goto out_close;
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0) {
        rc = sfs_err_set(err, -errno, "%s: cannot fsync: %s", tmp, strerror(errno));
        goto out_close;
    }
    if (rename(tmp, p->state_file) < 0) {
        rc = sfs_err_set(err, -errno, "%s: cannot rename: %s", p->state_file, strerror(errno));
        goto out_close;
    }
    dfd = open(p->o->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) < 0 && errno != EINVAL)
            rc = sfs_err_set(err, -errno, "%s: cannot fsync: %s", p->o->state_dir,
                             strerror(errno));
        close(dfd);
    }
out_close:
    close(fd);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* The store's names, from `secretfs list --json` (names and sizes, never values). */
static int list_store(struct plugin *p, char **names, struct sfs_err *err)
{
    char *argv[12], msg[SFS_ERR_MAX], *out = NULL, *list = NULL;
    struct child_io io = key_reader_io(p);
    size_t n = base_argv(p, "list", argv), len = 0, i;
    json_error_t jerr;
    json_t *arr = NULL;
    int rc;

    argv[n++] = "--json";
    argv[n] = NULL;
    rc = run_child_output(p->o->exe, argv, MOUNT_TIMEOUT_S, &io, &out, msg, sizeof msg);
    if (rc != 0) {
        rc = sfs_err_set(err, rc < 0 ? rc : -EIO, "cannot list the store: %s", msg);
        goto out;
    }
    arr = json_loads(out, 0, &jerr);
    list = calloc(1, json_is_array(arr) ? strlen(out) + 1 : 1);
    if (!json_is_array(arr) || !list) {
        rc = sfs_err_set(err, list ? -EIO : -ENOMEM, "cannot list the store: %s",
                         list ? "secretfs list --json printed no list" : "out of memory");
        goto out;
    }
    for (i = 0; i < json_array_size(arr); i++) {
        const char *name = json_string_value(json_object_get(json_array_get(arr, i), "name"));
        if (name)
            len += (size_t)sprintf(list + len, "%s\n", name); /* fits: they came from out */
    }
    *names = list;
    list = NULL;
out:
    json_decref(arr);
    free(list);
    free(out);
    return rc;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Whether the names kept from the last list still answer: for a store file, while it is
 * the same file (`now` is its stat, taken before listing again); else, for Get and List
 * (not `fresh`), for NAMES_TTL_S. */
static bool names_kept(const struct plugin *p, bool fresh, const struct stat *now)
{
    if (!p->names)
        return false;
    if (p->o->store_file)
        return now && same_file(now, &p->names_of);
    return !fresh && now_s() - p->names_at < NAMES_TTL_S;
}

/* The store's names, listed again only when they may have changed (names_kept): each
 * `secretfs list` derives a protected key again (Argon2id), and dockerd sends several Gets
 * for one `docker run`.  A list that fails is never kept. */
static int op_store_names(void *ctx, bool fresh, char **names, struct sfs_err *err)
{
    struct plugin *p = ctx;
    struct stat st = {0};
    bool have_st = p->o->store_file && stat(p->o->store_file, &st) == 0;
    int rc;

    if (names_kept(p, fresh, have_st ? &st : NULL)) {
        *names = strdup(p->names);
        return *names ? 0 : sfs_err_set(err, -ENOMEM, "out of memory");
    }
    free(p->names);
    p->names = NULL;
    rc = list_store(p, names, err);
    if (rc < 0 || (p->o->store_file && !have_st))
        return rc;
    p->names = strdup(*names); /* not kept when out of memory: listed again next time */
    p->names_of = st;
    p->names_at = now_s();
    return 0;
}

#define MAX_SEEN_NS 1024

/* A container holds the volume when its mount's device appears in some mount table other
 * than at the volume's own mountpoint (containers live in mount namespaces of their own,
 * seen through /proc): 1 held, 0 not.  As PID 1 (a managed plugin in a pid namespace of
 * its own) the plugin cannot see containers: -1. */
static int op_held(void *ctx, const struct sfs_docker_volume *v)
{
    char dev[32], path[64];
    ino_t seen[MAX_SEEN_NS];
    size_t n_seen = 0, i;
    struct stat self, ns;
    struct dirent *de;
    bool held = false;
    DIR *d;

    (void)ctx;
    if (getpid() == 1)
        return -1;
    if (!mounted_in("/proc/self/mountinfo", v->mountpoint, NULL, 0, dev, sizeof dev))
        return 0;
    if (table_holds("/proc/self/mountinfo", dev, v->mountpoint))
        return 1;
    d = opendir("/proc");
    if (!d || stat("/proc/self/ns/mnt", &self) < 0) {
        if (d)
            closedir(d);
        return -1;
    }
    while (!held && (de = readdir(d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%.20s/ns/mnt", de->d_name);
        if (stat(path, &ns) < 0 || ns.st_ino == self.st_ino)
            continue;
        for (i = 0; i < n_seen && seen[i] != ns.st_ino; i++)
            ;
        if (i < n_seen)
            continue;
        if (n_seen < MAX_SEEN_NS)
            seen[n_seen++] = ns.st_ino;
        snprintf(path, sizeof path, "/proc/%.20s/mountinfo", de->d_name);
        held = table_holds(path, dev, v->mountpoint);
    }
    closedir(d);
    return held ? 1 : 0;
}

static void op_removed(void *ctx, const struct sfs_docker_volume *v)
{
    struct plugin *p = ctx;

    if (unlinkat(p->vols_fd, v->name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        sfs_warn("volume %s: cannot remove %s: %s", v->name, v->mountpoint, strerror(errno));
    sfs_info("volume %s: removed", v->name);
}

/* ---- requests ---- */

static void handle(void *ctx, const char *path, const void *body, size_t len,
                   struct sfs_docker_reply *reply)
{
    struct plugin *p = ctx;

    pthread_mutex_lock(&p->lock);
    sfs_docker_api_handle(p->api, path, body, len, reply);
    pthread_mutex_unlock(&p->lock);
    if (!reply->body)
        sfs_warn("%s: out of memory", path);
    else if (reply->status == 200)
        sfs_debug("%s: 200", path);
    else /* Docker asks Get before every Create: a miss there is routine */
        sfs_log(strcmp(path, "/VolumeDriver.Get") == 0 ? LOG_DEBUG : LOG_WARNING, "%s: %d %.*s",
                path, reply->status, (int)(reply->len < 700 ? reply->len : 700), reply->body);
}

static void reap(struct plugin *p)
{
    int status;

    pthread_mutex_lock(&p->lock);
    while (waitpid(-1, &status, WNOHANG) > 0)
        ;
    pthread_mutex_unlock(&p->lock);
}

/* ---- start and stop ---- */

static int read_state(struct plugin *p, struct sfs_err *err)
{
    struct stat st;
    char *buf = NULL;
    size_t off = 0;
    int fd, rc = 0;

    fd = open(p->state_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0)
        return sfs_err_set(err, -errno, "%s: %s", p->state_file, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = sfs_err_set(err, -EINVAL, "%s: not a regular file", p->state_file);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = sfs_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    while (off < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = sfs_err_set(err, n < 0 ? -errno : -EIO, "%s: cannot read", p->state_file);
            goto out;
        }
        off += (size_t)n;
    }
    rc = sfs_docker_api_load(p->api, buf, off, err);
    if (rc < 0)
        sfs_err_prefix(err, "%s", p->state_file);
out:
    free(buf);
    close(fd);
    return rc;
}

/* Keeps 0, 1 and 2 open, so no file we open later becomes a child's stdout by accident. */
static void ensure_stdio(void)
{
    int fd;

    while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= STDERR_FILENO)
        ;
    if (fd > STDERR_FILENO)
        close(fd);
}

/* The plugin-wide audit: "journal", or a directory of ours (private_dir: created 0700 and
 * trusted as the state directory is) whose NAME.log each volume's daemon writes. */
static int open_audit(struct plugin *p, struct sfs_err *err)
{
    int rc;

    if (!p->o->audit)
        return 0;
    if (strcmp(p->o->audit, "journal") == 0) {
        p->audit = strdup("journal");
    } else {
        rc = private_dir(p->o->audit, err);
        if (rc < 0) {
            sfs_err_prefix(err, "--audit");
            return rc;
        }
        p->audit = realpath(p->o->audit, NULL);
        if (!p->audit)
            return sfs_err_set(err, -errno, "--audit %s: %s", p->o->audit, strerror(errno));
    }
    if (!p->audit || sfs_docker_api_set_audit(p->api, p->audit) < 0)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    sfs_info("every volume's mount records each open (audit=%s%s, cache=none)", p->audit,
             strcmp(p->audit, "journal") == 0 ? "" : "/VOLUME.log");
    return 0;
}

static int open_state(struct plugin *p, struct sfs_err *err)
{
    char *lock_path, *abs;
    int rc;

    rc = private_dir(p->o->state_dir, err);
    if (rc < 0)
        return rc;
    rc = private_dir(p->o->volumes_dir, err);
    if (rc < 0)
        return rc;
    abs = realpath(p->o->volumes_dir, NULL);
    p->state_file = path_join(p->o->state_dir, STATE_FILE);
    lock_path = path_join(p->o->state_dir, LOCK_FILE);
    if (!abs || !p->state_file || !lock_path) {
        free(abs);
        free(lock_path);
        return sfs_err_set(err, -ENOMEM, "out of memory");
    }
    p->volumes_dir = abs;
    p->vols_fd = open(abs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (p->vols_fd < 0) {
        free(lock_path);
        return sfs_err_set(err, -errno, "%s: %s", abs, strerror(errno));
    }
    p->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (p->lock_fd < 0)
        rc = sfs_err_set(err, -errno, "%s: %s", lock_path, strerror(errno));
    else if (flock(p->lock_fd, LOCK_EX | LOCK_NB) < 0)
        rc = sfs_err_set(err, errno == EWOULDBLOCK ? -EBUSY : -errno,
                         "%s: another secretfs docker-plugin uses this state directory",
                         p->o->state_dir);
    free(lock_path);
    return rc;
}

/* SIGHUP: every mounted volume reloads. */
static void reload_all(struct plugin *p)
{
    int failed;

    pthread_mutex_lock(&p->lock);
    sfs_info("SIGHUP: reloading %zu mounted volume%s", sfs_docker_api_mounted(p->api),
             sfs_docker_api_mounted(p->api) == 1 ? "" : "s");
    failed = sfs_docker_api_reload_all(p->api);
    pthread_mutex_unlock(&p->lock);
    if (failed)
        sfs_warn("SIGHUP: %d volume%s kept serving the previous secrets", failed,
                 failed == 1 ? "" : "s");
}

/* Waits for signals until SIGTERM or SIGINT; reaps children every second. */
static void serve_signals(struct plugin *p, const sigset_t *sigs)
{
    for (;;) {
        struct timespec tick = {1, 0};
        siginfo_t info;
        int sig = sigtimedwait(sigs, &info, &tick);

        if (sig == SIGTERM || sig == SIGINT) {
            sfs_info("stopping on signal %d; mounts keep serving until Docker unmounts them",
                     sig);
            return;
        }
        if (sig == SIGHUP)
            reload_all(p);
        reap(p);
    }
}

/* A plugin that holds the key file's passphrase (in locked memory kept out of core dumps,
 * crypto/secmem.h) is hardened as a mount's daemon is: no core dump, and no ptrace or
 * /proc/PID/mem for processes of its user that are not root. */
static int keep_passphrase_private(struct sfs_err *err)
{
    int rc = sfs_process_private(err);

    if (rc < 0)
        return rc;
    sfs_info("the key file is protected: its passphrase is kept in locked memory and handed "
             "to each mount and list through a pipe (SECRETFS_PASSPHRASE_FD=%d)", PASS_FD);
    return 0;
}

/* The state directory, the table and restart recovery: everything before serving. */
static int load_and_recover(struct plugin *p, const struct sfs_docker_ops *ops,
                            struct sfs_err *err)
{
    int rc = open_state(p, err), failed;

    if (rc < 0)
        return rc;
    p->api = sfs_docker_api_new(p->volumes_dir, ops, geteuid(), getegid());
    if (!p->api)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    rc = open_audit(p, err);
    if (rc == 0)
        rc = read_state(p, err);
    if (rc < 0 || sfs_docker_api_volumes(p->api) == 0)
        return rc;
    failed = sfs_docker_api_recover(p->api);
    sfs_info("%zu volume%s defined, %zu mounted%s", sfs_docker_api_volumes(p->api),
             sfs_docker_api_volumes(p->api) == 1 ? "" : "s", sfs_docker_api_mounted(p->api),
             failed ? " (see the warnings above)" : "");
    return 0;
}

int sfs_docker_plugin_run(const struct sfs_docker_plugin_opts *o, struct sfs_err *err)
{
    struct plugin p = {.o = o, .lock_fd = -1, .vols_fd = -1};
    struct sfs_docker_ops ops = {
        .ctx = &p, .mount = op_mount, .unmount = op_unmount, .reload = op_reload,
        .probe = op_probe, .save = op_save, .removed = op_removed,
        .store_names = op_store_names, .held = op_held,
    };
    struct sfs_http *http = NULL;
    sigset_t sigs;
    int rc;

    ensure_stdio();
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGCHLD);
    /* blocked from here on, in every thread libmicrohttpd starts too: they wait below */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&p.lock, NULL);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        sfs_warn("cannot become a child subreaper: %s", strerror(errno));
    rc = o->passphrase ? keep_passphrase_private(err) : 0;
    if (rc < 0)
        goto out;

    rc = load_and_recover(&p, &ops, err);
    if (rc < 0)
        goto out;
    rc = o->listen_fd >= 0 ? 0 : make_dirs_of(o->socket_path, err);
    if (rc < 0)
        goto out;
    rc = sfs_http_start(o->socket_path, o->listen_fd, 0600, handle, &p, &http, err);
    if (rc < 0)
        goto out;
    sfs_info("serving the Docker volume plugin API on %s%s (volumes in %s)", o->socket_path,
             o->listen_fd >= 0 ? " (socket from systemd)" : "", p.volumes_dir);
    serve_signals(&p, &sigs);
out:
    sfs_http_stop(http);
    sfs_docker_api_free(p.api);
    if (p.lock_fd >= 0)
        close(p.lock_fd);
    if (p.vols_fd >= 0)
        close(p.vols_fd);
    free(p.state_file);
    free(p.volumes_dir);
    free(p.names);
    free(p.audit);
    pthread_mutex_destroy(&p.lock);
    return rc;
}
