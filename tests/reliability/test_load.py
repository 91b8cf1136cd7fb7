"""Load: 32 connections run a sustained mixed sync workload for a while (short mode, the default:
INVENTORY_SYNC_LOAD_SECONDS, 40 s; soak mode, INVENTORY_SYNC_SOAK=1: INVENTORY_SYNC_SOAK_SECONDS,
600 s), on the default table and a tracked table: upserts, small pushes, pulls with cursors,
deliberate conflicts (old timestamps) and clock-skew rejections, deletes, delta adjustments, and
retries of earlier calls (same mutation ids). A quarter of the connections run at REPEATABLE
READ, where a concurrent update fails a call with 40001 and the call is retried, as the README
says to.

It asserts: no error but the documented retryable ones (40001, 40P01; counted); every call
returns; each backend's memory is flat (the sum of its memory contexts, and its private resident
memory, at the end against the end of the first quarter); and then the oracle: the journal holds
exactly one row per conflict or rejection answer, under its mutation id and reason, and nothing
else; every row's timestamp is the newest client_ts among the writes applied to it, and only rows
some write created exist; the delta rows hold the sum of every applied delta, each once; every
mutation id is recorded once; every retry was answered the first answer, marked duplicate; and
every connection's pulled copy ends equal to the server's rows.

The figures go to stdout (a Markdown table for the docs) and to target/reliability-load.json.
Runs on the test cluster (INVENTORY_SYNC_DSN) in a database of its own.

Pulls fetch pages of INVENTORY_SYNC_LOAD_PULL_LIMIT changes (default 100). This test found a
use-after-free (pull answers built in SPI's memory, freed before PostgreSQL read them), which
crashed the server within seconds at that page size; test_faults.py keeps its regression test."""

import json
import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import SOAK, connect

WORKERS = 32
if SOAK:
    DURATION = float(os.environ.get("INVENTORY_SYNC_SOAK_SECONDS", "600"))
else:
    DURATION = float(os.environ.get("INVENTORY_SYNC_LOAD_SECONDS", "40"))
PULL_LIMIT = int(os.environ.get("INVENTORY_SYNC_LOAD_PULL_LIMIT", "100"))  # a pull's page size
RETRYABLE = {"40001", "40P01"}
DEFAULT = "inventory_sync.inventory"
PRODUCTS = "rel_load.products"
LWW_IDS = range(1, 301)  # upserted, deleted, conflicted
DELTA_IDS = range(1001, 1041)  # only delta adjustments of "stock": never deleted
BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)
SEED_TS = BASE - timedelta(days=1)
MIB = 1024 * 1024
REPORT = Path(__file__).resolve().parents[2] / "target" / "reliability-load.json"

OPS = {  # operation: weight
    "upsert": 20, "upsert_in": 14, "push": 15, "pull": 15, "stale": 8, "delete": 6,
    "delta": 10, "skew": 1, "retry": 11,
}


def key_of(table, i):
    return str(i) if table == DEFAULT else str(uuid.UUID(int=i))


@dataclass
class Write:
    table: str
    id: int
    op: str  # upsert | delete
    payload: dict | None
    ts: datetime
    client_id: str | None
    mutation_id: str | None
    base: dict | None = None
    delta: int = 0
    first: dict | None = None  # the first answer it got
    rejections: int = 0  # answers "rejected" (clock skew): each journaled, none remembered

    @property
    def key(self):
        return (self.table, key_of(self.table, self.id))

    def as_json(self):
        c = {"op": self.op, "id": self.id if self.table == DEFAULT else key_of(self.table, self.id),
             "client_ts": self.ts.isoformat(), "client_id": self.client_id, "mutation_id": self.mutation_id}
        if self.table != DEFAULT:
            c["table"] = self.table
        if self.payload is not None:
            c["payload"] = self.payload
        if self.base is not None:
            c["base"] = self.base
        return c

    def single_sql(self):
        who = (self.client_id, self.mutation_id)
        base = Jsonb(self.base) if self.base is not None else None
        if self.table == DEFAULT and self.op == "upsert":
            return "SELECT inventory_sync.sync_upsert(%s, %s, %s, %s, %s, %s)", (
                self.id, Jsonb(self.payload), self.ts, *who, base)
        if self.table == DEFAULT:
            return "SELECT inventory_sync.sync_delete(%s, %s, %s, %s)", (self.id, self.ts, *who)
        if self.op == "upsert":
            return "SELECT inventory_sync.sync_upsert_in(%s, %s, %s, %s, %s, %s, %s)", (
                self.table, key_of(self.table, self.id), Jsonb(self.payload), self.ts, *who, base)
        return "SELECT inventory_sync.sync_delete_in(%s, %s, %s, %s, %s)", (
            self.table, key_of(self.table, self.id), self.ts, *who)


@dataclass
class Call:
    op: str
    writes: list
    answers: list | None = None  # the first answers, one per write


@dataclass
class Worker:
    n: int
    isolation: str
    conn: psycopg.Connection = None
    calls: list = field(default_factory=list)  # every write call, with its first answers
    ops: Counter = field(default_factory=Counter)
    latency: dict = field(default_factory=lambda: defaultdict(list))  # op -> seconds
    errors: Counter = field(default_factory=Counter)  # sqlstate -> count (retryable or not)
    fatal: list = field(default_factory=list)  # what fails the test
    memory: dict = field(default_factory=dict)  # phase -> (context bytes, RssAnon bytes or None)
    replica: dict = field(default_factory=dict)  # (table, key) -> (op, updated_at) as pulled
    cursor: str | None = None
    pulled: int = 0
    seq: int = 0
    done: bool = False


def backend_memory(w):
    total = w.conn.execute("SELECT sum(total_bytes) FROM pg_backend_memory_contexts").fetchone()[0]
    rss = None
    try:
        with open(f"/proc/{w.conn.info.backend_pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    rss = int(line.split()[1]) * 1024
    except OSError:  # a cluster on another machine: contexts only
        pass
    return int(total), rss


def run_worker(w, dsn_db, started, stop_at):
    rng = random.Random(w.n)
    client = f"w{w.n}"
    ops, weights = list(OPS), list(OPS.values())
    phases = [("start", 2.0), ("q1", DURATION / 4), ("mid", DURATION / 2)]

    def clock(jitter=0.5):
        """The device's clock: logical time since BASE, a little off."""
        return BASE + timedelta(seconds=time.monotonic() - started + rng.uniform(-jitter, jitter))

    def mutation():
        w.seq += 1
        return f"{client}-{w.seq}"

    def lww_write(table=None, op="upsert", ts=None):
        table = table or rng.choice([DEFAULT, PRODUCTS])
        i = rng.choice(LWW_IDS)
        payload = None
        if op == "upsert":
            payload = ({"v": w.seq, "by": client} if table == DEFAULT
                       else {"name": client, "qty": w.seq % 1000, "note": rng.choice([None, "x", "y"])})
        return Write(table, i, op, payload, ts or clock(), client, mutation())

    def delta_write():
        table = rng.choice([DEFAULT, PRODUCTS])
        base = rng.randint(0, 100)
        d = rng.choice([-3, -2, -1, 1, 2, 3, 5])
        return Write(table, rng.choice(DELTA_IDS), "upsert", {"stock": base + d}, clock(), client, mutation(),
                     base={"stock": base}, delta=d)

    def any_write():
        r = rng.random()
        if r < 0.45:
            return lww_write()
        if r < 0.6:
            return lww_write(op="delete")
        if r < 0.8:
            return lww_write(ts=clock() - timedelta(seconds=rng.uniform(30, 3600)))
        return delta_write()

    def execute(op, sql, args):
        """One call, retried on 40001/40P01 as the README says; answers its result."""
        t = time.monotonic()
        try:
            while True:
                try:
                    return w.conn.execute(sql, args).fetchone()[0]
                except psycopg.Error as e:
                    w.errors[e.sqlstate] += 1
                    if e.sqlstate not in RETRYABLE:
                        raise
        finally:
            w.latency[op].append(time.monotonic() - t)
            w.ops[op] += 1

    def send(call, retry=False):
        if len(call.writes) == 1 and call.op != "push":
            answers = [execute(call.op, *call.writes[0].single_sql())]
        else:
            answers = execute(call.op, "SELECT inventory_sync.sync_push(%s)",
                              (Jsonb([x.as_json() for x in call.writes]),))
        for x, a in zip(call.writes, answers):
            if a["status"] == "rejected":
                x.rejections += 1
            if a["status"] == "error":
                w.fatal.append(f"push outcome error {a.get('sqlstate')}: {a}")
                w.errors[f"outcome {a.get('sqlstate')}"] += 1
            elif retry and x.first["status"] == "rejected":
                # A rejection is not remembered: the retry is decided afresh (and still too early).
                if a["status"] != "rejected" or "duplicate" in a:
                    w.fatal.append(f"retry of rejected {x.mutation_id} answered {a}")
            elif retry and a != {**x.first, "duplicate": True}:
                w.fatal.append(f"retry of {x.mutation_id} answered {a}, first {x.first}")
            elif not retry and "duplicate" in a:
                w.fatal.append(f"first send of {x.mutation_id} answered as a duplicate: {a}")
        return answers

    def pull():
        page = execute("pull", "SELECT inventory_sync.sync_pull(%s, %s)", (w.cursor, PULL_LIMIT))
        for c in page["changes"]:
            w.replica[(c["table"], str(c["id"]))] = (c["op"], datetime.fromisoformat(c["updated_at"]))
        w.pulled += len(page["changes"])
        w.cursor = page["cursor"]
        return page["has_more"]

    try:
        w.conn = connect(dsn_db, application_name=f"rel-load-{w.n}")
        w.conn.execute("SET statement_timeout = '60s'")  # a hung call fails the test, not the run
        if w.isolation != "read committed":
            w.conn.execute(f"SET default_transaction_isolation = '{w.isolation}'")
        while time.monotonic() < stop_at:
            elapsed = time.monotonic() - started
            while phases and elapsed >= phases[0][1]:
                w.memory[phases.pop(0)[0]] = backend_memory(w)
            op = rng.choices(ops, weights)[0]
            if op == "pull":
                pull()
                continue
            if op == "retry":
                if not w.calls:
                    continue
                call = rng.choice(w.calls[-50:])
                send(Call("retry", call.writes), retry=True)
                continue
            if op == "push":
                writes = [any_write() for _ in range(rng.randint(2, 6))]
            elif op == "upsert":
                writes = [lww_write(DEFAULT)]
            elif op == "upsert_in":
                writes = [lww_write(PRODUCTS)]
            elif op == "stale":
                writes = [lww_write(ts=clock() - timedelta(seconds=rng.uniform(30, 3600)))]
            elif op == "delete":
                writes = [lww_write(op="delete")]
            elif op == "delta":
                writes = [delta_write()]
            else:  # skew: a device whose clock runs a day ahead
                x = lww_write()
                x.ts = datetime.now(timezone.utc) + timedelta(days=1)
                writes = [x]
            call = Call(op, writes)
            call.answers = send(call)
            for x, a in zip(writes, call.answers):
                x.first = a
            w.calls.append(call)
        w.memory["end"] = backend_memory(w)
    except Exception as e:  # noqa: BLE001 - reported and failed by the test
        w.fatal.append(f"{type(e).__name__}: {getattr(e, 'sqlstate', '')} {e}")
    finally:
        w.done = True


def setup(db):
    with connect(db) as conn:
        conn.execute("CREATE SCHEMA rel_load")
        conn.execute(
            f"""CREATE TABLE {PRODUCTS} (id uuid PRIMARY KEY, name text NOT NULL DEFAULT '',
                qty integer, note text, stock numeric NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL)"""
        )
        conn.execute(f"SELECT inventory_sync.track('{PRODUCTS}')")
        for tbl in (DEFAULT, PRODUCTS):
            conn.execute("SELECT inventory_sync.set_policy(%s, 'stock', 'delta')", (tbl,))
        seeds = [Write(t, i, "upsert", {"stock": 0}, SEED_TS, None, None) for t in (DEFAULT, PRODUCTS) for i in DELTA_IDS]
        answers = conn.execute("SELECT inventory_sync.sync_push(%s)", (Jsonb([s.as_json() for s in seeds]),)).fetchone()[0]
        assert {a["status"] for a in answers} == {"applied"}
        for s, a in zip(seeds, answers):
            s.first = a
        return seeds


def server_rows(conn):
    """(table, key) -> (op, timestamp) of every row and tombstone."""
    rows = {(DEFAULT, str(i)): ("delete" if deleted else "upsert", ts)
            for i, deleted, ts in conn.execute("SELECT id, deleted, updated_at FROM inventory_sync.inventory")}
    feed = {(PRODUCTS, k): (op, ts) for k, op, ts in conn.execute(
        "SELECT row_id, op, ts FROM inventory_sync.changes_uuid WHERE inventory_sync.table_of(table_id) = %s::regclass",
        (PRODUCTS,))}
    live = {(PRODUCTS, str(k)): ts for k, ts in conn.execute(f"SELECT id, updated_at FROM {PRODUCTS}")}
    # The feed row of every tracked row agrees with the row itself.
    assert {k: ts for k, (op, ts) in feed.items() if op == "upsert"} == live
    rows.update(feed)
    return rows


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"min": min(values), "median": int(statistics.median(values)), "max": max(values)}


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def wait_for_server(db, timeout=60):
    """After a crash, give the cluster back to the next tests only once it accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with connect(db) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            time.sleep(0.2)


def test_sustained_mixed_load(db):
    seeds = setup(db)
    workers = [Worker(n, "repeatable read" if n % 4 == 3 else "read committed") for n in range(WORKERS)]
    started = time.monotonic()
    stop_at = started + DURATION
    threads = [threading.Thread(target=run_worker, args=(w, db, started, stop_at), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        run_and_check(db, seeds, workers, threads, started, stop_at)
    finally:
        for w in workers:
            if w.conn is not None and w.done:
                w.conn.close()


def run_and_check(db, seeds, workers, threads, started, stop_at):
    for t in threads:
        t.join(max(1.0, stop_at + 120 - time.monotonic()))
    elapsed = time.monotonic() - started
    hung = [w.n for w in workers if not w.done]
    if hung:
        with connect(db) as conn:
            activity = conn.execute(
                "SELECT application_name, state, wait_event_type, wait_event, left(query, 80) "
                "FROM pg_stat_activity WHERE application_name LIKE 'rel-load-%%'").fetchall()
        pytest.fail(f"workers {hung} never returned from their call: {activity}")

    fatal = [f"worker {w.n}: {f}" for w in workers for f in w.fatal]
    if any("OperationalError" in f for f in fatal):
        wait_for_server(db)
        pytest.fail(f"the server dropped the connections (crashed?) after {elapsed:.1f} s: {fatal[:3]}")

    # Every connection pulls to the end now that writing stopped.
    for w in workers:
        while True:
            page = w.conn.execute("SELECT inventory_sync.sync_pull(%s, %s)", (w.cursor, PULL_LIMIT)).fetchone()[0]
            for c in page["changes"]:
                w.replica[(c["table"], str(c["id"]))] = (c["op"], datetime.fromisoformat(c["updated_at"]))
            w.cursor = page["cursor"]
            if not page["has_more"]:
                break

    errors = sum((w.errors for w in workers), Counter())
    writes = seeds + [x for w in workers for c in w.calls for x in c.writes]
    statuses = Counter(x.first["status"] for x in writes[len(seeds):])
    ops = sum((w.ops for w in workers), Counter())
    latency = defaultdict(list)
    for w in workers:
        for op, xs in w.latency.items():
            latency[op] += xs
    calls = sum(ops.values())
    memory = {phase: {"contexts_kib": summary([w.memory[phase][0] // 1024 for w in workers if phase in w.memory]),
                      "rss_anon_kib": summary([w.memory[phase][1] // 1024 for w in workers
                                               if phase in w.memory and w.memory[phase][1] is not None])}
              for phase in ("start", "q1", "mid", "end")}

    with connect(db) as conn:
        rows = server_rows(conn)
        journal = Counter(conn.execute(
            "SELECT client_id, mutation_id, reason FROM inventory_sync.conflicts").fetchall())
        mutations = conn.execute("SELECT count(*), count(DISTINCT (row_id, table_id, client_id, mutation_id)) "
                                 "FROM (SELECT row_id, table_id, client_id, mutation_id FROM inventory_sync.mutations"
                                 " UNION ALL SELECT row_id, table_id, client_id, mutation_id"
                                 " FROM inventory_sync.mutations_uuid) m").fetchone()
        stock = {(DEFAULT, str(i)): s for i, s in conn.execute(
            "SELECT id, (data->>'stock')::numeric FROM inventory_sync.inventory WHERE id BETWEEN %s AND %s",
            (DELTA_IDS.start, DELTA_IDS.stop - 1))}
        stock.update({(PRODUCTS, str(k)): s for k, s in conn.execute(
            f"SELECT id, stock FROM {PRODUCTS} WHERE id = ANY(%s)",
            ([uuid.UUID(int=i) for i in DELTA_IDS],))})

    report = {
        "mode": "soak" if SOAK else "short",
        "workers": WORKERS,
        "pull_limit": PULL_LIMIT,
        "repeatable_read_workers": sum(w.isolation == "repeatable read" for w in workers),
        "duration_s": round(elapsed, 1),
        "calls": calls,
        "calls_per_s": round(calls / elapsed, 1),
        "writes_decided": len(writes) - len(seeds),
        "writes_per_s": round((len(writes) - len(seeds)) / elapsed, 1),
        "changes_pulled": sum(w.pulled for w in workers),
        "by_op": {op: {"calls": ops[op],
                       "p50_ms": round(1000 * percentile(latency[op], 50), 2),
                       "p99_ms": round(1000 * percentile(latency[op], 99), 2),
                       "max_ms": round(1000 * max(latency[op]), 1)} for op in OPS if latency[op]},
        "statuses": dict(statuses),
        "errors_by_sqlstate": dict(errors),
        "memory": memory,
        "journal_rows": sum(journal.values()),
        "mutations": mutations[0],
        "rows": len(rows),
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)

    # -- the assertions -------------------------------------------------------------------------
    assert fatal == [], fatal[:10]
    assert set(errors) <= RETRYABLE, errors
    for w in workers:
        (q1, q1_rss), (end, end_rss) = w.memory["q1"], w.memory["end"]
        assert end <= 2 * q1 + 4 * MIB, f"worker {w.n}: memory contexts {q1} -> {end} bytes"
        if q1_rss is not None and end_rss is not None:
            assert end_rss <= 2 * q1_rss + 8 * MIB, f"worker {w.n}: RssAnon {q1_rss} -> {end_rss} bytes"

    # The journal: one row per conflict (stale) or rejection (clock_skew) answer, nothing else. A
    # conflict is remembered under its mutation id (a retry replays it, journaling nothing); a
    # rejection is not, so each retry of one is decided and journaled again.
    reasons = {"conflict": "stale", "merged": "stale"}
    expected_journal = Counter((x.client_id, x.mutation_id, reasons[x.first["status"]])
                               for x in writes if x.first["status"] in reasons)
    for x in writes:
        if x.rejections:
            expected_journal[(x.client_id, x.mutation_id, "clock_skew")] += x.rejections
    assert journal == expected_journal

    # Each row's timestamp is the newest client_ts of the writes applied to it, and it is a
    # tombstone if that write was a delete. Only rows some write created exist.
    newest, ops_at = {}, defaultdict(set)
    for x in writes:
        if x.first["status"] in ("applied", "merged"):
            newest[x.key] = max(newest.get(x.key, x.ts), x.ts)
            ops_at[(x.key, x.ts)].add(x.op)
            assert datetime.fromisoformat(x.first["updated_at"]) >= x.ts
    assert {k: ts for k, (op, ts) in rows.items()} == newest
    for k, (op, ts) in rows.items():
        assert op in ops_at[(k, ts)], f"{k} is a {op} at {ts}, but the newest write there was {ops_at[(k, ts)]}"

    # Each applied delta counted once.
    sums = Counter({k: 0 for k in stock})
    for x in writes:
        if x.delta and x.first["status"] in ("applied", "merged"):
            sums[x.key] += x.delta
    assert stock == dict(sums)

    # Every mutation id recorded once, except rejected ones (never remembered): the seeds have none.
    remembered = sum(1 for x in writes[len(seeds):] if x.first["status"] != "rejected")
    assert mutations[0] == mutations[1] == remembered

    # Every connection's pulled copy is the server's state.
    for w in workers:
        assert w.replica == rows, f"worker {w.n}'s pulled copy differs"


def print_report(r):
    m = r["memory"]

    def mem(phase, kind):
        s = m[phase][kind]
        return "n/a" if s is None else f"{s['median']:,} / {s['max']:,}"

    lines = [
        "",
        f"Load ({r['mode']} mode): {r['workers']} connections ({r['repeatable_read_workers']} at REPEATABLE READ) "
        f"for {r['duration_s']} s, pulling pages of {r['pull_limit']}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| calls | {r['calls']:,} ({r['calls_per_s']:,} /s) |",
        f"| writes decided | {r['writes_decided']:,} ({r['writes_per_s']:,} /s) |",
        f"| changes pulled | {r['changes_pulled']:,} |",
        f"| answers | {', '.join(f'{k} {v:,}' for k, v in sorted(r['statuses'].items()))} |",
        f"| errors by SQLSTATE (retried) | {', '.join(f'{k}: {v}' for k, v in sorted(r['errors_by_sqlstate'].items())) or 'none'} |",
        f"| journal rows / mutation ids / rows | {r['journal_rows']:,} / {r['mutations']:,} / {r['rows']:,} |",
        f"| backend memory contexts, KiB, median / max: start, end of first quarter, end | "
        f"{mem('start', 'contexts_kib')}; {mem('q1', 'contexts_kib')}; {mem('end', 'contexts_kib')} |",
        f"| backend RssAnon, KiB, median / max: start, end of first quarter, end | "
        f"{mem('start', 'rss_anon_kib')}; {mem('q1', 'rss_anon_kib')}; {mem('end', 'rss_anon_kib')} |",
        "",
        "| operation | calls | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {op} | {v['calls']:,} | {v['p50_ms']} | {v['p99_ms']} | {v['max_ms']} |" for op, v in r["by_op"].items()]
    print("\n".join(lines))
