# Shared by scripts/demo.sh and scripts/test.sh: installs what is missing, and runs a scratch
# PostgreSQL 15 cluster as the postgres user (PostgreSQL refuses to run as root).
# Works as root or as a user with sudo, on Debian 12.

set -euo pipefail

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PG_BIN/pg_config
PGRX_VERSION=0.18.1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${INVENTORY_SYNC_WORK:-/tmp/inventory_sync}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

install_packages() {
    local wanted=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR libclang-dev clang sudo)
    local missing=()
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
}

install_pgrx() {
    command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
    if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION\$"; then
        say "installing cargo-pgrx $PGRX_VERSION (a few minutes, once)"
        cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
    fi
    # Never a bare `cargo pgrx init`: it downloads PostgreSQL sources. Point it at Debian's.
    local config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
    if ! grep -qs "^pg$PG_MAJOR = \"$PG_CONFIG\"" "$config"; then
        say "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
        cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG"
    fi
}

setup() {
    install_packages
    install_pgrx
}

# Move the installed library aside before a new one is written: cargo pgrx overwrites the file in
# place, which crashes every running backend that has it loaded; moved, they keep the old file.
retire_library() {
    local lib
    lib="$("$PG_CONFIG" --pkglibdir)/inventory_sync.so"
    if [ -f "$lib" ]; then as_root mv -f "$lib" "$lib.retired"; fi
}

# Build the extension and install it into Debian's PostgreSQL 15. $1: extra flags (--release).
install_extension() {
    say "building and installing the extension ${1:-}"
    retire_library
    local sudo_flag=()
    [ "$(id -u)" -eq 0 ] || sudo_flag=(--sudo)
    (cd "$REPO" && cargo pgrx install --pg-config "$PG_CONFIG" "${sudo_flag[@]}" ${1:-})
}

# start_cluster NAME PORT [LISTEN]: a cluster in $WORK/NAME, socket in that directory.
# Reuses the cluster when it exists (remove_cluster first for a fresh one); restarts it so it
# loads the freshly installed library.
start_cluster() {
    local dir=$WORK/$1 port=$2 listen=${3:-}
    as_root install -d -m 0755 "$WORK"
    as_root install -d -o postgres -g postgres -m 0755 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale \
            --no-sync >/dev/null
    fi
    if as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    # Without RUST_BACKTRACE in the server's environment: with it, pgrx appends a Rust backtrace
    # to the DETAIL of every PostgreSQL error that passes through the extension.
    as_postgres env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses='$listen' -c fsync=off" start >/dev/null
}

stop_cluster() {
    local dir=$WORK/$1
    [ -f "$dir/data/PG_VERSION" ] || return 0
    as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

remove_cluster() {
    stop_cluster "$1"
    as_root rm -rf "${WORK:?}/$1"
}
