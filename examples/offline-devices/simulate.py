"""Two offline-first devices syncing through the Python backend: the Laptops story, played out.

Each device (Worker A, Worker B) keeps its own SQLite database: a copy of the products table,
an outbox of changes not yet accepted by the server, and its pull cursor. Its sync engine pushes
the outbox (POST /sync/push), backs off exponentially while the server cannot be reached,
overwrites a row with the server's version on a 409, then pulls (GET /sync/pull) from its cursor.

Time is simulated: every event happens at a fixed time on 2024-03-01, so the timeline is the
same on every run. The HTTP requests and the database are real.

    python simulate.py --policy lww      # row-level last-write-wins (the default policy)
    python simulate.py --policy delta    # stock as a delta field: concurrent adjustments add up
    python simulate.py --policy versions # the server orders by arrival; devices send base_version,
                                         # and Worker B's clock runs a day behind

It connects with the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD) and
prepares that database itself: it drops and recreates the extension and public.products.
Exit status 0 when both devices and the server end with the same row, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import json
import socket
import sqlite3
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import HTTPError, URLError

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import server as backend  # noqa: E402  (examples/python/server.py)

LAPTOPS = "11111111-1111-1111-1111-111111111111"
DAY = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
START_STOCK = 15
A_SELLS = 3  # Worker A, offline, sells 3 laptops at 10:00
B_RETURNS = 1  # Worker B, online, books 1 returned laptop at 10:05
EXPECTED = {
    "lww": START_STOCK + B_RETURNS,  # B's write is newer and wins whole: A's sale is not counted
    "delta": START_STOCK - A_SELLS + B_RETURNS,  # both adjustments count: 13
    # B's write arrives first and applies (its clock a day behind does not matter); A's was made
    # at the version B's replaced: a conflict A's device shows, journaled.
    "versions": START_STOCK + B_RETURNS,
}
B_CLOCK = {"versions": dt.timedelta(days=-1)}  # how far Worker B's clock is off, per policy

BACKOFF_FIRST = dt.timedelta(seconds=30)
BACKOFF_MAX = dt.timedelta(minutes=8)

SETUP = """
DROP EXTENSION IF EXISTS inventory_sync CASCADE;
DROP TABLE IF EXISTS public.products;
CREATE EXTENSION inventory_sync;
CREATE TABLE public.products (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    stock      integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('public.products');
"""


def at(hh_mm_ss: str) -> dt.datetime:
    h, m, s = (int(x) for x in hh_mm_ss.split(":"))
    return DAY.replace(hour=h, minute=m, second=s)


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(d: dt.timedelta) -> str:
    s = int(d.total_seconds())
    return f"{s}s" if s < 60 else f"{s // 60}min"


# -- the server side ------------------------------------------------------------------------


def prepare_database(conn: psycopg.Connection, policy: str) -> None:
    """A fresh extension and products table, and the Laptops row as the server has it at 09:00."""
    conn.execute("SET client_min_messages = warning")
    conn.execute(SETUP)
    if policy == "delta":
        conn.execute("SELECT inventory_sync.set_policy('public.products', 'stock', 'delta')")
    if policy == "versions":
        conn.execute("SELECT inventory_sync.set_ordering('public.products', 'server')")
    answer = conn.execute(
        "SELECT inventory_sync.sync_upsert_in('public.products', %s, %s, %s)",
        (LAPTOPS, Jsonb({"name": "Laptops", "stock": START_STOCK}), at("09:00:00")),
    ).fetchone()["sync_upsert_in"]
    assert answer["status"] == "applied", answer


def server_stock(conn: psycopg.Connection):
    row = conn.execute("SELECT stock FROM public.products WHERE id = %s", (LAPTOPS,)).fetchone()
    return None if row is None else row["stock"]


# -- a device -------------------------------------------------------------------------------


class Device:
    """A phone or scanner with its own SQLite database."""

    SCHEMA = """
    CREATE TABLE products (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        stock      INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        version    TEXT            -- the server's version of the row, as last seen
    );
    -- Changes made here that the server has not accepted yet, oldest first.
    CREATE TABLE outbox (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        mutation_id TEXT NOT NULL UNIQUE,
        row_id      TEXT NOT NULL,
        payload     TEXT NOT NULL,  -- JSON: the fields this change sets
        base        TEXT NOT NULL,  -- JSON: the values they had when the change was made
        base_version TEXT,          -- the row's version when the change was made
        client_ts   TEXT NOT NULL,
        note        TEXT NOT NULL   -- what the worker did, for the timeline
    );
    CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT);
    """

    def __init__(self, name: str, client_id: str, path: Path, clock_off: dt.timedelta = dt.timedelta(0)):
        self.name = name
        self.client_id = client_id
        self.clock_off = clock_off  # how far this device's clock is from the true time
        self.db = sqlite3.connect(path, isolation_level=None)  # explicit transactions below
        self.db.executescript(self.SCHEMA)
        self.next_mutation = 1

    def stock(self, row_id: str = LAPTOPS):
        row = self.db.execute("SELECT stock FROM products WHERE id = ?", (row_id,)).fetchone()
        return None if row is None else row[0]

    def row(self, row_id: str = LAPTOPS):
        row = self.db.execute("SELECT id, name, stock, updated_at FROM products WHERE id = ?", (row_id,)).fetchone()
        return None if row is None else dict(zip(("id", "name", "stock", "updated_at"), row))

    def adjust_stock(self, row_id: str, by: int, now: dt.datetime, note: str) -> tuple[int, int]:
        """A worker's edit: the local row changes at once, and the change is queued."""
        stamp = iso(now + self.clock_off)  # what this device's clock says
        with self.transaction():
            before = self.stock(row_id)
            after = before + by
            version = self.db.execute("SELECT version FROM products WHERE id = ?", (row_id,)).fetchone()[0]
            self.db.execute("UPDATE products SET stock = ?, updated_at = ? WHERE id = ?", (after, stamp, row_id))
            self.db.execute(
                "INSERT INTO outbox (mutation_id, row_id, payload, base, base_version, client_ts, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (f"{self.client_id}-{self.next_mutation}", row_id, json.dumps({"stock": after}),
                 json.dumps({"stock": before}), version, stamp, note),
            )
            self.next_mutation += 1
        return before, after

    def outbox(self) -> list[dict]:
        keys = ("seq", "mutation_id", "row_id", "payload", "base", "base_version", "client_ts", "note")
        rows = self.db.execute(f"SELECT {', '.join(keys)} FROM outbox ORDER BY seq").fetchall()
        return [dict(zip(keys, r)) for r in rows]

    def has_pending(self, row_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM outbox WHERE row_id = ?", (row_id,)).fetchone() is not None

    def drop_change(self, seq: int) -> None:
        self.db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def store_row(self, data: dict, version) -> None:
        """The row as the server has it, at `version`."""
        self.db.execute(
            "INSERT INTO products (id, name, stock, updated_at, version)"
            " VALUES (:id, :name, :stock, :updated_at, :version)"
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name, stock = excluded.stock,"
            " updated_at = excluded.updated_at, version = excluded.version",
            {**{k: data[k] for k in ("id", "name", "stock", "updated_at")}, "version": version},
        )

    def set_version(self, row_id: str, version) -> None:
        """The server accepted this device's change: its row is now at `version`."""
        self.db.execute("UPDATE products SET version = ? WHERE id = ?", (version, row_id))

    def delete_row(self, row_id: str) -> None:
        self.db.execute("DELETE FROM products WHERE id = ?", (row_id,))

    def cursor(self):
        row = self.db.execute("SELECT value FROM sync_state WHERE key = 'cursor'").fetchone()
        return None if row is None else row[0]

    def set_cursor(self, cursor) -> None:
        self.db.execute("INSERT OR REPLACE INTO sync_state (key, value) VALUES ('cursor', ?)", (cursor,))

    def transaction(self):
        return _SqliteTransaction(self.db)


class _SqliteTransaction:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN")

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")


# -- the network ----------------------------------------------------------------------------


class Network:
    """Which devices can reach the backend. An offline device's requests go to a port where
    nothing listens (bound, never listening), so they fail as a real dropped network does:
    connection refused."""

    def __init__(self, server_url: str):
        self.server_url = server_url
        self._dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._dead.bind(("127.0.0.1", 0))
        self.dead_url = "http://127.0.0.1:%d" % self._dead.getsockname()[1]
        self.offline: set[str] = set()

    def url_for(self, device: Device) -> str:
        return self.dead_url if device.name in self.offline else self.server_url

    def close(self) -> None:
        self._dead.close()


class Unreachable(Exception):
    pass


def http(method: str, url: str, body=None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
    except (URLError, ConnectionError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise Unreachable("unreachable" if isinstance(reason, ConnectionRefusedError) else str(reason)) from e


# -- the sync engine ------------------------------------------------------------------------


@dataclass
class Step:
    """One line of the timeline."""

    what: str
    answer: str = ""


@dataclass
class SyncResult:
    ok: bool
    steps: list[Step] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)  # the 409 outcomes this device took


class SyncEngine:
    """A device's background sync: push the outbox, then pull; back off while unreachable."""

    def __init__(self, device: Device, network: Network, compare_versions: bool = False):
        self.device = device
        self.network = network
        self.compare_versions = compare_versions  # send each change's base_version
        self.failures = 0
        self.conflicts: list[dict] = []
        self.reports: list[dict] = []  # changes the server refused as invalid

    def backoff(self) -> dt.timedelta:
        return min(BACKOFF_FIRST * 2 ** (self.failures - 1), BACKOFF_MAX)

    def sync(self) -> SyncResult:
        result = SyncResult(ok=True)
        try:
            self._push(result)
            self._pull(result)
        except Unreachable as e:
            self.failures += 1
            result.ok = False
            result.steps[-1].answer = f"{e}, retry in {duration(self.backoff())}"
        else:
            self.failures = 0
        return result

    def _push(self, result: SyncResult) -> None:
        d = self.device
        queue = d.outbox()
        if not queue:
            return
        changes = [{
            "table": "public.products", "id": c["row_id"], "payload": json.loads(c["payload"]),
            "base": json.loads(c["base"]), "client_ts": c["client_ts"],
            "client_id": d.client_id, "mutation_id": c["mutation_id"],
            **({"base_version": c["base_version"]} if self.compare_versions else {}),
        } for c in queue]
        step = Step(f"pushes {len(queue)} queued change{'s' * (len(queue) != 1)}")
        result.steps.append(step)
        status, body = http("POST", self.network.url_for(d) + "/sync/push", {"changes": changes})
        if status == 503:
            raise Unreachable(f"503 {body.get('error')}")
        if status != 200:
            raise RuntimeError(f"push answered {status}: {body}")
        step.answer = "push 200: [" + ", ".join(f"{o['http']} {o['status']}" for o in body["results"]) + "]"
        with d.transaction():
            for change, outcome in zip(queue, body["results"]):
                code = outcome["http"]
                if code == 200:  # applied or merged: accepted
                    d.drop_change(change["seq"])
                    if outcome.get("server_data"):
                        d.store_row(outcome["server_data"], outcome.get("version"))
                    else:
                        d.set_version(change["row_id"], outcome.get("version"))
                elif code == 409:  # the server has a newer row: take it, drop ours
                    server = outcome["server_data"]
                    mine = d.stock(change["row_id"])
                    d.drop_change(change["seq"])
                    d.store_row(server, outcome.get("version"))
                    self.conflicts.append(outcome)
                    result.conflicts.append(outcome)
                    result.steps.append(Step(
                        f"shows the conflict, takes server_data: {mine} -> {server['stock']}"))
                elif outcome["status"] == "rejected":  # clock skew: keep it, send again once fixed
                    result.steps.append(Step("clock is ahead: keeps the change for later", "rejected"))
                else:  # an invalid change: sending it again cannot succeed
                    d.drop_change(change["seq"])
                    self.reports.append(outcome)
                    result.steps.append(Step(f"drops an invalid change: {outcome.get('message')}", "error"))

    def _pull(self, result: SyncResult) -> None:
        d = self.device
        rows = 0
        step = Step("pulls since its cursor")
        result.steps.append(step)
        while True:
            cursor = d.cursor()
            url = self.network.url_for(d) + "/sync/pull" + (f"?since={cursor}" if cursor else "")
            status, body = http("GET", url)
            if status == 503:
                raise Unreachable(f"503 {body.get('error')}")
            if status == 410:  # tombstones purged since our cursor: start over
                with d.transaction():
                    d.db.execute("DELETE FROM products")
                    d.set_cursor(None)
                continue
            if status != 200:
                raise RuntimeError(f"pull answered {status}: {body}")
            with d.transaction():
                for c in body["changes"]:
                    if c["table"] != "public.products" or d.has_pending(c["id"]):
                        continue  # not ours, or our own newer edit is still queued
                    if c["op"] == "delete":
                        d.delete_row(c["id"])
                    else:
                        d.store_row(c["data"], c.get("version"))
                    rows += 1
                d.set_cursor(body["cursor"])
            if not body["has_more"]:
                break
        step.answer = f"pull 200: {rows} row{'s' * (rows != 1)}"


# -- the story ------------------------------------------------------------------------------


@dataclass
class Outcome:
    policy: str
    a_stock: int | None
    b_stock: int | None
    server_stock: int | None
    converged: bool
    journal: list[dict]
    a_conflicts: list[dict]
    output: list[str]


class Timeline:
    WHAT, ANSWER = 52, 26
    HEADER = f"{'time':<9} {'who':<9} {'what happened':<{WHAT}} {'server answered':<{ANSWER}} {'A':>3} {'B':>3} {'server':>6}"

    def __init__(self, a: Device, b: Device, db: psycopg.Connection, out):
        self.a, self.b, self.db, self.out = a, b, db, out
        self.lines: list[str] = []

    def say(self, text: str = "") -> None:
        self.lines.append(text)
        if self.out is not None:
            print(text, file=self.out, flush=True)

    def step(self, now: dt.datetime, who: str, what: str, answer: str = "") -> None:
        def show(v):
            return "-" if v is None else str(v)

        self.say(f"{now:%H:%M:%S}  {who:<9} {what:<{self.WHAT}} {answer:<{self.ANSWER}} {show(self.a.stock()):>3} "
                 f"{show(self.b.stock()):>3} {show(server_stock(self.db)):>6}")


def run(policy: str, out=None, conninfo: str = "") -> Outcome:
    """Play the story; print the timeline to out (a file) as it goes, and return how it ended."""
    if policy not in EXPECTED:
        raise ValueError(f"policy must be one of {', '.join(EXPECTED)}")
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as db, \
            tempfile.TemporaryDirectory(prefix="offline-devices-") as tmp:
        db.execute("SET TimeZone = 'UTC'")
        prepare_database(db, policy)
        server = backend.make_server(port=0, conninfo=conninfo)
        backend.serve_in_thread(server)
        network = Network(server.url)
        try:
            return _play(policy, db, network, Path(tmp), out)
        finally:
            network.close()
            server.close()


def _play(policy: str, db, network: Network, tmp: Path, out) -> Outcome:
    a = Device("Worker A", "worker-a", tmp / "worker-a.sqlite3")
    b = Device("Worker B", "worker-b", tmp / "worker-b.sqlite3", B_CLOCK.get(policy, dt.timedelta(0)))
    versions = policy == "versions"
    engines = {a.name: SyncEngine(a, network, versions), b.name: SyncEngine(b, network, versions)}
    tl = Timeline(a, b, db, out)

    rule = {
        "lww": "row-level last-write-wins (the default), the newer write wins whole.",
        "delta": "stock is a delta field: the server applies current + (sent - base).",
        "versions": "the server orders writes by arrival; each change carries the version it was made at.",
    }[policy]
    tl.say(f"The Laptops story, policy {policy}: {rule}")
    tl.say("Worker A and Worker B each keep a SQLite copy and an outbox; their sync engines talk HTTP")
    tl.say("to examples/python/server.py. Time is simulated (2024-03-01, UTC), so every run prints the")
    tl.say("same; the requests and the database are real. A, B, server: the Laptops stock on each after")
    tl.say("each step.")
    if versions:
        tl.say("Worker B's clock runs a day behind: by the clocks, every write of B's would lose.")
    tl.say()
    tl.say(Timeline.HEADER)
    tl.step(at("09:00:00"), "server", f'has "Laptops" with stock {START_STOCK}')

    # The event queue: (time, order, what). Scripted events, plus retries the engines schedule.
    events: list = []
    order = iter(range(1_000_000))
    retry_token = {a.name: None, b.name: None}

    def schedule(t, action, *args):
        heapq.heappush(events, (t, next(order), action, args))

    def sync(now, device, why):
        engine = engines[device.name]
        result = engine.sync()
        for i, s in enumerate(result.steps):
            tl.step(now, device.name, (f"{why}: " if i == 0 and why else "") + s.what, s.answer)
        if result.ok:
            retry_token[device.name] = None
        else:  # retry later, unless something else makes it sync before
            token = object()
            retry_token[device.name] = token
            schedule(now + engine.backoff(), retry, device, token)

    def retry(now, device, token):
        if retry_token[device.name] is token:
            sync(now, device, f"retry {engines[device.name].failures}")

    def start(now, device):
        sync(now, device, "app starts")

    def go_offline(now, device):
        network.offline.add(device.name)
        tl.step(now, device.name, "goes offline (no signal in the warehouse)")

    def come_online(now, device):
        network.offline.discard(device.name)
        tl.step(now, device.name, "is back online")
        sync(now, device, "")

    def adjust(now, device, by, note):
        before, after = device.adjust_stock(LAPTOPS, by, now, note)
        n = len(device.outbox())
        tl.step(now, device.name, f"{note}: {before} -> {after} ({n} queued)")
        sync(now, device, "")

    def periodic(now, device):
        sync(now, device, "periodic sync")

    schedule(at("09:30:00"), start, a)
    schedule(at("09:30:00"), start, b)
    schedule(at("09:50:00"), go_offline, a)
    schedule(at("10:00:00"), adjust, a, -A_SELLS, f"sells {A_SELLS} laptops")
    schedule(at("10:05:00"), adjust, b, +B_RETURNS, f"books {B_RETURNS} returned laptop")
    schedule(at("10:10:00"), come_online, a)
    schedule(at("10:15:00"), periodic, b)
    while events:
        t, _, action, args = heapq.heappop(events)
        action(t, *args)

    # -- how it ended --
    a_stock, b_stock, s_stock = a.stock(), b.stock(), server_stock(db)
    # updated_at as the server's answers show it (JSON, in the session's UTC), which the devices keep.
    server_row = db.execute("SELECT id::text, name, stock, to_jsonb(updated_at) #>> '{}' AS updated_at"
                            " FROM public.products WHERE id = %s", (LAPTOPS,)).fetchone()
    converged = (a.row() == b.row() == server_row) and not a.outbox() and not b.outbox()
    journal = db.execute(
        "SELECT reason, client_id, mutation_id, client_payload, client_ts, server_data->'stock' AS server_stock"
        "  FROM inventory_sync.conflicts ORDER BY conflict_id").fetchall()

    tl.say()
    state = f"Worker A {a_stock}, Worker B {b_stock}, server {s_stock}"
    if converged:
        tl.say(f"Converged: {state}; both outboxes are empty.")
    else:
        tl.say(f"NOT CONVERGED: {state}; outboxes: A {len(a.outbox())}, B {len(b.outbox())}.")
    if policy == "lww":
        tl.say(f"Last-write-wins kept B's write (10:05, newer than A's 10:00): {START_STOCK} + {B_RETURNS} = {s_stock}.")
        tl.say(f"A's sale of {A_SELLS} lost on reconnect (409); A's device showed it and took the server's row.")
    elif policy == "delta":
        tl.say(f"Both adjustments counted: {START_STOCK} - {A_SELLS} + {B_RETURNS} = {s_stock}, although A's write")
        tl.say("arrived last and was stamped earlier than B's: each sends the stock it started from as base.")
    else:
        tl.say(f"B's write arrived first and applied, its clock a day behind notwithstanding: {START_STOCK} + "
               f"{B_RETURNS} = {s_stock}.")
        tl.say(f"A's sale of {A_SELLS} was made at the version B's write replaced: a conflict (409), shown on A's")
        tl.say("device, which took the server's row.")
    if journal:
        tl.say("The lost update was kept in the journal (inventory_sync.conflicts):")
        for j in journal:
            # With the server ordering, a write's time is the server's stamp, not the story's clock.
            when = "" if versions else f" at {j['client_ts']:%H:%M}"
            tl.say(f"  reason {j['reason']}, {j['client_id']} ({j['mutation_id']}), client_payload "
                   f"{json.dumps(j['client_payload'])}{when}, the row that won: stock {j['server_stock']}")
    else:
        tl.say("The journal (inventory_sync.conflicts) is empty: no write lost.")

    return Outcome(policy, a_stock, b_stock, s_stock, converged, journal, engines[a.name].conflicts, tl.lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Two offline devices syncing through inventory_sync")
    parser.add_argument("--policy", choices=sorted(EXPECTED), default="lww",
                        help="how the server merges stock: lww (default) or delta")
    args = parser.parse_args(argv)
    outcome = run(args.policy, out=sys.stdout)
    return 0 if outcome.converged else 1


if __name__ == "__main__":
    sys.exit(main())
