#!/bin/sh
# Mounts a demo store built from examples/secrets.env and shows it.
# usage: examples/demo.sh [path/to/secretfs]   (default: build/cli/secretfs)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
secretfs=$(realpath "${1:-$here/../build/cli/secretfs}")
demo=/tmp/secretfs-demo
mnt=$demo/secrets

# start from scratch each run
if grep -qs " $mnt fuse" /proc/mounts; then fusermount3 -u "$mnt"; fi
rm -rf "$demo"
mkdir -p "$mnt"
export SECRETFS_STORE=$demo/secrets.store SECRETFS_KEY_FILE=$demo/master.key
export SECRETFS_CONFIG=/dev/null
export LIVEKIT_URL=wss://demo.livekit.cloud LIVEKIT_API_KEY=APIdemo LIVEKIT_API_SECRET=demo-secret

set -x
"$secretfs" keygen
"$secretfs" update-secrets --secrets-file "$here/secrets.env" --secrets 'EXTRA=a, b and c'
"$secretfs" list
"$secretfs" mount "$mnt"
ls -l "$mnt"
cat "$mnt/.status"
cat "$mnt/DATABASE_URL"; echo
. "$mnt/.env"
echo "sourced: OPENAI_API_KEY has ${#OPENAI_API_KEY} bytes, LIVEKIT_URL=$LIVEKIT_URL"
{ set +x; } 2>/dev/null
echo "Mounted at $mnt.  Unmount with: fusermount3 -u $mnt"
