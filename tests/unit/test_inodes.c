/* tests/unit/test_inodes.c — the inode table (fs/snapshot.c): a surviving name keeps its
 * inode, a name gone from every live generation and forgotten by the kernel is retired, and
 * whatever later takes its inode number gets a new generation, so (inode, generation) never
 * names two files. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "crypto/secmem.h"
#include "fs/snapshot.h"

static struct snapshot *build(struct inode_table *t, uint64_t gen, const char *const *names,
                              size_t n)
{
    static const struct sfs_mount_opts o = {.reserved_prefix = "LIVEKIT_", .mode = 0400};
    sfs_set *store = sfs_set_new(0), *platform = sfs_set_new(0);
    size_t i;

    for (i = 0; i < n; i++)
        (void)sfs_set_put(store, names[i], "v", 1, 0, 0);
    return sfs_snap_build(&o, t, store, platform, gen);
}

static const struct snap_entry *entry(struct snapshot *s, const char *name)
{
    return sfs_snap_find(s, name);
}

int main(void)
{
    static const char *const one[] = {"A", "B"}, *const two[] = {"A", "C"},
                             *const three[] = {"A", "D"}, *const five[] = {"A", "E"},
                             *const six[] = {"A", "B", "E"};
    struct inode_table *t;
    struct snapshot *s[7] = {NULL};
    uint64_t ino_a, ino_b, gen_b;
    int i;

    if (sfs_crypto_init() < 0)
        return 1;
    sfs_secmem_require_lock(false);
    t = sfs_inodes_new();
    s[1] = build(t, 1, one, 2);
    CHECK(s[1] != NULL);
    ino_a = entry(s[1], "A")->ino;
    ino_b = entry(s[1], "B")->ino;
    gen_b = entry(s[1], "B")->gen;
    sfs_inodes_looked_up(t, ino_b); /* the kernel holds B */
    s[2] = build(t, 2, two, 2);
    sfs_snap_unref(s[1]);
    s[3] = build(t, 3, three, 2);   /* B: in no live generation, but the kernel holds it */
    sfs_snap_unref(s[2]);
    CHECK(entry(s[3], "A")->ino == ino_a);
    CHECK(entry(s[3], "D")->ino != ino_b);
    sfs_inodes_forget(t, ino_b, 1); /* now B is forgotten */
    s[4] = build(t, 4, three, 2);   /* retires B and C: in no live generation, forgotten */
    sfs_snap_unref(s[3]);
    s[5] = build(t, 5, five, 2);    /* E takes a retired record: the table does not grow */
    sfs_snap_unref(s[4]);
    CHECK(entry(s[5], "A")->ino == ino_a);
    CHECK_MSG(entry(s[5], "E")->ino < SFS_INO_FIRST_SECRET + 4,
              "a fresh name got inode %llu: retired records are not reused",
              (unsigned long long)entry(s[5], "E")->ino);
    s[6] = build(t, 6, six, 3);     /* B comes back */
    sfs_snap_unref(s[5]);
    CHECK_MSG(entry(s[6], "B")->ino != ino_b || entry(s[6], "B")->gen != gen_b,
              "a returning name got its old (inode, generation) pair");
    CHECK(entry(s[6], "E")->ino != entry(s[6], "B")->ino);
    for (i = 0; i < 7; i++)
        if (i == 6)
            sfs_snap_unref(s[i]);
    sfs_inodes_free(t);
    return check_result();
}
