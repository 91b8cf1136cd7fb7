#!/usr/bin/env bash
# fuzz/run.sh [SECONDS]: build the fuzz targets and run each for SECONDS (default 20).
#
# Prints, per target, the executions and whether it found a crash; exits non-zero when one did,
# or when a known bug (KNOWN_BUGS.md) no longer reproduces: its strict-xfail test in
# tests/known_bugs.rs then fails, and the bug is fixed (remove the test and its name in src/lib.rs).
#
# cargo-fuzz needs nightly's -Z flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# Uses the address sanitizer when the toolchain ships its runtime, else none.
# FUZZ_TARGETS="merge cursor" runs only those targets.
set -euo pipefail

SECONDS_PER_TARGET=${1:-20}
CARGO_FUZZ_VERSION=0.13.2
cd "$(dirname "${BASH_SOURCE[0]}")"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
    echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

host=$(rustc -vV | sed -n 's/^host: //p')
if compgen -G "$(rustc --print sysroot)/lib/rustlib/$host/lib/*rt.asan*" >/dev/null; then
    sanitizer=address
else
    sanitizer=none
fi
# -a: debug assertions and overflow checks, as in the extension's dev and test builds.
flags=(-s "$sanitizer" -a)

# Cargo.lock is committed: refuse to build with anything else.
cargo metadata --locked --format-version 1 >/dev/null

echo "==> building the fuzz targets (sanitizer: $sanitizer)"
start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "==> built in $(( $(date +%s) - start )) s"

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
logs=target/run-logs
mkdir -p "$logs"
failed=0
summary=()

# Known bugs: their tests expect the correct behaviour and are marked should_panic (strict xfail).
echo "==> known bugs (tests/known_bugs.rs)"
if cargo test --locked --release --test known_bugs >"$logs/known_bugs.log" 2>&1; then
    if grep -q "^running 0 tests" "$logs/known_bugs.log"; then
        summary+=("known bugs: none open")
    else
        summary+=("known bugs: all still reproduce (expected; see KNOWN_BUGS.md)")
    fi
else
    fixed=$(sed -n 's/^---- \(.*\) stdout ----$/\1/p' "$logs/known_bugs.log" | tr '\n' ' ')
    summary+=("known bugs: NO LONGER REPRODUCE: ${fixed:-see $logs/known_bugs.log} (fixed? see KNOWN_BUGS.md)")
    failed=1
fi

for t in $targets; do
    # Fuzz: new inputs go to a scratch corpus, seeded by the committed one (left untouched).
    work=target/corpus/$t
    mkdir -p "$work" "corpus/$t"
    status=0
    cargo fuzz run "${flags[@]}" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        >"$logs/$t.log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
    speed=$(grep -o 'exec/s: [0-9]*' "$logs/$t.log" | tail -1 | sed 's/exec\/s: //')
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$logs/$t.log" | tail -1)
    if [ "$status" -ne 0 ] || [ -n "$artifact" ]; then
        failed=1
        summary+=("$t: ${runs:-?} executions (${speed:-?}/s): CRASH ${artifact:-exit $status}, log $logs/$t.log")
        grep -m1 -A3 'panicked at' "$logs/$t.log" | sed 's/^/    /' || tail -5 "$logs/$t.log" | sed 's/^/    /'
    else
        summary+=("$t: ${runs:-?} executions (${speed:-?}/s): no crash")
    fi
done

echo "==> results (${SECONDS_PER_TARGET} s per target)"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    echo "==> FAILED (reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${flags[*]} TARGET ARTIFACT)"
    exit 1
fi
