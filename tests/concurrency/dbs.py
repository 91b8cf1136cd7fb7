"""Connections to the test cluster that scripts/test.sh starts."""

import os

import psycopg

DSN = os.environ.get("INVENTORY_SYNC_DSN", "host=/tmp/inventory_sync/test port=54329 user=postgres")
STANDBY_DSN = os.environ.get("INVENTORY_SYNC_STANDBY_DSN")


def connect(dbname, dsn=DSN, **kw):
    """An autocommit connection to database `dbname`."""
    return psycopg.connect(f"{dsn} dbname={dbname}", autocommit=True, **kw)
