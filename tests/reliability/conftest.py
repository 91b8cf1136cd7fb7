"""Shared by the reliability suite: connections to the test cluster that scripts/test.sh starts
(INVENTORY_SYNC_DSN), a fresh database per test module, and the suite's mode.

INVENTORY_SYNC_SOAK=1 selects the long (soak) mode; the default is the short mode CI runs."""

import os
import re

import psycopg
import pytest

DSN = os.environ.get("INVENTORY_SYNC_DSN", "host=/tmp/inventory_sync/test port=54329 user=postgres")
SOAK = os.environ.get("INVENTORY_SYNC_SOAK") == "1"


def connect(dbname, **kw):
    """An autocommit connection to database `dbname` on the test cluster."""
    kw.setdefault("autocommit", True)
    return psycopg.connect(f"{DSN} dbname={dbname}", **kw)


def fresh_database(name):
    """Drop and create database `name` with the extension installed; answers its name."""
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", name)
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    with connect(name) as conn:
        conn.execute("CREATE EXTENSION inventory_sync")
    return name


@pytest.fixture(scope="module")
def db(request):
    """A fresh database for the test module, named after it."""
    return fresh_database("rel_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
