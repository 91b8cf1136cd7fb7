-- Pushing: what the backend runs for a device's change, and the outcomes it acts on.
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
-- One change from the device's outbox, passed through as one jsonb parameter ($1), in an array.
-- 200: the device drops the change from its outbox.
SELECT inventory_sync.sync_push('[{"table": "products", "id": "5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10",
  "payload": {"name": "Laptop", "stock": 10, "price": 999.00}, "client_ts": "2024-03-01T09:00:00Z",
  "client_id": "phone-a", "mutation_id": "phone-a-1"}]');
SELECT inventory_sync.sync_push('[{"table": "products", "id": "5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10",
  "payload": {"price": 949.00}, "client_ts": "2024-03-01T10:05:00Z",
  "client_id": "phone-b", "mutation_id": "phone-b-1"}]');
-- 409: phone-a changed the price at 10:00 while offline; phone-b's 10:05 price stands. The
-- device stores server_data as its row and drops the change.
SELECT jsonb_pretty(inventory_sync.sync_push('[{"table": "products", "id": "5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10",
  "payload": {"price": 899.00}, "client_ts": "2024-03-01T10:00:00Z",
  "client_id": "phone-a", "mutation_id": "phone-a-2"}]'));
-- 422 "error": the change can never apply (here a column the server does not have). The device
-- drops it and reports it; nothing was written.
SELECT inventory_sync.sync_push('[{"table": "products", "id": "5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10",
  "payload": {"colour": "grey"}, "client_ts": "2024-03-01T10:06:00Z",
  "client_id": "phone-a", "mutation_id": "phone-a-3"}]');
-- 422 "rejected": the device's clock runs an hour ahead. It keeps the change, fixes its clock
-- (ahead_by_seconds, server_time) and sends it again.
SELECT o->>'status' AS status, o->>'reason' AS reason, o->'ahead_by_seconds' AS ahead_by_seconds
  FROM jsonb_array_elements(inventory_sync.sync_push(jsonb_build_array(jsonb_build_object(
       'table', 'products', 'id', '5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10',
       'payload', '{"name": "Laptop 14\""}'::jsonb, 'client_ts', now() + interval '1 hour',
       'client_id', 'phone-c', 'mutation_id', 'phone-c-1')))) AS o;
-- A whole outbox in one call: one outcome per change, in the order sent; the status code each
-- would get on its own is the backend's to add (here as the examples do).
SELECT o->>'status' AS status,
       CASE o->>'status' WHEN 'applied' THEN 200 WHEN 'merged' THEN 200
                         WHEN 'conflict' THEN 409 ELSE 422 END AS http
  FROM jsonb_array_elements(inventory_sync.sync_push('[
  {"table": "products", "id": "7a3d9c41-6e2b-4f08-8d1a-2c5b7e9f0a34", "payload": {"name": "Mouse"},
   "client_ts": "2024-03-01T10:10:00Z", "client_id": "phone-a", "mutation_id": "phone-a-4"},
  {"table": "products", "id": "5f1c2a9e-0b7d-4c1e-9a51-3f2e8d6b7c10", "payload": {"price": 1},
   "client_ts": "2024-03-01T09:30:00Z", "client_id": "phone-a", "mutation_id": "phone-a-5"},
  {"table": "products", "id": "not-a-uuid", "payload": {"name": "Pad"},
   "client_ts": "2024-03-01T10:11:00Z", "client_id": "phone-a", "mutation_id": "phone-a-6"}
]')) AS o;
SELECT id, name, stock, price, updated_at FROM products ORDER BY name;
-- Every losing write is kept, with what the server held.
SELECT row_id, reason, client_id, mutation_id, client_payload, server_data->'price' AS server_price
  FROM inventory_sync.conflicts ORDER BY conflict_id;
DROP TABLE products;
DROP EXTENSION inventory_sync;
