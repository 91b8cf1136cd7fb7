#!/usr/bin/env bash
# Builds a Debian package of the extension for each PostgreSQL major, named and laid out the way
# Debian's PostgreSQL extension packages are:
#
#   target/packages/postgresql-MAJOR-inventory-sync_VERSION-1_ARCH.deb
#     usr/lib/postgresql/MAJOR/lib/inventory_sync.so
#     usr/share/postgresql/MAJOR/extension/inventory_sync.control
#     usr/share/postgresql/MAJOR/extension/inventory_sync--*.sql    (install and upgrade scripts)
#     usr/share/doc/postgresql-MAJOR-inventory-sync/copyright
#   depending on postgresql-MAJOR.
#
# Usage: scripts/package.sh [--debug] [MAJOR...]
# Without majors: every supported major (15 16 17 18). Release builds unless --debug, a quick
# build for the tests. Installs what is missing first (like scripts/test.sh), but installs
# nothing into any PostgreSQL: `cargo pgrx package` writes only under target/.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PGRX_FLAGS=()
if [ "${1:-}" = --debug ]; then
    PGRX_FLAGS=(--debug)
    shift
fi
MAJORS=("$@")
[ ${#MAJORS[@]} -gt 0 ] || MAJORS=("${SUPPORTED_MAJORS[@]}")
for major in "${MAJORS[@]}"; do
    case " ${SUPPORTED_MAJORS[*]} " in
        *" $major "*) ;;
        *) echo "PostgreSQL $major: supported majors are ${SUPPORTED_MAJORS[*]}" >&2; exit 2 ;;
    esac
done

VERSION=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["package"]["version"])' \
    "$REPO/Cargo.toml")
REVISION=1
ARCH=$(dpkg --print-architecture)
OUT=$REPO/target/packages
MAINTAINER='inventory_sync developers <inventory-sync@users.noreply.invalid>'

# copyright FILE: the project's license (Cargo.toml: MIT) in Debian's machine-readable format.
write_copyright() {
    cat >"$1" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: inventory_sync

Files: *
Copyright: 2026 inventory_sync developers
License: MIT

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
EOF
}

# write_control MAJOR ROOT: DEBIAN/control of the package whose files are under ROOT.
write_control() {
    local major=$1 root=$2 size
    size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
    cat >"$root/DEBIAN/control" <<EOF
Package: postgresql-$major-inventory-sync
Version: $VERSION-$REVISION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $size
Depends: postgresql-$major
Section: database
Priority: optional
Description: offline-first sync conflict resolution for PostgreSQL $major
 inventory_sync is a PostgreSQL extension that makes the database the
 conflict-resolution engine for offline-first apps. Devices edit data while
 offline; when they sync, the backend calls one SQL function, and PostgreSQL
 decides in one atomic step whether each write wins (last-write-wins, or a
 merge policy per field). A losing write is returned to the caller with the
 row that won, and kept in a journal; a change feed hands out what changed
 since a device's cursor.
 .
 This package holds the extension for PostgreSQL $major: run
 CREATE EXTENSION inventory_sync in a database, as a superuser.
EOF
}

# package MAJOR: builds target/packages/postgresql-MAJOR-inventory-sync_VERSION-1_ARCH.deb.
package() {
    local major=$1 pg_config
    pg_config=$(pg_home "$major")/bin/pg_config
    local name=postgresql-$major-inventory-sync
    local tree=$OUT/build/pgrx-pg$major root=$OUT/build/$name
    local deb=$OUT/${name}_$VERSION-${REVISION}_$ARCH.deb

    say "PostgreSQL $major: cargo pgrx package ${PGRX_FLAGS[*]}"
    # pgrx lays its files out under the paths pg_config names (Debian's for 15,
    # /opt/inventory_sync/postgresql-MAJOR for 16-18); a fresh directory each time, so that no
    # file of an earlier build is packaged.
    rm -rf "$tree" "$root"
    (cd "$REPO" && cargo pgrx package --pg-config "$pg_config" --out-dir "$tree" "${PGRX_FLAGS[@]}")
    local built_lib built_ext
    built_lib=$tree$("$pg_config" --pkglibdir)
    built_ext=$tree$("$pg_config" --sharedir)/extension

    # Debian's layout, whatever the prefix of pgrx's tree.
    local lib=$root/usr/lib/postgresql/$major/lib ext=$root/usr/share/postgresql/$major/extension
    local doc=$root/usr/share/doc/$name
    install -d -m 0755 "$lib" "$ext" "$doc" "$root/DEBIAN"
    install -m 0644 "$built_lib/inventory_sync.so" "$lib/"
    # Stripped as Debian strips its packages' libraries (dh_strip): the symbols PostgreSQL looks
    # up are in the dynamic symbol table, which stays; a debug build loses its debug information.
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$lib/inventory_sync.so"
    install -m 0644 "$built_ext/inventory_sync.control" "$ext/"
    local sql found=0
    for sql in "$built_ext"/inventory_sync--*.sql; do
        [ -f "$sql" ] || continue
        install -m 0644 "$sql" "$ext/"
        found=1
    done
    [ "$found" = 1 ] || { echo "no inventory_sync--*.sql in $built_ext" >&2; exit 1; }
    write_copyright "$doc/copyright"
    chmod 0644 "$doc/copyright"
    write_control "$major" "$root"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
        >"$root/DEBIAN/md5sums"
    chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

    # Files owned by root:root in the archive, whoever builds it.
    dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
}

# What a fresh machine lacks: Debian's packages (15, clang for the bindings), each major's
# server and headers, cargo-pgrx and `cargo pgrx init` pointed at every installed major.
install_packages
for major in "${MAJORS[@]}"; do
    install_major "$major"
done
install_pgrx

mkdir -p "$OUT"
DEBS=()
# One major at a time: each build uses every core.
for major in "${MAJORS[@]}"; do
    package "$major"
    DEBS+=("$OUT/postgresql-$major-inventory-sync_$VERSION-${REVISION}_$ARCH.deb")
done

say "packages in ${OUT#"$REPO"/}"
for deb in "${DEBS[@]}"; do
    printf '%s  %s\n' "$(basename "$deb")" "$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$deb")")"
done
