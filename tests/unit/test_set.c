/* tests/unit/test_set.c — the secret set: order, replace, remove, clone, equality. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crypto/secmem.h"
#include "secrets/set.h"

static bool value_is(const sfs_entry *e, const char *s)
{
    size_t n = strlen(s);

    return e && e->len == n && (n == 0 || memcmp(e->value, s, n) == 0);
}

static void test_put_get(void)
{
    sfs_set *set = sfs_set_new(0);
    const sfs_entry *e;

    CHECK(set != NULL);
    CHECK(sfs_set_count(set) == 0);
    CHECK(sfs_set_get(set, "A") == NULL);
    CHECK(sfs_set_put(set, "A", "one", 3, 100, 200) == 0);
    CHECK(sfs_set_put_line(set, "B", "", 0, 5, 6, 42) == 0);
    e = sfs_set_get(set, "A");
    CHECK(value_is(e, "one"));
    CHECK(e && e->created == 100 && e->updated == 200 && e->line == 0);
    CHECK(e && strcmp(e->name, "A") == 0);
    e = sfs_set_get(set, "B");
    CHECK(value_is(e, ""));
    CHECK(e && e->line == 42 && e->created == 5 && e->updated == 6);
    CHECK(sfs_set_get(set, "a") == NULL);
    CHECK(sfs_set_get(set, "") == NULL);
    CHECK(sfs_set_count(set) == 2);
    CHECK(sfs_set_value_bytes(set) == 3);
    CHECK(sfs_set_put(set, "C", "x", (size_t)UINT32_MAX + 1, 1, 1) == -EFBIG);
    CHECK(sfs_set_count(set) == 2);
    sfs_set_free(set);
    sfs_set_free(NULL);
}

static void test_replace(void)
{
    sfs_set *set = sfs_set_new(0);
    const sfs_entry *e;

    CHECK(sfs_set_put(set, "K", "first", 5, 100, 100) == 0);
    CHECK(sfs_set_put(set, "K", "second!", 7, 0, 300) == 0);
    e = sfs_set_get(set, "K");
    CHECK(value_is(e, "second!"));
    CHECK(e && e->created == 100);
    CHECK(e && e->updated == 300);
    CHECK(sfs_set_count(set) == 1);
    CHECK(sfs_set_value_bytes(set) == 7);
    CHECK(sfs_set_put(set, "K", "3", 1, 999, 400) == 0);
    e = sfs_set_get(set, "K");
    CHECK(value_is(e, "3"));
    CHECK(e && e->created == 999 && e->updated == 400);
    CHECK(sfs_set_value_bytes(set) == 1);
    sfs_set_free(set);
}

static void test_remove(void)
{
    sfs_set *set = sfs_set_new(0);

    CHECK(sfs_set_put(set, "A", "aa", 2, 1, 1) == 0);
    CHECK(sfs_set_put(set, "B", "bbb", 3, 1, 1) == 0);
    CHECK(sfs_set_put(set, "C", "c", 1, 1, 1) == 0);
    CHECK(sfs_set_remove(set, "B") == 0);
    CHECK(sfs_set_remove(set, "B") == -ENOENT);
    CHECK(sfs_set_remove(set, "nope") == -ENOENT);
    CHECK(sfs_set_count(set) == 2);
    CHECK(sfs_set_value_bytes(set) == 3);
    CHECK(sfs_set_get(set, "B") == NULL);
    CHECK(strcmp(sfs_set_at(set, 0)->name, "A") == 0);
    CHECK(strcmp(sfs_set_at(set, 1)->name, "C") == 0);
    CHECK(sfs_set_remove(set, "A") == 0);
    CHECK(sfs_set_remove(set, "C") == 0);
    CHECK(sfs_set_count(set) == 0);
    CHECK(sfs_set_value_bytes(set) == 0);
    sfs_set_free(set);
}

static bool keep_not_b(const sfs_entry *e, void *ctx)
{
    (*(int *)ctx)++;
    return e->name[0] != 'B';
}

/* One pass drops what the predicate rejects (a daemon filters 100,000 names this way), keeps
 * the order and the value count, and wipes the dropped values. */
static void test_filter(void)
{
    sfs_set *set = sfs_set_new(0);
    const unsigned char *b1;
    int calls = 0;

    CHECK(sfs_set_put(set, "A", "aa", 2, 1, 1) == 0);
    CHECK(sfs_set_put(set, "B1", "bbb", 3, 1, 1) == 0);
    CHECK(sfs_set_put(set, "B2", "bb", 2, 1, 1) == 0);
    CHECK(sfs_set_put(set, "C", "c", 1, 1, 1) == 0);
    CHECK(sfs_set_put(set, "D", "dddd", 4, 1, 1) == 0);
    b1 = sfs_set_get(set, "B1")->value;
    CHECK(sfs_set_filter(set, keep_not_b, &calls) == 2);
    CHECK(calls == 5);
    CHECK(sfs_set_count(set) == 3);
    CHECK(sfs_set_value_bytes(set) == 7);
    CHECK(strcmp(sfs_set_at(set, 0)->name, "A") == 0);
    CHECK(strcmp(sfs_set_at(set, 1)->name, "C") == 0);
    CHECK(strcmp(sfs_set_at(set, 2)->name, "D") == 0);
    CHECK(value_is(sfs_set_get(set, "D"), "dddd"));
    CHECK(sfs_set_get(set, "B2") == NULL);
    CHECK(b1[0] == 0 && b1[1] == 0 && b1[2] == 0); /* wiped, still in the set's arena */
    CHECK(sfs_set_put(set, "B3", "x", 1, 1, 1) == 0); /* still a working sorted set */
    CHECK(strcmp(sfs_set_at(set, 1)->name, "B3") == 0);
    calls = 0;
    CHECK(sfs_set_filter(set, keep_not_b, &calls) == 1 && sfs_set_count(set) == 3);
    sfs_set_free(set);
}

static void test_order(void)
{
    enum { N = 5000 };
    sfs_set *set = sfs_set_new(0);
    unsigned *perm = malloc(N * sizeof *perm);
    char name[32];
    bool sorted = true, found = true;
    size_t bytes = 0;

    for (unsigned i = 0; i < N; i++)
        perm[i] = i;
    srand(12345);
    for (unsigned i = N - 1; i > 0; i--) {
        unsigned j = (unsigned)rand() % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof name, "name_%u", perm[i]);
        CHECK(sfs_set_put(set, name, name, strlen(name), 1, 2) == 0);
        bytes += strlen(name);
    }
    /* names that sort by byte value, not by locale or case */
    CHECK(sfs_set_put(set, "Z", "z", 1, 1, 1) == 0);
    CHECK(sfs_set_put(set, "_", "_", 1, 1, 1) == 0);
    CHECK(sfs_set_put(set, "a.b", "a", 1, 1, 1) == 0);
    CHECK(sfs_set_put(set, "a", "a", 1, 1, 1) == 0);
    CHECK(sfs_set_count(set) == N + 4);
    CHECK(sfs_set_value_bytes(set) == bytes + 4);
    for (size_t i = 1; i < sfs_set_count(set); i++)
        if (strcmp(sfs_set_at(set, i - 1)->name, sfs_set_at(set, i)->name) >= 0)
            sorted = false;
    CHECK(sorted);
    CHECK(strcmp(sfs_set_at(set, 0)->name, "Z") == 0);
    CHECK(strcmp(sfs_set_at(set, 1)->name, "_") == 0);
    CHECK(strcmp(sfs_set_at(set, 2)->name, "a") == 0);
    CHECK(strcmp(sfs_set_at(set, 3)->name, "a.b") == 0);
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof name, "name_%u", i);
        if (!value_is(sfs_set_get(set, name), name))
            found = false;
    }
    CHECK(found);
    free(perm);
    sfs_set_free(set);
}

static void test_clone_equal(void)
{
    unsigned char bin[256];
    sfs_set *a = sfs_set_new(0), *b, *c;

    for (int i = 0; i < 256; i++)
        bin[i] = (unsigned char)i;
    CHECK(sfs_set_put(a, "BIN", bin, sizeof bin, 10, 20) == 0);
    CHECK(sfs_set_put(a, "EMPTY", "", 0, 30, 40) == 0);
    CHECK(sfs_set_put_line(a, "TXT", "hello", 5, 50, 60, 7) == 0);
    b = sfs_set_clone(a);
    CHECK(b != NULL);
    CHECK(sfs_set_equal(a, b));
    CHECK(sfs_set_equal(b, a));
    CHECK(sfs_set_count(b) == 3);
    CHECK(sfs_set_value_bytes(b) == 261);
    for (size_t i = 0; i < sfs_set_count(a); i++) {
        const sfs_entry *x = sfs_set_at(a, i), *y = sfs_set_at(b, i);
        CHECK(x->created == y->created && x->updated == y->updated && x->line == y->line);
        CHECK(x->value != y->value);
    }

    /* the clone is independent of the original */
    CHECK(sfs_set_put(b, "TXT", "hellO", 5, 0, 61) == 0);
    CHECK(!sfs_set_equal(a, b));
    CHECK(value_is(sfs_set_get(a, "TXT"), "hello"));
    CHECK(sfs_set_put(b, "TXT", "hello", 5, 0, 62) == 0);
    CHECK(sfs_set_equal(a, b));

    c = sfs_set_clone(a);
    CHECK(sfs_set_put(c, "TXT", "hello!", 6, 0, 1) == 0);
    CHECK(!sfs_set_equal(a, c));
    CHECK(sfs_set_put(c, "TXT", "hello", 5, 0, 1) == 0);
    CHECK(sfs_set_put(c, "EXTRA", "", 0, 0, 1) == 0);
    CHECK(!sfs_set_equal(a, c));
    CHECK(sfs_set_remove(c, "EXTRA") == 0);
    CHECK(sfs_set_equal(a, c));
    CHECK(sfs_set_remove(c, "EMPTY") == 0);
    CHECK(sfs_set_put(c, "EMPTZ", "", 0, 30, 40) == 0);
    CHECK(!sfs_set_equal(a, c));

    sfs_set_free(a);
    CHECK(value_is(sfs_set_get(b, "TXT"), "hello"));
    sfs_set_free(b);
    sfs_set_free(c);
}

/* Bulk loading: appends in any order, one sort, then the same set sfs_set_put builds; a
 * duplicate name is reported by the sort. */
static void test_append_sort(void)
{
    sfs_set *bulk = sfs_set_new(0), *put = sfs_set_new(0);
    char name[16], value[16];
    size_t i, j;

    CHECK(bulk && put);
    if (!bulk || !put)
        return;
    for (i = 0; i < 2000; i++) {
        j = (i * 7919) % 2000; /* a permutation of 0..1999 */
        snprintf(name, sizeof name, "N%04zu", j);
        snprintf(value, sizeof value, "v%zu", j);
        CHECK(sfs_set_append(bulk, name, value, strlen(value), (int64_t)j, 2) == 0);
        CHECK(sfs_set_put(put, name, value, strlen(value), (int64_t)j, 2) == 0);
    }
    CHECK(sfs_set_count(bulk) == 2000);
    CHECK(sfs_set_sort(bulk) == 0);
    CHECK(sfs_set_equal(bulk, put));
    for (i = 1; i < sfs_set_count(bulk); i++)
        CHECK(strcmp(sfs_set_at(bulk, i - 1)->name, sfs_set_at(bulk, i)->name) < 0);
    CHECK(sfs_set_get(bulk, "N1234") && sfs_set_get(bulk, "N1234")->created == 1234);
    CHECK(sfs_set_value_bytes(bulk) == sfs_set_value_bytes(put));
    CHECK(sfs_set_append(bulk, "N0007", "again", 5, 1, 1) == 0);
    CHECK(sfs_set_sort(bulk) == -EEXIST);
    CHECK(sfs_set_append(put, "C", "x", (size_t)UINT32_MAX + 1, 1, 1) == -EFBIG);
    sfs_set_free(bulk);
    sfs_set_free(put);
}

int main(void)
{
    if (sfs_crypto_init() < 0)
        return 1;
    test_put_get();
    test_replace();
    test_remove();
    test_filter();
    test_order();
    test_clone_equal();
    test_append_sort();
    return check_result();
}
