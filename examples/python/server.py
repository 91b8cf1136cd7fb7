"""A sync endpoint for offline-first devices, backed by the inventory_sync extension.

The HTTP API is the one in examples/README.md. Every decision (which write wins, what is
journaled, what a device has not seen yet) is taken by PostgreSQL in one function call; this
file only turns HTTP into that call and the answer into a status code.

    python server.py --port 8080        # connects with PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD

In-process (tests, the offline-devices simulation):

    server = make_server(port=0)        # port 0: any free port; server.url tells which
    thread = serve_in_thread(server)
    ...
    server.close()
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg.types.json import Jsonb, set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

log = logging.getLogger("inventory_sync.server")

# The status code a device acts on, for each outcome status sync_push answers.
HTTP_FOR_STATUS = {
    "applied": 200,
    "merged": 200,
    "conflict": 409,
    "rejected": 422,  # clock skew (the device fixes its clock and sends the change again), or the table's rules
    "error": 422,  # invalid change: sending it again cannot succeed
}

RETRIED_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
ATTEMPTS = 3
MAX_BODY = 64 * 1024 * 1024

PUSH_SQL = "SELECT inventory_sync.sync_push(%s)"
PULL_SQL = "SELECT inventory_sync.sync_pull(%s, %s::integer)"


class ApiError(Exception):
    """An answer other than 200, with its JSON body."""

    def __init__(self, status: int, body: dict):
        super().__init__(body.get("error"))
        self.status = status
        self.body = body


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# JSON numbers go through this backend exactly as sent, both ways: parsed as Decimal (never a
# binary float: 0.10 stays 0.10, 30 digits stay 30 digits) and written back from it.
def loads(text):
    return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)


def dumps(value) -> str:
    """JSON text of parsed JSON (dict, list, str, int, Decimal, bool, None), numbers exact."""
    parts: list[str] = []
    _dump(value, parts)
    return "".join(parts)


def _dump(value, out: list) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(", ")
            out.append(json.dumps(str(k)))
            out.append(": ")
            _dump(v, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(", ")
            _dump(v, out)
        out.append("]")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not JSON")
        out.append(str(value))
    else:  # str, int, bool, None (and a float, should one come in)
        out.append(json.dumps(value, allow_nan=False))


def http_for(outcome: dict) -> int:
    return HTTP_FOR_STATUS.get(outcome.get("status"), 500)


def _configure(conn: psycopg.Connection) -> None:
    # Timestamps in answers are rendered in the session's TimeZone: make them UTC.
    conn.execute("SET TimeZone = 'UTC'")
    set_json_loads(loads, conn)  # jsonb answers with exact numbers
    conn.commit()


class SyncServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer holding the connection pool its handlers use."""

    daemon_threads = True

    def __init__(self, address, pool: ConnectionPool, pool_timeout: float):
        super().__init__(address, SyncHandler)
        self.pool = pool
        self.pool_timeout = pool_timeout

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        """Stop serving (if serve_forever runs) and close the socket and the pool."""
        if getattr(self, "_serving", False):
            self.shutdown()
        self.server_close()
        self.pool.close()

    def serve_forever(self, poll_interval=0.5):
        self._serving = True
        try:
            super().serve_forever(poll_interval)
        finally:
            self._serving = False

    # -- the two database calls, retried on serialization failures and deadlocks --

    def call(self, sql: str, params: tuple):
        """Run one statement in its own transaction and return its single value.

        A serialization failure or a deadlock rolls the transaction back and runs the
        statement again, up to ATTEMPTS times. (sync_push itself aborts the whole call on such
        errors rather than answering them as a change's "error" outcome, so a retry is always
        of the whole call, and the mutation ids make it safe.)
        """
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self.pool.connection(timeout=self.pool_timeout) as conn:
                    # The block commits on success and rolls back on an exception.
                    return conn.execute(sql, params).fetchone()[0]
            except psycopg.Error as e:
                if e.sqlstate in RETRIED_SQLSTATES and attempt < ATTEMPTS:
                    log.warning("sqlstate %s, attempt %d of %d: retrying", e.sqlstate, attempt, ATTEMPTS)
                    time.sleep(0.01 * 2**attempt)
                    continue
                raise _api_error(e) from e
            except PoolTimeout as e:
                log.error("no database connection: %s", e)
                raise ApiError(503, {"error": "database unavailable"}) from e
        raise AssertionError("unreachable")

    def push(self, changes) -> list:
        return self.call(PUSH_SQL, (Jsonb(changes, dumps=dumps),))

    def pull(self, since: str | None, limit: str) -> dict:
        return self.call(PULL_SQL, (since, limit))


def _unavailable(e: psycopg.Error) -> bool:
    """The database is read-only (a standby) or cannot be reached: the device tries again later."""
    sqlstate = e.sqlstate or ""
    return (sqlstate == "25006"  # read-only transaction
            or sqlstate[:2] == "08"  # connection exception
            or sqlstate in ("57P01", "57P02", "57P03", "53300")  # shutting down, starting, too many connections
            or (not sqlstate and isinstance(e, psycopg.OperationalError)))  # connection lost


def _api_error(e: psycopg.Error) -> ApiError:
    """The answer for a database error (examples/README.md, "Errors of the request itself")."""
    sqlstate = e.sqlstate or ""
    message = e.diag.message_primary or str(e).strip()
    if sqlstate in RETRIED_SQLSTATES:
        log.error("sqlstate %s after %d attempts: %s", sqlstate, ATTEMPTS, message)
        return ApiError(503, {"error": message, "sqlstate": sqlstate})
    if _unavailable(e):
        log.error("database unavailable (%s): %s", sqlstate or "no sqlstate", message)
        return ApiError(503, {"error": "database unavailable"})
    if sqlstate[:2] in ("22", "42"):
        return ApiError(422, {"error": message, "sqlstate": sqlstate})
    if sqlstate == "55000":
        return ApiError(410, {"error": message, "sqlstate": sqlstate})
    log.exception("database error %s", sqlstate or type(e).__name__)
    return ApiError(500, {"error": "internal error"})


class SyncHandler(BaseHTTPRequestHandler):
    server: SyncServer
    protocol_version = "HTTP/1.1"
    server_version = "inventory-sync-example"

    ROUTES = {
        "/sync/change": ("POST", "post_change"),
        "/sync/push": ("POST", "post_push"),
        "/sync/pull": ("GET", "get_pull"),
    }

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_OPTIONS(self):
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self._body_read = False
        try:
            route = self.ROUTES.get(url.path)
            if route is None:
                raise ApiError(404, {"error": f"no such path: {url.path}"})
            allowed, name = route
            if method != allowed:
                raise ApiError(405, {"error": f"{url.path} takes {allowed}, not {method}"})
            status, body = getattr(self, name)(url)
        except ApiError as e:
            status, body = e.status, e.body
        except Exception:
            log.exception("unexpected error on %s %s", method, self.path)
            status, body = 500, {"error": "internal error"}
        if not self._body_read and self.headers.get("Content-Length") not in (None, "0"):
            self.close_connection = True  # an unread body would be taken for the next request
        self._answer(status, body, allow=self.ROUTES.get(url.path, (None,))[0] if status == 405 else None)

    # -- the three routes --

    def post_change(self, url):
        change = self._json_body()
        if not isinstance(change, dict):
            raise ApiError(400, {"error": "the body must be a JSON object: one change"})
        outcome = self.server.push([change])[0]
        return http_for(outcome), outcome

    def post_push(self, url):
        body = self._json_body()
        if not isinstance(body, dict) or "changes" not in body:
            raise ApiError(400, {"error": 'the body must be a JSON object {"changes": [change, ...]}'})
        if set(body) != {"changes"}:
            raise ApiError(400, {"error": 'the body takes only the key "changes"'})
        # Anything else about `changes` (not an array, a change of the wrong shape) is decided
        # by the database: 422 for the whole call, or an "error" outcome for one change.
        outcomes = self.server.push(body["changes"])
        return 200, {"results": [dict(o, http=http_for(o)) for o in outcomes]}

    def get_pull(self, url):
        query = parse_qs(url.query, keep_blank_values=True)
        unknown = set(query) - {"since", "limit"}
        if unknown:
            raise ApiError(400, {"error": f"unknown query parameter: {', '.join(sorted(unknown))}"})
        since = query.get("since", [None])[-1]
        limit = query.get("limit", ["1000"])[-1]
        # The database checks both: a malformed cursor, a limit that is not an integer or out
        # of range are 422 with its SQLSTATE.
        return 200, self.server.pull(since, limit)

    # -- plumbing --

    def _json_body(self):
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise ApiError(400, {"error": "a body with Content-Length is required"}) from None
        if length < 0 or length > MAX_BODY:
            raise ApiError(400, {"error": "body too large"})
        raw = self.rfile.read(length)
        self._body_read = True
        try:
            return loads(raw)
        except (UnicodeDecodeError, ValueError) as e:
            raise ApiError(400, {"error": f"the body is not JSON: {e}"}) from None

    def _answer(self, status: int, body: dict, allow: str | None = None) -> None:
        data = dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        log.info("%s %s", self.address_string(), format % args)

    def log_error(self, format, *args):  # noqa: A002
        log.warning("%s %s", self.address_string(), format % args)


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    conninfo: str = "",
    *,
    pool_min: int = 1,
    pool_max: int = 4,
    pool_timeout: float = 5.0,
    connect_kwargs: dict | None = None,
) -> SyncServer:
    """A bound server with its own connection pool; call serve_forever() or serve_in_thread().

    conninfo "" takes everything from the libpq environment (PGHOST, PGPORT, ...). The pool
    opens in the background: the server starts even while the database is down, and answers
    503 until it is back.
    """
    pool = ConnectionPool(
        conninfo,
        min_size=pool_min,
        max_size=pool_max,
        kwargs=connect_kwargs or {},
        configure=_configure,
        timeout=pool_timeout,
        open=False,
        name="inventory_sync",
    )
    pool.open(wait=False)
    try:
        return SyncServer((host, port), pool, pool_timeout)
    except BaseException:
        pool.close()
        raise


def serve_in_thread(server: SyncServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="sync-http", daemon=True)
    server._serving = True  # so that close() shuts it down even if it has not started yet
    thread.start()
    return thread


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="HTTP sync endpoint over inventory_sync (see examples/README.md)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = make_server(args.host, args.port, pool_max=args.pool_size)
    print(f"inventory_sync example backend on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.pool.close()


if __name__ == "__main__":
    main()
