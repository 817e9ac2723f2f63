#include "crypto/secmem.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define CHUNK_MIN (64u * 1024u)

struct chunk {
    struct chunk *next;
    size_t len;   /* mapped bytes, including this header */
    size_t used;  /* bytes handed out, including this header */
    bool locked;
};

struct sfs_arena {
    struct chunk *head;
    size_t used;
    size_t mapped;
    bool all_locked;
    bool sized;   /* created with a hint: grows by small chunks, not by doubling */
};

static bool lock_required;
static sfs_arena_inspect_fn free_inspector;
static void *free_inspector_ctx;

int sfs_crypto_init(void)
{
    return sodium_init() < 0 ? -EIO : 0;
}

const char *sfs_crypto_version(void)
{
    return sodium_version_string();
}

void sfs_secmem_require_lock(bool required)
{
    lock_required = required;
}

void sfs_arena_set_free_inspector(sfs_arena_inspect_fn fn, void *ctx)
{
    free_inspector = fn;
    free_inspector_ctx = ctx;
}

void sfs_wipe(void *p, size_t n)
{
    if (p && n)
        sodium_memzero(p, n);
}

#if defined(__x86_64__)
#define ZERO_ZMM(n) "vpxord %%zmm" #n ", %%zmm" #n ", %%zmm" #n "\n\t"
#define PXOR(n) "pxor %%xmm" #n ", %%xmm" #n "\n\t"

static void wipe_avx512(void)
{
    __asm__ volatile("vzeroall\n\t"
                     ZERO_ZMM(16) ZERO_ZMM(17) ZERO_ZMM(18) ZERO_ZMM(19)
                     ZERO_ZMM(20) ZERO_ZMM(21) ZERO_ZMM(22) ZERO_ZMM(23)
                     ZERO_ZMM(24) ZERO_ZMM(25) ZERO_ZMM(26) ZERO_ZMM(27)
                     ZERO_ZMM(28) ZERO_ZMM(29) ZERO_ZMM(30) ZERO_ZMM(31)
                     "vzeroupper" ::: "memory");
}

static void wipe_sse(void)
{
    __asm__ volatile(PXOR(0) PXOR(1) PXOR(2) PXOR(3) PXOR(4) PXOR(5) PXOR(6) PXOR(7)
                     PXOR(8) PXOR(9) PXOR(10) PXOR(11) PXOR(12) PXOR(13) PXOR(14) PXOR(15)
                     ::: "memory");
}
#endif

void sfs_wipe_registers(void)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f"))
        wipe_avx512();
    else if (__builtin_cpu_supports("avx"))
        __asm__ volatile("vzeroall" ::: "memory");
    else
        wipe_sse();
#endif
}

bool sfs_equal_ct(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* Maps a locked chunk with room for `want` bytes, at least `min` bytes in all. */
static struct chunk *chunk_map(size_t want, size_t min)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = round_up(want + sizeof(struct chunk), page);
    struct chunk *c;
    void *p;

    if (len < min)
        len = min;
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    (void)madvise(p, len, MADV_DONTDUMP);
    (void)madvise(p, len, MADV_DONTFORK);
    c = p;
    c->locked = mlock(p, len) == 0;
    if (!c->locked && lock_required) {
        munmap(p, len);
        errno = ENOMEM;
        return NULL;
    }
    c->len = len;
    c->used = round_up(sizeof(struct chunk), 16);
    c->next = NULL;
    return c;
}

sfs_arena *sfs_arena_new(size_t hint)
{
    sfs_arena *a = calloc(1, sizeof *a);

    if (!a)
        return NULL;
    a->all_locked = true;
    a->sized = hint != 0;
    if (hint) {
        a->head = chunk_map(hint, CHUNK_MIN);
        if (!a->head) {
            free(a);
            return NULL;
        }
        a->mapped = a->head->len;
        a->all_locked = a->head->locked;
    }
    return a;
}

void *sfs_arena_alloc(sfs_arena *a, size_t n)
{
    struct chunk *c = a->head;
    size_t need = round_up(n ? n : 1, 16);
    void *p;

    if (need < n)
        return NULL;
    if (!c || c->len - c->used < need) {
        /* sized: a page at a time (a few platform entries); else doubling from CHUNK_MIN */
        size_t grow = c && !a->sized ? c->len * 2 : 0;
        c = chunk_map(need > grow ? need : grow, a->sized ? 0 : CHUNK_MIN);
        if (!c)
            return NULL;
        c->next = a->head;
        a->head = c;
        a->mapped += c->len;
        a->all_locked = a->all_locked && c->locked;
    }
    p = (unsigned char *)c + c->used;
    c->used += need;
    a->used += need;
    return p;
}

void *sfs_arena_dup(sfs_arena *a, const void *src, size_t n)
{
    void *p = sfs_arena_alloc(a, n);

    if (p && n)
        memcpy(p, src, n);
    return p;
}

int sfs_arena_read_fd(int fd, size_t max, sfs_arena **arena, unsigned char **buf, size_t *len)
{
    size_t cap = max + 1, got = 0; /* one more byte tells "too big" from "exactly max" */
    sfs_arena *a;
    unsigned char *p;
    struct stat st;
    int rc = 0;

    /* a regular file needs no more than its size (plus room to notice it growing) */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size < max)
        cap = (size_t)st.st_size + 4097;
    a = sfs_arena_new(cap);
    p = a ? sfs_arena_alloc(a, cap) : NULL;

    if (!p) {
        rc = -ENOMEM;
        goto fail;
    }
    while (got < cap) {
        ssize_t n = read(fd, p + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto fail;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got > max) {
        rc = -EFBIG;
        goto fail;
    }
    *arena = a;
    *buf = p;
    *len = got;
    return 0;
fail:
    sfs_arena_free(a);
    return rc;
}

void sfs_arena_free(sfs_arena *a)
{
    struct chunk *c;

    if (!a)
        return;
    c = a->head;
    while (c) {
        struct chunk *next = c->next;
        size_t len = c->len;
        bool locked = c->locked;

        sodium_memzero(c, c->used); /* pages past `used` were never touched */
        if (free_inspector)
            free_inspector(c, len, free_inspector_ctx);
        if (locked)
            munlock(c, len);
        munmap(c, len);
        c = next;
    }
    free(a);
}

size_t sfs_arena_used(const sfs_arena *a)
{
    return a->used;
}

size_t sfs_arena_mapped(const sfs_arena *a)
{
    return a->mapped;
}

bool sfs_arena_locked(const sfs_arena *a)
{
    return a->all_locked;
}
