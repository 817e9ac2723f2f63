/* tests/unit/test_snapshot.c — fs/'s policy without a mount: what a generation serves
 * (--only, platform names, owners and modes, the directory's bits, the views leaving out
 * secrets with their own owner or mode), inode numbers and FUSE generations across reloads
 * (README "Reload"), the attributes, read slices and readdir walk the handlers reply with,
 * and the snapshot reference protocol (including generations still pinned at unmount,
 * which the ASan and valgrind runs check are freed). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"
#include "crypto/secmem.h"
#include "fs/snapshot.h"
#include "secrets/set.h"
#include "util/log.h"

#define UID 1000
#define GID 1000

struct kv {
    const char *name, *value;
};

static struct sfs_mount_opts opts(void)
{
    return (struct sfs_mount_opts){
        .reserved_prefix = "LIVEKIT_", .uid = UID, .gid = GID, .mode = 0400,
        .cache = SFS_CACHE_KERNEL,
    };
}

/* A set of the NULL-terminated pairs, each `updated` at 1000 + its index. */
static sfs_set *set_of(const struct kv *kv)
{
    sfs_set *set = sfs_set_new(0);
    int64_t i;

    for (i = 0; set && kv && kv[i].name; i++)
        CHECK(sfs_set_put(set, kv[i].name, kv[i].value, strlen(kv[i].value), 1, 1000 + i) == 0);
    return set;
}

static struct snapshot *build(const struct sfs_mount_opts *o, struct inode_table *t,
                              const struct kv *store, const struct kv *platform,
                              uint64_t generation)
{
    struct snapshot *s = sfs_snap_build(o, t, set_of(store), set_of(platform), generation);

    CHECK_MSG(s != NULL, "building generation %llu", (unsigned long long)generation);
    return s;
}

/* The bytes a reader of `name` gets (views rendered), NUL-terminated in `out`. */
static const char *served(struct snapshot *s, const char *name, char *out, size_t cap)
{
    const struct snap_entry *e = sfs_snap_find(s, name);
    const unsigned char *data;
    size_t n;

    if (!e)
        return NULL;
    data = e->kind == SNAP_VIEW ? sfs_snap_view_data(s, e) : e->data;
    n = sfs_snap_size(s, e);
    CHECK_MSG(n < cap, "%s: %zu bytes", name, n);
    if (n >= cap || (n && !data))
        return NULL;
    memcpy(out, data, n);
    out[n] = '\0';
    return out;
}

static const char *const VIEWS[] = {".env", ".env.docker", ".env.go", ".env.json",
                                    ".env.node", ".env.python"};
#define N_VIEWS (sizeof VIEWS / sizeof VIEWS[0])

/* ---- inode numbers and generations across reloads ---- */

static void test_inodes_across_generations(void)
{
    struct sfs_mount_opts o = opts();
    struct inode_table *t = sfs_inodes_new();
    struct snapshot *g1, *g2, *g3, *g4;
    const struct snap_entry *a1, *b1, *c1, *a2, *c2, *d2, *aa2, *b3, *a4, *b4;

    CHECK(t != NULL);
    if (!t)
        return;
    g1 = build(&o, t, (struct kv[]){{"A", "1"}, {"B", "2"}, {"C", "3"}, {0}}, NULL, 1);
    /* B leaves; AA (sorting between A and C) and D arrive; A and C change value */
    g2 = build(&o, t, (struct kv[]){{"A", "10"}, {"AA", "x"}, {"C", "30"}, {"D", "4"}, {0}},
               NULL, 2);
    g3 = build(&o, t, (struct kv[]){{"A", "10"}, {"B", "back"}, {"C", "30"}, {0}}, NULL, 3);
    g4 = build(&o, t, (struct kv[]){{"A", "10"}, {"B", "back"}, {0}}, NULL, 4);
    if (!g1 || !g2 || !g3 || !g4)
        goto out;
    a1 = sfs_snap_find(g1, "A"), b1 = sfs_snap_find(g1, "B"), c1 = sfs_snap_find(g1, "C");
    a2 = sfs_snap_find(g2, "A"), c2 = sfs_snap_find(g2, "C"), d2 = sfs_snap_find(g2, "D");
    aa2 = sfs_snap_find(g2, "AA"), b3 = sfs_snap_find(g3, "B");
    a4 = sfs_snap_find(g4, "A"), b4 = sfs_snap_find(g4, "B");
    CHECK(a1 && b1 && c1 && a2 && c2 && d2 && aa2 && b3 && a4 && b4);
    if (!(a1 && b1 && c1 && a2 && c2 && d2 && aa2 && b3 && a4 && b4))
        goto out;

    /* a name that stays keeps its inode number and FUSE generation, even when its value
     * changes or a new name sorts before it: a bind-mounted file sees the update */
    CHECK(a1->ino == a2->ino && a2->ino == a4->ino && a1->gen == a4->gen);
    CHECK(c1->ino == c2->ino && c1->gen == c2->gen);
    CHECK(a1->ino >= SFS_INO_FIRST_SECRET && b1->ino >= SFS_INO_FIRST_SECRET);
    CHECK(a1->ino != b1->ino && b1->ino != c1->ino && a1->ino != c1->ino);
    /* new names get inode numbers no name of this daemon has had */
    CHECK(d2->ino != a1->ino && d2->ino != b1->ino && d2->ino != c1->ino);
    CHECK(aa2->ino != a1->ino && aa2->ino != b1->ino && aa2->ino != c1->ino &&
          aa2->ino != d2->ino);
    /* while B is gone its inode number resolves to nothing */
    CHECK(sfs_snap_find(g2, "B") == NULL);
    CHECK(sfs_snap_by_ino(g2, b1->ino) == NULL);
    CHECK(sfs_snap_by_ino(g2, d2->ino) == d2);
    /* B came back: to the kernel it is a new file, never the (inode, generation) it had
     * (today it is the same inode number with the generation bumped) */
    CHECK_MSG(b3->ino != b1->ino || b3->gen != b1->gen, "B came back as inode %llu gen %llu",
              (unsigned long long)b3->ino, (unsigned long long)b3->gen);
    CHECK(b3->ino != a1->ino && b3->ino != c1->ino && b3->ino != d2->ino &&
          b3->ino != aa2->ino);
    /* ...and then stays that file */
    CHECK(b4->ino == b3->ino && b4->gen == b3->gen);
    /* the views keep their fixed inode numbers */
    for (size_t i = 0; i < N_VIEWS; i++) {
        const struct snap_entry *v1 = sfs_snap_find(g1, VIEWS[i]);
        const struct snap_entry *v4 = sfs_snap_find(g4, VIEWS[i]);
        CHECK_MSG(v1 && v4 && v1->ino == v4->ino && v1->ino < SFS_INO_FIRST_SECRET &&
                  v1->ino != SFS_INO_ROOT, "%s", VIEWS[i]);
    }
    /* what the reload invalidates: a changed value, not an unchanged one */
    CHECK(sfs_snap_entry_changed(a1, a2));
    CHECK(!sfs_snap_entry_changed(a2, a4));
out:
    sfs_snap_unref(g1);
    sfs_snap_unref(g2);
    sfs_snap_unref(g3);
    sfs_snap_unref(g4);
    sfs_inodes_free(t);
}

/* ---- what a generation serves ---- */

/* Runs `fn` with stderr going to a file; returns what was written there (malloc'd). */
static char *stderr_of(void (*fn)(void *), void *ctx)
{
    const char *path = path_in("stderr.log");
    int saved = dup(STDERR_FILENO), fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    char *text = calloc(1, 4096);

    fflush(stderr);
    if (saved >= 0 && fd >= 0 && dup2(fd, STDERR_FILENO) >= 0) {
        fn(ctx);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
    }
    if (fd >= 0 && text && pread(fd, text, 4095, 0) < 0)
        text[0] = '\0';
    if (fd >= 0)
        close(fd);
    if (saved >= 0)
        close(saved);
    return text;
}

struct build_job {
    const struct sfs_mount_opts *o;
    struct inode_table *t;
    const struct kv *store, *platform;
    struct snapshot *s;
};

static void run_build(void *ctx)
{
    struct build_job *j = ctx;

    j->s = build(j->o, j->t, j->store, j->platform, 1);
}

static void test_platform_names(void)
{
    struct sfs_mount_opts o = opts();
    struct inode_table *t = sfs_inodes_new();
    struct build_job j = {
        .o = &o, .t = t,
        .store = (struct kv[]){{"DB", "db"}, {"LIVEKIT_URL", "from-store"},
                               {"LIVEKIT_OTHER", "store-only"}, {0}},
        .platform = (struct kv[]){{"LIVEKIT_URL", "wss://platform"}, {0}},
    };
    char *log = stderr_of(run_build, &j);
    struct snapshot *s = j.s;
    const struct snap_entry *e;
    char buf[4096];

    if (s) {
        /* the platform's value wins; a reserved name only the store has is not served */
        CHECK(served(s, "LIVEKIT_URL", buf, sizeof buf) &&
              strcmp(buf, "wss://platform") == 0);
        e = sfs_snap_find(s, "LIVEKIT_URL");
        CHECK(e && e->kind == SNAP_PLATFORM);
        CHECK(sfs_snap_find(s, "LIVEKIT_OTHER") == NULL);
        CHECK(served(s, ".env", buf, sizeof buf) && strstr(buf, "from-store") == NULL &&
              strstr(buf, "store-only") == NULL && strstr(buf, "wss://platform") != NULL);
        CHECK(s->n_secrets == 1 && s->n_platform == 1);
    }
    /* ...and the daemon says so, naming the entry but never its value */
    CHECK(log && strstr(log, "LIVEKIT_OTHER") && strstr(log, "platform name"));
    CHECK(log && strstr(log, "LIVEKIT_URL") && strstr(log, "from-store") == NULL &&
          strstr(log, "store-only") == NULL);
    free(log);
    sfs_snap_unref(s);
    sfs_inodes_free(t);
}

static void test_only(void)
{
    const char *only[] = {"B", "LIVEKIT_URL", "NOT_IN_STORE"};
    struct sfs_mount_opts o = opts();
    struct inode_table *t = sfs_inodes_new();
    struct snapshot *s;
    char buf[4096];

    o.only = only;
    o.n_only = 3;
    s = build(&o, t, (struct kv[]){{"A", "a-value"}, {"B", "b-value"}, {"C", "c"}, {0}},
              (struct kv[]){{"LIVEKIT_URL", "u"}, {"LIVEKIT_API_KEY", "k-value"}, {0}}, 1);
    if (s) {
        CHECK(sfs_snap_find(s, "A") == NULL && sfs_snap_find(s, "C") == NULL);
        CHECK(sfs_snap_find(s, "B") != NULL && sfs_snap_find(s, "LIVEKIT_URL") != NULL);
        CHECK(sfs_snap_find(s, "LIVEKIT_API_KEY") == NULL); /* --only limits platform too */
        CHECK(sfs_snap_find(s, "NOT_IN_STORE") == NULL);
        CHECK(s->n == N_VIEWS + 1 + 2); /* the views, .status, B, LIVEKIT_URL */
        CHECK(served(s, ".env", buf, sizeof buf) && strstr(buf, "b-value") &&
              !strstr(buf, "a-value") && !strstr(buf, "k-value"));
        CHECK(served(s, ".env.json", buf, sizeof buf) && strstr(buf, "b-value") &&
              !strstr(buf, "a-value"));
    }
    sfs_snap_unref(s);
    sfs_inodes_free(t);
}

/* The directory's mode for files with the given [secret:F] override (mount: UID, GID, 0400). */
static uint32_t dir_mode_with(bool has_uid, uid_t uid, bool has_gid, gid_t gid, mode_t mode)
{
    struct sfs_secret_perm p = {.name = "F", .has_uid = has_uid, .has_gid = has_gid,
                                .has_mode = true, .uid = uid, .gid = gid, .mode = mode};
    struct sfs_mount_opts o = opts();
    struct inode_table *t = sfs_inodes_new();
    struct snapshot *s;
    uint32_t got = 0;

    o.perms = &p;
    o.n_perms = 1;
    s = build(&o, t, (struct kv[]){{"E", "e"}, {"F", "f"}, {0}}, NULL, 1);
    if (s) {
        struct stat st;
        sfs_snap_attr(s, NULL, &st);
        got = st.st_mode & 07777;
        CHECK(S_ISDIR(st.st_mode) && st.st_uid == UID && st.st_gid == GID);
    }
    sfs_snap_unref(s);
    sfs_inodes_free(t);
    return got;
}

static void test_directory_bits(void)
{
    struct sfs_mount_opts o = opts();
    struct inode_table *t = sfs_inodes_new();
    struct snapshot *s = build(&o, t, (struct kv[]){{"E", "e"}, {0}}, NULL, 1);
    struct stat st;

    /* README "Ownership": mode 0400 files of the mount's owner: only the owner may list
     * (.status being 0444 does not open the directory to others) */
    if (s) {
        sfs_snap_attr(s, NULL, &st);
        CHECK_MSG((st.st_mode & 07777) == 0500, "%o", (unsigned)(st.st_mode & 07777));
    }
    sfs_snap_unref(s);
    sfs_inodes_free(t);
    /* a file the directory's group may read: the group lists too */
    CHECK_MSG(dir_mode_with(false, 0, false, 0, 0440) == 0550, "group-readable");
    /* readable by its owner, who is not the directory's: others may pass (--x), not list */
    CHECK_MSG(dir_mode_with(true, 4242, false, 0, 0400) == 0501, "other owner");
    /* readable by a group the directory does not name: --x for others too */
    CHECK_MSG(dir_mode_with(false, 0, true, 4343, 0040) == 0501, "other group");
    /* readable by everyone: everyone lists */
    CHECK_MSG(dir_mode_with(false, 0, false, 0, 0444) == 0555, "world-readable");
    CHECK_MSG(dir_mode_with(false, 0, false, 0, 0404) == 0505, "owner and others");
    /* unreadable by anyone: the owner can still list */
    CHECK_MSG(dir_mode_with(false, 0, false, 0, 0000) == 0500, "unreadable");
}

static void test_views_leave_out_own_perms(void)
{
    struct sfs_secret_perm perms[] = {
        {.name = "OWN_MODE", .has_mode = true, .mode = 0440},
        {.name = "OWN_UID", .has_uid = true, .uid = 4242},
        {.name = "OWN_GID", .has_gid = true, .gid = 4343},
        {.name = "LIVEKIT_URL", .has_mode = true, .mode = 0444},
        {.name = "SAME", .has_uid = true, .uid = UID, .has_mode = true, .mode = 0400},
    };
    struct sfs_mount_opts o = opts();
    struct inode_table *t = sfs_inodes_new();
    struct snapshot *s;
    const struct snap_entry *e;
    char buf[4096];

    o.perms = perms;
    o.n_perms = sizeof perms / sizeof perms[0];
    s = build(&o, t,
              (struct kv[]){{"OWN_GID", "gid-value"}, {"OWN_MODE", "mode-value"},
                            {"OWN_UID", "uid-value"}, {"PLAIN", "plain-value"},
                            {"SAME", "same-value"}, {0}},
              (struct kv[]){{"LIVEKIT_URL", "url-value"}, {0}}, 1);
    if (!s)
        goto out;
    /* the files carry their own owner and mode ... */
    e = sfs_snap_find(s, "OWN_MODE");
    CHECK(e && e->mode == 0440 && e->uid == UID && e->gid == GID);
    e = sfs_snap_find(s, "OWN_UID");
    CHECK(e && e->uid == 4242 && e->gid == GID && e->mode == 0400);
    e = sfs_snap_find(s, "OWN_GID");
    CHECK(e && e->gid == 4343 && e->uid == UID);
    /* ... the views the mount's, and they leave those secrets out, so they never widen
     * access; a section that repeats the mount's owner and mode changes nothing */
    for (size_t i = 0; i < N_VIEWS; i++) {
        e = sfs_snap_find(s, VIEWS[i]);
        CHECK_MSG(e && e->uid == UID && e->gid == GID && e->mode == 0400, "%s", VIEWS[i]);
        CHECK_MSG(served(s, VIEWS[i], buf, sizeof buf) != NULL, "%s", VIEWS[i]);
        CHECK_MSG(strstr(buf, "plain-value") && strstr(buf, "same-value"), "%s", VIEWS[i]);
        CHECK_MSG(!strstr(buf, "mode-value") && !strstr(buf, "uid-value") &&
                  !strstr(buf, "gid-value") && !strstr(buf, "url-value"),
                  "%s shows a secret with its own owner or mode", VIEWS[i]);
    }
    e = sfs_snap_find(s, ".status");
    CHECK(e && e->mode == 0444 && e->kind == SNAP_STATUS);
out:
    sfs_snap_unref(s);
    sfs_inodes_free(t);
}

/* ---- what the handlers reply ---- */

static void test_attr(void)
{
    struct sfs_mount_opts o = opts();
    struct inode_table *t = sfs_inodes_new();
    struct snapshot *s = build(&o, t, (struct kv[]){{"A", "12345"}, {"B", ""}, {0}}, NULL, 7);
    const struct snap_entry *e;
    struct stat st;
    char buf[4096];

    if (!s)
        goto out;
    sfs_snap_attr(s, NULL, &st);
    CHECK(st.st_ino == SFS_INO_ROOT && S_ISDIR(st.st_mode) && st.st_nlink == 2);
    CHECK(st.st_mtime == s->loaded_at && llabs((long long)(st.st_mtime - time(NULL))) < 60);
    e = sfs_snap_find(s, "A");
    sfs_snap_attr(s, e, &st);
    CHECK(e && st.st_ino == e->ino && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0400);
    CHECK(st.st_nlink == 1 && st.st_uid == UID && st.st_gid == GID);
    CHECK(st.st_size == 5 && st.st_blocks == 1);
    CHECK(st.st_mtime == 1000); /* the secret's `updated` */
    sfs_snap_attr(s, sfs_snap_find(s, "B"), &st);
    CHECK(st.st_size == 0 && st.st_blocks == 0 && st.st_mtime == 1001);
    /* a view's size is exactly what a read returns (the kernel truncates reads to it) */
    e = sfs_snap_find(s, ".env");
    sfs_snap_attr(s, e, &st);
    CHECK(served(s, ".env", buf, sizeof buf) && st.st_size == (off_t)strlen(buf) &&
          st.st_size > 0);
out:
    sfs_snap_unref(s);
    sfs_inodes_free(t);
}

static void test_read_slice(void)
{
    size_t start = 99;

    CHECK(sfs_read_slice(10, 0, 4096, &start) == 10 && start == 0);
    CHECK(sfs_read_slice(10, 0, 4, &start) == 4 && start == 0);
    CHECK(sfs_read_slice(10, 3, 4, &start) == 4 && start == 3);
    CHECK(sfs_read_slice(10, 8, 4, &start) == 2 && start == 8);   /* partial at the end */
    CHECK(sfs_read_slice(10, 9, 1, &start) == 1 && start == 9);
    start = 99;
    CHECK(sfs_read_slice(10, 10, 4, &start) == 0 && start == 0);  /* at the end */
    start = 99;
    CHECK(sfs_read_slice(10, 11, 4, &start) == 0 && start == 0);  /* past it */
    start = 99;
    CHECK(sfs_read_slice(10, INT64_MAX, 4, &start) == 0 && start == 0);
    start = 99;
    CHECK(sfs_read_slice(10, -1, 4, &start) == 0 && start == 0);  /* negative */
    CHECK(sfs_read_slice(10, INT64_MIN, 4, &start) == 0 && start == 0);
    CHECK(sfs_read_slice(10, 5, 0, &start) == 0);                 /* nothing asked */
    CHECK(sfs_read_slice(0, 0, 4096, &start) == 0 && start == 0); /* empty file */
    CHECK(sfs_read_slice(10, 2, SIZE_MAX, &start) == 8 && start == 2);
}

struct dirents {
    size_t n, stop_after;
    char name[64][64];
    uint64_t ino[64];
    bool is_dir[64];
    off_t next[64];
};

static bool collect(const char *name, uint64_t ino, bool is_dir, off_t next, void *ctx)
{
    struct dirents *d = ctx;

    if (d->n >= 64 || (d->stop_after && d->n >= d->stop_after))
        return false; /* "the reply buffer is full" */
    snprintf(d->name[d->n], sizeof d->name[0], "%s", name);
    d->ino[d->n] = ino;
    d->is_dir[d->n] = is_dir;
    d->next[d->n] = next;
    d->n++;
    return true;
}

static void test_readdir(void)
{
    static const char *const want[] = {".", "..", ".env", ".env.docker", ".env.go",
                                       ".env.json", ".env.node", ".env.python", ".status",
                                       "A", "B", "C"};
    const size_t n_want = sizeof want / sizeof want[0];
    struct sfs_mount_opts o = opts();
    struct inode_table *t = sfs_inodes_new();
    struct snapshot *s = build(&o, t, (struct kv[]){{"A", "a"}, {"B", "b"}, {"C", "c"}, {0}},
                               NULL, 1);
    struct dirents all = {0}, part = {0}, rest = {0}, none = {0};
    size_t i;

    if (!s)
        goto out;
    sfs_snap_readdir(s, 0, collect, &all);
    CHECK_MSG(all.n == n_want, "%zu entries", all.n);
    for (i = 0; i < all.n && i < n_want; i++) {
        const struct snap_entry *e = sfs_snap_find(s, want[i]);
        CHECK_MSG(strcmp(all.name[i], want[i]) == 0, "entry %zu is %s", i, all.name[i]);
        CHECK_MSG(all.next[i] == (off_t)(i + 1), "%s: next offset %lld", want[i],
                  (long long)all.next[i]);
        CHECK_MSG(all.is_dir[i] == (i < 2), "%s", want[i]);
        CHECK_MSG(i < 2 ? all.ino[i] == SFS_INO_ROOT : e && all.ino[i] == e->ino, "%s",
                  want[i]);
    }
    /* a full buffer, then resuming from the last offset returned: every name once */
    part.stop_after = 5;
    sfs_snap_readdir(s, 0, collect, &part);
    CHECK(part.n == 5);
    if (part.n == 5)
        sfs_snap_readdir(s, part.next[4], collect, &rest);
    CHECK(part.n + rest.n == n_want);
    for (i = 0; i < rest.n && 5 + i < n_want; i++)
        CHECK_MSG(strcmp(rest.name[i], want[5 + i]) == 0, "resumed entry %zu: %s", i,
                  rest.name[i]);
    /* resuming after ".." starts at the first file; past the end gives nothing */
    memset(&rest, 0, sizeof rest);
    sfs_snap_readdir(s, 2, collect, &rest);
    CHECK(rest.n == n_want - 2 && strcmp(rest.name[0], ".env") == 0);
    sfs_snap_readdir(s, (off_t)n_want, collect, &none);
    sfs_snap_readdir(s, (off_t)n_want + 100, collect, &none);
    CHECK(none.n == 0);
    /* a negative offset (never sent by the kernel) walks from the start */
    memset(&rest, 0, sizeof rest);
    sfs_snap_readdir(s, -5, collect, &rest);
    CHECK(rest.n == n_want && strcmp(rest.name[0], ".") == 0);
out:
    sfs_snap_unref(s);
    sfs_inodes_free(t);
}

/* ---- references ---- */

struct releaser {
    struct snapshot *s;
    atomic_bool released;
};

static void *release_later(void *arg)
{
    struct releaser *r = arg;
    struct timespec nap = {0, 50 * 1000 * 1000};

    nanosleep(&nap, NULL);
    atomic_store(&r->released, true);
    sfs_snap_release(r->s);
    return NULL;
}

static void test_references(void)
{
    struct sfs_mount_opts o = opts();
    struct inode_table *t = sfs_inodes_new();
    struct snapshot *s = build(&o, t, (struct kv[]){{"A", "a"}, {0}}, NULL, 1);
    struct snapshot *pinned1, *pinned2;
    struct releaser r = {0};
    pthread_t th;

    if (!s)
        goto out;
    CHECK(atomic_load(&s->refs) == 1 && atomic_load(&s->inflight) == 0);
    sfs_snap_wait_idle(s); /* nobody uses it: returns at once */
    /* a request: hold ... release */
    sfs_snap_hold(s);
    CHECK(atomic_load(&s->refs) == 2 && atomic_load(&s->inflight) == 1);
    sfs_snap_release(s);
    CHECK(atomic_load(&s->refs) == 1 && atomic_load(&s->inflight) == 0);
    /* reload waits for a request still using the old generation */
    sfs_snap_hold(s);
    r.s = s;
    CHECK(pthread_create(&th, NULL, release_later, &r) == 0);
    sfs_snap_wait_idle(s);
    CHECK(atomic_load(&r.released));
    pthread_join(th, NULL);
    CHECK(atomic_load(&s->inflight) == 0);
    /* an open (cache=none): the request's hold becomes the handle's pin; it outlives the
     * generation being current, and RELEASE drops it */
    sfs_snap_hold(s);
    sfs_snap_pin(s);
    CHECK(atomic_load(&s->refs) == 2 && atomic_load(&s->inflight) == 0);
    sfs_snap_wait_idle(s); /* a pinned handle does not hold up a reload */
    sfs_snap_unref(s);     /* no longer current */
    CHECK(atomic_load(&s->refs) == 1);
    CHECK(sfs_snap_find(s, "A") != NULL); /* the handle still reads it */
    sfs_snap_unref(s);     /* RELEASE: the last reference frees it */
    s = NULL;

    /* handles the kernel never released (the session ended first): the generations they
     * pinned are freed with the inode table (the ASan and valgrind runs fail on a leak) */
    pinned1 = build(&o, t, (struct kv[]){{"A", "a"}, {"B", "gen 2"}, {0}}, NULL, 2);
    pinned2 = build(&o, t, (struct kv[]){{"A", "a"}, {"B", "gen 3"}, {0}}, NULL, 3);
    if (pinned1 && pinned2) {
        sfs_snap_hold(pinned1);
        sfs_snap_pin(pinned1);
        sfs_snap_unref(pinned1); /* replaced by gen 3 */
        sfs_snap_hold(pinned2);
        sfs_snap_pin(pinned2);
        sfs_snap_hold(pinned2);
        sfs_snap_pin(pinned2);
        sfs_snap_unref(pinned2); /* the daemon stops: "current" goes, two pins stay */
    }
out:
    sfs_inodes_free(t);
    sfs_inodes_free(NULL);
}

int main(void)
{
    int rc;

    if (sfs_crypto_init() < 0 || !test_dir_make("snapshot"))
        return 1;
    sfs_log_init("test_snapshot", false);
    test_inodes_across_generations();
    test_platform_names();
    test_only();
    test_directory_bits();
    test_views_leave_out_own_perms();
    test_attr();
    test_read_slice();
    test_readdir();
    test_references();
    rc = check_result();
    rm_rf(test_dir);
    return rc;
}
