#!/usr/bin/env bash
# bench/callgrind.sh: instructions per call of the hot write paths, counted by callgrind on a
# single-user backend (release build, 10,000 rows of bench/setup.sql). Timings on a shared machine
# drift; instruction counts do not, so this is how a change is judged "no slower".
#
# Each call is a prepared statement executed 400 and then 1,200 times in two separate runs, each
# a fresh backend on the same data; (instructions of the second − of the first) / 800 is the cost
# of one call, start-up and planning cancel out. Prints one line per call:
#   callgrind: NAME INSTRUCTIONS_PER_CALL
# Usage: bench/callgrind.sh [NAME...]   (default: every call below)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

ROWS=10000
SMALL=400
LARGE=1200
DIR=$WORK/callgrind
OUT=$REPO/target/callgrind
WIN="pg_catalog.clock_timestamp()"
LOSE="'2000-01-01 00:00:00+00'::timestamptz"

# name → the statement prepared as p($1 bigint id)
declare -A CALLS=(
    [bare]="INSERT INTO bench.items AS t (id, data, updated_at) VALUES (\$1, '{\"stock\": 5}', $WIN) ON CONFLICT (id) DO UPDATE SET data = t.data || excluded.data, updated_at = excluded.updated_at WHERE t.updated_at <= excluded.updated_at RETURNING t.id"
    [plpgsql]="SELECT bench.plpgsql_upsert(\$1, '{\"stock\": 5}', $WIN)"
    [sync_upsert_win]="SELECT inventory_sync.sync_upsert(\$1, '{\"stock\": 5}', $WIN)"
    [sync_upsert_lose]="SELECT inventory_sync.sync_upsert(\$1, '{\"stock\": 5}', $LOSE)"
    [bare_typed]="INSERT INTO bench.products_bare AS t (id, name, stock, updated_at) VALUES (\$1, 'x', 5, $WIN) ON CONFLICT (id) DO UPDATE SET stock = excluded.stock, updated_at = excluded.updated_at WHERE t.updated_at <= excluded.updated_at RETURNING t.id"
    [sync_upsert_in]="SELECT inventory_sync.sync_upsert_in('bench.products', \$1::text, '{\"stock\": 5}', $WIN)"
)
ORDER=(bare plpgsql sync_upsert_win sync_upsert_lose bare_typed sync_upsert_in)
[ $# -eq 0 ] || ORDER=("$@")

setup
command -v valgrind >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind
[ "${CALLGRIND_SKIP_INSTALL:-}" = 1 ] || install_extension --release
mkdir -p "$OUT"

say "a scratch cluster with $ROWS rows ($DIR)"
remove_cluster callgrind
start_cluster callgrind 54339
"$PG_BIN/psql" -X -q -h "$DIR" -p 54339 -U postgres -d postgres -v ON_ERROR_STOP=1 -v rows=$ROWS \
    -f "$REPO/bench/setup.sql" >/dev/null
stop_cluster callgrind

# run NAME CALLS: the total instructions of a single-user backend executing the call CALLS times.
run() {
    local name=$1 n=$2 input=$DIR/$1-$2.sql out=$DIR/$1-$2.out
    {
        echo "PREPARE p(bigint) AS ${CALLS[$1]}"
        for ((i = 1; i <= n; i++)); do echo "EXECUTE p($(( (i * 7919) % ROWS + 1 )))"; done
    } | as_root tee "$input" >/dev/null
    as_root chown postgres "$input"
    as_postgres env -u RUST_BACKTRACE valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$PG_BIN/postgres" --single -D "$DIR/data" -c fsync=off -c autovacuum=off postgres \
        <"$input" >"$DIR/$1-$2.log" 2>&1
    grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}'
}

say "callgrind: $SMALL and $LARGE calls each"
for name in "${ORDER[@]}"; do
    [ -n "${CALLS[$name]:-}" ] || { echo "unknown call: $name" >&2; exit 2; }
    small=$(run "$name" $SMALL)
    large=$(run "$name" $LARGE)
    echo "callgrind: $name $(( (large - small) / (LARGE - SMALL) ))" | tee -a "$OUT/results.txt"
done
remove_cluster callgrind
