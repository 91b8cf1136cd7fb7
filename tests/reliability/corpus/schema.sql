-- The objects the hostile-input corpus (tests/reliability/corpus/*.json) refers to, created once in
-- the fresh database of tests/reliability/test_corpus.py, after CREATE EXTENSION inventory_sync.
-- Statements are separated by lines holding only "--;" (the runner splits on them).

SET TimeZone = 'UTC'
--;
CREATE TYPE corpus_mood AS ENUM ('happy', 'sad')
--;
CREATE DOMAIN corpus_pos AS integer CHECK (VALUE > 0)
--;
-- A typed table with one column of every type the corpus throws wrong values at.
CREATE TABLE typed (
    id         bigint PRIMARY KEY,
    i          integer,
    b          bigint,
    n          numeric(10,2),
    t          text,
    v          varchar(5),
    flag       boolean,
    u          uuid,
    d          date,
    ts         timestamptz,
    j          jsonb,
    arr        integer[],
    m          corpus_mood,
    p          corpus_pos,
    gone       integer,
    g          integer GENERATED ALWAYS AS (i * 2) STORED,
    updated_at timestamptz
)
--;
ALTER TABLE typed DROP COLUMN gone
--;
SELECT inventory_sync.track('typed')
--;
-- A uuid key.
CREATE TABLE uuid_items (id uuid PRIMARY KEY, name text, updated_at timestamptz NOT NULL)
--;
SELECT inventory_sync.track('uuid_items')
--;
-- Identifiers that would break naive SQL building: a text key, a hostile table and column name.
CREATE TABLE "Weird ""Name""; DROP TABLE typed;--" (
    id                      text PRIMARY KEY,
    "col; DROP TABLE typed" text,
    "Mixed Case"            integer,
    updated_at              timestamptz
)
--;
SELECT inventory_sync.track('"Weird ""Name""; DROP TABLE typed;--"')
--;
-- A tracked table whose columns have merge policies (the merging path).
CREATE TABLE merged (
    id         bigint PRIMARY KEY,
    qty        integer,
    price      numeric,
    sku        text,
    doc        jsonb,
    note       text,
    updated_at timestamptz
)
--;
SELECT inventory_sync.track('merged')
--;
SELECT inventory_sync.set_policy('merged', 'qty', 'delta')
--;
SELECT inventory_sync.set_policy('merged', 'price', 'field_lww')
--;
SELECT inventory_sync.set_policy('merged', 'sku', 'server_wins')
--;
SELECT inventory_sync.set_policy('merged', 'doc', 'field_lww')
--;
-- The default table's fields with policies: payloads touching them take the merging path.
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta')
--;
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'price', 'field_lww')
--;
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'sku', 'server_wins')
--;
-- Things that are not (trackable) tables.
CREATE VIEW typed_view AS SELECT * FROM typed
--;
CREATE MATERIALIZED VIEW typed_matview AS SELECT id, updated_at FROM typed
--;
CREATE SEQUENCE corpus_seq
--;
CREATE TABLE untracked (id bigint PRIMARY KEY, note text, updated_at timestamptz)
--;
CREATE TABLE no_pk (id bigint, updated_at timestamptz)
--;
CREATE TABLE two_col_pk (a bigint, b bigint, updated_at timestamptz, PRIMARY KEY (a, b))
--;
CREATE TABLE date_pk (id date PRIMARY KEY, updated_at timestamptz)
--;
CREATE TABLE ts_not_tz (id bigint PRIMARY KEY, updated_at timestamp)
--;
CREATE TABLE ts_generated (
    id bigint PRIMARY KEY,
    base_ts timestamptz,
    updated_at timestamptz GENERATED ALWAYS AS (base_ts) STORED
)
--;
-- A role without grants on anything, and one that may write typed only.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rel_corpus_nobody') THEN
        CREATE ROLE rel_corpus_nobody NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rel_corpus_app') THEN
        CREATE ROLE rel_corpus_app NOLOGIN;
    END IF;
END
$$
--;
GRANT SELECT, INSERT, UPDATE, DELETE ON typed TO rel_corpus_app
