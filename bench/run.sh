#!/usr/bin/env bash
# Builds the extension in release mode, starts a scratch PostgreSQL 15 (as postgres, port 54339),
# runs every benchmark variant side by side, and writes the results into the dated report page
# docs/reports/benchmarks-YYYY-MM-DD.md of the day the run started (a new page starts from the
# narrative of the newest earlier one, to be revised by hand).
# Usage: bench/run.sh [--smoke] [--runs N] [--seconds S]
# --smoke: each variant once for 1 s on a small table, results in target/bench-smoke.md only.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

PORT=${INVENTORY_SYNC_BENCH_PORT:-54339}
WHERE=(--reports "$REPO/docs/reports")
for arg in "$@"; do [ "$arg" = --smoke ] && WHERE=(--out "$REPO/target/bench-smoke.md"); done

setup
install_extension --release
say "starting a scratch PostgreSQL $PG_MAJOR for the benchmark (socket in $WORK/bench, port $PORT)"
remove_cluster bench
start_cluster bench "$PORT"
trap 'stop_cluster bench' EXIT
mkdir -p "$REPO/target"
python3 "$REPO/bench/bench.py" --host "$WORK/bench" --port "$PORT" "${WHERE[@]}" "$@"
