#!/bin/bash
# Runs inside the clean Debian 12 root (see test_deb.sh): $1 is the .deb in /tmp.
set -euo pipefail
deb=/tmp/$1
export DEBIAN_FRONTEND=noninteractive
fail() { echo "FAIL (in the Debian 12 root): $*"; exit 1; }
snapshot() { # every path outside what apt, dpkg, man-db and this test churn
    find / -xdev \( -path /proc -o -path /dev -o -path /sys -o -path /tmp -o -path /run \
        -o -path /var/cache/apt -o -path /var/lib/apt -o -path /var/log -o -path /var/cache/man \
        -o -path /var/cache/debconf -o -path /var/lib/dpkg \) -prune -o -print | sort
}

# what the package needs, and what an operator brings (man-db, fuse3 as recommended)
apt-get -qq update
deps=$(for f in Depends Recommends; do dpkg-deb -f "$deb" $f; echo ,; done | tr ',\n' '  ' | sed 's/([^)]*)//g')
apt-get -qq install -y --no-install-recommends man-db $deps >/tmp/apt.log 2>&1 ||
    { tail -n 20 /tmp/apt.log; fail "cannot install the dependencies"; }
snapshot >/tmp/before

dpkg -i "$deb" >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i"; }

secretfs --version | tee /tmp/version
[ "$(sed -n 1p /tmp/version)" = "secretfs $(dpkg-query -W -f='${Version}' secretfs)" ] ||
    fail "--version does not name the package's version"
grep -qx 'libfuse 3\.[0-9.]*' /tmp/version || fail "no libfuse version"
grep -qx 'kernel FUSE protocol 7\.[0-9]*' /tmp/version || fail "no kernel FUSE protocol"
[ "$(man -w secretfs)" = /usr/share/man/man1/secretfs.1.gz ] || fail "man -w secretfs: $(man -w secretfs)"
man -w secretfs.ini >/dev/null && man -w 7 secretfs >/dev/null || fail "man -w of sections 5, 7"
MANWIDTH=80 man secretfs 2>/dev/null | grep -q 'update-secrets' || fail "man secretfs does not render"

secretfs keygen
[ "$(stat -c %a /etc/secretfs/master.key)" = 600 ] || fail "key mode"
printf 'DB_PASSWORD=s3cr3t\nAPI_TOKEN=one\n' >/tmp/secrets.env
secretfs update-secrets --secrets-file /tmp/secrets.env
cp /usr/share/doc/secretfs/examples/secretfs.ini /etc/secretfs/secretfs.ini

# the README's fstab line, mounted by the real mount(8) -> mount.fuse3 -> /usr/bin/secretfs
cp /etc/fstab /tmp/fstab.orig
echo '/etc/secretfs/secretfs.ini  /run/secrets  fuse.secretfs  cache=kernel,nofail  0  0' >>/etc/fstab
mkdir -p /run/secrets
mount /run/secrets || fail "mount /run/secrets (fstab)"
grep -q ' /run/secrets .* fuse\.secretfs ' /proc/self/mountinfo || fail "not a fuse.secretfs mount"
[ "$(cat /run/secrets/DB_PASSWORD)" = s3cr3t ] || fail "DB_PASSWORD through the mount"
pid=$(sed -n 's/^pid=//p' /run/secrets/.status)

printf two | secretfs set API_TOKEN
secretfs reload /run/secrets | tee /tmp/reload
grep -q 'generation 2' /tmp/reload || fail "reload did not reach generation 2"
[ "$(cat /run/secrets/API_TOKEN)" = two ] || fail "the reload is not served"

umount /run/secrets
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$pid" 2>/dev/null || fail "the daemon outlived its unmount"

# the operator undoes what they did; the package undoes the rest
cp /tmp/fstab.orig /etc/fstab && rmdir /run/secrets && rm /etc/secretfs/secretfs.ini
dpkg --purge secretfs >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg --purge"; }
hash -r; ! command -v secretfs >/dev/null || fail "secretfs is still installed"
! ls /var/lib/dpkg/info/secretfs.* 2>/dev/null || fail "dpkg still knows secretfs"
snapshot >/tmp/after
left=$(comm -13 /tmp/before /tmp/after)
want=$(printf '%s\n' /etc/secretfs /etc/secretfs/master.key /var/lib/secretfs \
    /var/lib/secretfs/secrets.store)
[ "$left" = "$want" ] || fail "after the purge, expected only the key and store; left: $left"
gone=$(comm -23 /tmp/before /tmp/after)
[ -z "$gone" ] || fail "the purge removed files it did not install: $gone"
echo "in-root: ok (after the purge: $(echo $left))"
