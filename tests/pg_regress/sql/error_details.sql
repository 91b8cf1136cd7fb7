-- Errors, each with its SQLSTATE, detail and hint. A call that fails writes nothing.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE TABLE products (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    stock      integer NOT NULL DEFAULT 0 CHECK (stock >= 0),
    price      numeric(10,2),
    total      numeric GENERATED ALWAYS AS (stock * price) STORED,
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('products');
-- Arguments (every function): a required argument that is NULL.
SELECT inventory_sync.sync_upsert(1, '{}', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, NULL, '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
-- Writes: payload, client_ts, ids, mutation ids, base.
SELECT inventory_sync.sync_upsert(1, '[1, 2]', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{}', 'infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{"id": 2}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{}', '2024-03-01 10:00+00', mutation_id => 'm-1');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{}', '2024-03-01 10:00+00', base => '[10]');
\echo :LAST_ERROR_SQLSTATE
-- Tracked tables: the table, the key, the payload's keys and values.
CREATE TABLE notes (id bigint PRIMARY KEY, body text, updated_at timestamptz);
SELECT inventory_sync.sync_upsert_in('notes', '1', '{}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert_in('products', 'A-1', '{}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"id": "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"colour": "red"}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"updated_at": "2024-03-01T10:00:00Z"}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"total": 0}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"name": "Laptop", "price": 123456789.99}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
-- A write the table's own constraints refuse is not an error: it answers "rejected" with the
-- constraint, PostgreSQL's SQLSTATE and message, and is journaled.
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"name": "Laptop", "stock": -1}', '2024-03-01 10:00+00') - 'server_data';
-- track() and untrack().
CREATE TABLE no_key (id bigint, updated_at timestamptz);
CREATE TABLE two_keys (a bigint, b bigint, updated_at timestamptz, PRIMARY KEY (a, b));
CREATE TABLE date_key (day date PRIMARY KEY, updated_at timestamptz);
CREATE TABLE local_ts (id bigint PRIMARY KEY, updated_at timestamp);
CREATE VIEW product_names AS SELECT id, name FROM products;
SELECT inventory_sync.track('no_key');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.track('two_keys');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.track('date_key');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.track('products', 'modified_at');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.track('local_ts');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.track('product_names');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.track('inventory_sync.conflicts');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.untrack('notes');
\echo :LAST_ERROR_SQLSTATE
-- A tracked table altered so that it cannot be synced any more.
SELECT inventory_sync.track('notes');
ALTER TABLE notes DROP COLUMN updated_at;
SELECT inventory_sync.sync_upsert_in('notes', '1', '{}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
-- set_policy() and delta writes.
SELECT inventory_sync.set_policy('products', 'stock', 'sum');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.set_policy('products', 'updated_at', 'field_lww');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.set_policy('products', 'name', 'delta');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta');
SELECT inventory_sync.sync_upsert(1, '{"stock": 10}', '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(1, '{"stock": "many"}', '2024-03-01 10:00+00', base => '{"stock": 10}');
\echo :LAST_ERROR_SQLSTATE
-- sync_pull() and the purges.
SELECT inventory_sync.sync_pull('bm90IGEgY3Vyc29y');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_pull(NULL, 100001);
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.purge_mutations('-7 days');
\echo :LAST_ERROR_SQLSTATE
-- Input PostgreSQL refuses before the function runs.
SELECT inventory_sync.sync_upsert(1, '{"stock": ', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{}', '2024-02-30 10:00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert_in('warehouses', '1', '{}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
-- Nothing above was written (but the one row created on purpose).
SELECT id, data FROM inventory_sync.inventory;
SELECT count(*) AS rows FROM products;
SELECT count(*) AS journaled FROM inventory_sync.conflicts;
DROP VIEW product_names;
DROP TABLE products, notes, no_key, two_keys, date_key, local_ts;
DROP EXTENSION inventory_sync;
