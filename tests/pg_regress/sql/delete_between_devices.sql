-- Deletes: a device deletes like it edits, with a client_ts; the server keeps a tombstone.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE TABLE products (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    stock      integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('products');
SELECT inventory_sync.sync_upsert_in('products', '00000000-0000-4000-8000-000000000001',
       '{"name": "Laptop", "stock": 10}', '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('products', '00000000-0000-4000-8000-000000000002',
       '{"name": "Mouse", "stock": 40}', '2024-03-01 09:00+00')->>'status' AS status;
-- phone-a deletes the laptop at 10:00: 200.
SELECT inventory_sync.sync_push('[{"op": "delete", "table": "products",
  "id": "00000000-0000-4000-8000-000000000001", "client_ts": "2024-03-01T10:00:00Z",
  "client_id": "phone-a", "mutation_id": "a-1"}]');
-- phone-b edited it at 09:30 while offline: 409, and server_data says it is deleted. phone-b
-- removes the laptop from its copy and drops the change.
SELECT inventory_sync.sync_push('[{"table": "products",
  "id": "00000000-0000-4000-8000-000000000001", "payload": {"stock": 9},
  "client_ts": "2024-03-01T09:30:00Z", "client_id": "phone-b", "mutation_id": "b-1"}]');
-- phone-a deletes the mouse, but phone-b changed it later: the delete loses (409), and
-- server_data is the live row, which phone-a puts back in its copy.
SELECT inventory_sync.sync_upsert_in('products', '00000000-0000-4000-8000-000000000002',
       '{"stock": 38}', '2024-03-01 10:30+00')->>'status' AS status;
SELECT inventory_sync.sync_push('[{"op": "delete", "table": "products",
  "id": "00000000-0000-4000-8000-000000000002", "client_ts": "2024-03-01T10:15:00Z",
  "client_id": "phone-a", "mutation_id": "a-2"}]');
-- Other devices learn about the delete from their pulls: "op": "delete", no data.
SELECT c->'id' AS id, c->>'op' AS op, c->'data' AS data, c->>'updated_at' AS updated_at
  FROM jsonb_array_elements(inventory_sync.sync_pull()->'changes') AS c;
-- An edit newer than the delete brings the laptop back, with defaults for what it does not send.
SELECT inventory_sync.sync_upsert_in('products', '00000000-0000-4000-8000-000000000001',
       '{"name": "Laptop (refurbished)"}', '2024-03-01 12:00+00');
SELECT id, name, stock, updated_at FROM products ORDER BY name;
DROP TABLE products;
DROP EXTENSION inventory_sync;
