#!/usr/bin/env bash
# The PHP example's tests: installs what is missing (Debian 12), starts the example's server
# (PHP's built-in server) on a free port, runs PHPUnit against it and the PostgreSQL of the libpq
# environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD), whose database must
# allow CREATE EXTENSION inventory_sync. Its last line is "examples/php: N passed, M failed".
#
#   PGHOST=/tmp/inventory_sync/ex-php PGPORT=55420 PGUSER=postgres PGDATABASE=postgres bash examples/php/test.sh

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE"

summary() { echo "examples/php: $1 passed, $2 failed"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. Debian packages, only those missing. (Packagist, Composer's registry, was not reachable where
# this was written: PHPUnit comes from Debian, 9.6 on Debian 12.)
missing=()
for p in php-cli php-pgsql phpunit; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    if ! { as_root apt-get update -qq &&
           as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; }; then
        echo "cannot install ${missing[*]}" >&2
        summary 0 1
        exit 1
    fi
fi

# 2. The server, on a free port, stopped on exit.
work=$(mktemp -d -t inventory-sync-php.XXXXXX)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(php -r '$s = stream_socket_server("tcp://127.0.0.1:0"); echo substr(strrchr(stream_socket_get_name($s, false), ":"), 1);')
php -S "127.0.0.1:$port" -t public public/index.php >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    php -r 'exit(@fsockopen("127.0.0.1", (int) $argv[1]) ? 0 : 1);' "$port" && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if ! php -r 'exit(@fsockopen("127.0.0.1", (int) $argv[1]) ? 0 : 1);' "$port"; then
    echo "the server did not start:" >&2
    cat "$work/server.log" >&2
    summary 0 1
    exit 1
fi
export SYNC_BASE_URL="http://127.0.0.1:$port"

# 3. PHPUnit.
phpunit --configuration phpunit.xml --log-junit "$work/junit.xml"
status=$?

# 4. The counts, from PHPUnit's JUnit report (its summary in a form meant to be read by programs).
counts=$(php -r '
    $xml = @simplexml_load_file($argv[1]);
    if ($xml === false || !isset($xml->testsuite)) { exit(1); }
    $s = $xml->testsuite[0];
    $failed = (int) $s["failures"] + (int) $s["errors"];
    $passed = (int) $s["tests"] - $failed - (int) $s["skipped"];
    echo "$passed $failed";
' "$work/junit.xml") || counts="0 1"
read -r passed failed <<<"$counts"

if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
    echo "--- server log (without connection lines) ---"
    grep -v -E '(Accepted|Closing|speculative preconnection)$' "$work/server.log" | tail -n 50
    [ "$failed" -eq 0 ] && failed=1
    summary "$passed" "$failed"
    exit 1
fi
summary "$passed" "$failed"
