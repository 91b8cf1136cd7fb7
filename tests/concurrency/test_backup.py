"""Backups keep the data and the feed: pg_dump of a database that uses the extension, restored
with pg_restore (custom format) or psql (plain format), whole or `--data-only` into a database
whose schema the application made, into a new database of the same cluster or into a brand-new
cluster whose transaction ids start far below the positions stored. Every table that holds data
or sync state comes back (items and tombstones, the journal, the feed of tracked tables, mutation
ids, merge policies, tracked tables, eras), and the restored database decides as the original
would: the Laptops story's stale write is still a conflict, a retried mutation is still answered
from the log, a delta still adds up, a pull from the start hands out the same changes, devices
continue from cursors handed out before the dump and get every change written after the
restore, and a cursor from a history the restored database does not have (handed out by the
original after the dump) is refused with SQLSTATE 55000."""

import os
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from harness import client_args, connect, drop_databases, empty_database, fresh_database, pull_all
from harness.cluster import Cluster

PG_BIN = Path(os.environ.get("INVENTORY_SYNC_PG_BIN", "/usr/lib/postgresql/15/bin"))
SOURCE = "inventory_sync_backup_src"
# Transaction ids the source cluster uses up first, so that its stored positions lie far above
# the transaction ids of a brand-new cluster (which start below 1,000).
XIDS_USED_UP = 30_000


def run(program, *args, on=None):
    """A client program against the test cluster, or the Cluster `on`."""
    where = client_args(on.dsn if on else None)
    return subprocess.run([str(PG_BIN / program), *where, *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def source():
    """A database with something in every table the extension keeps, and two devices' cursors:
    one that pulled everything, one that pulled two changes."""
    fresh_database(SOURCE)
    with connect(SOURCE) as c:
        c.execute("SET TimeZone = 'UTC'")
        c.execute(
            "CREATE PROCEDURE use_up_xids(n int) LANGUAGE plpgsql AS $$ BEGIN "
            "FOR i IN 1..n LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$"
        )
        c.execute("CALL use_up_xids(%s)", (XIDS_USED_UP,))
        c.execute("DROP PROCEDURE use_up_xids")
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
        # Tables with a uuid and a text key (their feed records and mutation ids are kept apart):
        # a row written with a mutation id, and a tombstone.
        c.execute("CREATE TABLE shop.shelves (id uuid PRIMARY KEY, label text, updated_at timestamptz)")
        c.execute("CREATE TABLE shop.tags (code text PRIMARY KEY, label text, updated_at timestamptz)")
        for table, key in [("shop.shelves", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), ("shop.tags", "blue")]:
            c.execute("SELECT inventory_sync.track(%s)", (table,))
            c.execute("SELECT inventory_sync.sync_upsert_in(%s, %s, '{\"label\": \"x\"}', '2024-03-01 09:00+00',"
                      " 'dev-c', %s)", (table, key, "m-" + key))
        c.execute("SELECT inventory_sync.sync_delete_in('shop.tags', 'blue', '2024-03-01 10:00+00')")
        everything, all_cursor = pull_all(c)
        assert len(everything) == 7, everything
        part = c.execute("SELECT inventory_sync.sync_pull(NULL, 2)").fetchone()[0]
        assert part["has_more"]
        rest, _ = pull_all(c, part["cursor"])
        assert len(rest) == 5
        assert min(c.execute("SELECT position FROM inventory_sync.inventory").fetchall())[0] > XIDS_USED_UP
    yield {"db": SOURCE, "all": all_cursor, "part": part["cursor"], "rest": rest}
    drop_databases(SOURCE)


# The parts of the feed and of the mutation log: a uuid or text table's are tables of their own.
SIDES = ("", "_uuid", "_text")


def state(c):
    """Everything the extension keeps, as comparable values (no OIDs)."""
    c.execute("SET TimeZone = 'UTC'")
    q = lambda sql: c.execute(sql).fetchall()  # noqa: E731
    return {
        "inventory": q(
            "SELECT id, data, updated_at, deleted, updated_by, field_clocks, position"
            " FROM inventory_sync.inventory ORDER BY id"
        ),
        "conflicts": q(
            "SELECT row_id, conflict_id, table_name, reason, op, client_payload, client_ts, client_id,"
            " mutation_id, server_data, detected_at, db_user FROM inventory_sync.conflicts ORDER BY conflict_id"
        ),
        "changes": q(
            "SELECT inventory_sync.table_of(table_id)::text, table_id, row_id, id, op, ts, client_id, field_clocks,"
            " position FROM (" + " UNION ALL ".join(
                f"SELECT table_id, row_id, id, op, ts, client_id, field_clocks, position FROM inventory_sync.changes{side}"
                for side in SIDES) + ") c ORDER BY 1, 3"
        ),
        "mutations": q(
            "SELECT row_id, inventory_sync.table_of(table_id)::text, client_id, mutation_id, answer, db_user"
            " FROM (" + " UNION ALL ".join(
                f"SELECT row_id, table_id, client_id, mutation_id, answer, db_user FROM inventory_sync.mutations{side}"
                for side in SIDES) + ") m"
            " ORDER BY 1, 2, 3, 4"
        ),
        "policies": q("SELECT table_name::text, field, policy FROM inventory_sync.policies ORDER BY 1, 2"),
        "tracked": q(
            "SELECT table_name::text, key_column, ts_column, table_id FROM inventory_sync.tracked_tables ORDER BY 1"
        ),
        "eras": q(
            "SELECT DISTINCT era, system_identifier, database_oid::text, previous_end FROM inventory_sync.eras ORDER BY 1"
        ),
        "products": q("SELECT id, name, stock, updated_at FROM shop.products ORDER BY id"),
        "pull": pull_all(c)[0],
    }


def decides_as_before(c, source):
    """The restored database's decisions, journal, replays, policies and feed, as the original's."""
    c.execute("SET TimeZone = 'UTC'")
    one = lambda sql, *args: c.execute(sql, args).fetchone()[0]  # noqa: E731
    # Devices continue from the cursors handed out before the dump: the one that pulled two
    # changes gets the other five, the one that pulled everything gets nothing.
    assert pull_all(c, source["part"])[0] == source["rest"]
    assert pull_all(c, source["all"])[0] == []
    positions_before = one("SELECT max(position) FROM inventory_sync.inventory")
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
    # The writes since the restore lie above every position stored before, and the device that
    # had pulled everything gets exactly them: the item and the product the deltas changed.
    assert one("SELECT min(position) FROM inventory_sync.inventory WHERE id = 3") > positions_before
    new = pull_all(c, source["all"])[0]
    assert sorted((ch["table"], str(ch["id"])) for ch in new) == [("inventory_sync.inventory", "3"), ("shop.products", "7")]


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
    with connect(source["db"]) as c:
        before = state(c)
    assert before["inventory"] and before["conflicts"] and before["changes"] and before["mutations"]
    assert before["policies"] and before["tracked"] and before["eras"]
    dump_file = tmp_path / f"backup.{fmt}"
    run("pg_dump", "-F", "c" if fmt == "custom" else "p", "-f", str(dump_file), source["db"])
    target = restore(fmt, f"inventory_sync_backup_{fmt}", dump_file)
    try:
        with connect(target) as c:
            assert state(c) == before
            decides_as_before(c, source)
            # Another database is another history: the first write started an era of its own.
            eras = c.execute("SELECT DISTINCT era, database_oid FROM inventory_sync.eras ORDER BY 1").fetchall()
            assert len(eras) == len(before["eras"]) + 1, eras
            assert eras[-1][1] == c.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
    finally:
        drop_databases(target)


@pytest.fixture(scope="module")
def new_cluster():
    """A brand-new cluster of the same major: its transaction ids start below 1,000."""
    cluster = Cluster("backup-target", 54340)
    cluster.create()
    yield cluster
    cluster.remove()


def test_a_brand_new_cluster_takes_the_backup_whole_or_data_only(source, new_cluster, tmp_path):
    with connect(source["db"]) as c:
        before = state(c)
    whole, data_only = tmp_path / "whole.dump", tmp_path / "data.dump"
    run("pg_dump", "-F", "c", "-f", str(whole), source["db"])
    run("pg_dump", "-F", "c", "--data-only", "-f", str(data_only), source["db"])
    # The original goes on after the dump, and a device pulls from it there.
    with connect(source["db"]) as c:
        c.execute("SELECT inventory_sync.sync_upsert(9, '{\"name\": \"after the dump\"}', '2024-03-02 09:00+00')")
        after_dump = pull_all(c, source["all"])
        assert [ch["id"] for ch in after_dump[0]] == [9]
    for name in ("restored_whole", "restored_data"):
        with new_cluster.connect("postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            admin.execute(f"CREATE DATABASE {name}")
    run("pg_restore", "--exit-on-error", "-d", "restored_whole", str(whole), on=new_cluster)
    # --data-only: into a database where the application's migrations made the schema.
    with new_cluster.connect("restored_data") as c:
        c.execute("CREATE EXTENSION inventory_sync")
        c.execute("CREATE SCHEMA shop")
        c.execute(
            "CREATE TABLE shop.products (id bigint PRIMARY KEY, name text NOT NULL, stock integer NOT NULL DEFAULT 0,"
            " updated_at timestamptz)"
        )
        c.execute("CREATE TABLE shop.shelves (id uuid PRIMARY KEY, label text, updated_at timestamptz)")
        c.execute("CREATE TABLE shop.tags (code text PRIMARY KEY, label text, updated_at timestamptz)")
    run("pg_restore", "--exit-on-error", "--data-only", "-d", "restored_data", str(data_only), on=new_cluster)
    for name in ("restored_whole", "restored_data"):
        with new_cluster.connect(name) as c:
            next_xid = int(c.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
            assert next_xid < min(row[-1] for row in before["inventory"]), "the new cluster's ids are not lower"
            assert state(c) == before, name
            decides_as_before(c, source)
            # This cluster writes in an era of its own, above everything restored.
            eras = c.execute(
                "SELECT DISTINCT era, system_identifier, previous_end FROM inventory_sync.eras ORDER BY era"
            ).fetchall()
            system = c.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
            assert [e[0] for e in eras] == [1, 2] and eras[1][1] == system and eras[0][1] != system, eras
            # It began where the restored history ended.
            stored = [row[-1] for row in before["inventory"]] + [row[-1] for row in before["changes"]]
            assert eras[1][2] == max(stored), (eras, stored)
            # The original's cursor from after the dump names changes this database never had.
            with pytest.raises(psycopg.Error) as refused:
                c.execute("SELECT inventory_sync.sync_pull(%s)", (after_dump[1],))
            assert refused.value.sqlstate == "55000", refused.value
            assert "history this database does not have" in str(refused.value)


def test_no_change_is_skipped_while_a_restored_database_starts_its_era(source, new_cluster, tmp_path):
    """The first writes after a restore into another cluster start the next era, each recording
    it on its own (no writer waits for another). A device pulling meanwhile must not skip a
    change of a transaction still open: writer A starts the era and stays open; writer B, which
    started later, records the era again and commits; a pull then hands out neither (A's id is
    below B's and A may still commit); once A commits, the next pull hands out both."""
    dump = tmp_path / "race.dump"
    run("pg_dump", "-F", "c", "-f", str(dump), source["db"])
    with new_cluster.connect("postgres") as admin:
        admin.execute("DROP DATABASE IF EXISTS restored_race")
        admin.execute("CREATE DATABASE restored_race")
    run("pg_restore", "--exit-on-error", "-d", "restored_race", str(dump), on=new_cluster)
    with new_cluster.connect("restored_race") as device, \
            new_cluster.connect("restored_race", autocommit=False) as a, \
            new_cluster.connect("restored_race") as b:
        _, cursor = pull_all(device, source["all"])      # everything restored
        a.execute("SELECT inventory_sync.sync_upsert(100, '{\"by\": \"a\"}', '2024-03-02 09:00+00')")
        pulled, cursor = pull_all(device, cursor)
        assert pulled == [], "a change of an open transaction was handed out"
        b.execute("SELECT inventory_sync.sync_upsert(101, '{\"by\": \"b\"}', '2024-03-02 09:00+00')")
        eras = b.execute("SELECT era, count(*) FROM inventory_sync.eras GROUP BY era ORDER BY era").fetchall()
        assert eras == [(1, 1), (2, 1)], eras      # A's record is not committed yet
        pulled, cursor = pull_all(device, cursor)
        assert pulled == [], "B's change was handed out while A, below it, was still open"
        a.commit()
        pulled, cursor = pull_all(device, cursor)
        assert sorted(ch["id"] for ch in pulled) == [100, 101]
        eras = b.execute("SELECT era, count(*) FROM inventory_sync.eras GROUP BY era ORDER BY era").fetchall()
        assert eras == [(1, 1), (2, 2)], eras      # both recorded era 2: the same era
