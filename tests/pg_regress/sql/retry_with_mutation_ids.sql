-- Retries: a change carries its device's client_id and its own mutation_id, so sending it again
-- (the answer was lost, the backend retried, the device restarted) applies it once.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE TABLE products (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    stock      integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('products');
SELECT inventory_sync.set_policy('products', 'stock', 'delta');
SELECT inventory_sync.sync_upsert_in('products', '5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10',
       '{"name": "Laptop", "stock": 10}', '2024-03-01 09:00+00')->>'status' AS status;
-- phone-a sold 2 laptops (10 -> 8). The push is applied, but its answer never reaches the phone.
SELECT inventory_sync.sync_push('[{"table": "products", "id": "5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10",
  "payload": {"stock": 8}, "base": {"stock": 10}, "client_ts": "2024-03-01T10:00:00Z",
  "client_id": "phone-a", "mutation_id": "phone-a-41"}]') IS NOT NULL AS sent;
-- The phone sends the same change again: the first answer, marked as a duplicate. The delta is
-- not applied twice.
SELECT inventory_sync.sync_push('[{"table": "products", "id": "5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10",
  "payload": {"stock": 8}, "base": {"stock": 10}, "client_ts": "2024-03-01T10:00:00Z",
  "client_id": "phone-a", "mutation_id": "phone-a-41"}]');
SELECT name, stock FROM products;
-- The same mutation_id from another device is another change; so is the same mutation_id for
-- another row. Give every change of a device its own id and never reuse one.
SELECT inventory_sync.sync_push('[{"table": "products", "id": "5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10",
  "payload": {"stock": 9}, "base": {"stock": 10}, "client_ts": "2024-03-01T10:01:00Z",
  "client_id": "phone-b", "mutation_id": "phone-a-41"}]')->0->>'status' AS status;
SELECT name, stock FROM products;
-- A change rejected for clock skew was not applied. Once the device has fixed its clock, it
-- stamps the change again and sends it under the same mutation_id: a rejection is not
-- remembered, so the resend is decided afresh (and applied once).
SELECT o->>'status' AS status, o->'ahead_by_seconds' AS ahead_by_seconds
  FROM jsonb_array_elements(inventory_sync.sync_push(jsonb_build_array(jsonb_build_object(
       'table', 'products', 'id', '5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10',
       'payload', '{"name": "Laptop 14"}'::jsonb, 'client_ts', now() + interval '1 hour',
       'client_id', 'phone-c', 'mutation_id', 'phone-c-7')))) AS o;
SELECT inventory_sync.sync_push('[{"table": "products", "id": "5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10",
  "payload": {"name": "Laptop 14"}, "client_ts": "2024-03-01T10:30:00Z",
  "client_id": "phone-c", "mutation_id": "phone-c-7"}]')->0->>'status' AS status;
SELECT name, stock FROM products;
-- An invalid change is not remembered: corrected, it may be sent under the same id.
SELECT inventory_sync.sync_push('[{"table": "products", "id": "5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10",
  "payload": {"stock": "seven"}, "base": {"stock": 9}, "client_ts": "2024-03-01T11:00:00Z",
  "client_id": "phone-a", "mutation_id": "phone-a-42"}]')->0->>'status' AS status;
SELECT inventory_sync.sync_push('[{"table": "products", "id": "5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10",
  "payload": {"stock": 7}, "base": {"stock": 9}, "client_ts": "2024-03-01T11:00:00Z",
  "client_id": "phone-a", "mutation_id": "phone-a-42"}]')->0->>'status' AS status;
SELECT name, stock FROM products;
DROP TABLE products;
DROP EXTENSION inventory_sync;
