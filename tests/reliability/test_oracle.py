"""The concurrency oracle, across every write path.

Writers on separate connections (one thread each) fire at the same rows at the same moment:
released together from an advisory-lock barrier taken inside the very statement that writes
(tests/harness/barrier.py, which tests/concurrency/test_races.py uses too), with a trigger
sleeping 3 ms on every row write to widen the race windows. Their timestamps come from a handful
of milliseconds, so equal client_ts are common; writers then differ by client_id (each writer is
one device), which orders them. Every answer is recorded, and after each round an oracle checks
the rules against what was answered:

last-write-wins (sync_upsert, sync_delete, sync_upsert_in, sync_delete_in, sync_push):
- the write with the greatest (client_ts, client_id) of a row was applied (no older write won);
- the stored row (or tombstone) is exactly what applying the writes answered `applied`, in clock
  order, gives: the data merged key by key, a delete leaving a tombstone, a write after a
  tombstone starting afresh; so no applied write was overwritten by an older one, and none was
  lost; `updated_at`, and the client_id that orders ties, are those of the newest write;
- an applied answer carries its own client_ts and a true `created` exactly when the row did not
  exist before it (in clock order);
- a conflict answer shows, as server_data, a state the row really had after a newer write;
- every conflict answer has its journal row, and the journal holds nothing else for the row;
- a write sent with a mutation id has its answer remembered exactly as it was answered.

merge policies (field_lww, delta with base, server_wins, and lww fields next to them):
- field_lww: every field holds the value of the newest write that set it, which never lost it;
- delta: every delta applied, and the field is the seed plus the sum of all (sent - base);
- server_wins: the field holds the value of the earliest write that set it, which never lost it;
- lww fields hold the value of the newest write that applied them; a lost field is justified by
  the write that beat it; the row's clock is the newest applied write's;
- every conflict, and every merged answer with lost fields, has its journal row (of just the
  lost fields).

Deliberately racy variants of three paths (a check-then-write upsert/delete, a push that
emulates batches with it, a delta applied by read-modify-write) run through the same harness,
and the oracle must catch them: that proves it has teeth.

INVENTORY_SYNC_SOAK=1 runs ten times the rounds.
"""

import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from psycopg.types.json import Jsonb

from conftest import SOAK, connect
from harness.barrier import Barrier

WRITERS = 4
BARRIER_KEY = 515151
BASE = datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)
SEED_TS = BASE - timedelta(days=1)
# One device per writer; spelled to catch any ordering but bytewise (C collation).
CLIENTS = ["dev-a", "dev-B", "dev-\u00e4", "dev-10", "dev-9", "dev-Z"]
SCALE = 10 if SOAK else 1

ITEMS = "oracle.items"
MERGED = "oracle.merged"
DEFAULT = "inventory_sync.inventory"
TRACKED_COLUMNS = {ITEMS: {"v": None, "w0": None, "w1": None, "w2": None, "w3": None, "stock": 0},
                   MERGED: {"f1": None, "f2": None, "qty": None, "sku": None, "note": None}}
POLICIES = {"f1": "field_lww", "f2": "field_lww", "qty": "delta", "sku": "server_wins", "note": "lww"}

SETUP = """
CREATE SCHEMA oracle;
CREATE FUNCTION oracle.slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.003); RETURN COALESCE(NEW, OLD); END $$;
CREATE TABLE oracle.items (
    id uuid PRIMARY KEY, v text, w0 integer, w1 integer, w2 integer, w3 integer,
    stock integer NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL);
CREATE TABLE oracle.merged (
    id uuid PRIMARY KEY, f1 text, f2 text, qty integer, sku text, note text,
    updated_at timestamptz NOT NULL);
SELECT inventory_sync.track('oracle.items');
SELECT inventory_sync.track('oracle.merged');
SELECT inventory_sync.set_policy('oracle.merged', 'f1', 'field_lww');
SELECT inventory_sync.set_policy('oracle.merged', 'f2', 'field_lww');
SELECT inventory_sync.set_policy('oracle.merged', 'qty', 'delta');
SELECT inventory_sync.set_policy('oracle.merged', 'sku', 'server_wins');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'f1', 'field_lww');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'f2', 'field_lww');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'qty', 'delta');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'sku', 'server_wins');
CREATE TRIGGER slow_writes BEFORE INSERT OR UPDATE OR DELETE ON inventory_sync.inventory
    FOR EACH ROW EXECUTE FUNCTION oracle.slow();
CREATE TRIGGER slow_writes BEFORE INSERT OR UPDATE OR DELETE ON oracle.items
    FOR EACH ROW EXECUTE FUNCTION oracle.slow();
CREATE TRIGGER slow_writes BEFORE INSERT OR UPDATE OR DELETE ON oracle.merged
    FOR EACH ROW EXECUTE FUNCTION oracle.slow()
"""

# The mutants: the same rules, decided in PL/pgSQL against a row read without a lock, then
# written unconditionally. They answer and journal exactly as the extension does, so only the
# races can give them away.
MUTANTS = """
CREATE FUNCTION oracle.newer(s_ts timestamptz, s_by text, p_ts timestamptz, p_by text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT s_ts < p_ts OR (s_ts = p_ts AND (p_by IS NULL OR s_by IS NULL OR (p_by COLLATE "C") >= s_by)) $$;

CREATE FUNCTION oracle.server_row(s inventory_sync.inventory) RETURNS jsonb LANGUAGE sql AS $$
    SELECT CASE WHEN s.deleted THEN jsonb_build_object('id', s.id, 'updated_at', s.updated_at, 'deleted', true)
                ELSE s.data || jsonb_build_object('id', s.id, 'updated_at', s.updated_at) END $$;

CREATE FUNCTION oracle.check_then_write(p_op text, p_id bigint, p_payload jsonb, p_ts timestamptz, p_by text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE s inventory_sync.inventory; srv jsonb; found_row boolean;
BEGIN
    SELECT * INTO s FROM inventory_sync.inventory WHERE id = p_id;  -- the check: no lock
    found_row := FOUND;
    IF found_row AND NOT oracle.newer(s.updated_at, s.updated_by, p_ts, p_by) THEN
        srv := oracle.server_row(s);
        INSERT INTO inventory_sync.conflicts (row_id, table_name, reason, op, client_payload, client_ts, client_id, server_data, shard_key)
        VALUES (p_id::text, 'inventory_sync.inventory', 'stale', p_op, COALESCE(p_payload, '{}'), p_ts, p_by, srv, p_id);
        RETURN jsonb_build_object('status', 'conflict', 'id', p_id, 'server_data', srv);
    END IF;
    IF p_op = 'delete' THEN  -- the write: unconditional
        INSERT INTO inventory_sync.inventory AS t (id, data, updated_at, updated_by, deleted, position)
        VALUES (p_id, '{}', p_ts, p_by, true, (1::bigint << 48) + pg_current_xact_id()::text::bigint)
        ON CONFLICT (id) DO UPDATE SET data = '{}', updated_at = excluded.updated_at,
            updated_by = excluded.updated_by, deleted = true,
            position = (1::bigint << 48) + pg_current_xact_id()::text::bigint;
        RETURN jsonb_build_object('status', 'applied', 'id', p_id, 'updated_at', p_ts, 'deleted', true);
    END IF;
    INSERT INTO inventory_sync.inventory AS t (id, data, updated_at, updated_by, position)
    VALUES (p_id, p_payload, p_ts, p_by, (1::bigint << 48) + pg_current_xact_id()::text::bigint)
    ON CONFLICT (id) DO UPDATE SET data = CASE WHEN t.deleted THEN excluded.data ELSE t.data || excluded.data END,
        updated_at = excluded.updated_at, updated_by = excluded.updated_by, deleted = false,
        position = (1::bigint << 48) + pg_current_xact_id()::text::bigint;
    RETURN jsonb_build_object('status', 'applied', 'id', p_id, 'updated_at', p_ts, 'created', NOT found_row);
END $$;

-- sync_push emulated without the engine: the changes through the check-then-write above, in
-- row order as sync_push takes them (so batches do not deadlock), answered in the order given
-- (the default table only).
CREATE FUNCTION oracle.push_without_locks(changes jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE c jsonb; n bigint; answers jsonb := '{}';
BEGIN
    FOR c, n IN SELECT value, ordinality FROM jsonb_array_elements(changes) WITH ORDINALITY
                 ORDER BY (value->>'id')::bigint, ordinality LOOP
        answers := answers || jsonb_build_object(n::text, oracle.check_then_write(
            COALESCE(c->>'op', 'upsert'), (c->>'id')::bigint, c->'payload', (c->>'client_ts')::timestamptz,
            c->>'client_id'));
    END LOOP;
    RETURN (SELECT jsonb_agg(answers->(i::text) ORDER BY i) FROM generate_series(1, jsonb_array_length(changes)) i);
END $$;

-- A delta applied by read-modify-write: read the value, add the difference, write it back.
CREATE FUNCTION oracle.delta_read_modify_write(p_id bigint, p_payload jsonb, p_ts timestamptz, p_by text, p_base jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE cur jsonb;
BEGIN
    SELECT data INTO cur FROM inventory_sync.inventory WHERE id = p_id;
    UPDATE inventory_sync.inventory SET
        data = cur || jsonb_build_object('qty', (cur->>'qty')::numeric + (p_payload->>'qty')::numeric - (p_base->>'qty')::numeric),
        updated_at = CASE WHEN oracle.newer(updated_at, updated_by, p_ts, p_by) THEN p_ts ELSE updated_at END,
        updated_by = CASE WHEN oracle.newer(updated_at, updated_by, p_ts, p_by) THEN p_by ELSE updated_by END,
        position = (1::bigint << 48) + pg_current_xact_id()::text::bigint
     WHERE id = p_id;
    RETURN jsonb_build_object('status', 'applied', 'id', p_id, 'updated_at', p_ts, 'created', false);
END $$
"""


@pytest.fixture(scope="module")
def oracle_db(db):
    with connect(db) as conn:
        for statement in SETUP.split(";\n"):
            conn.execute(statement)
        for statement in MUTANTS.split(";\n\n"):
            conn.execute(statement)
    return db


# --------------------------------------------------------------------------------------------
# Writes, clocks, calls
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Write:
    table: str  # DEFAULT, ITEMS or MERGED
    key: object  # int for the default table, uuid text for tracked tables
    op: str  # upsert | delete
    ts: datetime
    by: str
    writer: int
    payload: dict | None = None
    base: dict | None = None
    mutation_id: str | None = None
    answer: dict | None = None

    @property
    def clock(self):
        # client_id compares bytewise, as the extension's rules do (UTF-8 order is code-point order).
        return (self.ts, self.by.encode())

    def change(self):
        """As a sync_push change."""
        c = {"id": self.key, "client_ts": self.ts.isoformat(), "client_id": self.by}
        if self.table != DEFAULT:
            c["table"] = self.table
        if self.op == "delete":
            c["op"] = "delete"
        else:
            c["payload"] = self.payload
        if self.base:
            c["base"] = self.base
        if self.mutation_id:
            c["mutation_id"] = self.mutation_id
        return c

    def call(self):
        """As a single call: (SQL, parameters)."""
        m = self.mutation_id
        if self.table == DEFAULT:
            if self.op == "delete":
                return "inventory_sync.sync_delete(%s, %s, %s, %s)", (self.key, self.ts, self.by, m)
            return ("inventory_sync.sync_upsert(%s, %s, %s, %s, %s, %s)",
                    (self.key, Jsonb(self.payload), self.ts, self.by, m, Jsonb(self.base) if self.base else None))
        if self.op == "delete":
            return "inventory_sync.sync_delete_in(%s, %s, %s, %s, %s)", (self.table, self.key, self.ts, self.by, m)
        return ("inventory_sync.sync_upsert_in(%s, %s, %s, %s, %s, %s, %s)",
                (self.table, self.key, Jsonb(self.payload), self.ts, self.by, m,
                 Jsonb(self.base) if self.base else None))


@dataclass
class Job:
    """What one writer sends in a round: one statement, answering an array of one answer per
    write (a SELECT without FROM: the barrier is its FROM)."""

    mode: str  # single | push | check_then_write | push_without_locks | delta_read_modify_write
    writes: list

    def statement(self):
        if self.mode == "single":
            call, params = self.writes[0].call()
            return f"SELECT jsonb_build_array({call})", params
        if self.mode == "push":
            return "SELECT inventory_sync.sync_push(%s)", (Jsonb([w.change() for w in self.writes]),)
        if self.mode == "push_without_locks":
            return "SELECT oracle.push_without_locks(%s)", (Jsonb([w.change() for w in self.writes]),)
        w = self.writes[0]
        if self.mode == "check_then_write":
            return ("SELECT jsonb_build_array(oracle.check_then_write(%s, %s, %s, %s, %s))",
                    (w.op, w.key, Jsonb(w.payload) if w.payload is not None else None, w.ts, w.by))
        if self.mode == "delta_read_modify_write":
            return ("SELECT jsonb_build_array(oracle.delta_read_modify_write(%s, %s, %s, %s, %s))",
                    (w.key, Jsonb(w.payload), w.ts, w.by, Jsonb(w.base)))
        raise ValueError(self.mode)


# --------------------------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------------------------


@dataclass
class Stats:
    rounds: int = 0
    statuses: Counter = field(default_factory=Counter)
    ties: int = 0  # rows written by several writes with equal client_ts
    retries: int = 0
    violations: list = field(default_factory=list)
    bad: set = field(default_factory=set)  # rounds with a violation
    older_won: set = field(default_factory=set)  # rounds where an older write beat a newer one

    def flag(self, rnd, messages):
        if messages:
            self.bad.add(rnd)
            self.violations += [f"round {rnd}: {m}" for m in messages]
        if any(OLDER_WON in m or NEWEST_LOST in m for m in messages):
            self.older_won.add(rnd)

    def summary(self):
        return (f"{self.rounds} rounds, answers {dict(self.statuses)}, {self.ties} rows with tied client_ts, "
                f"{self.retries} retries on 40001, {len(self.violations)} violations in {len(self.bad)} rounds, "
                f"an older write won in {len(self.older_won)}")


OLDER_WON = "but the applied writes in clock order give"
NEWEST_LOST = "the newest write"


def ts_of(value):
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def seed(conn, table, key, kind):
    """A row (kind "row", or the payload to seed) or a tombstone, older than every write of the
    round, written through the functions (so the feed and the field clocks know it) by device
    "seed"; the oracle's first event. None for no row."""
    if kind == "none":
        return None
    if kind == "tombstone":
        w = Write(table, key, "delete", SEED_TS, "seed", -1)
    else:
        payload = kind if isinstance(kind, dict) else {"v": "seed", "w0": 7}
        w = Write(table, key, "upsert", SEED_TS, "seed", -1, payload=dict(payload))
    sql, params = w.call()
    conn.execute(f"SELECT {sql}", params)
    w.answer = {"status": "applied"}
    return w


def stored(conn, table, key):
    """The row as it is stored: ("row", fields, ts, client_id) or ("tomb", ts, client_id), or None."""
    if table == DEFAULT:
        r = conn.execute("SELECT data, updated_at, updated_by, deleted FROM inventory_sync.inventory WHERE id = %s",
                         (key,)).fetchone()
        if r is None:
            return None
        return ("tomb", r[1], r[2]) if r[3] else ("row", r[0], r[1], r[2])
    record = conn.execute(
        "SELECT op, ts, client_id FROM inventory_sync.changes_uuid"
        " WHERE inventory_sync.table_of(table_id) = %s::regclass AND row_id = %s",
        (table, key),
    ).fetchone()
    row = conn.execute(f"SELECT to_jsonb(t) FROM {table} t WHERE id = %s", (key,)).fetchone()
    if row is None:
        if record is None:
            return None
        if record[0] != "delete":
            return ("inconsistent: no row, change record", record)
        return ("tomb", record[1], record[2])
    data = row[0]
    ts = ts_of(data.pop("updated_at"))
    data.pop("id")
    if record is None or record[0] != "upsert":
        return ("inconsistent: row without its upsert record", data, record)
    return ("row", data, ts, record[2])


def fold(table, events):
    """The states the row goes through when the given writes apply in clock order (the seed, if
    any, first): a list of (write, state after it)."""
    state, states = None, []
    for w in events:
        if w.op == "delete":
            state = ("tomb", w.ts, w.by)
        elif table == DEFAULT:
            data = dict(w.payload) if state is None or state[0] == "tomb" else {**state[1], **w.payload}
            state = ("row", data, w.ts, w.by)
        else:
            base = dict(TRACKED_COLUMNS[table]) if state is None or state[0] == "tomb" else dict(state[1])
            state = ("row", {**base, **w.payload}, w.ts, w.by)
        states.append((w, state))
    return states


def rendered(table, key, state):
    """A state as server_data shows it."""
    if state[0] == "tomb":
        return {"id": key, "updated_at": state[1], "deleted": True}
    return {**state[1], "id": key, "updated_at": state[2]}


def comparable(server_data):
    if not isinstance(server_data, dict):
        return server_data
    return {k: ts_of(v) if k == "updated_at" else v for k, v in server_data.items()}


def check_lww_row(conn, table, key, writes, seeded, bad):
    where = f"{table} {key}"
    applied = sorted([w for w in writes if w.answer["status"] == "applied"], key=lambda w: w.clock)
    events = ([seeded] if seeded else []) + applied
    states = fold(table, events)
    newest = max(writes, key=lambda w: w.clock)
    if newest.answer["status"] != "applied":
        bad.append(f"{where}: {NEWEST_LOST} ({newest.by} at {newest.ts.time()}) got {newest.answer}")
    # What the row went through, in clock order, and where it ended.
    expected = states[-1][1] if states else None
    actual = stored(conn, table, key)
    if actual != expected:
        bad.append(f"{where}: stored {actual}, {OLDER_WON} {expected}")
    previous = None
    for w, st in states:
        if any(w is x for x in writes):
            a = w.answer
            if ts_of(a.get("updated_at")) != w.ts:
                bad.append(f"{where}: applied answer {a} is not stamped with its client_ts {w.ts}")
            if w.op == "delete":
                if a.get("deleted") is not True:
                    bad.append(f"{where}: applied delete answered {a}")
            else:
                fresh = previous is None or (table != DEFAULT and previous[0] == "tomb")
                if a.get("created") is not fresh:
                    bad.append(f"{where}: {w.by} at {w.ts.time()} answered created={a.get('created')} after {previous}")
        previous = st
    # Each conflict saw a state the row really had, after a write newer than it.
    journal = []
    for w in writes:
        if w.answer["status"] == "applied":
            continue
        if w.answer["status"] != "conflict":
            bad.append(f"{where}: {w.by} answered {w.answer}")
            continue
        journal.append((w.ts, w.by, w.op, w.payload if w.op == "upsert" else {}))
        shown = comparable(w.answer.get("server_data"))
        if not any(s_w.clock > w.clock and rendered(table, key, s) == shown for s_w, s in states):
            bad.append(f"{where}: {w.by} at {w.ts.time()} lost to {shown}, not a state after a newer write")
    check_journal(conn, table, key, journal, bad)


def check_journal(conn, table, key, expected, bad):
    rows = conn.execute(
        "SELECT client_ts, client_id, op, client_payload FROM inventory_sync.conflicts "
        "WHERE table_name = %s AND row_id = %s::text AND reason = 'stale'",
        (table, str(key)),
    ).fetchall()
    got = sorted((r[0], r[1], r[2], json.dumps(r[3], sort_keys=True)) for r in rows)
    want = sorted((t, b, o, json.dumps(p, sort_keys=True)) for t, b, o, p in expected)
    if got != want:
        bad.append(f"{table} {key}: journal {got} != conflict answers {want}")


def applied_fields(w):
    status = w.answer["status"]
    if status == "applied":
        return set(w.payload)
    if status == "merged":
        return set(w.answer["applied"])
    return set()


def check_merge_row(conn, table, key, writes, seeded, bad):
    where = f"{table} {key}"
    final = stored(conn, table, key)
    if final is None or final[0] != "row":
        bad.append(f"{where}: stored {final}")
        return
    fields, row_ts = final[1], final[2]
    journal = []
    for w in writes:
        a, sent = w.answer, set(w.payload)
        if a["status"] not in ("applied", "merged", "conflict"):
            bad.append(f"{where}: {w.by} answered {a}")
            continue
        if a["status"] == "merged":
            if set(a["applied"]) | set(a["lost"]) != sent or set(a["applied"]) & set(a["lost"]) or not a["lost"]:
                bad.append(f"{where}: merged answer {a} does not split the payload {sorted(sent)}")
            journal.append((w.ts, w.by, "upsert", {f: w.payload[f] for f in a["lost"]}))
        elif a["status"] == "conflict":
            journal.append((w.ts, w.by, "upsert", w.payload))
    check_journal(conn, table, key, journal, bad)
    for f, policy in POLICIES.items():
        setters = [w for w in writes if f in w.payload]
        won = [w for w in setters if f in applied_fields(w)]
        lost = [w for w in setters if f not in applied_fields(w)]
        start = seeded.payload.get(f) if seeded else None
        value = fields.get(f)
        if policy == "delta":
            if lost:
                bad.append(f"{where}: delta lost by {[w.by for w in lost]}")
            want = Decimal(start) + sum(Decimal(w.payload[f]) - Decimal(w.base[f]) for w in won)
            if value is None or Decimal(str(value)) != want:
                bad.append(f"{where}: {f} = {value}, but seed {start} plus the applied deltas is {want}")
            continue
        if policy == "server_wins":
            first = min(won, key=lambda w: w.clock) if won else None
            want = first.payload[f] if first else start
            if setters and start is None and min(setters, key=lambda w: w.clock) not in won:
                bad.append(f"{where}: the earliest {f} lost")
            for w in lost:
                if not any(o.clock < w.clock for o in won):
                    bad.append(f"{where}: {w.by} lost {f} though no earlier write set it")
        else:
            last = max(won, key=lambda w: w.clock) if won else None
            want = last.payload[f] if last else start
            if policy == "field_lww" and setters and max(setters, key=lambda w: w.clock) not in won:
                bad.append(f"{where}: the newest {f} lost")
            for w in lost:
                beaten_by = won if policy == "field_lww" else [o for o in writes if applied_fields(o)]
                if not any(o.clock > w.clock for o in beaten_by):
                    bad.append(f"{where}: {w.by} lost {f} ({policy}) though nothing newer applied")
        if value != want:
            bad.append(f"{where}: {f} = {value!r}, the rules give {want!r} (policy {policy})")
    touched = [w for w in writes if applied_fields(w)] + ([seeded] if seeded else [])
    newest = max(touched, key=lambda w: w.clock)
    if (row_ts, final[3]) != (newest.ts, newest.by):
        bad.append(f"{where}: row clock ({row_ts}, {final[3]}), the newest applied write is "
                   f"({newest.ts}, {newest.by})")


def check_round(conn, rows, writes, stats):
    """Check every row of the round; answers the violations."""
    bad = []
    for w in writes:
        stats.statuses[w.answer["status"] if w.answer else "none"] += 1
    for (table, key), (kind, seeded) in rows.items():
        mine = [w for w in writes if (w.table, w.key) == (table, key)]
        if not mine:
            continue
        if len({w.ts for w in mine}) < len(mine):
            stats.ties += 1
        if any(w.answer is None for w in mine):
            bad.append(f"{table} {key}: writes without an answer")
            continue
        check = check_merge_row if kind == "merge" else check_lww_row
        check(conn, table, key, mine, seeded, bad)
    # Answers of writes with mutation ids are remembered exactly.
    for w in writes:
        if w.mutation_id and w.answer and w.answer.get("status") in ("applied", "conflict", "merged"):
            log = "inventory_sync.mutations" if w.table == DEFAULT else "inventory_sync.mutations_uuid"
            kept = conn.execute(
                f"SELECT answer FROM {log} WHERE inventory_sync.table_of(table_id) = %s::regclass AND row_id = %s "
                "AND client_id = %s AND mutation_id = %s", (w.table, str(w.key), w.by, w.mutation_id),
            ).fetchone()
            if kept is None or kept[0] != w.answer:
                bad.append(f"{w.table} {w.key}: mutation {w.mutation_id} remembered {kept}, answered {w.answer}")
    return bad


# --------------------------------------------------------------------------------------------
# Rounds
# --------------------------------------------------------------------------------------------


class Rounds:
    """Generates each round's rows and writes."""

    def __init__(self, seed_value):
        self.rng = random.Random(seed_value)
        self.serial = seed_value * 1_000_000  # keys of different tests never meet

    def key(self, table):
        self.serial += 1
        return self.serial if table == DEFAULT else str(uuid.UUID(int=self.serial))

    def stamp(self, used, by):
        """A client_ts from a handful of milliseconds, unique per (row, device)."""
        for attempt in range(1000):
            ts = BASE + timedelta(milliseconds=self.rng.randrange(4 if attempt < 20 else 64))
            if (ts, by) not in used:
                used.add((ts, by))
                return ts

    def lww_write(self, table, key, writer, used, deletes=0.25):
        by = CLIENTS[writer]
        ts = self.stamp(used, by)
        token = f"{self.serial}-{writer}-{self.rng.randrange(10**6)}"
        mutation = f"m-{token}" if self.rng.random() < 0.3 else None
        if self.rng.random() < deletes:
            return Write(table, key, "delete", ts, by, writer, mutation_id=mutation)
        n = self.rng.randrange(1000)
        payload = {"v": token, f"w{writer}": n}
        if table == ITEMS and self.rng.random() < 0.5:
            payload["stock"] = n
        return Write(table, key, "upsert", ts, by, writer, payload=payload, mutation_id=mutation)

    def merge_write(self, table, key, writer, used):
        by = CLIENTS[writer]
        ts = self.stamp(used, by)
        fields = [f for f in POLICIES if self.rng.random() < 0.5] or [self.rng.choice(list(POLICIES))]
        token = f"{self.serial}-{writer}-{self.rng.randrange(10**6)}"
        payload, base = {}, None
        for f in fields:
            if f == "qty":
                start = self.rng.randrange(90, 110)
                payload[f] = start + self.rng.choice([-3, -2, -1, 1, 2, 5])
                base = {"qty": start}
            else:
                payload[f] = f"{f}:{token}"
        mutation = f"m-{token}" if self.rng.random() < 0.3 else None
        return Write(table, key, "upsert", ts, by, writer, payload=payload, base=base, mutation_id=mutation)


MERGE_SEED = {"qty": 100, "f1": "seed", "f2": "seed", "note": "seed"}


def run(db, plan, rounds, seed_value, isolation=None):
    """Run `rounds` rounds of `plan(rounds_gen, coordinator)` → (rows, jobs); answers Stats."""
    gen = Rounds(seed_value)
    stats = Stats()
    settings = {"TimeZone": "UTC", **({"default_transaction_isolation": isolation} if isolation else {})}
    with connect(db) as coordinator, Barrier(db, BARRIER_KEY, WRITERS, settings) as barrier:
        coordinator.execute("SET TimeZone = 'UTC'")
        for _ in range(rounds):
            rows, jobs = plan(gen, coordinator)
            results = barrier.fire(coordinator, [job.statement() for job in jobs])
            writes = []
            for (kind, answers, retries), job in zip(results, jobs):
                stats.retries += retries
                if kind == "error":
                    stats.flag(stats.rounds, [f"writer failed: {answers}"])
                    answers = [None] * len(job.writes)
                for write, answer in zip(job.writes, answers):
                    write.answer = answer
                writes += job.writes
            stats.flag(stats.rounds, check_round(coordinator, rows, writes, stats))
            stats.rounds += 1
    return stats


def single_calls(table, mode="single", deletes=0.25):
    """Every writer sends one write to the same row (new, existing or a tombstone)."""

    def plan(gen, conn):
        key = gen.key(table)
        kind = gen.rng.choice(["none", "row", "tombstone"])
        seeded = seed(conn, table, key, kind)
        used = set()
        writes = [gen.lww_write(table, key, i, used, deletes) for i in range(WRITERS)]
        if mode != "single":
            for w in writes:
                w.mutation_id = None
        return {(table, key): ("lww", seeded)}, [Job(mode, [w]) for w in writes]

    return plan


def merging_calls(table, mode="single"):
    """Every writer sends one write, touching some policy fields, to the same seeded row."""

    def plan(gen, conn):
        key = gen.key(table)
        seeded = seed(conn, table, key, MERGE_SEED)
        used = set()
        writes = [gen.merge_write(table, key, i, used) for i in range(WRITERS)]
        if mode == "delta_read_modify_write":
            for w in writes:
                start = gen.rng.randrange(90, 110)
                w.payload, w.base, w.mutation_id = {"qty": start + gen.rng.choice([-2, 1, 3])}, {"qty": start}, None
        return {(table, key): ("merge", seeded)}, [Job(mode, [w]) for w in writes]

    return plan


def overlapping_batches(mode="push", tables=(DEFAULT, ITEMS, MERGED)):
    """Every writer pushes a batch over a small shared pool of rows: last-write-wins rows of the
    default table and of oracle.items, merging rows of oracle.merged, upserts and deletes,
    several changes to one row in one batch. Some writers send single calls instead."""

    def plan(gen, conn):
        rows = {}
        for table in tables:
            for _ in range(2):
                key = gen.key(table)
                if table == MERGED:
                    rows[(table, key)] = ("merge", seed(conn, table, key, MERGE_SEED))
                else:
                    rows[(table, key)] = ("lww", seed(conn, table, key, gen.rng.choice(["none", "row", "tombstone"])))
        pool = list(rows)
        used = {k: set() for k in pool}
        jobs = []
        for i in range(WRITERS):
            n = 1 if (mode == "push" and gen.rng.random() < 0.25) else gen.rng.randint(3, 7)
            writes = []
            for _ in range(n):
                table, key = gen.rng.choice(pool)
                if rows[(table, key)][0] == "merge":
                    writes.append(gen.merge_write(table, key, i, used[(table, key)]))
                else:
                    writes.append(gen.lww_write(table, key, i, used[(table, key)], deletes=0.2))
            if mode != "push":
                for w in writes:
                    w.mutation_id = None
            jobs.append(Job("single" if n == 1 and mode == "push" else mode, writes))
        return rows, jobs

    return plan


def report(name, stats):
    print(f"\n{name}: {stats.summary()}" + (f"; e.g. {stats.violations[:3]}" if stats.violations else ""))


def assert_clean(stats, *statuses):
    assert stats.violations == [], "\n".join(stats.violations[:20])
    # The rounds really raced: every outcome happened, and so did ties.
    for status in statuses:
        assert stats.statuses[status] > 0, (status, stats.statuses)
    assert stats.ties > 0


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------


def test_sync_upsert_and_sync_delete(oracle_db):
    stats = run(oracle_db, single_calls(DEFAULT), 100 * SCALE, seed_value=11)
    report("sync_upsert/sync_delete", stats)
    assert_clean(stats, "applied", "conflict")


def test_sync_upsert_in_and_sync_delete_in(oracle_db):
    stats = run(oracle_db, single_calls(ITEMS), 100 * SCALE, seed_value=12)
    report("sync_upsert_in/sync_delete_in", stats)
    assert_clean(stats, "applied", "conflict")


def test_sync_push_overlapping_batches(oracle_db):
    stats = run(oracle_db, overlapping_batches(), 60 * SCALE, seed_value=13)
    report("sync_push (and single calls) on shared rows", stats)
    assert_clean(stats, "applied", "conflict", "merged")


def test_sync_push_overlapping_batches_at_repeatable_read(oracle_db):
    stats = run(oracle_db, overlapping_batches(), 25 * SCALE, seed_value=14, isolation="repeatable read")
    report("sync_push at REPEATABLE READ, retried on 40001", stats)
    assert_clean(stats, "applied", "conflict")
    assert stats.retries > 0, "no concurrent change surfaced as 40001"


def test_merge_policies_on_the_default_table(oracle_db):
    stats = run(oracle_db, merging_calls(DEFAULT), 60 * SCALE, seed_value=15)
    report("merge policies, default table", stats)
    assert_clean(stats, "applied", "conflict", "merged")


def test_merge_policies_on_a_tracked_table(oracle_db):
    stats = run(oracle_db, merging_calls(MERGED), 60 * SCALE, seed_value=16)
    report("merge policies, tracked table", stats)
    assert_clean(stats, "applied", "conflict", "merged")


@pytest.mark.parametrize("table", [DEFAULT, MERGED])
def test_merge_policies_at_repeatable_read(oracle_db, table):
    stats = run(oracle_db, merging_calls(table), 20 * SCALE, seed_value=17, isolation="repeatable read")
    report(f"merge policies, {table}, at REPEATABLE READ, retried on 40001", stats)
    assert_clean(stats, "applied", "merged")
    assert stats.retries > 0, "no concurrent change surfaced as 40001"


# Regression test of a bug this suite found (fixed): once a newer write brings a deleted row back,
# fields it did not send have no clock, so a field_lww (or server_wins) write older than the
# delete applies them; the delete must beat field edits older than it, in every arrival order
# (src/merge.rs merge(): a resurrected row needs the tombstone's clock as the floor of its fields'
# clocks)
@pytest.mark.parametrize("table", [DEFAULT, MERGED])
def test_a_field_write_older_than_an_applied_delete_never_applies(oracle_db, table):
    """Three writes, in every arrival order: A sets f1 at 03:00, D deletes at 02:00, B sets f2 at
    01:00. B is older than D: wherever D applied before B arrived, B must lose."""
    import itertools

    ts = {name: BASE.replace(hour=h) for name, h in (("A", 3), ("D", 2), ("B", 1))}
    broken = []
    with connect(oracle_db) as conn:
        for n, order in enumerate(itertools.permutations("ADB")):
            key = 99_000_000 + n if table == DEFAULT else str(uuid.UUID(int=99_000_000 + n))
            seed(conn, table, key, {"f1": "seed", "f2": "seed", "qty": 1})
            answers = {}
            for name in order:
                if name == "D":
                    w = Write(table, key, "delete", ts["D"], "dev", 0)
                else:
                    w = Write(table, key, "upsert", ts[name], "dev", 0, payload={"f1" if name == "A" else "f2": name})
                sql, params = w.call()
                answers[name] = conn.execute(f"SELECT {sql}", params).fetchone()[0]["status"]
            final = stored(conn, table, key)
            if order.index("D") < order.index("B") and answers["D"] == "applied" and answers["B"] != "conflict":
                broken.append(f"{''.join(order)}: D applied, then the older B answered {answers['B']}: {final}")
    assert broken == []


# The mutants: the same harness and oracle must catch each, in a good share of its rounds, by
# the state the race leaves (an older write over a newer one, a lost delta), not only by errors.


def test_oracle_catches_check_then_write(oracle_db):
    rounds = 40 * SCALE
    stats = run(oracle_db, single_calls(DEFAULT, mode="check_then_write"), rounds, seed_value=21)
    report("mutant: check-then-write upsert/delete", stats)
    assert len(stats.older_won) >= rounds // 10, stats.summary()
    assert len(stats.bad) >= rounds // 4, stats.summary()


def test_oracle_catches_push_without_locks(oracle_db):
    rounds = 20 * SCALE
    stats = run(oracle_db, overlapping_batches(mode="push_without_locks", tables=(DEFAULT,)), rounds, seed_value=22)
    report("mutant: sync_push emulated without locks", stats)
    assert len(stats.older_won) >= rounds // 10, stats.summary()


def test_oracle_catches_delta_read_modify_write(oracle_db):
    rounds = 20 * SCALE
    stats = run(oracle_db, merging_calls(DEFAULT, mode="delta_read_modify_write"), rounds, seed_value=23)
    report("mutant: delta by read-modify-write", stats)
    lost = {v.split(":")[0] for v in stats.violations if "applied deltas" in v}
    assert len(lost) >= rounds // 4, stats.summary()
