"""The offline-devices simulation, under each policy, against a real PostgreSQL.

It resets the database the libpq environment names (the extension and public.products).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
import simulate  # noqa: E402


@pytest.fixture(scope="module")
def lww():
    return simulate.run("lww", out=None)


@pytest.fixture(scope="module")
def delta():
    return simulate.run("delta", out=None)


def test_lww_converges_on_the_newer_write(lww):
    assert lww.converged
    # B's write (10:05) is newer than A's (10:00): it wins whole, A's sale is not in the stock.
    assert (lww.a_stock, lww.b_stock, lww.server_stock) == (16, 16, 16) == (simulate.EXPECTED["lww"],) * 3


def test_lww_device_a_got_a_409_with_the_server_row(lww):
    [conflict] = lww.a_conflicts
    assert conflict["status"] == "conflict"
    assert conflict["http"] == 409
    assert conflict["server_data"] == {"id": simulate.LAPTOPS, "name": "Laptops", "stock": 16,
                                       "updated_at": "2024-03-01T10:05:00+00:00"}


def test_lww_journaled_a_losing_write(lww):
    [entry] = lww.journal
    assert entry["reason"] == "stale"
    assert (entry["client_id"], entry["mutation_id"]) == ("worker-a", "worker-a-1")
    assert entry["client_payload"] == {"stock": 12}
    assert entry["client_ts"] == dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.timezone.utc)
    assert entry["server_stock"] == 16
    assert any("The lost update was kept in the journal" in line for line in lww.output)


def test_delta_counts_both_adjustments(delta):
    assert delta.converged
    assert (delta.a_stock, delta.b_stock, delta.server_stock) == (13, 13, 13)
    assert delta.a_conflicts == []
    assert delta.journal == []  # nothing lost
    with psycopg.connect() as conn:
        assert conn.execute("SELECT policy FROM inventory_sync.policies"
                            " WHERE table_name::regclass = 'public.products'::regclass AND field = 'stock'"
                            ).fetchone() == ("delta",)


@pytest.fixture(scope="module")
def versions():
    return simulate.run("versions", out=None)


def test_versions_a_clock_a_day_behind_still_converges_and_nothing_is_lost_silently(versions):
    # Worker B's clock runs a day behind; the server orders by arrival, so B's return applies.
    assert versions.converged
    assert (versions.a_stock, versions.b_stock, versions.server_stock) == (16, 16, 16)
    assert simulate.EXPECTED["versions"] == 16
    # A's sale was made at the version B's write replaced: a 409 with the row and its version.
    [conflict] = versions.a_conflicts
    assert (conflict["status"], conflict["http"], conflict["server_data"]["stock"]) == ("conflict", 409, 16)
    assert len(conflict["version"]) == 16
    # ... and journaled: nothing lost silently.
    [entry] = versions.journal
    assert (entry["reason"], entry["client_id"], entry["client_payload"]) == ("stale", "worker-a", {"stock": 12})
    # B's change was stamped a day before the row it replaced: only arrival order let it apply.
    with psycopg.connect() as conn:
        assert conn.execute("SELECT count(*) FROM inventory_sync.conflicts WHERE client_id = 'worker-b'"
                            ).fetchone() == (0,)
    text = "\n".join(versions.output)
    assert "Worker B's clock runs a day behind" in text
    assert "Converged: Worker A 16, Worker B 16, server 16" in text
    with psycopg.connect() as conn:
        assert conn.execute("SELECT field, policy FROM inventory_sync.policies").fetchall() == [
            ("updated_at", "server_clock")]


def test_the_timeline_tells_the_story(lww, delta):
    for outcome in (lww, delta):
        text = "\n".join(outcome.output)
        # A is offline: its engine backs off exponentially, then syncs at once when back online.
        for wait in ("30s", "1min", "2min", "4min", "8min"):
            assert f"unreachable, retry in {wait}" in text
        assert "Worker A  is back online" in text
        assert "Worker B  pushes 1 queued change" in text and "push 200: [200 applied]" in text
        assert "\x1b" not in text  # no colours
    lww_text, delta_text = "\n".join(lww.output), "\n".join(delta.output)
    assert "push 200: [409 conflict]" in lww_text
    assert "shows the conflict, takes server_data: 12 -> 16" in lww_text
    assert "Converged: Worker A 16, Worker B 16, server 16" in lww_text
    assert "push 200: [409 conflict]" not in delta_text
    assert "Converged: Worker A 13, Worker B 13, server 13" in delta_text


def test_the_timeline_is_the_same_on_every_run(lww):
    assert simulate.run("lww", out=None).output == lww.output


def test_command_line_exits_0_and_prints_the_timeline():
    done = subprocess.run([sys.executable, str(HERE / "simulate.py"), "--policy", "delta"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Converged: Worker A 13, Worker B 13, server 13" in done.stdout
    assert done.stdout.startswith("The Laptops story, policy delta")


def test_exits_1_when_the_devices_do_not_converge(monkeypatch, capsys):
    # A device that silently ignores the server's new stock: the check must catch it.
    store = simulate.Device.store_row

    def lossy(self, data, version):
        if self.name == "Worker B" and data["stock"] == 13:
            return
        store(self, data, version)

    monkeypatch.setattr(simulate.Device, "store_row", lossy)
    assert simulate.main(["--policy", "delta"]) == 1
    assert "NOT CONVERGED: Worker A 13, Worker B 16, server 13" in capsys.readouterr().out
