#!/usr/bin/env bash
# Runs every test: the pure rules and the in-database tests (cargo pgrx test), the pg_regress
# sessions, the README check, the concurrency tests with real connections (pytest), the example
# backends and the reliability suite.
# Installs what it needs first.
# Usage: scripts/test.sh [--pg MAJOR] [lint|core|pgrx|regress|readme|races|examples|reliability|bench|packages]...
# Without suites: every suite on PostgreSQL 15 (or MAJOR; packages on 15 only, it covers every
# major itself), then, when no major was named, the suites that touch the server (pgrx regress
# readme races reliability) on 16, 17 and 18 too.
# bench: the benchmark harness in smoke mode (it ran and produced numbers; no speed is judged).
# packages: the Debian package of every major (scripts/package.sh), installed and tried; META.json.
# REGRESS="laptops errors" limits the pg_regress suite to those files.
if [ "${1:-}" = --pg ]; then
    export INVENTORY_SYNC_PG=$2
    shift 2
fi
NAMED_MAJOR=${INVENTORY_SYNC_PG:-}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export INVENTORY_SYNC_WORK=$WORK INVENTORY_SYNC_PG_BIN=$PG_BIN
PORT=${INVENTORY_SYNC_TEST_PORT:-54329}
LOGS=$REPO/target/test-logs/pg$PG_MAJOR
SUITES=("$@")
OTHER_MAJORS=()
if [ ${#SUITES[@]} -eq 0 ]; then
    SUITES=(lint core pgrx regress readme races examples reliability bench)
    [ "$PG_MAJOR" != 15 ] || SUITES+=(packages)
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
        --launcher="$REPO/tests/pg_regress/mask_versions.sh" \
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

# META.json (PGXN) gives the version of Cargo.toml, as the distribution's and the extension's.
check_meta_json() {
    python3 - "$REPO" <<'EOF'
import json, sys, tomllib
repo = sys.argv[1]
with open(f"{repo}/Cargo.toml", "rb") as f:
    version = tomllib.load(f)["package"]["version"]
with open(f"{repo}/META.json") as f:
    meta = json.load(f)
found = {"version": meta["version"]}
found.update((f"provides.{name}.version", p["version"]) for name, p in meta["provides"].items())
wrong = [f"META.json: {key} is {value}, Cargo.toml says {version}" for key, value in found.items() if value != version]
print("\n".join(wrong or [f"META.json: version {version}, as Cargo.toml"]))
sys.exit(1 if wrong else 0)
EOF
}

# check_package_files MAJOR DEB VERSION: the package holds exactly the expected paths (each file
# and the directories above it, owned by root), a non-empty library, and Debian's name and
# dependency.
check_package_files() {
    local major=$1 deb=$2 version=$3 name=postgresql-$1-inventory-sync
    local lib=./usr/lib/postgresql/$major/lib/inventory_sync.so ext=./usr/share/postgresql/$major/extension
    local files=("$lib" "$ext/inventory_sync.control" "$ext/inventory_sync--$version.sql"
        "./usr/share/doc/$name/copyright") f d
    # The upgrade scripts (sql/inventory_sync--A--B.sql), which cargo pgrx package copies.
    for f in "$REPO"/sql/inventory_sync--*--*.sql; do
        if [ -f "$f" ]; then files+=("$ext/$(basename "$f")"); fi
    done
    local expected listing actual status=0
    expected=$(for f in "${files[@]}"; do
        echo "$f"
        d=$(dirname "$f")
        while [ "$d" != . ]; do echo "$d/"; d=$(dirname "$d"); done
    done; echo ./)
    expected=$(echo "$expected" | sort -u)
    listing=$(dpkg-deb -c "$deb") || return 1
    actual=$(echo "$listing" | awk '{print $6}' | sort)
    if [ "$expected" != "$actual" ]; then
        echo "$(basename "$deb"): unexpected file list (< expected, > in the package):"
        diff <(echo "$expected") <(echo "$actual") || true
        status=1
    fi
    if echo "$listing" | awk '$2 != "root/root"' | grep -q .; then
        echo "$(basename "$deb"): files not owned by root/root"
        status=1
    fi
    local size
    size=$(echo "$listing" | awk -v p="$lib" '$6 == p {print $3}')
    if [ "${size:-0}" -le 0 ]; then
        echo "$(basename "$deb"): $lib is missing or empty"
        status=1
    fi
    if [ "$(dpkg-deb -f "$deb" Package)" != "$name" ] ||
        [ "$(dpkg-deb -f "$deb" Depends)" != "postgresql-$major" ]; then
        echo "$(basename "$deb"): Package/Depends are '$(dpkg-deb -f "$deb" Package)'/'$(dpkg-deb -f "$deb" Depends)'"
        status=1
    fi
    [ "$status" -ne 0 ] || echo "$(basename "$deb"): file list, library ($size bytes), Package and Depends as expected"
    return "$status"
}

# place_package MAJOR DEB PG_CONFIG: the package's files placed into the PostgreSQL tree of that
# pg_config (its lib/ and share/extension/). 16-18 come from PyPI, not from Debian, so dpkg has
# no postgresql-MAJOR to install them beside. The library is copied beside the old one and
# renamed over it, as dpkg does: backends that have the old one loaded keep it.
place_package() {
    local major=$1 deb=$2 pg_config=$3 unpacked=$LOGS/packages/files-pg$1
    rm -rf "$unpacked"
    dpkg-deb -x "$deb" "$unpacked" || return 1
    local pkglibdir extdir
    pkglibdir=$("$pg_config" --pkglibdir) && extdir=$("$pg_config" --sharedir)/extension || return 1
    as_root install -m 0644 "$unpacked/usr/lib/postgresql/$major/lib/inventory_sync.so" \
        "$pkglibdir/inventory_sync.so.new" &&
        as_root mv -f "$pkglibdir/inventory_sync.so.new" "$pkglibdir/inventory_sync.so" &&
        as_root install -m 0644 "$unpacked/usr/share/postgresql/$major/extension/"inventory_sync* "$extdir/"
}

# run_story NAME PORT BINDIR: the Laptops story (pg_regress laptops_story, compared with
# tests/pg_regress/expected/laptops_story.out) in a clean cluster $WORK/NAME of the PostgreSQL in
# BINDIR.
run_story() {
    local name=$1 port=$2 out=$LOGS/packages/$1 status=0
    local PG_BIN=$3   # start_cluster, stop_cluster and remove_cluster run this major's binaries
    rm -rf "$out" && mkdir -p "$out"
    if ! { remove_cluster "$name" && start_cluster "$name" "$port"; }; then
        stop_cluster "$name"
        return 1
    fi
    "$("$PG_BIN/pg_config" --pkglibdir)/pgxs/src/test/regress/pg_regress" \
        --inputdir="$REPO/tests/pg_regress" --outputdir="$out" --bindir="$PG_BIN" \
        --host="$WORK/$name" --port="$port" --user=postgres --dbname=inventory_sync_pkg \
        --launcher="$REPO/tests/pg_regress/mask_versions.sh" laptops_story || status=1
    [ "$status" -eq 0 ] || cat "$out/regression.diffs" 2>/dev/null || true
    stop_cluster "$name"
    return "$status"
}

# The packages a user installs. scripts/package.sh --debug builds the Debian package of every
# major: a debug build is fast, since it is the build `cargo pgrx install` made for the suites
# above (15), and the one the runs of 16, 17 and 18 after this suite reuse. The release packages
# come from scripts/package.sh without --debug. Each package's file list is checked; the 15
# package is installed with dpkg into Debian's PostgreSQL 15, the 16-18 packages' files are placed
# into their major's tree; then each major plays the Laptops story in a clean cluster of its own
# (pkg15 ... pkg18, ports 54361-54364).
run_packages() {
    say "packages: META.json, scripts/package.sh --debug, each package's files, the Laptops story from each"
    local log=$LOGS/packages.log status=0 passed=0 failed=0
    rm -rf "$LOGS/packages" && mkdir -p "$LOGS/packages"
    if check_meta_json 2>&1 | tee "$log"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    bash "$REPO/scripts/package.sh" --debug "${SUPPORTED_MAJORS[@]}" 2>&1 | tee -a "$log" || status=$?
    if [ "$status" -ne 0 ]; then
        record "$status" "$passed" $((failed + 1))
        return
    fi
    passed=$((passed + 1))
    local version major deb port story
    version=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["package"]["version"])' \
        "$REPO/Cargo.toml")
    for major in "${SUPPORTED_MAJORS[@]}"; do
        deb=$REPO/target/packages/postgresql-$major-inventory-sync_$version-1_$(dpkg --print-architecture).deb
        port=$((54361 + major - 15))
        if check_package_files "$major" "$deb" "$version" 2>&1 | tee -a "$log"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
        fi
        story=0
        if [ "$major" = 15 ]; then
            say "PostgreSQL 15: dpkg -i $(basename "$deb"), the Laptops story in a clean cluster"
            { as_root dpkg -i "$deb" && run_story pkg15 "$port" "$(pg_home 15)/bin"; } 2>&1 | tee -a "$log" || story=1
            # Removed again, which takes its files out of Debian's PostgreSQL 15, so that a later
            # `cargo pgrx install` does not write over files dpkg owns. This is the last suite: the
            # suites above are done with the installed extension, and the next run installs it
            # again (install_extension).
            as_root dpkg -r postgresql-15-inventory-sync 2>&1 | tee -a "$log" || story=1
        else
            say "PostgreSQL $major: the package's files placed into $(pg_home "$major"), the Laptops story in a clean cluster"
            { place_package "$major" "$deb" "$(pg_home "$major")/bin/pg_config" &&
                run_story "pkg$major" "$port" "$(pg_home "$major")/bin"; } 2>&1 | tee -a "$log" || story=1
        fi
        if [ "$story" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
    record 0 "$passed" "$failed"
}

setup
mkdir -p "$LOGS"
TIMES=()
for suite in "${SUITES[@]}"; do
    suite_start=$SECONDS
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
        packages) run_packages ;;
        *) echo "unknown suite: $suite (lint, core, pgrx, regress, readme, races, examples, reliability, bench, packages)" >&2; exit 2 ;;
    esac
    TIMES+=("$suite $((SECONDS - suite_start)) s")
done
say "PostgreSQL $PG_MAJOR: $PASSED passed, $FAILED failed (${SECONDS} s: $(IFS=,; echo "${TIMES[*]}" | sed 's/,/, /g'))"
[ ${#OTHER_MAJORS[@]} -eq 0 ] || { stop_cluster standby; stop_cluster test; }
for major in "${OTHER_MAJORS[@]}"; do
    log=$REPO/target/test-logs/major-$major.log
    mkdir -p "$(dirname "$log")"
    status=0
    start=$SECONDS
    # The reliability suite's fast mode on these majors: a shorter load test, fewer SQL-fuzzer
    # examples, no sync_push_json mirror of the corpus (the full short mode runs on 15).
    INVENTORY_SYNC_LOAD_SECONDS=10 INVENTORY_SYNC_FUZZ_EXAMPLES=50 INVENTORY_SYNC_PUSH_JSON_MIRROR=0 \
        bash "$REPO/scripts/test.sh" --pg "$major" pgrx regress readme races reliability 2>&1 | tee "$log" || status=$?
    line=$(grep -E '^inventory_sync: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)
    record "$status" "$(echo "$line" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+' || echo 0)" \
        "$(echo "$line" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+' || echo 0)"
    say "PostgreSQL $major: ${line:-no summary} ($((SECONDS - start)) s)"
done
echo
echo "inventory_sync: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
