#!/bin/sh
# tests/fuzz/run-fuzz.sh [SECONDS] [TARGET...] — builds the libFuzzer binaries with clang
# (ASan + UBSan) into build-fuzz/ and runs each target (dotenv, store, config, docker;
# default: all, one after the other) for SECONDS (default 1800) in one process.
#
# New corpus entries go to build-fuzz/corpus/TARGET (the committed seeds in
# tests/fuzz/corpus/TARGET are read, never written); crashes go to
# tests/fuzz/crashes/TARGET/.  Afterwards the seeds and the new entries are merged
# (-merge=1) into build-fuzz/merged/TARGET, and merged entries not yet committed are
# copied into tests/fuzz/corpus/TARGET while it holds fewer than 200 files.  Each run's
# output is in build-fuzz/TARGET.log; its last lines give executions and coverage.
#
# Environment: CC (default clang), FUZZ_ARGS (extra libFuzzer flags), NICE (default 10),
# FUZZ_NO_MERGE=1 (leave the committed corpus alone).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/build-fuzz
secs=${1:-1800}
[ $# -gt 0 ] && shift
targets=${*:-dotenv store config docker}
cc=${CC:-clang}
max_corpus=200

command -v "$cc" >/dev/null || { echo "run-fuzz: $cc not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
mkdir -p "$out"

build() {
    t=$1
    extra=
    pkgs="libsodium inih"
    [ "$t" = config ] && extra="$root/cli/config.c"
    [ "$t" = docker ] && extra="$root/docker/api.c $root/docker/volumes.c" &&
        pkgs="$pkgs jansson"
    # shellcheck disable=SC2086
    "$cc" -std=c11 -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -D_GNU_SOURCE -DFUSE_USE_VERSION=314 -DSFS_VERSION='"fuzz"' -I"$root" \
        "$here/fuzz_$t.c" "$root"/secrets/*.c "$root"/crypto/*.c "$root"/util/*.c $extra \
        $(pkg-config --cflags --libs $pkgs) -o "$out/fuzz_$t.tmp"
    mv "$out/fuzz_$t.tmp" "$out/fuzz_$t"
}

for t in $targets; do
    case $t in
    dotenv|store|config|docker) ;;
    *) echo "run-fuzz: unknown target $t (dotenv, store, config, docker)" >&2; exit 2 ;;
    esac
    echo "run-fuzz: building fuzz_$t"
    build "$t"
    mkdir -p "$out/corpus/$t" "$here/crashes/$t"
    dict=
    [ -f "$here/$t.dict" ] && dict="-dict=$here/$t.dict"
    echo "run-fuzz: running fuzz_$t for ${secs}s (log: $out/$t.log)"
    rc=0
    # shellcheck disable=SC2086
    nice -n "${NICE:-10}" "$out/fuzz_$t" -max_total_time="$secs" -timeout=30 \
        -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
        -artifact_prefix="$here/crashes/$t/" $dict ${FUZZ_ARGS:-} \
        "$out/corpus/$t" "$here/corpus/$t" >"$out/$t.log" 2>&1 || rc=$?
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::peak_rss' "$out/$t.log" || true
    if [ "$rc" -ne 0 ]; then
        echo "run-fuzz: fuzz_$t stopped with $rc: a finding; see $out/$t.log and" \
             "$here/crashes/$t/" >&2
        exit 1
    fi
    [ "${FUZZ_NO_MERGE:-0}" = 1 ] && continue
    rm -rf "$out/merged/$t"
    mkdir -p "$out/merged/$t"
    "$out/fuzz_$t" -merge=1 -max_len=8192 "$out/merged/$t" "$here/corpus/$t" \
        "$out/corpus/$t" >"$out/$t.merge.log" 2>&1
    known=$(for f in "$here/corpus/$t"/*; do
        sha1sum <"$f" | cut -c1-40; done)
    added=0
    for f in "$out/merged/$t"/*; do
        [ -f "$f" ] || continue
        [ "$(ls "$here/corpus/$t" | wc -l)" -lt "$max_corpus" ] || break
        sum=$(sha1sum <"$f" | cut -c1-40)
        echo "$known" | grep -q "$sum" && continue
        cp "$f" "$here/corpus/$t/$sum"
        added=$((added + 1))
    done
    echo "run-fuzz: $t: merged corpus $(ls "$out/merged/$t" | wc -l) files;" \
         "$added added to tests/fuzz/corpus/$t ($(ls "$here/corpus/$t" | wc -l) files)"
done
