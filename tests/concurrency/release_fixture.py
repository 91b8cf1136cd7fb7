"""What a release writes, for the upgrade test: run by make_release_fixture.sh against a scratch
cluster where that release's library is installed (INVENTORY_SYNC_DSN), never by pytest.

Creates database release_fixture with the extension at the release's version and writes, through
the release's own functions, something into every table it keeps: the Laptops story (a journaled
conflict), mutation ids, tombstones before and after a purge (the purge horizon), a tracked uuid
table with a delta policy and a tombstone, a tracked text-keyed table with a mutation id and a
tombstone, a table tracked and then untracked (its feed entries
left behind), a field_lww policy on the default table. Then two devices pull: one everything, one
a first page; their cursors, and what the second had still to pull, are kept in
public.device_cursors, so the upgrade test can check that the update honours them."""

import sys
from pathlib import Path

from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import connect, pull_all  # noqa: E402

DB = "release_fixture"


def main(version):
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB}")
        admin.execute(f"CREATE DATABASE {DB}")
    with connect(DB) as c:
        c.execute(f"CREATE EXTENSION inventory_sync VERSION '{version}'")
        c.execute("SET TimeZone = 'UTC'")
        run = lambda sql, *args: c.execute(sql, args).fetchone()[0]  # noqa: E731
        # A tombstone purged: the purge horizon.
        run("SELECT inventory_sync.sync_upsert(5, '{\"name\": \"Old\"}', '2024-02-01 09:00+00')")
        run("SELECT inventory_sync.sync_delete(5, '2024-02-01 10:00+00')")
        assert run("SELECT inventory_sync.purge_tombstones('0 seconds')") == 1
        # The Laptops story: B's 15 of 10:05 wins, A's 8 of 10:00 is journaled.
        run("SELECT inventory_sync.sync_upsert(1, '{\"name\": \"Laptops\", \"stock\": 10}', '2024-03-01 09:00+00')")
        run("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 15}', '2024-03-01 10:05+00')")
        assert run("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 8}', '2024-03-01 10:00+00')")["status"] == "conflict"
        # Mutation ids, and a tombstone.
        run("SELECT inventory_sync.sync_upsert(2, '{\"name\": \"Mice\"}', '2024-03-01 09:00+00', 'dev-a', 'm-1')")
        run("SELECT inventory_sync.sync_delete(2, '2024-03-01 11:00+00', 'dev-a', 'm-2')")
        run("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'a', 'field_lww')")
        # A tracked table with a delta policy, a row and a tombstone.
        c.execute("CREATE TABLE public.products (id uuid PRIMARY KEY, name text NOT NULL, stock int, updated_at timestamptz)")
        c.execute("SELECT inventory_sync.track('public.products')")
        c.execute("SELECT inventory_sync.set_policy('public.products', 'stock', 'delta')")
        run(
            "SELECT inventory_sync.sync_upsert_in('public.products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', "
            "'{\"name\": \"Desk\", \"stock\": 4}', '2024-03-01 09:00+00', 'dev-b', 'm-1')"
        )
        run(
            "SELECT inventory_sync.sync_upsert_in('public.products', 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', "
            "'{\"name\": \"Lamp\"}', '2024-03-01 09:00+00')"
        )
        run("SELECT inventory_sync.sync_delete_in('public.products', 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', '2024-03-01 12:00+00')")
        # A tracked table with a text key: a row written with a mutation id, a tombstone.
        c.execute("CREATE TABLE public.shelves (code text PRIMARY KEY, label text, updated_at timestamptz)")
        c.execute("SELECT inventory_sync.track('public.shelves')")
        run("SELECT inventory_sync.sync_upsert_in('public.shelves', 'A-12', '{\"label\": \"A\"}', '2024-03-01 09:00+00',"
            " 'dev-d', 'm-1')")
        run("SELECT inventory_sync.sync_upsert_in('public.shelves', 'B-01', '{\"label\": \"B\"}', '2024-03-01 09:00+00')")
        run("SELECT inventory_sync.sync_delete_in('public.shelves', 'B-01', '2024-03-01 12:00+00')")
        # A table tracked, written and untracked: the release keeps its feed entry.
        c.execute("CREATE TABLE public.gone (id bigint PRIMARY KEY, note text, updated_at timestamptz)")
        c.execute("SELECT inventory_sync.track('public.gone')")
        run("SELECT inventory_sync.sync_upsert_in('public.gone', '1', '{\"note\": \"x\"}', '2024-03-01 09:00+00', 'dev-c', 'm-1')")
        c.execute("SELECT inventory_sync.untrack('public.gone')")
        # Two devices' cursors.
        everything, all_cursor = pull_all(c)
        first = c.execute("SELECT inventory_sync.sync_pull(NULL, 2)").fetchone()[0]
        rest, _ = pull_all(c, first["cursor"])
        assert first["has_more"] and rest
        c.execute("CREATE TABLE public.device_cursors (device text PRIMARY KEY, cursor text NOT NULL, still_to_pull jsonb)")
        c.execute(
            "INSERT INTO public.device_cursors VALUES ('pulled everything', %s, '[]'), ('pulled a page', %s, %s)",
            (all_cursor, first["cursor"], Jsonb(rest)),
        )
    print(f"release {version} wrote {len(everything)} changes into {DB}")


if __name__ == "__main__":
    main(sys.argv[1])
