"""Backups keep the data: pg_dump of a database that uses the extension, restored with pg_restore
(custom format) or psql (plain format) into a new database of the same cluster, brings back every
table that holds data or sync state (items and tombstones, the journal, the feed of tracked tables,
mutation ids, merge policies, tracked tables), and the restored database decides as the original
would: the Laptops story's stale write is still a conflict, a retried mutation is still answered
from the log, a delta still adds up, and a pull from the start hands out the same changes.

(A restore into a brand-new cluster, whose transaction ids start lower than the stored ones, is
not covered: the feed's positions are this cluster's transaction ids. docs/REFERENCE.md, Backups.)"""

import os
import subprocess
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from harness import DSN, connect, drop_databases, empty_database, fresh_database

PG_BIN = Path(os.environ.get("INVENTORY_SYNC_PG_BIN", "/usr/lib/postgresql/15/bin"))
SOURCE = "inventory_sync_backup_src"


def conninfo():
    """host and port of the test cluster, as the client programs take them."""
    parts = dict(p.split("=", 1) for p in DSN.split())
    return ["-h", parts["host"], "-p", parts["port"], "-U", parts.get("user", "postgres")]


def run(program, *args):
    return subprocess.run([str(PG_BIN / program), *conninfo(), *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def source():
    """A database with something in every table the extension keeps."""
    fresh_database(SOURCE)
    with connect(SOURCE) as c:
        c.execute("SET TimeZone = 'UTC'")
        # The Laptops story: created at 09:00 with 10, set to 15 at 10:05; A's 8 of 10:00 loses.
        c.execute("SELECT inventory_sync.sync_upsert(1, '{\"name\": \"Laptops\", \"stock\": 10}', '2024-03-01 09:00+00')")
        c.execute("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 15}', '2024-03-01 10:05+00')")
        c.execute("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 8}', '2024-03-01 10:00+00')")
        # A tombstone, and an item written with a mutation id.
        c.execute("SELECT inventory_sync.sync_upsert(2, '{\"name\": \"Mice\"}', '2024-03-01 09:00+00')")
        c.execute("SELECT inventory_sync.sync_delete(2, '2024-03-01 11:00+00', 'dev-a')")
        c.execute(
            "SELECT inventory_sync.sync_upsert(3, '{\"name\": \"Cables\", \"qty\": 10}', '2024-03-01 09:00+00', "
            "'dev-a', 'm-1')"
        )
        # A delta policy on the default table.
        c.execute("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'qty', 'delta')")
        # A tracked table with a row, a tombstone and a field policy.
        c.execute("CREATE SCHEMA shop")
        c.execute(
            "CREATE TABLE shop.products (id bigint PRIMARY KEY, name text NOT NULL, stock integer NOT NULL DEFAULT 0,"
            " updated_at timestamptz)"
        )
        c.execute("SELECT inventory_sync.track('shop.products')")
        c.execute("SELECT inventory_sync.set_policy('shop.products', 'stock', 'delta')")
        c.execute("SELECT inventory_sync.sync_upsert_in('shop.products', '7', '{\"name\": \"Desk\", \"stock\": 4}', '2024-03-01 09:00+00')")
        c.execute("SELECT inventory_sync.sync_upsert_in('shop.products', '8', '{\"name\": \"Lamp\"}', '2024-03-01 09:00+00')")
        c.execute("SELECT inventory_sync.sync_delete_in('shop.products', '8', '2024-03-01 12:00+00', 'dev-b')")
        c.execute("SELECT inventory_sync.sync_upsert_in('shop.products', '7', '{\"name\": \"Desk\"}', '2024-03-01 08:00+00')")
    yield SOURCE
    drop_databases(SOURCE)


def state(dbname):
    """Everything the extension keeps, as comparable values (no OIDs)."""
    with connect(dbname) as c:
        c.execute("SET TimeZone = 'UTC'")
        q = lambda sql: c.execute(sql).fetchall()  # noqa: E731
        return {
            "inventory": q(
                "SELECT id, data, updated_at, deleted, updated_by, field_clocks, change_xid::text"
                " FROM inventory_sync.inventory ORDER BY id"
            ),
            "conflicts": q(
                "SELECT row_id, conflict_id, table_name, reason, op, client_payload, client_ts, client_id,"
                " mutation_id, server_data, detected_at, db_user FROM inventory_sync.conflicts ORDER BY conflict_id"
            ),
            "changes": q(
                "SELECT tbl::text, row_id, id, op, ts, client_id, field_clocks, change_xid::text"
                " FROM inventory_sync.changes ORDER BY 1, 2"
            ),
            "mutations": q(
                "SELECT row_id, tbl::text, client_id, mutation_id, answer, db_user FROM inventory_sync.mutations"
                " ORDER BY 1, 2, 3, 4"
            ),
            "policies": q("SELECT table_name::text, field, policy FROM inventory_sync.policies ORDER BY 1, 2"),
            "tracked": q("SELECT table_name::text, key_column, ts_column FROM inventory_sync.tracked_tables ORDER BY 1"),
            "products": q("SELECT id, name, stock, updated_at FROM shop.products ORDER BY id"),
            "pull": sorted(
                (str(change) for change in c.execute("SELECT inventory_sync.sync_pull(NULL)").fetchone()[0]["changes"])
            ),
        }


def restore(fmt, target, dump_file):
    """The dump restored into database `target`, new."""
    empty_database(target)
    if fmt == "custom":
        run("pg_restore", "--exit-on-error", "-d", target, str(dump_file))
    else:
        run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target, "-f", str(dump_file))
    return target


@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_a_restored_database_keeps_every_table_and_decides_as_before(source, fmt, tmp_path):
    before = state(source)
    assert before["inventory"] and before["conflicts"] and before["changes"] and before["mutations"]
    assert before["policies"] and before["tracked"]
    dump_file = tmp_path / f"backup.{fmt}"
    run("pg_dump", "-F", "c" if fmt == "custom" else "p", "-f", str(dump_file), source)
    target = restore(fmt, f"inventory_sync_backup_{fmt}", dump_file)
    try:
        assert state(target) == before
        with connect(target) as c:
            c.execute("SET TimeZone = 'UTC'")
            one = lambda sql, *args: c.execute(sql, args).fetchone()[0]  # noqa: E731
            # Worker A's stale 8 is still a conflict, and journaled once more.
            stale = one("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 8}', '2024-03-01 10:00+00')")
            assert stale["status"] == "conflict", stale
            assert stale["server_data"]["stock"] == 15
            assert one("SELECT count(*) FROM inventory_sync.conflicts WHERE row_id = '1'") == 2
            # New journal rows do not collide with the restored ones.
            assert one("SELECT count(DISTINCT conflict_id) FROM inventory_sync.conflicts") == one(
                "SELECT count(*) FROM inventory_sync.conflicts"
            )
            # An older write to the tombstone still loses.
            assert one("SELECT inventory_sync.sync_upsert(2, '{\"name\": \"x\"}', '2024-03-01 10:00+00')")["status"] == "conflict"
            # The retried mutation is answered from the log, not applied again.
            again = one(
                "SELECT inventory_sync.sync_upsert(3, '{\"name\": \"Cables\", \"qty\": 10}', '2024-03-01 09:00+00', "
                "'dev-a', 'm-1')"
            )
            assert again.get("duplicate") is True, again
            # The policies still hold: deltas add up on both kinds of table.
            one(
                "SELECT inventory_sync.sync_upsert(3, %s, '2024-03-01 10:00+00', base => %s)",
                Jsonb({"qty": 7}),
                Jsonb({"qty": 10}),
            )
            assert one("SELECT (data->>'qty')::int FROM inventory_sync.inventory WHERE id = 3") == 7
            one(
                "SELECT inventory_sync.sync_upsert_in('shop.products', '7', %s, '2024-03-01 10:00+00', base => %s)",
                Jsonb({"stock": 6}),
                Jsonb({"stock": 4}),
            )
            assert one("SELECT stock FROM shop.products WHERE id = 7") == 6
            # The tracked table's tombstone still beats an older write.
            late = one("SELECT inventory_sync.sync_upsert_in('shop.products', '8', '{\"name\": \"x\"}', '2024-03-01 11:00+00')")
            assert late["status"] == "conflict" and late["server_data"]["deleted"] is True, late
    finally:
        drop_databases(target)
