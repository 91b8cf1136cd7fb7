"""Notifications of changes (`inventory_sync.notify`), heard by a real listening connection.

With the setting on, a transaction that changes a synced table notifies the channel
`inventory_sync` when it commits: once per table, with the table and the change's feed position,
never the row's data. Nothing is sent before the commit, for a rolled-back transaction, for a
write that changed nothing (a conflict), or with the setting off (the default)."""

import json

import dbs
import pytest
from harness import fresh_database
from psycopg.types.json import Jsonb

DB = "inventory_sync_notify"
TS = "2024-03-01 10:00:00+00"
SECRET = "do not broadcast"


def connect(**kw):
    return dbs.connect(DB, **kw)


@pytest.fixture(scope="module")
def database():
    fresh_database(DB)
    with connect() as conn:
        conn.execute("CREATE TABLE products (id bigint PRIMARY KEY, name text, updated_at timestamptz)")
        conn.execute("SELECT inventory_sync.track('products')")
    yield
    with dbs.connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


pytestmark = pytest.mark.usefixtures("database")


@pytest.fixture
def listener():
    with connect(autocommit=True) as conn:
        conn.execute("LISTEN inventory_sync")
        yield conn


def heard(listener, seconds=0.5):
    """The notifications the listener has received by now (waiting up to `seconds` for more)."""
    return [(n.channel, json.loads(n.payload)) for n in listener.notifies(timeout=seconds)]


def writes(conn, n):
    """Default item n and tracked row n, written; answers nothing."""
    conn.execute("SELECT inventory_sync.sync_upsert(%s, %s, %s)", (n, Jsonb({"name": SECRET}), TS))
    conn.execute("SELECT inventory_sync.sync_upsert_in('products', %s, %s, %s)", (str(n), Jsonb({"name": SECRET}), TS))


def test_a_committed_transaction_notifies_once_per_table_after_commit(listener):
    with connect() as writer:
        writer.execute("SET inventory_sync.notify = on")
        with writer.transaction():
            writes(writer, 1)
            writes(writer, 2)
            writer.execute(
                "SELECT inventory_sync.sync_push(%s)",
                (Jsonb([{"op": "delete", "id": 3, "client_ts": TS}, {"id": 4, "payload": {}, "client_ts": TS}]),),
            )
            assert heard(listener) == [], "notified before the commit"
        got = heard(listener)
        position = writer.execute("SELECT position FROM inventory_sync.inventory WHERE id = 1").fetchone()[0]
    assert sorted(got, key=lambda n: n[1]["table"]) == [
        ("inventory_sync", {"table": "inventory_sync.inventory", "position": str(position)}),
        ("inventory_sync", {"table": "public.products", "position": str(position)}),
    ]
    assert SECRET not in json.dumps(got)


def test_nothing_is_sent_for_a_rollback_a_conflict_or_with_the_setting_off(listener):
    with connect() as writer:
        writer.execute("SET inventory_sync.notify = on")
        with writer.transaction(force_rollback=True):
            writes(writer, 10)
        assert heard(listener) == [], "a rolled-back transaction notified"
        with writer.transaction():
            writes(writer, 11)
        assert len(heard(listener)) == 2
        # Older than what is stored: conflicts, nothing changed.
        with writer.transaction():
            writer.execute("SELECT inventory_sync.sync_upsert(11, '{}', '2000-01-01 00:00+00')")
            writer.execute("SELECT inventory_sync.sync_upsert_in('products', '11', '{}', '2000-01-01 00:00+00')")
        assert heard(listener) == [], "a conflict notified"
        writer.execute("RESET inventory_sync.notify")
        with writer.transaction():
            writes(writer, 12)
        assert heard(listener) == [], "notified with the setting off"
