"""Row versions never go backwards: not across a restart, not when the server's clock steps back.

A cluster of its own (`rel-clock`, port $INVENTORY_SYNC_CLOCK_PORT, default 55452) is restarted
with its clock set a day back by libfaketime (Debian's `faketime` package, which
scripts/common.sh installs): the real clock source of every backend, not a setting of the
extension. Rows written before the step must get higher versions at their next write; a row new
after the step gets the stepped-back clock, which shows the step really took."""

import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from harness.cluster import Cluster

PORT = int(os.environ.get("INVENTORY_SYNC_CLOCK_PORT", "55452"))
DB = "inventory_sync_clock"
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
DAY_MICROS = 86_400_000_000
# Client timestamps far in the past: the rows' own last-write-wins clock never refuses these
# writes, so only versions are at stake.
TS = datetime(2024, 3, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def cluster():
    assert LIBFAKETIME.exists(), "libfaketime is missing: scripts/common.sh installs Debian's faketime"
    c = Cluster("rel-clock", PORT)
    c.create()
    c.fresh_database(DB)
    with c.connect(DB) as conn:
        conn.execute(
            "CREATE TABLE items (id uuid PRIMARY KEY, stock integer, updated_at timestamptz)"
        )
        conn.execute("SELECT inventory_sync.track('items')")
    yield c
    c.start()  # without the fake clock
    c.stop()


def write(conn, n, minutes):
    """Write default item n and tracked row n; answer their versions as integers."""
    ts = TS + timedelta(minutes=minutes)
    a = conn.execute("SELECT inventory_sync.sync_upsert(%s, %s, %s)", (n, Jsonb({"stock": minutes}), ts)).fetchone()[0]
    b = conn.execute(
        "SELECT inventory_sync.sync_upsert_in('items', %s, %s, %s)", (str(uuid.UUID(int=n)), Jsonb({"stock": minutes}), ts)
    ).fetchone()[0]
    assert a["status"] == "applied" and b["status"] == "applied", (a, b)
    return int(a["version"], 16), int(b["version"], 16)


def server_clock(conn):
    return conn.execute("SELECT clock_timestamp()").fetchone()[0]


def test_versions_grow_across_restarts_and_a_clock_stepped_back(cluster):
    with cluster.connect(DB) as conn:
        before = write(conn, 1, 1)
    # A restart with the clock as it is: the next write is higher.
    cluster.start()
    with cluster.connect(DB) as conn:
        after_restart = write(conn, 1, 2)
    assert all(a > b for a, b in zip(after_restart, before)), (before, after_restart)

    # The clock steps back a day (monotonic clocks left alone: the server's timers use them).
    cluster.start(env={"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": "-1d", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    with cluster.connect(DB) as conn:
        behind = datetime.now(timezone.utc) - server_clock(conn)
        assert timedelta(hours=23) < behind < timedelta(hours=25), f"the server's clock is off by {behind}"
        stepped = write(conn, 1, 3)
        # A row written before the step: one past its last version, not the clock's.
        assert stepped == tuple(v + 1 for v in after_restart), (after_restart, stepped)
        again = write(conn, 1, 4)
        assert again == tuple(v + 1 for v in stepped), (stepped, again)
        # A row new since the step takes the stepped-back clock: a day below the others.
        fresh = write(conn, 2, 1)
        assert all(f < v - DAY_MICROS // 2 for f, v in zip(fresh, again)), (fresh, again)
        # Pulls show the versions the answers gave.
        pulled = {
            (c.get("table"), str(c["id"])): c["version"]
            for c in conn.execute("SELECT inventory_sync.sync_pull(NULL)").fetchone()[0]["changes"]
        }
        assert pulled[("inventory_sync.inventory", "1")] == f"{again[0]:016x}", pulled

    # The clock is right again: still higher than anything before.
    cluster.start()
    with cluster.connect(DB) as conn:
        final = write(conn, 1, 5)
    assert all(f > a for f, a in zip(final, again)), (again, final)
