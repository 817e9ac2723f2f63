#!/bin/sh
# Installs what building and testing secretfs needs on Debian 12 (run as root).
# Skips apt-get entirely when everything is already there.  docker.io (dockerd 20.10,
# containerd, runc), docker-compose and systemd (systemd-socket-activate) serve the
# docker-engine tests; never busybox-static (it would remove busybox, which tests use).
set -eu

PACKAGES="
  meson ninja-build pkg-config gcc
  libfuse3-dev fuse3 libsodium-dev libinih-dev libjansson-dev libsystemd-dev libmicrohttpd-dev
  libcurl4-openssl-dev
  python3 bash dash zsh busybox util-linux passwd procps valgrind strace
  etcd-server etcd-client
  mandoc man-db bash-completion systemd git binutils
  debhelper dpkg-dev fakeroot lintian debootstrap
  python3-dotenv golang-go golang-github-joho-godotenv-dev docker.io
  docker-compose tar
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# tests/views installs npm's dotenv with npm; a nodejs from elsewhere (NodeSource) bundles
# npm, and Debian's npm package would conflict with it, so only a missing command counts.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi
if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi
