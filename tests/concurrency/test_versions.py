"""Compare-and-set with real, separate connections.

Several writers send the same row a write with the same `base_version` at the same moment
(released together from a barrier inside the very statement that writes, tests/harness/barrier.py;
a test trigger that sleeps on every write widens the race window). Exactly one may apply; every
other must answer `conflict` with the winner's version and be journaled; the row holds the
winner's write. Rounds race on an existing row (base: its version) and on a new one (base '':
create only). The same harness runs against a version check made before the write (read the
version, then write without it, as a backend would do by hand) and must catch it."""

import random
import uuid
from datetime import datetime, timedelta, timezone

import dbs
import pytest
from harness import fresh_database
from harness.barrier import Barrier, slow_writes
from psycopg.types.json import Jsonb

DB = "inventory_sync_cas"
WRITERS = 4
ROUNDS = 120
BARRIER_KEY = 434343
BASE = datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)

# A version check made before the write: read the version, compare, then write unconditionally.
CHECK_THEN_WRITE = """
CREATE FUNCTION cas_test.check_then_write(p_id bigint, p_payload jsonb, p_ts timestamptz, p_base text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE current text;
BEGIN
    SELECT lpad(to_hex(version), 16, '0') INTO current FROM inventory_sync.inventory WHERE id = p_id;
    IF current IS DISTINCT FROM nullif(p_base, '') THEN
        RETURN jsonb_build_object('status', 'conflict', 'id', p_id, 'version', current);
    END IF;
    RETURN inventory_sync.sync_upsert(p_id, p_payload, p_ts);
END $$;
"""

TARGETS = {
    "default": dict(
        call="inventory_sync.sync_upsert(%s, %s, %s, base_version => %s)",
        table="inventory_sync.inventory",
        make_id=lambda rnd: rnd + 1,
        create="SELECT inventory_sync.sync_upsert(%s, %s, %s)",
        stored="SELECT (data->>'writer')::int FROM inventory_sync.inventory WHERE id = %s",
    ),
    "tracked": dict(
        call="inventory_sync.sync_upsert_in('cas_test.items', %s, %s, %s, base_version => %s)",
        table="cas_test.items",
        make_id=lambda rnd: str(uuid.UUID(int=rnd + 1)),
        create="SELECT inventory_sync.sync_upsert_in('cas_test.items', %s, %s, %s)",
        stored="SELECT writer FROM cas_test.items WHERE id = %s",
    ),
    "check-then-write": dict(
        call="cas_test.check_then_write(%s, %s, %s, %s)",
        table="inventory_sync.inventory",
        make_id=lambda rnd: rnd + 1,
        create="SELECT inventory_sync.sync_upsert(%s, %s, %s)",
        stored="SELECT (data->>'writer')::int FROM inventory_sync.inventory WHERE id = %s",
    ),
}


def connect(dbname=DB, **kw):
    return dbs.connect(dbname, **kw)


@pytest.fixture(scope="module")
def database():
    fresh_database(DB)
    with connect() as conn:
        conn.execute("CREATE SCHEMA cas_test")
        conn.execute(CHECK_THEN_WRITE)
        conn.execute(
            "CREATE TABLE cas_test.items (id uuid PRIMARY KEY, writer integer, updated_at timestamptz)"
        )
        conn.execute("SELECT inventory_sync.track('cas_test.items')")
        slow_writes(conn, "cas_test", ("inventory_sync.inventory", "cas_test.items"))
    yield
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


pytestmark = pytest.mark.usefixtures("database")


def race(target, rounds=ROUNDS, seed=1):
    """Run the rounds; answer (violations, stats)."""
    t = TARGETS[target]
    rng = random.Random(seed)
    violations = []
    stats = {"applied": 0, "conflict": 0, "errors": 0}
    with connect() as coordinator:
        coordinator.execute("TRUNCATE inventory_sync.inventory, inventory_sync.conflicts, cas_test.items")
        with Barrier(DB, BARRIER_KEY, WRITERS) as barrier:
            for rnd in range(rounds):
                row_id = t["make_id"](rnd)
                base = ""
                if rnd % 2:  # odd rounds: the row exists at a version; even rounds: create it
                    made = coordinator.execute(t["create"], (row_id, Jsonb({"writer": -1}), BASE)).fetchone()[0]
                    base = made["version"]
                # Every write is later than the row: by the clocks alone each of them would apply.
                stamps = [BASE + timedelta(milliseconds=o) for o in rng.sample(range(1, 1000), WRITERS)]
                writes = [
                    (f"SELECT {t['call']}", (row_id, Jsonb({"writer": i}), stamps[i], base)) for i in range(WRITERS)
                ]
                results = barrier.fire(coordinator, writes)
                violations += check_round(coordinator, t, rnd, row_id, results, stats)
    return violations, stats


def check_round(conn, t, rnd, row_id, results, stats):
    bad = []
    applied = []
    for i, (kind, answer, _) in enumerate(results):
        if kind == "error":
            stats["errors"] += 1
            bad.append(f"round {rnd}: writer {i} failed: {answer}")
            continue
        stats[answer["status"]] = stats.get(answer["status"], 0) + 1
        if answer["status"] == "applied":
            applied.append((i, answer["version"]))
        elif answer["status"] != "conflict":
            bad.append(f"round {rnd}: writer {i} answered {answer}")
    if len(applied) != 1:
        bad.append(f"round {rnd}: {len(applied)} writers applied: {results}")
        return bad
    winner, version = applied[0]
    for i, (kind, answer, _) in enumerate(results):
        if kind == "ok" and answer["status"] == "conflict" and answer.get("version") != version:
            bad.append(f"round {rnd}: writer {i}'s conflict shows {answer.get('version')}, the winner made {version}")
    stored = conn.execute(t["stored"], (row_id,)).fetchone()
    if stored is None or stored[0] != winner:
        bad.append(f"round {rnd}: stored {stored}, expected writer {winner}")
    journaled = conn.execute(
        "SELECT count(*) FROM inventory_sync.conflicts WHERE table_name = %s AND row_id = %s::text",
        (t["table"], row_id),
    ).fetchone()[0]
    conflicts = sum(1 for kind, answer, _ in results if kind == "ok" and answer["status"] == "conflict")
    if t["call"].startswith("inventory_sync") and journaled != conflicts:
        bad.append(f"round {rnd}: {journaled} journal rows for {conflicts} conflicts")
    return bad


@pytest.mark.parametrize("target", ["default", "tracked"])
def test_exactly_one_write_applies_at_a_version(target):
    violations, stats = race(target)
    print(f"\n{target}, {ROUNDS} rounds x {WRITERS} writers: {stats}, {len(violations)} violations")
    assert violations == []
    assert stats["applied"] == ROUNDS and stats["conflict"] == ROUNDS * (WRITERS - 1)


def test_harness_catches_a_version_check_before_the_write():
    violations, stats = race("check-then-write")
    print(f"\ncheck-then-write, {ROUNDS} rounds x {WRITERS} writers: {stats}, {len(violations)} violations")
    # Several writers pass the check before any of them wrote: more than one applies.
    assert any("writers applied" in v for v in violations), violations[:5]


@pytest.mark.parametrize("target", ["default", "tracked"])
def test_the_server_applies_every_write_in_arrival_order(target):
    """With the server ordering the table, writers released together with any client_ts (older
    than the row, a day ahead, none) all apply, one after another: each is stamped after the
    one before it, and the row holds the last one's write."""
    t = TARGETS[target]
    call = t["call"].replace(", base_version => %s", "")
    rng = random.Random(7)
    bad, stats = [], {"applied": 0}
    with connect() as coordinator:
        coordinator.execute("TRUNCATE inventory_sync.inventory, inventory_sync.conflicts, cas_test.items")
        coordinator.execute("SELECT inventory_sync.set_ordering(%s, 'server')", (t["table"],))
        try:
            with Barrier(DB, BARRIER_KEY, WRITERS) as barrier:
                for rnd in range(60):
                    row_id = t["make_id"](rnd)
                    if rnd % 2:
                        coordinator.execute(t["create"], (row_id, Jsonb({"writer": -1}), BASE))
                    stamps = [rng.choice([BASE - timedelta(days=400), BASE + timedelta(days=1), None])
                              for _ in range(WRITERS)]
                    results = barrier.fire(
                        coordinator,
                        [(f"SELECT {call}", (row_id, Jsonb({"writer": i}), stamps[i])) for i in range(WRITERS)],
                    )
                    answers = [answer for kind, answer, _ in results if kind == "ok" and answer["status"] == "applied"]
                    stats["applied"] += len(answers)
                    if len(answers) != WRITERS:
                        bad.append(f"round {rnd}: {results}")
                        continue
                    order = sorted(range(WRITERS), key=lambda i: answers[i]["updated_at"])
                    if len({a["updated_at"] for a in answers}) != WRITERS:
                        bad.append(f"round {rnd}: two writes stamped alike: {answers}")
                    stored = coordinator.execute(t["stored"], (row_id,)).fetchone()
                    if stored is None or stored[0] != order[-1]:
                        bad.append(f"round {rnd}: stored {stored}, the last stamped was writer {order[-1]}")
        finally:
            coordinator.execute("SELECT inventory_sync.set_ordering(%s, 'client_ts')", (t["table"],))
    print(f"\n{target}, server ordering, 60 rounds x {WRITERS} writers: {stats}, {len(bad)} violations")
    assert bad == []
