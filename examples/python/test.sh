#!/usr/bin/env bash
# Runs the Python example's tests and the offline-devices simulation's tests against the
# PostgreSQL the libpq environment names (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD), which
# must have the inventory_sync extension installed. Both suites reset that database.
#
#   PGHOST=/tmp/inventory_sync/ex-py PGPORT=55430 PGUSER=postgres PGDATABASE=postgres examples/python/test.sh
#
# The last line is always "examples/python: N passed, M failed".
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VENV=${EXAMPLES_VENV:-$REPO/target/examples-venv}
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

summary() {  # $1 passed, $2 failed
    echo "examples/python: $1 passed, $2 failed"
}

if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        if [ "$(id -u)" -eq 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        else
            sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        fi
        python3 -m venv "$VENV" || { echo "cannot create $VENV" >&2; summary 0 1; exit 1; }
    fi
fi
# requirements.txt is a lock file: every package pinned, with its hashes.
if ! "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$HERE/requirements.txt"; then
    echo "pip install failed" >&2
    summary 0 1
    exit 1
fi

# One pytest run, so the two suites (each resets the database) never run at the same time.
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -W error::pytest.PytestUnhandledThreadExceptionWarning \
    "$HERE/tests" "$REPO/examples/offline-devices/tests" "$@" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}

# pytest's closing line, e.g. "2 failed, 25 passed, 1 skipped in 4.20s" or "27 passed in 3.10s".
last=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error|errors|skipped|deselected)' "$LOG" | tail -n 1)
passed=$(grep -oE '[0-9]+ passed' <<<"$last" | grep -oE '[0-9]+' || true)
failed=$(grep -oE '[0-9]+ failed' <<<"$last" | grep -oE '[0-9]+' || true)
errors=$(grep -oE '[0-9]+ errors?' <<<"$last" | grep -oE '[0-9]+' || true)
passed=${passed:-0}
failed=$(( ${failed:-0} + ${errors:-0} ))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1  # pytest failed without a count (collection error, no tests, interrupted)
fi
summary "$passed" "$failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
