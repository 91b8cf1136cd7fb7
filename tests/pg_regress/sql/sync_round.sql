-- One full sync round: a device pushes what it queued offline, then pulls what changed.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE TABLE products (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    stock      integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('products');
-- The server already has two products, and the default table an item.
SELECT inventory_sync.sync_upsert_in('products', '11111111-1111-1111-1111-111111111111',
       '{"name": "Laptop", "stock": 15}', '2024-03-01 10:05+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('products', '22222222-2222-2222-2222-222222222222',
       '{"name": "Mouse", "stock": 40}', '2024-03-01 10:06+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(7, '{"note": "restock Friday"}', '2024-03-01 10:07+00')->>'status' AS status;
-- The device comes back online and pushes its queue in one call: an edit made at 10:00 (older
-- than the server's), a delete, a new product, a note, and a change with a typo in a column.
-- Each change carries the device's client_id and a mutation_id, so a retry is safe.
SELECT jsonb_pretty(inventory_sync.sync_push('[
  {"table": "products", "id": "11111111-1111-1111-1111-111111111111", "payload": {"stock": 8},
   "client_ts": "2024-03-01T10:00:00Z", "client_id": "phone-a", "mutation_id": "a-1"},
  {"op": "delete", "table": "products", "id": "22222222-2222-2222-2222-222222222222",
   "client_ts": "2024-03-01T10:10:00Z", "client_id": "phone-a", "mutation_id": "a-2"},
  {"table": "products", "id": "33333333-3333-3333-3333-333333333333", "payload": {"name": "Cable", "stock": 100},
   "client_ts": "2024-03-01T10:11:00Z", "client_id": "phone-a", "mutation_id": "a-3"},
  {"id": 8, "payload": {"note": "count shelf B"}, "client_ts": "2024-03-01T10:12:00Z",
   "client_id": "phone-a", "mutation_id": "a-4"},
  {"table": "products", "id": "33333333-3333-3333-3333-333333333333", "payload": {"stok": 99},
   "client_ts": "2024-03-01T10:13:00Z", "client_id": "phone-a", "mutation_id": "a-5"}
]'));
-- The answer was lost and the device pushes the same queue again: nothing is applied twice.
SELECT o->>'status' AS status, o->'duplicate' AS duplicate
  FROM jsonb_array_elements(inventory_sync.sync_push('[
  {"table": "products", "id": "11111111-1111-1111-1111-111111111111", "payload": {"stock": 8},
   "client_ts": "2024-03-01T10:00:00Z", "client_id": "phone-a", "mutation_id": "a-1"},
  {"op": "delete", "table": "products", "id": "22222222-2222-2222-2222-222222222222",
   "client_ts": "2024-03-01T10:10:00Z", "client_id": "phone-a", "mutation_id": "a-2"},
  {"table": "products", "id": "33333333-3333-3333-3333-333333333333", "payload": {"name": "Cable", "stock": 100},
   "client_ts": "2024-03-01T10:11:00Z", "client_id": "phone-a", "mutation_id": "a-3"}
]')) AS o;
-- Then it pulls everything from the start (its first sync: since = NULL), two changes a page,
-- keeping the cursor (opaque text) for the next call until has_more is false.
SELECT inventory_sync.sync_pull(NULL, 2) AS page \gset
SELECT jsonb_pretty((:'page'::jsonb)->'changes') AS changes, (:'page'::jsonb)->'has_more' AS has_more;
SELECT (:'page'::jsonb)->>'cursor' AS first_cursor \gset
SELECT inventory_sync.sync_pull(:'first_cursor', 2) AS page \gset
SELECT jsonb_pretty((:'page'::jsonb)->'changes') AS changes, (:'page'::jsonb)->'has_more' AS has_more;
SELECT inventory_sync.sync_pull((:'page'::jsonb)->>'cursor', 2) AS page \gset
SELECT jsonb_pretty((:'page'::jsonb)->'changes') AS changes, (:'page'::jsonb)->'has_more' AS has_more;
SELECT (:'page'::jsonb)->>'cursor' AS cursor \gset
-- Up to date: nothing more, and the cursor stays where it is.
SELECT p->'changes' AS changes, p->'has_more' AS has_more, p->>'cursor' = :'cursor' AS same_cursor
  FROM inventory_sync.sync_pull(:'cursor') AS p;
-- Another device edits the laptop; the next pull from the kept cursor has just that.
SELECT inventory_sync.sync_upsert_in('products', '11111111-1111-1111-1111-111111111111',
       '{"stock": 14}', '2024-03-01 10:20+00')->>'status' AS status;
SELECT jsonb_pretty(inventory_sync.sync_pull(:'cursor')->'changes') AS changes;
-- Tombstones are kept until purged (here: those deleted more than 30 days ago). A cursor from
-- before the purge is refused, since it may have missed a purged delete: that device starts
-- over from NULL. Later cursors go on.
UPDATE inventory_sync.changes_uuid SET changed_at = changed_at - interval '40 days' WHERE op = 'delete';
SELECT inventory_sync.purge_tombstones('30 days');
SELECT inventory_sync.sync_pull(:'first_cursor');
SELECT jsonb_array_length(inventory_sync.sync_pull(:'cursor')->'changes') AS changes;
DROP TABLE products;
DROP EXTENSION inventory_sync;
