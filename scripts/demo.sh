#!/usr/bin/env bash
# Brings up PostgreSQL 15 with inventory_sync built (release) and installed, runs the Laptops
# story in database inventory_demo, plays it out with two offline devices syncing over HTTP
# (examples/offline-devices, in database offline_demo), and prints how to open psql on it.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT=${INVENTORY_SYNC_DEMO_PORT:-5439}
DB=inventory_demo

if [ "${1:-}" = stop ]; then stop_cluster demo; exit 0; fi

setup
install_extension --release
say "starting PostgreSQL $PG_MAJOR on localhost:$PORT (data in $WORK/demo)"
start_cluster demo "$PORT" localhost
PSQL=("$PG_BIN/psql" -X -h "$WORK/demo" -p "$PORT" -U postgres)
"${PSQL[@]}" -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
say "the Laptops story (tests/pg_regress/sql/laptops.sql, keeping the extension at the end)"
grep -v '^DROP EXTENSION' "$REPO/tests/pg_regress/sql/laptops.sql" |
    "${PSQL[@]}" -d "$DB" -v ON_ERROR_STOP=1 --echo-all
say "the same story with two devices, one offline, syncing over HTTP (examples/offline-devices)"
"${PSQL[@]}" -q -d postgres -c "DROP DATABASE IF EXISTS offline_demo" -c "CREATE DATABASE offline_demo"
VENV=$REPO/target/examples-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" 2>/dev/null || {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    rm -rf "$VENV"; python3 -m venv "$VENV"
}
"$VENV/bin/pip" install -q --require-hashes -r "$REPO/examples/python/requirements.txt"
for policy in lww delta versions; do
    echo
    PGHOST=$WORK/demo PGPORT=$PORT PGUSER=postgres PGDATABASE=offline_demo \
        "$VENV/bin/python" "$REPO/examples/offline-devices/simulate.py" --policy "$policy"
done
say "ready. Open psql on it with:"
echo "  ${PSQL[*]} $DB"
echo "or from a backend: postgresql://postgres@localhost:$PORT/$DB"
echo "Stop it with: scripts/demo.sh stop"
