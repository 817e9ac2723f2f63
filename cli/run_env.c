/* cli/run_env.c — `secretfs run`: reading one generation of the mount into an environment.
 *
 * Who holds plaintext: only the child, between reading the mount and execve: it reads one
 * consistent snapshot of the mount into a secure arena (locked, not dumpable, not inherited
 * by fork) and builds envp there.  Values travel only through envp: never argv, never a
 * message.
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
#include "fs/status.h"
#include "secrets/names.h"

extern char **environ;
/* ---- reading .status and the generation file (fs/status.h; no values in either) ---- */

/* Reads `mount`/.status and the generation file it names.  Returns 0 or -errno (-EBADMSG:
 * not a secretfs .status). */
int cli_run_read_key(const char *mount, struct gen_key *key)
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
bool cli_run_key_stable(const struct gen_key *k)
{
    return !k->has_seq || (k->seq % 2 == 0 && k->file_generation == k->generation);
}

bool cli_run_key_same(const struct gen_key *a, long pid, unsigned long long gen)
{
    return a->pid == pid && a->generation == gen;
}

/* ---- the child: read one snapshot, build envp, exec ---- */


void cli_run_env_reset(struct env_build *b)
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
int cli_run_read_snapshot(struct cli *cli, const struct run_opts *o, struct env_build *b,
                         struct gen_key *key)
{
    struct timespec nap = {0, UNSTABLE_NAP_NS};
    struct gen_key after;
    int tries, rc = -EAGAIN;

    for (tries = 0; tries < SNAPSHOT_TRIES && rc == -EAGAIN; tries++) {
        cli_run_env_reset(b);
        rc = cli_run_read_key(o->mount, key);
        if (rc == 0 && !cli_run_key_stable(key)) {
            rc = -EAGAIN;
            nanosleep(&nap, NULL);
            continue;
        }
        if (rc == 0)
            rc = read_entries(o, b);
        if (rc == 0)
            rc = cli_run_read_key(o->mount, &after);
        if (rc == 0 && (!cli_run_key_same(&after, key->pid, key->generation) ||
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
        cli_run_env_reset(b);
    return rc;
}

static bool env_name_is(const char *entry, const struct var *v)
{
    return strncmp(entry, v->kv, v->name_len + 1) == 0; /* NAME= with the '=' */
}

/* envp: the inherited environment minus the names the mount sets, then the mount's. */
char **cli_run_build_envp(const struct env_build *b)
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

bool cli_run_write_all(int fd, const char *s)
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
