-- sync_pull: the changes after a cursor, page by page.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE TABLE products (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('products');
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops"}', '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('products', '11111111-1111-1111-1111-111111111111',
       '{"name": "Cable"}', '2024-03-01 09:05+00')->>'status' AS status;
SELECT inventory_sync.sync_delete(2, '2024-03-01 09:10+00')->>'status' AS status;
-- The first pull (since NULL), two changes at most: an upsert of each table.
SELECT inventory_sync.sync_pull(NULL, 2) AS page \gset
SELECT jsonb_pretty(:'page'::jsonb - 'cursor') AS page;
-- The cursor is opaque text; the next page continues after it: the tombstone.
SELECT (:'page'::jsonb)->>'cursor' AS cursor \gset
SELECT jsonb_pretty(inventory_sync.sync_pull(:'cursor', 2) - 'cursor') AS page;
-- A row changed several times appears once, as it is now.
SELECT inventory_sync.sync_pull(:'cursor', 2)->>'cursor' AS cursor \gset
SELECT inventory_sync.sync_upsert(1, '{"stock": 4}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(1, '{"stock": 3}', '2024-03-01 10:01+00')->>'status' AS status;
SELECT c->'id' AS id, c->>'op' AS op, c->'data' AS data, c->>'updated_at' AS updated_at
  FROM jsonb_array_elements(inventory_sync.sync_pull(:'cursor')->'changes') AS c;
-- One transaction's changes share one position: in pages of two each comes once, the default
-- table's first, by id as a number (2 before 10), then the tracked table's.
SELECT inventory_sync.sync_pull(:'cursor', 1000)->>'cursor' AS cursor \gset
SELECT o->>'status' AS status FROM jsonb_array_elements(inventory_sync.sync_push('[
  {"id": 10, "payload": {"n": 1}, "client_ts": "2024-03-01T11:00:00Z"},
  {"table": "products", "id": "22222222-2222-2222-2222-222222222222",
   "payload": {"name": "Mouse"}, "client_ts": "2024-03-01T11:00:00Z"},
  {"id": 9, "payload": {"n": 2}, "client_ts": "2024-03-01T11:00:00Z"},
  {"id": -3, "payload": {"n": 3}, "client_ts": "2024-03-01T11:00:00Z"},
  {"id": 100, "payload": {"n": 4}, "client_ts": "2024-03-01T11:00:00Z"},
  {"id": 2, "payload": {"n": 5}, "client_ts": "2024-03-01T11:00:00Z"}
]')) AS o;
WITH RECURSIVE page(n, body) AS (
    SELECT 1, inventory_sync.sync_pull(:'cursor', 2)
  UNION ALL
    SELECT n + 1, inventory_sync.sync_pull(body->>'cursor', 2) FROM page WHERE (body->>'has_more')::boolean
)
SELECT n AS page, c.e->>'table' AS tbl, c.e->'id' AS id
  FROM page, jsonb_array_elements(body->'changes') WITH ORDINALITY AS c(e, i) ORDER BY n, c.i;
-- Bad arguments.
SELECT inventory_sync.sync_pull('not-a-cursor');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_pull(NULL, 0);
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_pull(NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
DROP TABLE products;
DROP EXTENSION inventory_sync;
