/* tests/fuzz/fuzz.h — what the fuzz targets share.
 *
 * Each fuzz_*.c defines LLVMFuzzerTestOneInput and builds two ways: with clang and
 * -fsanitize=fuzzer as a libFuzzer binary (tests/fuzz/run-fuzz.sh), and with the normal
 * compiler plus replay_main.c as a plain program that runs the target over corpus files
 * (meson test --suite fuzz-replay).  A target reports a broken invariant with FUZZ_CHECK,
 * which aborts: libFuzzer saves the input as a crash, and the replay test fails.
 */
#ifndef SFS_TESTS_FUZZ_H
#define SFS_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
            abort(); \
        } \
    } while (0)

#endif
