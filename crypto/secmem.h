/* crypto/secmem.h — secure memory: the only place plaintext secrets may live.
 *
 * An arena is a bump allocator over anonymous mappings that are mlock()ed, marked
 * MADV_DONTDUMP and MADV_DONTFORK, and wiped before they are unmapped.  A secret set (and
 * hence a daemon snapshot) owns exactly one arena, so freeing a generation wipes all of its
 * plaintext in one call.  Arenas are not thread-safe; a snapshot's arena is written only
 * while the snapshot is built, then read-only.
 */
#ifndef SFS_CRYPTO_SECMEM_H
#define SFS_CRYPTO_SECMEM_H

#include <stdbool.h>
#include <stddef.h>

/* Initializes libsodium.  Returns 0 or -EIO.  Call once, before any other sfs_ crypto call. */
int sfs_crypto_init(void) __attribute__((warn_unused_result));

/* libsodium's version at run time ("1.0.18"). */
const char *sfs_crypto_version(void);

/* When `required` is true, an arena whose pages cannot be locked fails to allocate
 * (-ENOMEM) instead of falling back to unlocked memory.  The daemon sets it; CLI
 * commands that hold a secret for milliseconds do not.  Default: false. */
void sfs_secmem_require_lock(bool required);

typedef struct sfs_arena sfs_arena;

/* Creates an empty arena; `hint` sizes the first chunk (0 for a small default).  Past its
 * first chunk an arena made with a hint grows by small chunks (its owner knew the size: what
 * follows is a few more entries, and every mapped byte is locked RAM), one made without by
 * doubling.  Returns NULL on allocation failure.  The caller owns it and frees it with
 * sfs_arena_free. */
sfs_arena *sfs_arena_new(size_t hint);

/* Returns `n` bytes (16-byte aligned, zeroed) valid until the arena is freed, or NULL if
 * memory (or, when required, locked memory) is exhausted. */
void *sfs_arena_alloc(sfs_arena *a, size_t n);

/* Copies `n` bytes into the arena; returns the copy or NULL. */
void *sfs_arena_dup(sfs_arena *a, const void *src, size_t n);

/* Wipes every byte ever handed out, unlocks and unmaps.  NULL is a no-op. */
void sfs_arena_free(sfs_arena *a);

/* Bytes handed out so far / bytes mapped / whether every chunk is locked in RAM. */
size_t sfs_arena_used(const sfs_arena *a);
size_t sfs_arena_mapped(const sfs_arena *a);
bool sfs_arena_locked(const sfs_arena *a);

/* Reads `fd` to its end into a new arena sized for `max` bytes.  On 0, *arena (the caller
 * frees it) holds the *len bytes at *buf.  Returns -EFBIG if there are more than `max`
 * bytes, -ENOMEM, or -errno of read(); on error nothing is left allocated. */
int sfs_arena_read_fd(int fd, size_t max, sfs_arena **arena, unsigned char **buf, size_t *len);

/* Zeroes `n` bytes in a way the compiler cannot elide. */
void sfs_wipe(void *p, size_t n);

/* Zeroes the CPU's vector registers (x86-64: zmm0-31 with AVX-512, else ymm0-15 with AVX,
 * else xmm0-15; elsewhere nothing).  glibc's string functions move data through them, and
 * their contents reach ordinary memory whenever they are saved: by the dynamic linker's
 * resolver on a lazily bound first call (which saves every vector register on the stack),
 * or in a signal frame.  Call it after a secret went through a copy that is not ours
 * (libcurl building a request).  Clobbers every vector register; no effect on memory. */
void sfs_wipe_registers(void);

/* Constant-time comparison of two equal-length buffers. */
bool sfs_equal_ct(const void *a, const void *b, size_t n);

/* Test hook: calls `fn` on each chunk of the arena before it is unmapped in sfs_arena_free,
 * after wiping.  Used by the unit test that proves freed generations are wiped. */
typedef void (*sfs_arena_inspect_fn)(const void *chunk, size_t len, void *ctx);
void sfs_arena_set_free_inspector(sfs_arena_inspect_fn fn, void *ctx);

#endif
