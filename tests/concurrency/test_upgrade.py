"""Releases and upgrades. A release's full install script is kept in sql/ (inventory_sync--X.sql,
generated once and never edited); every later schema change ships sql/inventory_sync--A--B.sql.

- The code at a released version builds exactly the schema of that release's script: a schema
  change without a new version (and its update script) fails here. Compared as catalogs (every
  function, table, column, constraint, index, policy, view, domain, grant, comment and the
  tables marked for pg_dump), not as text.
- The upgrade from the previous release: the extension created at that release (its kept script),
  the data that release itself wrote loaded into it (a pg_dump kept in tests/concurrency/fixtures,
  made by make_release_fixture.sh with the release's own library), `ALTER EXTENSION
  inventory_sync UPDATE` with this build's library, then nothing lost, devices continuing from the
  cursors the release handed out, every function working, and the catalog equal to a fresh
  install of the current version. While the current version is itself the latest release, the
  update is the no-op it is for users, and the same checks run.
Runs on every major (scripts/test.sh races)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import client_args, connect, drop_databases, empty_database, fresh_database, pull_all

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("INVENTORY_SYNC_PG_BIN", "/usr/lib/postgresql/15/bin"))
RELEASE = re.compile(r"inventory_sync--(\d+\.\d+\.\d+)\.sql")
UPDATE = re.compile(r"inventory_sync--(\d+\.\d+\.\d+)--(\d+\.\d+\.\d+)\.sql")


def version_key(v):
    return tuple(int(p) for p in v.split("."))


def current_version():
    return re.search(r'^version = "([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M).group(1)


def releases():
    return sorted((m.group(1) for f in (REPO / "sql").iterdir() if (m := RELEASE.fullmatch(f.name))), key=version_key)


def extension_dir():
    share = subprocess.run([str(PG_BIN / "pg_config"), "--sharedir"], check=True, capture_output=True, text=True)
    return Path(share.stdout.strip()) / "extension"


# Every object of the extension, described by PostgreSQL itself, without OIDs or source text
# positions: what a schema is, not how its script is written.
CATALOG = r"""
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'inventory_sync'),
members AS (SELECT d.classid, d.objid FROM pg_depend d, ext
             WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e')
SELECT 'function', p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       concat_ws(' | ', pg_get_function_result(p.oid), p.prokind, p.provolatile, p.proparallel, p.prosecdef,
                 p.proisstrict, p.proconfig::text, p.prosrc, p.proacl::text,
                 pg_get_function_arguments(p.oid), obj_description(p.oid, 'pg_proc'))
  FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
UNION ALL
SELECT 'relation', c.relname,
       concat_ws(' | ', c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relacl::text, c.reloptions::text,
                 obj_description(c.oid, 'pg_class'),
                 CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END)
  FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
UNION ALL
SELECT 'column', c.relname || '.' || a.attname,
       concat_ws(' | ', a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity, a.attgenerated,
                 pg_get_expr(ad.adbin, ad.adrelid), a.attcollation::regcollation::text, a.attacl::text,
                 col_description(c.oid, a.attnum))
  FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
UNION ALL
SELECT 'constraint', c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
  JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
UNION ALL
SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = i.indrelid
UNION ALL
SELECT 'policy', p.tablename || '.' || p.policyname,
       concat_ws(' | ', p.permissive, p.roles::text, p.cmd, p.qual, p.with_check)
  FROM pg_policies p WHERE p.schemaname = 'inventory_sync'
UNION ALL
SELECT 'type', t.typname,
       concat_ws(' | ', t.typtype, format_type(t.typbasetype, t.typtypmod), t.typnotnull,
                 (SELECT string_agg(pg_get_constraintdef(k.oid), ', ' ORDER BY k.conname)
                    FROM pg_constraint k WHERE k.contypid = t.oid), obj_description(t.oid, 'pg_type'))
  FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
UNION ALL
SELECT 'event trigger', e.evtname, concat_ws(' | ', e.evtevent, e.evtfoid::regproc::text, e.evtenabled)
  FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
UNION ALL
SELECT 'dumped with data', c::regclass::text, coalesce(x.extcondition[i], '')
  FROM pg_extension x, unnest(x.extconfig) WITH ORDINALITY AS u(c, i)
 WHERE x.extname = 'inventory_sync'
UNION ALL
SELECT 'schema', n.nspname, concat_ws(' | ', n.nspacl::text, obj_description(n.oid, 'pg_namespace'))
  FROM pg_namespace n WHERE n.nspname = 'inventory_sync'
ORDER BY 1, 2, 3
"""


def catalog(dbname):
    with connect(dbname) as c:
        rows = c.execute(CATALOG).fetchall()
    assert len(rows) > 50, rows
    return rows


def fixture(version):
    """The data release `version` itself wrote (tests/concurrency/make_release_fixture.sh)."""
    return REPO / "tests" / "concurrency" / "fixtures" / f"inventory_sync-{version}.sql"


def data(c):
    """Everything the extension keeps, in terms every version has: tables by name, positions as
    numbers (0.1.0 kept transaction ids where later versions keep positions), the feed of tables
    still tracked (an update may drop what no pull hands out any more)."""
    q = lambda sql: c.execute(sql).fetchall()  # noqa: E731
    columns = {r[0] for r in q("SELECT attname FROM pg_attribute WHERE attrelid = 'inventory_sync.changes'::regclass")}
    if "table_id" in columns:
        table, position = "inventory_sync.table_of(x.table_id)", "x.position"
    else:
        table, position = "x.tbl", "x.change_xid::text::bigint"
    tracked = "(SELECT tbl FROM inventory_sync.tracked)"
    # Since 0.2.0 the uuid and text tables' feed and mutation ids are in tables of their own.
    own_sides = q("SELECT to_regclass('inventory_sync.changes_uuid') IS NOT NULL")[0][0]
    sides = ["", "_uuid", "_text"] if own_sides else [""]
    both = lambda sql: sorted((r for side in sides for r in q(sql.format(side=side))), key=repr)  # noqa: E731
    return {
        "inventory": q(f"SELECT id, data, updated_at, deleted, updated_by, field_clocks, {position}"
                       " FROM inventory_sync.inventory x ORDER BY id"),
        "conflicts": q("SELECT row_id, conflict_id, table_name, reason, client_payload, server_data"
                       " FROM inventory_sync.conflicts ORDER BY 2"),
        "changes": both(f"SELECT {table}::text, row_id, op, ts, client_id, field_clocks, {position}"
                        f" FROM inventory_sync.changes{{side}} x WHERE {table} IN {tracked}"),
        "mutations": both(f"SELECT {table}::text, row_id, client_id, mutation_id, answer"
                          f" FROM inventory_sync.mutations{{side}} x"
                          f" WHERE {table} IN {tracked} OR {table} = 'inventory_sync.inventory'::regclass"),
        "purge_horizon": q(f"SELECT {position}, row_id, purged_at FROM inventory_sync.purge_horizon x"),
        "policies": q("SELECT table_name::text, field, policy FROM inventory_sync.policies ORDER BY 1, 2"),
        "tracked": q("SELECT table_name::text, key_column, ts_column FROM inventory_sync.tracked_tables ORDER BY 1"),
        "products": q("SELECT id, name, stock FROM public.products ORDER BY id"),
        "shelves": q("SELECT code, label FROM public.shelves ORDER BY code"),
    }


# The parts of the feed and of the mutation log since 0.2.0.
SIDES = ("", "_uuid", "_text")


def every_function_works(c):
    one = lambda sql: c.execute(sql).fetchone()[0]  # noqa: E731
    assert one("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 8}', '2024-03-01 10:00+00')")["status"] == "conflict"
    assert one("SELECT inventory_sync.sync_upsert(2, '{\"name\": \"Mice\"}', '2024-03-01 09:00+00', 'dev-a', 'm-1')")[
        "duplicate"
    ] is True
    assert one("SELECT inventory_sync.sync_upsert(3, '{\"a\": 1}', '2024-03-01 09:00+00')")["status"] == "applied"
    assert one("SELECT inventory_sync.sync_delete(3, '2024-03-01 09:30+00')")["status"] == "applied"
    pid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    answer = one(
        f"SELECT inventory_sync.sync_upsert_in('public.products', '{pid}', '{{\"stock\": 6}}', "
        "'2024-03-01 10:00+00', base => '{\"stock\": 4}')"
    )
    assert answer["status"] == "applied", answer
    assert one(f"SELECT inventory_sync.sync_delete_in('public.products', '{pid}', '2024-03-01 11:00+00')")["status"] == "applied"
    pushed = one(
        "SELECT inventory_sync.sync_push('[{\"id\": 4, \"payload\": {\"a\": 1}, \"client_ts\": \"2024-03-01 09:00+00\"}]')"
    )
    assert [o["status"] for o in pushed] == ["applied"]
    pushed = one(
        "SELECT inventory_sync.sync_push_json('[{\"id\": 5, \"payload\": {\"a\": 1}, \"client_ts\": \"2024-03-01 09:00+00\"}]')"
    )
    assert [o["status"] for o in pushed] == ["applied"]
    # Every item and every tracked row or tombstone, once.
    assert len(one("SELECT inventory_sync.sync_pull(NULL)")["changes"]) == one(
        "SELECT (SELECT count(*) FROM inventory_sync.inventory)"
        + "".join(f" + (SELECT count(*) FROM inventory_sync.changes{side})" for side in SIDES)
    )
    mutations = one("SELECT 0" + "".join(f" + (SELECT count(*) FROM inventory_sync.mutations{side})" for side in SIDES))
    tombstones = one(
        "SELECT (SELECT count(*) FROM inventory_sync.inventory WHERE deleted)"
        + "".join(f" + (SELECT count(*) FROM inventory_sync.changes{side} WHERE op = 'delete')" for side in SIDES)
    )
    assert mutations >= 2 and tombstones >= 3
    assert one("SELECT inventory_sync.purge_mutations('0 seconds')") == mutations
    assert one("SELECT inventory_sync.purge_tombstones('0 seconds')") == tombstones
    c.execute("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'a', 'field_lww')")
    c.execute("SELECT inventory_sync.set_ordering('inventory_sync.inventory', 'server')")
    made = one("SELECT inventory_sync.sync_upsert(6, '{}', NULL)")
    assert made["status"] == "applied", made
    stale = one(f"SELECT inventory_sync.sync_delete(6, NULL, base_version => '{'0' * 16}')")
    assert stale["status"] == "conflict" and stale["version"] == made["version"], stale
    c.execute("SELECT inventory_sync.set_ordering('inventory_sync.inventory', 'client_ts')")
    c.execute("SELECT inventory_sync.untrack('public.products')")
    c.execute("SELECT inventory_sync.track('public.products')")


def test_the_code_builds_the_schema_of_its_release():
    version = current_version()
    if version not in releases():
        pytest.skip(f"{version} is not released yet: no kept script to compare with")
    # The kept release script, under a version name of its own, next to the one this build installed.
    ext = extension_dir()
    kept = ext / f"inventory_sync--{version}-kept.sql"
    shutil.copyfile(REPO / "sql" / f"inventory_sync--{version}.sql", kept)
    try:
        empty_database("inventory_sync_release_kept")
        with connect("inventory_sync_release_kept") as c:
            c.execute(f"CREATE EXTENSION inventory_sync VERSION '{version}-kept'")
        built = fresh_database("inventory_sync_release_built")
        assert catalog("inventory_sync_release_kept") == catalog(built), (
            f"this build's schema differs from release {version}'s script: a schema change needs a new version "
            f"and its update script (sql/inventory_sync--{version}--NEXT.sql)"
        )
    finally:
        kept.unlink()
        drop_databases("inventory_sync_release_kept", "inventory_sync_release_built")


def test_upgrade_from_the_previous_release_keeps_everything():
    version = current_version()
    previous = [r for r in releases() if version_key(r) <= version_key(version)]
    assert previous, "no release script in sql/"
    previous = previous[-1]
    assert fixture(previous).exists(), f"run tests/concurrency/make_release_fixture.sh {previous}"
    ext = extension_dir()
    placed = []
    if previous != version:
        # The kept scripts of the old release and every update script, as a package installs them.
        for f in (REPO / "sql").iterdir():
            if (RELEASE.fullmatch(f.name) and f.name != f"inventory_sync--{version}.sql") or UPDATE.fullmatch(f.name):
                if not (ext / f.name).exists():
                    shutil.copyfile(f, ext / f.name)
                    placed.append(ext / f.name)
    try:
        empty_database("inventory_sync_upgrade")
        # What the release wrote, restored as it dumped it, with the extension created at the
        # release's version (a dump names none: it would create the current one).
        dump = fixture(previous).read_text()
        create = "CREATE EXTENSION IF NOT EXISTS inventory_sync WITH SCHEMA inventory_sync;"
        assert dump.count(create) == 1
        loaded = subprocess.run(
            [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", *client_args(), "-d", "inventory_sync_upgrade"],
            input=dump.replace(create, create[:-1] + f" VERSION '{previous}';"), capture_output=True, text=True,
        )
        assert loaded.returncode == 0, loaded.stderr
        with connect("inventory_sync_upgrade") as c:
            c.execute("SET TimeZone = 'UTC'")
            before = data(c)
            assert all(before.values()), before
            c.execute("ALTER EXTENSION inventory_sync UPDATE")
            assert c.execute("SELECT extversion FROM pg_extension WHERE extname = 'inventory_sync'").fetchone()[0] == version
            assert data(c) == before, "the update changed the data"
            # Each side row got its row's shard key, as a write stores it now: an integer key
            # itself (the default table's, a tracked table's bigint or integer key), else (the
            # journal's) the hash of the key's text; a uuid or text table's feed and mutation ids
            # moved to its key type's side tables, with the key itself. (A table no longer tracked
            # has no key type: its feed entries stay where they were.)
            key_type = ("(SELECT CASE WHEN {t} = 'inventory_sync.inventory'::regclass THEN 'bigint' ELSE"
                        " (SELECT t.key_type FROM inventory_sync.tracked_tables t WHERE t.table_name = {t}) END)")
            integer = "CASE WHEN {k} IN ('bigint', 'integer') THEN x.row_id::bigint ELSE hashtextextended(x.row_id, 0) END"
            by_id, by_name = "inventory_sync.table_of(x.table_id)", "to_regclass(x.table_name)"
            counted = {}
            for side, table, expected, holds in [("changes", by_id, integer, {"bigint", "integer", None}),
                                                 ("mutations", by_id, integer, {"bigint", "integer", None}),
                                                 ("conflicts", by_name, integer, None),
                                                 ("changes_uuid", by_id, "x.row_id::uuid", {"uuid"}),
                                                 ("mutations_uuid", by_id, "x.row_id::uuid", {"uuid"}),
                                                 ("changes_text", by_id, "x.row_id", {"text"}),
                                                 ("mutations_text", by_id, "x.row_id", {"text"})]:
                k = key_type.format(t=table)
                wrong, rows, types = c.execute(
                    f"SELECT count(*) FILTER (WHERE x.shard_key IS DISTINCT FROM {expected.format(k=k)}), count(*),"
                    f" array_agg(DISTINCT {k}) FROM inventory_sync.{side} x").fetchone()
                assert wrong == 0, (side, wrong, rows)
                if holds is not None:
                    assert set(types or []) <= holds, (side, types)
                counted[side] = rows
            # The release's fixture has side rows of every kind, uuid and text rows among them (no
            # feed record of a bigint table: its one such table is no longer tracked).
            assert all(n for side, n in counted.items() if side != "changes"), counted
            # Devices go on from the cursors the release handed out: the one that had pulled a
            # page gets what it had still to pull, the other nothing; then each gets a new write.
            cursors = {d: (cur, rest) for d, cur, rest in c.execute("SELECT * FROM public.device_cursors")}
            # Rows written before the update carry version 0 until their next write.
            for cursor, still_to_pull in cursors.values():
                pulled = pull_all(c, cursor)[0]
                assert [ch.pop("version") for ch in pulled] == ["0" * 16] * len(still_to_pull)
                assert pulled == still_to_pull
            c.execute("SELECT inventory_sync.sync_upsert(6, '{\"name\": \"after the update\"}', '2024-03-02 09:00+00')")
            for cursor, still_to_pull in cursors.values():
                assert [ch["id"] for ch in pull_all(c, cursor)[0]] == [ch["id"] for ch in still_to_pull] + [6]
            # The journal's ids go on after the release's (they moved from an identity column to
            # a sequence default), as do the table ids.
            last = c.execute("SELECT max(conflict_id) FROM inventory_sync.conflicts").fetchone()[0]
            c.execute("SELECT inventory_sync.sync_upsert(6, '{}', '2024-03-01 09:00+00')")
            assert c.execute("SELECT max(conflict_id) FROM inventory_sync.conflicts").fetchone()[0] > last
            assert c.execute("SELECT nextval('inventory_sync.tracked_table_id_seq')").fetchone()[0] > c.execute(
                "SELECT max(table_id) FROM inventory_sync.tracked").fetchone()[0]
        fresh = fresh_database("inventory_sync_upgrade_fresh")
        assert catalog("inventory_sync_upgrade") == catalog(fresh), "an updated database differs from a fresh install"
        with connect("inventory_sync_upgrade") as c:
            c.execute("SET TimeZone = 'UTC'")
            every_function_works(c)
    finally:
        for f in placed:
            f.unlink()
        drop_databases("inventory_sync_upgrade", "inventory_sync_upgrade_fresh")
