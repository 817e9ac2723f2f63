/* fs/snapshot.h — one immutable generation of what the mount serves, and the inode table
 * that keeps a name's inode number stable across generations.  Internal to fs/.
 *
 * Threading: the inode table's names are touched only by the thread that builds snapshots
 * (startup, then the reload thread); its list of live snapshots and its lookup counts have
 * locks of their own.  A
 * published snapshot is read-only; request handlers hold it as the references section
 * below says.
 */
#ifndef SFS_FS_SNAPSHOT_H
#define SFS_FS_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "crypto/secmem.h"
#include "fs/daemon.h"
#include "secrets/set.h"

#define SFS_INO_ROOT 1
#define SFS_INO_ENV 2
#define SFS_INO_JSON 3
#define SFS_INO_STATUS 4
#define SFS_INO_PYTHON 5
#define SFS_INO_NODE 6
#define SFS_INO_GO 7
#define SFS_INO_DOCKER 8
#define SFS_INO_FIRST_SECRET 16

enum snap_kind { SNAP_SECRET, SNAP_PLATFORM, SNAP_VIEW, SNAP_STATUS };

struct snap_entry {
    const char *name;
    const unsigned char *data;  /* NULL for .status (rendered on demand) */
    uint32_t size;              /* views: measured on first use; read it with sfs_snap_size */
    uint32_t mode;              /* permission bits only */
    uint64_t ino;
    uint64_t gen;               /* FUSE generation of this inode number */
    uid_t uid;
    gid_t gid;
    int64_t mtime;
    uint8_t kind;
    bool measured;              /* views: `size` is known (guarded by the view lock) */
};

struct snapshot {
    atomic_long refs;           /* holders: "current", requests, open file handles */
    atomic_long inflight;       /* requests using it right now (reload waits for 0) */
    uint64_t generation;        /* counts successful loads, starting at 1 */
    int64_t loaded_at;
    uint64_t store_version;     /* the store's set version it came from (0: none known) */
    sfs_set *store;             /* owns secret bytes */
    sfs_set *platform;          /* owns platform bytes */
    sfs_arena *views;           /* owns the rendered views' bytes */
    struct snap_entry *entries; /* sorted by name */
    size_t n;
    struct snap_entry **by_ino; /* indexed by inode number, NULL where absent */
    size_t ino_cap;
    size_t n_secrets, n_platform;
    uid_t dir_uid;
    gid_t dir_gid;
    uint32_t dir_mode;
};

/* The name -> inode number table. */
struct inode_table;
struct inode_table *sfs_inodes_new(void);
void sfs_inodes_free(struct inode_table *t);

/* The kernel's lookup count of `ino`, mirrored so that a name gone from every live
 * generation is retired once the kernel forgets it (its inode number then serves a later
 * name, with a new generation).  Call looked_up before replying with an entry for `ino`
 * (and forget(ino, 1) if that reply fails); forget for FUSE's FORGET and BATCH_FORGET.
 * Inodes below SFS_INO_FIRST_SECRET are ignored.  Thread-safe (the table's count lock). */
void sfs_inodes_looked_up(struct inode_table *t, uint64_t ino);
void sfs_inodes_forget(struct inode_table *t, uint64_t ino, uint64_t nlookup);

/* Builds a snapshot from a loaded store and platform set (it takes ownership of both, also
 * on failure; the store set becomes the snapshot's, filtered in place).  Applies --only, the
 * reserved-prefix rule (reserved names in the store are dropped and logged), owners and
 * modes; the views are measured and rendered on first use.  Returns NULL on ENOMEM. */
struct snapshot *sfs_snap_build(const struct sfs_mount_opts *o, struct inode_table *t,
                                sfs_set *store, sfs_set *platform, uint64_t generation);

/* Looks up a root entry by name or by inode; NULL if absent. */
const struct snap_entry *sfs_snap_find(const struct snapshot *s, const char *name);
const struct snap_entry *sfs_snap_by_ino(const struct snapshot *s, uint64_t ino);

/* The size of entry `e` of `s`.  A view's (.env, .env.json, .env.python, ...) is measured on first use, not
 * when the snapshot is built, so a reload or a mount never renders views nobody reads
 * (README "Performance").  Thread-safe. */
uint32_t sfs_snap_size(struct snapshot *s, const struct snap_entry *e);

/* The bytes of a view entry (kind SNAP_VIEW), rendered on first use and kept with the
 * snapshot; sfs_snap_size(s, e) of them.  NULL on ENOMEM.  Thread-safe. */
const unsigned char *sfs_snap_view_data(struct snapshot *s, const struct snap_entry *e);

/* ---- references ----
 * A snapshot is held by the daemon while it is current (the reference the build returns),
 * by each request that uses it (hold ... release), and in cache=none by each open file
 * handle (a request's hold turned into a pin, dropped by sfs_snap_unref on RELEASE).  The
 * last reference wipes and frees it.  Snapshots still pinned when the daemon frees the
 * inode table (handles the kernel never released) are freed there. */

/* Drops one reference; the last one wipes and frees everything. */
void sfs_snap_unref(struct snapshot *s);

/* A request starts using `s` (a reference, and counted in `inflight`). */
void sfs_snap_hold(struct snapshot *s);

/* The request is done with it. */
void sfs_snap_release(struct snapshot *s);

/* The request's hold becomes an open handle's: it leaves `inflight`, the reference stays
 * until sfs_snap_unref on release. */
void sfs_snap_pin(struct snapshot *s);

/* Waits until no request uses `s` (the reload thread, before invalidating the kernel's
 * caches of what `s` served). */
void sfs_snap_wait_idle(const struct snapshot *s);

/* ---- what the handlers reply, as plain functions ---- */

/* The attributes of entry `e` of `s` (NULL: the root directory).  .status's size and mtime
 * are the daemon's to fill in (fs/serve.c). */
void sfs_snap_attr(struct snapshot *s, const struct snap_entry *e, struct stat *st);

/* What a read of `size` bytes at `off` returns of a file of `len` bytes: the count, with
 * *start set to where it begins (0 bytes at or past the end, or for a negative offset). */
size_t sfs_read_slice(size_t len, off_t off, size_t size, size_t *start);

/* Walks the root directory from readdir offset `off` (0 ".", 1 "..", 2+i entry i), calling
 * emit(name, ino, is_dir, next_offset, ctx) until it returns false or the entries end. */
typedef bool (*sfs_dirent_fn)(const char *name, uint64_t ino, bool is_dir, off_t next,
                              void *ctx);
void sfs_snap_readdir(const struct snapshot *s, off_t off, sfs_dirent_fn emit, void *ctx);

/* Whether two entries serve different bytes or attributes. */
bool sfs_snap_entry_changed(const struct snap_entry *a, const struct snap_entry *b);

#endif
