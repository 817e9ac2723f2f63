#!/bin/bash
# The Debian package, end to end: dpkg-buildpackage builds secretfs_VERSION_amd64.deb from a
# copy of the source, lintian reports no error, the package holds exactly the README's
# Install files and depends on exactly the libraries the binary links; then, in a clean
# Debian 12 root (tests/package/debian-root.sh, cached), the package is installed and used:
# --version, man -w, keygen, update-secrets, a mount through fstab and mount(8), a reload,
# and dpkg --purge, after which only the operator's key and store remain.
# The root runs in its own mount and PID namespaces (unshare), so its bind mounts of
# /dev/fuse and /proc and every process in it go away even when this script fails.
set -euo pipefail

src=${SFS_SOURCE_ROOT:?}
version=${SFS_VERSION:?}
cache=${SFS_ROOT_CACHE:-/var/cache/secretfs-test}
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root (a chroot, mounts)"
[ -c /dev/fuse ] || skip "needs /dev/fuse"
for t in dpkg-buildpackage lintian unshare debootstrap git; do
    command -v "$t" >/dev/null || skip "$t is not installed (scripts/install-deps.sh)"
done

work=$(mktemp -d /var/tmp/sfs-pkg.XXXXXX)
cleanup() {
    # nothing should be mounted here (the namespace took its mounts with it): make sure
    findmnt -rn -o TARGET | grep "^$work/" | sort -r | xargs -r -n1 umount -l || true
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# ---- build --------------------------------------------------------------------------------
mkdir "$work/src"
git -C "$src" ls-files -co --exclude-standard -z | (cd "$src" && tar --null -T - -cf -) |
    tar -C "$work/src" -xf -
ln -s "$(realpath "$src/../shared")" "$work/shared"   # test data the unit tests read
start=$SECONDS
(cd "$work/src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 ||
    { tail -n 40 "$work/build.log"; fail "dpkg-buildpackage failed"; }
deb=$work/secretfs_${version}_amd64.deb
[ -f "$deb" ] || fail "no $(basename "$deb") (debian/changelog's version must be meson's $version): $(ls "$work")"
echo "built $(basename "$deb") in $((SECONDS - start)) s"

lintian --fail-on none "$deb" >"$work/lintian.log" 2>&1 || true
grep -v "running with root privileges" "$work/lintian.log" || true
! grep -q '^E: ' "$work/lintian.log" || fail "lintian reports errors"
echo "lintian: $(grep -c '^E: ' "$work/lintian.log") errors, $(grep -c '^W: ' "$work/lintian.log") warnings"

# the files: the README's Install table, man pages gzipped, and Debian's two doc files
sed -n '/^## Install$/,/^## /p' "$src/README.md" | sed -n 's/^| `\(\/[^`]*\)` |.*/\1/p' |
    { cat; printf '%s\n' /usr/share/doc/secretfs/copyright /usr/share/doc/secretfs/changelog.gz; } |
    sort >"$work/want.files"
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print substr($6, 2)}' | sed 's/\(\/man[0-9]\/.*\)\.gz$/\1/' |
    sort >"$work/got.files"
diff -u "$work/want.files" "$work/got.files" || fail "package files differ from the README's Install table"

# Depends: exactly the packages owning the libraries the binary links
mkdir "$work/x" && dpkg-deb -x "$deb" "$work/x"
for lib in $(objdump -p "$work/x/usr/bin/secretfs" | awk '$1 == "NEEDED" {print $2}'); do
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ && !p {p = $NF} END {print p}')
    [ -n "$path" ] || fail "$lib: not found by ldconfig"
    dpkg -S "*/$(basename "$(realpath "$path")")" | awk -F: 'NR == 1 {print $1}'
done | sort -u >"$work/linked.pkgs"
dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*//; s/ //g' | grep . | sort -u >"$work/depends.pkgs"
diff -u "$work/linked.pkgs" "$work/depends.pkgs" || fail "Depends is not what the binary links"
echo "depends: $(tr '\n' ' ' <"$work/depends.pkgs")"

# ---- a clean Debian 12 root ---------------------------------------------------------------
rc=0; tarball=$("$src/tests/package/debian-root.sh") || rc=$?
[ "$rc" = 77 ] && skip "no Debian 12 root: debootstrap cannot reach its registry"
[ "$rc" = 0 ] || fail "debian-root.sh failed"
root=$work/root
mkdir "$root" && tar -C "$root" -xf "$tarball"
cp "$deb" "$root/tmp/" && cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$src/tests/package/in-root.sh" "$root/tmp/in-root.sh"
mkdir -p "$cache/apt-archives/partial" "$cache/apt-lists/partial"
exec 9>"$cache/.run-lock" && flock 9   # one root at a time shares the apt caches
start=$SECONDS
unshare --mount --pid --fork --propagation private -- /bin/sh -euc '
    root=$1 cache=$2
    touch "$root/dev/fuse" && mount --bind /dev/fuse "$root/dev/fuse"
    mount -t proc proc "$root/proc"
    mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
    mount --bind "$cache/apt-lists" "$root/var/lib/apt/lists"
    exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 /bin/bash /tmp/in-root.sh "$3"' sh "$root" "$cache" "$(basename "$deb")" ||
    fail "the scenario in the Debian 12 root failed"
echo "ran in the Debian 12 root in $((SECONDS - start)) s"
