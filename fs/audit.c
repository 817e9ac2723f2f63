/* fs/audit.c — the access audit (fs/audit.h): a bounded queue, one writer thread, /proc. */
#include "fs/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "crypto/aead.h"
#include "crypto/secmem.h"
#include "util/log.h"

#define AUDIT_KEYS 4
#define PROC_READ_MAX 4096
#define JOURNAL_FIELDS_MAX 32

/* One queued record: an open (filled in by the writer from /proc), or a ready object. */
struct item {
    json_t *rec;            /* the record; for an open, /proc fields are added later */
    int procfd;             /* /proc/PID of an open's caller (pins the pid), or -1 */
    pid_t pid;
    bool open;              /* an open record: the writer adds the caller's process */
};

struct fp_key {
    uint64_t from;          /* first generation fingerprinted under it */
    unsigned char key[SFS_FINGERPRINT_KEY_BYTES];
};

struct sfs_audit {
    const char *dest;
    const char *mountpoint;
    bool journal;
    sfs_audit_sink_fn sink;
    void *sink_ctx;
    int fd;                 /* the file (writer thread only, after open) */
    bool torn;              /* the last write was cut short: end that line first */
    pthread_t writer;
    pthread_mutex_t lock;   /* guards everything below */
    pthread_cond_t wake;    /* writer: items, reopen or stop */
    pthread_cond_t idle;    /* flush: the writer caught up */
    struct item *queue[SFS_AUDIT_QUEUE_MAX];
    size_t head, count;
    uint64_t queued, done;  /* records queued, and written or dropped, so far */
    bool reopen, stop, queue_full;
    sfs_arena *key_mem;     /* AUDIT_KEYS fingerprint keys, newest last */
    struct fp_key *keys;
    size_t n_keys;
    atomic_uint_fast64_t dropped;
};

/* ---- pure parts ---- */

void sfs_audit_time(const struct timespec *ts, char *buf, size_t cap)
{
    struct tm tm;
    char day[32];

    gmtime_r(&ts->tv_sec, &tm);
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%06ldZ", day, ts->tv_nsec / 1000);
}

/* Length of the valid UTF-8 sequence at s (RFC 3629), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    size_t n, i;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    n = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!n || n > left)
        return 0;
    cp = s[0] & (0x7f >> n);
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

json_t *sfs_audit_string(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    char *clean = malloc(len * 3 + 1);
    size_t i = 0, o = 0;
    json_t *j;

    if (!clean)
        return NULL;
    while (i < len) {
        size_t n = p[i] ? utf8_seq(p + i, len - i) : 0;
        if (n) {
            memcpy(clean + o, p + i, n);
            o += n;
            i += n;
        } else {
            memcpy(clean + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(clean, o);
    free(clean);
    return j;
}

/* A member's value as journal text: strings as they are, numbers, arrays joined by spaces. */
static char *field_text(json_t *v)
{
    char *out = NULL;
    size_t i, len = 0;
    json_t *x;
    FILE *f;

    if (json_is_string(v))
        return strdup(json_string_value(v));
    f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    if (json_is_integer(v))
        fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_boolean(v))
        fputs(json_is_true(v) ? "yes" : "no", f);
    else if (json_is_array(v))
        json_array_foreach(v, i, x) fprintf(f, "%s%s", i ? " " : "",
                                            json_is_string(x) ? json_string_value(x) : "");
    fclose(f);
    return out;
}

static char *field(const char *key, const char *value)
{
    char *out;

    return asprintf(&out, "%s=%s", key, value) < 0 ? NULL : out;
}

/* SECRETFS_<KEY> for a record's member `key` (letters upper-cased, others '_'). */
static char *member_field(const char *key, json_t *v)
{
    char name[64] = "SECRETFS_", *text = field_text(v), *out;
    size_t i, n = strlen(name);

    for (i = 0; key[i] && n < sizeof name - 1; i++, n++)
        name[n] = (key[i] >= 'a' && key[i] <= 'z') ? (char)(key[i] - 32)
                  : ((key[i] >= 'A' && key[i] <= 'Z') || (key[i] >= '0' && key[i] <= '9'))
                      ? key[i] : '_';
    name[n] = '\0';
    out = text ? field(name, text) : NULL;
    free(text);
    return out;
}

/* MESSAGE= of a record: what happened, names and numbers only. */
static char *journal_message(json_t *rec)
{
    const char *ev = json_string_value(json_object_get(rec, "event"));
    const char *name = json_string_value(json_object_get(rec, "name"));
    const char *exe = json_string_value(json_object_get(rec, "exe"));
    json_int_t pid = json_integer_value(json_object_get(rec, "pid"));
    json_int_t uid = json_integer_value(json_object_get(rec, "uid"));
    json_int_t gen = json_integer_value(json_object_get(rec, "generation"));
    char *out;

    if (ev && strcmp(ev, "open") == 0) {
        if (asprintf(&out, "MESSAGE=%s opened by pid %" JSON_INTEGER_FORMAT " (uid %"
                     JSON_INTEGER_FORMAT ", %s), generation %" JSON_INTEGER_FORMAT,
                     name ? name : "?", pid, uid, exe ? exe : "exe unknown", gen) < 0)
            return NULL;
    } else if (asprintf(&out, "MESSAGE=secretfs %s, generation %" JSON_INTEGER_FORMAT,
                        ev ? ev : "record", gen) < 0) {
        return NULL;
    }
    return out;
}

int sfs_audit_journal_fields(json_t *rec, char **fields, size_t cap)
{
    const char *key, *ev = json_string_value(json_object_get(rec, "event"));
    char *line = json_dumps(rec, JSON_COMPACT), pid[32];
    size_t n = 0;
    json_t *v;
    int rc = 0;

    if (!line || cap < 5)
        goto fail;
    fields[n++] = journal_message(rec);
    fields[n++] = strdup("PRIORITY=6");
    fields[n++] = strdup("SYSLOG_IDENTIFIER=secretfs-audit");
    fields[n++] = field("SECRETFS_RECORD", line);
    if (ev && strcmp(ev, "open") == 0 && json_integer_value(json_object_get(rec, "pid")) > 0 &&
        n < cap) {
        snprintf(pid, sizeof pid, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(rec, "pid")));
        fields[n++] = field("OBJECT_PID", pid);
    }
    json_object_foreach(rec, key, v) {
        if (n < cap && !json_is_null(v))
            fields[n++] = member_field(key, v);
    }
    for (rc = 0; rc < (int)n; rc++)
        if (!fields[rc])
            goto fail;
    free(line);
    return (int)n;
fail:
    while (n > 0)
        free(fields[--n]);
    free(line);
    return -ENOMEM;
}

/* ---- the file ---- */

/* Opens the audit file for appending, refusing one that would show others the records.
 * Returns the fd or -errno with err naming the file and the fix. */
static int open_log(const char *path, struct sfs_err *err)
{
    struct stat st;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
                            O_NONBLOCK, 0600);
    int rc = 0;

    if (fd < 0)
        return sfs_err_set(err, -errno, "audit log %s: %s%s", path, strerror(errno),
                           errno == ELOOP ? " (a symlink; give the real path)"
                           : errno == ENOENT ? "; create its directory first" : "");
    if (fstat(fd, &st) < 0)
        rc = sfs_err_set(err, -errno, "audit log %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = sfs_err_set(err, -EINVAL, "audit log %s is not a regular file; give a file path",
                         path);
    else if (st.st_uid != geteuid())
        rc = sfs_err_set(err, -EPERM, "audit log %s is owned by uid %u, not the daemon's "
                         "(uid %u); chown it or choose another path", path,
                         (unsigned)st.st_uid, (unsigned)geteuid());
    else if (st.st_mode & 077)
        rc = sfs_err_set(err, -EPERM, "audit log %s: mode %04o lets others see who read "
                         "which secret; chmod 600 it", path, (unsigned)(st.st_mode & 07777));
    if (rc < 0)
        close(fd);
    return rc < 0 ? rc : fd;
}

static int journal_sink(const struct iovec *fields, int n, void *ctx)
{
    (void)ctx;
    return sd_journal_sendv(fields, n);
}

/* ---- queueing ---- */

static void count_drop(struct sfs_audit *a)
{
    atomic_fetch_add(&a->dropped, 1);
}

/* Queues `it` (owned by the queue from here, also when it is dropped). */
static void enqueue(struct sfs_audit *a, struct item *it)
{
    bool full, first_full = false;

    pthread_mutex_lock(&a->lock);
    full = a->count == SFS_AUDIT_QUEUE_MAX || a->stop;
    if (full) {
        first_full = !a->queue_full;
        a->queue_full = true;
    } else {
        a->queue[(a->head + a->count) % SFS_AUDIT_QUEUE_MAX] = it;
        a->count++;
        a->queued++;
        a->queue_full = false;
        pthread_cond_signal(&a->wake);
    }
    pthread_mutex_unlock(&a->lock);
    if (!full)
        return;
    count_drop(a);
    if (first_full)
        sfs_warn("audit %s: the writer is behind (%d records queued); records are dropped "
                 "and counted in .status (audit_dropped=)", a->dest, SFS_AUDIT_QUEUE_MAX);
    if (it->procfd >= 0)
        close(it->procfd);
    json_decref(it->rec);
    free(it);
}

static json_t *new_record(struct sfs_audit *a, const char *event)
{
    struct timespec now;
    char when[64];

    clock_gettime(CLOCK_REALTIME, &now);
    sfs_audit_time(&now, when, sizeof when);
    return json_pack("{s:s, s:s, s:s}", "time", when, "event", event, "mount", a->mountpoint);
}

static void queue_record(struct sfs_audit *a, json_t *rec)
{
    struct item *it = rec ? malloc(sizeof *it) : NULL;

    if (!it) {
        json_decref(rec);
        count_drop(a);
        return;
    }
    *it = (struct item){.rec = rec, .procfd = -1};
    enqueue(a, it);
}

/* The fingerprint key for `generation` (lock held). */
static const struct fp_key *key_for(const struct sfs_audit *a, uint64_t generation)
{
    size_t i = a->n_keys;

    while (i > 1 && a->keys[i - 1].from > generation)
        i--;
    return i ? &a->keys[i - 1] : NULL;
}

void sfs_audit_set_key(struct sfs_audit *a, const sfs_key *key, uint64_t generation)
{
    unsigned char k[SFS_FINGERPRINT_KEY_BYTES];

    if (!a)
        return;
    sfs_fingerprint_key(key, k);
    pthread_mutex_lock(&a->lock);
    if (a->n_keys && sfs_equal_ct(a->keys[a->n_keys - 1].key, k, sizeof k)) {
        /* the same key: nothing to remember */
    } else {
        while (a->n_keys && a->keys[a->n_keys - 1].from >= generation)
            a->n_keys--; /* a load that never served */
        if (a->n_keys == AUDIT_KEYS) {
            memmove(&a->keys[0], &a->keys[1], (AUDIT_KEYS - 1) * sizeof a->keys[0]);
            a->n_keys--;
        }
        a->keys[a->n_keys].from = generation;
        memcpy(a->keys[a->n_keys].key, k, sizeof k);
        a->n_keys++;
    }
    pthread_mutex_unlock(&a->lock);
    sfs_wipe(k, sizeof k);
}

void sfs_audit_note_open(struct sfs_audit *a, const struct sfs_audit_caller *c,
                         const char *name, uint64_t generation, const void *value, size_t len)
{
    char proc[32], exe[PATH_MAX], fp[SFS_FINGERPRINT_HEX + 1] = "";
    unsigned char fkey[SFS_FINGERPRINT_KEY_BYTES];
    struct item *it = malloc(sizeof *it);
    json_t *rec = new_record(a, "open");
    const struct fp_key *k;
    ssize_t n = -1;

    if (!it || !rec) {
        free(it);
        json_decref(rec);
        count_drop(a);
        return;
    }
    *it = (struct item){.rec = rec, .procfd = -1, .pid = c->pid, .open = true};
    pthread_mutex_lock(&a->lock);
    k = value ? key_for(a, generation) : NULL;
    if (k)
        memcpy(fkey, k->key, sizeof fkey);
    pthread_mutex_unlock(&a->lock);
    if (k) /* hashed outside the lock: a large value never holds up other opens */
        sfs_fingerprint(fkey, value, len, fp);
    sfs_wipe(fkey, sizeof fkey);
    if (c->pid > 0) {
        snprintf(proc, sizeof proc, "/proc/%d", (int)c->pid);
        it->procfd = open(proc, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (it->procfd >= 0)
            n = readlinkat(it->procfd, "exe", exe, sizeof exe - 1);
    }
    json_object_set_new(rec, "name", json_string(name));
    json_object_set_new(rec, "generation", json_integer((json_int_t)generation));
    json_object_set_new(rec, "fingerprint", fp[0] ? json_string(fp) : json_null());
    json_object_set_new(rec, "pid", json_integer(c->pid));
    json_object_set_new(rec, "uid", json_integer(c->uid));
    json_object_set_new(rec, "gid", json_integer(c->gid));
    json_object_set_new(rec, "exe", n > 0 ? sfs_audit_string(exe, (size_t)n) : json_null());
    enqueue(a, it);
}

void sfs_audit_open_entry(struct sfs_audit *a, const struct sfs_audit_caller *c,
                          struct snapshot *s, const struct snap_entry *e)
{
    const void *data;

    if (!a || !e || e->kind == SNAP_STATUS)
        return;
    data = e->kind == SNAP_VIEW ? (const void *)sfs_snap_view_data(s, e) : e->data;
    sfs_audit_note_open(a, c, e->name, s->generation, data ? data : "",
                        data ? sfs_snap_size(s, e) : 0);
}

void sfs_audit_mounted(struct sfs_audit *a, const struct snapshot *first)
{
    json_t *rec;

    if (!a)
        return;
    rec = new_record(a, "mount");
    if (rec) {
        json_object_set_new(rec, "generation", json_integer((json_int_t)first->generation));
        json_object_set_new(rec, "secrets", json_integer((json_int_t)first->n_secrets));
        json_object_set_new(rec, "platform", json_integer((json_int_t)first->n_platform));
        json_object_set_new(rec, "daemon_pid", json_integer(getpid()));
    }
    queue_record(a, rec);
}

static bool is_value(const struct snap_entry *e)
{
    return e->kind == SNAP_SECRET || e->kind == SNAP_PLATFORM;
}

void sfs_audit_reloaded(struct sfs_audit *a, const struct snapshot *old,
                        const struct snapshot *new)
{
    json_t *rec, *added = json_array(), *changed = json_array(), *removed = json_array();
    size_t i = 0, j = 0;

    if (!a)
        goto out;
    while (i < old->n || j < new->n) {
        const struct snap_entry *x = i < old->n ? &old->entries[i] : NULL;
        const struct snap_entry *y = j < new->n ? &new->entries[j] : NULL;
        int c = !x ? 1 : !y ? -1 : strcmp(x->name, y->name);
        if (c < 0 && is_value(x))
            json_array_append_new(removed, json_string(x->name));
        else if (c > 0 && is_value(y))
            json_array_append_new(added, json_string(y->name));
        else if (c == 0 && is_value(y) && sfs_snap_entry_changed(x, y))
            json_array_append_new(changed, json_string(y->name));
        i += c <= 0;
        j += c >= 0;
    }
    rec = new_record(a, "reload");
    if (rec) {
        json_object_set_new(rec, "generation", json_integer((json_int_t)new->generation));
        json_object_set_new(rec, "previous", json_integer((json_int_t)old->generation));
        json_object_set(rec, "added", added);
        json_object_set(rec, "changed", changed);
        json_object_set(rec, "removed", removed);
    }
    queue_record(a, rec);
out:
    json_decref(added);
    json_decref(changed);
    json_decref(removed);
}

void sfs_audit_refused(struct sfs_audit *a, uint64_t serving, const char *why)
{
    json_t *rec;

    if (!a)
        return;
    rec = new_record(a, "reload_refused");
    if (rec) {
        json_object_set_new(rec, "generation", json_integer((json_int_t)serving));
        json_object_set_new(rec, "error", sfs_audit_string(why, strlen(why)));
    }
    queue_record(a, rec);
}

/* ---- the writer thread ---- */

/* Reads at most PROC_READ_MAX - 1 bytes of /proc/PID/`name` (never blocking on a FIFO);
 * returns the length, or -errno (ESRCH/ENOENT: the process is gone). */
static ssize_t read_proc(int procfd, const char *name, char *buf)
{
    ssize_t n, len = 0;
    int fd = openat(procfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);

    if (fd < 0)
        return -errno;
    while (len < PROC_READ_MAX - 1 &&
           (n = read(fd, buf + len, (size_t)(PROC_READ_MAX - 1 - len))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            len = -errno;
            break;
        }
        len += n;
    }
    close(fd);
    if (len >= 0)
        buf[len] = '\0';
    return len;
}

static json_t *cmdline_array(const char *buf, size_t len)
{
    json_t *arr = json_array();
    size_t off = 0;

    while (arr && off < len) {
        size_t n = strnlen(buf + off, len - off);
        json_array_append_new(arr, sfs_audit_string(buf + off, n));
        off += n + 1;
    }
    return arr;
}

/* Adds the caller's cgroups: "cgroup", the cgroup v2 path (the "0::" line), and with
 * cgroup v1 hierarchies also "cgroup_v1", their lines joined by ';'. */
static void add_cgroups(json_t *rec, char *buf, size_t len)
{
    char *v2 = strncmp(buf, "0::", 3) == 0 ? buf : strstr(buf, "\n0::");
    size_t v2_len = 0, i, o = 0;

    if (v2) {
        v2 += v2 == buf ? 3 : 4;
        v2_len = strcspn(v2, "\n");
        json_object_set_new(rec, "cgroup", sfs_audit_string(v2, v2_len));
    }
    for (i = 0; i < len; i++) { /* the other lines, in place, ';' between them */
        size_t n = strcspn(buf + i, "\n");
        if (!(v2 && buf + i + 3 == v2) && n) {
            if (o)
                buf[o++] = ';';
            memmove(buf + o, buf + i, n);
            o += n;
        }
        i += n;
    }
    if (o)
        json_object_set_new(rec, "cgroup_v1", sfs_audit_string(buf, o));
}

/* Adds what the writer reads of an open's caller: the process (tgid), command line and
 * cgroup, or that the process is gone. */
static void add_process(struct item *it)
{
    json_t *rec = it->rec;
    char buf[PROC_READ_MAX];
    ssize_t n;
    bool gone = it->procfd < 0;

    if (!gone && (n = read_proc(it->procfd, "status", buf)) > 0) {
        const char *tgid = strstr(buf, "\nTgid:");
        long t = tgid ? strtol(tgid + 6, NULL, 10) : 0;
        if (t > 0 && t != it->pid) {
            json_object_set_new(rec, "tid", json_integer(it->pid));
            json_object_set_new(rec, "pid", json_integer(t));
        }
    }
    n = gone ? -ESRCH : read_proc(it->procfd, "cmdline", buf);
    if (n > 0) {
        json_object_set_new(rec, "cmdline", cmdline_array(buf, (size_t)n));
        if (n == PROC_READ_MAX - 1)
            json_object_set_new(rec, "cmdline_truncated", json_true());
    } else {
        gone = true; /* a zombie's command line is empty */
    }
    n = it->procfd < 0 ? -ESRCH : read_proc(it->procfd, "cgroup", buf);
    if (n > 0)
        add_cgroups(rec, buf, (size_t)n);
    json_object_set_new(rec, "process", json_string(gone ? "exited" : "running"));
}

/* Writes one record (writer thread); false when it could not be written. */
static bool write_record(struct sfs_audit *a, json_t *rec, int *error)
{
    char *line, *fields[JOURNAL_FIELDS_MAX];
    struct iovec iov[JOURNAL_FIELDS_MAX];
    int n, i, rc = -ENOMEM;
    ssize_t w;
    size_t len;

    if (a->journal) {
        n = sfs_audit_journal_fields(rec, fields, JOURNAL_FIELDS_MAX);
        for (i = 0; i < n; i++)
            iov[i] = (struct iovec){fields[i], strlen(fields[i])};
        if (n > 0)
            rc = a->sink(iov, n, a->sink_ctx);
        for (i = 0; i < n; i++)
            free(fields[i]);
        *error = -rc;
        return rc >= 0;
    }
    line = json_dumps(rec, JSON_COMPACT);
    if (!line) {
        *error = ENOMEM;
        return false;
    }
    len = strlen(line);
    line[len] = '\n'; /* json_dumps's NUL becomes the newline: one write(2) per record */
    if (a->torn && write(a->fd, "\n", 1) == 1)
        a->torn = false; /* ends the line a full disk cut, so the next one stands alone */
    w = a->torn ? -1 : write(a->fd, line, len + 1);
    *error = w < 0 ? errno : EIO;
    if (w > 0 && w < (ssize_t)(len + 1))
        a->torn = true;
    free(line);
    return w == (ssize_t)(len + 1);
}

/* Writes `it` and frees it, counting and reporting failures once per run of them. */
static void process_item(struct sfs_audit *a, struct item *it, bool *failing)
{
    int error = 0;

    if (it->open)
        add_process(it);
    if (write_record(a, it->rec, &error)) {
        if (*failing)
            sfs_info("audit %s: writing again (audit_dropped=%" PRIu64 " so far)", a->dest,
                     (uint64_t)atomic_load(&a->dropped));
        *failing = false;
    } else {
        count_drop(a);
        if (!*failing)
            sfs_error("audit %s: cannot write a record: %s; reads go on, and records are "
                      "dropped and counted in .status (audit_dropped=) until a write "
                      "succeeds (free space, or send SIGUSR1 to reopen)", a->dest,
                      strerror(error));
        *failing = true;
    }
    if (it->procfd >= 0)
        close(it->procfd);
    json_decref(it->rec);
    free(it);
}

static void reopen_file(struct sfs_audit *a)
{
    struct sfs_err err;
    int fd = open_log(a->dest, &err);

    if (fd < 0) {
        sfs_error("SIGUSR1: %s; still writing the file opened before", err.msg);
        return;
    }
    close(a->fd);
    a->fd = fd;
    a->torn = false;
    sfs_info("SIGUSR1: reopened audit log %s", a->dest);
}

static void *writer_thread(void *arg)
{
    struct sfs_audit *a = arg;
    bool failing = false;

    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (!a->count && !a->reopen && !a->stop)
            pthread_cond_wait(&a->wake, &a->lock);
        if (a->reopen) {
            a->reopen = false;
            pthread_mutex_unlock(&a->lock);
            if (!a->journal)
                reopen_file(a);
            pthread_mutex_lock(&a->lock);
            continue;
        }
        if (!a->count)
            break; /* stop, and everything is written */
        struct item *it = a->queue[a->head];
        a->head = (a->head + 1) % SFS_AUDIT_QUEUE_MAX;
        a->count--;
        pthread_mutex_unlock(&a->lock);
        process_item(a, it, &failing);
        pthread_mutex_lock(&a->lock);
        a->done++;
        pthread_cond_broadcast(&a->idle);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* ---- lifecycle ---- */

int sfs_audit_open(const char *dest, const char *mountpoint, struct sfs_audit **out,
                   struct sfs_err *err)
{
    struct sfs_audit *a = calloc(1, sizeof *a);
    int rc = 0;

    *out = NULL;
    if (!a)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    a->dest = dest;
    a->mountpoint = mountpoint;
    a->journal = strcmp(dest, SFS_AUDIT_JOURNAL) == 0;
    a->sink = journal_sink;
    a->fd = -1;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    pthread_cond_init(&a->idle, NULL);
    a->key_mem = sfs_arena_new(AUDIT_KEYS * sizeof *a->keys);
    a->keys = a->key_mem ? sfs_arena_alloc(a->key_mem, AUDIT_KEYS * sizeof *a->keys) : NULL;
    if (!a->keys) {
        rc = sfs_err_set(err, -ENOMEM, "out of memory");
        goto out_free;
    }
    if (!a->journal && dest[0] != '/') {
        rc = sfs_err_set(err, -EINVAL, "audit=%s: give an absolute path, or 'journal'", dest);
        goto out_free;
    }
    if (!a->journal) {
        a->fd = open_log(dest, err);
        rc = a->fd < 0 ? a->fd : 0;
        if (rc < 0)
            goto out_free;
    }
    if (pthread_create(&a->writer, NULL, writer_thread, a) != 0) {
        rc = sfs_err_set(err, -EAGAIN, "cannot start the audit writer thread");
        goto out_close;
    }
    sfs_info("audit: recording every open of %s in %s (audit implies cache=none)",
             mountpoint, a->journal ? "the journal" : dest);
    *out = a;
    return 0;
out_close:
    if (a->fd >= 0)
        close(a->fd);
out_free:
    sfs_arena_free(a->key_mem);
    pthread_cond_destroy(&a->idle);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->lock);
    free(a);
    return rc;
}

void sfs_audit_close(struct sfs_audit *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->writer, NULL);
    if (a->fd >= 0)
        close(a->fd);
    sfs_arena_free(a->key_mem); /* wipes the fingerprint keys */
    pthread_cond_destroy(&a->idle);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

void sfs_audit_reopen(struct sfs_audit *a)
{
    pthread_mutex_lock(&a->lock);
    a->reopen = true;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
}

void sfs_audit_flush(struct sfs_audit *a)
{
    uint64_t target;

    pthread_mutex_lock(&a->lock);
    target = a->queued;
    while (a->done < target)
        pthread_cond_wait(&a->idle, &a->lock);
    pthread_mutex_unlock(&a->lock);
}

const char *sfs_audit_dest(const struct sfs_audit *a)
{
    return a->dest;
}

uint64_t sfs_audit_dropped(const struct sfs_audit *a)
{
    return (uint64_t)atomic_load(&((struct sfs_audit *)a)->dropped);
}

void sfs_audit_set_sink(struct sfs_audit *a, sfs_audit_sink_fn fn, void *ctx)
{
    pthread_mutex_lock(&a->lock);
    a->sink = fn;
    a->sink_ctx = ctx;
    pthread_mutex_unlock(&a->lock);
}
