#!/bin/sh
# Prints the path of a tarball holding a clean Debian 12 (bookworm) minbase root, building it
# with debootstrap the first time and caching it under $SFS_ROOT_CACHE (default
# /var/cache/secretfs-test), so CI downloads Debian only once per machine.
# Exit 77 when debootstrap is missing or cannot reach the registry.
set -eu

cache=${SFS_ROOT_CACHE:-/var/cache/secretfs-test}
mirror=${SFS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
tarball=$cache/bookworm-minbase.tar

command -v debootstrap >/dev/null || { echo "skip: debootstrap is not installed" >&2; exit 77; }
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ ! -s "$tarball" ]; then
    work=$(mktemp -d "$cache/root.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    echo "debian-root: debootstrap bookworm from $mirror (once; cached in $tarball)" >&2
    if ! debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/log" 2>&1; then
        tail -n 5 "$work/log" >&2
        echo "skip: debootstrap cannot reach $mirror" >&2
        exit 77
    fi
    rm -rf "$work/root/var/cache/apt/archives/"*.deb
    tar -C "$work/root" -cf "$work/root.tar" .
    mv "$work/root.tar" "$tarball"
fi
echo "$tarball"
