#!/bin/sh
# tests/fuzz/godotenv-diff/run.sh DIR... — a differential check of the dotenv port: runs
# godotenv 1.5.1 itself (Debian's golang-github-joho-godotenv-dev, GOPATH mode) and
# sfs_dotenv_parse over every file in the DIRs (e.g. a fuzzing campaign's corpus) and
# diffs what each accepts and the entries it yields.  Exit 0 when they agree on every file,
# 1 when they differ, 77 when Go or godotenv is missing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=$root/build-fuzz/godotenv-diff
gopath=/usr/share/gocode

command -v go >/dev/null && [ -d "$gopath/src/github.com/joho/godotenv" ] || {
    echo "godotenv-diff: needs go and golang-github-joho-godotenv-dev" >&2; exit 77; }
mkdir -p "$out"
GOPATH=$gopath GO111MODULE=off GOCACHE=$out/gocache go build -o "$out/godump" \
    "$here/godump.go"
${CC:-cc} -std=c11 -O1 -D_GNU_SOURCE -I"$root" "$here/dotenv_dump.c" "$root"/secrets/*.c \
    "$root"/crypto/*.c "$root"/util/*.c $(pkg-config --cflags --libs libsodium) \
    -o "$out/dotenv_dump"
find "$@" -type f ! -name 'README*' | sort >"$out/all"
# Files refused only by secretfs's 64 MiB cap on variable expansion (a documented limit
# beyond godotenv) are left out.
"$out/dotenv_dump" <"$out/all" | sed -n 's/ refused (size limit)$//p' >"$out/capped"
grep -vxF -f "$out/capped" "$out/all" >"$out/files" || true
"$out/godump" <"$out/files" >"$out/godotenv.txt"
"$out/dotenv_dump" <"$out/files" >"$out/secretfs.txt"
n=$(wc -l <"$out/files")
capped=$(wc -l <"$out/capped")
if diff "$out/godotenv.txt" "$out/secretfs.txt" >"$out/diff.txt"; then
    echo "godotenv-diff: godotenv and secretfs agree on all $n files" \
         "($capped more left out: over secretfs's 64 MiB expansion cap)"
else
    echo "godotenv-diff: $n files; they differ (< godotenv, > secretfs; $out/diff.txt):" >&2
    cut -c1-160 "$out/diff.txt" | head -40 >&2
    exit 1
fi
