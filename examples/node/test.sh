#!/usr/bin/env bash
# Tests of the Node.js example against the PostgreSQL the libpq variables name (PGHOST, PGPORT,
# PGUSER, PGDATABASE, PGPASSWORD), which must have the inventory_sync extension installed.
# The tests drop and recreate the extension and public.products in that database.
# Last line: "examples/node: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")"

summary() {
    echo "examples/node: $1 passed, $2 failed"
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    sudo_=(); [ "$(id -u)" -eq 0 ] || sudo_=(sudo)
    "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
    echo "examples/node: needs Node.js 20 or later (node --test), found: $(node --version 2>/dev/null || echo none)" >&2
    summary 0 1
    exit 1
fi

if ! npm ci --no-audit --no-fund --loglevel=error >/dev/null; then
    echo "examples/node: npm ci failed" >&2
    summary 0 1
    exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# One file at a time: each file resets the extension in the same database.
node --test --test-concurrency=1 --test-timeout=120000 --test-reporter=spec \
    test/*.test.js 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

count() { # the number on the runner's summary line "ℹ NAME N", 0 if absent
    sed -n "s/^[^a-z]* $1 \([0-9][0-9]*\)\$/\1/p" "$log" | tail -n 1 | grep . || echo 0
}
passed=$(count pass)
failed=$(( $(count fail) + $(count cancelled) ))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1 # the runner failed without counting a failed test (a crash, a file that did not load)
fi
summary "$passed" "$failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
