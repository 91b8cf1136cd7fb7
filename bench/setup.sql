-- Benchmark schema: the same data for every variant. :rows items in each table.
CREATE EXTENSION IF NOT EXISTS inventory_sync;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
SET client_min_messages = warning;
TRUNCATE inventory_sync.inventory, inventory_sync.conflicts, inventory_sync.changes, inventory_sync.changes_uuid,
         inventory_sync.changes_text, inventory_sync.mutations_text,
         inventory_sync.mutations, inventory_sync.mutations_uuid;

-- 1. What a PostgreSQL expert writes by hand: one statement, no journal, no JSON answer.
CREATE TABLE bench.items (id bigint PRIMARY KEY, data jsonb NOT NULL, updated_at timestamptz NOT NULL);
-- 4. A typed application table, tracked; and its twin for the bare typed statement.
CREATE TABLE bench.products (id bigint PRIMARY KEY, name text NOT NULL, stock integer NOT NULL,
                             price numeric(10,2), updated_at timestamptz NOT NULL);
CREATE TABLE bench.products_bare (LIKE bench.products INCLUDING ALL);

INSERT INTO bench.items SELECT g, jsonb_build_object('name', 'item ' || g, 'stock', g % 100), '2020-01-01'
  FROM generate_series(1, :rows) g;
INSERT INTO inventory_sync.inventory (id, data, updated_at) SELECT id, data, updated_at FROM bench.items;
INSERT INTO bench.products SELECT g, 'item ' || g, g % 100, 9.99, '2020-01-01' FROM generate_series(1, :rows) g;
INSERT INTO bench.products_bare SELECT * FROM bench.products;
SELECT inventory_sync.track('bench.products');
-- Every product as if written through the sync functions once: each has its change record, as
-- in a database in use. (Left empty, the record table's statistics say "empty", and the kept
-- plans made from them scan it whole until autovacuum analyzes it.)
INSERT INTO inventory_sync.changes (table_id, row_id, id, op, ts, field_clocks, position, changed_at, shard_key)
SELECT t.table_id, p.id::text, to_jsonb(p.id), 'upsert', p.updated_at, '{}', inventory_sync.change_position(), now(), p.id
  FROM bench.products p, inventory_sync.tracked t WHERE t.tbl = 'bench.products'::regclass;

-- 2. What a user would write instead of installing the extension: PL/pgSQL with the same
-- decision, journal and JSON answer.
CREATE TABLE bench.journal (id bigint NOT NULL, client_payload jsonb NOT NULL, client_ts timestamptz NOT NULL,
                            server_data jsonb, detected_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION bench.plpgsql_upsert(p_id bigint, p_payload jsonb, p_ts timestamptz) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE r record; srv jsonb;
BEGIN
    INSERT INTO bench.items AS t (id, data, updated_at) VALUES (p_id, p_payload - '{id,updated_at}'::text[], p_ts)
    ON CONFLICT (id) DO UPDATE SET data = t.data || excluded.data, updated_at = excluded.updated_at
    WHERE t.updated_at <= excluded.updated_at
    RETURNING t.id, t.updated_at, (t.xmax = 0) AS created INTO r;
    IF FOUND THEN
        RETURN jsonb_build_object('status', 'applied', 'id', r.id, 'updated_at', r.updated_at, 'created', r.created);
    END IF;
    SELECT data || jsonb_build_object('id', id, 'updated_at', updated_at) INTO srv FROM bench.items WHERE id = p_id;
    INSERT INTO bench.journal (id, client_payload, client_ts, server_data) VALUES (p_id, p_payload, p_ts, srv);
    RETURN jsonb_build_object('status', 'conflict', 'id', p_id, 'server_data', srv);
END $$;
VACUUM ANALYZE;
