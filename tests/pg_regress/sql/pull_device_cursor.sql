-- Pulling: page through the changes after the device's cursor; store the cursor once applied.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE TABLE products (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    stock      integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('products');
SELECT inventory_sync.sync_push('[
  {"table": "products", "id": "00000000-0000-4000-8000-000000000001", "payload": {"name": "Laptop"},
   "client_ts": "2024-03-01T09:00:00Z", "client_id": "phone-b", "mutation_id": "b-1"},
  {"table": "products", "id": "00000000-0000-4000-8000-000000000002", "payload": {"name": "Mouse"},
   "client_ts": "2024-03-01T09:01:00Z", "client_id": "phone-b", "mutation_id": "b-2"},
  {"table": "products", "id": "00000000-0000-4000-8000-000000000003", "payload": {"name": "Cable"},
   "client_ts": "2024-03-01T09:02:00Z", "client_id": "phone-b", "mutation_id": "b-3"}
]') IS NOT NULL AS pushed;
-- A new device has no cursor: it pulls from the beginning (since NULL), here 2 changes a page.
SELECT inventory_sync.sync_pull(NULL, 2) AS page \gset
SELECT c->>'op' AS op, c->'data'->>'name' AS name, (:'page'::jsonb)->'has_more' AS has_more
  FROM jsonb_array_elements((:'page'::jsonb)->'changes') AS c;
-- It applies the page to its local copy, then stores the cursor; has_more: it asks again at once.
SELECT (:'page'::jsonb)->>'cursor' AS cursor \gset
SELECT inventory_sync.sync_pull(:'cursor', 2) AS page \gset
SELECT c->>'op' AS op, c->'data'->>'name' AS name, (:'page'::jsonb)->'has_more' AS has_more
  FROM jsonb_array_elements((:'page'::jsonb)->'changes') AS c;
SELECT (:'page'::jsonb)->>'cursor' AS cursor \gset
-- Up to date. Later, another device deletes the mouse and phone-a pushes an edit of the laptop:
-- the next pull has both, the device's own change included, as the server now has it.
SELECT inventory_sync.sync_delete_in('products', '00000000-0000-4000-8000-000000000002',
       '2024-03-01T10:00:00Z')->>'status' AS status;
SELECT inventory_sync.sync_push('[{"table": "products", "id": "00000000-0000-4000-8000-000000000001",
  "payload": {"stock": 5}, "client_ts": "2024-03-01T10:05:00Z", "client_id": "phone-a",
  "mutation_id": "a-1"}]')->0->>'status' AS status;
SELECT inventory_sync.sync_pull(:'cursor', 2) AS page \gset
SELECT c->'id' AS id, c->>'op' AS op, c->'data' AS data, (:'page'::jsonb)->'has_more' AS has_more
  FROM jsonb_array_elements((:'page'::jsonb)->'changes') AS c;
-- A device offline for longer than tombstones are kept: the tombstone it never pulled is purged
-- (here made to look 100 days old), so its cursor is refused with 55000. It discards its copy
-- and pulls everything again from NULL.
UPDATE inventory_sync.changes_uuid SET changed_at = changed_at - interval '100 days' WHERE op = 'delete';
SELECT inventory_sync.purge_tombstones('90 days') AS purged;
SELECT inventory_sync.sync_pull(:'cursor', 2);
\echo :LAST_ERROR_SQLSTATE
SELECT c->'id' AS id, c->>'op' AS op, c->'data'->>'name' AS name
  FROM jsonb_array_elements(inventory_sync.sync_pull(NULL, 1000)->'changes') AS c;
DROP TABLE products;
DROP EXTENSION inventory_sync;
