"""inventory_sync on a Citus cluster: a coordinator and two workers on loopback, scratch clusters
of their own with Citus preloaded. Citus is not packaged for this system, so CI has none: these
tests report themselves skipped unless Citus is installed into the PostgreSQL under test.

What they show today (the Citus work is in progress, docs/DEVELOPMENT.md "Citus"): after
`inventory_sync.distribute()`, every write statement routes through the coordinator and the
answers, the journal, the stored rows and a device's pull are the same as on one server; writes
made on the workers themselves land in each worker's era, and a pull from the coordinator walks
every node's era up to that node's horizon, so a writer held open on one worker holds back only
its own change."""

import json
import re
import subprocess
import threading
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from harness import connect, drop_databases, fresh_database, pull_all
from harness.cluster import PG_BIN, Cluster
from harness.proxy import Relay

PKGLIBDIR = Path(subprocess.run([str(PG_BIN / "pg_config"), "--pkglibdir"], capture_output=True, text=True,
                                check=True).stdout.strip())
pytestmark = pytest.mark.skipif(not (PKGLIBDIR / "citus.so").exists(),
                                reason=f"Citus is not installed ({PKGLIBDIR / 'citus.so'} is missing)")

TWIN = "isync_citus_twin"

TABLES = [
    "CREATE TABLE products (id bigint PRIMARY KEY, name text NOT NULL, stock integer NOT NULL, updated_at timestamptz)",
    "CREATE TABLE notes (id uuid PRIMARY KEY, body text, likes integer NOT NULL DEFAULT 0, updated_at timestamptz)",
    "CREATE TABLE tags (id text PRIMARY KEY, label text, updated_at timestamptz)",
]

# The tracked tables, tracked in this order on the cluster and its twin.
TRACKED = ["products", "notes", "tags"]

N1 = "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"
N2 = "'c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13'"

# A merge policy set before distribute(), on the cluster and its twin alike.
POLICY = "SELECT inventory_sync.set_policy('notes', 'likes', 'delta')"

PUSH = [
    {"id": 5, "payload": {"name": "Mouse"}, "client_ts": "2024-03-01T10:00:00Z", "client_id": "d", "mutation_id": "p1"},
    {"id": 1, "payload": {"name": "Old"}, "client_ts": "2024-03-01T08:00:00Z", "client_id": "d", "mutation_id": "p2"},
    {"table": "products", "id": 6, "payload": {"name": "Pad", "stock": 2}, "client_ts": "2024-03-01T10:00:00Z",
     "client_id": "d", "mutation_id": "p3"},
    {"table": "products", "id": 2, "op": "delete", "client_ts": "2024-03-01T09:00:00Z", "client_id": "d",
     "mutation_id": "p4"},
    {"table": "products", "id": 7, "payload": {"stock": 1}, "client_ts": "2024-03-01T10:00:00Z"},
]

# The same calls on both, one transaction each; every answer is compared.
SCRIPT = [
    # The Laptops story on the default table: a stale write is journaled and answered with the row.
    "SELECT inventory_sync.sync_upsert(1, '{\"name\": \"Laptop\", \"stock\": 10}', '2024-03-01 09:00+00')",
    "SELECT inventory_sync.sync_upsert(1, '{\"stock\": 15}', '2024-03-01 10:05+00')",
    "SELECT inventory_sync.sync_upsert(1, '{\"stock\": 8}', '2024-03-01 10:00+00')",
    # Ties: the greater client_id wins.
    "SELECT inventory_sync.sync_upsert(1, '{\"stock\": 16}', '2024-03-01 10:05+00', 'b')",
    "SELECT inventory_sync.sync_upsert(1, '{\"stock\": 17}', '2024-03-01 10:05+00', 'a')",
    # Deletes leave tombstones that older writes lose to.
    "SELECT inventory_sync.sync_delete(2, '2024-03-01 11:00+00')",
    "SELECT inventory_sync.sync_upsert(2, '{\"stock\": 1}', '2024-03-01 10:00+00')",
    # A retried mutation is answered, not applied again.
    "SELECT inventory_sync.sync_upsert(3, '{\"stock\": 5}', '2024-03-01 10:00+00', 'dev', 'm-1')",
    "SELECT inventory_sync.sync_upsert(3, '{\"stock\": 5}', '2024-03-01 10:00+00', 'dev', 'm-1')",
    # A clock far ahead is rejected and journaled.
    "SELECT inventory_sync.sync_upsert(4, '{\"stock\": 5}', '2999-01-01 00:00+00') - 'server_time' - 'ahead_by_seconds'",
    # Merges: stock as a delta.
    "SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta')",
    "SELECT inventory_sync.sync_upsert(1, '{\"stock\": 14}', '2024-03-01 09:30+00', 'c', null, '{\"stock\": 15}')",
    # A tracked bigint table.
    "SELECT inventory_sync.sync_upsert_in('products', '1', '{\"name\": \"Laptop\", \"stock\": 10}', '2024-03-01 09:00+00')",
    "SELECT inventory_sync.sync_upsert_in('products', '1', '{\"stock\": 15}', '2024-03-01 10:05+00', 'a')",
    "SELECT inventory_sync.sync_upsert_in('products', '1', '{\"stock\": 8}', '2024-03-01 10:00+00')",
    "SELECT inventory_sync.sync_upsert_in('products', '1', '{\"stock\": 9}', '2024-03-01 10:05+00', 'b')",
    "SELECT inventory_sync.sync_upsert_in('products', '1', '{\"stock\": 7}', '2024-03-01 10:05+00', 'a')",
    "SELECT inventory_sync.sync_delete_in('products', '2', '2024-03-01 10:05+00')",
    "SELECT inventory_sync.sync_upsert_in('products', '2', '{\"name\": \"x\", \"stock\": 7}', '2024-03-01 10:00+00')",
    "SELECT inventory_sync.sync_delete_in('products', '1', '2024-03-01 10:05+00', 'a')",
    "SELECT inventory_sync.sync_upsert_in('products', '1', '{\"name\": \"Back\", \"stock\": 1}', '2024-03-01 12:00+00')",
    # A tracked uuid table with a delta field.
    "SELECT inventory_sync.set_policy('notes', 'likes', 'delta')",
    f"SELECT inventory_sync.sync_upsert_in('notes', {N1}, '{{\"body\": \"hi\", \"likes\": 1}}', '2024-03-01 09:00+00')",
    f"SELECT inventory_sync.sync_upsert_in('notes', {N1}, '{{\"likes\": 3}}', '2024-03-01 09:10+00', 'p', null, '{{\"likes\": 1}}')",
    f"SELECT inventory_sync.sync_upsert_in('notes', {N1}, '{{\"likes\": 2}}', '2024-03-01 09:05+00', 'q', null, '{{\"likes\": 1}}')",
    f"SELECT inventory_sync.sync_upsert_in('notes', {N1}, '{{\"body\": \"old\"}}', '2024-03-01 08:00+00')",
    # Its typed form with a mutation id, retried; a delete, and an older write that loses to it.
    f"SELECT inventory_sync.sync_upsert_in('notes', {N2}::uuid, '{{\"body\": \"n\"}}', '2024-03-01 09:00+00', 'dev', 'n-1')",
    f"SELECT inventory_sync.sync_upsert_in('notes', {N2}::uuid, '{{\"body\": \"n\"}}', '2024-03-01 09:00+00', 'dev', 'n-1')",
    f"SELECT inventory_sync.sync_delete_in('notes', {N2}::uuid, '2024-03-01 10:00+00', 'dev', 'n-2')",
    f"SELECT inventory_sync.sync_upsert_in('notes', {N2}::uuid, '{{\"body\": \"late\"}}', '2024-03-01 09:30+00')",
    # A tracked text table: a stale write journaled, a tie, a retried mutation, a delete and an
    # older write that loses to it.
    "SELECT inventory_sync.sync_upsert_in('tags', 'blue', '{\"label\": \"Blue\"}', '2024-03-01 09:00+00', 'a')",
    "SELECT inventory_sync.sync_upsert_in('tags', 'blue', '{\"label\": \"Old\"}', '2024-03-01 08:00+00')",
    "SELECT inventory_sync.sync_upsert_in('tags', 'blue', '{\"label\": \"Tie\"}', '2024-03-01 09:00+00', 'b')",
    "SELECT inventory_sync.sync_upsert_in('tags', 'red', '{\"label\": \"Red\"}', '2024-03-01 09:00+00', 'dev', 't-1')",
    "SELECT inventory_sync.sync_upsert_in('tags', 'red', '{\"label\": \"Red\"}', '2024-03-01 09:00+00', 'dev', 't-1')",
    "SELECT inventory_sync.sync_delete_in('tags', 'red', '2024-03-01 10:00+00', 'dev', 't-2')",
    "SELECT inventory_sync.sync_upsert_in('tags', 'red', '{\"label\": \"late\"}', '2024-03-01 09:30+00')",
    # A push across tables and rows, sent twice: the second time every change is a duplicate
    # (the last change, without a mutation id, is left out of the second).
    f"SELECT inventory_sync.sync_push('{json.dumps(PUSH)}')",
    f"SELECT inventory_sync.sync_push('{json.dumps(PUSH[:4])}')",
    # The atomic form: one invalid change aborts the call.
    """SELECT inventory_sync.sync_push('[{"id": 8, "payload": {"a": 1}, "client_ts": "2024-03-01T10:00:00Z"},
        {"id": 9, "payload": [], "client_ts": "2024-03-01T10:00:00Z"}]', atomic => false)""",
]

# What is left, compared too.
STATE = [
    "SELECT id, data, updated_at, deleted, updated_by, field_clocks FROM inventory_sync.inventory ORDER BY id",
    "SELECT row_id, table_name, reason, op, client_payload, client_ts, client_id, mutation_id, server_data "
    "FROM inventory_sync.conflicts ORDER BY detected_at, row_id",
    "SELECT table_id, row_id, id, op, ts, client_id, field_clocks FROM inventory_sync.changes ORDER BY table_id, row_id",
    "SELECT row_id, table_id, client_id, mutation_id, answer FROM inventory_sync.mutations "
    "ORDER BY row_id, table_id, client_id, mutation_id",
    "SELECT table_id, row_id, id, op, ts, client_id, field_clocks, shard_key FROM inventory_sync.changes_uuid "
    "ORDER BY table_id, row_id",
    "SELECT row_id, table_id, client_id, mutation_id, answer, shard_key FROM inventory_sync.mutations_uuid "
    "ORDER BY row_id, table_id, client_id, mutation_id",
    "SELECT table_id, row_id, id, op, ts, client_id, field_clocks, shard_key FROM inventory_sync.changes_text "
    "ORDER BY table_id, row_id",
    "SELECT row_id, table_id, client_id, mutation_id, answer, shard_key FROM inventory_sync.mutations_text "
    "ORDER BY row_id, table_id, client_id, mutation_id",
    "SELECT * FROM products ORDER BY id",
    "SELECT * FROM notes ORDER BY id",
    "SELECT * FROM tags ORDER BY id",
]


@pytest.fixture(scope="module")
def citus():
    """The coordinator's connection, the extension's tables and three tracked tables distributed:
    the tables are tracked on the coordinator first, as in an installation moving onto Citus, and
    distribute() distributes them by their keys, the bigint-keyed one colocated with the default
    table, the uuid-keyed and text-keyed ones with their side tables."""
    nodes = [Cluster(name, port, "localhost") for name, port in
             (("citus-coordinator", 54371), ("citus-worker-1", 54372), ("citus-worker-2", 54373))]
    for node in nodes:
        node.create()
        # The nodes talk in clear (over loopback), so that the relay can read what passes.
        node.configure(shared_preload_libraries="citus", max_prepared_transactions=100,
                       **{"citus.node_conninfo": "sslmode=disable"})
        node.start()
        with node.connect("postgres") as conn:
            conn.execute("CREATE EXTENSION citus")
    coordinator = nodes[0]
    # The second worker is known to the cluster through a relay, which can hold back one message
    # on its way (a commit's second phase).
    relay = Relay(nodes[2].port)
    for node, port in zip(nodes, (nodes[0].port, nodes[1].port, relay.port)):
        node.citus_port, node.relay = port, relay
    with coordinator.connect("postgres") as conn:
        conn.execute("SELECT citus_set_coordinator_host('localhost', %s)", (coordinator.port,))
        for worker in nodes[1:]:
            conn.execute("SELECT citus_add_node('localhost', %s)", (worker.citus_port,))
        conn.execute("CREATE EXTENSION inventory_sync")
        for statement in TABLES:
            conn.execute(statement)
        for table in TRACKED:
            conn.execute("SELECT inventory_sync.track(%s)", (table,))
        conn.execute(POLICY)
        given = conn.execute("SELECT inventory_sync.distribute()").fetchone()[0]
        # An era for each node, of one cohort (none was written in before: era 1 on).
        assert given["cohort"] == 1 and [e["era"] for e in given["eras"]] == [1, 2, 3], given
        groups = dict(conn.execute(
            "SELECT logicalrelid::text, colocationid || ' ' || column_to_column_name(logicalrelid, partkey)"
            " FROM pg_dist_partition WHERE logicalrelid IN ('products'::regclass, 'notes'::regclass, 'tags'::regclass,"
            " 'inventory_sync.inventory'::regclass, 'inventory_sync.changes'::regclass,"
            " 'inventory_sync.mutations'::regclass, 'inventory_sync.conflicts'::regclass,"
            " 'inventory_sync.changes_uuid'::regclass, 'inventory_sync.mutations_uuid'::regclass,"
            " 'inventory_sync.changes_text'::regclass, 'inventory_sync.mutations_text'::regclass)").fetchall())
        group, uuid_group, text_group = (groups[t].split()[0] for t in ("inventory_sync.inventory", "notes", "tags"))
        assert len({group, uuid_group, text_group}) == 3, groups
        assert groups == {"inventory_sync.inventory": f"{group} id", "products": f"{group} id",
                          "inventory_sync.changes": f"{group} shard_key", "inventory_sync.mutations": f"{group} shard_key",
                          "inventory_sync.conflicts": f"{group} shard_key",
                          "notes": f"{uuid_group} id", "inventory_sync.changes_uuid": f"{uuid_group} shard_key",
                          "inventory_sync.mutations_uuid": f"{uuid_group} shard_key",
                          "tags": f"{text_group} id", "inventory_sync.changes_text": f"{text_group} shard_key",
                          "inventory_sync.mutations_text": f"{text_group} shard_key"}, groups
    # Every node has the catalogs' rows, naming its own tables (Citus's copy of a table's rows
    # would carry the coordinator's OIDs).
    for node in nodes:
        with node.connect("postgres") as conn:
            assert conn.execute("SELECT array_agg(table_name::text ORDER BY table_id) FROM inventory_sync.tracked_tables"
                                ).fetchone()[0] == TRACKED, node.name
            assert conn.execute("SELECT table_name::text, field, policy FROM inventory_sync.policies").fetchall() == [
                ("notes", "likes", "delta")], node.name
    try:
        yield nodes
    finally:
        relay.close()
        for node in nodes:
            node.remove()


@pytest.fixture(scope="module")
def twin():
    """The same tables on one PostgreSQL (the test cluster)."""
    fresh_database(TWIN)
    with connect(TWIN) as conn:
        for statement in TABLES:
            conn.execute(statement)
        for table in TRACKED:
            conn.execute("SELECT inventory_sync.track(%s)", (table,))
        conn.execute(POLICY)
    yield TWIN
    drop_databases(TWIN)


def answers(conn, statements):
    """Each statement's rows (or its error), as JSON text. A message of a worker names the
    shard (`products_102146`): the shard's number is left out; so are row versions (each is the
    clock of the server that wrote it), but not whether there is one."""
    out = []
    for statement in statements:
        try:
            result = conn.execute(statement).fetchall()
        except psycopg.Error as e:  # the error itself is the answer to compare
            result = ("error", e.sqlstate, str(e).splitlines()[0])
        text = re.sub(r'_\d{6,}\\"', '\\\\"', json.dumps(result, default=str))
        out.append(re.sub(r'"version": "[0-9a-f]{16}"', '"version": "(a version)"', text))
    return out


def test_writes_answer_and_store_as_on_one_server(citus, twin):
    with citus[0].connect("postgres") as c, connect(twin) as t:
        got, expected = answers(c, SCRIPT), answers(t, SCRIPT)
        for statement, g, e in zip(SCRIPT, got, expected):
            assert g == e, f"{statement}\nCitus: {g}\none server: {e}"
        assert not any(e.startswith('["error"') for e in expected), "the script itself fails"
        for statement in STATE:
            assert answers(c, [statement]) == answers(t, [statement]), statement
        # A device's pull from the beginning, page by page: the same changes, each once. (Their
        # order differs: on Citus each node's changes come in that node's order.)
        key = lambda change: (change["table"], str(change["id"]))  # noqa: E731
        pulled = pull_all(c)[0]
        assert sorted(unversioned(pulled), key=key) == sorted(unversioned(pull_all(t)[0]), key=key)
        assert {(change["table"], str(change["id"])) for change in pulled} == {
            *(("inventory_sync.inventory", str(i)) for i in (1, 2, 3, 5, 8)),
            *(("public.products", str(i)) for i in (1, 2, 6)),
            ("public.notes", N1.strip("'")),
            ("public.notes", N2.strip("'")),
            ("public.tags", "blue"),
            ("public.tags", "red"),
        }


def held_back_by_an_open_writer(citus, base):
    """A device pulls from the coordinator while another session's write, delegated to the worker
    that holds its item, is still open: neither that change nor one committed after it on the same
    worker is handed out until it commits (the worker's horizon holds them back), while a change
    committed on the other worker is; then the next pull from the cursor has both."""
    coordinator, worker_1, worker_2 = citus
    with coordinator.connect("postgres") as device, coordinator.connect("postgres", autocommit=False) as open_writer, \
            coordinator.connect("postgres") as other:
        held, after_held = held_on(other, worker_1, base), held_on(other, worker_1, base + 50)
        elsewhere = held_on(other, worker_2, base)
        _, start = pull_all(device)
        open_writer.execute("SELECT inventory_sync.sync_upsert(%s, '{\"stock\": 1}', '2024-03-02 09:00+00')", (held,))
        for item in (after_held, elsewhere):
            other.execute("SELECT inventory_sync.sync_upsert(%s, '{\"stock\": 2}', '2024-03-02 09:00+00')", (item,))
        got, cursor = pull_all(device, start)
        assert [change["id"] for change in got] == [elsewhere], got
        open_writer.commit()
        after, _ = pull_all(device, cursor)
        assert [change["id"] for change in after] == [held, after_held], after


def test_a_pull_waits_for_a_writer_still_open(citus):
    held_back_by_an_open_writer(citus, 100)


def test_a_pull_without_the_probe_asks_every_node(citus):
    """The nodes answer a pull for their horizons through inventory_sync.node_probe (a row on every
    shard, over Citus's cached connections); a node that holds no row of it is asked over a new
    connection, with the same result. Emptied here, and filled again as it was."""
    with citus[0].connect("postgres") as c:
        probe = [row[0] for row in c.execute("SELECT k FROM inventory_sync.node_probe ORDER BY k")]
        assert len(probe) == 32, probe
        c.execute("DELETE FROM inventory_sync.node_probe")
    try:
        held_back_by_an_open_writer(citus, 1000)
    finally:
        with citus[0].connect("postgres") as c:
            c.execute("INSERT INTO inventory_sync.node_probe SELECT unnest(%s::bigint[])", (probe,))


def era_of(conn, item):
    return conn.execute("SELECT position >> 48 FROM inventory_sync.inventory WHERE id = %s", (item,)).fetchone()[0]


def held_on(conn, node, start):
    """The first item id from `start` on whose shard `node` holds: a write of it on that node is
    local, one transaction of that node only."""
    return conn.execute(
        "SELECT i FROM generate_series(%s, %s + 100) i WHERE (SELECT p.nodeport FROM pg_dist_shard_placement p"
        " WHERE p.shardid = get_shard_id_for_distribution_column('inventory_sync.inventory', i)) = %s"
        " ORDER BY i LIMIT 1", (start, start, node.citus_port)).fetchone()[0]


def uuids_held_on(conn, node, count):
    """`count` new uuids of notes whose shards `node` holds."""
    return [r[0] for r in conn.execute(
        "SELECT u FROM (SELECT gen_random_uuid() u FROM generate_series(1, 200)) g WHERE (SELECT p.nodeport"
        " FROM pg_dist_shard_placement p WHERE p.shardid = get_shard_id_for_distribution_column('notes', g.u)) = %s"
        " LIMIT %s", (node.citus_port, count)).fetchall()]


def texts_held_on(conn, node, prefix, count):
    """`count` keys of tags (`prefix` and a number) whose shards `node` holds."""
    return [r[0] for r in conn.execute(
        "SELECT k FROM (SELECT %s || i k FROM generate_series(1, 200) i) g WHERE (SELECT p.nodeport"
        " FROM pg_dist_shard_placement p WHERE p.shardid = get_shard_id_for_distribution_column('tags', g.k)) = %s"
        " LIMIT %s", (prefix, node.citus_port, count)).fetchall()]


def test_a_pull_from_the_coordinator_waits_for_a_writer_open_on_a_worker(citus):
    """Writes made on each worker land in that worker's era. A device pulling from the coordinator
    gets the changes committed on the other nodes while one worker's writer is still open; once
    it commits, the next pull from the cursor has its change. (A cursor of one position, the
    last handed out, would be past it: the held change is in a lower era than one handed out.)
    Each worker writes an item it holds: a write that reached another node would hold that
    node's horizon back too, as it should."""
    coordinator, worker_1, worker_2 = citus
    with coordinator.connect("postgres") as device, worker_1.connect("postgres", autocommit=False) as held, \
            worker_2.connect("postgres") as w2, coordinator.connect("postgres") as c:
        mine_1, mine_2, routed = held_on(c, worker_1, 300), held_on(c, worker_2, 300), held_on(c, worker_2, 500)
        _, start = pull_all(device)
        held.execute("SELECT inventory_sync.sync_upsert(%s, '{\"stock\": 1}', '2024-03-03 09:00+00')", (mine_1,))
        w2.execute("SELECT inventory_sync.sync_upsert(%s, '{\"stock\": 2}', '2024-03-03 09:00+00')", (mine_2,))
        # Through the coordinator: delegated to worker 2, which holds the item.
        c.execute("SELECT inventory_sync.sync_upsert(%s, '{\"stock\": 3}', '2024-03-03 09:00+00')", (routed,))
        got, cursor = pull_all(device, start)
        assert sorted(change["id"] for change in got) == sorted([mine_2, routed]), got
        held.commit()
        assert (era_of(c, mine_1), era_of(c, mine_2), era_of(c, routed)) == (2, 3, 3)
        after, cursor = pull_all(device, cursor)
        assert [change["id"] for change in after] == [mine_1], after
        # Nothing comes twice.
        assert pull_all(device, cursor)[0] == []


def test_distribute_again_gives_every_node_a_new_era(citus):
    """After distribute() runs again (as after adding a node), a connection that wrote before
    writes in its node's new era, and a device's cursor from before goes on."""
    coordinator, worker_1, worker_2 = citus
    with coordinator.connect("postgres") as c, worker_1.connect("postgres") as w1, \
            coordinator.connect("postgres") as device:
        mine_1 = held_on(c, worker_1, 600)
        w1.execute("SELECT inventory_sync.sync_upsert(%s, '{}', '2024-03-03 09:00+00')", (mine_1,))
        _, cursor = pull_all(device)
        given = c.execute("SELECT inventory_sync.distribute()").fetchone()[0]
        eras = [e["era"] for e in given["eras"]]
        assert len(eras) == 3 and given["cohort"] == eras[0] > 3, given
        w1.execute("SELECT inventory_sync.sync_upsert(%s, '{}', '2024-03-03 09:01+00')", (mine_1,))
        routed = held_on(c, worker_2, 700)
        c.execute("SELECT inventory_sync.sync_upsert(%s, '{}', '2024-03-03 09:00+00')", (routed,))
        assert (era_of(c, mine_1), era_of(c, routed)) == (eras[1], eras[2])
        got, _ = pull_all(device, cursor)
        assert sorted(change["id"] for change in got) == sorted([mine_1, routed]), got


def test_untrack_and_drop_of_a_distributed_tracked_table(citus):
    """untrack() and DROP TABLE of a tracked table that Citus distributed: its feed entries go, its
    tracking row goes, and other DROPs in the database still work (the sql_drop event trigger
    runs plain statements on the extension's distributed tables)."""
    with citus[0].connect("postgres") as c:
        def feed_rows(table_id):
            return c.execute("SELECT count(*) FROM inventory_sync.changes WHERE table_id = %s", (table_id,)).fetchone()[0]

        c.execute("CREATE TABLE scratch (id bigint PRIMARY KEY, v text, updated_at timestamptz)")
        c.execute("SELECT create_distributed_table('scratch', 'id', colocate_with => 'inventory_sync.inventory')")
        c.execute("SELECT inventory_sync.track('scratch')")
        first = c.execute("SELECT table_id FROM inventory_sync.tracked WHERE tbl = 'scratch'::regclass").fetchone()[0]
        for i in range(1, 5):
            c.execute("SELECT inventory_sync.sync_upsert_in('scratch', %s::bigint, '{\"v\": \"a\"}', '2024-03-01 10:00+00')",
                      (i,))
        c.execute("SELECT inventory_sync.sync_delete_in('scratch', 2::bigint, '2024-03-01 11:00+00')")
        assert feed_rows(first) == 4
        c.execute("SELECT inventory_sync.untrack('scratch')")
        assert feed_rows(first) == 0
        c.execute("SELECT inventory_sync.track('scratch')")
        again = c.execute("SELECT table_id FROM inventory_sync.tracked WHERE tbl = 'scratch'::regclass").fetchone()[0]
        c.execute("SELECT inventory_sync.sync_upsert_in('scratch', 9::bigint, '{\"v\": \"b\"}', '2024-03-01 10:00+00')")
        assert feed_rows(again) == 1
        c.execute("DROP TABLE scratch")
        assert feed_rows(again) == 0
        assert c.execute("SELECT count(*) FROM inventory_sync.tracked WHERE table_id = %s", (again,)).fetchone()[0] == 0
        c.execute("CREATE TABLE other (id bigint PRIMARY KEY)")
        c.execute("SELECT create_distributed_table('other', 'id')")
        c.execute("DROP TABLE other")


def test_single_row_calls_run_on_the_node_that_holds_the_row(citus):
    """distribute() delegates sync_upsert and sync_delete by their id, and the bigint and uuid
    forms of sync_upsert_in and sync_delete_in by their key: the coordinator sends the whole call
    to the worker that holds the row (citus.log_remote_commands shows it), and a merge policy set
    on the coordinator applies there. The text form is not delegated (a key sent untyped takes
    it): a text row's call runs on the coordinator, which sends its statements to the row's node."""
    with citus[0].connect("postgres") as c:
        issued = []
        c.add_notice_handler(lambda notice: issued.append(notice.message_primary))
        c.execute("SET citus.log_remote_commands = on")
        c.execute("SELECT inventory_sync.sync_upsert(800, '{\"stock\": 10}', '2024-03-04 09:00+00')")
        merged = c.execute("SELECT inventory_sync.sync_upsert(800, '{\"stock\": 12}', '2024-03-04 08:00+00', 'x', null,"
                           " '{\"stock\": 10}')").fetchone()[0]
        c.execute("SELECT inventory_sync.sync_delete(801, '2024-03-04 09:00+00')")
        tracked = [
            c.execute("SELECT inventory_sync.sync_upsert_in('products', 800::bigint, '{\"name\": \"Dock\", \"stock\": 1}',"
                      " '2024-03-04 09:00+00')").fetchone()[0],
            c.execute("SELECT inventory_sync.sync_delete_in('products', 800::bigint, '2024-03-04 10:00+00')").fetchone()[0],
            c.execute("SELECT inventory_sync.sync_upsert_in('notes', 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'::uuid,"
                      " '{\"body\": \"x\"}', '2024-03-04 09:00+00')").fetchone()[0],
            c.execute("SELECT inventory_sync.sync_delete_in('notes', 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'::uuid,"
                      " '2024-03-04 10:00+00')").fetchone()[0],
            c.execute("SELECT inventory_sync.sync_upsert_in('tags', 'green', '{\"label\": \"x\"}',"
                      " '2024-03-04 09:00+00')").fetchone()[0],
            c.execute("SELECT inventory_sync.sync_delete_in('tags', 'green', '2024-03-04 10:00+00')").fetchone()[0],
        ]
        c.execute("RESET citus.log_remote_commands")
        assert [t["status"] for t in tracked] == ["applied"] * 6, tracked
        calls = [m for m in issued if m.startswith("issuing SELECT inventory_sync.sync_")]
        assert [m.split("(")[0].split(".")[1] for m in calls] == [
            "sync_upsert", "sync_upsert", "sync_delete", "sync_upsert_in", "sync_delete_in", "sync_upsert_in",
            "sync_delete_in"], issued
        assert "'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'::uuid" in calls[-1], calls
        assert [m for m in issued if "INSERT INTO public.tags_" in m], issued
        # The delegated delete left its tombstone (on the row's node, like the row it removed).
        assert c.execute("SELECT op FROM inventory_sync.changes WHERE row_id = '800' AND shard_key = 800").fetchone()[0] \
            == "delete"
        assert c.execute("SELECT count(*) FROM products WHERE id = 800").fetchone()[0] == 0
        # The delta policy on stock (set in the first test, on the coordinator) applied on the
        # worker: an older write's delta is added (last-write-wins would answer conflict).
        assert merged["status"] == "applied", merged
        assert c.execute("SELECT data->'stock' FROM inventory_sync.inventory WHERE id = 800").fetchone()[0] == 12


def test_a_rows_side_rows_are_written_on_its_node(citus):
    """The journal, the mutation log and the change feed are distributed by their rows' shard
    keys, colocated with the default table: an item's side rows, and those of a row of a tracked
    bigint table colocated with it, are stored on the row's node; a uuid row's change record and
    mutation ids are in the uuid side tables, colocated with the uuid table, and a text row's in
    the text side tables, colocated with the text table. So a delegated call
    with a mutation id, its retry and a journaled conflict run whole on the item's worker, and the
    tracked tables' calls (delegated typed ones, and a text table's sent from the coordinator:
    upserts with mutation ids, stale writes, deletes' tombstones) reach that worker only. The
    second worker is reached only through the relay, which counts what is sent to it that names
    the extension's schema: for rows held by the first worker, nothing. (With side rows distributed
    by their text row id, about half of them lie on the second worker.) A uuid or text row's
    journal entry (a stale write) is in the one journal, with a key of the default table on the
    row's node."""
    coordinator, worker_1, worker_2 = citus
    relay = worker_2.relay
    with coordinator.connect("postgres") as c:
        ids = []
        while len(ids) < 6:
            ids.append(held_on(c, worker_1, (ids[-1] if ids else 1400) + 1))
        notes = uuids_held_on(c, worker_1, 4)
        tags = texts_held_on(c, worker_1, "side-", 4)
        call = lambda sql, *args: c.execute(sql, args).fetchone()[0]  # noqa: E731
        relay.watch(b"inventory_sync")
        for i in ids:
            upsert = "SELECT inventory_sync.sync_upsert(%s, '{\"stock\": 3}', '2024-03-06 10:00+00', 'dev', %s)"
            assert call(upsert, i, f"m-{i}")["status"] == "applied"
            assert call(upsert, i, f"m-{i}")["duplicate"] is True
            assert call("SELECT inventory_sync.sync_upsert(%s, '{\"stock\": 1}', '2024-03-06 09:00+00')", i)[
                "status"] == "conflict"
            assert call("SELECT inventory_sync.sync_upsert_in('products', %s::bigint, '{\"name\": \"Hub\", \"stock\": 2}',"
                        " '2024-03-06 10:00+00', 'dev', %s)", i, f"p-{i}")["status"] == "applied"
            assert call("SELECT inventory_sync.sync_upsert_in('products', %s::bigint, '{\"stock\": 1}',"
                        " '2024-03-06 09:00+00')", i)["status"] == "conflict"
            assert call("SELECT inventory_sync.sync_delete_in('products', %s::bigint, '2024-03-06 11:00+00')", i)[
                "status"] == "applied"
        for u in notes:
            note = "SELECT inventory_sync.sync_upsert_in('notes', %s::uuid, '{\"body\": \"n\"}', '2024-03-06 10:00+00', 'dev', %s)"
            assert call(note, u, f"n-{u}")["status"] == "applied"
            assert call(note, u, f"n-{u}")["duplicate"] is True
            assert call("SELECT inventory_sync.sync_upsert_in('notes', %s::uuid, '{\"body\": \"t\"}', '2024-03-06 10:30+00',"
                        " 'dev', %s)", u, f"t-{u}")["status"] == "applied"
            assert call("SELECT inventory_sync.sync_delete_in('notes', %s::uuid, '2024-03-06 11:00+00')", u)[
                "status"] == "applied"
            assert call("SELECT inventory_sync.sync_upsert_in('notes', %s::uuid, '{\"body\": \"old\"}',"
                        " '2024-03-06 09:00+00')", u)["status"] == "conflict"
        for k in tags:
            tag = "SELECT inventory_sync.sync_upsert_in('tags', %s, '{\"label\": \"t\"}', '2024-03-06 10:00+00', 'dev', %s)"
            assert call(tag, k, f"t-{k}")["status"] == "applied"
            assert call(tag, k, f"t-{k}")["duplicate"] is True
            assert call("SELECT inventory_sync.sync_delete_in('tags', %s, '2024-03-06 11:00+00', 'dev', %s)", k,
                        f"d-{k}")["status"] == "applied"
            assert call("SELECT inventory_sync.sync_upsert_in('tags', %s, '{\"label\": \"old\"}',"
                        " '2024-03-06 09:00+00')", k)["status"] == "conflict"
        assert relay.seen() == 0, f"a call for rows on the first worker reached the second: {relay.seen_chunks()}"
        assert c.execute("SELECT count(*) FROM inventory_sync.conflicts WHERE row_id = ANY(%s)",
                         (tags,)).fetchone()[0] == len(tags)
        for side, expected in [("mutations_text", 2), ("changes_text", 1)]:
            assert c.execute(f"SELECT count(*) FROM inventory_sync.{side} WHERE shard_key = ANY(%s)",
                             (tags,)).fetchone()[0] == expected * len(tags), side
        assert c.execute("SELECT count(*) FROM inventory_sync.conflicts WHERE row_id = ANY(%s)",
                         ([str(u) for u in notes],)).fetchone()[0] == len(notes)
        for side, expected in [("mutations_uuid", 2), ("changes_uuid", 1)]:
            assert c.execute(f"SELECT count(*) FROM inventory_sync.{side} WHERE shard_key = ANY(%s)",
                             (notes,)).fetchone()[0] == expected * len(notes), side
        # Every side row is there, as the calls left them.
        for side, expected in [("mutations", 2), ("conflicts", 2), ("changes", 1)]:
            assert c.execute(f"SELECT count(*) FROM inventory_sync.{side} WHERE shard_key = ANY(%s)",
                             (ids,)).fetchone()[0] == expected * len(ids), side
        # The relay sees a call for an item held by the second worker.
        other = held_on(c, worker_2, 1400)
        call("SELECT inventory_sync.sync_upsert(%s, '{\"stock\": 3}', '2024-03-06 10:00+00', 'dev', 'm-x')", other)
        assert relay.seen() > 0
        relay.watch(None)


def unversioned(outcomes):
    """Outcomes (or pulled changes) without their versions (the clock of the server that wrote),
    which every one that is not an error has."""
    for o in outcomes:
        if o.get("status") != "error":
            assert re.fullmatch(r"[0-9a-f]{16}", o.pop("version") or "0" * 16), o
    return outcomes


def push_per_node(c, batch):
    """A backend's push on Citus: push_groups, then each group's changes to sync_push_on, the
    outcomes put back in the batch's order. Answers the outcomes and the groups."""
    groups = c.execute("SELECT inventory_sync.push_groups(%s)", (Jsonb(batch),)).fetchone()[0]
    outcomes = [None] * len(batch)
    for group in groups:
        part = [batch[i] for i in group["indexes"]]
        answers = c.execute("SELECT inventory_sync.sync_push_on(%s, %s)", (group["node_key"], Jsonb(part))).fetchone()[0]
        for i, answer in zip(group["indexes"], answers):
            outcomes[i] = answer
    return outcomes, groups


def test_a_push_sent_per_node_runs_whole_on_each_and_answers_as_one_push(citus, twin):
    """push_groups groups a batch's changes by the node that holds their rows (items, a tracked
    bigint table's rows, a tracked uuid table's and a text table's, with mutation ids), with a key of each node;
    sync_push_on by that key is sent whole to that node, and a group for the first worker reaches
    nothing on the second. Put back in order, the outcomes are those of one sync_push of the batch
    on one server; sent again, every change with a mutation id is a duplicate. Changes that name
    no row (a table that does not exist, a key that is not one) are in the group without a node,
    which runs on the coordinator and answers their errors."""
    coordinator, worker_1, worker_2 = citus
    relay = worker_2.relay
    with coordinator.connect("postgres") as c, connect(twin) as t:
        on = {worker_1.citus_port: [held_on(c, worker_1, 3000), held_on(c, worker_1, 3100)],
              worker_2.citus_port: [held_on(c, worker_2, 3000), held_on(c, worker_2, 3100)]}
        notes = {port: uuids_held_on(c, node, 2) for port, node in
                 ((worker_1.citus_port, worker_1), (worker_2.citus_port, worker_2))}
        tags = {port: texts_held_on(c, node, "push-", 2) for port, node in
                ((worker_1.citus_port, worker_1), (worker_2.citus_port, worker_2))}
        batch, home = [], []
        for port in on:
            for item in on[port]:
                batch.append({"id": item, "payload": {"stock": 4}, "client_ts": "2024-03-09T10:00:00Z",
                              "client_id": "pn", "mutation_id": f"i-{item}"})
                batch.append({"table": "products", "id": item, "payload": {"name": "Pen", "stock": 1},
                              "client_ts": "2024-03-09T10:00:00Z", "client_id": "pn", "mutation_id": f"p-{item}"})
                home += [port, port]
            for u in notes[port]:
                batch.append({"table": "notes", "id": str(u), "payload": {"body": "b"},
                              "client_ts": "2024-03-09T10:00:00Z", "client_id": "pn", "mutation_id": f"n-{u}"})
                batch.append({"table": "notes", "id": str(u), "op": "delete", "client_ts": "2024-03-09T11:00:00Z"})
                home += [port, port]
            for k in tags[port]:
                batch.append({"table": "tags", "id": k, "payload": {"label": "b"},
                              "client_ts": "2024-03-09T10:00:00Z", "client_id": "pn", "mutation_id": f"t-{k}"})
                home.append(port)
        batch += [{"table": "no_such_table", "id": 1, "payload": {}, "client_ts": "2024-03-09T10:00:00Z"},
                  {"table": "notes", "id": "not a uuid", "payload": {}, "client_ts": "2024-03-09T10:00:00Z"}]
        home += [None, None]
        groups = c.execute("SELECT inventory_sync.push_groups(%s)", (Jsonb(batch),)).fetchone()[0]
        assert sorted(i for g in groups for i in g["indexes"]) == list(range(len(batch))), groups
        assert len(groups) == 3, groups
        for group in groups:
            port = None if group["node_key"] is None else c.execute(
                "SELECT p.nodeport FROM pg_dist_shard_placement p"
                " WHERE p.shardid = get_shard_id_for_distribution_column('inventory_sync.inventory', %s::bigint)",
                (group["node_key"],)).fetchone()[0]
            assert {home[i] for i in group["indexes"]} == {port}, (group, port)
        # Each node's group is sent whole to it; the first worker's reaches nothing on the second.
        issued = []
        c.add_notice_handler(lambda notice: issued.append(notice.message_primary))
        c.execute("SET citus.log_remote_commands = on")
        first = next(g for g in groups if g["node_key"] is not None and home[g["indexes"][0]] == worker_1.citus_port)
        relay.watch(b"inventory_sync")
        c.execute("SELECT inventory_sync.sync_push_on(%s, %s)",
                  (first["node_key"], Jsonb([batch[i] for i in first["indexes"]]))).fetchone()
        assert relay.seen() == 0, "the first worker's push reached the second"
        relay.watch(None)
        c.execute("RESET citus.log_remote_commands")
        assert [m for m in issued if m.startswith("issuing SELECT inventory_sync.sync_push_on(")], issued
        # The whole batch, per node (the first group again: its changes answer as duplicates
        # now, so the comparison uses a fresh run of the other groups and the twin's own retry).
        outcomes, _ = push_per_node(c, batch)
        expected = t.execute("SELECT inventory_sync.sync_push(%s)", (Jsonb(batch),)).fetchone()[0]
        retried = t.execute("SELECT inventory_sync.sync_push(%s)", (Jsonb(batch),)).fetchone()[0]
        first_indexes = set(first["indexes"])
        outcomes, expected, retried = unversioned(outcomes), unversioned(expected), unversioned(retried)
        assert [o for i, o in enumerate(outcomes) if i not in first_indexes] == \
               [o for i, o in enumerate(expected) if i not in first_indexes]
        assert [outcomes[i] for i in sorted(first_indexes)] == [retried[i] for i in sorted(first_indexes)]
        assert [o["status"] for o in expected[-2:]] == ["error", "error"]
        # Sent again: every change with a mutation id is a duplicate, on every node.
        again, _ = push_per_node(c, batch)
        assert [o.get("duplicate") for o, change in zip(again, batch) if "mutation_id" in change] == \
               [True] * sum("mutation_id" in change for change in batch)
        assert unversioned(again) == unversioned(t.execute("SELECT inventory_sync.sync_push(%s)", (Jsonb(batch),)).fetchone()[0])


def test_a_pull_waits_for_a_write_committing_in_two_phases(citus):
    """A push run on the coordinator that writes items on both workers commits in two phases: the
    workers prepare, the coordinator commits, then each worker commits its part. Here the second
    worker's commit is held back on its way (the relay), so its item is not visible there yet
    while the coordinator's transaction has ended. A device pulling in between must not be handed
    a cursor past that item: each row's position is taken on the node that stores it (the
    `stamp_position` trigger), whose horizon holds it back until it commits there. (With the
    coordinator's positions, the pull would pass it and no later pull would hand it out.)"""
    coordinator, worker_1, worker_2 = citus
    relay = worker_2.relay
    with coordinator.connect("postgres") as device, coordinator.connect("postgres") as pusher, \
            coordinator.connect("postgres") as c:
        first, second = held_on(c, worker_1, 1200), held_on(c, worker_2, 1200)
        _, start = pull_all(device)
        push = json.dumps([{"id": item, "payload": {"stock": 4}, "client_ts": "2024-03-05T09:00:00Z"}
                           for item in (first, second)])
        relay.hold(b"COMMIT PREPARED")
        pushing = threading.Thread(target=lambda: pusher.execute("SELECT inventory_sync.sync_push(%s)", (push,)))
        pushing.start()
        try:
            assert relay.held.wait(30), "the push never reached its second phase"
            assert c.execute("SELECT count(*) FROM inventory_sync.inventory WHERE id = %s", (second,)).fetchone()[0] == 0
            got, cursor = pull_all(device, start)
            assert second not in [change["id"] for change in got], got
        finally:
            relay.release()
            pushing.join(30)
        assert not pushing.is_alive()
        after, _ = pull_all(device, cursor)
        assert sorted(change["id"] for change in got + after) == sorted([first, second]), (got, after)
        # Each row's era is its node's (the latest cohort's eras: the coordinator's, then the workers').
        eras = c.execute("SELECT array_agg(era ORDER BY era) FROM inventory_sync.eras"
                         " WHERE cohort = (SELECT max(cohort) FROM inventory_sync.eras)").fetchone()[0]
        assert [era_of(c, first), era_of(c, second)] == eras[1:], eras


# The extension's own objects as a single server has them: what undistribute() must give back.
CATALOG = """
SELECT c.relname, c.relkind, c.relacl::text, pg_catalog.obj_description(c.oid, 'pg_class'),
       (SELECT array_agg(a.attname || ': ' || d.description ORDER BY a.attnum) FROM pg_attribute a
          JOIN pg_description d ON d.objoid = c.oid AND d.objsubid = a.attnum WHERE a.attrelid = c.oid),
       (SELECT array_agg(concat_ws(' ', p.polname, p.polpermissive, p.polcmd, p.polroles::text,
                                   pg_get_expr(p.polqual, c.oid), pg_get_expr(p.polwithcheck, c.oid)) ORDER BY p.polname)
          FROM pg_policy p WHERE p.polrelid = c.oid),
       (SELECT array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull
                         || coalesce(' ' || pg_get_expr(d.adbin, d.adrelid), '') ORDER BY a.attnum)
          FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT array_agg(pg_get_indexdef(i.indexrelid) ORDER BY 1) FROM pg_index i WHERE i.indrelid = c.oid),
       c.relrowsecurity,
       EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e'),
       (SELECT x.cond FROM pg_extension e, ROWS FROM (unnest(e.extconfig), unnest(e.extcondition)) AS x(oid, cond)
         WHERE e.extname = 'inventory_sync' AND x.oid = c.oid)
  FROM pg_class c WHERE c.relnamespace = 'inventory_sync'::regnamespace AND c.relkind IN ('r', 'v', 'S')
 ORDER BY c.relname"""

# What of the extension is on a node, shards included (Citus hides them unless told).
LEFT_ON_A_NODE = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'inventory_sync'"


def cluster_database(citus, name):
    """A database of its own on every node, with Citus, the nodes registered on the coordinator and
    the extension created there (not distributed yet)."""
    coordinator = citus[0]
    for node in citus:
        with node.connect("postgres") as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        with node.connect(name) as conn:
            conn.execute("CREATE EXTENSION citus")
    with coordinator.connect(name) as c:
        c.execute("SELECT citus_set_coordinator_host('localhost', %s)", (coordinator.port,))
        for worker in citus[1:]:
            c.execute("SELECT citus_add_node('localhost', %s)", (worker.citus_port,))
        c.execute("CREATE EXTENSION inventory_sync")


def test_an_installation_moves_onto_the_cluster_with_its_history(citus):
    """An installation with a history moves onto Citus: tracked tables (bigint, uuid and text keys) with
    rows, tombstones, merges, journal entries and mutation ids, written on one server, then
    distribute() spreads the extension and the tables. Every state reads as it was; retries of
    mutations made before the move are answered as duplicates, also by a delegated call, which
    finds the mutation on the row's node; a device goes on from its cursor and gets only what was
    written since. In a database of its own."""
    coordinator = citus[0]
    name = "isync_move"
    cluster_database(citus, name)
    try:
        with coordinator.connect(name) as c:
            for statement in TABLES:
                c.execute(statement)
            for statement in [*(f"SELECT inventory_sync.track('{table}')" for table in TRACKED), POLICY, *SCRIPT]:
                c.execute(statement)
            pulled, cursor = pull_all(c)
            kept = answers(c, STATE)
            c.execute("SELECT inventory_sync.distribute()")
            assert c.execute("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid IN"
                             " ('products'::regclass, 'notes'::regclass, 'tags'::regclass)").fetchone()[0] == 3
            assert answers(c, STATE) == kept
            retried = [
                c.execute(SCRIPT[7]).fetchone()[0],
                c.execute("SELECT inventory_sync.sync_upsert_in('products', 6::bigint, '{\"name\": \"Pad\", \"stock\": 2}',"
                          " '2024-03-01 10:00+00', 'd', 'p3')").fetchone()[0],
                *c.execute(f"SELECT inventory_sync.sync_push('{json.dumps(PUSH[:4])}')").fetchone()[0],
            ]
            assert [r.get("duplicate") for r in retried] == [True] * 6, retried
            assert answers(c, STATE) == kept
            c.execute("SELECT inventory_sync.sync_upsert(950, '{\"stock\": 1}', '2024-03-06 09:00+00')")
            assert [change["id"] for change in pull_all(c, cursor)[0]] == [950]
            assert len(pull_all(c)[0]) == len(pulled) + 1
            c.execute("SELECT inventory_sync.undistribute()")
    finally:
        with coordinator.connect("postgres") as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_undistribute_takes_everything_back_and_drop_extension_leaves_nothing(citus):
    """undistribute() takes the extension's tables back from the workers onto the coordinator:
    every row, and the tables as one server has them (grants, row-level security policies,
    restrictive ones too, comments, and the marks pg_dump saves their rows by), with nothing left
    on the workers. Devices go on from their cursors, and writes go on; distribute() spreads it
    again. Then DROP EXTENSION leaves nothing on any node. In a database of its own, so the other
    tests keep their cluster."""
    coordinator = citus[0]
    name = "isync_teardown"
    cluster_database(citus, name)
    with coordinator.connect(name) as c:
        single = c.execute(CATALOG).fetchall()
        # distribute() refuses to distribute a tracked table with a dropped column, which the
        # workers' copies would number otherwise, and leaves everything as it was.
        c.execute("CREATE TABLE gappy (junk int, id bigint PRIMARY KEY, v text, updated_at timestamptz)")
        c.execute("ALTER TABLE gappy DROP COLUMN junk")
        c.execute("SELECT inventory_sync.track('gappy')")
        with pytest.raises(psycopg.Error) as refused:
            c.execute("SELECT inventory_sync.distribute()")
        assert (refused.value.sqlstate, refused.value.diag.message_primary) == (
            "55000", "table public.gappy has dropped columns, which the workers' copies would number otherwise")
        assert c.execute("SELECT count(*) FROM pg_dist_partition").fetchone()[0] == 0
        c.execute("DROP TABLE gappy")
        # A text table distributed by hand before distribute() is tracked then, and distribute()
        # puts the text side tables in its group (the text type's default one).
        c.execute("CREATE TABLE early (id text PRIMARY KEY, v text, updated_at timestamptz)")
        c.execute("SELECT create_distributed_table('early', 'id')")
        c.execute("SELECT inventory_sync.track('early')")
        c.execute("SELECT inventory_sync.distribute()")
        assert colocation(c, "early") == colocation(c, "inventory_sync.changes_text")
        c.execute("DROP TABLE early")
        c.execute(TABLES[0])
        c.execute("SELECT create_distributed_table('products', 'id', colocate_with => 'inventory_sync.inventory')")
        for statement in ["SELECT inventory_sync.track('products')", *SCRIPT[:10], *SCRIPT[12:21]]:
            c.execute(statement)
        pulled, cursor = pull_all(c)
        kept = answers(c, STATE[:5])
        taken = c.execute("SELECT inventory_sync.undistribute()").fetchone()[0]
        assert sorted(taken["tables"]) == ["changes", "changes_text", "changes_uuid", "conflicts", "eras",
                                           "field_policies", "inventory", "mutations", "mutations_text",
                                           "mutations_uuid", "node_probe", "purge_horizon", "tracked"], taken
        assert c.execute(CATALOG).fetchall() == single
        assert answers(c, STATE[:5]) == kept
        assert c.execute("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'inventory_sync.%'"
                         ).fetchone()[0] == 0
        for worker in citus[1:]:
            with worker.connect(name, options="-c citus.override_table_visibility=off") as w:
                shards = w.execute(LEFT_ON_A_NODE.replace("count(*)", "count(*) FILTER (WHERE c.relname ~ '_[0-9]+$')"))
                assert shards.fetchone()[0] == 0, worker.name
        # A device goes on from its cursor; writes go on, on the coordinator alone.
        c.execute("SELECT inventory_sync.sync_upsert(900, '{\"stock\": 1}', '2024-03-06 09:00+00')")
        c.execute("SELECT inventory_sync.sync_upsert_in('products', 900::bigint, '{\"name\": \"n\", \"stock\": 1}',"
                  " '2024-03-06 09:00+00')")
        after, _ = pull_all(c, cursor)
        assert sorted((change["table"], change["id"]) for change in after) == [
            ("inventory_sync.inventory", 900), ("public.products", 900)], after
        assert len(pull_all(c)[0]) == len(pulled) + 2
        assert c.execute("SELECT inventory_sync.undistribute()").fetchone()[0] == {"tables": []}
        # Spread again, it goes on from there: a write delegated to a worker reaches the device.
        _, cursor = pull_all(c)
        again = c.execute("SELECT inventory_sync.distribute()").fetchone()[0]
        c.execute("SELECT inventory_sync.sync_upsert(901, '{\"stock\": 1}', '2024-03-06 09:00+00')")
        assert [change["id"] for change in pull_all(c, cursor)[0]] == [901], again
        assert len(c.execute("SELECT inventory_sync.undistribute()").fetchone()[0]["tables"]) == 13
        assert c.execute(CATALOG).fetchall() == single
        c.execute("DROP EXTENSION inventory_sync CASCADE")
    for node in citus:
        with node.connect(name, options="-c citus.override_table_visibility=off") as conn:
            assert conn.execute(LEFT_ON_A_NODE).fetchone()[0] == 0, node.name
    with coordinator.connect("postgres") as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def delete_waits_then_deletes(upserting, c, table, item, delete):
    """Run `delete` (a newer delete of `item` in `table`) while an upsert that creates the row is
    open on `upserting`: it waits for the upsert, and once that commits deletes the row it finds.
    No row is left, and the feed says deleted."""
    deleting = threading.Thread(target=delete)
    deleting.start()
    deleting.join(2)
    assert deleting.is_alive(), "the delete did not wait for the upsert"
    upserting.commit()
    deleting.join(30)
    assert not deleting.is_alive()
    assert c.execute(f"SELECT count(*) FROM {table} WHERE id = %s", (item,)).fetchone()[0] == 0
    feed = {"notes": "inventory_sync.changes_uuid", "tags": "inventory_sync.changes_text"}.get(table, "inventory_sync.changes")
    assert c.execute(f"SELECT op FROM {feed} WHERE row_id = %s AND table_id = "
                     f"(SELECT table_id FROM inventory_sync.tracked WHERE tbl = '{table}'::regclass)",
                     (str(item),)).fetchone()[0] == "delete"


def test_writers_of_one_row_meet_at_its_lock_whatever_node_runs_them(citus):
    """A tracked row's advisory lock is taken on the node that holds the row, whichever node runs
    the write: here an upsert of a new row run on the coordinator (inside a transaction block)
    and a newer delete of it run on the worker that holds it. The delete waits for the upsert,
    then deletes the row it finds. (With the lock taken where each write runs, the delete goes
    ahead past a row it cannot see yet, and the table keeps the row that its change feed says was
    deleted.)"""
    coordinator, worker = citus[0], citus[1]
    with coordinator.connect("postgres", autocommit=False) as upserting, coordinator.connect("postgres") as c, \
            worker.connect("postgres") as on_worker:
        item = held_on(c, worker, 5000)
        issued = []
        upserting.add_notice_handler(lambda notice: issued.append(notice.message_primary))
        upserting.execute("SET citus.log_remote_commands = on")
        upserting.execute("SELECT inventory_sync.sync_upsert_in('products', %s::bigint, '{\"name\": \"n\", \"stock\": 1}',"
                          " '2024-03-07 09:00+00')", (item,))
        assert not [m for m in issued if "inventory_sync.sync_upsert_in" in m], "the upsert was delegated"
        delete_waits_then_deletes(upserting, c, "products", item, lambda: on_worker.execute(
            "SELECT inventory_sync.sync_delete_in('products', %s::bigint, '2024-03-07 10:00+00')", (item,)))


def test_writers_of_a_reference_tables_row_meet_where_its_calls_are_delegated(citus):
    """A tracked reference table with a bigint key: its rows are on every node, and a call sent
    alone is delegated by its key to a worker, while a call in a transaction block runs on the
    coordinator, so their advisory locks are taken on two nodes. What serializes them is Citus's
    own lock on a reference table's modifications, taken on one node for all (seen while the
    delete waits: `lock_shard_resources` on a worker): an upsert of a new row in a transaction
    block on the coordinator and a newer delete sent alone (delegated) meet there, and the delete
    deletes the row once the upsert commits. (Were they not serialized, the delete would pass the
    row it cannot see yet and the table would keep a row its feed says was deleted.)"""
    coordinator, worker = citus[0], citus[1]
    with coordinator.connect("postgres") as c:
        c.execute("CREATE TABLE shelves (id bigint PRIMARY KEY, label text, updated_at timestamptz)")
        c.execute("SELECT create_reference_table('shelves')")
        c.execute("SELECT inventory_sync.track('shelves')")
    try:
        with coordinator.connect("postgres", autocommit=False) as upserting, coordinator.connect("postgres") as c, \
                coordinator.connect("postgres") as deleter:
            item = held_on(c, worker, 7000)
            upserting.execute("SELECT inventory_sync.sync_upsert_in('shelves', %s::bigint, '{\"label\": \"n\"}',"
                              " '2024-03-09 09:00+00')", (item,))
            issued = []
            deleter.add_notice_handler(lambda notice: issued.append(notice.message_primary))
            deleter.execute("SET citus.log_remote_commands = on")
            delete_waits_then_deletes(upserting, c, "shelves", item, lambda: deleter.execute(
                "SELECT inventory_sync.sync_delete_in('shelves', %s::bigint, '2024-03-09 10:00+00')", (item,)))
            assert [m for m in issued if m.startswith("issuing SELECT inventory_sync.sync_delete_in(")], issued
    finally:
        with coordinator.connect("postgres") as c:
            c.execute("DROP TABLE shelves")


def test_track_refuses_a_table_the_workers_number_otherwise(citus):
    """A column dropped before a table was distributed is not in the workers' copies, which number
    the columns after it otherwise; the catalogs name the key and timestamp columns by number, so
    track() refuses such a table (55000, naming a node) rather than have the calls Citus sends to
    the workers fail."""
    with citus[0].connect("postgres") as c:
        c.execute("CREATE TABLE renumbered (junk int, id bigint PRIMARY KEY, v text, updated_at timestamptz)")
        c.execute("ALTER TABLE renumbered DROP COLUMN junk")
        c.execute("SELECT create_distributed_table('renumbered', 'id', colocate_with => 'inventory_sync.inventory')")
        with pytest.raises(psycopg.Error) as refused:
            c.execute("SELECT inventory_sync.track('renumbered')")
        assert refused.value.sqlstate == "55000"
        assert re.fullmatch(r"table public\.renumbered numbers its columns otherwise on node \d+",
                            refused.value.diag.message_primary), refused.value.diag.message_primary
        assert c.execute("SELECT count(*) FROM inventory_sync.tracked WHERE tbl = 'renumbered'::regclass").fetchone()[0] == 0
        c.execute("DROP TABLE renumbered")


def colocation(c, table):
    return c.execute("SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = %s::regclass",
                     (table,)).fetchone()[0]


def test_track_refuses_a_table_the_cluster_does_not_hold_and_distribute_takes_one_more(citus):
    """Once the extension is spread over the cluster, a table to track must be on every node (a
    delegated call runs on a worker): track() refuses a table only the coordinator has (55000,
    with how to distribute it). inventory_sync.distribute(tbl) distributes one by its key,
    colocated as distribute() colocates tracked tables (a bigint key with the default table, a
    uuid or text key with its side tables); then it is tracked, and its typed calls are delegated
    to the row's node (a text table's run on the coordinator, on that one node). Again, it leaves the table as it is; a table without a single-column key,
    or with a column dropped before another, is refused as track() refuses it, and so is a key
    Citus cannot colocate with its side tables: an integer key (42804), a text key of another
    collation (42P21). track() refuses a table distributed by hand otherwise than with its side
    tables (55000): its row and side rows would lie on two nodes."""
    with citus[0].connect("postgres") as c:
        tables = {"later_b": "bigint", "later_u": "uuid", "later_t": "text"}
        for table, key in tables.items():
            c.execute(f"CREATE TABLE {table} (id {key} PRIMARY KEY, v text, updated_at timestamptz)")
        with pytest.raises(psycopg.Error) as refused:
            c.execute("SELECT inventory_sync.track('later_b')")
        assert refused.value.sqlstate == "55000"
        assert refused.value.diag.message_primary == "table public.later_b is not distributed over the cluster"
        assert "inventory_sync.distribute('t')" in refused.value.diag.message_hint
        answers = {t: c.execute("SELECT inventory_sync.distribute(%s::regclass)", (t,)).fetchone()[0] for t in tables}
        assert answers["later_b"] == {"table": "public.later_b", "distributed": True, "column": "id",
                                      "colocate_with": "inventory_sync.inventory"}, answers
        assert answers["later_u"]["colocate_with"] == "inventory_sync.changes_uuid", answers
        assert answers["later_t"]["colocate_with"] == "inventory_sync.changes_text", answers
        assert colocation(c, "later_b") == colocation(c, "inventory_sync.inventory")
        assert colocation(c, "later_u") == colocation(c, "inventory_sync.changes_uuid")
        assert colocation(c, "later_t") == colocation(c, "inventory_sync.changes_text")
        assert c.execute("SELECT inventory_sync.distribute('later_b')").fetchone()[0] == {
            "table": "public.later_b", "distributed": False}
        issued = []
        c.add_notice_handler(lambda notice: issued.append(notice.message_primary))
        for table in tables:
            c.execute("SELECT inventory_sync.track(%s)", (table,))
        c.execute("SET citus.log_remote_commands = on")
        written = [
            c.execute("SELECT inventory_sync.sync_upsert_in('later_b', 5::bigint, '{\"v\": \"x\"}',"
                      " '2024-03-08 09:00+00')").fetchone()[0],
            c.execute("SELECT inventory_sync.sync_upsert_in('later_u', 'd0eebc99-9c0b-4ef8-bb6d-6bb9bd380a14'::uuid,"
                      " '{\"v\": \"x\"}', '2024-03-08 09:00+00')").fetchone()[0],
            c.execute("SELECT inventory_sync.sync_upsert_in('later_t', 'k-5', '{\"v\": \"x\"}', '2024-03-08 09:00+00')"
                      ).fetchone()[0],
        ]
        c.execute("RESET citus.log_remote_commands")
        assert [w["status"] for w in written] == ["applied"] * 3, written
        assert len([m for m in issued if m.startswith("issuing SELECT inventory_sync.sync_upsert_in(")]) == 2, issued
        # Refused as track() refuses: no single-column key; a column dropped before another.
        c.execute("CREATE TABLE later_pair (a bigint, b bigint, updated_at timestamptz, PRIMARY KEY (a, b))")
        c.execute("CREATE TABLE later_gap (id bigint PRIMARY KEY, gone text, v text, updated_at timestamptz)")
        c.execute("ALTER TABLE later_gap DROP COLUMN gone")
        c.execute("CREATE TABLE later_i (id integer PRIMARY KEY, v text, updated_at timestamptz)")
        c.execute("CREATE TABLE later_c (id text COLLATE \"C\" PRIMARY KEY, v text, updated_at timestamptz)")
        cannot = "the key of table public.{} cannot be colocated with its feed records on the cluster"
        for table, state, message in [
            ("later_pair", "42P16", "table public.later_pair has no single-column primary key"),
            ("later_gap", "55000", "table public.later_gap has dropped columns, which the workers' copies would number otherwise"),
            ("later_i", "42804", cannot.format("later_i")),
            ("later_c", "42P21", cannot.format("later_c")),
        ]:
            with pytest.raises(psycopg.Error) as refused:
                c.execute("SELECT inventory_sync.distribute(%s::regclass)", (table,))
            assert (refused.value.sqlstate, refused.value.diag.message_primary) == (state, message)
        # Distributed by hand: a text key in a group of its own and an integer key in its type's
        # group are refused; a bigint key in its type's default group (the default table's) is
        # tracked.
        c.execute("CREATE TABLE later_own (id text PRIMARY KEY, v text, updated_at timestamptz)")
        c.execute("SELECT create_distributed_table('later_own', 'id', colocate_with => 'none')")
        c.execute("CREATE TABLE later_by (id bigint PRIMARY KEY, v text, updated_at timestamptz)")
        c.execute("SELECT create_distributed_table('later_by', 'id')")
        c.execute("SELECT create_distributed_table('later_i', 'id')")
        for table, state, message in [
            ("later_own", "55000", "table public.later_own is not distributed by its key with inventory_sync.changes_text"),
            ("later_i", "42804", cannot.format("later_i")),
        ]:
            with pytest.raises(psycopg.Error) as refused:
                c.execute("SELECT inventory_sync.track(%s)", (table,))
            assert (refused.value.sqlstate, refused.value.diag.message_primary) == (state, message)
            assert c.execute("SELECT count(*) FROM inventory_sync.tracked WHERE tbl = %s::regclass",
                             (table,)).fetchone()[0] == 0
        c.execute("SELECT inventory_sync.track('later_by')")  # by its bigint key, with the default table
        for table in [*tables, "later_pair", "later_gap", "later_i", "later_c", "later_own", "later_by"]:
            c.execute(f"DROP TABLE {table}")


def test_a_rows_lock_lasts_until_its_node_commits_a_call_sent_from_the_coordinator(citus):
    """A call run on the coordinator (the text form, not delegated, here for a uuid row on worker
    2): Citus runs a plain SELECT sent alone to a worker outside the write's transaction there, so
    the row's lock statement also locks the row (FOR UPDATE), which has Citus run it inside it.
    The upsert creates the row and its commit on worker 2 is held back on its way (the relay: the
    COMMIT message itself, not the BEGIN before it, which names READ COMMITTED); a newer delete of
    the row run on worker 2 waits for it, then deletes the row. (With the lock taken outside the
    transaction, it ended at once: the delete passed the row it could not see yet, and the table
    kept a row its feed says was deleted.)"""
    coordinator, worker_1, worker_2 = citus
    relay = worker_2.relay
    with coordinator.connect("postgres") as upserting, coordinator.connect("postgres") as c, \
            worker_2.connect("postgres") as on_worker:
        item = uuids_held_on(c, worker_2, 1)[0]
        issued = []
        upserting.add_notice_handler(lambda notice: issued.append(notice.message_primary))
        upserting.execute("SET citus.log_remote_commands = on")
        relay.hold(b"COMMIT\x00")  # the commit itself (BEGIN names READ COMMITTED)
        upsert = threading.Thread(target=lambda: upserting.execute(
            "SELECT inventory_sync.sync_upsert_in('notes', %s::text, '{\"body\": \"n\"}', '2024-03-08 09:00+00')",
            (str(item),)))
        upsert.start()
        delete = None
        try:
            assert relay.held.wait(30), "the upsert never reached its commit"
            delete = threading.Thread(target=lambda: on_worker.execute(
                "SELECT inventory_sync.sync_delete_in('notes', %s::uuid, '2024-03-08 10:00+00')", (item,)))
            delete.start()
            delete.join(2)
        finally:
            relay.release()
            upsert.join(30)
            if delete:
                delete.join(30)
        assert not [m for m in issued if m.startswith("issuing SELECT inventory_sync.sync_upsert_in(")], issued
        assert c.execute("SELECT count(*) FROM notes WHERE id = %s", (item,)).fetchone()[0] == 0
        assert c.execute("SELECT op FROM inventory_sync.changes_uuid WHERE shard_key = %s", (item,)).fetchone()[0] \
            == "delete"
