/* tests/unit/test_secmem.c — the secure arena: alignment, zeroing, growth, wipe on free. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "crypto/secmem.h"

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

struct inspect {
    size_t chunks;
    size_t bytes;
    size_t dirty;
};

static void inspect(const void *chunk, size_t len, void *ctx)
{
    struct inspect *in = ctx;

    in->chunks++;
    in->bytes += len;
    if (!all_zero(chunk, len))
        in->dirty++;
}

static void test_alloc(void)
{
    static const size_t sizes[] = {0, 1, 7, 15, 16, 17, 31, 100, 4096, 5000, 65536,
                                   200000, 1 << 20, 3};
    sfs_arena *a = sfs_arena_new(0);
    size_t want_used = 0;
    bool aligned = true, zeroed = true;
    unsigned char *prev = NULL;
    size_t prev_len = 0;
    bool overlap = false;

    CHECK(a != NULL);
    CHECK(sfs_arena_used(a) == 0);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = sfs_arena_alloc(a, sizes[i]);
        CHECK(p != NULL);
        if (!p)
            continue;
        if ((uintptr_t)p % 16)
            aligned = false;
        if (!all_zero(p, sizes[i]))
            zeroed = false;
        if (prev && p < prev + prev_len && prev < p + sizes[i])
            overlap = true;
        memset(p, 0xA5, sizes[i]);
        want_used += sizes[i] ? (sizes[i] + 15) / 16 * 16 : 16;
        prev = p;
        prev_len = sizes[i];
    }
    CHECK(aligned);
    CHECK(zeroed);
    CHECK(!overlap);
    CHECK(sfs_arena_used(a) == want_used);
    CHECK(sfs_arena_mapped(a) >= sfs_arena_used(a));
    CHECK(sfs_arena_mapped(a) % (size_t)sysconf(_SC_PAGESIZE) == 0);
    sfs_arena_free(a);
    sfs_arena_free(NULL);
}

/* An arena sized by its owner grows by small chunks when a few more bytes come (every mapped
 * byte of it is locked RAM), not by another chunk as large as the first. */
static void test_growth(void)
{
    sfs_arena *sized = sfs_arena_new(1 << 20);
    size_t first;

    CHECK(sized != NULL);
    if (!sized)
        return;
    first = sfs_arena_mapped(sized);
    CHECK(sfs_arena_alloc(sized, (1 << 20) - 64) != NULL);
    CHECK(sfs_arena_mapped(sized) == first);
    CHECK(sfs_arena_alloc(sized, 4096) != NULL && sfs_arena_alloc(sized, 4096) != NULL);
    CHECK(sfs_arena_mapped(sized) - first <= 2 * (size_t)sysconf(_SC_PAGESIZE));
    CHECK(sfs_arena_alloc(sized, 300000) != NULL);             /* a big one still fits */
    CHECK(sfs_arena_mapped(sized) - first < 300000 + 4 * (size_t)sysconf(_SC_PAGESIZE));
    sfs_arena_free(sized);
}

static void test_dup(void)
{
    sfs_arena *a = sfs_arena_new(100);
    const char msg[] = "hunter2";
    char *p = sfs_arena_dup(a, msg, sizeof msg);

    CHECK(p != NULL && memcmp(p, msg, sizeof msg) == 0);
    CHECK(p != msg);
    CHECK(sfs_arena_dup(a, NULL, 0) != NULL);
    sfs_arena_free(a);
}

static void test_free_wipes(void)
{
    struct inspect in = {0, 0, 0};
    sfs_arena *a = sfs_arena_new(1000);
    size_t mapped;

    /* fill several chunks with a pattern, including one larger than the default chunk */
    for (int i = 0; i < 40; i++) {
        unsigned char *p = sfs_arena_alloc(a, 10000);
        if (p)
            memset(p, 0xC3, 10000);
    }
    unsigned char *big = sfs_arena_alloc(a, 3u << 20);
    CHECK(big != NULL);
    if (big)
        memset(big, 0x5A, 3u << 20);
    mapped = sfs_arena_mapped(a);
    sfs_arena_set_free_inspector(inspect, &in);
    sfs_arena_free(a);
    sfs_arena_set_free_inspector(NULL, NULL);
    CHECK_MSG(in.chunks >= 3, "%zu chunks", in.chunks);
    CHECK(in.bytes == mapped);
    CHECK_MSG(in.dirty == 0, "%zu chunks not wiped", in.dirty);

    /* an empty arena has nothing to wipe */
    in = (struct inspect){0, 0, 0};
    sfs_arena_set_free_inspector(inspect, &in);
    sfs_arena_free(sfs_arena_new(0));
    sfs_arena_set_free_inspector(NULL, NULL);
    CHECK(in.chunks == 0);
}

static void test_locked(void)
{
    sfs_arena *a;

    if (geteuid() != 0) {
        printf("not root: skipping the mlock checks\n");
        return;
    }
    sfs_secmem_require_lock(true);
    a = sfs_arena_new(1 << 20);
    CHECK(a != NULL);
    CHECK(a && sfs_arena_alloc(a, 5u << 20) != NULL);
    CHECK(a && sfs_arena_locked(a));
    sfs_arena_free(a);
    sfs_secmem_require_lock(false);
}

static void test_helpers(void)
{
    unsigned char buf[64];
    unsigned char x[32], y[32];

    memset(buf, 0xFF, sizeof buf);
    sfs_wipe(buf, sizeof buf);
    CHECK(all_zero(buf, sizeof buf));
    sfs_wipe(NULL, 10);
    memset(x, 1, sizeof x);
    memset(y, 1, sizeof y);
    CHECK(sfs_equal_ct(x, y, sizeof x));
    y[31] = 2;
    CHECK(!sfs_equal_ct(x, y, sizeof x));
    CHECK(sfs_equal_ct(x, y, 31));
}

/* A pattern left in a vector register is gone after sfs_wipe_registers (x86-64). */
static void test_wipe_registers(void)
{
#if defined(__x86_64__)
    unsigned char pattern[16], after[16];

    memset(pattern, 0xA5, sizeof pattern);
    __asm__ volatile("movdqu %0, %%xmm7" : : "m"(pattern) : "xmm7");
    sfs_wipe_registers();
    __asm__ volatile("movdqu %%xmm7, %0" : "=m"(after) : : "xmm7");
    CHECK(all_zero(after, sizeof after));
#else
    sfs_wipe_registers();
#endif
}

int main(void)
{
    if (sfs_crypto_init() < 0)
        return 1;
    test_alloc();
    test_growth();
    test_dup();
    test_free_wipes();
    test_locked();
    test_helpers();
    test_wipe_registers();
    return check_result();
}
