#!/usr/bin/env bash
# Runs every test: the pure rules and the in-database tests (cargo pgrx test), the pg_regress
# sessions, the README check, the concurrency tests with real connections (pytest), the example
# backends and the reliability suite.
# Installs what it needs first.
# Usage: scripts/test.sh [--pg MAJOR] [lint|core|pgrx|regress|readme|races|examples|reliability|bench]...
# Without suites: every suite on PostgreSQL 15 (or MAJOR), then, when no major was named, the
# suites that touch the server (pgrx regress readme races reliability) on 16, 17 and 18 too.
# bench: the benchmark harness in smoke mode (it ran and produced numbers; no speed is judged).
# REGRESS="laptops errors" limits the pg_regress suite to those files.
if [ "${1:-}" = --pg ]; then
    export INVENTORY_SYNC_PG=$2
    shift 2
fi
NAMED_MAJOR=${INVENTORY_SYNC_PG:-}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Each major's clusters in a directory of their own.
[ "$PG_MAJOR" = 15 ] || WORK=$WORK-pg$PG_MAJOR
export INVENTORY_SYNC_WORK=$WORK INVENTORY_SYNC_PG_BIN=$PG_BIN
PORT=${INVENTORY_SYNC_TEST_PORT:-54329}
LOGS=$REPO/target/test-logs/pg$PG_MAJOR
SUITES=("$@")
OTHER_MAJORS=()
if [ ${#SUITES[@]} -eq 0 ]; then
    SUITES=(lint core pgrx regress readme races examples reliability bench)
    [ -n "$NAMED_MAJOR" ] || OTHER_MAJORS=(16 17 18)
fi
PASSED=0 FAILED=0

# record STATUS PASSED FAILED: a suite that exits non-zero counts at least one failure.
record() {
    local status=$1 passed=$2 failed=$3
    [ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
    PASSED=$((PASSED + passed)) FAILED=$((FAILED + failed))
}

# sum_of WORD FILE SUMMARY: the sum of the "N WORD" counts on the runner's summary lines
# (lines matching the regex SUMMARY), never on lines a test printed.
sum_of() {
    { grep -E "$3" "$2" || true; } | { grep -Eo "[0-9]+ $1" || true; } | awk '{s += $1} END {print s + 0}'
}

# The shape of the code: formatting, clippy with warnings as errors, no pgrx in the core crate's
# dependency tree, imports only downwards, unsafe only in src/pg/, no file over 600 lines.
run_lint() {
    say "lint: cargo fmt --check, cargo clippy -D warnings, the core without pgrx, the layout"
    local status=0 checks=0
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt || true
    # The in-database tests are include!d into one module, which cargo fmt does not follow.
    { (cd "$REPO" && cargo fmt --all --check) && rustfmt --check --edition 2021 \
        --config-path "$REPO/rustfmt.toml" "$REPO"/src/tests/*.rs; } 2>&1 | tee "$LOGS/lint.log" || status=1
    checks=$((checks + 1))
    (cd "$REPO" && cargo clippy --workspace --all-targets --features pg_test -- -D warnings) 2>&1 \
        | tee -a "$LOGS/lint.log" || status=1
    checks=$((checks + 1))
    if (cd "$REPO" && cargo tree -p inventory_sync_core -e normal,build) | grep -q pgrx; then
        echo "the core crate depends on pgrx" | tee -a "$LOGS/lint.log"
        status=1
    fi
    checks=$((checks + 1))
    python3 "$REPO/scripts/layout.py" "$REPO" 2>&1 | tee -a "$LOGS/lint.log" || status=1
    checks=$((checks + 1))
    record "$status" $((status == 0 ? checks : 0)) $((status == 0 ? 0 : 1))
}

# The pure core crate without PostgreSQL: plain #[test]s and proptest.
run_core() {
    say "the pgrx-free core: cargo test -p inventory_sync_core"
    local status=0
    (cd "$REPO" && cargo test -p inventory_sync_core) 2>&1 | tee "$LOGS/core.log" || status=$?
    local summary='^test result: '
    record "$status" "$(sum_of passed "$LOGS/core.log" "$summary")" \
        "$(sum_of failed "$LOGS/core.log" "$summary")"
}

run_pgrx() {
    say "cargo pgrx test: pure rules (#[test]) and in-database tests (#[pg_test])"
    as_root rm -rf "$WORK/pgrx-test"
    as_root install -d -o postgres -g postgres "$WORK/pgrx-test"
    retire_library
    local status=0
    # One test at a time: the #[pg_test]s share a database, and several create the same objects
    # (public.products …) in their own transactions, which can deadlock tests run side by side.
    (cd "$REPO" && RUST_TEST_THREADS=1 cargo pgrx test pg$PG_MAJOR --runas postgres --pgdata "$WORK/pgrx-test") \
        2>&1 | tee "$LOGS/pgrx.log" || status=$?
    local summary='^test result: '
    record "$status" "$(sum_of passed "$LOGS/pgrx.log" "$summary")" \
        "$(sum_of failed "$LOGS/pgrx.log" "$summary")"
}

ensure_cluster() {
    [ -n "${CLUSTER_UP:-}" ] && return
    install_extension
    say "starting a scratch PostgreSQL $PG_MAJOR (socket in $WORK/test, port $PORT)"
    remove_cluster test
    start_cluster test "$PORT"
    CLUSTER_UP=1
    trap 'stop_cluster test' EXIT
}

run_regress() {
    ensure_cluster
    say "pg_regress: tests/pg_regress/sql/*.sql against tests/pg_regress/expected/*.out"
    local tests=()
    if [ -n "${REGRESS:-}" ]; then
        read -r -a tests <<<"$REGRESS"
    else
        for f in "$REPO"/tests/pg_regress/sql/*.sql; do tests+=("$(basename "$f" .sql)"); done
    fi
    local out=$LOGS/pg_regress status=0
    rm -rf "$out" && mkdir -p "$out"
    "$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress" --inputdir="$REPO/tests/pg_regress" --outputdir="$out" \
        --bindir="$PG_BIN" --host="$WORK/test" --port="$PORT" --user=postgres \
        --dbname=inventory_sync_regress "${tests[@]}" || status=$?
    if [ "$status" -ne 0 ]; then
        cat "$out/regression.diffs" 2>/dev/null || true
        echo "pg_regress failed; results in $out/results" >&2
    fi
    local failed
    failed=$({ grep -c ' FAILED' "$out/regression.out" 2>/dev/null || true; } | head -1)
    failed=${failed:-0}
    record "$status" $((${#tests[@]} - failed)) "$failed"
}

# The README's examples show tests/pg_regress/expected/NAME.out verbatim.
run_readme() {
    say "the SQL examples of README.md and docs/ match their pg_regress outputs"
    local status=0
    python3 "$REPO/tests/readme_check.py" "$REPO" || status=$?
    record "$status" $((status == 0)) 0
}

# A streaming replica of the test cluster (pg_basebackup + standby.signal), on the next port.
start_standby() {
    [ -n "${STANDBY_UP:-}" ] && return
    local dir=$WORK/standby
    remove_cluster standby
    as_root install -d -o postgres -g postgres -m 0755 "$dir"
    say "starting a streaming replica (socket in $dir, port $((PORT + 1)))"
    as_postgres "$PG_BIN/pg_basebackup" -h "$WORK/test" -p "$PORT" -U postgres -D "$dir/data" \
        -R -X stream -c fast
    as_postgres env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$PG_BIN/pg_ctl" -D "$dir/data" \
        -l "$dir/server.log" -w -o "-p $((PORT + 1)) -k $dir -c listen_addresses='' -c hot_standby=on" start >/dev/null
    STANDBY_UP=1
    trap 'stop_cluster standby; stop_cluster test' EXIT
}

# ensure_venv REQUIREMENTS: the test venv (target/venv) with those packages; prints its path.
ensure_venv() {
    local venv=$REPO/target/venv
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" >&2 2>/dev/null || {
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
            python3 -m venv "$venv" >&2
        }
    fi
    "$venv/bin/pip" install -q -r "$1" >&2
    echo "$venv"
}

run_races() {
    ensure_cluster
    start_standby
    say "concurrency and protocol tests: several real connections, a replica (pytest)"
    local venv
    venv=$(ensure_venv "$REPO/tests/concurrency/requirements.txt")
    local status=0
    INVENTORY_SYNC_DSN="host=$WORK/test port=$PORT user=postgres" \
    INVENTORY_SYNC_STANDBY_DSN="host=$WORK/standby port=$((PORT + 1)) user=postgres" \
        "$venv/bin/python" -m pytest -q -s -W error::pytest.PytestUnhandledThreadExceptionWarning "$REPO/tests/concurrency" -p no:cacheprovider \
        2>&1 | tee "$LOGS/races.log" || status=$?
    local summary='^(=+ )?[0-9]+ (passed|failed).* in [0-9.]+s'
    record "$status" "$(sum_of passed "$LOGS/races.log" "$summary")" \
        "$(sum_of failed "$LOGS/races.log" "$summary")"
}

# The example backends (examples/*/test.sh, each its language's own test runner), each against
# a fresh database of the test cluster. Their last line: "examples/LANG: N passed, M failed".
run_examples() {
    ensure_cluster
    say "example backends (Python, Node.js, PHP) and the offline devices, in their own test runners"
    local lang
    for lang in python node php; do
        local db=examples_$lang log=$LOGS/examples-$lang.log status=0
        "$PG_BIN/psql" -X -q -h "$WORK/test" -p "$PORT" -U postgres -d postgres \
            -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
        PGHOST=$WORK/test PGPORT=$PORT PGUSER=postgres PGDATABASE=$db PGOPTIONS= \
            bash "$REPO/examples/$lang/test.sh" 2>&1 | tee "$log" || status=$?
        record "$status" "$(sum_of passed "$log" "^examples/$lang: ")" "$(sum_of failed "$log" "^examples/$lang: ")"
    done
}

# The reliability suite (tests/reliability): faults on a cluster of its own, the hostile-input
# corpus, the SQL fuzzer, privileges, the oracle over every write path, and load; then each
# cargo-fuzz target briefly. INVENTORY_SYNC_SOAK=1 runs the long mode (docs/DEVELOPMENT.md).
run_reliability() {
    ensure_cluster
    say "reliability suite (pytest tests/reliability${INVENTORY_SYNC_SOAK:+, soak mode})"
    local venv status=0
    venv=$(ensure_venv "$REPO/tests/reliability/requirements.txt")
    INVENTORY_SYNC_DSN="host=$WORK/test port=$PORT user=postgres" \
        "$venv/bin/python" -m pytest -q -s -W error::pytest.PytestUnhandledThreadExceptionWarning \
        "$REPO/tests/reliability" -p no:cacheprovider 2>&1 | tee "$LOGS/reliability.log" || status=$?
    local summary='^(=+ )?[0-9]+ (passed|failed).* in [0-9.]+s'
    record "$status" "$(sum_of passed "$LOGS/reliability.log" "$summary")" \
        "$(sum_of failed "$LOGS/reliability.log" "$summary")"
    # The fuzz targets run the core's pure code, the same on every major: on 15 only.
    if [ "$PG_MAJOR" = 15 ] && [ -f "$REPO/fuzz/run.sh" ]; then
        say "cargo fuzz: every target briefly (fuzz/run.sh)"
        status=0
        bash "$REPO/fuzz/run.sh" "${INVENTORY_SYNC_FUZZ_SECONDS:-20}" 2>&1 | tee "$LOGS/fuzz.log" || status=$?
        record "$status" $((status == 0)) 0
    fi
}

# The benchmark harness, briefly, so it cannot rot: every variant must produce numbers.
run_bench() {
    say "benchmark harness, smoke mode (bench/run.sh --smoke)"
    local status=0
    bash "$REPO/bench/run.sh" --smoke 2>&1 | tee "$LOGS/bench.log" || status=$?
    grep -q "^benchmark: [0-9]* variant runs written" "$LOGS/bench.log" || status=1
    record "$status" $((status == 0)) 0
}

setup
mkdir -p "$LOGS"
for suite in "${SUITES[@]}"; do
    case $suite in
        lint) run_lint ;;
        core) run_core ;;
        pgrx) run_pgrx ;;
        regress) run_regress ;;
        readme) run_readme ;;
        races) run_races ;;
        examples) run_examples ;;
        reliability) run_reliability ;;
        bench) run_bench ;;
        *) echo "unknown suite: $suite (lint, core, pgrx, regress, readme, races, examples, reliability, bench)" >&2; exit 2 ;;
    esac
done
say "PostgreSQL $PG_MAJOR: $PASSED passed, $FAILED failed (${SECONDS} s)"
[ ${#OTHER_MAJORS[@]} -eq 0 ] || { stop_cluster standby; stop_cluster test; }
for major in "${OTHER_MAJORS[@]}"; do
    log=$REPO/target/test-logs/major-$major.log
    mkdir -p "$(dirname "$log")"
    status=0
    start=$SECONDS
    # The reliability suite's fast mode on these majors: a shorter load test and fewer SQL-fuzzer
    # examples (the full short mode runs on 15).
    INVENTORY_SYNC_LOAD_SECONDS=10 INVENTORY_SYNC_FUZZ_EXAMPLES=50 \
        bash "$REPO/scripts/test.sh" --pg "$major" pgrx regress readme races reliability 2>&1 | tee "$log" || status=$?
    line=$(grep -E '^inventory_sync: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)
    record "$status" "$(echo "$line" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+' || echo 0)" \
        "$(echo "$line" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+' || echo 0)"
    say "PostgreSQL $major: ${line:-no summary} ($((SECONDS - start)) s)"
done
echo
echo "inventory_sync: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
