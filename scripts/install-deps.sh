#!/bin/sh
# Installs what building and testing secretfs needs on Debian 12 (run as root).
# Skips apt-get entirely when everything is already there.  docker.io (dockerd 20.10,
# containerd, runc), docker-compose and systemd (systemd-socket-activate) serve the
# docker-engine tests; never busybox-static (it would remove busybox, which tests use).
set -eu

PACKAGES="
  meson ninja-build pkg-config gcc
  libfuse3-dev fuse3 libsodium-dev libinih-dev libjansson-dev libsystemd-dev libmicrohttpd-dev
  python3 bash dash zsh busybox util-linux passwd procps valgrind strace
  docker.io docker-compose systemd tar
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi
