-- Counters: with the delta policy a device sends the value it set and the value it started from
-- (base); the server adds the difference, so concurrent sales and returns all count.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE TABLE products (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    stock      integer NOT NULL DEFAULT 0,
    price      numeric(10,2),
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('products');
SELECT inventory_sync.set_policy('products', 'stock', 'delta');
SELECT inventory_sync.set_policy('products', 'price', 'field_lww');
SELECT inventory_sync.sync_upsert_in('products', '00000000-0000-4000-8000-000000000001',
       '{"name": "Laptop", "stock": 15, "price": 999.00}', '2024-03-01 09:00+00')->>'status' AS status;
-- Both phones saw 15. phone-b (online) books a return: 16. phone-a (offline) sold 3: 12.
SELECT inventory_sync.sync_push('[{"table": "products", "id": "00000000-0000-4000-8000-000000000001",
  "payload": {"stock": 16}, "base": {"stock": 15}, "client_ts": "2024-03-01T10:05:00Z",
  "client_id": "phone-b", "mutation_id": "b-1"}]');
SELECT inventory_sync.sync_push('[{"table": "products", "id": "00000000-0000-4000-8000-000000000001",
  "payload": {"stock": 12}, "base": {"stock": 15}, "client_ts": "2024-03-01T10:00:00Z",
  "client_id": "phone-a", "mutation_id": "a-1"}]');
-- 16 + (12 - 15) = 13, though phone-a's write is older and arrived last.
SELECT name, stock FROM products;
-- The applied answer carries no row: phone-a learns the total from its next pull.
SELECT c->'data'->'stock' AS stock FROM jsonb_array_elements(inventory_sync.sync_pull()->'changes') AS c;
-- A change that mixes fields: the delta applies, the price (field_lww: older than the price's
-- last change) loses. "merged" is a 200; the device stores server_data as its row.
SELECT inventory_sync.sync_upsert_in('products', '00000000-0000-4000-8000-000000000001',
       '{"price": 949.00}', '2024-03-01 11:00+00')->>'status' AS status;
SELECT jsonb_pretty(inventory_sync.sync_push('[{"table": "products", "id": "00000000-0000-4000-8000-000000000001",
  "payload": {"stock": 11, "price": 899.00}, "base": {"stock": 13}, "client_ts": "2024-03-01T10:30:00Z",
  "client_id": "phone-a", "mutation_id": "a-2"}]')->0);
-- A delta sent without its base is last-write-wins, and the answer says so: send the base.
SELECT inventory_sync.sync_push('[{"table": "products", "id": "00000000-0000-4000-8000-000000000001",
  "payload": {"stock": 20}, "client_ts": "2024-03-01T12:00:00Z",
  "client_id": "phone-b", "mutation_id": "b-2"}]');
SELECT name, stock, price FROM products;
DROP TABLE products;
DROP EXTENSION inventory_sync;
