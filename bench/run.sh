#!/usr/bin/env bash
# Builds the extension in release mode, starts a scratch PostgreSQL (as postgres, port 54339; the
# major of INVENTORY_SYNC_PG, 15 by default), runs every benchmark variant side by side, then the
# contention run (bench/contention.py), and writes the results into the dated report page
# docs/reports/benchmarks-YYYY-MM-DD.md of the day the run started (a new page starts from the
# narrative of the newest earlier one, to be revised by hand), the contention chart beside it as
# docs/reports/contention-YYYY-MM-DD.png.
# Usage: bench/run.sh [--smoke] [--runs N] [--seconds S] [--contention-seconds S]
# --smoke: each variant once for 1 s on a small table, and a small contention run; results in
# target/bench-smoke.md and target/bench-smoke-contention.png only.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

PORT=${INVENTORY_SYNC_BENCH_PORT:-54339}
WHERE=(--reports "$REPO/docs/reports")
for arg in "$@"; do [ "$arg" = --smoke ] && WHERE=(--out "$REPO/target/bench-smoke.md"); done

setup
# The chart needs matplotlib: a venv of its own, with the pinned and hashed bench/requirements.txt.
VENV=$REPO/target/bench-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" 2>/dev/null || {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    rm -rf "$VENV"; python3 -m venv "$VENV"
}
"$VENV/bin/pip" install -q --require-hashes -r "$REPO/bench/requirements.txt"
install_extension --release
say "starting a scratch PostgreSQL $PG_MAJOR for the benchmark (socket in $WORK/bench, port $PORT)"
remove_cluster bench
start_cluster bench "$PORT"
trap 'stop_cluster bench' EXIT
mkdir -p "$REPO/target"
"$VENV/bin/python" "$REPO/bench/bench.py" --host "$WORK/bench" --port "$PORT" --bin "$PG_BIN" "${WHERE[@]}" "$@"
