/* fs/notify.c — the generation file that wakes `secretfs run` on reload (see notify.h). */
#include "fs/notify.h"
#include "fs/status.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

#define NOTIFY_DIR "/run/secretfs"
#define NOTIFY_FILE "generation"
#define NAME_KEEP 180 /* escaped mountpoint bytes kept before a hash replaces the rest */

static struct {
    int dirfd;                  /* -1: no file */
    const char *name;           /* file name inside the directory */
    char dir[PATH_MAX];         /* the mount's own directory */
    char path[PATH_MAX + 16];   /* what .status shows (at most 256 bytes) */
    uint64_t generation;
    uint64_t seq;               /* odd while a reload runs */
    bool warned;
} nf = {.dirfd = -1, .name = NOTIFY_FILE};

static bool keep_byte(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.';
}

/* systemd-escape --path style: "/srv/app secrets" -> "srv-app\x20secrets"; "/" -> "-".
 * Names longer than NAME_KEEP bytes keep a prefix and end in a hash of the whole path. */
static void escape_mountpoint(const char *path, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)path;
    uint64_t hash = 0xcbf29ce484222325ull; /* FNV-1a */
    size_t len = 0;

    while (*p == '/')
        p++;
    if (!*p)
        len = (size_t)snprintf(out, cap, "-");
    for (; *p && len + 5 < cap; p++) {
        hash = (hash ^ *p) * 0x100000001b3ull;
        if (*p == '/' && (p[1] == '/' || p[1] == '\0'))
            continue;
        if (*p == '/')
            out[len++] = '-';
        else if (keep_byte(*p) && !(len == 0 && *p == '.'))
            out[len++] = (char)*p;
        else
            len += (size_t)snprintf(out + len, cap - len, "\\x%02x", *p);
    }
    out[len] = '\0';
    for (; *p; p++)
        hash = (hash ^ *p) * 0x100000001b3ull;
    if (len > NAME_KEEP)
        snprintf(out + NAME_KEEP, cap - NAME_KEEP, "-%016" PRIx64, hash);
}

/* Opens `dir` (creating it 0755 if missing) if it is a real directory that only its owner,
 * this user or root, can change.  Returns the fd or -errno. */
static int open_dir(const char *dir)
{
    bool created = mkdir(dir, 0755) == 0;
    struct stat st;
    int fd;

    if (!created && errno != EEXIST)
        return -errno;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || (st.st_uid != geteuid() && st.st_uid != 0) ||
        (st.st_mode & 022)) {
        close(fd);
        return -EPERM;
    }
    if (created)
        (void)fchmod(fd, 0755); /* whatever the umask: readers need to watch it */
    return fd;
}

/* Replaces the file with the current numbers: temporary file, then rename. */
static int write_state(void)
{
    struct sfs_genfile g = {(long)getpid(), nf.generation, nf.seq};
    char text[128], tmp[32];
    int len = (int)sfs_genfile_render(&g, text, sizeof text), fd, rc = 0;

    snprintf(tmp, sizeof tmp, ".%s.tmp", nf.name);
    fd = openat(nf.dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    errno = 0;
    if (fchmod(fd, 0644) < 0 || write(fd, text, (size_t)len) != len)
        rc = errno ? -errno : -EIO;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(nf.dirfd, tmp, nf.dirfd, nf.name) < 0)
        rc = -errno;
    if (rc < 0)
        (void)unlinkat(nf.dirfd, tmp, 0);
    return rc;
}

static void publish(void)
{
    int rc;

    if (nf.dirfd < 0)
        return;
    rc = write_state();
    if (rc < 0 && !nf.warned) {
        sfs_warn("cannot update %s: %s; 'secretfs run' notices reloads late until it works",
                 nf.path, strerror(-rc));
        nf.warned = true;
    } else if (rc == 0) {
        nf.warned = false;
    }
}

/* Whether process `pid` is gone: no such process, or a zombie nobody reaped yet. */
static bool pid_gone(long pid)
{
    char path[64], buf[512], *close_paren;
    FILE *f;
    size_t n;

    if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        return true;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    f = fopen(path, "re");
    if (!f)
        return errno == ENOENT;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    close_paren = strrchr(buf, ')');
    return close_paren && (close_paren[2] == 'Z' || close_paren[2] == 'X');
}

/* Removes `base`'s mount directories whose generation file names a process that is gone
 * (a daemon killed with SIGKILL cannot remove its own).  `base` passed open_dir: only its
 * owner or root can have made its entries.  A directory without a generation file may be a
 * daemon starting: it stays. */
static void remove_stale(const char *base)
{
    char dir[PATH_MAX], file[PATH_MAX + 32];
    struct sfs_genfile g;
    struct dirent *de;
    DIR *d = opendir(base);

    if (!d)
        return;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || de->d_type != DT_DIR ||
            (size_t)snprintf(dir, sizeof dir, "%s/%s", base, de->d_name) >= sizeof dir)
            continue;
        snprintf(file, sizeof file, "%s/" NOTIFY_FILE, dir);
        if (sfs_genfile_read(file, &g) < 0 || g.pid == (long)getpid() || !pid_gone(g.pid))
            continue;
        (void)unlink(file);
        snprintf(file, sizeof file, "%s/." NOTIFY_FILE ".tmp", dir);
        (void)unlink(file);
        if (rmdir(dir) == 0)
            sfs_info("removed %s, left by secretfs pid %ld, which is gone", dir, g.pid);
    }
    closedir(d);
}

/* The base directories, in the order they are tried: /run/secretfs, then
 * $XDG_RUNTIME_DIR/secretfs (into xdg_dir) when that is set.  Returns how many. */
static size_t notify_bases(const char *bases[2], char *xdg_dir, size_t cap)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");

    bases[0] = NOTIFY_DIR;
    bases[1] = NULL;
    if (xdg && xdg[0] == '/' && (size_t)snprintf(xdg_dir, cap, "%s/secretfs", xdg) < cap)
        bases[1] = xdg_dir;
    return bases[1] ? 2 : 1;
}

size_t sfs_notify_candidates(const char *real, char out[][PATH_MAX + 16], size_t max)
{
    char escaped[NAME_MAX + 1], xdg_dir[PATH_MAX];
    const char *bases[2];
    size_t i, n = 0, nb = notify_bases(bases, xdg_dir, sizeof xdg_dir);

    escape_mountpoint(real, escaped, sizeof escaped);
    for (i = 0; i < nb && n < max; i++)
        if ((size_t)snprintf(out[n], PATH_MAX + 16, "%s/%s/" NOTIFY_FILE, bases[i],
                             escaped) < PATH_MAX + 16)
            n++;
    return n;
}

int sfs_notify_open(const char *mountpoint)
{
    char real[PATH_MAX], escaped[NAME_MAX + 1], xdg_dir[PATH_MAX], dir[PATH_MAX];
    const char *bases[2];
    size_t i, nb = notify_bases(bases, xdg_dir, sizeof xdg_dir);
    int rc = -ENOENT, fd;

    if (!realpath(mountpoint, real))
        snprintf(real, sizeof real, "%s", mountpoint);
    escape_mountpoint(real, escaped, sizeof escaped);
    for (i = 0; i < nb; i++) {
        /* one directory per mount, so a watcher wakes only for its own mount; .status shows
         * the path: keep it short enough for the status view */
        if ((size_t)snprintf(dir, sizeof dir, "%s/%s", bases[i], escaped) + 1 +
                strlen(NOTIFY_FILE) > 256) {
            rc = -ENAMETOOLONG;
            continue;
        }
        fd = open_dir(bases[i]);
        if (fd >= 0) {
            close(fd);
            remove_stale(bases[i]);
        }
        nf.dirfd = fd < 0 ? fd : open_dir(dir);
        if (nf.dirfd < 0) {
            rc = nf.dirfd;
            nf.dirfd = -1;
            continue;
        }
        nf.generation = 0;
        nf.seq = 1;
        rc = write_state();
        if (rc == 0) {
            snprintf(nf.dir, sizeof nf.dir, "%s", dir);
            snprintf(nf.path, sizeof nf.path, "%s/%s", dir, NOTIFY_FILE);
            return 0;
        }
        close(nf.dirfd);
        nf.dirfd = -1;
    }
    sfs_info("no generation file for %s (%s%s%s: %s); 'secretfs run' will check .status "
             "once a second instead", mountpoint, NOTIFY_DIR, bases[1] ? " or " : "",
             bases[1] ? bases[1] : "", strerror(-rc));
    return rc;
}

void sfs_notify_reloading(void)
{
    nf.seq += nf.seq % 2 ? 2 : 1;
    publish();
}

void sfs_notify_generation(uint64_t generation)
{
    nf.generation = generation;
    nf.seq += nf.seq % 2 ? 1 : 2;
    publish();
}

/* True if the file still names this process (another daemon may have taken the name). */
static bool file_is_ours(void)
{
    struct sfs_genfile g;

    return sfs_genfile_read(nf.path, &g) == 0 && g.pid == (long)getpid();
}

void sfs_notify_close(void)
{
    if (nf.dirfd < 0)
        return;
    if (file_is_ours()) {
        (void)unlinkat(nf.dirfd, nf.name, 0);
        (void)rmdir(nf.dir); /* fails, harmlessly, if another daemon uses it by now */
    }
    close(nf.dirfd);
    nf.dirfd = -1;
    nf.path[0] = '\0';
}

const char *sfs_notify_path(void)
{
    return nf.dirfd >= 0 ? nf.path : NULL;
}
