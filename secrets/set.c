#include "secrets/set.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secmem.h"

struct sfs_set {
    sfs_entry *v;
    size_t n;
    size_t cap;
    size_t value_bytes;
    sfs_arena *arena;
};

sfs_set *sfs_set_new(size_t value_bytes_hint)
{
    sfs_set *set = calloc(1, sizeof *set);

    if (!set)
        return NULL;
    set->arena = sfs_arena_new(value_bytes_hint);
    if (!set->arena) {
        free(set);
        return NULL;
    }
    return set;
}

void sfs_set_free(sfs_set *set)
{
    if (!set)
        return;
    sfs_arena_free(set->arena);
    free(set->v);
    free(set);
}

/* Index of `name`, or of where it would be inserted (with *found false). */
static size_t find(const sfs_set *set, const char *name, bool *found)
{
    size_t lo = 0, hi = set->n;

    /* fast path: parsers and the store decoder insert in order */
    if (set->n && strcmp(set->v[set->n - 1].name, name) < 0) {
        *found = false;
        return set->n;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(set->v[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Room for one more entry. */
static int grow(sfs_set *set)
{
    size_t cap;
    sfs_entry *v;

    if (set->n < set->cap)
        return 0;
    cap = set->cap ? set->cap * 2 : 16;
    v = realloc(set->v, cap * sizeof *v);
    if (!v)
        return -ENOMEM;
    set->v = v;
    set->cap = cap;
    return 0;
}

int sfs_set_put_line(sfs_set *set, const char *name, const void *value, size_t len,
                     int64_t created, int64_t updated, uint32_t line)
{
    bool found;
    size_t i;
    sfs_entry *e;
    void *copy;

    if (len > UINT32_MAX)
        return -EFBIG;
    i = find(set, name, &found);
    copy = sfs_arena_dup(set->arena, value, len);
    if (!copy)
        return -ENOMEM;
    if (found) {
        e = &set->v[i];
        sfs_wipe((void *)e->value, e->len);
        set->value_bytes -= e->len;
        if (created == 0)
            created = e->created;
    } else {
        const char *name_copy;
        if (grow(set) < 0)
            return -ENOMEM;
        name_copy = sfs_arena_dup(set->arena, name, strlen(name) + 1);
        if (!name_copy)
            return -ENOMEM;
        memmove(&set->v[i + 1], &set->v[i], (set->n - i) * sizeof *set->v);
        set->n++;
        e = &set->v[i];
        e->name = name_copy;
    }
    e->value = copy;
    e->len = (uint32_t)len;
    e->line = line;
    e->created = created;
    e->updated = updated;
    set->value_bytes += len;
    return 0;
}

int sfs_set_put(sfs_set *set, const char *name, const void *value, size_t len,
                int64_t created, int64_t updated)
{
    return sfs_set_put_line(set, name, value, len, created, updated, 0);
}

int sfs_set_append(sfs_set *set, const char *name, const void *value, size_t len,
                   int64_t created, int64_t updated)
{
    const char *name_copy;
    void *copy;
    sfs_entry *e;

    if (len > UINT32_MAX)
        return -EFBIG;
    if (grow(set) < 0 || !(copy = sfs_arena_dup(set->arena, value, len)) ||
        !(name_copy = sfs_arena_dup(set->arena, name, strlen(name) + 1)))
        return -ENOMEM;
    e = &set->v[set->n++];
    e->name = name_copy;
    e->value = copy;
    e->len = (uint32_t)len;
    e->line = 0;
    e->created = created;
    e->updated = updated;
    set->value_bytes += len;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const sfs_entry *)a)->name, ((const sfs_entry *)b)->name);
}

int sfs_set_sort(sfs_set *set)
{
    size_t i;

    if (set->n > 1)
        qsort(set->v, set->n, sizeof *set->v, by_name);
    for (i = 1; i < set->n; i++)
        if (strcmp(set->v[i - 1].name, set->v[i].name) == 0)
            return -EEXIST;
    return 0;
}

const sfs_entry *sfs_set_get(const sfs_set *set, const char *name)
{
    bool found;
    size_t i = find(set, name, &found);

    return found ? &set->v[i] : NULL;
}

int sfs_set_remove(sfs_set *set, const char *name)
{
    bool found;
    size_t i = find(set, name, &found);

    if (!found)
        return -ENOENT;
    sfs_wipe((void *)set->v[i].value, set->v[i].len);
    set->value_bytes -= set->v[i].len;
    memmove(&set->v[i], &set->v[i + 1], (set->n - i - 1) * sizeof *set->v);
    set->n--;
    return 0;
}

size_t sfs_set_filter(sfs_set *set, bool (*keep)(const sfs_entry *e, void *ctx), void *ctx)
{
    size_t i, k = 0, removed;

    for (i = 0; i < set->n; i++) {
        sfs_entry *e = &set->v[i];
        if (keep(e, ctx)) {
            if (k != i)
                set->v[k] = *e;
            k++;
        } else {
            sfs_wipe((void *)e->value, e->len);
            set->value_bytes -= e->len;
        }
    }
    removed = set->n - k;
    set->n = k;
    return removed;
}

size_t sfs_set_count(const sfs_set *set)
{
    return set->n;
}

const sfs_entry *sfs_set_at(const sfs_set *set, size_t i)
{
    return &set->v[i];
}

size_t sfs_set_value_bytes(const sfs_set *set)
{
    return set->value_bytes;
}

sfs_set *sfs_set_clone(const sfs_set *set)
{
    sfs_set *copy = sfs_set_new(sfs_arena_used(set->arena));
    size_t i;

    if (!copy)
        return NULL;
    for (i = 0; i < set->n; i++) {
        const sfs_entry *e = &set->v[i];
        if (sfs_set_put_line(copy, e->name, e->value, e->len, e->created, e->updated,
                             e->line) < 0) {
            sfs_set_free(copy);
            return NULL;
        }
    }
    return copy;
}

bool sfs_set_equal(const sfs_set *a, const sfs_set *b)
{
    size_t i;

    if (a->n != b->n)
        return false;
    for (i = 0; i < a->n; i++) {
        const sfs_entry *x = &a->v[i], *y = &b->v[i];
        if (strcmp(x->name, y->name) != 0 || x->len != y->len ||
            (x->len && memcmp(x->value, y->value, x->len) != 0))
            return false;
    }
    return true;
}

bool sfs_set_locked(const sfs_set *set)
{
    return sfs_arena_locked(set->arena);
}
