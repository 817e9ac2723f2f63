/* fs/mountinfo.c — what is mounted where (/proc/self/mountinfo), and whether a mountpoint is
 * a live secretfs mount served by the process its .status names (fs/status.h). */
#include "fs/status.h"
#include "fs/notify.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

/* Undoes mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape(char *s)
{
    char *r, *w;

    for (r = w = s; *r; r++, w++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] && r[3]) {
            *w = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
            r += 3;
        } else {
            *w = *r;
        }
    }
    *w = '\0';
}

/* Fills `out` from the part of a mountinfo line after " - ": fstype, source, options. */
static void parse_tail(const char *tail, struct sfs_mountinfo *out)
{
    char opts[1024];
    const char *uid;

    out->user_id = -1;
    if (sscanf(tail, "%127s %*s %1023s", out->fstype, opts) < 1)
        snprintf(out->fstype, sizeof out->fstype, "unknown");
    else if ((uid = strstr(opts, "user_id=")) && (uid == opts || uid[-1] == ','))
        out->user_id = strtol(uid + 8, NULL, 10);
}

bool sfs_mountinfo_find(const char *real, struct sfs_mountinfo *out)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    bool found = false;

    if (!f)
        return false;
    while (fgets(line, sizeof line, f)) {
        char mnt[PATH_MAX], *dash;
        unsigned major, minor;
        if (sscanf(line, "%*s %*s %u:%u %*s %4095s", &major, &minor, mnt) != 3)
            continue;
        unescape(mnt);
        dash = strstr(line, " - ");
        if (strcmp(mnt, real) != 0 || !dash)
            continue;
        /* later lines are mounted on top of earlier ones: the last one is what a path sees */
        parse_tail(dash + 3, out);
        out->dev_major = major;
        out->dev_minor = minor;
        found = true;
    }
    fclose(f);
    return found;
}

/* The real and effective uid of `pid` from /proc/PID/status; -1 when unknown. */
static long uid_of(long pid)
{
    char path[64], line[256];
    long ruid = -1, euid = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Uid: %ld %ld", &ruid, &euid) == 2)
            break;
    fclose(f);
    return ruid == euid ? euid : -1;
}

/* Whether `pid` holds /dev/fuse open: 1 yes, 0 no, -1 cannot tell (its fds are not ours to
 * read). */
static int holds_dev_fuse(long pid)
{
    char dir[64], path[96], target[64];
    struct dirent *de;
    int found = 0;
    DIR *d;

    snprintf(dir, sizeof dir, "/proc/%ld/fd", pid);
    d = opendir(dir);
    if (!d)
        return -1;
    while (!found && (de = readdir(d))) {
        ssize_t n;
        snprintf(path, sizeof path, "%s/%.20s", dir, de->d_name);
        n = readlink(path, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            found = strcmp(target, "/dev/fuse") == 0;
        }
    }
    closedir(d);
    return found;
}

/* Checks the mount side: `mountpoint` is the root of a live fuse.secretfs mount; its mounter's
 * uid goes to *user_id.  Returns 0 or -errno with err saying what is there instead. */
static int check_mount(const char *mountpoint, long *user_id, char *real,
                       struct sfs_err *err)
{
    struct sfs_mountinfo mi;
    struct statfs sf;

    if (!realpath(mountpoint, real))
        return sfs_err_set(err, -errno, "%s: %s", mountpoint, strerror(errno));
    if (!sfs_mountinfo_find(real, &mi))
        return sfs_err_set(err, -ENOENT, "%s is not a mountpoint; is a secretfs daemon "
                           "serving it? (secretfs mount %s)", mountpoint, mountpoint);
    if (strcmp(mi.fstype, "fuse.secretfs") != 0)
        return sfs_err_set(err, -EINVAL, "%s is a %s mount, not secretfs; give the "
                           "mountpoint of a secretfs mount", mountpoint, mi.fstype);
    if (statfs(real, &sf) < 0 && errno == ENOTCONN)
        return sfs_err_set(err, -ENOTCONN, "%s: a dead secretfs mount (its daemon died); "
                           "run 'fusermount3 -u %s' and mount again", mountpoint, mountpoint);
    *user_id = mi.user_id;
    return 0;
}

/* A container view names no pid: take it (and the notify path) from the mount's generation
 * file, which only the mount's user may have written. */
static int pid_from_genfile(const char *mountpoint, const char *real, long user_id,
                            struct sfs_status *out, struct sfs_err *err)
{
    char paths[2][PATH_MAX + 16];
    size_t i, n = sfs_notify_candidates(real, paths, 2);
    struct sfs_genfile g;
    struct stat st;

    for (i = 0; i < n; i++) {
        size_t len = strlen(paths[i]);
        if (len >= sizeof out->notify || lstat(paths[i], &st) < 0 || !S_ISREG(st.st_mode) ||
            (long)st.st_uid != user_id || sfs_genfile_read(paths[i], &g) < 0)
            continue;
        out->pid = g.pid;
        memcpy(out->notify, paths[i], len + 1);
        return 0;
    }
    return sfs_err_set(err, -ESRCH, "%s/.status is a container view (status=container), which "
                       "names no pid, and no generation file of its user is at %s%s%s; "
                       "nothing was signalled", mountpoint, n ? paths[0] : "?",
                       n > 1 ? " or " : "", n > 1 ? paths[1] : "");
}

int sfs_status_read_verified(const char *mountpoint, struct sfs_status *out,
                             struct sfs_err *err)
{
    char real[PATH_MAX];
    long user_id = -1, uid;
    int rc = check_mount(mountpoint, &user_id, real, err);

    if (rc < 0)
        return rc;
    rc = sfs_status_read(mountpoint, out);
    if (rc < 0)
        return sfs_err_set(err, rc, "%s/.status: %s; is a secretfs daemon serving %s?",
                           mountpoint, rc == -EBADMSG ? "not a secretfs status view"
                                                      : strerror(-rc), mountpoint);
    if (out->container_view && (rc = pid_from_genfile(mountpoint, real, user_id, out, err)) < 0)
        return rc;
    /* the mount's .status is what its daemon says: trust the pid only if that process
     * runs as the user who made the mount and (where we may look) holds /dev/fuse */
    uid = uid_of(out->pid);
    if (uid < 0 || user_id < 0 || uid != user_id || holds_dev_fuse(out->pid) == 0)
        return sfs_err_set(err, -ESRCH, "%s/.status names pid %ld, which is not a FUSE "
                           "daemon of the user who mounted %s; nothing was signalled",
                           mountpoint, out->pid, mountpoint);
    return 0;
}
