"""Faults: the server or the client dies, or a timeout or deadlock strikes, in the middle of a
sync call. Whatever happens, a call is all or nothing, the journal agrees with the rows, no lock
is left behind, and sending the same changes again (same mutation ids) applies each exactly once.

These tests kill servers, so they run on a cluster of their own (`rel-faults`, port
$INVENTORY_SYNC_FAULT_PORT, default 55450), never on the shared test cluster. The cluster runs
with fsync=off (scripts/common.sh): a killed process loses nothing the kernel holds, so these are
process crashes, not power cuts.

Every change is made visible twice: `stock` is a `delta` field (applied as `current + (sent -
base)`), so a change applied twice, or half a batch, shows in the sums; and "stale" changes (an
old write of the `lww` field `note`) must lose and be journaled once, under their mutation id."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from psycopg.types.json import Jsonb

from harness.cluster import Cluster

PORT = int(os.environ.get("INVENTORY_SYNC_FAULT_PORT", "55450"))
DEFAULT = "inventory_sync.inventory"
ITEMS = "rel.items"
ROWS = 400  # seeded rows per table; changes only touch these
SEED_TS = datetime(2024, 6, 1, tzinfo=timezone.utc)
OLD_TS = datetime(2024, 1, 1, tzinfo=timezone.utc)  # older than every row: such a write loses


@pytest.fixture(scope="module")
def cluster():
    c = Cluster("rel-faults", PORT)
    c.create()
    yield c
    c.stop()


# -- the changes ------------------------------------------------------------------------------


@dataclass
class Change:
    client_id: str
    mutation_id: str
    table: str | None  # None: the default table
    id: int
    delta: int | None  # None: a stale write of "note", which must lose
    base: int
    ts: datetime

    @property
    def key(self):
        return (self.client_id, self.mutation_id)

    @property
    def row(self):
        return (self.table or DEFAULT, self.id)

    @property
    def payload(self):
        if self.delta is None:
            return {"note": f"stale {self.mutation_id}"}
        return {"stock": self.base + self.delta}

    @property
    def base_json(self):
        return None if self.delta is None else {"stock": self.base}

    @property
    def status(self):
        """What the first decision of this change must answer."""
        return "conflict" if self.delta is None else "applied"

    def as_json(self):
        change = {"id": self.id, "payload": self.payload, "client_ts": self.ts.isoformat(),
                  "client_id": self.client_id, "mutation_id": self.mutation_id}
        if self.table:
            change["table"] = self.table
        if self.base_json:
            change["base"] = self.base_json
        return change


def make_change(rng, client_id, mutation_id, table=None, id=None, stale=None):
    if table is None:
        table = rng.choice([None, None, ITEMS])
    elif table == DEFAULT:
        table = None
    stale = rng.random() < 0.1 if stale is None else stale
    return Change(
        client_id=client_id,
        mutation_id=mutation_id,
        table=table,
        id=id if id is not None else rng.randint(1, ROWS),
        delta=None if stale else rng.choice([-3, -2, -1, 1, 2, 3, 5, 8]),
        base=rng.randint(0, 100),
        ts=OLD_TS if stale else SEED_TS + timedelta(seconds=1, microseconds=rng.randint(0, 10**9)),
    )


def make_batch(n, client_id, seed, **kw):
    rng = random.Random(seed)
    return [make_change(rng, client_id, f"{client_id}-{i}", **kw) for i in range(n)]


def push(conn, changes, atomic=False):
    return conn.execute(
        "SELECT inventory_sync.sync_push(%s, %s)", (Jsonb([c.as_json() for c in changes]), atomic)
    ).fetchone()[0]


def single(conn, c):
    """The change as a single call (sync_upsert or sync_upsert_in)."""
    if c.table is None:
        sql = "SELECT inventory_sync.sync_upsert(%s, %s, %s, %s, %s, %s)"
        args = (c.id, Jsonb(c.payload), c.ts, c.client_id, c.mutation_id, Jsonb(c.base_json) if c.base_json else None)
    else:
        sql = "SELECT inventory_sync.sync_upsert_in(%s, %s, %s, %s, %s, %s, %s)"
        args = (c.table, str(c.id), Jsonb(c.payload), c.ts, c.client_id, c.mutation_id,
                Jsonb(c.base_json) if c.base_json else None)
    return conn.execute(sql, args).fetchone()[0]


# -- the database and what it holds ------------------------------------------------------------


def fresh(cluster, name):
    """A fresh database with the tracked table, `stock` a delta field in both tables, and
    ROWS rows of each seeded with stock 0 at SEED_TS."""
    db = cluster.fresh_database(name)
    with cluster.connect(db) as conn:
        conn.execute("CREATE SCHEMA rel")
        conn.execute(
            f"""CREATE TABLE {ITEMS} (id bigint PRIMARY KEY, stock numeric NOT NULL DEFAULT 0,
                note text, updated_at timestamptz NOT NULL)"""
        )
        conn.execute(f"SELECT inventory_sync.track('{ITEMS}')")
        seed = [{"id": i, "payload": {"stock": 0, "note": "seed"}, "client_ts": SEED_TS.isoformat(), **t}
                for t in ({}, {"table": ITEMS}) for i in range(1, ROWS + 1)]
        answers = conn.execute("SELECT inventory_sync.sync_push(%s)", (Jsonb(seed),)).fetchone()[0]
        assert {a["status"] for a in answers} == {"applied"}
        for tbl in (DEFAULT, ITEMS):
            conn.execute("SELECT inventory_sync.set_policy(%s, 'stock', 'delta')", (tbl,))
    return db


@dataclass
class Observed:
    stock: dict  # (table, id) -> stock
    mutations: dict  # (client_id, mutation_id) -> answer
    journal: Counter  # (client_id, mutation_id) -> journal rows


def observe(conn):
    stock = {(DEFAULT, i): s for i, s in conn.execute(
        "SELECT id, (data->>'stock')::numeric FROM inventory_sync.inventory")}
    stock.update({(ITEMS, i): s for i, s in conn.execute(f"SELECT id, stock FROM {ITEMS}")})
    mutations = {(c, m): a for c, m, a in conn.execute(
        " UNION ALL ".join(f"SELECT client_id, mutation_id, answer FROM inventory_sync.mutations{side}"
                           for side in ("", "_uuid", "_text")))}
    journal = Counter(conn.execute("SELECT client_id, mutation_id FROM inventory_sync.conflicts").fetchall())
    return Observed(stock, mutations, journal)


def expected_stock(changes):
    stock = {(t, i): 0 for t in (DEFAULT, ITEMS) for i in range(1, ROWS + 1)}
    for c in changes:
        if c.delta is not None:
            stock[c.row] += c.delta
    return stock


def check_consistent(conn, changes, answered=None):
    """The database is in a state some set of these changes, each applied whole and once, would
    give: the sums are those of exactly the changes whose mutation id is recorded, the journal
    holds exactly their stale writes, once each; and every answered change is among them, with
    the answer it got. Returns the keys of the changes found applied."""
    obs = observe(conn)
    ours = {c.key for c in changes}
    assert len(ours) == len(changes)
    present = set(obs.mutations) & ours
    assert set(obs.mutations) == present, "mutation ids nobody sent"
    applied = [c for c in changes if c.key in present]
    assert obs.stock == expected_stock(applied), "the sums are not those of the recorded mutations"
    assert obs.journal == Counter(c.key for c in applied if c.delta is None), \
        "the journal does not match the recorded stale writes"
    for key, answer in (answered or {}).items():
        assert key in present, f"answered {answer}, but {key} is not in the database"
        assert obs.mutations[key] == answer
    return present


def check_answers(changes, answers, duplicate):
    assert len(answers) == len(changes)
    for c, a in zip(changes, answers):
        assert a["status"] == c.status, (c, a)
        assert a.get("duplicate", False) is duplicate, (c, a)


def locks_of(conn, pid):
    return conn.execute(
        "SELECT locktype, mode, granted FROM pg_locks WHERE pid = %s", (pid,)
    ).fetchall()


def advisory_locks(conn):
    return conn.execute("SELECT pid, objid, granted FROM pg_locks WHERE locktype = 'advisory'").fetchall()


def wait_for(conn, sql, args=(), timeout=30, what="condition"):
    """Poll `sql` until it answers a row; returns the row."""
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute(sql, args).fetchone()
        if row:
            return row
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class InThread(threading.Thread):
    """Run `f` in a thread; keeps its result or exception."""

    def __init__(self, f):
        super().__init__(daemon=True)
        self.f, self.result, self.error = f, None, None

    def run(self):
        try:
            self.result = self.f()
        except BaseException as e:  # noqa: BLE001 - examined by the test
            self.error = e


# -- (a) a large batch killed in the middle ---------------------------------------------------


@pytest.mark.parametrize("kill", ["immediate", "sigkill"])
def test_a_batch_killed_midway_is_all_or_nothing_and_a_resend_applies_it_once(cluster, kill):
    """A 20,000-change sync_push is killed while it runs (the whole server stopped with
    `pg_ctl stop -m immediate`, or its backend SIGKILLed, which makes the postmaster restart
    every backend): after recovery the batch is entirely there or not at all; sending it again
    applies each change exactly once; a third send is all duplicates and changes nothing."""
    db = fresh(cluster, f"rel_faults_batch_{kill}")
    batch = make_batch(20_000, "dev-a", seed=1)
    stale = sum(c.delta is None for c in batch)
    conn = cluster.connect(db, application_name="rel-batch")
    call = InThread(lambda: push(conn, batch))
    started = time.monotonic()
    call.start()
    with cluster.connect(db) as monitor:
        # Running, and already writing (it has a transaction id): then let it write a while.
        pid, = wait_for(monitor, "SELECT pid FROM pg_stat_activity WHERE application_name = 'rel-batch' "
                        "AND state = 'active' AND query LIKE '%%sync_push%%' AND backend_xid IS NOT NULL",
                        what="the batch to start writing")
        assert pid == conn.info.backend_pid
        time.sleep(1.5)
        assert call.is_alive(), "the batch finished before it could be killed: make it bigger"
        assert monitor.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() == ("active",)
    killed_after = time.monotonic() - started
    if kill == "immediate":
        cluster.crash()
        call.join(30)
        cluster.start()
    else:
        log = cluster.kill_backend(pid)
        assert f"(PID {pid}) was terminated by signal 9" in log
        call.join(30)
    assert not call.is_alive()
    assert isinstance(call.error, psycopg.OperationalError), call.error
    conn.close()

    with cluster.connect(db) as conn:
        present = check_consistent(conn, batch)
        assert len(present) in (0, len(batch)), f"{len(present)} of {len(batch)} changes survived"
        survived = len(present) == len(batch)
        print(f"\n(a) {kill} after {killed_after:.1f}s: the batch is {'all' if survived else 'not'} there")

        t = time.monotonic()
        answers = push(conn, batch)
        resend_s = time.monotonic() - t
        check_answers(batch, answers, duplicate=survived)
        check_consistent(conn, batch, {c.key: a for c, a in zip(batch, answers) if not survived})
        obs = observe(conn)
        assert obs.stock == expected_stock(batch)
        # Every conflict answer has its journal row, and nothing else is journaled.
        assert obs.journal == Counter(c.key for c, a in zip(batch, answers) if a["status"] == "conflict")
        assert sum(obs.journal.values()) == stale

        again = push(conn, batch)
        check_answers(batch, again, duplicate=True)
        for c, a in zip(batch, again):
            assert a == {**obs.mutations[c.key], "duplicate": True}
        assert observe(conn) == obs
        print(f"    re-sent in {resend_s:.1f}s: {len(batch) - stale} deltas applied once, "
              f"{stale} conflicts journaled once; a third send: all duplicates")


# -- (b) a stream of single calls from several clients, killed ---------------------------------


class StreamClient(threading.Thread):
    """One device: its own connection, single calls (and now and then a push of three
    changes), each with a mutation id, until the connection dies. `calls` holds every call it
    sent, `answers` the answers it got (by call index)."""

    def __init__(self, cluster, db, n):
        super().__init__(daemon=True)
        self.conn = cluster.connect(db, application_name=f"rel-stream-{n}")
        self.n, self.calls, self.answers = n, [], {}
        self.crashed_with = self.unexpected = None

    def run(self):
        rng = random.Random(100 + self.n)
        client = f"dev-{self.n}"
        try:
            for k in range(20_000):
                if rng.random() < 0.1:
                    changes = [make_change(rng, client, f"{client}-{k}-{j}") for j in range(3)]
                else:
                    changes = [make_change(rng, client, f"{client}-{k}")]
                self.calls.append(changes)
                answers = push(self.conn, changes) if len(changes) > 1 else [single(self.conn, changes[0])]
                self.answers[k] = answers
        except psycopg.OperationalError as e:
            self.crashed_with = e
        except BaseException as e:  # noqa: BLE001 - fails the test
            self.unexpected = e
        finally:
            self.conn.close()

    def answered(self):
        return {c.key: a for k, answers in self.answers.items() for c, a in zip(self.calls[k], answers)}


@pytest.mark.parametrize("kill", ["immediate", "sigkill"])
def test_a_stream_of_calls_killed_keeps_every_answered_call_and_retries_converge(cluster, kill):
    """Six devices send single calls (autocommit: answered means committed) when the server is
    killed. After recovery every answered call is there with the answer it got; a call in flight
    is there whole or not at all; sending every call again converges to each change applied
    exactly once (the sums of all deltas, one journal row per stale write)."""
    db = fresh(cluster, f"rel_faults_stream_{kill}")
    clients = [StreamClient(cluster, db, n) for n in range(6)]
    for c in clients:
        c.start()
    # Let them run for at least 1.5 s and 500 answered calls.
    started = time.monotonic()
    while sum(len(c.answers) for c in clients) < 500 or time.monotonic() < started + 1.5:
        assert time.monotonic() < started + 30 and all(c.is_alive() for c in clients)
        time.sleep(0.01)
    if kill == "immediate":
        cluster.crash()
        for c in clients:
            c.join(30)
        cluster.start()
    else:
        with cluster.connect(db) as monitor:
            pid, = wait_for(monitor, "SELECT pid FROM pg_stat_activity WHERE application_name = 'rel-stream-0'",
                            what="client 0's backend")
        cluster.kill_backend(pid)
        for c in clients:
            c.join(30)
    assert all(not c.is_alive() for c in clients)
    assert [c.unexpected for c in clients] == [None] * len(clients)
    assert all(isinstance(c.crashed_with, psycopg.OperationalError) for c in clients)

    changes = [ch for c in clients for call in c.calls for ch in call]
    answered = {k: a for c in clients for k, a in c.answered().items()}
    in_flight = [ch for c in clients for k, call in enumerate(c.calls) if k not in c.answers for ch in call]
    assert len(in_flight) >= len(clients)
    for key, a in answered.items():
        assert "duplicate" not in a
    with cluster.connect(db) as conn:
        present = check_consistent(conn, changes, answered)
        landed = sum(ch.key in present for ch in in_flight)
        print(f"\n(b) {kill}: {len(changes)} changes sent, {len(answered)} answered before the crash, "
              f"all durable; of {len(in_flight)} in flight (unanswered), {landed} committed")

    # Every device sends everything again, in order, on a new connection.
    with cluster.connect(db) as conn:
        for c in clients:
            for call in c.calls:
                answers = push(conn, call) if len(call) > 1 else [single(conn, call[0])]
                for ch, a in zip(call, answers):
                    assert a["status"] == ch.status
                    assert a.get("duplicate", False) is (ch.key in present)
                    if ch.key in answered:
                        assert a == {**answered[ch.key], "duplicate": True}
        present = check_consistent(conn, changes)
        assert present == {ch.key for ch in changes}
        obs = observe(conn)
        assert obs.stock == expected_stock(changes)
        assert sum(obs.journal.values()) == sum(ch.delta is None for ch in changes)


# -- (c) the client goes away in the middle of a call -----------------------------------------

CLIENT = """
import json, sys, psycopg
from psycopg.types.json import Jsonb
dsn, batch = sys.argv[1], json.load(open(sys.argv[2]))
with psycopg.connect(dsn, autocommit=True) as conn:
    conn.execute("SELECT inventory_sync.sync_push(%s)", (Jsonb(batch),))
print("ANSWERED", flush=True)
"""


def blocked_batch(client_id, seed):
    """300 changes on both tables; the last in row order is tracked row ROWS, which the
    holder locks, so the batch writes (and takes its row and advisory locks) before it waits."""
    batch = make_batch(299, client_id, seed)
    batch.append(make_change(random.Random(seed), client_id, f"{client_id}-last", table=ITEMS, id=ROWS, stale=False))
    return batch


def hold_row(cluster, db, table=ITEMS, id=ROWS):
    holder = cluster.connect(db, autocommit=False)
    if table == ITEMS:
        holder.execute(f"SELECT 1 FROM {ITEMS} WHERE id = %s FOR UPDATE", (id,))
    else:
        holder.execute("SELECT 1 FROM inventory_sync.inventory WHERE id = %s FOR UPDATE", (id,))
    return holder


WAITING = ("SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state = 'active' "
           "AND wait_event_type = 'Lock'")


def test_a_client_killed_while_its_batch_waits_is_noticed_and_rolled_back(cluster, tmp_path):
    """The device's backend process (here: a separate client process) is killed while its
    sync_push waits on a row lock, with client_connection_check_interval set: the backend
    notices while still waiting, rolls the batch back and releases every lock it took (row and
    advisory locks); the lock holder proceeds; nothing of the batch was written."""
    db = fresh(cluster, "rel_faults_client_killed")
    batch = blocked_batch("dev-c", seed=3)
    path = tmp_path / "batch.json"
    path.write_text(json.dumps([c.as_json() for c in batch]))
    holder = hold_row(cluster, db)
    dsn = (f"{cluster.dsn} dbname={db} application_name=rel-disconnect "
           "options='-c client_connection_check_interval=200'")
    client = subprocess.Popen([sys.executable, "-c", CLIENT, dsn, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        with cluster.connect(db) as monitor:
            pid, = wait_for(monitor, WAITING, ("rel-disconnect",), what="the batch to wait on the lock")
            held = locks_of(monitor, pid)
            assert any(t == "advisory" and granted for t, _, granted in held), held
            client.send_signal(signal.SIGKILL)
            client.wait(10)
            # The holder still holds the row: the backend noticed the lost client by itself.
            wait_for(monitor, "SELECT true WHERE NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)",
                     (pid,), timeout=10, what="the backend to notice its client is gone")
            assert locks_of(monitor, pid) == []
            assert advisory_locks(monitor) == []
            holder.execute(f"UPDATE {ITEMS} SET note = 'holder' WHERE id = %s", (ROWS,))
            holder.commit()
            present = check_consistent(monitor, batch)
            assert present == set()
            answers = push(monitor, batch)
            check_answers(batch, answers, duplicate=False)
            assert observe(monitor).stock == expected_stock(batch)
    finally:
        client.kill()
        holder.close()
    assert "ANSWERED" not in client.stdout.read()


def test_a_socket_closed_mid_call_leaves_the_batch_whole_or_absent(cluster):
    """The client's socket is shut down while its sync_push waits on a row lock, with default
    settings (no client_connection_check_interval). PostgreSQL cannot notice a lost client
    while it waits on a lock, so the backend waits on; once the holder commits, it runs the
    batch to its end and commits or rolls back as a whole. Either way nothing is half-written,
    no lock is left, and a retry of the batch applies each change exactly once."""
    db = fresh(cluster, "rel_faults_socket_closed")
    batch = blocked_batch("dev-s", seed=4)
    holder = hold_row(cluster, db)
    conn = cluster.connect(db, application_name="rel-socket")
    call = InThread(lambda: push(conn, batch))
    call.start()
    try:
        with cluster.connect(db) as monitor:
            pid, = wait_for(monitor, WAITING, ("rel-socket",), what="the batch to wait on the lock")
            dup = socket.socket(fileno=os.dup(conn.fileno()))
            dup.shutdown(socket.SHUT_RDWR)
            dup.close()
            call.join(10)
            assert isinstance(call.error, psycopg.OperationalError), call.error
            time.sleep(0.5)
            assert monitor.execute(WAITING, ("rel-socket",)).fetchone() == (pid,), \
                "expected the backend to wait on, unaware"
            holder.execute(f"UPDATE {ITEMS} SET note = 'holder' WHERE id = %s", (ROWS,))
            holder.commit()
            wait_for(monitor, "SELECT true WHERE NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)",
                     (pid,), timeout=30, what="the orphaned backend to end")
            assert locks_of(monitor, pid) == []
            assert advisory_locks(monitor) == []
            present = check_consistent(monitor, batch)
            assert len(present) in (0, len(batch))
            print(f"\n(c) socket closed: the orphaned batch {'committed' if present else 'rolled back'}")
            answers = push(monitor, batch)
            check_answers(batch, answers, duplicate=bool(present))
            check_consistent(monitor, batch)
            assert observe(monitor).stock == expected_stock(batch)
    finally:
        holder.close()
        conn.close()


# -- (d) statement_timeout and lock_timeout ---------------------------------------------------

TIMEOUTS = {"statement_timeout": "57014", "lock_timeout": "55P03"}


@pytest.mark.parametrize("call", ["sync_push", "sync_push_atomic", "sync_upsert", "sync_upsert_in"])
@pytest.mark.parametrize("setting", list(TIMEOUTS))
def test_a_timeout_fails_the_whole_call(cluster, setting, call):
    """A call waiting on a row lock held by another connection runs into statement_timeout
    (57014) or lock_timeout (55P03): the call fails as a whole with that SQLSTATE (a batch does
    not answer it as per-change "error" outcomes), nothing is written, no lock is left, and the
    same call sent again once the lock is released applies fully."""
    db = fresh(cluster, "rel_faults_timeout")
    rng = random.Random(5)
    if call.startswith("sync_push"):
        changes = blocked_batch("dev-t", seed=5)
        held = (ITEMS, ROWS)
    else:
        table = ITEMS if call == "sync_upsert_in" else DEFAULT
        changes = [make_change(rng, "dev-t", "dev-t-1", table=table, id=7, stale=False)]
        held = (table, 7)

    def send(conn):
        if call.startswith("sync_push"):
            return push(conn, changes, atomic=call == "sync_push_atomic")
        return [single(conn, changes[0])]

    holder = hold_row(cluster, db, *held)
    try:
        with cluster.connect(db) as conn, cluster.connect(db) as monitor:
            conn.execute(f"SET {setting} = '400ms'")
            t = time.monotonic()
            with pytest.raises(psycopg.Error) as failed:
                answers = send(conn)
                pytest.fail(f"answered instead of failing: {[a for a in answers if a['status'] == 'error'][:3]}")
            assert failed.value.sqlstate == TIMEOUTS[setting], failed.value
            assert time.monotonic() - t >= 0.35
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert locks_of(monitor, conn.info.backend_pid) == []
            assert advisory_locks(monitor) == []
            assert check_consistent(monitor, changes) == set()
            holder.rollback()
            answers = send(conn)
            check_answers(changes, answers, duplicate=False)
            check_consistent(monitor, changes, dict(zip((c.key for c in changes), answers)))
            assert observe(monitor).stock == expected_stock(changes)
    finally:
        holder.close()


@pytest.mark.parametrize("atomic", [False, True])
def test_a_statement_timeout_while_a_batch_is_busy_fails_it_whole(cluster, atomic):
    """statement_timeout strikes while a 20,000-change batch is working (no lock wait): the
    cancel arrives inside one of its subtransactions and must abort the call, not become that
    change's "error" outcome with the rest carrying on."""
    db = fresh(cluster, f"rel_faults_busy_{int(atomic)}")
    batch = make_batch(20_000, "dev-b", seed=6)
    with cluster.connect(db) as conn:
        conn.execute("SET statement_timeout = '1500ms'")
        with pytest.raises(psycopg.Error) as failed:
            answers = push(conn, batch, atomic)
            errors = [a for a in answers if a["status"] == "error"]
            pytest.fail(f"answered, with {len(errors)} error outcomes, e.g. {errors[:2]}")
        assert failed.value.sqlstate == "57014", failed.value
        assert check_consistent(conn, batch) == set()
        assert advisory_locks(conn) == []
        conn.execute("RESET statement_timeout")
        answers = push(conn, batch, atomic)
        check_answers(batch, answers, duplicate=False)
        assert observe(conn).stock == expected_stock(batch)


# -- (e) deadlock -----------------------------------------------------------------------------


@pytest.mark.parametrize("atomic", [False, True])
@pytest.mark.parametrize("table", [DEFAULT, ITEMS])
def test_a_deadlock_fails_the_whole_batch_with_40P01(cluster, table, atomic):
    """A batch writes row A, then waits for row B, which another transaction holds; that
    transaction then asks for row A. The batch's deadlock check (deadlock_timeout 1s; the other
    transaction's is a minute) finds the cycle: the batch fails as a whole with 40P01, releases
    row A, the other transaction proceeds; nothing of the batch stays, and a retry applies it."""
    db = fresh(cluster, "rel_faults_deadlock")
    rng = random.Random(7)
    a_id, b_id = 10, 20
    batch = [make_change(rng, "dev-d", f"dev-d-{i}", table=table, id=i, stale=False) for i in (5, a_id, 15)]
    batch += [make_change(rng, "dev-d", f"dev-d-{i}", id=i) for i in range(100, 160)]
    batch.append(make_change(rng, "dev-d", f"dev-d-{b_id}", table=table, id=b_id, stale=False))
    rel = ITEMS if table == ITEMS else "inventory_sync.inventory"
    other = cluster.connect(db, autocommit=False)
    other.execute("SET deadlock_timeout = '60s'")
    other.execute(f"SELECT 1 FROM {rel} WHERE id = %s FOR UPDATE", (b_id,))
    conn = cluster.connect(db, application_name="rel-deadlock")
    conn.execute("SET deadlock_timeout = '1s'")
    call = InThread(lambda: push(conn, batch, atomic))
    try:
        call.start()
        with cluster.connect(db) as monitor:
            wait_for(monitor, WAITING, ("rel-deadlock",), what="the batch to wait for row B")
            other.execute(f"SELECT 1 FROM {rel} WHERE id = %s FOR UPDATE", (a_id,))  # waits, then gets A
            call.join(30)
            assert isinstance(call.error, psycopg.errors.DeadlockDetected), call.error or call.result
            assert call.error.sqlstate == "40P01"
            other.execute(f"UPDATE {rel} SET updated_at = updated_at WHERE id IN (%s, %s)", (a_id, b_id))
            other.commit()
            assert locks_of(monitor, conn.info.backend_pid) == []
            assert advisory_locks(monitor) == []
            assert check_consistent(monitor, batch) == set()
            answers = push(conn, batch, atomic)
            check_answers(batch, answers, duplicate=False)
            assert observe(monitor).stock == expected_stock(batch)
    finally:
        other.close()
        conn.close()


# -- answers in freed memory ------------------------------------------------------------------


def test_answers_are_not_read_from_freed_memory(cluster):
    """Regression test of a use-after-free this suite found: sync_pull's answer and every merging
    write's answer were built in SPI's memory, which SPI_finish frees before PostgreSQL reads the
    function's result (every answer is now built in the caller's context: types::answers_in).
    Every call's answer must still be valid memory when PostgreSQL reads the result. The server
    runs with glibc's malloc perturbation (GLIBC_TUNABLES=glibc.malloc.perturb: freed memory is
    overwritten at once), so an answer left in freed memory crashes the backend or comes back
    garbled every time, not just now and then under load. The calls that take other paths are
    the control: they work under the same setting."""
    cluster.start(env={"GLIBC_TUNABLES": "glibc.malloc.perturb=165"})
    try:
        db = fresh(cluster, "rel_faults_memory")
        ts = SEED_TS + timedelta(hours=1)
        delta = {"payload": {"stock": 5}, "base": {"stock": 2}, "client_ts": ts.isoformat()}
        calls = {  # name: (sql, args, what a correct answer looks like)
            "sync_upsert, lww (control)": (
                "SELECT inventory_sync.sync_upsert(1, '{\"note\": \"a\"}', %s)", (ts,),
                lambda a: a["status"] == "applied"),
            "sync_push, lww (control)": (
                "SELECT inventory_sync.sync_push(%s)",
                (Jsonb([{"id": 2, "payload": {"note": "b"}, "client_ts": ts.isoformat()}]),),
                lambda a: [o["status"] for o in a] == ["applied"]),
            "sync_upsert, delta (merging path)": (
                "SELECT inventory_sync.sync_upsert(3, '{\"stock\": 5}', %s, base => '{\"stock\": 2}')", (ts,),
                lambda a: a["status"] == "applied"),
            "sync_upsert_in, delta (merging path)": (
                f"SELECT inventory_sync.sync_upsert_in('{ITEMS}', '3', '{{\"stock\": 5}}', %s, "
                "base => '{\"stock\": 2}')", (ts,),
                lambda a: a["status"] == "applied"),
            "sync_push, delta (merging path)": (
                "SELECT inventory_sync.sync_push(%s)", (Jsonb([{"id": 4, **delta}, {"id": 4, "table": ITEMS, **delta}]),),
                lambda a: [o["status"] for o in a] == ["applied", "applied"]),
            "sync_pull": (
                "SELECT inventory_sync.sync_pull(NULL, 1000)", (),
                lambda a: len(a["changes"]) == 2 * ROWS and not a["has_more"]),
        }
        results = {}
        for name, (sql, args, correct) in calls.items():
            offset = cluster.log_size()
            try:
                with cluster.connect(db) as conn:
                    answer = conn.execute(sql, args).fetchone()[0]
                results[name] = "ok" if correct(answer) else f"wrong answer: {str(answer)[:200]}"
            except psycopg.OperationalError:
                cluster.wait_recovered(offset)
                results[name] = "the backend crashed"
            except psycopg.Error as e:
                results[name] = f"error {e.sqlstate}: {e}"
        print("\nunder glibc.malloc.perturb:", json.dumps(results, indent=1))
        assert results == {name: "ok" for name in calls}
    finally:
        cluster.start()  # without the perturbation, for the tests after this one
