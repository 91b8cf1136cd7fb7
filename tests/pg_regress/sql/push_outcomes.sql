-- sync_push: a whole upload in one call; one outcome per change, in the order given.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE TABLE products (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    stock      integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('products');
SELECT inventory_sync.sync_upsert(7, '{"note": "restock Friday"}', '2024-03-01 10:07+00')->>'status' AS status;
-- Invalid changes get "error" outcomes and write nothing; a change the table's own rules refuse
-- (a new product without its NOT NULL name) is "rejected" and journaled; the others are applied.
SELECT jsonb_pretty(inventory_sync.sync_push('[
  {"table": "products", "id": "11111111-1111-1111-1111-111111111111",
   "payload": {"name": "Laptop", "stock": 15}, "client_ts": "2024-03-01T10:00:00Z",
   "client_id": "phone-a", "mutation_id": "a-1"},
  {"id": 7, "payload": {"note": "done"}, "client_ts": "2024-03-01T09:00:00Z"},
  {"op": "delete", "id": 8, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "products", "id": "22222222-2222-2222-2222-222222222222",
   "payload": {"stock": 3}, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "warehouses", "id": 1, "payload": {}, "client_ts": "2024-03-01T10:00:00Z"},
  {"id": 9, "payload": {"note": "x"}, "client_ts": "2024-03-01T10:00:00Z", "qty": 1}
]'));
SELECT id, name, stock FROM products;
-- Each change's shape is checked; an error names what is wrong.
SELECT o->'id' AS id, o->>'sqlstate' AS sqlstate, o->>'message' AS message
  FROM jsonb_array_elements(inventory_sync.sync_push('[
  "not an object",
  {"payload": {}, "client_ts": "2024-03-01T10:00:00Z"},
  {"id": true, "payload": {}, "client_ts": "2024-03-01T10:00:00Z"},
  {"id": 1, "payload": {}},
  {"id": 1, "payload": {}, "client_ts": 1709287200},
  {"id": 1, "payload": {}, "client_ts": "10 o''clock"},
  {"id": 1, "client_ts": "2024-03-01T10:00:00Z"},
  {"op": "remove", "id": 1, "client_ts": "2024-03-01T10:00:00Z"},
  {"op": "delete", "id": 1, "payload": {}, "client_ts": "2024-03-01T10:00:00Z"},
  {"op": "delete", "id": 1, "base": {}, "client_ts": "2024-03-01T10:00:00Z"},
  {"id": 1, "payload": {}, "base": [], "client_ts": "2024-03-01T10:00:00Z"},
  {"id": "one", "payload": {}, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": 5, "id": 1, "payload": {}, "client_ts": "2024-03-01T10:00:00Z"},
  {"id": 1, "payload": {}, "client_ts": "2024-03-01T10:00:00Z", "client_id": 42},
  {"id": 1, "payload": {}, "client_ts": "2024-03-01T10:00:00Z", "mutation_id": "m-1"}
]')) AS o;
-- atomic => true: all or nothing. The first invalid change met fails the whole call, with its
-- own SQLSTATE and its position (counted from 0); nothing of the call is kept.
SELECT inventory_sync.sync_push('[
  {"id": 10, "payload": {"note": "a"}, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "products", "id": "33333333-3333-3333-3333-333333333333",
   "payload": {"stok": 1}, "client_ts": "2024-03-01T10:00:00Z"}
]', atomic => true);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows_with_id_10 FROM inventory_sync.inventory WHERE id = 10;
-- The argument itself must be a JSON array.
SELECT inventory_sync.sync_push('{"changes": []}');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_push('[]');
DROP TABLE products;
DROP EXTENSION inventory_sync;
