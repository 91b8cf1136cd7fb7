"""The sync protocol with real, separate connections: the pull feed never skips a change (even
one committed after an earlier pull handed out its cursor), overlapping batches from two
devices end in the last-write-wins state, a batch of 100,000 changes runs in bounded memory,
and pulls run on a streaming replica."""

import json
import random
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import dbs
import psycopg
import pytest
from psycopg.types.json import Jsonb

from harness import pull_all

DB = "inventory_sync_protocol"
BASE = datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)
PRODUCTS = "proto.products"


def connect(dsn=dbs.DSN, dbname=DB, **kw):
    return dbs.connect(dbname, dsn, **kw)


@pytest.fixture(scope="module", autouse=True)
def database():
    with connect(dbname="postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
    with connect() as conn:
        conn.execute("CREATE EXTENSION inventory_sync")
        conn.execute("CREATE SCHEMA proto")
        conn.execute(
            f"""CREATE TABLE {PRODUCTS} (id uuid PRIMARY KEY, name text NOT NULL, stock integer,
                updated_at timestamptz NOT NULL)"""
        )
        conn.execute(f"SELECT inventory_sync.track('{PRODUCTS}')")
    yield
    with connect(dbname="postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


@pytest.fixture(autouse=True)
def empty_tables():
    with connect() as conn:
        conn.execute(
            f"TRUNCATE inventory_sync.inventory, inventory_sync.changes, inventory_sync.changes_uuid, "
            f"inventory_sync.changes_text, inventory_sync.conflicts, inventory_sync.mutations, "
            f"inventory_sync.mutations_uuid, inventory_sync.mutations_text, inventory_sync.purge_horizon, {PRODUCTS}"
        )


def keys(changes):
    return {(c["table"], str(c["id"])) for c in changes}


def test_a_change_committed_after_a_pull_is_not_skipped():
    """A transaction that is still open while a pull hands out its cursor, and commits
    afterwards, must show up in the next pull, although later transactions committed first."""
    with connect() as setup, connect() as slow, connect() as fast, connect() as device:
        _, cursor = pull_all(device, lim=1000)
        slow.autocommit = False
        slow.execute("SELECT inventory_sync.sync_upsert(1, '{\"by\": \"slow\"}', %s)", (BASE,))
        slow.execute(
            "SELECT inventory_sync.sync_upsert_in(%s, %s, '{\"name\": \"slow\"}', %s)",
            (PRODUCTS, str(uuid.UUID(int=1)), BASE),
        )
        # A later transaction commits first.
        fast.execute("SELECT inventory_sync.sync_upsert(2, '{\"by\": \"fast\"}', %s)", (BASE,))
        fast.execute(
            "SELECT inventory_sync.sync_upsert_in(%s, %s, '{\"name\": \"fast\"}', %s)",
            (PRODUCTS, str(uuid.UUID(int=2)), BASE),
        )
        first, cursor = pull_all(device, cursor, lim=1000)
        # Neither is handed out yet: the fast one sits above the still-open slow one.
        assert first == []
        slow.commit()
        second, cursor = pull_all(device, cursor, lim=1000)
        assert keys(second) == {
            ("inventory_sync.inventory", "1"),
            ("inventory_sync.inventory", "2"),
            ("proto.products", str(uuid.UUID(int=1))),
            ("proto.products", str(uuid.UUID(int=2))),
        }
        third, _ = pull_all(device, cursor, lim=1000)
        assert third == []
        setup.execute("SELECT 1")


def database_state(conn):
    """Every key's current state: ('upsert', data) or ('delete', None)."""
    state = {}
    for id_, data, deleted in conn.execute("SELECT id, data, deleted FROM inventory_sync.inventory"):
        state[("inventory_sync.inventory", str(id_))] = ("delete", None) if deleted else ("upsert", data)
    for id_, name, stock in conn.execute(f"SELECT id, name, stock FROM {PRODUCTS}"):
        state[("proto.products", str(id_))] = ("upsert", {"name": name, "stock": stock})
    for row_id, in conn.execute("SELECT row_id FROM inventory_sync.changes_uuid WHERE op = 'delete'"):
        state[("proto.products", row_id)] = ("delete", None)
    return state


def apply_pulled(replica, changes):
    for c in changes:
        key = (c["table"], str(c["id"]))
        if c["op"] == "delete":
            replica[key] = ("delete", None)
        elif c["table"] == "inventory_sync.inventory":
            replica[key] = ("upsert", c["data"])
        else:
            replica[key] = ("upsert", {"name": c["data"]["name"], "stock": c["data"]["stock"]})


def test_a_device_pulling_during_heavy_writes_ends_with_the_servers_state():
    """Writers commit (and roll back) transactions of random length, out of order, while a
    device pulls in small pages. Once writing stops and the device has pulled to the end, its
    copy must equal the server's state, key by key: a skipped change would leave it stale."""
    writers, transactions, ids = 4, 60, 12
    stop = threading.Event()
    replica, pulls, failures, deadlocks = {}, [], [], []

    def write(n):
        try:
            write_transactions(n)
        except Exception as e:  # noqa: BLE001 - reported and failed below
            failures.append(repr(e))

    def write_transactions(n):
        rng = random.Random(n)
        with connect() as conn:
            for t in range(transactions):
                try:
                    write_one_transaction(conn, rng, n, t)
                except psycopg.errors.DeadlockDetected:
                    # Transactions that write several rows in random order can deadlock, as in
                    # any application; PostgreSQL rolls one back and the change never happened.
                    deadlocks.append(n)

    def write_one_transaction(conn, rng, n, t):
        with conn.transaction():
            for _ in range(rng.randint(1, 4)):
                i = rng.randint(1, ids)
                ts = BASE + timedelta(seconds=rng.randint(0, 10_000))
                if rng.random() < 0.5:
                    op = rng.choice(["upsert", "upsert", "delete"])
                    if op == "delete":
                        conn.execute("SELECT inventory_sync.sync_delete(%s, %s)", (i, ts))
                    else:
                        conn.execute(
                            "SELECT inventory_sync.sync_upsert(%s, %s, %s)",
                            (i, Jsonb({"w": n, "t": t}), ts),
                        )
                else:
                    key = str(uuid.UUID(int=i))
                    if rng.random() < 0.25:
                        conn.execute(
                            "SELECT inventory_sync.sync_delete_in(%s, %s, %s)", (PRODUCTS, key, ts)
                        )
                    else:
                        conn.execute(
                            "SELECT inventory_sync.sync_upsert_in(%s, %s, %s, %s)",
                            (PRODUCTS, key, Jsonb({"name": f"w{n}", "stock": t}), ts),
                        )
            time.sleep(rng.random() * 0.02)
            if rng.random() < 0.1:
                raise psycopg.Rollback()

    def device():
        try:
            pull_until_stopped()
        except Exception as e:  # noqa: BLE001 - reported and failed below
            failures.append(repr(e))

    def pull_until_stopped():
        cursor = None
        with connect() as conn:
            while not stop.is_set():
                page = conn.execute("SELECT inventory_sync.sync_pull(%s, 7)", (cursor,)).fetchone()[0]
                apply_pulled(replica, page["changes"])
                cursor = page["cursor"]
                pulls.append(len(page["changes"]))
            changes, cursor = pull_all(conn, cursor, lim=7)
            apply_pulled(replica, changes)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    puller = threading.Thread(target=device)
    puller.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    puller.join()
    with connect() as conn:
        server = database_state(conn)
    print(f"\n{writers} writers x {transactions} transactions ({len(deadlocks)} rolled back by deadlocks); "
          f"device pulled {sum(pulls)} changes in {len(pulls)} pulls; {len(server)} keys")
    assert failures == []
    assert sum(pulls) > 0, "the device pulled nothing while the writers ran"
    assert replica == server


def lww(changes):
    """The last-write-wins end state of a list of (key, op, payload, ts), distinct ts per key."""
    winner = {}
    for key, op, payload, ts in changes:
        if key not in winner or ts > winner[key][2]:
            winner[key] = (op, payload, ts)
    return {k: (op, payload if op == "upsert" else None) for k, (op, payload, _) in winner.items()}


def test_overlapping_batches_from_two_devices_end_in_the_last_write_wins_state():
    rounds, per_batch, ids = 15, 60, 20
    errors = []
    for rnd in range(rounds):
        rng = random.Random(rnd)
        stamps = rng.sample(range(1, 100_000), 2 * per_batch)
        batches, expected = [], []
        for device in range(2):
            batch = []
            for j in range(per_batch):
                ts = BASE + timedelta(milliseconds=stamps[device * per_batch + j])
                i = rnd * 100 + rng.randint(1, ids)
                tracked = rng.random() < 0.5
                op = "delete" if rng.random() < 0.2 else "upsert"
                if tracked:
                    key = str(uuid.UUID(int=i))
                    payload = {"name": f"d{device}", "stock": j}
                    change = {"op": op, "table": PRODUCTS, "id": key, "client_ts": ts.isoformat()}
                    expected.append((("proto.products", key), op, payload, ts))
                else:
                    payload = {"device": device, "j": j}
                    change = {"op": op, "id": i, "client_ts": ts.isoformat()}
                    expected.append((("inventory_sync.inventory", str(i)), op, payload, ts))
                if op == "upsert":
                    change["payload"] = payload
                batch.append(change)
            batches.append(batch)
        barrier = threading.Barrier(2)
        outcomes = [None, None]

        def push(device):
            with connect() as conn:
                barrier.wait()
                outcomes[device] = conn.execute(
                    "SELECT inventory_sync.sync_push(%s)", (Jsonb(batches[device]),)
                ).fetchone()[0]

        threads = [threading.Thread(target=push, args=(d,)) for d in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for device in range(2):
            assert outcomes[device] is not None, "a push failed"
            errors += [o for o in outcomes[device] if o["status"] == "error"]
        with connect() as conn:
            state = database_state(conn)
        want = lww(expected)
        got = {k: state.get(k) for k in want}
        assert got == want, f"round {rnd}"
    assert errors == []


def backend_peak_kib(conn):
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_batch_of_100000_changes_runs_in_bounded_memory():
    """Memory per change is released as the batch goes: what the transaction still holds after
    100,000 changes is small, and the backend's peak is within a small multiple of what merely
    parsing the batch's JSON costs (PostgreSQL's jsonb input builds a tree of the whole value)."""
    n = 100_000
    batch = [
        {"id": i, "payload": {"stock": i % 97, "name": f"item {i}"}, "client_ts": "2024-03-01T10:00:00Z",
         "client_id": "bulk", "mutation_id": f"m{i}"}
        for i in range(1, n + 1)
    ]
    with connect() as conn:
        before = backend_peak_kib(conn)
        conn.execute("SELECT jsonb_array_length(%s)", (Jsonb(batch),))
        parse_mib = (backend_peak_kib(conn) - before) / 1024
    with connect() as conn:
        conn.execute("SELECT inventory_sync.sync_push('[]')")  # load the library first
        before = backend_peak_kib(conn)
        conn.autocommit = False
        started = time.monotonic()
        outcomes = conn.execute("SELECT inventory_sync.sync_push(%s)", (Jsonb(batch),)).fetchone()[0]
        seconds = time.monotonic() - started
        held_kib = conn.execute(
            "SELECT total_bytes / 1024 FROM pg_backend_memory_contexts WHERE name = 'TopTransactionContext'"
        ).fetchone()[0]
        conn.commit()
        push_mib = (backend_peak_kib(conn) - before) / 1024
        rows = conn.execute("SELECT count(*) FROM inventory_sync.inventory").fetchone()[0]
    print(f"\n{n} changes in {seconds:.1f} s; peak grew {push_mib:.0f} MiB (parsing the batch alone: "
          f"{parse_mib:.0f} MiB); the transaction held {held_kib} KiB at the end")
    assert len(outcomes) == n and rows == n
    assert all(o["status"] == "applied" for o in outcomes)
    # Keeping even 64 bytes per change until commit would hold 6 MiB.
    assert held_kib < 2048
    assert push_mib < 2.5 * parse_mib



def test_sync_push_json_takes_100000_changes_in_under_200_mib():
    """sync_push_json takes the batch as json text and answers json text, so neither is ever built
    whole as jsonb: the backend's peak grows by a small multiple of the text (the jsonb
    sync_push's grows by several times more, most of it PostgreSQL building the argument and the
    answer as jsonb trees), and its outcomes are sync_push's."""
    n = 100_000
    batch = json.dumps([
        {"id": 200_000 + i, "payload": {"stock": i % 97, "name": f"item {i}"}, "client_ts": "2024-03-01T10:00:00Z",
         "client_id": "bulk-json", "mutation_id": f"j{i}"}
        for i in range(1, n + 1)
    ])
    with connect() as conn:
        conn.execute("SELECT inventory_sync.sync_push_json('[]')")  # load the library first
        before = backend_peak_kib(conn)
        started = time.monotonic()
        outcomes = conn.execute("SELECT inventory_sync.sync_push_json(%s::json)", (batch,)).fetchone()[0]
        seconds = time.monotonic() - started
        push_mib = (backend_peak_kib(conn) - before) / 1024
        stored = conn.execute(
            "SELECT count(*) FROM inventory_sync.inventory WHERE id > 200000 AND updated_by = 'bulk-json'"
        ).fetchone()[0]
        # A retry (here of the first thousand changes) answers each as a duplicate, as sync_push does.
        retry = json.dumps(json.loads(batch)[:1000])
        again = conn.execute("SELECT inventory_sync.sync_push_json(%s::json)", (retry,)).fetchone()[0]
    print(f"\n{n} changes as json ({len(batch) / 2**20:.1f} MiB) in {seconds:.1f} s; peak grew {push_mib:.0f} MiB")
    assert stored == n
    assert [o["id"] for o in outcomes] == list(range(200_001, 200_001 + n))
    assert all(o["status"] == "applied" for o in outcomes)
    assert len(again) == 1000
    assert all(o.get("duplicate") is True and o["status"] == "applied" for o in again)
    assert push_mib < 200

def wait_for_replay(primary, standby):
    lsn = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    deadline = time.monotonic() + 30
    while standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0] is not True:
        assert time.monotonic() < deadline, "the standby did not catch up"
        time.sleep(0.05)


def test_pull_runs_on_a_streaming_replica():
    assert dbs.STANDBY_DSN, "INVENTORY_SYNC_STANDBY_DSN is not set: scripts/test.sh starts the standby"
    with connect() as primary, connect(dbs.STANDBY_DSN) as standby:
        assert standby.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        primary.execute(
            "SELECT inventory_sync.sync_push(%s)",
            (Jsonb([
                {"id": 1, "payload": {"a": 1}, "client_ts": "2024-03-01T10:00:00Z"},
                {"op": "delete", "id": 2, "client_ts": "2024-03-01T10:00:00Z"},
                {"table": PRODUCTS, "id": str(uuid.UUID(int=5)), "payload": {"name": "x", "stock": 1},
                 "client_ts": "2024-03-01T10:00:00Z"},
                {"op": "delete", "table": PRODUCTS, "id": str(uuid.UUID(int=6)), "client_ts": "2024-03-01T10:00:00Z"},
            ]),),
        )
        wait_for_replay(primary, standby)
        # A standby's snapshot horizon can trail the primary's for a moment: pull until both agree.
        deadline = time.monotonic() + 30
        while True:
            on_primary = pull_all(primary, lim=2)
            on_standby = pull_all(standby, lim=2)
            if on_primary == on_standby and len(on_standby[0]) == 4:
                break
            assert time.monotonic() < deadline, f"standby {on_standby} != primary {on_primary}"
            time.sleep(0.1)
        # The standby answers the device's next pull from the same cursor.
        primary.execute("SELECT inventory_sync.sync_upsert(1, '{\"a\": 2}', '2024-03-01T11:00:00Z')")
        wait_for_replay(primary, standby)
        deadline = time.monotonic() + 30
        while True:
            nxt, _ = pull_all(standby, on_standby[1], lim=1000)
            if nxt:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert [(c["id"], c["data"]) for c in nxt] == [(1, {"a": 2})]
        # It is a real read-only standby: writes are refused there.
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            standby.execute("SELECT inventory_sync.sync_upsert(3, '{}', now())")
