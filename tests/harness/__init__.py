"""What the Python suites (tests/concurrency, tests/reliability) share: connections to the test
cluster that scripts/test.sh starts (INVENTORY_SYNC_DSN), fresh databases on it, and the barrier
that releases writers on several real connections at the same moment (harness.barrier).

Each suite's conftest.py puts tests/ on sys.path, so `import harness` works from either suite
(they run as separate pytest invocations, each with its own requirements.txt; this package needs
only psycopg, which both have)."""

import os
import re

import psycopg

DSN = os.environ.get("INVENTORY_SYNC_DSN", "host=/tmp/inventory_sync/test port=54329 user=postgres")


def connect(dbname, dsn=None, **kw):
    """A connection to database `dbname` of the test cluster (or of the cluster `dsn` names),
    in autocommit mode unless told otherwise."""
    kw.setdefault("autocommit", True)
    return psycopg.connect(f"{dsn or DSN} dbname={dbname}", **kw)


def client_args(dsn=None):
    """The host, port and user of the test cluster (or of the cluster `dsn` names) as PostgreSQL's
    client programs (psql, pg_dump, pg_restore) take them."""
    parts = dict(p.split("=", 1) for p in (dsn or DSN).split())
    return ["-h", parts["host"], "-p", parts["port"], "-U", parts.get("user", "postgres")]


def empty_database(name):
    """Drop and create database `name` of the test cluster, without the extension; answers its
    name."""
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", name)
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    return name


def fresh_database(name):
    """Drop and create database `name` of the test cluster with the extension installed; answers
    its name."""
    empty_database(name)
    with connect(name) as conn:
        conn.execute("CREATE EXTENSION inventory_sync")
    return name


def drop_databases(*names):
    """Drop databases of the test cluster, where they exist."""
    with connect("postgres") as admin:
        for name in names:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pull_all(conn, since=None, lim=2):
    """A device's pull of every change after `since` (None: from the beginning), in pages of
    `lim`: the changes, and the last cursor handed out."""
    changes, cursor = [], since
    while True:
        answer = conn.execute("SELECT inventory_sync.sync_pull(%s, %s)", (cursor, lim)).fetchone()[0]
        changes += answer["changes"]
        cursor = answer["cursor"]
        if not answer["has_more"]:
            return changes, cursor
