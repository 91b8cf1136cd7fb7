"""Races with real, separate connections.

Several writers hit the same id at the same moment with different client_ts, round after round.
Whatever the interleaving, the write with the newest client_ts must end up stored, and every
conflict answer must have its journal row.

The writers wait at a barrier (an advisory lock held by the coordinator) inside the very statement
that writes, so they are released together (tests/harness/barrier.py); a test trigger that sleeps
a few milliseconds on every write widens each race window. The same harness runs against a
check-then-write variant (the seed's controller, as a PL/pgSQL function) and must catch it: that
proves the harness has teeth.
"""

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import dbs
import pytest
from harness import fresh_database
from harness.barrier import Barrier, slow_writes
from psycopg.types.json import Jsonb

DB = "inventory_sync_races"
WRITERS = 4
ROUNDS = 200
BARRIER_KEY = 424242
BASE = datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)

# The seed's controller: read the timestamp, decide, then write. Racy by construction.
CHECK_THEN_WRITE = """
CREATE FUNCTION race_test.check_then_write(p_id bigint, p_payload jsonb, p_ts timestamptz)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE stored timestamptz; srv jsonb;
BEGIN
    SELECT updated_at INTO stored FROM inventory_sync.inventory WHERE id = p_id;
    IF NOT FOUND THEN
        INSERT INTO inventory_sync.inventory (id, data, updated_at) VALUES (p_id, p_payload, p_ts);
        RETURN jsonb_build_object('status', 'applied', 'id', p_id, 'created', true);
    ELSIF stored > p_ts THEN
        SELECT data || jsonb_build_object('id', id, 'updated_at', updated_at) INTO srv
          FROM inventory_sync.inventory WHERE id = p_id;
        INSERT INTO inventory_sync.conflicts (row_id, table_name, reason, client_payload, client_ts, server_data, shard_key)
        VALUES (p_id::text, 'inventory_sync.inventory', 'stale', p_payload, p_ts, srv, p_id);
        RETURN jsonb_build_object('status', 'conflict', 'id', p_id, 'server_data', srv);
    END IF;
    UPDATE inventory_sync.inventory SET data = data || p_payload, updated_at = p_ts WHERE id = p_id;
    RETURN jsonb_build_object('status', 'applied', 'id', p_id, 'created', false);
END $$;
"""


@dataclass
class Target:
    """Where the writers write: the call, how ids look, how to read the stored row back."""

    call: str  # SQL taking (id, payload, client_ts)
    table: str
    make_id: callable
    seed_sql: str  # inserts (id, writer, updated_at) as an existing row
    stored_sql: str  # (writer, updated_at) of the row with id %s


DEFAULT = Target(
    call="inventory_sync.sync_upsert(%s, %s, %s)",
    table="inventory_sync.inventory",
    make_id=lambda rnd: rnd + 1,
    seed_sql="INSERT INTO inventory_sync.inventory (id, data, updated_at) "
    "VALUES (%s, jsonb_build_object('writer', %s), %s)",
    stored_sql="SELECT (data->>'writer')::int, updated_at FROM inventory_sync.inventory WHERE id = %s",
)

TRACKED = Target(
    call="inventory_sync.sync_upsert_in('race_test.products', %s, %s, %s)",
    table="race_test.products",
    make_id=lambda rnd: str(uuid.UUID(int=rnd + 1)),
    seed_sql="INSERT INTO race_test.products (id, writer, updated_at) VALUES (%s, %s, %s)",
    stored_sql="SELECT writer, updated_at FROM race_test.products WHERE id = %s",
)

CHECK_THEN_WRITE_TARGET = Target(
    call="race_test.check_then_write(%s, %s, %s)",
    table=DEFAULT.table,
    make_id=DEFAULT.make_id,
    seed_sql=DEFAULT.seed_sql,
    stored_sql=DEFAULT.stored_sql,
)


def connect(dbname=DB, **kw):
    return dbs.connect(dbname, **kw)


@pytest.fixture(scope="module")
def database():
    fresh_database(DB)
    with connect() as conn:
        conn.execute("CREATE SCHEMA race_test")
        conn.execute(CHECK_THEN_WRITE)
        conn.execute(
            """CREATE TABLE race_test.products (
                   id uuid PRIMARY KEY, writer integer NOT NULL, stock integer,
                   updated_at timestamptz NOT NULL)"""
        )
        conn.execute("SELECT inventory_sync.track('race_test.products')")
        slow_writes(conn, "race_test", ("inventory_sync.inventory", "race_test.products"))
    yield
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


pytestmark = pytest.mark.usefixtures("database")


def reset(conn):
    conn.execute("TRUNCATE inventory_sync.inventory, inventory_sync.conflicts, race_test.products")


def race(target, rounds=ROUNDS, isolation=None, seed=1):
    """Run the rounds; return (violations, stats)."""
    rng = random.Random(seed)
    settings = {"default_transaction_isolation": isolation} if isolation else {}
    violations = []
    stats = {"applied": 0, "conflict": 0, "errors": 0, "retries": 0, "older_won": 0}
    with connect() as coordinator:
        reset(coordinator)
        with Barrier(DB, BARRIER_KEY, WRITERS, settings) as barrier:
            for rnd in range(rounds):
                row_id = target.make_id(rnd)
                if rnd % 2:  # odd rounds race on an existing row, even rounds race to insert it
                    coordinator.execute(target.seed_sql, (row_id, -1, BASE - timedelta(days=1)))
                offsets = rng.sample(range(1, 1000), WRITERS)
                stamps = [BASE + timedelta(milliseconds=o) for o in offsets]
                writes = [(f"SELECT {target.call}", (row_id, Jsonb({"writer": i, "stock": offsets[i]}), stamps[i]))
                          for i in range(WRITERS)]
                results = barrier.fire(coordinator, writes)
                violations += check_round(coordinator, target, rnd, row_id, stamps, results, stats)
    return violations, stats


def check_round(conn, target, rnd, row_id, stamps, results, stats):
    bad = []
    newest = max(range(WRITERS), key=lambda i: stamps[i])
    conflicts = []
    for i, (kind, answer, retries) in enumerate(results):
        stats["retries"] += retries
        if kind == "error":
            stats["errors"] += 1
            bad.append(f"round {rnd}: writer {i} failed: {answer}")
            continue
        stats[answer["status"]] = stats.get(answer["status"], 0) + 1
        if answer["status"] == "conflict":
            conflicts.append(i)
            # The row that beat this write is newer than it: the conflict path read the row
            # version the decision was made against, not an older snapshot.
            won_at = datetime.fromisoformat(answer["server_data"]["updated_at"])
            if not won_at > stamps[i]:
                bad.append(f"round {rnd}: writer {i} lost to {answer['server_data']}")
        elif answer["status"] != "applied":
            bad.append(f"round {rnd}: writer {i} answered {answer}")
    if newest in conflicts:
        bad.append(f"round {rnd}: the newest write (writer {newest}) got a conflict")
    stored = conn.execute(target.stored_sql, (row_id,)).fetchone()
    if stored is None or stored[1] != stamps[newest] or stored[0] != newest:
        stats["older_won"] += 1
        bad.append(
            f"round {rnd}: stored {stored}, expected writer {newest} at {stamps[newest].isoformat()}"
        )
    journal = conn.execute(
        "SELECT client_ts, client_payload->>'writer' FROM inventory_sync.conflicts "
        "WHERE table_name = %s AND row_id = %s::text AND reason = 'stale' ORDER BY client_ts",
        (target.table, row_id),
    ).fetchall()
    expected = sorted((stamps[i], str(i)) for i in conflicts)
    if journal != expected:
        bad.append(f"round {rnd}: journal {journal} != conflict answers {expected}")
    return bad


def test_sync_upsert_never_lets_an_older_write_win():
    violations, stats = race(DEFAULT)
    print(f"\nsync_upsert, {ROUNDS} rounds x {WRITERS} writers: {stats}, {len(violations)} violations")
    assert violations == []
    # Both outcomes really happened: the rounds raced.
    assert stats["conflict"] > 0 and stats["applied"] > 0


def test_harness_catches_check_then_write():
    violations, stats = race(CHECK_THEN_WRITE_TARGET)
    print(
        f"\ncheck-then-write, {ROUNDS} rounds x {WRITERS} writers: {stats}, "
        f"{len(violations)} violations, e.g. {violations[-1:]}"
    )
    # A harness that cannot catch the seed's racy controller proves nothing about ours: it must
    # see an older write stored over a newer one, not only the failed concurrent inserts.
    assert stats["older_won"] >= ROUNDS // 10
    assert len(violations) >= ROUNDS // 4


def test_repeatable_read_surfaces_serialization_failures():
    violations, stats = race(DEFAULT, isolation="repeatable read", seed=2)
    print(f"\nsync_upsert at REPEATABLE READ with retries on 40001: {stats}, {len(violations)} violations")
    assert violations == []
    assert stats["retries"] > 0, "no concurrent change surfaced as SQLSTATE 40001"


def test_sync_upsert_in_never_lets_an_older_write_win():
    violations, stats = race(TRACKED, seed=3)
    print(f"\nsync_upsert_in, {ROUNDS} rounds x {WRITERS} writers: {stats}, {len(violations)} violations")
    assert violations == []
    assert stats["conflict"] > 0 and stats["applied"] > 0


def test_sync_upsert_in_at_repeatable_read():
    violations, stats = race(TRACKED, isolation="repeatable read", seed=4)
    print(f"\nsync_upsert_in at REPEATABLE READ with retries on 40001: {stats}, {len(violations)} violations")
    assert violations == []
    assert stats["retries"] > 0, "no concurrent change surfaced as SQLSTATE 40001"


def test_sync_upsert_in_and_sync_delete_in_racing_end_in_the_newest_write():
    """Upserts and deletes of one tracked row at the same moment, on an existing row and on a
    missing one: the newest write decides the row and its change record (the feed's and the
    tombstone's op and timestamp), every other write is applied before it or answered with a
    conflict, and each conflict is journaled once. An upsert that finds the row older writes it
    without the per-row advisory lock, so this is where a write path that orders the row and its
    record differently from each other would show."""
    rng = random.Random(5)
    bad, stats = [], {"applied": 0, "conflict": 0, "deleted": 0, "revived": 0}
    with connect() as coordinator:
        reset(coordinator)
        with Barrier(DB, BARRIER_KEY, WRITERS) as barrier:
            for rnd in range(ROUNDS):
                row_id = str(uuid.UUID(int=10_000 + rnd))
                if rnd % 2:
                    coordinator.execute(TRACKED.seed_sql, (row_id, -1, BASE - timedelta(days=1)))
                offsets = rng.sample(range(1, 1000), WRITERS)
                stamps = [BASE + timedelta(milliseconds=o) for o in offsets]
                deletes = [rng.random() < 0.4 for _ in range(WRITERS)]
                writes = [
                    ("SELECT inventory_sync.sync_delete_in('race_test.products', %s, %s)", (row_id, stamps[i]))
                    if deletes[i]
                    else (f"SELECT {TRACKED.call}", (row_id, Jsonb({"writer": i, "stock": offsets[i]}), stamps[i]))
                    for i in range(WRITERS)
                ]
                results = barrier.fire(coordinator, writes)
                newest = max(range(WRITERS), key=lambda i: stamps[i])
                conflicts = 0
                for i, (kind, answer, _) in enumerate(results):
                    if kind == "error":
                        bad.append(f"round {rnd}: writer {i} failed: {answer}")
                    elif answer["status"] == "conflict":
                        conflicts += 1
                        if i == newest:
                            bad.append(f"round {rnd}: the newest write (writer {i}) got a conflict")
                    elif answer["status"] != "applied":
                        bad.append(f"round {rnd}: writer {i} answered {answer}")
                    else:
                        stats["applied"] += 1
                stats["conflict"] += conflicts
                row = coordinator.execute(TRACKED.stored_sql, (row_id,)).fetchone()
                record = coordinator.execute(
                    "SELECT op, ts FROM inventory_sync.changes_uuid WHERE row_id = %s", (row_id,)
                ).fetchone()
                if deletes[newest]:
                    stats["deleted"] += 1
                    if row is not None or record != ("delete", stamps[newest]):
                        bad.append(f"round {rnd}: the newest write deleted, but row {row}, record {record}")
                else:
                    stats["revived"] += any(deletes[i] and stamps[i] < stamps[newest] for i in range(WRITERS))
                    if row != (newest, stamps[newest]) or record != ("upsert", stamps[newest]):
                        bad.append(f"round {rnd}: expected writer {newest}'s upsert, row {row}, record {record}")
                journaled = coordinator.execute(
                    "SELECT count(*) FROM inventory_sync.conflicts WHERE table_name = %s AND row_id = %s",
                    (TRACKED.table, row_id),
                ).fetchone()[0]
                if journaled != conflicts:
                    bad.append(f"round {rnd}: {journaled} journal rows for {conflicts} conflicts")
    print(f"\nsync_upsert_in and sync_delete_in, {ROUNDS} rounds x {WRITERS} writers: {stats}, {len(bad)} violations")
    assert bad == []
    assert stats["conflict"] > 0 and stats["deleted"] > 0 and stats["revived"] > 0
