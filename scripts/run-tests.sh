#!/bin/bash
# Installs dependencies, builds secretfs twice (plain, and with AddressSanitizer +
# UndefinedBehaviorSanitizer), runs every test suite in both builds and the unit tests under
# valgrind, then prints one summary line: "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh || { echo "install-deps failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0 skipped=0
summarize() { # $1: build dir; adds its meson test results to the totals
    local log="$1/meson-logs/testlog.json" counts
    [ -f "$log" ] || { failed=$((failed + 1)); return; }
    counts=$(/usr/bin/python3 - "$log" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
)
    read -r p f s <<<"$counts"
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

run_build() { # $1: build dir, rest: meson setup options; $test_args: extra meson test args
    local dir="$1"; shift
    echo "=== build $dir ($*)"
    if ! { meson setup --wipe "$dir" "$@" >/dev/null 2>&1 || meson setup "$dir" "$@"; } ||
       ! meson compile -C "$dir"; then
        echo "build $dir failed"
        failed=$((failed + 1))
        return
    fi
    echo "=== test $dir"
    # shellcheck disable=SC2086
    meson test -C "$dir" --print-errorlogs --num-processes 2 ${test_args:-} || true
    summarize "$dir"
}

run_build build-ci
# The package suite builds its own .deb from the source and runs it in a Debian root: the
# sanitizer build adds nothing to it, so it runs once, in the plain build.
test_args="--no-suite package" run_build build-ci-asan -Db_sanitize=address,undefined -Db_lundef=false

echo "=== valgrind (unit suite)"
# meson names the log after --logbase plus the wrapper's basename: vg-valgrind.json.
rm -f build-ci/meson-logs/vg*.json
meson test -C build-ci --suite unit --wrapper 'valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --quiet' \
    --print-errorlogs --logbase vg || true
vglog=$(ls build-ci/meson-logs/vg*.json 2>/dev/null | head -n 1)
if [ -n "$vglog" ]; then
    mkdir -p build-ci-vg/meson-logs && cp "$vglog" build-ci-vg/meson-logs/testlog.json
    summarize build-ci-vg
else
    echo "valgrind run left no log"
    failed=$((failed + 1))
fi

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
