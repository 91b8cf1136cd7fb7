"""Merge policies with real, separate connections writing at the same moment: deltas add up
(and a retried delta counts once), field_lww keeps the newest write of each field, and
server_wins keeps the earliest, whatever the interleaving."""

import random
import threading
import uuid
from datetime import datetime, timedelta, timezone

import dbs
import psycopg
import pytest
from psycopg.types.json import Jsonb

DB = "inventory_sync_merge"
BASE = datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)
DEVICES = 6


def connect(dbname=DB):
    return dbs.connect(dbname)


@pytest.fixture(scope="module", autouse=True)
def database():
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
    with connect() as conn:
        conn.execute("CREATE EXTENSION inventory_sync")
        conn.execute(
            "CREATE TABLE items (id uuid PRIMARY KEY, stock integer NOT NULL DEFAULT 0, "
            "price numeric(10,2), name text, sku text, updated_at timestamptz NOT NULL)"
        )
        conn.execute("SELECT inventory_sync.track('items')")
        for field, policy in [("stock", "delta"), ("price", "field_lww"), ("name", "field_lww"), ("sku", "server_wins")]:
            conn.execute("SELECT inventory_sync.set_policy('items', %s, %s)", (field, policy))
            conn.execute("SELECT inventory_sync.set_policy('inventory_sync.inventory', %s, %s)", (field, policy))
    yield
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def run_devices(work):
    """Run work(device, conn) on DEVICES connections at once; return their failures."""
    barrier, failures = threading.Barrier(DEVICES), []

    def run(device):
        try:
            with connect() as conn:
                barrier.wait()
                work(device, conn)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            failures.append(repr(e))

    threads = [threading.Thread(target=run, args=(d,)) for d in range(DEVICES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def upsert(conn, tracked, key, payload, ts, client_id, mutation_id=None, base=None):
    if tracked:
        sql = "SELECT inventory_sync.sync_upsert_in('items', %s, %s, %s, %s, %s, %s)"
    else:
        sql = "SELECT inventory_sync.sync_upsert(%s, %s, %s, %s, %s, %s)"
    args = (key, Jsonb(payload), ts, client_id, mutation_id, Jsonb(base) if base is not None else None)
    return conn.execute(sql, args).fetchone()[0]


def stored(conn, tracked, key, field):
    if tracked:
        value = conn.execute(f"SELECT {field} FROM items WHERE id = %s", (key,)).fetchone()[0]
        return float(value) if field == "price" and value is not None else value
    value = conn.execute("SELECT data->%s FROM inventory_sync.inventory WHERE id = %s", (field, key)).fetchone()[0]
    return float(value) if field == "price" and value is not None else value


@pytest.mark.parametrize("tracked", [False, True], ids=["default table", "tracked table"])
def test_concurrent_deltas_add_up_and_retries_count_once(tracked):
    key = str(uuid.uuid4()) if tracked else 1001
    rounds = 40
    with connect() as conn:
        upsert(conn, tracked, key, {"stock": 100, "name": "start"}, BASE, "setup")
    moves = {}

    def work(device, conn):
        rng = random.Random(device)
        moves[device] = []
        for r in range(rounds):
            move = rng.randint(-5, 5)
            ts = BASE + timedelta(seconds=rng.randint(-600, 600))
            # The device saw some value (it does not matter which) and moved it by `move`.
            seen = rng.randint(0, 200)
            for _ in range(2):  # the first answer is "lost": the device sends it again
                answer = upsert(conn, tracked, key, {"stock": seen + move}, ts, f"device-{device}",
                                f"m{r}", {"stock": seen})
                assert answer["status"] == "applied", answer
            moves[device].append(move)

    assert run_devices(work) == []
    with connect() as conn:
        total = stored(conn, tracked, key, "stock")
    expected = 100 + sum(sum(m) for m in moves.values())
    print(f"\n{DEVICES} devices x {rounds} deltas (each sent twice): stock {total}, expected {expected}")
    assert total == expected


def beats(a, b):
    """The merge rules' clock order: (ts, client_id)."""
    return a[0] > b[0] or (a[0] == b[0] and a[1] >= b[1])


@pytest.mark.parametrize("tracked", [False, True], ids=["default table", "tracked table"])
def test_concurrent_field_edits_keep_the_newest_of_each_field_and_the_first_sku(tracked):
    for rnd in range(10):
        key = str(uuid.uuid4()) if tracked else 2000 + rnd
        rng = random.Random(rnd)
        plans = {}
        for device in range(DEVICES):
            edits = []
            for _ in range(4):
                field = rng.choice(["price", "name", "sku"])
                value = {"price": round(rng.uniform(1, 100), 2), "name": f"n{rng.randint(0, 99)}",
                         "sku": f"S-{device}"}[field]
                edits.append((field, value, rng.randint(0, 5)))  # few timestamps: many ties
            plans[device] = edits

        def work(device, conn):
            for field, value, second in plans[device]:
                upsert(conn, tracked, key, {field: value}, BASE + timedelta(seconds=second), f"device-{device}")

        assert run_devices(work) == []
        writes = [(f, v, (s, f"device-{d}")) for d, edits in plans.items() for f, v, s in edits]
        with connect() as conn:
            for field in ("price", "name"):
                candidates = [(v, c) for f, v, c in writes if f == field]
                if not candidates:
                    continue
                newest = max(candidates, key=lambda vc: vc[1])
                assert stored(conn, tracked, key, field) == newest[0], f"round {rnd}: {field}"
            skus = [(v, c) for f, v, c in writes if f == "sku"]
            if skus:
                first = min(skus, key=lambda vc: vc[1])
                assert stored(conn, tracked, key, "sku") == first[0], f"round {rnd}: sku"
