/* tests/fuzz/replay_main.c — main() for the plain (non-libFuzzer) build of a fuzz target.
 *
 * Usage: fuzz_replay_TARGET PATH...  Runs LLVMFuzzerTestOneInput once on every regular
 * file named, and on every regular file inside every directory named (not recursive, in
 * name order; files whose name starts with '.' or "README" are skipped).  A broken
 * invariant aborts, so the test fails; otherwise prints how many inputs ran and returns 0.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL, *grown;
    size_t len = 0, cap = 0, n;
    int rc = 0;

    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    do {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            grown = realloc(buf, cap);
            if (!grown) {
                fprintf(stderr, "%s: out of memory\n", path);
                rc = -1;
                goto out;
            }
            buf = grown;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    if (ferror(f)) {
        fprintf(stderr, "%s: read error\n", path);
        rc = -1;
        goto out;
    }
    /* An exact-size copy, so that ASan or valgrind sees a read past the input. */
    grown = malloc(len ? len : 1);
    if (!grown) {
        rc = -1;
        goto out;
    }
    memcpy(grown, buf, len);
    free(buf);
    buf = grown;
    LLVMFuzzerTestOneInput(buf, len);
out:
    free(buf);
    fclose(f);
    return rc;
}

static int skipped(const char *name)
{
    return name[0] == '.' || strncmp(name, "README", 6) == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file in `dir`; returns the count or -1. */
static long run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL, **grown;
    size_t n = 0, i;
    long ran = 0;

    if (!d) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (skipped(de->d_name))
            continue;
        grown = realloc(names, (n + 1) * sizeof *names);
        if (!grown || !(grown[n] = strdup(de->d_name))) {
            fprintf(stderr, "%s: out of memory\n", dir);
            names = grown ? grown : names;
            ran = -1;
            break;
        }
        names = grown;
        n++;
    }
    closedir(d);
    if (ran == 0)
        qsort(names, n, sizeof *names, cmp_names);
    for (i = 0; i < n; i++) {
        char path[4096];
        struct stat st;

        if (ran >= 0) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
                ran = run_file(path) == 0 ? ran + 1 : -1;
        }
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    long total = 0, ran;
    struct stat st;
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (i = 1; i < argc; i++) {
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        ran = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]) == 0 ? 1 : -1;
        if (ran < 0)
            return 1;
        printf("%s: %ld input%s replayed\n", argv[i], ran, ran == 1 ? "" : "s");
        total += ran;
    }
    printf("%ld inputs replayed, all invariants held\n", total);
    return 0;
}
