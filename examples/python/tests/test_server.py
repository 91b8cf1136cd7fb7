"""The Python backend over real HTTP, against a real PostgreSQL with the extension.

The database is the one the libpq environment names (PGHOST, PGPORT, PGUSER, PGDATABASE);
this module drops and recreates the extension and the products table in it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import NamedTuple
from urllib.error import HTTPError

import psycopg
import pytest
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import server as backend  # noqa: E402

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
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta');
"""


def unversioned(value):
    """An answer without its row versions (each is the server's clock when the row was written,
    different from run to run): each is checked to be one (16 hex digits, or null) and left out."""
    if isinstance(value, list):
        return [unversioned(v) for v in value]
    if not isinstance(value, dict):
        return value
    version = value.get("version", "")
    assert version in ("", None) or re.fullmatch(r"[0-9a-f]{16}", version), value
    return {k: unversioned(v) for k, v in value.items() if k != "version"}


def ts(hh_mm: str) -> str:
    """A client timestamp on 2024-03-01, UTC: ts("10:05") -> "2024-03-01T10:05:00Z"."""
    return f"2024-03-01T{hh_mm}:00Z"


def stored(hh_mm: str) -> str:
    """The same instant as the database renders it in answers (session TimeZone UTC)."""
    return f"2024-03-01T{hh_mm}:00+00:00"


class Response(NamedTuple):
    status: int
    body: dict
    text: str
    headers: dict


def call(base: str, method: str, path: str, body=None, raw: bytes | None = None) -> Response:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
            return Response(r.status, unversioned(json.loads(text)), text, dict(r.headers))
    except HTTPError as e:
        text = e.read().decode()
        return Response(e.code, unversioned(json.loads(text)), text, dict(e.headers))


@pytest.fixture(scope="module")
def db():
    with psycopg.connect(autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute(SETUP)
        conn.execute("SET TimeZone = 'UTC'")
        yield conn


@pytest.fixture(scope="module")
def srv(db):
    server = backend.make_server(port=0)
    backend.serve_in_thread(server)
    yield server
    server.close()


@pytest.fixture
def api(srv):
    return lambda method, path, body=None, raw=None: call(srv.url, method, path, body, raw)


def change(row_id, payload, at, **extra):
    return {"table": "products", "id": str(row_id), "payload": payload, "client_ts": ts(at), **extra}


def product(db, row_id):
    return db.execute("SELECT to_jsonb(p) AS row FROM public.products p WHERE id = %s", (row_id,)).fetchone()


def journal(db, row_id):
    return db.execute(
        "SELECT reason, op, client_payload, client_ts, client_id, mutation_id, server_data"
        "  FROM inventory_sync.conflicts WHERE row_id = %s ORDER BY conflict_id", (str(row_id),)
    ).fetchall()


def create(api, row_id, name, stock, at):
    r = api("POST", "/sync/change", change(row_id, {"name": name, "stock": stock}, at))
    assert (r.status, r.body["status"]) == (200, "applied"), r.body
    return r


# -- POST /sync/change ----------------------------------------------------------------------


def test_applied_creates_the_row(api, db):
    row_id = uuid.uuid4()
    r = api("POST", "/sync/change", change(row_id, {"name": "Laptops", "stock": 15}, "09:00"))
    assert r.status == 200
    assert r.body == {"id": str(row_id), "status": "applied", "created": True, "updated_at": stored("09:00")}
    assert product(db, row_id)["row"] == {"id": str(row_id), "name": "Laptops", "stock": 15, "updated_at": stored("09:00")}

    # A newer write to the same row applies too, and is not a creation.
    r = api("POST", "/sync/change", change(row_id, {"stock": 14}, "09:30"))
    assert r.status == 200
    assert r.body == {"id": str(row_id), "status": "applied", "created": False, "updated_at": stored("09:30")}
    assert product(db, row_id)["row"]["stock"] == 14


def test_conflict_answers_409_with_the_stored_row_and_journals_the_write(api, db):
    row_id = uuid.uuid4()
    create(api, row_id, "Laptops", 10, "09:00")
    assert api("POST", "/sync/change", change(row_id, {"stock": 15}, "10:05")).status == 200

    # Worker A, offline since before 10:00, set 8 at 10:00; it arrives now.
    r = api("POST", "/sync/change", change(row_id, {"stock": 8}, "10:00", client_id="worker-a", mutation_id="a-1"))
    assert r.status == 409
    assert r.body["status"] == "conflict"
    assert r.body["server_data"] == {"id": str(row_id), "name": "Laptops", "stock": 15, "updated_at": stored("10:05")}
    assert r.body["server_data"] == product(db, row_id)["row"]  # exactly the stored row

    [entry] = journal(db, row_id)
    assert entry["reason"] == "stale"
    assert entry["op"] == "upsert"
    assert entry["client_payload"] == {"stock": 8}
    assert entry["client_ts"] == dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.timezone.utc)
    assert (entry["client_id"], entry["mutation_id"]) == ("worker-a", "a-1")
    assert entry["server_data"]["stock"] == 15


def test_clock_skew_is_rejected_with_422(api, db):
    row_id = uuid.uuid4()
    create(api, row_id, "Laptops", 10, "09:00")
    ahead = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).isoformat()
    r = api("POST", "/sync/change", {"table": "products", "id": str(row_id), "payload": {"stock": 1}, "client_ts": ahead})
    assert r.status == 422
    assert r.body["status"] == "rejected"
    assert r.body["reason"] == "clock_skew"
    assert 86_000 < float(r.body["ahead_by_seconds"]) <= 86_400
    assert float(r.body["max_clock_skew_seconds"]) == 300
    assert product(db, row_id)["row"]["stock"] == 10  # not applied
    [entry] = journal(db, row_id)
    assert (entry["reason"], entry["client_payload"]) == ("clock_skew", {"stock": 1})


def test_invalid_change_is_422_with_its_sqlstate_and_changes_nothing(api, db):
    row_id = uuid.uuid4()
    create(api, row_id, "Laptops", 10, "09:00")
    before = product(db, row_id)["row"]

    r = api("POST", "/sync/change", change(row_id, {"stok": 99}, "11:00"))
    assert r.status == 422
    assert r.body["status"] == "error"
    assert r.body["sqlstate"] == "42703"
    assert r.body["message"] == 'payload key "stok" is not a column of table public.products'

    r = api("POST", "/sync/change", change(row_id, {"stock": "many"}, "11:00"))
    assert (r.status, r.body["status"], r.body["sqlstate"]) == (422, "error", "22P02")

    assert product(db, row_id)["row"] == before
    assert journal(db, row_id) == []  # an invalid change is not a conflict: nothing journaled


def test_malformed_bodies_are_400(api, db):
    feed_before = db.execute("SELECT count(*) AS n FROM inventory_sync.changes_uuid").fetchone()["n"]
    for path, raw in [
        ("/sync/change", b"not json"),
        ("/sync/change", b'{"table": "products",'),
        ("/sync/change", b'[{"id": 1, "payload": {}, "client_ts": "2024-03-01T10:00:00Z"}]'),  # an array, not a change
        ("/sync/change", b'{"id": 1, "payload": {"x": NaN}, "client_ts": "2024-03-01T10:00:00Z"}'),
        ("/sync/push", b"\xff\xfe garbage"),
        ("/sync/push", b'{"chnges": []}'),
        ("/sync/push", b'[{"id": 1}]'),
        ("/sync/push", b'{"changes": [], "atomic": true}'),
    ]:
        r = api("POST", path, raw=raw)
        assert r.status == 400, (path, raw, r)
        assert isinstance(r.body["error"], str) and r.body["error"], r.body
    assert db.execute("SELECT count(*) AS n FROM inventory_sync.changes_uuid").fetchone()["n"] == feed_before


def test_push_changes_not_an_array_is_the_databases_422(api):
    r = api("POST", "/sync/push", {"changes": {"id": 1}})
    assert r.status == 422
    assert r.body == {"error": "changes must be a JSON array", "sqlstate": "22023"}


# -- POST /sync/push ------------------------------------------------------------------------


def test_push_batch_with_mixed_outcomes(api, db):
    laptop, cable, mouse = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    create(api, laptop, "Laptop", 15, "10:05")
    create(api, mouse, "Mouse", 40, "10:06")
    ahead = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)).isoformat()

    r = api("POST", "/sync/push", {"changes": [
        change(laptop, {"stock": 8}, "10:00", client_id="phone-a", mutation_id="a-1"),          # older: conflict
        {"op": "delete", "table": "products", "id": str(mouse), "client_ts": ts("10:10"),
         "client_id": "phone-a", "mutation_id": "a-2"},                                        # applied delete
        change(cable, {"name": "Cable", "stock": 100}, "10:11", client_id="phone-a", mutation_id="a-3"),  # created
        change(cable, {"stok": 99}, "10:13", client_id="phone-a", mutation_id="a-4"),           # invalid
        {"table": "products", "id": str(cable), "payload": {"stock": 1}, "client_ts": ahead},  # clock skew
        {"id": 8, "payload": {"note": "count shelf B"}, "client_ts": ts("10:12")},              # default table
    ]})
    assert r.status == 200
    results = r.body["results"]
    assert [(o["status"], o["http"]) for o in results] == [
        ("conflict", 409), ("applied", 200), ("applied", 200), ("error", 422), ("rejected", 422), ("applied", 200),
    ]
    assert [o["id"] for o in results] == [str(laptop), str(mouse), str(cable), str(cable), str(cable), 8]
    assert results[0]["server_data"] == {"id": str(laptop), "name": "Laptop", "stock": 15, "updated_at": stored("10:05")}
    assert results[1]["deleted"] is True
    assert results[2]["created"] is True
    assert results[3]["sqlstate"] == "42703"
    assert results[4]["reason"] == "clock_skew"

    assert product(db, laptop)["row"]["stock"] == 15
    assert product(db, mouse) is None
    assert product(db, cable)["row"] == {"id": str(cable), "name": "Cable", "stock": 100, "updated_at": stored("10:11")}
    assert db.execute("SELECT data FROM inventory_sync.inventory WHERE id = 8").fetchone()["data"] == {"note": "count shelf B"}
    assert [e["reason"] for e in journal(db, laptop)] == ["stale"]
    assert [e["reason"] for e in journal(db, cable)] == ["clock_skew"]


def test_a_retry_answers_duplicate_and_applies_once(api, db):
    # Item 42 of the default table, whose "stock" is a delta field: a delta applied twice would show.
    first = api("POST", "/sync/change", {"id": 42, "payload": {"name": "Tablets", "stock": 10}, "client_ts": ts("09:00")})
    assert first.status == 200
    sale = {"id": 42, "payload": {"stock": 8}, "base": {"stock": 10}, "client_ts": ts("10:00"),
            "client_id": "phone-a", "mutation_id": "sale-1"}

    r1 = api("POST", "/sync/push", {"changes": [sale]})
    assert [(o["status"], o["http"], o.get("duplicate")) for o in r1.body["results"]] == [("applied", 200, None)]
    # The answer was lost; the phone sends the same queue again, and then the single change.
    r2 = api("POST", "/sync/push", {"changes": [sale]})
    r3 = api("POST", "/sync/change", sale)
    assert [(o["status"], o["http"], o["duplicate"]) for o in r2.body["results"]] == [("applied", 200, True)]
    assert (r3.status, r3.body["status"], r3.body["duplicate"]) == (200, "applied", True)
    assert r3.body["updated_at"] == r1.body["results"][0]["updated_at"]

    data = db.execute("SELECT data FROM inventory_sync.inventory WHERE id = 42").fetchone()["data"]
    assert data == {"name": "Tablets", "stock": 8}  # 10 - 2 once, not 6

    # A retried conflict is journaled once.
    row_id = uuid.uuid4()
    create(api, row_id, "Laptops", 15, "10:05")
    stale = change(row_id, {"stock": 8}, "10:00", client_id="phone-a", mutation_id="a-9")
    assert api("POST", "/sync/change", stale).status == 409
    again = api("POST", "/sync/change", stale)
    assert (again.status, again.body["status"], again.body["duplicate"]) == (409, "conflict", True)
    assert len(journal(db, row_id)) == 1


# -- GET /sync/pull -------------------------------------------------------------------------


def pull_all(api, since=None, limit=1000):
    changes, pages = [], 0
    while True:
        path = f"/sync/pull?limit={limit}" + (f"&since={since}" if since else "")
        r = api("GET", path)
        assert r.status == 200, r.body
        changes += r.body["changes"]
        since, pages = r.body["cursor"], pages + 1
        if not r.body["has_more"]:
            return changes, since, pages


def test_pull_then_pull_from_its_cursor(api, db):
    row_id = uuid.uuid4()
    create(api, row_id, "Monitors", 7, "09:00")

    everything, cursor, _ = pull_all(api)
    feed = db.execute("SELECT (SELECT count(*) FROM inventory_sync.changes_uuid)"
                      "     + (SELECT count(*) FROM inventory_sync.inventory) AS n").fetchone()["n"]
    assert len(everything) == feed  # one entry per table and key, as it is now
    [mine] = [c for c in everything if c["id"] == str(row_id)]
    assert mine == {"table": "public.products", "id": str(row_id), "op": "upsert", "updated_at": stored("09:00"),
                    "data": {"id": str(row_id), "name": "Monitors", "stock": 7, "updated_at": stored("09:00")}}

    # In pages of 2 the same changes come, in the same order.
    paged, paged_cursor, pages = pull_all(api, limit=2)
    assert paged == everything
    assert pages >= (len(everything) + 1) // 2 >= 2
    assert paged_cursor == cursor

    # Up to date: nothing new, the cursor stays.
    r = api("GET", f"/sync/pull?since={cursor}")
    assert r.body == {"changes": [], "cursor": cursor, "has_more": False}

    # Another device sells one and adds a product: the next pull has exactly those two.
    other = uuid.uuid4()
    assert api("POST", "/sync/push", {"changes": [change(row_id, {"stock": 6}, "11:00"),
                                                  change(other, {"name": "Webcams", "stock": 3}, "11:01")]}).status == 200
    r = api("GET", f"/sync/pull?since={cursor}")
    assert r.status == 200
    assert r.body["has_more"] is False
    assert sorted((c["id"], c["data"]["stock"], c["updated_at"]) for c in r.body["changes"]) == sorted(
        [(str(row_id), 6, stored("11:00")), (str(other), 3, stored("11:01"))])
    assert r.body["cursor"] != cursor


def test_bad_cursor_and_limit_are_422(api):
    r = api("GET", "/sync/pull?since=not-a-cursor")
    assert r.status == 422
    assert r.body == {"error": "invalid cursor", "sqlstate": "22023"}
    r = api("GET", "/sync/pull?limit=0")
    assert (r.status, r.body["sqlstate"]) == (422, "22023")
    assert "between 1 and 100000" in r.body["error"]
    r = api("GET", "/sync/pull?limit=ten")
    assert (r.status, r.body["sqlstate"]) == (422, "22P02")


def test_cursor_older_than_a_tombstone_purge_is_410(api, db):
    _, cursor, _ = pull_all(api)
    gone = uuid.uuid4()
    create(api, gone, "Old stock", 1, "09:00")
    assert api("POST", "/sync/push", {"changes": [{"op": "delete", "table": "products", "id": str(gone),
                                                   "client_ts": ts("09:30")}]}).status == 200
    db.execute("UPDATE inventory_sync.changes_uuid SET changed_at = changed_at - interval '40 days' WHERE op = 'delete'")
    assert db.execute("SELECT inventory_sync.purge_tombstones('30 days') AS n").fetchone()["n"] >= 1
    r = api("GET", f"/sync/pull?since={cursor}")
    assert r.status == 410
    assert r.body == {"error": "cursor is older than the last tombstone purge", "sqlstate": "55000"}
    assert api("GET", "/sync/pull").status == 200  # from the beginning


# -- the default table ----------------------------------------------------------------------


def test_default_table(api, db):
    r = api("POST", "/sync/change", {"id": 7, "payload": {"note": "restock Friday", "price": 19.99}, "client_ts": ts("10:07")})
    assert r.status == 200
    assert r.body == {"id": 7, "status": "applied", "created": True, "updated_at": stored("10:07")}
    row = db.execute("SELECT data, updated_at FROM inventory_sync.inventory WHERE id = 7").fetchone()
    assert row["data"] == {"note": "restock Friday", "price": 19.99}

    stale = api("POST", "/sync/change", {"id": 7, "payload": {"note": "old"}, "client_ts": ts("10:00")})
    assert stale.status == 409
    assert stale.body["server_data"] == {"id": 7, "note": "restock Friday", "price": 19.99, "updated_at": stored("10:07")}

    everything, _, _ = pull_all(api)
    [item] = [c for c in everything if c["table"] == "inventory_sync.inventory" and c["id"] == 7]
    assert item["data"] == {"note": "restock Friday", "price": 19.99}


def test_numbers_pass_through_exactly(api, db):
    payload = '{"price": 0.10, "big": 123456789012345678901234567890.5, "tiny": 1e-30}'
    raw = ('{"id": 77, "payload": %s, "client_ts": "2024-03-01T10:00:00Z"}' % payload).encode()
    assert api("POST", "/sync/change", raw=raw).status == 200
    assert db.execute("SELECT data::text AS t FROM inventory_sync.inventory WHERE id = 77").fetchone()["t"] == (
        '{"big": 123456789012345678901234567890.5, "tiny": 0.000000000000000000000000000001, "price": 0.10}')
    stale = api("POST", "/sync/change", raw=raw.replace(b"10:00:00", b"09:00:00"))
    assert stale.status == 409
    assert '"big": 123456789012345678901234567890.5' in stale.text
    assert '"price": 0.10' in stale.text


# -- routing and unavailability ----------------------------------------------------------------


def test_unknown_path_is_404_and_wrong_method_405(api):
    r = api("GET", "/sync/nothing")
    assert (r.status, r.body) == (404, {"error": "no such path: /sync/nothing"})
    r = api("GET", "/sync/push")
    assert r.status == 405 and r.headers["Allow"] == "POST" and r.body["error"]
    r = api("POST", "/sync/pull", {})
    assert r.status == 405 and r.headers["Allow"] == "GET"
    r = api("DELETE", "/sync/change")
    assert r.status == 405


def test_database_unreachable_is_503():
    server = backend.make_server(port=0, conninfo="host=/nonexistent/socket/dir port=1", pool_timeout=0.5)
    backend.serve_in_thread(server)
    try:
        r = call(server.url, "POST", "/sync/change", change(uuid.uuid4(), {"stock": 1}, "10:00"))
        assert (r.status, r.body) == (503, {"error": "database unavailable"})
        r = call(server.url, "GET", "/sync/pull")
        assert r.status == 503
    finally:
        server.close()


def test_read_only_database_is_503_for_writes_but_pulls_work(db):
    server = backend.make_server(port=0, connect_kwargs={"options": "-c default_transaction_read_only=on"})
    backend.serve_in_thread(server)
    try:
        row_id = uuid.uuid4()
        r = call(server.url, "POST", "/sync/change", change(row_id, {"name": "X", "stock": 1}, "10:00"))
        assert (r.status, r.body) == (503, {"error": "database unavailable"})
        assert product(db, row_id) is None
        assert call(server.url, "GET", "/sync/pull?limit=1").status == 200
    finally:
        server.close()


def test_serialization_failure_is_retried(db, caplog):
    """At REPEATABLE READ a write that waited for a concurrent one fails with 40001; the backend
    retries in a new transaction, which then sees the newer row and decides against it."""
    caplog.set_level(logging.WARNING, logger="inventory_sync.server")
    row_id = uuid.uuid4()
    db.execute("SELECT inventory_sync.sync_upsert_in('products', %s, %s, %s)",
               (str(row_id), psycopg.types.json.Jsonb({"name": "Laptops", "stock": 15}), ts("09:00")))
    server = backend.make_server(port=0, connect_kwargs={"options": r"-c default_transaction_isolation=repeatable\ read"})
    backend.serve_in_thread(server)
    try:
        with psycopg.connect() as blocker:  # a transaction: holds the row until commit
            blocker.execute("SELECT inventory_sync.sync_upsert_in('products', %s, '{\"stock\": 14}', %s)",
                            (str(row_id), ts("10:05")))
            answer = {}
            t = threading.Thread(target=lambda: answer.update(r=call(
                server.url, "POST", "/sync/change", change(row_id, {"stock": 12}, "10:10"))))
            t.start()
            deadline = time.monotonic() + 20
            while not db.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    " AND query LIKE '%%sync_push%%'").fetchone()["n"]:
                assert time.monotonic() < deadline, "the request never waited for the row lock"
                time.sleep(0.02)
            blocker.commit()
        t.join(30)
        r = answer["r"]
        assert (r.status, r.body["status"]) == (200, "applied"), r.body
        assert product(db, row_id)["row"]["stock"] == 12
        assert any("40001" in rec.getMessage() and "retrying" in rec.getMessage() for rec in caplog.records)
    finally:
        server.close()


def test_retries_end_in_503_after_three_attempts(srv, db, caplog):
    """A statement that fails with 40001 every time: three attempts, then 503 with the SQLSTATE."""
    caplog.set_level(logging.WARNING, logger="inventory_sync.server")
    db.execute("CREATE OR REPLACE FUNCTION public.always_40001() RETURNS jsonb LANGUAGE plpgsql AS"
               " $$BEGIN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END$$")
    try:
        with pytest.raises(backend.ApiError) as e:
            srv.call("SELECT public.always_40001()", ())
        assert (e.value.status, e.value.body) == (503, {"error": "could not serialize access", "sqlstate": "40001"})
        assert sum("retrying" in rec.getMessage() for rec in caplog.records) == 2
    finally:
        db.execute("DROP FUNCTION public.always_40001()")


def test_any_other_database_error_is_500_without_details(srv, db, caplog):
    db.execute("CREATE OR REPLACE FUNCTION public.always_xx000() RETURNS jsonb LANGUAGE plpgsql AS"
               " $$BEGIN RAISE EXCEPTION 'secret internals' USING ERRCODE = 'XX000'; END$$")
    try:
        with pytest.raises(backend.ApiError) as e:
            srv.call("SELECT public.always_xx000()", ())
        assert (e.value.status, e.value.body) == (500, {"error": "internal error"})
        assert any("XX000" in rec.getMessage() for rec in caplog.records)  # the details go to the log
    finally:
        db.execute("DROP FUNCTION public.always_xx000()")
