-- Tracked tables: sync the application's own typed table.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE TABLE products (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    stock      integer NOT NULL DEFAULT 0 CHECK (stock >= 0),
    price      numeric(10,2),
    tags       text[] NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL
);
-- Put it under sync: its primary key identifies rows, updated_at holds each row's write time.
SELECT inventory_sync.track('products');
SELECT table_name, key_column, key_type, ts_column FROM inventory_sync.tracked_tables;
-- 09:00: a device creates the product; columns it did not send get their defaults.
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"name": "Laptop", "stock": 10, "price": 999.00}', '2024-03-01 09:00+00');
-- 10:05: Worker B sets the stock to 15 and tags it.
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"stock": 15, "tags": ["electronics", "promo"]}', '2024-03-01 10:05+00');
-- Worker A's offline write from 10:00 arrives: a conflict, with the row that won as JSON.
SELECT jsonb_pretty(inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"stock": 8}', '2024-03-01 10:00+00'));
SELECT * FROM products;
SELECT row_id, table_name, reason, client_payload, client_ts FROM inventory_sync.conflicts;
-- Mistakes are errors that name the key or column, and write nothing; a write the table's own
-- constraints refuse (stock below zero, a new row without its NOT NULL name) answers "rejected"
-- with the constraint, and is journaled.
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"colour": "red"}', '2024-03-01 11:00+00');
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"stock": "lots"}', '2024-03-01 11:00+00');
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"stock": -1}', '2024-03-01 11:00+00');
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"updated_at": "2024-03-01 11:00+00"}', '2024-03-01 11:00+00');
SELECT inventory_sync.sync_upsert_in('products', 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"stock": 3}', '2024-03-01 11:00+00');
SELECT inventory_sync.sync_upsert_in('products', 'not-a-uuid', '{}', '2024-03-01 11:00+00');
SELECT name, stock, updated_at FROM products;
-- Untracked, the table is an ordinary table again.
SELECT inventory_sync.untrack('products');
SELECT inventory_sync.sync_upsert_in('products', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{}', now());
DROP TABLE products;
DROP EXTENSION inventory_sync;
