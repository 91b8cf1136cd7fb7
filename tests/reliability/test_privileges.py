"""Who may do what through inventory_sync, with separate login roles on real connections.

The functions run with the caller's rights (SECURITY INVOKER). This file proves, function by
function, that:

- a role without rights on a table can do nothing to it through any of the functions (42501,
  or filtered out of a pull), and writes nothing anywhere, not even in the bookkeeping tables;
  rights revoked while a connection is open (its statements already planned and kept) are
  honoured on that connection's next call;
- track, untrack and set_policy are for the table's owner, the purges for the extension's owner;
- row-level security is honoured by every write path, every answer and every pull: writes to
  rows the caller cannot see are not applied, and no answer, journal row or pull shows them;
- the bookkeeping tables are readable and writable exactly as sql/schema.sql designs them
  (the journal only with a GRANT, mutation ids only one's own, ...);
- objects planted in `public`, in a schema first on the caller's search_path or in pg_temp
  (operators, functions, domains, tables and views named like the extension's) are never used:
  every function gives the same answers and leaves the same state as with a clean search_path,
  and no planted object is ever called;
- no function is SECURITY DEFINER unless it must be, and those that are pin search_path.

Who can read and write what (sql/schema.sql, as these tests pin it down):

  object                         read                                  write
  inventory_sync.inventory       roles granted SELECT                  roles granted INSERT, UPDATE
  inventory_sync.conflicts       roles granted SELECT: every row, of   anyone INSERTs rows in their own name
    (the journal)                every user and table, server_data     (db_user = current_user); UPDATE,
                                 included; nobody else, not even       DELETE, TRUNCATE: the owner only
                                 their own rows
  inventory_sync.mutations       everyone, only the rows they applied  INSERT/UPDATE/DELETE own rows only,
                                 (db_user = current_user)              of tables they may write
  inventory_sync.changes         everyone, rows of the tables they     nobody directly: the sync functions
    (feed, tombstones)           may SELECT                            write it as its owner
  inventory_sync.tracked,        everyone                              the table's owner (and members of the
    tracked_tables                                                     owning role)
  inventory_sync.field_policies, everyone                              the table's owner
    policies
  inventory_sync.purge_horizon   everyone                              the owner only
  inventory_sync.eras            everyone                              nobody directly: the sync functions
                                                                       write it as its owner
  sync_* answers (server_data)   the row as the caller may SELECT it; NULL under row-level security
  sync_pull                      tables the caller may SELECT; rows as row-level security shows them;
                                 tombstones (key and time only) of every row of those tables
  purge_tombstones               the extension's owner (it needs DELETE on its tables)
  purge_mutations                the extension's owner: all ids; anyone else: only their own
  track/untrack/set_policy       the table's owner

Tests introduced by "Regression test of a bug this suite found (fixed)" pin down bugs these tests
found; a test marked xfail(strict=True) expects the correct behaviour of a bug not fixed yet.

pg_regress already covers (tests/pg_regress/sql/permissions.sql, tracked_security.sql): a
reader's sync_upsert on the default table (42501), RLS on a single sync_upsert_in (conflict with
server_data null), a plain pull under RLS, a reader's untrack, and a pull without SELECT. Here
every other function and path is covered, with login roles instead of SET ROLE.
"""

import contextlib
import json
import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb

import harness
from conftest import connect, fresh_database

# Roles are cluster-wide: every name carries the suite's prefix, and they are dropped again.
R = {
    "owner": "rel_priv_owner",  # owns schema app and its tables
    "member": "rel_priv_member",  # a member of the owner role
    "app": "rel_priv_app",  # an application role: writes inventory and app.items
    "revoked": "rel_priv_revoked",  # like app, until its rights are revoked mid-session
    "none": "rel_priv_none",  # no rights on anything
    "reader": "rel_priv_reader",  # SELECT only
    "alice": "rel_priv_alice",  # tenants of app.notes (row-level security)
    "bob": "rel_priv_bob",
    "auditor": "rel_priv_auditor",  # granted SELECT on the journal
    "evil": "rel_priv_evil",  # plants objects
}
PATHS_DB = "rel_privileges_paths"
SECRET = "alice-secret-7f3c"  # a string only alice's rows hold
DENIED = psycopg.errors.InsufficientPrivilege

BOOKKEEPING = [
    "inventory_sync.inventory",
    "inventory_sync.conflicts",
    "inventory_sync.changes",
    "inventory_sync.changes_uuid",
    "inventory_sync.changes_text",
    "inventory_sync.mutations",
    "inventory_sync.mutations_uuid",
    "inventory_sync.mutations_text",
    "inventory_sync.tracked",
    "inventory_sync.field_policies",
    "inventory_sync.purge_horizon",
    "inventory_sync.eras",
]
APP_TABLES = ["app.items", "app.notes", "app.merged_notes", "app.shared_notes", "app.secret"]


def uid(n):
    return str(uuid.UUID(int=n))


# --------------------------------------------------------------------------------------------
# Set-up
# --------------------------------------------------------------------------------------------


def drop_roles():
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {PATHS_DB} WITH (FORCE)")
        for role in R.values():
            if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                admin.execute(f"DROP OWNED BY {role} CASCADE")
                admin.execute(f"DROP ROLE {role}")


SCHEMA = f"""
CREATE SCHEMA app AUTHORIZATION {R['owner']};
GRANT USAGE ON SCHEMA app TO PUBLIC;
GRANT CREATE ON SCHEMA public TO {R['evil']};
SET ROLE {R['owner']};
CREATE TABLE app.items (
    id uuid PRIMARY KEY, name text, stock integer NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL);
CREATE TABLE app.secret (id bigint PRIMARY KEY, body text, updated_at timestamptz NOT NULL);
CREATE TABLE app.notes (
    id bigint PRIMARY KEY, owner name NOT NULL DEFAULT current_user, body text, n integer,
    updated_at timestamptz NOT NULL);
CREATE TABLE app.merged_notes (LIKE app.notes INCLUDING ALL);
CREATE TABLE app.shared_notes (LIKE app.notes INCLUDING ALL);
CREATE TABLE app.untracked (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL);
ALTER TABLE app.notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.merged_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON app.notes USING (owner = current_user) WITH CHECK (owner = current_user);
CREATE POLICY tenant ON app.merged_notes USING (owner = current_user) WITH CHECK (owner = current_user);
ALTER TABLE app.shared_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone_reads ON app.shared_notes FOR SELECT USING (true);
CREATE POLICY owner_inserts ON app.shared_notes FOR INSERT WITH CHECK (owner = current_user);
CREATE POLICY owner_updates ON app.shared_notes FOR UPDATE USING (owner = current_user);
CREATE POLICY owner_deletes ON app.shared_notes FOR DELETE USING (owner = current_user);
SELECT inventory_sync.track('app.items');
SELECT inventory_sync.track('app.secret');
SELECT inventory_sync.track('app.notes');
SELECT inventory_sync.track('app.merged_notes');
SELECT inventory_sync.track('app.shared_notes');
SELECT inventory_sync.set_policy('app.items', 'stock', 'delta');
SELECT inventory_sync.set_policy('app.merged_notes', 'body', 'field_lww');
SELECT inventory_sync.set_policy('app.merged_notes', 'n', 'delta');
GRANT SELECT, INSERT, UPDATE, DELETE ON app.items TO {R['app']}, {R['revoked']};
GRANT SELECT ON app.items TO {R['reader']};
GRANT SELECT, INSERT, UPDATE, DELETE ON app.notes, app.merged_notes, app.shared_notes TO {R['alice']}, {R['bob']};
RESET ROLE;
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'qty', 'delta');
GRANT SELECT, INSERT, UPDATE ON inventory_sync.inventory TO {R['app']}, {R['revoked']};
GRANT SELECT ON inventory_sync.inventory TO {R['reader']};
GRANT SELECT ON inventory_sync.conflicts TO {R['auditor']};
GRANT {R['owner']} TO {R['member']};
"""

# Rows every test may rely on, written through the functions by the superuser (so they are in
# the feed): item 1 and items U1, U2 exist, item 2 and item U3 are tombstones, app.secret has a
# row and a tombstone.
SEED = """
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops", "stock": 10, "qty": 3}', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_upsert(2, '{"name": "Gone"}', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_delete(2, '2024-03-01 09:30+00');
SELECT inventory_sync.sync_upsert_in('app.items', '00000000-0000-0000-0000-000000000001',
       '{"name": "Mouse", "stock": 40}', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_upsert_in('app.items', '00000000-0000-0000-0000-000000000002',
       '{"name": "Cable", "stock": 5}', '2024-03-01 09:00+00', 'seed-device', 'seed-1');
SELECT inventory_sync.sync_delete_in('app.items', '00000000-0000-0000-0000-000000000003', '2024-03-01 09:30+00');
SELECT inventory_sync.sync_upsert_in('app.secret', '1', '{"body": "top secret"}', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_delete_in('app.secret', '2', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_upsert(3, '{"stale": true}', '2000-01-01 00:00+00');
"""


@pytest.fixture(scope="module")
def env(db):
    drop_roles()
    with connect("postgres") as admin:
        for role in R.values():
            admin.execute(f"CREATE ROLE {role} LOGIN")
    with connect(db) as su:
        su.execute("SET TimeZone = 'UTC'")
        for statement in split(SCHEMA):
            su.execute(statement)
        for statement in split(SEED):
            su.execute(statement)
        # One journal row, by the superuser: a stale write.
        su.execute("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 1}', '2024-03-01 08:00+00')")
    yield db
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    drop_roles()


def split(script):
    """Statements of a script without semicolons inside literals or bodies (ours have none)."""
    return [s.strip() for s in script.split(";\n") if s.strip()]


def as_role(db, key, **kw):
    conn = connect(db, user=R[key], **kw)
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def state(conn, tables=BOOKKEEPING + APP_TABLES):
    """Every row of the given tables, as text: to show that a call wrote nothing anywhere."""
    out = {}
    for t in tables:
        out[t] = conn.execute(f"SELECT coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM {t} x").fetchone()[0]
    return out


@contextlib.contextmanager
def writes_nothing(db):
    with connect(db) as su:
        before = state(su)
        yield
        after = state(su)
    changed = [t for t in before if before[t] != after[t]]
    assert not changed, f"rows changed in {changed}: {[(before[t], after[t]) for t in changed]}"


# --------------------------------------------------------------------------------------------
# The calls
# --------------------------------------------------------------------------------------------

U1, U2, U3, U9 = uid(1), uid(2), uid(3), uid(900)
OLD, NEW = "2000-01-01 00:00+00", "2024-06-01 12:00+00"
FUTURE = "now() + interval '1 day'"

# Every way of writing through the functions, against new rows, newer and older than existing
# rows and tombstones, with mutation ids, through the merging path (a delta field), and with a
# clock running ahead. Each must fail with 42501 for a role without write rights.
WRITES = [
    ("sync_upsert new", "SELECT inventory_sync.sync_upsert(900, '{\"a\": 1}', %s)", (NEW,)),
    ("sync_upsert newer", "SELECT inventory_sync.sync_upsert(1, '{\"stock\": 0}', %s)", (NEW,)),
    ("sync_upsert older", "SELECT inventory_sync.sync_upsert(1, '{\"stock\": 0}', %s)", (OLD,)),
    ("sync_upsert older than tombstone", "SELECT inventory_sync.sync_upsert(2, '{\"a\": 1}', %s)", (OLD,)),
    ("sync_upsert mutation", "SELECT inventory_sync.sync_upsert(1, '{\"stock\": 0}', %s, 'dev', 'm-1')", (NEW,)),
    ("sync_upsert retry of another's mutation",
     "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"x\"}', %s, 'seed-device', 'seed-1')", (U2, NEW)),
    ("sync_upsert merge", "SELECT inventory_sync.sync_upsert(1, '{\"qty\": 9}', %s, base => '{\"qty\": 3}')", (NEW,)),
    ("sync_delete newer", "SELECT inventory_sync.sync_delete(1, %s)", (NEW,)),
    ("sync_delete older", "SELECT inventory_sync.sync_delete(1, %s)", (OLD,)),
    ("sync_delete new", "SELECT inventory_sync.sync_delete(901, %s, 'dev', 'm-2')", (NEW,)),
    ("sync_upsert_in new", "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"x\"}', %s)", (U9, NEW)),
    ("sync_upsert_in newer", "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"x\"}', %s)", (U1, NEW)),
    ("sync_upsert_in older", "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"x\"}', %s)", (U1, OLD)),
    ("sync_upsert_in older than tombstone",
     "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"x\"}', %s)", (U3, OLD)),
    ("sync_upsert_in mutation",
     "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"x\"}', %s, 'dev', 'm-3')", (U1, NEW)),
    ("sync_upsert_in merge",
     "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"stock\": 41}', %s, base => '{\"stock\": 40}')", (U1, NEW)),
    ("sync_upsert_in merge new",
     "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"stock\": 41}', %s, base => '{\"stock\": 40}')", (U9, NEW)),
    ("sync_delete_in newer", "SELECT inventory_sync.sync_delete_in('app.items', %s, %s)", (U1, NEW)),
    ("sync_delete_in older", "SELECT inventory_sync.sync_delete_in('app.items', %s, %s)", (U1, OLD)),
    ("sync_delete_in new", "SELECT inventory_sync.sync_delete_in('app.items', %s, %s, 'dev', 'm-4')", (U9, NEW)),
    ("sync_upsert_in secret", "SELECT inventory_sync.sync_upsert_in('app.secret', '1', '{\"body\": \"x\"}', %s)", (OLD,)),
    ("sync_delete_in secret", "SELECT inventory_sync.sync_delete_in('app.secret', '1', %s)", (OLD,)),
]
SKEWED = [
    ("sync_upsert clock skew", f"SELECT inventory_sync.sync_upsert(1, '{{\"stock\": 0}}', {FUTURE})", ()),
    ("sync_delete clock skew", f"SELECT inventory_sync.sync_delete(1, {FUTURE})", ()),
    ("sync_upsert_in clock skew",
     f"SELECT inventory_sync.sync_upsert_in('app.items', %s, '{{\"name\": \"x\"}}', {FUTURE})", (U1,)),
    ("sync_delete_in clock skew", f"SELECT inventory_sync.sync_delete_in('app.items', %s, {FUTURE})", (U1,)),
]


def push_of_everything(ts=NEW):
    """One batch with a change of every kind, default table and tracked tables."""
    return [
        {"id": 900, "payload": {"a": 1}, "client_ts": ts},
        {"id": 1, "payload": {"stock": 0}, "client_ts": ts, "client_id": "dev", "mutation_id": "p-1"},
        {"id": 1, "payload": {"stock": 0}, "client_ts": OLD},
        {"id": 1, "payload": {"qty": 9}, "base": {"qty": 3}, "client_ts": ts},
        {"op": "delete", "id": 2, "client_ts": ts},
        {"op": "delete", "id": 902, "client_ts": ts},
        {"table": "app.items", "id": U1, "payload": {"name": "x"}, "client_ts": ts},
        {"table": "app.items", "id": U1, "payload": {"name": "x"}, "client_ts": OLD},
        {"table": "app.items", "id": U9, "payload": {"stock": 1}, "base": {"stock": 0}, "client_ts": ts},
        {"table": "app.items", "op": "delete", "id": U1, "client_ts": ts, "client_id": "dev", "mutation_id": "p-2"},
        {"table": "app.items", "op": "delete", "id": uid(903), "client_ts": ts},
        {"table": "app.secret", "id": 1, "payload": {"body": "x"}, "client_ts": ts},
    ]


ROLES_WITHOUT_WRITE_RIGHTS = ["none", "reader"]


@pytest.mark.parametrize("role", ROLES_WITHOUT_WRITE_RIGHTS)
@pytest.mark.parametrize("name,sql,params", WRITES, ids=[w[0] for w in WRITES])
def test_write_without_rights_is_denied_and_writes_nothing(env, role, name, sql, params):
    with as_role(env, role) as conn, writes_nothing(env):
        with pytest.raises(DENIED):
            conn.execute(sql, params)


@pytest.mark.parametrize("name,sql,params", SKEWED, ids=[w[0] for w in SKEWED])
def test_clock_skewed_write_without_any_rights_is_denied(env, name, sql, params):
    with as_role(env, "none") as conn, writes_nothing(env):
        with pytest.raises(DENIED):
            conn.execute(sql, params)


# Regression test of a bug this suite found (fixed): the clock-skew rejection is decided before
# any write privilege is needed: a role with only SELECT gets 'rejected' and adds a journal row
# (with server_data) instead of 42501 (src/engine.rs decide_once)
@pytest.mark.parametrize("name,sql,params", SKEWED, ids=[w[0] for w in SKEWED])
def test_clock_skewed_write_by_a_reader_is_denied(env, name, sql, params):
    with as_role(env, "reader") as conn, writes_nothing(env):
        with pytest.raises(DENIED):
            conn.execute(sql, params)


@pytest.mark.parametrize("role", ROLES_WITHOUT_WRITE_RIGHTS)
def test_push_without_rights_answers_42501_per_change_and_writes_nothing(env, role):
    changes = push_of_everything()
    with as_role(env, role) as conn, writes_nothing(env):
        outcomes = conn.execute("SELECT inventory_sync.sync_push(%s)", (Jsonb(changes),)).fetchone()[0]
        assert [o["status"] for o in outcomes] == ["error"] * len(changes), outcomes
        assert {o["sqlstate"] for o in outcomes} == {"42501"}, outcomes
        assert not any("server_data" in o for o in outcomes)
        with pytest.raises(DENIED, match=r"^change \d+: permission denied"):
            conn.execute("SELECT inventory_sync.sync_push(%s, true)", (Jsonb(changes),))


def test_rights_revoked_mid_session_are_honoured_by_kept_statements(env):
    """The functions keep their statements planned per connection; a REVOKE from another session
    must still stop that connection's next call (PostgreSQL checks rights at every execution)."""
    with as_role(env, "revoked") as conn, connect(env) as su:
        warm = [
            ("SELECT inventory_sync.sync_upsert(950, '{\"a\": 1}', %s)", (NEW,)),
            ("SELECT inventory_sync.sync_upsert(950, '{\"a\": 0}', %s)", (OLD,)),
            ("SELECT inventory_sync.sync_upsert(950, '{\"qty\": 2}', %s, base => '{\"qty\": 1}')", (NEW,)),
            ("SELECT inventory_sync.sync_delete(951, %s)", (NEW,)),
            ("SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"r\"}', %s)", (uid(950), NEW)),
            ("SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"r\"}', %s)", (uid(950), OLD)),
            ("SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"stock\": 2}', %s, base => '{\"stock\": 1}')",
             (uid(950), NEW)),
            ("SELECT inventory_sync.sync_delete_in('app.items', %s, %s)", (uid(951), NEW)),
        ]
        for sql, params in warm:
            assert conn.execute(sql, params).fetchone()[0]["status"] in ("applied", "conflict", "merged")
        pulled = conn.execute("SELECT inventory_sync.sync_pull()").fetchone()[0]["changes"]
        assert {c["table"] for c in pulled} == {"inventory_sync.inventory", "app.items"}

        su.execute(f"REVOKE ALL ON inventory_sync.inventory, app.items FROM {R['revoked']}")
        with writes_nothing(env):
            for sql, params in warm:
                with pytest.raises(DENIED):
                    conn.execute(sql, params)
            outcomes = conn.execute(
                "SELECT inventory_sync.sync_push(%s)", (Jsonb(push_of_everything()),)
            ).fetchone()[0]
            assert {o["sqlstate"] for o in outcomes} == {"42501"}
            assert conn.execute("SELECT inventory_sync.sync_pull()").fetchone()[0]["changes"] == []


# --------------------------------------------------------------------------------------------
# Pull
# --------------------------------------------------------------------------------------------


def pull_all(conn, lim=1000):
    """Every change, page by page."""
    return harness.pull_all(conn, lim=lim)[0]


@pytest.mark.parametrize("lim", [1000, 1])
def test_pull_leaves_out_tables_without_select(env, lim):
    with as_role(env, "none") as none, as_role(env, "reader") as reader, as_role(env, "app") as app, connect(env) as su:
        assert pull_all(none, lim) == []
        everything = pull_all(su, lim)
        assert {c["table"] for c in everything} >= {"inventory_sync.inventory", "app.items", "app.secret"}
        for conn in (reader, app):
            mine = pull_all(conn, lim)
            tables = {c["table"] for c in mine}
            assert tables <= {"inventory_sync.inventory", "app.items"}, tables
            expected = [c for c in everything if c["table"] in ("inventory_sync.inventory", "app.items")]
            assert sorted(map(json.dumps, mine)) == sorted(map(json.dumps, expected))
            assert "top secret" not in json.dumps(mine)


# --------------------------------------------------------------------------------------------
# Owner-only functions
# --------------------------------------------------------------------------------------------

OWNER_ONLY = [
    ("track", "SELECT inventory_sync.track('app.untracked')"),
    ("track again", "SELECT inventory_sync.track('app.items', 'updated_at')"),
    ("untrack", "SELECT inventory_sync.untrack('app.items')"),
    ("untrack secret", "SELECT inventory_sync.untrack('app.secret')"),
    ("set_policy", "SELECT inventory_sync.set_policy('app.items', 'name', 'field_lww')"),
    ("clear policy", "SELECT inventory_sync.set_policy('app.items', 'stock', 'lww')"),
    ("set_policy default table", "SELECT inventory_sync.set_policy('inventory_sync.inventory', 'name', 'server_wins')"),
    ("clear policy default table", "SELECT inventory_sync.set_policy('inventory_sync.inventory', 'qty', 'lww')"),
]


@pytest.mark.parametrize("role", ["none", "reader", "app", "alice"])
@pytest.mark.parametrize("name,sql", OWNER_ONLY, ids=[o[0] for o in OWNER_ONLY])
def test_catalog_functions_are_for_the_tables_owner(env, role, name, sql):
    """app holds every DML right on app.items and is still not its owner."""
    with as_role(env, role) as conn, writes_nothing(env):
        with pytest.raises(DENIED, match="must be owner of table"):
            conn.execute(sql)


def test_a_member_of_the_owning_role_may_manage_tracking(env):
    with as_role(env, "member") as conn, writes_nothing(env):
        conn.execute("BEGIN")
        conn.execute("SELECT inventory_sync.track('app.untracked')")
        conn.execute("SELECT inventory_sync.set_policy('app.items', 'name', 'field_lww')")
        conn.execute("SELECT inventory_sync.untrack('app.secret')")
        tracked = {r[0] for r in conn.execute("SELECT tbl::text FROM inventory_sync.tracked")}
        assert {"app.untracked", "app.items"} <= tracked and "app.secret" not in tracked
        conn.execute("ROLLBACK")


# Every part of the mutation log (a uuid or text table's mutation ids are in a part of their own).
MUTATION_LOG = "(" + " UNION ALL ".join(
    f"SELECT row_id, table_id, client_id, mutation_id, answer, applied_at, db_user FROM inventory_sync.mutations{side}"
    for side in ("", "_uuid", "_text")) + ")"


def age_everything(su):
    su.execute("UPDATE inventory_sync.inventory SET changed_at = changed_at - interval '1 year' WHERE deleted")
    for side in ("", "_uuid", "_text"):
        su.execute(f"UPDATE inventory_sync.changes{side} SET changed_at = changed_at - interval '1 year' WHERE op = 'delete'")
        su.execute(f"UPDATE inventory_sync.mutations{side} SET applied_at = applied_at - interval '1 year'")


@pytest.mark.parametrize("role", ["none", "reader", "app", "owner", "auditor"])
def test_purge_tombstones_is_for_the_extensions_owner(env, role):
    """Purging tombstones makes every device whose cursor is older start over: a job for the
    extension's owner, not for an application role or a table's owner. It needs DELETE on the
    extension's tables, which nobody else has: 42501, and nothing removed."""
    with connect(env) as su:
        age_everything(su)
        assert su.execute("SELECT (SELECT count(*) FROM inventory_sync.changes WHERE op = 'delete')"
                          " + (SELECT count(*) FROM inventory_sync.changes_uuid WHERE op = 'delete')").fetchone()[0] > 0
    with as_role(env, role) as conn, writes_nothing(env):
        with pytest.raises(DENIED):
            conn.execute("SELECT inventory_sync.purge_tombstones('1 day')")


@pytest.mark.parametrize("role", ["none", "reader", "app", "owner"])
def test_purge_mutations_by_a_non_owner_forgets_only_its_own_ids(env, role):
    """The mutation log's row-level security decides what a purge by anyone but the extension's
    owner removes: only the mutation ids the role applied itself (or 42501, where the role may
    not delete from the log at all). Never another user's: their retries stay answered once."""
    key = {"none": 970, "reader": 971, "app": 972, "owner": 973}[role]
    with connect(env) as su:
        su.execute(f"GRANT SELECT, INSERT, UPDATE ON inventory_sync.inventory TO {R[role]}")
        try:
            with as_role(env, role) as conn:
                conn.execute("SELECT inventory_sync.sync_upsert(%s, '{}', %s, 'pdev', 'p-1')", (key, NEW))
            age_everything(su)

            def others():
                return su.execute(f"SELECT string_agg(m::text, ',' ORDER BY m::text) FROM {MUTATION_LOG} m "
                                  "WHERE db_user <> %s", (R[role],)).fetchone()[0]

            before = others()
            assert before
            with as_role(env, role) as conn:
                try:
                    purged = conn.execute("SELECT inventory_sync.purge_mutations('1 day')").fetchone()[0]
                except DENIED:
                    purged = 0
            own = su.execute(f"SELECT count(*) FROM {MUTATION_LOG} m WHERE db_user = %s", (R[role],)).fetchone()[0]
            assert (purged, own) in ((1, 0), (0, 1))
            assert others() == before
        finally:
            su.execute(f"REVOKE ALL ON inventory_sync.inventory FROM {R[role]}")
            su.execute(f"GRANT SELECT ON inventory_sync.inventory TO {R['reader']}")
            su.execute(f"GRANT SELECT, INSERT, UPDATE ON inventory_sync.inventory TO {R['app']}")


# --------------------------------------------------------------------------------------------
# Row-level security
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tenants(env):
    """alice's notes 100 (live) and 101 (deleted), bob's note 200; in app.notes."""
    with as_role(env, "alice") as alice, as_role(env, "bob") as bob:
        for n in (100, 101):
            alice.execute(
                "SELECT inventory_sync.sync_upsert_in('app.notes', %s, %s, '2024-03-01 10:00+00')",
                (str(n), Jsonb({"body": f"{SECRET} {n}", "n": n})),
            )
        alice.execute("SELECT inventory_sync.sync_delete_in('app.notes', '101', '2024-03-01 10:30+00')")
        bob.execute("SELECT inventory_sync.sync_upsert_in('app.notes', '200', '{\"body\": \"bob\"}', '2024-03-01 10:00+00')")
    return env


def journal_of(su, table, row_id, user):
    return su.execute(
        "SELECT reason, op, server_data FROM inventory_sync.conflicts "
        "WHERE table_name = %s AND row_id = %s AND db_user = %s AND reason = 'stale' ORDER BY conflict_id",
        (table, row_id, user),
    ).fetchall()


BOB_ON_ALICES_NOTE = [
    ("upsert older", "SELECT inventory_sync.sync_upsert_in('app.notes', '100', '{\"body\": \"bob\"}', %s)", (OLD,)),
    ("upsert newer", "SELECT inventory_sync.sync_upsert_in('app.notes', '100', '{\"body\": \"bob\"}', %s)", (NEW,)),
    ("upsert mutation",
     "SELECT inventory_sync.sync_upsert_in('app.notes', '100', '{\"body\": \"bob\"}', %s, 'bob-dev', 'b-1')", (NEW,)),
    ("upsert mutation retried",
     "SELECT inventory_sync.sync_upsert_in('app.notes', '100', '{\"body\": \"bob\"}', %s, 'bob-dev', 'b-1')", (NEW,)),
    ("delete older", "SELECT inventory_sync.sync_delete_in('app.notes', '100', %s)", (OLD,)),
    ("delete newer", "SELECT inventory_sync.sync_delete_in('app.notes', '100', %s)", (NEW,)),
    ("delete mutation", "SELECT inventory_sync.sync_delete_in('app.notes', '100', %s, 'bob-dev', 'b-2')", (NEW,)),
]


def test_rls_writes_to_rows_the_caller_cannot_see_are_not_applied_and_leak_nothing(tenants):
    env = tenants
    with as_role(env, "bob") as bob, connect(env) as su:
        before = su.execute("SELECT to_jsonb(n) FROM app.notes n WHERE id = 100").fetchone()[0]
        changes_before = su.execute(
            "SELECT to_jsonb(c) - 'changed_at' FROM inventory_sync.changes c WHERE inventory_sync.table_of(table_id) = 'app.notes'::regclass AND row_id = '100'"
        ).fetchone()[0]
        answers = []
        for name, sql, params in BOB_ON_ALICES_NOTE:
            answer = bob.execute(sql, params).fetchone()[0]
            answers.append(answer)
            assert answer["status"] == "conflict", (name, answer)
            assert answer["server_data"] is None, (name, answer)
        assert answers[3].get("duplicate") is True
        # The same through a batch.
        batch = [
            {"table": "app.notes", "id": 100, "payload": {"body": "bob"}, "client_ts": NEW},
            {"table": "app.notes", "id": 100, "payload": {"body": "bob"}, "client_ts": OLD},
            {"table": "app.notes", "op": "delete", "id": 100, "client_ts": NEW},
            {"table": "app.notes", "id": 201, "payload": {"body": "bob's own"}, "client_ts": NEW},
        ]
        for atomic in (False, True):
            outcomes = bob.execute("SELECT inventory_sync.sync_push(%s, %s)", (Jsonb(batch), atomic)).fetchone()[0]
            assert [o["status"] for o in outcomes[:3]] == ["conflict"] * 3, outcomes
            assert all(o["server_data"] is None for o in outcomes[:3]), outcomes
            assert outcomes[3]["status"] == "applied"
        assert SECRET not in json.dumps(answers) + json.dumps(outcomes)
        # Nothing of alice's row changed, no tombstone, and every journal row bob caused is blind.
        assert su.execute("SELECT to_jsonb(n) FROM app.notes n WHERE id = 100").fetchone()[0] == before
        assert su.execute(
            "SELECT to_jsonb(c) - 'changed_at' FROM inventory_sync.changes c WHERE inventory_sync.table_of(table_id) = 'app.notes'::regclass AND row_id = '100'"
        ).fetchone()[0] == changes_before
        journal = journal_of(su, "app.notes", "100", R["bob"])
        assert len(journal) == 6 + 2 * 3  # the retry was answered from the mutation log
        assert all(server_data is None for _, _, server_data in journal), journal


def test_rls_clock_skewed_write_journals_nothing_of_a_hidden_row(tenants):
    env = tenants
    with as_role(env, "bob") as bob, connect(env) as su:
        answer = bob.execute(
            f"SELECT inventory_sync.sync_upsert_in('app.notes', '100', '{{\"body\": \"bob\"}}', {FUTURE})"
        ).fetchone()[0]
        assert answer["status"] == "rejected" and SECRET not in json.dumps(answer)
        answer = bob.execute(f"SELECT inventory_sync.sync_delete_in('app.notes', '100', {FUTURE})").fetchone()[0]
        assert answer["status"] == "rejected"
        skewed = su.execute(
            "SELECT server_data FROM inventory_sync.conflicts WHERE reason = 'clock_skew' AND db_user = %s "
            "AND table_name = 'app.notes'", (R["bob"],)
        ).fetchall()
        assert skewed == [(None,), (None,)]


def test_rls_rows_cannot_be_given_to_another_tenant(tenants):
    env = tenants
    with as_role(env, "bob") as bob, writes_nothing(env):
        with pytest.raises(DENIED, match="row-level security"):
            bob.execute("SELECT inventory_sync.sync_upsert_in('app.notes', '300', %s, %s)",
                        (Jsonb({"owner": R["alice"], "body": "planted"}), NEW))
        with pytest.raises(DENIED, match="row-level security"):
            bob.execute("SELECT inventory_sync.sync_upsert_in('app.notes', '200', %s, %s)",
                        (Jsonb({"owner": R["alice"]}), "2024-03-01 10:00+00"))
        outcome = bob.execute(
            "SELECT inventory_sync.sync_push(%s)",
            (Jsonb([{"table": "app.notes", "id": 300, "payload": {"owner": R["alice"]}, "client_ts": NEW}]),),
        ).fetchone()[0]
        assert outcome[0]["status"] == "error" and outcome[0]["sqlstate"] == "42501"


def test_rls_conflict_answers_show_the_owner_their_own_row(tenants):
    env = tenants
    with as_role(env, "alice") as alice:
        answer = alice.execute(
            "SELECT inventory_sync.sync_upsert_in('app.notes', '100', '{\"body\": \"older\"}', %s)", (OLD,)
        ).fetchone()[0]
        assert answer["status"] == "conflict"
        assert answer["server_data"]["body"] == f"{SECRET} 100"


def test_rls_rows_visible_but_not_writable_are_not_written(env):
    """Policies that let everyone read and only the owner write: bob's writes to alice's row are
    not applied (conflict, showing the row he may read), and leave no tombstone."""
    with as_role(env, "alice") as alice:
        alice.execute("SELECT inventory_sync.sync_upsert_in('app.shared_notes', '1', '{\"body\": \"alice\"}', "
                      "'2024-03-01 10:00+00')")
    with as_role(env, "bob") as bob, connect(env) as su:
        before = state(su)
        batch = [{"table": "app.shared_notes", "id": 1, "payload": {"body": "bob"}, "client_ts": NEW},
                 {"table": "app.shared_notes", "op": "delete", "id": 1, "client_ts": NEW}]
        answers = [
            bob.execute("SELECT inventory_sync.sync_upsert_in('app.shared_notes', '1', '{\"body\": \"bob\"}', %s)", (NEW,)).fetchone()[0],
            bob.execute("SELECT inventory_sync.sync_upsert_in('app.shared_notes', '1', '{\"body\": \"bob\"}', %s)", (OLD,)).fetchone()[0],
            bob.execute("SELECT inventory_sync.sync_delete_in('app.shared_notes', '1', %s)", (NEW,)).fetchone()[0],
        ] + bob.execute("SELECT inventory_sync.sync_push(%s)", (Jsonb(batch),)).fetchone()[0]
        for answer in answers:
            assert answer["status"] == "conflict", answer
            assert answer["server_data"]["body"] == "alice" and answer["server_data"]["owner"] == R["alice"]
        after = state(su)
        assert after["app.shared_notes"] == before["app.shared_notes"]
        assert after["inventory_sync.changes"] == before["inventory_sync.changes"]


# Regression test of a bug this suite found (fixed): a write that takes the merging path (a field
# with a policy) to a row hidden by row-level security fails with 40001 'could not settle' after
# 10 rounds instead of answering conflict with server_data null (src/catalog.rs Tracked::merge:
# the insert meets the hidden row every round)
@pytest.mark.parametrize(
    "payload,base", [({"body": "bob"}, None), ({"n": 7}, {"n": 5})], ids=["field_lww", "delta"]
)
def test_rls_merging_writes_to_hidden_rows_answer_conflict(env, payload, base):
    with as_role(env, "alice") as alice:
        alice.execute(
            "SELECT inventory_sync.sync_upsert_in('app.merged_notes', '100', %s, '2024-03-01 10:00+00')",
            (Jsonb({"body": SECRET, "n": 5}),),
        )
    with as_role(env, "bob") as bob, connect(env) as su:
        before = su.execute("SELECT to_jsonb(n) FROM app.merged_notes n WHERE id = 100").fetchone()[0]
        for ts in (OLD, NEW):
            answer = bob.execute(
                "SELECT inventory_sync.sync_upsert_in('app.merged_notes', '100', %s, %s, base => %s)",
                (Jsonb(payload), ts, Jsonb(base) if base else None),
            ).fetchone()[0]
            assert answer["status"] == "conflict" and answer["server_data"] is None, answer
        assert su.execute("SELECT to_jsonb(n) FROM app.merged_notes n WHERE id = 100").fetchone()[0] == before


def test_rls_pulls_show_only_visible_rows_and_bare_tombstones(tenants):
    env = tenants
    with as_role(env, "alice") as alice, as_role(env, "bob") as bob:
        for lim in (1000, 1):
            seen_by_bob = [c for c in pull_all(bob, lim) if c["table"] == "app.notes"]
            assert SECRET not in json.dumps(seen_by_bob)
            upserts = [c for c in seen_by_bob if c["op"] == "upsert"]
            assert upserts and all(c["data"]["owner"] == R["bob"] for c in upserts), upserts
            assert 100 not in {c["id"] for c in seen_by_bob}
            # alice's tombstone: the key and the time of the delete, nothing else.
            tombstones = [{k: v for k, v in c.items() if k != "version"} for c in seen_by_bob if c["op"] == "delete"]
            assert {"table": "app.notes", "id": 101, "op": "delete", "data": None,
                    "updated_at": "2024-03-01T10:30:00+00:00"} in tombstones
            seen_by_alice = [c for c in pull_all(alice, lim) if c["table"] == "app.notes"]
            assert {c["id"] for c in seen_by_alice if c["op"] == "upsert"} == {100}
            assert all(c["data"]["owner"] == R["alice"] for c in seen_by_alice if c["op"] == "upsert")


# --------------------------------------------------------------------------------------------
# Who can read and write the bookkeeping tables (see the report in the module docstring)
# --------------------------------------------------------------------------------------------


def test_the_journal_is_readable_only_with_a_grant(tenants):
    env = tenants
    with as_role(env, "bob") as bob:  # a journal row in bob's name
        bob.execute("SELECT inventory_sync.sync_upsert_in('app.notes', '200', '{}', %s)", (OLD,))
    with connect(env) as su:
        total = su.execute("SELECT count(*) FROM inventory_sync.conflicts").fetchone()[0]
        users = {r[0] for r in su.execute("SELECT DISTINCT db_user FROM inventory_sync.conflicts")}
        assert total > 0 and {R["bob"], "postgres"} <= users
    for role in ("none", "app", "alice", "bob", "owner", "reader"):
        with as_role(env, role) as conn:
            # Not even the rows written in one's own name.
            with pytest.raises(DENIED):
                conn.execute("SELECT count(*) FROM inventory_sync.conflicts")
            with pytest.raises(DENIED):
                conn.execute("UPDATE inventory_sync.conflicts SET reason = 'stale'")
            with pytest.raises(DENIED):
                conn.execute("DELETE FROM inventory_sync.conflicts")
            with pytest.raises(DENIED):
                conn.execute("TRUNCATE inventory_sync.conflicts")
            # Writing journal rows in another's name is refused by the policy.
            with pytest.raises(DENIED, match="row-level security"):
                conn.execute(
                    "INSERT INTO inventory_sync.conflicts (row_id, table_name, reason, client_payload, client_ts, db_user, shard_key) "
                    "VALUES ('1', 'x', 'stale', '{}', now(), 'postgres', 1)"
                )
    with as_role(env, "auditor") as auditor:
        # The grant reads every row, of every user and table.
        assert auditor.execute("SELECT count(*) FROM inventory_sync.conflicts").fetchone()[0] == total
        with pytest.raises(DENIED):
            auditor.execute("DELETE FROM inventory_sync.conflicts")


def test_anyone_may_journal_in_their_own_name_only(env):
    """By design (sql/schema.sql: 'Every writer may add journal rows in its own name'), even a
    role with no rights at all: the row names its author, who cannot read it back."""
    with as_role(env, "none") as conn:
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO inventory_sync.conflicts (row_id, table_name, reason, client_payload, client_ts, shard_key) "
            "VALUES ('1', 'x', 'stale', '{}', now(), 1)"
        )
        conn.execute("ROLLBACK")


def test_mutation_ids_are_visible_only_to_the_user_that_applied_them(tenants):
    env = tenants
    with as_role(env, "bob") as bob:
        bob.execute("SELECT inventory_sync.sync_upsert_in('app.notes', '200', '{}', %s, 'bob-dev', 'b-own')", (OLD,))
    with connect(env) as su:
        by_user = dict(su.execute(f"SELECT db_user::text, count(*) FROM {MUTATION_LOG} m GROUP BY 1").fetchall())
        assert by_user.get(R["bob"], 0) > 0 and by_user.get("postgres", 0) > 0
    for role in ("none", "app", "bob", "owner"):
        with as_role(env, role) as conn:
            mine = conn.execute("SELECT count(*), count(*) FILTER (WHERE db_user <> current_user) "
                                f"FROM {MUTATION_LOG} m").fetchone()
            assert mine == (by_user.get(R[role], 0), 0)
            for log in ("inventory_sync.mutations", "inventory_sync.mutations_uuid", "inventory_sync.mutations_text"):
                conn.execute("BEGIN")
                assert conn.execute(f"UPDATE {log} SET answer = '{{}}' WHERE db_user <> current_user").rowcount == 0
                try:  # DELETE: granted to everyone, or not at all; either way never another user's rows
                    assert conn.execute(f"DELETE FROM {log} WHERE db_user <> current_user").rowcount == 0
                except DENIED:
                    pass
                conn.execute("ROLLBACK")
            with pytest.raises(DENIED, match="row-level security"):
                conn.execute("INSERT INTO inventory_sync.mutations (row_id, table_id, client_id, mutation_id, db_user, shard_key) "
                             "VALUES ('1', 0, 'x', 'y', 'postgres', 1)")
    # Replaying another user's mutation id: 42501, and its answer is not shown.
    with as_role(env, "app") as app, writes_nothing(env):
        with pytest.raises(DENIED, match="another database user"):
            app.execute("SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"x\"}', %s, 'seed-device', 'seed-1')",
                        (U2, NEW))


def test_bookkeeping_tables_refuse_direct_writes_by_non_owners(tenants):
    env = tenants
    cases = [
        ("INSERT INTO inventory_sync.tracked (tbl, key_attnum, ts_attnum) VALUES ('app.untracked', 1, 2)", "row-level security"),
        ("INSERT INTO inventory_sync.field_policies VALUES ('app.items', 'name', 'server_wins')", "row-level security"),
        ("INSERT INTO inventory_sync.field_policies VALUES ('inventory_sync.inventory', 'name', 'server_wins')", "row-level security"),
        ("INSERT INTO inventory_sync.changes (table_id, row_id, id, op, ts, position, changed_at, shard_key) "
         "VALUES ((SELECT table_id FROM inventory_sync.tracked WHERE tbl = 'app.secret'::regclass), '1', '1', 'delete', "
         "now(), 1, now(), 1)", "permission denied"),
        ("UPDATE inventory_sync.changes SET op = 'delete' WHERE inventory_sync.table_of(table_id) = 'app.secret'::regclass",
         "permission denied"),
        ("INSERT INTO inventory_sync.purge_horizon VALUES (1, 1, 0, '', now())", "permission denied"),
        ("INSERT INTO inventory_sync.eras (era, cohort, system_identifier, database_oid, previous_end) VALUES (9, 9, 1, 1, 0)",
         "permission denied"),
        ("UPDATE inventory_sync.purge_horizon SET row_id = ''", "permission denied"),
        ("DELETE FROM inventory_sync.changes", "permission denied"),
        ("INSERT INTO inventory_sync.changes_uuid (table_id, row_id, id, op, ts, position, changed_at, shard_key) "
         "VALUES ((SELECT table_id FROM inventory_sync.tracked WHERE tbl = 'app.items'::regclass), "
         "'00000000-0000-0000-0000-000000000001', '\"x\"', 'delete', now(), 1, now(), "
         "'00000000-0000-0000-0000-000000000001')", "permission denied"),
        ("DELETE FROM inventory_sync.changes_uuid", "permission denied"),
        ("INSERT INTO inventory_sync.mutations_uuid (row_id, table_id, client_id, mutation_id, db_user, shard_key) "
         "VALUES ('00000000-0000-0000-0000-000000000001', 1, 'x', 'y', 'postgres', "
         "'00000000-0000-0000-0000-000000000001')", "row-level security"),
        ("INSERT INTO inventory_sync.changes_text (table_id, row_id, id, op, ts, position, changed_at, shard_key) "
         "VALUES ((SELECT table_id FROM inventory_sync.tracked WHERE tbl = 'app.secret'::regclass), 'k', '\"k\"', 'delete', "
         "now(), 1, now(), 'k')", "permission denied"),
        ("DELETE FROM inventory_sync.changes_text", "permission denied"),
        ("INSERT INTO inventory_sync.mutations_text (row_id, table_id, client_id, mutation_id, db_user, shard_key) "
         "VALUES ('k', 1, 'x', 'y', 'postgres', 'k')", "row-level security"),
        ("SELECT count(*) FROM inventory_sync.inventory", "permission denied"),
    ]
    with as_role(env, "bob") as conn:
        for sql, message in cases:
            with pytest.raises(DENIED, match=message):
                conn.execute(sql)
        conn.execute("BEGIN")
        try:
            assert conn.execute("DELETE FROM inventory_sync.tracked").rowcount == 0
            assert conn.execute("DELETE FROM inventory_sync.field_policies").rowcount == 0
            assert conn.execute("UPDATE inventory_sync.field_policies SET policy = 'server_wins'").rowcount == 0
        finally:
            conn.execute("ROLLBACK")
    # What everybody may read: the catalog, the policies, the purge horizon.
    with as_role(env, "none") as conn:
        assert conn.execute("SELECT count(*) FROM inventory_sync.tracked_tables").fetchone()[0] == 5
        assert conn.execute("SELECT count(*) FROM inventory_sync.policies").fetchone()[0] >= 3
        conn.execute("SELECT count(*) FROM inventory_sync.purge_horizon")


def test_a_non_owner_cannot_move_another_owners_tracking_row(env):
    """Found by this suite (a role owning any table could point another owner's tracking row at
    it, untracking theirs); fixed in sql/schema.sql by the restrictive policy owner_updates."""
    with as_role(env, "evil") as evil:
        evil.execute("BEGIN")
        try:
            evil.execute("CREATE TABLE public.evil_t (id bigint PRIMARY KEY, updated_at timestamptz)")
            moved = evil.execute(
                "UPDATE inventory_sync.tracked SET tbl = 'public.evil_t'::regclass WHERE tbl = 'app.items'::regclass"
            ).rowcount
            still = evil.execute("SELECT count(*) FROM inventory_sync.tracked WHERE tbl = 'app.items'::regclass").fetchone()[0]
        finally:
            evil.execute("ROLLBACK")
        assert (moved, still) == (0, 1)


# Regression test of a bug this suite found (fixed): inventory_sync.changes may be updated by any
# role that may write the table, row-level security of the table aside: a tenant can turn another
# tenant's live row into a tombstone in everybody's pull, or move its clock (sql/schema.sql,
# policy changes_updated_by_writers)
def test_a_tenant_cannot_forge_the_feed_of_another_tenants_rows(tenants):
    env = tenants
    with as_role(env, "bob") as bob:
        # The feed is written only by the sync functions (as its owner): no role may write it.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table changes"):
            bob.execute(
                "UPDATE inventory_sync.changes SET op = 'delete', ts = '2999-01-01' "
                "WHERE inventory_sync.table_of(table_id) = 'app.notes'::regclass AND row_id = '100'"
            )


# Regression test of a bug this suite found (fixed): inventory_sync.mutations accepts any (table,
# row, client_id, mutation_id) in one's own name, rights on the table aside: a role without any
# right can claim another device's mutation ids ahead of it, and that device's writes then fail
# with 42501 (sql/schema.sql, mutations_of_oneself; or key the log by db_user too)
def test_mutation_ids_cannot_be_claimed_without_rights_on_the_table(env):
    with as_role(env, "none") as conn:
        conn.execute("BEGIN")
        try:
            with pytest.raises(DENIED):
                conn.execute(
                    "INSERT INTO inventory_sync.mutations (row_id, table_id, client_id, mutation_id, shard_key) "
                    "VALUES (%s, (SELECT table_id FROM inventory_sync.tracked WHERE tbl = 'app.items'::regclass), "
                    "'phone', 'next-1', hashtextextended(%s, 0))", (U1, U1)
                )
        finally:
            conn.execute("ROLLBACK")


# Regression test of a bug this suite found (fixed): inventory_sync.changes is readable by
# everyone: keys, write times, client_ids and written column names of rows of tables the role may
# not SELECT, which sync_pull itself leaves out (sql/schema.sql, policy changes_readable)
def test_the_feed_table_shows_nothing_of_tables_the_role_cannot_read(env):
    with as_role(env, "none") as conn:
        try:
            rows = conn.execute("SELECT row_id, client_id, field_clocks FROM inventory_sync.changes "
                                "WHERE inventory_sync.table_of(table_id) = 'app.secret'::regclass").fetchall()
        except DENIED:
            rows = []
        assert rows == []


# --------------------------------------------------------------------------------------------
# SECURITY DEFINER audit
# --------------------------------------------------------------------------------------------

# Functions that must run with their owner's rights, and why.
MUST_BE_DEFINER = {
    # An event trigger on sql_drop: the dropped table's pg_class row, which the catalog's RLS
    # policy consults, is already gone, so the caller's rights cannot delete its catalog rows.
    "forget_dropped_tables",
}


def test_no_function_is_security_definer_unless_it_must_be_and_those_pin_search_path(env):
    with connect(env) as su:
        rows = su.execute(
            "SELECT p.oid, proname, prosecdef, proconfig FROM pg_proc p "
            "WHERE pronamespace = 'inventory_sync'::regnamespace ORDER BY proname"
        ).fetchall()
        assert {r[1] for r in rows} >= {"sync_upsert", "sync_upsert_in", "sync_delete", "sync_delete_in",
                                        "sync_push", "sync_pull", "track", "untrack", "set_policy",
                                        "purge_tombstones", "purge_mutations"}
        definers = {name for _, name, secdef, _ in rows if secdef}
        assert definers <= MUST_BE_DEFINER, f"SECURITY DEFINER without a reason: {definers - MUST_BE_DEFINER}"
        for oid, name, secdef, config in rows:
            if not secdef:
                continue
            paths = [c.split("=", 1)[1] for c in (config or []) if c.startswith("search_path=")]
            assert paths, f"{name} is SECURITY DEFINER and does not pin search_path"
            schemas = [s.strip().strip('"') for s in paths[0].split(",")]
            # pg_catalog first; pg_temp named, and last (unnamed, it would be searched first).
            assert schemas[0] == "pg_catalog" and schemas[-1] == "pg_temp", (name, schemas)
            assert not set(schemas) - {"pg_catalog", "pg_temp", "inventory_sync"}, (name, schemas)
            assert not su.execute("SELECT has_function_privilege(%s, %s, 'EXECUTE')", (R["none"], oid)).fetchone()[0]
        # Nobody but the owner may create objects in the extension's schema (where a planted
        # overload would be found by the extension's own qualified calls, and by the definers,
        # whose search_path names the schema).
        assert su.execute(
            "SELECT has_schema_privilege(%s, 'inventory_sync', 'USAGE'), "
            "       has_schema_privilege(%s, 'inventory_sync', 'CREATE')", (R["none"], R["none"])
        ).fetchone() == (True, False)


# --------------------------------------------------------------------------------------------
# search_path: planted objects
# --------------------------------------------------------------------------------------------

# Operators a statement of the extension could use unqualified, on the types it handles. Each is
# planted in schema evil and in public, as a function that logs its call and answers as the
# real operator would (a stealthy hijack).
OPERATORS = [
    (op, t, t)
    for t in ("bigint", "integer", "text", "timestamptz", "jsonb", "xid8", "uuid", "oid", "name", "boolean")
    for op in ("=", "<>", "<", ">", "<=", ">=")
] + [
    ("||", "jsonb", "jsonb"),
    ("||", "text", "text"),
    ("-", "jsonb", "text[]"),
    ("-", "jsonb", "text"),
    ("-", "timestamptz", "interval"),
    ("+", "timestamptz", "interval"),
    ("-", "timestamptz", "timestamptz"),
    ("->", "jsonb", "text"),
    ("->>", "jsonb", "text"),
    ("?", "jsonb", "text"),
    ("@>", "jsonb", "jsonb"),
    ("=", "regclass", "regclass"),  # better than oid = oid for regclass arguments
    ("=", "text", "name"),
    ("=", "name", "text"),
    ("=", "anyarray", "anyarray"),
]

# Functions: (signature planted, body returning the real answer, how to call it unqualified).
FUNCTIONS = [
    ("now()", "timestamptz", "pg_catalog.now()", "now()"),
    ("clock_timestamp()", "timestamptz", "pg_catalog.clock_timestamp()", "clock_timestamp()"),
    ("pg_current_xact_id()", "xid8", "pg_catalog.pg_current_xact_id()", "pg_current_xact_id()"),
    ("to_jsonb(a anyelement)", "jsonb", "pg_catalog.to_jsonb(a)", "to_jsonb(1)"),
    ("jsonb_build_object(a text, b anyelement)", "jsonb", "pg_catalog.jsonb_build_object(a, b)",
     "jsonb_build_object('a', 1)"),
    ("jsonb_build_object(VARIADIC a text[])", "jsonb", "pg_catalog.jsonb_build_object(VARIADIC a)",
     "jsonb_build_object('a', 'b')"),
    ("jsonb_strip_nulls(a jsonb)", "jsonb", "pg_catalog.jsonb_strip_nulls(a)",
     "jsonb_strip_nulls('{}'::pg_catalog.jsonb)"),
    ("jsonb_typeof(a jsonb)", "text", "pg_catalog.jsonb_typeof(a)", "jsonb_typeof('{}'::pg_catalog.jsonb)"),
    ("jsonb_set(a jsonb, p text[], v jsonb)", "jsonb", "pg_catalog.jsonb_set(a, p, v)",
     "jsonb_set('{}'::pg_catalog.jsonb, '{a}', '1'::pg_catalog.jsonb)"),
    ("quote_ident(a text)", "text", "pg_catalog.quote_ident(a)", "quote_ident('x'::pg_catalog.text)"),
    ("has_table_privilege(a regclass, b text)", "boolean", "pg_catalog.has_table_privilege(a::pg_catalog.oid, b)",
     "has_table_privilege('inventory_sync.inventory'::pg_catalog.regclass, 'SELECT')"),
    ("has_table_privilege(a oid, b text)", "boolean", "pg_catalog.has_table_privilege(a, b)",
     "has_table_privilege(1259::pg_catalog.oid, 'SELECT'::pg_catalog.text)"),
    ("pg_has_role(a oid, b text)", "boolean", "pg_catalog.pg_has_role(a, b)",
     "pg_has_role(10::pg_catalog.oid, 'USAGE'::pg_catalog.text)"),
    ("pg_current_snapshot()", "pg_snapshot", "pg_catalog.pg_current_snapshot()", "pg_current_snapshot()"),
    ("pg_snapshot_xmin(s pg_snapshot)", "xid8", "pg_catalog.pg_snapshot_xmin(s)",
     "pg_snapshot_xmin(pg_catalog.pg_current_snapshot())"),
    ("format_type(a oid, b integer)", "text", "pg_catalog.format_type(a, b)",
     "format_type(23::pg_catalog.oid, -1::pg_catalog.int4)"),
    ("unnest(a anyarray)", "SETOF anyelement", None, "unnest(ARRAY[1])"),
    ("pg_advisory_xact_lock(a integer, b integer)", "void", None,
     "pg_advisory_xact_lock(1::pg_catalog.int4, 2::pg_catalog.int4)"),
]

# Types a statement could name unqualified: planted as domains whose check logs.
DOMAINS = ["text", "jsonb", "timestamptz", "int8", "int4", "oid", "xid8", "regclass", "uuid", "bool", "name"]

# The extension's tables and the application's, by bare name.
RELATIONS = ["inventory", "conflicts", "changes", "mutations", "tracked", "field_policies", "purge_horizon",
             "eras", "tracked_tables", "policies", "items"]


def plant(db):
    """Plant the traps as rel_priv_evil: in its schema evil (usable by everyone) and in public.
    Answers (label, probe): unqualified SQL that calls each trap, to show that it is armed."""
    probes = []
    with connect(db) as su:
        su.execute(f"GRANT CREATE ON DATABASE {db} TO {R['evil']}")
        # Look-alike tables copy the real ones (LIKE needs SELECT on them), then go to evil.
        for rel in RELATIONS:
            source = "app.items" if rel == "items" else f"inventory_sync.{rel}"
            su.execute(f"CREATE TABLE public.{rel} (LIKE {source} INCLUDING DEFAULTS INCLUDING INDEXES)")
            # One row, so that a read of it runs the read trap (a per-row policy or view filter).
            columns = su.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", (f"public.{rel}",)
            ).fetchall()
            row = {name: plausible(name, typ) for name, typ in columns}
            su.execute(f"INSERT INTO public.{rel} SELECT * FROM jsonb_populate_record(NULL::public.{rel}, %s)",
                       (Jsonb(row),))
            su.execute(f"ALTER TABLE public.{rel} OWNER TO {R['evil']}")
    with as_role(db, "evil") as evil:
        evil.execute("CREATE SCHEMA evil")
        evil.execute("GRANT USAGE ON SCHEMA evil TO PUBLIC")
        evil.execute("CREATE TABLE public.trap_log (name text, at timestamptz DEFAULT clock_timestamp())")
        evil.execute("GRANT SELECT, INSERT ON public.trap_log TO PUBLIC")
        # SET search_path on the traps: they must not trip each other.
        pinned = "SET search_path = pg_catalog, pg_temp"
        evil.execute(f"""CREATE FUNCTION evil.hit(n text) RETURNS boolean LANGUAGE plpgsql {pinned} AS $$
            BEGIN RAISE NOTICE 'TRAP %', n; INSERT INTO public.trap_log (name) VALUES (n); RETURN true; END $$""")
        evil.execute(f"""CREATE FUNCTION evil.hit_trigger() RETURNS trigger LANGUAGE plpgsql {pinned} AS $$
            BEGIN PERFORM evil.hit(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME || ' ' || TG_OP);
                  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END; END $$""")
        for schema in ("evil", "public"):
            for i, (op, left, right) in enumerate(OPERATORS):
                result = evil.execute(
                    "SELECT oprresult::regtype::text FROM pg_operator WHERE oprname = %s AND oprleft = %s::regtype "
                    "AND oprright = %s::regtype AND oprnamespace = 'pg_catalog'::regnamespace",
                    (op, left, right),
                ).fetchone()
                result = result[0] if result else "boolean"
                label = f"{schema}.{op}({left},{right})"
                if (op, left, right) in (("=", "regclass", "regclass"), ("=", "text", "name"), ("=", "name", "text")):
                    body = "a::pg_catalog.text OPERATOR(pg_catalog.=) b::pg_catalog.text"
                else:
                    body = f"a OPERATOR(pg_catalog.{op}) b"
                evil.execute(
                    f"CREATE FUNCTION {schema}.trap_op_{i}(a {left}, b {right}) RETURNS {result} LANGUAGE plpgsql "
                    f"{pinned} AS $$ BEGIN PERFORM evil.hit({literal(label)}); RETURN {body}; END $$"
                )
                evil.execute(f"CREATE OPERATOR {schema}.{op} (LEFTARG = {left}, RIGHTARG = {right}, "
                             f"FUNCTION = {schema}.trap_op_{i})")
                if left == "anyarray":
                    probes.append((label, f"SELECT ARRAY[1] {op} ARRAY[2]"))
                else:
                    probes.append((label, f"SELECT NULL::pg_catalog.{pgtype(left)} {op} NULL::pg_catalog.{pgtype(right)}"))
            for signature, returns, body, call in FUNCTIONS:
                label = f"{schema}.{signature}"
                if returns.startswith("SETOF"):
                    code = f"BEGIN PERFORM evil.hit({literal(label)}); RETURN QUERY SELECT pg_catalog.unnest(a); END"
                elif returns == "void":
                    code = f"BEGIN PERFORM evil.hit({literal(label)}); END"
                else:
                    code = f"BEGIN PERFORM evil.hit({literal(label)}); RETURN {body}; END"
                evil.execute(f"CREATE FUNCTION {schema}.{signature} RETURNS {returns} LANGUAGE plpgsql {pinned} "
                             f"AS $$ {code} $$")
                probes.append((label, f"SELECT {call}"))
            for typ in DOMAINS:
                label = f"{schema}.{typ} domain"
                evil.execute(f"CREATE DOMAIN {schema}.{typ} AS pg_catalog.{typ} CHECK (evil.hit({literal(label)}))")
                probes.append((label, f"SELECT NULL::{typ}"))
        # Relations named like the extension's: tables in public (a write logs through a trigger,
        # a read by a non-superuser through a policy), views in evil (a read logs, for anyone).
        for rel in RELATIONS:
            evil.execute(f"GRANT ALL ON public.{rel} TO PUBLIC")
            evil.execute(f"CREATE TRIGGER trap BEFORE INSERT OR UPDATE OR DELETE ON public.{rel} "
                         "FOR EACH ROW EXECUTE FUNCTION evil.hit_trigger()")
            evil.execute(f"ALTER TABLE public.{rel} ENABLE ROW LEVEL SECURITY")
            evil.execute(f"CREATE POLICY trap ON public.{rel} USING (evil.hit('read public.{rel}')) WITH CHECK (true)")
            evil.execute(f"CREATE VIEW evil.{rel} AS SELECT * FROM public.{rel} WHERE evil.hit('read evil.{rel}')")
            evil.execute(f"GRANT ALL ON evil.{rel} TO PUBLIC")
            probes.append((f"read evil.{rel}", f"SELECT count(*) FROM {rel}"))
            probes.append((f"read public.{rel}", f"SELECT count(*) FROM public.{rel}"))
    return probes


def plausible(column, typ):
    """A value for a look-alike table's column (its domains' checks included)."""
    by_name = {"op": "upsert", "reason": "stale", "single": True, "policy": "delta"}
    if typ == "regclass":
        return "pg_class"
    if column in by_name:
        return by_name[column]
    if typ in ("bigint", "integer", "smallint", "oid", "xid8"):
        return 1
    if typ.startswith("timestamp"):
        return "2000-01-01T00:00:00Z"
    if typ == "boolean":
        return False
    if typ == "uuid":
        return uid(0)
    if "json" in typ or typ.endswith("item_fields"):
        return {}
    return "x"


def pgtype(t):
    return {"bigint": "int8", "integer": "int4", "boolean": "bool", "text[]": "_text"}.get(t, t)


def literal(s):
    return "'" + s.replace("'", "''") + "'"


def shadow_in_pg_temp(conn):
    """pg_temp comes first for relations: shadow the extension's and the app's tables there."""
    for rel in ("inventory", "conflicts", "changes", "mutations", "tracked", "field_policies", "items"):
        conn.execute(f"CREATE TEMP TABLE {rel} (LIKE public.{rel} INCLUDING DEFAULTS INCLUDING INDEXES)")
        conn.execute(f"CREATE TRIGGER trap BEFORE INSERT OR UPDATE OR DELETE ON pg_temp.{rel} "
                     "FOR EACH ROW EXECUTE FUNCTION evil.hit_trigger()")


@pytest.fixture(scope="module")
def paths_db(env):
    """A database of its own (the scenario truncates), with the traps planted."""
    db = fresh_database(PATHS_DB)
    with connect(db) as su:
        for statement in split(SCHEMA):
            su.execute(statement)
        su.execute("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'tag', 'field_lww')")
        su.execute("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'sku', 'server_wins')")
        su.execute("SET ROLE " + R["owner"])
        su.execute("SELECT inventory_sync.set_policy('app.items', 'name', 'field_lww')")
    armed = plant(db)
    yield db, armed
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def scenario(superuser):
    """Every function, through every path: (label, SQL, params). Timestamps are fixed, so two
    runs from the same start give the same answers."""
    I1, I2, I3 = uid(101), uid(102), uid(103)
    steps = [
        ("upsert new", "SELECT inventory_sync.sync_upsert(101, %s, '2024-03-01 09:00+00')", (Jsonb({"name": "L", "stock": 10}),)),
        ("upsert newer", "SELECT inventory_sync.sync_upsert(101, '{\"stock\": 15}', '2024-03-01 10:05+00')", ()),
        ("upsert older", "SELECT inventory_sync.sync_upsert(101, '{\"stock\": 8}', '2024-03-01 10:00+00')", ()),
        ("upsert equal ts, greater client", "SELECT inventory_sync.sync_upsert(101, '{\"stock\": 9}', '2024-03-01 10:05+00', 'b')", ()),
        ("upsert equal ts, smaller client", "SELECT inventory_sync.sync_upsert(101, '{\"stock\": 7}', '2024-03-01 10:05+00', 'a')", ()),
        ("upsert skewed", "SELECT inventory_sync.sync_upsert(101, '{\"stock\": 1}', '2999-01-01 00:00+00')", ()),
        ("upsert mutation", "SELECT inventory_sync.sync_upsert(102, '{\"n\": 1}', '2024-03-01 09:00+00', 'd', 'm1')", ()),
        ("upsert mutation again", "SELECT inventory_sync.sync_upsert(102, '{\"n\": 1}', '2024-03-01 09:00+00', 'd', 'm1')", ()),
        ("merge applied", "SELECT inventory_sync.sync_upsert(101, %s, '2024-03-01 10:06+00', 'c', base => %s)",
         (Jsonb({"qty": 5, "tag": "t1", "sku": "S1"}), Jsonb({"qty": 0}))),
        ("merge merged", "SELECT inventory_sync.sync_upsert(101, %s, '2024-03-01 10:01+00', 'c', base => %s)",
         (Jsonb({"qty": 7, "tag": "old", "sku": "S0"}), Jsonb({"qty": 5}))),
        ("merge without base", "SELECT inventory_sync.sync_upsert(101, '{\"qty\": 1}', '2024-03-01 11:00+00')", ()),
        ("delete", "SELECT inventory_sync.sync_delete(102, '2024-03-01 10:00+00', 'd', 'm2')", ()),
        ("upsert older than tombstone", "SELECT inventory_sync.sync_upsert(102, '{\"n\": 2}', '2024-03-01 09:30+00')", ()),
        ("delete never existed", "SELECT inventory_sync.sync_delete(103, '2024-03-01 10:00+00')", ()),
        ("delete older", "SELECT inventory_sync.sync_delete(101, '2000-01-01 00:00+00')", ()),
        ("upsert_in new", "SELECT inventory_sync.sync_upsert_in('app.items', %s, %s, '2024-03-01 09:00+00')",
         (I1, Jsonb({"name": "Mouse", "stock": 3}))),
        ("upsert_in newer", "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"M2\"}', '2024-03-01 10:00+00', 'x')", (I1,)),
        ("upsert_in older", "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"M0\"}', '2024-03-01 09:30+00', 'x')", (I1,)),
        ("upsert_in delta", "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"stock\": 5}', '2024-03-01 09:10+00', base => '{\"stock\": 3}')", (I1,)),
        ("upsert_in skewed", "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"S\"}', '2999-01-01 00:00+00')", (I1,)),
        ("upsert_in mutation", "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"K\"}', '2024-03-01 09:00+00', 'd', 'm3')", (I2,)),
        ("upsert_in mutation again", "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"K\"}', '2024-03-01 09:00+00', 'd', 'm3')", (I2,)),
        ("delete_in", "SELECT inventory_sync.sync_delete_in('app.items', %s, '2024-03-01 11:00+00', 'd', 'm4')", (I2,)),
        ("upsert_in older than tombstone", "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"Z\"}', '2024-03-01 10:30+00')", (I2,)),
        ("upsert_in newer than tombstone", "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{\"name\": \"back\"}', '2024-03-01 12:00+00')", (I2,)),
        ("delete_in never existed", "SELECT inventory_sync.sync_delete_in('app.items', %s, '2024-03-01 10:00+00')", (I3,)),
        ("delete_in older", "SELECT inventory_sync.sync_delete_in('app.items', %s, '2000-01-01 00:00+00')", (I1,)),
        ("push", "SELECT inventory_sync.sync_push(%s)", (Jsonb([
            {"id": 104, "payload": {"name": "P"}, "client_ts": "2024-03-01T09:00:00Z", "client_id": "p", "mutation_id": "p1"},
            {"id": 101, "payload": {"stock": 2}, "client_ts": "2024-03-01T09:00:00Z"},
            {"id": 101, "payload": {"qty": 6}, "base": {"qty": 5}, "client_ts": "2024-03-01T12:00:00Z"},
            {"op": "delete", "id": 104, "client_ts": "2024-03-01T10:00:00Z"},
            {"table": "app.items", "id": uid(104), "payload": {"name": "Q", "stock": 1}, "client_ts": "2024-03-01T09:00:00Z"},
            {"table": "app.items", "id": uid(104), "payload": {"stok": 1}, "client_ts": "2024-03-01T09:00:00Z"},
            {"table": "app.items", "id": I1, "payload": {"stock": 9}, "base": {"stock": 8}, "client_ts": "2024-03-01T12:00:00Z"},
            {"table": "app.items", "op": "delete", "id": uid(105), "client_ts": "2024-03-01T10:00:00Z"},
            {"table": "app.items", "id": uid(104), "payload": {"name": "Q0"}, "client_ts": "2024-03-01T08:00:00Z"},
        ]),)),
        ("push again", "SELECT inventory_sync.sync_push(%s)", (Jsonb([
            {"id": 104, "payload": {"name": "P"}, "client_ts": "2024-03-01T09:00:00Z", "client_id": "p", "mutation_id": "p1"},
        ]),)),
        ("push atomic", "SELECT inventory_sync.sync_push(%s, true)", (Jsonb([
            {"id": 106, "payload": {"name": "A"}, "client_ts": "2024-03-01T09:00:00Z"},
            {"table": "app.items", "id": uid(106), "payload": {"name": "A"}, "client_ts": "2024-03-01T09:00:00Z"},
        ]),)),
        ("push atomic failing", "SELECT inventory_sync.sync_push(%s, true)", (Jsonb([
            {"id": 107, "payload": {"name": "A"}, "client_ts": "2024-03-01T09:00:00Z"},
            {"table": "app.items", "id": uid(107), "payload": {"stok": 1}, "client_ts": "2024-03-01T09:00:00Z"},
        ]),)),
        ("pull", "PULL", ()),
        ("pull in pages", "PULL 2", ()),
    ]
    if superuser:
        steps += [
            ("set_policy", "SELECT inventory_sync.set_policy('app.items', 'stock', 'lww')", ()),
            ("set_policy back", "SELECT inventory_sync.set_policy('app.items', 'stock', 'delta')", ()),
            ("set_policy default", "SELECT inventory_sync.set_policy('inventory_sync.inventory', 'tag', 'lww')", ()),
            ("untrack", "SELECT inventory_sync.untrack('app.items')", ()),
            ("write untracked", "SELECT inventory_sync.sync_upsert_in('app.items', %s, '{}', '2024-03-01 12:00+00')", (I1,)),
            ("track", "SELECT inventory_sync.track('app.items')", ()),
            # (Our own SQL below is qualified too: on the trapped path it would call the traps.)
            ("age", "UPDATE inventory_sync.changes SET changed_at = changed_at OPERATOR(pg_catalog.-) "
                    "'1 year'::pg_catalog.interval WHERE op OPERATOR(pg_catalog.=) 'delete'", ()),
            ("age uuid", "UPDATE inventory_sync.changes_uuid SET changed_at = changed_at OPERATOR(pg_catalog.-) "
                         "'1 year'::pg_catalog.interval WHERE op OPERATOR(pg_catalog.=) 'delete'", ()),
            ("age default", "UPDATE inventory_sync.inventory SET changed_at = changed_at OPERATOR(pg_catalog.-) "
                            "'1 year'::pg_catalog.interval WHERE deleted", ()),
            ("purge_tombstones", "SELECT inventory_sync.purge_tombstones('1 day')", ()),
            ("pull after purge", "PULL 3", ()),
            ("age mutations", "UPDATE inventory_sync.mutations SET applied_at = applied_at OPERATOR(pg_catalog.-) "
                              "'1 year'::pg_catalog.interval WHERE mutation_id OPERATOR(pg_catalog.<>) 'm1'", ()),
            ("age uuid mutations", "UPDATE inventory_sync.mutations_uuid SET applied_at = applied_at "
                                   "OPERATOR(pg_catalog.-) '1 year'::pg_catalog.interval "
                                   "WHERE mutation_id OPERATOR(pg_catalog.<>) 'm1'", ()),
            ("purge_mutations", "SELECT inventory_sync.purge_mutations('1 day')", ()),
            ("mutation after purge", "SELECT inventory_sync.sync_upsert(102, '{\"n\": 1}', '2024-03-01 09:00+00', 'd', 'm2')", ()),
        ]
    return steps


# The server's clock (a row's version is one) and cursors differ from run to run.
VOLATILE_KEYS = ("server_time", "ahead_by_seconds", "client_ts", "cursor", "version")


def normalized(value):
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def run_scenario(conn, superuser):
    answers = []
    for label, sql, params in scenario(superuser):
        try:
            if sql.startswith("PULL"):
                lim = int(sql.split()[1]) if " " in sql else 1000
                answer = pull_all(conn, lim)
            else:
                cur = conn.execute(sql, params)
                answer = cur.fetchone()[0] if cur.description else cur.rowcount
        except psycopg.Error as e:
            answer = {"error": e.sqlstate, "message": e.diag.message_primary}
        answers.append((label, normalized(answer)))
    return answers


def end_state(su):
    """The state every run leaves, without server clocks, transaction ids and identities."""
    queries = {
        "inventory": "SELECT id, data, updated_at, deleted, updated_by, field_clocks FROM inventory_sync.inventory",
        "items": "SELECT * FROM app.items",
        "conflicts": "SELECT row_id, table_name, reason, op, client_payload, client_ts, client_id, mutation_id, "
                     "server_data, db_user FROM inventory_sync.conflicts",
        "changes": "SELECT table_id, row_id, id, op, ts, client_id, field_clocks FROM inventory_sync.changes",
        "changes_uuid": "SELECT table_id, row_id, id, op, ts, client_id, field_clocks FROM inventory_sync.changes_uuid",
        "changes_text": "SELECT table_id, row_id, id, op, ts, client_id, field_clocks FROM inventory_sync.changes_text",
        "mutations": "SELECT row_id, table_id, client_id, mutation_id, answer - 'server_time' - 'ahead_by_seconds' - 'version', db_user "
                     "FROM inventory_sync.mutations",
        "mutations_uuid": "SELECT row_id, table_id, client_id, mutation_id, answer - 'server_time' - 'ahead_by_seconds' - 'version', "
                          "db_user FROM inventory_sync.mutations_uuid",
        "mutations_text": "SELECT row_id, table_id, client_id, mutation_id, answer - 'server_time' - 'ahead_by_seconds' - 'version', "
                          "db_user FROM inventory_sync.mutations_text",
        "tracked": "SELECT tbl, key_attnum, ts_attnum, tracked_by FROM inventory_sync.tracked",
        "policies": "SELECT * FROM inventory_sync.field_policies",
        "purged": "SELECT table_id, row_id FROM inventory_sync.purge_horizon",
    }
    return {k: sorted(str(r) for r in su.execute(q).fetchall()) for k, q in queries.items()}


def reset(su):
    su.execute("TRUNCATE inventory_sync.inventory, inventory_sync.conflicts, inventory_sync.changes, "
               "inventory_sync.changes_uuid, inventory_sync.changes_text, inventory_sync.mutations, "
               "inventory_sync.mutations_uuid, inventory_sync.mutations_text, inventory_sync.purge_horizon, app.items, "
               "public.trap_log")
    su.execute("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'tag', 'field_lww')")
    su.execute("SELECT inventory_sync.set_policy('app.items', 'stock', 'delta')")
    if not su.execute("SELECT 1 FROM inventory_sync.tracked WHERE tbl = 'app.items'::regclass").fetchone():
        su.execute("SELECT inventory_sync.track('app.items')")


@pytest.mark.parametrize(
    "who,search_path",
    [
        ("app", "evil, pg_catalog, public"),
        ("app", "public, pg_catalog"),
        ("app", "evil, public"),  # pg_catalog implicitly first: only better-matching overloads
        ("superuser", "evil, pg_catalog, public"),
    ],
)
def test_planted_objects_never_hijack_a_function(paths_db, who, search_path):
    db, probes = paths_db
    superuser = who == "superuser"

    def session():
        conn = connect(db) if superuser else as_role(db, who)
        conn.execute("SET TimeZone = 'UTC'")
        return conn

    with connect(db) as su:
        su.execute("SET search_path = pg_catalog")  # our own statements must not trip the traps
        # A clean run: only pg_catalog on the path.
        reset(su)
        with session() as conn:
            conn.execute("SET search_path = pg_catalog")
            clean = run_scenario(conn, superuser)
        clean_state = end_state(su)

        reset(su)
        with session() as conn:
            notices = []
            conn.add_notice_handler(lambda d: notices.append(d.message_primary))
            conn.execute(f"SET search_path = {search_path}")
            # The traps are armed: on this search_path, unqualified SQL does call them.
            fired = set()
            for label, probe in probes:
                before = len(notices)
                with contextlib.suppress(psycopg.Error):
                    conn.execute(probe).fetchall()
                if f"TRAP {label}" in notices[before:]:
                    fired.add(label)
            expected = {label for label, _ in probes if armed_on(label, search_path, superuser)}
            if "pg_catalog" in search_path:
                assert expected <= fired, f"traps that never fired: {sorted(expected - fired)}"
            else:
                assert {f"read evil.{rel}" for rel in RELATIONS} | {"evil.=(regclass,regclass)"} <= fired, fired
            shadow_in_pg_temp(conn)

            # The scenario on the trapped path: no trap fires, and all is as in the clean run.
            reset(su)
            notices.clear()
            trapped = run_scenario(conn, superuser)
        trapped_state = end_state(su)
        hits = su.execute("SELECT name FROM public.trap_log").fetchall()
        assert [n for n in notices if n.startswith("TRAP")] == [] and hits == []
        assert [label for label, _ in clean] == [label for label, _ in trapped]
        for (label, a), (_, b) in zip(clean, trapped):
            assert a == b, f"{label}: clean {a} != trapped {b}"
        assert clean_state == trapped_state
        # The scenario reached every kind of answer (a check of the scenario itself).
        text = json.dumps(clean)
        for word in ('"applied"', '"conflict"', '"merged"', '"rejected"', '"duplicate"', '"deleted"', '"error"',
                     '"delta_without_base"', '"42703"'):
            assert word in text, word


def armed_on(label, search_path, superuser):
    """Whether the probe of a planted object must fire on this (explicit) search_path: objects of
    the first trapped schema before pg_catalog; and the look-alike tables' read policy, which
    does not apply to a superuser."""
    if label.startswith("read public."):
        return not superuser
    schema = label.removeprefix("read ").split(".", 1)[0]
    path = [s.strip() for s in search_path.split(",")]
    before_catalog = path[: path.index("pg_catalog")] if "pg_catalog" in path else []
    trapped = [s for s in before_catalog if s in ("evil", "public")]
    return bool(trapped) and trapped[0] == schema


def test_a_pg_temp_table_shadowing_a_tracked_table_is_not_written(paths_db):
    """The caller's own search_path resolves table names given to the functions (as for any SQL):
    a temp table named like the tracked one shadows it for unqualified names, and is then not
    tracked: nothing is written to it, and a qualified name reaches the real table."""
    db, _ = paths_db
    with as_role(db, "app") as conn:
        conn.execute("SET search_path = app, public")
        conn.execute("CREATE TEMP TABLE items (LIKE app.items INCLUDING ALL)")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="is not tracked"):
            conn.execute("SELECT inventory_sync.sync_upsert_in('items', %s, '{\"name\": \"t\"}', now())", (uid(500),))
        outcome = conn.execute("SELECT inventory_sync.sync_push(%s)", (Jsonb([
            {"table": "items", "id": uid(500), "payload": {"name": "t"}, "client_ts": NEW},
            {"table": "app.items", "id": uid(500), "payload": {"name": "t"}, "client_ts": NEW},
        ]),)).fetchone()[0]
        assert [o["status"] for o in outcome] == ["error", "applied"]
        assert outcome[0]["sqlstate"] == "55000"
        assert conn.execute("SELECT count(*) FROM pg_temp.items").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM app.items WHERE id = %s", (uid(500),)).fetchone()[0] == 1
