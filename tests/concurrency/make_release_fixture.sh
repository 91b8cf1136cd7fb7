#!/usr/bin/env bash
# tests/concurrency/make_release_fixture.sh VERSION: record what release VERSION itself writes, for
# the upgrade test (tests/concurrency/test_upgrade.py). Builds the release from its tag (vVERSION)
# in a git worktree, installs its library into PostgreSQL 15 for a moment, lets it write the
# upgrade test's data on a scratch cluster of its own (tests/concurrency/release_fixture.py), and
# keeps a plain pg_dump of that database as tests/concurrency/fixtures/inventory_sync-VERSION.sql;
# then builds and installs the current code again. Run it once per release, when no test runs
# (it replaces the installed library).
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
version=${1:?usage: make_release_fixture.sh VERSION}
tree=$WORK/release-$version
fixture=$REPO/tests/concurrency/fixtures/inventory_sync-$version.sql

setup
say "building release $version from tag v$version"
rm -rf "$tree"
git -C "$REPO" worktree add --force "$tree" "v$version" >/dev/null
trap 'git -C "$REPO" worktree remove --force "$tree"' EXIT
# Its own target directory (kept under target/, so a second run builds only what changed).
target=${INVENTORY_SYNC_RELEASE_TARGET:-$REPO/target/releases}
(cd "$tree" && CARGO_TARGET_DIR=$target cargo pgrx package --debug --pg-config "$PG_CONFIG")
package=$target/debug/inventory_sync-pg$PG_MAJOR

say "installing release $version's library"
retire_library
as_root install -m 0755 "$package$("$PG_CONFIG" --pkglibdir)/inventory_sync.so" "$("$PG_CONFIG" --pkglibdir)/"
as_root install -m 0644 "$REPO/sql/inventory_sync--$version.sql" "$("$PG_CONFIG" --sharedir)/extension/"

say "letting release $version write"
remove_cluster release-fixture
start_cluster release-fixture 54350
venv=$REPO/target/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q -r "$REPO/tests/concurrency/requirements.txt"
INVENTORY_SYNC_DSN="host=$WORK/release-fixture port=54350 user=postgres" \
    "$venv/bin/python" "$REPO/tests/concurrency/release_fixture.py" "$version"
"$PG_BIN/pg_dump" -h "$WORK/release-fixture" -p 54350 -U postgres --no-owner -F p -f "$fixture" release_fixture
remove_cluster release-fixture
as_root rm -f "$("$PG_CONFIG" --sharedir)/extension/inventory_sync--$version.sql"
say "kept $fixture"

install_extension
