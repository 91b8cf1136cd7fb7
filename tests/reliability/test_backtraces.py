"""Clients never see Rust backtraces or source paths, whatever the server's environment.

With RUST_BACKTRACE (or RUST_LIB_BACKTRACE) in its environment, Rust captures a backtrace for
every error the extension reports, and pgrx appends it to the error's DETAIL: dozens of frames,
with the paths of the source files they come from. That is the server's business (its log), never
a client's. scripts/common.sh starts every cluster without those variables; this test starts one
of its own with them (`rel-backtrace`, port $INVENTORY_SYNC_BACKTRACE_PORT, default 55451),
provokes the errors a caller can cause, over real connections, and checks that each has its
SQLSTATE and that none of the fields a client sees (message, detail, hint, context) shows a
backtrace. The cluster is removed at the end."""

import os
import re
import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb

from harness.cluster import Cluster

PORT = int(os.environ.get("INVENTORY_SYNC_BACKTRACE_PORT", "55451"))
TS = "2024-03-01 10:00:00+00"

# The server environments: each asks Rust to capture backtraces.
ENVIRONMENTS = {
    "RUST_BACKTRACE=1": {"RUST_BACKTRACE": "1"},
    "RUST_BACKTRACE=full": {"RUST_BACKTRACE": "full"},
    "RUST_LIB_BACKTRACE=1": {"RUST_LIB_BACKTRACE": "1"},
}

# A tracked table whose constraints and trigger a write can break.
SCHEMA = [
    """CREATE TABLE items (
           id uuid PRIMARY KEY, name text NOT NULL, sku text UNIQUE, stock integer CHECK (stock >= 0),
           updated_at timestamptz NOT NULL)""",
    """CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           IF NEW.name = 'refused' THEN
               RAISE EXCEPTION 'name refused' USING DETAIL = 'The application refuses it.', HINT = 'Pick another.';
           END IF;
           RETURN NEW;
       END $$""",
    "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION refuse()",
    "SELECT inventory_sync.track('items')",
]


def uid(n):
    return str(uuid.UUID(int=n))


def tracked(n, payload):
    """sync_upsert_in of `payload` to row `n` of items."""
    return "SELECT inventory_sync.sync_upsert_in('items', %s, %s, %s)", (uid(n), Jsonb(payload), TS)


def atomic(n, payload):
    """An atomic sync_push of `payload` to row `n` of items: a change the table's rules refuse
    fails it whole, with the rule's error (a single call answers "rejected" instead)."""
    return ("SELECT inventory_sync.sync_push(%s, atomic => true)",
            (Jsonb([{"table": "items", "id": uid(n), "payload": payload, "client_ts": TS}]),))


# (name, SQL, parameters, the SQLSTATE it must raise): errors any caller can provoke, raised by
# PostgreSQL inside the extension's statements (constraints, an application's trigger, a value
# for a typed column) and by the extension itself (arguments, cursors).
ERRORS = [
    ("not_null_column_of_a_tracked_table", *atomic(1, {"name": None}), "23502"),
    ("unique_column_of_a_tracked_table", *atomic(2, {"name": "b", "sku": "taken"}), "23505"),
    ("check_constraint_of_a_tracked_table", *atomic(3, {"name": "c", "stock": -1}), "23514"),
    ("exception_raised_by_a_trigger", *atomic(4, {"name": "refused"}), "P0001"),
    ("invalid_value_for_a_typed_column", *tracked(5, {"name": "x", "stock": "many"}), "22P02"),
    ("null_id", "SELECT inventory_sync.sync_upsert(NULL, %s, %s)", (Jsonb({"a": 1}), TS), "22004"),
    ("payload_not_an_object", "SELECT inventory_sync.sync_upsert(1, %s, %s)", (Jsonb([1]), TS), "22023"),
    ("atomic_push_with_a_failing_change",
     "SELECT inventory_sync.sync_push(%s, atomic => true)",
     (Jsonb([{"table": "items", "id": uid(6), "payload": {"name": "ok"}, "client_ts": TS},
             {"table": "items", "id": uid(7), "payload": {"name": None}, "client_ts": TS}]),), "23502"),
    ("pull_with_a_bad_cursor", "SELECT inventory_sync.sync_pull(%s)", ("not-a-cursor",), "22023"),
]

# What a backtrace or a source location looks like in text.
BACKTRACE = re.compile(
    r"backtrace|\.rs:|rust_begin_unwind|std::|core::|pgrx::|/rustc/|/root/|/\.cargo/", re.IGNORECASE
)
FIELDS = ("message_primary", "message_detail", "message_hint", "context")


@pytest.fixture(scope="module")
def cluster():
    c = Cluster("rel-backtrace", PORT)
    c.create()
    try:
        yield c
    finally:
        c.remove()


@pytest.fixture(scope="module", params=list(ENVIRONMENTS))
def server(request, cluster):
    """The cluster restarted with the environment, and a fresh database on it."""
    env = ENVIRONMENTS[request.param]
    cluster.start_with(env)
    # The premise: the server really runs with the variable (else this test proves nothing).
    seen = cluster.server_environment()
    assert {name: seen.get(name) for name in env} == env
    db = cluster.fresh_database("rel_backtraces")
    with cluster.connect(db) as conn:
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute(*tracked(100, {"name": "a", "sku": "taken"}))  # the sku a write will repeat
    return cluster, db


@pytest.mark.parametrize("name, sql, params, sqlstate", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_reach_clients_without_backtraces(server, name, sql, params, sqlstate):
    cluster, db = server
    with cluster.connect(db) as conn:
        with pytest.raises(psycopg.Error) as raised:
            conn.execute(sql, params)
        error = raised.value
        assert error.sqlstate == sqlstate, f"{error.sqlstate}: {error}"
        leaks = {}
        for field in FIELDS:
            text = getattr(error.diag, field) or ""
            found = BACKTRACE.search(text)
            if found:
                leaks[field] = f"{found.group(0)!r} in {len(text)} characters: {text[:400]!r}…"
        assert leaks == {}, f"{name}: a client sees a backtrace:\n" + "\n".join(f"{f}: {t}" for f, t in leaks.items())
        conn.execute("SELECT 1")  # the session goes on
